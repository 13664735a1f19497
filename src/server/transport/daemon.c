/* daemon.c - the server: start (the listening socket, the acceptor, the
 * worker pool, libmicrohttpd in epoll mode with its I/O threads, the
 * watchdog), the transport's metrics, and the drain on shutdown.  The
 * request callbacks are in connection.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/transport/connection.h"

/* libmicrohttpd's memory pool per connection (bytes); see its use below */
#define ETD_MHD_POOL ((size_t)40 * 1024)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- server basics */

bool etd_server_init(etd_server *s, const etd_transport_opts *o, const etd_route *routes, int n,
                     const etd_app *app)
{
    s->o = *o;
    s->routes = routes;
    s->nroutes = n;
    s->app = app;
    if (!(s->metrics = etd_http_metrics_new(routes, n)))
        return false;
    atomic_init(&s->ready, false);
    atomic_init(&s->draining, false);
    atomic_init(&s->stopping, false);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->started, 0);
    atomic_init(&s->inline_runs, 0);
    atomic_init(&s->worker_runs, 0);
    atomic_init(&s->deferred_runs, 0);
    atomic_init(&s->queue_full, 0);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_mutex_init(&s->stream_mu, NULL);
    pthread_cond_init(&s->watchdog_cv, NULL);
    return true;
}

void etd_server_fini(etd_server *s)
{
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->stream_mu);
    pthread_cond_destroy(&s->watchdog_cv);
    etd_http_metrics_free(s->metrics);
}

unsigned etd_server_port(const etd_server *s) { return s->port; }

void etd_server_set_ready(etd_server *s, bool ready) { atomic_store(&s->ready, ready); }

void etd_transport_metrics(etd_server *s, etd_buf *out)
{
    if (s->acc) {
        long pending, total;
        unsigned long long refused;
        etd_acceptor_counts(s->acc, &pending, &total, &refused);
        etd_buf_printf(out,
                       "# HELP easytorch_connections Open client connections, by whether their "
                       "first request head has arrived.\n# TYPE easytorch_connections gauge\n"
                       "easytorch_connections{state=\"awaiting_head\"} %ld\n"
                       "easytorch_connections{state=\"served\"} %ld\n"
                       "# HELP easytorch_connections_refused_total Connections answered and "
                       "closed before their first request reached a handler (limits, bad heads, "
                       "header timeouts).\n# TYPE easytorch_connections_refused_total counter\n"
                       "easytorch_connections_refused_total %llu\n",
                       pending, total - pending, refused);
    }
    if (s->workers) {
        etd_workers_stats st;
        etd_workers_stats_get(s->workers, &st);
        etd_buf_printf(out,
                       "# HELP easytorch_workers Worker threads for model work.\n"
                       "# TYPE easytorch_workers gauge\neasytorch_workers %d\n"
                       "# HELP easytorch_workers_busy Workers running a request.\n"
                       "# TYPE easytorch_workers_busy gauge\neasytorch_workers_busy %d\n"
                       "# HELP easytorch_queue_depth Requests waiting for a worker or for their "
                       "model.\n# TYPE easytorch_queue_depth gauge\neasytorch_queue_depth %d\n"
                       "# HELP easytorch_queue_rejected_total Requests refused with 503 because "
                       "--max-queue requests were waiting.\n"
                       "# TYPE easytorch_queue_rejected_total counter\n"
                       "easytorch_queue_rejected_total %llu\n"
                       "# HELP easytorch_queue_wait_seconds_total Time requests spent queued.\n"
                       "# TYPE easytorch_queue_wait_seconds_total counter\n"
                       "easytorch_queue_wait_seconds_total %.6f\n",
                       st.threads, st.busy, st.queued, st.rejected, st.wait_sum);
    }
    etd_buf_printf(out,
                   "# HELP easytorch_requests_run_total Handlers run, by where: on an I/O thread "
                   "(inline) or on a worker.\n# TYPE easytorch_requests_run_total counter\n"
                   "easytorch_requests_run_total{where=\"inline\"} %lu\n"
                   "easytorch_requests_run_total{where=\"worker\"} %lu\n",
                   atomic_load(&s->inline_runs), atomic_load(&s->worker_runs));
}

/* ---------------------------------------------------------------- start */

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

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return etd_unescape(s);
}

/* The models layer's executor (dynamic batches): a pool job holding the
 * model's lock shared, unbounded (the requests it answers are already
 * admitted).  Dropped at shutdown, it still runs -- on the stopping thread,
 * taking the lock the plain way -- so no request is left unanswered. */
typedef struct exec_job {
    etd_job job;
    void (*fn)(void *arg);
    void *arg;
} exec_job;

static void exec_run(etd_job *j)
{
    exec_job *e = (exec_job *)j;
    e->fn(e->arg);
    etd_job_release(j);
    free(e);
}

static void exec_drop(etd_job *j)
{
    exec_job *e = (exec_job *)j;
    e->fn(e->arg);
    free(e);
}

static bool exec_submit(void *self, etd_model *m, void (*fn)(void *arg), void *arg)
{
    etd_server *s = self;
    exec_job *e = calloc(1, sizeof *e);
    if (!e)
        return false;
    e->job = (etd_job){.run = exec_run, .drop = exec_drop, .m = etd_model_ref(m)};
    e->fn = fn;
    e->arg = arg;
    if (!etd_workers_submit(s->workers, &e->job, false)) {
        etd_model_unref(m);
        free(e);
        return false;
    }
    return true;
}

/* libmicrohttpd's own messages ("Connection was closed by remote side with
 * incomplete request."): kept, but at most 10 a second -- a slowloris
 * attack would otherwise turn into a flood of log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t second;
    static int in_second;
    static unsigned long dropped;
    (void)cls;
    pthread_mutex_lock(&mu);
    time_t now = time(NULL);
    if (now != second) {
        if (dropped)
            fprintf(stderr, "easytorchd: (%lu more libmicrohttpd messages in the last second "
                    "not shown)\n", dropped);
        second = now;
        in_second = 0;
        dropped = 0;
    }
    if (in_second++ < 10) {
        fputs("easytorchd: libmicrohttpd: ", stderr);
        vfprintf(stderr, fmt, ap);
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&mu);
}

/* The acceptor's hand-over: libmicrohttpd takes the socket (and closes it,
 * also on failure). */
static bool hand_over(etd_server *s, int fd, const struct sockaddr *a, socklen_t alen)
{
    return MHD_add_connection(s->d, fd, a, alen) == MHD_YES;
}

/* Every connection is a descriptor: make room for --max-connections of
 * them (and the daemon's own files), and say what was done. */
static void raise_nofile(etd_transport_opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)o->max_conns + 256, was = rl.rlim_cur;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > 512 ? (unsigned)(rl.rlim_cur - 256) : 256;
        fprintf(stderr, "easytorchd: RLIMIT_NOFILE is %llu (hard limit %llu): --max-connections "
                "lowered from %u to %u\n", (unsigned long long)rl.rlim_cur,
                (unsigned long long)rl.rlim_max, o->max_conns, fit);
        o->max_conns = fit;
    } else if (rl.rlim_cur != was) {
        fprintf(stderr, "easytorchd: RLIMIT_NOFILE raised from %llu to %llu for up to %u "
                "connections\n", (unsigned long long)was, (unsigned long long)rl.rlim_cur,
                o->max_conns);
    }
}

etd_server *etd_server_start(const etd_transport_opts *c, const etd_route *routes, int n,
                             const etd_app *app, etd_err *e)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(c->host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        etd_fail(e, ETD_EINVAL, "cannot resolve listen address \"%s\": %s", c->host,
                 gai_strerror(gai));
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    socklen_t alen = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    bool v6 = ss.ss_family == AF_INET6;
    if (v6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->port);
    if (!is_loopback((struct sockaddr *)&ss) && !c->token && !c->insecure) {
        etd_fail(e, ETD_EINVAL, "refusing to listen on non-loopback address %s without a token: "
                 "set --token-file or EASYTORCH_TOKEN (or pass --insecure)", c->host);
        return NULL;
    }
    char shown[300];
    snprintf(shown, sizeof shown, v6 ? "[%s]:%u" : "%s:%u", c->host, c->port);
    etd_transport_opts o = *c;
    if (o.io_threads < 1)
        o.io_threads = 1;
    if (o.workers < 1)
        o.workers = 1;
    raise_nofile(&o);
    int lfd = etd_listen((struct sockaddr *)&ss, alen, shown, e);
    if (lfd < 0)
        return NULL;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    unsigned port = c->port;
    if (getsockname(lfd, (struct sockaddr *)&bound, &bl) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    etd_server *s = calloc(1, sizeof *s);
    if (!s || !etd_server_init(s, &o, routes, n, app)) {
        free(s);
        close(lfd);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
    s->port = port;
    s->workers = etd_workers_new((int)o.workers, (int)o.max_queue);
    if (!s->workers) {
        etd_fail(e, ETD_ENOMEM, "cannot start %u worker threads", o.workers);
        goto fail;
    }
    s->hook = (etd_release_hook){etd_workers_poke, s->workers};
    etd_registry_on_release(app->reg, &s->hook);
    etd_workers_stats ws;
    etd_workers_stats_get(s->workers, &ws);
    s->exec = (etd_executor){exec_submit, s, ws.threads};
    etd_registry_set_executor(app->reg, &s->exec);
    /* libmicrohttpd in epoll mode: a few I/O threads serve every
     * connection; a handler that may wait or compute runs on the worker
     * pool with its connection suspended (connection.c, docs/server.md).
     * No listening socket of its own: the acceptor hands connections over. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o.io_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (o.io_threads <= 1)
        pool[0] = pool[1]; /* one internal thread, no pool */
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, etd_on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first, as it asks */
                            MHD_OPTION_NOTIFY_COMPLETED, etd_on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, etd_on_connection, s,
                            MHD_OPTION_URI_LOG_CALLBACK, etd_on_uri, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, o.timeout,
                            /* room for a 16 KiB head (our limit, checked with a JSON
                             * answer) before libmicrohttpd's own HTML 431: the read
                             * buffer starts at half the pool; above 32 KiB the pool is
                             * mmap'ed: memory goes back when it closes.  No more:
                             * libmicrohttpd zeroes the whole pool after every request
                             * (MHD_pool_reset) and the read buffer's unused half when
                             * the head is in -- at 64 KiB that memset was 9% of a
                             * batch-1 predict's CPU (docs/server.md, "Execution model") */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, ETD_MHD_POOL,
                            /* the acceptor enforces --max-connections; this is only a bound */
                            MHD_OPTION_CONNECTION_LIMIT, o.max_conns + 64 * o.io_threads,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
                            MHD_OPTION_ARRAY, pool,
                            MHD_OPTION_END);
    if (!s->d) {
        etd_fail(e, ETD_EIO, "cannot start libmicrohttpd (%u I/O threads)", o.io_threads);
        goto fail;
    }
    if (!(s->acc = etd_acceptor_start(s, lfd, hand_over))) {
        etd_fail(e, ETD_EIO, "cannot start the acceptor thread");
        goto fail;
    }
    lfd = -1;
    etd_watchdog_start(s);
    snprintf(shown, sizeof shown, v6 ? "[%s]:%u" : "%s:%u", c->host, port);
    printf("listening on %s\n", shown);
    fflush(stdout);
    fprintf(stderr, "easytorchd: listening on %s%s (%u I/O threads, %u workers, up to %u "
            "connections)\n", shown, c->token ? " (token required)" : "", o.io_threads,
            o.workers, o.max_conns);
    return s;
fail:
    if (s->d)
        MHD_stop_daemon(s->d);
    if (s->workers) {
        etd_registry_set_executor(app->reg, NULL);
        etd_registry_on_release(app->reg, NULL);
    }
    etd_workers_free(s->workers);
    if (lfd >= 0)
        close(lfd);
    etd_server_fini(s);
    free(s);
    return NULL;
}

/* ---------------------------------------------------------------- shutdown */

void etd_server_drain_begin(etd_server *s)
{
    if (!s || !s->d)
        return;
    atomic_store(&s->draining, true);
    atomic_store(&s->ready, false);
    etd_streams_wake_all(s);
}

void etd_server_shutdown(etd_server *s)
{
    if (!s)
        return;
    if (!s->d) { /* a detached server (etd_server_new_detached) */
        etd_server_fini(s);
        free(s);
        return;
    }
    /* Keep accepting while requests finish, so probes see readiness 503
     * (not a refused connection) and new API calls get a clear 503;
     * streams end now. */
    etd_server_drain_begin(s);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int left;
    while ((left = atomic_load(&s->inflight)) > 0 && etd_since(&t0) < s->o.drain_timeout)
        sleep_ms(10);
    if (left > 0) {
        /* long handlers (train) stop between two steps now, keeping what
         * they did; the rest is waited for */
        fprintf(stderr, "easytorchd: %d request(s) still running after %.0fs: asking them to "
                "stop\n", left, s->o.drain_timeout);
        atomic_store(&s->stopping, true);
    }
    /* Requests on connections already accepted keep arriving for a
     * moment: answer them 503 until none has begun for 50 ms (at most
     * 1 s). */
    unsigned long seen = atomic_load(&s->started);
    struct timespec g0, calm;
    clock_gettime(CLOCK_MONOTONIC, &g0);
    calm = g0;
    while (etd_since(&g0) < 1.0 && etd_since(&calm) < 0.05) {
        sleep_ms(5);
        unsigned long now = atomic_load(&s->started);
        if (now != seen || atomic_load(&s->inflight) > left) {
            seen = now;
            clock_gettime(CLOCK_MONOTONIC, &calm);
        }
    }
    etd_acceptor_stop(s->acc);  /* queued connections get 503; no new ones */
    etd_workers_stop(s->workers); /* queued jobs get 503; running ones finish */
    etd_registry_set_executor(s->app->reg, NULL); /* batches from now on run alone, at once */
    etd_registry_on_release(s->app->reg, NULL); /* the pool goes away: no more pokes */
    clock_gettime(CLOCK_MONOTONIC, &g0); /* let the last answers go out */
    while (etd_since(&g0) < 1.0 && atomic_load(&s->inflight) > 0)
        sleep_ms(5);
    etd_watchdog_stop(s);
    MHD_stop_daemon(s->d); /* nothing is suspended any more: every job has answered */
    etd_workers_free(s->workers);
    etd_acceptor_free(s->acc);
    etd_server_fini(s);
    free(s);
}
