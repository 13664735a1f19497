/* random.c - xoshiro256** generator and random tensors. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

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

void etc_dropout_mask(et_generator *g, float *mask, int64_t n, float keep, float scale,
                      const float *x, float *y)
{
    /* u32 < ceil(keep * 2^32) keeps with probability keep to within 2^-32;
     * two decisions a draw halve the generator's cost, which was the
     * largest single item of a Transformer training step (docs/performance.md) */
    uint64_t thr = (uint64_t)ceil((double)keep * 0x1.0p32);
    g = acquire(g);
    uint64_t st[4] = {g->s[0], g->s[1], g->s[2], g->s[3]};  /* in registers, not re-read */
    /* scale's bits or 0 by an AND: no branch to mispredict p of the time */
    union { float f; uint32_t u; } sc = {scale};
    uint32_t *mb = (uint32_t *)(void *)mask;
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t r = next_s(st);
        mb[i] = sc.u & -(uint32_t)((r >> 32) < thr);
        mb[i + 1] = sc.u & -(uint32_t)((r & 0xffffffffu) < thr);
    }
    if (i < n)
        mb[i] = sc.u & -(uint32_t)((next_s(st) >> 32) < thr);
    for (int k = 0; k < 4; k++)
        g->s[k] = st[k];
    release_gen(g);
    if (x)
        for (int64_t k = 0; k < n; k++)
            y[k] = x[k] * mask[k];
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
