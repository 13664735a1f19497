/* jobs.c - training jobs (models.h): submitting, the registry's bounded
 * pool of worker threads that runs them, records, cancellation, shutdown.
 *
 * Locks: a job's steps take the model's write lock one minibatch at a time
 * (etd_train_minibatch), so readers interleave with a running job and see
 * whole steps only.  The record of a job lives in the model (m->jobs, under
 * pub_mu, as the summary does: polling a job never waits for a step), and is
 * updated under the write lock too where it must agree with the model's
 * state (steps_done with the step count), so a save -- which holds the lock
 * shared -- writes a record that matches the parameters beside it.  The
 * queue has its own mutex (r->job_mu).
 *
 * Order: model rwlock -> pub_mu; r->job_mu alone, except at shutdown:
 * registry mutex -> pub_mu (asking every model's job to stop). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "server/models/model_internal.h"

const char *const etd_job_state_names[] = {"queued", "running", "done", "failed", "cancelled",
                                           "interrupted", NULL};

typedef struct etd_job {
    etd_model *m;               /* a reference */
    int64_t id;
    etd_job_spec s;
    atomic_int stop;            /* 0: run on; else stop between steps in this etd_job_state */
    /* data-parallel replicas (etd_jobs_tick), under the model's pub_mu */
    bool at_gate;               /* the worker waits for a step to be granted */
    bool granted;               /* one step granted, not taken yet */
    bool over;                  /* no more steps: the worker finishes the record */
    uint64_t seq;               /* submission order (the oldest steps first) */
    char stop_why[128];         /* the error the stopped record gets (set before stop) */
    struct etd_job *next;       /* the queue */
} etd_job;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool final(int state)
{
    return state != ETD_JOB_QUEUED && state != ETD_JOB_RUNNING;
}

/* ---------------------------------------------------------------- records (under pub_mu) */

static etd_job_info *rec(etd_model *m, int64_t id)
{
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].id == id)
            return &m->jobs[i];
    return NULL;
}

/* Room for one more record: past ETD_JOB_RECORDS the oldest finished one goes. */
static bool make_room(etd_model *m)
{
    if (m->njobs >= ETD_JOB_RECORDS) {
        for (int i = 0; i < m->njobs; i++)
            if (final(m->jobs[i].state)) {
                memmove(&m->jobs[i], &m->jobs[i + 1], (size_t)(m->njobs - i - 1) * sizeof *m->jobs);
                m->njobs--;
                break;
            }
    }
    if (m->njobs == m->jobs_cap) {
        int cap = m->jobs_cap ? m->jobs_cap * 2 : 8;
        etd_job_info *j = realloc(m->jobs, (size_t)cap * sizeof *j);
        if (!j)
            return false;
        m->jobs = j;
        m->jobs_cap = cap;
    }
    return true;
}

static void job_free(etd_job *j)
{
    if (!j)
        return;
    etd_array_free(&j->s.x);
    etd_array_free(&j->s.y);
    etd_array_free(&j->s.vx);
    etd_array_free(&j->s.vy);
    etd_model_unref(j->m);
    free(j);
}

static void spec_free(etd_job_spec *s)
{
    etd_array_free(&s->x);
    etd_array_free(&s->y);
    etd_array_free(&s->vx);
    etd_array_free(&s->vy);
}

/* The record reaches a final state (pub_mu held): times, waiters. */
static void finish_locked(etd_model *m, etd_job_info *r, int state, const char *why)
{
    r->state = state;
    r->finished = now();
    if (why && why[0])
        snprintf(r->error, sizeof r->error, "%s", why);
    if (m->active && m->active->id == r->id)
        m->active = NULL;
    pthread_cond_broadcast(&m->job_cv);
}

/* The "job" event of a record (a copy: no lock needed). */
static void job_event(etd_model *m, etd_job_info j)
{
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_printf(&b, "\"id\":%lld,\"state\":\"%s\",\"steps_done\":%lld,\"steps_total\":%lld,"
                   "\"epoch\":%lld,\"loss\":", (long long)j.id, etd_job_state_names[j.state],
                   (long long)j.steps_done, (long long)j.steps_total, (long long)j.epoch);
    if (j.has_loss)
        etd_json_float(&b, j.loss);
    else
        etd_buf_puts(&b, "null");
    etd_buf_printf(&b, ",\"skipped_steps\":%lld,\"error\":", (long long)j.skipped);
    if (j.error[0])
        etd_json_str(&b, j.error);
    else
        etd_buf_puts(&b, "null");
    if (!b.oom)
        etd_events_publish(m, ETD_EV_JOB, b.data);
    etd_buf_free(&b);
}

etd_rc etd_model_job_busy(etd_model *m, etd_err *e)
{
    pthread_mutex_lock(&m->pub_mu);
    int64_t id = m->active ? m->active->id : 0;
    etd_job_info *r = id ? rec(m, id) : NULL;
    int state = r ? r->state : ETD_JOB_RUNNING;
    pthread_mutex_unlock(&m->pub_mu);
    if (!id)
        return ETD_OK;
    return etd_fail(e, ETD_ESTATE, "model \"%s\" is busy with job %lld (%s): training calls "
                    "are refused until it ends or is cancelled", m->name, (long long)id,
                    etd_job_state_names[state]);
}

/* ---------------------------------------------------------------- submitting */

/* "validation.<msg>": the validation set's messages name it. */
static etd_rc prefixed(etd_err *e, const char *prefix)
{
    char msg[ETD_ERRCAP];
    snprintf(msg, sizeof msg, "%s", e->msg);
    return etd_fail(e, e->rc, "%s%.1000s", prefix, msg);
}

etd_rc etd_job_submit(etd_model *m, etd_job_spec *s, etd_job_info *info, etd_err *e)
{
    etd_registry *r = m->reg;
    memset(info, 0, sizeof *info);
    int64_t total;
    if (etd_train_plan(m, &s->x, &s->y, s->epochs, s->batch_size, &total, e) != ETD_OK ||
        etd_model_check_targets(m, &s->x, &s->y, e) != ETD_OK)
        goto fail;
    int64_t n = s->x.shape[0];
    int64_t bs = s->batch_size <= 0 || s->batch_size > n ? n : s->batch_size;
    etd_eval_result probe = {0};
    if (s->validate) {
        /* measured once now, so a job never fails on its validation data */
        if (etd_model_evaluate(m, &s->vx, &s->vy, &s->metrics, &probe, e) != ETD_OK) {
            prefixed(e, "validation.");
            goto fail;
        }
    }
    etd_job *j = calloc(1, sizeof *j);
    if (!j) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_lock(&r->job_mu);
    bool full = r->jobs_live >= r->o.max_jobs, stopping = r->jobs_stopping;
    if (!full && !stopping)
        r->jobs_live++;
    pthread_mutex_unlock(&r->job_mu);
    if (full || stopping) {
        free(j);
        etd_fail(e, stopping ? ETD_ESTATE : ETD_EFULL,
                 stopping ? "the daemon is shutting down" :
                            "too many jobs: %d are queued or running (--max-jobs); try again "
                            "when one has finished", r->o.max_jobs);
        goto fail;
    }
    pthread_mutex_lock(&m->pub_mu);
    etd_rc rc = ETD_OK;
    if (m->active) {
        etd_job_info *a = rec(m, m->active->id);
        rc = etd_fail(e, ETD_ESTATE, "model \"%s\" already has job %lld (%s): one job per model "
                      "at a time", m->name, (long long)m->active->id,
                      etd_job_state_names[a ? a->state : ETD_JOB_RUNNING]);
    } else if (m->deleted) {
        rc = etd_fail(e, ETD_ENOTFOUND, "no model named \"%s\" (deleted)", m->name);
    } else if (!make_room(m)) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    if (rc == ETD_OK) {
        j->id = m->next_job < 1 ? 1 : m->next_job;
        m->next_job = j->id + 1;
        etd_job_info *ji = &m->jobs[m->njobs++];
        *ji = (etd_job_info){
            .id = j->id, .state = ETD_JOB_QUEUED, .steps_total = total, .epochs = s->epochs,
            .batch_size = bs, .rows = n, .shuffle = s->shuffle, .created = now(),
            .validate = s->validate, .val_rows = s->validate ? s->vx.shape[0] : 0,
            .eval_every = s->validate ? (s->eval_every > 0 ? s->eval_every : (n + bs - 1) / bs) : 0,
            .metrics = s->validate ? probe.metrics : 0, .k = s->validate ? probe.k : 0,
        };
        *info = *ji;
        j->seq = atomic_fetch_add(&r->job_seq, 1) + 1;
        m->active = j;
    }
    pthread_mutex_unlock(&m->pub_mu);
    if (rc != ETD_OK) {
        pthread_mutex_lock(&r->job_mu);
        r->jobs_live--;
        pthread_mutex_unlock(&r->job_mu);
        free(j);
        goto fail;
    }
    atomic_store(&m->dirty, true); /* the record goes into the file */
    job_event(m, *info);
    atomic_fetch_add(&m->refs, 1);
    j->m = m;
    j->s = *s;
    memset(s, 0, sizeof *s);
    j->s.eval_every = info->eval_every;
    pthread_mutex_lock(&r->job_mu);
    if (r->queue_tail)
        r->queue_tail->next = j;
    else
        r->queue_head = j;
    r->queue_tail = j;
    pthread_cond_signal(&r->job_cv);
    pthread_mutex_unlock(&r->job_mu);
    return ETD_OK;
fail:
    spec_free(s);
    return e->rc;
}

/* ---------------------------------------------------------------- running */

/* Record an evaluation of the validation set after a step. */
static void evaluate(etd_job *j)
{
    etd_model *m = j->m;
    etd_eval_result r;
    etd_err e;
    if (etd_model_evaluate(m, &j->s.vx, &j->s.vy, &j->s.metrics, &r, &e) != ETD_OK) {
        fprintf(stderr, "easytorchd: model %s: job %lld: evaluation failed: %s\n", m->name,
                (long long)j->id, e.msg);
        return;
    }
    etd_val_entry v = {r.step, j->id, r.metrics, r.k, {0}, r.wgen, false, 0, {0}};
    memcpy(v.value, r.value, sizeof v.value);
    if (r.metrics & 1u << ETD_M_LOSS) { /* the loss list's terms beside their total */
        v.nlosses = r.nlosses;
        memcpy(v.losses, r.losses, sizeof v.losses);
    }
    etd_model_validation_add(m, &v);
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_printf(&b, "\"job\":%lld,\"step\":%lld,\"rows\":%lld,\"metrics\":", (long long)j->id,
                   (long long)r.step, (long long)r.rows);
    etd_json_named(&b, etd_metric_names, ETD_M_COUNT, r.metrics, r.value, 1u << ETD_M_LOSS);
    if (r.metrics & 1u << ETD_M_TOPK)
        etd_buf_printf(&b, ",\"k\":%lld", (long long)r.k);
    if (v.nlosses > 0) {
        etd_buf_puts(&b, ",\"losses\":");
        etd_json_floats(&b, v.losses, v.nlosses);
    }
    etd_events_flush(m); /* the steps it follows go out first */
    if (!b.oom)
        etd_events_publish(m, ETD_EV_EVALUATION, b.data);
    etd_buf_free(&b);
    pthread_mutex_lock(&m->pub_mu);
    etd_job_info *ji = rec(m, j->id);
    if (ji)
        ji->evaluations++;
    pthread_mutex_unlock(&m->pub_mu);
    atomic_store(&m->dirty, true);
}

/* ---------------------------------------------------------------- replicas
 *
 * With an etd_dp (easytorchd --mpi) every replica runs the same job, and its
 * steps' collectives must meet those of the other replicas and never
 * interleave with the training calls the replicas apply in their order (one
 * thread makes them all).  So a job's worker does not step on its own: it
 * waits at a gate before each minibatch, and the thread that applies the
 * order grants it one step at a time (etd_jobs_tick, at the same place in
 * the order on every replica) and waits until the step is taken.  A cancel,
 * a PATCH or a delete is applied between two steps everywhere alike. */

/* The worker, before a minibatch: true when a step is granted, false when
 * asked to stop first. */
static bool gate(etd_job *j)
{
    etd_model *m = j->m;
    pthread_mutex_lock(&m->pub_mu);
    j->granted = false; /* the previous grant is used up */
    j->at_gate = true;
    pthread_cond_broadcast(&m->job_cv);
    while (!j->granted && !atomic_load(&j->stop))
        pthread_cond_wait(&m->job_cv, &m->pub_mu);
    bool go = j->granted;
    j->at_gate = false;
    pthread_mutex_unlock(&m->pub_mu);
    return go;
}

bool etd_jobs_next(etd_registry *r, char *model, size_t cap, int64_t *id)
{
    uint64_t best = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++) {
        etd_model *m = r->slots[i].m;
        pthread_mutex_lock(&m->pub_mu);
        etd_job *j = m->active;
        if (j && !j->over && !atomic_load(&j->stop) && (!best || j->seq < best)) {
            best = j->seq;
            snprintf(model, cap, "%s", m->name);
            *id = j->id;
        }
        pthread_mutex_unlock(&m->pub_mu);
    }
    pthread_mutex_unlock(&r->mu);
    return best != 0;
}

void etd_jobs_tick(etd_registry *r, const char *model, int64_t id)
{
    etd_model *m;
    etd_err e;
    if (etd_registry_get(r, model, &m, &e) != ETD_OK)
        return; /* deleted since: as on every replica */
    pthread_mutex_lock(&m->pub_mu);
    etd_job *j = m->active;
    if (j && j->id == id) {
        /* its worker reaches the gate (or the end: stopped, failed) */
        while (m->active == j && !j->at_gate && !j->over)
            pthread_cond_wait(&m->job_cv, &m->pub_mu);
        if (m->active == j && j->at_gate && !j->over) {
            j->granted = true;
            pthread_cond_broadcast(&m->job_cv);
            /* taken: the worker is at its next gate, or past the last step */
            while (m->active == j && (j->granted || !(j->at_gate || j->over)))
                pthread_cond_wait(&m->job_cv, &m->pub_mu);
        }
        /* a job that is over has its final record before the order moves on:
         * the next submission sees the same "one job per model" and
         * --max-jobs count everywhere */
        etd_job_info *ji;
        if (m->active != j || j->over)
            while ((ji = rec(m, id)) && !final(ji->state))
                pthread_cond_wait(&m->job_cv, &m->pub_mu);
    }
    pthread_mutex_unlock(&m->pub_mu);
    etd_model_unref(m);
}

/* A minibatch's effect on its job's record, published with the model's
 * step (etd_model_publish_with, pub_mu held): a reader never sees the model
 * a step ahead of its job.  before: the record as it was, for a step that is
 * taken back (a failed save). */
typedef struct job_step {
    int64_t id, done, epoch;
    const etd_minibatch_result *mr;
    bool applied;
    etd_job_info before;
} job_step;

static void job_step_pub(etd_model *m, void *arg)
{
    job_step *js = arg;
    etd_job_info *ji = rec(m, js->id);
    if (!ji || js->applied)
        return;
    js->before = *ji;
    js->applied = true;
    ji->steps_done = js->done;
    ji->epoch = js->epoch;
    if (js->mr->skipped) {
        ji->skipped++;
    } else {
        ji->has_loss = true;
        ji->loss = js->mr->loss;
        ji->lr = js->mr->lr;
    }
}

/* The job's minibatches; returns the final state (why: the error). */
static int run(etd_job *j, char *why, size_t cap)
{
    etd_model *m = j->m;
    etd_job_spec *s = &j->s;
    int64_t n = s->x.shape[0];
    int64_t bs = s->batch_size <= 0 || s->batch_size > n ? n : s->batch_size;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    bool gated = m->reg->dp != NULL;
    if (!perm) {
        snprintf(why, cap, "out of memory");
        if (gated && gate(j)) { /* the others take the first step: fail it with them */
            etd_err fe;
            etd_fail(&fe, ETD_ENOMEM, "out of memory");
            etd_dp_agree(m, false, "", &fe);
        }
        return ETD_JOB_FAILED;
    }
    char source[ETD_NF_SOURCE];
    snprintf(source, sizeof source, "job %lld", (long long)j->id);
    int64_t done = 0, since_eval = 0;
    double last_event = 0;
    etd_err e;
    int state = ETD_JOB_DONE;
    for (int64_t ep = 0; ep < s->epochs && state == ETD_JOB_DONE; ep++) {
        for (int64_t b = 0; b < n; b += bs) {
            int stop = atomic_load(&j->stop);
            if (gated) /* replicas: a step only when granted, even if asked to stop since */
                stop = gate(j) ? 0 : atomic_load(&j->stop);
            if (stop && gated && done == 0) { /* as a replica whose worker was later */
                state = stop;
                snprintf(why, cap, "%s before it started", j->stop_why);
                break;
            }
            if (stop) {
                state = stop;
                snprintf(why, cap, "%s after %lld of %lld steps", j->stop_why, (long long)done,
                         (long long)(s->epochs * ((n + bs - 1) / bs)));
                break;
            }
            if (etd_model_lock(m, true, &e) != ETD_OK) {
                state = ETD_JOB_CANCELLED;
                snprintf(why, cap, "the model was deleted after %lld steps", (long long)done);
                break;
            }
            if (b == 0)
                etd_train_permutation(m, perm, n, s->shuffle);
            /* a failed minibatch leaves the generator and gradients as they were;
             * with --sync always a failed save takes the step back, and so does
             * any failure under replicas: one that failed after the gradients'
             * sum (its optimizer step, or before the broadcast) fails the step
             * on every replica, and those that took it take it back -- all or
             * nothing, so the replicas stay equal */
            etd_train_state snap;
            unsigned parts = m->reg->o.sync_always || gated ? ETD_TS_ALL : ETD_TS_SCALARS;
            if (etd_ts_capture(m, parts, true, &snap, &e) != ETD_OK ||
                (gated && etd_dp_fault(m->reg->dp, "job", &e))) {
                if (gated) /* in place of the minibatch's first collective */
                    etd_dp_agree(m, false, "", &e);
                etd_ts_free(&snap);
                etd_model_unlock(m);
                state = ETD_JOB_FAILED;
                snprintf(why, cap, "%.400s", e.msg);
                break;
            }
            int64_t bn = n - b < bs ? n - b : bs;
            etd_minibatch_result mr;
            job_step js = {.id = j->id, .done = done + 1, .epoch = ep + 1, .mr = &mr};
            m->step_pub = job_step_pub;
            m->step_pub_arg = &js;
            etd_rc rc = etd_train_minibatch(m, &s->x, &s->y, perm + b, bn, source, &mr, &e);
            m->step_pub = NULL;
            m->step_pub_arg = NULL;
            if (rc != ETD_OK) {
                etd_err re;
                if (!gated) {
                    snap.parts = ETD_TS_SCALARS;
                    for (int i = 0; i < m->nparams; i++)
                        et_set_grad(m->params[i], NULL);
                }
                if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                    fprintf(stderr, "easytorchd: model %s: %s\n", m->name, re.msg);
                pthread_mutex_lock(&m->pub_mu); /* a step published, then taken back */
                etd_job_info *ji = rec(m, j->id);
                if (ji && js.applied)
                    *ji = js.before;
                pthread_mutex_unlock(&m->pub_mu);
                snprintf(why, cap, "%.400s (epoch %lld, minibatch %lld; the %lld steps before it "
                         "were kept)", e.msg, (long long)ep + 1, (long long)(b / bs) + 1,
                         (long long)done);
            } else {
                m->ts.pending = 0; /* the first zero-grad discarded what was pending */
                m->ts.pending_loss_sum = 0;
                /* a save (--sync always) fails on one replica alone: every one
                 * takes the step back and fails the job, or the others would
                 * wait in the next step's collectives (etd_dp_commit) */
                rc = gated ? etd_dp_commit(m, &snap, &e)
                           : etd_model_commit(m, m->reg->o.sync_always ? &snap : NULL, &e);
                if (rc != ETD_OK) {
                    etd_err ge;
                    etd_guard_keep(m, &ge);
                    snprintf(why, cap, "%.400s (after %lld steps)", e.msg, (long long)done);
                    pthread_mutex_lock(&m->pub_mu); /* the step was taken back */
                    etd_job_info *ji = rec(m, j->id);
                    if (ji && js.applied)
                        *ji = js.before;
                    pthread_mutex_unlock(&m->pub_mu);
                }
            }
            etd_ts_free(&snap);
            if (rc == ETD_OK) {
                done++;
                since_eval++;
                if (!mr.skipped)
                    etd_events_step(m, m->ts.step, mr.loss, mr.lr, mr.time, j->id);
                pthread_mutex_lock(&m->pub_mu); /* published with the step (job_step_pub) */
                if (!js.applied)
                    job_step_pub(m, &js);
                etd_job_info *ji = rec(m, j->id), copy = {0};
                if (ji)
                    copy = *ji;
                pthread_mutex_unlock(&m->pub_mu);
                if (copy.id && etd_events_due(m, &last_event)) /* progress, at most per interval */
                    job_event(m, copy);
            }
            etd_model_unlock(m);
            if (rc != ETD_OK) {
                state = ETD_JOB_FAILED;
                break;
            }
            if (s->validate && since_eval >= s->eval_every) {
                evaluate(j);
                since_eval = 0;
            }
        }
    }
    if (gated) { /* the granted step (if any) is over, and so are the steps */
        pthread_mutex_lock(&m->pub_mu);
        j->granted = false;
        j->at_gate = false;
        j->over = true;
        pthread_cond_broadcast(&m->job_cv);
        pthread_mutex_unlock(&m->pub_mu);
    }
    if (s->validate && since_eval > 0 && done > 0)
        evaluate(j); /* the state the job leaves is always measured */
    free(perm);
    return state;
}

static void run_job(etd_job *j)
{
    etd_model *m = j->m;
    pthread_mutex_lock(&m->pub_mu);
    etd_job_info *ji = rec(m, j->id);
    int stop = atomic_load(&j->stop);
    etd_job_info copy = {0};
    if (ji && !stop) {
        ji->state = ETD_JOB_RUNNING;
        ji->started = now();
        ji->start_step = m->pub.step;
        ji->epoch = 1;
        copy = *ji;
    }
    pthread_mutex_unlock(&m->pub_mu);
    if (copy.id)
        job_event(m, copy);
    char why[ETD_JOB_ERRCAP] = "";
    int state;
    if (stop) { /* cancelled or interrupted while queued */
        state = stop;
        snprintf(why, sizeof why, "%s before it started", j->stop_why);
    } else {
        state = run(j, why, sizeof why);
    }
    /* the final record reaches the file like a step does */
    etd_err e;
    bool locked = etd_model_lock(m, true, &e) == ETD_OK;
    /* no longer counted against --max-jobs once its record says it is over */
    pthread_mutex_lock(&m->reg->job_mu);
    m->reg->jobs_live--;
    pthread_mutex_unlock(&m->reg->job_mu);
    pthread_mutex_lock(&m->pub_mu);
    copy.id = 0;
    if ((ji = rec(m, j->id))) {
        finish_locked(m, ji, state, why);
        copy = *ji;
    } else if (m->active == j) {
        m->active = NULL;
    }
    pthread_mutex_unlock(&m->pub_mu);
    if (copy.id) {
        etd_events_flush(m);
        job_event(m, copy);
    }
    if (locked) {
        if (etd_model_commit(m, NULL, &e) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: job %lld: %s\n", m->name, (long long)j->id,
                    e.msg);
        etd_model_unlock(m);
    }
    if (state == ETD_JOB_FAILED || state == ETD_JOB_INTERRUPTED)
        fprintf(stderr, "easytorchd: model %s: job %lld %s: %s\n", m->name, (long long)j->id,
                etd_job_state_names[state], why);
}

static void *worker_main(void *arg)
{
    etd_registry *r = arg;
    /* A job is background work: it steps as fast as the CPU lets it, and
     * at equal priority the scheduler shares a core evenly between it and
     * the request threads, so every hop of a prediction (I/O thread,
     * worker, I/O thread) queued behind its time slice.  A higher nice
     * value on this thread alone (Linux: per thread) lets request threads
     * run first when they wake; the job takes the rest. */
    if (r->o.job_nice > 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), r->o.job_nice) != 0)
        fprintf(stderr, "easytorchd: job thread: setpriority(%d): %s\n", r->o.job_nice,
                strerror(errno));
    pthread_mutex_lock(&r->job_mu);
    for (;;) {
        while (!r->queue_head && !r->jobs_stopping)
            pthread_cond_wait(&r->job_cv, &r->job_mu);
        etd_job *j = r->queue_head;
        if (!j) /* stopping and nothing left */
            break;
        r->queue_head = j->next;
        if (!r->queue_head)
            r->queue_tail = NULL;
        pthread_mutex_unlock(&r->job_mu);
        run_job(j); /* counts the job out of jobs_live */
        job_free(j);
        pthread_mutex_lock(&r->job_mu);
    }
    pthread_mutex_unlock(&r->job_mu);
    return NULL;
}

/* ---------------------------------------------------------------- reading, cancelling */

etd_rc etd_job_get(etd_model *m, int64_t id, etd_job_info *info, etd_err *e)
{
    pthread_mutex_lock(&m->pub_mu);
    etd_job_info *ji = rec(m, id);
    if (ji)
        *info = *ji;
    pthread_mutex_unlock(&m->pub_mu);
    if (!ji)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no job %lld", m->name, (long long)id);
    return ETD_OK;
}

etd_rc etd_job_list(etd_model *m, etd_job_info **list, int *n, etd_err *e)
{
    pthread_mutex_lock(&m->pub_mu);
    *n = m->njobs;
    *list = malloc((size_t)(m->njobs ? m->njobs : 1) * sizeof **list);
    if (*list && m->njobs)
        memcpy(*list, m->jobs, (size_t)m->njobs * sizeof **list);
    pthread_mutex_unlock(&m->pub_mu);
    if (!*list)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    return ETD_OK;
}

/* Ask the active job j (pub_mu held) to stop in `state`. */
static void ask_stop(etd_model *m, etd_job *j, int state, const char *why)
{
    if (atomic_load(&j->stop))
        return;
    snprintf(j->stop_why, sizeof j->stop_why, "%s", why);
    atomic_store(&j->stop, state);
    pthread_cond_broadcast(&m->job_cv); /* a worker at its gate (etd_jobs_tick) */
}

etd_rc etd_job_cancel(etd_model *m, int64_t id, etd_job_info *info, etd_err *e)
{
    etd_registry *r = m->reg;
    pthread_mutex_lock(&m->pub_mu);
    etd_job_info *ji = rec(m, id);
    bool active = ji && !final(ji->state) && m->active && m->active->id == id;
    if (active)
        ask_stop(m, m->active, ETD_JOB_CANCELLED, "cancelled");
    pthread_mutex_unlock(&m->pub_mu);
    if (!ji)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no job %lld", m->name, (long long)id);
    etd_job *mine = NULL;
    if (active) { /* still queued: it leaves the queue now, no worker needed */
        pthread_mutex_lock(&r->job_mu);
        for (etd_job **p = &r->queue_head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
            if ((*p)->m == m && (*p)->id == id) {
                mine = *p;
                *p = mine->next;
                if (r->queue_tail == mine)
                    r->queue_tail = prev;
                r->jobs_live--;
                break;
            }
        pthread_mutex_unlock(&r->job_mu);
    }
    pthread_mutex_lock(&m->pub_mu);
    if (mine && (ji = rec(m, id)))
        finish_locked(m, ji, ETD_JOB_CANCELLED, "cancelled before it started");
    else if (mine && m->active == mine)
        m->active = NULL;
    /* a running job stops between two steps; its worker finishes the record */
    while (active && !mine && (ji = rec(m, id)) && !final(ji->state))
        pthread_cond_wait(&m->job_cv, &m->pub_mu);
    if ((ji = rec(m, id)))
        *info = *ji;
    pthread_mutex_unlock(&m->pub_mu);
    if (mine) {
        atomic_store(&m->dirty, true);
        job_free(mine);
        if (ji)
            job_event(m, *info);
    }
    if (!ji)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no job %lld", m->name, (long long)id);
    return ETD_OK;
}

void etd_model_jobs_abandon(etd_model *m)
{
    pthread_mutex_lock(&m->pub_mu);
    if (m->active)
        ask_stop(m, m->active, ETD_JOB_CANCELLED, "the model was deleted");
    pthread_mutex_unlock(&m->pub_mu);
}

/* ---------------------------------------------------------------- the pool */

void etd_jobs_start(etd_registry *r)
{
    int n = r->o.job_threads > 0 ? r->o.job_threads : 1;
    r->workers = calloc((size_t)n, sizeof *r->workers);
    for (int i = 0; r->workers && i < n; i++)
        if (pthread_create(&r->workers[i], NULL, worker_main, r) == 0)
            r->nworkers++;
    if (r->nworkers < n)
        fprintf(stderr, "easytorchd: started %d of %d job threads\n", r->nworkers, n);
}

void etd_registry_stop_jobs(etd_registry *r) { etd_jobs_stop(r); }

void etd_jobs_stop(etd_registry *r)
{
    /* every job still queued or running stops between two steps as
     * "interrupted" (the model keeps the steps done and is saved after) */
    pthread_mutex_lock(&r->job_mu);
    r->jobs_stopping = true; /* no new ones; the workers drain the queue and exit */
    pthread_cond_broadcast(&r->job_cv);
    pthread_mutex_unlock(&r->job_mu);
    /* a queued or running job is its model's active one */
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++) {
        etd_model *m = r->slots[i].m;
        pthread_mutex_lock(&m->pub_mu);
        if (m->active)
            ask_stop(m, m->active, ETD_JOB_INTERRUPTED, "interrupted by the daemon's shutdown");
        pthread_mutex_unlock(&m->pub_mu);
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nworkers; i++)
        pthread_join(r->workers[i], NULL);
    free(r->workers);
    r->workers = NULL;
    r->nworkers = 0;
    /* without workers (never started) the queue is still there */
    pthread_mutex_lock(&r->job_mu);
    etd_job *q = r->queue_head;
    r->queue_head = r->queue_tail = NULL;
    pthread_mutex_unlock(&r->job_mu);
    while (q) {
        etd_job *next = q->next;
        pthread_mutex_lock(&q->m->pub_mu);
        etd_job_info *ji = rec(q->m, q->id);
        if (ji)
            finish_locked(q->m, ji, ETD_JOB_INTERRUPTED, "interrupted by the daemon's shutdown "
                          "before it started");
        else if (q->m->active == q)
            q->m->active = NULL;
        pthread_mutex_unlock(&q->m->pub_mu);
        atomic_store(&q->m->dirty, true);
        pthread_mutex_lock(&r->job_mu);
        r->jobs_live--;
        pthread_mutex_unlock(&r->job_mu);
        job_free(q);
        q = next;
    }
}
