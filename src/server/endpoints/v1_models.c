/* v1_models.c - /v1/models: list, define, describe, delete (docs/API.md). */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"
#include "server/models/versions.h"

/* GET /v1/models/{name} and the answer of a define (and of a PATCH, with
 * its "changes" member: extra, or NULL). */
static void write_description_with(etd_buf *out, etd_model *m, const char *extra)
{
    etd_model_info in;
    etd_model_info_get(m, &in);
    etd_buf_puts(out, "{\"name\":");
    etd_json_str(out, in.name);
    etd_buf_puts(out, ",\"spec\":");
    etd_model_write_spec(m, out);
    etd_buf_puts(out, ",\"parameters\":");
    etd_json_i64(out, in.param_count);
    etd_buf_puts(out, ",\"step\":");
    etd_json_i64(out, in.sum.step);
    etd_buf_puts(out, ",\"pending_batches\":");
    etd_json_i64(out, in.sum.pending);
    ep_write_loss(out, in.sum.has_loss, in.sum.loss);
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, in.sum.lr);
    ep_write_status(out, &in.sum);
    ep_write_nonfinite(out, &in.sum.nf);
    etd_buf_printf(out, ",\"seed\":%" PRIu64 ",\"parameter_names\":[", in.seed);
    for (int i = 0; i < in.nparams; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, etd_model_param_name(m, i));
    }
    etd_buf_puts(out, "],\"buffer_names\":[");
    for (int i = 0; i < in.nbuffers; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, etd_model_buffer_name(m, i));
    }
    etd_buf_puts(out, "],\"param_groups\":");
    etd_err e;
    if (etd_model_param_groups(m, out, &e) != ETD_OK)
        etd_buf_puts(out, "[]"); /* deleted meanwhile: the 404 comes with the next call */
    int64_t serving, keep;
    int nv;
    etd_model_lifecycle(m, &serving, &keep, &nv);
    ep_write_serving(out, serving);
    etd_buf_printf(out, ",\"keep_versions\":%lld,\"versions\":%d", (long long)keep, nv);
    if (extra) {
        etd_buf_putc(out, ',');
        etd_buf_puts(out, extra);
    }
    etd_buf_putc(out, '}');
}

static void write_description(etd_buf *out, etd_model *m)
{
    write_description_with(out, m, NULL);
}

void etd_h_list(etd_call *c)
{
    etd_model_list l;
    if (!ep_ok(c, etd_registry_list(c->rq->app->reg, &l, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"models\":[");
    for (int i = 0; i < l.n; i++) {
        etd_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        etd_json_str(out, etd_model_name(l.models[i]));
        etd_buf_puts(out, ",\"step\":");
        etd_json_i64(out, l.sum[i].step);
        ep_write_loss(out, l.sum[i].has_loss, l.sum[i].loss);
        ep_write_status(out, &l.sum[i]);
        etd_buf_putc(out, '}');
    }
    etd_buf_puts(out, "]}");
    etd_model_list_free(&l);
}

void etd_h_define(etd_call *c)
{
    if (c->kind == ETD_BODY_ONNX || ep_onnx_body(c)) { /* the file as the body (v1_export.c) */
        if (!ep_define_onnx(c))
            return;
    } else if (c->rq->nquery) {
        ep_error(c, 400, "%s: query parameters are the spec of an ONNX body (Content-Type: "
                 "application/onnx); with JSON, send every field in the body",
                 c->rq->query[0].name);
        return;
    } else if (!ep_json(c, NULL) ||
               !ep_ok(c, etd_registry_define(c->rq->app->reg, c->doc.root, &c->m, &c->e))) {
        return;
    }
    c->rs->status = 201;
    write_description(&c->rs->body, c->m);
}

void etd_h_get(etd_call *c)
{
    if (ep_model(c))
        write_description(&c->rs->body, c->m);
}

void etd_h_delete(etd_call *c)
{
    if (!ep_ok(c, etd_registry_delete(c->rq->app->reg, c->rq->name, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"deleted\":");
    etd_json_str(&c->rs->body, c->rq->name);
    etd_buf_putc(&c->rs->body, '}');
}

/* PATCH /v1/models/{name}: one change of a running model, validated whole
 * before anything changes -- optimizer hyperparameters, the scheduler, the
 * divergence policy (models/hparams.c) and what plain predict/infer serve
 * ("serving": "live" or a version) and keep_versions (versions.c).  The
 * description back, with "changes" (what moved). */
void etd_h_patch(etd_call *c)
{
    if (!ep_model(c) || !ep_json(c, NULL) ||
        !ep_ok(c, etd_model_patch_check(c->doc.root, &c->e)))
        return;
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(c->doc.root, "serving");
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(c->doc.root, "keep_versions");
    int64_t serving = -1, keep = -1;
    if (sv && cJSON_IsString(sv) && strcmp(sv->valuestring, "live") == 0) {
        serving = 0;
    } else if (sv) {
        if (!ep_pos_int(c, "serving", 0, &serving))
            return;
        if (cJSON_IsNull(sv) || serving < 1) {
            ep_error(c, 400, "serving: expected \"live\" or a version number");
            return;
        }
    }
    if (kv && !cJSON_IsNull(kv)) {
        double d = kv->valuedouble;
        if (!cJSON_IsNumber(kv) || d < 0 || d != floor(d) || d > 1e15) {
            ep_error(c, 400, "keep_versions: expected a whole number >= 0 (0: keep all)");
            return;
        }
        keep = (int64_t)d;
    } else if (kv) {
        keep = 0;
    }
    /* the version to serve exists before anything changes */
    if (serving > 0) {
        etd_version_info vi;
        if (etd_model_version_info(c->m, serving, &vi, &c->e) != ETD_OK) {
            etd_err_append(&c->e, " (serving)");
            ep_ok(c, c->e.rc);
            return;
        }
    }
    etd_patch_result r = {0};
    if (etd_model_patch_wants(c->doc.root) &&
        !ep_ok(c, etd_model_patch(c->m, c->doc.root, &r, &c->e)))
        return;
    if ((serving >= 0 || keep >= 0) &&
        !ep_ok(c, etd_model_set_lifecycle(c->m, serving, keep, &c->e))) {
        etd_patch_result_free(&r);
        return;
    }
    write_description_with(&c->rs->body, c->m, r.changes ? r.changes : "\"changes\":{}");
    etd_patch_result_free(&r);
}

/* The type names a spec may use and their fields in constructor order, so
 * clients need no table of their own (the Python client maps positional
 * arguments with it). */
void etd_h_types(etd_call *c)
{
    static const char *const family[ETD_TYPES_COUNT] = {"layers", "losses", "optimizers",
                                                        "schedulers"};
    etd_buf *out = &c->rs->body;
    etd_buf_putc(out, '{');
    for (int f = 0; f < ETD_TYPES_COUNT; f++) {
        etd_buf_puts(out, f ? ",\"" : "\"");
        etd_buf_puts(out, family[f]);
        etd_buf_puts(out, "\":[");
        const char *const *fields;
        const char *name;
        for (int i = 0; (name = etd_spec_type((etd_type_family)f, i, &fields)); i++) {
            etd_buf_puts(out, i ? ",{\"type\":" : "{\"type\":");
            etd_json_str(out, name);
            etd_buf_puts(out, ",\"fields\":[");
            for (int k = 0; fields && fields[k]; k++) {
                if (k)
                    etd_buf_putc(out, ',');
                etd_json_str(out, fields[k]);
            }
            etd_buf_puts(out, "]}");
        }
        etd_buf_putc(out, ']');
    }
    etd_buf_putc(out, '}');
}
