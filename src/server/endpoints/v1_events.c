/* v1_events.c - server-sent events (docs/API.md, "Event streams"):
 * GET /v1/events (every model) and GET /v1/models/{name}/events (one), the
 * models layer's event hub (models/events.c) framed as a text/event-stream
 * response (endpoint.h's etd_response_stream).
 *
 * The handler validates the request and subscribes (so a reader without
 * Last-Event-ID gets every event from the moment it was answered); the
 * transport then calls pull on an I/O thread whenever the connection can
 * take more.  pull never waits: it copies what the hub has (WAIT when
 * nothing: the connection is parked until the hub wakes it, or a second
 * passes), writes a heartbeat comment after `heartbeat` quiet seconds, and
 * ends the stream when the hub says so (the model was deleted; the reader
 * fell a whole --event-buffer behind and was dropped, told by a "dropped"
 * event) or the server drains ("shutdown" event).  A reader that stops
 * reading costs a cursor: publishers never wait for it, and it learns what
 * it missed when it reads again (dropped, then reset on reconnecting).
 *
 * ?coalesce=S: a reader that follows many models (the dashboard: 100 models
 * x 10 step events a second is 1000 browser tasks a second) gets at most one
 * "events" record per S seconds whose data is a JSON array of every event
 * since the previous one, in order ({"event", "id", "data"}), and whose id is
 * the last one's, so Last-Event-ID resumes as before.  pull keeps reading
 * the hub as events come (the reader is never dropped for waiting) and holds
 * them until the interval has passed; what a quiet spell leaves held goes
 * out at the next wake (the transport's, within about a second). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

/* What the hub wakes: the stream, once pull has seen it (the subscription
 * exists before the stream does).  Referenced by the subscription (freed by
 * the hub's wake_free) and by the stream's pull state. */
typedef struct waker {
    atomic_int refs;
    pthread_mutex_t mu;
    etd_stream *st;             /* a reference, or NULL */
} waker;

static void waker_unref(void *arg)
{
    waker *w = arg;
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    if (w->st)
        etd_stream_unref(w->st);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void waker_wake(void *arg) /* any thread, must not block long */
{
    waker *w = arg;
    pthread_mutex_lock(&w->mu);
    if (w->st)
        etd_stream_wake(w->st);
    pthread_mutex_unlock(&w->mu);
}

typedef struct sse {
    etd_event_sub *sub;
    waker *w;
    double heartbeat;           /* seconds of quiet before a comment */
    double last_out;            /* monotonic seconds of the last bytes */
    bool started;
    uint64_t resumed_after;     /* Last-Event-ID (0: none) */
    bool resume;
    double coalesce;            /* seconds between "events" records (0: one record per event) */
    double last_batch;          /* monotonic seconds of the last one */
    etd_buf held;               /* coalesce: events read, not yet sent (hold_event) */
    int held_n;
    uint64_t held_last_id;
} sse;

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define PULL_BYTES 65536 /* events per pull, about: the transport asks again at once */
#define HELD_MAX (4 * PULL_BYTES) /* coalesce: held past this goes out at once */
#define SHUTDOWN_JSON "{\"reason\":\"the server is shutting down; reconnect with Last-Event-ID\"}"

void etd_sse_event(void *out, uint64_t id, const char *type, const char *json, size_t len)
{
    etd_buf *b = out;
    if (id) /* what EventSource sends back as Last-Event-ID */
        etd_buf_printf(b, "id: %llu\n", (unsigned long long)id);
    /* one data: line: the JSON has no newline (json_out escapes them) */
    etd_buf_printf(b, "event: %s\ndata: ", type);
    etd_buf_putn(b, json, len);
    etd_buf_puts(b, "\n\n");
}


/* coalesce: one event into x->held, the items of the array an "events"
 * record carries: {"event", "id", "data"} (no "id" for reset/dropped); ids go
 * as strings, as the id: line would (an etd_event_fn). */
static void hold_event(void *arg, uint64_t id, const char *type, const char *json, size_t len)
{
    sse *x = arg;
    etd_buf *b = &x->held;
    etd_buf_puts(b, x->held_n++ ? ",{\"event\":\"" : "{\"event\":\"");
    etd_buf_puts(b, type); /* a name from etd_event_type_names or the hub's */
    etd_buf_putc(b, '"');
    if (id) {
        etd_buf_printf(b, ",\"id\":\"%llu\"", (unsigned long long)id);
        x->held_last_id = id;
    }
    etd_buf_puts(b, ",\"data\":");
    etd_buf_putn(b, json, len);
    etd_buf_putc(b, '}');
}

/* The held events as one "events" record: data is their array, the
 * record's id the last id in it (so Last-Event-ID resumes as before). */
static void write_batch(sse *x, etd_buf *out)
{
    if (!x->held_n)
        return;
    if (x->held_last_id)
        etd_buf_printf(out, "id: %llu\n", (unsigned long long)x->held_last_id);
    etd_buf_puts(out, "event: events\ndata: [");
    etd_buf_putn(out, x->held.data, x->held.len);
    etd_buf_puts(out, "]\n\n");
    x->held.len = 0;
    x->held_n = 0;
    x->held_last_id = 0;
}

/* coalesce: read what the hub has into x->held; send it as one record when
 * the interval has passed (or it grew large, or the stream ends). */
static etd_pull coalesced_pull(sse *x, etd_stream *s, etd_buf *out, size_t before)
{
    if (s->draining) {
        write_batch(x, out);
        etd_sse_event(out, 0, "shutdown", SHUTDOWN_JSON, sizeof SHUTDOWN_JSON - 1);
        return ETD_PULL_END;
    }
    etd_ev_read r = ETD_EV_MORE;
    while (r == ETD_EV_MORE && x->held.len < HELD_MAX)
        r = etd_events_read(x->sub, hold_event, x, PULL_BYTES);
    if (x->held.oom) {
        out->oom = true;
        return ETD_PULL_END;
    }
    double t = mono();
    bool over = r == ETD_EV_END || (s->in_process && r == ETD_EV_WAIT);
    if (x->held_n && (over || x->held.len >= HELD_MAX || t - x->last_batch >= x->coalesce)) {
        write_batch(x, out);
        x->last_batch = t;
    }
    if (over)
        return ETD_PULL_END;
    if (out->len > before) {
        x->last_out = t;
        return ETD_PULL_MORE;
    }
    if (t - x->last_out >= x->heartbeat) {
        etd_buf_puts(out, ": heartbeat\n\n");
        x->last_out = t;
        return ETD_PULL_MORE;
    }
    /* held events wait for the next wake: an event (the hub wakes a reader
     * whose read found nothing) or the transport's, within about a second */
    return ETD_PULL_WAIT;
}

static etd_pull sse_pull(void *arg, etd_stream *s, etd_buf *out)
{
    sse *x = arg;
    size_t before = out->len; /* out may hold what earlier pulls wrote */
    if (!x->started) {
        x->started = true;
        pthread_mutex_lock(&x->w->mu);
        x->w->st = etd_stream_ref(s);
        pthread_mutex_unlock(&x->w->mu);
        /* retry: how long EventSource waits before reconnecting; the comment
         * gets the headers and a first byte out at once */
        etd_buf_puts(out, "retry: 2000\n: easytorchd event stream");
        if (x->resume)
            etd_buf_printf(out, " (resuming after %llu)", (unsigned long long)x->resumed_after);
        etd_buf_puts(out, "\n\n");
    }
    if (x->coalesce > 0)
        return coalesced_pull(x, s, out, before);
    if (s->draining) {
        etd_sse_event(out, 0, "shutdown", SHUTDOWN_JSON, sizeof SHUTDOWN_JSON - 1);
        return ETD_PULL_END;
    }
    etd_ev_read r = etd_events_read(x->sub, etd_sse_event, out, PULL_BYTES);
    double t = mono();
    if (r == ETD_EV_END)
        return ETD_PULL_END;
    if (out->len > before) {
        x->last_out = t;
        return ETD_PULL_MORE;
    }
    if (s->in_process) /* no client to leave: what is buffered now, then the end */
        return ETD_PULL_END;
    if (t - x->last_out >= x->heartbeat) {
        /* a comment: EventSource ignores it; proxies and clients see the
         * connection is alive */
        etd_buf_puts(out, ": heartbeat\n\n");
        x->last_out = t;
        return ETD_PULL_MORE;
    }
    return ETD_PULL_WAIT;
}

static void sse_done(void *arg)
{
    sse *x = arg;
    pthread_mutex_lock(&x->w->mu);
    if (x->w->st) {
        etd_stream_unref(x->w->st);
        x->w->st = NULL;
    }
    pthread_mutex_unlock(&x->w->mu);
    etd_events_unsubscribe(x->sub); /* the hub drops its waker reference when freed */
    waker_unref(x->w);
    etd_buf_free(&x->held);
    free(x);
}

/* A decimal event id (what the stream's `id:` lines carry). */
static bool parse_id(const char *s, uint64_t *out)
{
    if (!*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void events(etd_call *c, etd_model *m)
{
    etd_sub_opts o = {0};
    /* types=step,job: only these (the stream's event names) */
    const char *types = ep_query(c, "types");
    if (types) {
        for (const char *p = types;;) {
            size_t n = strcspn(p, ",");
            int k = 0;
            while (etd_event_type_names[k] &&
                   (strlen(etd_event_type_names[k]) != n ||
                    strncmp(etd_event_type_names[k], p, n)))
                k++;
            if (!etd_event_type_names[k]) {
                char one[64];
                snprintf(one, sizeof one, "%.*s", (int)(n < 63 ? n : 63), p);
                etd_fail(&c->e, ETD_EINVAL, "types: unknown event type \"%s\" (expected a "
                         "comma-separated list of step, batch, evaluation, job, nonfinite, "
                         "hyperparameters, version, created, deleted)", one);
                etd_err_suggest(&c->e, one, etd_event_type_names);
                ep_ok(c, ETD_EINVAL);
                return;
            }
            o.types |= 1u << k;
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    /* Last-Event-ID (EventSource sends it when it reconnects), or the
     * last_event_id argument for clients that cannot set headers */
    const char *lid = ep_header(c, "Last-Event-ID");
    const char *lq = ep_query(c, "last_event_id");
    const char *which = lid ? "Last-Event-ID" : "last_event_id";
    if (!lid)
        lid = lq;
    if (lid && *lid) {
        if (!parse_id(lid, &o.last_id)) {
            ep_error(c, 400, "%s: expected an event id (a decimal integer from the stream's "
                     "id: lines), got \"%.40s\"", which, lid);
            return;
        }
        o.resume = true;
    }
    double hb = 15;
    const char *hq = ep_query(c, "heartbeat");
    if (hq) {
        char *end;
        hb = strtod(hq, &end);
        if (end == hq || *end || !(hb >= 1 && hb <= 300)) {
            ep_error(c, 400, "heartbeat: expected seconds between 1 and 300, got \"%.40s\"", hq);
            return;
        }
    }
    double co = 0;
    const char *cq = ep_query(c, "coalesce");
    if (cq) {
        char *end;
        co = strtod(cq, &end);
        if (end == cq || *end || !(co >= 0 && co <= 10)) {
            ep_error(c, 400, "coalesce: expected seconds between 0 and 10 (0: one record per "
                     "event), got \"%.40s\"", cq);
            return;
        }
    }
    sse *x = calloc(1, sizeof *x);
    waker *w = calloc(1, sizeof *w);
    if (!x || !w) {
        free(x);
        free(w);
        ep_ok(c, etd_fail(&c->e, ETD_ENOMEM, "out of memory"));
        return;
    }
    atomic_init(&w->refs, 2); /* the subscription's and ours */
    pthread_mutex_init(&w->mu, NULL);
    o.wake = waker_wake;
    o.wake_arg = w;
    o.wake_free = waker_unref;
    if (!ep_ok(c, etd_events_subscribe(c->rq->app->reg, m, &o, &x->sub, &c->e))) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        free(x);
        return;
    }
    x->w = w;
    x->heartbeat = hb;
    x->last_out = mono();
    x->resume = o.resume;
    x->resumed_after = o.last_id;
    x->coalesce = co;
    etd_buf_init(&x->held);
    etd_response_header(c->rs, "Cache-Control", "no-cache");
    etd_response_header(c->rs, "X-Accel-Buffering", "no"); /* nginx: do not buffer it */
    etd_response_stream(c->rs, "text/event-stream; charset=utf-8", sse_pull, sse_done, x);
}

void etd_h_events(etd_call *c) { events(c, NULL); }

void etd_h_model_events(etd_call *c)
{
    if (ep_model(c))
        events(c, c->m);
}
