/*
 * cross_entropy_avx512.c - cross_entropy.c's row statistics and backward
 * rows with AVX-512, for rows of 16..CE512_MAX_D logits (the char model's
 * 27 classes, batch 32).
 *
 * The AVX2 kernels (cross_entropy.c) take one row at a time in vectors of
 * 8 lanes: 27 logits are four exp vectors (a third of their lanes idle) and
 * each row's exps are one long dependency chain.  Here the exps of up to 16
 * rows run over the rows' logits as one flat array, 16 lanes per vector,
 * each lane shifted by its own row's max (and log-sum-exp): exp is
 * elementwise, so every value is the one the row kernel computes, and the
 * partial sums, folds and stores that follow are the row kernel's, in its
 * order -- the same bits (tests/nn/check_loss compares this path with the
 * composed log_softmax path bit for bit).
 */
#include <math.h>
#include <stdint.h>

#include "core/core_internal.h"
#include "core/cross_entropy_avx512.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define CE512 __attribute__((always_inline, target("avx512f"))) static inline

/* cross_entropy.c's ce_exp8 (etc_expf's IEEE operations in its order, no
 * FMA) on 16 lanes */
CE512 __m512 ce_exp16(__m512 x)
{
    const __m512 hi = _mm512_set1_ps(88.72283f), lo = _mm512_set1_ps(-104.0f);
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 tail = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
    __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __mmask16 below = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __m512 xl = _mm512_mask_mov_ps(_mm512_mask_mov_ps(x, isnan, zero), below, lo);
    __m512 xh = _mm512_mask_mov_ps(xl, _mm512_cmp_ps_mask(xl, hi, _CMP_GT_OQ), hi);
    __m512 xs = _mm512_add_ps(xh, _mm512_maskz_mov_ps(tail, _mm512_set1_ps(87.0f)));
    /* etc_expf_core */
    __m512 t = _mm512_mul_ps(xs, _mm512_set1_ps(1.44269504088896341f));
    __m512 h = _mm512_mask_mov_ps(_mm512_set1_ps(-0.5f), _mm512_cmp_ps_mask(t, zero, _CMP_GE_OQ),
                                  _mm512_set1_ps(0.5f));
    __m512i n = _mm512_cvttps_epi32(_mm512_add_ps(t, h));
    __m512 fn = _mm512_cvtepi32_ps(n);
    /* etc_expf_reduced */
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(xs, _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f))),
                             _mm512_mul_ps(fn, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 z = _mm512_mul_ps(r, r);
    __m512 q = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.9875691500e-4f), r),
                             _mm512_set1_ps(1.3981999507e-3f));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(8.3334519073e-3f));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(4.1665795894e-2f));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(1.6666665459e-1f));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(5.0000001201e-1f));
    __m512 pr = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(q, z), r), _mm512_set1_ps(1.0f));
    /* 2^n as two factors: n1 = n / 2 (C's truncation), n2 = n - n1 */
    __m512i n1 = _mm512_srai_epi32(_mm512_add_epi32(n, _mm512_srli_epi32(n, 31)), 1);
    __m512i n2 = _mm512_sub_epi32(n, n1);
    const __m512i b127 = _mm512_set1_epi32(127);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, b127), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, b127), 23));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(pr, s1), s2);
    y = _mm512_mul_ps(y, _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), tail,
                                            _mm512_set1_ps(1.6458115e-38f)));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    y = _mm512_mask_mov_ps(y, below, zero);
    return _mm512_mask_mov_ps(y, isnan, x);
}

/* The lanes of one flat vector of a block of rows of D >= 16 values: each
 * lane's column and row (in the block), advanced 16 values at a time (one
 * subtraction suffices: D >= 16). */
typedef struct {
    __m512i col, row;
} ce_lanes;

CE512 ce_lanes ce_lanes_first(void)
{
    ce_lanes l = {_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                  _mm512_setzero_si512()};
    return l;
}

CE512 void ce_lanes_next(ce_lanes *l, __m512i d)
{
    l->col = _mm512_add_epi32(l->col, _mm512_set1_epi32(16));
    __mmask16 wrap = _mm512_cmp_epi32_mask(l->col, d, _MM_CMPINT_NLT);
    l->col = _mm512_mask_sub_epi32(l->col, wrap, l->col, d);
    l->row = _mm512_mask_add_epi32(l->row, wrap, l->row, _mm512_set1_epi32(1));
}

CE512 __mmask16 ce_first16(int64_t n) { return n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1u); }

/* The max and log-sum-exp of rows 0..R-1 (R <= 16) of x [R, D], as
 * cross_entropy.c's ce_row_stats_avx2: the 16-lane max over blocks of 16
 * (the padded last block first), its scalar fold, the exps, the 16 partial
 * sums (blocks in order, then the last block's lanes, 0 past D), their
 * double sum and log. */
__attribute__((target("avx512f"))) static void stats_block(const float *x, int64_t R,
                                                           int64_t D, float *m_out,
                                                           float *ls_out, int64_t ostride)
{
    const int64_t Df = D & ~(int64_t)15;
    const int r = (int)(D - Df);
    const __mmask16 rm = ce_first16(r);
    float mrow[16] = {0};
    for (int64_t i = 0; i < R; i++) {
        const float *p = x + i * D;
        __m512 pm = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), rm, p + Df);
        for (int64_t k = 0; k < Df; k += 16)
            pm = _mm512_max_ps(_mm512_loadu_ps(p + k), pm);   /* p > pm ? p : pm */
        float pv[16];
        _mm512_storeu_ps(pv, pm);
        float m = -INFINITY;
        for (int j = 0; j < 16; j++)
            m = pv[j] > m ? pv[j] : m;
        mrow[i] = m == -INFINITY ? 0.0f : m;
    }
    /* the exps of the block, flat: e = exp(x - m[row]) */
    float e[16 * CE512_MAX_D];
    const int64_t n = R * D;
    const __m512 mt = _mm512_loadu_ps(mrow);
    const __m512i d = _mm512_set1_epi32((int)D);
    ce_lanes l = ce_lanes_first();
    for (int64_t q = 0; q < n; q += 16) {
        __mmask16 k = ce_first16(n - q);
        __m512 v = _mm512_maskz_loadu_ps(k, x + q);
        __m512 mv = _mm512_permutexvar_ps(l.row, mt);
        _mm512_mask_storeu_ps(e + q, k, ce_exp16(_mm512_sub_ps(v, mv)));
        ce_lanes_next(&l, d);
    }
    for (int64_t i = 0; i < R; i++) {
        const float *ei = e + i * D;
        __m512 part = _mm512_setzero_ps();
        for (int64_t k = 0; k < Df; k += 16)
            part = _mm512_add_ps(part, _mm512_loadu_ps(ei + k));
        part = _mm512_add_ps(part, _mm512_maskz_loadu_ps(rm, ei + Df));
        float pv[16];
        _mm512_storeu_ps(pv, part);
        double s = 0;
        for (int j = 0; j < 16; j++)
            s += pv[j];
        m_out[i * ostride] = mrow[i];
        ls_out[i * ostride] = (float)log(s);
    }
}

void etc_ce_stats_avx512(const float *x, int64_t N, int64_t D, float *m_out, float *ls_out,
                         int64_t ostride)
{
    for (int64_t i0 = 0; i0 < N; i0 += 16)
        stats_block(x + i0 * D, N - i0 < 16 ? N - i0 : 16, D, m_out + i0 * ostride,
                    ls_out + i0 * ostride, ostride);
}

/* Rows 0..R-1 (R <= 16) of the backward, as ce_back_row_avx2 computes each:
 * r = dy - exp(x - m - ls) * fs, dy = dyt at the row's target t, else 0. */
__attribute__((target("avx512f"))) void etc_ce_back_avx512(const float *x, float *dx, int64_t R,
                                                           int64_t D, const ce512_rows *rows)
{
    const int64_t n = R * D;
    const __m512 mt = _mm512_loadu_ps(rows->m), lt = _mm512_loadu_ps(rows->ls);
    const __m512 ft = _mm512_loadu_ps(rows->fs), dt = _mm512_loadu_ps(rows->dyt);
    const __m512i tt = _mm512_loadu_si512(rows->t);
    const __m512i d = _mm512_set1_epi32((int)D);
    ce_lanes l = ce_lanes_first();
    for (int64_t q = 0; q < n; q += 16) {
        __mmask16 k = ce_first16(n - q);
        __m512 v = _mm512_maskz_loadu_ps(k, x + q);
        __m512 mv = _mm512_permutexvar_ps(l.row, mt), lv = _mm512_permutexvar_ps(l.row, lt);
        __m512 e = ce_exp16(_mm512_sub_ps(_mm512_sub_ps(v, mv), lv));
        __mmask16 hit = _mm512_cmp_epi32_mask(l.col, _mm512_permutexvar_epi32(l.row, tt),
                                              _MM_CMPINT_EQ);
        __m512 dy = _mm512_maskz_mov_ps(hit, _mm512_permutexvar_ps(l.row, dt));
        __m512 r = _mm512_sub_ps(dy, _mm512_mul_ps(e, _mm512_permutexvar_ps(l.row, ft)));
        _mm512_mask_storeu_ps(dx + q, k, r);
        ce_lanes_next(&l, d);
    }
}
#endif
