/*
 * loss_embed.c - ranking and embedding losses of torch.nn.functional
 * (margin_ranking_loss, cosine_embedding_loss, triplet_margin_loss) with
 * torch 1.13's formulas, composed from core ops.
 */
#include "nn/loss_internal.h"

#include <math.h>
#include <string.h>

/* max(0, -y (x1 - x2) + margin); inputs broadcast, as torch */
et_tensor *et_margin_ranking_loss(et_tensor *x1, et_tensor *x2, et_tensor *y, float margin,
                                  et_reduction r)
{
    if (!nn_loss_check("margin_ranking_loss", x1, x2, r, false) ||
        !nn_loss_check("margin_ranking_loss", x1, y, r, false))
        return NULL;
    nn_scope_begin();
    et_tensor *d = et_sub(x1, x2);
    et_tensor *v = d ? et_add_scalar(et_neg(et_mul(y, d)), margin) : NULL;
    return nn_scope_end(v ? nn_loss_reduce(et_clamp(v, 0.0f, INFINITY), r) : NULL);
}

/* 1 - cos(x1, x2) where y == 1, max(0, cos - margin) where y == -1, 0
 * elsewhere; cos over dim 1 of [N, D] (targets [N]) or dim 0 of [D]
 * (target 0-d), |x|^2 + 1e-12 under the square roots, as torch */
et_tensor *et_cosine_embedding_loss(et_tensor *x1, et_tensor *x2, et_tensor *y, float margin,
                                    et_reduction r)
{
    const char *name = "cosine_embedding_loss";
    if (!nn_loss_check(name, x1, x2, r, true) || !nn_loss_check(name, x1, y, r, false))
        return NULL;
    int nd = et_ndim(x1);
    char a[96], b[96];
    if ((nd != 1 && nd != 2) || et_ndim(y) != nd - 1 || (nd == 2 && et_size(y, 0) != et_size(x1, 0))) {
        et_set_error(ET_ERR_SHAPE, "%s: expects inputs [N, D] with targets [N] or [D] with a 0-d "
                     "target, got %s and %s", name, NN_SHAPE_STR(x1, a), NN_SHAPE_STR(y, b));
        return NULL;
    }
    nn_scope_begin();
    int dim = nd - 1;
    et_tensor *prod = et_sum(et_mul(x1, x2), &dim, 1, false);
    et_tensor *m1 = et_add_scalar(et_sum(et_mul(x1, x1), &dim, 1, false), 1e-12f);
    et_tensor *m2 = et_add_scalar(et_sum(et_mul(x2, x2), &dim, 1, false), 1e-12f);
    et_tensor *cos = prod && m1 && m2 ? et_div(prod, et_sqrt(et_mul(m1, m2))) : NULL;
    et_tensor *zero = cos ? et_zeros_like(cos) : NULL;
    et_tensor *pos = zero ? et_rsub_scalar(1.0f, cos) : NULL;
    et_tensor *neg = pos ? et_clamp(et_sub_scalar(cos, margin), 0.0f, INFINITY) : NULL;
    et_tensor *isp = neg ? et_eq(y, et_scalar(1.0f)) : NULL;
    et_tensor *isn = isp ? et_eq(y, et_scalar(-1.0f)) : NULL;
    et_tensor *out = isn ? et_add(et_where(isp, pos, zero), et_where(isn, neg, zero)) : NULL;
    return nn_scope_end(out ? nn_loss_reduce(out, r) : NULL);
}

/* torch's pairwise_distance: ||x1 - x2 + eps||_p over the last dim */
static et_tensor *pairwise(et_tensor *x1, et_tensor *x2, double p, float eps)
{
    int last = -1;
    et_tensor *d = et_add_scalar(et_sub(x1, x2), eps);
    return d ? et_norm(d, p, &last, 1, false) : NULL;
}

et_tensor *et_triplet_margin_loss(et_tensor *anchor, et_tensor *positive, et_tensor *negative,
                                  et_triplet_opts o, et_reduction r)
{
    const char *name = "triplet_margin_loss";
    if (!nn_loss_check(name, anchor, positive, r, false) ||
        !nn_loss_check(name, anchor, negative, r, false))
        return NULL;
    int nd = et_ndim(anchor);
    if (nd < 1 || et_ndim(positive) != nd || et_ndim(negative) != nd) {
        char a[96], b[96], c[96];
        et_set_error(ET_ERR_SHAPE, "%s: anchor %s, positive %s and negative %s must have the "
                     "same number of dims (at least 1)", name, NN_SHAPE_STR(anchor, a),
                     NN_SHAPE_STR(positive, b), NN_SHAPE_STR(negative, c));
        return NULL;
    }
    if (!(o.p > 0) || isnan(o.eps) || !isfinite(o.margin)) {
        et_set_error(ET_ERR_ARG, "%s: p must be positive, eps a number and margin finite (got p "
                     "%g, eps %g, margin %g)", name, (double)o.p, (double)o.eps, (double)o.margin);
        return NULL;
    }
    nn_scope_begin();
    et_tensor *dpos = pairwise(anchor, positive, o.p, o.eps);
    et_tensor *dneg = dpos ? pairwise(anchor, negative, o.p, o.eps) : NULL;
    if (dneg && o.swap)
        dneg = et_minimum(dneg, pairwise(positive, negative, o.p, o.eps));
    et_tensor *v = dneg ? et_sub(et_add_scalar(dpos, o.margin), dneg) : NULL;
    return nn_scope_end(v ? nn_loss_reduce(et_clamp(v, 0.0f, INFINITY), r) : NULL);
}
