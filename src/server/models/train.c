/* train.c - the calls that run the network (models.h): forward, pushing a
 * batch, the optimizer step, train, and the gradient probe.  Each takes the
 * model's lock, opens one tensor pool per forward/backward and, where it
 * changes the model, rolls back to a snapshot (train_state.c) when it fails
 * half-way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/models/model_internal.h"
#include "server/models/spec_graph.h"

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---------------------------------------------------------------- forward, batches, step */

/* The "batch" event of a pushed batch. */
static void batch_event(etd_model *m, const etd_batch_result *r)
{
    char d[ETD_NF_REASON + 128];
    char loss[32];
    etd_fmt_float(loss, r->loss);
    int n = snprintf(d, sizeof d, "\"loss\":%s,\"pending_batches\":%lld", loss,
                     (long long)r->pending);
    if (r->skipped && n > 0 && (size_t)n < sizeof d)
        snprintf(d + n, sizeof d - (size_t)n, ",\"skipped\":true");
    etd_events_publish(m, ETD_EV_BATCH, d);
}

etd_rc etd_model_check_inputs(const etd_model *m, const etd_array *x, etd_err *e)
{
    return etd_check_inputs(m, x, e);
}

etd_rc etd_model_forward_all(etd_model *m, const etd_array *x, et_tensor **ys, int *ny,
                             etd_err *e)
{
    *ny = 0;
    if (etd_check_inputs(m, x, e) != ETD_OK || etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = ETD_OK;
    et_pool_begin();
    etd_tlist xt, out = {{NULL}, 0};
    bool ok = etd_inputs_of(m, x, NULL, 0, &xt) || etd_lib_fail(e, "inputs") == ETD_OK;
    /* a batching model's rows must not depend on what they are batched with */
    bool was = m->batcher ? et_set_batch_invariant(true) : false;
    /* its Linear weights packed once (ops.h, et_pack_cache), valid while no
     * exclusive hold came between: held shared, the write generation is
     * even and no writer can start before this forward ends (held exclusive
     * -- a train route's own forward -- it is odd: no cache) */
    uint64_t gen = etd_mlock_write_gen(&m->lock);
    bool packed = m->pack && gen % 2 == 0;
    et_pack_cache *prev = NULL;
    if (packed) {
        et_pack_cache_sync(m->pack, gen);
        prev = et_set_pack_cache(m->pack);
    }
    ET_NO_GRAD { ok = ok && etd_run_net_all(m, &xt, &out, e); }
    if (packed)
        et_set_pack_cache(prev);
    if (m->batcher)
        et_set_batch_invariant(was);
    if (!ok)
        rc = e->rc;
    else
        for (int i = 0; i < out.n; i++)
            ys[(*ny)++] = et_tensor_ref(out.t[i]);
    et_pool_end();
    etd_model_unlock(m);
    return rc;
}

etd_rc etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, etd_err *e)
{
    *y = NULL;
    et_tensor *ys[ETD_MAX_IO];
    int n = 0;
    etd_rc rc = etd_model_forward_all(m, x, ys, &n, e);
    if (rc == ETD_OK && n != 1) {
        for (int i = 0; i < n; i++)
            et_tensor_free(ys[i]);
        return etd_fail(e, ETD_EINVAL, "outputs: the model has %d named outputs (this call "
                        "takes a model with one)", n);
    }
    if (rc == ETD_OK)
        *y = ys[0];
    return rc;
}

etd_rc etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y,
                            etd_batch_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    if (etd_check_inputs(m, x, e) != ETD_OK || etd_model_lock_train(m, e) != ETD_OK)
        return e->rc;
    /* a failed backward or save puts the gradients, counters and running
     * statistics (a training-mode forward updates them) back */
    etd_train_state snap;
    etd_ts_clear(&snap);
    bool dp = m->reg->dp != NULL;
    if (etd_ts_capture(m, ETD_TS_GRADS | ETD_TS_SCALARS | ETD_TS_BUFFERS, true, &snap, e) !=
            ETD_OK || (dp && etd_dp_fault(m->reg->dp, "batch", e))) {
        if (dp) /* in place of etd_dp_backward's first collective */
            etd_dp_agree(m, false, "", e);
        etd_ts_free(&snap);
        etd_model_unlock(m);
        return e->rc;
    }
    int policy = m->ts.nonfinite;
    bool bad = false;
    et_pool_begin();
    et_module_train(m->net, true);
    etd_tlist xt, yt;
    et_tensor *loss = NULL;
    if (dp) { /* this replica's share of the rows; the gradients summed (train_dp.c) */
        int64_t rows = x->nparts ? x->parts[0].shape[0] : x->shape[0];
        int64_t *idx = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *idx);
        for (int64_t i = 0; idx && i < rows; i++)
            idx[i] = i;
        if (idx)
            loss = etd_dp_backward(m, x, y, idx, rows, policy == ETD_NF_ALLOW, e);
        else if (etd_fail(e, ETD_ENOMEM, "out of memory"), true)
            etd_dp_agree(m, false, "", e);
        free(idx);
    } else {
        bool have_x = etd_inputs_of(m, x, NULL, 0, &xt);
        if (!have_x || !etd_targets_of(m, y, NULL, 0, &yt))
            etd_lib_fail(e, have_x ? "targets" : "inputs");
        else
            loss = etd_train_loss(m, &xt, &yt, e);
    }
    float lv = loss ? et_item(loss) : 0;
    /* a non-finite loss is not backpropagated unless the policy says allow */
    if (loss && etd_guard_loss_bad(lv, r->why, sizeof r->why))
        bad = true;
    if (loss && !dp && (!bad || policy == ETD_NF_ALLOW) && et_backward(loss, NULL) != ET_OK) {
        etd_lib_fail(e, "backward");
        loss = NULL;
    }
    bool have_loss = loss != NULL;
    et_module_train(m->net, false);
    et_pool_end();
    if (have_loss && !bad && (!etd_guard_grads_ok(m, r->why, sizeof r->why) ||
                              !etd_guard_buffers_ok(m, r->why, sizeof r->why)))
        bad = true;
    etd_rc rc = e->rc;
    if (!have_loss) {
        etd_err re;
        if (etd_ts_apply(m, &snap, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
    } else if (bad && policy != ETD_NF_ALLOW) {
        /* not applied: skip puts the gradients and running statistics back
         * (the dropout draws stay drawn, as after any forward); rollback goes
         * back to the last finite state, discarding the batches pending since */
        etd_err re;
        etd_nf_action a = ETD_NF_SKIPPED;
        if (policy == ETD_NF_ROLLBACK && etd_guard_restore(m, &re) == ETD_OK) {
            a = ETD_NF_ROLLED_BACK;
        } else {
            unsigned parts = snap.parts;
            snap.parts = ETD_TS_GRADS | ETD_TS_BUFFERS;
            if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
            snap.parts = parts;
        }
        etd_guard_note(m, "batches", r->why, a);
        rc = etd_model_commit(m, &snap, e);
        r->loss = lv;
        r->pending = m->ts.pending;
        r->skipped = true;
        batch_event(m, r);
    } else {
        if (bad) /* allow: counted, applied */
            etd_guard_note(m, "batches", r->why, ETD_NF_APPLIED);
        m->ts.pending++;
        m->ts.pending_loss_sum += lv;
        m->ts.has_loss = true;
        m->ts.last_loss = lv;
        rc = etd_model_commit(m, &snap, e);
        r->loss = lv;
        r->pending = m->ts.pending;
        if (rc == ETD_OK)
            batch_event(m, r);
    }
    if (dp && have_loss) { /* every replica: the loss is (NULL on every one or none) */
        bool was = rc == ETD_OK;
        rc = etd_dp_sync(m, was, e);
        etd_err re;
        if (was && rc != ETD_OK) { /* another replica failed: take the batch back here too */
            snap.parts = ETD_TS_GRADS | ETD_TS_SCALARS | ETD_TS_BUFFERS;
            if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
            atomic_store(&m->dirty, true);
            etd_model_publish(m);
        }
    }
    etd_ts_free(&snap);
    etd_model_unlock(m);
    return rc;
}

/* One optimizer step + scheduler step; *lr_used: the lr it used (group 0's).
 * loss: the step's training loss, the metric of a ReduceLROnPlateau.  A
 * OneCycleLR at its total_steps refuses before anything changes. */
static bool do_step(etd_model *m, float loss, double *lr_used, etd_err *e)
{
    *lr_used = et_optim_get_lr(m->opt);
    if (m->sched && et_scheduler_exhausted(m->sched))
        return etd_fail(e, ETD_ESTATE, "scheduler: %s has taken all its steps (a OneCycleLR's "
                        "total_steps); the model cannot step further", 
                        et_scheduler_type(m->sched)), false;
    if (et_optim_step(m->opt) != ET_OK)
        return etd_lib_fail(e, "optimizer"), false;
    et_optim_zero_grad(m->opt);
    if (m->sched && et_scheduler_step_metric(m->sched, loss) != ET_OK)
        return etd_lib_fail(e, "scheduler"), false;
    m->ts.step++;
    return true;
}

/* After a step (outside tensor pools): parameters that went non-finite are
 * undone under rollback (true: the step no longer counts, why says so) and
 * mark the model diverged otherwise.  noted: this call already counted an
 * event (a non-finite gradient applied under allow), so it is not counted
 * twice. */
static bool step_undone(etd_model *m, const char *source, bool noted, char *why, size_t cap)
{
    char w[ETD_NF_REASON - 40]; /* room for " after step N" */
    if (etd_guard_params_ok(m, w, sizeof w)) {
        m->ts.diverged = false;
        return false;
    }
    etd_err re;
    if (m->ts.nonfinite == ETD_NF_ROLLBACK && etd_guard_restore(m, &re) == ETD_OK) {
        snprintf(why, cap, "%s after step %lld", w, (long long)m->ts.step + 1);
        etd_guard_note(m, source, why, ETD_NF_ROLLED_BACK);
        return true;
    }
    m->ts.diverged = true;
    if (!noted) {
        snprintf(why, cap, "%s after step %lld", w, (long long)m->ts.step);
        etd_guard_note(m, source, why, ETD_NF_APPLIED);
    }
    return false;
}

etd_rc etd_model_step(etd_model *m, etd_step_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    if (etd_model_lock_train(m, e) != ETD_OK)
        return e->rc;
    if (m->ts.pending == 0) {
        etd_model_unlock(m);
        return etd_fail(e, ETD_ESTATE, "nothing to step: no batch is pending");
    }
    /* with --sync always a failed save rolls the step back; so does another
     * replica's failure (train_dp.c "agreement") */
    etd_train_state snap;
    etd_ts_clear(&snap);
    bool snapped = m->reg->o.sync_always || m->reg->dp;
    if ((snapped && etd_ts_capture(m, ETD_TS_ALL, true, &snap, e) != ETD_OK) ||
        (m->reg->dp && etd_dp_fault(m->reg->dp, "step", e))) {
        if (m->reg->dp) /* in place of etd_dp_sync's */
            etd_dp_agree(m, false, "", e);
        etd_ts_free(&snap);
        etd_model_unlock(m);
        return e->rc;
    }
    float loss = (float)(m->ts.pending_loss_sum / (double)m->ts.pending);
    double lr = et_optim_get_lr(m->opt);
    etd_rc rc = ETD_OK;
    int policy = m->ts.nonfinite;
    bool ok = true, skipped = false, noted = false;
    char why[ETD_NF_REASON] = "";
    if (!etd_guard_grads_ok(m, why, sizeof why)) {
        /* checked when pushed, but the sum of finite batches can overflow */
        etd_err re;
        noted = true;
        if (policy == ETD_NF_ALLOW) {
            etd_guard_note(m, "step", why, ETD_NF_APPLIED);
        } else if (policy == ETD_NF_ROLLBACK && etd_guard_restore(m, &re) == ETD_OK) {
            etd_guard_note(m, "step", why, ETD_NF_ROLLED_BACK);
            skipped = true;
        } else { /* skip: the pending batches go, no step */
            for (int i = 0; i < m->nparams; i++)
                et_set_grad(m->params[i], NULL);
            m->ts.pending = 0;
            m->ts.pending_loss_sum = 0;
            etd_guard_note(m, "step", why, ETD_NF_SKIPPED);
            skipped = true;
        }
    }
    if (!skipped) {
        et_pool_begin();
        ok = do_step(m, loss, &lr, e);
        et_pool_end();
        rc = ok ? ETD_OK : e->rc == ETD_ENOMEM || e->rc == ETD_ESTATE ? e->rc : ETD_EINTERNAL;
        if (ok) {
            m->ts.pending = 0;
            m->ts.pending_loss_sum = 0;
            skipped = step_undone(m, "step", noted, why, sizeof why);
            if (!skipped) {
                double t = etd_model_history_add(m, m->ts.step, loss, lr, etd_wall_time());
                etd_events_step(m, m->ts.step, loss, lr, t, 0);
            }
        }
    }
    if (m->reg->dp) { /* every replica, failed or not (train_dp.c "agreement") */
        bool was = ok;
        if (etd_dp_sync(m, ok, e) != ETD_OK) {
            ok = false;
            rc = e->rc;
        }
        etd_err re; /* another replica failed: the step taken back where it can be */
        if (was && !ok && snapped && etd_ts_apply(m, &snap, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
    }
    if (ok) {
        rc = etd_dp_commit(m, snapped ? &snap : NULL, e); /* replicas: the save agreed */
        etd_err ge;
        if (etd_guard_keep(m, &ge) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
        *r = (etd_step_result){m->ts.step, lr, et_optim_get_lr(m->opt), loss, skipped, ""};
        if (skipped)
            memcpy(r->why, why, sizeof why);
    } else {
        e->rc = rc;
    }
    etd_ts_free(&snap);
    etd_model_unlock(m);
    return rc;
}

/* ---------------------------------------------------------------- train */

void etd_train_result_free(etd_train_result *r)
{
    free(r->losses);
    memset(r, 0, sizeof *r);
}

/* Can the optimizer step of m fail after it has written anything?
 * et_optim_step checks every gradient's size before it writes, and then
 * fails only where a tensor it updates must be copied (nn_buf_acquire: a
 * strided or non-float32 one), which a gradient can be.  So: every
 * parameter and optimizer state tensor contiguous float32 (checked here,
 * before the call), no scheduler (its step follows the optimizer's), and
 * the gradients made contiguous before the step (grads_in_place).  Then a
 * one-step train call needs no copy of the parameters and the optimizer
 * state to be all-or-nothing: it fails before the step or not at all. */
static bool step_cannot_fail_midway(const etd_model *m)
{
    if (m->sched)
        return false;
    for (int i = 0; i < m->nparams; i++)
        if (et_tensor_dtype(m->params[i]) != ET_FLOAT32 || !et_is_contiguous(m->params[i]))
            return false;
    for (int i = 0; i < et_optim_state_count(m->opt); i++) {
        const et_tensor *t = et_optim_state_tensor(m->opt, i);
        if (!t || et_tensor_dtype(t) != ET_FLOAT32 || !et_is_contiguous(t))
            return false;
    }
    return true;
}

/* Every gradient contiguous float32 (a strided one replaced by its copy,
 * the same values), so the optimizer step that follows cannot fail half-way
 * (step_cannot_fail_midway); false + e before anything was written. */
static bool grads_in_place(etd_model *m, etd_err *e)
{
    for (int i = 0; i < m->nparams; i++) {
        et_tensor *g = et_grad(m->params[i]);
        if (!g || (et_is_contiguous(g) && et_tensor_dtype(g) == ET_FLOAT32))
            continue;
        et_tensor *c = et_tensor_dtype(g) == ET_FLOAT32 ? et_clone(g) : NULL;
        if (!c || et_set_grad(m->params[i], c) != ET_OK)
            return etd_fail(e, ETD_ENOMEM, "out of memory copying a gradient"), false;
    }
    return true;
}

etd_rc etd_train_minibatch(etd_model *m, const etd_array *x, const etd_array *y,
                           const int64_t *idx, int64_t n, const char *source,
                           etd_minibatch_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    int policy = m->ts.nonfinite;
    bool bad = false, ok = true, noted = false;
    /* the running statistics a skipped minibatch's forward would leave behind */
    etd_train_state bufs;
    etd_ts_clear(&bufs);
    bool dp = m->reg->dp != NULL;
    if ((policy != ETD_NF_ALLOW && et_module_num_buffers(m->net) > 0 &&
         etd_ts_capture(m, ETD_TS_BUFFERS, true, &bufs, e) != ETD_OK) ||
        (dp && etd_dp_fault(m->reg->dp, "minibatch", e))) {
        if (dp) /* in place of etd_dp_backward's first collective */
            etd_dp_agree(m, false, "", e);
        etd_ts_free(&bufs);
        return e->rc;
    }
    et_pool_begin();
    et_module_train(m->net, true);
    et_optim_zero_grad(m->opt);
    et_tensor *loss = NULL;
    if (dp) { /* this replica's share of the rows; the gradients summed (train_dp.c) */
        loss = etd_dp_backward(m, x, y, idx, n, policy == ETD_NF_ALLOW, e);
    } else {
        etd_tlist xb, yb;
        bool have_x = etd_inputs_of(m, x, idx, n, &xb);
        bool have_y = have_x && etd_targets_of(m, y, idx, n, &yb);
        if (!have_x || !have_y)
            etd_lib_fail(e, have_x ? "targets" : "inputs");
        else
            loss = etd_train_loss(m, &xb, &yb, e);
    }
    r->loss = loss ? et_item(loss) : NAN;
    r->lr = et_optim_get_lr(m->opt);
    if (loss && etd_guard_loss_bad(r->loss, r->why, sizeof r->why))
        bad = true;
    if (loss && !dp && (!bad || policy == ETD_NF_ALLOW) && et_backward(loss, NULL) != ET_OK) {
        etd_lib_fail(e, "backward");
        loss = NULL;
    }
    if (loss && !bad && (!etd_guard_grads_ok(m, r->why, sizeof r->why) ||
                         !etd_guard_buffers_ok(m, r->why, sizeof r->why)))
        bad = true;
    if (!loss) {
        ok = false;
    } else if (bad && policy == ETD_NF_ALLOW) {
        noted = true;
        etd_guard_note(m, source, r->why, ETD_NF_APPLIED);
    }
    if (ok && (!bad || policy == ETD_NF_ALLOW))
        ok = grads_in_place(m, e) && do_step(m, et_item(loss), &r->lr, e);
    else if (ok)
        et_optim_zero_grad(m->opt);
    et_module_train(m->net, false);
    et_pool_end();
    if (!ok) {
        if (dp && loss) /* failed here alone, after the sum: etd_dp_sync's collective */
            etd_dp_agree(m, false, "", e);
        etd_ts_free(&bufs);
        return e->rc;
    }
    if (bad && policy != ETD_NF_ALLOW) {
        /* not applied: skip leaves the model as it was before the
         * minibatch; rollback goes back to the last finite state */
        etd_err re;
        etd_nf_action a = ETD_NF_SKIPPED;
        if (policy == ETD_NF_ROLLBACK && etd_guard_restore(m, &re) == ETD_OK)
            a = ETD_NF_ROLLED_BACK;
        else if (bufs.parts && etd_ts_apply(m, &bufs, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: %s\n", m->name, re.msg);
        etd_guard_note(m, source, r->why, a);
        r->skipped = true;
    } else {
        r->skipped = step_undone(m, source, noted, r->why, sizeof r->why);
    }
    if (!r->skipped) {
        m->ts.has_loss = true;
        m->ts.last_loss = r->loss;
        r->time = etd_model_history_add(m, m->ts.step, r->loss, r->lr, etd_wall_time());
        etd_err ge;
        if (etd_guard_keep(m, &ge) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
    }
    etd_ts_free(&bufs);
    etd_model_publish_with(m, m->step_pub, m->step_pub_arg);
    return dp ? etd_dp_sync(m, true, e) : ETD_OK;
}

etd_rc etd_model_train(etd_model *m, const etd_array *x, const etd_array *y,
                       const etd_train_opts *o, etd_train_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    int64_t total;
    if (etd_train_plan(m, x, y, o->epochs, o->batch_size, &total, e) != ETD_OK)
        return e->rc;
    int64_t n = x->shape[0];
    int64_t bs = o->batch_size <= 0 || o->batch_size > n ? n : o->batch_size;
    float *losses = malloc((size_t)(total ? total : 1) * sizeof(float));
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    const etd_dp *dp = m->reg->dp;
    if (!losses || !perm) {
        free(losses);
        free(perm);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        if (dp && total > 0) /* in place of the first minibatch's first collective */
            etd_dp_agree(m, false, "", e);
        return e->rc;
    }
    if (etd_model_lock_train(m, e) != ETD_OK) { /* the same on every replica */
        free(losses);
        free(perm);
        return e->rc;
    }
    /* a bad minibatch or a failed save rolls back to this; a stop keeps the steps done.
     * One step that cannot fail half-way (step_cannot_fail_midway), with no
     * save to agree on (--sync always, replicas): a failure comes before
     * the step, so what the step writes -- the parameters and the optimizer
     * state, 3 copies of the parameters for Adam -- needs no copy; the rest
     * (counters, generator, pending gradients, running statistics, history
     * lengths) is taken as always */
    etd_train_state own;
    etd_train_state *snap;
    if (total == 1 && !dp && !m->reg->o.sync_always && step_cannot_fail_midway(m)) {
        unsigned parts = ETD_TS_SCALARS | ETD_TS_HISTORY |
                         (m->ts.pending > 0 ? ETD_TS_GRADS : 0u) |
                         (et_module_num_buffers(m->net) > 0 ? ETD_TS_BUFFERS : 0u);
        snap = etd_ts_capture(m, parts, true, &own, e) == ETD_OK ? &own : NULL;
    } else {
        snap = etd_ts_keep(m, &m->train_snap, &own, e);
    }
    if (!snap || (dp && etd_dp_fault(dp, "train", e))) {
        if (dp && total > 0)
            etd_dp_agree(m, false, "", e);
        etd_ts_free(&own);
        etd_model_unlock(m);
        free(losses);
        free(perm);
        return e->rc;
    }
    int64_t k = 0, skipped = 0;
    double lr = et_optim_get_lr(m->opt);
    bool ok = true;
    char why[ETD_NF_REASON] = "";
    etd_train_stop stopped = ETD_TRAIN_DONE;
    double max_s = m->reg->o.max_train_seconds;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t ep = 0; ep < o->epochs && ok && !stopped; ep++) {
        for (int64_t b = 0; b < n && ok; b += bs) {
            /* between two steps: the model is consistent, as if the call had
             * asked for the k steps done so far (checked before an epoch's
             * shuffle, so a stop at an epoch's end leaves the generator as
             * a call for that many epochs would) */
            if (o->progress && !o->progress(o->progress_arg, k, total)) {
                stopped = ETD_TRAIN_CANCELLED;
                break;
            }
            if (max_s > 0 && k > 0 && seconds_since(&t0) > max_s) {
                stopped = ETD_TRAIN_TIME_LIMIT;
                break;
            }
            if (b == 0)
                etd_train_permutation(m, perm, n, o->shuffle);
            int64_t bn = n - b < bs ? n - b : bs;
            etd_minibatch_result mr;
            if (etd_train_minibatch(m, x, y, perm + b, bn, "train", &mr, e) != ETD_OK) {
                /* say where, keep the field name first */
                etd_err_append(e, " (epoch %lld, minibatch %lld; nothing was changed)",
                               (long long)ep + 1, (long long)(b / bs) + 1);
                ok = false;
                break;
            }
            losses[k++] = mr.loss;
            if (mr.skipped) {
                skipped++;
                memcpy(why, mr.why, sizeof why);
            } else {
                lr = mr.lr;
                etd_events_step(m, m->ts.step, mr.loss, mr.lr, mr.time, 0);
            }
        }
    }
    etd_rc rc = e->rc;
    if (ok && k == 0) {
        rc = ETD_OK; /* stopped before the first step: nothing changed */
    } else if (ok) {
        m->ts.pending = 0;
        m->ts.pending_loss_sum = 0;
        rc = etd_dp_commit(m, snap, e); /* replicas: the save agreed */
    } else {
        etd_err re;
        if (etd_ts_apply(m, snap, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: rollback after a failed train failed: %s\n",
                    m->name, re.msg);
    }
    if (rc == ETD_OK && stopped == ETD_TRAIN_CANCELLED)
        fprintf(stderr, "easytorchd: model %s: train cancelled after %lld steps (of %lld asked); "
                "the model keeps them\n", m->name, (long long)k, (long long)total);
    else if (rc == ETD_OK && stopped == ETD_TRAIN_TIME_LIMIT)
        fprintf(stderr, "easytorchd: model %s: train stopped after %lld steps (of %lld asked) by "
                "--max-train-seconds %g; the model keeps them\n", m->name, (long long)k,
                (long long)total, max_s);
    if (rc != ETD_OK) { /* the state is the one before the call: the image follows */
        pthread_mutex_lock(&m->pub_mu); /* and the step events not yet sent go */
        while (m->ev_nsteps && m->ev_steps[m->ev_nsteps - 1].step > snap->s.step)
            m->ev_nsteps--;
        pthread_mutex_unlock(&m->pub_mu);
        etd_err ge;
        if (etd_guard_keep(m, &ge) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
    }
    if (rc == ETD_OK) {
        *r = (etd_train_result){m->ts.step, lr, k, total, stopped, losses, skipped, ""};
        memcpy(r->why, why, sizeof why);
    } else {
        free(losses);
    }
    etd_ts_free(&own);
    etd_model_unlock(m);
    free(perm);
    return rc;
}

etd_rc etd_train_plan(const etd_model *m, const etd_array *x, const etd_array *y,
                      int64_t epochs, int64_t batch_size, int64_t *total, etd_err *e)
{
    if (etd_check_inputs(m, x, e) != ETD_OK)
        return e->rc;
    if (y->ndim < 1 || y->shape[0] != x->shape[0])
        return etd_fail(e, ETD_EINVAL, "targets: expected %lld rows (as many as inputs), got %lld",
                        (long long)x->shape[0], (long long)(y->ndim ? y->shape[0] : 0));
    int64_t n = x->shape[0];
    if (n == 0)
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    int64_t bs = batch_size <= 0 || batch_size > n ? n : batch_size;
    int64_t per_epoch = (n + bs - 1) / bs;
    if (epochs > m->reg->o.max_steps / per_epoch)
        return etd_fail(e, ETD_EINVAL, "epochs: %lld epochs of %lld steps exceed the limit of "
                        "%lld steps per call (--max-steps)", (long long)epochs,
                        (long long)per_epoch, (long long)m->reg->o.max_steps);
    *total = epochs * per_epoch;
    return ETD_OK;
}

etd_rc etd_model_check_targets(etd_model *m, const etd_array *x, const etd_array *y,
                               etd_err *e)
{
    const etd_loss_type *t = m->spec.loss.type;
    /* a loss list's targets are checked by each loss when it runs (the call
     * then changes nothing) */
    if (!t->check || x->ndim < 1 || x->shape[0] < 1 || m->spec.nterms || x->nparts)
        return ETD_OK;
    etd_array one = *x; /* the first row (borrowed) */
    one.shape[0] = 1;
    one.numel = x->numel / x->shape[0];
    et_tensor *o1;
    if (etd_model_forward(m, &one, &o1, e) != ETD_OK)
        return e->rc;
    int64_t shape[ET_MAX_DIMS];
    int nd = et_ndim(o1);
    memcpy(shape, et_shape(o1), (size_t)nd * sizeof *shape);
    et_tensor_free(o1);
    if (nd < 1)
        return ETD_OK;
    shape[0] = x->shape[0];
    etd_rc rc = ETD_OK;
    et_pool_begin();
    et_tensor *zero = et_scalar(0.0f);
    et_tensor *out = zero ? et_expand(zero, shape, nd) : NULL; /* no storage of its own */
    et_tensor *yt = etd_array_as(y, m->spec.target_dtype);
    if (!out || !yt)
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
    else if (!t->check(&m->spec.loss, out, yt, e))
        rc = e->rc;
    et_pool_end();
    return rc;
}

void etd_train_permutation(etd_model *m, int64_t *perm, int64_t n, bool shuffle)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    if (shuffle) /* Fisher-Yates from the model's generator */
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(et_generator_next(m->gen) % (uint64_t)(i + 1));
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
}

void etd_probe_result_free(etd_probe_result *r)
{
    etd_tensors_free(&r->grads);
    et_tensor_free(r->input_grad);
    memset(r, 0, sizeof *r);
}

etd_rc etd_model_probe(etd_model *m, const etd_array *x, const etd_array *y,
                       etd_probe_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    if (etd_check_inputs(m, x, e) != ETD_OK || etd_model_lock(m, true, e) != ETD_OK)
        return e->rc;
    /* the accumulated gradients, the generator and the running statistics
     * go back afterwards */
    etd_train_state snap;
    if (etd_ts_capture(m, ETD_TS_GRADS | ETD_TS_SCALARS | ETD_TS_BUFFERS, true, &snap, e) !=
        ETD_OK) {
        etd_model_unlock(m);
        return e->rc;
    }
    for (int i = 0; i < m->nparams; i++)
        et_set_grad(m->params[i], NULL);
    et_pool_begin();
    et_module_train(m->net, true);
    etd_tlist xl, yl;
    et_tensor *loss = NULL, *xt = NULL;
    bool have_x = etd_inputs_of(m, x, NULL, 0, &xl);
    bool have_y = have_x && etd_targets_of(m, y, NULL, 0, &yl);
    if (have_x)
        xt = xl.t[0];   /* the input whose gradient is reported (named inputs: the first) */
    if (!have_x || !have_y)
        etd_lib_fail(e, have_x ? "targets" : "inputs");
    else if (et_tensor_dtype(xt) != ET_FLOAT32) /* indices have no gradient (torch's neither) */
        loss = etd_train_loss(m, &xl, &yl, e);
    else if (et_set_requires_grad(xt, true) != ET_OK)
        etd_lib_fail(e, "inputs");
    else
        loss = etd_train_loss(m, &xl, &yl, e);
    if (loss && et_backward(loss, NULL) != ET_OK) {
        etd_lib_fail(e, "backward");
        loss = NULL;
    }
    et_module_train(m->net, false);
    etd_rc rc = loss ? ETD_OK : e->rc;
    if (loss) {
        r->loss = et_item(loss);
        et_tensor *xg = et_grad(xt);
        /* made in the pool: one more reference keeps it past the pool's end;
         * index inputs get zeros of their shape */
        r->input_grad = et_tensor_ref(xg ? et_clone(xg) : et_zeros(et_shape(xt), et_ndim(xt)));
        if (!r->input_grad)
            rc = etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    et_pool_end();
    if (rc == ETD_OK) /* outside the pool: the copies are ours */
        rc = etd_model_copy_tensors(m, true, &r->grads, e);
    etd_err re;
    if (etd_ts_apply(m, &snap, &re) != ETD_OK)
        fprintf(stderr, "easytorchd: model %s: restoring after a gradient probe failed: %s\n",
                m->name, re.msg);
    etd_ts_free(&snap);
    etd_model_unlock(m);
    if (rc != ETD_OK)
        etd_probe_result_free(r);
    return rc;
}

