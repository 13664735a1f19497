/*
 * core_runner.c - executes differential test cases for the core ops.
 *
 * Usage: core_runner CASES.json [FIRST] [--pool]
 *
 * CASES.json is {"cases": [case, ...]} written by test_core_ops.py.  A case is
 * a small straight-line program over named tensors:
 *
 *   {"id": "add/bcast/3",
 *    "inputs": [{"name": "a", "shape": [3, 1], "data": [...],
 *                "requires_grad": true}, ...],
 *    "prog": [{"out": "y", "op": "add", "in": ["a", "b"], "p": {...}}, ...],
 *    "outputs": ["y", ...],
 *    "backward": {"root": "y", "grad": {"shape": [...], "data": [...]} | null,
 *                 "times": 1,
 *                 "then": [{"root": "z", "grad": ...}, ...]},     (optional)
 *    "retain": ["s", ...],                                       (optional)
 *    "reprs": ["y", ...]}       et_to_string() of these            (optional)
 *
 * A node may carry "_no_grad": true in "p" to run with grad mode off.
 * The pseudo-op "free" releases the runner's reference to its inputs at once
 * (names must not be used afterwards; the graph keeps what backward needs).
 * Gradients are reported for every input with requires_grad and for every
 * name in "retain" (non-leaves marked with retain_grad, or leaves made with
 * requires_grad_).
 *
 * For each case (starting at index FIRST, default 0) one JSON line is written
 * to stdout and flushed, so a crash loses only the crashing case:
 *
 *   {"id": ..., "outputs": {"y": {"shape": [...], "data": [...],
 *                                 "requires_grad": false, "is_leaf": true}},
 *    "grads": {"a": {"shape": ..., "data": ...} | null, ...}}
 * or
 *   {"id": ..., "error": "message", "code": 1, "at": "node or stage"}
 *
 * Floats are printed with "%.9g" (round-trips float32); non-finite values as
 * NaN / Infinity / -Infinity, which Python's json module accepts.
 *
 * By default every tensor is managed by explicit references: each op result
 * and each input is released at the end of its case.  With --pool, inputs are
 * created first (like parameters), then the case's ops and backward run
 * inside et_pool_begin()/et_pool_end(); outputs are printed before the pool
 * closes and gradients after it (so leaf gradients must outlive the pool).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "easytorch/easytorch.h"

#include "core_runner.h"

static et_tensor *env_get(env *e, const char *name) {
    for (int i = e->n - 1; i >= 0; i--)
        if (strcmp(slot_name(&e->slots[i]), name) == 0)
            return e->slots[i].t;
    return NULL;
}

/* Room for one more slot; -1 (t released) if out of memory. */
static int env_grow(env *e, et_tensor *t) {
    if (e->n < e->cap)
        return 0;
    int cap = e->cap ? e->cap * 2 : 256;
    slot *ns = realloc(e->slots, sizeof(slot) * (size_t)cap);
    if (!ns) {
        et_tensor_free(t);
        et_set_error(ET_ERR_NOMEM, "runner: out of memory");
        return -1;
    }
    e->slots = ns;
    e->cap = cap;
    return 0;
}

/* Stores t; the runner releases it at the end of the case unless it was
 * created inside an open pool (then the pool owns its creation reference). */
static int env_put_ex(env *e, const char *name, et_tensor *t, bool created) {
    if (env_grow(e, t) != 0)
        return -1;
    slot *s = &e->slots[e->n++];
    s->own_name[0] = '\0';
    s->name = name;
    s->t = t;
    s->owned = !(created && e->pool_open);
    return 0;
}
/* A tensor returned by the library. */
static int env_put(env *e, const char *name, et_tensor *t) { return env_put_ex(e, name, t, true); }

int env_put_derived(env *e, const char *base, const char *suffix, et_tensor *t) {
    if (env_grow(e, t) != 0)
        return -1;
    slot *s = &e->slots[e->n++];
    snprintf(s->own_name, sizeof s->own_name, "%s%s", base, suffix);
    s->name = NULL;
    s->t = t;
    s->owned = !e->pool_open;
    return 0;
}

static void env_clear(env *e) {
    if (e->pool_open) {
        et_pool_end();
        e->pool_open = false;
    }
    for (int i = 0; i < e->n; i++)
        if (e->slots[i].owned)
            et_tensor_free(e->slots[i].t);
    e->n = 0;
}

/* ---- JSON parameter helpers ---- */

double num_or(const cJSON *p, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "inf") == 0) return INFINITY;
        if (strcmp(v->valuestring, "-inf") == 0) return -INFINITY;
        if (strcmp(v->valuestring, "nan") == 0) return NAN;
    }
    return dflt;
}

bool bool_or(const cJSON *p, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return dflt;
}

/* Integer list param; returns count or -1 if absent. */
int ints_of(const cJSON *p, const char *key, int64_t *out, int cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    if (!cJSON_IsArray(v))
        return -1;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (n < cap)
            out[n] = (int64_t)it->valuedouble;
        n++;
    }
    return n < cap ? n : cap;
}

static et_tensor *tensor_of(const cJSON *spec) {
    int64_t shape[ET_MAX_DIMS + 1];
    int ndim = ints_of(spec, "shape", shape, ET_MAX_DIMS + 1);
    if (ndim < 0) {
        et_set_error(ET_ERR_ARG, "runner: tensor without shape");
        return NULL;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(spec, "data");
    int n = cJSON_GetArraySize(data);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(spec, "dtype");
    if (cJSON_IsString(dt) && strcmp(dt->valuestring, "int64") == 0) {
        int64_t *ibuf = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        if (!ibuf)
            return NULL;
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, data) ibuf[k++] = (int64_t)v->valuedouble;
        int64_t cnt = 1;
        for (int d = 0; d < ndim; d++)
            cnt *= shape[d];
        et_tensor *t = NULL;
        if (cnt != n)
            et_set_error(ET_ERR_ARG, "runner: %d data values for %lld elements", n, (long long)cnt);
        else
            t = et_tensor_new_int64(n ? ibuf : NULL, shape, ndim);
        free(ibuf);
        return t;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!buf)
        return NULL;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, data) {
        if (cJSON_IsNumber(it))
            buf[i] = (float)it->valuedouble;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "inf") == 0)
            buf[i] = INFINITY;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "-inf") == 0)
            buf[i] = -INFINITY;
        else
            buf[i] = NAN;
        i++;
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    if (numel != n) {
        free(buf);
        et_set_error(ET_ERR_ARG, "runner: %d data values for %lld elements", n, (long long)numel);
        return NULL;
    }
    et_tensor *t = et_tensor_new(n ? buf : NULL, shape, ndim);
    free(buf);
    return t;
}

/* ---- op dispatch ---- */

static const op_entry *find_op(const char *name) {
    for (size_t i = 0; i < core_runner_ops_basic_n; i++)  /* core_runner_basic.c */
        if (strcmp(core_runner_ops_basic[i].name, name) == 0)
            return &core_runner_ops_basic[i];
    for (size_t i = 0; i < core_runner_ops_more_n; i++)   /* core_runner_ops.c */
        if (strcmp(core_runner_ops_more[i].name, name) == 0)
            return &core_runner_ops_more[i];
    for (size_t i = 0; i < core_runner_conv_n; i++)       /* core_runner_conv.c */
        if (strcmp(core_runner_conv[i].name, name) == 0)
            return &core_runner_conv[i];
    return NULL;
}

/* ---- output ---- */

static void put_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void put_float(FILE *f, float v) {
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "Infinity" : "-Infinity", f);
    else
        fprintf(f, "%.9g", (double)v);
}

static void put_tensor(FILE *f, const et_tensor *t, bool with_rg) {
    int nd = et_ndim(t);
    const int64_t *sh = et_shape(t);
    fputs("{\"shape\": [", f);
    for (int i = 0; i < nd; i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)sh[i]);
    fputs("], \"data\": [", f);
    int64_t n = et_numel(t);
    if (et_tensor_dtype(t) == ET_INT64) {
        int64_t *ib = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        if (ib && et_copy_to_int64(t, ib) == ET_OK)
            for (int64_t i = 0; i < n; i++)
                fprintf(f, "%s%lld", i ? ", " : "", (long long)ib[i]);
        free(ib);
        fputs("], \"dtype\": \"int64\"", f);
        if (with_rg)
            fprintf(f, ", \"requires_grad\": %s, \"is_leaf\": %s",
                    et_requires_grad(t) ? "true" : "false", et_is_leaf(t) ? "true" : "false");
        fputs("}", f);
        return;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (buf) {
        et_copy_to(t, buf);
        for (int64_t i = 0; i < n; i++) {
            if (i)
                fputs(", ", f);
            put_float(f, buf[i]);
        }
        free(buf);
    }
    fputs("]", f);
    if (with_rg)
        fprintf(f, ", \"requires_grad\": %s, \"is_leaf\": %s", et_requires_grad(t) ? "true" : "false",
                et_is_leaf(t) ? "true" : "false");
    fputs("}", f);
}

static void put_error(FILE *f, const char *id, const char *where) {
    fputs("{\"id\": ", f);
    put_str(f, id);
    fputs(", \"error\": ", f);
    put_str(f, et_errmsg());
    fprintf(f, ", \"code\": %d, \"at\": ", (int)et_errcode());
    put_str(f, where);
    fputs("}\n", f);
}

/* ---- one case ---- */

static void run_case(env *e, const cJSON *c) {
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(c, "id");
    const char *id = cJSON_IsString(idj) ? idj->valuestring : "?";
    et_clear_error();
    et_set_grad_enabled(true);
    et_set_conv_algo(ET_CONV_AUTO);   /* a case may force one (core_runner_conv.c) */
    e->n = 0;
    snprintf(e->where, sizeof e->where, "inputs");

    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "inputs")) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        et_tensor *t = tensor_of(it);
        if (!t || !cJSON_IsString(nm))
            goto fail;
        if (env_put_ex(e, nm->valuestring, t, false) != 0)
            goto fail;
        if (bool_or(it, "requires_grad", false) && et_set_requires_grad(t, true) != ET_OK)
            goto fail;
    }

    /* Inputs live outside the pool, like parameters: their gradients must
     * survive et_pool_end() (they are read after it). */
    if (e->pool) {
        et_pool_begin();
        e->pool_open = true;
    }

    int node = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "prog")) {
        const cJSON *opj = cJSON_GetObjectItemCaseSensitive(it, "op");
        const cJSON *outj = cJSON_GetObjectItemCaseSensitive(it, "out");
        const char *opname = cJSON_IsString(opj) ? opj->valuestring : "?";
        snprintf(e->where, sizeof e->where, "node %d (%s)", node++, opname);
        if (strcmp(opname, "free") == 0) {
            /* drop the runner's reference now (the graph must keep what it needs);
             * a no-op for tensors owned by a pool */
            const cJSON *a;
            cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(it, "in")) {
                for (int i = e->n - 1; cJSON_IsString(a) && i >= 0; i--) {
                    slot *sl = &e->slots[i];
                    if (sl->t && strcmp(slot_name(sl), a->valuestring) == 0) {
                        if (sl->owned) {
                            et_tensor_free(sl->t);
                            sl->t = NULL;
                        }
                        break;
                    }
                }
            }
            continue;
        }
        const op_entry *op = find_op(opname);
        if (!op || !cJSON_IsString(outj)) {
            et_set_error(ET_ERR_ARG, "runner: unknown op '%s' or missing out", opname);
            goto fail;
        }
        call cl = {.e = e, .out = outj->valuestring,
                   .p = cJSON_GetObjectItemCaseSensitive(it, "p"), .nin = 0};
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(it, "in")) {
            et_tensor *t = cJSON_IsString(a) ? env_get(e, a->valuestring) : NULL;
            if (!t || cl.nin >= MAX_IN) {
                et_set_error(ET_ERR_ARG, "runner: bad input reference in %s", opname);
                goto fail;
            }
            cl.in[cl.nin++] = t;
        }
        if ((op->nin >= 0 && cl.nin != op->nin) || (op->nin < 0 && cl.nin < 1)) {
            et_set_error(ET_ERR_ARG, "runner: %s takes %d inputs, got %d", opname, op->nin, cl.nin);
            goto fail;
        }
        et_clear_error();
        /* "_no_grad": run this node with grad mode off (ET_NO_GRAD) */
        bool prev = et_set_grad_enabled(!bool_or(cl.p, "_no_grad", false));
        et_tensor *r = op->fn(&cl);
        et_set_grad_enabled(prev);
        if (!r) {
            if (et_errcode() == ET_OK)
                et_set_error(ET_ERR_COUNT, "returned NULL without setting an error");
            goto fail;
        }
        if (env_put_ex(e, cl.out, r, !op->runner_ref) != 0)
            goto fail;
    }

    const cJSON *bw = cJSON_GetObjectItemCaseSensitive(c, "backward");
    if (cJSON_IsObject(bw)) {
        snprintf(e->where, sizeof e->where, "backward");
        const cJSON *rootj = cJSON_GetObjectItemCaseSensitive(bw, "root");
        et_tensor *root = cJSON_IsString(rootj) ? env_get(e, rootj->valuestring) : NULL;
        if (!root) {
            et_set_error(ET_ERR_ARG, "runner: backward root missing");
            goto fail;
        }
        const cJSON *gj = cJSON_GetObjectItemCaseSensitive(bw, "grad");
        et_tensor *g = NULL;
        if (cJSON_IsObject(gj)) {
            g = tensor_of(gj);
            if (!g)
                goto fail;
            if (env_put(e, "<upstream>", g) != 0)
                goto fail;
        }
        int times = (int)num_or(bw, "times", 1);
        for (int k = 0; k < times; k++) {
            et_clear_error();
            et_status st = et_backward(root, g);
            if (st != ET_OK) {
                if (et_errcode() == ET_OK)
                    et_set_error(st, "backward failed without a message");
                goto fail;
            }
        }
        /* "then": further backward calls from other roots; gradients accumulate */
        const cJSON *more;
        cJSON_ArrayForEach(more, cJSON_GetObjectItemCaseSensitive(bw, "then")) {
            const cJSON *rj = cJSON_GetObjectItemCaseSensitive(more, "root");
            et_tensor *r2 = cJSON_IsString(rj) ? env_get(e, rj->valuestring) : NULL;
            if (!r2) {
                et_set_error(ET_ERR_ARG, "runner: backward root missing");
                goto fail;
            }
            const cJSON *g2j = cJSON_GetObjectItemCaseSensitive(more, "grad");
            et_tensor *g2 = NULL;
            if (cJSON_IsObject(g2j)) {
                if (!(g2 = tensor_of(g2j)) || env_put(e, "<upstream>", g2) != 0)
                    goto fail;
            }
            et_clear_error();
            et_status st = et_backward(r2, g2);
            if (st != ET_OK) {
                if (et_errcode() == ET_OK)
                    et_set_error(st, "backward failed without a message");
                goto fail;
            }
        }
    }

    /* report */
    fputs("{\"id\": ", stdout);
    put_str(stdout, id);
    fputs(", \"outputs\": {", stdout);
    int k = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "outputs")) {
        et_tensor *t = cJSON_IsString(it) ? env_get(e, it->valuestring) : NULL;
        if (k++)
            fputs(", ", stdout);
        put_str(stdout, cJSON_IsString(it) ? it->valuestring : "?");
        fputs(": ", stdout);
        if (t)
            put_tensor(stdout, t, true);
        else
            fputs("null", stdout);
    }
    /* "reprs": et_to_string() of named tensors (compared with PyTorch's str()) */
    const cJSON *reprs = cJSON_GetObjectItemCaseSensitive(c, "reprs");
    if (cJSON_IsArray(reprs)) {
        fputs("}, \"reprs\": {", stdout);
        k = 0;
        cJSON_ArrayForEach(it, reprs) {
            et_tensor *t = cJSON_IsString(it) ? env_get(e, it->valuestring) : NULL;
            char *str = t ? et_to_string(t) : NULL;
            if (k++)
                fputs(", ", stdout);
            put_str(stdout, cJSON_IsString(it) ? it->valuestring : "?");
            fputs(": ", stdout);
            if (str)
                put_str(stdout, str);
            else
                fputs("null", stdout);
            free(str);
        }
    }
    fputs("}, \"grads\": {", stdout);
    /* keep retained non-leaves alive, then close the pool before reading gradients */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "retain")) {
        et_tensor *t = cJSON_IsString(it) ? env_get(e, it->valuestring) : NULL;
        if (t && env_put_ex(e, it->valuestring, et_tensor_ref(t), false) != 0)
            goto fail;
    }
    if (e->pool_open) {
        et_pool_end();
        e->pool_open = false;
    }
    k = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "inputs")) {
        if (!bool_or(it, "requires_grad", false))
            continue;
        const char *nm = cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring;
        et_tensor *t = env_get(e, nm);
        et_tensor *g = t ? et_grad(t) : NULL;
        if (k++)
            fputs(", ", stdout);
        put_str(stdout, nm);
        fputs(": ", stdout);
        if (g)
            put_tensor(stdout, g, false);
        else
            fputs("null", stdout);
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "retain")) {
        et_tensor *t = cJSON_IsString(it) ? env_get(e, it->valuestring) : NULL;
        et_tensor *g = t ? et_grad(t) : NULL;
        if (k++)
            fputs(", ", stdout);
        put_str(stdout, cJSON_IsString(it) ? it->valuestring : "?");
        fputs(": ", stdout);
        if (g)
            put_tensor(stdout, g, false);
        else
            fputs("null", stdout);
    }
    fputs("}}\n", stdout);
    fflush(stdout);
    env_clear(e);
    return;

fail:
    put_error(stdout, id, e->where);
    fflush(stdout);
    env_clear(e);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASES.json [FIRST] [--pool]\n", argv[0]);
        return 2;
    }
    long first = 0;
    bool pool = false;
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "--pool") == 0)
            pool = true;
        else
            first = strtol(argv[a], NULL, 10);
    }
    size_t len = 0;
    char *text = slurp(argv[1], &len);
    if (!text) {
        fprintf(stderr, "core_runner: cannot read %s\n", argv[1]);
        return 2;
    }
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    if (!doc) {
        fprintf(stderr, "core_runner: %s is not valid JSON\n", argv[1]);
        return 2;
    }
    env *e = calloc(1, sizeof *e);
    if (!e) {
        cJSON_Delete(doc);
        return 2;
    }
    e->pool = pool;
    long i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        if (i++ < first)
            continue;
        run_case(e, c);
    }
    free(e->slots);
    free(e);
    cJSON_Delete(doc);
    return 0;
}
