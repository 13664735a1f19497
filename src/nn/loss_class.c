/*
 * loss_class.c - cross_entropy and nll_loss with torch 1.13's options:
 * class-index targets (int64, or float32 holding integers) with class
 * weights, ignore_index and label smoothing; probability targets (same
 * shape as the input) with weights and label smoothing; inputs [C], [N, C]
 * and [N, C, d1, ...] (classes on dim 1).  Composed from core ops, but for
 * the common [N, C] class-index cross-entropy without label smoothing, which
 * is core's one-node et_cross_entropy_rows (same bits).
 */
#include "nn/loss_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- classification */

/* The n class targets (int64, or float32 holding integers) as int64 in
 * out[n]; ET_ERR_INDEX naming the position of a non-integral float. */
static bool read_targets(const char *name, et_tensor *target, int64_t n, int64_t *out)
{
    if (et_tensor_dtype(target) == ET_INT64)
        return et_copy_to_int64(target, out) == ET_OK;
    nn_buf tb;
    if (nn_buf_acquire(&tb, target) != ET_OK)
        return false;
    for (int64_t i = 0; i < n; i++) {
        float v = tb.p[i];
        if (!(v >= -9.2e18f && v <= 9.2e18f) || v != floorf(v)) {
            nn_buf_release(&tb, false);
            et_set_error(ET_ERR_INDEX, "%s: target %g at index %lld is not an integer class",
                         name, (double)v, (long long)i);
            return false;
        }
        out[i] = (int64_t)v;
    }
    nn_buf_release(&tb, false);
    return true;
}

/* Every target in [0, c) or equal to ignore_index. */
static bool class_targets_valid(const char *name, et_tensor *target, int64_t n, int64_t c,
                                int64_t ignore_index)
{
    /* a training step calls this every time: no malloc for usual batches */
    int64_t local[1024];
    int64_t *t = n <= 1024 ? local : malloc((size_t)n * sizeof *t);
    if (!t) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", name);
        return false;
    }
    bool ok = read_targets(name, target, n, t);
    for (int64_t i = 0; ok && i < n; i++)
        if (t[i] != ignore_index && (t[i] < 0 || t[i] >= c)) {
            et_set_error(ET_ERR_INDEX, "%s: target %lld at index %lld is out of bounds "
                         "(expected an integer class in [0, %lld) or ignore_index %lld)", name,
                         (long long)t[i], (long long)i, (long long)c, (long long)ignore_index);
            ok = false;
        }
    if (t != local)
        free(t);
    return ok;
}

/* The shape of a class loss: M samples of C classes, with class-index or
 * probability targets, and the shape of its reduction "none". */
typedef struct {
    int64_t m, c;
    int cdim;                         /* the class dim of the input */
    bool prob;                        /* targets are probabilities shaped like the input */
    int64_t none_shape[ET_MAX_DIMS];  /* the input's shape without the class dim */
    int none_nd;
} class_shape;

/* Checks input [C], [N, C] or [N, C, d1, ...] against class targets [],
 * [N], [N, d1, ...] (every one an integer class in [0, C) or ignore_index)
 * or probability targets of the input's shape, and weight (if any) is [C]. */
static bool check_class_targets(const char *name, bool logits, et_tensor *input,
                                et_tensor *target, const et_tensor *weight,
                                int64_t ignore_index, class_shape *cs)
{
    char a[96], b[96];
    int nd = et_ndim(input);
    if (nd < 1) {
        et_set_error(ET_ERR_SHAPE, "%s: input must be [C], [N, C] or [N, C, d1, ...], got %s",
                     name, NN_SHAPE_STR(input, a));
        return false;
    }
    cs->cdim = nd == 1 ? 0 : 1;
    cs->c = et_size(input, cs->cdim);
    cs->none_nd = 0;
    for (int d = 0; d < nd; d++)
        if (d != cs->cdim)
            cs->none_shape[cs->none_nd++] = et_size(input, d);
    if (cs->c < 1) {
        et_set_error(ET_ERR_SHAPE, "%s: input %s has no classes", name, NN_SHAPE_STR(input, a));
        return false;
    }
    if (weight && !(et_ndim(weight) == 1 && et_size(weight, 0) == cs->c)) {
        et_set_error(ET_ERR_SHAPE, "%s: weight of shape %s, expected [%lld] (one per class)",
                     name, NN_SHAPE_STR(weight, a), (long long)cs->c);
        return false;
    }
    cs->m = et_numel(input) / cs->c;
    cs->prob = et_same_shape(input, target) && et_tensor_dtype(target) == ET_FLOAT32;
    if (cs->prob) {
        if (!logits) {
            et_set_error(ET_ERR_ARG, "%s: expects class-index targets, got a target shaped like "
                         "the input %s (probability targets are cross_entropy's)", name,
                         NN_SHAPE_STR(input, a));
            return false;
        }
        if (ignore_index != -100) {
            et_set_error(ET_ERR_ARG, "%s: ignore_index is not supported for probability "
                         "targets", name);
            return false;
        }
        return true;
    }
    bool ok_shape = nd == 1 ? et_numel(target) == 1 && et_ndim(target) <= 1
                            : et_ndim(target) == cs->none_nd;
    for (int d = 0; ok_shape && nd > 1 && d < cs->none_nd; d++)
        ok_shape = et_size(target, d) == cs->none_shape[d];
    if (!ok_shape) {
        char want[96];
        et_shape_str(cs->none_shape, cs->none_nd, want, sizeof want);
        et_set_error(ET_ERR_SHAPE, "%s: target shape %s does not match input shape %s "
                     "(expected %s class indices, or probabilities of the input's shape)", name,
                     NN_SHAPE_STR(target, b), NN_SHAPE_STR(input, a), want);
        return false;
    }
    return class_targets_valid(name, target, cs->m, cs->c, ignore_index);
}

/* x ([C], [N, C] or [N, C, d1, ...], classes on cs->cdim) as [M, C] */
static et_tensor *as_rows(et_tensor *x, const class_shape *cs)
{
    int nd = et_ndim(x);
    if (nd >= 3) {
        int perm[ET_MAX_DIMS], k = 0;
        for (int d = 0; d < nd; d++)
            if (d != 1)
                perm[k++] = d;
        perm[k++] = 1;
        x = et_permute(x, perm, nd);
    }
    return x ? et_reshape(x, ET_SHAPE(cs->m, cs->c)) : NULL;
}

/* Constants of a class-index loss, no gradient: the targets with ignored
 * entries replaced by class 0 (so gather stays in range) as [N, 1], the
 * per-sample weight w[t_i] (1 without class weights, 0 where ignored) as
 * [N], and the 0/1 mask of non-ignored samples as [N].  *wsum = sum of the
 * sample weights, *nvalid = number of non-ignored samples. */
typedef struct {
    et_tensor *idx, *sw, *valid;
    double wsum, nvalid;
} class_consts;

static bool class_constants(et_tensor *target, et_tensor *weight, int64_t ignore_index,
                            int64_t n, class_consts *k)
{
    /* written straight into the three tensors (pooled, recycled by core:
     * a training step allocates nothing here) */
    k->idx = et_tensor_new_int64(NULL, ET_SHAPE(n, 1));
    k->sw = et_tensor_new(NULL, ET_SHAPE(n));
    k->valid = et_tensor_new(NULL, ET_SHAPE(n));
    int64_t *ti = k->idx ? et_data_int64(k->idx) : NULL;
    float *wi = k->sw ? et_data(k->sw) : NULL, *vi = k->valid ? et_data(k->valid) : NULL;
    nn_buf wb;
    bool have_w = false;
    bool ok = ti && wi && vi && read_targets("class loss", target, n, ti) &&
              (!weight || (have_w = nn_buf_acquire(&wb, weight) == ET_OK));
    if (ok) {
        k->wsum = 0;
        k->nvalid = 0;
        for (int64_t i = 0; i < n; i++) {
            bool ignored = ti[i] == ignore_index;
            int64_t cls = ignored ? 0 : ti[i];
            ti[i] = cls;
            wi[i] = ignored ? 0.0f : weight ? wb.p[cls] : 1.0f;
            vi[i] = ignored ? 0.0f : 1.0f;
            k->wsum += wi[i];
            k->nvalid += vi[i];
        }
    }
    if (have_w)
        nn_buf_release(&wb, false);
    return ok;
}

/* Sum of the per-sample losses, divided for "mean" by `denom` (torch
 * normalises by the total weight of the non-ignored samples). */
static et_tensor *reduce_by(et_tensor *per_sample, et_reduction r, double denom)
{
    if (!per_sample || r == ET_REDUCTION_NONE)
        return per_sample;
    et_tensor *s = et_sum_all(per_sample);
    if (!s || r == ET_REDUCTION_SUM)
        return s;
    /* a zero denominator gives torch's 0/0 = NaN loss; the gradient g/0
     * becomes NaN at the picked entries of the samples whose weight is 0 and
     * stays 0 at ignored ones, which class_body masks out with where */
    return et_div_scalar(s, (float)denom);
}

/* torch's nll_loss / cross_entropy with class-index targets (label
 * smoothing as cross_entropy_loss_label_smoothing in ATen) on
 * log-probabilities lp [M, C]; per-sample results [M]. */
static et_tensor *class_body(et_tensor *lp, et_tensor *target, et_reduction r,
                             et_class_loss_opts o, int64_t n, int64_t c)
{
    class_consts k = {0};
    if (!lp || !class_constants(target, o.weight, o.ignore_index, n, &k))
        return NULL;
    /* -w[t_i] * logp[i, t_i]; ignored samples are cut out of the graph (not
     * multiplied by 0) so that a 0/0 mean leaves their gradient 0, as torch */
    et_tensor *zero = et_scalar(0.0f);
    et_tensor *picked = zero ? et_gather(lp, 1, k.idx) : NULL;
    et_tensor *nll = picked ? et_neg(et_mul(et_reshape(picked, ET_SHAPE(n)), k.sw)) : NULL;
    et_tensor *res = reduce_by(nll ? et_where(k.valid, nll, zero) : NULL, r, k.wsum);
    if (res && o.label_smoothing != 0.0f) {
        /* -sum_c(w[c] * logp[i, c]), zero where ignored */
        int last = -1;
        et_tensor *wl = o.weight ? et_mul(lp, o.weight) : lp;
        et_tensor *sum = wl ? et_sum(wl, &last, 1, false) : NULL;
        et_tensor *smooth = sum ? et_where(k.valid, et_neg(sum), zero) : NULL;
        et_tensor *sred = reduce_by(smooth, r, o.weight ? k.wsum : k.nvalid);
        et_tensor *a = sred ? et_mul_scalar(res, 1.0f - o.label_smoothing) : NULL;
        et_tensor *b = a ? et_mul_scalar(sred, o.label_smoothing / (float)c) : NULL;
        res = b ? et_add(a, b) : NULL;
    }
    return res;
}

/* cross_entropy with probability targets tp [M, C] (torch's
 * cross_entropy_loss_prob_target): -sum_c w_c t_c logp_c per sample, with
 * t smoothed to t (1 - ls) + ls / C; "mean" divides by M. */
static et_tensor *prob_body(et_tensor *lp, et_tensor *tp, et_reduction r, et_class_loss_opts o,
                            int64_t m, int64_t c)
{
    if (!lp || !tp)
        return NULL;
    float ls = o.label_smoothing;
    et_tensor *t = ls != 0.0f ? et_add_scalar(et_mul_scalar(tp, 1.0f - ls), ls / (float)c) : tp;
    et_tensor *prod = t ? et_mul(lp, t) : NULL;
    if (prod && o.weight)
        prod = et_mul(prod, o.weight);
    int last = -1;
    et_tensor *per = prod ? et_neg(et_sum(prod, &last, 1, false)) : NULL;
    if (!per || r == ET_REDUCTION_NONE)
        return per;
    et_tensor *s = et_sum_all(per);
    return r == ET_REDUCTION_SUM || !s ? s : et_div_scalar(s, (float)m);
}

static et_tensor *class_loss(const char *name, bool logits, et_tensor *input, et_tensor *target,
                             et_reduction r, et_class_loss_opts o)
{
    class_shape cs;
    if (!nn_loss_check(name, input, target, r, false))
        return NULL;
    if (!(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "%s: label_smoothing must be between 0.0 and 1.0, got %g", name,
                     (double)o.label_smoothing);
        return NULL;
    }
    if (!logits && o.label_smoothing != 0.0f) {
        et_set_error(ET_ERR_ARG, "%s: label_smoothing is a cross_entropy option", name);
        return NULL;
    }
    if (!check_class_targets(name, logits, input, target, o.weight, o.ignore_index, &cs))
        return NULL;
    /* [N, C] class-index cross-entropy without smoothing: one node
     * (core's et_cross_entropy_rows, the same bits as the composition below) */
    if (logits && !cs.prob && et_ndim(input) == 2 && o.label_smoothing == 0.0f &&
        et_tensor_dtype(input) == ET_FLOAT32)
        return et_cross_entropy_rows(input, target, o.weight, o.ignore_index, (int)r);
    nn_scope_begin();
    et_tensor *logp = logits ? et_log_softmax(input, cs.cdim) : input;
    et_tensor *lp = logp ? as_rows(logp, &cs) : NULL;
    et_tensor *res = !lp ? NULL
                     : cs.prob ? prob_body(lp, as_rows(target, &cs), r, o, cs.m, cs.c)
                               : class_body(lp, target, r, o, cs.m, cs.c);
    if (res && r == ET_REDUCTION_NONE)   /* [M] -> the input's shape without the classes */
        res = et_reshape(res, cs.none_shape, cs.none_nd);
    return nn_scope_end(res);
}

et_tensor *et_nll_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    return class_loss("nll_loss", false, input, target, r, ET_CLASS_LOSS_DEFAULTS);
}

et_tensor *et_nll_loss_ex(et_tensor *input, et_tensor *target, et_reduction r,
                          et_class_loss_opts o)
{
    return class_loss("nll_loss", false, input, target, r, o);
}

et_tensor *et_cross_entropy(et_tensor *input, et_tensor *target, et_reduction r,
                            float label_smoothing)
{
    et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
    o.label_smoothing = label_smoothing;
    return class_loss("cross_entropy", true, input, target, r, o);
}

et_tensor *et_cross_entropy_ex(et_tensor *input, et_tensor *target, et_reduction r,
                               et_class_loss_opts o)
{
    return class_loss("cross_entropy", true, input, target, r, o);
}
