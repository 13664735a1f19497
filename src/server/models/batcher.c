/* batcher.c - dynamic batching of a model's predictions (models.h, a spec's
 * "batching"; Triton's dynamic batcher, TorchServe's batch_size /
 * max_batch_delay).
 *
 * Requests are queued per model.  A batch job on the registry's executor
 * (the transport's worker pool: it runs the job holding the model's lock
 * shared) *forms* a batch: it waits until max_batch_size rows are queued or
 * -- while no other batch of the model computes -- the oldest request has
 * waited max_delay_us, takes the oldest request and
 * every later one with the same trailing shape that still fits, then
 * concatenates them row-wise, runs one forward pass and hands each request
 * its own rows.  At most one job forms at a time, but as soon as it has
 * taken its batch another job may start forming the next one while the
 * first computes -- up to one job per worker (the executor's slots), like
 * Triton's model instances.  Fill one batch first: while a batch computes,
 * the forming one closes only when full (a second batch then computes
 * beside it), else when the first is done.  Closing on the delay meanwhile
 * (before) cut the 64 waiting requests of the benchmark into batches of 21
 * rows on average, 45% of them of 16 or fewer, and a batch's fixed cost
 * (the weights streamed once: ~350 us of the 784-1024-1024-10 model's
 * invariant forward, ~25 us a row) was paid three times as often.  Only a
 * full batch wakes the forming job (not each request: two context switches
 * each).  One job at a time (before that) left every core
 * but one idle while a batch computed: the next batch's requests waited in
 * the queue, and the 64-connection benchmark reached 3.66x the unbatched
 * req/s on 2 cores against 4.04x in CPU time.  A job that finishes with
 * requests queued and nobody forming forms again, through a new job at the
 * back of the pool's queue, so a waiting train call on the model gets its
 * turn between batches.
 *
 * The rows are bit-identical to what each request gets alone: every forward
 * of a batching model runs with et_set_batch_invariant (each output element
 * is summed in an order fixed by k alone: ops.h), whether it carries
 * one request or sixty-four (etd_model_forward sets it too), and the spec
 * admits only layers that compute each row from that row alone (spec.c).
 *
 * A graph model's requests have named parts (etd_array.parts): each part
 * is stacked with the same part of the others (int64 indices as int64),
 * and every output is split back by rows.  Requests are stacked only when
 * every part has the same dtype and trailing shape, and only at input ranks
 * at which the graph keeps the rows apart (spec_graph_batch.c: a softmax
 * over dim -1 of rank-1 rows is over the batch); others go alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/models/model_internal.h"
#include "server/models/spec_graph.h"

#define ETD_BATCH_SIGS 8

typedef struct waiting {
    struct waiting *next;
    etd_array x;
    etd_forward_done done;
    void *arg;
    struct timespec t;
} waiting;

struct etd_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* the job: a request arrived */
    waiting *head, *tail;
    int64_t rows, nreq;         /* queued */
    bool forming;               /* a job is submitted or collecting the next batch */
    int jobs;                   /* jobs submitted or running (forming included) */
    int computing;              /* jobs running a batch's forward */
    int64_t max_rows;
    double max_delay;           /* seconds */
    /* a graph's sets of input ranks asked about (batchable) */
    uint64_t sig[ETD_BATCH_SIGS];
    bool sig_ok[ETD_BATCH_SIGS];
    int nsig;
    /* statistics for /metrics */
    uint64_t batches, batched_rows, requests;
    uint64_t hist[ETD_BATCH_BUCKETS];
};

const int64_t etd_batch_bucket_le[ETD_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024,
                                                        INT64_MAX};

etd_batcher *etd_batcher_new(int64_t max_rows, int64_t max_delay_us)
{
    etd_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->max_rows = max_rows;
    b->max_delay = (double)max_delay_us / 1e6;
    return b;
}

void etd_batcher_free(etd_batcher *b)
{
    if (!b)
        return;
    /* nobody can be queued: a queued request's job holds a model reference */
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

void etd_registry_set_executor(etd_registry *r, const etd_executor *ex)
{
    atomic_store(&r->executor, ex);
}

static double elapsed(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The arrays a request's inputs come in: a graph's named parts in the
 * model's order, or the one array. */
static int parts_of(const etd_array *x, const etd_array **p)
{
    if (x->nparts) {
        *p = x->parts;
        return x->nparts;
    }
    *p = x;
    return 1;
}

/* A request's rows: dim 0 of its inputs (a layer list's input of rank 1 is
 * one row without a batch dimension). */
static int64_t rows_of(const etd_model *m, const etd_array *x)
{
    const etd_array *p;
    parts_of(x, &p);
    if (m->spec.graph)
        return p[0].ndim >= 1 ? p[0].shape[0] : 1;
    return p[0].ndim >= 2 ? p[0].shape[0] : 1;
}

static int64_t trailing(const etd_array *a)
{
    int64_t n = 1;
    for (int i = 1; i < a->ndim; i++)
        n *= a->shape[i];
    return n;
}

/* Same parts, each of the same dtype and trailing shape (everything but
 * the rows), so they can be stacked. */
static bool stackable(const etd_array *a, const etd_array *b)
{
    if (a->nparts != b->nparts)
        return false;
    const etd_array *pa, *pb;
    int n = parts_of(a, &pa);
    parts_of(b, &pb);
    for (int k = 0; k < n; k++) {
        if (pa[k].ndim != pb[k].ndim || pa[k].dtype != pb[k].dtype || pa[k].ndim < 1)
            return false;
        for (int i = 1; i < pa[k].ndim; i++)
            if (pa[k].shape[i] != pb[k].shape[i])
                return false;
    }
    return true;
}

/* May x be batched with others (b->mu held)?  A layer list's input needs a
 * row dimension besides its features (spec.c admits only row-wise layers);
 * a graph, ranks of its inputs at which every output keeps the rows apart
 * (spec_graph_batch.c) -- asked once per set of ranks, the answers kept. */
static bool batchable(etd_model *m, etd_batcher *b, const etd_array *x)
{
    const etd_array *p;
    int n = parts_of(x, &p);
    if (!m->spec.graph)
        return p[0].ndim >= 2;
    uint64_t sig = 0;
    int ranks[ETD_MAX_IO];
    for (int i = 0; i < n && i < ETD_MAX_IO; i++) {
        if (p[i].ndim < 1)
            return false;
        ranks[i] = p[i].ndim;
        sig |= (uint64_t)(p[i].ndim & 15) << (4 * i);
    }
    for (int i = 0; i < b->nsig; i++)
        if (b->sig[i] == sig)
            return b->sig_ok[i];
    char why[ETD_ERRCAP];
    bool ok = etd_graph_rows_ok(m->spec.graph, m->net, ranks, why, sizeof why);
    int at = b->nsig < ETD_BATCH_SIGS ? b->nsig++ : (int)(b->batches % ETD_BATCH_SIGS);
    b->sig[at] = sig;
    b->sig_ok[at] = ok;
    return ok;
}

/* The next batch (b->mu held): the oldest request, then every later one
 * that stacks with it and fits; a request of more than max_rows rows, or
 * whose ranks cannot be batched, goes alone.  Returns the list, *rows its
 * rows. */
static waiting *take_batch(etd_model *m, etd_batcher *b, int64_t *rows)
{
    waiting *first = b->head;
    b->head = first->next;
    first->next = NULL;
    int64_t r = rows_of(m, &first->x);
    waiting *last = first;
    if (r < b->max_rows && batchable(m, b, &first->x)) {
        for (waiting **pp = &b->head; *pp && r < b->max_rows;) {
            waiting *w = *pp;
            int64_t wr = rows_of(m, &w->x);
            if (stackable(&first->x, &w->x) && r + wr <= b->max_rows) {
                *pp = w->next;
                w->next = NULL;
                last->next = w;
                last = w;
                r += wr;
            } else {
                pp = &w->next;
            }
        }
    }
    b->tail = NULL;
    for (waiting *w = b->head; w; w = w->next)
        b->tail = w;
    *rows = r;
    return first;
}

static void record(etd_batcher *b, int64_t rows, int64_t nreq)
{
    b->batches++;
    b->batched_rows += (uint64_t)rows;
    b->requests += (uint64_t)nreq;
    for (int i = 0; i < ETD_BATCH_BUCKETS; i++)
        if (rows <= etd_batch_bucket_le[i]) {
            b->hist[i]++;
            break;
        }
}

/* Part k of every request of list, stacked row-wise into out (rows in all;
 * int64 parts stay int64: an Embedding's indices never pass through float). */
static bool stack_part(const waiting *list, int k, int64_t rows, etd_array *out)
{
    const etd_array *p;
    parts_of(&list->x, &p);
    *out = p[k];
    out->data = NULL;
    out->idata = NULL;
    out->parts = NULL;
    out->nparts = 0;
    out->owner = NULL;
    out->shape[0] = rows;
    int64_t per_row = trailing(&p[k]);
    out->numel = rows * per_row;
    size_t esz = p[k].dtype == ET_INT64 ? sizeof(int64_t) : sizeof(float);
    char *dst = malloc((size_t)(out->numel ? out->numel : 1) * esz);
    if (!dst)
        return false;
    if (p[k].dtype == ET_INT64)
        out->idata = (int64_t *)dst;
    else
        out->data = (float *)dst;
    for (const waiting *w = list; w; w = w->next) {
        const etd_array *q;
        parts_of(&w->x, &q);
        size_t bytes = (size_t)q[k].numel * esz;
        memcpy(dst, q[k].dtype == ET_INT64 ? (const void *)q[k].idata : (const void *)q[k].data,
               bytes);
        dst += bytes;
    }
    return true;
}

/* The requests' inputs as one: the same parts, rows summed. */
static bool stack_all(const waiting *list, int64_t rows, etd_array *cat)
{
    memset(cat, 0, sizeof *cat);
    if (!list->x.nparts)
        return stack_part(list, 0, rows, cat);
    int n = list->x.nparts;
    if (!(cat->parts = calloc((size_t)n, sizeof *cat->parts)))
        return false;
    cat->nparts = n;
    cat->ndim = 1;
    cat->shape[0] = cat->numel = rows;
    cat->dtype = ET_FLOAT32;
    for (int k = 0; k < n; k++)
        if (!stack_part(list, k, rows, &cat->parts[k]))
            return false;
    return true;
}

/* Rows [off, off + n) of y (contiguous, dim 0 the rows) as a new tensor. */
static et_tensor *rows_slice(const et_tensor *y, int64_t off, int64_t n)
{
    int nd = et_ndim(y);
    int64_t shape[ET_MAX_DIMS], per = 1;
    memcpy(shape, et_shape(y), (size_t)nd * sizeof *shape);
    for (int i = 1; i < nd; i++)
        per *= shape[i];
    shape[0] = n;
    if (et_tensor_dtype(y) == ET_INT64)
        return et_tensor_new_int64(et_data_int64_const(y) + off * per, shape, nd);
    return et_tensor_new(et_data_const(y) + off * per, shape, nd);
}

/* One forward over the batch; each request gets its rows of every output
 * (or the error). */
static void run_one(etd_model *m, waiting *list, int64_t rows)
{
    etd_err e = {0};
    etd_rc rc = ETD_OK;
    et_tensor *ys[ETD_MAX_IO] = {NULL}, *yc[ETD_MAX_IO] = {NULL};
    int ny = 0;
    etd_array cat = {0};
    bool alone = !list->next;
    if (alone)
        rc = etd_model_forward_all(m, &list->x, ys, &ny, &e);
    else if (!stack_all(list, rows, &cat))
        rc = etd_fail(&e, ETD_ENOMEM, "out of memory");
    else
        rc = etd_model_forward_all(m, &cat, ys, &ny, &e);
    etd_array_free(&cat);
    /* split the rows back */
    for (int j = 0; rc == ETD_OK && !alone && j < ny; j++) {
        yc[j] = et_contiguous(ys[j]);
        if (!yc[j])
            rc = etd_fail(&e, ETD_ENOMEM, "out of memory");
        else if (et_ndim(yc[j]) < 1 || et_shape(yc[j])[0] != rows)
            rc = etd_fail(&e, ETD_EINTERNAL, "batching: output %d has no row per input row", j);
    }
    int64_t off = 0;
    for (waiting *w = list, *next; w; w = next) {
        next = w->next;
        et_tensor *mine[ETD_MAX_IO] = {NULL};
        bool oom = false;
        if (rc == ETD_OK && alone) {
            memcpy(mine, ys, (size_t)ny * sizeof *ys);
            memset(ys, 0, sizeof ys);
        } else if (rc == ETD_OK) {
            int64_t n = rows_of(m, &w->x);
            for (int j = 0; j < ny; j++)
                oom |= !(mine[j] = rows_slice(yc[j], off, n));
            off += n;
        }
        if (oom) {
            for (int j = 0; j < ny; j++)
                et_tensor_free(mine[j]);
            w->done(w->arg, ETD_ENOMEM, NULL, 0, "out of memory");
        } else {
            w->done(w->arg, rc, rc == ETD_OK ? mine : NULL, rc == ETD_OK ? ny : 0,
                    rc == ETD_OK ? NULL : e.msg);
        }
        etd_array_free(&w->x);
        free(w);
    }
    for (int j = 0; j < ny; j++) {
        et_tensor_free(yc[j]);
        et_tensor_free(ys[j]);
    }
}

typedef struct job {
    etd_model *m;
} job;

static bool submit(etd_model *m);
static void batch_job(void *arg);

/* Jobs of a model that may run at once: one per slot of the executor. */
static int max_jobs(etd_model *m)
{
    const etd_executor *ex = atomic_load(&m->reg->executor);
    return ex && ex->slots > 1 ? ex->slots : 1;
}

/* The batch job: on a worker, the model's lock held shared (or, without
 * an executor, on the caller's thread).  Takes over j and its reference.
 * It starts as the forming job, counted in b->jobs. */
static void batch_job(void *arg)
{
    job *j = arg;
    etd_model *m = j->m;
    free(j);
    etd_batcher *b = m->batcher;
    int limit = max_jobs(m);
    for (;;) {
        pthread_mutex_lock(&b->mu);
        /* wait for a full batch; or, while no batch computes, for the oldest
         * request's delay to pass (fill one batch first: see the top) */
        while (b->head && b->rows < b->max_rows) {
            if (b->computing > 0) {
                pthread_cond_wait(&b->cv, &b->mu); /* a batch done, or the batch full */
                continue;
            }
            double left = b->max_delay - elapsed(&b->head->t);
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)(left * 1e9);
            ts.tv_sec += ns / 1000000000L;
            ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        }
        waiting *list = NULL;
        int64_t rows = 0, nreq = 0;
        if (b->head) {
            list = take_batch(m, b, &rows);
            for (waiting *w = list; w; w = w->next)
                nreq++;
            b->rows -= rows;
            b->nreq -= nreq;
            record(b, rows, nreq);
        }
        /* this job computes now: another may form the next batch meanwhile */
        b->forming = false;
        if (list)
            b->computing++;
        bool spawn = b->head && b->jobs < limit;
        if (spawn) {
            b->forming = true;
            b->jobs++;
        }
        pthread_mutex_unlock(&b->mu);
        if (spawn && !submit(m)) {
            pthread_mutex_lock(&b->mu); /* refused: this job forms again after its batch */
            b->forming = false;
            b->jobs--;
            pthread_mutex_unlock(&b->mu);
        }
        if (list)
            run_one(m, list, rows);
        pthread_mutex_lock(&b->mu);
        if (list) {
            b->computing--;
            pthread_cond_signal(&b->cv); /* the forming job: its delay may count now */
        }
        bool more = b->head && !b->forming;
        if (more)
            b->forming = true; /* this job's count goes to the next forming job */
        else
            b->jobs--;
        pthread_mutex_unlock(&b->mu);
        /* more: the next batch forms in a job at the back of the executor's
         * queue (a train call waiting for the model gets its turn), or here */
        if (!more || submit(m))
            break;
    }
    etd_model_unref(m); /* the job's reference */
}

/* Hand a batch job to the executor (it takes a model reference with it);
 * false if there is none, or it refused. */
static bool submit(etd_model *m)
{
    const etd_executor *ex = atomic_load(&m->reg->executor);
    if (!ex)
        return false;
    job *j = malloc(sizeof *j);
    if (!j)
        return false;
    j->m = m;
    etd_model_ref(m);
    if (!ex->submit(ex->self, m, batch_job, j)) {
        etd_model_unref(m);
        free(j);
        return false;
    }
    return true;
}

etd_rc etd_model_forward_batched(etd_model *m, etd_array *x, etd_forward_done done, void *arg,
                                 etd_err *e)
{
    etd_batcher *b = m->batcher;
    if (!b || !atomic_load(&m->reg->executor)) {
        /* nothing to batch with: the request alone (same bits) */
        et_tensor *ys[ETD_MAX_IO];
        int ny = 0;
        etd_rc rc = etd_model_forward_all(m, x, ys, &ny, e);
        etd_array_free(x);
        if (rc != ETD_OK)
            return rc;
        done(arg, ETD_OK, ys, ny, NULL);
        return ETD_OK;
    }
    if (etd_model_check_inputs(m, x, e) != ETD_OK)
        return e->rc;
    waiting *w = calloc(1, sizeof *w);
    if (!w)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    w->x = *x;
    memset(x, 0, sizeof *x);
    w->done = done;
    w->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &w->t);
    pthread_mutex_lock(&b->mu);
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    b->rows += rows_of(m, &w->x);
    b->nreq++;
    bool start = !b->forming && b->jobs < max_jobs(m);
    if (start) {
        b->forming = true;
        b->jobs++;
    }
    /* the forming job waits for a full batch or a time: only a full batch
     * is news to it (a wake-up per request would cost two context switches) */
    if (b->rows >= b->max_rows)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (start && !submit(m)) {
        job *j = malloc(sizeof *j);
        if (!j) {
            /* cannot run a job: answer the queued requests with the error */
            pthread_mutex_lock(&b->mu);
            waiting *all = b->head;
            b->head = b->tail = NULL;
            b->rows = b->nreq = 0;
            b->forming = false;
            b->jobs--;
            pthread_mutex_unlock(&b->mu);
            while (all) {
                waiting *n = all->next;
                all->done(all->arg, ETD_ENOMEM, NULL, 0, "out of memory");
                etd_array_free(&all->x);
                free(all);
                all = n;
            }
            return ETD_OK;
        }
        j->m = m;
        etd_model_ref(m);
        batch_job(j); /* no executor: batch here, on the caller's thread */
    }
    return ETD_OK;
}

void etd_model_batch_stats(etd_model *m, etd_batch_stats *st)
{
    memset(st, 0, sizeof *st);
    etd_batcher *b = m->batcher;
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    st->enabled = true;
    st->queued_requests = b->nreq;
    st->queued_rows = b->rows;
    st->batches = b->batches;
    st->rows = b->batched_rows;
    st->requests = b->requests;
    memcpy(st->hist, b->hist, sizeof st->hist);
    pthread_mutex_unlock(&b->mu);
}
