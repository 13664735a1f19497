/*
 * gemm_dot_rows.c - the dot kernel's order (gemm_kernel.h, FN(gemm_dot))
 * for many rows: C = A·B with both operands along k in memory (x·Wᵀ:
 * acs == 1, brs == 1), each element the 16 partial sums of lane l = p mod
 * 16 in order, then the fixed tree (l, l+8), (l, l+4), (l, l+2), (l, l+1).
 *
 * Why: a batching model's forward runs batch-invariant (etc_gemm's
 * ETC_GEMM_INVARIANT), and before this the invariant x·Wᵀ went to the tile
 * kernel, which packs (transposes) every 16-column panel of Wᵀ at each call:
 * the 784-1024-1024-10 forward paid that 7.4 MB transpose per batch, so one
 * row alone cost 520 µs invariant against 390-490 µs for the default mode's
 * one-row dot kernel (this VM, AVX2; docs/performance-http.md).  The dot
 * order reads W's rows in place, and its bits depend on k only, so a row's
 * result is the same alone (where the default mode's dot kernel computes
 * it) and in any batch.
 *
 * AVX2 (16 ymm registers): a tile of R = 3 rows of A x Q = 4 rows of W
 * holds 12 accumulators of 8 lanes, so the 16 lanes of each element are
 * summed in two passes over k -- lanes 0-7 (p mod 16 < 8), then lanes 8-15
 * -- each pass 3 loads of A and 4 of W for 12 FMAs (the 2x2 sub-tiles of
 * dot_tile_avx2 take 8 loads for 8 FMAs, and were slower than the packed
 * tile kernel from 8 rows up).  Loop order: each group of 4 rows of W
 * (12.5 kB at k = 784, in L1) is applied to every row of A before the
 * next, so W is read from memory once per call whatever m is.  Lanes past
 * k are loaded as 0 and still FMA'd (as dot_tile_avx2 does), so the bits
 * are exactly gemm_dot_avx2's (and its AVX-512 and portable twins').
 */
#include "core/gemm_inv.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET

enum { RMAX = 3, QMAX = 4 };

INLINE __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* One pass (lanes 0-7 when off == 0, 8-15 when off == 8) of an r x q tile
 * over k: acc[i][j] = sum over chunks of A(i, 16c + off + l) * W(j, ...). */
INLINE void pass(const int r, const int q, const float *const a[RMAX],
                 const float *const w[QMAX], int64_t k, int off, __m256 acc[RMAX][QMAX])
{
#pragma GCC unroll 4
    for (int i = 0; i < RMAX; i++)
#pragma GCC unroll 4
        for (int j = 0; j < QMAX; j++)
            acc[i][j] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m256 av[RMAX];
#pragma GCC unroll 4
        for (int i = 0; i < RMAX; i++)
            if (i < r)
                av[i] = _mm256_loadu_ps(a[i] + p + off);
#pragma GCC unroll 4
        for (int j = 0; j < QMAX; j++) {
            if (j < q) {
                __m256 wv = _mm256_loadu_ps(w[j] + p + off);
#pragma GCC unroll 4
                for (int i = 0; i < RMAX; i++)
                    if (i < r)
                        acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
            }
        }
    }
    if (p < k) {
        int t = (int)(k - p) - off;
        __m256i mk = first_lanes(t < 0 ? 0 : t > 8 ? 8 : t);
        __m256 av[RMAX];
#pragma GCC unroll 4
        for (int i = 0; i < RMAX; i++)
            if (i < r)
                av[i] = _mm256_maskload_ps(a[i] + p + off, mk);
#pragma GCC unroll 4
        for (int j = 0; j < QMAX; j++) {
            if (j < q) {
                __m256 wv = _mm256_maskload_ps(w[j] + p + off, mk);
#pragma GCC unroll 4
                for (int i = 0; i < RMAX; i++)
                    if (i < r)
                        acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
            }
        }
    }
}

/* dot_tile_avx2's tree: (lo + hi) is (l, l+8), then l+4, l+2, l+1 */
INLINE float tree(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* The r x q tile at rows i0.., columns j0.. of C, with the epilogue. */
INLINE void tile(const int r, const int q, const etc_gemm_t *g, int64_t i0, int64_t j0)
{
    const float *a[RMAX], *w[QMAX];
    for (int i = 0; i < RMAX; i++)
        a[i] = g->a + (i0 + (i < r ? i : 0)) * g->ars;
    for (int j = 0; j < QMAX; j++)
        w[j] = g->b + (j0 + (j < q ? j : 0)) * g->bcs;
    __m256 lo[RMAX][QMAX], hi[RMAX][QMAX];
    pass(r, q, a, w, g->k, 0, lo);
    pass(r, q, a, w, g->k, 8, hi);
    for (int i = 0; i < r; i++) {
        for (int j = 0; j < q; j++)
            etc_gemm_store1(g, i0 + i, j0 + j, tree(lo[i][j], hi[i][j]));
    }
}

/* every row of A against columns j0 .. j0+q-1 */
INLINE void column_group(const int q, const etc_gemm_t *g, int64_t j0)
{
    int64_t i0 = 0;
    for (; i0 + RMAX <= g->m; i0 += RMAX)
        tile(RMAX, q, g, i0, j0);
    if (g->m - i0 == 2)
        tile(2, q, g, i0, j0);
    else if (g->m - i0 == 1)
        tile(1, q, g, i0, j0);
}

TARGET void etc_gemm_inv_few_avx2(const etc_gemm_t *g)
{
    int64_t j0 = 0;
    for (; j0 + QMAX <= g->n; j0 += QMAX)
        column_group(QMAX, g, j0);
    switch ((int)(g->n - j0)) {
    case 3: column_group(3, g, j0); break;
    case 2: column_group(2, g, j0); break;
    case 1: column_group(1, g, j0); break;
    default: break;
    }
}
#endif
