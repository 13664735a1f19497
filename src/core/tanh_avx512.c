/*
 * tanh_avx512.c - etc_tanhf (core_internal.h) over a contiguous row with
 * AVX-512 intrinsics: the same IEEE operations in the same order (no FMA),
 * so the same bits as the scalar function and kernels.c's compiler-
 * vectorised row() -- in fewer instructions: the clamp of |x| to 9 is one
 * vminps (a NaN lane computes on 9 and is put back at the end, as the
 * scalar code's 0), the sign copies one vpternlogd each.  The char model's
 * Tanh over [32, 200] was ~9% of its training step in row()'s loop of ~50
 * instructions a vector (perf cpu-clock, Zen 4).
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

T512 __m512 tanh16(__m512 x)
{
    const __m512 ax = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
    /* min(|x|, 9): vminps returns its second operand (9) for a NaN lane */
    const __m512 ac = _mm512_min_ps(ax, _mm512_set1_ps(9.0f));
    const __m512 y2 = _mm512_mul_ps(_mm512_set1_ps(2.0f), ac);
    const __m512i n = _mm512_cvttps_epi32(
        _mm512_add_ps(_mm512_mul_ps(y2, _mm512_set1_ps(1.44269504088896341f)),
                      _mm512_set1_ps(0.5f)));
    const __m512 fn = _mm512_cvtepi32_ps(n);
    const __m512 r = _mm512_sub_ps(_mm512_sub_ps(y2, _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f))),
                                   _mm512_mul_ps(fn, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.9875691500e-4f), r),
                             _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    const __m512 s = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
    const __m512 em = _mm512_add_ps(
        _mm512_mul_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), s),
        _mm512_sub_ps(s, _mm512_set1_ps(1.0f)));
    __m512 y = copysign16(_mm512_div_ps(em, _mm512_add_ps(em, _mm512_set1_ps(2.0f))), x);
    /* saturate where PyTorch's tanhf does; NaN lanes are x */
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(8.664339742f), _CMP_GT_OQ),
                           copysign16(_mm512_set1_ps(1.0f), x));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

__attribute__((target("avx512f"))) void etc_tanh_avx512(float *o, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(o + i, tanh16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(o + i, k, tanh16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

#else
void etc_tanh_avx512(float *o, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        o[i] = etc_tanhf(x[i]);
}
#endif
