/* train_dp_bn.c - SyncBatchNorm over the replicas (spec "sync_batchnorm":
 * true; docs/distributed.md): the reducer the model's BatchNorm layers call
 * in a data-parallel training call, and what keeps the replicas' calls
 * matched when one of them has no rows or fails.
 *
 * In training mode a BatchNorm layer with a reducer (core
 * et_batch_norm_reduced) sums small per-channel vectors over the replicas:
 * twice in its forward (the sums and count, then the squared deviations from
 * the common mean), once in its backward (the sums of the gradient and of
 * gradient x (x - mean)).  Here every such sum is one allreduce of the same
 * length W = 2 + 2 x the largest num_features, [failed, ended, the vector,
 * zeros].  A replica that cannot take part in the layers' calls -- its share
 * is empty, or it failed before a layer -- still meets them: at the end of
 * each phase (forward, backward) every replica "drains", calling allreduces
 * of [failed, 1, zeros] until all of them have ended the phase (ended sums
 * to the number of replicas) -- they leave in the same allreduce.  Zeros
 * are exactly what no rows contribute; a failed flag makes the layers of the
 * others fail ("another replica failed"), so they drain too, and the last
 * allreduce tells every replica alike that the phase failed.
 *
 * With statistics over all the rows, a layer's backward sums every replica's
 * output gradients: they must be gradients of one loss.  So each share's
 * loss is scaled to the whole minibatch's normaliser before the backward
 * (S_r / D, not S_r / D_r weighted afterwards) and the replicas' gradients
 * then just add up (train_dp.c).  A share whose targets are all ignored
 * still backpropagates (a loss of zero): its rows moved the others'
 * statistics, so the others' losses have gradients through them. */
#include <stdlib.h>
#include <string.h>

#include "server/models/model_internal.h"

/* The layers' reducer: one allreduce of W doubles per call. */
static bool bn_sum(void *ctx, double *v, int64_t n)
{
    etd_dp_bn *b = ctx;
    const etd_dp *dp = b->dp;
    bool fits = n >= 0 && n <= b->width - 2; /* the spec bounds n: never otherwise */
    memset(b->buf, 0, (size_t)b->width * sizeof *b->buf);
    b->buf[0] = fits ? 0.0 : 1.0;
    if (fits)
        memcpy(b->buf + 2, v, (size_t)n * sizeof *v);
    etd_err e;
    if (!dp->allreduce_f64(dp->ctx, b->buf, (size_t)b->width, &e)) {
        et_set_error(ET_ERR_STATE, "%s", e.msg);
        return false;
    }
    if (!fits) {
        et_set_error(ET_ERR_STATE, "SyncBatchNorm: %lld statistics, more than the %lld the "
                     "replicas sum", (long long)n, (long long)(b->width - 2));
        return false;
    }
    if (b->buf[0] > 0) {
        b->remote = true;
        et_set_error(ET_ERR_STATE, "another replica failed on its share of the rows");
        return false;
    }
    memcpy(v, b->buf + 2, (size_t)n * sizeof *v);
    return true;
}

bool etd_dp_bn_begin(etd_dp_bn *b, etd_model *m, etd_err *e)
{
    memset(b, 0, sizeof *b);
    const etd_dp *dp = m->reg->dp;
    if (!m->spec.sync_batchnorm || !dp || dp->size < 2 || !dp->allreduce_f64)
        return false;
    int64_t most = 0;
    if (et_module_set_batch_norm_reducer(m->net, NULL, &most) == 0)
        return false; /* no BatchNorm: the same on every replica (the spec is) */
    b->dp = dp;
    b->net = m->net;
    b->width = 2 + 2 * most;
    b->buf = calloc((size_t)b->width, sizeof *b->buf);
    if (!b->buf)
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    b->r = (et_reducer){bn_sum, b};
    et_module_set_batch_norm_reducer(m->net, &b->r, NULL);
    b->on = true;
    return true;
}

void etd_dp_bn_end(etd_dp_bn *b)
{
    if (!b->on)
        return;
    et_module_set_batch_norm_reducer(b->net, NULL, NULL);
    free(b->buf);
    b->buf = NULL;
    b->on = false;
}

bool etd_dp_bn_drain(etd_dp_bn *b, bool failed)
{
    const etd_dp *dp = b->dp;
    for (;;) {
        memset(b->buf, 0, (size_t)b->width * sizeof *b->buf);
        b->buf[0] = failed ? 1.0 : 0.0;
        b->buf[1] = 1.0;
        etd_err e;
        if (!dp->allreduce_f64(dp->ctx, b->buf, (size_t)b->width, &e))
            return true; /* the cluster stops the process */
        if (b->buf[1] >= (double)dp->size)
            break;
    }
    bool any = b->buf[0] > 0;
    b->remote = false; /* the next phase starts afresh */
    return any;
}

/* 0 x the sum of every output: a loss whose gradient is zero everywhere (no
 * 0/0 of an empty mean), NULL when no output requires grad. */
static et_tensor *zero_loss(const etd_tlist *outs)
{
    et_tensor *acc = NULL;
    et_clear_error();
    for (int i = 0; i < outs->n; i++) {
        if (!et_requires_grad(outs->t[i]))
            continue;
        et_tensor *z = et_sum_all(et_mul_scalar(outs->t[i], 0.0f));
        acc = acc ? et_add(acc, z) : z;
        if (!acc)
            return NULL;
    }
    return acc;
}

et_tensor *etd_dp_bn_zero_loss(const etd_tlist *outs, etd_err *e)
{
    et_tensor *z = zero_loss(outs);
    if (!z && et_errcode() != ET_OK)
        etd_lib_fail(e, "loss");
    return z;
}

bool etd_dp_bn_loss(etd_model *m, etd_dp_bn *b, const etd_array *x, const etd_array *y,
                    const int64_t *idx, int64_t n, et_tensor **loss, bool *anyfail, etd_err *le,
                    etd_err *e)
{
    const etd_dp *dp = b->dp;
    const etd_loss_spec *ls = &m->spec.loss;
    bool mean = ls->reduction != ET_REDUCTION_SUM;
    etd_tlist xb, yb, outs;
    et_tensor *full = NULL;
    bool fwd = false;
    double d = 0;
    *loss = NULL;
    if (n > 0) {
        bool have_x = etd_inputs_of(m, x, idx, n, &xb);
        bool have_y = have_x && etd_targets_of(m, y, idx, n, &yb);
        if (!have_x || !have_y)
            etd_lib_fail(le, have_x ? "targets" : "inputs");
        else
            d = etd_spec_loss_norm(ls, yb.t[0]);
        fwd = have_y && etd_run_net_all(m, &xb, &outs, le);
        if (fwd) {
            /* an all-ignored share's mean is torch's NaN: computed, unused
             * unless every share is so */
            full = etd_spec_loss(&m->spec, outs.t[0], yb.t[0], le);
            if (full && et_numel(full) != 1) {
                etd_fail(le, ETD_EINVAL, "loss: expected a scalar");
                full = NULL;
            }
            fwd = full != NULL;
        }
    }
    /* a layer that failed because another replica had is not a failure of
     * this one (the message says whose it was) */
    bool failed = le->rc != ETD_OK && !b->remote;
    bool any = etd_dp_bn_drain(b, failed);
    double v[2] = {failed ? 0.0 : d, failed ? 1.0 : 0.0};
    if (!dp->allreduce_f64(dp->ctx, v, 2, e))
        return false;
    *anyfail = any || v[1] > 0;
    if (*anyfail || !fwd)
        return true;
    if (!mean || v[0] == 0) { /* sum: shares add; D = 0: torch's NaN everywhere */
        *loss = full;
    } else if (d > 0) {
        if (!(*loss = et_mul_scalar(full, (float)(d / v[0]))))
            etd_lib_fail(le, "loss");
    } else {
        *loss = etd_dp_bn_zero_loss(&outs, le);
    }
    return true;
}
