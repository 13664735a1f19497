/* v2_oip.c - the Open Inference Protocol (KServe v2) endpoints: health,
 * server and model metadata, readiness, infer (JSON and the binary tensor
 * extension), each also under /versions/{version}, and the model
 * repository's index (docs/API.md).  Requests are parsed and their tensors
 * converted by formats/oip.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"
#include "server/formats/oip.h"

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
                 "\",\"extensions\":[\"binary_tensor_data\"]}");
}

/* ---------------------------------------------------------------- a model's tensors */

/* An input or output as the metadata describes it.  A Sequential model has
 * one of each, "input" and "output"; a graph with named inputs, outputs or
 * losses (etd_model_io.named) has its own, by name, in its order (the
 * index into the model's inputs and outputs is `at`); -1 in a shape means
 * any size. */
typedef struct io_desc {
    const char *name;
    const char *datatype;
    et_dtype dtype;
    int64_t shape[2];
    int ndim;
    int at;
} io_desc;

static int model_inputs(etd_model *m, io_desc *out)
{
    etd_model_io io;
    etd_model_io_get(m, &io);
    if (io.named) {
        for (int i = 0; i < io.ninputs; i++) {
            int64_t f = io.in_features[i];
            et_dtype d = io.in_dtype[i];
            out[i] = (io_desc){io.inputs[i], d == ET_INT64 ? "INT64" : "FP32", d, {-1, f},
                               f >= 0 ? 2 : 1, i};
        }
        return io.ninputs;
    }
    etd_model_info in;
    etd_model_info_get(m, &in);
    et_dtype xd, yd;
    etd_model_dtypes(m, &xd, &yd);
    out[0] = (io_desc){"input", xd == ET_INT64 ? "INT64" : "FP32", xd, {-1, in.in_features}, 1, 0};
    if (in.in_features >= 0)
        out[0].ndim = 2;
    return 1;
}

static int model_outputs(etd_model *m, io_desc *out)
{
    etd_model_io io;
    etd_model_io_get(m, &io);
    if (io.named) {
        for (int i = 0; i < io.noutputs; i++) {
            int64_t f = io.out_features[i];
            out[i] = (io_desc){io.outputs[i], "FP32", ET_FLOAT32, {-1, f}, f >= 0 ? 2 : 1, i};
        }
        return io.noutputs;
    }
    etd_model_info in;
    etd_model_info_get(m, &in);
    out[0] = (io_desc){"output", "FP32", ET_FLOAT32, {-1, in.out_features}, 1, 0};
    if (in.out_features >= 0)
        out[0].ndim = 2;
    return 1;
}

static void io_list(const io_desc *d, int n, char *buf, size_t cap)
{
    size_t l = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && l + 1 < cap; i++)
        l += (size_t)snprintf(buf + l, cap - l, "%s\"%s\"", i ? ", " : "", d[i].name);
}

static void write_io(etd_buf *out, const io_desc *d, int n)
{
    etd_buf_putc(out, '[');
    for (int i = 0; i < n; i++) {
        etd_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        etd_json_str(out, d[i].name);
        etd_buf_printf(out, ",\"datatype\":\"%s\",\"shape\":[", d[i].datatype);
        for (int k = 0; k < d[i].ndim; k++)
            etd_buf_printf(out, "%s%lld", k ? "," : "", (long long)d[i].shape[k]);
        etd_buf_puts(out, "]}");
    }
    etd_buf_putc(out, ']');
}

/* The route's model and, under /versions/{version}, that version of it
 * (one lookup: etd_model_version); without one, what it serves (PATCH
 * "serving").  version: the version served; versions (may be NULL): the
 * model's, *nv how many. */
static bool oip_model(etd_call *c, char version[ETD_VERSION_STR],
                      char (*versions)[ETD_VERSION_STR], int *nv)
{
    if (!ep_model(c))
        return false;
    if (versions)
        *nv = etd_model_versions(c->m, versions, 8);
    etd_model *v;
    if (!c->rq->version || !c->rq->version[0]) {
        etd_model_current_version(c->m, &v, version);
    } else {
        if (!ep_ok(c, etd_model_version(c->m, c->rq->version, &v, &c->e)))
            return false;
        snprintf(version, ETD_VERSION_STR, "%s", c->rq->version);
    }
    etd_model_unref(c->m);
    c->m = v;
    return true;
}

/* ---------------------------------------------------------------- metadata, readiness */

void etd_h_v2_model(etd_call *c)
{
    char ver[ETD_VERSION_STR], v[8][ETD_VERSION_STR];
    int nv;
    if (!oip_model(c, ver, v, &nv))
        return;
    io_desc ins[ETD_OIP_MAX_IO], outs[ETD_OIP_MAX_IO];
    int ni = model_inputs(c->m, ins), no = model_outputs(c->m, outs);
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"name\":");
    etd_json_str(out, etd_model_name(c->m));
    etd_buf_puts(out, ",\"versions\":[");
    for (int i = 0; i < nv && i < 8; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, v[i]);
    }
    etd_buf_puts(out, "],\"platform\":\"easytorch\",\"inputs\":");
    write_io(out, ins, ni);
    etd_buf_puts(out, ",\"outputs\":");
    write_io(out, outs, no);
    etd_buf_putc(out, '}');
}

void etd_h_v2_model_ready(etd_call *c)
{
    char ver[ETD_VERSION_STR];
    if (!oip_model(c, ver, NULL, NULL))
        return;
    etd_buf_puts(&c->rs->body, "{\"name\":");
    etd_json_str(&c->rs->body, etd_model_name(c->m));
    etd_buf_puts(&c->rs->body, ",\"ready\":true}");
}

/* POST /v2/repository/index: every model and version with its state (all
 * are loaded: "READY").  Body: none or {"ready": bool} (ready only). */
void etd_h_v2_repository_index(etd_call *c)
{
    static const char *const keys[] = {"ready", NULL};
    if (c->rq->body_len > 0) {
        if (!ep_json(c, NULL) || !ep_keys(c, c->doc.root, keys))
            return;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(c->doc.root, "ready");
        if (r && !cJSON_IsBool(r)) {
            ep_error(c, 400, "ready: expected true or false");
            return;
        }
    }
    etd_model_list l;
    if (!ep_ok(c, etd_registry_list(c->rq->app->reg, &l, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_putc(out, '[');
    int k = 0;
    for (int i = 0; i < l.n; i++) {
        char v[8][ETD_VERSION_STR];
        int nv = etd_model_versions(l.models[i], v, 8);
        for (int j = 0; j < nv && j < 8; j++) {
            etd_buf_puts(out, k++ ? ",{\"name\":" : "{\"name\":");
            etd_json_str(out, etd_model_name(l.models[i]));
            etd_buf_puts(out, ",\"version\":");
            etd_json_str(out, v[j]);
            etd_buf_puts(out, ",\"state\":\"READY\",\"reason\":\"\"}");
        }
    }
    etd_buf_putc(out, ']');
    etd_model_list_free(&l);
}

/* ---------------------------------------------------------------- infer */

/* The request's inputs against the model's: names (unknown, missing) and
 * values converted to the model's dtype into c->x. */
static bool take_inputs(etd_call *c, const etd_oip_request *r)
{
    io_desc ins[ETD_OIP_MAX_IO];
    int ni = model_inputs(c->m, ins);
    char list[200];
    io_list(ins, ni, list, sizeof list);
    for (int i = 0; i < r->ninputs; i++) {
        bool known = false;
        for (int k = 0; k < ni && !known; k++)
            known = strcmp(ins[k].name, r->inputs[i].name) == 0;
        if (!known) {
            const char *names[ETD_OIP_MAX_IO + 1];
            for (int k = 0; k < ni; k++)
                names[k] = ins[k].name;
            names[ni] = NULL;
            etd_fail(&c->e, ETD_EINVAL, "inputs[%d].name: model \"%s\" has no input \"%.60s\" "
                     "(its inputs: %s; GET /v2/models/%s)", i, etd_model_name(c->m),
                     r->inputs[i].name, list, etd_model_name(c->m));
            etd_err_suggest(&c->e, r->inputs[i].name, names);
            return ep_ok(c, ETD_EINVAL);
        }
    }
    etd_model_io io;
    etd_model_io_get(c->m, &io);
    if (io.named) { /* a graph's named inputs: parts in the model's order (ep_named's layout) */
        if (!(c->x.parts = calloc((size_t)ni, sizeof *c->x.parts))) {
            ep_error(c, 500, "out of memory");
            return false;
        }
        c->x.nparts = ni;
        c->x.ndim = 1;
        c->x.dtype = ET_FLOAT32;
    }
    for (int k = 0; k < ni; k++) {
        int i = 0;
        while (i < r->ninputs && strcmp(r->inputs[i].name, ins[k].name) != 0)
            i++;
        if (i == r->ninputs) {
            ep_error(c, 400, "inputs: the input \"%s\" of model \"%s\" is missing", ins[k].name,
                     etd_model_name(c->m));
            return false;
        }
        char what[32];
        snprintf(what, sizeof what, "inputs[%d]", i);
        etd_array *a = c->x.parts ? &c->x.parts[k] : &c->x;
        if (!ep_ok(c, etd_oip_input_array(&r->inputs[i], ins[k].dtype, what, a, &c->e)
                          ? ETD_OK
                          : c->e.rc))
            return false;
        if (k == 0 && c->x.parts) { /* the rows of a named body are its first part's */
            c->x.shape[0] = c->x.numel = a->ndim ? a->shape[0] : 0;
        }
    }
    return true;
}

/* The outputs to answer with and how (requested ones, else all). */
static bool pick_outputs(etd_call *c, const etd_oip_request *r, io_desc *outs, bool *binary,
                         int *n)
{
    io_desc all[ETD_OIP_MAX_IO];
    int na = model_outputs(c->m, all);
    if (r->noutputs == 0) {
        for (int k = 0; k < na; k++) {
            outs[k] = all[k];
            binary[k] = r->binary_output;
        }
        *n = na;
        return true;
    }
    char list[200];
    io_list(all, na, list, sizeof list);
    for (int i = 0; i < r->noutputs; i++) {
        int k = 0;
        while (k < na && strcmp(all[k].name, r->outputs[i].name) != 0)
            k++;
        if (k == na) {
            ep_error(c, 400, "outputs[%d].name: model \"%s\" has no output \"%.60s\" (its "
                     "outputs: %s)", i, etd_model_name(c->m), r->outputs[i].name, list);
            return false;
        }
        outs[i] = all[k];
        binary[i] = r->outputs[i].binary;
    }
    *n = r->noutputs;
    return true;
}

/* The infer answer for the model's outputs ys[0..ny) (taken over): the
 * requested ones (outs[i].at), JSON, or JSON + binary outputs (the binary
 * tensor extension). */
static void free_all(et_tensor **ys, int ny)
{
    for (int i = 0; i < ny; i++)
        et_tensor_free(ys[i]);
}

static void infer_answer(etd_call *c, const char *model, const char *ver, const char *id,
                         const io_desc *outs, const bool *binary, int nout, et_tensor **ys,
                         int ny)
{
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"model_name\":");
    etd_json_str(out, model);
    etd_buf_puts(out, ",\"model_version\":");
    etd_json_str(out, ver);
    if (id) {
        etd_buf_puts(out, ",\"id\":");
        etd_json_str(out, id);
    }
    etd_buf_puts(out, ",\"outputs\":[");
    size_t nbin = 0;
    for (int i = 0; i < nout; i++) {
        et_tensor *y = ys[outs[i].at];
        etd_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        etd_json_str(out, outs[i].name);
        etd_buf_puts(out, ",\"datatype\":\"FP32\",\"shape\":");
        etd_json_shape(out, y);
        if (binary[i]) {
            size_t bytes = (size_t)et_numel(y) * sizeof(float);
            etd_buf_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}", bytes);
            nbin += bytes;
        } else {
            etd_buf_puts(out, ",\"data\":");
            etd_json_tensor_flat(out, y);
            etd_buf_putc(out, '}');
        }
    }
    etd_buf_puts(out, "]}");
    if (nbin && !out->oom) {
        /* the binary tensor extension: JSON header, then each binary output's bytes */
        size_t hlen = out->len;
        char *buf = malloc(hlen + nbin);
        if (!buf) {
            free_all(ys, ny);
            ep_error(c, 500, "out of memory");
            return;
        }
        memcpy(buf, out->data, hlen);
        size_t at = hlen;
        for (int i = 0; i < nout; i++) {
            if (!binary[i])
                continue;
            et_tensor *y = ys[outs[i].at];
            float *vals = malloc((size_t)(et_numel(y) ? et_numel(y) : 1) * sizeof(float));
            if (!vals) {
                free(buf);
                free_all(ys, ny);
                ep_error(c, 500, "out of memory");
                return;
            }
            et_copy_to(y, vals);
            etd_oip_put_fp32(buf + at, vals, et_numel(y)); /* little-endian, any alignment */
            at += (size_t)et_numel(y) * sizeof(float);
            free(vals);
        }
        etd_buf_free(out);
        c->rs->raw = buf;
        c->rs->raw_len = hlen + nbin;
        c->rs->raw_free = true;
        c->rs->content_type = "application/octet-stream";
        char hv[32];
        snprintf(hv, sizeof hv, "%zu", hlen);
        etd_response_header(c->rs, "Inference-Header-Content-Length", hv);
    }
    free_all(ys, ny);
}


/* A batching model's infer waits for its dynamic batch (models/batcher.c)
 * without a thread, like predict (v1_train.c). */
typedef struct infer_later {
    ep_later l;
    char *model, *id;
    char ver[ETD_VERSION_STR];
    io_desc outs[ETD_OIP_MAX_IO];
    bool binary[ETD_OIP_MAX_IO];
    int nout;
} infer_later;

static void infer_done(void *arg, etd_rc rc, et_tensor **ys, int ny, const char *msg)
{
    infer_later *p = arg;
    etd_call c = ep_later_call(&p->l);
    if (rc == ETD_OK)   /* takes ys over */
        infer_answer(&c, p->model, p->ver, p->id, p->outs, p->binary, p->nout, ys, ny);
    else
        etd_response_error(c.rs, etd_rc_status(rc), "%s", msg ? msg : "batch failed");
    ep_later_done(&p->l);
    free(p->model);
    free(p->id);
    free(p);
}

/* true: queued (or answered with an error); *id is taken over.  false:
 * the transport cannot wait, run the forward here. */
static bool infer_batched(etd_call *c, const char *ver, char **id, const io_desc *outs,
                          const bool *binary, int nout)
{
    if (etd_model_check_inputs(c->m, &c->x, &c->e) != ETD_OK) {
        ep_ok(c, c->e.rc);
        free(*id);
        *id = NULL;
        return true;
    }
    infer_later *p = calloc(1, sizeof *p);
    if (!p || !(p->model = strdup(etd_model_name(c->m))) || !ep_defer(c, &p->l)) {
        if (p)
            free(p->model);
        free(p);
        return false;
    }
    p->id = *id;
    *id = NULL;
    snprintf(p->ver, sizeof p->ver, "%s", ver);
    memcpy(p->outs, outs, (size_t)nout * sizeof *outs);
    memcpy(p->binary, binary, (size_t)nout * sizeof *binary);
    p->nout = nout;
    etd_err e = {0};
    if (etd_model_forward_batched(c->m, &c->x, infer_done, p, &e) != ETD_OK)
        infer_done(p, e.rc, NULL, 0, e.msg);
    return true;
}

void etd_h_v2_infer(etd_call *c)
{
    char ver[ETD_VERSION_STR];
    if (!oip_model(c, ver, NULL, NULL))
        return;
    etd_oip_request r;
    const char *hl = c->kind == ETD_BODY_OIP ? ep_header(c, "Inference-Header-Content-Length")
                                             : NULL;
    if (!etd_oip_parse(c->rq->body, c->rq->body_len, hl, &c->rq->app->json, &r, &c->e)) {
        etd_oip_request_free(&r);
        ep_ok(c, c->e.rc);
        return;
    }
    io_desc outs[ETD_OIP_MAX_IO];
    bool binary[ETD_OIP_MAX_IO];
    int nout = 0;
    char *id = NULL;
    bool ok = take_inputs(c, &r) && pick_outputs(c, &r, outs, binary, &nout);
    if (ok && r.id && !(id = strdup(r.id))) {
        ep_error(c, 500, "out of memory");
        ok = false;
    }
    etd_oip_request_free(&r); /* before the forward pass: it can be large */
    if (ok && etd_model_batching(c->m) && infer_batched(c, ver, &id, outs, binary, nout))
        return;
    et_tensor *ys[ETD_MAX_IO];
    int ny = 0;
    if (!ok || !ep_ok(c, etd_model_forward_all(c->m, &c->x, ys, &ny, &c->e))) {
        free(id);
        return;
    }
    etd_array_free(&c->x);
    infer_answer(c, etd_model_name(c->m), ver, id, outs, binary, nout, ys, ny);
    free(id);
}
