/*
 * loss.c - loss functions composed from differentiable core ops, so that
 * autograd provides every backward.  Each public function runs its work in an
 * inner pool (nn_scope_begin/end) and returns one new reference.
 * Not supported (not in loss.h): probability targets for cross_entropy,
 * K-dimensional [N, C, d...] inputs.
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const reduction_names[] = {"mean", "sum", "none"};

et_status et_reduction_parse(const char *s, et_reduction *out)
{
    for (int i = 0; s && i < 3; i++) {
        if (strcmp(s, reduction_names[i]) == 0) {
            if (out)
                *out = (et_reduction)i;
            return ET_OK;
        }
    }
    return et_set_error(ET_ERR_ARG, "%s is not a valid value for reduction (mean, sum, none)",
                        s ? s : "(null)");
}

const char *et_reduction_name(et_reduction r)
{
    return (unsigned)r < 3 ? reduction_names[r] : "invalid";
}

/* ------------------------------------------------------------------ helpers */

static et_tensor *reduce(et_tensor *t, et_reduction r)
{
    if (!t)
        return NULL;
    switch (r) {
    case ET_REDUCTION_MEAN:
        return et_mean_all(t);
    case ET_REDUCTION_SUM:
        return et_sum_all(t);
    case ET_REDUCTION_NONE:
        return t;
    }
    return NULL;
}

/* Common argument checks: non-NULL, a valid reduction and, when
 * `same_shape`, equal shapes (easytorch does not broadcast targets). */
static bool check_args(const char *name, et_tensor *input, et_tensor *target, et_reduction r,
                       bool same_shape)
{
    if (!input || !target) {
        et_set_error_after(ET_ERR_ARG, "%s: NULL %s", name, input ? "target" : "input");
        return false;
    }
    if ((unsigned)r > ET_REDUCTION_NONE) {
        et_set_error(ET_ERR_ARG, "%s: invalid reduction %d", name, (int)r);
        return false;
    }
    if (same_shape && !et_same_shape(input, target)) {
        char a[96], b[96];
        et_set_error(ET_ERR_SHAPE, "%s: input shape %s and target shape %s differ", name,
                     NN_SHAPE_STR(input, a), NN_SHAPE_STR(target, b));
        return false;
    }
    return true;
}

/* Run `body` inside the inner pool and return its result to the caller. */
#define LOSS_SCOPE(expr)                 \
    do {                                 \
        nn_scope_begin();                \
        return nn_scope_end((expr));     \
    } while (0)

/* ------------------------------------------------------------- regression */

static et_tensor *mse_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    return d ? reduce(et_mul(d, d), r) : NULL;
}

et_tensor *et_mse_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!check_args("mse_loss", input, target, r, true))
        return NULL;
    LOSS_SCOPE(mse_body(input, target, r));
}

static et_tensor *l1_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    return d ? reduce(et_abs(d), r) : NULL;
}

et_tensor *et_l1_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!check_args("l1_loss", input, target, r, true))
        return NULL;
    LOSS_SCOPE(l1_body(input, target, r));
}

/* |d| as where(d > 0, d, -d): torch's smooth_l1 backward with beta 0 takes
 * the -1 branch at d == 0 (x <= -beta), unlike abs's subgradient 0. */
static et_tensor *l1_sign_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    et_tensor *pos = d ? et_gt_scalar(d, 0.0f) : NULL;
    return pos ? reduce(et_where(pos, d, et_neg(d)), r) : NULL;
}

/* where(|d| < t, quad_scale * d^2, lin_scale * (|d| - t/2)):
 * Huber is (0.5, delta) scaled, SmoothL1 is (0.5/beta, 1). */
static et_tensor *piecewise_body(et_tensor *input, et_tensor *target, et_reduction r, float t,
                                 float quad_scale, float lin_scale)
{
    et_tensor *d = et_sub(input, target);
    et_tensor *ad = d ? et_abs(d) : NULL;
    et_tensor *cond = ad ? et_lt_scalar(ad, t) : NULL;
    et_tensor *quad = cond ? et_mul_scalar(et_mul(d, d), quad_scale) : NULL;
    et_tensor *lin = quad ? et_mul_scalar(et_sub_scalar(ad, 0.5f * t), lin_scale) : NULL;
    return lin ? reduce(et_where(cond, quad, lin), r) : NULL;
}

et_tensor *et_huber_loss(et_tensor *input, et_tensor *target, et_reduction r, float delta)
{
    if (!check_args("huber_loss", input, target, r, true))
        return NULL;
    if (!(delta > 0.0f) || isinf(delta)) {
        et_set_error(ET_ERR_ARG, "huber_loss: delta must be positive and finite, got %g",
                     (double)delta);
        return NULL;
    }
    LOSS_SCOPE(piecewise_body(input, target, r, delta, 0.5f, delta));
}

et_tensor *et_smooth_l1_loss(et_tensor *input, et_tensor *target, et_reduction r, float beta)
{
    if (!check_args("smooth_l1_loss", input, target, r, true))
        return NULL;
    if (!(beta >= 0.0f) || isinf(beta)) {
        et_set_error(ET_ERR_ARG, "smooth_l1_loss: beta must be non-negative and finite, got %g",
                     (double)beta);
        return NULL;
    }
    if (beta == 0.0f)   /* torch: beta 0 is the L1 loss, with gradient -1 at d == 0 */
        LOSS_SCOPE(l1_sign_body(input, target, r));
    LOSS_SCOPE(piecewise_body(input, target, r, beta, 0.5f / beta, 1.0f));
}

/* ----------------------------------------------------------------- binary */

/* core's elementwise binary_cross_entropy clamps each log at -100 and gives
 * torch's gradient (x - y) / max(x (1 - x), 1e-12); it checks the range */
et_tensor *et_bce_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!check_args("binary_cross_entropy", input, target, r, true))
        return NULL;
    LOSS_SCOPE(reduce(et_binary_cross_entropy(input, target), r));
}

static et_tensor *bce_logits_body(et_tensor *x, et_tensor *y, et_reduction r)
{
    /* max(x, 0) - x y + log(1 + exp(-|x|)); maximum splits the gradient on
     * ties and abs has subgradient 0, which together give sigmoid(0) - y at
     * x == 0, as torch's dedicated backward. */
    et_tensor *zero = et_scalar(0.0f);
    et_tensor *mx = zero ? et_maximum(x, zero) : NULL;
    et_tensor *xy = mx ? et_mul(x, y) : NULL;
    et_tensor *e = xy ? et_exp(et_neg(et_abs(x))) : NULL;
    et_tensor *sp = e ? et_log(et_add_scalar(e, 1.0f)) : NULL;
    et_tensor *l = sp ? et_add(et_sub(mx, xy), sp) : NULL;
    return l ? reduce(l, r) : NULL;
}

et_tensor *et_bce_with_logits(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!check_args("binary_cross_entropy_with_logits", input, target, r, true))
        return NULL;
    LOSS_SCOPE(bce_logits_body(input, target, r));
}

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
    int64_t *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
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
    free(t);
    return ok;
}

/* Checks input [N, C] or [C] against target [N] or [] and that every target
 * is an integer class in [0, C) or ignore_index, and weight (if any) is
 * [C].  Sets *n and *c. */
static bool check_class_targets(const char *name, et_tensor *input, et_tensor *target,
                                const et_tensor *weight, int64_t ignore_index, int64_t *n,
                                int64_t *c)
{
    char a[96], b[96];
    int nd = et_ndim(input);
    if (nd != 1 && nd != 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input must be [N, C] or [C], got %s", name,
                     NN_SHAPE_STR(input, a));
        return false;
    }
    *c = et_size(input, -1);
    *n = nd == 2 ? et_size(input, 0) : 1;
    bool ok_shape = nd == 2 ? (et_ndim(target) == 1 && et_size(target, 0) == *n)
                            : et_numel(target) == 1 && et_ndim(target) <= 1;
    if (!ok_shape) {
        et_set_error(ET_ERR_SHAPE, "%s: target shape %s does not match input shape %s "
                     "(expected [%lld] class indices)", name, NN_SHAPE_STR(target, b),
                     NN_SHAPE_STR(input, a), (long long)*n);
        return false;
    }
    if (*c < 1) {
        et_set_error(ET_ERR_SHAPE, "%s: input has no classes", name);
        return false;
    }
    if (weight && !(et_ndim(weight) == 1 && et_size(weight, 0) == *c)) {
        et_set_error(ET_ERR_SHAPE, "%s: weight of shape %s, expected [%lld] (one per class)",
                     name, NN_SHAPE_STR(weight, a), (long long)*c);
        return false;
    }
    return class_targets_valid(name, target, *n, *c, ignore_index);
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
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    int64_t *ti = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    float *wi = malloc(bytes), *vi = malloc(bytes);
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
        k->idx = et_tensor_new_int64(ti, ET_SHAPE(n, 1));
        k->sw = et_tensor_new(wi, ET_SHAPE(n));
        k->valid = et_tensor_new(vi, ET_SHAPE(n));
        ok = k->idx && k->sw && k->valid;
    } else if (!ti || !wi || !vi) {   /* else the reader set the error */
        et_set_error(ET_ERR_NOMEM, "class loss: out of memory");
    }
    if (have_w)
        nn_buf_release(&wb, false);
    free(ti);
    free(wi);
    free(vi);
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

/* torch's nll_loss / cross_entropy (label smoothing as
 * cross_entropy_loss_label_smoothing in ATen) on log-probabilities `logp`
 * [N, C] or [C]. */
static et_tensor *class_body(et_tensor *logp, et_tensor *target, et_reduction r,
                             et_class_loss_opts o, int64_t n, int64_t c)
{
    bool one_d = et_ndim(logp) == 1;
    et_tensor *lp = one_d ? et_reshape(logp, ET_SHAPE(1, c)) : logp;
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
    if (res && one_d && r == ET_REDUCTION_NONE) {
        static const int64_t no_dims[1] = {1};
        res = et_reshape(res, no_dims, 0);
    }
    return res;
}

static et_tensor *class_loss(const char *name, bool logits, et_tensor *input, et_tensor *target,
                             et_reduction r, et_class_loss_opts o)
{
    int64_t n, c;
    if (!check_args(name, input, target, r, false))
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
    if (!check_class_targets(name, input, target, o.weight, o.ignore_index, &n, &c))
        return NULL;
    nn_scope_begin();
    et_tensor *logp = logits ? et_log_softmax(input, -1) : input;
    return nn_scope_end(logp ? class_body(logp, target, r, o, n, c) : NULL);
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
