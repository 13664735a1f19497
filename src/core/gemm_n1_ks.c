/*
 * gemm_n1_ks.c - x·wᵀ for one output column of many rows, in the k-split
 * order (gemm_n1.h).
 *
 * Why: the last Linear(64, 1) of 13-64-64-1 on the HTTP rows' 1024 rows is
 * m = 1024, n = 1, k = 64.  etc_gemm computed it as Cᵀ = wᵀ·Xᵀ with the tile
 * kernel: an 8x8-transposing pack of all of X (256 kB) into panels, one row
 * of tiles with the k split, then a transposed store -- 8.1 µs for 65,536
 * multiply-adds (16 GFLOP/s, against ~100 for the layer before it; OpenBLAS
 * 6.1 µs; this Zen 4, AVX-512).  The split's four chains are the four lanes
 * of an xmm register: lane s of row i's accumulator takes x[i][4t + s] *
 * w[4t + s] for t = 0, 1, ... in order, one 16-byte load and one FMA per
 * four multiply-adds, X read in place; eight rows at a time keep eight
 * independent chains in flight (the FMA's latency), and the four lanes are
 * summed in order through a 4x4 transpose, four rows a vector.
 */
#include "core/gemm_n1.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET

enum { ROWS = 8 };

/* The tail p = k4 .. k-1 on lane 0 of acc (chain 0), in order. */
INLINE __m128 tail(__m128 acc, const float *a, const float *w, int64_t k4, int64_t k)
{
    for (int64_t p = k4; p < k; p++) {
        __m128 t = _mm_fmadd_ss(_mm_set_ss(a[p]), _mm_set_ss(w[p]), acc);
        acc = _mm_move_ss(acc, t);
    }
    return acc;
}

/* Rows i0 .. i0+3 from their accumulators: lanes summed in chain order,
 * then the epilogue, as gemm.c's ct_store does it. */
INLINE void finish4(const etc_gemm_t *g, int64_t i0, __m128 r0, __m128 r1, __m128 r2, __m128 r3)
{
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);   /* r_s: chain s of the four rows */
    __m128 v = _mm_add_ps(_mm_add_ps(_mm_add_ps(r0, r1), r2), r3);
    float *c = g->c + i0 * g->ldc;
    const int64_t ldc = g->ldc;
    if (g->accumulate)
        v = _mm_add_ps(_mm_setr_ps(c[0], c[ldc], c[2 * ldc], c[3 * ldc]), v);
    if (g->bias)
        v = _mm_add_ps(v, _mm_set1_ps(g->bias[0]));
    if (g->act == ETC_GEMM_RELU)
        v = _mm_and_ps(v, _mm_or_ps(_mm_cmpgt_ps(v, _mm_setzero_ps()), _mm_cmpunord_ps(v, v)));
    if (ldc == 1) {
        _mm_storeu_ps(c, v);
        return;
    }
    float o[4];
    _mm_storeu_ps(o, v);
    for (int q = 0; q < 4; q++)
        c[q * ldc] = o[q];
}

TARGET void etc_gemm_n1_ks4(const etc_gemm_t *g)
{
    const int64_t m = g->m, k = g->k, k4 = k & ~(int64_t)3, ars = g->ars;
    const float *w = g->b;
    int64_t i0 = 0;
    for (; i0 + ROWS <= m; i0 += ROWS) {
        const float *a = g->a + i0 * ars;
        __m128 acc[ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            acc[r] = _mm_setzero_ps();
        for (int64_t p = 0; p < k4; p += 4) {
            const __m128 wv = _mm_loadu_ps(w + p);
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++)
                acc[r] = _mm_fmadd_ps(_mm_loadu_ps(a + r * ars + p), wv, acc[r]);
        }
        if (k4 < k)
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++)
                acc[r] = tail(acc[r], a + r * ars, w, k4, k);
        finish4(g, i0, acc[0], acc[1], acc[2], acc[3]);
        finish4(g, i0 + 4, acc[4], acc[5], acc[6], acc[7]);
    }
    /* the last m mod 8 rows, four (padded) at a time */
    for (; i0 < m; i0 += 4) {
        __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
        int nr = m - i0 < 4 ? (int)(m - i0) : 4;
        for (int r = 0; r < nr; r++) {
            const float *a = g->a + (i0 + r) * ars;
            for (int64_t p = 0; p < k4; p += 4)
                acc[r] = _mm_fmadd_ps(_mm_loadu_ps(a + p), _mm_loadu_ps(w + p), acc[r]);
            acc[r] = tail(acc[r], a, w, k4, k);
        }
        if (nr == 4) {
            finish4(g, i0, acc[0], acc[1], acc[2], acc[3]);
            continue;
        }
        _MM_TRANSPOSE4_PS(acc[0], acc[1], acc[2], acc[3]);
        __m128 v = _mm_add_ps(_mm_add_ps(_mm_add_ps(acc[0], acc[1]), acc[2]), acc[3]);
        float o[4];
        _mm_storeu_ps(o, v);
        for (int r = 0; r < nr; r++)
            etc_gemm_store1(g, i0 + r, 0, o[r]);
    }
}
#endif
