/*
 * http_internal.h - what http.c (libmicrohttpd glue) and handlers.c (the
 * endpoints) share.  Internal to src/server.
 */
#ifndef EASYTORCHD_HTTP_INTERNAL_H
#define EASYTORCHD_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <time.h>

#include "server/jsonout.h"
#include "server/server.h"

/* Per-request state: created on the first access-handler call, freed in the
 * completion callback (libmicrohttpd's largepost.c pattern). */
typedef struct etd_req {
    etd_server *srv;
    struct MHD_Connection *conn;
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
    /* response being built by a handler */
    etd_buf out;
    const char *resp_type;      /* default application/json */
    const void *raw;            /* binary/static body instead of out */
    size_t raw_len;
    bool raw_free;              /* free(raw) after sending */
    const char *allow;          /* Allow header for 405 */
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

struct etd_server {
    struct MHD_Daemon *d;
    etd_config cfg;
    etd_registry *reg;
    unsigned port;
    atomic_bool ready;
    atomic_bool draining;
    atomic_int inflight;
};

/* Error response {"error": msg}. */
void etd_reply_error(etd_req *q, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Request metrics in Prometheus text format. */
void etd_http_metrics(etd_buf *out);

/* Embedded dashboard files (generated at build time). */
typedef struct etd_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
} etd_asset;
extern const etd_asset etd_assets[];   /* terminated by {NULL} */
const etd_asset *etd_asset_find(const char *name);

#endif
