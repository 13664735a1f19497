/* tensor_json.c - JSON <-> tensor conversion for easytorchd (see tensor_json.h). */
#include "server/formats/tensor_json.h"

#include "server/formats/json_lex.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool etd_number_ok(double v)
{
    return isfinite(v) && fabs(v) <= (double)FLT_MAX;
}

void etd_array_free(etd_array *a)
{
    if (a->owner) {
        et_tensor_free(a->owner);
        a->owner = NULL;
    } else {
        free(a->data);
        free(a->idata);
    }
    a->data = NULL;
    a->idata = NULL;
    for (int i = 0; i < a->nparts; i++)
        etd_array_free(&a->parts[i]);
    free(a->parts);
    a->parts = NULL;
    a->nparts = 0;
}

#define MAX_EXACT_INT 9007199254740992.0   /* 2^53 */

/* Does a still describe all of its owner (same dtype, shape, elements)? */
static bool owner_whole(const etd_array *a)
{
    const et_tensor *t = a->owner;
    if (!t || et_tensor_dtype(t) != a->dtype || et_ndim(t) != a->ndim || et_numel(t) != a->numel)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (et_shape(t)[i] != a->shape[i])
            return false;
    return a->dtype == ET_INT64 ? a->idata == et_data_int64_const(t) : a->data == et_data_const(t);
}

et_tensor *etd_array_tensor(const etd_array *a)
{
    if (owner_whole(a))
        return et_detach(a->owner); /* shares the elements: no copy */
    if (a->dtype == ET_INT64)
        return et_tensor_new_int64(a->idata, a->shape, a->ndim);
    return et_tensor_new(a->data, a->shape, a->ndim);
}

bool etd_array_from_tensor(const et_tensor *t, const char *what, int64_t max_elems,
                           etd_array *a, char *err, size_t errcap)
{
    memset(a, 0, sizeof *a);
    int64_t n = et_numel(t);
    if (n > max_elems) {
        snprintf(err, errcap, "%s: %lld elements, more than the limit of %lld (--max-elements)",
                 what, (long long)n, (long long)max_elems);
        return false;
    }
    a->dtype = et_tensor_dtype(t);
    a->ndim = et_ndim(t);
    memcpy(a->shape, et_shape(t), (size_t)a->ndim * sizeof(int64_t));
    a->numel = n;
    if (n > 0 && et_is_contiguous(t)) {
        /* the elements as they are: a reference, no copy (the body's tensor
         * is nobody else's; a view shares it with its base, which nothing
         * writes to either) */
        a->owner = et_tensor_ref((et_tensor *)t);
        if (a->dtype == ET_INT64)
            a->idata = (int64_t *)et_data_int64_const(t);
        else
            a->data = (float *)et_data_const(t);
        return true;
    }
    size_t bytes = (size_t)(n ? n : 1) * (a->dtype == ET_INT64 ? sizeof(int64_t) : sizeof(float));
    et_status st;
    if (a->dtype == ET_INT64)
        st = (a->idata = malloc(bytes)) ? et_copy_to_int64(t, a->idata) : ET_ERR_NOMEM;
    else if ((a->data = malloc(bytes)) != NULL)
        et_copy_to(t, a->data), st = ET_OK; /* float32 any layout: cannot fail */
    else
        st = ET_ERR_NOMEM;
    if (st != ET_OK) {
        snprintf(err, errcap, "%s: %s", what, st == ET_ERR_NOMEM ? "out of memory" : et_errmsg());
        etd_array_free(a);
        return false;
    }
    return true;
}

bool etd_array_to_dtype(etd_array *a, et_dtype dt, const char *what, char *err, size_t errcap)
{
    if (a->dtype == dt)
        return true;
    size_t n = (size_t)(a->numel ? a->numel : 1);
    if (dt == ET_INT64) {
        int64_t *id = malloc(n * sizeof *id);
        if (!id) {
            snprintf(err, errcap, "%s: out of memory", what);
            return false;
        }
        for (int64_t k = 0; k < a->numel; k++) {
            float v = a->data[k];
            if (v != floorf(v) || !(fabsf(v) <= (float)MAX_EXACT_INT)) {
                snprintf(err, errcap, "%s: element %lld (%g) is not an integer", what,
                         (long long)k, (double)v);
                free(id);
                return false;
            }
            id[k] = (int64_t)v;
        }
        if (a->owner)
            et_tensor_free(a->owner), a->owner = NULL;
        else
            free(a->data);
        a->data = NULL;
        a->idata = id;
    } else {
        float *fd = malloc(n * sizeof *fd);
        if (!fd) {
            snprintf(err, errcap, "%s: out of memory", what);
            return false;
        }
        for (int64_t k = 0; k < a->numel; k++)
            fd[k] = (float)a->idata[k];
        if (a->owner)
            et_tensor_free(a->owner), a->owner = NULL;
        else
            free(a->idata);
        a->idata = NULL;
        a->data = fd;
    }
    a->dtype = dt;
    return true;
}

static void fmt_index(char *buf, size_t cap, const int64_t *idx, int depth)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < depth && n + 24 < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "[%lld]", (long long)idx[d]);
}

static bool bad_number(const char *what, const char *where, double v, char *err, size_t errcap)
{
    if (!isfinite(v))
        snprintf(err, errcap, "%s%s: number is not finite", what, where);
    else
        snprintf(err, errcap, "%s%s: %g does not fit in float32", what, where, v);
    return false;
}

/* Element k of a = v (float32, or int64 for an int64 array); false + err
 * ("<what><where>: ...") when v does not fit. */
static bool store(etd_array *a, int64_t k, double v, const char *what, const char *where,
                  char *err, size_t errcap)
{
    if (a->dtype == ET_INT64) {
        if (v != floor(v) || !(fabs(v) <= MAX_EXACT_INT)) {
            if (!isfinite(v))
                snprintf(err, errcap, "%s%s: number is not finite", what, where);
            else if (v != floor(v))
                snprintf(err, errcap, "%s%s: %g is not an integer", what, where, v);
            else
                snprintf(err, errcap, "%s%s: %g is beyond 2^53, the largest exact integer",
                         what, where, v);
            return false;
        }
        a->idata[k] = (int64_t)v;
        return true;
    }
    if (!etd_number_ok(v))
        return bad_number(what, where, v, err, errcap);
    a->data[k] = (float)v;
    return true;
}

/* The element buffer of a (numel elements of its dtype); false + err. */
static bool alloc_elems(etd_array *a, const char *what, char *err, size_t errcap)
{
    size_t n = (size_t)(a->numel ? a->numel : 1);
    if (a->dtype == ET_INT64)
        a->idata = malloc(n * sizeof *a->idata);
    else
        a->data = malloc(n * sizeof *a->data);
    if (a->dtype == ET_INT64 ? !a->idata : !a->data) {
        snprintf(err, errcap, "%s: out of memory", what);
        return false;
    }
    return true;
}

/* Nested-list form.  The shape is read down the first elements, then every
 * list is checked against it while the data is copied out. */
static bool from_nested(const cJSON *j, const char *what, int64_t max_elems, etd_array *a,
                        char *err, size_t errcap)
{
    a->ndim = 0;
    const cJSON *p = j;
    while (cJSON_IsArray(p)) {
        if (a->ndim == ET_MAX_DIMS) {
            snprintf(err, errcap, "%s: more than %d dimensions", what, ET_MAX_DIMS);
            return false;
        }
        int n = cJSON_GetArraySize(p);
        a->shape[a->ndim++] = n;
        if (n == 0)
            break;
        p = p->child;
    }
    int64_t numel = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] > 0 && numel > max_elems / a->shape[d]) {
            snprintf(err, errcap, "%s: more than %lld elements", what, (long long)max_elems);
            return false;
        }
        numel *= a->shape[d];
    }
    a->numel = numel;
    if (!alloc_elems(a, what, err, errcap))
        return false;
    char where[256];
    if (a->ndim == 0) {
        if (!cJSON_IsNumber(j)) {
            snprintf(err, errcap, "%s: expected a number or a (nested) list of numbers", what);
            goto fail;
        }
        if (!store(a, 0, j->valuedouble, what, "", err, errcap))
            goto fail;
        return true;
    }
    /* iterative walk: stack of list cursors */
    const cJSON *cur[ET_MAX_DIMS];
    int64_t idx[ET_MAX_DIMS] = {0};
    int depth = 0;
    cur[0] = j;
    int64_t k = 0;
    for (;;) {
        const cJSON *list = cur[depth];
        if (!cJSON_IsArray(list)) {
            fmt_index(where, sizeof where, idx, depth);
            snprintf(err, errcap, "%s%s: expected a list of %lld elements", what, where,
                     (long long)a->shape[depth]);
            goto fail;
        }
        if (depth == a->ndim - 1) {
            int64_t n = 0;
            for (const cJSON *e = list->child; e; e = e->next, n++) {
                if (n >= a->shape[depth])
                    break;
                if (!cJSON_IsNumber(e)) {
                    idx[depth] = n;
                    fmt_index(where, sizeof where, idx, depth + 1);
                    snprintf(err, errcap, "%s%s: expected a number", what, where);
                    goto fail;
                }
                double v = e->valuedouble;
                if (a->dtype == ET_FLOAT32 && etd_number_ok(v)) {
                    a->data[k++] = (float)v;   /* the common case, inline */
                    continue;
                }
                idx[depth] = n;
                fmt_index(where, sizeof where, idx, depth + 1);
                if (!store(a, k++, v, what, where, err, errcap))
                    goto fail;
            }
            int64_t got = cJSON_GetArraySize(list);
            if (got != a->shape[depth]) {
                fmt_index(where, sizeof where, idx, depth);
                snprintf(err, errcap, "%s%s: ragged list: expected %lld elements, got %lld",
                         what, where, (long long)a->shape[depth], (long long)got);
                goto fail;
            }
            /* pop finished lists, advance to the next sibling */
            for (;;) {
                if (depth == 0)
                    return true;
                depth--;
                const cJSON *next = cur[depth + 1]->next;
                idx[depth]++;
                if (next) {
                    if (idx[depth] >= a->shape[depth]) {
                        fmt_index(where, sizeof where, idx, depth);
                        snprintf(err, errcap, "%s%s: ragged list: expected %lld elements",
                                 what, where, (long long)a->shape[depth]);
                        goto fail;
                    }
                    cur[++depth] = next;
                    idx[depth] = 0;
                    break;
                }
                if (idx[depth] != a->shape[depth]) {
                    fmt_index(where, sizeof where, idx, depth);
                    snprintf(err, errcap, "%s%s: ragged list: expected %lld elements, got %lld",
                             what, where, (long long)a->shape[depth], (long long)idx[depth]);
                    goto fail;
                }
            }
        } else {
            if (cJSON_GetArraySize(list) != a->shape[depth]) {
                fmt_index(where, sizeof where, idx, depth);
                snprintf(err, errcap, "%s%s: ragged list: expected %lld elements, got %d",
                         what, where, (long long)a->shape[depth], cJSON_GetArraySize(list));
                goto fail;
            }
            if (a->shape[depth] == 0) /* only reached when an inner dim is 0 */
                return true;
            cur[depth + 1] = list->child;
            depth++;
            idx[depth] = 0;
        }
    }
fail:
    etd_array_free(a);
    return false;
}

static bool from_object(const cJSON *j, const char *what, int64_t max_elems, etd_array *a,
                        char *err, size_t errcap)
{
    const cJSON *shape = NULL, *data = NULL;
    for (const cJSON *e = j->child; e; e = e->next) {
        if (strcmp(e->string, "shape") == 0 && !shape)
            shape = e;
        else if (strcmp(e->string, "data") == 0 && !data)
            data = e;
        else {
            snprintf(err, errcap, "%s.%s: unknown or repeated field (expected \"shape\" and \"data\")",
                     what, e->string);
            return false;
        }
    }
    if (!cJSON_IsArray(shape)) {
        snprintf(err, errcap, "%s.shape: expected a list of non-negative integers", what);
        return false;
    }
    if (!cJSON_IsArray(data)) {
        snprintf(err, errcap, "%s.data: expected a flat list of numbers", what);
        return false;
    }
    int nd = cJSON_GetArraySize(shape);
    if (nd > ET_MAX_DIMS) {
        snprintf(err, errcap, "%s.shape: more than %d dimensions", what, ET_MAX_DIMS);
        return false;
    }
    a->ndim = nd;
    int64_t numel = 1;
    int d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || !(v >= 0) || v != floor(v) || v > (double)max_elems) {
            snprintf(err, errcap, "%s.shape[%d]: expected a non-negative integer", what, d);
            return false;
        }
        a->shape[d] = (int64_t)v;
        if (a->shape[d] > 0 && numel > max_elems / a->shape[d]) {
            snprintf(err, errcap, "%s: more than %lld elements", what, (long long)max_elems);
            return false;
        }
        numel *= a->shape[d];
    }
    int64_t got = cJSON_GetArraySize(data);
    if (got != numel) {
        snprintf(err, errcap, "%s.data: shape needs %lld numbers, got %lld", what,
                 (long long)numel, (long long)got);
        return false;
    }
    a->numel = numel;
    if (!alloc_elems(a, what, err, errcap))
        return false;
    int64_t k = 0;
    for (const cJSON *e = data->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e)) {
            snprintf(err, errcap, "%s.data[%lld]: expected a number", what, (long long)k);
            etd_array_free(a);
            return false;
        }
        char where[48];
        snprintf(where, sizeof where, ".data[%lld]", (long long)k);
        if (!store(a, k, e->valuedouble, what, where, err, errcap)) {
            etd_array_free(a);
            return false;
        }
    }
    return true;
}

static bool array_from_json(const cJSON *j, const char *what, int64_t max_elems, etd_array *a,
                            et_dtype dt, char *err, size_t errcap)
{
    memset(a, 0, sizeof *a);
    a->dtype = dt;
    if (!j) {
        snprintf(err, errcap, "%s: missing", what);
        return false;
    }
    if (cJSON_IsObject(j))
        return from_object(j, what, max_elems, a, err, errcap);
    return from_nested(j, what, max_elems, a, err, errcap);
}

bool etd_array_from_json(const cJSON *j, const char *what, int64_t max_elems, etd_array *a,
                         char *err, size_t errcap)
{
    return array_from_json(j, what, max_elems, a, ET_FLOAT32, err, errcap);
}

bool etd_array_from_json_ints(const cJSON *j, const char *what, int64_t max_elems,
                              etd_array *a, char *err, size_t errcap)
{
    return array_from_json(j, what, max_elems, a, ET_INT64, err, errcap);
}

et_tensor *etd_tensor_from_json(const cJSON *j, const char *what, int64_t max_elems, char *err,
                                size_t errcap)
{
    etd_array a;
    if (!etd_array_from_json(j, what, max_elems, &a, err, errcap))
        return NULL;
    et_tensor *t = et_tensor_new(a.data, a.shape, a.ndim);
    etd_array_free(&a);
    if (!t)
        snprintf(err, errcap, "%s: %s", what, et_errmsg());
    return t;
}

/* Run fn on a contiguous float copy of t (no copy when already contiguous). */
static const float *contiguous_data(const et_tensor *t, float **owned)
{
    *owned = NULL;
    if (et_is_contiguous(t))
        return et_data_const(t);
    int64_t n = et_numel(t);
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!p)
        return NULL;
    et_copy_to(t, p);
    *owned = p;
    return p;
}

/* int64 elements v[0..) of shape[nd] as nested lists (a bare number for 0-d) */
static const int64_t *json_ints(etd_buf *b, const int64_t *v, const int64_t *shape, int nd)
{
    if (nd == 0) {
        etd_json_i64(b, *v);
        return v + 1;
    }
    etd_buf_putc(b, '[');
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i)
            etd_buf_putc(b, ',');
        v = json_ints(b, v, shape + 1, nd - 1);
    }
    etd_buf_putc(b, ']');
    return v;
}

void etd_json_tensor(etd_buf *b, const et_tensor *t)
{
    if (et_tensor_dtype(t) == ET_INT64) {   /* buffers such as num_batches_tracked */
        int64_t n = et_numel(t);
        int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        if (!v || et_copy_to_int64(t, v) != ET_OK) {
            free(v);
            b->oom = true;
            return;
        }
        json_ints(b, v, et_shape(t), et_ndim(t));
        free(v);
        return;
    }
    float *owned;
    const float *p = contiguous_data(t, &owned);
    if (!p) {
        b->oom = true;
        return;
    }
    etd_json_nested(b, p, et_shape(t), et_ndim(t));
    free(owned);
}

void etd_json_tensor_flat(etd_buf *b, const et_tensor *t)
{
    float *owned;
    const float *p = contiguous_data(t, &owned);
    if (!p) {
        b->oom = true;
        return;
    }
    etd_json_floats(b, p, et_numel(t));
    free(owned);
}

void etd_json_shape(etd_buf *b, const et_tensor *t)
{
    etd_buf_putc(b, '[');
    for (int d = 0; d < et_ndim(t); d++) {
        if (d)
            etd_buf_putc(b, ',');
        etd_json_i64(b, et_shape(t)[d]);
    }
    etd_buf_putc(b, ']');
}
