/*
 * transport_internal.h - what the transport's files share (internal to
 * src/server/transport): the server, the per-request exchange and the
 * pipeline steps daemon.c/connection.c (libmicrohttpd) and dispatch.c (no
 * socket) both drive.  No libmicrohttpd type appears here.
 */
#ifndef EASYTORCHD_TRANSPORT_INTERNAL_H
#define EASYTORCHD_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "server/transport/head.h"
#include "server/transport/metrics.h"
#include "server/transport/router.h"
#include "server/transport/transport.h"
#include "server/transport/workers.h"

typedef struct etd_acceptor etd_acceptor;
typedef struct etd_xstream etd_xstream;

/* Where a connection held by libmicrohttpd is, for its deadlines. */
enum {
    ETD_CONN_IDLE,              /* between requests: libmicrohttpd's idle timeout */
    ETD_CONN_HEAD,              /* request line in, headers not yet: --header-timeout */
    ETD_CONN_BODY,              /* headers in, body arriving: --request-timeout */
    ETD_CONN_BUSY               /* the request is being answered: no deadline */
};

/* A live libmicrohttpd connection (connection.c; the watchdog's list). */
typedef struct etd_conn {
    struct etd_conn *prev, *next;
    int fd;
    int state;                  /* ETD_CONN_* */
    struct timespec since;      /* entered that state */
    bool cut;
    struct sockaddr_storage addr; /* the client, for the per-address count */
    socklen_t alen;
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
    atomic_bool stopping;       /* past the drain timeout: long handlers are told to stop */
    atomic_int inflight;
    atomic_ulong started;       /* requests begun, for the shutdown grace period */
    etd_workers *workers;       /* NULL: handlers run where they are called (detached) */
    etd_release_hook hook;      /* on app->reg: a model lock freed pokes the pool */
    etd_executor exec;          /* on app->reg: dynamic batches run on the pool */
    etd_acceptor *acc;
    pthread_mutex_t conn_mu;    /* conns list */
    etd_conn *conns;
    pthread_mutex_t stream_mu;  /* parked streams */
    etd_xstream *streams;
    pthread_t watchdog;
    bool watchdog_started, watchdog_stop;
    pthread_cond_t watchdog_cv;
    atomic_ulong inline_runs, worker_runs, deferred_runs, queue_full;
};

/* What etd_exchange_run did. */
typedef enum {
    ETD_RUN_ANSWERED,           /* x->rs holds the answer */
    ETD_RUN_LATER,              /* deferred: x->answer_ready(x) will be called (any thread) */
    ETD_RUN_DROP                /* drop the connection (out of memory) */
} etd_run;

enum { ETD_X_HEAD, ETD_X_BODY, ETD_X_RUNNING, ETD_X_READY, ETD_X_DROP };

/* One request from its headers to its completion: created on the first
 * access-handler call, freed in the completion callback (libmicrohttpd's
 * largepost.c pattern).  Everything a handler sees is copied or collected
 * here at the start, so the handler may run on another thread while the
 * connection waits (the strings of headers and query point into the
 * connection's memory, valid until the request completes). */
typedef struct etd_exchange {
    etd_server *srv;
    etd_conn *ct;               /* its connection's tracking entry, or NULL */
    void *conn;                 /* struct MHD_Connection * (connection.c), or NULL */
    int fd;                     /* the client's socket (gone()), or -1 */
    const etd_route *route;     /* NULL when none matched */
    int slot;                   /* metrics series */
    int minor;                  /* HTTP/1.minor */
    char method[12];
    char path[256];             /* for the log line: truncated, control bytes replaced */
    char *upath;                /* the unescaped path, for routing */
    etd_captures cap;
    struct timespec t0;
    etd_kv *headers;
    int nheaders;
    bool header_nul;            /* a header name or value held a NUL byte */
    size_t target_len, head_len; /* of the request as received (0: unknown) */
    etd_kv *query;
    int nquery;
    char *body;                 /* NUL-terminated */
    size_t len, cap_body, declared;
    bool too_big;
    bool close_after;           /* framing (Content-Length with Transfer-Encoding): close */
    bool answered;              /* rs holds the answer */
    etd_response rs;
    /* running the handler */
    etd_host host;              /* the request's services (gone, defer) */
    etd_request rq;
    etd_job job;                /* on the worker pool */
    atomic_int phase;           /* ETD_X_* */
    bool deferrable;            /* the driver can wait for a deferred answer */
    bool hold_defer;            /* the driver counts the handler's return itself
                                   (etd_exchange_defer_release), after suspending */
    bool deferred;
    atomic_int pending;         /* deferred: the handler's return and d->done, counted down */
    etd_deferred def;
    void (*answer_ready)(struct etd_exchange *x); /* a deferred answer is complete */
    bool (*gone)(struct etd_exchange *x);         /* the driver's client check */
    void *driver;               /* the driver's own (dispatch.c's waiter) */
} etd_exchange;

/* The pipeline (pipeline.c).  new: headers and query are copied (the
 * strings are not); url is the raw target (absolute form allowed); NULL on
 * allocation failure.  admit: framing, routing, draining, auth, readiness,
 * declared body size -- true when an early answer is in x->rs (send it,
 * drop the body).  upload: n more body bytes; false: drop the connection
 * (out of memory, or a body past the deadline).  run: the body is
 * complete: run the handler (or answer 413).  end: metrics, access log,
 * free x. */
etd_exchange *etd_exchange_new(etd_server *s, etd_conn *ct, const char *method,
                               const char *url, int minor, const etd_kv *headers, int nheaders,
                               bool header_nul, const etd_kv *query, int nquery);
bool etd_exchange_admit(etd_exchange *x);
bool etd_exchange_upload(etd_exchange *x, const char *data, size_t n);
etd_run etd_exchange_run(etd_exchange *x);
void etd_exchange_end(etd_exchange *x, bool completed_ok);
/* With hold_defer: the handler's return, counted after the driver suspended
 * the connection; true if the deferred answer is complete already (its
 * done came first and did not call answer_ready: the driver resumes). */
bool etd_exchange_defer_release(etd_exchange *x);
/* The request as the handler sees it (x->rq, x->host), for a route's
 * `cheap` hook before the run; etd_exchange_run calls it too. */
void etd_exchange_prepare(etd_exchange *x);
/* An early answer: status and {"error": ...}; close: Connection: close. */
void etd_exchange_refuse(etd_exchange *x, int status, bool close, const char *msg);

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
/* A JSON error response as raw HTTP/1.1 bytes (Connection: close), for the
 * answers sent before libmicrohttpd has the socket; returns the length. */
int etd_raw_error(char *out, size_t cap, int status, const char *msg, bool retry_after);
/* The transport's own metrics (connections, the pool) in Prometheus text. */
void etd_transport_metrics(etd_server *s, etd_buf *out);

/* ---- acceptor.c: the listening socket and connections before their first head ---- */

/* Bind the listening socket (no SO_REUSEPORT: one owner per port).  -1 + e
 * ("cannot bind 127.0.0.1:8080: address in use"). */
int etd_listen(const struct sockaddr *sa, socklen_t alen, const char *shown, etd_err *e);
/* Accept on fd in a thread of its own; hand(s, fd, addr, alen) gives a
 * connection whose first request head passed etd_head_check to
 * libmicrohttpd.  NULL on failure. */
etd_acceptor *etd_acceptor_start(etd_server *s, int fd,
                                 bool (*hand)(etd_server *s, int fd, const struct sockaddr *a,
                                              socklen_t alen));
/* Stop accepting: answer what is still queued in the kernel and the
 * connections not yet handed over 503, close the socket, join.  The counts
 * stay usable (etd_acceptor_closed) until etd_acceptor_free. */
void etd_acceptor_stop(etd_acceptor *a);
void etd_acceptor_free(etd_acceptor *a);
/* A handed-over connection closed (from libmicrohttpd's notification). */
void etd_acceptor_closed(etd_acceptor *a, const struct sockaddr *addr, socklen_t alen);
/* Connections now: before their first head / all. */
void etd_acceptor_counts(etd_acceptor *a, long *pending, long *total, unsigned long long *refused);

#endif
