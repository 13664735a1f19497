/*
 * random_avx2.c - the dropout mask's 16 xoshiro128++ lanes (random.c's
 * lanes_fill) written out in AVX2 intrinsics: two ymm registers per state
 * word.
 *
 * Why: gcc's AVX2 clone of the loop form in random.c vectorises the
 * generator but leaves the keep test (a compare and a select per lane)
 * scalar, through vpextrd / setg / vmovd per lane: on this session's Zen 3
 * (AVX2, no AVX-512) that was 10% of the Transformer training step's
 * instructions and ~7% of its time (docs/performance.md, session 9).  The
 * AVX-512 and baseline clones stay the loop.  Integer operations and one
 * float product per element: the same mask and product bits as every clone
 * (tests/core/check_random.c compares them with a scalar reference).
 */
#include "core/core_internal.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline)) TARGET

INLINE __m256i rotl(__m256i x, int k)
{
    return _mm256_or_si256(_mm256_slli_epi32(x, k), _mm256_srli_epi32(x, 32 - k));
}

/* One step of 8 lanes: their outputs, the state advanced. */
INLINE __m256i step(__m256i *s0, __m256i *s1, __m256i *s2, __m256i *s3)
{
    __m256i r = _mm256_add_epi32(rotl(_mm256_add_epi32(*s0, *s3), 7), *s0);
    __m256i t = _mm256_slli_epi32(*s1, 9);
    *s2 = _mm256_xor_si256(*s2, *s0);
    *s3 = _mm256_xor_si256(*s3, *s1);
    *s1 = _mm256_xor_si256(*s1, *s2);
    *s0 = _mm256_xor_si256(*s0, *s3);
    *s2 = _mm256_xor_si256(*s2, t);
    *s3 = rotl(*s3, 11);
    return r;
}

TARGET bool etc_dropout_lanes_avx2(uint32_t (*st)[16], float *mask, int64_t n, uint32_t thr,
                                   uint32_t sc, const float *x, float *y)
{
    __m256i a0 = _mm256_loadu_si256((const __m256i *)st[0]);
    __m256i a1 = _mm256_loadu_si256((const __m256i *)st[1]);
    __m256i a2 = _mm256_loadu_si256((const __m256i *)st[2]);
    __m256i a3 = _mm256_loadu_si256((const __m256i *)st[3]);
    __m256i b0 = _mm256_loadu_si256((const __m256i *)(st[0] + 8));
    __m256i b1 = _mm256_loadu_si256((const __m256i *)(st[1] + 8));
    __m256i b2 = _mm256_loadu_si256((const __m256i *)(st[2] + 8));
    __m256i b3 = _mm256_loadu_si256((const __m256i *)(st[3] + 8));
    /* r < thr as a signed compare of both offset by 2^31 */
    const __m256i off = _mm256_set1_epi32((int32_t)0x80000000u);
    const __m256i ts = _mm256_set1_epi32((int32_t)(thr ^ 0x80000000u));
    const __m256 scv = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t)sc));
    for (int64_t i = 0; i < n; i += 16) {
        __m256i ra = step(&a0, &a1, &a2, &a3), rb = step(&b0, &b1, &b2, &b3);
        /* scale's bits where kept, else 0 */
        __m256 ka = _mm256_and_ps(scv, _mm256_castsi256_ps(
                                           _mm256_cmpgt_epi32(ts, _mm256_xor_si256(ra, off))));
        __m256 kb = _mm256_and_ps(scv, _mm256_castsi256_ps(
                                           _mm256_cmpgt_epi32(ts, _mm256_xor_si256(rb, off))));
        if (n - i >= 16) {
            _mm256_storeu_ps(mask + i, ka);
            _mm256_storeu_ps(mask + i + 8, kb);
            if (x) {
                _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), ka));
                _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(_mm256_loadu_ps(x + i + 8), kb));
            }
        } else {
            float k[16];
            _mm256_storeu_ps(k, ka);
            _mm256_storeu_ps(k + 8, kb);
            for (int64_t l = 0; l < n - i; l++) {
                mask[i + l] = k[l];
                if (x)
                    y[i + l] = x[i + l] * k[l];
            }
        }
    }
    return true;
}
#else
bool etc_dropout_lanes_avx2(uint32_t (*st)[16], float *mask, int64_t n, uint32_t thr,
                            uint32_t sc, const float *x, float *y)
{
    return false;
}
#endif
