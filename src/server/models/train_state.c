/*
 * train_state.c - a model's training state, listed once: what it is and the
 * rollback snapshot.
 *
 * The same image serves the two uses of "everything training changes":
 *   - the rollback snapshot: a call that fails half-way (a bad minibatch in
 *     train, a failed save with --sync always) puts the state back (here);
 *   - the model file: the payload is a safetensors file of the tensors below
 *     with the scalars in its "easytorch" metadata (train_state_file.c;
 *     format: docs/server.md).
 * The state:
 *   tensors  "param.<name>" (state_dict), "grad.<name>" (while batches are
 *            pending), "optim.<slot>" (et_optim_state_name), "buffer.<name>"
 *            (module buffers: running statistics; int64 ones stay int64);
 *   scalars  etd_ts_scalars (model_internal.h), one row each in the fields[]
 *            table of train_state_file.c (its key, kind and flags in the file);
 *   history  the [step, loss] entries (and the validation history).
 * Adding a scalar: a member in etd_ts_scalars, its row in fields[], and --
 * for a mirror of a library object -- a line in capture_scalars and
 * apply_scalars.  Plain counters (in m->ts) need only the first two.
 * Callers hold the model's lock (write lock to apply) and no tensor pool.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/model_internal.h"

/* ---------------------------------------------------------------- the scalars */

/* The counters as they are, the mirrors read from the library objects. */
static void capture_scalars(const etd_model *m, etd_ts_scalars *s)
{
    /* the counters; hp and sched (19 KB, nearly always almost empty) only
     * as far as they are filled, below */
    memcpy(s, &m->ts, offsetof(etd_ts_scalars, hp));
    s->lr_base = m->ts.lr_base;
    et_generator_get_state(m->gen, s->gen);
    s->lr = et_optim_get_lr(m->opt);
    s->optim_steps = et_optim_steps(m->opt);
    s->sched_epoch = m->sched ? et_scheduler_last_epoch(m->sched) : 0;
    s->sched_lr = m->sched ? et_scheduler_get_last_lr(m->sched) : 0;
    s->nhp = 0;
    int nk = et_optim_num_hparams(m->opt);
    for (int g = 0; g < et_optim_num_groups(m->opt); g++)
        for (int k = 0; k < nk && s->nhp < ETD_TS_MAX_HP; k++)
            s->hp[s->nhp++] = et_optim_group_get(m->opt, g, et_optim_hparam_name(m->opt, k));
    s->nsched = 0;
    for (int i = 0; m->sched && i < et_scheduler_state_count(m->sched) &&
                    i < ETD_TS_MAX_SCHED; i++)
        s->sched[s->nsched++] = et_scheduler_state_get(m->sched, i);
}

/* The optimizer's hyper-parameters and the scheduler's state from s (what
 * capture_scalars took, or a file's), each checked by the library first. */
static bool apply_mirrors(etd_model *m, const etd_ts_scalars *s, etd_err *e)
{
    m->hp_stale = true;
    int nk = et_optim_num_hparams(m->opt);
    for (int i = 0; i < s->nhp && nk > 0; i++) {
        const char *key = et_optim_hparam_name(m->opt, i % nk);
        if (et_optim_group_set(m->opt, i / nk, key, s->hp[i]) != ET_OK) {
            etd_fail(e, ETD_EINVAL, "optimizer state: param_groups[%d].%s: %s", i / nk, key,
                     et_errmsg());
            return false;
        }
    }
    for (int i = 0; m->sched && i < s->nsched; i++) {
        const char *name = et_scheduler_state_name(m->sched, i);
        if (et_scheduler_state_set(m->sched, name, s->sched[i]) != ET_OK) {
            etd_fail(e, ETD_EINVAL, "scheduler state: %s", et_errmsg());
            return false;
        }
    }
    return true;
}

/* The inverse of capture_scalars (optim_steps goes back with the optimizer
 * state, in apply_tensors).  false + e: the scheduler refused its state. */
static bool apply_scalars(etd_model *m, const etd_ts_scalars *s, etd_err *e)
{
    if (m->sched && et_scheduler_load_state(m->sched, s->sched_epoch, s->sched_lr) != ET_OK) {
        etd_fail(e, ETD_EINVAL, "scheduler state: %s", et_errmsg());
        return false;
    }
    et_optim_set_lr(m->opt, s->lr); /* after the scheduler, which sets it too */
    if (!apply_mirrors(m, s, e))      /* per group, and the rest of the scheduler */
        return false;
    et_generator_set_state(m->gen, s->gen);
    m->ts.step = s->step;
    m->ts.pending = s->pending;
    m->ts.pending_loss_sum = s->pending_loss_sum;
    m->ts.has_loss = s->has_loss;
    m->ts.last_loss = s->last_loss;
    m->ts.nonfinite = s->nonfinite;
    m->ts.diverged = s->diverged;
    m->ts.nf_count = s->nf_count;
    m->ts.nf_step = s->nf_step;
    m->ts.nf_time = s->nf_time;
    m->ts.nf_action = s->nf_action;
    m->ts.lr_base = s->lr_base || m->sched; /* files before PATCH: a scheduler took it */
    memcpy(m->ts.nf_source, s->nf_source, sizeof s->nf_source);
    memcpy(m->ts.nf_reason, s->nf_reason, sizeof s->nf_reason);
    return true;
}

/* ---------------------------------------------------------------- the tensors */

/* prefix + name into key (cap bytes; truncated as snprintf would): what
 * each_tensor does per tensor, at every train call, without printf. */
static const char *key_of(char *key, size_t cap, const char *prefix, const char *name)
{
    size_t p = strlen(prefix), n = strlen(name);
    if (p + n >= cap)
        n = p < cap ? cap - 1 - p : 0;
    memcpy(key, prefix, p < cap ? p : cap - 1);
    memcpy(key + p, name, n);
    key[p + n < cap ? p + n : cap - 1] = '\0';
    return key;
}

/* Calls fn for every tensor of the state that m has now, with its key
 * ("param.0.weight") and the live tensor; stops at the first false. */
static bool each_tensor(const etd_model *m, unsigned parts,
                        bool (*fn)(void *arg, const char *key, et_tensor *t), void *arg)
{
    char key[512];
    for (int i = 0; i < m->nparams; i++) {
        const char *pn = et_module_param_name(m->net, i);
        if ((parts & ETD_TS_PARAMS) && !fn(arg, key_of(key, sizeof key, "param.", pn),
                                           m->params[i]))
            return false;
        et_tensor *g = et_grad(m->params[i]);
        if ((parts & ETD_TS_GRADS) && m->ts.pending > 0 && g &&
            !fn(arg, key_of(key, sizeof key, "grad.", pn), g))
            return false;
    }
    int ns = et_optim_state_count(m->opt);
    for (int i = 0; (parts & ETD_TS_OPTIM) && i < ns; i++) {
        if (!fn(arg, key_of(key, sizeof key, "optim.", et_optim_state_name(m->opt, i)),
                et_optim_state_tensor(m->opt, i)))
            return false;
    }
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; (parts & ETD_TS_BUFFERS) && i < nb; i++) {
        if (!fn(arg, key_of(key, sizeof key, "buffer.", et_module_buffer_name(m->net, i)),
                et_module_buffer(m->net, i)))
            return false;
    }
    return true;
}

typedef struct put_ctx {
    et_tensor_dict *d;
    bool copy;
} put_ctx;

static bool put_tensor(void *arg, const char *key, et_tensor *t)
{
    put_ctx *c = arg;
    if (!c->copy)
        return et_tensor_dict_set(c->d, key, t) == ET_OK;
    et_tensor *k = et_clone(t);
    bool ok = k && et_tensor_dict_set(c->d, key, k) == ET_OK;
    et_tensor_free(k);
    return ok;
}

void etd_ts_clear(etd_train_state *st)
{
    /* all but the arrays of hp and sched, empty with nhp = nsched = 0: a
     * memset of the whole state wrote 19 KB, several times per train call */
    memset(st, 0, offsetof(etd_train_state, s) + offsetof(etd_ts_scalars, hp));
    st->s.nsched = 0;
    st->s.lr_base = false;
    size_t after = offsetof(etd_train_state, s) + sizeof st->s;
    memset((char *)st + after, 0, sizeof *st - after);
}

etd_rc etd_ts_capture(etd_model *m, unsigned parts, bool copy, etd_train_state *st, etd_err *e)
{
    etd_ts_clear(st);
    st->parts = parts;
    if (parts & ETD_TS_SCALARS)
        capture_scalars(m, &st->s);
    if (parts & ETD_TS_HISTORY) {
        pthread_mutex_lock(&m->pub_mu);
        st->hlen = m->h_len;
        st->vlen = m->v_len;
        pthread_mutex_unlock(&m->pub_mu);
    }
    if (!(parts & (ETD_TS_PARAMS | ETD_TS_GRADS | ETD_TS_OPTIM | ETD_TS_BUFFERS)))
        return ETD_OK;
    put_ctx c = {et_tensor_dict_new(), copy};
    st->tensors = c.d;
    if (!c.d || !each_tensor(m, parts, put_tensor, &c)) {
        etd_ts_free(st);
        return etd_fail(e, ETD_ENOMEM, "out of memory taking a snapshot of the model");
    }
    return ETD_OK;
}

typedef struct refresh_ctx {
    et_tensor_dict *d;
    int seen;
} refresh_ctx;

static bool refresh_tensor(void *arg, const char *key, et_tensor *t)
{
    refresh_ctx *c = arg;
    et_tensor *dst = et_tensor_dict_get(c->d, key);
    if (!dst || !et_same_shape(dst, t) || et_tensor_dtype(dst) != et_tensor_dtype(t))
        return false;
    et_tensor *src = et_is_contiguous(t) ? et_tensor_ref(t) : et_clone(t);
    bool ok = src && (et_tensor_dtype(t) == ET_INT64
                          ? et_copy_from_int64(dst, et_data_int64_const(src)) == ET_OK
                          : et_copy_from(dst, et_data_const(src)) == ET_OK);
    et_tensor_free(src);
    c->seen += ok;
    return ok;
}

bool etd_ts_refresh(etd_model *m, etd_train_state *st)
{
    unsigned tparts = st->parts & (ETD_TS_PARAMS | ETD_TS_GRADS | ETD_TS_OPTIM | ETD_TS_BUFFERS);
    if (tparts) {
        refresh_ctx c = {st->tensors, 0};
        if (!c.d || !each_tensor(m, tparts, refresh_tensor, &c) ||
            c.seen != et_tensor_dict_len(c.d))
            return false;
    }
    if (st->parts & ETD_TS_SCALARS)
        capture_scalars(m, &st->s);
    if (st->parts & ETD_TS_HISTORY) {
        pthread_mutex_lock(&m->pub_mu);
        st->hlen = m->h_len;
        st->vlen = m->v_len;
        pthread_mutex_unlock(&m->pub_mu);
    }
    return true;
}

etd_train_state *etd_ts_keep(etd_model *m, etd_train_state **slot, etd_train_state *own,
                             etd_err *e)
{
    etd_ts_clear(own);
    if (m->spec.param_count > ETD_TS_KEEP_PARAMS) /* a second copy of a big state: not kept */
        return etd_ts_capture(m, ETD_TS_ALL, true, own, e) == ETD_OK ? own : NULL;
    if (*slot && etd_ts_refresh(m, *slot))
        return *slot;
    if (*slot) { /* its tensors are not m's any more */
        etd_ts_free(*slot);
        free(*slot);
        *slot = NULL;
    }
    etd_train_state *st = calloc(1, sizeof *st);
    if (!st) {
        etd_fail(e, ETD_ENOMEM, "out of memory taking a snapshot of the model");
        return NULL;
    }
    if (etd_ts_capture(m, ETD_TS_ALL, true, st, e) != ETD_OK) {
        free(st);
        return NULL;
    }
    return *slot = st;
}

void etd_ts_free(etd_train_state *st)
{
    et_tensor_dict_free(st->tensors);
    free(st->h_step);
    free(st->h_loss);
    free(st->h_lr);
    free(st->h_time);
    for (size_t i = 0; st->mk && i < st->mk_n; i++)
        free(st->mk[i].json);
    free(st->mk);
    free(st->v);
    free(st->jobs);
    etd_ts_clear(st);
}

/* Every tensor st holds for m, named and shaped as m's (checked before
 * anything changes). */
static bool check_tensors(const etd_model *m, const etd_train_state *st, etd_err *e)
{
    char key[512];
    for (int i = 0; (st->parts & ETD_TS_PARAMS) && i < m->nparams; i++) {
        snprintf(key, sizeof key, "param.%s", et_module_param_name(m->net, i));
        et_tensor *t = et_tensor_dict_get(st->tensors, key);
        if (!t)
            return etd_fail(e, ETD_EINVAL, "missing tensor %.400s", key), false;
        if (et_tensor_dtype(t) != ET_FLOAT32)
            return etd_fail(e, ETD_EINVAL, "tensor %.400s: %s, expected float32", key,
                            et_dtype_name(et_tensor_dtype(t))), false;
        if (!et_same_shape(t, m->params[i])) {
            char a[128], b[128];
            etd_fail(e, ETD_EINVAL, "tensor %.300s: shape %s, the model's is %s", key,
                     et_shape_str(et_shape(t), et_ndim(t), a, sizeof a),
                     et_shape_str(et_shape(m->params[i]), et_ndim(m->params[i]), b, sizeof b));
            return false;
        }
    }
    int ns = et_optim_state_count(m->opt);
    for (int i = 0; (st->parts & ETD_TS_OPTIM) && i < ns; i++) {
        snprintf(key, sizeof key, "optim.%s", et_optim_state_name(m->opt, i));
        if (!et_tensor_dict_get(st->tensors, key))
            return etd_fail(e, ETD_EINVAL, "missing tensor %.400s", key), false;
    }
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; (st->parts & ETD_TS_BUFFERS) && i < nb; i++) {
        et_tensor *b = et_module_buffer(m->net, i);
        snprintf(key, sizeof key, "buffer.%s", et_module_buffer_name(m->net, i));
        et_tensor *t = et_tensor_dict_get(st->tensors, key);
        if (!t)
            return etd_fail(e, ETD_EINVAL, "missing tensor %.400s", key), false;
        if (et_tensor_dtype(t) != et_tensor_dtype(b) || !et_same_shape(t, b))
            return etd_fail(e, ETD_EINVAL, "tensor %.400s: dtype or shape differs from the "
                            "model's", key), false;
    }
    return true;
}

/* Parameters copied in place; gradients replaced (a gradient of the wrong
 * shape is dropped, as none); optimizer state loaded all-or-nothing. */
static bool apply_tensors(etd_model *m, const etd_train_state *st, etd_err *e)
{
    char key[512];
    int ns = et_optim_state_count(m->opt);
    if (st->parts & ETD_TS_OPTIM) {
        const char **names = calloc((size_t)ns + 1, sizeof *names);
        et_tensor **ts = calloc((size_t)ns + 1, sizeof *ts);
        bool ok = names && ts;
        for (int i = 0; ok && i < ns; i++) {
            names[i] = et_optim_state_name(m->opt, i);
            snprintf(key, sizeof key, "optim.%s", names[i]);
            ts[i] = et_tensor_dict_get(st->tensors, key);
        }
        int64_t steps = (st->parts & ETD_TS_SCALARS) ? st->s.optim_steps : et_optim_steps(m->opt);
        if (!ok)
            etd_fail(e, ETD_ENOMEM, "out of memory restoring the optimizer state");
        else if (et_optim_load_state(m->opt, names, ts, ns, steps) != ET_OK)
            ok = etd_fail(e, ETD_EINVAL, "optimizer state: %s", et_errmsg()) == ETD_OK;
        free(names);
        free(ts);
        if (!ok)
            return false;
    }
    for (int i = 0; i < m->nparams; i++) {
        const char *pn = et_module_param_name(m->net, i);
        if (st->parts & ETD_TS_PARAMS) {
            snprintf(key, sizeof key, "param.%s", pn);
            et_tensor *t = et_tensor_dict_get(st->tensors, key);
            et_tensor *c = et_is_contiguous(t) ? et_tensor_ref(t) : et_clone(t);
            et_status s = c ? et_copy_from(m->params[i], et_data_const(c)) : ET_ERR_NOMEM;
            et_tensor_free(c);
            if (s != ET_OK)
                return etd_fail(e, ETD_EINTERNAL, "parameter %s: %s", pn, et_errmsg()), false;
        }
        if (st->parts & ETD_TS_GRADS) {
            snprintf(key, sizeof key, "grad.%s", pn);
            et_tensor *g = et_tensor_dict_get(st->tensors, key);
            et_tensor *c = g && et_same_shape(g, m->params[i]) ? et_clone(g) : NULL;
            et_set_grad(m->params[i], c);
            et_tensor_free(c);
        }
    }
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; (st->parts & ETD_TS_BUFFERS) && i < nb; i++) {
        et_tensor *b = et_module_buffer(m->net, i);
        snprintf(key, sizeof key, "buffer.%s", et_module_buffer_name(m->net, i));
        et_tensor *c = et_clone(et_tensor_dict_get(st->tensors, key)); /* contiguous */
        et_status s = !c ? ET_ERR_NOMEM
                      : et_tensor_dtype(b) == ET_INT64 ? et_copy_from_int64(b, et_data_int64(c))
                                                       : et_copy_from(b, et_data_const(c));
        et_tensor_free(c);
        if (s != ET_OK)
            return etd_fail(e, ETD_EINTERNAL, "buffer %s: %s", et_module_buffer_name(m->net, i),
                            et_errmsg()), false;
    }
    return true;
}

etd_rc etd_ts_apply(etd_model *m, const etd_train_state *st, etd_err *e)
{
    e->rc = ETD_OK;
    if ((st->parts & (ETD_TS_PARAMS | ETD_TS_GRADS | ETD_TS_OPTIM | ETD_TS_BUFFERS)) &&
        (!check_tensors(m, st, e) || !apply_tensors(m, st, e)))
        return e->rc;
    if ((st->parts & ETD_TS_SCALARS) && !apply_scalars(m, &st->s, e))
        return e->rc;
    if ((st->parts & ETD_TS_JOBS) && st->jobs) { /* from a file */
        pthread_mutex_lock(&m->pub_mu);
        free(m->jobs);
        m->jobs = st->jobs;
        m->njobs = m->jobs_cap = st->njobs;
        m->next_job = st->next_job;
        ((etd_train_state *)st)->jobs = NULL; /* taken over */
        pthread_mutex_unlock(&m->pub_mu);
    }
    if (st->parts & ETD_TS_HISTORY) {
        if (st->h_step) { /* from a file: the entries */
            pthread_mutex_lock(&m->pub_mu);
            m->h_len = 0;
            m->v_len = 0;
            for (size_t i = 0; i < m->mk_len; i++)
                free(m->mk[i].json);
            m->mk_len = 0;
            pthread_mutex_unlock(&m->pub_mu);
            for (size_t i = 0; i < st->h_n; i++)
                etd_model_history_add(m, st->h_step[i], st->h_loss[i],
                                      st->h_lr ? st->h_lr[i] : NAN,
                                      st->h_time ? st->h_time[i] : NAN);
            for (size_t i = 0; i < st->v_n; i++)
                etd_model_validation_add(m, &st->v[i]);
            pthread_mutex_lock(&m->pub_mu);
            for (size_t i = 0; i < st->mk_n; i++) {
                etd_model_marker_add_locked(m, st->mk[i].step, st->mk[i].kind, st->mk[i].json);
                if (m->mk_len)
                    m->mk[m->mk_len - 1].time = st->mk[i].time;
            }
            pthread_mutex_unlock(&m->pub_mu);
        } else { /* a snapshot: what was added since goes */
            pthread_mutex_lock(&m->pub_mu);
            if (m->h_len > st->hlen)
                m->h_len = st->hlen;
            if (m->v_len > st->vlen)
                m->v_len = st->vlen;
            pthread_mutex_unlock(&m->pub_mu);
        }
    }
    etd_model_publish(m);
    return ETD_OK;
}

