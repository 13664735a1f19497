/* check_transport.c - the transport's facilities for handlers, on a real
 * libmicrohttpd server on 127.0.0.1 with a route table of test handlers:
 * streamed bodies (pull, park, wake from another thread, the heartbeat, the
 * client leaving, shutdown), deferred answers completed from another thread,
 * the client-gone check of a running handler, and the same handlers through
 * etd_dispatch (no socket). */
#include "check_server.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/config.h"
#include "server/endpoints/common.h"

static char dir[256];
static etd_registry *reg;
static etd_app app;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- a stream of 5 events */

typedef struct events {
    atomic_int next;            /* events made available by the producer */
    int sent;
    atomic_int done_calls;
    atomic_int pulls;
    etd_stream *s;              /* the handle, for the producer */
    pthread_mutex_t mu;
    bool stop;
    bool draining_seen;
} events;

static events ev;

static etd_pull ev_pull(void *arg, etd_stream *s, etd_buf *out)
{
    events *e = arg;
    atomic_fetch_add(&e->pulls, 1);
    pthread_mutex_lock(&e->mu);
    if (!e->s)
        e->s = etd_stream_ref(s);
    pthread_mutex_unlock(&e->mu);
    if (s->draining) {
        e->draining_seen = true;
        etd_buf_puts(out, "event: bye\n\n");
        return ETD_PULL_END;
    }
    int avail = atomic_load(&e->next);
    while (e->sent < avail && e->sent < 5)
        etd_buf_printf(out, "data: %d\n\n", e->sent++);
    if (e->sent >= 5)
        return ETD_PULL_END;
    return out->len ? ETD_PULL_MORE : ETD_PULL_WAIT;
}

static void ev_done(void *arg)
{
    events *e = arg;
    pthread_mutex_lock(&e->mu);
    if (e->s)
        etd_stream_unref(e->s);
    e->s = NULL;
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&e->done_calls, 1);
}

static void h_stream(etd_call *c)
{
    etd_response_stream(c->rs, "text/event-stream", ev_pull, ev_done, &ev);
}

/* Makes the events available one by one, waking the stream each time. */
static void *producer(void *arg)
{
    events *e = arg;
    for (int i = 1; i <= 5; i++) {
        sleep_ms(30);
        atomic_store(&e->next, i);
        pthread_mutex_lock(&e->mu);
        if (e->s)
            etd_stream_wake(e->s);
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

/* A stream that never has anything: only the heartbeat and the client's
 * going away end it. */
static etd_pull quiet_pull(void *arg, etd_stream *s, etd_buf *out)
{
    events *e = arg;
    atomic_fetch_add(&e->pulls, 1);
    if (s->draining)
        return ETD_PULL_END;
    return ETD_PULL_WAIT;
}

static void h_quiet(etd_call *c)
{
    etd_response_stream(c->rs, "text/event-stream", quiet_pull, ev_done, &ev);
}

/* ---------------------------------------------------------------- a deferred answer */

static void *answer_later(void *arg)
{
    etd_deferred *d = arg;
    sleep_ms(50);
    etd_buf_puts(&d->rs->body, "{\"later\":true}");
    d->done(d);
    return NULL;
}

static void h_defer(etd_call *c)
{
    etd_deferred *d = c->rq->host->defer ? c->rq->host->defer(c->rq->host->xarg) : NULL;
    if (!d) {
        etd_buf_puts(&c->rs->body, "{\"later\":false}");
        return;
    }
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, answer_later, d), 0);
    pthread_detach(t);
}

/* ---------------------------------------------------------------- a handler that waits for its client to leave */

static atomic_int noticed_gone;

static void h_wait_gone(etd_call *c)
{
    const etd_host *h = c->rq->host;
    for (int i = 0; i < 3000; i++) { /* at most 30 s */
        if (h->gone && h->gone(h->xarg)) {
            atomic_store(&noticed_gone, 1);
            ep_error(c, 499, "client went away");
            return;
        }
        sleep_ms(10);
    }
    etd_buf_puts(&c->rs->body, "{\"gone\":false}");
}

static const etd_route routes[] = {
    {"GET", "/stream", h_stream, ETD_R_INLINE, NULL, NULL, NULL},
    {"GET", "/quiet", h_quiet, ETD_R_INLINE, NULL, NULL, NULL},
    {"GET", "/defer", h_defer, 0, NULL, NULL, NULL},
    {"GET", "/defer-inline", h_defer, ETD_R_INLINE, NULL, NULL, NULL},
    {"GET", "/wait-gone", h_wait_gone, 0, NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- the fixture */

static etd_server *srv;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_transport_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    etd_config c = {
        .http = {.host = "127.0.0.1", .port = 0, .max_body = 4096, .quiet = true,
                 .timeout = 30, .header_timeout = 5, .request_timeout = 30,
                 .max_conns = 100, .io_threads = 2, .workers = 2, .max_queue = 16,
                 .drain_timeout = 5},
        .json = {.max_depth = 32, .max_values = 100000, .max_elems = 100000},
        .models = {.data_dir = dir, .save_interval = 3600, .max_models = 8,
                   .max_params = 100000, .max_steps = 100, .max_history = 1000},
    };
    etd_err err;
    reg = etd_registry_new(&c.models, &err);
    ck_assert_msg(reg != NULL, "%s", err.msg);
    app = (etd_app){.reg = reg, .json = c.json};
    srv = etd_server_start(&c.http, routes, (int)(sizeof routes / sizeof routes[0]), &app, &err);
    ck_assert_msg(srv != NULL, "%s", err.msg);
    etd_server_set_ready(srv, true);
    memset(&ev, 0, sizeof ev);
    pthread_mutex_init(&ev.mu, NULL);
    atomic_store(&noticed_gone, 0);
}

static void teardown(void)
{
    if (srv)
        etd_server_shutdown(srv);
    srv = NULL;
    etd_registry_free(reg);
    remove_scratch_dir(dir);
    pthread_mutex_destroy(&ev.mu);
}

static int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)etd_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Send a GET and read until the server closes (or 10 s: a safety net). */
static char *get_all(const char *path, size_t *n)
{
    int fd = connect_srv();
    char req[256];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                      path);
    ck_assert_int_eq(send(fd, req, (size_t)rl, 0), rl);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    *n = len;
    return buf;
}

/* The body of a chunked response, dechunked. */
static char *dechunk(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(p);
    p += 4;
    char *out = calloc(1, strlen(p) + 1);
    size_t o = 0;
    for (;;) {
        unsigned long n = strtoul(p, NULL, 16);
        p = strstr(p, "\r\n");
        ck_assert_ptr_nonnull(p);
        p += 2;
        if (n == 0)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n + 2;
    }
    return out;
}

/* ---------------------------------------------------------------- the tests */

START_TEST(test_stream_woken_from_another_thread)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, producer, &ev), 0);
    size_t n;
    char *resp = get_all("/stream", &n);
    pthread_join(t, NULL);
    ck_assert_msg(strstr(resp, "HTTP/1.1 200") && strstr(resp, "text/event-stream") &&
                  strstr(resp, "chunked"), "%s", resp);
    char *body = dechunk(resp);
    ck_assert_str_eq(body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
    for (int i = 0; i < 100 && atomic_load(&ev.done_calls) == 0; i++)
        sleep_ms(10);
    ck_assert_int_eq(atomic_load(&ev.done_calls), 1);
    /* parked between events: a few pulls, no busy loop */
    ck_assert_int_le(atomic_load(&ev.pulls), 20);
    free(body);
    free(resp);
}
END_TEST

START_TEST(test_stream_heartbeat_and_client_leaving)
{
    int fd = connect_srv();
    const char *req = "GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    /* parked, pulled again by the heartbeat: wait for the second pull (a loaded
     * machine delays it; the bound only guards against a hang) ... */
    for (int i = 0; i < 3000 && atomic_load(&ev.pulls) < 2; i++)
        sleep_ms(10);
    ck_assert_int_ge(atomic_load(&ev.pulls), 2);
    /* ... and about once a second, not busily: load only makes pulls rarer */
    int before = atomic_load(&ev.pulls);
    sleep_ms(1000);
    int pulls = atomic_load(&ev.pulls) - before;
    ck_assert_msg(pulls <= 3, "%d pulls in 1 s of a parked stream", pulls);
    ck_assert_int_eq(atomic_load(&ev.done_calls), 0);
    close(fd); /* the watchdog notices, the stream ends, done is called */
    for (int i = 0; i < 500 && atomic_load(&ev.done_calls) == 0; i++)
        sleep_ms(10);
    ck_assert_int_eq(atomic_load(&ev.done_calls), 1);
}
END_TEST

START_TEST(test_stream_ends_on_shutdown)
{
    int fd = connect_srv();
    const char *req = "GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    sleep_ms(300);
    etd_server_shutdown(srv); /* does not wait for the drain timeout: the stream ends */
    srv = NULL;
    ck_assert_int_eq(atomic_load(&ev.done_calls), 1);
    char buf[4096];
    ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(r, 0);
    buf[r] = '\0';
    ck_assert_msg(strstr(buf, "HTTP/1.1 200"), "%s", buf);
    close(fd);
}
END_TEST

START_TEST(test_deferred_answer_from_another_thread)
{
    size_t n;
    char *resp = get_all("/defer", &n);
    ck_assert_msg(strstr(resp, "HTTP/1.1 200") && strstr(resp, "{\"later\":true}"), "%s", resp);
    free(resp);
    /* on the I/O thread a handler cannot defer: it answers at once */
    resp = get_all("/defer-inline", &n);
    ck_assert_msg(strstr(resp, "{\"later\":false}"), "%s", resp);
    free(resp);
}
END_TEST

START_TEST(test_running_handler_sees_client_leave)
{
    int fd = connect_srv();
    const char *req = "GET /wait-gone HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    sleep_ms(200);
    ck_assert_int_eq(atomic_load(&noticed_gone), 0);
    close(fd);
    for (int i = 0; i < 500 && !atomic_load(&noticed_gone); i++)
        sleep_ms(10);
    ck_assert_int_eq(atomic_load(&noticed_gone), 1);
}
END_TEST

START_TEST(test_same_handlers_through_dispatch)
{
    etd_transport_opts o = {.max_body = 4096, .quiet = true};
    etd_server *d = etd_server_new_detached(&o, routes, (int)(sizeof routes / sizeof routes[0]),
                                            &app);
    char *resp;
    size_t len;
    const char *type;
    ck_assert_int_eq(etd_dispatch(d, "GET", "/defer", NULL, NULL, NULL, 0, NULL, 0, &resp, &len,
                                  &type), 200);
    ck_assert_str_eq(resp, "{\"later\":true}\n");
    free(resp);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, producer, &ev), 0);
    ck_assert_int_eq(etd_dispatch(d, "GET", "/stream", NULL, NULL, NULL, 0, NULL, 0, &resp, &len,
                                  &type), 200);
    pthread_join(t, NULL);
    ck_assert_str_eq(type, "text/event-stream");
    ck_assert_str_eq(resp, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
    ck_assert_int_eq(atomic_load(&ev.done_calls), 1);
    free(resp);
    etd_server_shutdown(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("facilities");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stream_woken_from_another_thread);
    tcase_add_test(tc, test_stream_heartbeat_and_client_leaving);
    tcase_add_test(tc, test_stream_ends_on_shutdown);
    tcase_add_test(tc, test_deferred_answer_from_another_thread);
    tcase_add_test(tc, test_running_handler_sees_client_leave);
    tcase_add_test(tc, test_same_handlers_through_dispatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
