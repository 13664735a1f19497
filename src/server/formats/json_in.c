/* json_in.c - strict JSON input for easytorchd (see json_in.h). */
#include "server/formats/json_in.h"

#include "server/formats/json_lex.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- key checks */

const cJSON *etd_bad_key(const cJSON *obj, const char *const *allowed, const char *also,
                         bool *repeated)
{
    for (const cJSON *e = obj->child; e; e = e->next) {
        for (const cJSON *p = obj->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0) {
                *repeated = true;
                return e;
            }
        bool ok = also && strcmp(e->string, also) == 0;
        for (int i = 0; !ok && allowed[i]; i++)
            ok = strcmp(allowed[i], e->string) == 0;
        if (!ok) {
            *repeated = false;
            return e;
        }
    }
    return NULL;
}

void etd_join_names(const char *const *names, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && n < cap; i++) /* snprintf truncates; n may pass cap */
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", names[i]);
}

/* Optimal-string-alignment distance (edits: insert, delete, substitute,
 * swap two neighbours), case-insensitive, capped: anything above `cap` is
 * cap + 1.  Names are short (type and field names). */
static int edit_distance(const char *a, const char *b, int cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > (size_t)cap)
        return cap + 1;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb] > cap ? cap + 1 : d[la][lb];
}

const char *etd_suggest(const char *got, const char *const *names)
{
    if (!got || !got[0])
        return NULL;
    for (int i = 0; names[i]; i++)
        if (strcasecmp(got, names[i]) == 0)
            return names[i];
    /* two edits for names of 5+ letters, one below that: "lr" must not
     * suggest "eps" */
    int cap = strlen(got) >= 5 ? 2 : 1, best = cap + 1, nbest = 0;
    const char *pick = NULL;
    for (int i = 0; names[i]; i++) {
        int d = edit_distance(got, names[i], cap);
        if (d < best) {
            best = d;
            pick = names[i];
            nbest = 1;
        } else if (d == best) {
            nbest++;
        }
    }
    return best <= cap && nbest == 1 ? pick : NULL;
}

void etd_err_suggest(etd_err *e, const char *got, const char *const *names)
{
    const char *s = etd_suggest(got, names);
    if (s)
        etd_err_append(e, "; did you mean \"%s\"?", s);
}

bool etd_check_keys(const cJSON *obj, const char *path, const char *for_what,
                    const char *const *allowed, const char *also, etd_err *e)
{
    bool repeated;
    const cJSON *bad = etd_bad_key(obj, allowed, also, &repeated);
    if (!bad)
        return true;
    const char *dot = path && path[0] ? "." : "";
    if (!path)
        path = "";
    if (repeated) {
        etd_fail(e, ETD_EINVAL, "%s%s%s: repeated field", path, dot, bad->string);
        return false;
    }
    char list[512];
    etd_join_names(allowed, list, sizeof list);
    etd_fail(e, ETD_EINVAL, "%s%s%s: unknown field%s (%s%s)", path, dot, bad->string,
             for_what ? for_what : "", allowed[0] ? "accepted: " : "it takes no fields", list);
    etd_err_suggest(e, bad->string, allowed);
    return false;
}

/* ---------------------------------------------------------------- finite numbers */

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

/* ---------------------------------------------------------------- the fast path */

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

/* Take the top-level members named in keys[] out of the body when the fast
 * parsers accept them, and put null in their place so cJSON only sees the
 * small rest.  Returns the rewritten body (malloc'ed) or NULL when nothing
 * was taken. */
static char *take_fast_tensors(const char *body, size_t blen, const etd_json_limits *lim,
                               const char *const *keys, etd_json_doc *doc, size_t *new_len)
{
    const char *p = body, *end = body + blen;
    const char *from[2], *to[2];
    int n = 0;
    p = etd_json_ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p++;
    while (n < 2) {
        p = etd_json_ws(p, end);
        if (p >= end || *p != '"')
            break;
        const char *k = ++p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end || *p != '"')
            break;
        size_t kl = (size_t)(p - k);
        p = etd_json_ws(p + 1, end);
        if (p >= end || *p != ':')
            break;
        p = etd_json_ws(p + 1, end);
        int want = -1;
        for (int i = 0; keys[i]; i++)
            if (strlen(keys[i]) == kl && strncmp(keys[i], k, kl) == 0)
                want = i;
        const char *v = p;
        const char *e = NULL;
        if (want >= 0 && (*p == '[' || *p == '{') && kl < sizeof doc->fast_key[0]) {
            etd_array a;
            e = *p == '[' ? etd_fast_array(p, end, lim->max_elems, &a)
                          : etd_fast_shape_data(p, end, lim->max_elems, &a);
            if (e && a.ndim + 1 > lim->max_depth) { /* let the scan report it */
                etd_array_free(&a);
                e = NULL;
            }
            if (e) {
                for (int i = 0; i < doc->nfast; i++)
                    if (strcmp(doc->fast_key[i], keys[want]) == 0)
                        e = NULL; /* repeated key: let the general path report it */
                if (!e) {
                    etd_array_free(&a);
                } else {
                    memcpy(doc->fast_key[doc->nfast], k, kl);
                    doc->fast_key[doc->nfast][kl] = '\0';
                    doc->fast[doc->nfast++] = a;
                    from[n] = v;
                    to[n++] = e;
                }
            }
        }
        if (!e)
            e = skip_value(p, end);
        if (!e)
            break;
        p = etd_json_ws(e, end);
        if (p >= end || *p != ',')
            break;
        p++;
    }
    if (n == 0)
        return NULL;
    size_t len = blen;
    for (int i = 0; i < n; i++)
        len -= (size_t)(to[i] - from[i]) - 4;
    char *b = malloc(len + 1), *o = b;
    if (!b)
        return NULL;
    const char *src = body;
    for (int i = 0; i < n; i++) {
        memcpy(o, src, (size_t)(from[i] - src));
        o += from[i] - src;
        memcpy(o, "null", 4);
        o += 4;
        src = to[i];
    }
    memcpy(o, src, (size_t)(body + blen - src));
    o += body + blen - src;
    *o = '\0';
    *new_len = (size_t)(o - b);
    return b;
}

/* ---------------------------------------------------------------- the strict scan */

/* One pass over the bytes: nesting depth, strict numbers, no \u0000 in
 * strings, at most max_values values.  false + e on the first problem. */
static bool scan_body(const char *body, size_t len, const etd_json_limits *lim, etd_err *e)
{
    int depth = 0;
    bool in_str = false;
    size_t values = 0; /* cJSON nodes to come (keys counted too): bounds its memory */
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (!in_str && (ch == '"' || ch == '[' || ch == '{' || ch == '-' || ch == 't' ||
                        ch == 'f' || ch == 'n' || (ch >= '0' && ch <= '9')) &&
            ++values > lim->max_values) {
            etd_fail(e, ETD_ETOOBIG, "body: more than %zu JSON values (--max-json-values); send "
                     "tensors as rectangular nested lists (read without that cost) or "
                     "parameters as safetensors", lim->max_values);
            return false;
        }
        if (in_str) {
            if (ch == '\\' && i + 5 < len && strncmp(body + i + 1, "u0000", 5) == 0) {
                etd_fail(e, ETD_EINVAL, "body: a string contains \\u0000 (NUL is not allowed in "
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
            if (++depth > lim->max_depth) {
                etd_fail(e, ETD_EINVAL, "body: JSON nested deeper than %d levels", lim->max_depth);
                return false;
            }
        } else if (ch == ']' || ch == '}') {
            depth--;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            const char *n = etd_json_number(body + i, body + len, NULL);
            if (!n) {
                etd_fail(e, ETD_EINVAL, "body: invalid JSON number near byte %zu", i);
                return false;
            }
            i = (size_t)(n - body) - 1;
        }
    }
    return true;
}

/* "body: invalid JSON near byte N", and for a body that is not JSON at all
 * (CSV, form data, text) what is expected instead. */
static void invalid_json(const char *body, size_t len, size_t off, etd_err *e)
{
    etd_fail(e, ETD_EINVAL, "body: invalid JSON near byte %zu", off);
    const char *p = etd_json_ws(body, body + len);
    if (p < body + len && *p != '{' && *p != '[') {
        char head[24];
        size_t n = 0;
        for (; p < body + len && n < 20; p++)
            head[n++] = (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' ||
                                *p == '\\'
                            ? '?'
                            : *p; /* printable ASCII only: the message must stay UTF-8 */
        head[n] = '\0';
        etd_err_append(e, ": request bodies are JSON objects such as {\"inputs\": [[0.5]]}, "
                       "this one starts with \"%s\" (CSV and form data are not accepted)", head);
    }
}

bool etd_json_parse(const char *body, size_t len, const etd_json_limits *lim,
                    const char *const *fast_keys, etd_json_doc *doc, etd_err *e)
{
    memset(doc, 0, sizeof *doc);
    if (len == 0) {
        etd_fail(e, ETD_EINVAL, "body: expected a JSON object, got an empty body");
        return false;
    }
    const char *nul = memchr(body, '\0', len);
    if (nul) {
        /* JSON text has none: say what the bytes look like */
        const unsigned char *u = (const unsigned char *)body;
        const char *hint = len >= 10 && u[7] == 0 && u[8] == '{'
                               ? " (it looks like a safetensors file: send it with Content-Type: "
                                 "application/octet-stream where the route takes one)"
                           : len >= 2 && u[0] == 0x1f && u[1] == 0x8b
                               ? " (it looks gzip-compressed: send Content-Encoding: gzip)"
                               : "";
        etd_fail(e, ETD_EINVAL, "body: contains a NUL byte at byte %zu; JSON is required%s",
                 (size_t)(nul - body), hint);
        return false;
    }
    size_t flen = 0;
    char *fbody = fast_keys ? take_fast_tensors(body, len, lim, fast_keys, doc, &flen) : NULL;
    const char *text = fbody ? fbody : body;
    size_t tlen = fbody ? flen : len;
    if (!scan_body(text, tlen, lim, e)) {
        if (fbody) /* report the position in the body as sent */
            scan_body(body, len, lim, e);
        free(fbody);
        return false;
    }
    const char *end = NULL;
    doc->root = cJSON_ParseWithLengthOpts(text, tlen + 1, &end, 1);
    if (!doc->root && fbody) {
        end = NULL;
        cJSON_Delete(cJSON_ParseWithLengthOpts(body, len + 1, &end, 1));
    }
    free(fbody);
    if (!doc->root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        invalid_json(body, len, off, e);
        return false;
    }
    char path[512] = "";
    if (!all_finite(doc->root->child) && !numbers_finite(doc->root->child, path, 0, sizeof path)) {
        etd_fail(e, ETD_EINVAL, "%s: number is not finite (NaN, Infinity and overflowing values "
                 "such as 1e999 are not accepted)", path[0] ? path : "body");
        return false;
    }
    return true;
}

void etd_json_doc_free(etd_json_doc *doc)
{
    cJSON_Delete(doc->root);
    for (int i = 0; i < doc->nfast; i++)
        etd_array_free(&doc->fast[i]);
    memset(doc, 0, sizeof *doc);
}

bool etd_json_take_array_as(etd_json_doc *doc, const char *key, int64_t max_elems, et_dtype dt,
                            etd_array *a, etd_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc->root, key);
    char err[ETD_ERRCAP];
    for (int i = 0; i < doc->nfast; i++)
        if (v && cJSON_IsNull(v) && strcmp(doc->fast_key[i], key) == 0) {
            *a = doc->fast[i]; /* taken out of the body by the fast path */
            memset(&doc->fast[i], 0, sizeof doc->fast[i]);
            if (!etd_array_to_dtype(a, dt, key, err, sizeof err)) {
                etd_array_free(a);
                etd_fail(e, ETD_EINVAL, "%s", err);
                return false;
            }
            return true;
        }
    memset(a, 0, sizeof *a);
    if (!v) {
        etd_fail(e, ETD_EINVAL, "%s: required field is missing", key);
        return false;
    }
    bool ok = dt == ET_INT64 ? etd_array_from_json_ints(v, key, max_elems, a, err, sizeof err)
                             : etd_array_from_json(v, key, max_elems, a, err, sizeof err);
    if (!ok) {
        etd_fail(e, ETD_EINVAL, "%s", err);
        return false;
    }
    return true;
}

bool etd_json_take_array(etd_json_doc *doc, const char *key, int64_t max_elems, etd_array *a,
                         etd_err *e)
{
    return etd_json_take_array_as(doc, key, max_elems, ET_FLOAT32, a, e);
}
