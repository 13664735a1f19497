/* json_fast.c - the fast path for a request body's tensors (tensor_json.h:
 * etd_fast_array, etd_fast_shape_data).
 *
 * cJSON allocates a node per number and parses it with strtod; for a batch
 * of a million numbers that dominates a request, and even for the 448
 * numbers of a 32-row train call of 13 features the tree and the
 * conversions were most of the parse.  etd_fast_array reads the common case
 * -- a rectangular nested list of plain numbers -- straight into floats,
 * each number with etd_json_read_float (json_lex.h: eight bytes at a time, the
 * float cJSON's path gives, bit for bit).  Anything unusual (empty lists,
 * ragged lists, non-numbers, values beyond float32, too many elements)
 * makes it give up, and the caller falls back to cJSON and the general
 * path (tensor_json.c), which produces the precise error message.  So the
 * fast path changes speed, never behaviour; fuzz_json checks it against
 * the general path. */
#include "server/formats/tensor_json.h"

#include "server/formats/json_lex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* p past whitespace: the common case (none) costs one comparison */
static inline const char *skip_ws(const char *p, const char *end)
{
    return p < end && (unsigned char)*p <= ' ' ? etd_json_ws(p, end) : p;
}

const char *etd_fast_array(const char *s, const char *end, int64_t max_elems, etd_array *a)
{
    memset(a, 0, sizeof *a);
    int64_t shape[ET_MAX_DIMS], count[ET_MAX_DIMS];
    for (int d = 0; d < ET_MAX_DIMS; d++)
        shape[d] = -1;
    int depth = 0, ndim = -1;
    int64_t cap = 0, n = 0;
    float *data = NULL;
    const char *p = s;
    if (p >= end || *p != '[')
        return NULL;
    for (;;) {
        /* a value: '[' opens a list, else a number */
        p = skip_ws(p, end);
        if (p >= end)
            goto fail;
        if (*p == '[') {
            if (depth == ET_MAX_DIMS || (ndim >= 0 && depth >= ndim))
                goto fail;
            count[depth++] = 0;
            p++;
            continue; /* an empty list lands on ']' below and fails: fallback */
        }
        if (ndim < 0)
            ndim = depth;
        if (depth != ndim || depth == 0)
            goto fail;
        /* the innermost list's numbers, up to its ']' */
        for (;;) {
            if (n == cap) {
                if (n >= max_elems)
                    goto fail;
                cap = cap ? cap * 2 : 1024;
                if (cap > max_elems)
                    cap = max_elems;
                float *nd = realloc(data, (size_t)cap * sizeof *nd);
                if (!nd)
                    goto fail;
                data = nd;
            }
            p = etd_json_read_float(p, end, &data[n]);
            if (!p)
                goto fail;
            n++;
            count[depth - 1]++;
            p = skip_ws(p, end);
            if (p >= end || *p != ',')
                break;
            p = skip_ws(p + 1, end);
            if (p >= end)
                goto fail;
        }
        /* after a list's last value: ']' closing lists, then ',' and another
         * value, or the end */
        for (;;) {
            if (p >= end || *p != ']')
                goto fail;
            p++;
            int d = depth - 1;
            if (shape[d] < 0)
                shape[d] = count[d];
            else if (shape[d] != count[d])
                goto fail;
            depth--;
            if (depth == 0)
                goto done;
            count[depth - 1]++;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p++;
                break;
            }
        }
    }
done:
    if (ndim <= 0)
        goto fail;
    a->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        a->shape[d] = shape[d];
    a->numel = n;
    a->data = data ? data : malloc(sizeof(float));
    return a->data ? p : NULL;
fail:
    free(data);
    memset(a, 0, sizeof *a);
    return NULL;
}

/* The {"shape": [..], "data": [..]} form (either order), same contract as
 * etd_fast_array. */
const char *etd_fast_shape_data(const char *s, const char *end, int64_t max_elems, etd_array *a)
{
    etd_array shape = {0}, data = {0};
    bool have_shape = false, have_data = false;
    const char *p = s;
    memset(a, 0, sizeof *a);
    if (p >= end || *p != '{')
        return NULL;
    p++;
    for (int k = 0; k < 2; k++) {
        p = etd_json_ws(p, end);
        if (end - p < 7 || *p != '"')
            goto fail;
        bool is_shape = strncmp(p, "\"shape\"", 7) == 0;
        bool is_data = strncmp(p, "\"data\"", 6) == 0;
        if (is_shape ? have_shape : is_data ? have_data : true)
            goto fail;
        p = etd_json_ws(p + (is_shape ? 7 : 6), end);
        if (p >= end || *p != ':')
            goto fail;
        p = etd_json_ws(p + 1, end);
        etd_array *dst = is_shape ? &shape : &data;
        p = etd_fast_array(p, end, is_shape ? ET_MAX_DIMS : max_elems, dst);
        if (!p || dst->ndim != 1)
            goto fail;
        if (is_shape)
            have_shape = true;
        else
            have_data = true;
        p = etd_json_ws(p, end);
        if (p >= end || *p != (k == 0 ? ',' : '}'))
            goto fail;
        p++;
    }
    int64_t numel = 1;
    for (int64_t d = 0; d < shape.numel; d++) {
        float v = shape.data[d];
        if (!(v >= 0) || v != floorf(v) || v > 16777216.0f)
            goto fail;
        a->shape[d] = (int64_t)v;
        if (a->shape[d] > 0 && numel > max_elems / a->shape[d])
            goto fail;
        numel *= a->shape[d];
    }
    if (numel != data.numel)
        goto fail;
    a->ndim = (int)shape.numel;
    a->numel = numel;
    a->data = data.data;
    etd_array_free(&shape);
    return p;
fail:
    etd_array_free(&shape);
    etd_array_free(&data);
    memset(a, 0, sizeof *a);
    return NULL;
}
