/*
 * loss.c - reductions and the regression, binary and divergence losses
 * (MSE, L1, Huber, SmoothL1, BCE, BCEWithLogits with weight/pos_weight,
 * KLDiv), composed from differentiable core ops so that autograd provides
 * every backward.  Each public function runs its work in an inner pool
 * (nn_scope_begin/end) and returns one new reference.  The class losses
 * are in loss_class.c, the embedding/ranking losses in loss_embed.c.
 */
#include "nn/loss_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const reduction_names[] = {"mean", "sum", "none", "batchmean"};

et_status et_reduction_parse(const char *s, et_reduction *out)
{
    for (int i = 0; s && i < 4; i++) {
        if (strcmp(s, reduction_names[i]) == 0) {
            if (out)
                *out = (et_reduction)i;
            return ET_OK;
        }
    }
    return et_set_error(ET_ERR_ARG, "%s is not a valid value for reduction (mean, sum, none; "
                        "batchmean for kl_div)", s ? s : "(null)");
}

const char *et_reduction_name(et_reduction r)
{
    return (unsigned)r < 4 ? reduction_names[r] : "invalid";
}

/* ------------------------------------------------------------------ helpers */

et_tensor *nn_loss_reduce(et_tensor *t, et_reduction r)
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
    case ET_REDUCTION_BATCHMEAN:   /* kl_div: sum over the batch size (dim 0) */
        return et_div_scalar(et_sum_all(t), et_ndim(t) ? (float)et_size(t, 0) : 1.0f);
    }
    return NULL;
}

bool nn_loss_check(const char *name, et_tensor *input, et_tensor *target, et_reduction r,
                   bool same_shape)
{
    if (!input || !target) {
        et_set_error_after(ET_ERR_ARG, "%s: NULL %s", name, input ? "target" : "input");
        return false;
    }
    if ((unsigned)r > ET_REDUCTION_BATCHMEAN) {
        et_set_error(ET_ERR_ARG, "%s: invalid reduction %d", name, (int)r);
        return false;
    }
    if (r == ET_REDUCTION_BATCHMEAN && strcmp(name, "kl_div") != 0) {
        et_set_error(ET_ERR_ARG, "%s: batchmean is not a valid value for reduction (it is "
                     "kl_div's)", name);
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

/* ------------------------------------------------------------- regression */

static et_tensor *mse_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    return d ? nn_loss_reduce(et_mul(d, d), r) : NULL;
}

et_tensor *et_mse_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!nn_loss_check("mse_loss", input, target, r, true))
        return NULL;
    LOSS_SCOPE(mse_body(input, target, r));
}

static et_tensor *l1_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    return d ? nn_loss_reduce(et_abs(d), r) : NULL;
}

et_tensor *et_l1_loss(et_tensor *input, et_tensor *target, et_reduction r)
{
    if (!nn_loss_check("l1_loss", input, target, r, true))
        return NULL;
    LOSS_SCOPE(l1_body(input, target, r));
}

/* |d| as where(d > 0, d, -d): torch's smooth_l1 backward with beta 0 takes
 * the -1 branch at d == 0 (x <= -beta), unlike abs's subgradient 0. */
static et_tensor *l1_sign_body(et_tensor *input, et_tensor *target, et_reduction r)
{
    et_tensor *d = et_sub(input, target);
    et_tensor *pos = d ? et_gt_scalar(d, 0.0f) : NULL;
    return pos ? nn_loss_reduce(et_where(pos, d, et_neg(d)), r) : NULL;
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
    return lin ? nn_loss_reduce(et_where(cond, quad, lin), r) : NULL;
}

et_tensor *et_huber_loss(et_tensor *input, et_tensor *target, et_reduction r, float delta)
{
    if (!nn_loss_check("huber_loss", input, target, r, true))
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
    if (!nn_loss_check("smooth_l1_loss", input, target, r, true))
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
    if (!nn_loss_check("binary_cross_entropy", input, target, r, true))
        return NULL;
    LOSS_SCOPE(nn_loss_reduce(et_binary_cross_entropy(input, target), r));
}

/* torch's binary_cross_entropy_with_logits:
 *   (1 - y) x + lw (log1p(exp(-|x|)) + max(-x, 0)),  lw = (pos_weight - 1) y + 1,
 * times weight.  maximum splits the gradient on ties and abs has
 * subgradient 0, which together give (1 - y) - lw / 2 at x == 0, as torch's
 * dedicated backward (lw sigmoid(x) - lw + 1 - y ... at 0). */
static et_tensor *bce_logits_body(et_tensor *x, et_tensor *y, et_reduction r, et_tensor *weight,
                                  et_tensor *pos_weight)
{
    et_tensor *zero = et_scalar(0.0f);
    et_tensor *mx = zero ? et_maximum(et_neg(x), zero) : NULL;
    et_tensor *sp = mx ? et_add(et_log1p(et_exp(et_neg(et_abs(x)))), mx) : NULL;
    if (sp && pos_weight) {
        et_tensor *lw = et_add_scalar(et_mul(et_sub_scalar(pos_weight, 1.0f), y), 1.0f);
        sp = lw ? et_mul(lw, sp) : NULL;
    }
    et_tensor *l = sp ? et_add(et_mul(et_rsub_scalar(1.0f, y), x), sp) : NULL;
    if (l && weight)
        l = et_mul(l, weight);
    if (l && !et_same_shape(l, x)) {
        char a[96], b[96];
        et_set_error(ET_ERR_SHAPE, "binary_cross_entropy_with_logits: weight or pos_weight "
                     "broadcast the loss to %s, the input is %s", NN_SHAPE_STR(l, a),
                     NN_SHAPE_STR(x, b));
        return NULL;
    }
    return l ? nn_loss_reduce(l, r) : NULL;
}

et_tensor *et_bce_with_logits(et_tensor *input, et_tensor *target, et_reduction r)
{
    return et_bce_with_logits_ex(input, target, r, NULL, NULL);
}

et_tensor *et_bce_with_logits_ex(et_tensor *input, et_tensor *target, et_reduction r,
                                 et_tensor *weight, et_tensor *pos_weight)
{
    if (!nn_loss_check("binary_cross_entropy_with_logits", input, target, r, true))
        return NULL;
    LOSS_SCOPE(bce_logits_body(input, target, r, weight, pos_weight));
}

/* ------------------------------------------------------------- divergence */

/* torch's kl_div: exp(t) (t - x) for log targets, else xlogy(t, t) - t x
 * with xlogy(0, 0) = 0, written where(t == 0, 0, t log t) so that, as torch,
 * the target's gradient is NaN at t == 0 and negative t gives NaN. */
static et_tensor *kl_body(et_tensor *x, et_tensor *t, et_reduction r, bool log_target)
{
    if (log_target) {
        et_tensor *e = et_exp(t);
        return e ? nn_loss_reduce(et_mul(e, et_sub(t, x)), r) : NULL;
    }
    et_tensor *zero = et_scalar(0.0f);
    et_tensor *tz = zero ? et_eq(t, zero) : NULL;
    et_tensor *xl = tz ? et_where(tz, zero, et_mul(t, et_log(t))) : NULL;
    return xl ? nn_loss_reduce(et_sub(xl, et_mul(t, x)), r) : NULL;
}

et_tensor *et_kl_div(et_tensor *input, et_tensor *target, et_reduction r, bool log_target)
{
    if (!nn_loss_check("kl_div", input, target, r, true))
        return NULL;
    LOSS_SCOPE(kl_body(input, target, r, log_target));
}

