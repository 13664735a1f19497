/*
 * transport.h - the HTTP side of easytorchd (internal): the only code that
 * knows libmicrohttpd.
 *
 * An etd_server wraps one libmicrohttpd daemon (daemon.c) -- or none, for
 * etd_dispatch (dispatch.c).  Both drive every request through the same
 * pipeline (pipeline.c): header checks, routing over the table it is handed
 * (router.c), draining, authentication, readiness, body limits, the
 * handler, access log and request metrics (metrics.c).  Handlers are the
 * endpoints layer's (endpoints/endpoint.h): functions of a request to a
 * response that never see a connection.
 */
#ifndef EASYTORCHD_TRANSPORT_H
#define EASYTORCHD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/endpoints/endpoint.h"

typedef struct etd_transport_opts {
    char host[256];            /* listen address (IPv4/IPv6 literal or name) */
    unsigned port;             /* 0: pick a free port */
    const char *token;         /* NULL: no authentication (not copied: must outlive the server) */
    bool insecure;             /* allow a non-loopback address without a token */
    size_t max_body;           /* bytes */
    unsigned timeout;          /* idle connection timeout, seconds */
    double header_timeout;     /* a request's head must be in within this of its first byte, s */
    double request_timeout;    /* its body within this of its head, seconds; <= 0 none */
    unsigned max_conns;        /* connections at once (all states) */
    unsigned max_conns_per_ip; /* per client address; 0: no limit */
    unsigned io_threads;       /* libmicrohttpd epoll threads (>= 1) */
    unsigned workers;          /* worker threads for model work (>= 1) */
    unsigned max_queue;        /* requests waiting for a worker before 503 */
    double inline_macs;        /* small predictions on the I/O thread (etd_host.inline_macs) */
    double inline_train_macs;  /* small train calls there (etd_host.inline_train_macs) */
    double drain_timeout;      /* seconds to wait for in-flight requests */
    bool quiet;                /* no access log */
} etd_transport_opts;

typedef struct etd_server etd_server;

/* Bind and start serving routes[n] for app (not ready until
 * etd_server_set_ready).  Prints "listening on HOST:PORT" on stdout.
 * NULL + e on failure ("cannot bind 127.0.0.1:8080: address in use").  o
 * is copied (the token string is not); routes and app must outlive the
 * server.  The worker pool's release hook is installed on app->reg. */
etd_server *etd_server_start(const etd_transport_opts *o, const etd_route *routes, int n,
                             const etd_app *app, etd_err *e);
/* A server without a listening daemon, for etd_dispatch.  Starts ready
 * (etd_server_set_ready(s, false) to test 503s).  NULL on allocation
 * failure.  Free with etd_server_shutdown(). */
etd_server *etd_server_new_detached(const etd_transport_opts *o, const etd_route *routes, int n,
                                    const etd_app *app);
/* The bound port (the real one when 0 was asked for). */
unsigned etd_server_port(const etd_server *s);
/* Readiness for /readyz and the API routes (503 "not ready" while false). */
void etd_server_set_ready(etd_server *s, bool ready);
/* Start draining: /readyz and new API calls answer 503 from now on and
 * event streams end (etd_server_shutdown does this too, first). */
void etd_server_drain_begin(etd_server *s);
/* Answer 503 to new requests, wait (up to the drain timeout) for requests
 * in flight, then tell long handlers to stop (etd_host.gone), stop
 * accepting, stop the daemon and free s. */
void etd_server_shutdown(etd_server *s);

/* Run one request through the pipeline exactly as the libmicrohttpd access
 * handler does, without a socket (fuzzing, unit tests).  url is raw: still
 * %-escaped, with the query string.  headers are n name/value pairs;
 * value_lens[i] is the length of values[i] (a NUL inside it is refused as
 * on the wire; value_lens may be NULL: strlen).  body may be NULL when
 * body_len is 0; without a Content-Length header the body is still
 * delivered (as chunked).  Returns the HTTP status, with *resp (malloc'ed,
 * NUL-terminated, caller frees), *resp_len and *content_type (static) set;
 * for HEAD and 204 the body is empty.  Returns 0 with *resp NULL where the
 * daemon would drop the connection (out of memory).  Thread-safe as the
 * daemon is; metrics and the access log (unless quiet) are recorded.  The
 * handler runs on the calling thread; a deferred answer is waited for, and
 * a streamed body is pulled to its end and returned whole. */
int etd_dispatch(etd_server *s, const char *method, const char *url,
                 const char *const *names, const char *const *values,
                 const size_t *value_lens, int n, const char *body, size_t body_len,
                 char **resp, size_t *resp_len, const char **content_type);
/* etd_dispatch, also handing back the answer's extra headers (Location,
 * Retry-After, Content-Disposition, ...; names static) into
 * headers->nheaders / headers->headers (may be NULL): what the cluster's
 * ordered requests pass back to their client. */
int etd_dispatch_headers(etd_server *s, const char *method, const char *url,
                         const char *const *names, const char *const *values,
                         const size_t *value_lens, int n, const char *body, size_t body_len,
                         char **resp, size_t *resp_len, const char **content_type,
                         etd_response *headers);

#endif
