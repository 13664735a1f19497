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

/* What the endpoints serve (set up once by main or a test). */
typedef struct etd_app {
    etd_registry *reg;
    etd_json_limits json;       /* body limits: depth, values, tensor elements */
    size_t max_decoded_body;    /* a compressed body's size once inflated (0: 64 MiB) */
    etd_cors cors;
} etd_app;

/* What the transport tells a handler about itself. */
typedef struct etd_host {
    bool ready;                 /* persisted models loaded */
    bool draining;              /* shutting down */
    /* the transport's request metrics in Prometheus text, appended to out */
    void (*http_metrics)(void *arg, etd_buf *out);
    void *arg;
} etd_host;

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
    ETD_R_OIP = 32              /* the body may use the OIP binary tensor extension */
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
