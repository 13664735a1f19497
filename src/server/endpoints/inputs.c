/* inputs.c - a request's tensors into etd_arrays (common.h): a JSON or
 * safetensors body's "inputs" / "targets" as the model's dtypes, or a graph
 * model's named parts ({"inputs": {"user": ..., "item": ...}}, safetensors
 * tensors "inputs.user"), checked against its names. */
#include "server/endpoints/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ep_tensor(etd_call *c, const char *key, etd_array *a)
{
    const et_tensor *t = c->st.d ? etd_st_tensor(&c->st, key) : NULL;
    if (t) {
        char err[ETD_ERRCAP];
        if (!etd_array_from_tensor(t, key, c->rq->app->json.max_elems, a, err, sizeof err)) {
            ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
            return false;
        }
        return true;
    }
    return ep_ok(c, etd_json_take_array(&c->doc, key, c->rq->app->json.max_elems, a, &c->e)
                        ? ETD_OK
                        : c->e.rc);
}

/* ep_tensor as dtype dt: a JSON tensor read as such (whole numbers for
 * int64), a safetensors one converted (int64 -> float32 as torch's
 * .float(); float32 -> int64 only when whole). */
static bool whole(const etd_array *a)
{
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        n *= a->shape[i];
    for (int64_t i = 0; a->data && i < n; i++)
        if (a->data[i] != floorf(a->data[i]))
            return false;
    return true;
}

bool ep_st_tensor_as(etd_call *c, const char *name, et_dtype dt, etd_array *a, bool *found)
{
    const et_tensor *t = c->st.d ? etd_st_tensor(&c->st, name) : NULL;
    *found = t != NULL;
    if (!t)
        return true;
    char err[ETD_ERRCAP];
    if (!etd_array_from_tensor(t, name, c->rq->app->json.max_elems, a, err, sizeof err) ||
        !etd_array_to_dtype(a, dt, name, err, sizeof err)) {
        etd_array_free(a);
        ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
        return false;
    }
    return true;
}

/* float_rows: class-target rows that are not whole numbers (probabilities,
 * one per class) stay float32 -- evaluate's accuracy takes them, a loss
 * names what it needs -- instead of failing as "not an integer". */
static bool ep_tensor_as(etd_call *c, const char *key, et_dtype dt, etd_array *a,
                         bool float_rows)
{
    int64_t max = c->rq->app->json.max_elems;
    float_rows = float_rows && dt == ET_INT64;
    if (!(c->st.d && etd_st_tensor(&c->st, key))) {
        if (etd_json_take_array_as(&c->doc, key, max, dt, a, &c->e))
            return true;
        etd_err first = c->e;
        if (float_rows && first.rc == ETD_EINVAL &&
            etd_json_take_array_as(&c->doc, key, max, ET_FLOAT32, a, &c->e) && a->ndim >= 2)
            return true;
        etd_array_free(a);
        c->e = first;
        return ep_ok(c, c->e.rc);
    }
    char err[ETD_ERRCAP];
    if (!ep_tensor(c, key, a))
        return false;
    if (float_rows && a->dtype == ET_FLOAT32 && a->ndim >= 2 && !whole(a))
        return true;
    if (!etd_array_to_dtype(a, dt, key, err, sizeof err)) {
        ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
        return false;
    }
    return true;
}


/* A named member of the body ("inputs": {"user": [...], "item": [...]})
 * into a's parts in the order names[0..n); every name given, no other.
 * Its rows (shape[0]) are the first part's. */
static bool ep_named_in(etd_call *c, const cJSON *parent, const char *key, const char *path,
                        const char *const *names, const et_dtype *dts, const bool *float_ok,
                        int n, etd_array *a)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, key);
    char list[512] = "";
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof list - 80; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", i ? ", " : "", names[i]);
    if (!cJSON_IsObject(o)) {
        ep_error(c, 400, "%s: %s; the model takes an object of %s by name: {%s}", path,
                 o ? "expected an object" : "required field is missing", key, list);
        return false;
    }
    for (const cJSON *v = o->child; v; v = v->next) {
        bool known = false;
        for (int i = 0; i < n && !known; i++)
            known = !strcmp(names[i], v->string);
        if (!known) {
            ep_error(c, 400, "%s.%.60s: not one of the model's %s (%s)", path, v->string, key,
                     list);
            return false;
        }
    }
    a->parts = calloc((size_t)(n > 0 ? n : 1), sizeof *a->parts);
    if (!a->parts) {
        ep_error(c, 500, "out of memory");
        return false;
    }
    a->nparts = n;
    int64_t max = c->rq->app->json.max_elems;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, names[i]);
        char what[96], err[ETD_ERRCAP];
        snprintf(what, sizeof what, "%s.%.60s", path, names[i]);
        if (!v) {
            ep_error(c, 400, "%s: required field is missing", what);
            return false;
        }
        bool ok = dts[i] == ET_INT64
                      ? etd_array_from_json_ints(v, what, max, &a->parts[i], err, sizeof err)
                      : etd_array_from_json(v, what, max, &a->parts[i], err, sizeof err);
        if (!ok && dts[i] == ET_INT64 && float_ok && float_ok[i]) {
            etd_array_free(&a->parts[i]);
            ok = etd_array_from_json(v, what, max, &a->parts[i], err, sizeof err);
        }
        if (!ok) {
            ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
            return false;
        }
    }
    a->ndim = 1;
    a->shape[0] = n && a->parts[0].ndim ? a->parts[0].shape[0] : 0;
    a->numel = a->shape[0];
    a->dtype = ET_FLOAT32;
    return true;
}

static bool ep_named(etd_call *c, const char *key, const char *const *names, const et_dtype *dts,
                     const bool *float_ok, int n, etd_array *a)
{
    return ep_named_in(c, c->doc.root, key, key, names, dts, float_ok, n, a);
}

bool ep_named_of(etd_call *c, const cJSON *parent, const char *path, bool targets, etd_array *a)
{
    etd_model_io io;
    etd_model_io_get(c->m, &io);
    char what[96];
    snprintf(what, sizeof what, "%s.%s", path, targets ? "targets" : "inputs");
    if (!targets)
        return ep_named_in(c, parent, "inputs", what, io.inputs, io.in_dtype, NULL, io.ninputs, a);
    if (io.ntargets == 0) { /* no targets (a triplet loss): as many rows as the inputs */
        a->ndim = 1;
        return true;
    }
    return ep_named_in(c, parent, "targets", what, io.targets, io.target_dtype,
                       io.target_float_ok, io.ntargets, a);
}

/* A safetensors body's named parts: tensor "<key>.<name>" for each of
 * names[0..n) (the way gradients.<name> and validation.inputs are named),
 * every one given, into a's parts in that order. */
static bool ep_st_named(etd_call *c, const char *key, const char *const *names,
                        const et_dtype *dts, const bool *float_ok, int n, etd_array *a)
{
    if (!(a->parts = calloc((size_t)(n > 0 ? n : 1), sizeof *a->parts))) {
        ep_error(c, 500, "out of memory");
        return false;
    }
    a->nparts = n;
    for (int i = 0; i < n; i++) {
        char what[96];
        snprintf(what, sizeof what, "%s.%.60s", key, names[i]);
        const et_tensor *t = etd_st_tensor(&c->st, what);
        if (!t) {
            ep_error(c, 400, "%s: required tensor is missing (a safetensors body gives each "
                     "of the model's %s as a tensor \"%s.<name>\")", what, key, key);
            return false;
        }
        char err[ETD_ERRCAP];
        etd_array *p = &a->parts[i];
        if (!etd_array_from_tensor(t, what, c->rq->app->json.max_elems, p, err, sizeof err)) {
            ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
            return false;
        }
        bool keep = float_ok && float_ok[i] && dts[i] == ET_INT64 && p->dtype == ET_FLOAT32 &&
                    p->ndim >= 2 && !whole(p); /* class probabilities stay floats */
        if (!keep && !etd_array_to_dtype(p, dts[i], what, err, sizeof err)) {
            ep_error(c, strstr(err, "out of memory") ? 500 : 400, "%s", err);
            return false;
        }
    }
    a->ndim = 1;
    a->shape[0] = n && a->parts[0].ndim ? a->parts[0].shape[0] : 0;
    a->numel = a->shape[0];
    a->dtype = ET_FLOAT32;
    return true;
}

/* The tensor names a safetensors body of a model with named inputs and
 * targets may carry ("inputs.user", "targets.label"), after c->tensor_keys,
 * into buf/out (NULL-terminated). */
#define ST_KEYS (2 * ETD_MAX_IO + 8)
static void named_st_keys(const etd_call *c, const etd_model_io *io, bool targets,
                          char (*buf)[80], const char **out)
{
    int n = 0, b = 0;
    for (int k = 0; c->tensor_keys && c->tensor_keys[k] && n < 8; k++)
        out[n++] = c->tensor_keys[k];
    for (int i = 0; i < io->ninputs; i++) {
        snprintf(buf[b], sizeof buf[b], "inputs.%.60s", io->inputs[i]);
        out[n++] = buf[b++];
    }
    for (int i = 0; targets && io->targets[0] && i < io->ntargets; i++) {
        snprintf(buf[b], sizeof buf[b], "targets.%.60s", io->targets[i]);
        out[n++] = buf[b++];
    }
    out[n] = NULL;
}

/* ep_inputs for a graph model with named inputs, outputs or losses
 * (etd_model_io.named): JSON objects by name, or safetensors bodies whose
 * tensors are named "inputs.<name>" / "targets.<name>". */
static bool ep_inputs_named(etd_call *c, const char *const *keys, bool targets,
                            const etd_model_io *io)
{
    char kbuf[2 * ETD_MAX_IO][80];
    const char *kp[ST_KEYS + 1];
    named_st_keys(c, io, targets, kbuf, kp);
    /* the bare "inputs" / "targets" tensors are read only as one array */
    const char *no[3];
    int nno = 0;
    if (io->ninputs != 1)
        no[nno++] = "inputs";
    if (targets && (io->ntargets == 0 || io->targets[0]))
        no[nno++] = "targets";
    no[nno] = NULL;
    const char *const *saved = c->tensor_keys;
    if (!ep_json(c, NULL))
        return false;
    c->tensor_keys = kp;
    c->tensor_not = no;
    bool ok = ep_keys(c, c->doc.root, keys);
    c->tensor_keys = saved;
    c->tensor_not = NULL;
    if (!ok)
        return false;
    if (c->st.d) {
        et_dtype xd, yd;
        etd_model_dtypes(c->m, &xd, &yd);
        bool one = io->ninputs == 1 && etd_st_tensor(&c->st, "inputs");
        if (one ? !ep_tensor_as(c, "inputs", xd, &c->x, false)
                : !ep_st_named(c, "inputs", io->inputs, io->in_dtype, NULL, io->ninputs, &c->x))
            return false;
        if (!targets)
            return true;
        if (io->ntargets == 0) {
            c->y.ndim = 1;
            c->y.shape[0] = c->y.numel = c->x.shape[0];
            return true;
        }
        if (!io->targets[0])
            return ep_tensor_as(c, "targets", yd, &c->y, true);
        return ep_st_named(c, "targets", io->targets, io->target_dtype, io->target_float_ok,
                           io->ntargets, &c->y);
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(c->doc.root, "inputs");
    if (io->ninputs == 1 && !cJSON_IsObject(in)) {
        et_dtype xd, yd;
        etd_model_dtypes(c->m, &xd, &yd);
        if (!ep_tensor_as(c, "inputs", xd, &c->x, false))
            return false;
    } else if (!ep_named(c, "inputs", io->inputs, io->in_dtype, NULL, io->ninputs, &c->x)) {
        return false;
    }
    if (!targets)
        return true;
    if (io->ntargets == 0 || !io->targets[0]) {   /* one target array, or none (a triplet loss) */
        et_dtype xd, yd;
        etd_model_dtypes(c->m, &xd, &yd);
        if (io->ntargets == 0) {
            c->y.ndim = 1;
            c->y.shape[0] = c->y.numel = c->x.shape[0];
            return true;
        }
        return ep_tensor_as(c, "targets", yd, &c->y, true);
    }
    return ep_named(c, "targets", io->targets, io->target_dtype, io->target_float_ok,
                    io->ntargets, &c->y);
}

bool ep_inputs(etd_call *c, const char *const *keys, bool targets)
{
    if (!ep_model(c))
        return false;
    etd_model_io io;
    etd_model_io_get(c->m, &io);
    if (io.named)
        return ep_inputs_named(c, keys, targets, &io);
    /* indices (Embedding inputs, class targets) are read as whole numbers:
     * the float fast path would round those above 2^24 */
    et_dtype xd, yd;
    etd_model_dtypes(c->m, &xd, &yd);
    const char *fast[3];
    int nf = 0;
    if (xd == ET_FLOAT32)
        fast[nf++] = "inputs";
    if (yd == ET_FLOAT32 && targets)
        fast[nf++] = "targets";
    fast[nf] = NULL;
    return ep_json(c, fast) && ep_keys(c, c->doc.root, keys) &&
           ep_tensor_as(c, "inputs", xd, &c->x, false) &&
           (!targets || ep_tensor_as(c, "targets", yd, &c->y, true));
}
