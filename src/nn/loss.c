/*
 * loss.c - loss functions composed from differentiable core ops, so that
 * autograd provides every backward.  Each public function runs its work in an
 * inner pool (nn_scope_begin/end) and returns one new reference.
 * Not supported (not in loss.h): class weights, ignore_index, probability
 * targets for cross_entropy, K-dimensional [N, C, d...] inputs.
 */
#include "nn/nn_internal.h"

#include <math.h>
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
        et_set_error(ET_ERR_ARG, "%s: NULL %s", name, input ? "target" : "input");
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
    if (beta == 0.0f)   /* torch: beta 0 is exactly the L1 loss */
        LOSS_SCOPE(l1_body(input, target, r));
    LOSS_SCOPE(piecewise_body(input, target, r, beta, 0.5f / beta, 1.0f));
}

/* ----------------------------------------------------------------- binary */

static bool check_range01(const char *name, et_tensor *t, const char *what)
{
    nn_buf b;
    if (nn_buf_acquire(&b, t) != ET_OK)
        return false;
    int64_t n = et_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float v = b.p[i];
        if (!(v >= 0.0f && v <= 1.0f)) {
            nn_buf_release(&b, false);
            et_set_error(ET_ERR_ARG, "%s: all elements of %s should be between 0 and 1, "
                         "element %lld is %g", name, what, (long long)i, (double)v);
            return false;
        }
    }
    nn_buf_release(&b, false);
    return true;
}

/* clamp(log(x), -100) with the input clamped first so that x == 0 gives a
 * zero (not NaN) gradient through the log. */
static et_tensor *clamped_log(et_tensor *x)
{
    et_tensor *xc = et_clamp(x, 3.7200760e-44f, INFINITY); /* ~exp(-100) */
    et_tensor *l = xc ? et_log(xc) : NULL;
    return l ? et_clamp(l, -100.0f, INFINITY) : NULL;
}

static et_tensor *bce_body(et_tensor *x, et_tensor *y, et_reduction r)
{
    /* -(y log x + (1 - y) log(1 - x)) */
    et_tensor *lx = clamped_log(x);
    et_tensor *l1x = lx ? clamped_log(et_rsub_scalar(1.0f, x)) : NULL;
    if (!l1x)
        return NULL;
    et_tensor *a = et_mul(y, lx);
    et_tensor *b = et_mul(et_rsub_scalar(1.0f, y), l1x);
    et_tensor *s = a && b ? et_add(a, b) : NULL;
    return s ? reduce(et_neg(s), r) : NULL;
}

et_tensor *et_bce_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!check_args("binary_cross_entropy", input, target, r, true) ||
        !check_range01("binary_cross_entropy", input, "input"))
        return NULL;
    LOSS_SCOPE(bce_body(input, target, r));
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

/* Checks input [N, C] or [C] against target [N] or [] and that every target
 * is an integer class in [0, C).  Sets *n and *c. */
static bool check_class_targets(const char *name, et_tensor *input, et_tensor *target,
                                int64_t *n, int64_t *c)
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
    nn_buf tb;
    if (nn_buf_acquire(&tb, target) != ET_OK)
        return false;
    for (int64_t i = 0; i < *n; i++) {
        float v = tb.p[i];
        if (!(v >= 0.0f && v < (float)*c) || v != floorf(v)) {
            nn_buf_release(&tb, false);
            et_set_error(ET_ERR_INDEX, "%s: target %g at index %lld is out of bounds "
                         "(expected an integer class in [0, %lld))", name, (double)v,
                         (long long)i, (long long)*c);
            return false;
        }
    }
    nn_buf_release(&tb, false);
    return true;
}

/* -logp[i, t_i] as [N] (or 0-d when input is [C]) from log-probabilities. */
static et_tensor *picked_nll(et_tensor *logp, et_tensor *target, int64_t n, bool one_d)
{
    et_tensor *lp2 = one_d ? et_reshape(logp, ET_SHAPE(1, et_size(logp, 0))) : logp;
    et_tensor *idx = lp2 ? et_reshape(target, ET_SHAPE(n, 1)) : NULL;
    et_tensor *g = idx ? et_gather(lp2, 1, idx) : NULL;
    static const int64_t no_dims[1] = {1};
    et_tensor *v = !g ? NULL : one_d ? et_reshape(g, no_dims, 0) : et_reshape(g, ET_SHAPE(n));
    return v ? et_neg(v) : NULL;
}

static et_tensor *nll_body(et_tensor *input, et_tensor *target, et_reduction r, int64_t n)
{
    return reduce(picked_nll(input, target, n, et_ndim(input) == 1), r);
}

et_tensor *et_nll_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    int64_t n, c;
    if (!check_args("nll_loss", input, target, r, false) ||
        !check_class_targets("nll_loss", input, target, &n, &c))
        return NULL;
    LOSS_SCOPE(nll_body(input, target, r, n));
}

static et_tensor *ce_body(et_tensor *input, et_tensor *target, et_reduction r, float eps,
                          int64_t n, int64_t c)
{
    bool one_d = et_ndim(input) == 1;
    et_tensor *logp = et_log_softmax(input, -1);
    et_tensor *nll = logp ? picked_nll(logp, target, n, one_d) : NULL;
    if (!nll || eps == 0.0f)
        return reduce(nll, r);
    /* torch: (1 - eps) * nll + eps / C * sum_c(-logp) */
    int last = -1;
    et_tensor *smooth = et_neg(et_sum(logp, &last, 1, false));
    et_tensor *a = smooth ? et_mul_scalar(nll, 1.0f - eps) : NULL;
    et_tensor *b = a ? et_mul_scalar(smooth, eps / (float)c) : NULL;
    return b ? reduce(et_add(a, b), r) : NULL;
}

et_tensor *et_cross_entropy(et_tensor *input, et_tensor *target, et_reduction r,
                            float label_smoothing)
{
    int64_t n, c;
    if (!check_args("cross_entropy", input, target, r, false))
        return NULL;
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "cross_entropy: label_smoothing must be between 0.0 and 1.0, "
                     "got %g", (double)label_smoothing);
        return NULL;
    }
    if (!check_class_targets("cross_entropy", input, target, &n, &c))
        return NULL;
    LOSS_SCOPE(ce_body(input, target, r, label_smoothing, n, c));
}
