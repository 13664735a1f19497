/* http.c - libmicrohttpd glue for easytorchd: per-request state, routing,
 * authentication, limits, access log and request metrics. */
#include "server/http_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- metrics */

#define MAX_ROUTES 64
static const int status_codes[] = {200, 201, 204, 400, 401, 404, 405, 409, 413, 500, 503};
#define NSTATUS ((int)(sizeof status_codes / sizeof status_codes[0]) + 1)
static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS ((int)(sizeof buckets / sizeof buckets[0]))

static atomic_ulong req_count[MAX_ROUTES + 1][NSTATUS];
static atomic_ulong lat_bucket[MAX_ROUTES + 1][NBUCKETS + 1];
static atomic_ullong lat_sum_us[MAX_ROUTES + 1];

static int status_slot(int status)
{
    for (int i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status)
            return i;
    return NSTATUS - 1;
}

static void record(int route, int status, double secs)
{
    int r = route < 0 || route >= MAX_ROUTES ? MAX_ROUTES : route;
    atomic_fetch_add_explicit(&req_count[r][status_slot(status)], 1, memory_order_relaxed);
    int b = 0;
    while (b < NBUCKETS && secs > buckets[b])
        b++;
    atomic_fetch_add_explicit(&lat_bucket[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_sum_us[r], (unsigned long long)(secs * 1e6),
                              memory_order_relaxed);
}

static const char *route_label(int r)
{
    return r < MAX_ROUTES && r < etd_nroutes ? etd_routes[r].label : "unmatched";
}

/* Routes share a pattern across methods: the method keeps series unique. */
static const char *route_method(int r)
{
    return r < MAX_ROUTES && r < etd_nroutes ? etd_routes[r].method : "any";
}

void etd_http_metrics(etd_buf *out)
{
    etd_buf_puts(out, "# HELP easytorch_http_requests_total HTTP requests by route and status.\n"
                 "# TYPE easytorch_http_requests_total counter\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r < MAX_ROUTES && r >= etd_nroutes)
            continue;
        for (int s = 0; s < NSTATUS; s++) {
            unsigned long n = atomic_load(&req_count[r][s]);
            if (!n)
                continue;
            if (s < NSTATUS - 1)
                etd_buf_printf(out, "easytorch_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lu\n",
                               route_method(r), route_label(r), status_codes[s], n);
            else
                etd_buf_printf(out, "easytorch_http_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} %lu\n",
                               route_method(r), route_label(r), n);
        }
    }
    etd_buf_puts(out, "# HELP easytorch_http_request_duration_seconds Request latency.\n"
                 "# TYPE easytorch_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r < MAX_ROUTES && r >= etd_nroutes)
            continue;
        unsigned long total = 0;
        for (int b = 0; b <= NBUCKETS; b++)
            total += atomic_load(&lat_bucket[r][b]);
        if (!total)
            continue;
        unsigned long cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += atomic_load(&lat_bucket[r][b]);
            etd_buf_printf(out, "easytorch_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %lu\n",
                           route_method(r), route_label(r), buckets[b], cum);
        }
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %lu\n",
                       route_method(r), route_label(r), total);
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
                       route_method(r), route_label(r), (double)atomic_load(&lat_sum_us[r]) / 1e6);
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %lu\n",
                       route_method(r), route_label(r), total);
    }
}

/* ---------------------------------------------------------------- routing */

const etd_asset *etd_asset_find(const char *name)
{
    for (const etd_asset *a = etd_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* Match path against pattern segment by segment; fills captures. */
static bool match(const char *pattern, const char *path, etd_req *q)
{
    const char *p = pattern, *u = path;
    for (;;) {
        if (*p == '\0' || *u == '\0')
            return *p == '\0' && *u == '\0';
        if (*p != '/' || *u != '/')
            return false;
        p++;
        u++;
        const char *pe = strchr(p, '/'), *ue = strchr(u, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t ul = ue ? (size_t)(ue - u) : strlen(u);
        if (pl == 6 && strncmp(p, "{name}", 6) == 0) {
            if (ul == 0 || ul >= sizeof q->name)
                return false;
            memcpy(q->name, u, ul);
            q->name[ul] = '\0';
        } else if (pl == 7 && strncmp(p, "{asset}", 7) == 0) {
            if (ul == 0 || ul >= sizeof q->asset)
                return false;
            memcpy(q->asset, u, ul);
            q->asset[ul] = '\0';
            if (!etd_asset_find(q->asset))
                return false;
        } else if (pl != ul || strncmp(p, u, pl) != 0) {
            return false;
        }
        p += pl;
        u += ul;
    }
}

static bool method_ok(const char *want, const char *got)
{
    return strcmp(want, got) == 0 || (strcmp(want, "GET") == 0 && strcmp(got, "HEAD") == 0);
}

/* Route index, or -1 with status 404/405 (and the Allow list) set. */
static int find_route(etd_req *q, const char *path, char *allow, size_t allow_cap)
{
    bool path_seen = false;
    allow[0] = '\0';
    for (int i = 0; i < etd_nroutes; i++) {
        if (!match(etd_routes[i].pattern, path, q))
            continue;
        if (method_ok(etd_routes[i].method, q->method))
            return i;
        if (!strstr(allow, etd_routes[i].method)) {
            size_t l = strlen(allow);
            snprintf(allow + l, allow_cap - l, "%s%s", l ? ", " : "", etd_routes[i].method);
        }
        path_seen = true;
    }
    q->status = path_seen ? 405 : 404;
    return -1;
}

/* ---------------------------------------------------------------- responses */

void etd_reply_error(etd_req *q, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    etd_buf_free(&q->out);
    etd_buf_puts(&q->out, "{\"error\":");
    etd_json_str(&q->out, msg);
    etd_buf_puts(&q->out, "}\n");
    if (q->raw_free)
        free((void *)q->raw);
    q->raw = NULL;
    q->raw_free = false;
    q->resp_type = NULL;
    q->status = status;
}

/* Finish the answer set in q (out of memory -> 500, a trailing newline on
 * JSON) and hand its body over: *body must be freed by the caller when
 * *mode is MHD_RESPMEM_MUST_FREE (a static asset is PERSISTENT). */
static void reply_take(etd_req *q, void **body, size_t *len, enum MHD_ResponseMemoryMode *mode)
{
    if (q->out.oom) {
        etd_buf_free(&q->out);
        etd_buf_init(&q->out);
        etd_buf_puts(&q->out, "{\"error\":\"out of memory\"}\n");
        q->status = 500;
        if (q->raw_free)
            free((void *)q->raw);
        q->raw = NULL;
        q->raw_free = false;
    }
    q->answered = true;
    if (q->raw) {
        *body = (void *)q->raw;
        *len = q->raw_len;
        *mode = q->raw_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT;
        q->raw = NULL;
        q->raw_free = false;
        return;
    }
    if (q->status != 204 && (q->out.len == 0 || q->out.data[q->out.len - 1] != '\n'))
        etd_buf_putc(&q->out, '\n');
    *body = etd_buf_take(&q->out, len);
    if (q->status == 204)
        *len = 0;
    *mode = MHD_RESPMEM_MUST_FREE;
}

static const char *reply_type(const etd_req *q)
{
    return q->resp_type ? q->resp_type : "application/json";
}

static enum MHD_Result send_reply(etd_req *q)
{
    void *body;
    size_t len;
    enum MHD_ResponseMemoryMode mode;
    reply_take(q, &body, &len, &mode);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, reply_type(q));
    if (q->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, q->allow);
    if (q->status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (q->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (q->disposition[0] && q->status < 400)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, q->disposition);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(q->conn, (unsigned)q->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------------------------------------------------------------- request accessors */

#define DET_MAX_ARGS 64

/* Headers and query arguments of an etd_dispatch request. */
struct etd_detached {
    const char *const *names, *const *values;
    const size_t *lens;         /* NULL: strlen */
    int n;
    int nargs;
    char *akey[DET_MAX_ARGS], *aval[DET_MAX_ARGS]; /* into qbuf; aval NULL without "=" */
    char *qbuf;
};

const char *etd_req_header(const etd_req *q, const char *name)
{
    if (q->conn)
        return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
    if (q->det)
        for (int i = 0; i < q->det->n; i++)
            if (q->det->names[i] && strcasecmp(q->det->names[i], name) == 0)
                return q->det->values[i];
    return NULL;
}

const char *etd_req_arg(const etd_req *q, const char *name)
{
    if (q->conn)
        return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
    if (q->det)
        for (int i = 0; i < q->det->nargs; i++)
            if (strcmp(q->det->akey[i], name) == 0)
                return q->det->aval[i];
    return NULL;
}

/* ---------------------------------------------------------------- auth */

/* Constant-time in the length of the expected token. */
static bool token_ok(const etd_server *s, const etd_req *q)
{
    const char *h = etd_req_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *got = h + 7;
    while (*got == ' ')
        got++;
    size_t gl = strlen(got), el = strlen(s->cfg.token);
    while (gl > 0 && got[gl - 1] == ' ')
        gl--;
    volatile unsigned char diff = gl != el;
    for (size_t i = 0; i < el; i++)
        diff |= (unsigned char)((i < gl ? (unsigned char)got[i] : 0) ^ (unsigned char)s->cfg.token[i]);
    return diff == 0;
}

/* ---------------------------------------------------------------- MHD callbacks */

/* URL unescaping as libmicrohttpd's, except that "%00" stays as it is: a
 * decoded NUL would silently cut the path ("/v1/models/victim%00junk" would
 * act on "victim"); kept, it fails name validation and routing instead. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
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

typedef struct header_check {
    const char *first_cl;   /* first Content-Length value */
    bool cl_conflict;       /* a second, different Content-Length */
    bool nul;               /* a NUL byte inside a header name or value */
} header_check;

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    header_check *hc = cls;
    (void)kind;
    if (!key || strlen(key) != key_size || (value && strlen(value) != value_size))
        hc->nul = true;
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (!hc->first_cl)
            hc->first_cl = value ? value : "";
        else if (strcmp(hc->first_cl, value ? value : "") != 0)
            hc->cl_conflict = true;
    }
    return MHD_YES;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- request deadline ----
 * MHD's connection timeout is an idle timeout: a client that sends one byte
 * of its headers every few seconds (slowloris) is never idle and would hold
 * its connection -- and with --max-connections of them, the server -- for
 * ever.  So every connection is tracked from MHD's connection notifications;
 * a watchdog thread shuts down the socket of one whose request headers have
 * not been completed within --request-timeout of it opening or finishing its
 * previous request (MHD then closes it as a dead peer), and the upload calls
 * of the access handler refuse a body still arriving after the deadline.
 * CLOSED is notified before MHD closes the socket and both sides hold
 * conn_mu, so the watchdog never touches a reused descriptor. */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    etd_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        etd_conn *ct = calloc(1, sizeof *ct);
        if (!ct || !ci) {
            free(ct);
            *socket_context = NULL;
            return;
        }
        ct->fd = ci->connect_fd;
        clock_gettime(CLOCK_MONOTONIC, &ct->since);
        pthread_mutex_lock(&s->conn_mu);
        ct->next = s->conns;
        if (s->conns)
            s->conns->prev = ct;
        s->conns = ct;
        pthread_mutex_unlock(&s->conn_mu);
        *socket_context = ct;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        etd_conn *ct = *socket_context;
        if (!ct)
            return;
        pthread_mutex_lock(&s->conn_mu);
        if (ct->prev)
            ct->prev->next = ct->next;
        else
            s->conns = ct->next;
        if (ct->next)
            ct->next->prev = ct->prev;
        pthread_mutex_unlock(&s->conn_mu);
        free(ct);
        *socket_context = NULL;
    }
}

static void conn_set_active(etd_server *s, etd_conn *ct, bool active)
{
    if (!ct)
        return;
    pthread_mutex_lock(&s->conn_mu);
    ct->active = active;
    if (!active)
        clock_gettime(CLOCK_MONOTONIC, &ct->since);
    pthread_mutex_unlock(&s->conn_mu);
}

static void *watchdog_main(void *arg)
{
    etd_server *s = arg;
    double period = s->cfg.request_timeout / 4 < 1 ? s->cfg.request_timeout / 4 : 1;
    pthread_mutex_lock(&s->conn_mu);
    while (!s->watchdog_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(period * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->watchdog_cv, &s->conn_mu, &ts);
        for (etd_conn *ct = s->conns; ct; ct = ct->next)
            if (!ct->active && !ct->cut && since(&ct->since) > s->cfg.request_timeout) {
                shutdown(ct->fd, SHUT_RDWR);
                ct->cut = true;
            }
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

/* The request-handling steps below are shared by the libmicrohttpd
 * callbacks and etd_dispatch, so both run the same routing, checks and
 * handlers. */

/* Per-request state for a request whose (unescaped) path is url. */
static etd_req *req_new(etd_server *s, struct MHD_Connection *conn,
                        const struct etd_detached *det, const char *method, const char *url)
{
    etd_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add(&s->started, 1);
    q->srv = s;
    q->conn = conn;
    q->det = det;
    if (conn) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        q->ct = ci ? ci->socket_context : NULL;
    }
    conn_set_active(s, q->ct, true);
    q->status = 200;
    q->route = -1;
    clock_gettime(CLOCK_MONOTONIC, &q->t0);
    etd_buf_init(&q->out);
    snprintf(q->method, sizeof q->method, "%s", method);
    snprintf(q->path, sizeof q->path, "%s", url);
    for (char *c = q->path; *c; c++) /* the URL is unescaped: no control bytes in the log */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    q->content_type = etd_req_header(q, MHD_HTTP_HEADER_CONTENT_TYPE);
    return q;
}

/* The headers are in: header sanity, routing, draining, auth, readiness and
 * the declared body size.  true: an early answer is set in q (send it, drop
 * the body). */
static bool req_admit(etd_req *q, const char *url)
{
    etd_server *s = q->srv;
    /* differing Content-Length headers (the request-smuggling pattern) and
     * NUL bytes, which would cut header values short, are refused */
    header_check hc = {NULL, false, false};
    if (q->conn) {
        MHD_get_connection_values_n(q->conn, MHD_HEADER_KIND, each_header, &hc);
    } else {
        for (int i = 0; i < q->det->n; i++) {
            const char *k = q->det->names[i], *v = q->det->values[i];
            each_header(&hc, MHD_HEADER_KIND, k, k ? strlen(k) : 0, v,
                        q->det->lens ? q->det->lens[i] : v ? strlen(v) : 0);
        }
    }
    if (hc.cl_conflict || hc.nul) {
        q->close = true;
        etd_reply_error(q, 400, hc.nul ? "a request header contains a NUL byte"
                                       : "Content-Length: repeated with different values");
        return true;
    }
    char allow[128];
    q->route = find_route(q, url, allow, sizeof allow);
    if (q->route < 0) {
        if (q->status == 405) {
            q->allow = strdup(allow);
            etd_reply_error(q, 405, "method %s not allowed on %s (allowed: %s)", q->method,
                            q->path, allow);
        } else {
            etd_reply_error(q, 404, "no route %s %s", q->method, q->path);
        }
        return true;
    }
    const etd_route *rt = &etd_routes[q->route];
    if (!(rt->flags & ETD_R_PUBLIC) && atomic_load(&s->draining)) {
        q->close = true;
        etd_reply_error(q, 503, "server is shutting down");
        return true;
    }
    if (!(rt->flags & ETD_R_PUBLIC) && s->cfg.token && !token_ok(s, q)) {
        etd_reply_error(q, 401, "missing or wrong bearer token (Authorization: Bearer <token>)");
        return true;
    }
    if ((rt->flags & ETD_R_READY) && !atomic_load(&s->ready)) {
        etd_reply_error(q, 503, "not ready: loading persisted models");
        return true;
    }
    const char *cl = etd_req_header(q, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (n > s->cfg.max_body) {
            q->close = true;
            etd_reply_error(q, 413, "body of %llu bytes is over the limit of %zu bytes (--max-body)",
                            n, s->cfg.max_body);
            return true;
        }
        if (n > 0 && (rt->flags & ETD_R_BODY)) {
            q->body = malloc((size_t)n + 1);
            if (q->body)
                q->cap = (size_t)n + 1;
        }
    }
    return false;
}

/* n more body bytes.  false: drop the connection (out of memory, or a body
 * dripping in past the deadline). */
static bool req_upload(etd_req *q, const char *data, size_t n)
{
    const etd_config *c = &q->srv->cfg;
    if (c->request_timeout > 0 && since(&q->t0) > c->request_timeout)
        return false;
    if (q->too_big || q->len + n > c->max_body) {
        q->too_big = true; /* keep reading (and dropping): 413 at the end */
        return true;
    }
    if (q->len + n + 1 > q->cap) {
        size_t nc = q->cap ? q->cap : 4096;
        while (nc < q->len + n + 1)
            nc *= 2;
        char *b = realloc(q->body, nc);
        if (!b)
            return false;
        q->body = b;
        q->cap = nc;
    }
    memcpy(q->body + q->len, data, n);
    q->len += n;
    return true;
}

/* The body is complete: sets the handler's answer (or 413) in q.  false:
 * drop the connection (out of memory). */
static bool req_run(etd_req *q)
{
    if (q->too_big) {
        q->close = true;
        etd_reply_error(q, 413, "body is over the limit of %zu bytes (--max-body)",
                        q->srv->cfg.max_body);
        return true;
    }
    if (!q->body) {
        q->body = malloc(1);
        if (!q->body)
            return false;
    }
    q->body[q->len] = '\0';
    etd_routes[q->route].fn(q);
    if (atomic_load(&q->srv->draining))
        q->close = true;
    return true;
}

/* One access-log line on stderr (unless --quiet); status 0: no answer. */
static void log_access(const etd_server *s, const char *method, const char *path, int status,
                       double secs, bool completed_ok)
{
    if (s->cfg.quiet)
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

/* The request is over (answered or not): metrics, access log, free q. */
static void req_end(etd_req *q, bool completed_ok)
{
    etd_server *s = q->srv;
    double secs = since(&q->t0);
    int status = q->answered ? q->status : 0;
    record(q->route, status, secs);
    log_access(s, q->method, q->path, status, secs, completed_ok);
    conn_set_active(s, q->ct, false);
    if (q->raw_free)
        free((void *)q->raw);
    free((void *)q->allow);
    etd_buf_free(&q->out);
    for (int i = 0; i < q->nfast; i++)
        etd_array_free(&q->fast[i]);
    free(q->body);
    free(q);
    atomic_fetch_sub(&s->inflight, 1);
}

/* libmicrohttpd's access handler: called once with the headers, then with
 * each piece of the body, then once more with none. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    etd_server *s = cls;
    etd_req *q = *con_cls;
    (void)version;
    if (!q) {
        q = req_new(s, conn, NULL, method, url);
        if (!q)
            return MHD_NO;
        *con_cls = q;
        return req_admit(q, url) ? send_reply(q) : MHD_YES;
    }
    if (q->answered) { /* early error: drop whatever body still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return req_upload(q, upload_data, n) ? MHD_YES : MHD_NO;
    }
    return req_run(q) ? send_reply(q) : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    if (!*con_cls)
        return;
    req_end(*con_cls, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- etd_dispatch */

/* Split qbuf ("a=1&b=%41") into decoded key/value pairs as libmicrohttpd
 * does ('+' is a space, then the unescape callback). */
static void parse_args(struct etd_detached *d)
{
    char *p = d->qbuf;
    while (p && *p && d->nargs < DET_MAX_ARGS) {
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
            unescape(NULL, NULL, p);
            if (eq) {
                for (char *c = eq; *c; c++)
                    if (*c == '+')
                        *c = ' ';
                unescape(NULL, NULL, eq);
            }
            d->akey[d->nargs] = p;
            d->aval[d->nargs++] = eq;
        }
        p = amp ? amp + 1 : NULL;
    }
}

int etd_dispatch(etd_server *s, const char *method, const char *url,
                 const char *const *names, const char *const *values,
                 const size_t *value_lens, int n, const char *body, size_t body_len,
                 char **resp, size_t *resp_len, const char **content_type)
{
    *resp = NULL;
    *resp_len = 0;
    *content_type = "application/json";
    struct etd_detached det;
    memset(&det, 0, sizeof det);
    det.names = names;
    det.values = values;
    det.lens = value_lens;
    det.n = n > 0 ? n : 0;
    const char *qm = strchr(url, '?');
    size_t plen = qm ? (size_t)(qm - url) : strlen(url);
    char *path = malloc(plen + 1);
    if (!path)
        return 0;
    memcpy(path, url, plen);
    path[plen] = '\0';
    unescape(NULL, NULL, path);
    if (qm && !(det.qbuf = strdup(qm + 1))) {
        free(path);
        return 0;
    }
    parse_args(&det);
    int status = 0;
    etd_req *q = req_new(s, NULL, &det, method, path);
    if (!q)
        goto out;
    bool ok = true;
    if (!req_admit(q, path)) {
        if (body_len > 0)
            ok = req_upload(q, body, body_len);
        ok = ok && req_run(q);
    }
    if (ok) {
        void *b;
        size_t len;
        enum MHD_ResponseMemoryMode mode;
        reply_take(q, &b, &len, &mode);
        if (strcmp(method, "HEAD") == 0)
            len = 0;
        *resp = malloc(len + 1);
        if (*resp) {
            if (len)
                memcpy(*resp, b, len);
            (*resp)[len] = '\0';
            *resp_len = len;
            *content_type = reply_type(q);
            status = q->status;
        } else {
            q->answered = false;
        }
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(b);
    }
    req_end(q, ok && status != 0);
out:
    free(det.qbuf);
    free(path);
    return status;
}

/* ---------------------------------------------------------------- lifecycle */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

etd_server *etd_server_start(const etd_config *c, etd_registry *r, char *err, size_t cap)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(c->host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, cap, "cannot resolve listen address \"%s\": %s", c->host, gai_strerror(gai));
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    bool v6 = ss.ss_family == AF_INET6;
    if (v6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->port);
    if (!is_loopback((struct sockaddr *)&ss) && !c->token && !c->insecure) {
        snprintf(err, cap, "refusing to listen on non-loopback address %s without a token: set "
                 "--token-file or EASYTORCH_TOKEN (or pass --insecure)", c->host);
        return NULL;
    }
    etd_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    s->cfg = *c;
    s->reg = r;
    atomic_init(&s->ready, false);
    atomic_init(&s->draining, false);
    atomic_init(&s->inflight, 0);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_cond_init(&s->watchdog_cv, NULL);
    /* One thread per connection (see docs/server.md): handlers block for
     * the length of a training call, and a blocked event-loop thread would
     * stall every other connection it serves, health probes included. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (c->pool_threads > 0) /* --thread-pool N: epoll event loops instead */
        flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)c->pool_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (c->pool_threads == 0)
        pool[0] = pool[1]; /* MHD warns about a pool of size 0 */
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_access, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, c->timeout,
                            MHD_OPTION_CONNECTION_LIMIT, c->max_conns,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
                            MHD_OPTION_ARRAY, pool,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, cap, "cannot listen on %s:%u (address in use or not permitted?)", c->host,
                 c->port);
        pthread_mutex_destroy(&s->conn_mu);
        pthread_cond_destroy(&s->watchdog_cv);
        free(s);
        return NULL;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0)
        s->watchdog_started = true;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : c->port;
    char shown[300];
    if (v6)
        snprintf(shown, sizeof shown, "[%s]:%u", c->host, s->port);
    else
        snprintf(shown, sizeof shown, "%s:%u", c->host, s->port);
    printf("listening on %s\n", shown);
    fflush(stdout);
    fprintf(stderr, "easytorchd: listening on %s%s\n", shown, c->token ? " (token required)" : "");
    return s;
}

etd_server *etd_server_new_detached(const etd_config *c, etd_registry *r)
{
    etd_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *c;
    s->reg = r;
    atomic_init(&s->ready, true);
    atomic_init(&s->draining, false);
    atomic_init(&s->inflight, 0);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_cond_init(&s->watchdog_cv, NULL);
    return s;
}

unsigned etd_server_port(const etd_server *s) { return s->port; }

void etd_server_set_ready(etd_server *s, bool ready) { atomic_store(&s->ready, ready); }

/* Answer 503 to every connection still in the kernel's accept queue of the
 * listening socket fd (taken back from MHD by MHD_quiesce_daemon): closing fd
 * with them queued would reset them, and a client cannot tell a reset after
 * sending its request from a crash in the middle of it.  Each request head is
 * read (for the access log), answered, and the connection drained until the
 * client closes, so that close() does not turn into a reset.  At most ~2 s. */
static void refuse_queued(const etd_server *s, MHD_socket fd)
{
    static const char body[] = "{\"error\":\"server is shutting down\"}\n";
    char resp[256];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      sizeof body - 1, body);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (since(&t0) < 2.0) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* EAGAIN: the queue is empty */
        }
        struct timespec r0;
        clock_gettime(CLOCK_MONOTONIC, &r0);
        char buf[8192];
        size_t got = 0;
        buf[0] = '\0';
        while (got < sizeof buf - 1 && !strstr(buf, "\r\n\r\n") && since(&r0) < 0.2) {
            struct pollfd p = {c, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0)
                continue;
            ssize_t n = recv(c, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
        }
        char method[12] = "-", path[256] = "-";
        if (got && sscanf(buf, "%11s %255s", method, path) >= 1) {
            path[strcspn(path, "?")] = '\0'; /* as on_access logs it: no query string */
            for (char *ch = path; *ch; ch++)
                if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
                    *ch = '?';
        }
        bool sent = send(c, resp, (size_t)rl, MSG_NOSIGNAL) == rl;
        shutdown(c, SHUT_WR);
        while (since(&r0) < 0.5) { /* the client reads the answer and closes */
            struct pollfd p = {c, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0)
                continue;
            ssize_t n = recv(c, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break;
        }
        close(c);
        if (got)
            log_access(s, method, path, sent ? 503 : 0, since(&r0), sent);
    }
}

void etd_server_shutdown(etd_server *s)
{
    if (!s)
        return;
    /* Keep accepting while requests finish, so probes see readiness 503
     * (not a refused connection) and new API calls get a clear 503; then
     * quiesce (stop listening) and stop. */
    atomic_store(&s->draining, true);
    atomic_store(&s->ready, false);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int left;
    while ((left = atomic_load(&s->inflight)) > 0 && since(&t0) < s->cfg.drain_timeout) {
        sleep_ms(10);
    }
    if (left > 0)
        fprintf(stderr, "easytorchd: %d request(s) still running after %.0fs; stopping anyway\n",
                left, s->cfg.drain_timeout);
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->conn_mu);
        s->watchdog_stop = true;
        pthread_cond_signal(&s->watchdog_cv);
        pthread_mutex_unlock(&s->conn_mu);
        pthread_join(s->watchdog, NULL);
    }
    if (s->d) { /* NULL: a detached server (etd_server_new_detached) */
        /* Requests on connections already accepted keep arriving for a
         * moment: answer them 503 until none has begun for 50 ms (at most
         * 1 s), rather than have MHD_stop_daemon cut them. */
        unsigned long seen = atomic_load(&s->started);
        struct timespec g0, calm;
        clock_gettime(CLOCK_MONOTONIC, &g0);
        calm = g0;
        while (since(&g0) < 1.0 && since(&calm) < 0.05) {
            sleep_ms(5);
            unsigned long now = atomic_load(&s->started);
            if (now != seen || atomic_load(&s->inflight) > 0) {
                seen = now;
                clock_gettime(CLOCK_MONOTONIC, &calm);
            }
        }
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET) {
            refuse_queued(s, fd);
            close(fd);
        }
        /* connections MHD took just before quiescing: let their 503s go out */
        clock_gettime(CLOCK_MONOTONIC, &g0);
        while (since(&g0) < 0.5 && atomic_load(&s->inflight) > 0) {
            sleep_ms(5);
        }
        MHD_stop_daemon(s->d); /* joins connection threads: nothing runs after this */
    }
    pthread_mutex_destroy(&s->conn_mu);
    pthread_cond_destroy(&s->watchdog_cv);
    free(s);
}
