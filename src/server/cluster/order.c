#define _GNU_SOURCE /* pthread_timedjoin_np */
/* order.c - one order of changes for every replica (cluster.h).
 *
 * A request of an ETD_R_ORDERED route (definitions, parameters, PATCH,
 * versions, rollback, batches, step, train, evaluate, checkpoint) is not run
 * where it arrives: etd_order_hook serialises it (method, target, the
 * headers that shape it, body) and its answer is deferred.  The apply thread
 * sends it to rank 0 (TAG_SUBMIT); rank 0 -- the sequencer -- takes requests
 * in the order it sees them, its own included, and sends each to every other
 * rank (TAG_OP; MPI keeps the messages of one sender in order).  Every rank,
 * rank 0 included, applies them one at a time, in that order, on its apply
 * thread, through etd_dispatch (the same pipeline and handlers as HTTP).
 * The rank the client asked answers it with its own result.  Training calls
 * are data-parallel inside (models/train_dp.c): every rank applies the same
 * call, so their collectives meet.  Jobs (POST .../jobs, DELETE .../jobs/{id}
 * are ordered too) step only when the order says so: rank 0, between
 * requests, orders one step of the oldest job (order_tick; models/jobs.c
 * etd_jobs_tick), so every rank's job worker takes the same steps between
 * the same requests.
 *
 * Sends are non-blocking (MPI_Isend, tested in the loop), so a rank sending
 * a request to rank 0 while rank 0 sends it the order cannot deadlock.  The
 * loop polls (MPI_Iprobe) and sleeps 0.2-2 ms when idle: a blocking receive
 * would spin a core in Open MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/cluster/cluster_internal.h"

/* A request waiting for its answer on this rank. */
struct etd_pending {
    etd_pending *next;
    uint64_t ticket;
    etd_deferred *d;            /* the transport's deferred answer, or ... */
    etd_response *rs;           /* ... a waiting thread's response */
    pthread_cond_t cv;
    bool done;
};

/* An Isend in flight; buf is freed when the last of its sends completes. */
struct etd_sendq {
    etd_sendq *next;
    MPI_Request req;
    char *buf;
    int *refs;
};

/* ---------------------------------------------------------------- the wire format */

/* The methods of a job's step (order_tick) and of the stop (quiesce): no
 * HTTP route has them. */
#define TICK "ETD-JOB-STEP"
#define STOP "ETD-STOP"

static void put_u64(etd_buf *b, uint64_t v) { etd_buf_putn(b, (const char *)&v, sizeof v); }

static void put_str(etd_buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    etd_buf_putn(b, s, n);
}

typedef struct rd {
    const char *p, *end;
    bool bad;
} rd;

static uint64_t get_u64(rd *r)
{
    uint64_t v = 0;
    if ((size_t)(r->end - r->p) < sizeof v) {
        r->bad = true;
        return 0;
    }
    memcpy(&v, r->p, sizeof v);
    r->p += sizeof v;
    return v;
}

/* A NUL-terminated copy (freed by the caller). */
static char *get_str(rd *r, size_t *len)
{
    uint64_t n = get_u64(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = true;
        return NULL;
    }
    memcpy(s, r->p, (size_t)n);
    s[n] = '\0';
    r->p += n;
    if (len)
        *len = (size_t)n;
    return s;
}

/* %-escape what is not unreserved (the target is parsed again by dispatch). */
static void put_escaped(etd_buf *b, const char *s, size_t n, bool path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
                    ch == '~' || (path && ch == '/');
        if (keep) {
            etd_buf_putn(b, (const char *)&s[i], 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            etd_buf_putn(b, e, 3);
        }
    }
}

/* The headers that shape how the request is read or answered.  Not
 * Accept-Encoding: the applied answer comes back without its headers. */
static bool forwarded(const char *name)
{
    return strcasecmp(name, "Content-Type") == 0 || strcasecmp(name, "Content-Encoding") == 0 ||
           strcasecmp(name, "Accept") == 0;
}

static etd_op *serialise(int origin, uint64_t ticket, const etd_request *rq)
{
    etd_buf b, url;
    etd_buf_init(&b);
    etd_buf_init(&url);
    put_escaped(&url, rq->path, strlen(rq->path), true);
    for (int i = 0; i < rq->nquery; i++) {
        etd_buf_putn(&url, i ? "&" : "?", 1);
        put_escaped(&url, rq->query[i].name, strlen(rq->query[i].name), false);
        if (rq->query[i].value) {
            etd_buf_putn(&url, "=", 1);
            put_escaped(&url, rq->query[i].value, rq->query[i].value_len, false);
        }
    }
    put_u64(&b, (uint64_t)origin);
    put_u64(&b, ticket);
    put_str(&b, rq->method, strlen(rq->method));
    put_str(&b, url.data ? url.data : "", url.len);
    int nh = 0;
    for (int i = 0; i < rq->nheaders; i++)
        nh += forwarded(rq->headers[i].name);
    put_u64(&b, (uint64_t)nh);
    for (int i = 0; i < rq->nheaders; i++)
        if (forwarded(rq->headers[i].name)) {
            put_str(&b, rq->headers[i].name, strlen(rq->headers[i].name));
            put_str(&b, rq->headers[i].value ? rq->headers[i].value : "",
                    rq->headers[i].value_len);
        }
    put_str(&b, rq->body ? rq->body : "", rq->body_len);
    etd_buf_free(&url);
    etd_op *op = calloc(1, sizeof *op);
    if (!op || b.oom) {
        free(op);
        etd_buf_free(&b);
        return NULL;
    }
    op->buf = b.data;
    op->len = b.len;
    return op;
}

/* ---------------------------------------------------------------- the hook (HTTP threads) */

bool etd_order_hook(void *arg, const etd_route *route, const etd_request *rq, etd_response *rs)
{
    etd_cluster *c = arg;
    etd_pending *p = calloc(1, sizeof *p);
    if (!p) {
        etd_response_error(rs, 503, "out of memory");
        return true;
    }
    pthread_mutex_lock(&c->mu);
    p->ticket = ++c->next_ticket;
    pthread_mutex_unlock(&c->mu);
    etd_op *op = serialise(c->rank, p->ticket, rq);
    if (!op) {
        free(p);
        etd_response_error(rs, 503, "out of memory");
        return true;
    }
    p->d = rq->host->defer ? rq->host->defer(rq->host->xarg) : NULL;
    p->rs = p->d ? NULL : rs;
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_lock(&c->mu);
    p->next = c->pending;
    c->pending = p;
    if (c->submit_tail)
        c->submit_tail->next = op;
    else
        c->submit_head = op;
    c->submit_tail = op;
    if (!p->d) { /* no deferred answers here: wait on this thread */
        while (!p->done)
            pthread_cond_wait(&p->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return true;
    }
    pthread_mutex_unlock(&c->mu);
    return true;
}

/* The applied answer's headers that are the handler's: the origin's own
 * transport adds CORS, Vary and its own Content-Encoding to its answer. */
static bool passed_back(const char *name)
{
    return strcasecmp(name, "Vary") != 0 && strcasecmp(name, "Content-Encoding") != 0 &&
           strncasecmp(name, "Access-Control-", 15) != 0;
}

/* The answer to this rank's request ticket (hdrs: the applied answer's
 * extra headers, or NULL). */
static void answer(etd_cluster *c, uint64_t ticket, int status, char *body, size_t len,
                   const char *ctype, const etd_response *hdrs)
{
    pthread_mutex_lock(&c->mu);
    etd_pending **pp = &c->pending, *p;
    while ((p = *pp) && p->ticket != ticket)
        pp = &p->next;
    if (p)
        *pp = p->next;
    pthread_mutex_unlock(&c->mu);
    if (!p) {
        free(body);
        return;
    }
    etd_response *rs = p->d ? p->d->rs : p->rs;
    if (status == 0) {
        free(body);
        etd_response_error(rs, 503, "the request could not be applied (out of memory)");
    } else {
        rs->status = status;
        rs->content_type = ctype;
        rs->raw = body;
        rs->raw_len = len;
        rs->raw_free = true;
        for (int i = 0; hdrs && i < hdrs->nheaders; i++)
            if (passed_back(hdrs->headers[i].name))
                etd_response_header(rs, hdrs->headers[i].name, hdrs->headers[i].value);
    }
    if (p->d) {
        etd_deferred *d = p->d;
        pthread_cond_destroy(&p->cv);
        free(p);
        d->done(d);
    } else {
        pthread_mutex_lock(&c->mu);
        p->done = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* ---------------------------------------------------------------- the apply thread */

/* The test hook (EASYTORCHD_TEST_DP_FAIL apply_train@R, apply_patch@R): this
 * rank fails on its own applying the first ordered .../train (or PATCH)
 * before its handler runs, as out of memory would; *resp its answer. */
static bool local_fault(etd_cluster *c, const char *method, const char *url, char **resp,
                        size_t *rlen)
{
    size_t n = strlen(url);
    const char *point = strcmp(method, "PATCH") == 0 ? "apply_patch"
                        : strcmp(method, "POST") == 0 && n >= 6 &&
                          strcmp(url + n - 6, "/train") == 0 ? "apply_train" : NULL;
    etd_err e = {0};
    if (!point || !etd_dp_fault(&c->dp, point, &e))
        return false;
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_printf(&b, "{\"error\": \"%s\"}\n", e.msg);
    *resp = b.data;
    *rlen = b.len;
    return true;
}

static void apply(etd_cluster *c, const char *buf, size_t len)
{
    rd r = {buf, buf + len, false};
    int origin = (int)get_u64(&r);
    uint64_t ticket = get_u64(&r);
    char *method = get_str(&r, NULL), *url = get_str(&r, NULL);
    uint64_t nh = get_u64(&r);
    if (nh > 64)
        r.bad = true;
    char *names[64] = {0}, *values[64] = {0};
    size_t lens[64];
    for (uint64_t i = 0; i < nh && !r.bad; i++) {
        names[i] = get_str(&r, NULL);
        values[i] = get_str(&r, &lens[i]);
    }
    size_t blen = 0;
    char *body = r.bad ? NULL : get_str(&r, &blen);
    if (!r.bad && body && strcmp(method, STOP) == 0) {
        /* the first stop: every rank interrupts its jobs here, after the
         * same step (no step is granted while this thread is here) */
        if (!atomic_load(&c->stop_applied)) {
            etd_registry_stop_jobs(c->app->reg);
            pthread_mutex_lock(&c->mu);
            atomic_store(&c->stop_applied, true);
            pthread_cond_broadcast(&c->stop_cv);
            pthread_mutex_unlock(&c->mu);
        }
    } else if (!r.bad && body && atomic_load(&c->stop_applied)) {
        /* after the stop some ranks may no longer apply: none does */
        if (origin == c->rank) {
            char *msg = strdup("{\"error\": \"shutting down: the request was not applied\"}\n");
            answer(c, ticket, msg ? 503 : 0, msg, msg ? strlen(msg) : 0, "application/json",
                   NULL);
        }
    } else if (!r.bad && body && strcmp(method, TICK) == 0) {
        /* one step of a job (etd_jobs_tick): url is the model, body the job */
        etd_jobs_tick(c->app->reg, url, strtoll(body, NULL, 10));
        pthread_mutex_lock(&c->stat_mu);
        c->job_ticks++;
        pthread_mutex_unlock(&c->stat_mu);
    } else if (r.bad || !body) {
        fprintf(stderr, "easytorchd: rank %d: a malformed request in the order (%zu bytes) was "
                "skipped\n", c->rank, len);
    } else {
        char *resp = NULL;
        size_t rlen = 0;
        const char *ctype = NULL;
        etd_response hdrs = {0}; /* only its headers are used */
        int status;
        etd_agree_begin(c, method, url);
        if (local_fault(c, method, url, &resp, &rlen)) {
            status = 500;
            ctype = "application/json";
        } else {
            status = etd_dispatch_headers(c->apply, method, url, (const char *const *)names,
                                          (const char *const *)values, lens, (int)nh, body,
                                          blen, &resp, &rlen, &ctype, &hdrs);
        }
        /* every rank's outcome: the same everywhere, or every rank stops */
        etd_agree_end(c, status == 0 ? 503 : status);
        pthread_mutex_lock(&c->stat_mu);
        c->ops_applied++;
        pthread_mutex_unlock(&c->stat_mu);
        if (origin == c->rank)
            answer(c, ticket, status, resp, rlen, ctype, &hdrs);
        else
            free(resp);
    }
    for (uint64_t i = 0; i < nh && i < 64; i++) {
        free(names[i]);
        free(values[i]);
    }
    free(method);
    free(url);
    free(body);
}

static void isend(etd_cluster *c, char *buf, size_t len, int dest, int tag, int *refs)
{
    etd_sendq *q = calloc(1, sizeof *q);
    if (!q)
        etd_cluster_fatal(c, -1, "out of memory", 0);
    q->buf = buf;
    q->refs = refs;
    int rc = MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, c->comm_op, &q->req);
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, dest, "MPI_Isend", rc);
    q->next = c->sends;
    c->sends = q;
}

/* Completed sends: free them (and their buffers with the last). */
static void reap(etd_cluster *c)
{
    for (etd_sendq **qq = &c->sends, *q; (q = *qq);) {
        int flag = 0;
        int rc = MPI_Test(&q->req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "MPI_Test of a send", rc);
        if (!flag) {
            qq = &q->next;
            continue;
        }
        *qq = q->next;
        if (--*q->refs == 0) {
            free(q->buf);
            free(q->refs);
        }
        free(q);
    }
}

/* Rank 0: give op its place in the order: every other rank gets it, then
 * this rank applies it. */
static void order_and_apply(etd_cluster *c, char *buf, size_t len)
{
    c->seq++;
    int *refs = malloc(sizeof *refs);
    if (!refs)
        etd_cluster_fatal(c, -1, "out of memory", 0);
    *refs = c->size; /* the sends and the apply below */
    for (int r = 1; r < c->size; r++)
        isend(c, buf, len, r, TAG_OP, refs);
    apply(c, buf, len);
    if (--*refs == 0) {
        free(buf);
        free(refs);
    }
}

/* Rank 0: the next step of the oldest job, in the order like a request (a
 * job's steps are collectives: every rank takes them at this place). */
static bool order_tick(etd_cluster *c)
{
    char model[256], id[32];
    int64_t job;
    if (!etd_jobs_next(c->app->reg, model, sizeof model, &job))
        return false;
    snprintf(id, sizeof id, "%lld", (long long)job);
    etd_buf b;
    etd_buf_init(&b);
    put_u64(&b, UINT64_MAX); /* no origin: nobody is answered */
    put_u64(&b, 0);
    put_str(&b, TICK, strlen(TICK));
    put_str(&b, model, strlen(model));
    put_u64(&b, 0);
    put_str(&b, id, strlen(id));
    if (b.oom)
        etd_cluster_fatal(c, -1, "out of memory", 0);
    order_and_apply(c, b.data, b.len);
    return true;
}

/* A message of tag from src (MPI_ANY_SOURCE) if one is there: its bytes. */
static char *try_recv(etd_cluster *c, int src, int tag, size_t *len)
{
    int flag = 0;
    MPI_Status st;
    int rc = MPI_Iprobe(src, tag, c->comm_op, &flag, &st);
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, src == MPI_ANY_SOURCE ? -1 : src, "MPI_Iprobe", rc);
    if (!flag)
        return NULL;
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        etd_cluster_fatal(c, st.MPI_SOURCE, "out of memory", 0);
    rc = MPI_Recv(buf, n, MPI_BYTE, st.MPI_SOURCE, tag, c->comm_op, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, st.MPI_SOURCE, "MPI_Recv", rc);
    *len = (size_t)n;
    return buf;
}

static void *applier_main(void *arg)
{
    etd_cluster *c = arg;
    long idle_us = 200;
    while (!atomic_load(&c->stop)) {
        bool busy = false;
        /* this rank's requests: to rank 0, or straight into the order */
        pthread_mutex_lock(&c->mu);
        etd_op *ops = c->submit_head;
        c->submit_head = c->submit_tail = NULL;
        pthread_mutex_unlock(&c->mu);
        for (etd_op *op = ops, *next; op; op = next) {
            next = op->next;
            busy = true;
            if (c->rank == 0) {
                order_and_apply(c, op->buf, op->len);
            } else {
                int *refs = malloc(sizeof *refs);
                if (!refs)
                    etd_cluster_fatal(c, -1, "out of memory", 0);
                *refs = 1;
                isend(c, op->buf, op->len, 0, TAG_SUBMIT, refs);
            }
            free(op);
            pthread_mutex_lock(&c->stat_mu);
            c->ops_submitted++;
            pthread_mutex_unlock(&c->stat_mu);
        }
        size_t len;
        char *buf;
        if (c->rank == 0) {
            while ((buf = try_recv(c, MPI_ANY_SOURCE, TAG_SUBMIT, &len))) {
                busy = true;
                order_and_apply(c, buf, len);
            }
            /* requests first, then one step of a job: both make progress */
            if (!atomic_load(&c->stop_applied))
                busy = order_tick(c) || busy;
        } else {
            while ((buf = try_recv(c, 0, TAG_OP, &len))) {
                busy = true;
                apply(c, buf, len);
                free(buf);
            }
        }
        reap(c);
        if (busy) {
            idle_us = 200;
            continue;
        }
        struct timespec ts = {0, idle_us * 1000};
        nanosleep(&ts, NULL);
        if (idle_us < 2000)
            idle_us += 100;
    }
    return NULL;
}

void etd_order_quiesce(etd_cluster *c)
{
    if (!c->applier_started)
        return;
    etd_buf b;
    etd_buf_init(&b);
    put_u64(&b, (uint64_t)c->rank);
    put_u64(&b, 0); /* no ticket: nobody is answered */
    put_str(&b, STOP, strlen(STOP));
    put_str(&b, "", 0);
    put_u64(&b, 0);
    put_str(&b, "", 0);
    etd_op *op = b.oom ? NULL : calloc(1, sizeof *op);
    if (!op) {
        etd_buf_free(&b);
        return; /* the jobs stop where they are */
    }
    op->buf = b.data;
    op->len = b.len;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)c->o.timeout + 1;
    pthread_mutex_lock(&c->mu);
    if (c->submit_tail)
        c->submit_tail->next = op;
    else
        c->submit_head = op;
    c->submit_tail = op;
    int rc = 0;
    while (!atomic_load(&c->stop_applied) && rc == 0)
        rc = pthread_cond_timedwait(&c->stop_cv, &c->mu, &dl);
    pthread_mutex_unlock(&c->mu);
    if (!atomic_load(&c->stop_applied))
        fprintf(stderr, "easytorchd: rank %d: the stop was not ordered within %.0f s; jobs stop "
                "where they are\n", c->rank, c->o.timeout + 1);
}

bool etd_order_start(etd_cluster *c, etd_err *e)
{
    if (pthread_create(&c->applier, NULL, applier_main, c) != 0)
        return etd_fail(e, ETD_EINTERNAL, "cannot start the apply thread"), false;
    c->applier_started = true;
    return true;
}

void etd_order_stop(etd_cluster *c)
{
    if (!c->applier_started)
        return;
    atomic_store(&c->stop, true);
    /* it finishes the request it applies; one whose collective waits for a
     * rank that stopped first never would */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)c->o.timeout + 1;
    if (pthread_timedjoin_np(c->applier, NULL, &dl) != 0)
        etd_cluster_fatal(c, -1, "stopping: the request being applied waits for another rank",
                          0);
    c->applier_started = false;
    /* sends still in flight: their peers are stopping too */
    for (etd_sendq *q = c->sends, *n; q; q = n) {
        n = q->next;
        MPI_Cancel(&q->req);
        MPI_Request_free(&q->req);
        if (--*q->refs == 0) {
            free(q->buf);
            free(q->refs);
        }
        free(q);
    }
    c->sends = NULL;
    /* requests not applied: answered 503 */
    pthread_mutex_lock(&c->mu);
    etd_op *ops = c->submit_head;
    c->submit_head = c->submit_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    for (etd_op *op = ops, *n; op; op = n) {
        n = op->next;
        rd r = {op->buf, op->buf + op->len, false};
        get_u64(&r);
        uint64_t ticket = get_u64(&r);
        char *msg = strdup("{\"error\": \"shutting down: the request was not applied\"}\n");
        answer(c, ticket, msg ? 503 : 0, msg, msg ? strlen(msg) : 0, "application/json",
               NULL);
        free(op->buf);
        free(op);
    }
}
