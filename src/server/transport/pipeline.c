/* pipeline.c - the one request pipeline of easytorchd, shared by the
 * libmicrohttpd callbacks (daemon.c) and etd_dispatch (dispatch.c): header
 * checks, routing, draining, auth, readiness, body limits, the handler,
 * metrics and the access log.  No libmicrohttpd here. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/formats/shared_buf.h"
#include "server/transport/transport_internal.h"

/* A declared body up to this size is allocated at once (see
 * etd_exchange_admit).  Kept small: every connection that has sent its
 * headers holds this much, so a slow-body attacker declaring large bodies
 * must not reserve more than this per connection (1,000 of them: 64 MiB);
 * above it the body costs only what has arrived, plus one 16 KiB copy. */
#define BODY_AT_ONCE ((size_t)64 << 10)

/* ---------------------------------------------------------------- small helpers */

double etd_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

size_t etd_unescape(char *s)
{
    char *r = s, *w = s;
    while (*r) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
            !(r[1] == '0' && r[2] == '0')) {
            char hex[3] = {r[1], r[2], '\0'};
            *w++ = (char)strtoul(hex, NULL, 16);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

void etd_log_access(const etd_server *s, const char *method, const char *path, int status,
                    double secs, bool completed_ok)
{
    if (s->o.quiet)
        return;
    struct timespec now;
    struct tm tm;
    char ts[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s %d %.3fms%s\n", ts, now.tv_nsec / 1000000, method, path,
            status, secs * 1e3, completed_ok ? "" : " (aborted)");
}

static const char *header(const etd_exchange *x, const char *name)
{
    for (int i = 0; i < x->nheaders; i++)
        if (strcasecmp(x->headers[i].name, name) == 0)
            return x->headers[i].value;
    return NULL;
}

/* Constant-time in the length of the expected token. */
static bool token_eq(const char *got, const char *want)
{
    while (*got == ' ')
        got++;
    size_t gl = strlen(got), el = strlen(want);
    while (gl > 0 && got[gl - 1] == ' ')
        gl--;
    volatile unsigned char diff = gl != el;
    for (size_t i = 0; i < el; i++)
        diff |= (unsigned char)((i < gl ? (unsigned char)got[i] : 0) ^ (unsigned char)want[i]);
    return diff == 0;
}

/* Authorization: Bearer <token>, or on routes that take it (event streams:
 * EventSource cannot send headers) ?access_token=<token>. */
static bool token_ok(const etd_exchange *x, const etd_route *rt)
{
    const char *h = header(x, "Authorization");
    const char *want = x->srv->o.token;
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        return token_eq(h + 7, want);
    if (rt->flags & ETD_R_QUERY_TOKEN)
        for (int i = 0; i < x->nquery; i++)
            if (strcmp(x->query[i].name, "access_token") == 0)
                return token_eq(x->query[i].value, want);
    return false;
}

/* src into dst[cap], cut to fit (what snprintf("%s") does, without its cost
 * on every request). */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---------------------------------------------------------------- the steps */

etd_exchange *etd_exchange_new(etd_server *s, etd_conn *ct, const char *method, const char *url,
                               int minor, const etd_kv *headers, int nheaders, bool header_nul,
                               const etd_kv *query, int nquery)
{
    etd_exchange *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    /* an absolute-form target (RFC 9112 3.2.2) is routed by its path */
    const char *path = etd_target_path(url);
    x->headers = calloc((size_t)nheaders + 1, sizeof *x->headers);
    x->query = calloc((size_t)nquery + 1, sizeof *x->query);
    x->upath = strdup(path);
    if (!x->headers || !x->query || !x->upath) {
        free(x->headers);
        free(x->query);
        free(x->upath);
        free(x);
        return NULL;
    }
    if (nheaders)
        memcpy(x->headers, headers, (size_t)nheaders * sizeof *headers);
    if (nquery)
        memcpy(x->query, query, (size_t)nquery * sizeof *query);
    x->nheaders = nheaders;
    x->nquery = nquery;
    x->header_nul = header_nul;
    x->minor = minor;
    x->fd = -1;
    atomic_init(&x->phase, ETD_X_HEAD);
    atomic_init(&x->pending, 0);
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add(&s->started, 1);
    x->srv = s;
    x->ct = ct;
    x->slot = etd_http_metrics_slot(s->metrics, -1, -1, "");
    clock_gettime(CLOCK_MONOTONIC, &x->t0);
    etd_response_init(&x->rs);
    copy_cut(x->method, sizeof x->method, method);
    copy_cut(x->path, sizeof x->path, x->upath);
    for (char *c = x->path; *c; c++) /* the path is unescaped: no control bytes in the log */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return x;
}

void etd_exchange_refuse(etd_exchange *x, int status, bool close, const char *msg)
{
    etd_response_error(&x->rs, status, "%s", msg);
    x->rs.close = x->rs.close || close;
    x->answered = true;
    etd_cors_answer(&x->srv->app->cors, x->headers, x->nheaders, &x->rs);
}

static bool refuse(etd_exchange *x, int status, bool close, const char *msg)
{
    etd_exchange_refuse(x, status, close, msg);
    return true;
}

bool etd_exchange_admit(etd_exchange *x)
{
    etd_server *s = x->srv;
    char msg[512];
    if (x->header_nul) /* would cut header values short */
        return refuse(x, 400, true, "a request header contains a NUL byte");
    /* the limits the acceptor applies to a connection's first request */
    if (x->target_len > ETD_URI_MAX) {
        snprintf(msg, sizeof msg, "request target longer than %d bytes", ETD_URI_MAX);
        return refuse(x, 414, true, msg);
    }
    if (x->head_len > ETD_HEAD_MAX) {
        snprintf(msg, sizeof msg, "request head longer than %d bytes", ETD_HEAD_MAX);
        return refuse(x, 431, true, msg);
    }
    /* Host, Content-Length, Transfer-Encoding (head.c; the first request of
     * a connection was checked on its raw bytes already) */
    etd_verdict v;
    etd_framing_check(x->headers, x->nheaders, x->minor, &v);
    if (v.status)
        return refuse(x, v.status, true, v.msg);
    x->close_after = v.close;
    etd_match m = etd_route_match(s->routes, s->nroutes, x->method, x->upath, &x->cap);
    x->slot = etd_http_metrics_slot(s->metrics, m.route, m.pattern, x->method);
    if (m.route < 0) {
        if (m.status == 405 && strcmp(x->method, "OPTIONS") == 0) {
            /* a known path: the methods it takes, and the CORS preflight (no token) */
            etd_cors_preflight(&s->app->cors, x->headers, x->nheaders, m.allow, &x->rs);
            x->answered = true;
            return true;
        }
        if (m.status == 405) {
            snprintf(msg, sizeof msg, "method %s not allowed on %s (allowed: %s)", x->method,
                     x->path, m.allow);
            refuse(x, 405, false, msg);
            etd_response_header(&x->rs, "Allow", m.allow);
            return true;
        }
        snprintf(msg, sizeof msg, "no route %s %s", x->method, x->path);
        return refuse(x, 404, false, msg);
    }
    const etd_route *rt = x->route = &s->routes[m.route];
    if (!(rt->flags & ETD_R_PUBLIC) && atomic_load(&s->draining))
        return refuse(x, 503, true, "server is shutting down");
    if (!(rt->flags & ETD_R_PUBLIC) && s->o.token && !token_ok(x, rt)) {
        refuse(x, 401, false, "missing or wrong bearer token (Authorization: Bearer <token>)");
        etd_response_header(&x->rs, "WWW-Authenticate", "Bearer");
        return true;
    }
    if ((rt->flags & ETD_R_READY) && !atomic_load(&s->ready))
        return refuse(x, 503, false, "not ready: loading persisted models");
    const char *cl = v.chunked ? NULL : header(x, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (n > s->o.max_body) {
            snprintf(msg, sizeof msg, "body of %llu bytes is over the limit of %zu bytes "
                     "(--max-body)", n, s->o.max_body);
            return refuse(x, 413, true, msg);
        }
        x->declared = (size_t)n;
        /* The length is known: one allocation of the whole body (and its
         * NUL) up to BODY_AT_ONCE; a larger one gets 16 KiB first and the
         * rest when that much has really arrived, so a client that declares
         * a large body and trickles it (slow-body attack) costs what it
         * sent, not what it declared.  The buffer is shared (shared_buf.h):
         * tensors parsed from it may alias it. */
        if (n > 0 && (rt->flags & ETD_R_BODY)) {
            size_t first = n + 1 <= BODY_AT_ONCE ? (size_t)n + 1 : 16384;
            x->body = etd_sbuf_new(first);
            if (x->body)
                x->cap_body = first;
        }
    }
    atomic_store(&x->phase, ETD_X_BODY);
    return false;
}

bool etd_exchange_upload(etd_exchange *x, const char *data, size_t n)
{
    const etd_transport_opts *o = &x->srv->o;
    if (o->request_timeout > 0 && etd_since(&x->t0) > o->request_timeout)
        return false;
    if (x->too_big || x->len + n > o->max_body) {
        x->too_big = true; /* keep reading (and dropping): 413 at the end */
        return true;
    }
    if (x->route && !(x->route->flags & ETD_R_BODY))
        return true; /* a body this route ignores is read and dropped */
    if (x->len + n + 1 > x->cap_body) {
        size_t nc = x->cap_body ? x->cap_body : 4096;
        if (x->declared >= x->len + n && nc < x->declared + 1)
            nc = x->declared + 1; /* the rest of a declared body: once */
        while (nc < x->len + n + 1)
            nc *= 2;
        char *b = etd_sbuf_grow(x->body, x->len, nc);
        if (!b)
            return false;
        x->body = b;
        x->cap_body = nc;
    }
    memcpy(x->body + x->len, data, n);
    x->len += n;
    return true;
}

/* Prometheus text of the server's request and transport metrics (etd_host's hook). */
static void write_http_metrics(void *arg, etd_buf *out)
{
    etd_server *s = arg;
    etd_http_metrics_write(s->metrics, out);
    etd_transport_metrics(s, out);
}

static bool x_gone(void *arg)
{
    etd_exchange *x = arg;
    if (atomic_load(&x->srv->stopping)) {
        x->host.draining = true; /* so the handler can say why */
        return true;
    }
    return x->gone ? x->gone(x) : false;
}

static void x_done(etd_deferred *d)
{
    etd_exchange *x = (etd_exchange *)((char *)d - offsetof(etd_exchange, def));
    if (atomic_fetch_sub(&x->pending, 1) == 1) {
        etd_cors_answer(&x->srv->app->cors, x->headers, x->nheaders, &x->rs);
        x->answer_ready(x);
    }
}

static etd_deferred *x_defer(void *arg)
{
    etd_exchange *x = arg;
    if (!x->deferrable || x->deferred)
        return NULL;
    x->deferred = true;
    atomic_store(&x->pending, 2); /* the handler's return, then d->done */
    x->def.rs = &x->rs;
    x->def.done = x_done;
    return &x->def;
}

void etd_exchange_prepare(etd_exchange *x)
{
    etd_server *s = x->srv;
    x->host = (etd_host){atomic_load(&s->ready), atomic_load(&s->draining), write_http_metrics, s,
                         x_gone, x_defer, x, s->o.inline_macs,
                         s->o.inline_train_macs};
    x->rq = (etd_request){
        .app = s->app, .host = &x->host, .method = x->method, .path = x->path,
        .name = x->cap.name, .asset = x->cap.asset, .version = x->cap.version,
        .id = x->cap.id,
        .query = x->query, .nquery = x->nquery,
        .headers = x->headers, .nheaders = x->nheaders, .body = x->body ? x->body : "",
        .body_len = x->len, .body_shared = x->body != NULL,
    };
}

etd_run etd_exchange_run(etd_exchange *x)
{
    etd_server *s = x->srv;
    if (x->too_big) {
        etd_response_error(&x->rs, 413, "body is over the limit of %zu bytes (--max-body)",
                           s->o.max_body);
        x->rs.close = true;
        x->answered = true;
        etd_cors_answer(&s->app->cors, x->headers, x->nheaders, &x->rs);
        return ETD_RUN_ANSWERED;
    }
    if (!x->body && !(x->body = etd_sbuf_new(1)))
        return ETD_RUN_DROP;
    x->body[x->len] = '\0';
    etd_exchange_prepare(x);
    etd_endpoint_run(x->route, &x->rq, &x->rs);
    x->answered = true;
    if (x->deferred && x->hold_defer)
        return ETD_RUN_LATER; /* the driver counts the return (etd_exchange_defer_release) */
    if (x->deferred && atomic_fetch_sub(&x->pending, 1) != 1)
        return ETD_RUN_LATER; /* d->done comes later: x_done finishes the answer */
    etd_cors_answer(&s->app->cors, x->headers, x->nheaders, &x->rs);
    if (atomic_load(&s->draining))
        x->rs.close = true;
    return ETD_RUN_ANSWERED;
}

bool etd_exchange_defer_release(etd_exchange *x)
{
    if (atomic_fetch_sub(&x->pending, 1) != 1)
        return false; /* d->done comes later: x_done finishes the answer */
    etd_cors_answer(&x->srv->app->cors, x->headers, x->nheaders, &x->rs);
    return true;
}

void etd_exchange_end(etd_exchange *x, bool completed_ok)
{
    etd_server *s = x->srv;
    double secs = etd_since(&x->t0);
    int status = x->answered ? x->rs.status : 0;
    etd_http_metrics_record(s->metrics, x->slot, status, secs);
    etd_log_access(s, x->method, x->path, status, secs, completed_ok);
    etd_response_free(&x->rs);
    free(x->headers);
    free(x->query);
    free(x->upath);
    etd_sbuf_unref(x->body); /* tensors parsed from it may still hold it */
    free(x);
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---------------------------------------------------------------- raw answers */

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

int etd_raw_error(char *out, size_t cap, int status, const char *msg, bool retry_after)
{
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_puts(&b, "{\"error\":");
    etd_json_str(&b, msg);
    etd_buf_puts(&b, "}\n");
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
                     "%sContent-Length: %zu\r\n\r\n%.*s",
                     status, reason(status), date, retry_after ? "Retry-After: 1\r\n" : "",
                     b.oom ? (size_t)0 : b.len, b.oom ? 0 : (int)b.len, b.oom ? "" : b.data);
    etd_buf_free(&b);
    return n < 0 ? 0 : n >= (int)cap ? (int)cap - 1 : n;
}
