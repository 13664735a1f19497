/*
 * transport_internal.h - what the transport's files share (internal to
 * src/server/transport): the server, the per-request exchange and the
 * pipeline steps daemon.c (libmicrohttpd) and dispatch.c (no socket) both
 * drive.  No libmicrohttpd type appears here.
 */
#ifndef EASYTORCHD_TRANSPORT_INTERNAL_H
#define EASYTORCHD_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "server/transport/metrics.h"
#include "server/transport/router.h"
#include "server/transport/transport.h"

/* A live connection, for the request deadline (daemon.c, watchdog). */
typedef struct etd_conn {
    struct etd_conn *prev, *next;
    int fd;
    struct timespec since;      /* opened, or last request finished */
    bool active;                /* a request's headers are in (handler side) */
    bool cut;
} etd_conn;

struct etd_server {
    etd_transport_opts o;
    const etd_route *routes;
    int nroutes;
    const etd_app *app;
    etd_http_metrics *metrics;
    struct MHD_Daemon *d;       /* NULL: detached (etd_dispatch only) */
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

/* One request from its headers to its completion: created on the first
 * access-handler call, freed in the completion callback (libmicrohttpd's
 * largepost.c pattern).  Everything a handler sees is copied or collected
 * here at the start, so the handler may run on another thread while the
 * connection waits (the strings of headers and query point into the
 * connection's memory, valid until the request completes). */
typedef struct etd_exchange {
    etd_server *srv;
    etd_conn *ct;               /* its connection's tracking entry, or NULL */
    const etd_route *route;     /* NULL when none matched */
    int slot;                   /* metrics series */
    char method[12];
    char path[256];             /* for the log line: truncated, control bytes replaced */
    char *upath;                /* the unescaped path, for routing */
    etd_captures cap;
    struct timespec t0;
    etd_kv *headers;
    int nheaders;
    bool header_nul;            /* a header name or value held a NUL byte */
    etd_kv *query;
    int nquery;
    char *body;                 /* NUL-terminated */
    size_t len, cap_body;
    bool too_big;
    bool answered;              /* rs holds the answer */
    etd_response rs;
} etd_exchange;

/* The pipeline (pipeline.c).  new: headers and query are copied (the
 * strings are not); NULL on allocation failure.  admit: header sanity,
 * routing, draining, auth, readiness, declared body size -- true when an
 * early answer is in x->rs (send it, drop the body).  upload: n more body
 * bytes; false: drop the connection (out of memory, or a body past the
 * deadline).  run: the body is complete, run the handler (or answer 413);
 * false: drop the connection.  end: metrics, access log, free x. */
etd_exchange *etd_exchange_new(etd_server *s, etd_conn *ct, const char *method,
                               const char *path, const etd_kv *headers, int nheaders,
                               bool header_nul, const etd_kv *query, int nquery);
bool etd_exchange_admit(etd_exchange *x);
bool etd_exchange_upload(etd_exchange *x, const char *data, size_t n);
bool etd_exchange_run(etd_exchange *x);
void etd_exchange_end(etd_exchange *x, bool completed_ok);

/* URL unescaping as libmicrohttpd's, except that "%00" stays as it is (a
 * decoded NUL would silently cut a path or name short).  In place; returns
 * the new length. */
size_t etd_unescape(char *s);
/* One access-log line on stderr (unless quiet); status 0: no answer. */
void etd_log_access(const etd_server *s, const char *method, const char *path, int status,
                    double secs, bool completed_ok);
/* Seconds since t0 (CLOCK_MONOTONIC). */
double etd_since(const struct timespec *t0);
/* Set up / tear down the parts of a server both kinds share. */
bool etd_server_init(etd_server *s, const etd_transport_opts *o, const etd_route *routes, int n,
                     const etd_app *app);
void etd_server_fini(etd_server *s);
/* A connection's request started (active) or finished. */
void etd_conn_set_active(etd_server *s, etd_conn *ct, bool active);

#endif
