/*
 * endpoint.h - the endpoints of easytorchd (docs/API.md): JSON in, JSON
 * out, no libmicrohttpd (internal).
 *
 * A handler is a function of a request (method, path, captures, query,
 * headers, body bytes) to a response (status, content type, body, extra
 * headers).  It never talks to a connection, so the transport may run it on
 * any thread -- a worker while the connection is suspended, or with no
 * socket at all (etd_dispatch).  The transport owns routing (over the table
 * below, which it is handed), authentication, limits and HTTP metrics; what
 * a handler needs from it comes in etd_host.
 *
 * Files: routes.c (the table), common.c (what every handler shares: the
 * skeleton, body, keys, model lookup, tensors in, one result -> status
 * table), then the handlers by family: v1_models.c, v1_train.c,
 * v1_params.c, v2_oip.c (KServe), ops.c (health, readiness, metrics),
 * dashboard.c (the page and its files).
 */
#ifndef EASYTORCHD_ENDPOINT_H
#define EASYTORCHD_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "server/formats/json_in.h"
#include "server/formats/json_out.h"
#include "server/models/models.h"

/* A header or query argument.  value is NULL for a query argument without
 * "=" (it reads as absent, as with libmicrohttpd); value_len is its length
 * (a header value may hold a NUL; the transport refuses those). */
typedef struct etd_kv {
    const char *name;
    const char *value;
    size_t value_len;
} etd_kv;

/* Browsers on other origins (--cors-origin; see cors.c). */
#define ETD_CORS_MAX 32
typedef struct etd_cors {
    int n;                      /* 0: no CORS headers at all */
    const char *origins[ETD_CORS_MAX];  /* "https://host:port" exactly, or "*" */
} etd_cors;

struct etd_route;
struct etd_request;
struct etd_response;

/* What the endpoints serve (set up once by main or a test). */
typedef struct etd_app {
    etd_registry *reg;
    etd_json_limits json;       /* body limits: depth, values, tensor elements */
    size_t max_decoded_body;    /* a compressed body's size once inflated (0: 64 MiB) */
    etd_cors cors;
    /* Replicas (easytorchd --mpi, src/server/cluster; docs/distributed.md): a
     * request of an ETD_R_ORDERED route goes to order() first; true: it took
     * the request (answered in rs now, or later through rq->host->defer),
     * false: run it here.  NULL: every request runs here. */
    bool (*order)(void *arg, const struct etd_route *route, const struct etd_request *rq,
                  struct etd_response *rs);
    void *order_arg;
    /* more Prometheus text for /metrics (NULL: none) */
    void (*metrics)(void *arg, etd_buf *out);
    void *metrics_arg;
} etd_app;

typedef struct etd_deferred etd_deferred;

/* What the transport tells a handler about itself and offers it for this
 * request.  The per-request services are NULL where a transport has none
 * (a handler then answers the plain way). */
/* The most optimizer steps a train call on an I/O thread may take (each a
 * few microseconds of fixed cost on a small model: etd_cheap_train). */
#define ETD_INLINE_TRAIN_STEPS 16

typedef struct etd_host {
    bool ready;                 /* persisted models loaded */
    bool draining;              /* shutting down */
    /* the transport's request metrics in Prometheus text, appended to out */
    void (*http_metrics)(void *arg, etd_buf *out);
    void *arg;
    /* true once nobody waits for the answer any more (the client closed its
     * connection, or the server is stopping): a long handler may stop
     * between two units of work.  Cheap enough to call often (a poll of the
     * socket), but rate-limit it in tight loops. */
    bool (*gone)(void *xarg);
    /* answer later (etd_deferred); NULL result: answer now */
    etd_deferred *(*defer)(void *xarg);
    void *xarg;
    /* predictions of at most this many multiply-adds may run on an I/O
     * thread (etd_cheap_forward; --inline-macs); 0: never */
    double inline_macs;
    /* train calls of at most this many multiply-adds (and ETD_INLINE_TRAIN_STEPS
     * steps) may run on an I/O thread (etd_cheap_train; --inline-train-macs) */
    double inline_train_macs;
} etd_host;

/* An answer given after the handler returned (dynamic batching: the rows
 * come back from a batch another thread runs).  The handler calls
 * d = rq->host->defer(rq->host->xarg), keeps d and returns; later, on any
 * thread, it fills d->rs (as it would have filled its own rs) and calls
 * d->done(d) exactly once.  Meanwhile the connection waits without a
 * thread.  The request strings stay valid until done; what the ep_* steps
 * took (model reference, body, tensors) is freed when the handler returns,
 * so take over what is still needed. */
struct etd_deferred {
    struct etd_response *rs;
    void (*done)(etd_deferred *d);
};

/* A streamed body (server-sent events, long polls), produced after the
 * handler returned by pull(arg, s, out) on an I/O thread whenever the
 * connection can take more.  pull must not block.  It returns
 *   ETD_PULL_MORE: out holds the next bytes (sent at once; empty = WAIT),
 *   ETD_PULL_WAIT: nothing now -- the connection is parked (no thread, no
 *                  polling) until etd_stream_wake(s) or at most a second,
 *   ETD_PULL_END:  out holds the last bytes (may be empty).
 * While draining for shutdown pull is called once more with
 * s->draining set; the stream ends after it.  done(arg) is called exactly
 * once when the stream is over (ended, client gone, shutdown): free arg
 * there.  s may be kept (etd_stream_ref) to wake it from another thread. */
typedef enum { ETD_PULL_MORE, ETD_PULL_WAIT, ETD_PULL_END } etd_pull;
typedef struct etd_stream etd_stream;
struct etd_stream_ops {
    void (*wake)(etd_stream *s);    /* any thread; a no-op once the stream is over */
    void (*ref)(etd_stream *s);
    void (*unref)(etd_stream *s);
};
struct etd_stream {
    const struct etd_stream_ops *ops;
    bool draining;              /* the server is shutting down: finish now */
    bool in_process;            /* etd_dispatch (tests, the fuzzer): no client can hang up,
                                   so an endless stream ends when it has nothing now */
};
static inline void etd_stream_wake(etd_stream *s) { s->ops->wake(s); }
static inline etd_stream *etd_stream_ref(etd_stream *s)
{
    s->ops->ref(s);
    return s;
}
static inline void etd_stream_unref(etd_stream *s) { s->ops->unref(s); }
typedef etd_pull (*etd_pull_fn)(void *arg, etd_stream *s, etd_buf *out);

typedef struct etd_request {
    const etd_app *app;
    const etd_host *host;
    const char *method;         /* "GET", "HEAD", ... */
    const char *path;           /* unescaped, without the query */
    const char *name;           /* the {name} capture ("" when the route has none) */
    const char *asset;          /* the {asset} capture */
    const char *version;        /* the {version} capture ("" when none) */
    const char *id;             /* the {id} capture (a job id) */
    const etd_kv *query;        /* decoded query arguments, in order */
    int nquery;
    const etd_kv *headers;
    int nheaders;
    const char *body;           /* NUL-terminated at body_len */
    size_t body_len;
    bool body_shared;           /* body is a shared_buf.h buffer: tensors may alias it */
} etd_request;

#define ETD_RESP_HEADERS 16

typedef struct etd_response {
    int status;                 /* 200 unless set */
    const char *content_type;   /* static string; NULL: application/json */
    etd_buf body;               /* the body (JSON gets a final newline) ... */
    const void *raw;            /* ... or these bytes instead */
    size_t raw_len;
    bool raw_free;              /* raw is malloc'ed: free() after sending */
    int nheaders;               /* extra headers: Allow, WWW-Authenticate, ... */
    struct {
        const char *name;       /* static */
        char value[200];
    } headers[ETD_RESP_HEADERS];
    bool close;                 /* Connection: close */
    /* a streamed body instead (etd_response_stream) */
    etd_pull_fn pull;
    void (*pull_done)(void *arg);
    void *pull_arg;
} etd_response;

/* What a handler works with.  The skeleton (etd_endpoint_run) sets up rq,
 * rs and the scratch, and after the handler frees what the ep_* helpers
 * (common.h) took for it: the model reference, the parsed body, tensors. */
typedef struct etd_call etd_call;
typedef void (*etd_handler)(etd_call *c);

enum {
    ETD_R_PUBLIC = 1,           /* no token, served while draining (probes, the dashboard) */
    ETD_R_READY = 2,            /* 503 until the persisted models are loaded */
    ETD_R_BODY = 4,             /* reads a body (the transport keeps it) */
    ETD_R_ANY_QUERY = 8,        /* query arguments are not checked (static files) */
    ETD_R_BINARY = 16,          /* the body may also be safetensors (application/octet-stream) */
    ETD_R_OIP = 32,             /* the body may use the OIP binary tensor extension */
    /* Where the transport runs the handler (docs/server.md, "Execution model").
     * Without any of these it runs on a worker of the pool, holding nothing. */
    ETD_R_INLINE = 64,          /* never waits for a model lock, computes little: the I/O thread */
    ETD_R_SHARED = 128,         /* reads the {name} model: a worker, its lock held shared */
    ETD_R_EXCLUSIVE = 256,      /* changes the {name} model: a worker, its lock held exclusive */
    ETD_R_LONG = 512,           /* may run for minutes (train): at most workers - 1 at once */
    ETD_R_ONNX = 1024,          /* the body may be an ONNX file (Content-Type: application/onnx) */
    ETD_R_QUERY_TOKEN = 2048,   /* the token may come as ?access_token= (EventSource cannot
                                   send an Authorization header) */
    ETD_R_ORDERED = 4096        /* changes what replicas must agree on (etd_app.order) */
};

typedef struct etd_route {
    const char *method;         /* GET also matches HEAD */
    const char *pattern;        /* segments; "{name}" captures a model name, "{asset}" a file,
                                   "{version}" a model version, "{id}" a job id; also the
                                   metrics label */
    etd_handler fn;
    int flags;
    const char *const *query;   /* accepted query arguments (NULL-terminated; NULL: none) */
    /* a capture the route takes (NULL: any); an {asset} route matches only
     * the files that exist */
    bool (*accept)(const char *capture);
    /* A request of a SHARED route that may run on the I/O thread instead of
     * a worker (a small prediction; the model's lock is then held shared
     * there, taken without waiting): true when cheap.  m is the {name}
     * model; rq has its whole body.  NULL: always a worker. */
    bool (*cheap)(etd_model *m, const etd_request *rq);
} etd_route;

extern const etd_route etd_routes[];
extern const int etd_nroutes;

/* Run the route's handler on rq, leaving the answer in rs (initialised by
 * etd_response_init).  Checks the query arguments first (400 for one the
 * route does not take). */
void etd_endpoint_run(const etd_route *route, const etd_request *rq, etd_response *rs);

/* ---- responses (also for the transport's own answers) ---- */

void etd_response_init(etd_response *rs);
/* Free what rs holds (body, malloc'ed raw bytes); rs is left initialised. */
void etd_response_free(etd_response *rs);
/* Replace the answer with status and {"error": "<message>"}. */
void etd_response_error(etd_response *rs, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Answer with a streamed body (see etd_pull_fn), status rs->status. */
void etd_response_stream(etd_response *rs, const char *content_type, etd_pull_fn pull,
                         void (*done)(void *arg), void *arg);
/* Add a header (value copied, truncated to fit); ignored past ETD_RESP_HEADERS. */
void etd_response_header(etd_response *rs, const char *name, const char *value);
/* The body as bytes to send: a JSON body out of memory becomes a 500, JSON
 * gets its final newline, 204 and HEAD none.  *must_free: free(*data)
 * after sending (else the bytes are static). */
void etd_response_finish(etd_response *rs, bool head, const void **data, size_t *len,
                         bool *must_free);

/* ---- CORS (cors.c), for the transport: every answer goes through
 * etd_cors_answer; an OPTIONS for a known path is answered by
 * etd_cors_preflight (204, before authentication) with `allow`, the
 * path's methods. ---- */
void etd_cors_answer(const etd_cors *cors, const etd_kv *headers, int n, etd_response *rs);
void etd_cors_preflight(const etd_cors *cors, const etd_kv *headers, int n, const char *allow,
                        etd_response *rs);

/* HTTP status of a result code (ETD_EINVAL 400, ETD_ENOTFOUND 404,
 * ETD_ENOSPC 507, ...): the one table. */
int etd_rc_status(etd_rc rc);

#endif
