/*
 * bench_div.c - et_bench's divider floor of the Adam update: the square
 * root and the divisions Adam does per parameter, alone (two with AVX; one
 * with AVX-512, whose loop divides by the bias correction with FMAs).
 *
 * PyTorch's Adam (and ours, bit for bit: src/nn/optim_simd.c) computes
 * p += -lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps) per parameter: one square
 * root and two divisions that cannot become multiplications by a reciprocal
 * without changing the rounding (the one by the constant bias correction can
 * become a multiplication and two FMAs that round as the division does: the
 * AVX-512 loop's div_bc512).  On a CPU whose divider is slower than its memory
 * path for a cache-resident model (Zen 3: a 256-bit vsqrtps or vdivps
 * issues every few cycles, on one divider), that is the update's limit, not
 * the bytes it moves.  This floor runs exactly those operations over
 * as many parameters as the 13-64-64-1 model has, with AVX-512 or AVX (the
 * widest the CPU has, as the update), independent
 * vectors (nothing to wait on but the divider), in cache, and writes one
 * float per parameter so the compiler keeps them.
 */
#include <math.h>
#include <stdlib.h>

#include "bench_div.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DIV_X86 1
#endif

enum { NP_13_64_64_1 = 13 * 64 + 64 + 64 * 64 + 64 + 64 + 1 };

typedef struct {
    float *m, *v, *out;
    int64_t n;
} div_state;

void div_teardown(void *p)
{
    div_state *s = p;
    if (s == NULL)
        return;
    free(s->m);
    free(s->v);
    free(s->out);
    free(s);
}

void *div_adam_setup(void)
{
    div_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->n = NP_13_64_64_1;
    s->m = malloc((size_t)s->n * sizeof(float));
    s->v = malloc((size_t)s->n * sizeof(float));
    s->out = malloc((size_t)s->n * sizeof(float));
    if (s->m == NULL || s->v == NULL || s->out == NULL) {
        div_teardown(s);
        et_set_error(ET_ERR_NOMEM, "div: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < s->n; i++) {   /* an Adam step's magnitudes, all finite */
        s->m[i] = 1e-3f * (float)((i % 17) - 8);
        s->v[i] = 1e-6f * (float)(1 + i % 13);
    }
    return s;
}

#ifdef DIV_X86
/* AVX-512: the update divides by the bias correction with FMAs (optim_simd.c
 * div_bc512), so its divider work is the square root and m / denom */
__attribute__((target("avx512f"))) static void div_avx512(const float *m, const float *v,
                                                          float *out, int64_t n, float bc2s,
                                                          float eps)
{
    const __m512 vr = _mm512_set1_ps(1.0f / bc2s), ve = _mm512_set1_ps(eps);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 d = _mm512_fmadd_ps(_mm512_sqrt_ps(_mm512_loadu_ps(v + j)), vr, ve);
        _mm512_storeu_ps(out + j, _mm512_div_ps(_mm512_loadu_ps(m + j), d));
    }
    for (; j < n; j++)
        out[j] = m[j] / (sqrtf(v[j]) / bc2s + eps);
}

__attribute__((target("avx"))) static void div_avx(const float *m, const float *v, float *out,
                                                   int64_t n, float bc2s, float eps)
{
    const __m256 vb = _mm256_set1_ps(bc2s), ve = _mm256_set1_ps(eps);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 d = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(_mm256_loadu_ps(v + j)), vb), ve);
        _mm256_storeu_ps(out + j, _mm256_div_ps(_mm256_loadu_ps(m + j), d));
    }
    for (; j < n; j++)
        out[j] = m[j] / (sqrtf(v[j]) / bc2s + eps);
}
#endif

static void div_scalar(const float *m, const float *v, float *out, int64_t n, float bc2s,
                       float eps)
{
    for (int64_t j = 0; j < n; j++)
        out[j] = m[j] / (sqrtf(v[j]) / bc2s + eps);
}

et_status div_run(void *p, long iters, double *value)
{
    div_state *s = p;
    const float bc2s = sqrtf(1.0f - 0.999f), eps = 1e-8f;   /* step 1's bias correction */
#ifdef DIV_X86
    int avx512 = __builtin_cpu_supports("avx512f"), avx = __builtin_cpu_supports("avx");
#endif
    for (long i = 0; i < iters; i++) {
#ifdef DIV_X86
        if (avx512) {   /* the widest vectors, as the update itself uses */
            div_avx512(s->m, s->v, s->out, s->n, bc2s, eps);
            __asm__ volatile("" : : "r"(s->out) : "memory");
            continue;
        }
        if (avx) {
            div_avx(s->m, s->v, s->out, s->n, bc2s, eps);
            __asm__ volatile("" : : "r"(s->out) : "memory");
            continue;
        }
#endif
        div_scalar(s->m, s->v, s->out, s->n, bc2s, eps);
        __asm__ volatile("" : : "r"(s->out) : "memory");
    }
    *value = (double)s->out[s->n - 1];
    return ET_OK;
}
