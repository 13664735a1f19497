/*
 * tanh_avx512.c - etc_tanhf (core_internal.h) over a contiguous row with
 * AVX-512 intrinsics: the same IEEE operations in the same order (no FMA),
 * so the same bits as the scalar function and kernels.c's compiler-
 * vectorised row() -- in fewer instructions: the clamp of |x| to 9 is one
 * vminps (a NaN lane computes on 9 and is put back at the end, as the
 * scalar code's 0), the sign copies one vpternlogd each -- and four
 * vectors at a time, interleaved (tanh16).  The char model's Tanh over
 * [32, 200] was ~9% of its training step in row()'s loop of ~50
 * instructions a vector (perf cpu-clock, Zen 4); one vector at a time here
 * it took 2.4 µs of a 25 µs step on the Zen 5 of session 15, four 1.7 µs.
 */
#include <stdint.h>

#include "core/core_internal.h"
#include "core/tanh_avx512.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define T512 __attribute__((always_inline, target("avx512f"))) static inline

/* sign bits from s, the rest from v: copysign(v, s), one vpternlogd (0xac: a ? c : b) */
T512 __m512 copysign16(__m512 v, __m512 s)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(v),
                                                         _mm512_castps_si512(s), 0xac));
}

/* tanh of the U vectors v[0..U-1] in place, each step over all of them
 * before the next (U is a constant after inlining).  One vector's ~30
 * operations are a chain ~100 cycles long; loop iterations of one vector
 * overlapped only ~4 deep (the FP scheduler fills with the chain's waiting
 * operations), 26 cycles a vector on the Zen 5 of session 15; four chains
 * interleaved keep its pipes busy.  Each lane's operations are unchanged. */
#define EACH for (int j = 0; j < U; j++)
T512 void tanh16(__m512 *v, const int U)
{
    __m512 ax[4], r[4], p[4], s[4];
    __m512i n[4];
    EACH ax[j] = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v[j]), _mm512_set1_epi32(0x7fffffff)));
    /* min(|x|, 9): vminps returns its second operand (9) for a NaN lane */
    EACH r[j] = _mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_min_ps(ax[j], _mm512_set1_ps(9.0f)));
    EACH n[j] = _mm512_cvttps_epi32(
        _mm512_add_ps(_mm512_mul_ps(r[j], _mm512_set1_ps(1.44269504088896341f)),
                      _mm512_set1_ps(0.5f)));
    EACH {
        const __m512 fn = _mm512_cvtepi32_ps(n[j]);
        r[j] = _mm512_sub_ps(_mm512_sub_ps(r[j], _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f))),
                             _mm512_mul_ps(fn, _mm512_set1_ps(-2.12194440e-4f)));
    }
    EACH p[j] = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.9875691500e-4f), r[j]),
                              _mm512_set1_ps(1.3981999507e-3f));
    EACH p[j] = _mm512_add_ps(_mm512_mul_ps(p[j], r[j]), _mm512_set1_ps(8.3334519073e-3f));
    EACH p[j] = _mm512_add_ps(_mm512_mul_ps(p[j], r[j]), _mm512_set1_ps(4.1665795894e-2f));
    EACH p[j] = _mm512_add_ps(_mm512_mul_ps(p[j], r[j]), _mm512_set1_ps(1.6666665459e-1f));
    EACH p[j] = _mm512_add_ps(_mm512_mul_ps(p[j], r[j]), _mm512_set1_ps(5.0000001201e-1f));
    EACH s[j] = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(n[j], _mm512_set1_epi32(127)), 23));
    EACH p[j] = _mm512_add_ps(   /* em = expm1(2|x|) */
        _mm512_mul_ps(_mm512_add_ps(_mm512_mul_ps(p[j], _mm512_mul_ps(r[j], r[j])), r[j]), s[j]),
        _mm512_sub_ps(s[j], _mm512_set1_ps(1.0f)));
    EACH {
        __m512 y = copysign16(_mm512_div_ps(p[j], _mm512_add_ps(p[j], _mm512_set1_ps(2.0f))), v[j]);
        /* saturate where PyTorch's tanhf does; NaN lanes are x */
        y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(ax[j], _mm512_set1_ps(8.664339742f), _CMP_GT_OQ),
                               copysign16(_mm512_set1_ps(1.0f), v[j]));
        v[j] = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(v[j], v[j], _CMP_UNORD_Q), v[j]);
    }
}
#undef EACH

__attribute__((target("avx512f"))) void etc_tanh_avx512(float *o, const float *x, int64_t n)
{
    int64_t i = 0;
    __m512 v[4];
    for (; i + 64 <= n; i += 64) {
        for (int j = 0; j < 4; j++)
            v[j] = _mm512_loadu_ps(x + i + 16 * j);
        tanh16(v, 4);
        for (int j = 0; j < 4; j++)
            _mm512_storeu_ps(o + i + 16 * j, v[j]);
    }
    for (; i + 16 <= n; i += 16) {
        v[0] = _mm512_loadu_ps(x + i);
        tanh16(v, 1);
        _mm512_storeu_ps(o + i, v[0]);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        v[0] = _mm512_maskz_loadu_ps(k, x + i);
        tanh16(v, 1);
        _mm512_mask_storeu_ps(o + i, k, v[0]);
    }
}

/* o = g * (1 - y * y), kernels.c's EW_TANH_B expression (no FMA: the same
 * bits), four vectors an iteration: row()'s generic loop reloaded its
 * pointers from the stack each vector (0.49 µs of the char step for
 * [32, 200]) */
__attribute__((target("avx512f"))) void etc_tanh_back_avx512(float *o, const float *g,
                                                             const float *y, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 4; j++) {
            const __m512 b = _mm512_loadu_ps(y + i + 16 * j);
            _mm512_storeu_ps(o + i + 16 * j,
                             _mm512_mul_ps(_mm512_loadu_ps(g + i + 16 * j),
                                           _mm512_sub_ps(one, _mm512_mul_ps(b, b))));
        }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 b = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(o + i, k,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i),
                                            _mm512_sub_ps(one, _mm512_mul_ps(b, b))));
    }
}

#else
void etc_tanh_avx512(float *o, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        o[i] = etc_tanhf(x[i]);
}

void etc_tanh_back_avx512(float *o, const float *g, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        o[i] = g[i] * (1.0f - y[i] * y[i]);
}
#endif
