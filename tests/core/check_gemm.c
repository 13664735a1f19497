/*
 * check_gemm.c - etc_gemm (src/core/gemm.c): every kernel path (tiles with
 * and without packing, the dot kernel, Cᵀ for narrow C, one column, the
 * k-split rows, OpenBLAS) against a double-precision reference, with every
 * epilogue; batch invariance (a row computed in a batch has the bits it has
 * alone) and the same bits on every instruction set the CPU has.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_helpers.h"
#include "core/core_internal.h"
#include "easytorch/ops.h"

typedef struct {
    int64_t m, n, k;
    char layout;   /* 'F' x·Wᵀ, 'N' A·B, 'T' Aᵀ·B, 'S' both strided (views) */
} shape;

/* Shapes of the models' steps and the kernels' edges: tails of MR rows and
 * of vectors, k below and above 16, n <= 8 (Cᵀ), n == 1, m <= 2 (k split). */
static const shape shapes[] = {
    {256, 5, 1, 'F'}, {256, 1, 5, 'F'}, {5, 1, 256, 'T'}, {1, 5, 256, 'T'}, {256, 5, 1, 'N'},
    {32, 64, 13, 'F'}, {64, 13, 32, 'T'}, {32, 64, 64, 'F'}, {64, 64, 32, 'T'}, {32, 64, 64, 'N'},
    {32, 1, 64, 'F'}, {1, 64, 32, 'T'}, {32, 64, 1, 'N'}, {1, 1, 1, 'F'}, {7, 9, 3, 'S'},
    {3, 70, 17, 'F'}, {2, 33, 100, 'N'}, {1, 17, 40, 'F'}, {13, 130, 31, 'F'}, {50, 7, 33, 'N'},
    {40, 3, 20, 'T'}, {17, 65, 16, 'N'}, {64, 100, 70, 'F'}, {9, 129, 200, 'T'}, {100, 8, 9, 'S'},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

static float frand(unsigned *st)
{
    *st = *st * 1664525u + 1013904223u;
    return (float)((*st >> 8) & 0xffff) / 32768.0f - 1.0f;
}

typedef struct {
    float *a, *b, *c, *bias;
    etc_gemm_t g;
} problem;

/* A and B in the given layout, C with a gap after each row (ldc > n). */
static void make(problem *p, const shape *s, unsigned seed)
{
    int64_t m = s->m, n = s->n, k = s->k;
    unsigned st = seed;
    size_t na = (size_t)(m * k * 2 + 8), nb = (size_t)(k * n * 2 + 8);
    p->a = malloc(na * sizeof(float));
    p->b = malloc(nb * sizeof(float));
    p->c = malloc((size_t)(m * (n + 3) + 8) * sizeof(float));
    p->bias = malloc((size_t)(n + 8) * sizeof(float));
    for (size_t i = 0; i < na; i++)
        p->a[i] = frand(&st);
    for (size_t i = 0; i < nb; i++)
        p->b[i] = frand(&st);
    for (int64_t i = 0; i < m * (n + 3) + 8; i++)
        p->c[i] = frand(&st);
    for (int64_t i = 0; i < n + 8; i++)
        p->bias[i] = frand(&st);
    etc_gemm_t g = {.m = m, .n = n, .k = k, .a = p->a, .b = p->b, .c = p->c, .ldc = n + 3};
    switch (s->layout) {
    case 'F': g.ars = k, g.acs = 1, g.brs = 1, g.bcs = k; break;
    case 'N': g.ars = k, g.acs = 1, g.brs = n, g.bcs = 1; break;
    case 'T': g.ars = 1, g.acs = m, g.brs = n, g.bcs = 1; break;
    default:  g.ars = 2 * k, g.acs = 2, g.brs = 2, g.bcs = 2 * k; break;   /* every other element */
    }
    p->g = g;
}

static void unmake(problem *p)
{
    free(p->a);
    free(p->b);
    free(p->c);
    free(p->bias);
}

static float A(const etc_gemm_t *g, int64_t i, int64_t q) { return g->a[i * g->ars + q * g->acs]; }
static float B(const etc_gemm_t *g, int64_t q, int64_t j) { return g->b[q * g->brs + j * g->bcs]; }

/* etc_gemm(g) against the double reference for every epilogue. */
static void check_values(const shape *s, unsigned flags, const char *what)
{
    for (int ep = 0; ep < 4; ep++) {
        problem p;
        make(&p, s, 7u + (unsigned)ep);
        etc_gemm_t g = p.g;
        g.accumulate = ep & 1;
        g.bias = ep & 2 ? p.bias : NULL;
        g.act = ep == 3 ? ETC_GEMM_RELU : ETC_GEMM_NONE;
        size_t csz = (size_t)(s->m * g.ldc);
        float *before = malloc(csz * sizeof(float));
        memcpy(before, p.c, csz * sizeof(float));
        etc_gemm(&g, flags);
        for (int64_t i = 0; i < s->m; i++) {
            for (int64_t j = 0; j < g.ldc; j++) {
                float got = p.c[i * g.ldc + j];
                if (j >= s->n) {   /* the gap after each row is never written */
                    ck_assert_msg(got == before[i * g.ldc + j] ||
                                  (isnan(got) && isnan(before[i * g.ldc + j])),
                                  "%s %lldx%lldx%lld %c: wrote past row %lld", what,
                                  (long long)s->m, (long long)s->n, (long long)s->k, s->layout,
                                  (long long)i);
                    continue;
                }
                double e = 0, mag = 0;
                for (int64_t q = 0; q < s->k; q++) {
                    e += (double)A(&g, i, q) * B(&g, q, j);
                    mag += fabs((double)A(&g, i, q) * B(&g, q, j));
                }
                if (g.accumulate)
                    e += before[i * g.ldc + j], mag += fabs(before[i * g.ldc + j]);
                if (g.bias)
                    e += g.bias[j], mag += fabs(g.bias[j]);
                if (g.act == ETC_GEMM_RELU)
                    e = e > 0 ? e : 0;
                ck_assert_msg(fabs(got - e) <= 1e-6 * mag + 1e-6,
                              "%s %lldx%lldx%lld %c epilogue %d: C[%lld,%lld] = %.9g, expected "
                              "%.9g", what, (long long)s->m, (long long)s->n, (long long)s->k,
                              s->layout, ep, (long long)i, (long long)j, got, e);
            }
        }
        free(before);
        unmake(&p);
    }
}

START_TEST(test_values_every_path)
{
    static const unsigned flag_sets[] = {0, ETC_GEMM_INVARIANT, ETC_GEMM_NO_BLAS,
                                         ETC_GEMM_NO_BLAS | ETC_GEMM_TILE, ETC_GEMM_BLAS};
    static const char *const names[] = {"default", "invariant", "ours", "tiles", "OpenBLAS"};
    for (int f = 0; f < 5; f++)
        for (int i = 0; i < NSHAPES; i++)
            check_values(&shapes[i], flag_sets[f], names[f]);
}
END_TEST

START_TEST(test_values_every_isa)
{
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    const char *saved = etc_gemm_isa();
    for (int a = 0; a < 3; a++) {
        if (etc_gemm_set_isa(isas[a]) != 0) {
            note_not_run(__func__, isas[a]);
            continue;
        }
        for (int i = 0; i < NSHAPES; i++) {
            check_values(&shapes[i], ETC_GEMM_NO_BLAS, isas[a]);
            check_values(&shapes[i], ETC_GEMM_INVARIANT, isas[a]);
        }
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
}
END_TEST

/* Invariant calls: each row of C computed alone (m = 1) and inside every
 * batch size has the same bits, with every epilogue. */
START_TEST(test_batch_invariance)
{
    static const shape inv[] = {{64, 100, 70, 'F'}, {64, 13, 784, 'F'}, {37, 64, 64, 'F'},
                                {33, 1, 64, 'F'}, {40, 5, 1, 'F'}, {30, 10, 300, 'F'},
                                {20, 64, 13, 'N'}, {50, 3, 20, 'T'}};
    for (size_t si = 0; si < sizeof inv / sizeof inv[0]; si++) {
        const shape *s = &inv[si];
        problem p;
        make(&p, s, 99u);
        etc_gemm_t g = p.g;
        g.bias = p.bias;
        g.act = ETC_GEMM_RELU;
        size_t csz = (size_t)(s->m * g.ldc);
        float *batch = malloc(csz * sizeof(float)), *alone = malloc(csz * sizeof(float));
        etc_gemm_t gb = g;
        gb.c = batch;
        etc_gemm(&gb, ETC_GEMM_INVARIANT);
        /* each row alone, and the rows in sub-batches of every size 2..m */
        for (int64_t i = 0; i < s->m; i++) {
            etc_gemm_t g1 = g;
            g1.m = 1;
            g1.a = g.a + i * g.ars;
            g1.c = alone + i * g.ldc;
            etc_gemm(&g1, ETC_GEMM_INVARIANT);
        }
        for (int64_t i = 0; i < s->m; i++)
            ck_assert_msg(memcmp(alone + i * g.ldc, batch + i * g.ldc,
                                 (size_t)s->n * sizeof(float)) == 0,
                          "%lldx%lldx%lld %c: row %lld differs alone and in a batch of %lld",
                          (long long)s->m, (long long)s->n, (long long)s->k, s->layout,
                          (long long)i, (long long)s->m);
        for (int64_t bs = 2; bs < s->m; bs++) {
            for (int64_t i0 = 0; i0 < s->m; i0 += bs) {
                etc_gemm_t gs = g;
                gs.m = s->m - i0 < bs ? s->m - i0 : bs;
                gs.a = g.a + i0 * g.ars;
                gs.c = alone + i0 * g.ldc;
                etc_gemm(&gs, ETC_GEMM_INVARIANT);
            }
            for (int64_t i = 0; i < s->m; i++)
                ck_assert_msg(memcmp(alone + i * g.ldc, batch + i * g.ldc,
                                     (size_t)s->n * sizeof(float)) == 0,
                              "%lldx%lldx%lld %c: row %lld differs in batches of %lld and %lld",
                              (long long)s->m, (long long)s->n, (long long)s->k, s->layout,
                              (long long)i, (long long)bs, (long long)s->m);
        }
        free(batch);
        free(alone);
        unmake(&p);
    }
}
END_TEST

/* Invariant calls over every batch size 1..70 and odd shapes (k below,
 * at and past 16 and not a multiple of it, n of every tail, the
 * 784-1024-1024-10 model's k and n): the rows [s, s+m) computed as one call
 * have the bits of the same rows in the call of all 70, on every ISA the
 * CPU has (the kernels for few and for many rows must agree). */
START_TEST(test_batch_invariance_every_m)
{
    static const shape inv[] = {{70, 67, 784, 'F'}, {70, 10, 1024, 'F'}, {70, 13, 17, 'F'},
                                {70, 33, 100, 'F'}, {70, 1, 31, 'F'},   {70, 7, 16, 'F'},
                                {70, 129, 40, 'F'}, {70, 19, 5, 'F'},   {70, 21, 23, 'N'}};
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    const char *saved = etc_gemm_isa();
    for (int a = 0; a < 3; a++) {
        if (etc_gemm_set_isa(isas[a]) != 0) {
            note_not_run(__func__, isas[a]);
            continue;
        }
        for (size_t si = 0; si < sizeof inv / sizeof inv[0]; si++) {
            const shape *s = &inv[si];
            problem p;
            make(&p, s, 41u + (unsigned)si);
            etc_gemm_t g = p.g;
            g.bias = p.bias;
            g.act = si % 2 ? ETC_GEMM_RELU : ETC_GEMM_NONE;
            size_t csz = (size_t)(s->m * g.ldc);
            float *all = malloc(csz * sizeof(float)), *part = malloc(csz * sizeof(float));
            etc_gemm_t ga = g;
            ga.c = all;
            etc_gemm(&ga, ETC_GEMM_INVARIANT);
            for (int64_t m = 1; m <= s->m; m++) {
                int64_t s0 = (m * 7) % (s->m - m + 1);
                etc_gemm_t gm = g;
                gm.m = m;
                gm.a = g.a + s0 * g.ars;
                gm.c = part;
                etc_gemm(&gm, ETC_GEMM_INVARIANT);
                for (int64_t i = 0; i < m; i++)
                    ck_assert_msg(memcmp(part + i * g.ldc, all + (s0 + i) * g.ldc,
                                         (size_t)s->n * sizeof(float)) == 0,
                                  "%s %lldx%lld %c: row %lld differs in a batch of %lld "
                                  "(from row %lld) and in the batch of %lld", isas[a],
                                  (long long)s->n, (long long)s->k, s->layout,
                                  (long long)(s0 + i), (long long)m, (long long)s0,
                                  (long long)s->m);
            }
            free(all);
            free(part);
            unmake(&p);
        }
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
}
END_TEST

/* Invariant (and tile) results are the same bits on every ISA. */
START_TEST(test_same_bits_every_isa)
{
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    const char *saved = etc_gemm_isa();
    for (int i = 0; i < NSHAPES; i++) {
        const shape *s = &shapes[i];
        float *ref = NULL;
        for (int a = 0; a < 3; a++) {
            if (etc_gemm_set_isa(isas[a]) != 0) {
                if (i == 0)
                    note_not_run(__func__, isas[a]);
                continue;
            }
            problem p;
            make(&p, s, 5u);
            etc_gemm_t g = p.g;
            g.bias = p.bias;
            etc_gemm(&g, ETC_GEMM_INVARIANT);
            size_t csz = (size_t)(s->m * g.ldc);
            if (!ref) {
                ref = malloc(csz * sizeof(float));
                memcpy(ref, p.c, csz * sizeof(float));
            } else {
                ck_assert_msg(memcmp(ref, p.c, csz * sizeof(float)) == 0,
                              "%lldx%lldx%lld %c: %s differs from portable", (long long)s->m,
                              (long long)s->n, (long long)s->k, s->layout, isas[a]);
            }
            unmake(&p);
        }
        free(ref);
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
}
END_TEST

/* ReLU keeps NaN (as torch.relu) and maps -0 and negatives to +0; an
 * infinite input propagates.  Our kernels' store and the pass over
 * OpenBLAS's output (gemm.c's relu_row), 19 rows so that it runs 8 lanes
 * wide as well as in its tail. */
START_TEST(test_relu_nan_inf)
{
    static const unsigned flags[] = {0, ETC_GEMM_BLAS};
    enum { M = 19 };
    float a[M], b[1] = {1}, c[M], bias[1] = {0};
    const float in[5] = {1, NAN, -2, INFINITY, -0.0f};
    for (int f = 0; f < 2; f++) {
        for (int i = 0; i < M; i++)
            a[i] = in[i % 5];
        etc_gemm_t g = {.m = M, .n = 1, .k = 1, .a = a, .ars = 1, .acs = 1, .b = b, .brs = 1,
                        .bcs = 1, .c = c, .ldc = 1, .bias = bias, .act = ETC_GEMM_RELU};
        etc_gemm(&g, flags[f]);
        for (int i = 0; i < M; i++) {
            ck_assert_msg(i % 5 == 1 ? isnan(c[i]) : c[i] == (i % 5 == 0 ? 1.0f : i % 5 == 3 ? INFINITY : 0.0f),
                          "flags %u: relu(%g) = %g", flags[f], (double)a[i], (double)c[i]);
            ck_assert(!signbit(c[i]) || isnan(c[i]));
        }
    }
}
END_TEST


/* et_set_batch_invariant: a Linear-ReLU-Linear of the 784-1024-1024-10
 * model's first shapes gives each of 64 rows the bits it has alone (these
 * shapes go to OpenBLAS when the mode is off). */
START_TEST(test_linear_invariant_mode)
{
    et_generator *gen = et_generator_new(1);
    et_tensor *x = et_randn(gen, (const int64_t[]){64, 784}, 2);
    et_tensor *w1 = et_randn(gen, (const int64_t[]){1024, 784}, 2);
    et_tensor *b1 = et_randn(gen, (const int64_t[]){1024}, 1);
    et_tensor *w2 = et_randn(gen, (const int64_t[]){10, 1024}, 2);
    ck_assert_ptr_nonnull(x);
    ck_assert(!et_is_batch_invariant());
    ck_assert(!et_set_batch_invariant(true));
    et_pool_begin();
    et_tensor *h = et_relu(etc_pooled(etc_linear(x, w1, b1)));
    et_tensor *y = etc_pooled(etc_linear(h, w2, NULL));
    ck_assert_ptr_nonnull(y);
    for (int64_t i = 0; i < 64; i++) {
        et_tensor *xi = et_slice(x, 0, i, i + 1, 1);
        et_tensor *hi = et_relu(etc_pooled(etc_linear(xi, w1, b1)));
        et_tensor *yi = etc_pooled(etc_linear(hi, w2, NULL));
        ck_assert_ptr_nonnull(yi);
        ck_assert_msg(memcmp(et_data(yi), et_data(y) + i * 10, 10 * sizeof(float)) == 0,
                      "row %lld differs alone and in the batch of 64", (long long)i);
    }
    et_pool_end();
    ck_assert(et_set_batch_invariant(false));
    ck_assert(!et_is_batch_invariant());
    et_tensor_free(x);
    et_tensor_free(w1);
    et_tensor_free(b1);
    et_tensor_free(w2);
    et_generator_free(gen);
}
END_TEST

/* et_pack_cache (gemm_inv_pack.c): invariant Linear calls that take W's
 * panels from the cache give the bits of the same call packing per call,
 * at first use and from the cache; a weight written in place (its storage
 * version) or written raw and followed by a new generation is repacked,
 * never read stale.  Fewer rows than the many kernel's, a cache unset, or
 * default mode leave the cache alone. */
static et_tensor *lin(et_tensor *x, et_tensor *w, et_tensor *b, int act, et_pack_cache *c)
{
    et_pack_cache *prev = et_set_pack_cache(c);
    et_tensor *y = etc_pooled(etc_linear_act(x, w, b, act));
    ck_assert_ptr_eq(et_set_pack_cache(prev), c);
    ck_assert_ptr_nonnull(y);
    return y;
}

static void same(et_tensor *a, et_tensor *b, const char *what, int64_t n, int64_t k, int64_t m)
{
    ck_assert_int_eq(et_numel(a), et_numel(b));
    ck_assert_msg(memcmp(et_data(a), et_data(b), (size_t)et_numel(a) * sizeof(float)) == 0,
                  "%s: W %lldx%lld, %lld rows: cached panels give other bits", what,
                  (long long)n, (long long)k, (long long)m);
}

START_TEST(test_pack_cache)
{
    static const int64_t dims[][2] = {{1024, 784}, {10, 1024}, {67, 100}, {21, 23}, {9, 16}};
    static const int64_t ms[] = {16, 17, 40, 64, 70, 131};
    bool avx2 = strcmp(etc_gemm_isa(), "portable") != 0;   /* AVX2 kernels, also on AVX-512 */
    et_generator *gen = et_generator_new(7);
    et_pack_cache *c = et_pack_cache_new(0);
    ck_assert_ptr_nonnull(c);
    ck_assert(!et_set_batch_invariant(true));
    uint64_t generation = 1;
    et_pack_cache_sync(c, generation);
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        int64_t n = dims[d][0], k = dims[d][1];
        int act = d % 2 ? ETC_ACT_RELU : ETC_ACT_NONE;
        et_tensor *x = et_randn(gen, (const int64_t[]){131, k}, 2);
        et_tensor *w = et_randn(gen, (const int64_t[]){n, k}, 2);
        et_tensor *b = et_randn(gen, (const int64_t[]){n}, 1);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            int64_t m = ms[mi];
            et_pool_begin();
            et_tensor *xm = et_slice(x, 0, 131 - m, 131, 1);
            et_tensor *ref = lin(xm, w, b, act, NULL);
            same(ref, lin(xm, w, b, act, c), "first use", n, k, m);
            same(ref, lin(xm, w, b, act, c), "cached", n, k, m);
            et_pool_end();
        }
        if (avx2)
            ck_assert_uint_gt(et_pack_cache_bytes(c), 0);
        /* an in-place write bumps the storage version: repacked */
        ck_assert_int_eq(et_mul_scalar_(w, -0.5f), ET_OK);
        et_pool_begin();
        et_tensor *x64 = et_slice(x, 0, 0, 64, 1);
        same(lin(x64, w, b, act, NULL), lin(x64, w, b, act, c), "after mul_", n, k, 64);
        et_pool_end();
        /* a raw write (as an optimizer's) is seen after a new generation */
        float *wd = et_data(w);
        for (int64_t i = 0; i < n * k; i += 3)
            wd[i] = -wd[i] + 0.25f;
        et_pack_cache_sync(c, ++generation);
        ck_assert_uint_eq(et_pack_cache_bytes(c), 0);
        et_pool_begin();
        x64 = et_slice(x, 0, 0, 64, 1);
        same(lin(x64, w, b, act, NULL), lin(x64, w, b, act, c), "after a new generation", n, k,
             64);
        et_pool_end();
        et_tensor_free(x);
        et_tensor_free(w);
        et_tensor_free(b);
        et_pack_cache_sync(c, ++generation);
    }
    /* few rows, or default mode: nothing packed */
    et_tensor *x = et_randn(gen, (const int64_t[]){64, 40}, 2);
    et_tensor *w = et_randn(gen, (const int64_t[]){33, 40}, 2);
    et_pool_begin();
    lin(et_slice(x, 0, 0, 15, 1), w, NULL, ETC_ACT_NONE, c);
    ck_assert_uint_eq(et_pack_cache_bytes(c), 0);
    ck_assert(et_set_batch_invariant(false));
    lin(x, w, NULL, ETC_ACT_NONE, c);
    ck_assert_uint_eq(et_pack_cache_bytes(c), 0);
    et_pool_end();
    et_tensor_free(x);
    et_tensor_free(w);
    et_pack_cache_free(c);
    et_generator_free(gen);
}
END_TEST

/* The default mode's 1-4 rows of x·Wᵀ run gemm_inv_few.c on AVX2 (session 9)
 * and AVX-512 CPUs (session 10) instead of the ISA's dot kernel, and the
 * invariant x·Wᵀ of any m runs gemm_inv_few.c / gemm_inv_many.c on both:
 * the same bits as that dot kernel (ETC_GEMM_DOT4 forces it), for every
 * epilogue, odd k and n and a strided W, on every SIMD ISA the CPU has. */
START_TEST(test_few_rows_same_bits_as_dot_tile)
{
    static const shape few[] = {{1, 1024, 784, 'F'}, {1, 10, 1024, 'F'}, {2, 67, 17, 'F'},
                                {3, 13, 100, 'F'},   {4, 129, 31, 'F'},  {1, 5, 16, 'F'},
                                {4, 3, 40, 'F'},     {2, 9, 33, 'F'},    {16, 67, 17, 'F'},
                                {23, 129, 31, 'F'},  {64, 40, 784, 'F'}, {70, 9, 33, 'F'}};
    static const char *const isas[] = {"avx2", "avx512"};
    const char *saved = etc_gemm_isa();
    for (int a = 0; a < 2; a++) {
        if (etc_gemm_set_isa(isas[a]) != 0) {
            note_not_run(__func__, isas[a]);
            continue;
        }
        for (size_t si = 0; si < sizeof few / sizeof few[0]; si++)
            for (int ep = 0; ep < 8; ep++) {
                const shape *s = &few[si];
                unsigned mode = ep & 4 ? ETC_GEMM_INVARIANT : 0;
                if (!mode && s->m > 4)
                    continue;   /* the default mode's many rows take the tile kernel */
                problem p;
                make(&p, s, 91u + (unsigned)(si * 8 + ep));
                etc_gemm_t g = p.g;
                g.accumulate = ep & 1;
                g.bias = ep & 2 ? p.bias : NULL;
                g.act = (ep & 3) == 3 ? ETC_GEMM_RELU : ETC_GEMM_NONE;
                size_t csz = (size_t)(s->m * g.ldc);
                float *ref = malloc(csz * sizeof(float));
                memcpy(ref, p.c, csz * sizeof(float));
                etc_gemm_t gr = g;
                gr.c = ref;
                etc_gemm(&gr, mode | ETC_GEMM_DOT4);
                etc_gemm(&g, mode);
                ck_assert_msg(memcmp(ref, p.c, csz * sizeof(float)) == 0,
                              "%s %lldx%lldx%lld %c, epilogue %d%s: the few/many-row kernels' "
                              "bits differ from the dot tile's", isas[a], (long long)s->m,
                              (long long)s->n, (long long)s->k, s->layout, ep & 3,
                              mode ? ", invariant" : "");
                free(ref);
                unmake(&p);
            }
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
}
END_TEST

/* One output column of many rows, x·Wᵀ with k >= 32 (the last Linear of
 * 13-64-64-1 on the HTTP rows' 1024 rows), not invariant: each element is
 * KS_MAX = 4 interleaved fma chains (p mod 4; the tail past the last whole
 * group of 4 on chain 0), summed in chain order, then C (accumulate), the
 * bias, ReLU -- the k-split order the Cᵀ path gave these shapes, and the
 * bits gemm_n1_ks.c keeps, on the AVX2 and AVX-512 kernels. */
static float n1_ks4_ref(const etc_gemm_t *g, int64_t i)
{
    float acc[4] = {0};
    int64_t p = 0;
    for (; p + 4 <= g->k; p += 4)
        for (int s = 0; s < 4; s++)
            acc[s] = fmaf(A(g, i, p + s), B(g, p + s, 0), acc[s]);
    for (; p < g->k; p++)
        acc[0] = fmaf(A(g, i, p), B(g, p, 0), acc[0]);
    float v = ((acc[0] + acc[1]) + acc[2]) + acc[3];
    if (g->accumulate)
        v = g->c[i * g->ldc] + v;
    if (g->bias)
        v = v + g->bias[0];
    if (g->act == ETC_GEMM_RELU)
        v = v > 0.0f ? v : (v != v ? v : 0.0f);
    return v;
}

START_TEST(test_one_column_k_split_bits)
{
    static const char *const isas[] = {"avx2", "avx512"};
    static const int64_t ms[] = {16, 17, 23, 31, 1024, 1030};
    static const int64_t ks[] = {32, 33, 35, 63, 64, 100};
    const char *saved = etc_gemm_isa();
    for (int a = 0; a < 2; a++) {
        if (etc_gemm_set_isa(isas[a]) != 0) {
            note_not_run(__func__, isas[a]);
            continue;
        }
        for (int mi = 0; mi < 6; mi++)
            for (int ki = 0; ki < 6; ki++)
                for (int e = 0; e < 4; e++) {   /* plain, bias, bias + ReLU, accumulate */
                    shape sh = {ms[mi], 1, ks[ki], 'F'};
                    problem p;
                    make(&p, &sh, 11u + (unsigned)(mi * 7 + ki));
                    etc_gemm_t g = p.g;
                    g.bias = e == 1 || e == 2 ? p.bias : NULL;
                    g.act = e == 2 ? ETC_GEMM_RELU : ETC_GEMM_NONE;
                    g.accumulate = e == 3;
                    float *want = malloc((size_t)sh.m * sizeof(float));
                    for (int64_t i = 0; i < sh.m; i++)
                        want[i] = n1_ks4_ref(&g, i);
                    etc_gemm(&g, ETC_GEMM_NO_BLAS);
                    for (int64_t i = 0; i < sh.m; i++)
                        ck_assert_msg(memcmp(&want[i], &p.c[i * g.ldc], sizeof(float)) == 0,
                                      "%s m %lld k %lld epilogue %d row %lld: %a, want %a",
                                      isas[a], (long long)sh.m, (long long)sh.k, e,
                                      (long long)i, (double)p.c[i * g.ldc], (double)want[i]);
                    free(want);
                    unmake(&p);
                }
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
}
END_TEST

/* The small shapes etc_gemm gives to OpenBLAS (gemm.c blas_faster_small)
 * are only those where its kernels give our bits: every shape of a sweep
 * over the rule's range that it routes, both layouts, plain and
 * accumulating, against our kernels (ETC_GEMM_NO_BLAS), bit for bit. */
START_TEST(test_blas_small_same_bits)
{
    static const int64_t ms[] = {1, 2, 11, 12, 13, 16, 17, 24, 31, 32, 33, 64, 256, 1024};
    static const int64_t ns[] = {1, 2, 5, 12, 13, 16, 17, 24, 25, 30, 32, 40, 64, 100, 200};
    static const int64_t ks[] = {1, 2, 7, 16, 27, 31, 32, 33, 64, 100, 200, 262};
    int64_t routed = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int l = 0; l < 2; l++) {
                    shape sh = {ms[mi], ns[ni], ks[ki], l ? 'T' : 'N'};
                    if (sh.m * sh.n * sh.k > ((int64_t)1 << 18))
                        continue;
                    problem p;
                    make(&p, &sh, 3u + (unsigned)(mi * 31 + ni * 7 + ki));
                    if (!etc_gemm_uses_blas(&p.g, 0)) {
                        unmake(&p);
                        continue;
                    }
                    routed++;
                    size_t csz = (size_t)(sh.m * p.g.ldc);
                    float *ours = malloc(csz * sizeof(float));
                    for (int acc = 0; acc < 2; acc++) {
                        etc_gemm_t g = p.g;
                        g.accumulate = acc;
                        memcpy(ours, p.c, csz * sizeof(float));
                        etc_gemm(&g, 0);
                        g.c = ours;
                        etc_gemm(&g, ETC_GEMM_NO_BLAS);
                        for (int64_t i = 0; i < sh.m; i++)
                            for (int64_t j = 0; j < sh.n; j++)
                                ck_assert_msg(memcmp(&p.c[i * g.ldc + j], &ours[i * g.ldc + j],
                                                     sizeof(float)) == 0,
                                              "%c %lldx%lldx%lld acc %d (%lld, %lld): OpenBLAS "
                                              "%a, ours %a", sh.layout, (long long)sh.m,
                                              (long long)sh.n, (long long)sh.k, acc,
                                              (long long)i, (long long)j,
                                              (double)p.c[i * g.ldc + j],
                                              (double)ours[i * g.ldc + j]);
                        memcpy(p.c, ours, csz * sizeof(float));   /* the next round's C */
                    }
                    free(ours);
                    unmake(&p);
                }
    if (routed == 0)
        note_not_run(__func__, "AVX-512 with OpenBLAS's AVX-512 kernels");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_values_every_path);
    tcase_add_test(tc, test_values_every_isa);
    tcase_add_test(tc, test_batch_invariance);
    tcase_add_test(tc, test_batch_invariance_every_m);
    tcase_add_test(tc, test_same_bits_every_isa);
    tcase_add_test(tc, test_relu_nan_inf);
    tcase_add_test(tc, test_linear_invariant_mode);
    tcase_add_test(tc, test_pack_cache);
    tcase_add_test(tc, test_few_rows_same_bits_as_dot_tile);
    tcase_add_test(tc, test_one_column_k_split_bits);
    tcase_add_test(tc, test_blas_small_same_bits);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
