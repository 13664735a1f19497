/* pipeline.c - the one request pipeline of easytorchd, shared by the
 * libmicrohttpd callbacks (daemon.c) and etd_dispatch (dispatch.c): header
 * checks, routing, draining, auth, readiness, body limits, the handler,
 * metrics and the access log.  No libmicrohttpd here. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/transport/transport_internal.h"

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
static bool token_ok(const etd_exchange *x)
{
    const char *h = header(x, "Authorization");
    const char *want = x->srv->o.token;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *got = h + 7;
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

/* ---------------------------------------------------------------- the steps */

etd_exchange *etd_exchange_new(etd_server *s, etd_conn *ct, const char *method,
                               const char *path, const etd_kv *headers, int nheaders,
                               bool header_nul, const etd_kv *query, int nquery)
{
    etd_exchange *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
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
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add(&s->started, 1);
    x->srv = s;
    x->ct = ct;
    etd_conn_set_active(s, ct, true);
    x->slot = etd_http_metrics_slot(s->metrics, -1, -1, "");
    clock_gettime(CLOCK_MONOTONIC, &x->t0);
    etd_response_init(&x->rs);
    snprintf(x->method, sizeof x->method, "%s", method);
    snprintf(x->path, sizeof x->path, "%s", path);
    for (char *c = x->path; *c; c++) /* the path is unescaped: no control bytes in the log */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return x;
}

/* An early answer: status and {"error": ...}; `close` asks the client to
 * go (the rest of what it sends is not read). */
static bool refuse(etd_exchange *x, int status, bool close, const char *msg)
{
    etd_response_error(&x->rs, status, "%s", msg);
    x->rs.close = close;
    x->answered = true;
    etd_cors_answer(&x->srv->app->cors, x->headers, x->nheaders, &x->rs);
    return true;
}

bool etd_exchange_admit(etd_exchange *x)
{
    etd_server *s = x->srv;
    char msg[512];
    /* differing Content-Length headers (the request-smuggling pattern) and
     * NUL bytes, which would cut header values short, are refused */
    const char *first_cl = NULL;
    bool cl_conflict = false;
    for (int i = 0; i < x->nheaders; i++)
        if (strcasecmp(x->headers[i].name, "Content-Length") == 0) {
            const char *v = x->headers[i].value ? x->headers[i].value : "";
            if (!first_cl)
                first_cl = v;
            else if (strcmp(first_cl, v) != 0)
                cl_conflict = true;
        }
    if (x->header_nul || cl_conflict)
        return refuse(x, 400, true, x->header_nul ? "a request header contains a NUL byte"
                                                  : "Content-Length: repeated with different values");
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
    if (!(rt->flags & ETD_R_PUBLIC) && s->o.token && !token_ok(x)) {
        refuse(x, 401, false, "missing or wrong bearer token (Authorization: Bearer <token>)");
        etd_response_header(&x->rs, "WWW-Authenticate", "Bearer");
        return true;
    }
    if ((rt->flags & ETD_R_READY) && !atomic_load(&s->ready))
        return refuse(x, 503, false, "not ready: loading persisted models");
    const char *cl = header(x, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (n > s->o.max_body) {
            snprintf(msg, sizeof msg, "body of %llu bytes is over the limit of %zu bytes "
                     "(--max-body)", n, s->o.max_body);
            return refuse(x, 413, true, msg);
        }
        if (n > 0 && (rt->flags & ETD_R_BODY)) { /* the length is known: one allocation */
            x->body = malloc((size_t)n + 1);
            if (x->body)
                x->cap_body = (size_t)n + 1;
        }
    }
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
        while (nc < x->len + n + 1)
            nc *= 2;
        char *b = realloc(x->body, nc);
        if (!b)
            return false;
        x->body = b;
        x->cap_body = nc;
    }
    memcpy(x->body + x->len, data, n);
    x->len += n;
    return true;
}

/* Prometheus text of the server's request metrics (etd_host's hook). */
static void write_http_metrics(void *arg, etd_buf *out)
{
    const etd_server *s = arg;
    etd_http_metrics_write(s->metrics, out);
}

bool etd_exchange_run(etd_exchange *x)
{
    etd_server *s = x->srv;
    x->answered = true;
    if (x->too_big) {
        etd_response_error(&x->rs, 413, "body is over the limit of %zu bytes (--max-body)",
                           s->o.max_body);
        x->rs.close = true;
        etd_cors_answer(&s->app->cors, x->headers, x->nheaders, &x->rs);
        return true;
    }
    if (!x->body && !(x->body = malloc(1)))
        return false;
    x->body[x->len] = '\0';
    etd_host host = {atomic_load(&s->ready), atomic_load(&s->draining), write_http_metrics, s};
    etd_request rq = {
        .app = s->app, .host = &host, .method = x->method, .path = x->path,
        .name = x->cap.name, .asset = x->cap.asset, .version = x->cap.version,
        .id = x->cap.id, .query = x->query, .nquery = x->nquery,
        .headers = x->headers, .nheaders = x->nheaders, .body = x->body, .body_len = x->len,
    };
    etd_endpoint_run(x->route, &rq, &x->rs);
    etd_cors_answer(&s->app->cors, x->headers, x->nheaders, &x->rs);
    if (atomic_load(&s->draining))
        x->rs.close = true;
    return true;
}

void etd_exchange_end(etd_exchange *x, bool completed_ok)
{
    etd_server *s = x->srv;
    double secs = etd_since(&x->t0);
    int status = x->answered ? x->rs.status : 0;
    etd_http_metrics_record(s->metrics, x->slot, status, secs);
    etd_log_access(s, x->method, x->path, status, secs, completed_ok);
    etd_conn_set_active(s, x->ct, false);
    etd_response_free(&x->rs);
    free(x->headers);
    free(x->query);
    free(x->upath);
    free(x->body);
    free(x);
    atomic_fetch_sub(&s->inflight, 1);
}
