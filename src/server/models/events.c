/* events.c - the models layer's half of the event streams (models.h): one
 * bounded ring of events for all models and one per model, subscribers
 * with cursors, Last-Event-ID resume, slow readers dropped, coalescing of
 * the per-step events.  No HTTP: an event is its id, its type and its data
 * as a JSON object; endpoints/v1_events.c frames them (id:/event:/data:
 * lines) as a text/event-stream response.
 *
 * Producers (training threads, jobs, define/delete) never wait for a
 * reader: publishing writes the event's JSON, appends it to the rings under the
 * hub mutex (a few pointer writes; a full ring overwrites its oldest event)
 * and wakes the subscribers that were waiting.  A reader takes events out
 * at its own pace; one that falls a whole ring behind has lost events and
 * is dropped (its stream ends with a "dropped" event; it may reconnect with
 * Last-Event-ID and is told what it missed).
 *
 * Step events are coalesced: a model's steps are buffered and published as
 * one "step" event per --event-interval (default 0.1 s) carrying every
 * [step, loss] since the previous one (and each one's wall time), so a training loop of thousands of
 * steps per second costs a few events per second per model and readers
 * still see every point.  A flusher thread publishes what a model that
 * stopped training left in its buffer.
 *
 * Ids are decimal integers that grow across restarts: the first of a run
 * is the start time in microseconds since the epoch, then +1 per event.
 *
 * Locks: pub_mu -> hub mutex (the step buffer is flushed under the model's
 * pub_mu).  Wakes run after the hub mutex is released. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/formats/json_out.h"
#include "server/models/model_internal.h"

const char *const etd_event_type_names[] = {"step", "batch", "evaluation", "job", "nonfinite",
                                            "hyperparameters", "version", "created", "deleted",
                                            NULL};
_Static_assert(sizeof etd_event_type_names / sizeof etd_event_type_names[0] == ETD_EV_COUNT + 1,
               "one name per event type");

#define STEP_MAX 1000 /* [step, loss] entries in one step event */

typedef struct etd_event {
    atomic_int refs;
    uint64_t id;
    int type;
    size_t len;
    char json[];            /* its data: {"model":...,...} (the endpoint frames it) */
} etd_event;

struct etd_ring {
    etd_event **ev;         /* cap slots; the i-th event appended is in slot i % cap */
    size_t cap;
    uint64_t n;             /* events ever appended */
    uint64_t floor;         /* the ring holds every event with id > floor it was given */
    bool closed;            /* the model was deleted: readers end after what is left */
    etd_event_sub *subs;
};

struct etd_event_sub {
    atomic_int refs;
    etd_events *hub;
    etd_model *m;           /* a reference; NULL: every model */
    etd_ring *ring;
    uint64_t next;          /* ring position of the next event to read */
    unsigned types;
    void (*wake)(void *arg);
    void *wake_arg;
    void (*wake_free)(void *arg);
    bool waiting;           /* read found nothing: wake on the next event */
    bool reset;             /* tell the reader events were lost (once) */
    uint64_t reset_from;    /* the Last-Event-ID it gave */
    etd_event_sub *next_sub;
};

struct etd_events {
    pthread_mutex_t mu;
    uint64_t next_id;
    etd_ring all;
    size_t model_cap;
    double interval;
    pthread_t flusher;
    bool flusher_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stopping;
    etd_registry *reg;
    atomic_long readers;    /* subscriptions not yet freed (easytorch_event_readers) */
    atomic_llong dropped;   /* readers dropped for falling behind */
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void event_unref(etd_event *ev)
{
    if (ev && atomic_fetch_sub(&ev->refs, 1) == 1)
        free(ev);
}

static void sub_unref(etd_event_sub *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        atomic_fetch_sub(&s->hub->readers, 1);
        if (s->wake_free)
            s->wake_free(s->wake_arg);
        etd_model_unref(s->m);
        free(s);
    }
}

/* ---------------------------------------------------------------- rings (hub mutex held) */

static bool ring_init(etd_ring *r, size_t cap, uint64_t floor)
{
    memset(r, 0, sizeof *r);
    r->ev = calloc(cap, sizeof *r->ev);
    r->cap = cap;
    r->floor = floor;
    return r->ev != NULL;
}

static void ring_free(etd_ring *r)
{
    for (size_t i = 0; r->ev && i < r->cap; i++)
        event_unref(r->ev[i]);
    free(r->ev);
    r->ev = NULL;
}

static uint64_t ring_oldest(const etd_ring *r)
{
    return r->n > r->cap ? r->n - r->cap : 0;
}

static void ring_push(etd_ring *r, etd_event *ev)
{
    etd_event **slot = &r->ev[r->n % r->cap];
    if (*slot) {
        r->floor = (*slot)->id; /* evicted: the ring is complete only after it */
        event_unref(*slot);
    }
    atomic_fetch_add(&ev->refs, 1);
    *slot = ev;
    r->n++;
}

/* The ring position of the first event with id > last (binary search:
 * ids grow along a ring). */
static uint64_t ring_after(const etd_ring *r, uint64_t last)
{
    uint64_t lo = ring_oldest(r), hi = r->n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (r->ev[mid % r->cap]->id <= last)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Subscribers to wake after the hub mutex is released (referenced). */
typedef struct wake_list {
    etd_event_sub *local[32], **v;
    int n, cap;
} wake_list;

static void wake_add(wake_list *w, etd_event_sub *s)
{
    if (w->n == w->cap) {
        int cap = w->cap * 2;
        etd_event_sub **nv = malloc((size_t)cap * sizeof *nv);
        if (!nv)
            return; /* this one catches up at its next pull (at least every second) */
        memcpy(nv, w->v, (size_t)w->n * sizeof *nv);
        if (w->v != w->local)
            free(w->v);
        w->v = nv;
        w->cap = cap;
    }
    s->waiting = false;
    atomic_fetch_add(&s->refs, 1);
    w->v[w->n++] = s;
}

/* Subscribers of r waiting for an event of this type (all of them: type < 0). */
static void collect_waiters(etd_ring *r, int type, wake_list *w)
{
    for (etd_event_sub *s = r->subs; s; s = s->next_sub)
        if (s->waiting && (type < 0 || (s->types & 1u << type)))
            wake_add(w, s);
}

static void wake_all(wake_list *w)
{
    for (int i = 0; i < w->n; i++) {
        w->v[i]->wake(w->v[i]->wake_arg);
        sub_unref(w->v[i]);
    }
    if (w->v != w->local)
        free(w->v);
}

/* ---------------------------------------------------------------- the hub */

etd_events *etd_events_new(etd_registry *reg, size_t cap, double interval)
{
    etd_events *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->stop_mu, NULL);
    pthread_cond_init(&h->stop_cv, NULL);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    h->next_id = (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
    h->model_cap = cap / 4 > 64 ? cap / 4 : 64;
    h->interval = interval;
    h->reg = reg;
    if (!ring_init(&h->all, cap > 16 ? cap : 16, h->next_id - 1)) {
        free(h);
        return NULL;
    }
    return h;
}

void etd_events_free(etd_events *h)
{
    if (!h)
        return;
    etd_events_stop(h);
    ring_free(&h->all);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->stop_mu);
    pthread_cond_destroy(&h->stop_cv);
    free(h);
}

etd_ring *etd_events_model_ring(etd_events *h)
{
    etd_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_lock(&h->mu);
    bool ok = ring_init(r, h->model_cap, h->next_id - 1);
    pthread_mutex_unlock(&h->mu);
    if (!ok) {
        free(r);
        return NULL;
    }
    return r;
}

void etd_events_model_ring_free(etd_ring *r)
{
    if (!r)
        return;
    ring_free(r);
    free(r);
}

/* Publish an event: data is the JSON object's members after "model" (no
 * braces), e.g. "\"step\":3". */
static void publish(etd_events *h, etd_model *m, int type, const char *data, size_t dlen)
{
    if (!h)
        return;
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_puts(&b, "{\"model\":");
    etd_json_str(&b, m->name);
    if (dlen) {
        etd_buf_putc(&b, ',');
        etd_buf_putn(&b, data, dlen);
    }
    etd_buf_putc(&b, '}');
    if (b.oom) {
        etd_buf_free(&b);
        return;
    }
    etd_event *ev = malloc(sizeof *ev + b.len + 1);
    if (!ev) {
        etd_buf_free(&b);
        return;
    }
    atomic_init(&ev->refs, 1);
    ev->type = type;
    memcpy(ev->json, b.data, b.len);
    ev->len = b.len;
    ev->json[ev->len] = '\0';
    wake_list w = {.n = 0, .cap = 32};
    w.v = w.local;
    pthread_mutex_lock(&h->mu);
    ev->id = h->next_id++;
    ring_push(&h->all, ev);
    collect_waiters(&h->all, type, &w);
    if (m->ev_ring && !m->ev_ring->closed) {
        ring_push(m->ev_ring, ev);
        bool last = type == ETD_EV_DELETED; /* the model's readers end after this one */
        if (last)
            m->ev_ring->closed = true;
        collect_waiters(m->ev_ring, last ? -1 : type, &w);
    }
    pthread_mutex_unlock(&h->mu);
    event_unref(ev);
    etd_buf_free(&b);
    wake_all(&w);
}

void etd_events_publish(etd_model *m, int type, const char *data)
{
    publish(m->reg->events, m, type, data, data ? strlen(data) : 0);
}

/* ---------------------------------------------------------------- coalesced steps (pub_mu) */

/* The buffered steps of m as one event (pub_mu held). */
static void flush_steps_locked(etd_model *m)
{
    if (!m->ev_nsteps)
        return;
    etd_buf b;
    etd_buf_init(&b);
    etd_buf_puts(&b, "\"step\":");
    etd_json_i64(&b, m->ev_steps[m->ev_nsteps - 1].step);
    etd_buf_puts(&b, ",\"loss\":");
    etd_json_float(&b, m->ev_steps[m->ev_nsteps - 1].loss);
    etd_buf_puts(&b, ",\"lr\":");
    etd_json_double(&b, m->ev_lr);
    etd_buf_puts(&b, ",\"time\":");
    etd_json_double(&b, m->ev_steps[m->ev_nsteps - 1].time);
    if (m->ev_job) {
        etd_buf_puts(&b, ",\"job\":");
        etd_json_i64(&b, m->ev_job);
    }
    etd_buf_puts(&b, ",\"steps\":[");
    for (int i = 0; i < m->ev_nsteps; i++) {
        etd_buf_puts(&b, i ? ",[" : "[");
        etd_json_i64(&b, m->ev_steps[i].step);
        etd_buf_putc(&b, ',');
        etd_json_float(&b, m->ev_steps[i].loss);
        etd_buf_putc(&b, ']');
    }
    /* each step's wall time, as its history entry has it (parallel to steps:
     * the [step, loss] pairs stay pairs) */
    etd_buf_puts(&b, "],\"times\":[");
    for (int i = 0; i < m->ev_nsteps; i++) {
        if (i)
            etd_buf_putc(&b, ',');
        etd_json_double(&b, m->ev_steps[i].time);
    }
    etd_buf_putc(&b, ']');
    m->ev_nsteps = 0;
    m->ev_last = now();
    if (!b.oom)
        publish(m->reg->events, m, ETD_EV_STEP, b.data, b.len);
    etd_buf_free(&b);
}

void etd_events_step(etd_model *m, int64_t step, float loss, double lr, double time,
                     int64_t job)
{
    etd_events *h = m->reg->events;
    if (!h)
        return;
    pthread_mutex_lock(&m->pub_mu);
    if (m->ev_nsteps && m->ev_job != job) /* one event per source */
        flush_steps_locked(m);
    if (!m->ev_steps && !(m->ev_steps = malloc(STEP_MAX * sizeof *m->ev_steps))) {
        pthread_mutex_unlock(&m->pub_mu);
        return;
    }
    m->ev_steps[m->ev_nsteps].step = step;
    m->ev_steps[m->ev_nsteps].loss = loss;
    m->ev_steps[m->ev_nsteps].time = time;
    m->ev_nsteps++;
    m->ev_lr = lr;
    m->ev_job = job;
    /* after a quiet spell the first step goes out at once; then one event
     * per interval (the flusher sends what is left when steps stop) */
    if (h->interval <= 0 || m->ev_nsteps >= STEP_MAX || now() - m->ev_last >= h->interval)
        flush_steps_locked(m);
    pthread_mutex_unlock(&m->pub_mu);
}

void etd_events_flush(etd_model *m)
{
    pthread_mutex_lock(&m->pub_mu);
    flush_steps_locked(m);
    pthread_mutex_unlock(&m->pub_mu);
}

bool etd_events_due(etd_model *m, double *last)
{
    etd_events *h = m->reg->events;
    double t = now();
    if (!h || (h->interval > 0 && t - *last < h->interval))
        return false;
    *last = t;
    return true;
}

/* The flusher: steps a model buffered and then stopped taking. */
static void *flusher_main(void *arg)
{
    etd_events *h = arg;
    pthread_mutex_lock(&h->stop_mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = (long)(h->interval * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec += ns % 1000000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->stop_cv, &h->stop_mu, &ts);
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->stop_mu);
        int n;
        etd_model **v = etd_registry_models(h->reg, &n);
        double t = now();
        for (int i = 0; i < n; i++) {
            pthread_mutex_lock(&v[i]->pub_mu);
            if (v[i]->ev_nsteps && t - v[i]->ev_last >= h->interval)
                flush_steps_locked(v[i]);
            pthread_mutex_unlock(&v[i]->pub_mu);
            etd_model_unref(v[i]);
        }
        free(v);
        pthread_mutex_lock(&h->stop_mu);
    }
    pthread_mutex_unlock(&h->stop_mu);
    return NULL;
}

void etd_events_start(etd_events *h)
{
    if (h && h->interval > 0 && pthread_create(&h->flusher, NULL, flusher_main, h) == 0)
        h->flusher_started = true;
}

void etd_events_stop(etd_events *h)
{
    if (!h || !h->flusher_started)
        return;
    pthread_mutex_lock(&h->stop_mu);
    h->stopping = true;
    pthread_cond_signal(&h->stop_cv);
    pthread_mutex_unlock(&h->stop_mu);
    pthread_join(h->flusher, NULL);
    h->flusher_started = false;
}

/* ---------------------------------------------------------------- subscribers */

etd_rc etd_events_subscribe(etd_registry *reg, etd_model *m, const etd_sub_opts *o,
                            etd_event_sub **out, etd_err *e)
{
    etd_events *h = reg->events;
    *out = NULL;
    if (!h)
        return etd_fail(e, ETD_EINTERNAL, "event streams are off");
    if (m && !m->ev_ring)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    etd_event_sub *s = calloc(1, sizeof *s);
    if (!s)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    atomic_init(&s->refs, 1);
    s->hub = h;
    atomic_fetch_add(&h->readers, 1);
    s->types = o->types ? o->types : (1u << ETD_EV_COUNT) - 1;
    s->wake = o->wake;
    s->wake_arg = o->wake_arg;
    s->wake_free = o->wake_free;
    if (m) {
        atomic_fetch_add(&m->refs, 1);
        s->m = m;
    }
    pthread_mutex_lock(&h->mu);
    etd_ring *r = m ? m->ev_ring : &h->all;
    s->ring = r;
    if (!o->resume) {
        s->next = r->n; /* what happens from now on */
    } else if (o->last_id >= r->floor && o->last_id < h->next_id) {
        s->next = ring_after(r, o->last_id); /* nothing was lost */
    } else {
        /* older than the ring remembers (or from another run): what is kept */
        s->next = o->last_id >= h->next_id ? r->n : ring_oldest(r);
        s->reset = true;
        s->reset_from = o->last_id;
    }
    s->next_sub = r->subs;
    r->subs = s;
    pthread_mutex_unlock(&h->mu);
    *out = s;
    return ETD_OK;
}

void etd_events_unsubscribe(etd_event_sub *s)
{
    if (!s)
        return;
    etd_events *h = s->hub;
    pthread_mutex_lock(&h->mu);
    for (etd_event_sub **p = &s->ring->subs; *p; p = &(*p)->next_sub)
        if (*p == s) {
            *p = s->next_sub;
            break;
        }
    s->ring = NULL;
    pthread_mutex_unlock(&h->mu);
    sub_unref(s);
}

etd_ev_read etd_events_read(etd_event_sub *s, etd_event_fn fn, void *arg, size_t max)
{
    etd_events *h = s->hub;
    etd_event *take[64];
    int nt = 0;
    bool lost = false, ended = false;
    uint64_t missed = 0;
    pthread_mutex_lock(&h->mu);
    etd_ring *r = s->ring;
    if (s->next < ring_oldest(r)) {
        lost = true; /* a whole ring behind */
        missed = ring_oldest(r) - s->next;
    } else {
        size_t bytes = 0;
        while (s->next < r->n && nt < 64 && bytes < max) {
            etd_event *ev = r->ev[s->next % r->cap];
            s->next++;
            if (!(s->types & 1u << ev->type))
                continue;
            atomic_fetch_add(&ev->refs, 1);
            take[nt++] = ev;
            bytes += ev->len;
        }
        if (s->next == r->n) {
            ended = r->closed;
            s->waiting = !ended && nt == 0;
        }
    }
    bool reset = s->reset;
    s->reset = false;
    uint64_t reset_from = s->reset_from, floor = r->floor;
    pthread_mutex_unlock(&h->mu);
    if (reset || lost) { /* no id: the reader's Last-Event-ID stays what it was */
        char j[512];
        if (reset) {
            snprintf(j, sizeof j, "{\"last_event_id\":%llu,\"reason\":\"events after it are no "
                     "longer buffered (or are from an earlier run of the daemon): reload the "
                     "state (GET /v1/models, .../loss) and go on from here\","
                     "\"complete_after\":%llu}", (unsigned long long)reset_from,
                     (unsigned long long)floor);
            fn(arg, 0, "reset", j, strlen(j));
        }
        if (lost) {
            atomic_fetch_add(&h->dropped, 1);
            snprintf(j, sizeof j, "{\"reason\":\"this reader fell %llu events behind the "
                     "buffer (--event-buffer) and was dropped; reconnect with Last-Event-ID\"}",
                     (unsigned long long)missed);
            fn(arg, 0, "dropped", j, strlen(j));
            return ETD_EV_END;
        }
    }
    for (int i = 0; i < nt; i++) {
        fn(arg, take[i]->id, etd_event_type_names[take[i]->type], take[i]->json, take[i]->len);
        event_unref(take[i]);
    }
    if (ended)
        return ETD_EV_END;
    return nt || reset ? ETD_EV_MORE : ETD_EV_WAIT;
}

void etd_events_stats(etd_registry *reg, long *readers, long long *dropped)
{
    etd_events *h = reg->events;
    *readers = h ? atomic_load(&h->readers) : 0;
    *dropped = h ? atomic_load(&h->dropped) : 0;
}

uint64_t etd_events_last_id(etd_registry *reg)
{
    etd_events *h = reg->events;
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    uint64_t id = h->next_id - 1;
    pthread_mutex_unlock(&h->mu);
    return id;
}
