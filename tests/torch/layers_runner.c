/*
 * layers_runner.c - the easytorch side of tests/torch/test_layers.py: the
 * layer ops of functional.h, int64 tensors, and (kind "module") the
 * normalisation and embedding modules of nn.h over several train/eval
 * steps.
 *
 * Usage: layers_runner CASES.json [FIRST]
 *
 * A case (see test_layers.py for the generator):
 *   {"id": ..., "kind": "fn", "op": "batch_norm",
 *    "tensors": {"x": T, "weight": T, ...}, "args": {...},
 *    "grad_out": {"shape", "data"} | null,
 *    "report": ["running_mean", ...]}       tensors reported after the op
 *   T = {"shape": [...], "data": [...], "dtype": "int64"?, "requires_grad": bool?,
 *        "t": bool?}   t: data is the transpose of the last two dims; the
 *                      runner transposes it back (a non-contiguous view of
 *                      a leaf; gradients are reported for the leaf)
 *   {"id": ..., "kind": "module", "module": {"type": "BatchNorm1d", ...},
 *    "state": {name: T}, "steps": [{"train": bool, "input": T,
 *    "grad_out": T | null}, ...], "state_out": "path.safetensors"}
 *
 * One JSON line per case on stdout:
 *   {"id": ..., "out": T, "repr": "...", "grads": {name: T | null},
 *    "report": {name: T}}                                      (fn)
 *   {"id": ..., "steps": [{"out": T, "input_grad": T | null,
 *    "grads": {param: T | null}}, ...]}                        (module; the
 *    final state_dict goes to state_out through et_safetensors_save)
 *   or {"id": ..., "error": msg, "code": status, "at": stage}
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "easytorch/easytorch.h"

/* ---- JSON helpers ---- */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = get(o, k);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v) && strcmp(v->valuestring, "nan") == 0)
        return NAN;
    return dflt;
}

static bool flag(const cJSON *o, const char *k, bool dflt)
{
    const cJSON *v = get(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int ints(const cJSON *o, const char *k, int64_t *out, int cap)
{
    const cJSON *v = get(o, k), *it;
    if (!cJSON_IsArray(v))
        return -1;
    int n = 0;
    cJSON_ArrayForEach(it, v) {
        if (n < cap)
            out[n] = (int64_t)it->valuedouble;
        n++;
    }
    return n < cap ? n : cap;
}

static int64_t idx_or(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : ET_NO_INDEX;
}

/* ---- tensors (every case runs inside one pool: nothing is freed by hand) ---- */

typedef struct {
    char name[48];
    et_tensor *leaf;    /* what requires grad (reported) */
    et_tensor *view;    /* what the op sees (leaf or its transpose) */
} named;

#define MAX_T 12

typedef struct {
    named t[MAX_T];
    int n;
} tensors;

static et_tensor *tensor_of(const cJSON *spec)
{
    int64_t shape[ET_MAX_DIMS];
    int nd = ints(spec, "shape", shape, ET_MAX_DIMS);
    const cJSON *data = get(spec, "data"), *it;
    int n = cJSON_GetArraySize(data);
    int64_t cnt = 1;
    for (int d = 0; d < nd; d++)
        cnt *= shape[d];
    if (nd < 0 || cnt != n) {
        et_set_error(ET_ERR_ARG, "runner: bad tensor spec (%d values)", n);
        return NULL;
    }
    const cJSON *dt = get(spec, "dtype");
    bool i64 = cJSON_IsString(dt) && strcmp(dt->valuestring, "int64") == 0;
    void *buf = malloc((size_t)(n > 0 ? n : 1) * 8);
    if (!buf)
        return NULL;
    int k = 0;
    cJSON_ArrayForEach(it, data) {
        double v = cJSON_IsNumber(it) ? it->valuedouble
                   : cJSON_IsString(it) && strcmp(it->valuestring, "inf") == 0 ? INFINITY
                   : cJSON_IsString(it) && strcmp(it->valuestring, "-inf") == 0 ? -INFINITY
                                                                                 : NAN;
        if (i64)
            ((int64_t *)buf)[k++] = (int64_t)v;
        else
            ((float *)buf)[k++] = (float)v;
    }
    et_tensor *t = i64 ? et_tensor_new_int64(buf, shape, nd) : et_tensor_new(buf, shape, nd);
    free(buf);
    return t;
}

static bool add_tensor(tensors *ts, const char *name, const cJSON *spec)
{
    if (ts->n == MAX_T)
        return false;
    named *e = &ts->t[ts->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->leaf = tensor_of(spec);
    if (!e->leaf)
        return false;
    ts->n++;
    if (flag(spec, "requires_grad", false) && et_set_requires_grad(e->leaf, true) != ET_OK)
        return false;
    e->view = flag(spec, "t", false) ? et_transpose(e->leaf, -1, -2) : e->leaf;
    return e->view != NULL;
}

static et_tensor *tget(tensors *ts, const char *name)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].name, name) == 0)
            return ts->t[i].view;
    return NULL;
}

/* ---- output ---- */

static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_tensor(FILE *f, const et_tensor *t)
{
    if (!t) {
        fputs("null", f);
        return;
    }
    fputs("{\"shape\": [", f);
    for (int i = 0; i < et_ndim(t); i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)et_shape(t)[i]);
    fputs("], \"data\": [", f);
    int64_t n = et_numel(t);
    if (et_tensor_dtype(t) == ET_INT64) {
        int64_t *b = malloc((size_t)(n > 0 ? n : 1) * sizeof *b);
        if (b && et_copy_to_int64(t, b) == ET_OK)
            for (int64_t i = 0; i < n; i++)
                fprintf(f, "%s%lld", i ? ", " : "", (long long)b[i]);
        free(b);
        fputs("], \"dtype\": \"int64\"}", f);
        return;
    }
    float *b = malloc((size_t)(n > 0 ? n : 1) * sizeof *b);
    if (b) {
        et_copy_to(t, b);
        for (int64_t i = 0; i < n; i++) {
            float v = b[i];
            fputs(i ? ", " : "", f);
            if (isnan(v))
                fputs("NaN", f);
            else if (isinf(v))
                fputs(v > 0 ? "Infinity" : "-Infinity", f);
            else
                fprintf(f, "%.9g", (double)v);
        }
    }
    free(b);
    fputs("]}", f);
}

static void put_error(const char *id, const char *at)
{
    fputs("{\"id\": ", stdout);
    put_str(stdout, id);
    fputs(", \"error\": ", stdout);
    put_str(stdout, et_errmsg());
    printf(", \"code\": %d, \"at\": ", (int)et_errcode());
    put_str(stdout, at);
    fputs("}\n", stdout);
}

/* ---- functional ops ---- */

static et_reduction reduction_of(const cJSON *a)
{
    const cJSON *r = get(a, "reduction");
    et_reduction red = ET_REDUCTION_MEAN;
    if (cJSON_IsString(r))
        et_reduction_parse(r->valuestring, &red);
    return red;
}

/* A chain of views of "x" (int64 or float): [["transpose", 0, 1], ["slice", d, s, e, step],
 * ["reshape", [shape]], ["unsqueeze", d], ["flatten", s, e], ["select", d, i], ["cat", d]] */
static et_tensor *views(tensors *ts, const cJSON *chain)
{
    et_tensor *x = tget(ts, "x");
    const cJSON *st;
    cJSON_ArrayForEach(st, chain) {
        const char *op = cJSON_GetArrayItem(st, 0)->valuestring;
        double a = cJSON_GetArraySize(st) > 1 && cJSON_IsNumber(cJSON_GetArrayItem(st, 1))
                       ? cJSON_GetArrayItem(st, 1)->valuedouble : 0;
        double b = cJSON_GetArraySize(st) > 2 ? cJSON_GetArrayItem(st, 2)->valuedouble : 0;
        double c = cJSON_GetArraySize(st) > 3 ? cJSON_GetArrayItem(st, 3)->valuedouble : 0;
        double d = cJSON_GetArraySize(st) > 4 ? cJSON_GetArrayItem(st, 4)->valuedouble : 1;
        if (strcmp(op, "transpose") == 0)
            x = et_transpose(x, (int)a, (int)b);
        else if (strcmp(op, "slice") == 0)
            x = et_slice(x, (int)a, (int64_t)b, (int64_t)c, (int64_t)d);
        else if (strcmp(op, "unsqueeze") == 0)
            x = et_unsqueeze(x, (int)a);
        else if (strcmp(op, "flatten") == 0)
            x = et_flatten(x, (int)a, (int)b);
        else if (strcmp(op, "select") == 0)
            x = et_select(x, (int)a, (int64_t)b);
        else if (strcmp(op, "contiguous") == 0)
            x = et_contiguous(x);
        else if (strcmp(op, "cat") == 0)
            x = et_cat((et_tensor *[]){x, x}, 2, (int)a);
        else if (strcmp(op, "to_float") == 0)
            x = et_to_dtype(x, ET_FLOAT32);
        else if (strcmp(op, "to_int64") == 0)
            x = et_to_dtype(x, ET_INT64);
        else if (strcmp(op, "reshape") == 0) {
            int64_t sh[ET_MAX_DIMS];
            int n = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, cJSON_GetArrayItem(st, 1)) if (n < ET_MAX_DIMS) sh[n++] =
                (int64_t)v->valuedouble;
            x = et_reshape(x, sh, n);
        } else {
            et_set_error(ET_ERR_ARG, "runner: unknown view %s", op);
            return NULL;
        }
        if (!x)
            return NULL;
    }
    return x;
}

static et_tensor *run_fn(const char *op, tensors *ts, const cJSON *a)
{
    if (strcmp(op, "batch_norm") == 0)
        return et_batch_norm(tget(ts, "x"), tget(ts, "running_mean"), tget(ts, "running_var"),
                             tget(ts, "weight"), tget(ts, "bias"), flag(a, "training", true),
                             num(a, "momentum", 0.1), num(a, "eps", 1e-5));
    if (strcmp(op, "layer_norm") == 0) {
        int64_t ns[ET_MAX_DIMS];
        int n = ints(a, "normalized_shape", ns, ET_MAX_DIMS);
        return et_layer_norm(tget(ts, "x"), ns, n, tget(ts, "weight"), tget(ts, "bias"),
                             num(a, "eps", 1e-5));
    }
    if (strcmp(op, "group_norm") == 0)
        return et_group_norm(tget(ts, "x"), (int64_t)num(a, "num_groups", 1), tget(ts, "weight"),
                             tget(ts, "bias"), num(a, "eps", 1e-5));
    if (strcmp(op, "embedding") == 0) {
        et_embedding_opts o = ET_EMBEDDING_DEFAULTS;
        o.padding_idx = idx_or(a, "padding_idx");
        o.max_norm = num(a, "max_norm", 0);
        o.norm_type = num(a, "norm_type", 2);
        o.scale_grad_by_freq = flag(a, "scale_grad_by_freq", false);
        return et_embedding(tget(ts, "input"), tget(ts, "weight"), o);
    }
    if (strcmp(op, "embedding_bag") == 0) {
        et_embedding_bag_opts o = ET_EMBEDDING_BAG_DEFAULTS;
        const cJSON *m = get(a, "mode");
        if (cJSON_IsString(m) && et_bag_mode_parse(m->valuestring, &o.mode) != ET_OK)
            return NULL;
        o.offsets = tget(ts, "offsets");
        o.per_sample_weights = tget(ts, "per_sample_weights");
        o.include_last_offset = flag(a, "include_last_offset", false);
        o.padding_idx = idx_or(a, "padding_idx");
        o.max_norm = num(a, "max_norm", 0);
        o.norm_type = num(a, "norm_type", 2);
        o.scale_grad_by_freq = flag(a, "scale_grad_by_freq", false);
        return et_embedding_bag(tget(ts, "input"), tget(ts, "weight"), o);
    }
    if (strcmp(op, "cross_entropy") == 0 || strcmp(op, "nll_loss") == 0) {
        et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
        o.weight = tget(ts, "weight");
        o.ignore_index = (int64_t)num(a, "ignore_index", -100);
        o.label_smoothing = (float)num(a, "label_smoothing", 0);
        return op[0] == 'c' ? et_cross_entropy_ex(tget(ts, "input"), tget(ts, "target"),
                                                  reduction_of(a), o)
                            : et_nll_loss_ex(tget(ts, "input"), tget(ts, "target"),
                                             reduction_of(a), o);
    }
    if (strcmp(op, "index_select") == 0)
        return et_index_select(tget(ts, "x"), (int)num(a, "dim", 0), tget(ts, "index"));
    if (strcmp(op, "gather") == 0)
        return et_gather(tget(ts, "x"), (int)num(a, "dim", 0), tget(ts, "index"));
    if (strcmp(op, "views") == 0)
        return views(ts, get(a, "chain"));
    et_set_error(ET_ERR_ARG, "runner: unknown op %s", op);
    return NULL;
}

/* Runs a fn case; writes its result object (without the id) to f. */
static bool fn_case(const cJSON *c, FILE *f, const char **at)
{
    tensors ts = {0};
    const cJSON *it;
    *at = "inputs";
    cJSON_ArrayForEach(it, get(c, "tensors")) {
        if (!add_tensor(&ts, it->string, it))
            return false;
    }
    *at = "forward";
    const cJSON *opj = get(c, "op");
    et_tensor *out = run_fn(cJSON_IsString(opj) ? opj->valuestring : "?", &ts, get(c, "args"));
    if (!out)
        return false;
    const cJSON *go = get(c, "grad_out");
    if (cJSON_IsObject(go)) {
        *at = "backward";
        et_tensor *g = tensor_of(go);
        if (!g || et_backward(out, g) != ET_OK)
            return false;
    }
    fputs(", \"out\": ", f);
    put_tensor(f, out);
    char *r = et_to_string(out);
    fputs(", \"repr\": ", f);
    put_str(f, r ? r : "");
    free(r);
    fputs(", \"grads\": {", f);
    int k = 0;
    for (int i = 0; i < ts.n; i++) {
        if (!et_requires_grad(ts.t[i].leaf))
            continue;
        fputs(k++ ? ", " : "", f);
        put_str(f, ts.t[i].name);
        fputs(": ", f);
        put_tensor(f, et_grad(ts.t[i].leaf));
    }
    fputs("}, \"report\": {", f);
    k = 0;
    cJSON_ArrayForEach(it, get(c, "report")) {
        fputs(k++ ? ", " : "", f);
        put_str(f, it->valuestring);
        fputs(": ", f);
        put_tensor(f, tget(&ts, it->valuestring));
    }
    fputs("}", f);
    return true;
}

/* ---- modules ---- */

static et_module *module_of(const cJSON *spec);

static bool module_steps(et_module *m, const cJSON *c, FILE *f, char *at, size_t atcap)
{
    const cJSON *it;
    int si = 0;
    fputs(", \"steps\": [", f);
    cJSON_ArrayForEach(it, get(c, "steps")) {
        snprintf(at, atcap, "step %d", si);
        et_module_train(m, flag(it, "train", true));
        tensors ts = {0};
        if (!add_tensor(&ts, "input", get(it, "input")))
            return false;
        if (cJSON_IsObject(get(it, "offsets")) && !add_tensor(&ts, "offsets", get(it, "offsets")))
            return false;
        if (cJSON_IsObject(get(it, "per_sample_weights")) &&
            !add_tensor(&ts, "per_sample_weights", get(it, "per_sample_weights")))
            return false;
        et_module_zero_grad(m);
        et_tensor *y = ts.n > 1 ? et_embedding_bag_module_forward(m, tget(&ts, "input"),
                                                                 tget(&ts, "offsets"),
                                                                 tget(&ts, "per_sample_weights"))
                                : et_module_forward(m, tget(&ts, "input"));
        if (!y)
            return false;
        const cJSON *go = get(it, "grad_out");
        if (cJSON_IsObject(go)) {
            et_tensor *g = tensor_of(go);
            if (!g || et_backward(y, g) != ET_OK)
                return false;
        }
        fputs(si++ ? ", {\"out\": " : "{\"out\": ", f);
        put_tensor(f, y);
        fputs(", \"input_grad\": ", f);
        put_tensor(f, et_requires_grad(ts.t[0].leaf) ? et_grad(ts.t[0].leaf) : NULL);
        et_tensor *pw = tget(&ts, "per_sample_weights");
        if (pw && et_requires_grad(pw)) {
            fputs(", \"psw_grad\": ", f);
            put_tensor(f, et_grad(pw));
        }
        fputs(", \"grads\": {", f);
        for (int p = 0; p < et_module_num_params(m); p++) {
            fputs(p ? ", " : "", f);
            put_str(f, et_module_param_name(m, p));
            fputs(": ", f);
            put_tensor(f, et_grad(et_module_param(m, p)));
        }
        fputs("}}", f);
    }
    fputs("]", f);
    return true;
}

static bool module_case(const cJSON *c, FILE *f, char *at, size_t atcap)
{
    snprintf(at, atcap, "module");
    et_module *m = module_of(get(c, "module"));
    if (!m)
        return false;
    bool ok = true;
    const cJSON *it;
    if (cJSON_IsObject(get(c, "state"))) {
        snprintf(at, atcap, "state");
        et_tensor_dict *sd = et_tensor_dict_new();
        ok = sd != NULL;
        cJSON_ArrayForEach(it, get(c, "state")) {
            et_tensor *t = ok ? tensor_of(it) : NULL;
            ok = t && et_tensor_dict_set(sd, it->string, t) == ET_OK;
        }
        ok = ok && et_module_load_state_dict(m, sd) == ET_OK;
        et_tensor_dict_free(sd);
    }
    ok = ok && module_steps(m, c, f, at, atcap);
    const cJSON *path = get(c, "state_out");
    if (ok && cJSON_IsString(path)) {
        snprintf(at, atcap, "state_out");
        et_tensor_dict *out = et_module_state_dict(m);
        ok = out && et_safetensors_save(out, path->valuestring) == ET_OK;
        et_tensor_dict_free(out);
    }
    et_module_free(m);
    return ok;
}

static double momentum_of(const cJSON *spec)
{
    const cJSON *v = get(spec, "momentum");
    return cJSON_IsNull(v) ? NAN : num(spec, "momentum", 0.1);
}

static et_module *module_of(const cJSON *spec)
{
    const cJSON *type = get(spec, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "?";
    static et_generator *g;
    if (!g)
        g = et_generator_new(1);   /* initial values are overwritten by "state" */
    if (strcmp(t, "Sequential") == 0) {
        et_module *s = et_sequential_new();
        const cJSON *it;
        cJSON_ArrayForEach(it, get(spec, "layers")) {
            et_module *c = module_of(it);
            if (!c || et_sequential_append(s, c) != ET_OK) {
                et_module_free(s);
                return NULL;
            }
        }
        return s;
    }
    if (strcmp(t, "BatchNorm1d") == 0 || strcmp(t, "BatchNorm2d") == 0) {
        et_batch_norm_opts o = ET_BATCH_NORM_DEFAULTS;
        o.eps = num(spec, "eps", 1e-5);
        o.momentum = momentum_of(spec);
        o.affine = flag(spec, "affine", true);
        o.track_running_stats = flag(spec, "track_running_stats", true);
        int64_t C = (int64_t)num(spec, "num_features", 0);
        return t[9] == '1' ? et_batch_norm1d_new(C, o) : et_batch_norm2d_new(C, o);
    }
    if (strcmp(t, "LayerNorm") == 0) {
        int64_t ns[ET_MAX_DIMS];
        int n = ints(spec, "normalized_shape", ns, ET_MAX_DIMS);
        return et_layer_norm_new(ns, n, num(spec, "eps", 1e-5),
                                 flag(spec, "elementwise_affine", true));
    }
    if (strcmp(t, "GroupNorm") == 0)
        return et_group_norm_new((int64_t)num(spec, "num_groups", 0),
                                 (int64_t)num(spec, "num_channels", 0), num(spec, "eps", 1e-5),
                                 flag(spec, "affine", true));
    if (strcmp(t, "Embedding") == 0 || strcmp(t, "EmbeddingBag") == 0) {
        et_embedding_bag_opts o = ET_EMBEDDING_BAG_DEFAULTS;
        o.padding_idx = idx_or(spec, "padding_idx");
        o.max_norm = num(spec, "max_norm", 0);
        o.norm_type = num(spec, "norm_type", 2);
        o.scale_grad_by_freq = flag(spec, "scale_grad_by_freq", false);
        o.include_last_offset = flag(spec, "include_last_offset", false);
        const cJSON *mode = get(spec, "mode");
        if (cJSON_IsString(mode) && et_bag_mode_parse(mode->valuestring, &o.mode) != ET_OK)
            return NULL;
        int64_t V = (int64_t)num(spec, "num_embeddings", 0), D = (int64_t)num(spec, "embedding_dim", 0);
        if (t[9] == 'B')
            return et_embedding_bag_new(V, D, o, g);
        et_embedding_opts eo = {.padding_idx = o.padding_idx, .max_norm = o.max_norm,
                                .norm_type = o.norm_type, .scale_grad_by_freq = o.scale_grad_by_freq};
        return et_embedding_new(V, D, eo, g);
    }
    if (strcmp(t, "Linear") == 0)
        return et_linear_new((int64_t)num(spec, "in_features", 0),
                             (int64_t)num(spec, "out_features", 0), flag(spec, "bias", true), g);
    if (strcmp(t, "Flatten") == 0)
        return et_flatten_new((int)num(spec, "start_dim", 1), (int)num(spec, "end_dim", -1));
    if (strcmp(t, "Tanh") == 0)
        return et_tanh_new();
    if (strcmp(t, "ReLU") == 0)
        return et_relu_new();
    et_set_error(ET_ERR_ARG, "runner: unknown module %s", t);
    return NULL;
}

/* ---- main ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf)
        buf[*len] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASES.json [FIRST]\n", argv[0]);
        return 2;
    }
    long first = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    size_t len;
    char *text = slurp(argv[1], &len);
    cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (!doc) {
        fprintf(stderr, "layers_runner: cannot read %s\n", argv[1]);
        return 2;
    }
    long i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, get(doc, "cases")) {
        if (i++ < first)
            continue;
        const cJSON *idj = get(c, "id"), *kind = get(c, "kind");
        const char *id = cJSON_IsString(idj) ? idj->valuestring : "?";
        char *res = NULL;
        size_t rlen = 0;
        FILE *f = open_memstream(&res, &rlen);
        if (!f)
            return 2;
        char at[64] = "";
        const char *fat = NULL;
        et_clear_error();
        et_pool_begin();
        bool ok = cJSON_IsString(kind) && strcmp(kind->valuestring, "module") == 0
                      ? module_case(c, f, at, sizeof at)
                      : fn_case(c, f, &fat);
        fclose(f);
        if (ok) {
            fputs("{\"id\": ", stdout);
            put_str(stdout, id);
            printf("%s}\n", res);
        } else {
            if (et_errcode() == ET_OK)
                et_set_error(ET_ERR_COUNT, "failed without an error message");
            put_error(id, fat ? fat : at);
        }
        et_pool_end();
        free(res);
        fflush(stdout);
    }
    cJSON_Delete(doc);
    return 0;
}
