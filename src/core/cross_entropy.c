/*
 * cross_entropy.c - torch's cross_entropy with class-index targets over
 * input [N, C] (log_softmax followed by nll_loss, as ATen composes it) as
 * ONE graph node: no log-probability tensor, gather, mask or reduction
 * nodes, and a backward that writes softmax - onehot straight into the
 * input's gradient.  nn's class loss (src/nn/loss_class.c) uses it for 2-d
 * inputs without label smoothing and composes core ops otherwise.
 *
 * Same bits as that composition (log_softmax -> gather -> * w[t] -> neg ->
 * where(valid) -> sum -> / total weight) forward and backward: each row's
 * max and log-sum-exp are etc_softmax_row's (its 16-wide blocks, partial
 * sums and double total), log p = x - max - lse as it computes it, the
 * per-sample losses summed as etc_sum_to sums them, and the backward is
 * each op's backward in turn on the one nonzero of a row's gradient, then
 * log_softmax's dy - exp(log p) * sum(dy).  tests/nn/check_loss compares
 * the two paths bit for bit (a [N, C, 1] input takes the composed one).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/cross_entropy_avx512.h"

/* the saved row of each sample: max, log-sum-exp, weight w[t] (0 when
 * ignored), 1 or 0 (ignored), target class (0 when ignored, as the composed
 * path's gather index) as int64 bits in the last two floats */
enum { CE_M, CE_LS, CE_W, CE_V, CE_T, CE_ROW = 6 };

/* The max and log-sum-exp of one contiguous row of D >= 1 logits, computed
 * exactly as etc_softmax_row (reduce_basic.c) computes them for
 * log_softmax: a copy of its arithmetic without the stores of the row. */
ETC_CLONES
static void ce_row_stats(const float *restrict p, int64_t D, float *m_out, float *ls_out)
{
    const int64_t Df = D & ~(int64_t)15;
    const int r = (int)(D - Df);
    float tp[16], tx[16], tq[16], pm[16], part[16];
    for (int j = 0; j < 16; j++) {
        tp[j] = j < r ? p[Df + j] : -INFINITY;
        pm[j] = tp[j];
        part[j] = 0.0f;
    }
    for (int64_t k = 0; k < Df; k += 16)
        for (int j = 0; j < 16; j++)
            pm[j] = p[k + j] > pm[j] ? p[k + j] : pm[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++)
        m = pm[j] > m ? pm[j] : m;
    if (m == -INFINITY)
        m = 0; /* all -inf: 0/0 = nan like PyTorch */
    for (int64_t k = 0; k < Df; k += 16)
        for (int j = 0; j < 16; j++)
            part[j] += etc_expf(p[k + j] - m);
    for (int j = 0; j < 16; j++)
        tx[j] = j < r ? tp[j] - m : 0.0f;
    for (int j = 0; j < 16; j++)
        tq[j] = etc_expf(tx[j]);
    for (int j = r; j < 16; j++)
        tq[j] = 0.0f;
    for (int j = 0; j < 16; j++)
        part[j] += tq[j];
    double s = 0;
    for (int j = 0; j < 16; j++)
        s += part[j];
    *m_out = m;
    *ls_out = (float)log(s);
}

/* r = dy - exp(log p) * fs over one row, dy zero but dy[t] = dyt: the
 * composed path's log_softmax backward (etc_softmax_back_row) on the row
 * its gather backward scattered.  16 wide to the end, the last partial
 * block through a padded copy, as there. */
ETC_CLONES
static void ce_back_row(const float *restrict p, float *restrict r, int64_t D, float m,
                        float ls, int64_t t, float dyt, float fs)
{
    const int64_t Df = D & ~(int64_t)15;
    const int tl = (int)(D - Df);
    for (int64_t k = 0; k < Df; k++) {
        float dy = k == t ? dyt : 0.0f;
        r[k] = dy - etc_expf(p[k] - m - ls) * fs;
    }
    float ty[16], tr[16];
    for (int j = 0; j < 16; j++)
        ty[j] = j < tl ? p[Df + j] - m - ls : 0.0f;
    for (int j = 0; j < 16; j++) {
        float dy = Df + j == t ? dyt : 0.0f;
        tr[j] = dy - etc_expf(ty[j]) * fs;
    }
    for (int j = 0; j < tl; j++)
        r[Df + j] = tr[j];
}

#if defined(__GNUC__) && defined(__x86_64__)
#define CE_X86 1
#include <immintrin.h>

#define CE_AVX2 __attribute__((always_inline, target("avx2"))) static inline

/* etc_expf (core_internal.h) on 8 lanes with the same IEEE operations in
 * the same order (no FMA), so the same bits as the scalar and the
 * compiler-vectorised forms. */
CE_AVX2 __m256 ce_sel(__m256 c, __m256 a, __m256 b) { return _mm256_blendv_ps(b, a, c); }

CE_AVX2 __m256 ce_exp8(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.72283f), lo = _mm256_set1_ps(-104.0f);
    const __m256 zero = _mm256_setzero_ps();
    __m256 tail = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 below = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 xl = ce_sel(below, lo, ce_sel(isnan, zero, x));
    __m256 xh = ce_sel(_mm256_cmp_ps(xl, hi, _CMP_GT_OQ), hi, xl);
    __m256 xs = _mm256_add_ps(xh, ce_sel(tail, _mm256_set1_ps(87.0f), zero));
    /* etc_expf_core */
    __m256 t = _mm256_mul_ps(xs, _mm256_set1_ps(1.44269504088896341f));
    __m256 h = ce_sel(_mm256_cmp_ps(t, zero, _CMP_GE_OQ), _mm256_set1_ps(0.5f),
                      _mm256_set1_ps(-0.5f));
    __m256i n = _mm256_cvttps_epi32(_mm256_add_ps(t, h));
    __m256 fn = _mm256_cvtepi32_ps(n);
    /* etc_expf_reduced */
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(xs, _mm256_mul_ps(fn, _mm256_set1_ps(0.693359375f))),
                             _mm256_mul_ps(fn, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 z = _mm256_mul_ps(r, r);
    __m256 q = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(1.9875691500e-4f), r),
                             _mm256_set1_ps(1.3981999507e-3f));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(8.3334519073e-3f));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(4.1665795894e-2f));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(1.6666665459e-1f));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(5.0000001201e-1f));
    __m256 pr = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(q, z), r), _mm256_set1_ps(1.0f));
    /* 2^n as two factors: n1 = n / 2 (C's truncation), n2 = n - n1 */
    __m256i n1 = _mm256_srai_epi32(_mm256_add_epi32(n, _mm256_srli_epi32(n, 31)), 1);
    __m256i n2 = _mm256_sub_epi32(n, n1);
    const __m256i b127 = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, b127), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, b127), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(pr, s1), s2);
    y = _mm256_mul_ps(y, ce_sel(tail, _mm256_set1_ps(1.6458115e-38f), _mm256_set1_ps(1.0f)));
    y = ce_sel(_mm256_cmp_ps(x, hi, _CMP_GT_OQ), _mm256_set1_ps(INFINITY), y);
    y = ce_sel(below, zero, y);
    return ce_sel(isnan, x, y);
}

CE_AVX2 __m256i ce_first(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ce_row_stats in AVX2: the 16 partial sums as two vectors, blocks of 16 in
 * order, the padded last block, then the same scalar folds (max, double
 * sum) over the 16 lanes. */
__attribute__((target("avx2"))) static void ce_row_stats_avx2(const float *p, int64_t D,
                                                              float *m_out, float *ls_out)
{
    const int64_t Df = D & ~(int64_t)15;
    const int r = (int)(D - Df);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256i r0 = ce_first(r < 8 ? r : 8), r1 = ce_first(r > 8 ? r - 8 : 0);
    /* tp: the last block, -inf past D */
    __m256 tp0 = ce_sel(_mm256_castsi256_ps(r0), _mm256_maskload_ps(p + Df, r0), ninf);
    __m256 tp1 = ce_sel(_mm256_castsi256_ps(r1), _mm256_maskload_ps(p + Df + 8, r1), ninf);
    __m256 pm0 = tp0, pm1 = tp1;
    for (int64_t k = 0; k < Df; k += 16) {
        pm0 = _mm256_max_ps(_mm256_loadu_ps(p + k), pm0);   /* p > pm ? p : pm */
        pm1 = _mm256_max_ps(_mm256_loadu_ps(p + k + 8), pm1);
    }
    float pm[16];
    _mm256_storeu_ps(pm, pm0);
    _mm256_storeu_ps(pm + 8, pm1);
    float m = -INFINITY;
    for (int j = 0; j < 16; j++)
        m = pm[j] > m ? pm[j] : m;
    if (m == -INFINITY)
        m = 0;
    const __m256 mv = _mm256_set1_ps(m);
    __m256 part0 = _mm256_setzero_ps(), part1 = _mm256_setzero_ps();
    for (int64_t k = 0; k < Df; k += 16) {
        part0 = _mm256_add_ps(part0, ce_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + k), mv)));
        part1 = _mm256_add_ps(part1, ce_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + k + 8), mv)));
    }
    /* tx = j < r ? tp - m : 0; tq = exp(tx), 0 past r */
    __m256 f0 = _mm256_castsi256_ps(r0), f1 = _mm256_castsi256_ps(r1);
    __m256 tq0 = _mm256_and_ps(f0, ce_exp8(_mm256_and_ps(f0, _mm256_sub_ps(tp0, mv))));
    __m256 tq1 = _mm256_and_ps(f1, ce_exp8(_mm256_and_ps(f1, _mm256_sub_ps(tp1, mv))));
    part0 = _mm256_add_ps(part0, tq0);
    part1 = _mm256_add_ps(part1, tq1);
    float part[16];
    _mm256_storeu_ps(part, part0);
    _mm256_storeu_ps(part + 8, part1);
    double s = 0;
    for (int j = 0; j < 16; j++)
        s += part[j];
    *m_out = m;
    *ls_out = (float)log(s);
}

/* ce_back_row in AVX2, 8 lanes at a time (elementwise: any width gives the
 * same bits), the last partial vector loaded and stored by masks. */
__attribute__((target("avx2"))) static void ce_back_row_avx2(const float *p, float *r, int64_t D,
                                                             float m, float ls, int64_t t,
                                                             float dyt, float fs)
{
    const __m256 mv = _mm256_set1_ps(m), lv = _mm256_set1_ps(ls), fv = _mm256_set1_ps(fs);
    const __m256 dv = _mm256_set1_ps(dyt);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* t < 2^31 here: C < 2^31 (the caller's shape check) */
    const __m256i tv = _mm256_set1_epi32((int)t);
    int64_t k = 0;
    for (; k < D; k += 8) {
        int nl = D - k < 8 ? (int)(D - k) : 8;
        __m256i mk = ce_first(nl);
        __m256 x = nl == 8 ? _mm256_loadu_ps(p + k) : _mm256_maskload_ps(p + k, mk);
        __m256 e = ce_exp8(_mm256_sub_ps(_mm256_sub_ps(x, mv), lv));
        __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32((int)k));
        __m256 hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(idx, tv));
        __m256 dy = _mm256_and_ps(hit, dv);
        __m256 v = _mm256_sub_ps(dy, _mm256_mul_ps(e, fv));
        if (nl == 8) {
            _mm256_storeu_ps(r + k, v);
        } else {   /* plain 16/8/4-byte stores: vmaskmovps is microcoded on Zen */
            float *o = r + k;
            __m128 h = _mm256_castps256_ps128(v);
            if (nl >= 4) {
                _mm_storeu_ps(o, h);
                h = _mm256_extractf128_ps(v, 1);
                o += 4;
                nl -= 4;
            }
            if (nl >= 2) {
                _mm_storel_pi((__m64 *)o, h);
                h = _mm_movehl_ps(h, h);
                o += 2;
                nl -= 2;
            }
            if (nl >= 1)
                _mm_store_ss(o, h);
        }
    }
}

static bool ce_use_avx2(void)
{
    static int v = -1;
    int c = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&v, c, __ATOMIC_RELAXED);
    }
    return c == 1;
}
#endif

/* The target of sample i (int64, or float32 holding an integer), checked to
 * be ignore_index or a class in [0, C). */
static bool ce_target(const et_tensor *t, int64_t i, int64_t C, int64_t ignore_index,
                      int64_t *out)
{
    int64_t off = i * (t->ndim ? t->strides[0] : 0);
    int64_t v;
    if (t->dtype == ET_INT64) {
        v = etc_idata(t)[off];
    } else {
        float f = t->data[off];
        if (!(f >= -9.2e18f && f <= 9.2e18f) || f != floorf(f)) {
            et_set_error(ET_ERR_INDEX, "cross_entropy: target %g at index %lld is not an "
                         "integer class", (double)f, (long long)i);
            return false;
        }
        v = (int64_t)f;
    }
    if (v != ignore_index && (v < 0 || v >= C)) {
        et_set_error(ET_ERR_INDEX, "cross_entropy: target %lld at index %lld is out of bounds "
                     "(expected an integer class in [0, %lld) or ignore_index %lld)",
                     (long long)v, (long long)i, (long long)C, (long long)ignore_index);
        return false;
    }
    *out = v;
    return true;
}

et_tensor *et_cross_entropy_rows(et_tensor *input, et_tensor *target, et_tensor *weight,
                                 int64_t ignore_index, int reduction)
{
    const char *name = "cross_entropy";
    char b1[64], b2[64];
    if (!etc_null_check(input, name))
        return NULL;
    if (!etc_any_check(target, name))
        return NULL;
    if (reduction < 0 || reduction > 2) {
        et_set_error(ET_ERR_ARG, "%s: reduction %d is not mean (0), sum (1) or none (2)", name,
                     reduction);
        return NULL;
    }
    if (input->dtype != ET_FLOAT32 || input->ndim != 2 || input->shape[1] < 1 ||
        target->ndim != 1 || target->shape[0] != input->shape[0]) {
        et_set_error(ET_ERR_SHAPE, "%s: expects float32 logits [N, C] (C >= 1) and class "
                     "targets [N], got %s and %s", name,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1),
                     etc_shape_fmt(target->shape, target->ndim, b2, sizeof b2));
        return NULL;
    }
    const int64_t N = input->shape[0], C = input->shape[1];
    if (weight && (weight->dtype != ET_FLOAT32 || weight->ndim != 1 || weight->shape[0] != C)) {
        et_set_error(ET_ERR_SHAPE, "%s: weight of shape %s, expected float32 [%lld] (one per "
                     "class)", name, etc_shape_fmt(weight->shape, weight->ndim, b1, sizeof b1),
                     (long long)C);
        return NULL;
    }
    et_tensor *x = etc_contig(input);
    et_tensor *sv = x ? etc_alloc((int64_t[]){N > 0 ? N * CE_ROW : 1}, 1) : NULL;
    et_tensor *out = sv ? (reduction == 2 ? etc_alloc((int64_t[]){N}, 1) : etc_alloc(NULL, 0))
                        : NULL;
    /* per-sample losses: into the result for "none", else a scratch row */
    float local[256];
    float *per = !out ? NULL : reduction == 2 ? out->data
                 : N <= 256 ? local : malloc((size_t)N * sizeof(float));
    if (!per) {
        if (out)
            et_set_error(ET_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    double wsum = 0;
#ifdef CE_X86
    const bool avx2 = ce_use_avx2() && C <= INT32_MAX - 8;
    /* rows of 16..256 logits: all rows' statistics first, 16 rows at a time
     * (cross_entropy_avx512.c; the same bits) */
    const bool avx512 = C >= 16 && C <= CE512_MAX_D && etc_cpu_avx512f();
    if (avx512)
        etc_ce_stats_avx512(x->data, N, C, &sv->data[CE_M], &sv->data[CE_LS], CE_ROW);
#endif
    for (int64_t i = 0; i < N; i++) {
        int64_t t;
        if (!ce_target(target, i, C, ignore_index, &t))
            goto fail;
        const float *xr = x->data + i * C;
        float *s = sv->data + i * CE_ROW;
        bool ignored = t == ignore_index;
        int64_t cls = ignored ? 0 : t;
        float w = ignored ? 0.0f : weight ? weight->data[cls * weight->strides[0]] : 1.0f;
#ifdef CE_X86
        if (avx512)
            ;   /* done above */
        else if (avx2)
            ce_row_stats_avx2(xr, C, &s[CE_M], &s[CE_LS]);
        else
#endif
            ce_row_stats(xr, C, &s[CE_M], &s[CE_LS]);
        s[CE_W] = w;
        s[CE_V] = ignored ? 0.0f : 1.0f;
        memcpy(&s[CE_T], &cls, sizeof cls);
        /* -(log p[t] * w), where(valid, ., 0) */
        float lp = xr[cls] - s[CE_M] - s[CE_LS];
        per[i] = ignored ? 0.0f : -(lp * w);
        wsum += w;
    }
    if (reduction != 2) {
        float tot = (float)etc_sum_contig(per, N);
        out->data[0] = reduction == 0 ? tot / (float)wsum : tot;
    }
    if (per != local && reduction != 2)
        free(per);
    per = NULL;
    etc_release(x);
    x = NULL;
    out->aux.i[0] = reduction;
    out->aux.f[1] = (float)wsum;
    out = etc_finish(out, ETC_OP_CROSS_ENTROPY, &input, 1);
    if (out && out->requires_grad)
        out->saved = etc_ref(sv);
    etc_release(sv);
    return etc_pooled(out);
fail:
    if (per && per != local && !(out && per == out->data))
        free(per);
    etc_release(x);
    etc_release(sv);
    etc_release(out);
    return NULL;
}

/* The composed path's backward, op by op, on each row's one nonzero:
 * mean: g / total weight; where: valid ? g : 0; neg; * w[t]; gather's
 * scatter into zeros (0 + v); then log_softmax's row with sum(dy) taken in
 * double as there (0 + v: a -0 becomes +0). */
ETC_BW(cross_entropy)
{
    et_tensor *a = out->in[0];
    const int reduction = out->aux.i[0];
    const float denom = out->aux.f[1];
    const int64_t N = a->shape[0], C = a->shape[1];
    et_tensor *x = etc_contig(a);
    et_tensor *gc = x ? etc_contig(g) : NULL;
    et_tensor *dx = gc ? etc_alloc(a->shape, a->ndim) : NULL;
    if (!dx) {
        etc_release(x);
        etc_release(gc);
        return false;
    }
    const float g1 = reduction == 2 ? 0.0f : reduction == 0 ? gc->data[0] / denom : gc->data[0];
    const float *sv = out->saved->data;
    int64_t first = 0;
#ifdef CE_X86
    const bool avx2 = ce_use_avx2() && C <= INT32_MAX - 8;
    if (C >= 16 && C <= CE512_MAX_D && etc_cpu_avx512f()) {
        /* 16 rows at a time, their exps as one flat array (the same bits) */
        for (int64_t i0 = 0; i0 < N; i0 += 16) {
            int64_t R = N - i0 < 16 ? N - i0 : 16;
            ce512_rows rows;
            memset(&rows, 0, sizeof rows);
            for (int64_t q = 0; q < R; q++) {
                const float *s = sv + (i0 + q) * CE_ROW;
                int64_t t;
                memcpy(&t, &s[CE_T], sizeof t);
                float gi = reduction == 2 ? gc->data[i0 + q] : g1;
                float v = (-(s[CE_V] != 0.0f ? gi : 0.0f)) * s[CE_W];
                rows.dyt[q] = 0.0f + v;
                rows.fs[q] = (float)(0.0 + (double)rows.dyt[q]);
                rows.m[q] = s[CE_M];
                rows.ls[q] = s[CE_LS];
                rows.t[q] = (int32_t)t;   /* t < C <= 256 */
            }
            etc_ce_back_avx512(x->data + i0 * C, dx->data + i0 * C, R, C, &rows);
        }
        first = N;   /* every row done */
    }
#endif
    for (int64_t i = first; i < N; i++) {
        const float *s = sv + i * CE_ROW;
        int64_t t;
        memcpy(&t, &s[CE_T], sizeof t);
        float gi = reduction == 2 ? gc->data[i] : g1;
        float v = (-(s[CE_V] != 0.0f ? gi : 0.0f)) * s[CE_W];
        float dyt = 0.0f + v;
        float fs = (float)(0.0 + (double)dyt);
#ifdef CE_X86
        if (avx2)
            ce_back_row_avx2(x->data + i * C, dx->data + i * C, C, s[CE_M], s[CE_LS], t, dyt, fs);
        else
#endif
            ce_back_row(x->data + i * C, dx->data + i * C, C, s[CE_M], s[CE_LS], t, dyt, fs);
    }
    etc_release(x);
    etc_release(gc);
    gin[0] = dx;
    return true;
}
