/* shape.c - the basic views, results sharing the input's storage: view,
 * reshape (a copy only when no strides fit, as torch), transpose/t,
 * permute, squeeze/unsqueeze, flatten, expand, select, slice, with their
 * backward functions.  The copies along dims are
 * in shape_copy.c (cat, stack) and index.c (index_select, gather); more
 * views (split, chunk, unbind, diagonal) in shape_more.c. */
#include <stdint.h>
#include <string.h>

#include "core/core_internal.h"

static et_tensor *view_op(et_tensor *a, const int64_t *shape, const int64_t *strides, int ndim,
                          int64_t offset, int op)
{
    return etc_finish(etc_view_of(a, shape, strides, ndim, offset), op, &a, 1);
}

/* PyTorch's computeStride: strides making `shape` a view of t, or false. */
static bool view_strides(const et_tensor *t, const int64_t *shape, int ndim, int64_t *out)
{
    if (t->contiguous || t->numel == 0) {
        int64_t st = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            out[d] = st;
            st *= shape[d] ? shape[d] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk = t->strides[t->ndim - 1];
    int64_t tn = 1, vn = 1;
    for (int td = t->ndim - 1; td >= 0; td--) {
        tn *= t->shape[td];
        if (td == 0 || (t->shape[td - 1] != 1 && t->strides[td - 1] != tn * chunk)) {
            while (view_d >= 0 && (vn < tn || shape[view_d] == 1)) {
                out[view_d] = vn * chunk;
                vn *= shape[view_d];
                view_d--;
            }
            if (vn != tn)
                return false;
            if (td > 0) {
                chunk = t->strides[td - 1];
                tn = 1;
                vn = 1;
            }
        }
    }
    return view_d == -1;
}

/* Resolve one -1 and check numel.  Writes the final shape into `res`. */
static bool infer_shape(const et_tensor *a, const int64_t *shape, int ndim, const char *op,
                        int64_t *res)
{
    if (ndim < 0 || ndim > ET_MAX_DIMS || (ndim > 0 && !shape)) {
        et_set_error(ET_ERR_ARG, "%s: invalid shape (ndim %d)", op, ndim);
        return false;
    }
    int neg = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == -1) {
            if (neg >= 0) {
                et_set_error(ET_ERR_ARG, "%s: only one dimension can be inferred", op);
                return false;
            }
            neg = i;
        } else if (shape[i] < 0) {
            et_set_error(ET_ERR_ARG, "%s: invalid shape dimension %lld", op, (long long)shape[i]);
            return false;
        } else {
            if (shape[i] > 0 && known > INT64_MAX / 8 / shape[i]) {
                et_set_error(ET_ERR_NOMEM, "%s: shape is too large", op);
                return false;
            }
            known *= shape[i];
        }
        res[i] = shape[i];
    }
    bool ok;
    if (neg >= 0) {
        ok = known != 0 && a->numel % known == 0;
        if (ok)
            res[neg] = a->numel / known;
    } else {
        ok = known == a->numel;
    }
    if (!ok) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "%s: shape '%s' is invalid for input of size %lld", op,
                     etc_shape_fmt(shape, ndim, b, sizeof b), (long long)a->numel);
        return false;
    }
    return true;
}

et_tensor *etc_reshape(et_tensor *a, const int64_t *shape, int ndim)
{
    if (!etc_any_check(a, "reshape"))
        return NULL;
    int64_t res[ET_MAX_DIMS], st[ET_MAX_DIMS];
    if (!infer_shape(a, shape, ndim, "reshape", res))
        return NULL;
    if (view_strides(a, res, ndim, st))
        return view_op(a, res, st, ndim, a->offset, ETC_OP_RESHAPE);
    et_tensor *c = etc_clone(a);
    if (!c)
        return NULL;
    c->ndim = ndim;
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        c->shape[d] = res[d];
        c->strides[d] = s;
        s *= res[d];
    }
    return etc_finish(c, ETC_OP_RESHAPE, &a, 1);
}

et_tensor *etc_view(et_tensor *a, const int64_t *shape, int ndim)
{
    if (!etc_any_check(a, "view"))
        return NULL;
    int64_t res[ET_MAX_DIMS], st[ET_MAX_DIMS];
    if (!infer_shape(a, shape, ndim, "view", res))
        return NULL;
    if (!view_strides(a, res, ndim, st)) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE,
                     "view: shape %s is not compatible with input of shape %s and its strides "
                     "(at least one dimension spans across two contiguous subspaces); use "
                     "reshape instead",
                     etc_shape_fmt(res, ndim, b1, sizeof b1),
                     etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2));
        return NULL;
    }
    return view_op(a, res, st, ndim, a->offset, ETC_OP_VIEW);
}

et_tensor *et_reshape(et_tensor *a, const int64_t *shape, int ndim)
{
    return etc_pooled(etc_reshape(a, shape, ndim));
}

et_tensor *et_view(et_tensor *a, const int64_t *shape, int ndim)
{
    return etc_pooled(etc_view(a, shape, ndim));
}

ETC_BW(reshape)
{
    et_tensor *a = out->in[0];
    return (gin[0] = etc_reshape(g, a->shape, a->ndim)) != NULL;
}

et_tensor *etc_transpose(et_tensor *a, int d0, int d1)
{
    if (!etc_any_check(a, "transpose"))
        return NULL;
    int x = etc_wrap_dim(d0, a->ndim, "transpose");
    int y = x < 0 ? -1 : etc_wrap_dim(d1, a->ndim, "transpose");
    if (x < 0 || y < 0)
        return NULL;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    memcpy(sh, a->shape, sizeof sh);
    memcpy(st, a->strides, sizeof st);
    if (a->ndim > 0) {
        sh[x] = a->shape[y];
        sh[y] = a->shape[x];
        st[x] = a->strides[y];
        st[y] = a->strides[x];
    }
    et_tensor *out = view_op(a, sh, st, a->ndim, a->offset, ETC_OP_TRANSPOSE);
    if (out) {
        out->aux.i[0] = x;
        out->aux.i[1] = y;
    }
    return out;
}

et_tensor *et_transpose(et_tensor *a, int d0, int d1)
{
    return etc_pooled(etc_transpose(a, d0, d1));
}

et_tensor *et_t(et_tensor *a)
{
    if (!etc_any_check(a, "t"))
        return NULL;
    if (a->ndim > 2) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "t: expects a tensor with <= 2 dimensions, got shape %s",
                     etc_shape_fmt(a->shape, a->ndim, b, sizeof b));
        return NULL;
    }
    et_tensor *out = etc_transpose(a, 0, a->ndim == 2 ? 1 : 0);
    if (out && out->op == ETC_OP_TRANSPOSE)
        out->op = ETC_OP_T;
    return etc_pooled(out);
}

ETC_BW(transpose)
{
    return (gin[0] = etc_transpose(g, out->aux.i[0], out->aux.i[1])) != NULL;
}

et_tensor *etc_permute(et_tensor *a, const int *dims, int ndims)
{
    if (!etc_any_check(a, "permute"))
        return NULL;
    if (!dims && a->ndim > 0) {
        et_set_error(ET_ERR_ARG, "permute: dims is NULL (expected a list of the input's %d dims)",
                     a->ndim);
        return NULL;
    }
    if (ndims != a->ndim) {
        et_set_error(ET_ERR_ARG,
                     "permute: number of dims don't match (input has %d dims, %d given)",
                     a->ndim, ndims);
        return NULL;
    }
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int p[ET_MAX_DIMS];
    unsigned seen = 0;
    for (int i = 0; i < ndims; i++) {
        int d = etc_wrap_dim(dims[i], a->ndim, "permute");
        if (d < 0)
            return NULL;
        if (seen & (1u << d)) {
            et_set_error(ET_ERR_ARG, "permute: repeated dim %d", d);
            return NULL;
        }
        seen |= 1u << d;
        p[i] = d;
        sh[i] = a->shape[d];
        st[i] = a->strides[d];
    }
    et_tensor *out = view_op(a, sh, st, ndims, a->offset, ETC_OP_PERMUTE);
    if (out)
        for (int i = 0; i < ndims; i++)
            out->aux.i[i] = p[i];
    return out;
}

et_tensor *et_permute(et_tensor *a, const int *dims, int ndims)
{
    return etc_pooled(etc_permute(a, dims, ndims));
}

ETC_BW(permute)
{
    int inv[ET_MAX_DIMS];
    for (int i = 0; i < out->ndim; i++)
        inv[out->aux.i[i]] = i;
    return (gin[0] = etc_permute(g, inv, out->ndim)) != NULL;
}

et_tensor *etc_squeeze(et_tensor *a, int dim)
{
    if (!etc_any_check(a, "squeeze"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "squeeze");
    if (d < 0)
        return NULL;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i == d && a->shape[i] == 1)
            continue;
        sh[m] = a->shape[i];
        st[m++] = a->strides[i];
    }
    return view_op(a, sh, st, m, a->offset, ETC_OP_SQUEEZE);
}

et_tensor *et_squeeze(et_tensor *a, int dim) { return etc_pooled(etc_squeeze(a, dim)); }

et_tensor *et_squeeze_all(et_tensor *a)
{
    if (!etc_any_check(a, "squeeze"))
        return NULL;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] == 1)
            continue;
        sh[m] = a->shape[i];
        st[m++] = a->strides[i];
    }
    return etc_pooled(view_op(a, sh, st, m, a->offset, ETC_OP_SQUEEZE_ALL));
}

et_tensor *etc_unsqueeze(et_tensor *a, int dim)
{
    if (!etc_any_check(a, "unsqueeze"))
        return NULL;
    if (a->ndim >= ET_MAX_DIMS) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "unsqueeze: shape %s already has the maximum of %d dims",
                     etc_shape_fmt(a->shape, a->ndim, b, sizeof b), ET_MAX_DIMS);
        return NULL;
    }
    int d = etc_wrap_dim(dim, a->ndim + 1, "unsqueeze");
    if (d < 0)
        return NULL;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i <= a->ndim; i++) {
        if (i == d) {
            sh[m] = 1;
            st[m++] = i < a->ndim ? a->shape[i] * a->strides[i] : 1;
        }
        if (i < a->ndim) {
            sh[m] = a->shape[i];
            st[m++] = a->strides[i];
        }
    }
    return view_op(a, sh, st, m, a->offset, ETC_OP_UNSQUEEZE);
}

et_tensor *et_unsqueeze(et_tensor *a, int dim) { return etc_pooled(etc_unsqueeze(a, dim)); }

et_tensor *et_flatten(et_tensor *a, int start_dim, int end_dim)
{
    if (!etc_any_check(a, "flatten"))
        return NULL;
    if (a->ndim == 0) {
        int64_t one = 1;
        return etc_pooled(etc_reshape(a, &one, 1));
    }
    int s = etc_wrap_dim(start_dim, a->ndim, "flatten");
    int e = s < 0 ? -1 : etc_wrap_dim(end_dim, a->ndim, "flatten");
    if (s < 0 || e < 0)
        return NULL;
    if (s > e) {
        et_set_error(ET_ERR_ARG, "flatten: start_dim %d cannot come after end_dim %d", s, e);
        return NULL;
    }
    if (s == e) /* nothing to flatten: torch returns the input itself */
        return etc_pooled(etc_ref(a));
    int64_t sh[ET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i > s && i <= e)
            sh[m - 1] *= a->shape[i];
        else
            sh[m++] = a->shape[i];
    }
    return etc_pooled(etc_reshape(a, sh, m));
}

et_tensor *etc_expand(et_tensor *a, const int64_t *shape, int ndim)
{
    if (!etc_any_check(a, "expand"))
        return NULL;
    if (ndim < a->ndim || ndim > ET_MAX_DIMS || (ndim > 0 && !shape)) {
        char b1[128], b2[128];
        if (ndim < 0 || ndim > ET_MAX_DIMS || (ndim > 0 && !shape))
            et_set_error(ET_ERR_ARG, "expand: invalid target shape (ndim %d)", ndim);
        else
            et_set_error(ET_ERR_SHAPE, "expand: cannot expand %s to %s (fewer dims)",
                         etc_shape_fmt(a->shape, a->ndim, b1, sizeof b1),
                         etc_shape_fmt(shape, ndim, b2, sizeof b2));
        return NULL;
    }
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        int ad = d - (ndim - a->ndim);
        int64_t want = shape[d];
        if (ad < 0) {
            if (want < 0) {
                et_set_error(ET_ERR_ARG,
                             "expand: the expanded size %lld is not allowed in a leading, "
                             "non-existing dimension %d", (long long)want, d);
                return NULL;
            }
            sh[d] = want;
            st[d] = 0;
            continue;
        }
        int64_t have = a->shape[ad];
        if (want == -1)
            want = have;
        if (want == have) {
            sh[d] = have;
            st[d] = a->strides[ad];
        } else if (have == 1 && want >= 0) {
            sh[d] = want;
            st[d] = 0;
        } else {
            char b1[128], b2[128];
            et_set_error(ET_ERR_SHAPE,
                         "expand: the expanded size of the tensor (%lld) must match the existing "
                         "size (%lld) at non-singleton dimension %d; target sizes %s, tensor "
                         "sizes %s", (long long)want, (long long)have, d,
                         etc_shape_fmt(shape, ndim, b1, sizeof b1),
                         etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2));
            return NULL;
        }
    }
    if (!etc_check_shape(sh, ndim, "expand"))
        return NULL;
    return view_op(a, sh, st, ndim, a->offset, ETC_OP_EXPAND);
}

et_tensor *et_expand(et_tensor *a, const int64_t *shape, int ndim)
{
    return etc_pooled(etc_expand(a, shape, ndim));
}

ETC_BW(expand) { return (gin[0] = etc_unbroadcast(g, out->in[0])) != NULL; }

et_tensor *etc_select(et_tensor *a, int dim, int64_t index)
{
    if (!etc_any_check(a, "select"))
        return NULL;
    if (a->ndim == 0) {
        et_set_error(ET_ERR_INDEX, "select: cannot be applied to a 0-dim tensor");
        return NULL;
    }
    int d = etc_wrap_dim(dim, a->ndim, "select");
    if (d < 0)
        return NULL;
    int64_t n = a->shape[d];
    if (index < -n || index >= n) {
        et_set_error(ET_ERR_INDEX, "select: index %lld is out of range for dim %d of size %lld",
                     (long long)index, d, (long long)n);
        return NULL;
    }
    if (index < 0)
        index += n;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i == d)
            continue;
        sh[m] = a->shape[i];
        st[m++] = a->strides[i];
    }
    et_tensor *out = view_op(a, sh, st, m, a->offset + index * a->strides[d], ETC_OP_SELECT);
    if (out) {
        out->aux.l[0] = d;
        out->aux.l[1] = index;
    }
    return out;
}

et_tensor *et_select(et_tensor *a, int dim, int64_t index)
{
    return etc_pooled(etc_select(a, dim, index));
}

/* gradient of a view: zeros of the input's shape with g written through
 * the same view of them */
static bool scatter_view_back(et_tensor *out, et_tensor *g, et_tensor **gin)
{
    et_tensor *a = out->in[0];
    et_tensor *z = etc_zeros(a->shape, a->ndim);
    if (!z)
        return false;
    et_tensor *v = out->op == ETC_OP_SELECT || out->op == ETC_OP_UNBIND
                       ? etc_select(z, (int)out->aux.l[0], out->aux.l[1])
                       : etc_slice(z, (int)out->aux.l[0], out->aux.l[1], out->aux.l[2],
                                   out->aux.l[3]);
    if (!v) {
        etc_release(z);
        return false;
    }
    etc_strided_copy(v, g);
    etc_release(v);
    gin[0] = z;
    return true;
}

ETC_BW(select) { return scatter_view_back(out, g, gin); }
/* A slice's gradient added straight into its input's pending gradient when
 * that is already there and only ours (the second and third chunk of a
 * Transformer's packed q/k/v projection): no zeros of the input's shape,
 * no copy, no whole-tensor add when the engine accumulates (each was a pass
 * over [N, L, 3E] per chunk).  The slice's elements get pending + g as
 * accumulate would compute them, the others keep their value (pending + 0,
 * the same but for a -0 that would become +0). */
ETC_BW(slice)
{
    et_tensor *a = out->in[0], *p = a->pgrad;
    if (p && p != g && p->dtype == ET_FLOAT32 && g->dtype == ET_FLOAT32 && g->contiguous &&
        p->contiguous && etc_same_shape(p, a) && etc_same_shape(g, out) &&
        atomic_load_explicit(&p->refcount, memory_order_relaxed) == 1 &&
        atomic_load_explicit(&p->storage->refcount, memory_order_relaxed) == 1 &&
        p->storage != g->storage) {
        et_tensor *v = etc_slice(p, (int)out->aux.l[0], out->aux.l[1], out->aux.l[2],
                                 out->aux.l[3]);
        if (v) {
            etc_zrec_forget(p);
            etc_add_into(v, g);
            etc_release(v);
            gin[0] = NULL;
            return true;
        }
        et_clear_error();
    }
    return scatter_view_back(out, g, gin);
}

et_tensor *etc_slice(et_tensor *a, int dim, int64_t start, int64_t end, int64_t step)
{
    if (!etc_any_check(a, "slice"))
        return NULL;
    if (a->ndim == 0) {
        et_set_error(ET_ERR_INDEX, "slice: cannot be applied to a 0-dim tensor");
        return NULL;
    }
    int d = etc_wrap_dim(dim, a->ndim, "slice");
    if (d < 0)
        return NULL;
    if (step <= 0) {
        et_set_error(ET_ERR_ARG, "slice: step must be positive, got %lld", (long long)step);
        return NULL;
    }
    int64_t n = a->shape[d];
    if (start < 0)
        start = start < -n ? 0 : start + n;
    if (start > n)
        start = n;
    if (end < 0)
        end = end < -n ? 0 : end + n;
    if (end > n)
        end = n;
    /* written so that a huge user step (up to INT64_MAX) cannot overflow */
    int64_t len = end > start ? 1 + (end - start - 1) / step : 0;
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    memcpy(sh, a->shape, sizeof sh);
    memcpy(st, a->strides, sizeof st);
    sh[d] = len;
    /* len >= 2 implies step < n, so the product stays inside the storage
     * extent; with one element the stride is never used */
    st[d] = len > 1 ? a->strides[d] * step : a->strides[d];
    et_tensor *out = view_op(a, sh, st, a->ndim, a->offset + start * a->strides[d], ETC_OP_SLICE);
    if (out) {
        out->aux.l[0] = d;
        out->aux.l[1] = start;
        out->aux.l[2] = end;
        out->aux.l[3] = step;
    }
    return out;
}

et_tensor *et_slice(et_tensor *a, int dim, int64_t start, int64_t end, int64_t step)
{
    return etc_pooled(etc_slice(a, dim, start, end, step));
}
