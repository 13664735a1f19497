/* handlers.c - the endpoints of easytorchd (docs/API.md) and their routing
 * table.  Handlers parse and validate the request, call the registry, and
 * leave a response in the etd_req. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/http_internal.h"
#include "server/registry.h"
#include "server/formats/json_in.h"
#include "server/tensor_json.h"

#define ERRCAP 1024

/* ---------------------------------------------------------------- request helpers */

/* Is every number under j finite?  The cheap walk for the common case; the
 * path of a bad number is built (numbers_finite) only when there is one. */
static bool all_finite(const cJSON *j)
{
    for (const cJSON *e = j; e; e = e->next) {
        if (cJSON_IsNumber(e) && !isfinite(e->valuedouble))
            return false;
        if (e->child && !all_finite(e->child))
            return false;
    }
    return true;
}

/* First non-finite number under j (cJSON turns 1e999 into inf); its path
 * ("inputs[0][2]") goes into path. */
static bool numbers_finite(const cJSON *j, char *path, size_t len, size_t cap)
{
    size_t i = 0;
    for (const cJSON *e = j; e; e = e->next, i++) {
        size_t n = len;
        if (e->string)
            n += (size_t)snprintf(path + len, cap - len, "%s%s", len ? "." : "", e->string);
        else if (len)
            n += (size_t)snprintf(path + len, cap - len, "[%zu]", i);
        if (n >= cap)
            n = cap - 1;
        if (cJSON_IsNumber(e) && !isfinite(e->valuedouble))
            return false;
        if (e->child && !numbers_finite(e->child, path, n, cap))
            return false;
        path[len] = '\0';
    }
    return true;
}

/* Length of the JSON number at p (strict grammar: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or 0.  cJSON itself is lenient here (it
 * takes "01" and "1."), so the byte scan below checks every number. */
static size_t number_len(const char *p, const char *end)
{
    const char *s = p;
#define DIG(c) ((c) >= '0' && (c) <= '9')
    if (p < end && *p == '-')
        p++;
    if (p >= end || !DIG(*p))
        return 0;
    if (*p == '0')
        p++;
    else
        while (p < end && DIG(*p))
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !DIG(*p))
            return 0;
        while (p < end && DIG(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !DIG(*p))
            return 0;
        while (p < end && DIG(*p))
            p++;
    }
    /* a number ends at a delimiter, never in more number-ish characters */
    if (p < end && (DIG(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
        return 0;
#undef DIG
    return (size_t)(p - s);
}

/* Skip one JSON value (no validation: cJSON validates what remains). */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return NULL;
            p++;
        } else if (c == '[' || c == '{') {
            depth++;
            p++;
        } else if (c == ']' || c == '}') {
            if (depth == 0)
                return p;
            depth--;
            p++;
        } else if (c == ',' && depth == 0) {
            return p;
        } else {
            p++;
        }
        if (depth == 0 && (c == '"' || c == ']' || c == '}'))
            return p;
    }
    return depth == 0 ? p : NULL;
}

/* The fast path for big tensors: take the top-level members named in
 * keys[] out of the body when etd_fast_array accepts them, and put null in
 * their place so cJSON only sees the small rest.  Returns the rewritten
 * body (malloc'ed) or NULL when nothing was taken. */
static char *take_fast_tensors(etd_req *q, const char *const *keys, size_t *new_len)
{
    const char *p = q->body, *end = q->body + q->len;
    const char *from[2], *to[2];
    int n = 0;
    p = p + strspn(p, " \t\r\n");
    if (p >= end || *p != '{')
        return NULL;
    p++;
    while (n < 2) {
        p += strspn(p, " \t\r\n");
        if (p >= end || *p != '"')
            break;
        const char *k = ++p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end || *p != '"')
            break;
        size_t kl = (size_t)(p - k);
        p++;
        p += strspn(p, " \t\r\n");
        if (p >= end || *p != ':')
            break;
        p++;
        p += strspn(p, " \t\r\n");
        int want = -1;
        for (int i = 0; keys[i]; i++)
            if (strlen(keys[i]) == kl && strncmp(keys[i], k, kl) == 0)
                want = i;
        const char *v = p;
        const char *e = NULL;
        if (want >= 0 && (*p == '[' || *p == '{') && kl < sizeof q->fast_key[0]) {
            etd_array a;
            e = *p == '[' ? etd_fast_array(p, end, q->srv->cfg.max_elems, &a)
                          : etd_fast_shape_data(p, end, q->srv->cfg.max_elems, &a);
            if (e && a.ndim + 1 > q->srv->cfg.max_depth) { /* let the scan report it */
                etd_array_free(&a);
                e = NULL;
            }
            if (e) {
                for (int i = 0; i < q->nfast; i++)
                    if (strcmp(q->fast_key[i], keys[want]) == 0)
                        e = NULL; /* repeated key: let the general path report it */
                if (!e) {
                    etd_array_free(&a);
                } else {
                    memcpy(q->fast_key[q->nfast], k, kl);
                    q->fast_key[q->nfast][kl] = '\0';
                    q->fast[q->nfast++] = a;
                    from[n] = v;
                    to[n++] = e;
                }
            }
        }
        if (!e)
            e = skip_value(p, end);
        if (!e)
            break;
        p = e + strspn(e, " \t\r\n");
        if (p >= end || *p != ',')
            break;
        p++;
    }
    if (n == 0)
        return NULL;
    size_t len = q->len;
    for (int i = 0; i < n; i++)
        len -= (size_t)(to[i] - from[i]) - 4;
    char *b = malloc(len + 1), *o = b;
    if (!b)
        return NULL;
    const char *src = q->body;
    for (int i = 0; i < n; i++) {
        memcpy(o, src, (size_t)(from[i] - src));
        o += from[i] - src;
        memcpy(o, "null", 4);
        o += 4;
        src = to[i];
    }
    memcpy(o, src, (size_t)(q->body + q->len - src));
    o += q->body + q->len - src;
    *o = '\0';
    *new_len = (size_t)(o - b);
    return b;
}

/* Parse the body as strict JSON: one value, nothing after it, no NUL bytes,
 * nesting within --max-depth, every number finite.  NULL + 400 otherwise.
 * Members named in fast_keys may be taken out by the fast path first (see
 * take_fast_tensors; get_array finds them). */
/* One pass over the bytes: nesting depth, strict numbers, no \u0000 in
 * strings.  false + 400 reply on the first problem. */
static bool scan_body(etd_req *q, const char *body, size_t len)
{
    int depth = 0;
    bool in_str = false;
    size_t values = 0; /* cJSON nodes to come (keys counted too): bounds its memory */
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (!in_str && (ch == '"' || ch == '[' || ch == '{' || ch == '-' || ch == 't' ||
                        ch == 'f' || ch == 'n' || (ch >= '0' && ch <= '9')) &&
            ++values > q->srv->cfg.max_json_values) {
            etd_reply_error(q, 413, "body: more than %zu JSON values (--max-json-values); send "
                            "tensors as rectangular nested lists (read without that cost) or "
                            "parameters as safetensors", q->srv->cfg.max_json_values);
            return false;
        }
        if (in_str) {
            if (ch == '\\' && i + 5 < len && strncmp(body + i + 1, "u0000", 5) == 0) {
                etd_reply_error(q, 400, "body: a string contains \\u0000 (NUL is not allowed in "
                                "names or any other string)");
                return false;
            }
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > q->srv->cfg.max_depth) {
                etd_reply_error(q, 400, "body: JSON nested deeper than %d levels",
                                q->srv->cfg.max_depth);
                return false;
            }
        } else if (ch == ']' || ch == '}') {
            depth--;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t n = number_len(body + i, body + len);
            if (n == 0) {
                etd_reply_error(q, 400, "body: invalid JSON number near byte %zu", i);
                return false;
            }
            i += n - 1;
        }
    }
    return true;
}

/* Parse the body as strict JSON: one value, nothing after it, no NUL bytes,
 * strict numbers, nesting within --max-depth, every number finite.  NULL +
 * 400 otherwise.  Members named in fast_keys may be taken out by the fast
 * path first (take_fast_tensors; get_array finds them): the byte scan and
 * cJSON then only see the rest, the fast parser having checked the same
 * rules on what it took. */
static cJSON *json_body_fast(etd_req *q, const char *const *fast_keys)
{
    if (q->len == 0) {
        etd_reply_error(q, 400, "body: expected a JSON object, got an empty body");
        return NULL;
    }
    if (memchr(q->body, '\0', q->len)) {
        etd_reply_error(q, 400, "body: contains a NUL byte");
        return NULL;
    }
    size_t flen = 0;
    char *fbody = fast_keys ? take_fast_tensors(q, fast_keys, &flen) : NULL;
    const char *body = fbody ? fbody : q->body;
    size_t len = fbody ? flen : q->len;
    if (!scan_body(q, body, len)) {
        if (fbody) /* report the position in the body as sent */
            scan_body(q, q->body, q->len);
        free(fbody);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len + 1, &end, 1);
    if (!j && fbody) {
        end = NULL;
        cJSON_Delete(cJSON_ParseWithLengthOpts(q->body, q->len + 1, &end, 1));
    }
    free(fbody);
    if (!j) {
        size_t off = end && end >= q->body && end <= q->body + q->len ? (size_t)(end - q->body) : 0;
        etd_reply_error(q, 400, "body: invalid JSON near byte %zu", off);
        return NULL;
    }
    char path[512] = "";
    if (!all_finite(j->child) && !numbers_finite(j->child, path, 0, sizeof path)) {
        cJSON_Delete(j);
        etd_reply_error(q, 400, "%s: number is not finite (NaN, Infinity and overflowing values "
                        "such as 1e999 are not accepted)", path[0] ? path : "body");
        return NULL;
    }
    return j;
}

static cJSON *json_body(etd_req *q)
{
    return json_body_fast(q, NULL);
}

/* Body must be an object whose keys are all in allowed[]. */
static bool check_keys(etd_req *q, const cJSON *j, const char *const *allowed)
{
    if (!cJSON_IsObject(j)) {
        etd_reply_error(q, 400, "body: expected a JSON object");
        return false;
    }
    bool repeated;
    const cJSON *e = etd_bad_key(j, allowed, NULL, &repeated);
    if (!e)
        return true;
    if (repeated) {
        etd_reply_error(q, 400, "%s: repeated field", e->string);
    } else {
        char list[256];
        etd_join_names(allowed, list, sizeof list);
        etd_reply_error(q, 400, "%s: unknown field (accepted: %s)", e->string, list);
    }
    return false;
}

static etd_model *get_model(etd_req *q)
{
    etd_model *m = etd_name_ok(q->name) ? etd_registry_get(q->srv->reg, q->name) : NULL;
    if (!m)
        etd_reply_error(q, 404, "no model named \"%s\"", q->name);
    return m;
}

static bool get_array(etd_req *q, const cJSON *j, const char *key, etd_array *a)
{
    char err[ERRCAP];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    for (int i = 0; i < q->nfast; i++)
        if (v && cJSON_IsNull(v) && strcmp(q->fast_key[i], key) == 0) {
            *a = q->fast[i]; /* taken out of the body by the fast path */
            memset(&q->fast[i], 0, sizeof q->fast[i]);
            return true;
        }
    if (!v) {
        etd_reply_error(q, 400, "%s: required field is missing", key);
        return false;
    }
    if (!etd_array_from_json(v, key, q->srv->cfg.max_elems, a, err, sizeof err)) {
        etd_reply_error(q, 400, "%s", err);
        return false;
    }
    return true;
}

static bool get_pos_int(etd_req *q, const cJSON *j, const char *key, int64_t def, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d < 1 || d != floor(d) || d > 9007199254740992.0) {
        etd_reply_error(q, 400, "%s: expected a positive integer", key);
        return false;
    }
    *out = (int64_t)d;
    return true;
}

/* Registry result: status >= 400 becomes an error reply. */
static void finish(etd_req *q, int st, const char *err)
{
    if (st >= 400)
        etd_reply_error(q, st, "%s", err);
    else
        q->status = st;
}

/* ---------------------------------------------------------------- health, metrics */

static void h_healthz(etd_req *q)
{
    etd_buf_puts(&q->out, "{\"status\":\"ok\"}");
}

static void h_readyz(etd_req *q)
{
    if (atomic_load(&q->srv->draining))
        etd_reply_error(q, 503, "not ready: draining (shutting down)");
    else if (!atomic_load(&q->srv->ready))
        etd_reply_error(q, 503, "not ready: loading persisted models");
    else
        etd_buf_printf(&q->out, "{\"status\":\"ready\",\"models\":%d}",
                       etd_registry_count(q->srv->reg));
}

static void h_metrics(etd_req *q)
{
    etd_buf_printf(&q->out, "# HELP easytorch_ready 1 when the daemon serves models.\n"
                   "# TYPE easytorch_ready gauge\neasytorch_ready %d\n",
                   atomic_load(&q->srv->ready) && !atomic_load(&q->srv->draining));
    etd_registry_metrics(q->srv->reg, &q->out);
    etd_http_metrics(&q->out);
    q->resp_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---------------------------------------------------------------- models */

static void h_list(etd_req *q)
{
    finish(q, etd_registry_list(q->srv->reg, &q->out), "");
}

static void h_define(etd_req *q)
{
    char err[ERRCAP];
    cJSON *j = json_body(q);
    if (!j)
        return;
    int st = etd_registry_define(q->srv->reg, j, &q->out, err, sizeof err);
    finish(q, st, err);
    cJSON_Delete(j);
}

/* Answer with fn's JSON about the route's model: reads that fail only when
 * the model is deleted meanwhile. */
static void model_read(etd_req *q, int (*fn)(etd_model *, etd_buf *))
{
    etd_model *m = get_model(q);
    if (!m)
        return;
    finish(q, fn(m, &q->out), "model was deleted");
    etd_model_unref(m);
}

static void h_get(etd_req *q) { model_read(q, etd_model_describe); }

static void h_delete(etd_req *q)
{
    char err[ERRCAP];
    if (!etd_name_ok(q->name)) {
        etd_reply_error(q, 404, "no model named \"%s\"", q->name);
        return;
    }
    int st = etd_registry_delete(q->srv->reg, q->name, err, sizeof err);
    if (st < 400) {
        etd_buf_puts(&q->out, "{\"deleted\":");
        etd_json_str(&q->out, q->name);
        etd_buf_putc(&q->out, '}');
    }
    finish(q, st, err);
}

/* ---------------------------------------------------------------- training and inference */

static void h_predict(etd_req *q)
{
    static const char *const keys[] = {"inputs", NULL};
    char err[ERRCAP];
    etd_array x = {0};
    etd_model *m = get_model(q);
    if (!m)
        return;
    cJSON *j = json_body_fast(q, keys);
    if (!j || !check_keys(q, j, keys) || !get_array(q, j, "inputs", &x))
        goto out;
    cJSON_Delete(j); /* free the tree before the forward pass: it can be large */
    j = NULL;
    et_tensor *y = NULL;
    int st = etd_model_forward(m, &x, &y, err, sizeof err);
    etd_array_free(&x);
    if (st < 400) {
        etd_buf_puts(&q->out, "{\"outputs\":");
        etd_json_tensor(&q->out, y);
        etd_buf_putc(&q->out, '}');
    }
    et_tensor_free(y);
    finish(q, st, err);
out:
    etd_array_free(&x);
    cJSON_Delete(j);
    etd_model_unref(m);
}

static const char *const xy_keys[] = {"inputs", "targets", NULL};

static bool get_xy(etd_req *q, cJSON *j, const char *const *keys, etd_array *x, etd_array *y)
{
    return check_keys(q, j, keys) && get_array(q, j, "inputs", x) && get_array(q, j, "targets", y);
}

static void h_batches(etd_req *q)
{
    char err[ERRCAP];
    etd_array x = {0}, y = {0};
    etd_model *m = get_model(q);
    if (!m)
        return;
    cJSON *j = json_body_fast(q, xy_keys);
    if (j && get_xy(q, j, xy_keys, &x, &y)) {
        cJSON_Delete(j);
        j = NULL;
        finish(q, etd_model_push_batch(m, &x, &y, &q->out, err, sizeof err), err);
    }
    etd_array_free(&x);
    etd_array_free(&y);
    cJSON_Delete(j);
    etd_model_unref(m);
}

static void h_step(etd_req *q)
{
    char err[ERRCAP];
    etd_model *m = get_model(q);
    if (!m)
        return;
    /* an empty body or {} is fine */
    if (q->len > 0) {
        static const char *const keys[] = {NULL};
        cJSON *j = json_body(q);
        bool ok = j && check_keys(q, j, keys);
        cJSON_Delete(j);
        if (!ok) {
            etd_model_unref(m);
            return;
        }
    }
    finish(q, etd_model_step(m, &q->out, err, sizeof err), err);
    etd_model_unref(m);
}

static void h_train(etd_req *q)
{
    static const char *const keys[] = {"inputs", "targets", "epochs", "batch_size", "shuffle", NULL};
    char err[ERRCAP];
    etd_array x = {0}, y = {0};
    etd_model *m = get_model(q);
    if (!m)
        return;
    int64_t epochs, bs;
    bool shuffle = false;
    cJSON *j = json_body_fast(q, xy_keys);
    if (!j || !get_xy(q, j, keys, &x, &y) || !get_pos_int(q, j, "epochs", 1, &epochs) ||
        !get_pos_int(q, j, "batch_size", 0, &bs))
        goto out;
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shuffle");
    if (sh && !cJSON_IsNull(sh)) {
        if (!cJSON_IsBool(sh)) {
            etd_reply_error(q, 400, "shuffle: expected true or false");
            goto out;
        }
        shuffle = cJSON_IsTrue(sh);
    }
    cJSON_Delete(j);
    j = NULL;
    finish(q, etd_model_train(m, &x, &y, epochs, bs, shuffle, &q->out, err, sizeof err), err);
out:
    etd_array_free(&x);
    etd_array_free(&y);
    cJSON_Delete(j);
    etd_model_unref(m);
}

static void h_grad_get(etd_req *q) { model_read(q, etd_model_get_gradients); }

static void h_grad_post(etd_req *q)
{
    char err[ERRCAP];
    etd_array x = {0}, y = {0};
    etd_model *m = get_model(q);
    if (!m)
        return;
    cJSON *j = json_body_fast(q, xy_keys);
    if (j && get_xy(q, j, xy_keys, &x, &y)) {
        cJSON_Delete(j);
        j = NULL;
        etd_buf tmp;
        etd_buf_init(&tmp);
        int st = etd_model_probe_gradients(m, &x, &y, &tmp, err, sizeof err);
        if (st < 400) {
            etd_buf_free(&q->out);
            q->out = tmp;
        } else {
            etd_buf_free(&tmp);
        }
        finish(q, st, err);
    }
    etd_array_free(&x);
    etd_array_free(&y);
    cJSON_Delete(j);
    etd_model_unref(m);
}

static bool wants_safetensors(etd_req *q, bool *bad)
{
    const char *fmt = etd_req_arg(q, "format");
    *bad = false;
    if (fmt) {
        if (strcmp(fmt, "safetensors") == 0)
            return true;
        if (strcmp(fmt, "json") == 0)
            return false;
        *bad = true;
        return false;
    }
    const char *acc = etd_req_header(q, MHD_HTTP_HEADER_ACCEPT);
    return acc && strncmp(acc, "application/octet-stream", 24) == 0;
}

static void h_params_get(etd_req *q)
{
    char err[ERRCAP];
    bool bad;
    bool st_fmt = wants_safetensors(q, &bad);
    if (bad) {
        etd_reply_error(q, 400, "format: expected \"json\" or \"safetensors\"");
        return;
    }
    etd_model *m = get_model(q);
    if (!m)
        return;
    if (st_fmt) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int st = etd_model_get_parameters_st(m, &buf, &len, err, sizeof err);
        if (st < 400) {
            q->raw = buf;
            q->raw_len = len;
            q->raw_free = true;
            q->resp_type = "application/octet-stream";
            snprintf(q->disposition, sizeof q->disposition,
                     "attachment; filename=\"%s.safetensors\"", q->name);
        }
        finish(q, st, err);
    } else {
        finish(q, etd_model_get_parameters(m, &q->out), "model was deleted");
    }
    etd_model_unref(m);
}

static void h_params_put(etd_req *q)
{
    char err[ERRCAP];
    etd_model *m = get_model(q);
    if (!m)
        return;
    et_tensor_dict *d = NULL;
    cJSON *j = NULL;
    const char *ct = q->content_type ? q->content_type : "";
    if (strncasecmp(ct, "application/octet-stream", 24) == 0) {
        if (et_safetensors_parse((const uint8_t *)q->body, q->len, &d) != ET_OK) {
            etd_reply_error(q, 400, "body: not a valid safetensors file: %s", et_errmsg());
            goto out;
        }
    } else {
        j = json_body(q);
        if (!j)
            goto out;
        if (!cJSON_IsObject(j)) {
            etd_reply_error(q, 400, "body: expected {\"parameters\": {name: tensor, ...}}");
            goto out;
        }
        const cJSON *p = j;
        const cJSON *wrapped = cJSON_GetObjectItemCaseSensitive(j, "parameters");
        if (wrapped) {
            static const char *const keys[] = {"parameters", NULL};
            if (!check_keys(q, j, keys))
                goto out;
            if (!cJSON_IsObject(wrapped)) {
                etd_reply_error(q, 400, "parameters: expected an object of name: tensor");
                goto out;
            }
            p = wrapped;
        }
        d = et_tensor_dict_new();
        if (!d) {
            etd_reply_error(q, 500, "out of memory");
            goto out;
        }
        for (const cJSON *e = p->child; e; e = e->next) {
            char what[300];
            snprintf(what, sizeof what, "parameters.%s", e->string);
            if (et_tensor_dict_get(d, e->string)) {
                etd_reply_error(q, 400, "%s: repeated parameter", what);
                goto out;
            }
            et_tensor *t = etd_tensor_from_json(e, what, q->srv->cfg.max_elems, err, sizeof err);
            if (!t) {
                etd_reply_error(q, 400, "%s", err);
                goto out;
            }
            et_status s = et_tensor_dict_set(d, e->string, t);
            et_tensor_free(t);
            if (s != ET_OK) {
                etd_reply_error(q, 500, "%s", et_errmsg());
                goto out;
            }
        }
        cJSON_Delete(j);
        j = NULL;
    }
    int st = etd_model_put_parameters(m, d, err, sizeof err);
    if (st < 400) {
        etd_buf_puts(&q->out, "{\"updated\":[");
        for (int i = 0; i < et_tensor_dict_len(d); i++) {
            if (i)
                etd_buf_putc(&q->out, ',');
            etd_json_str(&q->out, et_tensor_dict_name(d, i));
        }
        etd_buf_puts(&q->out, "]}");
    }
    finish(q, st, err);
out:
    cJSON_Delete(j);
    et_tensor_dict_free(d);
    etd_model_unref(m);
}

static void h_loss(etd_req *q)
{
    int64_t since = -1;
    const char *s = etd_req_arg(q, "since");
    if (s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end) {
            etd_reply_error(q, 400, "since: expected an integer step");
            return;
        }
        since = v;
    }
    etd_model *m = get_model(q);
    if (!m)
        return;
    finish(q, etd_model_loss_history(m, since, &q->out), "");
    etd_model_unref(m);
}

static void h_checkpoint(etd_req *q)
{
    char err[ERRCAP];
    etd_model *m = get_model(q);
    if (!m)
        return;
    finish(q, etd_model_checkpoint(m, &q->out, err, sizeof err), err);
    etd_model_unref(m);
}

/* ---------------------------------------------------------------- KServe v2 */

static void h_v2_live(etd_req *q)
{
    etd_buf_puts(&q->out, "{\"live\":true}");
}

static void h_v2_ready(etd_req *q)
{
    bool r = atomic_load(&q->srv->ready) && !atomic_load(&q->srv->draining);
    etd_buf_printf(&q->out, "{\"ready\":%s}", r ? "true" : "false");
    q->status = r ? 200 : 503;
}

static void h_v2_server(etd_req *q)
{
    etd_buf_puts(&q->out, "{\"name\":\"easytorchd\",\"version\":\"" EASYTORCH_VERSION
                 "\",\"extensions\":[]}");
}

static void h_v2_model(etd_req *q) { model_read(q, etd_model_kserve_meta); }

static void h_v2_model_ready(etd_req *q)
{
    etd_model *m = get_model(q);
    if (!m)
        return;
    etd_buf_puts(&q->out, "{\"name\":");
    etd_json_str(&q->out, etd_model_name(m));
    etd_buf_puts(&q->out, ",\"ready\":true}");
    etd_model_unref(m);
}

static void h_v2_infer(etd_req *q)
{
    static const char *const keys[] = {"id", "inputs", "outputs", "parameters", NULL};
    static const char *const numeric[] = {"FP32", "FP64", "FP16", "BF16", "INT8", "INT16", "INT32",
                                          "INT64", "UINT8", "UINT16", "UINT32", "UINT64", NULL};
    char err[ERRCAP];
    etd_array x = {0};
    char *id = NULL;
    etd_model *m = get_model(q);
    if (!m)
        return;
    cJSON *j = json_body(q);
    if (!j || !check_keys(q, j, keys))
        goto out;
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (idj) {
        if (!cJSON_IsString(idj)) {
            etd_reply_error(q, 400, "id: expected a string");
            goto out;
        }
        id = strdup(idj->valuestring);
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != 1) {
        etd_reply_error(q, 400, "inputs: expected a list with exactly one input tensor");
        goto out;
    }
    const cJSON *in = ins->child;
    static const char *const in_keys[] = {"name", "shape", "datatype", "data", "parameters", NULL};
    if (!check_keys(q, in, in_keys))
        goto out;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (nm && !cJSON_IsString(nm)) {
        etd_reply_error(q, 400, "inputs[0].name: expected a string");
        goto out;
    }
    bool dt_ok = false;
    if (cJSON_IsString(dt))
        for (int i = 0; numeric[i]; i++)
            dt_ok |= strcmp(numeric[i], dt->valuestring) == 0;
    if (!dt_ok) {
        etd_reply_error(q, 400, "inputs[0].datatype: expected a numeric datatype such as \"FP32\"");
        goto out;
    }
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ET_MAX_DIMS ||
        cJSON_GetArraySize(shape) < 1) {
        etd_reply_error(q, 400, "inputs[0].shape: expected a list of 1 to %d non-negative integers",
                        ET_MAX_DIMS);
        goto out;
    }
    int64_t shp[ET_MAX_DIMS], numel = 1;
    int nd = 0;
    for (const cJSON *e = shape->child; e; e = e->next) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v < 0 || v != floor(v) || v > (double)q->srv->cfg.max_elems) {
            etd_reply_error(q, 400, "inputs[0].shape[%d]: expected a non-negative integer", nd);
            goto out;
        }
        shp[nd++] = (int64_t)v;
        if (v > 0 && numel > q->srv->cfg.max_elems / (int64_t)v) {
            etd_reply_error(q, 400, "inputs[0]: more than %lld elements",
                            (long long)q->srv->cfg.max_elems);
            goto out;
        }
        numel *= (int64_t)v;
    }
    if (!data) {
        etd_reply_error(q, 400, "inputs[0].data: required field is missing");
        goto out;
    }
    if (!etd_array_from_json(data, "inputs[0].data", q->srv->cfg.max_elems, &x, err, sizeof err)) {
        etd_reply_error(q, 400, "%s", err);
        goto out;
    }
    if (x.numel != numel) {
        etd_reply_error(q, 400, "inputs[0].data: shape needs %lld values, got %lld",
                        (long long)numel, (long long)x.numel);
        goto out;
    }
    memcpy(x.shape, shp, sizeof shp);
    x.ndim = nd;
    cJSON_Delete(j);
    j = NULL;
    et_tensor *y = NULL;
    int st = etd_model_forward(m, &x, &y, err, sizeof err);
    if (st < 400) {
        etd_buf_puts(&q->out, "{\"model_name\":");
        etd_json_str(&q->out, etd_model_name(m));
        etd_buf_puts(&q->out, ",\"model_version\":\"1\"");
        if (id) {
            etd_buf_puts(&q->out, ",\"id\":");
            etd_json_str(&q->out, id);
        }
        etd_buf_puts(&q->out, ",\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":");
        etd_json_shape(&q->out, y);
        etd_buf_puts(&q->out, ",\"data\":");
        etd_json_tensor_flat(&q->out, y);
        etd_buf_puts(&q->out, "}]}");
    }
    et_tensor_free(y);
    finish(q, st, err);
out:
    free(id);
    etd_array_free(&x);
    cJSON_Delete(j);
    etd_model_unref(m);
}

/* ---------------------------------------------------------------- dashboard */

static const char fallback_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>easytorchd</title>"
    "<style>body{font:14px sans-serif;margin:2em}canvas{border:1px solid #ccc}</style></head>"
    "<body><h1>easytorchd</h1><p>Token: <input id=\"tok\" type=\"password\"></p>"
    "<div id=\"models\">loading...</div><script>\n"
    "const hist={};\n"
    "function hdr(){const t=document.getElementById('tok').value;"
    "return t?{Authorization:'Bearer '+t}:{};}\n"
    "async function poll(){try{const r=await fetch('/v1/models',{headers:hdr()});"
    "const j=await r.json();const div=document.getElementById('models');"
    "if(!r.ok){div.textContent=j.error;return;}\n"
    "for(const m of j.models){let h=hist[m.name];if(!h){h=hist[m.name]={pts:[],since:-1};"
    "const s=document.createElement('div');s.innerHTML='<h3></h3><canvas width=600 height=200>"
    "</canvas>';s.id='m-'+m.name;s.querySelector('h3').textContent=m.name;div.appendChild(s);}\n"
    "const lr=await fetch('/v1/models/'+encodeURIComponent(m.name)+'/loss?since='+h.since,"
    "{headers:hdr()});const l=await lr.json();for(const p of l.history){h.pts.push(p);"
    "h.since=p[0];}draw(m.name,h.pts,m.step,m.loss);}\n"
    "if(div.textContent==='loading...')div.textContent=j.models.length?'':'no models';"
    "}catch(e){}}\n"
    "function draw(n,pts,step,loss){const s=document.getElementById('m-'+n);"
    "s.querySelector('h3').textContent=n+'  step '+step+'  loss '+loss;"
    "const c=s.querySelector('canvas').getContext('2d');c.clearRect(0,0,600,200);"
    "if(pts.length<2)return;const ys=pts.map(p=>Math.log10(Math.max(p[1],1e-12)));"
    "const lo=Math.min(...ys),hi=Math.max(...ys),x0=pts[0][0],x1=pts[pts.length-1][0];"
    "c.beginPath();pts.forEach((p,i)=>{const x=(p[0]-x0)/(x1-x0||1)*590+5,"
    "y=195-(ys[i]-lo)/(hi-lo||1)*190;i?c.lineTo(x,y):c.moveTo(x,y);});c.stroke();}\n"
    "poll();setInterval(poll,1000);\n"
    "</script></body></html>\n";

static const char *mime(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".svg", "image/svg+xml"}, {".ico", "image/x-icon"},
        {".png", "image/png"}, {".json", "application/json"}, {".txt", "text/plain; charset=utf-8"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

static void h_index(etd_req *q)
{
    const etd_asset *a = etd_asset_find("index.html");
    q->resp_type = "text/html; charset=utf-8";
    if (a) {
        q->raw = a->data;
        q->raw_len = a->len;
    } else {
        q->raw = fallback_page;
        q->raw_len = sizeof fallback_page - 1;
    }
}

static void h_asset(etd_req *q)
{
    const etd_asset *a = etd_asset_find(q->asset);
    if (!a) {
        etd_reply_error(q, 404, "no route GET %s", q->path);
        return;
    }
    q->raw = a->data;
    q->raw_len = a->len;
    q->resp_type = mime(a->name);
}

/* ---------------------------------------------------------------- routing table */

#define M "/v1/models/{name}"
const etd_route etd_routes[] = {
    {"GET", "/healthz", h_healthz, ETD_R_PUBLIC, "/healthz"},
    {"GET", "/readyz", h_readyz, ETD_R_PUBLIC, "/readyz"},
    {"GET", "/metrics", h_metrics, 0, "/metrics"},
    {"GET", "/v1/models", h_list, ETD_R_READY, "/v1/models"},
    {"POST", "/v1/models", h_define, ETD_R_READY | ETD_R_BODY, "/v1/models"},
    {"GET", M, h_get, ETD_R_READY, M},
    {"DELETE", M, h_delete, ETD_R_READY, M},
    {"POST", M "/predict", h_predict, ETD_R_READY | ETD_R_BODY, M "/predict"},
    {"POST", M "/batches", h_batches, ETD_R_READY | ETD_R_BODY, M "/batches"},
    {"POST", M "/step", h_step, ETD_R_READY | ETD_R_BODY, M "/step"},
    {"POST", M "/train", h_train, ETD_R_READY | ETD_R_BODY, M "/train"},
    {"GET", M "/gradients", h_grad_get, ETD_R_READY, M "/gradients"},
    {"POST", M "/gradients", h_grad_post, ETD_R_READY | ETD_R_BODY, M "/gradients"},
    {"GET", M "/parameters", h_params_get, ETD_R_READY, M "/parameters"},
    {"PUT", M "/parameters", h_params_put, ETD_R_READY | ETD_R_BODY, M "/parameters"},
    {"GET", M "/loss", h_loss, ETD_R_READY, M "/loss"},
    {"POST", M "/checkpoint", h_checkpoint, ETD_R_READY, M "/checkpoint"},
    {"GET", "/v2/health/live", h_v2_live, ETD_R_PUBLIC, "/v2/health/live"},
    {"GET", "/v2/health/ready", h_v2_ready, ETD_R_PUBLIC, "/v2/health/ready"},
    {"GET", "/v2", h_v2_server, 0, "/v2"},
    {"GET", "/v2/models/{name}", h_v2_model, ETD_R_READY, "/v2/models/{name}"},
    {"GET", "/v2/models/{name}/ready", h_v2_model_ready, ETD_R_READY, "/v2/models/{name}/ready"},
    {"POST", "/v2/models/{name}/infer", h_v2_infer, ETD_R_READY | ETD_R_BODY,
     "/v2/models/{name}/infer"},
    {"GET", "/", h_index, ETD_R_PUBLIC, "/"},
    {"GET", "/{asset}", h_asset, ETD_R_PUBLIC, "/{asset}"},
};
#undef M
const int etd_nroutes = (int)(sizeof etd_routes / sizeof etd_routes[0]);
