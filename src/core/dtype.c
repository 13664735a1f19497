/* dtype.c - int64 tensors (torch.long): creation, conversion, element
 * access, and the one index check every index-taking op uses.
 *
 * Layout: an int64 tensor is an ordinary tensor whose storage holds
 * int64_t elements (two floats of capacity each); shape, strides and offset
 * count elements, so every view function works on it unchanged.  Float ops
 * reject it in etc_null_check, which is why an index can never be rounded
 * through float32 by accident. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

et_dtype et_tensor_dtype(const et_tensor *t) { return t ? (et_dtype)t->dtype : ET_FLOAT32; }

const char *et_dtype_name(et_dtype d)
{
    switch (d) {
    case ET_FLOAT32:
        return "float32";
    case ET_INT64:
        return "int64";
    }
    return "invalid dtype";
}

et_tensor *et_tensor_new_int64(const int64_t *data, const int64_t *shape, int ndim)
{
    if (!etc_check_shape(shape, ndim, "tensor_new_int64"))
        return NULL;
    et_tensor *t = etc_alloc_dtype(shape, ndim, ET_INT64);
    if (!t)
        return NULL;
    if (data)
        memcpy(t->data, data, (size_t)t->numel * sizeof(int64_t));
    else
        memset(t->data, 0, (size_t)t->numel * sizeof(int64_t));
    return etc_pooled(t);
}

static bool int64_check(const et_tensor *t, const char *op)
{
    if (!etc_any_check(t, op))
        return false;
    if (t->dtype == ET_INT64)
        return true;
    et_set_error(ET_ERR_ARG, "%s: expected an int64 tensor, got %s", op,
                 et_dtype_name((et_dtype)t->dtype));
    return false;
}

int64_t *et_data_int64(et_tensor *t)
{
    return int64_check(t, "data_int64") ? etc_idata(t) : NULL;
}

const int64_t *et_data_int64_const(const et_tensor *t)
{
    return int64_check(t, "data_int64") ? etc_idata(t) : NULL;
}

/* Exact int64 of a float, or false.  The range test runs in float before
 * the cast: converting 1e30 or inf to int64 is undefined behaviour. */
static bool float_to_int64(float v, int64_t *out)
{
    if (!(v >= -9223372036854775808.0f && v < 9223372036854775808.0f) || v != floorf(v))
        return false;
    *out = (int64_t)v;
    return true;
}

/* Contiguous int64 values of t (any dtype); NULL + error on NOMEM or a
 * float that is not an exact integer (element index named). */
static et_tensor *as_int64(et_tensor *t, const char *op)
{
    if (t->dtype == ET_INT64)
        return etc_contig(t);
    et_tensor *c = etc_contig(t);
    et_tensor *r = c ? etc_alloc_dtype(t->shape, t->ndim, ET_INT64) : NULL;
    for (int64_t i = 0; r && i < c->numel; i++)
        if (!float_to_int64(c->data[i], &etc_idata(r)[i])) {
            et_set_error(ET_ERR_ARG, "%s: element %lld (%g) is not an integer in int64's range",
                         op, (long long)i, (double)c->data[i]);
            etc_release(r);
            r = NULL;
        }
    etc_release(c);
    return r;
}

et_tensor *et_to_dtype(et_tensor *t, et_dtype dtype)
{
    if (!etc_any_check(t, "to_dtype"))
        return NULL;
    if (dtype != ET_FLOAT32 && dtype != ET_INT64) {
        et_set_error(ET_ERR_ARG, "to_dtype: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (t->dtype == dtype)
        return etc_pooled(etc_ref(t));
    if (dtype == ET_INT64)
        return etc_pooled(as_int64(t, "to_dtype"));
    et_tensor *c = etc_contig(t);
    et_tensor *r = c ? etc_alloc(t->shape, t->ndim) : NULL;
    for (int64_t i = 0; r && i < r->numel; i++)
        r->data[i] = (float)etc_idata(c)[i];
    etc_release(c);
    return etc_pooled(r);
}

et_status et_item_int64(const et_tensor *t, int64_t *out)
{
    if (!etc_any_check(t, "item_int64"))
        return ET_ERR_ARG;
    if (t->numel != 1) {
        char b[128];
        return et_set_error(ET_ERR_SHAPE, "item_int64: a Tensor with %lld elements cannot be "
                            "converted to Scalar (shape %s)", (long long)t->numel,
                            etc_shape_fmt(t->shape, t->ndim, b, sizeof b));
    }
    int64_t v;
    if (t->dtype == ET_INT64)
        v = etc_idata(t)[0];
    else if (!float_to_int64(t->data[0], &v))
        return et_set_error(ET_ERR_ARG, "item_int64: %g is not an integer in int64's range",
                            (double)t->data[0]);
    if (out)
        *out = v;
    return ET_OK;
}

et_status et_copy_to_int64(const et_tensor *t, int64_t *out)
{
    if (!etc_any_check(t, "copy_to_int64"))
        return ET_ERR_ARG;
    if (!out && t->numel > 0)
        return et_set_error(ET_ERR_ARG, "copy_to_int64: destination is NULL");
    et_tensor *c = as_int64((et_tensor *)t, "copy_to_int64");
    if (!c)
        return et_errcode();
    if (c->numel)
        memcpy(out, c->data, (size_t)c->numel * sizeof(int64_t));
    etc_release(c);
    return ET_OK;
}

et_status et_copy_from_int64(et_tensor *t, const int64_t *src)
{
    if (!int64_check(t, "copy_from_int64"))
        return ET_ERR_ARG;
    if (!src && t->numel > 0)
        return et_set_error(ET_ERR_ARG, "copy_from_int64: source is NULL");
    t->storage->version++;
    et_tensor *tmp = etc_alloc_dtype(t->shape, t->ndim, ET_INT64);
    if (!tmp)
        return et_errcode();
    if (t->numel)
        memcpy(tmp->data, src, (size_t)t->numel * sizeof(int64_t));
    etc_strided_copy(t, tmp);
    etc_release(tmp);
    return ET_OK;
}

bool etc_index_read(const et_tensor *ix, int64_t off, int64_t size, const char *op, int dim,
                    int64_t *out)
{
    int64_t v;
    if (ix->dtype == ET_INT64) {
        v = etc_idata(ix)[off];
    } else {
        float f = ix->data[off];
        if (f != floorf(f)) {   /* also NaN and inf */
            et_set_error(ET_ERR_INDEX, "%s: index %g is not an integer", op, (double)f);
            return false;
        }
        if (!(f >= 0.0f && f < (float)size) || !float_to_int64(f, &v)) {
            et_set_error(ET_ERR_INDEX, "%s: index %.0f is out of range for dim %d of size %lld",
                         op, (double)f, dim, (long long)size);
            return false;
        }
    }
    if (v < 0 || v >= size) {
        et_set_error(ET_ERR_INDEX, "%s: index %lld is out of range for dim %d of size %lld", op,
                     (long long)v, dim, (long long)size);
        return false;
    }
    *out = v;
    return true;
}

/* The indices of `index` (any dtype, any strides), checked against
 * [0, size), as a contiguous int64 tensor of the same shape. */
et_tensor *etc_indices(const et_tensor *index, int64_t size, const char *op, int d)
{
    et_tensor *ix = etc_alloc_dtype(index->shape, index->ndim, ET_INT64);
    if (!ix)
        return NULL;
    if (index->dtype == ET_INT64 && index->contiguous) {
        /* the common case (a batch of int64 indices) in one loop with no
         * call per index; an index out of range takes the general loop
         * below, which reports it */
        const int64_t *src = etc_idata(index);
        int64_t *dst = etc_idata(ix), n = 0;
        for (; n < index->numel; n++) {
            int64_t v = src[n];
            if (v < 0 || v >= size)
                break;
            dst[n] = v;
        }
        if (n == index->numel)
            return ix;
    }
    int64_t pos[ET_MAX_DIMS] = {0};
    for (int64_t n = 0; n < index->numel; n++) {
        int64_t off = 0;
        for (int k = 0; k < index->ndim; k++)
            off += pos[k] * index->strides[k];
        if (!etc_index_read(index, off, size, op, d, &etc_idata(ix)[n])) {
            etc_release(ix);
            return NULL;
        }
        for (int k = index->ndim - 1; k >= 0; k--) {
            if (++pos[k] < index->shape[k])
                break;
            pos[k] = 0;
        }
    }
    return ix;
}
