/*
 * http_internal.h - what http.c (libmicrohttpd glue) and handlers.c (the
 * endpoints) share.  Internal to src/server.
 */
#ifndef EASYTORCHD_HTTP_INTERNAL_H
#define EASYTORCHD_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "server/jsonout.h"
#include "server/server.h"
#include "server/tensor_json.h"

typedef struct etd_conn etd_conn;

/* Per-request state: created on the first access-handler call, freed in the
 * completion callback (libmicrohttpd's largepost.c pattern). */
typedef struct etd_req {
    etd_server *srv;
    struct MHD_Connection *conn; /* NULL for etd_dispatch (detached) requests */
    const struct etd_detached *det; /* headers/arguments of a detached request */
    etd_conn *ct;               /* its connection's tracking entry, or NULL */
    int route;                  /* index into etd_routes, -1 if none */
    char method[12];
    char path[256];             /* for the log line (truncated) */
    char name[72];              /* {name} capture */
    char asset[72];             /* {asset} capture */
    struct timespec t0;
    char *body;                 /* NUL-terminated */
    size_t len, cap;
    bool too_big;
    bool answered;              /* a response was queued */
    int status;
    const char *content_type;   /* of the request */
    /* tensors taken out of the body by the fast path (handlers.c) */
    int nfast;
    char fast_key[2][16];
    etd_array fast[2];
    /* response being built by a handler */
    etd_buf out;
    const char *resp_type;      /* default application/json */
    const void *raw;            /* binary/static body instead of out */
    size_t raw_len;
    bool raw_free;              /* free(raw) after sending */
    const char *allow;          /* Allow header for 405 */
    char disposition[128];      /* Content-Disposition, if set */
    bool close;                 /* Connection: close */
} etd_req;

typedef void (*etd_handler)(etd_req *q);

enum { ETD_R_PUBLIC = 1, ETD_R_READY = 2, ETD_R_BODY = 4 };

typedef struct etd_route {
    const char *method;         /* GET also matches HEAD */
    const char *pattern;        /* segments; {name} captures a model name, {asset} a file */
    etd_handler fn;
    int flags;
    const char *label;          /* metrics label */
} etd_route;

extern const etd_route etd_routes[];
extern const int etd_nroutes;

/* A live connection, for the request deadline (see http.c, watchdog). */
struct etd_conn {
    struct etd_conn *prev, *next;
    MHD_socket fd;
    struct timespec since;      /* opened, or last request finished */
    bool active;                /* a request's headers are in (handler side) */
    bool cut;
};

struct etd_server {
    struct MHD_Daemon *d;
    etd_config cfg;
    etd_registry *reg;
    unsigned port;
    atomic_bool ready;
    atomic_bool draining;
    atomic_int inflight;
    atomic_ulong started;       /* requests begun, for the shutdown grace period */
    pthread_mutex_t conn_mu;    /* conns list */
    etd_conn *conns;
    pthread_t watchdog;
    bool watchdog_started, watchdog_stop;
    pthread_cond_t watchdog_cv;
};

/* Request header `name` (case-insensitive; the first if repeated), or NULL.
 * The string belongs to the request.  Handlers use this and etd_req_arg,
 * never libmicrohttpd, so etd_dispatch runs them without a socket. */
const char *etd_req_header(const etd_req *q, const char *name);
/* Decoded query argument `name` (the first if repeated), or NULL; an
 * argument without "=" reads as absent, as with libmicrohttpd. */
const char *etd_req_arg(const etd_req *q, const char *name);

/* Runs one request through routing, auth, limits and the handler exactly as
 * the libmicrohttpd access handler does, without a socket (fuzzing, unit
 * tests).  url is raw: still %-escaped, with the query string.  headers are
 * n name/value pairs; value_lens[i] is the length of values[i] (a NUL inside
 * it is refused as on the wire; value_lens may be NULL: strlen).  body may be
 * NULL when body_len is 0; without a Content-Length header the body is still
 * delivered (as chunked).  Returns the HTTP status, with *resp (malloc'ed,
 * NUL-terminated, caller frees), *resp_len and *content_type (static) set;
 * for HEAD and 204 the body is empty.  Returns 0 with *resp NULL where the
 * daemon would drop the connection (out of memory).  Thread-safe as the
 * daemon is; metrics and the access log (unless cfg.quiet) are recorded. */
int etd_dispatch(etd_server *s, const char *method, const char *url,
                 const char *const *names, const char *const *values,
                 const size_t *value_lens, int n, const char *body, size_t body_len,
                 char **resp, size_t *resp_len, const char **content_type);

/* A server without a listening daemon, for etd_dispatch: a copy of *c (the
 * token string is not copied and must outlive the server), serving r (not
 * owned).  Starts ready (etd_server_set_ready(s, false) to test 503s);
 * cfg.request_timeout <= 0 means no deadline.  NULL on allocation failure.
 * Free with etd_server_shutdown(). */
etd_server *etd_server_new_detached(const etd_config *c, etd_registry *r);

/* Error response {"error": msg}. */
void etd_reply_error(etd_req *q, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Request metrics in Prometheus text format (appended to out). */
void etd_http_metrics(etd_buf *out);

/* Embedded dashboard files (generated at build time). */
typedef struct etd_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
} etd_asset;
extern const etd_asset etd_assets[];   /* terminated by {NULL} */
/* The embedded file called name (no leading '/'), or NULL. */
const etd_asset *etd_asset_find(const char *name);

#endif
