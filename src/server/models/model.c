/* model.c - one model of easytorchd (models.h): build and free, the
 * published summary and loss history, locks, saves and the commit of a
 * change, checkpoints, reading gradients and parameters, replacing the
 * parameters.  The training calls are in train.c.  No HTTP: result codes
 * and plain structs. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/formats/modelfile.h"
#include "server/models/model_internal.h"
#include "server/models/spec_graph.h"

/* ---------------------------------------------------------------- lifetime */

void etd_model_destroy(etd_model *m)
{
    if (!m)
        return;
    etd_guard_drop(m);
    if (m->train_snap) {
        etd_ts_free(m->train_snap);
        free(m->train_snap);
    }
    etd_versions_free(m->vers);
    et_scheduler_free(m->sched);
    et_optim_free(m->opt);
    et_module_free(m->net);
    et_generator_free(m->gen);
    free(m->params);
    etd_spec_free(&m->spec);
    free(m->spec_json);
    free(m->h_step);
    free(m->h_loss);
    free(m->h_lr);
    free(m->h_time);
    for (size_t i = 0; i < m->mk_len; i++)
        free(m->mk[i].json);
    free(m->mk);
    free(m->v);
    free(m->jobs);
    free(m->ev_steps);
    etd_events_model_ring_free(m->ev_ring);
    pthread_cond_destroy(&m->job_cv);
    etd_batcher_free(m->batcher);
    et_pack_cache_free(m->pack);
    etd_mlock_destroy(&m->lock);
    pthread_mutex_destroy(&m->pub_mu);
    free(m);
}

void etd_model_unref(etd_model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        etd_model_destroy(m);
}

etd_model *etd_model_build(etd_registry *r, const char *name, etd_spec *spec, char *spec_json,
                           uint64_t seed, etd_err *e)
{
    etd_model *m = calloc(1, sizeof *m);
    if (!m) {
        etd_spec_free(spec);
        free(spec_json);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->reg = r;
    atomic_init(&m->refs, 1);
    atomic_init(&m->dirty, false);
    etd_mlock_init(&m->lock);
    pthread_cond_init(&m->job_cv, NULL);
    pthread_mutex_init(&m->pub_mu, NULL);
    m->spec = *spec;
    memset(spec, 0, sizeof *spec);
    m->spec_json = spec_json;
    m->seed = seed;
    if (!(m->gen = et_generator_new(seed))) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    if (!(m->net = etd_spec_build_net(&m->spec, m->gen, e)))
        goto fail;
    /* which rows a graph keeps apart needs the ranks of its parameters */
    if (m->spec.max_batch_size > 0 && m->spec.graph &&
        !etd_graph_check_batching(m->spec.graph, m->net, e))
        goto fail;
    et_module_train(m->net, false);
    m->nparams = et_module_num_params(m->net);
    m->params = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *m->params);
    if (!m->params) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m->nparams; i++)
        m->params[i] = et_module_param(m->net, i);
    const char **pnames = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *pnames);
    if (!pnames) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m->nparams; i++)
        pnames[i] = et_module_param_name(m->net, i);
    m->opt = etd_spec_build_optim(&m->spec, m->params, pnames, m->nparams, e);
    free(pnames);
    if (!m->opt)
        goto fail;
    if (m->spec.sched.type && !(m->sched = etd_spec_build_sched(&m->spec, m->opt, e)))
        goto fail;
    /* the training state mirrors them in fixed arrays (model_internal.h) */
    if (et_optim_num_groups(m->opt) * et_optim_num_hparams(m->opt) > ETD_TS_MAX_HP ||
        (m->sched && et_scheduler_state_count(m->sched) > ETD_TS_MAX_SCHED)) {
        etd_fail(e, ETD_EINVAL, "optimizer/scheduler: too much state to keep (at most %d "
                 "hyper-parameters over all param_groups, %d scheduler values)", ETD_TS_MAX_HP,
                 ETD_TS_MAX_SCHED);
        goto fail;
    }
    m->ts.lr_base = m->sched != NULL; /* it took spec.optimizer.lr as torch's initial_lr */
    if (r->events && !(m->ev_ring = etd_events_model_ring(r->events))) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    m->ts.nonfinite = m->spec.nonfinite;
    m->hp_stale = true;
    if (etd_guard_keep(m, e) != ETD_OK)
        goto fail;
    if (m->spec.max_batch_size > 0 &&
        (!(m->batcher = etd_batcher_new(m->spec.max_batch_size, m->spec.max_delay_us)) ||
         !(m->pack = et_pack_cache_new(ETD_PACK_CACHE_BYTES)))) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    etd_model_publish(m);
    return m;
fail:
    etd_model_destroy(m);
    return NULL;
}

/* ---------------------------------------------------------------- what readers see */

void etd_model_publish(etd_model *m)
{
    etd_model_publish_with(m, NULL, NULL);
}

void etd_model_publish_with(etd_model *m, void (*fn)(etd_model *m, void *arg), void *arg)
{
    etd_nf_summary nf = {m->ts.nonfinite, m->ts.diverged, m->ts.nf_count, m->ts.nf_step,
                         m->ts.nf_time, m->ts.nf_action, "", ""};
    memcpy(nf.source, m->ts.nf_source, sizeof nf.source);
    memcpy(nf.reason, m->ts.nf_reason, sizeof nf.reason);
    bool hp = m->sched || m->hp_stale;
    int ng = et_optim_num_groups(m->opt), nk = et_optim_num_hparams(m->opt), n = 0;
    double v[ETD_TS_MAX_HP];
    for (int g = 0; hp && g < ng; g++)
        for (int k = 0; k < nk && n < ETD_TS_MAX_HP; k++)
            v[n++] = et_optim_group_get(m->opt, g, et_optim_hparam_name(m->opt, k));
    m->hp_stale = false;
    pthread_mutex_lock(&m->pub_mu);
    m->pub = (etd_model_summary){m->ts.step, m->ts.pending, m->ts.has_loss, m->ts.last_loss,
                                 et_optim_get_lr(m->opt), nf};
    if (hp) {
        m->pub_ng = ng;
        memcpy(m->pub_hp, v, (size_t)n * sizeof *v);
    }
    if (fn)
        fn(m, arg);
    pthread_mutex_unlock(&m->pub_mu);
}

double etd_model_history_add(etd_model *m, int64_t step, float loss, double lr, double time)
{
    /* milliseconds: what a chart resolves, and short in JSON (k / 1000.0 is
     * the double nearest k ms, so it prints as written and reads back equal) */
    if (isfinite(time))
        time = round(time * 1000.0) / 1000.0;
    pthread_mutex_lock(&m->pub_mu);
    size_t max = m->reg->o.max_history;
    if (max && m->h_len >= max) { /* drop the oldest half: amortised O(1) */
        size_t drop = m->h_len - max / 2;
        memmove(m->h_step, m->h_step + drop, (m->h_len - drop) * sizeof *m->h_step);
        memmove(m->h_loss, m->h_loss + drop, (m->h_len - drop) * sizeof *m->h_loss);
        memmove(m->h_lr, m->h_lr + drop, (m->h_len - drop) * sizeof *m->h_lr);
        memmove(m->h_time, m->h_time + drop, (m->h_len - drop) * sizeof *m->h_time);
        m->h_len -= drop;
        /* the dashboard marks where the kept history starts */
        char data[96];
        snprintf(data, sizeof data, "\"dropped\":%zu,\"first_step\":%lld", drop,
                 (long long)m->h_step[0]);
        etd_model_marker_add_locked(m, m->h_step[0], ETD_MK_TRUNCATED, data);
    }
    if (m->h_len == m->h_cap) {
        /* each array keeps what it got: a failed realloc leaves it valid and
         * h_cap as it was, so the next append tries again */
        size_t cap = m->h_cap ? m->h_cap * 2 : 64;
        int64_t *s = realloc(m->h_step, cap * sizeof *s);
        if (s)
            m->h_step = s;
        float *l = realloc(m->h_loss, cap * sizeof *l);
        if (l)
            m->h_loss = l;
        double *r = realloc(m->h_lr, cap * sizeof *r);
        if (r)
            m->h_lr = r;
        double *t = realloc(m->h_time, cap * sizeof *t);
        if (t)
            m->h_time = t;
        if (!s || !l || !r || !t) {
            pthread_mutex_unlock(&m->pub_mu);
            return time;
        }
        m->h_cap = cap;
    }
    if (m->h_len && isfinite(time) && time < m->h_time[m->h_len - 1])
        time = m->h_time[m->h_len - 1]; /* NaN < x is false: an unknown one is no floor */
    m->h_step[m->h_len] = step;
    m->h_loss[m->h_len] = loss;
    m->h_lr[m->h_len] = lr;
    m->h_time[m->h_len] = time;
    m->h_len++;
    pthread_mutex_unlock(&m->pub_mu);
    return time;
}

/* ---------------------------------------------------------------- markers */

double etd_wall_time(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

const char *const etd_marker_kinds[] = {"nonfinite", "hyperparameters", "truncated", "version",
                                        NULL};

void etd_model_marker_add_locked(etd_model *m, int64_t step, etd_marker_kind kind,
                                 const char *data)
{
    if (m->mk_len == ETD_MARKERS) { /* the oldest goes */
        free(m->mk[0].json);
        memmove(m->mk, m->mk + 1, (m->mk_len - 1) * sizeof *m->mk);
        m->mk_len--;
    }
    if (m->mk_len == m->mk_cap) {
        size_t cap = m->mk_cap ? m->mk_cap * 2 : 16;
        etd_marker *n = realloc(m->mk, cap * sizeof *n);
        if (!n)
            return;
        m->mk = n;
        m->mk_cap = cap;
    }
    char *j = strdup(data ? data : "");
    if (!j)
        return;
    m->mk[m->mk_len++] = (etd_marker){step, etd_wall_time(), kind, j};
}

void etd_model_marker_add(etd_model *m, int64_t step, etd_marker_kind kind, const char *data)
{
    pthread_mutex_lock(&m->pub_mu);
    etd_model_marker_add_locked(m, step, kind, data);
    pthread_mutex_unlock(&m->pub_mu);
}

const char *etd_model_name(const etd_model *m) { return m->name; }

bool etd_model_batching(const etd_model *m) { return m->batcher != NULL; }

bool etd_model_saves_each_change(const etd_model *m) { return m->reg->o.sync_always; }

etd_model *etd_model_ref(etd_model *m)
{
    atomic_fetch_add(&m->refs, 1);
    return m;
}

const char *etd_model_param_name(const etd_model *m, int i)
{
    return et_module_param_name(m->net, i);
}

const char *etd_model_buffer_name(const etd_model *m, int i)
{
    return et_module_buffer_name(m->net, i);
}

bool etd_model_state_is_int64(const etd_model *m, const char *name)
{
    for (int k = 0; k < et_module_num_state(m->net); k++)
        if (strcmp(et_module_state_name(m->net, k), name) == 0)
            return et_tensor_dtype(et_module_state_tensor(m->net, k)) == ET_INT64;
    return false;
}

bool etd_model_targets_float_ok(const etd_model *m) { return m->spec.target_float_ok; }

void etd_model_dtypes(const etd_model *m, et_dtype *inputs, et_dtype *targets)
{
    *inputs = m->spec.input_dtype;
    *targets = m->spec.target_dtype;
}

void etd_model_io_get(const etd_model *m, etd_model_io *io)
{
    memset(io, 0, sizeof *io);
    const etd_graph *g = m->spec.graph;
    io->graph = g != NULL;
    io->ninputs = g ? etd_graph_num_inputs(g) : 1;
    io->noutputs = g ? etd_graph_num_outputs(g) : 1;
    for (int i = 0; g && i < io->ninputs; i++) {
        io->inputs[i] = etd_graph_input(g, i);
        io->in_dtype[i] = etd_graph_input_dtype(g, i);
        io->in_features[i] = etd_graph_input_features(g, i);
    }
    for (int i = 0; g && i < io->noutputs; i++) {
        io->outputs[i] = etd_graph_output(g, i);
        io->out_features[i] = etd_graph_output_features(g, i);
    }
    io->ntargets = m->spec.nterms ? m->spec.ntargets : 1;
    for (int i = 0; m->spec.nterms && i < io->ntargets; i++) {
        io->targets[i] = m->spec.target_names[i];
        io->target_dtype[i] = m->spec.target_dtypes[i];
        io->target_float_ok[i] = m->spec.target_float_oks[i];
    }
    io->named = g && (io->ninputs > 1 || io->noutputs > 1 || m->spec.nterms > 0);
}

void etd_model_write_spec(etd_model *m, etd_buf *out)
{
    pthread_mutex_lock(&m->pub_mu);
    etd_buf_puts(out, m->spec_json);
    pthread_mutex_unlock(&m->pub_mu);
}

void etd_model_info_get(etd_model *m, etd_model_info *info)
{
    info->name = m->name;
    info->seed = m->seed;
    info->param_count = m->spec.param_count;
    info->nparams = m->nparams;
    info->nbuffers = et_module_num_buffers(m->net);
    info->in_features = m->spec.in_features;
    info->out_features = m->spec.out_features;
    pthread_mutex_lock(&m->pub_mu);
    info->sum = m->pub;
    pthread_mutex_unlock(&m->pub_mu);
}

etd_rc etd_model_loss_history(etd_model *m, int64_t since, etd_history *h, etd_err *e)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_lock(&m->pub_mu);
    size_t lo = 0, hi = m->h_len;
    while (lo < hi) { /* first entry with step > since */
        size_t mid = (lo + hi) / 2;
        if (m->h_step[mid] <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    h->step = m->pub.step;
    h->n = m->h_len - lo;
    h->steps = malloc((h->n ? h->n : 1) * sizeof *h->steps);
    h->losses = malloc((h->n ? h->n : 1) * sizeof *h->losses);
    h->lrs = malloc((h->n ? h->n : 1) * sizeof *h->lrs);
    h->times = malloc((h->n ? h->n : 1) * sizeof *h->times);
    if (h->steps && h->losses && h->lrs && h->times && h->n) {
        memcpy(h->steps, m->h_step + lo, h->n * sizeof *h->steps);
        memcpy(h->losses, m->h_loss + lo, h->n * sizeof *h->losses);
        memcpy(h->lrs, m->h_lr + lo, h->n * sizeof *h->lrs);
        memcpy(h->times, m->h_time + lo, h->n * sizeof *h->times);
    }
    /* the markers after since (copies) */
    size_t k = 0;
    while (k < m->mk_len && m->mk[k].step <= since)
        k++;
    h->nmarkers = m->mk_len - k;
    h->markers = calloc(h->nmarkers ? h->nmarkers : 1, sizeof *h->markers);
    bool mk_ok = h->markers != NULL;
    for (size_t i = 0; mk_ok && i < h->nmarkers; i++) {
        h->markers[i] = m->mk[k + i];
        mk_ok = (h->markers[i].json = strdup(m->mk[k + i].json)) != NULL;
    }
    pthread_mutex_unlock(&m->pub_mu);
    if (!h->steps || !h->losses || !h->lrs || !h->times || !mk_ok) {
        etd_history_free(h);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    return ETD_OK;
}

void etd_history_free(etd_history *h)
{
    free(h->steps);
    free(h->losses);
    free(h->lrs);
    free(h->times);
    for (size_t i = 0; h->markers && i < h->nmarkers; i++)
        free(h->markers[i].json);
    free(h->markers);
    memset(h, 0, sizeof *h);
}

/* ---------------------------------------------------------------- saves */

etd_rc etd_model_lock_train(etd_model *m, etd_err *e)
{
    if (etd_model_lock(m, true, e) != ETD_OK)
        return e->rc;
    if (etd_model_job_busy(m, e) != ETD_OK) {
        etd_model_unlock(m);
        return e->rc;
    }
    return ETD_OK;
}

etd_rc etd_model_save_locked(etd_model *m, bool *replaced_out, etd_err *e)
{
    bool replaced = false;
    if (replaced_out)
        *replaced_out = false;
    if (m->deleted || m->frozen)
        return ETD_OK;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (etd_ts_encode(m, &buf, &len, e) != ETD_OK)
        return e->rc;
    etd_err fe;
    etd_rc rc = etd_modelfile_write(m->reg->data_dir, m->name, buf, len, &replaced, &fe);
    if (replaced_out)
        *replaced_out = replaced;
    free(buf);
    if (rc == ETD_OK) {
        atomic_store(&m->dirty, false);
        return ETD_OK;
    }
    return etd_fail(e, rc, "saving model \"%s\" failed: %s%s", m->name, fe.msg,
                    replaced ? "" : " (the previous file is kept)");
}

/* After a change under the write lock: persist it now (--sync always) or
 * mark the model for the saver.  A failed synchronous save puts the model
 * back to snap -- the state its file still holds -- so the failed call
 * changes nothing, and fails the call. */
etd_rc etd_model_commit(etd_model *m, const etd_train_state *snap, etd_err *e)
{
    atomic_store(&m->dirty, true);
    bool replaced;
    if (m->reg->o.sync_always && etd_model_save_locked(m, &replaced, e) != ETD_OK) {
        fprintf(stderr, "easytorchd: %s\n", e->msg);
        etd_err re;
        if (snap && etd_ts_apply(m, snap, &re) != ETD_OK) {
            fprintf(stderr, "easytorchd: model %s: rollback after a failed save failed: %s\n",
                    m->name, re.msg);
        } else {
            etd_err_append(e, "; the request changed nothing");
            /* the refused state reached the file (only the directory's fsync
             * failed): put the state it had back at once */
            if (replaced && etd_model_save_locked(m, NULL, &re) != ETD_OK)
                fprintf(stderr, "easytorchd: %s\n", re.msg);
        }
        etd_model_publish(m);
        return e->rc;
    }
    etd_model_publish(m);
    return ETD_OK;
}

etd_rc etd_model_checkpoint(etd_model *m, int64_t *step, etd_err *e)
{
    if (etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = etd_model_save_locked(m, NULL, e);
    *step = m->ts.step;
    etd_model_unlock(m);
    if (rc != ETD_OK)
        fprintf(stderr, "easytorchd: %s\n", e->msg);
    return rc;
}

/* Copies of the state_dict -- parameters and buffers, torch's flat names
 * and order -- or (grad) of the parameters' gradients, zeros where none. */
etd_rc etd_model_copy_tensors(etd_model *m, bool grad, etd_tensors *out, etd_err *e)
{
    int n = grad ? m->nparams : et_module_num_state(m->net);
    out->n = n;
    out->names = calloc((size_t)n + 1, sizeof *out->names);
    out->t = calloc((size_t)n + 1, sizeof *out->t);
    bool ok = out->names && out->t;
    for (int i = 0; ok && i < n; i++) {
        if (grad) {
            out->names[i] = et_module_param_name(m->net, i);
            et_tensor *src = et_grad(m->params[i]);
            out->t[i] = src ? et_clone(src) : et_zeros_like(m->params[i]);
        } else {
            out->names[i] = et_module_state_name(m->net, i);
            out->t[i] = et_clone(et_module_state_tensor(m->net, i));
        }
        ok = out->t[i] != NULL;
    }
    if (!ok) {
        etd_tensors_free(out);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    return ETD_OK;
}

/* ---------------------------------------------------------------- gradients, parameters */

void etd_tensors_free(etd_tensors *t)
{
    for (int i = 0; t->t && i < t->n; i++)
        et_tensor_free(t->t[i]);
    free(t->t);
    free(t->names);
    memset(t, 0, sizeof *t);
}

etd_rc etd_model_gradients(etd_model *m, etd_tensors *g, int64_t *pending, etd_err *e)
{
    memset(g, 0, sizeof *g);
    if (etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = etd_model_copy_tensors(m, true, g, e);
    *pending = m->ts.pending;
    etd_model_unlock(m);
    return rc;
}

etd_rc etd_model_parameters(etd_model *m, etd_tensors *p, etd_err *e)
{
    memset(p, 0, sizeof *p);
    if (etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = etd_model_copy_tensors(m, false, p, e);
    etd_model_unlock(m);
    return rc;
}

etd_rc etd_model_put_parameters(etd_model *m, const et_tensor_dict *d, etd_err *e)
{
    /* names and shapes first, with messages naming the parameter */
    int n = et_tensor_dict_len(d), ns = et_module_num_state(m->net);
    for (int i = 0; i < n; i++) {
        const char *name = et_tensor_dict_name(d, i);
        et_tensor *p = NULL;   /* a parameter or a buffer (torch's state_dict names) */
        for (int k = 0; k < ns && !p; k++)
            if (strcmp(et_module_state_name(m->net, k), name) == 0)
                p = et_module_state_tensor(m->net, k);
        if (!p) {
            etd_fail(e, ETD_EINVAL, "parameters.%s: unknown parameter (the model has:", name);
            for (int k = 0; k < ns; k++)
                etd_err_append(e, " %s", et_module_state_name(m->net, k));
            etd_err_append(e, ")");
            return e->rc;
        }
        et_tensor *t = et_tensor_dict_tensor(d, i);
        if (!et_same_shape(p, t)) {
            char a[128], b[128];
            et_shape_str(et_shape(p), et_ndim(p), a, sizeof a);
            et_shape_str(et_shape(t), et_ndim(t), b, sizeof b);
            return etd_fail(e, ETD_EINVAL, "parameters.%s: expected shape %s, got %s", name, a, b);
        }
    }
    for (int k = 0; k < ns; k++)
        if (!et_tensor_dict_get(d, et_module_state_name(m->net, k)))
            return etd_fail(e, ETD_EINVAL, "parameters.%s: missing (every parameter%s must be given)",
                            et_module_state_name(m->net, k),
                            et_module_num_buffers(m->net) ? " and buffer" : "");
    if (etd_model_lock_train(m, e) != ETD_OK)
        return e->rc;
    etd_train_state snap = {0};
    bool snapped = m->reg->o.sync_always;
    if (snapped && etd_ts_capture(m, ETD_TS_PARAMS | ETD_TS_BUFFERS, true, &snap, e) != ETD_OK) {
        etd_model_unlock(m);
        return e->rc;
    }
    etd_rc rc;
    if (et_module_load_state_dict(m->net, d) != ET_OK) {
        rc = etd_fail(e, ETD_EINVAL, "parameters: %s", et_errmsg());
    } else {
        etd_guard_recheck(m);
        etd_model_weights_changed(m);
        rc = etd_model_commit(m, snapped ? &snap : NULL, e);
        etd_err ge;
        if (rc == ETD_OK && etd_guard_keep(m, &ge) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
    }
    etd_ts_free(&snap);
    etd_model_unlock(m);
    return rc;
}
