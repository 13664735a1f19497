/*
 * avx_transpose.h - the 8x8 float transpose of eight AVX rows, shared by the
 * GEMM kernels (gemm_kernel.h's tile packing, gemm_inv_many.c's panels).
 * Include only where <immintrin.h> and an x86-64 GNU compiler are in use;
 * AVX2 callers and AVX-512 callers (a superset) may both inline it.
 */
#ifndef ET_AVX_TRANSPOSE_H
#define ET_AVX_TRANSPOSE_H

#include <immintrin.h>

static inline __attribute__((always_inline, target("avx2,fma"))) void etc_t8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int q = 0; q < 4; q++) {
        t[2 * q] = _mm256_unpacklo_ps(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm256_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    for (int q = 0; q < 2; q++) {
        u[4 * q] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
    }
}

#endif
