/*
 * gemm.c - C = A·B for the matrices of small models, and the choice per
 * shape between these kernels and OpenBLAS's sgemm.
 *
 * Why our own kernels: a training step of a small MLP (13-64-64-1, batch
 * 32) is eight GEMMs of ~2,000-130,000 multiply-adds each.  OpenBLAS's sgemm
 * spends more time on its interface, packing both operands and dispatch
 * than on arithmetic at those sizes (3.4 µs for 32x64x64, which is 0.6 µs of
 * FMAs).  These kernels pack nothing they can read in place (A is read by
 * broadcasts from any layout, B row-wise when its rows are contiguous), fold
 * the bias and ReLU into the store, and are chosen at run time for the CPU:
 * AVX-512 (16 lanes), AVX2+FMA (8 lanes), or portable C.
 *
 * Batch invariance: every element of C is a sequential chain of fused
 * multiply-adds over k (see gemm_kernel.h) -- or, for x·Wᵀ (a Linear
 * layer), the dot kernel's 16 chains and fixed tree (gemm_inv.h) -- so its
 * bits depend on its own row of A, its column of B and k only.  A row computed in a batch of 64
 * equals the row computed alone, on every CPU and instruction set (the
 * kernels use the same order, and fma rounds once everywhere), which is what
 * a server batching requests row-wise needs.  OpenBLAS gives no such
 * guarantee (its blocking depends on m), so invariant calls never use it.
 *
 * Which kernel: see etc_gemm() and docs/performance.md ("small-matrix
 * path") for the measurements behind the rule.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_internal.h"
#include "core/gemm_inv.h"
#include "core/gemm_n1.h"

#define KS_MAX 4

/* ET_GEMM_PORTABLE (meson sets it for clang sanitizer builds, whose optimiser
 * takes tens of CPU-minutes on the always_inline SIMD tiles below): portable C
 * only, which computes the same bits (same fma order). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
#define GEMM_X86 1
#include <immintrin.h>

#include "core/avx_transpose.h"

/* The first n (0..8) lanes of v to p, by plain 16-, 8- and 4-byte stores:
 * AVX2's masked store (vmaskmovps) is microcoded on AMD's Zen cores (tens
 * of micro-ops each); the partial last vector of a panel of C (27 or 30
 * columns in the char model) was stored through it once per row. */
static inline __attribute__((always_inline, target("avx2"))) void
etc_store_first8(float *p, __m256 v, int n)
{
    if (n >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 h = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(v, 1);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)p, h);
        h = _mm_movehl_ps(h, h);
        p += 2;
        n -= 2;
    }
    if (n >= 1)
        _mm_store_ss(p, h);
}
#endif

/* ------------------------------------------------------------------ */
/* kernels                                                              */

#ifdef GEMM_X86
/* AVX-512: 16 lanes, tiles of 6 rows x 64 columns (24 accumulators). */
#define ISA avx512
#define TARGET __attribute__((target("avx512f,fma")))
#define VW 16
#define MR 6
#define NVMAX 4
#define PW 64
#define V __m512
#define VI __m512i
#define M __mmask16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_MLOAD(m, p) _mm512_maskz_loadu_ps((m), (p))
#define V_PSTORE(m, nl, p, v) _mm512_mask_storeu_ps((p), (m), (v))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_RELU(v) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask((v), _mm512_setzero_ps(), _CMP_GT_OQ) | \
                                      _mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q), (v))
#define M_FIRST(n) ((M)((1u << (n)) - 1u))
#define V_GATHER(m, base, idx) _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (m), (idx), (base), 4)
#define I_STRIDE(s) _mm512_mullo_epi32(_mm512_set1_epi32(s), \
    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define CASES(NV) CASE(1, NV) CASE(2, NV) CASE(3, NV) CASE(4, NV) CASE(5, NV)

/* The dot kernel's tile (gemm_kernel.h, FN(gemm_dot)): 4 rows of A x 4 rows of
 * Bᵀ, 16 accumulators of 16 lanes, then all 16 reduced at once by the fixed
 * tree (l, l+8), (l, l+4), (l, l+2), (l, l+1): four rounds of two shuffles
 * and an add that leave sum(acc[r][q]) in lane 4r + q. */
static inline __attribute__((always_inline)) TARGET void
dot_tile_avx512(const float *const ar[4], const float *const br[4], int64_t k, float out[16])
{
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            acc[r][q] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 a[4];
        for (int r = 0; r < 4; r++)
            a[r] = _mm512_loadu_ps(ar[r] + p);
        for (int q = 0; q < 4; q++) {
            __m512 w = _mm512_loadu_ps(br[q] + p);
            for (int r = 0; r < 4; r++)
                acc[r][q] = _mm512_fmadd_ps(a[r], w, acc[r][q]);
        }
    }
    if (p < k) {
        __mmask16 mk = (__mmask16)((1u << (k - p)) - 1u);
        __m512 a[4];
        for (int r = 0; r < 4; r++)
            a[r] = _mm512_maskz_loadu_ps(mk, ar[r] + p);
        for (int q = 0; q < 4; q++) {
            __m512 w = _mm512_maskz_loadu_ps(mk, br[q] + p);
            for (int r = 0; r < 4; r++)
                acc[r][q] = _mm512_fmadd_ps(a[r], w, acc[r][q]);
        }
    }
    /* v[4q + r] = acc[r][q]; round 1: pairs (v[2t], v[2t+1]) -> lanes l+8 added */
    __m512 v[16], e[8];
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            v[4 * q + r] = acc[r][q];
    for (int t = 0; t < 8; t++)
        e[t] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* round 2: l+4 */
    for (int t = 0; t < 4; t++)
        e[t] = _mm512_add_ps(_mm512_shuffle_f32x4(e[2 * t], e[2 * t + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(e[2 * t], e[2 * t + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    /* round 3: l+2, within 128-bit lanes */
    for (int t = 0; t < 2; t++)
        e[t] = _mm512_add_ps(_mm512_shuffle_ps(e[2 * t], e[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(e[2 * t], e[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* round 4: l+1 */
    __m512 sum = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(out, sum);
}

#include "core/gemm_kernel.h" /* undefines the macros above */

/* AVX2 + FMA: 8 lanes, tiles of 6 rows x 16 columns (12 accumulators). */
#define ISA avx2
#define TARGET __attribute__((target("avx2,fma")))
#define VW 8
#define MR 6
#define NVMAX 2
#define PW 16
#define V __m256
#define VI __m256i
#define M __m256i
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_MLOAD(m, p) _mm256_maskload_ps((p), (m))
#define V_PSTORE(m, nl, p, v) etc_store_first8((p), (v), (nl))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_RELU(v) _mm256_and_ps((v), _mm256_or_ps(_mm256_cmp_ps((v), _mm256_setzero_ps(), _CMP_GT_OQ), \
                                                  _mm256_cmp_ps((v), (v), _CMP_UNORD_Q)))
#define M_FIRST(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_GATHER(m, base, idx) _mm256_mask_i32gather_ps(_mm256_setzero_ps(), (base), (idx), \
                                                        _mm256_castsi256_ps(m), 4)
#define I_STRIDE(s) _mm256_mullo_epi32(_mm256_set1_epi32(s), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define CASES(NV) CASE(1, NV) CASE(2, NV) CASE(3, NV) CASE(4, NV) CASE(5, NV)

/* 16 lanes as two vectors (lo = lanes 0-7, hi = 8-15), so that the sums and
 * the tree are exactly the AVX-512 kernel's; 2x2 sub-tiles (8 accumulators). */
static inline __attribute__((always_inline)) TARGET float avx2_tree(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);                                       /* l, l+8 */
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1)); /* l+4 */
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                       /* l+2 */
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));         /* l+1 */
}

static inline __attribute__((always_inline)) TARGET void
dot_tile_avx2(const float *const ar[4], const float *const br[4], int64_t k, float out[16])
{
    for (int r0 = 0; r0 < 4; r0 += 2)
        for (int q0 = 0; q0 < 4; q0 += 2) {
            __m256 lo[2][2], hi[2][2];
            for (int r = 0; r < 2; r++)
                for (int q = 0; q < 2; q++)
                    lo[r][q] = hi[r][q] = _mm256_setzero_ps();
            int64_t p = 0;
            for (; p + 16 <= k; p += 16) {
                __m256 al[2], ah[2];
                for (int r = 0; r < 2; r++) {
                    al[r] = _mm256_loadu_ps(ar[r0 + r] + p);
                    ah[r] = _mm256_loadu_ps(ar[r0 + r] + p + 8);
                }
                for (int q = 0; q < 2; q++) {
                    __m256 wl = _mm256_loadu_ps(br[q0 + q] + p), wh = _mm256_loadu_ps(br[q0 + q] + p + 8);
                    for (int r = 0; r < 2; r++) {
                        lo[r][q] = _mm256_fmadd_ps(al[r], wl, lo[r][q]);
                        hi[r][q] = _mm256_fmadd_ps(ah[r], wh, hi[r][q]);
                    }
                }
            }
            if (p < k) {
                int t = (int)(k - p);
                __m256i ml = M_FIRST(t < 8 ? t : 8), mh = M_FIRST(t > 8 ? t - 8 : 0);
                __m256 al[2], ah[2];
                for (int r = 0; r < 2; r++) {
                    al[r] = _mm256_maskload_ps(ar[r0 + r] + p, ml);
                    ah[r] = _mm256_maskload_ps(ar[r0 + r] + p + 8, mh);
                }
                for (int q = 0; q < 2; q++) {
                    __m256 wl = _mm256_maskload_ps(br[q0 + q] + p, ml);
                    __m256 wh = _mm256_maskload_ps(br[q0 + q] + p + 8, mh);
                    for (int r = 0; r < 2; r++) {
                        lo[r][q] = _mm256_fmadd_ps(al[r], wl, lo[r][q]);
                        hi[r][q] = _mm256_fmadd_ps(ah[r], wh, hi[r][q]);
                    }
                }
            }
            for (int r = 0; r < 2; r++)
                for (int q = 0; q < 2; q++)
                    out[4 * (r0 + r) + q0 + q] = avx2_tree(lo[r][q], hi[r][q]);
        }
}

#include "core/gemm_kernel.h" /* undefines the macros above */
#endif /* GEMM_X86 */

/* The epilogue of one element, as gemm_kernel.h's FN(store):
 * (C +) acc (+ bias[j]) (then ReLU, NaN kept). */
/* Portable C: the same per-element order (fmaf rounds once, like the
 * vector FMAs), for CPUs without AVX2 and as the reference of the tests. */
static void gemm_run_portable(const etc_gemm_t *g, int ks)
{
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            const float *a = g->a + i * g->ars, *b = g->b + j * g->bcs;
            float acc[KS_MAX] = {0};
            int64_t p = 0;
            if (ks > 1)
                for (; p + ks <= g->k; p += ks)
                    for (int s = 0; s < ks; s++)
                        acc[s] = fmaf(a[(p + s) * g->acs], b[(p + s) * g->brs], acc[s]);
            for (; p < g->k; p++)
                acc[0] = fmaf(a[p * g->acs], b[p * g->brs], acc[0]);
            float v = acc[0];
            for (int s = 1; s < ks; s++)
                v = v + acc[s];
            etc_gemm_store1(g, i, j, v);
        }
}

/* The dot kernel's order in C (gemm_kernel.h, FN(gemm_dot)): 16 partial sums,
 * lane l taking p = l mod 16, then the tree (l, l+8), (l, l+4), (l, l+2),
 * (l, l+1). */
static void gemm_dot_portable(const etc_gemm_t *g)
{
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            const float *a = g->a + i * g->ars, *b = g->b + j * g->bcs;
            float lane[16] = {0};
            for (int64_t p = 0; p < g->k; p++)
                lane[p % 16] = fmaf(a[p], b[p], lane[p % 16]);
            /* the vector kernels' last chunk: fma(0, 0, s) in the lanes past k */
            for (int64_t l = g->k % 16; l > 0 && l < 16; l++)
                lane[l] = lane[l] + 0.0f;
            for (int w = 8; w >= 1; w /= 2)
                for (int l = 0; l < w; l++)
                    lane[l] = lane[l] + lane[l + w];
            float v = lane[0];
            etc_gemm_store1(g, i, j, v);
        }
}

/* ------------------------------------------------------------------ */
/* instruction set, scratch                                             */

enum { ISA_PORTABLE, ISA_AVX2, ISA_AVX512 };

static int isa_detect_cpu(void)
{
    int best = ISA_PORTABLE;
#ifdef GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        best = ISA_AVX2;
    if (best == ISA_AVX2 && __builtin_cpu_supports("avx512f"))
        best = ISA_AVX512;
#endif
    return best;
}

/* The CPU has AVX-512F (false where the x86 kernels are not built): asked by
 * the AVX-512 rows outside the GEMMs (cross_entropy_avx512.c, tanh_avx512.c). */
bool etc_cpu_avx512f(void)
{
    static int v = -1;
    int c = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (c < 0) {
        c = 0;
#ifdef GEMM_X86
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx512f") ? 1 : 0;
#endif
        __atomic_store_n(&v, c, __ATOMIC_RELAXED);
    }
    return c == 1;
}

static int isa_detect(void)
{
    /* ET_GEMM_ISA=portable|avx2|avx512 lowers the choice (tests compare the
     * kernels' bits; it never raises it above what the CPU has) */
    int best = isa_detect_cpu();
    const char *e = getenv("ET_GEMM_ISA");
    int want = best;
    if (e && strcmp(e, "portable") == 0)
        want = ISA_PORTABLE;
    else if (e && strcmp(e, "avx2") == 0)
        want = ISA_AVX2;
    return want < best ? want : best;
}

static int isa_cached = -1;

static int isa(void)
{
    int v = __atomic_load_n(&isa_cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = isa_detect();
        __atomic_store_n(&isa_cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int etc_gemm_set_isa(const char *name)
{
    int best = isa_detect_cpu(), want;
    if (strcmp(name, "portable") == 0)
        want = ISA_PORTABLE;
    else if (strcmp(name, "avx2") == 0)
        want = ISA_AVX2;
    else if (strcmp(name, "avx512") == 0)
        want = ISA_AVX512;
    else
        return -1;
    if (want > best)
        return -1;
    __atomic_store_n(&isa_cached, want, __ATOMIC_RELAXED);
    return 0;
}

const char *etc_gemm_isa(void)
{
    static const char *const names[] = {"portable", "avx2", "avx512"};
    return names[isa()];
}

/* per-thread buffers (packed panels of B; Cᵀ of a transposed call), kept
 * across calls so a training step allocates nothing; freed at thread exit */
enum { SCRATCH_PANEL, SCRATCH_CT, SCRATCH_N };
typedef struct {
    float *p[SCRATCH_N];
    size_t cap[SCRATCH_N];
} scratch_t;
static _Thread_local scratch_t scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *unused)
{
    (void)unused;
    for (int i = 0; i < SCRATCH_N; i++) {
        free(scratch.p[i]);
        scratch.p[i] = NULL;
        scratch.cap[i] = 0;
    }
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free); }

/* unused when ET_GEMM_PORTABLE leaves only the portable kernels */
__attribute__((unused)) static float *scratch_get(int slot, size_t floats)
{
    if (floats <= scratch.cap[slot])
        return scratch.p[slot];
    size_t cap = floats < 4096 ? 4096 : floats;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap * sizeof(float)) != 0)
        return NULL;
    pthread_once(&scratch_once, scratch_key_init);
    free(scratch.p[slot]);
    scratch.p[slot] = p;
    scratch.cap[slot] = cap;
    pthread_setspecific(scratch_key, (void *)1);
    return p;
}

/* batch-invariant mode (ops.h), per thread */
static _Thread_local bool tl_invariant;

bool et_set_batch_invariant(bool on)
{
    bool prev = tl_invariant;
    tl_invariant = on;
    return prev;
}

bool et_is_batch_invariant(void) { return tl_invariant; }

unsigned etc_gemm_mode(void) { return tl_invariant ? ETC_GEMM_INVARIANT : 0u; }

/* ------------------------------------------------------------------ */
/* OpenBLAS                                                             */

/* sgemm needs one unit stride in each operand */
static bool blas_layout(int64_t rs, int64_t cs, int64_t rows, int64_t cols, CBLAS_TRANSPOSE *t,
                        int64_t *ld)
{
    if (cs == 1 || cols == 1) {
        *t = CblasNoTrans;
        *ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
        return *ld >= (cols > 1 ? cols : 1);
    }
    if (rs == 1 || rows == 1) {
        *t = CblasTrans;
        *ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
        return *ld >= (rows > 1 ? rows : 1);
    }
    return false;
}

static bool gemm_blas(const etc_gemm_t *g)
{
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    if (!blas_layout(g->ars, g->acs, g->m, g->k, &ta, &lda) ||
        !blas_layout(g->brs, g->bcs, g->k, g->n, &tb, &ldb) || g->ldc < g->n)
        return false;
    float beta = g->accumulate ? 1.0f : 0.0f;
    if (g->bias && !g->accumulate) {
        /* bias first, product added onto it (addmm's order) */
        for (int64_t i = 0; i < g->m; i++)
            memcpy(g->c + i * g->ldc, g->bias, (size_t)g->n * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta, tb, (int)g->m, (int)g->n, (int)g->k, 1.0f, g->a, (int)lda,
                g->b, (int)ldb, beta, g->c, (int)g->ldc);
    if (g->bias && g->accumulate)
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++)
                g->c[i * g->ldc + j] += g->bias[j];
    if (g->act == ETC_GEMM_RELU)
        for (int64_t i = 0; i < g->m; i++)
            etc_ew_row(EW_RELU, g->c + i * g->ldc, g->c + i * g->ldc, g->n);
    return true;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                             */

/* Our kernels where they beat OpenBLAS.  Measured per shape with
 * `et_bench --gemm-table` (docs/performance.md): below roughly this many
 * multiply-adds OpenBLAS's fixed cost dominates. */
#define OURS_MAX_MACS ((int64_t)1 << 22)
/* With one BLAS thread ours win up to here too: the Transformer step's
 * linear layers (512x64 by 64x192 / 64x256, 512x256 by 256x64, and their
 * backward, up to 2^23 multiply-adds) on the EPYC (Zen 4): step CPU time
 * -12% against OpenBLAS's COOPERLAKE kernels, -20% against the Haswell ones
 * it picks itself (docs/performance.md, Transformer row).  With more
 * threads OpenBLAS splits them and ours do not. */
#define OURS_MAX_MACS_1T ((int64_t)1 << 23)

/* With one BLAS thread (use_blas asks) on an AVX-512 CPU ours win at any size, except in
 * two corners, where OpenBLAS keeps them (session 13 on the Zen 4 EPYC,
 * ours against OpenBLAS's Cooperlake kernels, docs/performance.md "The
 * small-matrix path"):
 *   - A read across its rows (Gᵀ·X, acs != 1) with k > 512: each step down
 *     k is a new cache line, often a new page, and the strip of A a tile
 *     reads no longer stays in L2 beside B's panel -- 512x512x4096 0.60x,
 *     2048³ 0.49x, 512x512x16384 0.41x of OpenBLAS's speed (k <= 512:
 *     0.99-1.09x, 1024x1024x1024 1.00x);
 *   - x·Wᵀ (B packed from strided columns) with few rows and a short k, where
 *     the pack of a huge W is not paid back: 32x100000x64 0.85x, 64x100000x256
 *     0.91-0.95x (m >= 128 or k >= 512: 1.01-1.55x).
 * Elsewhere 1.02-1.55x: 1024³ 19.6 vs 21.5 ms, 256x4096x4096 80.9 vs 92.9,
 * the 784-1024-1024-10 b256 step's GEMMs, 8192x64x8192 1.5x.  On AVX2 CPUs
 * OpenBLAS keeps the large ones. */
static bool ours_any_size(const etc_gemm_t *g)
{
    if (isa() != ISA_AVX512)
        return false;
    if (g->acs != 1 && g->k > 512)
        return false;
    if (g->bcs != 1 && g->m < 128 && g->k < 512)
        return false;
    return true;
}

/* The small GEMMs where OpenBLAS's kernels beat ours on an AVX-512 CPU
 * (session 14 on the Zen 4 EPYC, Cooperlake kernels, one thread, et_bench
 * --gemm-table and single shapes; elsewhere the table favours ours), when
 * no epilogue of ours (bias, ReLU) would need a pass of its own:
 *   - Gᵀ·X (a weight gradient: A read across its rows) over at most 32 rows
 *     of batch, both sides at least 12 wide: OpenBLAS's time 0.87-0.96 of
 *     ours (64x13x32, 64x64x32, 200x30x32, 27x200x32 of the 13-64-64-1 and
 *     character models at batch 32; 0.77 accumulating 200x30x32), ~1.0 at
 *     13x13x32; ours stay faster for narrow ones (5x1x256 1.70x, 1x64x32
 *     1.10x) and longer batches (64x64x512 1.25x);
 *   - A·B plain (an input gradient G·W, attention's P·V) of 12 to 32 rows
 *     (32x64x64 0.95, 32x200x27 0.87, 32x30x200 0.97, 32x16x32 0.82-0.90;
 *     16x16x16 1.11, 17x64x64 1.01), or an outer product (k = 1: 256x5x1
 *     0.52, 1024x64x1 0.73, 32x64x1 0.77); from 64 rows ours (64x1024x10
 *     1.03x, 512x64x192 1.12x).
 * Steps, side by side: the character model 43.5 -> 41.1 µs, 1-5-1 3.65 ->
 * 3.47, 13-64-64-1 13.4 -> 13.1, the rest unchanged; the same loss bits.
 * Only with OpenBLAS's AVX-512 kernels (SkylakeX, Cooperlake, Sapphire
 * Rapids; its Haswell ones sum in other orders) and only for shapes where
 * they give our bits: no n = 1 (gemm_n1_ks4 splits k, and is faster), and no
 * plain product with k >= 32 whose n leaves a tail of 1-8 columns past a
 * multiple of 16.  tests/core/check_gemm.c (test_blas_small_same_bits)
 * compares every shape of a sweep that the rule routes with our kernels, bit
 * for bit.  Under 2^18 multiply-adds OpenBLAS runs them on one thread
 * whatever its thread count. */
/* OpenBLAS's AVX-512 sgemm kernels: the ones measured, and the ones whose
 * sums over k the same-bits conditions below were checked against */
static bool blas_avx512_kernels(void)
{
    static int ok = -1;
    int v = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *c = openblas_get_corename();
        v = c && (strcasecmp(c, "skylakex") == 0 || strcasecmp(c, "cooperlake") == 0 ||
                  strcasecmp(c, "sapphirerapids") == 0);
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v;
}

static bool blas_faster_small(const etc_gemm_t *g)
{
    if (isa() != ISA_AVX512 || g->m * g->n * g->k > ((int64_t)1 << 18))
        return false;
    if (g->bcs != 1 || g->bias || g->act != ETC_GEMM_NONE || g->n < 2)
        return false;
    if (!blas_avx512_kernels())
        return false;
    if (g->acs != 1)
        return g->k <= 32 && g->m >= 12 && g->n >= 12;
    if (g->k == 1)
        return true;
    /* from k = 32 OpenBLAS's kernel sums a tail of 1-8 columns in another
     * order than ours (a review's sweep: 16x100x64, 32x24x64 differ) */
    return g->m >= 12 && g->m <= 32 && g->n >= 12 &&
           (g->k < 32 || g->n % 16 == 0 || g->n % 16 > 8);
}

static bool use_blas(const etc_gemm_t *g, unsigned flags)
{
    if (flags & (ETC_GEMM_INVARIANT | ETC_GEMM_NO_BLAS))
        return false;
    if (flags & ETC_GEMM_BLAS)
        return true;
    if (blas_faster_small(g))
        return true;
    int64_t macs = g->m * g->n * g->k;
    if (macs <= OURS_MAX_MACS)
        return false;
    if (openblas_get_num_threads() != 1)
        return true;
    return macs > OURS_MAX_MACS_1T && !ours_any_size(g);
}

/* The tile kernel of the instruction set, B packed when that pays. */
static void run_tiles(const etc_gemm_t *g, int ks, int which)
{
#ifdef GEMM_X86
    /* pack B when its columns are strided, or when its rows are far apart
     * and enough rows of C reuse each panel (a copy per panel row) */
    float *buf = NULL;
    bool pack = g->bcs != 1 || (g->brs > 64 && g->m >= 24);
    if (which != ISA_PORTABLE && pack) {
        buf = scratch_get(SCRATCH_PANEL, (size_t)g->k * 64);
        if (!buf && g->bcs != 1)
            which = ISA_PORTABLE;   /* out of memory for the panel */
    }
    if (which == ISA_AVX512) {
        gemm_run_avx512(g, ks, buf);
        return;
    }
    if (which == ISA_AVX2) {
        gemm_run_avx2(g, ks, buf);
        return;
    }
#endif
    gemm_run_portable(g, ks);
}

bool etc_gemm_uses_blas(const etc_gemm_t *g, unsigned flags)
{
    CBLAS_TRANSPOSE t;
    int64_t ld;
    return g->m > 0 && g->n > 0 && g->k > 0 && use_blas(g, flags) &&
           blas_layout(g->ars, g->acs, g->m, g->k, &t, &ld) &&
           blas_layout(g->brs, g->bcs, g->k, g->n, &t, &ld) && g->ldc >= g->n;
}

void etc_gemm(const etc_gemm_t *g, unsigned flags)
{
    if (g->m <= 0 || g->n <= 0)
        return;
    if (g->k <= 0) {
        /* empty sum: C = (C +) 0 (+ bias), then the activation */
        etc_gemm_t z = *g;
        static const float zero = 0.0f;
        z.k = 1;
        z.a = &zero;
        z.ars = z.acs = 0;
        z.b = &zero;
        z.brs = z.bcs = 0;
        gemm_run_portable(&z, 1);
        return;
    }
    if (use_blas(g, flags) && gemm_blas(g))
        return;
    int which = isa();
    bool invariant = flags & ETC_GEMM_INVARIANT;
    /* invariant x·Wᵀ (a batching model's Linear layers): the dot kernel's
     * order for every m (gemm_inv.h).  Few rows read W in place (the tile
     * kernel transposed all of W at each call, ~2/3 of a one-row forward);
     * many rows transpose it 16 columns at a time, as the tile kernel does.
     * The order depends on the layout and k only, never on m or the ISA:
     * the bits of the dot kernel below, i.e. of the default mode's one-row
     * call.  AVX-512 CPUs run the AVX2 kernels for one row and for 16 or
     * more, the AVX-512 dot kernel (a 4x4 tile of dot products, W read
     * once per 4 rows) for 2-15: on the Zen 4 of session 10, two
     * 784-1024-1024-10 forwards at once (as a batching daemon's two
     * workers run them), µs per row: 1 row 142 dot / 135-138 few; 4-8 rows
     * 39-40 dot / 69-75 few (L2-bound); 32 rows 50-51 dot / 39-40 many
     * (packed); 64 rows 53-54 / 39-42 (the dot kernel streams the 7.4 MB
     * of W from L3 once per 4 rows, the packed panels once per 64):
     * docs/performance-http.md, session 10.  ETC_GEMM_DOT4 asks for the
     * ISA's dot kernel for every m (the tests compare the bits). */
    if (invariant && !(flags & ETC_GEMM_TILE) && g->acs == 1 && g->brs == 1 && g->k >= 16) {
#ifdef GEMM_X86
        if (which == ISA_AVX512 && (flags & ETC_GEMM_DOT4)) {
            gemm_dot_avx512(g);
            return;
        }
        if (which == ISA_AVX2 && (flags & ETC_GEMM_DOT4)) {
            gemm_dot_avx2(g);
            return;
        }
        if (which == ISA_AVX512 && g->m > 1 && g->m < ETC_INV_MANY_MIN_ROWS) {
            gemm_dot_avx512(g);
            return;
        }
        if (which != ISA_PORTABLE) {
            float *panels = g->m >= ETC_INV_MANY_MIN_ROWS
                                ? scratch_get(SCRATCH_PANEL, ETC_INV_MANY_SCRATCH(g))
                                : NULL;
            if (panels)
                etc_gemm_inv_many_avx2(g, panels);   /* g->bpack: W packed already */
            else
                etc_gemm_inv_few_avx2(g);
            return;
        }
#endif
        gemm_dot_portable(g);
        return;
    }
    /* one row or a few with both operands along k (x·Wᵀ): a packed panel of
     * B would cost as much as the product; the dot kernel reads both in
     * place (its order is batch-invariant, but the few-row case only is
     * taken here; invariant calls took the branch above) */
    if (!invariant && !(flags & ETC_GEMM_TILE) && g->acs == 1 && g->brs == 1 && g->k >= 16 &&
        g->m <= 4) {
#ifdef GEMM_X86
        if (which == ISA_AVX512 && (flags & ETC_GEMM_DOT4)) {
            gemm_dot_avx512(g);
            return;
        }
        if (which == ISA_AVX2 && (flags & ETC_GEMM_DOT4)) {
            gemm_dot_avx2(g);
            return;
        }
        if (which == ISA_AVX512 && g->m > 1) {
            gemm_dot_avx512(g);   /* 2-4 rows: 40-41 µs a row vs 65-73 (above) */
            return;
        }
        if (which != ISA_PORTABLE) {
            /* gemm_inv_few.c: the same order, so the same bits as
             * gemm_dot_avx2, whose 4x4 tile computes row 0 four times when
             * m = 1 (one row of the 784-1024-1024-10 forward ~2.5x
             * cheaper, docs/performance-http.md, session 9); one row on
             * AVX-512 CPUs too (default mode, two at once on session 10's
             * Zen 4: 129-135 µs against gemm_dot_avx512's 150-160) */
            etc_gemm_inv_few_avx2(g);
            return;
        }
#endif
        gemm_dot_portable(g);
        return;
    }
    /* a few columns and many rows (an outer product, dW of a narrow layer,
     * x·w for one output): most vector lanes of C would idle, so Cᵀ = Bᵀ·Aᵀ
     * is computed into scratch and stored back transposed.  Each element
     * is the same fma chain, so the bits (and batch invariance) are the
     * same as the direct way's. */
    /* k split for one or two rows with a long k (not batch-invariant) */
    int ks = !invariant && g->m <= 2 && g->n <= 16 && g->k >= 32 ? KS_MAX : 1;
#ifdef GEMM_X86
    /* one column of rows of at most 8 (Linear(5, 1)): 8 rows at a time
     * through an 8x8 transpose, the fma chain in the lanes */
    if (g->n == 1 && g->k <= 8 && g->acs == 1 && which != ISA_PORTABLE) {
        if (which == ISA_AVX512)
            gemm_n1_short_avx512(g);
        else
            gemm_n1_short_avx2(g);
        return;
    }
    /* one column of many rows with a long k (a Linear(k, 1)): the Cᵀ path's
     * k-split order below without its pack of A and transposed store
     * (gemm_n1_ks.c, the same bits) */
    if (!invariant && g->n == 1 && g->k >= 32 && g->m >= 16 && g->acs == 1 && g->brs == 1 &&
        which != ISA_PORTABLE) {
        etc_gemm_n1_ks4(g);
        return;
    }
    if (g->n <= 8 && g->k > 1 && (g->m >= 16 || (g->n == 1 && g->ars == 1)) &&
        which != ISA_PORTABLE) {
        float *t = scratch_get(SCRATCH_CT, (size_t)(g->m * g->n));
        if (t) {
            etc_gemm_t tg = {.m = g->n, .n = g->m, .k = g->k, .a = g->b, .ars = g->bcs,
                             .acs = g->brs, .b = g->a, .brs = g->acs, .bcs = g->ars, .c = t,
                             .ldc = g->m};
            run_tiles(&tg, !invariant && tg.m <= 2 && g->k >= 32 ? KS_MAX : 1, which);
            if (which == ISA_AVX512)
                ct_store_avx512(g, t);
            else
                ct_store_avx2(g, t);
            return;
        }
    }
    if (g->n == 1 && which != ISA_PORTABLE) {
        if (which == ISA_AVX512)
            gemm_n1_avx512(g);
        else
            gemm_n1_avx2(g);
        return;
    }
#endif
    run_tiles(g, ks, which);
}
