/* shape_copy.c - copies that join tensors along a dim: cat (with torch's
 * legacy-empty rule) and stack (unsqueeze + cat), with their backward
 * functions (slices / selects of the gradient), and clone's backward.  The
 * views are in shape.c and shape_more.c; index_select and gather, copies
 * chosen by an int64 index, are in index.c. */
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* cat / stack                                                          */

/* torch.cat skips PyTorch's legacy empty tensor (1-D of size 0) in its shape
 * checks, so it can be concatenated with anything. */
static bool legacy_empty(const et_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

et_tensor *etc_cat(et_tensor *const *ts, int n, int dim, int op)
{
    const char *name = op == ETC_OP_STACK ? "stack" : "cat";
    if (n <= 0 || !ts) {
        et_set_error(ET_ERR_ARG, "%s: expected a non-empty list of tensors", name);
        return NULL;
    }
    int first = -1;   /* the first tensor that is not a legacy empty one */
    for (int i = 0; i < n; i++) {
        if (!etc_any_check(ts[i], name))
            return NULL;
        if (ts[i]->ndim == 0) {
            et_set_error(ET_ERR_SHAPE, "%s: zero-dimensional tensor (at position %d) cannot be "
                         "concatenated", name, i);
            return NULL;
        }
        if (first < 0 && (op == ETC_OP_STACK || !legacy_empty(ts[i])))
            first = i;
    }
    if (first < 0) /* every input is a legacy empty tensor: so is the result */
        first = 0;
    const et_tensor *f = ts[first];
    int d = etc_wrap_dim(dim, f->ndim, name);
    if (d < 0)
        return NULL;
    int64_t sh[ET_MAX_DIMS];
    memcpy(sh, f->shape, sizeof sh);
    sh[d] = 0;
    for (int i = 0; i < n; i++) {
        const et_tensor *t = ts[i];
        if (op != ETC_OP_STACK && legacy_empty(t) && t != f)
            continue;
        bool ok = t->ndim == f->ndim;
        for (int k = 0; ok && k < f->ndim; k++)
            ok = k == d || t->shape[k] == f->shape[k];
        if (!ok) {
            char b1[128], b2[128];
            et_set_error(ET_ERR_SHAPE,
                         "%s: sizes of tensors must match except in dimension %d (tensor %d has "
                         "shape %s, tensor %d has shape %s)", name, d, i,
                         etc_shape_fmt(t->shape, t->ndim, b1, sizeof b1), first,
                         etc_shape_fmt(f->shape, f->ndim, b2, sizeof b2));
            return NULL;
        }
        if (t->dtype != f->dtype) {
            et_set_error(ET_ERR_ARG, "%s: tensor %d is %s but tensor %d is %s", name, i,
                         et_dtype_name((et_dtype)t->dtype), first,
                         et_dtype_name((et_dtype)f->dtype));
            return NULL;
        }
        if (__builtin_add_overflow(sh[d], t->shape[d], &sh[d])) {
            et_set_error(ET_ERR_NOMEM, "%s: the result size in dimension %d overflows", name, d);
            return NULL;
        }
    }
    et_tensor *out = etc_alloc_dtype(sh, f->ndim, f->dtype);
    if (!out)
        return NULL;
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (ts[i]->numel == 0)
            continue;
        int64_t vs[ET_MAX_DIMS];
        memcpy(vs, sh, sizeof vs);
        vs[d] = ts[i]->shape[d];
        et_tensor *v = etc_view_of(out, vs, out->strides, out->ndim, pos * out->strides[d]);
        if (!v) {
            etc_release(out);
            return NULL;
        }
        etc_strided_copy(v, ts[i]);
        etc_release(v);
        pos += ts[i]->shape[d];
    }
    out->aux.i[0] = d;
    return out;
}

et_tensor *et_cat(et_tensor *const *ts, int n, int dim)
{
    et_tensor *out = etc_cat(ts, n, dim, ETC_OP_CAT);
    if (!out)
        return NULL;
    return etc_pooled(etc_finish(out, ETC_OP_CAT, ts, n));
}

ETC_BW(cat)
{
    int d = out->aux.i[0];
    int64_t pos = 0;
    for (int i = 0; i < out->nin; i++) {
        et_tensor *in = out->in[i];
        if (in->numel == 0 && in->ndim != out->ndim) {   /* a legacy empty input */
            if (in->requires_grad && !(gin[i] = etc_zeros(in->shape, in->ndim)))
                return false;
            continue;
        }
        int64_t len = in->shape[d];
        if (in->requires_grad) {
            gin[i] = etc_slice(g, d, pos, pos + len, 1);
            if (!gin[i])
                return false;
        }
        pos += len;
    }
    return true;
}

et_tensor *et_stack(et_tensor *const *ts, int n, int dim)
{
    if (n <= 0 || !ts) {
        et_set_error(ET_ERR_ARG, "stack: expected a non-empty list of tensors");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!etc_any_check(ts[i], "stack"))
            return NULL;
    const et_tensor *f = ts[0];
    for (int i = 1; i < n; i++)
        if (!et_same_shape(f, ts[i])) {
            char b1[128], b2[128];
            et_set_error(ET_ERR_SHAPE,
                         "stack: expects each tensor to be equal size, but got %s at entry 0 "
                         "and %s at entry %d",
                         etc_shape_fmt(f->shape, f->ndim, b1, sizeof b1),
                         etc_shape_fmt(ts[i]->shape, ts[i]->ndim, b2, sizeof b2), i);
            return NULL;
        }
    if (f->ndim >= ET_MAX_DIMS) {
        et_set_error(ET_ERR_SHAPE, "stack: result would have more than %d dims", ET_MAX_DIMS);
        return NULL;
    }
    int d = etc_wrap_dim(dim, f->ndim + 1, "stack");
    if (d < 0)
        return NULL;
    et_tensor *local[16];
    et_tensor **us = n <= 16 ? local : calloc((size_t)n, sizeof *us);
    if (!us) {
        et_set_error(ET_ERR_NOMEM, "stack: out of memory");
        return NULL;
    }
    bool prev = et_set_grad_enabled(false);
    int made = 0;
    for (; made < n; made++)
        if (!(us[made] = etc_unsqueeze(ts[made], d)))
            break;
    et_tensor *out = made == n ? etc_cat(us, n, d, ETC_OP_STACK) : NULL;
    et_set_grad_enabled(prev);
    for (int i = 0; i < made; i++)
        etc_release(us[i]);
    if (us != local)
        free(us);
    if (!out)
        return NULL;
    out->aux.i[0] = d;
    return etc_pooled(etc_finish(out, ETC_OP_STACK, ts, n));
}

ETC_BW(stack)
{
    int d = out->aux.i[0];
    for (int i = 0; i < out->nin; i++)
        if (out->in[i]->requires_grad && !(gin[i] = etc_select(g, d, i)))
            return false;
    return true;
}

ETC_BW(clone) { return (gin[0] = etc_ref(g)) != NULL; }
