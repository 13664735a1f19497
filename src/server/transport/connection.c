/* connection.c - a request's life on a libmicrohttpd connection: the
 * access and completion callbacks that drive the pipeline, where the
 * handler runs (the I/O thread or the worker pool, the connection suspended
 * meanwhile), deferred answers, streamed bodies, the client-gone check, and
 * the watchdog of the connections' deadlines.  docs/server.md, "Execution
 * model", says why. */
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/transport/connection.h"

/* ---------------------------------------------------------------- connection tracking */

static void conn_state(etd_server *s, etd_conn *ct, int state)
{
    if (!ct)
        return;
    pthread_mutex_lock(&s->conn_mu);
    ct->state = state;
    clock_gettime(CLOCK_MONOTONIC, &ct->since);
    pthread_mutex_unlock(&s->conn_mu);
}

void etd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    etd_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        etd_conn *ct = calloc(1, sizeof *ct);
        *socket_context = ct;
        if (!ct)
            return;
        ct->fd = fi ? fi->connect_fd : -1;
        if (ai && ai->client_addr) {
            ct->alen = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                              : sizeof(struct sockaddr_in);
            memcpy(&ct->addr, ai->client_addr, ct->alen);
        }
        ct->state = ETD_CONN_IDLE;
        clock_gettime(CLOCK_MONOTONIC, &ct->since);
        pthread_mutex_lock(&s->conn_mu);
        ct->next = s->conns;
        if (s->conns)
            s->conns->prev = ct;
        s->conns = ct;
        pthread_mutex_unlock(&s->conn_mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        etd_conn *ct = *socket_context;
        if (ct) {
            pthread_mutex_lock(&s->conn_mu);
            if (ct->prev)
                ct->prev->next = ct->next;
            else
                s->conns = ct->next;
            if (ct->next)
                ct->next->prev = ct->prev;
            pthread_mutex_unlock(&s->conn_mu);
        }
        if (s->acc)
            etd_acceptor_closed(s->acc, ct ? (struct sockaddr *)&ct->addr : NULL,
                                ct ? ct->alen : 0);
        free(ct);
        *socket_context = NULL;
    }
}

/* The request line is in: its headers have --header-timeout from now. */
void *etd_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_state(cls, ci ? ci->socket_context : NULL, ETD_CONN_HEAD);
    return NULL;
}

/* ---------------------------------------------------------------- the watchdog
 * libmicrohttpd's connection timeout is an idle timeout: a client that sends
 * one byte of its headers or body every few seconds (slowloris, slow body)
 * is never idle.  So each connection's state is tracked (above), and this
 * thread shuts down the socket of one whose head is not complete within
 * --header-timeout of its request line, or whose body is not complete
 * within --request-timeout of its head (libmicrohttpd then closes it as a
 * dead peer).  CLOSED is notified before libmicrohttpd closes the socket
 * and both sides hold conn_mu, so a reused descriptor is never touched.
 * It also gives parked streams their heartbeat and notices their clients
 * leaving. */

static void streams_tick(etd_server *s);

static void *watchdog_main(void *arg)
{
    etd_server *s = arg;
    long peak = 0; /* connections, since the last trim */
    pthread_mutex_lock(&s->conn_mu);
    while (!s->watchdog_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + 250000000L;
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->watchdog_cv, &s->conn_mu, &ts);
        for (etd_conn *ct = s->conns; ct; ct = ct->next) {
            double limit = ct->state == ETD_CONN_HEAD   ? s->o.header_timeout
                           : ct->state == ETD_CONN_BODY ? s->o.request_timeout
                                                        : 0;
            if (limit > 0 && !ct->cut && ct->fd >= 0 && etd_since(&ct->since) > limit) {
                shutdown(ct->fd, SHUT_RDWR);
                ct->cut = true;
            }
        }
        pthread_mutex_unlock(&s->conn_mu);
        streams_tick(s);
        /* After a crowd of connections has gone (an attack, a burst), give
         * the freed heap back: glibc keeps it in its arenas otherwise, and the
         * daemon's memory would stay at the crowd's size. */
        if (s->acc) {
            long pending, total;
            unsigned long long refused;
            etd_acceptor_counts(s->acc, &pending, &total, &refused);
            if (total > peak)
                peak = total;
            if (peak >= 64 && total < peak / 4) {
                malloc_trim(0);
                peak = total;
            }
        }
        pthread_mutex_lock(&s->conn_mu);
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

bool etd_watchdog_start(etd_server *s)
{
    s->watchdog_started = pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0;
    return s->watchdog_started;
}

void etd_watchdog_stop(etd_server *s)
{
    if (!s->watchdog_started)
        return;
    pthread_mutex_lock(&s->conn_mu);
    s->watchdog_stop = true;
    pthread_cond_signal(&s->watchdog_cv);
    pthread_mutex_unlock(&s->conn_mu);
    pthread_join(s->watchdog, NULL);
    s->watchdog_started = false;
}

/* ---------------------------------------------------------------- the client */

/* Has the client closed its connection?  Only called while libmicrohttpd
 * does not read the socket (the request is suspended, or this is its I/O
 * thread), so peeking takes nothing from it; pipelined bytes read as
 * "still there". */
static bool sock_gone(int fd)
{
    if (fd < 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static bool x_gone(etd_exchange *x) { return sock_gone(x->fd); }

/* ---------------------------------------------------------------- streamed bodies */

struct etd_xstream {
    etd_stream base;            /* what the handler sees */
    atomic_int refs;
    pthread_mutex_t mu;
    bool parked;                /* suspended, waiting for a wake */
    bool wake_pending;          /* woken while not parked: pull again at once */
    bool over;                  /* libmicrohttpd is done with it */
    atomic_bool gone;           /* the client left (watchdog) */
    bool ended;                 /* pull said END */
    struct timespec parked_at;
    struct MHD_Connection *conn;
    int fd;
    etd_server *srv;
    etd_pull_fn pull;
    void (*done)(void *arg);
    void *arg;
    etd_buf pend;               /* pulled, not yet handed to libmicrohttpd */
    size_t off;
    etd_xstream *prev, *next;   /* srv->streams (parked ones) */
};

static void xs_unlink(etd_xstream *xs) /* stream_mu held */
{
    etd_server *s = xs->srv;
    if (xs->prev)
        xs->prev->next = xs->next;
    else if (s->streams == xs)
        s->streams = xs->next;
    if (xs->next)
        xs->next->prev = xs->prev;
    xs->prev = xs->next = NULL;
}

static void xs_ref(etd_stream *st)
{
    atomic_fetch_add(&((etd_xstream *)st)->refs, 1);
}

static void xs_unref(etd_stream *st)
{
    etd_xstream *xs = (etd_xstream *)st;
    if (atomic_fetch_sub(&xs->refs, 1) != 1)
        return;
    etd_buf_free(&xs->pend);
    pthread_mutex_destroy(&xs->mu);
    free(xs);
}

static void xs_wake(etd_stream *st)
{
    etd_xstream *xs = (etd_xstream *)st;
    pthread_mutex_lock(&xs->mu);
    if (!xs->over) {
        if (xs->parked) {
            xs->parked = false;
            pthread_mutex_lock(&xs->srv->stream_mu);
            xs_unlink(xs);
            pthread_mutex_unlock(&xs->srv->stream_mu);
            MHD_resume_connection(xs->conn);
        } else {
            xs->wake_pending = true;
        }
    }
    pthread_mutex_unlock(&xs->mu);
}

static const struct etd_stream_ops xs_ops = {xs_wake, xs_ref, xs_unref};

/* libmicrohttpd asks for more of the body (its I/O thread). */
static ssize_t xs_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    etd_xstream *xs = cls;
    (void)pos;
    for (;;) {
        if (xs->off < xs->pend.len) {
            size_t n = xs->pend.len - xs->off < max ? xs->pend.len - xs->off : max;
            memcpy(buf, xs->pend.data + xs->off, n);
            xs->off += n;
            return (ssize_t)n;
        }
        if (xs->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&xs->mu);
        xs->wake_pending = false;
        pthread_mutex_unlock(&xs->mu);
        if (atomic_load(&xs->gone))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        bool last = atomic_load(&xs->srv->draining);
        xs->base.draining = last;
        xs->pend.len = 0;
        xs->off = 0;
        etd_pull r = xs->pull(xs->arg, &xs->base, &xs->pend);
        if (xs->pend.oom)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (r == ETD_PULL_END || last)
            xs->ended = true;
        if (xs->pend.len > 0 || xs->ended)
            continue;
        /* nothing to send: park without a thread until a wake or the heartbeat */
        pthread_mutex_lock(&xs->mu);
        if (xs->wake_pending) {
            pthread_mutex_unlock(&xs->mu);
            continue;
        }
        xs->parked = true;
        clock_gettime(CLOCK_MONOTONIC, &xs->parked_at);
        pthread_mutex_lock(&xs->srv->stream_mu);
        xs->prev = NULL;
        xs->next = xs->srv->streams;
        if (xs->next)
            xs->next->prev = xs;
        xs->srv->streams = xs;
        pthread_mutex_unlock(&xs->srv->stream_mu);
        MHD_suspend_connection(xs->conn);
        pthread_mutex_unlock(&xs->mu);
        return 0;
    }
}

static void xs_free(void *cls)
{
    etd_xstream *xs = cls;
    pthread_mutex_lock(&xs->mu);
    xs->over = true;
    if (xs->parked) { /* cannot be: libmicrohttpd frees only resumed connections */
        xs->parked = false;
        pthread_mutex_lock(&xs->srv->stream_mu);
        xs_unlink(xs);
        pthread_mutex_unlock(&xs->srv->stream_mu);
    }
    pthread_mutex_unlock(&xs->mu);
    if (xs->done)
        xs->done(xs->arg);
    xs->done = NULL;
    xs_unref(&xs->base);
}

/* Every tick: wake parked streams that waited a second (their heartbeat),
 * or whose client left, or all while draining. */
static void streams_tick(etd_server *s)
{
    etd_xstream *due[256];
    int n = 0;
    bool draining = atomic_load(&s->draining);
    pthread_mutex_lock(&s->stream_mu);
    for (etd_xstream *xs = s->streams; xs && n < 256; xs = xs->next) {
        bool gone = sock_gone(xs->fd);
        if (draining || gone || etd_since(&xs->parked_at) >= 1.0) {
            if (gone)
                atomic_store(&xs->gone, true);
            atomic_fetch_add(&xs->refs, 1);
            due[n++] = xs;
        }
    }
    pthread_mutex_unlock(&s->stream_mu);
    for (int i = 0; i < n; i++) {
        xs_wake(&due[i]->base);
        xs_unref(&due[i]->base);
    }
}

void etd_streams_wake_all(etd_server *s)
{
    streams_tick(s); /* draining is set: every parked stream is due */
}

static struct MHD_Response *stream_response(etd_exchange *x, struct MHD_Connection *conn)
{
    etd_xstream *xs = calloc(1, sizeof *xs);
    if (!xs)
        return NULL;
    xs->base.ops = &xs_ops;
    atomic_init(&xs->refs, 1);
    pthread_mutex_init(&xs->mu, NULL);
    xs->conn = conn;
    xs->fd = x->fd;
    xs->srv = x->srv;
    xs->pull = x->rs.pull;
    xs->done = x->rs.pull_done;
    xs->arg = x->rs.pull_arg;
    etd_buf_init(&xs->pend);
    /* the stream owns them now */
    x->rs.pull = NULL;
    x->rs.pull_done = NULL;
    x->rs.pull_arg = NULL;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, xs_read, xs, xs_free);
    if (!r) {
        xs_free(xs);
        return NULL;
    }
    return r;
}

/* ---------------------------------------------------------------- answers */

static enum MHD_Result send_answer(etd_exchange *x, struct MHD_Connection *conn)
{
    x->answered = true;
    struct MHD_Response *r;
    bool head = strcmp(x->method, "HEAD") == 0;
    if (x->rs.pull && !head) {
        r = stream_response(x, conn);
    } else {
        const void *data;
        size_t len;
        bool must_free;
        etd_response_finish(&x->rs, false, &data, &len, &must_free);
        r = MHD_create_response_from_buffer(
            len, (void *)data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!r && must_free)
            free((void *)data);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            x->rs.content_type ? x->rs.content_type : "application/json");
    for (int i = 0; i < x->rs.nheaders; i++)
        MHD_add_response_header(r, x->rs.headers[i].name, x->rs.headers[i].value);
    if (x->rs.close || x->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)x->rs.status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A deferred answer is complete, or a worker finished: back to the I/O
 * thread, which sends it (the access handler is called again). */
static void resume_with(etd_exchange *x, int phase)
{
    atomic_store(&x->phase, phase);
    MHD_resume_connection(x->conn);
}

static void answer_ready(etd_exchange *x)
{
    if (atomic_load(&x->srv->draining))
        x->rs.close = true;
    resume_with(x, ETD_X_READY);
}

static void job_run(etd_job *j)
{
    etd_exchange *x = (etd_exchange *)((char *)j - offsetof(etd_exchange, job));
    etd_run r = etd_exchange_run(x);
    etd_job_release(j); /* the model's lock goes back before the answer does */
    if (r == ETD_RUN_LATER)
        return;
    resume_with(x, r == ETD_RUN_DROP ? ETD_X_DROP : ETD_X_READY);
}

static void job_drop(etd_job *j)
{
    etd_exchange *x = (etd_exchange *)((char *)j - offsetof(etd_exchange, job));
    etd_exchange_refuse(x, 503, true, "server is shutting down");
    resume_with(x, ETD_X_READY);
}

/* The body is complete: run the handler here (cheap, never waits) or on a
 * worker (the connection suspended until it is done). */
static enum MHD_Result start(etd_exchange *x, struct MHD_Connection *conn)
{
    etd_server *s = x->srv;
    const etd_route *rt = x->route;
    etd_model *m = NULL;
    bool here = !s->workers || (rt->flags & ETD_R_INLINE);
    if (!here && (rt->flags & (ETD_R_SHARED | ETD_R_EXCLUSIVE))) {
        etd_err e;
        if (etd_registry_get(s->app->reg, x->cap.name, &m, &e) != ETD_OK) {
            here = true; /* no such model: the handler's 404 is cheap */
        } else if (rt->cheap && !x->too_big) {
            bool write = (rt->flags & ETD_R_EXCLUSIVE) != 0;
            etd_exchange_prepare(x);
            if (rt->cheap(m, &x->rq) && etd_model_try_hold(m, write, NULL)) {
                /* a small request on a free model: on this thread, holding
                 * its lock (shared for a prediction, exclusive for a small
                 * train call; taken without waiting, so never ahead of a
                 * job queued for the model).  It may defer (a dynamic
                 * batch): the connection is suspended before the handler's
                 * return is counted, so the answer's completion can never
                 * resume a connection not yet suspended. */
                x->deferrable = true;
                x->hold_defer = true;
                x->answer_ready = answer_ready;
                etd_model_adopt(m, write);
                etd_run r = etd_exchange_run(x);
                etd_model_adopt(NULL, false);
                etd_model_release(m);
                etd_model_unref(m);
                atomic_fetch_add(&s->inline_runs, 1);
                if (r == ETD_RUN_LATER) {
                    atomic_store(&x->phase, ETD_X_RUNNING);
                    MHD_suspend_connection(conn);
                    if (etd_exchange_defer_release(x))
                        answer_ready(x); /* it came already: resume at once */
                    return MHD_YES;
                }
                return r == ETD_RUN_DROP ? MHD_NO : send_answer(x, conn);
            }
        }
    }
    if (here) {
        etd_model_unref(m);
        atomic_fetch_add(&s->inline_runs, 1);
        return etd_exchange_run(x) == ETD_RUN_DROP ? MHD_NO : send_answer(x, conn);
    }
    x->deferrable = true;
    x->answer_ready = answer_ready;
    x->job = (etd_job){.run = job_run, .drop = job_drop, .m = m,
                       .write = (rt->flags & ETD_R_EXCLUSIVE) != 0,
                       .longrun = (rt->flags & ETD_R_LONG) != 0};
    atomic_store(&x->phase, ETD_X_RUNNING);
    MHD_suspend_connection(conn); /* before the job can finish and resume it */
    if (!etd_workers_submit(s->workers, &x->job, true)) {
        etd_model_unref(m);
        x->job.m = NULL;
        atomic_fetch_add(&s->queue_full, 1);
        char msg[160];
        snprintf(msg, sizeof msg, "server busy: %u requests are waiting for a worker "
                 "(--max-queue); retry later", s->o.max_queue);
        etd_exchange_refuse(x, 503, false, msg);
        etd_response_header(&x->rs, "Retry-After", "1");
        resume_with(x, ETD_X_READY);
        return MHD_YES;
    }
    atomic_fetch_add(&s->worker_runs, 1);
    return MHD_YES;
}

/* ---------------------------------------------------------------- the callbacks */

/* Headers or query arguments of a connection, as etd_kv (the strings stay
 * libmicrohttpd's, valid until the request completes). */
typedef struct collect {
    etd_kv *kv;
    int n, cap;
    bool nul;                   /* a NUL inside a header name or value */
} collect;

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    collect *c = cls;
    (void)kind;
    if (!key || strlen(key) != key_size || (value && strlen(value) != value_size)) {
        c->nul = true;
        return MHD_YES;
    }
    if (c->n < c->cap)
        c->kv[c->n++] = (etd_kv){key, value, value ? value_size : 0};
    return MHD_YES;
}

static bool collect_all(struct MHD_Connection *conn, enum MHD_ValueKind kind, collect *c)
{
    int n = MHD_get_connection_values(conn, kind, NULL, NULL);
    c->cap = n > 0 ? n : 0;
    c->kv = calloc((size_t)c->cap + 1, sizeof *c->kv);
    if (!c->kv)
        return false;
    MHD_get_connection_values_n(conn, kind, collect_one, c);
    return true;
}

enum MHD_Result etd_on_access(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    etd_server *s = cls;
    etd_exchange *x = *con_cls;
    if (!x) {
        collect h = {0}, q = {0};
        if (!collect_all(conn, MHD_HEADER_KIND, &h) ||
            !collect_all(conn, MHD_GET_ARGUMENT_KIND, &q)) {
            free(h.kv);
            free(q.kv);
            return MHD_NO;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        etd_conn *ct = ci ? ci->socket_context : NULL;
        int minor = version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0 ? 0 : 1;
        x = etd_exchange_new(s, ct, method, url, minor, h.kv, h.n, h.nul, q.kv, q.n);
        free(h.kv);
        free(q.kv);
        if (!x)
            return MHD_NO;
        x->conn = conn;
        x->fd = ct ? ct->fd : -1;
        const union MHD_ConnectionInfo *hs =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        x->head_len = hs ? hs->header_size : 0;
        x->target_len = strlen(url);
        x->gone = x_gone;
        *con_cls = x;
        conn_state(s, ct, ETD_CONN_BODY);
        return etd_exchange_admit(x) ? send_answer(x, conn) : MHD_YES;
    }
    switch (atomic_load(&x->phase)) {
    case ETD_X_READY:
        return send_answer(x, conn); /* resumed with the answer */
    case ETD_X_DROP:
        return MHD_NO;
    case ETD_X_RUNNING:
        return MHD_YES; /* suspended; not called meanwhile */
    default:
        break;
    }
    if (x->answered) { /* early answer: drop whatever body still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return etd_exchange_upload(x, upload_data, n) ? MHD_YES : MHD_NO;
    }
    conn_state(s, x->ct, ETD_CONN_BUSY);
    return start(x, conn);
}

void etd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    etd_server *s = cls;
    (void)conn;
    etd_exchange *x = *con_cls;
    if (!x)
        return;
    etd_conn *ct = x->ct;
    etd_exchange_end(x, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_state(s, ct, ETD_CONN_IDLE);
    *con_cls = NULL;
}
