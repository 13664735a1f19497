/* v1_export.c - ONNX over HTTP (docs/API.md "ONNX export and import"):
 * GET /v1/models/{name}/export and .../versions/{version}/export answer the
 * model (or a version) as an ONNX file; POST /v1/models with the file as
 * the body (Content-Type: application/onnx) imports one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"
#include "server/models/onnx.h"
#include "server/models/versions.h"

/* ?input_shape=1,28,28: the dimensions after the batch (400 naming it); a
 * graph model's several inputs separated by ';' in the order of its
 * "inputs" ("6;3,4"; an empty part: [batch] alone), passed on as one list
 * with a 0 between the inputs (onnx.h). */
static bool input_shape(etd_call *c, int64_t *dims, int *nd)
{
    const char *s = ep_query(c, "input_shape");
    *nd = -1;
    if (!s)
        return true;
    *nd = 0;
    int inputs = 1, here = 0;
    for (const char *p = s;;) {
        if (*p == ';' || (*p == '\0' && here == 0 && inputs > 1)) { /* an empty part */
            if (*p == '\0')
                return true;
            if (inputs >= ETD_ONNX_MAX_INPUTS || *nd >= ETD_ONNX_MAX_DIMS)
                goto bad;
            dims[(*nd)++] = 0;
            inputs++;
            here = 0;
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long long v = (*p >= '0' && *p <= '9') ? strtoll(p, &end, 10) : 0;
        if (*p < '0' || *p > '9' || errno || v < 1 || v > (1LL << 31) ||
            here >= ET_MAX_DIMS - 1 || *nd >= ETD_ONNX_MAX_DIMS ||
            (*end != ',' && *end != ';' && *end != '\0'))
            goto bad;
        dims[(*nd)++] = v;
        here++;
        if (!*end)
            return true;
        p = *end == ',' ? end + 1 : end;
    }
bad:
    ep_error(c, 400, "input_shape: expected up to %d positive integers separated by commas "
             "(the input's dimensions after the batch; a graph's inputs separated by ';'), got "
             "\"%.60s\"", ET_MAX_DIMS - 1, s);
    return false;
}

static void export_model(etd_call *c, etd_model *m, const char *file)
{
    const char *f = ep_query(c, "format");
    if (f && strcmp(f, "onnx") != 0) {
        ep_error(c, 400, "format: expected \"onnx\", got \"%.40s\"", f);
        return;
    }
    int64_t dims[ETD_ONNX_MAX_DIMS];
    int nd;
    uint8_t *buf;
    size_t len;
    if (!input_shape(c, dims, &nd) ||
        !ep_ok(c, etd_model_export_onnx(m, dims, nd, &buf, &len, &c->e)))
        return;
    c->rs->raw = buf;
    c->rs->raw_len = len;
    c->rs->raw_free = true;
    c->rs->content_type = "application/onnx";
    char cd[160];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s.onnx\"", file);
    etd_response_header(c->rs, "Content-Disposition", cd);
}

void etd_h_export(etd_call *c)
{
    if (ep_model(c))
        export_model(c, c->m, etd_model_name(c->m));
}

void etd_h_version_export(etd_call *c)
{
    int64_t n;
    etd_model *vm;
    if (!ep_model(c) || !ep_ok(c, etd_version_parse(c->rq->version, &n, &c->e)) ||
        !ep_ok(c, etd_model_version_model(c->m, n, &vm, &c->e)))
        return;
    char file[96];
    snprintf(file, sizeof file, "%s.v%lld", etd_model_name(c->m), (long long)n);
    etd_model_unref(c->m);
    c->m = vm;
    export_model(c, vm, file);
}

/* ---------------------------------------------------------------- import: the file as the body */

bool ep_onnx_body(etd_call *c)
{
    const char *ct = ep_header(c, "Content-Type");
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen("application/onnx");
    return strncasecmp(ct, "application/onnx", n) == 0 &&
           (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* The spec from the query: each parameter is a top-level field, its value
 * JSON when it parses as JSON ({"type": "Adam", "lr": 0.01}, 3, true), else
 * a string (MSELoss); "name" is always a string; "optimizer=Adam" is
 * {"type": "Adam"} and "lr=0.01" its lr (routes.c lists the names). */
static cJSON *spec_from_query(etd_call *c)
{
    cJSON *spec = cJSON_CreateObject();
    const char *lr = NULL;
    if (!spec) {
        ep_error(c, 500, "out of memory");
        return NULL;
    }
    for (int i = 0; i < c->rq->nquery; i++) {
        const char *k = c->rq->query[i].name, *v = c->rq->query[i].value ? c->rq->query[i].value : "";
        if (cJSON_GetObjectItemCaseSensitive(spec, k) || (strcmp(k, "lr") == 0 && lr)) {
            ep_error(c, 400, "%s: query parameter given twice", k);
            goto bad;
        }
        if (strcmp(k, "lr") == 0) {
            lr = v;
            continue;
        }
        cJSON *j = NULL;
        if (strcmp(k, "name") != 0) {
            const char *end = NULL;
            j = cJSON_ParseWithOpts(v, &end, true);
        }
        if (!j)
            j = cJSON_CreateString(v);
        if (!j) {
            ep_error(c, 500, "out of memory");
            goto bad;
        }
        if (strcmp(k, "optimizer") == 0 && cJSON_IsString(j)) { /* optimizer=Adam */
            cJSON *o = cJSON_CreateObject();
            if (o)
                cJSON_AddStringToObject(o, "type", j->valuestring);
            cJSON_Delete(j);
            j = o;
        }
        cJSON_AddItemToObject(spec, k, j);
    }
    if (lr) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(spec, "optimizer");
        cJSON *v = cJSON_Parse(lr);
        if (!cJSON_IsNumber(v)) {
            cJSON_Delete(v);
            ep_error(c, 400, "lr: expected a number, got \"%.40s\"", lr);
            goto bad;
        }
        if (!cJSON_IsObject(o) || cJSON_GetObjectItemCaseSensitive(o, "lr")) {
            cJSON_Delete(v);
            ep_error(c, 400, "lr: %s", cJSON_IsObject(o) ? "given twice (also in optimizer)"
                                                         : "only with optimizer (?optimizer=SGD&lr=0.1)");
            goto bad;
        }
        cJSON_AddItemToObject(o, "lr", v);
    }
    return spec;
bad:
    cJSON_Delete(spec);
    return NULL;
}

bool ep_define_onnx(etd_call *c)
{
    cJSON *spec = spec_from_query(c);
    if (!spec)
        return false;
    etd_rc rc = etd_onnx_import_file(c->rq->app->reg, spec, (const uint8_t *)c->rq->body,
                                     c->rq->body_len, &c->m, &c->e);
    cJSON_Delete(spec);
    return ep_ok(c, rc);
}
