/* v1_export.c - GET /v1/models/{name}/export and .../versions/{version}/export:
 * the model (or a version) as an ONNX file (docs/API.md "ONNX export"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"
#include "server/models/onnx.h"
#include "server/models/versions.h"

/* ?input_shape=1,28,28: the dimensions after the batch (400 naming it). */
static bool input_shape(etd_call *c, int64_t *dims, int *nd)
{
    const char *s = ep_query(c, "input_shape");
    *nd = -1;
    if (!s)
        return true;
    *nd = 0;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        long long v = (*p >= '0' && *p <= '9') ? strtoll(p, &end, 10) : 0;
        if (*p < '0' || *p > '9' || errno || v < 1 || v > (1LL << 31) || *nd >= ET_MAX_DIMS - 1 ||
            (*end != ',' && *end != '\0')) {
            ep_error(c, 400, "input_shape: expected up to %d positive integers separated by "
                     "commas (the input's dimensions after the batch), got \"%.60s\"",
                     ET_MAX_DIMS - 1, s);
            return false;
        }
        dims[(*nd)++] = v;
        if (!*end)
            return true;
        p = end + 1;
    }
}

static void export_model(etd_call *c, etd_model *m, const char *file)
{
    const char *f = ep_query(c, "format");
    if (f && strcmp(f, "onnx") != 0) {
        ep_error(c, 400, "format: expected \"onnx\", got \"%.40s\"", f);
        return;
    }
    int64_t dims[ET_MAX_DIMS];
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
