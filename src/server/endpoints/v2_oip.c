/* v2_oip.c - the Open Inference Protocol (KServe v2) endpoints: health,
 * server and model metadata, readiness, infer (docs/API.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

void etd_h_v2_live(etd_call *c)
{
    etd_buf_puts(&c->rs->body, "{\"live\":true}");
}

void etd_h_v2_ready(etd_call *c)
{
    bool r = c->rq->host->ready && !c->rq->host->draining;
    etd_buf_printf(&c->rs->body, "{\"ready\":%s}", r ? "true" : "false");
    c->rs->status = r ? 200 : 503;
}

void etd_h_v2_server(etd_call *c)
{
    etd_buf_puts(&c->rs->body, "{\"name\":\"easytorchd\",\"version\":\"" EASYTORCH_VERSION
                 "\",\"extensions\":[]}");
}

/* Shapes of -1 mean "any": a dimension is known only when the layers fix it. */
void etd_h_v2_model(etd_call *c)
{
    if (!ep_model(c))
        return;
    etd_model_info in;
    etd_model_info_get(c->m, &in);
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"name\":");
    etd_json_str(out, in.name);
    etd_buf_puts(out, ",\"versions\":[\"1\"],\"platform\":\"easytorch\",\"inputs\":[{\"name\":"
                 "\"input\",\"datatype\":\"FP32\",\"shape\":[-1");
    if (in.in_features >= 0)
        etd_buf_printf(out, ",%lld", (long long)in.in_features);
    etd_buf_puts(out, "]}],\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[-1");
    if (in.out_features >= 0)
        etd_buf_printf(out, ",%lld", (long long)in.out_features);
    etd_buf_puts(out, "]}]}");
}

void etd_h_v2_model_ready(etd_call *c)
{
    if (!ep_model(c))
        return;
    etd_buf_puts(&c->rs->body, "{\"name\":");
    etd_json_str(&c->rs->body, etd_model_name(c->m));
    etd_buf_puts(&c->rs->body, ",\"ready\":true}");
}

/* inputs[0]'s shape and data into c->x (any numeric datatype, as FP32). */
static bool infer_input(etd_call *c, const cJSON *ins)
{
    static const char *const in_keys[] = {"name", "shape", "datatype", "data", "parameters", NULL};
    static const char *const numeric[] = {"FP32", "FP64", "FP16", "BF16", "INT8", "INT16", "INT32",
                                          "INT64", "UINT8", "UINT16", "UINT32", "UINT64", NULL};
    int64_t max_elems = c->rq->app->json.max_elems;
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != 1) {
        ep_error(c, 400, "inputs: expected a list with exactly one input tensor");
        return false;
    }
    const cJSON *in = ins->child;
    if (!ep_keys(c, in, in_keys))
        return false;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (nm && !cJSON_IsString(nm)) {
        ep_error(c, 400, "inputs[0].name: expected a string");
        return false;
    }
    bool dt_ok = false;
    if (cJSON_IsString(dt))
        for (int i = 0; numeric[i]; i++)
            dt_ok |= strcmp(numeric[i], dt->valuestring) == 0;
    if (!dt_ok) {
        ep_error(c, 400, "inputs[0].datatype: expected a numeric datatype such as \"FP32\"");
        return false;
    }
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ET_MAX_DIMS ||
        cJSON_GetArraySize(shape) < 1) {
        ep_error(c, 400, "inputs[0].shape: expected a list of 1 to %d non-negative integers",
                 ET_MAX_DIMS);
        return false;
    }
    int64_t shp[ET_MAX_DIMS], numel = 1;
    int nd = 0;
    for (const cJSON *e = shape->child; e; e = e->next) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v < 0 || v != floor(v) || v > (double)max_elems) {
            ep_error(c, 400, "inputs[0].shape[%d]: expected a non-negative integer", nd);
            return false;
        }
        shp[nd++] = (int64_t)v;
        if (v > 0 && numel > max_elems / (int64_t)v) {
            ep_error(c, 400, "inputs[0]: more than %lld elements", (long long)max_elems);
            return false;
        }
        numel *= (int64_t)v;
    }
    if (!data) {
        ep_error(c, 400, "inputs[0].data: required field is missing");
        return false;
    }
    char err[ETD_ERRCAP];
    if (!etd_array_from_json(data, "inputs[0].data", max_elems, &c->x, err, sizeof err)) {
        ep_error(c, 400, "%s", err);
        return false;
    }
    if (c->x.numel != numel) {
        ep_error(c, 400, "inputs[0].data: shape needs %lld values, got %lld", (long long)numel,
                 (long long)c->x.numel);
        return false;
    }
    memcpy(c->x.shape, shp, sizeof shp);
    c->x.ndim = nd;
    return true;
}

void etd_h_v2_infer(etd_call *c)
{
    static const char *const keys[] = {"id", "inputs", "outputs", "parameters", NULL};
    if (!ep_model(c) || !ep_json(c, NULL) || !ep_keys(c, c->doc.root, keys))
        return;
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(c->doc.root, "id");
    if (idj && !cJSON_IsString(idj)) {
        ep_error(c, 400, "id: expected a string");
        return;
    }
    if (!infer_input(c, cJSON_GetObjectItemCaseSensitive(c->doc.root, "inputs")))
        return;
    char *id = idj ? strdup(idj->valuestring) : NULL;
    etd_json_doc_free(&c->doc);
    et_tensor *y = NULL;
    if (ep_ok(c, etd_model_forward(c->m, &c->x, &y, &c->e))) {
        etd_buf *out = &c->rs->body;
        etd_buf_puts(out, "{\"model_name\":");
        etd_json_str(out, etd_model_name(c->m));
        etd_buf_puts(out, ",\"model_version\":\"1\"");
        if (id) {
            etd_buf_puts(out, ",\"id\":");
            etd_json_str(out, id);
        }
        etd_buf_puts(out, ",\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":");
        etd_json_shape(out, y);
        etd_buf_puts(out, ",\"data\":");
        etd_json_tensor_flat(out, y);
        etd_buf_puts(out, "}]}");
    }
    et_tensor_free(y);
    free(id);
}
