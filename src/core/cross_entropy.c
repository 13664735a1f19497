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
    for (int64_t i = 0; i < N; i++) {
        int64_t t;
        if (!ce_target(target, i, C, ignore_index, &t))
            goto fail;
        const float *xr = x->data + i * C;
        float *s = sv->data + i * CE_ROW;
        bool ignored = t == ignore_index;
        int64_t cls = ignored ? 0 : t;
        float w = ignored ? 0.0f : weight ? weight->data[cls * weight->strides[0]] : 1.0f;
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
    for (int64_t i = 0; i < N; i++) {
        const float *s = sv + i * CE_ROW;
        int64_t t;
        memcpy(&t, &s[CE_T], sizeof t);
        float gi = reduction == 2 ? gc->data[i] : g1;
        float v = (-(s[CE_V] != 0.0f ? gi : 0.0f)) * s[CE_W];
        float dyt = 0.0f + v;
        float fs = (float)(0.0 + (double)dyt);
        ce_back_row(x->data + i * C, dx->data + i * C, C, s[CE_M], s[CE_LS], t, dyt, fs);
    }
    etc_release(x);
    etc_release(gc);
    gin[0] = dx;
    return true;
}
