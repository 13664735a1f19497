/* random.c - xoshiro256** generator and random tensors. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

struct et_generator {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed_state(et_generator *g, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next_s(uint64_t *restrict s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static inline uint64_t next(et_generator *g) { return next_s(g->s); }

et_generator *et_generator_new(uint64_t seed)
{
    et_generator *g = malloc(sizeof *g);
    if (!g) {
        et_set_error(ET_ERR_NOMEM, "generator_new: out of memory");
        return NULL;
    }
    seed_state(g, seed);
    return g;
}

static et_generator default_gen;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void) { seed_state(&default_gen, 0); }

et_generator *et_default_generator(void)
{
    pthread_once(&default_once, default_init);
    return &default_gen;
}

void et_manual_seed(uint64_t seed)
{
    et_generator *g = et_default_generator();
    pthread_mutex_lock(&default_lock);
    seed_state(g, seed);
    pthread_mutex_unlock(&default_lock);
}

void et_generator_free(et_generator *g)
{
    if (g && g != &default_gen)
        free(g);
}

/* The default generator is shared by threads: hold its lock while used. */
static et_generator *acquire(et_generator *g)
{
    if (!g)
        g = et_default_generator();
    if (g == &default_gen)
        pthread_mutex_lock(&default_lock);
    return g;
}

static void release_gen(et_generator *g)
{
    if (g == &default_gen)
        pthread_mutex_unlock(&default_lock);
}

uint64_t et_generator_next(et_generator *g)
{
    g = acquire(g);
    uint64_t r = next(g);
    release_gen(g);
    return r;
}

static inline double u53(et_generator *g) { return (double)(next(g) >> 11) * 0x1.0p-53; }
static inline float u24(et_generator *g) { return (float)(next(g) >> 40) * 0x1.0p-24f; }

double et_generator_uniform(et_generator *g)
{
    g = acquire(g);
    double r = u53(g);
    release_gen(g);
    return r;
}

/* 16 xoshiro128++ streams side by side (what the vectoriser makes one
 * AVX-512 register of, or two AVX2 ones): st[w][l] is word w of lane l. */
ETC_CLONES
static void lanes_fill(uint32_t (*restrict st)[16], float *restrict mask, int64_t n,
                       uint32_t thr, uint32_t sc, const float *restrict x, float *restrict y)
{
    uint32_t s0[16], s1[16], s2[16], s3[16], r[16];
    for (int l = 0; l < 16; l++) {
        s0[l] = st[0][l];
        s1[l] = st[1][l];
        s2[l] = st[2][l];
        s3[l] = st[3][l];
    }
    for (int64_t i = 0; i < n; i += 16) {
        for (int l = 0; l < 16; l++) {
            uint32_t a = s0[l] + s3[l];
            r[l] = ((a << 7) | (a >> 25)) + s0[l];
            uint32_t t = s1[l] << 9;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = (s3[l] << 11) | (s3[l] >> 21);
        }
        /* scale's bits or 0 by an AND: no branch to mispredict p of the time;
         * r < thr as a signed compare of both offset by 2^31 (the vectoriser
         * scalarises the unsigned one) */
        int32_t ts = (int32_t)(thr ^ 0x80000000u);
        union { uint32_t u[16]; float f[16]; } km;
        for (int l = 0; l < 16; l++)
            km.u[l] = sc & (uint32_t)-(int32_t)((int32_t)(r[l] ^ 0x80000000u) < ts);
        int64_t m = n - i < 16 ? n - i : 16;
        if (m == 16) {
            for (int l = 0; l < 16; l++)
                mask[i + l] = km.f[l];
            if (x)
                for (int l = 0; l < 16; l++)
                    y[i + l] = x[i + l] * km.f[l];
        } else {
            for (int64_t l = 0; l < m; l++)
                mask[i + l] = km.f[l];
            if (x)
                for (int64_t l = 0; l < m; l++)
                    y[i + l] = x[i + l] * km.f[l];
        }
    }
}

void etc_dropout_mask(et_generator *g, float *mask, int64_t n, float keep, float scale,
                      const float *x, float *y)
{
    /* Element i is kept when lane i % 16's (i / 16)-th 32-bit output is below
     * ceil(keep * 2^32) (probability keep to within 2^-32).  The 16 lanes are
     * xoshiro128++ streams seeded by splitmix64 from two draws of g, so a
     * call advances g by two draws whatever n is, and the same generator
     * state gives the same mask.  One serial xoshiro256** draw per two
     * elements was ~11% of a Transformer training step; the lanes run 16
     * wide. */
    double t = ceil((double)keep * 0x1.0p32);
    union { float f; uint32_t u; } sc = {scale};
    g = acquire(g);
    uint64_t seed = next(g);
    seed ^= rotl(next(g), 32) * 0x9e3779b97f4a7c15ULL;
    release_gen(g);
    uint32_t st[4][16];
    for (int l = 0; l < 16; l++)
        for (int w = 0; w < 4; w += 2) {
            uint64_t z = splitmix64(&seed);
            st[w][l] = (uint32_t)(z >> 32);
            st[w + 1][l] = (uint32_t)z | (w == 0);   /* never the all-zero state */
        }
    if (t >= 0x1.0p32) {   /* keep within 2^-33 of 1: every element */
        for (int64_t i = 0; i < n; i++)
            mask[i] = scale;
        if (x)
            for (int64_t k = 0; k < n; k++)
                y[k] = x[k] * scale;
    } else if (strcmp(etc_gemm_isa(), "avx2") != 0 ||
               !etc_dropout_lanes_avx2(st, mask, n, (uint32_t)t, sc.u, x, y)) {
        lanes_fill(st, mask, n, (uint32_t)t, sc.u, x, y);
    }
}

void et_generator_get_state(const et_generator *g, uint64_t state[4])
{
    if (!state)
        return;
    if (!g)
        g = et_default_generator();
    for (int i = 0; i < 4; i++)
        state[i] = g->s[i];
}

void et_generator_set_state(et_generator *g, const uint64_t state[4])
{
    if (!state)
        return;
    g = acquire(g);
    for (int i = 0; i < 4; i++)
        g->s[i] = state[i];
    if (!(g->s[0] | g->s[1] | g->s[2] | g->s[3]))
        g->s[0] = 1; /* the all-zero state is a fixed point */
    release_gen(g);
}

et_tensor *et_rand(et_generator *g, const int64_t *shape, int ndim)
{
    return et_uniform(g, shape, ndim, 0.0, 1.0);
}

et_tensor *et_uniform(et_generator *g, const int64_t *shape, int ndim, double low, double high)
{
    if (!etc_check_shape(shape, ndim, "uniform"))
        return NULL;
    if (!(low <= high) || !isfinite(low) || !isfinite(high)) {
        et_set_error(ET_ERR_ARG, "uniform: expects low <= high and finite bounds, got [%g, %g)",
                     low, high);
        return NULL;
    }
    et_tensor *t = etc_alloc(shape, ndim);
    if (!t)
        return NULL;
    g = acquire(g);
    float lo = (float)low, span = (float)(high - low);
    for (int64_t i = 0; i < t->numel; i++) {
        float v = lo + span * u24(g);
        if (v >= (float)high && high > low)
            v = nextafterf((float)high, -INFINITY);
        t->data[i] = v;
    }
    release_gen(g);
    return etc_pooled(t);
}

et_tensor *et_randn(et_generator *g, const int64_t *shape, int ndim)
{
    if (!etc_check_shape(shape, ndim, "randn"))
        return NULL;
    et_tensor *t = etc_alloc(shape, ndim);
    if (!t)
        return NULL;
    g = acquire(g);
    for (int64_t i = 0; i < t->numel; i += 2) {
        double u1 = 1.0 - u53(g); /* (0, 1] keeps log finite */
        double u2 = u53(g);
        double r = sqrt(-2.0 * log(u1));
        t->data[i] = (float)(r * cos(2.0 * M_PI * u2));
        if (i + 1 < t->numel)
            t->data[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
    release_gen(g);
    return etc_pooled(t);
}
