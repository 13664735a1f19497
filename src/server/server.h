/*
 * server.h - the HTTP side of easytorchd (internal).
 *
 * etd_server wraps one libmicrohttpd daemon: routing table, per-request
 * state, authentication, limits, access log and request metrics.  The
 * model work itself is in registry.h; main.c owns options and signals.
 */
#ifndef EASYTORCHD_SERVER_H
#define EASYTORCHD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/registry.h"

typedef struct etd_config {
    char host[256];            /* listen address (IPv4/IPv6 literal or name) */
    unsigned port;             /* 0: pick a free port */
    char *token;               /* NULL: no authentication */
    bool insecure;
    const char *data_dir;
    bool sync_always;
    double save_interval;
    size_t max_body;
    int max_depth;
    size_t max_json_values;    /* JSON values parsed into a tree (fast-path tensors excluded) */
    int64_t max_elems;
    int max_models;
    int64_t max_params;
    int64_t max_steps;
    size_t max_history;
    unsigned timeout;          /* idle connection timeout, seconds */
    double request_timeout;    /* whole-request deadline (headers, then body), seconds */
    unsigned max_conns;
    unsigned pool_threads;     /* 0: a thread per connection; N: N epoll threads */
    double drain_timeout;      /* seconds to wait for in-flight requests */
    bool quiet;
} etd_config;

typedef struct etd_server etd_server;

/* Bind and start serving (not ready until etd_server_set_ready).  Prints
 * "listening on HOST:PORT" on stdout.  NULL + err on failure. */
etd_server *etd_server_start(const etd_config *c, etd_registry *r, char *err, size_t cap);
/* The bound port (the real one when 0 was asked for). */
unsigned etd_server_port(const etd_server *s);
/* Readiness for /readyz and the API routes (503 "not ready" while false). */
void etd_server_set_ready(etd_server *s, bool ready);
/* Stop accepting, answer 503 to new requests, wait (up to the drain
 * timeout) for requests in flight, then stop the daemon and free s. */
void etd_server_shutdown(etd_server *s);

#endif
