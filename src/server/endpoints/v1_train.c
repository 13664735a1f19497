/* v1_train.c - training and inference on /v1/models/{name}: predict,
 * batches, step, train, gradients, loss history, checkpoint (docs/API.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

static const char *const xy_keys[] = {"inputs", "targets", NULL};

/* A forward pass of at most --inline-macs multiply-adds (an upper bound
 * from the body's size: a JSON number takes at least two bytes with its
 * separator) takes a few tens of microseconds: cheaper on the I/O thread
 * than handed to a worker (docs/server.md, "Execution model", has the
 * measurement). */
/* Is the body on the wire the body the handler reads (no Content-Encoding:
 * a small gzip body may inflate to a large one)? */
static bool plain_body(const etd_request *rq)
{
    for (int i = 0; i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, "Content-Encoding") == 0 &&
            strcasecmp(rq->headers[i].value ? rq->headers[i].value : "", "identity") != 0)
            return false;
    return true;
}

bool etd_cheap_forward(etd_model *m, const etd_request *rq)
{
    double max = rq->host->inline_macs;
    if (max <= 0 || !plain_body(rq))
        return false;
    if (etd_model_batching(m)) /* only the body is read here: the batch runs on a worker */
        return rq->body_len <= 256 * 1024;
    etd_model_info in;
    etd_model_info_get(m, &in);
    if (in.in_features <= 0)
        return false;
    double rows = (double)rq->body_len / 2.0 / (double)in.in_features;
    return rows * (double)in.param_count <= max;
}

/* The first key (kl bytes) in [p, end), or NULL. */
static const char *find(const char *p, const char *end, const char *key, size_t kl)
{
    while ((size_t)(end - p) >= kl && (p = memchr(p, key[0], (size_t)(end - p) - kl + 1)))
        if (!memcmp(p, key, kl))
            return p;
        else
            p++;
    return NULL;
}

/* The number after "key": in a JSON body b of len bytes (not NUL-terminated:
 * every read stays below b + len; with no NUL and no backslash in it, so no
 * key is spelt with escapes or hidden after a NUL): 1 with it in *v, 0 when
 * the key is absent, -1 when unsure (twice, or not followed by ':' and a
 * number -- the handler then decides, on a worker). */
static int scan_number(const char *b, size_t len, const char *key, double *v)
{
    const char *p = b, *end = b + len;
    size_t kl = strlen(key);
    int found = 0;
    while ((p = find(p, end, key, kl)) != NULL) {
        if (found++)
            return -1;
        p += kl;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p == end || *p++ != ':')
            return -1;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        char num[40]; /* strtod reads a terminated copy, never past the body */
        size_t n = (size_t)(end - p) < sizeof num - 1 ? (size_t)(end - p) : sizeof num - 1;
        memcpy(num, p, n);
        num[n] = '\0';
        char *e;
        *v = strtod(num, &e);
        if (e == num || !isfinite(*v) || (size_t)(e - num) == sizeof num - 1)
            return -1; /* not a number, or one longer than the copy: unsure */
        p += e - num;
    }
    return found;
}

/* A train call of at most --inline-train-macs multiply-adds and
 * ETD_INLINE_TRAIN_STEPS optimizer steps: a few tens of microseconds, less
 * than handing it to a worker costs (two thread switches and the
 * connection's suspend/resume; docs/server.md "Execution model" has the
 * measurement).  Upper bounds again: rows from the body's size as for a
 * prediction, 3 multiply-adds per parameter and row (forward, and backward
 * for the input and the weights), epochs and batch_size read from the body.
 * Only a plain JSON body (epochs are read from its bytes), and never when a
 * call waits for more than the model: a save per change (--sync always) or
 * the cluster's order of changes. */
bool etd_cheap_train(etd_model *m, const etd_request *rq)
{
    double max = rq->host->inline_train_macs;
    if (max <= 0 || rq->app->order || etd_model_saves_each_change(m) || !plain_body(rq) ||
        etd_st_sniff(rq->body, rq->body_len) || memchr(rq->body, '\\', rq->body_len) ||
        memchr(rq->body, '\0', rq->body_len))
        return false;
    for (int i = 0; i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, "Content-Type") == 0 && rq->headers[i].value &&
            strncasecmp(rq->headers[i].value, "application/json", 16) != 0)
            return false;
    etd_model_info in;
    etd_model_info_get(m, &in);
    if (in.in_features <= 0)
        return false;
    double epochs = 1, bs = 0;
    if (scan_number(rq->body, rq->body_len, "\"epochs\"", &epochs) < 0 ||
        scan_number(rq->body, rq->body_len, "\"batch_size\"", &bs) < 0 || epochs < 1)
        return false;
    double rows = (double)rq->body_len / 2.0 / (double)in.in_features;
    double steps = epochs * (bs >= 1 && bs < rows ? ceil(rows / bs) : 1.0);
    return steps <= ETD_INLINE_TRAIN_STEPS && epochs * 3.0 * rows * (double)in.param_count <= max;
}

void ep_predict_answer(etd_call *c, etd_model *m, bool bin, et_tensor *const *ys, int n)
{
    etd_model_io io;
    etd_model_io_get(m, &io);
    bool named = io.noutputs > 1;
    if (bin) {
        static const char *const one[] = {"outputs"};
        ep_reply_st(c, named ? io.outputs : one, ys, n, NULL);
        return;
    }
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, named ? "{\"outputs\":{" : "{\"outputs\":");
    for (int i = 0; i < n; i++) {
        if (named) {
            etd_buf_puts(out, i ? "," : "");
            etd_json_str(out, io.outputs[i]);
            etd_buf_putc(out, ':');
        }
        etd_json_tensor(out, ys[i]);
    }
    if (named)
        etd_buf_putc(out, '}');
    etd_model_info in;
    etd_model_info_get(m, &in);
    if (in.sum.nf.diverged) /* say why the outputs are null */
        ep_write_status(out, &in.sum);
    etd_buf_putc(out, '}');
}

/* A batching model's prediction waits for its dynamic batch
 * (models/batcher.c) without a thread; the answer is written when the
 * batch has run, with the rows this request gets alone.  version > 0: a
 * version's predict (its answer says which). */
typedef struct predict_later {
    ep_later l;
    etd_model *m;               /* a reference of its own */
    bool bin;
    int64_t version;
} predict_later;

static void predict_done(void *arg, etd_rc rc, et_tensor **ys, int ny, const char *msg)
{
    predict_later *p = arg;
    etd_call c = ep_later_call(&p->l);
    if (rc == ETD_OK) {
        ep_predict_answer(&c, p->m, p->bin, ys, ny);
        if (p->version > 0) {
            c.rs->body.len--; /* reopen the object */
            etd_buf_printf(&c.rs->body, ",\"version\":%lld}", (long long)p->version);
        }
    } else {
        etd_response_error(c.rs, etd_rc_status(rc), "%s", msg ? msg : "batch failed");
    }
    for (int i = 0; i < ny; i++)
        et_tensor_free(ys[i]);
    etd_model_unref(p->m);
    ep_later_done(&p->l);
    free(p);
}

bool ep_predict_batched(etd_call *c, bool bin, int64_t version)
{
    if (etd_model_check_inputs(c->m, &c->x, &c->e) != ETD_OK) {
        ep_ok(c, c->e.rc);
        return true;
    }
    predict_later *p = calloc(1, sizeof *p);
    if (!p || !ep_defer(c, &p->l)) {
        free(p);
        return false;
    }
    p->bin = bin;
    p->version = version;
    p->m = etd_model_ref(c->m);
    etd_err e = {0};
    if (etd_model_forward_batched(c->m, &c->x, predict_done, p, &e) != ETD_OK)
        predict_done(p, e.rc, NULL, 0, e.msg);
    return true;
}

bool ep_predict_now(etd_call *c, bool bin)
{
    et_tensor *ys[ETD_MAX_IO];
    int n = 0;
    if (!ep_ok(c, etd_model_forward_all(c->m, &c->x, ys, &n, &c->e)))
        return false;
    etd_array_free(&c->x);
    ep_predict_answer(c, c->m, bin, ys, n);
    for (int i = 0; i < n; i++)
        et_tensor_free(ys[i]);
    return true;
}

void etd_h_predict(etd_call *c)
{
    static const char *const keys[] = {"inputs", NULL};
    bool bin;
    int64_t version;
    if (!ep_wants_binary(c, &bin) || !ep_inputs(c, keys, false) ||
        !ep_serving(c, &version)) /* "serving": live or N */
        return;
    etd_json_doc_free(&c->doc); /* free the tree before the forward pass: it can be large */
    etd_st_free(&c->st);
    if (etd_model_batching(c->m) && ep_predict_batched(c, bin, 0))
        return;
    ep_predict_now(c, bin);
}

void etd_h_batches(etd_call *c)
{
    etd_batch_result r;
    if (!ep_inputs(c, xy_keys, true))
        return;
    etd_json_doc_free(&c->doc);
    etd_st_free(&c->st);
    if (!ep_ok(c, etd_model_push_batch(c->m, &c->x, &c->y, &r, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"loss\":");
    etd_json_float(&c->rs->body, r.loss);
    etd_buf_puts(&c->rs->body, ",\"pending_batches\":");
    etd_json_i64(&c->rs->body, r.pending);
    ep_write_skipped(&c->rs->body, r.skipped, r.why);
    etd_buf_putc(&c->rs->body, '}');
}

void etd_h_step(etd_call *c)
{
    static const char *const none[] = {NULL};
    if (!ep_model(c))
        return;
    /* an empty body or {} is fine */
    if (c->rq->body_len > 0 && (!ep_json(c, NULL) || !ep_keys(c, c->doc.root, none)))
        return;
    etd_step_result r;
    etd_rc rc = etd_model_step(c->m, &r, &c->e);
    if (rc == ETD_ESTATE)
        etd_err_append(&c->e, " (POST /v1/models/%s/batches first)", c->rq->name);
    if (!ep_ok(c, rc))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, r.step);
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, r.lr);
    etd_buf_puts(out, ",\"next_lr\":");
    etd_json_double(out, r.next_lr);
    etd_buf_puts(out, ",\"loss\":");
    etd_json_float(out, r.loss);
    ep_write_skipped(out, r.skipped, r.why);
    etd_buf_putc(out, '}');
}

/* A train call stops between two steps when its client has gone (or the
 * server is stopping): the model keeps the steps done.  Checked at most
 * every 20 ms, so a step of a few microseconds pays no system call. */
typedef struct train_watch {
    const etd_request *rq;
    struct timespec last;
    bool gone;
} train_watch;

static bool still_wanted(void *arg, int64_t done, int64_t total)
{
    train_watch *w = arg;
    (void)done;
    (void)total;
    const etd_host *h = w->rq->host;
    if (!h->gone)
        return true;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - w->last.tv_sec) + (double)(now.tv_nsec - w->last.tv_nsec) / 1e9;
    if (dt < 0.02)
        return true;
    w->last = now;
    w->gone = h->gone(h->xarg);
    return !w->gone;
}

void etd_h_train(etd_call *c)
{
    static const char *const keys[] = {"inputs", "targets", "epochs", "batch_size", "shuffle",
                                       NULL};
    etd_train_opts o = {0};
    if (!ep_inputs(c, keys, true) || !ep_pos_int(c, "epochs", 1, &o.epochs) ||
        !ep_pos_int(c, "batch_size", 0, &o.batch_size) || !ep_bool(c, "shuffle", false, &o.shuffle))
        return;
    etd_json_doc_free(&c->doc);
    etd_st_free(&c->st);
    train_watch w = {c->rq, {0, 0}, false};
    clock_gettime(CLOCK_MONOTONIC, &w.last);
    o.progress = still_wanted;
    o.progress_arg = &w;
    etd_train_result r;
    if (!ep_ok(c, etd_model_train(c->m, &c->x, &c->y, &o, &r, &c->e)))
        return;
    if (r.stopped == ETD_TRAIN_CANCELLED) {
        /* nobody is listening (499, nginx's "client closed request"), or the
         * server is shutting down */
        ep_error(c, c->rq->host->draining ? 503 : 499,
                 "train stopped after %lld of %lld steps (%s); the model keeps them (step %lld)",
                 (long long)r.n, (long long)r.total,
                 c->rq->host->draining ? "the server is shutting down" : "the client went away",
                 (long long)r.step);
        etd_train_result_free(&r);
        return;
    }
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, r.step);
    etd_buf_puts(out, ",\"loss\":");
    if (r.n)
        etd_json_float(out, r.losses[r.n - 1]);
    else
        etd_buf_puts(out, "null");
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, r.lr);
    etd_buf_puts(out, ",\"losses\":");
    etd_json_floats(out, r.losses, r.n);
    if (r.stopped == ETD_TRAIN_TIME_LIMIT) {
        etd_buf_printf(out, ",\"steps\":%lld,\"requested_steps\":%lld,\"stopped\":"
                       "\"max_train_seconds\"", (long long)r.n, (long long)r.total);
    }
    if (r.skipped) {
        etd_buf_puts(out, ",\"skipped_steps\":");
        etd_json_i64(out, r.skipped);
    }
    ep_write_skipped(out, r.skipped > 0, r.why);
    etd_buf_putc(out, '}');
    etd_train_result_free(&r);
}

void etd_h_grad_get(etd_call *c)
{
    etd_tensors g;
    int64_t pending;
    bool bin;
    if (!ep_wants_binary(c, &bin) || !ep_model(c) ||
        !ep_ok(c, etd_model_gradients(c->m, &g, &pending, &c->e)))
        return;
    if (bin) { /* named as the parameters (a state_dict of gradients) */
        char p[32];
        snprintf(p, sizeof p, "%lld", (long long)pending);
        const char *const meta[] = {"pending_batches", p, NULL};
        ep_reply_st(c, g.names, g.t, g.n, meta);
        etd_tensors_free(&g);
        return;
    }
    etd_buf_puts(&c->rs->body, "{\"gradients\":");
    ep_write_tensors(&c->rs->body, &g);
    etd_buf_puts(&c->rs->body, ",\"pending_batches\":");
    etd_json_i64(&c->rs->body, pending);
    etd_buf_putc(&c->rs->body, '}');
    etd_tensors_free(&g);
}

/* The probe's answer as safetensors: "input_gradient" and "gradients.<name>"
 * (the JSON answer's paths), the loss in the metadata. */
static void probe_st(etd_call *c, const etd_probe_result *r)
{
    int n = r->grads.n + 1;
    const char **names = calloc((size_t)n, sizeof *names);
    char **owned = calloc((size_t)n, sizeof *owned);
    et_tensor **t = calloc((size_t)n, sizeof *t);
    bool ok = names && owned && t;
    for (int i = 0; ok && i < r->grads.n; i++) {
        size_t len = strlen(r->grads.names[i]) + 11;
        ok = (owned[i] = malloc(len)) != NULL;
        if (ok)
            snprintf(owned[i], len, "gradients.%s", r->grads.names[i]);
        names[i] = owned[i];
        t[i] = r->grads.t[i];
    }
    if (ok) {
        names[n - 1] = "input_gradient";
        t[n - 1] = r->input_grad;
        char loss[40];
        etd_fmt_float(loss, r->loss);
        const char *const meta[] = {"loss", loss, NULL};
        ep_reply_st(c, names, t, n, meta);
    } else {
        ep_error(c, 500, "out of memory");
    }
    for (int i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(names);
    free(t);
}

void etd_h_grad_post(etd_call *c)
{
    etd_probe_result r;
    bool bin;
    if (!ep_wants_binary(c, &bin) || !ep_inputs(c, xy_keys, true))
        return;
    etd_json_doc_free(&c->doc);
    etd_st_free(&c->st);
    if (!ep_ok(c, etd_model_probe(c->m, &c->x, &c->y, &r, &c->e)))
        return;
    if (bin) {
        probe_st(c, &r);
        etd_probe_result_free(&r);
        return;
    }
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"loss\":");
    etd_json_float(out, r.loss);
    etd_buf_puts(out, ",\"gradients\":");
    ep_write_tensors(out, &r.grads);
    etd_buf_puts(out, ",\"input_gradient\":");
    etd_json_tensor(out, r.input_grad);
    etd_buf_putc(out, '}');
    etd_probe_result_free(&r);
}

void ep_write_validation_entry(etd_buf *out, const etd_val_entry *v)
{
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, v->step);
    etd_buf_puts(out, ",\"job\":");
    etd_json_i64(out, v->job);
    etd_buf_puts(out, ",\"metrics\":");
    ep_write_metric_values(out, v->metrics, v->value);
    if (v->metrics & 1u << ETD_M_TOPK) {
        etd_buf_puts(out, ",\"k\":");
        etd_json_i64(out, v->k);
    }
    if (v->nlosses > 0) { /* a loss list's terms, in its order (as evaluate's "losses") */
        etd_buf_puts(out, ",\"losses\":");
        etd_json_floats(out, v->losses, v->nlosses);
    }
    etd_buf_putc(out, '}');
}

/* `,"key":[[step, value], ...]`: a history series beside its steps (null
 * where a value is not known, as etd_json_double writes NaN). */
static void step_series(etd_buf *out, const char *key, const int64_t *steps, const double *v,
                        size_t n)
{
    etd_buf_printf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        etd_buf_puts(out, i ? ",[" : "[");
        etd_json_i64(out, steps[i]);
        etd_buf_putc(out, ',');
        etd_json_double(out, v[i]);
        etd_buf_putc(out, ']');
    }
    etd_buf_putc(out, ']');
}

void etd_h_loss(etd_call *c)
{
    int64_t since = -1;
    const char *s = ep_query(c, "since");
    if (s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end) {
            ep_error(c, 400, "since: expected an integer step");
            return;
        }
        since = v;
    }
    /* series: a comma-separated list of the training loss, the validation
     * history, the lr of each step, the markers, the wall time of each step;
     * "all" (default): every one */
    enum { S_TRAIN = 1, S_VAL = 2, S_LR = 4, S_MARKERS = 8, S_TIME = 16, S_ALL = 31 };
    static const char *const names[] = {"train", "validation", "lr", "markers", "time", "all",
                                        NULL};
    unsigned want = S_ALL;
    const char *series = ep_query(c, "series");
    if (series) {
        want = 0;
        for (const char *p = series;;) {
            size_t n = strcspn(p, ",");
            int k = 0;
            while (names[k] && (strlen(names[k]) != n || strncmp(names[k], p, n)))
                k++;
            if (!names[k]) {
                char one[64];
                snprintf(one, sizeof one, "%.*s", (int)(n < 63 ? n : 63), p);
                etd_fail(&c->e, ETD_EINVAL, "series: unknown series \"%s\" (expected a "
                         "comma-separated list of train, validation, lr, markers, time, or all)",
                         one);
                etd_err_suggest(&c->e, one, names);
                ep_ok(c, ETD_EINVAL);
                return;
            }
            want |= k == 5 ? S_ALL : 1u << k;
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    bool train = want & S_TRAIN, val = want & S_VAL, lrs = want & S_LR, mks = want & S_MARKERS;
    bool times = want & S_TIME;
    etd_history h = {0};
    etd_val_history vh = {0};
    if (!ep_model(c) || ((train || lrs || mks || times) &&
                         !ep_ok(c, etd_model_loss_history(c->m, since, &h, &c->e))))
        return;
    if (val && !ep_ok(c, etd_model_validation_history(c->m, since, 0, &vh, &c->e))) {
        etd_history_free(&h);
        return;
    }
    etd_model_info in;
    etd_model_info_get(c->m, &in);
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, train || lrs || mks || times ? h.step : in.sum.step);
    if (train) {
        etd_buf_puts(out, ",\"history\":[");
        for (size_t i = 0; i < h.n; i++) {
            etd_buf_puts(out, i ? ",[" : "[");
            etd_json_i64(out, h.steps[i]);
            etd_buf_putc(out, ',');
            etd_json_float(out, h.losses[i]);
            etd_buf_putc(out, ']');
        }
        etd_buf_putc(out, ']');
    }
    if (val) {
        etd_buf_puts(out, ",\"validation\":[");
        for (size_t i = 0; i < vh.n; i++) {
            if (i)
                etd_buf_putc(out, ',');
            ep_write_validation_entry(out, &vh.v[i]);
        }
        etd_buf_putc(out, ']');
    }
    if (lrs) { /* [step, lr]: the lr each step used (null where not known) */
        step_series(out, "lr", h.steps, h.lrs, h.n);
    }
    if (times) { /* [step, Unix seconds]: when each step of the history was taken */
        step_series(out, "time", h.steps, h.times, h.n);
    }
    if (mks) {
        etd_buf_puts(out, ",\"markers\":[");
        for (size_t i = 0; i < h.nmarkers; i++) {
            if (i)
                etd_buf_putc(out, ',');
            ep_write_marker(out, &h.markers[i]);
        }
        etd_buf_putc(out, ']');
    }
    ep_write_status(out, &in.sum);
    etd_buf_putc(out, '}');
    etd_history_free(&h);
    etd_val_history_free(&vh);
}

void etd_h_checkpoint(etd_call *c)
{
    int64_t step;
    if (!ep_model(c) || !ep_ok(c, etd_model_checkpoint(c->m, &step, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"saved\":true,\"step\":");
    etd_json_i64(&c->rs->body, step);
    etd_buf_putc(&c->rs->body, '}');
}
