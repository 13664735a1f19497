/* tensor.c - the tensor API: argument and shape checks, grad mode,
 * creation, accessors and autograd flags.
 *
 * Every tensor made here gets its memory from tensor_alloc.c (etc_alloc,
 * etc_view_of, etc_pooled, etc_release), which holds the allocation, the
 * reference counts, the per-thread free lists and cache, and the pools;
 * this file holds what torch's semantics decide (shapes, dtypes, errors,
 * requires_grad rules). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

int64_t etc_numel(const int64_t *shape, int ndim)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

char *etc_shape_fmt(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t pos = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    pos += (size_t)snprintf(buf + pos, cap - pos, "[");
    for (int i = 0; i < ndim && pos < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (pos < cap)
        snprintf(buf + pos, cap - pos, "]");
    return buf;
}

char *et_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t pos = 0;
    if (!buf || cap == 0)
        return buf;
    buf[0] = '\0';
    pos += (size_t)snprintf(buf + pos, cap - pos, "[");
    for (int i = 0; i < ndim && shape && pos < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (pos < cap)
        snprintf(buf + pos, cap - pos, "]");
    return buf;
}

bool etc_any_check(const et_tensor *p, const char *op)
{
    if (p)
        return true;
    et_set_error_after(ET_ERR_ARG, "%s: tensor argument is NULL", op);
    return false;
}

bool etc_null_check_slow(const et_tensor *p, const char *op)
{
    if (!etc_any_check(p, op))
        return false;
    if (p->dtype == ET_FLOAT32)
        return true;
    et_set_error(ET_ERR_ARG, "%s: expected a float32 tensor, got %s", op,
                 et_dtype_name((et_dtype)p->dtype));
    return false;
}

bool etc_check_shape(const int64_t *shape, int ndim, const char *op)
{
    if (ndim < 0 || ndim > ET_MAX_DIMS) {
        et_set_error(ET_ERR_ARG, "%s: ndim %d is outside [0, %d]", op, ndim, ET_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        et_set_error(ET_ERR_ARG, "%s: shape is NULL", op);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            et_set_error(ET_ERR_ARG, "%s: negative size %lld in dim %d", op,
                         (long long)shape[i], i);
            return false;
        }
        if (shape[i] > 0 && n > (INT64_MAX / 8) / shape[i]) {
            et_set_error(ET_ERR_NOMEM, "%s: shape is too large", op);
            return false;
        }
        n *= shape[i];
    }
    return true;
}

int etc_wrap_dim(int dim, int ndim, const char *op)
{
    int n = ndim > 0 ? ndim : 1;
    if (dim < -n || dim >= n) {
        et_set_error(ET_ERR_INDEX,
                     "%s: dimension %d is out of range (expected to be in range of [%d, %d])",
                     op, dim, -n, n - 1);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

bool etc_compute_contiguous(const et_tensor *t)
{
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1)
            continue;
        if (t->strides[i] != expect)
            return false;
        expect *= t->shape[i];
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* grad mode                                                            */

_Thread_local bool etc_grad_off;

bool et_set_grad_enabled(bool enabled)
{
    bool prev = !etc_grad_off;
    etc_grad_off = !enabled;
    return prev;
}

bool et_is_grad_enabled(void) { return !etc_grad_off; }

bool etc_grad_mode(void) { return !etc_grad_off; }

bool etc_record(et_tensor *out, int op, et_tensor *const *ins, int nin)
{
    if (!etc_needs_grad(ins, nin))
        return true;
    if (nin > ETC_INLINE_INPUTS) {
        out->in = malloc((size_t)nin * sizeof *out->in);
        if (!out->in) {
            out->in = out->in_inline;
            et_set_error(ET_ERR_NOMEM, "out of memory recording the graph");
            return false;
        }
    }
    for (int i = 0; i < nin; i++)
        out->in[i] = etc_ref(ins[i]);
    for (int i = 0; i < 2 && i < nin; i++)
        out->in_version[i] = ins[i] ? ins[i]->storage->version : 0;
    out->self_version = out->storage->version;
    out->nin = nin;
    out->op = op;
    out->requires_grad = true;
    return true;
}

et_tensor *etc_finish(et_tensor *out, int op, et_tensor *const *ins, int nin)
{
    if (!out)
        return NULL;
    if (!etc_record(out, op, ins, nin)) {
        etc_release(out);
        return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* creation                                                             */

et_tensor *et_tensor_new(const float *data, const int64_t *shape, int ndim)
{
    if (!etc_check_shape(shape, ndim, "tensor_new"))
        return NULL;
    et_tensor *t = etc_alloc(shape, ndim);
    if (!t)
        return NULL;
    if (data)
        memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    else
        memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return etc_pooled(t);
}

et_tensor *et_scalar(float value)
{
    et_tensor *t = etc_alloc(NULL, 0);
    if (!t)
        return NULL;
    t->data[0] = value;
    return etc_pooled(t);
}

et_tensor *et_zeros(const int64_t *shape, int ndim)
{
    if (!etc_check_shape(shape, ndim, "zeros"))
        return NULL;
    return etc_pooled(etc_zeros(shape, ndim));
}

et_tensor *et_ones(const int64_t *shape, int ndim)
{
    if (!etc_check_shape(shape, ndim, "ones"))
        return NULL;
    return etc_pooled(etc_full(shape, ndim, 1.0f));
}

et_tensor *et_full(const int64_t *shape, int ndim, float value)
{
    if (!etc_check_shape(shape, ndim, "full"))
        return NULL;
    return etc_pooled(etc_full(shape, ndim, value));
}

/* zeros_like / ones_like keep the dtype, as torch's */
static et_tensor *full_like(const et_tensor *t, float v, const char *op)
{
    if (!etc_any_check(t, op))
        return NULL;
    if (t->dtype == ET_FLOAT32)
        return etc_pooled(etc_full(t->shape, t->ndim, v));
    et_tensor *r = etc_alloc_dtype(t->shape, t->ndim, t->dtype);
    for (int64_t i = 0; r && i < r->numel; i++)
        etc_idata(r)[i] = (int64_t)v;
    return etc_pooled(r);
}

et_tensor *et_zeros_like(const et_tensor *t) { return full_like(t, 0.0f, "zeros_like"); }

et_tensor *et_ones_like(const et_tensor *t) { return full_like(t, 1.0f, "ones_like"); }

et_tensor *et_arange(double start, double end, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
        et_set_error(ET_ERR_ARG, "arange: step must be nonzero and bounds finite");
        return NULL;
    }
    if ((step > 0 && end < start) || (step < 0 && end > start)) {
        et_set_error(ET_ERR_ARG,
                     "arange: upper bound and larger bound inconsistent with step sign");
        return NULL;
    }
    double cnt = ceil((end - start) / step);
    if (cnt > 1e12) {
        et_set_error(ET_ERR_NOMEM, "arange: too many elements");
        return NULL;
    }
    int64_t n = (int64_t)cnt;
    et_tensor *t = etc_alloc(&n, 1);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        t->data[i] = (float)(start + (double)i * step);
    return etc_pooled(t);
}

et_tensor *et_linspace(double start, double end, int64_t steps)
{
    if (steps < 0) {
        et_set_error(ET_ERR_ARG, "linspace: number of steps must be non-negative, got %lld",
                     (long long)steps);
        return NULL;
    }
    et_tensor *t = etc_alloc(&steps, 1);
    if (!t)
        return NULL;
    if (steps == 1) {
        t->data[0] = (float)start;
    } else if (steps > 1) {
        double step = (end - start) / (double)(steps - 1);
        int64_t half = steps / 2;
        for (int64_t i = 0; i < steps; i++)
            t->data[i] = (float)(i < half ? start + step * (double)i
                                          : end - step * (double)(steps - 1 - i));
    }
    return etc_pooled(t);
}

et_tensor *et_eye(int64_t n, int64_t m)
{
    int64_t shape[2] = {n, m};
    if (!etc_check_shape(shape, 2, "eye"))
        return NULL;
    et_tensor *t = etc_zeros(shape, 2);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n && i < m; i++)
        t->data[i * m + i] = 1.0f;
    return etc_pooled(t);
}

et_tensor *etc_clone(const et_tensor *t)
{
    et_tensor *c = etc_alloc_dtype(t->shape, t->ndim, t->dtype);
    if (!c)
        return NULL;
    if (t->contiguous)
        memcpy(c->data, t->data, (size_t)t->numel * (size_t)etc_elsize(t->dtype));
    else
        etc_strided_copy(c, t);
    return c;
}

et_tensor *etc_contig(et_tensor *t)
{
    if (t->contiguous)
        return etc_ref(t);
    return etc_clone(t);
}

et_tensor *et_clone(const et_tensor *t)
{
    if (!etc_any_check(t, "clone"))
        return NULL;
    return etc_pooled(etc_clone(t));
}

et_tensor *et_contiguous(et_tensor *t)
{
    if (!etc_any_check(t, "contiguous"))
        return NULL;
    if (t->contiguous)
        return etc_pooled(etc_ref(t));
    et_tensor *c = etc_clone(t);
    if (!c)
        return NULL;
    return etc_pooled(etc_finish(c, ETC_OP_CLONE, &t, 1));
}

et_tensor *et_detach(et_tensor *t)
{
    if (!etc_any_check(t, "detach"))
        return NULL;
    return etc_pooled(etc_view_of(t, t->shape, t->strides, t->ndim, t->offset));
}

/* ------------------------------------------------------------------ */
/* accessors                                                            */

int et_ndim(const et_tensor *t) { return t ? t->ndim : -1; }
const int64_t *et_shape(const et_tensor *t) { return t ? t->shape : NULL; }
const int64_t *et_strides(const et_tensor *t) { return t ? t->strides : NULL; }
int64_t et_numel(const et_tensor *t) { return t ? t->numel : 0; }
bool et_is_contiguous(const et_tensor *t) { return t && t->contiguous; }
float *et_data(et_tensor *t)
{
    if (!t || !etc_null_check(t, "data"))
        return NULL;
    etc_zrec_forget(t);   /* the caller may write: no zero record holds after */
    return t->data;
}
const float *et_data_const(const et_tensor *t)
{
    return t && etc_null_check(t, "data") ? t->data : NULL;
}

int64_t et_size(const et_tensor *t, int dim)
{
    if (!etc_any_check(t, "size"))
        return -1;
    if (t->ndim == 0) {
        et_set_error(ET_ERR_INDEX, "size: dimension specified as %d but tensor has no dimensions", dim);
        return -1;
    }
    int d = etc_wrap_dim(dim, t->ndim, "size");
    return d < 0 ? -1 : t->shape[d];
}

float et_item(const et_tensor *t)
{
    if (!etc_any_check(t, "item"))
        return NAN;
    if (t->numel != 1) {
        char b[128];
        et_set_error(ET_ERR_SHAPE,
                     "item: a Tensor with %lld elements cannot be converted to Scalar (shape %s)",
                     (long long)t->numel, etc_shape_fmt(t->shape, t->ndim, b, sizeof b));
        return NAN;
    }
    return t->dtype == ET_INT64 ? (float)etc_idata(t)[0] : t->data[0];
}

float et_get(const et_tensor *t, const int64_t *index)
{
    if (!etc_any_check(t, "get"))
        return NAN;
    if (t->ndim > 0 && !index) {
        et_set_error(ET_ERR_ARG, "get: index is NULL");
        return NAN;
    }
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        int64_t i = index[d];
        if (i < -t->shape[d] || i >= t->shape[d]) {
            et_set_error(ET_ERR_INDEX, "get: index %lld is out of range for dim %d of size %lld",
                         (long long)i, d, (long long)t->shape[d]);
            return NAN;
        }
        if (i < 0)
            i += t->shape[d];
        off += i * t->strides[d];
    }
    return t->dtype == ET_INT64 ? (float)etc_idata(t)[off] : t->data[off];
}

/* A contiguous tensor header over the caller's buffer `p` with t's shape,
 * so a strided copy can move data between t and a plain float array. */
static void wrap_buffer(et_tensor *tmp, et_storage *s, float *p, const et_tensor *t)
{
    memset(tmp, 0, sizeof *tmp);
    s->data = p;
    s->block = NULL;
    s->zrec = NULL;
    s->release = NULL;
    s->size = t->numel;
    tmp->storage = s;
    tmp->data = p;
    tmp->ndim = t->ndim;
    tmp->numel = t->numel;
    int64_t st = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        tmp->shape[i] = t->shape[i];
        tmp->strides[i] = st;
        st *= t->shape[i];
    }
    tmp->contiguous = true;
}

void et_copy_to(const et_tensor *t, float *out)
{
    if (!t || !out)
        return;
    if (t->dtype == ET_INT64) {
        et_tensor *c = etc_contig((et_tensor *)t);
        for (int64_t i = 0; c && i < c->numel; i++)
            out[i] = (float)etc_idata(c)[i];
        etc_release(c);
        return;
    }
    if (t->contiguous) {
        memcpy(out, t->data, (size_t)t->numel * sizeof(float));
        return;
    }
    et_storage s;
    et_tensor tmp;
    wrap_buffer(&tmp, &s, out, t);
    etc_strided_copy(&tmp, t);
}

et_status et_copy_from(et_tensor *t, const float *src)
{
    if (!etc_null_check(t, "copy_from"))
        return ET_ERR_ARG;
    if (!src && t->numel > 0)
        return et_set_error(ET_ERR_ARG, "copy_from: source is NULL");
    t->storage->version++;
    if (t->contiguous) {
        memcpy(t->data, src, (size_t)t->numel * sizeof(float));
        return ET_OK;
    }
    et_storage s;
    et_tensor tmp;
    wrap_buffer(&tmp, &s, (float *)src, t);   /* only read from */
    etc_strided_copy(t, &tmp);
    return ET_OK;
}

bool et_same_shape(const et_tensor *a, const et_tensor *b) { return etc_same_shape(a, b); }

/* ------------------------------------------------------------------ */
/* autograd flags                                                       */

bool et_requires_grad(const et_tensor *t) { return t && t->requires_grad; }

et_status et_set_requires_grad(et_tensor *t, bool on)
{
    if (!etc_any_check(t, "set_requires_grad"))
        return ET_ERR_ARG;
    if (on && t->dtype != ET_FLOAT32)
        return et_set_error(ET_ERR_ARG, "set_requires_grad: only tensors of floating point "
                            "dtype can require gradients (got %s)",
                            et_dtype_name((et_dtype)t->dtype));
    if (t->op != ETC_OP_NONE)
        return et_set_error(ET_ERR_GRAD,
                            "set_requires_grad: you can only change requires_grad flags of "
                            "leaf variables");
    t->requires_grad = on;
    return ET_OK;
}

bool et_is_leaf(const et_tensor *t) { return t && t->op == ETC_OP_NONE; }

et_tensor *et_grad(const et_tensor *t) { return t ? t->grad : NULL; }

et_status et_set_grad(et_tensor *t, et_tensor *g)
{
    if (!etc_null_check(t, "set_grad"))
        return ET_ERR_ARG;
    if (g && !et_same_shape(t, g)) {
        char b1[128], b2[128];
        return et_set_error(ET_ERR_SHAPE, "set_grad: grad of shape %s does not match tensor of shape %s",
                            etc_shape_fmt(g->shape, g->ndim, b1, sizeof b1),
                            etc_shape_fmt(t->shape, t->ndim, b2, sizeof b2));
    }
    et_tensor *old = t->grad;
    t->grad = etc_ref(g);
    etc_release(old);
    return ET_OK;
}

void et_retain_grad(et_tensor *t)
{
    if (t && t->op != ETC_OP_NONE)
        t->retain_grad = true;
}

const char *et_grad_fn_name(const et_tensor *t)
{
    if (!t || t->op == ETC_OP_NONE)
        return NULL;
    return etc_ops[t->op].name;
}

bool etc_scatter_begin(const et_tensor *in, et_tensor *g, et_tensor **zeros, et_tensor **gc)
{
    *zeros = etc_zeros(in->shape, in->ndim);
    *gc = etc_contig(g);
    if (*zeros && *gc)
        return true;
    etc_release(*zeros);
    etc_release(*gc);
    *zeros = *gc = NULL;
    return false;
}
