/* dispatch.c - requests without a socket: etd_dispatch drives the same
 * pipeline as the libmicrohttpd callbacks, for the Check tests and the
 * request fuzzer. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/transport/transport_internal.h"

#define MAX_ARGS 64

etd_server *etd_server_new_detached(const etd_transport_opts *o, const etd_route *routes, int n,
                                    const etd_app *app)
{
    etd_server *s = calloc(1, sizeof *s);
    if (!s || !etd_server_init(s, o, routes, n, app)) {
        free(s);
        return NULL;
    }
    atomic_store(&s->ready, true);
    return s;
}

/* Split qbuf ("a=1&b=%41") into decoded arguments as libmicrohttpd does
 * ('+' is a space, then the unescape rule); returns how many. */
static int parse_args(char *qbuf, etd_kv *kv, int cap)
{
    char *p = qbuf;
    int n = 0;
    while (p && *p && n < cap) {
        char *amp = strchr(p, '&');
        if (amp)
            *amp = '\0';
        if (*p) {
            char *eq = strchr(p, '=');
            if (eq)
                *eq++ = '\0';
            for (char *c = p; *c; c++)
                if (*c == '+')
                    *c = ' ';
            etd_unescape(p);
            size_t vl = 0;
            if (eq) {
                for (char *c = eq; *c; c++)
                    if (*c == '+')
                        *c = ' ';
                vl = etd_unescape(eq);
            }
            kv[n++] = (etd_kv){p, eq, vl};
        }
        p = amp ? amp + 1 : NULL;
    }
    return n;
}

/* ---------------------------------------------------------------- deferred answers, streams */

/* What the caller's thread waits on: a deferred answer, or a stream's wake. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;                 /* the deferred answer is complete */
    bool woken;                 /* the stream was woken */
} waiter;

static void d_answer_ready(etd_exchange *x)
{
    waiter *w = x->driver;
    pthread_mutex_lock(&w->mu);
    w->ready = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct dstream {
    etd_stream base;
    waiter *w;
} dstream;

static void ds_wake(etd_stream *st)
{
    waiter *w = ((dstream *)st)->w;
    pthread_mutex_lock(&w->mu);
    w->woken = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The stream lives on the caller's stack for the whole pull loop: handlers
 * drop their references before done() returns (as the contract says). */
static void ds_ref(etd_stream *st) { (void)st; }
static void ds_unref(etd_stream *st) { (void)st; }
static const struct etd_stream_ops ds_ops = {ds_wake, ds_ref, ds_unref};

/* Pull x's streamed body to its end into out (waiting as a connection
 * would, at most a second between pulls). */
static void pull_all(etd_exchange *x, waiter *w, etd_buf *out)
{
    dstream ds = {{&ds_ops, false, true}, w};
    etd_pull_fn pull = x->rs.pull;
    void (*done)(void *) = x->rs.pull_done;
    void *arg = x->rs.pull_arg;
    x->rs.pull = NULL;
    x->rs.pull_done = NULL;
    x->rs.pull_arg = NULL;
    for (;;) {
        ds.base.draining = atomic_load(&x->srv->draining) || atomic_load(&x->srv->stopping);
        pthread_mutex_lock(&w->mu);
        w->woken = false;
        pthread_mutex_unlock(&w->mu);
        size_t before = out->len;
        etd_pull r = pull(arg, &ds.base, out);
        if (r == ETD_PULL_END || ds.base.draining || out->oom)
            break;
        if (out->len > before)
            continue;
        pthread_mutex_lock(&w->mu);
        if (!w->woken) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (done)
        done(arg);
}

int etd_dispatch(etd_server *s, const char *method, const char *url,
                 const char *const *names, const char *const *values,
                 const size_t *value_lens, int n, const char *body, size_t body_len,
                 char **resp, size_t *resp_len, const char **content_type)
{
    return etd_dispatch_headers(s, method, url, names, values, value_lens, n, body, body_len,
                                resp, resp_len, content_type, NULL);
}

int etd_dispatch_headers(etd_server *s, const char *method, const char *url,
                         const char *const *names, const char *const *values,
                         const size_t *value_lens, int n, const char *body, size_t body_len,
                         char **resp, size_t *resp_len, const char **content_type,
                         etd_response *headers)
{
    if (headers)
        headers->nheaders = 0;
    *resp = NULL;
    *resp_len = 0;
    *content_type = "application/json";
    n = n > 0 ? n : 0;
    const char *qm = strchr(url, '?');
    size_t plen = qm ? (size_t)(qm - url) : strlen(url);
    char *path = malloc(plen + 1);
    char *qbuf = qm ? strdup(qm + 1) : NULL;
    etd_kv *hk = calloc((size_t)n + 2, sizeof *hk);
    etd_kv args[MAX_ARGS];
    int status = 0;
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
    if (!path || (qm && !qbuf) || !hk)
        goto out;
    memcpy(path, url, plen);
    path[plen] = '\0';
    etd_unescape(path);
    int nargs = parse_args(qbuf, args, MAX_ARGS);
    /* headers as on the wire: a NUL inside a name or value is refused */
    bool nul = false;
    int nh = 0;
    for (int i = 0; i < n; i++) {
        const char *k = names[i], *v = values[i];
        size_t vl = value_lens ? value_lens[i] : v ? strlen(v) : 0;
        if (!k || (v && strlen(v) != vl)) {
            nul = true;
            continue;
        }
        hk[nh++] = (etd_kv){k, v, vl};
    }
    /* an HTTP/1.1 request needs a Host: supply one when the caller has none */
    bool has_host = false;
    for (int i = 0; i < nh; i++)
        has_host = has_host || strcasecmp(hk[i].name, "Host") == 0;
    if (!has_host)
        hk[nh++] = (etd_kv){"Host", "localhost", 9};
    etd_exchange *x = etd_exchange_new(s, NULL, method, path, 1, hk, nh, nul, args, nargs);
    if (!x)
        goto out;
    x->deferrable = true;
    x->answer_ready = d_answer_ready;
    x->driver = &w;
    bool ok = true;
    if (!etd_exchange_admit(x)) {
        if (body_len > 0)
            ok = etd_exchange_upload(x, body, body_len);
        if (ok) {
            etd_run r = etd_exchange_run(x);
            ok = r != ETD_RUN_DROP;
            if (r == ETD_RUN_LATER) { /* a deferred answer: wait for it */
                pthread_mutex_lock(&w.mu);
                while (!w.ready)
                    pthread_cond_wait(&w.cv, &w.mu);
                pthread_mutex_unlock(&w.mu);
            }
        }
    }
    if (ok) {
        const void *data;
        size_t len;
        bool must_free;
        bool head = strcmp(method, "HEAD") == 0;
        etd_buf streamed;
        etd_buf_init(&streamed);
        if (x->rs.pull && !head) { /* a streamed body, whole */
            pull_all(x, &w, &streamed);
            data = streamed.data ? streamed.data : "";
            len = streamed.len;
            must_free = false;
        } else {
            etd_response_finish(&x->rs, head, &data, &len, &must_free);
        }
        *resp = malloc(len + 1);
        if (*resp) {
            if (len)
                memcpy(*resp, data, len);
            (*resp)[len] = '\0';
            *resp_len = len;
            *content_type = x->rs.content_type ? x->rs.content_type : "application/json";
            status = x->rs.status;
            for (int i = 0; headers && i < x->rs.nheaders; i++)
                etd_response_header(headers, x->rs.headers[i].name, x->rs.headers[i].value);
        } else {
            x->answered = false;
        }
        if (must_free)
            free((void *)data);
        etd_buf_free(&streamed);
    }
    etd_exchange_end(x, ok && status != 0);
out:
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    free(hk);
    free(qbuf);
    free(path);
    return status;
}
