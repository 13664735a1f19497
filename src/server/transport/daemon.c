/* daemon.c - libmicrohttpd glue: start and stop, the access and completion
 * callbacks that drive the pipeline, connection tracking with the request
 * deadline, and the drain on shutdown.  The only file that includes
 * microhttpd.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/transport/transport_internal.h"

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
    atomic_init(&s->inflight, 0);
    atomic_init(&s->started, 0);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_cond_init(&s->watchdog_cv, NULL);
    return true;
}

void etd_server_fini(etd_server *s)
{
    pthread_mutex_destroy(&s->conn_mu);
    pthread_cond_destroy(&s->watchdog_cv);
    etd_http_metrics_free(s->metrics);
}

unsigned etd_server_port(const etd_server *s) { return s->port; }

void etd_server_set_ready(etd_server *s, bool ready) { atomic_store(&s->ready, ready); }

/* ---------------------------------------------------------------- the request deadline
 * MHD's connection timeout is an idle timeout: a client that sends one byte
 * of its headers every few seconds (slowloris) is never idle and would hold
 * its connection -- and with --max-connections of them, the server -- for
 * ever.  So every connection is tracked from MHD's connection notifications;
 * a watchdog thread shuts down the socket of one whose request headers have
 * not been completed within --request-timeout of it opening or finishing its
 * previous request (MHD then closes it as a dead peer), and the upload calls
 * refuse a body still arriving after the deadline (pipeline.c).  CLOSED is
 * notified before MHD closes the socket and both sides hold conn_mu, so the
 * watchdog never touches a reused descriptor. */

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

void etd_conn_set_active(etd_server *s, etd_conn *ct, bool active)
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
    double period = s->o.request_timeout / 4 < 1 ? s->o.request_timeout / 4 : 1;
    pthread_mutex_lock(&s->conn_mu);
    while (!s->watchdog_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(period * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->watchdog_cv, &s->conn_mu, &ts);
        for (etd_conn *ct = s->conns; ct; ct = ct->next)
            if (!ct->active && !ct->cut && etd_since(&ct->since) > s->o.request_timeout) {
                shutdown(ct->fd, SHUT_RDWR);
                ct->cut = true;
            }
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

/* ---------------------------------------------------------------- the callbacks */

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return etd_unescape(s);
}

/* Headers or query arguments of a connection, as etd_kv (the strings stay
 * MHD's, valid until the request completes). */
typedef struct collect {
    etd_kv *kv;
    int n, cap;
    bool nul;                   /* a NUL inside a header name or value */
} collect;

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    collect *c = cls;
    (void)kind;
    if (!key || strlen(key) != key_size || (value && strlen(value) != value_size)) {
        c->nul = true;
        return MHD_YES;
    }
    if (c->n < c->cap)
        c->kv[c->n++] = (etd_kv){key, value, value ? value_size : 0};
    return MHD_YES;
}

static bool collect_all(struct MHD_Connection *conn, enum MHD_ValueKind kind, collect *c)
{
    int n = MHD_get_connection_values(conn, kind, NULL, NULL);
    c->cap = n > 0 ? n : 0;
    c->kv = calloc((size_t)c->cap + 1, sizeof *c->kv);
    if (!c->kv)
        return false;
    MHD_get_connection_values_n(conn, kind, collect_one, c);
    return true;
}

static enum MHD_Result send_answer(etd_exchange *x, struct MHD_Connection *conn)
{
    const void *data;
    size_t len;
    bool must_free;
    x->answered = true;
    etd_response_finish(&x->rs, false, &data, &len, &must_free);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free((void *)data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            x->rs.content_type ? x->rs.content_type : "application/json");
    for (int i = 0; i < x->rs.nheaders; i++)
        MHD_add_response_header(r, x->rs.headers[i].name, x->rs.headers[i].value);
    if (x->rs.close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)x->rs.status, r);
    MHD_destroy_response(r);
    return ret;
}

/* libmicrohttpd's access handler: called once with the headers, then with
 * each piece of the body, then once more with none. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    etd_server *s = cls;
    etd_exchange *x = *con_cls;
    (void)version;
    if (!x) {
        collect h = {0}, q = {0};
        if (!collect_all(conn, MHD_HEADER_KIND, &h) ||
            !collect_all(conn, MHD_GET_ARGUMENT_KIND, &q)) {
            free(h.kv);
            free(q.kv);
            return MHD_NO;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        x = etd_exchange_new(s, ci ? ci->socket_context : NULL, method, url, h.kv, h.n, h.nul,
                             q.kv, q.n);
        free(h.kv);
        free(q.kv);
        if (!x)
            return MHD_NO;
        *con_cls = x;
        return etd_exchange_admit(x) ? send_answer(x, conn) : MHD_YES;
    }
    if (x->answered) { /* early answer: drop whatever body still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return etd_exchange_upload(x, upload_data, n) ? MHD_YES : MHD_NO;
    }
    return etd_exchange_run(x) ? send_answer(x, conn) : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    if (!*con_cls)
        return;
    etd_exchange_end(*con_cls, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    *con_cls = NULL;
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
    etd_server *s = calloc(1, sizeof *s);
    if (!s || !etd_server_init(s, c, routes, n, app)) {
        free(s);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
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
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
                            MHD_OPTION_ARRAY, pool,
                            MHD_OPTION_END);
    if (!s->d) {
        etd_fail(e, ETD_EIO, "cannot listen on %s:%u (address in use or not permitted?)",
                 c->host, c->port);
        etd_server_fini(s);
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

/* ---------------------------------------------------------------- shutdown */

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
    while (etd_since(&t0) < 2.0) {
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
        while (got < sizeof buf - 1 && !strstr(buf, "\r\n\r\n") && etd_since(&r0) < 0.2) {
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
            path[strcspn(path, "?")] = '\0'; /* as the access log has it: no query string */
            for (char *ch = path; *ch; ch++)
                if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
                    *ch = '?';
        }
        bool sent = send(c, resp, (size_t)rl, MSG_NOSIGNAL) == rl;
        shutdown(c, SHUT_WR);
        while (etd_since(&r0) < 0.5) { /* the client reads the answer and closes */
            struct pollfd p = {c, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0)
                continue;
            ssize_t n = recv(c, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break;
        }
        close(c);
        if (got)
            etd_log_access(s, method, path, sent ? 503 : 0, etd_since(&r0), sent);
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
    while ((left = atomic_load(&s->inflight)) > 0 && etd_since(&t0) < s->o.drain_timeout)
        sleep_ms(10);
    if (left > 0)
        fprintf(stderr, "easytorchd: %d request(s) still running after %.0fs; stopping anyway\n",
                left, s->o.drain_timeout);
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
        while (etd_since(&g0) < 1.0 && etd_since(&calm) < 0.05) {
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
        while (etd_since(&g0) < 0.5 && atomic_load(&s->inflight) > 0)
            sleep_ms(5);
        MHD_stop_daemon(s->d); /* joins connection threads: nothing runs after this */
    }
    etd_server_fini(s);
    free(s);
}
