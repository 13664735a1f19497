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
 * FMA) on the U vectors v[0..U-1] in place, each step over all of them
 * before the next (U constant after inlining): one exp is a chain of ~40
 * operations, and chains of consecutive vectors overlapped too little to
 * fill the pipes (tanh_avx512.c, the same on the Zen 5 of session 15). */
#define EACH for (int j = 0; j < U; j++)
CE512 void ce_exp16(__m512 *v, const int U)
{
    const __m512 hi = _mm512_set1_ps(88.72283f), lo = _mm512_set1_ps(-104.0f);
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 tail[4], isnan[4], below[4];
    __m512 xs[4], r[4], q[4];
    __m512i n[4];
    EACH {
        const __m512 x = v[j];
        tail[j] = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
        isnan[j] = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        below[j] = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
        __m512 xl = _mm512_mask_mov_ps(_mm512_mask_mov_ps(x, isnan[j], zero), below[j], lo);
        __m512 xh = _mm512_mask_mov_ps(xl, _mm512_cmp_ps_mask(xl, hi, _CMP_GT_OQ), hi);
        xs[j] = _mm512_add_ps(xh, _mm512_maskz_mov_ps(tail[j], _mm512_set1_ps(87.0f)));
    }
    EACH {   /* etc_expf_core */
        __m512 t = _mm512_mul_ps(xs[j], _mm512_set1_ps(1.44269504088896341f));
        __m512 h = _mm512_mask_mov_ps(_mm512_set1_ps(-0.5f),
                                      _mm512_cmp_ps_mask(t, zero, _CMP_GE_OQ),
                                      _mm512_set1_ps(0.5f));
        n[j] = _mm512_cvttps_epi32(_mm512_add_ps(t, h));
    }
    EACH {   /* etc_expf_reduced */
        __m512 fn = _mm512_cvtepi32_ps(n[j]);
        r[j] = _mm512_sub_ps(_mm512_sub_ps(xs[j], _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f))),
                             _mm512_mul_ps(fn, _mm512_set1_ps(-2.12194440e-4f)));
    }
    EACH q[j] = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.9875691500e-4f), r[j]),
                              _mm512_set1_ps(1.3981999507e-3f));
    EACH q[j] = _mm512_add_ps(_mm512_mul_ps(q[j], r[j]), _mm512_set1_ps(8.3334519073e-3f));
    EACH q[j] = _mm512_add_ps(_mm512_mul_ps(q[j], r[j]), _mm512_set1_ps(4.1665795894e-2f));
    EACH q[j] = _mm512_add_ps(_mm512_mul_ps(q[j], r[j]), _mm512_set1_ps(1.6666665459e-1f));
    EACH q[j] = _mm512_add_ps(_mm512_mul_ps(q[j], r[j]), _mm512_set1_ps(5.0000001201e-1f));
    EACH {
        __m512 pr = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(q[j], _mm512_mul_ps(r[j], r[j])), r[j]),
            _mm512_set1_ps(1.0f));
        /* 2^n as two factors: n1 = n / 2 (C's truncation), n2 = n - n1 */
        __m512i n1 = _mm512_srai_epi32(_mm512_add_epi32(n[j], _mm512_srli_epi32(n[j], 31)), 1);
        __m512i n2 = _mm512_sub_epi32(n[j], n1);
        const __m512i b127 = _mm512_set1_epi32(127);
        __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, b127), 23));
        __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, b127), 23));
        __m512 y = _mm512_mul_ps(_mm512_mul_ps(pr, s1), s2);
        y = _mm512_mul_ps(y, _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), tail[j],
                                                _mm512_set1_ps(1.6458115e-38f)));
        y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(v[j], hi, _CMP_GT_OQ),
                               _mm512_set1_ps(INFINITY));
        y = _mm512_mask_mov_ps(y, below[j], zero);
        v[j] = _mm512_mask_mov_ps(y, isnan[j], v[j]);
    }
}
#undef EACH

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

/* r[j] lane i = r[i] lane j: a 16x16 transpose (pairs, quads, then 128-bit
 * lanes across the rows' groups of four) */
CE512 void transpose16(__m512 r[16])
{
    __m512 t[16], u[16], w[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#define PD(v) _mm512_castps_pd(v)
#define PS(v) _mm512_castpd_ps(v)
    for (int i = 0; i < 16; i += 4) {   /* u[g + c], 128-bit lane L: column 4L + c of rows g..g+3 */
        u[i] = PS(_mm512_unpacklo_pd(PD(t[i]), PD(t[i + 2])));
        u[i + 1] = PS(_mm512_unpackhi_pd(PD(t[i]), PD(t[i + 2])));
        u[i + 2] = PS(_mm512_unpacklo_pd(PD(t[i + 1]), PD(t[i + 3])));
        u[i + 3] = PS(_mm512_unpackhi_pd(PD(t[i + 1]), PD(t[i + 3])));
    }
#undef PD
#undef PS
    for (int c = 0; c < 4; c++) {   /* w: lanes 0-1 (c) and 2-3 (4 + c) of rows 0-7, 8-15 */
        w[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        w[4 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        w[8 + c] = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        w[12 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(w[c], w[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
        r[4 + c] = _mm512_shuffle_f32x4(w[c], w[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
        r[8 + c] = _mm512_shuffle_f32x4(w[8 + c], w[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + c] = _mm512_shuffle_f32x4(w[8 + c], w[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* The max and log-sum-exp of rows 0..R-1 (R <= 16) of x [R, D], as
 * cross_entropy.c's ce_row_stats_avx2: the 16-lane max over blocks of 16
 * (the padded last block first), its fold over the lanes in order, the
 * exps, the 16 partial sums (blocks in order, then the last block's lanes,
 * 0 past D), their double sum in lane order and log.  The folds run across
 * the rows at once, on the transposed vectors: the same operations on each
 * row's lanes, in their order (vmaxps a, b is a > b ? a : b, as the fold's
 * comparison). */
__attribute__((target("avx512f"))) static void stats_block(const float *x, int64_t R,
                                                           int64_t D, float *m_out,
                                                           float *ls_out, int64_t ostride)
{
    const int64_t Df = D & ~(int64_t)15;
    const int r = (int)(D - Df);
    const __mmask16 rm = ce_first16(r);
    __m512 pv[16];
    for (int64_t i = 0; i < 16; i++) {
        if (i >= R) {
            pv[i] = _mm512_set1_ps(-INFINITY);
            continue;
        }
        const float *p = x + i * D;
        __m512 pm = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), rm, p + Df);
        for (int64_t k = 0; k < Df; k += 16)
            pm = _mm512_max_ps(_mm512_loadu_ps(p + k), pm);   /* p > pm ? p : pm */
        pv[i] = pm;
    }
    transpose16(pv);
    __m512 mt = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < 16; j++)
        mt = _mm512_max_ps(pv[j], mt);   /* m = pv[j] > m ? pv[j] : m */
    mt = _mm512_mask_mov_ps(mt, _mm512_cmp_ps_mask(mt, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ),
                            _mm512_setzero_ps());
    float mrow[16];
    _mm512_storeu_ps(mrow, mt);
    /* the exps of the block, flat: e = exp(x - m[row]) */
    float e[16 * CE512_MAX_D];
    const int64_t n = R * D;
    const __m512i d = _mm512_set1_epi32((int)D);
    ce_lanes l = ce_lanes_first();
    int64_t q = 0;
    for (; q + 48 <= n; q += 48) {
        __m512 v[3];
        for (int j = 0; j < 3; j++) {
            v[j] = _mm512_sub_ps(_mm512_loadu_ps(x + q + 16 * j), _mm512_permutexvar_ps(l.row, mt));
            ce_lanes_next(&l, d);
        }
        ce_exp16(v, 3);
        for (int j = 0; j < 3; j++)
            _mm512_storeu_ps(e + q + 16 * j, v[j]);
    }
    for (; q < n; q += 16) {
        __mmask16 k = ce_first16(n - q);
        __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + q), _mm512_permutexvar_ps(l.row, mt));
        ce_exp16(&v, 1);
        _mm512_mask_storeu_ps(e + q, k, v);
        ce_lanes_next(&l, d);
    }
    for (int64_t i = 0; i < 16; i++) {
        if (i >= R) {
            pv[i] = _mm512_setzero_ps();
            continue;
        }
        const float *ei = e + i * D;
        __m512 part = _mm512_setzero_ps();
        for (int64_t k = 0; k < Df; k += 16)
            part = _mm512_add_ps(part, _mm512_loadu_ps(ei + k));
        pv[i] = _mm512_add_ps(part, _mm512_maskz_loadu_ps(rm, ei + Df));
    }
    transpose16(pv);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();   /* rows 0-7, 8-15 */
    for (int j = 0; j < 16; j++) {
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(pv[j])));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                   _mm512_extractf64x4_pd(_mm512_castps_pd(pv[j]), 1))));
    }
    double sum[16];
    _mm512_storeu_pd(sum, s0);
    _mm512_storeu_pd(sum + 8, s1);
    for (int64_t i = 0; i < R; i++) {
        m_out[i * ostride] = mrow[i];
        ls_out[i * ostride] = (float)log(sum[i]);
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
 * r = dy - exp(x - m - ls) * fs, dy = dyt at the row's target t, else 0;
 * three vectors' exps at a time (ce_exp16). */
CE512 __m512 back_arg(const float *x, int64_t q, __mmask16 k, const ce_lanes *l, __m512 mt,
                      __m512 lt)
{
    __m512 v = _mm512_maskz_loadu_ps(k, x + q);
    return _mm512_sub_ps(_mm512_sub_ps(v, _mm512_permutexvar_ps(l->row, mt)),
                         _mm512_permutexvar_ps(l->row, lt));
}

CE512 void back_store(float *dx, int64_t q, __mmask16 k, const ce_lanes *l, __m512 e,
                      __m512 ft, __m512 dt, __m512i tt)
{
    __mmask16 hit = _mm512_cmp_epi32_mask(l->col, _mm512_permutexvar_epi32(l->row, tt),
                                          _MM_CMPINT_EQ);
    __m512 dy = _mm512_maskz_mov_ps(hit, _mm512_permutexvar_ps(l->row, dt));
    _mm512_mask_storeu_ps(dx + q, k,
                          _mm512_sub_ps(dy, _mm512_mul_ps(e, _mm512_permutexvar_ps(l->row, ft))));
}

__attribute__((target("avx512f"))) void etc_ce_back_avx512(const float *x, float *dx, int64_t R,
                                                           int64_t D, const ce512_rows *rows)
{
    const int64_t n = R * D;
    const __m512 mt = _mm512_loadu_ps(rows->m), lt = _mm512_loadu_ps(rows->ls);
    const __m512 ft = _mm512_loadu_ps(rows->fs), dt = _mm512_loadu_ps(rows->dyt);
    const __m512i tt = _mm512_loadu_si512(rows->t);
    const __m512i d = _mm512_set1_epi32((int)D);
    ce_lanes l = ce_lanes_first();
    int64_t q = 0;
    for (; q + 48 <= n; q += 48) {
        __m512 e[3];
        ce_lanes lj[3];
        for (int j = 0; j < 3; j++) {
            lj[j] = l;
            e[j] = back_arg(x, q + 16 * j, 0xffff, &l, mt, lt);
            ce_lanes_next(&l, d);
        }
        ce_exp16(e, 3);
        for (int j = 0; j < 3; j++)
            back_store(dx, q + 16 * j, 0xffff, &lj[j], e[j], ft, dt, tt);
    }
    for (; q < n; q += 16) {
        __mmask16 k = ce_first16(n - q);
        __m512 e = back_arg(x, q, k, &l, mt, lt);
        ce_exp16(&e, 1);
        back_store(dx, q, k, &l, e, ft, dt, tt);
        ce_lanes_next(&l, d);
    }
}
#endif
