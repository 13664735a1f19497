/* ops.c - the operational endpoints: /healthz, /readyz, /metrics. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

void etd_h_healthz(etd_call *c)
{
    etd_buf_puts(&c->rs->body, "{\"status\":\"ok\"}");
}

void etd_h_readyz(etd_call *c)
{
    if (c->rq->host->draining)
        ep_error(c, 503, "not ready: draining (shutting down)");
    else if (!c->rq->host->ready)
        ep_error(c, 503, "not ready: loading persisted models");
    else
        etd_buf_printf(&c->rs->body, "{\"status\":\"ready\",\"models\":%d}",
                       etd_registry_count(c->rq->app->reg));
}

/* Dynamic batching (models with "batching"): requests waiting for a batch,
 * and rows per forward pass (models/batcher.c; its mutex is never held
 * during a forward). */
static void batch_metrics(const etd_model_list *l, etd_buf *out)
{
    etd_batch_stats *st = calloc((size_t)(l->n > 0 ? l->n : 1), sizeof *st);
    if (!st) {
        out->oom = true;
        return;
    }
    bool any = false;
    for (int i = 0; i < l->n; i++) {
        etd_model_batch_stats(l->models[i], &st[i]);
        any = any || st[i].enabled;
    }
    if (!any) {
        free(st);
        return;
    }
    etd_buf_puts(out, "# HELP easytorch_batch_queue_depth Requests waiting for the model's next "
                 "dynamic batch.\n# TYPE easytorch_batch_queue_depth gauge\n");
    for (int i = 0; i < l->n; i++)
        if (st[i].enabled)
            etd_buf_printf(out, "easytorch_batch_queue_depth{model=\"%s\"} %lld\n",
                           etd_model_name(l->models[i]), (long long)st[i].queued_requests);
    etd_buf_puts(out, "# HELP easytorch_batch_size Rows per forward pass of a dynamic batch.\n"
                 "# TYPE easytorch_batch_size histogram\n");
    for (int i = 0; i < l->n; i++) {
        if (!st[i].enabled)
            continue;
        const char *name = etd_model_name(l->models[i]);
        uint64_t cum = 0;
        for (int b = 0; b < ETD_BATCH_BUCKETS; b++) {
            cum += st[i].hist[b];
            if (etd_batch_bucket_le[b] == INT64_MAX)
                etd_buf_printf(out, "easytorch_batch_size_bucket{model=\"%s\",le=\"+Inf\"} %llu\n",
                               name, (unsigned long long)cum);
            else
                etd_buf_printf(out, "easytorch_batch_size_bucket{model=\"%s\",le=\"%lld\"} %llu\n",
                               name, (long long)etd_batch_bucket_le[b], (unsigned long long)cum);
        }
        etd_buf_printf(out, "easytorch_batch_size_sum{model=\"%s\"} %llu\n"
                       "easytorch_batch_size_count{model=\"%s\"} %llu\n", name,
                       (unsigned long long)st[i].rows, name, (unsigned long long)st[i].batches);
    }
    etd_buf_puts(out, "# HELP easytorch_batch_requests_total Requests answered from dynamic "
                 "batches.\n# TYPE easytorch_batch_requests_total counter\n");
    for (int i = 0; i < l->n; i++)
        if (st[i].enabled)
            etd_buf_printf(out, "easytorch_batch_requests_total{model=\"%s\"} %llu\n",
                           etd_model_name(l->models[i]), (unsigned long long)st[i].requests);
    free(st);
}

/* Per-model gauges and counters from the published summaries (never waits
 * for a training call). */
static void model_metrics(etd_call *c, etd_buf *out)
{
    etd_model_list l;
    if (etd_registry_list(c->rq->app->reg, &l, &c->e) != ETD_OK) {
        out->oom = true;
        return;
    }
    etd_buf_printf(out, "# HELP easytorch_models Models hosted.\n# TYPE easytorch_models gauge\n"
                   "easytorch_models %d\n", l.n);
    long readers;
    long long dropped;
    etd_events_stats(c->rq->app->reg, &readers, &dropped);
    etd_buf_printf(out, "# HELP easytorch_event_readers Event-stream readers connected.\n"
                   "# TYPE easytorch_event_readers gauge\neasytorch_event_readers %ld\n"
                   "# HELP easytorch_event_readers_dropped_total Event-stream readers dropped "
                   "for falling a whole --event-buffer behind.\n"
                   "# TYPE easytorch_event_readers_dropped_total counter\n"
                   "easytorch_event_readers_dropped_total %lld\n", readers, dropped);
    etd_buf_puts(out, "# HELP easytorch_optimizer_steps_total Optimizer steps taken per model.\n"
                 "# TYPE easytorch_optimizer_steps_total counter\n");
    for (int i = 0; i < l.n; i++)
        etd_buf_printf(out, "easytorch_optimizer_steps_total{model=\"%s\"} %lld\n",
                       etd_model_name(l.models[i]), (long long)l.sum[i].step);
    etd_buf_puts(out, "# HELP easytorch_last_loss Last training loss per model.\n"
                 "# TYPE easytorch_last_loss gauge\n");
    for (int i = 0; i < l.n; i++) {
        if (!l.sum[i].has_loss)
            continue;
        float v = l.sum[i].loss;
        char num[40];
        if (isfinite(v))
            etd_fmt_float(num, v);
        else /* Prometheus spells these out; JSON has only null */
            snprintf(num, sizeof num, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        etd_buf_printf(out, "easytorch_last_loss{model=\"%s\"} %s\n", etd_model_name(l.models[i]),
                       num);
    }
    etd_buf_puts(out, "# HELP easytorch_pending_batches Batches accumulated since the last step.\n"
                 "# TYPE easytorch_pending_batches gauge\n");
    for (int i = 0; i < l.n; i++)
        etd_buf_printf(out, "easytorch_pending_batches{model=\"%s\"} %lld\n",
                       etd_model_name(l.models[i]), (long long)l.sum[i].pending);
    batch_metrics(&l, out);
    ep_version_metrics(out, l.models, l.n);
    etd_model_list_free(&l);
}

void etd_h_metrics(etd_call *c)
{
    etd_buf *out = &c->rs->body;
    etd_buf_printf(out, "# HELP easytorch_ready 1 when the daemon serves models.\n"
                   "# TYPE easytorch_ready gauge\neasytorch_ready %d\n",
                   c->rq->host->ready && !c->rq->host->draining);
    model_metrics(c, out);
    if (c->rq->host->http_metrics)
        c->rq->host->http_metrics(c->rq->host->arg, out);
    if (c->rq->app->metrics)
        c->rq->app->metrics(c->rq->app->metrics_arg, out);
    c->rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
