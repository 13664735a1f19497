/* v1_versions.c - /v1/models/{name}/versions[/{version}[/predict]] and
 * /rollback: freeze, list, describe, delete and serve versions, roll the
 * live model back (docs/API.md "Versions"). */
#include <inttypes.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"
#include "server/models/versions.h"

#define MAX_REMOVED 64

static void write_version(etd_buf *out, const char *model, const etd_version_info *v)
{
    etd_buf_puts(out, "{\"model\":");
    etd_json_str(out, model);
    etd_buf_puts(out, ",\"version\":");
    etd_json_i64(out, v->version);
    etd_buf_puts(out, ",\"step\":");
    etd_json_i64(out, v->step);
    ep_write_loss(out, v->has_loss, v->loss);
    etd_buf_printf(out, ",\"created\":%.3f,\"label\":", v->created);
    if (v->label[0])
        etd_json_str(out, v->label);
    else
        etd_buf_puts(out, "null");
    etd_buf_puts(out, ",\"size\":");
    etd_json_i64(out, v->size);
    etd_buf_puts(out, v->serving ? ",\"serving\":true" : ",\"serving\":false");
    /* the metrics measured on these weights: by a job at the freeze, or
     * by POST .../versions/N/evaluate */
    etd_buf_puts(out, ",\"validation\":");
    if (!v->has_val) {
        etd_buf_puts(out, "null}");
        return;
    }
    const etd_val_entry *m = &v->val;
    etd_buf_puts(out, m->job > 0 ? "{\"source\":\"job\",\"job\":" : "{\"source\":\"evaluate\"");
    if (m->job > 0)
        etd_json_i64(out, m->job);
    etd_buf_puts(out, ",\"step\":");
    etd_json_i64(out, m->step);
    if (m->job <= 0) {
        etd_buf_puts(out, ",\"rows\":");
        etd_json_i64(out, v->val_rows);
        etd_buf_printf(out, ",\"evaluated\":%.3f", v->val_time);
    }
    etd_buf_puts(out, ",\"metrics\":");
    ep_write_metric_values(out, m->metrics, m->value);
    if (m->metrics & 1u << ETD_M_TOPK) {
        etd_buf_puts(out, ",\"k\":");
        etd_json_i64(out, m->k);
    }
    if (m->nlosses > 0) { /* a loss list's terms, in its order */
        etd_buf_puts(out, ",\"losses\":");
        etd_json_floats(out, m->losses, m->nlosses);
    }
    etd_buf_puts(out, "}}");
}

/* "serving": "live" or N */
void ep_write_serving(etd_buf *out, int64_t serving)
{
    etd_buf_puts(out, ",\"serving\":");
    if (serving)
        etd_json_i64(out, serving);
    else
        etd_buf_puts(out, "\"live\"");
}

bool ep_serving(etd_call *c, int64_t *version)
{
    etd_model *s;
    if (!ep_ok(c, etd_model_serving_model(c->m, &s, version, &c->e)))
        return false;
    etd_model_unref(c->m);
    c->m = s;
    return true;
}

/* The {version} capture as a number (400 naming it). */
static bool ep_version(etd_call *c, int64_t *n)
{
    return ep_ok(c, etd_version_parse(c->rq->version, n, &c->e));
}

void etd_h_versions_post(etd_call *c)
{
    static const char *const keys[] = {"label", "serve", NULL};
    if (!ep_model(c))
        return;
    const char *label = NULL;
    bool serve = false;
    if (c->rq->body_len > 0) {
        if (!ep_json(c, NULL) || !ep_keys(c, c->doc.root, keys) ||
            !ep_bool(c, "serve", false, &serve))
            return;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(c->doc.root, "label");
        if (l && !cJSON_IsNull(l) && !cJSON_IsString(l)) {
            ep_error(c, 400, "label: expected a string or null");
            return;
        }
        label = cJSON_IsString(l) ? l->valuestring : NULL;
    }
    etd_version_info v;
    int64_t removed[MAX_REMOVED];
    int nr = 0;
    if (!ep_ok(c, etd_model_freeze(c->m, label, serve, &v, removed, MAX_REMOVED, &nr, &c->e)))
        return;
    c->rs->status = 201;
    etd_buf *out = &c->rs->body;
    write_version(out, etd_model_name(c->m), &v);
    out->len--; /* reopen the object */
    etd_buf_puts(out, ",\"removed\":[");
    for (int i = 0; i < nr && i < MAX_REMOVED; i++)
        etd_buf_printf(out, "%s%" PRId64, i ? "," : "", removed[i]);
    etd_buf_puts(out, "]}");
}

void etd_h_versions_list(etd_call *c)
{
    if (!ep_model(c))
        return;
    etd_version_list l;
    if (!ep_ok(c, etd_model_version_list(c->m, &l, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"model\":");
    etd_json_str(out, etd_model_name(c->m));
    ep_write_serving(out, l.serving);
    etd_buf_puts(out, ",\"keep_versions\":");
    etd_json_i64(out, l.keep);
    etd_buf_puts(out, ",\"versions\":[");
    for (int i = 0; i < l.n; i++) {
        if (i)
            etd_buf_putc(out, ',');
        write_version(out, etd_model_name(c->m), &l.v[i]);
    }
    etd_buf_puts(out, "]}");
    etd_version_list_free(&l);
}

void etd_h_version_get(etd_call *c)
{
    int64_t n;
    etd_version_info v;
    if (!ep_model(c) || !ep_version(c, &n) ||
        !ep_ok(c, etd_model_version_info(c->m, n, &v, &c->e)))
        return;
    write_version(&c->rs->body, etd_model_name(c->m), &v);
}

void etd_h_version_delete(etd_call *c)
{
    int64_t n;
    if (!ep_model(c) || !ep_version(c, &n) ||
        !ep_ok(c, etd_model_version_delete(c->m, n, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"model\":");
    etd_json_str(&c->rs->body, etd_model_name(c->m));
    etd_buf_printf(&c->rs->body, ",\"deleted\":%" PRId64 "}", n);
}

void etd_h_version_predict(etd_call *c)
{
    static const char *const keys[] = {"inputs", NULL};
    int64_t n;
    etd_model *vm = NULL;
    /* the version first: a bad number or a missing version is the answer
     * whatever the body holds */
    if (!ep_model(c) || !ep_version(c, &n) ||
        !ep_ok(c, etd_model_version_model(c->m, n, &vm, &c->e)))
        return;
    etd_model_unref(c->m);
    c->m = vm; /* same spec: the inputs are read for it */
    if (!ep_inputs(c, keys, false))
        return;
    etd_json_doc_free(&c->doc);
    /* the version's own batcher: its requests batch with each other */
    if (etd_model_batching(c->m) && ep_predict_batched(c, false, n))
        return;
    if (ep_predict_now(c, false)) {   /* as plain predict answers, plus the version */
        c->rs->body.len--; /* reopen the object */
        etd_buf_printf(&c->rs->body, ",\"version\":%" PRId64 "}", n);
    }
}

/* POST .../versions/{N}/evaluate: /evaluate's body and answer (plus
 * "version"), measured on version N and recorded as its metrics. */
void etd_h_version_evaluate(etd_call *c)
{
    static const char *const keys[] = {"inputs", "targets", "metrics", "k", NULL};
    int64_t n;
    etd_version_info v;
    etd_eval_opts o;
    if (!ep_model(c) || !ep_version(c, &n) ||
        !ep_ok(c, etd_model_version_info(c->m, n, &v, &c->e)) || /* before the body */
        !ep_inputs(c, keys, true) || !ep_metrics(c, c->doc.root, "", &o))
        return;
    etd_json_doc_free(&c->doc);
    etd_eval_result r;
    if (!ep_ok(c, etd_model_version_evaluate(c->m, n, &c->x, &c->y, &o, &r, &v, &c->e)))
        return;
    etd_array_free(&c->x);
    etd_array_free(&c->y);
    etd_buf *out = &c->rs->body;
    ep_write_eval(out, &r);
    out->len--; /* reopen the object */
    etd_buf_printf(out, ",\"version\":%" PRId64 "}", n);
}

void etd_h_rollback(etd_call *c)
{
    static const char *const keys[] = {"version", NULL};
    if (!ep_model(c) || !ep_json(c, NULL) || !ep_keys(c, c->doc.root, keys))
        return;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->doc.root, "version");
    if (!v) {
        ep_error(c, 400, "version: required field is missing");
        return;
    }
    int64_t n;
    if (!ep_pos_int(c, "version", 0, &n))
        return;
    etd_rollback_result r;
    if (!ep_ok(c, etd_model_rollback(c->m, n, &r, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"model\":");
    etd_json_str(out, etd_model_name(c->m));
    etd_buf_printf(out, ",\"version\":%" PRId64 ",\"step\":%" PRId64 ",\"from_step\":%" PRId64
                   ",\"discarded_pending_batches\":%" PRId64, r.version, r.step, r.from_step,
                   r.discarded);
    /* what a version holds and a rollback puts back (versions.h) */
    etd_buf_printf(out, ",\"restored\":[\"parameters\",%s\"optimizer\",%s%s\"generator\","
                   "\"step\",\"loss\",\"loss_history\"]}", r.buffers ? "\"buffers\"," : "",
                   r.scheduler ? "\"scheduler\"," : "",
                   r.hyperparameters ? "\"hyperparameters\"," : "");
}

void ep_version_metrics(etd_buf *out, etd_model *const *models, int n)
{
    etd_buf_puts(out, "# HELP easytorch_model_versions Frozen versions kept per model.\n"
                 "# TYPE easytorch_model_versions gauge\n");
    for (int i = 0; i < n; i++) {
        int64_t serving, keep;
        int nv;
        etd_model_lifecycle(models[i], &serving, &keep, &nv);
        etd_buf_printf(out, "easytorch_model_versions{model=\"%s\"} %d\n",
                       etd_model_name(models[i]), nv);
    }
    etd_buf_puts(out, "# HELP easytorch_serving_version The version plain predict and infer "
                 "serve per model (0: the live model).\n# TYPE easytorch_serving_version gauge\n");
    for (int i = 0; i < n; i++) {
        int64_t serving, keep;
        int nv;
        etd_model_lifecycle(models[i], &serving, &keep, &nv);
        etd_buf_printf(out, "easytorch_serving_version{model=\"%s\"} %lld\n",
                       etd_model_name(models[i]), (long long)serving);
    }
    etd_buf_puts(out, "# HELP easytorch_version_step The step count each version was frozen at.\n"
                 "# TYPE easytorch_version_step gauge\n");
    for (int i = 0; i < n; i++) {
        etd_version_list l;
        etd_err e;
        if (etd_model_version_list(models[i], &l, &e) != ETD_OK) {
            out->oom = true;
            return;
        }
        for (int k = 0; k < l.n; k++)
            etd_buf_printf(out, "easytorch_version_step{model=\"%s\",version=\"%lld\"} %lld\n",
                           etd_model_name(models[i]), (long long)l.v[k].version,
                           (long long)l.v[k].step);
        etd_version_list_free(&l);
    }
}
