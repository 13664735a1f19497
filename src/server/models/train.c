/* train.c - the calls that run the network (models.h): forward, pushing a
 * batch, the optimizer step, train, and the gradient probe.  Each takes the
 * model's lock, opens one tensor pool per forward/backward and, where it
 * changes the model, rolls back to a snapshot (train_state.c) when it fails
 * half-way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/models/model_internal.h"

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---------------------------------------------------------------- inputs */

/* An input batch against the first layer that fixes its size. */
static etd_rc check_inputs(const etd_model *m, const etd_array *x, etd_err *e)
{
    if (x->ndim < 1)
        return etd_fail(e, ETD_EINVAL, "inputs: expected a batch (a list), got a scalar");
    int64_t in = m->spec.in_features;
    if (in >= 0 && x->shape[x->ndim - 1] != in) {
        char s[160];
        et_shape_str(x->shape, x->ndim, s, sizeof s);
        return etd_fail(e, ETD_EINVAL, "inputs: expected shape [batch, %lld] (%s = %lld), got %s",
                        (long long)in, m->spec.in_field, (long long)in, s);
    }
    return ETD_OK;
}

/* t (pool-owned) for a model taking dt.  The endpoints give index inputs
 * (first layer Embedding) and class targets as int64 already; floats
 * there are left to the layer or the loss, whose messages name the bad
 * element.  int64 for a float model becomes float32 (as torch's .float()). */
static et_tensor *as_dtype(et_tensor *t, et_dtype dt)
{
    return t && dt == ET_FLOAT32 && et_tensor_dtype(t) == ET_INT64 ? et_to_dtype(t, dt) : t;
}

static et_tensor *array_tensor(const etd_array *a, et_dtype dt)
{
    return as_dtype(etd_array_tensor(a), dt);
}

/* Rows idx[0..n) of a (first dimension) as a new tensor in the current pool. */
static et_tensor *gather_rows(const etd_array *a, const int64_t *idx, int64_t n, et_dtype dt)
{
    int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
    int64_t total = n * row;
    size_t es = a->dtype == ET_INT64 ? sizeof(int64_t) : sizeof(float);
    const char *src = a->dtype == ET_INT64 ? (const char *)a->idata : (const char *)a->data;
    char *buf = malloc((size_t)(total > 0 ? total : 1) * es);
    if (!buf)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        memcpy(buf + (size_t)(i * row) * es, src + (size_t)(idx[i] * row) * es, (size_t)row * es);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n;
    et_tensor *t = a->dtype == ET_INT64 ? et_tensor_new_int64((const int64_t *)(void *)buf,
                                                              shape, a->ndim)
                                        : et_tensor_new((const float *)(void *)buf, shape, a->ndim);
    free(buf);
    return as_dtype(t, dt);
}

static etd_rc lib_fail(etd_err *e, const char *what)
{
    return etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s", what,
                    et_errmsg());
}

/* The network on x, layer by layer, so that a failure names the layer as
 * the spec does: "layers[3] (MaxPool2d): input [32, 8, 1, 1] is smaller
 * than kernel 2" (the library's own "MaxPool2d: " or "BatchNorm1d(64): "
 * prefix is dropped: the spec's name says it).  Pool-owned result or NULL + e. */
static et_tensor *run_net(etd_model *m, et_tensor *x, etd_err *e)
{
    if (!x)
        return lib_fail(e, "inputs"), NULL;
    int n = et_sequential_len(m->net);
    for (int i = 0; i < n && x; i++) {
        et_module *layer = et_sequential_get(m->net, i);
        et_tensor *y = et_module_forward(layer, x);
        if (!y) {
            const char *type = et_module_type(layer), *msg = et_errmsg();
            size_t tl = strlen(type);
            if (strncmp(msg, type, tl) == 0 && (msg[tl] == ':' || msg[tl] == '(')) {
                const char *colon = strstr(msg + tl, ": ");
                if (colon)
                    msg = colon + 2;
            }
            etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL,
                     "layers[%d] (%s): %s", i, type, msg);
            return NULL;
        }
        x = y;
    }
    return x;
}

/* Forward + loss in training mode: the loss tensor (pool-owned) or NULL + e. */
static et_tensor *train_loss(etd_model *m, et_tensor *xt, et_tensor *yt, etd_err *e)
{
    et_tensor *out = run_net(m, xt, e);
    if (!out)
        return NULL;
    et_tensor *loss = etd_spec_loss(&m->spec, out, yt, e);
    if (loss && et_numel(loss) != 1)
        return etd_fail(e, ETD_EINVAL, "loss: expected a scalar"), NULL;
    return loss;
}

/* ---------------------------------------------------------------- forward, batches, step */

etd_rc etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, etd_err *e)
{
    *y = NULL;
    if (check_inputs(m, x, e) != ETD_OK || etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = ETD_OK;
    et_pool_begin();
    et_tensor *xt = array_tensor(x, m->spec.input_dtype), *out = NULL;
    ET_NO_GRAD { out = run_net(m, xt, e); }
    if (!out)
        rc = e->rc;
    else
        *y = et_tensor_ref(out);
    et_pool_end();
    etd_model_unlock(m);
    return rc;
}

etd_rc etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y,
                            etd_batch_result *r, etd_err *e)
{
    if (check_inputs(m, x, e) != ETD_OK || etd_model_lock(m, true, e) != ETD_OK)
        return e->rc;
    /* a failed backward or save puts the gradients, counters and running
     * statistics (a training-mode forward updates them) back */
    etd_train_state snap;
    if (etd_ts_capture(m, ETD_TS_GRADS | ETD_TS_SCALARS | ETD_TS_BUFFERS, true, &snap, e) !=
        ETD_OK) {
        etd_model_unlock(m);
        return e->rc;
    }
    et_pool_begin();
    et_module_train(m->net, true);
    et_tensor *xt = array_tensor(x, m->spec.input_dtype), *loss = NULL;
    et_tensor *yt = xt ? array_tensor(y, m->spec.target_dtype) : NULL;
    if (!xt || !yt)
        lib_fail(e, xt ? "targets" : "inputs");
    else
        loss = train_loss(m, xt, yt, e);
    if (loss && et_backward(loss, NULL) != ET_OK) {
        lib_fail(e, "backward");
        loss = NULL;
    }
    et_module_train(m->net, false);
    float lv = loss ? et_item(loss) : 0;
    et_pool_end();
    etd_rc rc = e->rc;
    if (!loss) {
        etd_err re;
        if (etd_ts_apply(m, &snap, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
    } else {
        m->ts.pending++;
        m->ts.pending_loss_sum += lv;
        m->ts.has_loss = true;
        m->ts.last_loss = lv;
        rc = etd_model_commit(m, &snap, e);
        *r = (etd_batch_result){lv, m->ts.pending};
    }
    etd_ts_free(&snap);
    etd_model_unlock(m);
    return rc;
}

/* One optimizer step + scheduler step; *lr_used: the lr it used. */
static bool do_step(etd_model *m, double *lr_used, etd_err *e)
{
    *lr_used = et_optim_get_lr(m->opt);
    if (et_optim_step(m->opt) != ET_OK)
        return lib_fail(e, "optimizer"), false;
    et_optim_zero_grad(m->opt);
    if (m->sched && et_scheduler_step(m->sched) != ET_OK)
        return lib_fail(e, "scheduler"), false;
    m->ts.step++;
    return true;
}

etd_rc etd_model_step(etd_model *m, etd_step_result *r, etd_err *e)
{
    if (etd_model_lock(m, true, e) != ETD_OK)
        return e->rc;
    if (m->ts.pending == 0) {
        etd_model_unlock(m);
        return etd_fail(e, ETD_ESTATE, "nothing to step: no batch is pending");
    }
    /* with --sync always a failed save rolls the step back */
    etd_train_state snap = {0};
    bool snapped = m->reg->o.sync_always;
    if (snapped && etd_ts_capture(m, ETD_TS_ALL, true, &snap, e) != ETD_OK) {
        etd_model_unlock(m);
        return e->rc;
    }
    double lr;
    et_pool_begin();
    bool ok = do_step(m, &lr, e);
    et_pool_end();
    etd_rc rc = ok ? ETD_OK : e->rc == ETD_ENOMEM ? ETD_ENOMEM : ETD_EINTERNAL;
    if (ok) {
        float loss = (float)(m->ts.pending_loss_sum / (double)m->ts.pending);
        m->ts.pending = 0;
        m->ts.pending_loss_sum = 0;
        etd_model_history_add(m, m->ts.step, loss);
        rc = etd_model_commit(m, snapped ? &snap : NULL, e);
        *r = (etd_step_result){m->ts.step, lr, et_optim_get_lr(m->opt), loss};
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

etd_rc etd_model_train(etd_model *m, const etd_array *x, const etd_array *y,
                       const etd_train_opts *o, etd_train_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    if (check_inputs(m, x, e) != ETD_OK)
        return e->rc;
    if (y->ndim < 1 || y->shape[0] != x->shape[0])
        return etd_fail(e, ETD_EINVAL, "targets: expected %lld rows (as many as inputs), got %lld",
                        (long long)x->shape[0], (long long)(y->ndim ? y->shape[0] : 0));
    int64_t n = x->shape[0];
    if (n == 0)
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    int64_t bs = o->batch_size <= 0 || o->batch_size > n ? n : o->batch_size;
    int64_t per_epoch = (n + bs - 1) / bs;
    if (o->epochs > m->reg->o.max_steps / per_epoch)
        return etd_fail(e, ETD_EINVAL, "epochs: %lld epochs of %lld steps exceed the limit of "
                        "%lld steps per call (--max-steps)", (long long)o->epochs,
                        (long long)per_epoch, (long long)m->reg->o.max_steps);
    int64_t total = o->epochs * per_epoch;
    float *losses = malloc((size_t)(total ? total : 1) * sizeof(float));
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    if (!losses || !perm) {
        free(losses);
        free(perm);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    if (etd_model_lock(m, true, e) != ETD_OK) {
        free(losses);
        free(perm);
        return e->rc;
    }
    /* a bad minibatch or a failed save rolls back to this; a stop keeps the steps done */
    etd_train_state snap;
    if (etd_ts_capture(m, ETD_TS_ALL, true, &snap, e) != ETD_OK) {
        etd_model_unlock(m);
        free(losses);
        free(perm);
        return e->rc;
    }
    int64_t k = 0;
    double lr = 0;
    bool ok = true;
    etd_train_stop stopped = ETD_TRAIN_DONE;
    double max_s = m->reg->o.max_train_seconds;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    et_module_train(m->net, true);
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
            if (b == 0) {
                for (int64_t i = 0; i < n; i++)
                    perm[i] = i;
                if (o->shuffle) /* Fisher-Yates from the model's generator */
                    for (int64_t i = n - 1; i > 0; i--) {
                        int64_t j = (int64_t)(et_generator_next(m->gen) % (uint64_t)(i + 1));
                        int64_t t = perm[i];
                        perm[i] = perm[j];
                        perm[j] = t;
                    }
            }
            int64_t bn = n - b < bs ? n - b : bs;
            et_pool_begin();
            et_tensor *xb = gather_rows(x, perm + b, bn, m->spec.input_dtype);
            et_tensor *yb = xb ? gather_rows(y, perm + b, bn, m->spec.target_dtype) : NULL;
            et_optim_zero_grad(m->opt);
            et_tensor *loss = NULL;
            if (!xb || !yb)
                lib_fail(e, xb ? "targets" : "inputs");
            else
                loss = train_loss(m, xb, yb, e);
            if (loss && et_backward(loss, NULL) != ET_OK) {
                lib_fail(e, "backward");
                loss = NULL;
            }
            if (loss && do_step(m, &lr, e)) {
                float lv = et_item(loss);
                losses[k++] = lv;
                m->ts.has_loss = true;
                m->ts.last_loss = lv;
                etd_model_history_add(m, m->ts.step, lv);
                etd_model_publish(m);
            } else {
                /* say where, keep the field name first */
                etd_err_append(e, " (epoch %lld, minibatch %lld; nothing was changed)",
                               (long long)ep + 1, (long long)(b / bs) + 1);
                ok = false;
            }
            et_pool_end();
        }
    }
    et_module_train(m->net, false);
    etd_rc rc = e->rc;
    if (ok && k == 0) {
        rc = ETD_OK; /* stopped before the first step: nothing changed */
    } else if (ok) {
        m->ts.pending = 0;
        m->ts.pending_loss_sum = 0;
        rc = etd_model_commit(m, &snap, e);
    } else {
        etd_err re;
        if (etd_ts_apply(m, &snap, &re) != ETD_OK)
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
    if (rc == ETD_OK)
        *r = (etd_train_result){m->ts.step, lr, k, total, stopped, losses};
    else
        free(losses);
    etd_ts_free(&snap);
    etd_model_unlock(m);
    free(perm);
    return rc;
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
    if (check_inputs(m, x, e) != ETD_OK || etd_model_lock(m, true, e) != ETD_OK)
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
    et_tensor *xt = array_tensor(x, m->spec.input_dtype), *loss = NULL;
    et_tensor *yt = xt ? array_tensor(y, m->spec.target_dtype) : NULL;
    if (!xt || !yt)
        lib_fail(e, xt ? "targets" : "inputs");
    else if (m->spec.input_dtype != ET_FLOAT32) /* indices have no gradient (torch's neither) */
        loss = train_loss(m, xt, yt, e);
    else if (et_set_requires_grad(xt, true) != ET_OK)
        lib_fail(e, "inputs");
    else
        loss = train_loss(m, xt, yt, e);
    if (loss && et_backward(loss, NULL) != ET_OK) {
        lib_fail(e, "backward");
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

