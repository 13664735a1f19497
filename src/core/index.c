/* index.c - the ops that read or write along a dim at int64 indices, out
 * of place, and their backward functions: scatter (from a tensor or a
 * value), scatter_add and index_add (torch 1.13's derivatives.yaml: the
 * input's gradient is g with the overwritten positions zeroed for scatter,
 * g itself for the adds; src's is g gathered at the indices, times alpha
 * for index_add), and their reading twins index_select and gather (the
 * gradient is g added back at the indices). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

enum { SC_SRC, SC_VALUE, SC_ADD };

static bool need_int64(const et_tensor *index, const char *name)
{
    if (index->dtype != ET_INT64) {
        et_set_error(ET_ERR_ARG, "%s: expected an int64 index tensor, got %s", name,
                     et_dtype_name((et_dtype)index->dtype));
        return false;
    }
    return true;
}

/* Offsets of the element idx (index's multi-index) in `t` with dim d
 * replaced by v (v < 0: keep idx[d]). */
static inline int64_t offset_of(const et_tensor *t, const int64_t *idx, int d, int64_t v)
{
    int64_t off = 0;
    for (int k = 0; k < t->ndim; k++)
        off += (k == d && v >= 0 ? v : idx[k]) * t->strides[k];
    return off;
}

static bool next_index(int64_t *idx, const int64_t *shape, int nd)
{
    for (int k = nd - 1; k >= 0; k--) {
        if (++idx[k] < shape[k])
            return true;
        idx[k] = 0;
    }
    return false;
}

/* torch's gather/scatter shape rules, and every index in range */
static bool scatter_check(et_tensor *a, int d, et_tensor *index, et_tensor *src,
                          const char *name)
{
    char b1[128], b2[128];
    if (index->ndim != a->ndim && !(a->ndim <= 1 && index->ndim <= 1)) {
        et_set_error(ET_ERR_SHAPE, "%s: index of shape %s must have as many dims as input of "
                     "shape %s", name, etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1),
                     etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2));
        return false;
    }
    if (src && src->ndim != index->ndim && !(src->ndim <= 1 && index->ndim <= 1)) {
        et_set_error(ET_ERR_SHAPE, "%s: src of shape %s must have as many dims as index of "
                     "shape %s", name, etc_shape_fmt(src->shape, src->ndim, b1, sizeof b1),
                     etc_shape_fmt(index->shape, index->ndim, b2, sizeof b2));
        return false;
    }
    for (int k = 0; k < index->ndim; k++) {
        if (src && k < src->ndim && index->shape[k] > src->shape[k]) {
            et_set_error(ET_ERR_SHAPE, "%s: index %s is larger than src %s at dim %d", name,
                         etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1),
                         etc_shape_fmt(src->shape, src->ndim, b2, sizeof b2), k);
            return false;
        }
        if (k != d && k < a->ndim && index->shape[k] > a->shape[k]) {
            et_set_error(ET_ERR_SHAPE, "%s: index %s is larger than input %s at dim %d", name,
                         etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1),
                         etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2), k);
            return false;
        }
    }
    int64_t D = a->ndim ? a->shape[d] : 1;
    int64_t idx[ET_MAX_DIMS] = {0}, v;
    for (int64_t n = 0; n < index->numel; n++) {
        if (!etc_index_read(index, offset_of(index, idx, -1, -1), D, name, d, &v))
            return false;
        next_index(idx, index->shape, index->ndim);
    }
    return true;
}

static et_tensor *scatter_impl(et_tensor *a, int dim, et_tensor *index, et_tensor *src,
                               float value, int mode)
{
    const char *name = mode == SC_ADD ? "scatter_add" : "scatter";
    if (!etc_null_check(a, name) || !etc_any_check(index, name) ||
        (mode != SC_VALUE && !etc_null_check(src, name)))
        return NULL;
    if (!need_int64(index, name))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, name);
    if (d < 0 || !scatter_check(a, d, index, mode == SC_VALUE ? NULL : src, name))
        return NULL;
    if (a->ndim == 0)
        d = -1;
    et_tensor *out = etc_clone(a);
    if (!out)
        return NULL;
    const int64_t *ix = etc_idata(index);
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t n = 0; n < index->numel; n++) {
        int64_t v = ix[offset_of(index, idx, -1, -1)];
        int64_t o = d < 0 ? 0 : offset_of(out, idx, d, v);
        float s = mode == SC_VALUE ? value : src->data[offset_of(src, idx, -1, -1)];
        if (mode == SC_ADD)
            out->data[o] += s;
        else
            out->data[o] = s;
        next_index(idx, index->shape, index->ndim);
    }
    out->aux.i[0] = d;
    et_tensor *ins[2] = {a, src};
    int op = mode == SC_SRC ? ETC_OP_SCATTER : mode == SC_VALUE ? ETC_OP_SCATTER_VALUE
                                                                : ETC_OP_SCATTER_ADD;
    out = etc_finish(out, op, ins, mode == SC_VALUE ? 1 : 2);
    if (out && out->requires_grad && !(out->saved = etc_clone(index))) {
        etc_release(out);
        return NULL;
    }
    return etc_pooled(out);
}

et_tensor *et_scatter(et_tensor *a, int dim, et_tensor *index, et_tensor *src)
{
    return scatter_impl(a, dim, index, src, 0.0f, SC_SRC);
}

et_tensor *et_scatter_value(et_tensor *a, int dim, et_tensor *index, float value)
{
    return scatter_impl(a, dim, index, NULL, value, SC_VALUE);
}

et_tensor *et_scatter_add(et_tensor *a, int dim, et_tensor *index, et_tensor *src)
{
    return scatter_impl(a, dim, index, src, 0.0f, SC_ADD);
}

ETC_BW(scatter)
{
    et_tensor *a = out->in[0], *ix = out->saved;
    int d = out->aux.i[0];
    const int64_t *iv = etc_idata(ix);
    if (a->requires_grad) {
        if (out->op == ETC_OP_SCATTER_ADD) {
            gin[0] = etc_ref(g);
        } else {   /* g with the overwritten positions zeroed */
            gin[0] = etc_clone(g);
            if (!gin[0])
                return false;
            int64_t idx[ET_MAX_DIMS] = {0};
            for (int64_t n = 0; n < ix->numel; n++) {
                int64_t v = iv[n];
                gin[0]->data[d < 0 ? 0 : offset_of(gin[0], idx, d, v)] = 0.0f;
                next_index(idx, ix->shape, ix->ndim);
            }
        }
    }
    if (out->nin > 1 && out->in[1]->requires_grad) {   /* src: g gathered at the indices */
        et_tensor *src = out->in[1];
        et_tensor *gs = etc_zeros(src->shape, src->ndim);
        et_tensor *gc = gs ? etc_contig(g) : NULL;
        if (!gc) {
            etc_release(gs);
            return false;
        }
        int64_t idx[ET_MAX_DIMS] = {0};
        for (int64_t n = 0; n < ix->numel; n++) {
            int64_t v = iv[n];
            gs->data[offset_of(gs, idx, -1, -1)] = gc->data[d < 0 ? 0 : offset_of(gc, idx, d, v)];
            next_index(idx, ix->shape, ix->ndim);
        }
        etc_release(gc);
        gin[1] = gs;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* index_add                                                            */

et_tensor *et_index_add(et_tensor *a, int dim, et_tensor *index, et_tensor *source, float alpha)
{
    const char *name = "index_add";
    if (!etc_null_check(a, name) || !etc_any_check(index, name) || !etc_null_check(source, name))
        return NULL;
    if (!need_int64(index, name))
        return NULL;
    char b1[128], b2[128];
    if (index->ndim > 1) {
        et_set_error(ET_ERR_SHAPE, "%s: index must be 0-D or 1-D, got shape %s", name,
                     etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1));
        return NULL;
    }
    int d = etc_wrap_dim(dim, a->ndim, name);
    if (d < 0)
        return NULL;
    int64_t L = index->numel;
    /* source: a's shape with L at dim (0-d when a is 0-d or 1-D with a 0-d index) */
    bool ok = a->ndim == 0 ? source->numel == 1 && source->ndim <= 1 && L == 1
                           : (source->ndim == a->ndim || (a->ndim == 1 && source->ndim == 0));
    for (int k = 0; ok && source->ndim && k < a->ndim; k++)
        ok = k == d ? source->shape[k] == L : source->shape[k] == a->shape[k];
    if (ok && a->ndim == 1 && source->ndim == 0)
        ok = L == 1;
    if (!ok) {
        et_set_error(ET_ERR_SHAPE, "%s: source of shape %s does not match input %s with %lld "
                     "indices at dim %d", name, etc_shape_fmt(source->shape, source->ndim, b1,
                                                              sizeof b1),
                     etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2), (long long)L, d);
        return NULL;
    }
    int64_t D = a->ndim ? a->shape[d] : 1;
    et_tensor *ixc = etc_contig(index);
    if (!ixc)
        return NULL;
    for (int64_t i = 0; i < L; i++) {
        int64_t v;
        if (!etc_index_read(ixc, i, D, name, d, &v)) {
            etc_release(ixc);
            return NULL;
        }
    }
    et_tensor *out = etc_clone(a);
    et_tensor *s = out ? etc_contig(source) : NULL;
    if (!s) {
        etc_release(out);
        etc_release(ixc);
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < d; k++)
        outer *= a->shape[k];
    for (int k = d + 1; k < a->ndim; k++)
        inner *= a->shape[k];
    const int64_t *iv = etc_idata(ixc);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < L; i++) {
            float *dst = out->data + (o * D + iv[i]) * inner;
            const float *sp = s->data + (o * L + i) * inner;
            for (int64_t j = 0; j < inner; j++)
                dst[j] += alpha * sp[j];
        }
    etc_release(s);
    out->aux.i[0] = d;
    out->aux.f[1] = alpha;
    et_tensor *ins[2] = {a, source};
    out = etc_finish(out, ETC_OP_INDEX_ADD, ins, 2);
    if (out && out->requires_grad)
        out->saved = etc_ref(ixc);
    etc_release(ixc);
    return etc_pooled(out);
}

/* input: g; source: alpha * g.index_select(dim, index) */
ETC_BW(index_add)
{
    et_tensor *a = out->in[0], *src = out->in[1];
    if (a->requires_grad)
        gin[0] = etc_ref(g);
    if (!src->requires_grad)
        return true;
    int d = out->aux.i[0];
    float alpha = out->aux.f[1];
    const int64_t *iv = etc_idata(out->saved);
    int64_t L = out->saved->numel, D = a->ndim ? a->shape[d] : 1;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < d; k++)
        outer *= a->shape[k];
    for (int k = d + 1; k < a->ndim; k++)
        inner *= a->shape[k];
    et_tensor *gc = etc_contig(g);
    et_tensor *gs = gc ? etc_alloc(src->shape, src->ndim) : NULL;
    if (!gs) {
        etc_release(gc);
        return false;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < L; i++) {
            const float *gp = gc->data + (o * D + iv[i]) * inner;
            float *dst = gs->data + (o * L + i) * inner;
            for (int64_t j = 0; j < inner; j++)
                dst[j] = alpha * gp[j];
        }
    etc_release(gc);
    gin[1] = gs;
    return true;
}

/* ------------------------------------------------------------------ */
/* index_select / gather                                                */

et_tensor *et_index_select(et_tensor *a, int dim, et_tensor *index)
{
    if (!etc_any_check(a, "index_select") || !etc_any_check(index, "index_select"))
        return NULL;
    if (index->ndim > 1) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "index_select: index must be 0-D or 1-D, got shape %s",
                     etc_shape_fmt(index->shape, index->ndim, b, sizeof b));
        return NULL;
    }
    int d = etc_wrap_dim(dim, a->ndim, "index_select");
    if (d < 0)
        return NULL;
    int64_t D = a->ndim ? a->shape[d] : 1;
    et_tensor *ix = etc_indices(index, D, "index_select", d);
    if (!ix)
        return NULL;
    int64_t L = ix->numel;
    int64_t sh[ET_MAX_DIMS];
    memcpy(sh, a->shape, sizeof sh);
    if (a->ndim)
        sh[d] = L;
    et_tensor *x = etc_contig(a);
    et_tensor *out = x ? etc_alloc_dtype(sh, a->ndim, a->dtype) : NULL;
    if (!out) {
        etc_release(x);
        etc_release(ix);
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < d; k++)
        outer *= a->shape[k];
    for (int k = d + 1; k < a->ndim; k++)
        inner *= a->shape[k];
    size_t es = (size_t)etc_elsize(a->dtype);
    if (es == 8 && inner < 8) {
        /* a few int64 values per index (a batch of a dataset's rows of
         * contexts, or its targets): plain loads and stores, not a call to
         * memcpy for 8 or 24 bytes -- the same values */
        const int64_t *xs = etc_idata(x);
        int64_t *os = etc_idata(out);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < L; i++)
                for (int64_t q = 0; q < inner; q++)
                    os[(o * L + i) * inner + q] = xs[(o * D + etc_idata(ix)[i]) * inner + q];
    } else {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < L; i++)
                memcpy((char *)out->data + (size_t)((o * L + i) * inner) * es,
                       (const char *)x->data + (size_t)((o * D + etc_idata(ix)[i]) * inner) * es,
                       (size_t)inner * es);
    }
    etc_release(x);
    out->aux.i[0] = d;
    out = etc_finish(out, ETC_OP_INDEX_SELECT, &a, 1);
    if (out && out->requires_grad)
        out->saved = etc_ref(ix);
    etc_release(ix);
    return etc_pooled(out);
}

ETC_BW(index_select)
{
    et_tensor *a = out->in[0];
    int d = out->aux.i[0];
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(a, g, &gz, &gc))
        return false;
    const int64_t *ix = etc_idata(out->saved);
    int64_t L = out->saved->numel, D = a->ndim ? a->shape[d] : 1;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < d; k++)
        outer *= a->shape[k];
    for (int k = d + 1; k < a->ndim; k++)
        inner *= a->shape[k];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < L; i++) {
            float *dst = gz->data + (o * D + ix[i]) * inner;
            const float *src = gc->data + (o * L + i) * inner;
            for (int64_t j = 0; j < inner; j++)
                dst[j] += src[j];
        }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

et_tensor *et_gather(et_tensor *a, int dim, et_tensor *index)
{
    if (!etc_null_check(a, "gather") || !etc_any_check(index, "gather"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "gather");
    if (d < 0)
        return NULL;
    if (index->ndim != a->ndim && !(a->ndim <= 1 && index->ndim <= 1)) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "gather: index of shape %s must have as many dims as input "
                     "of shape %s", etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1),
                     etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2));
        return NULL;
    }
    for (int k = 0; k < index->ndim && k < a->ndim; k++)
        if (k != d && index->shape[k] > a->shape[k]) {
            char b1[128], b2[128];
            et_set_error(ET_ERR_SHAPE, "gather: size of index %s does not fit input %s at dim %d",
                         etc_shape_fmt(index->shape, index->ndim, b1, sizeof b1),
                         etc_shape_fmt(a->shape, a->ndim, b2, sizeof b2), k);
            return NULL;
        }
    int64_t D = a->ndim ? a->shape[d] : 1;
    et_tensor *ix = etc_indices(index, D, "gather", d);
    et_tensor *out = ix ? etc_alloc(index->shape, index->ndim) : NULL;
    if (!out) {
        etc_release(ix);
        return NULL;
    }
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t n = 0; n < index->numel; n++) {
        int64_t aoff = 0;
        for (int k = 0; k < index->ndim; k++)
            if (k != d && k < a->ndim)
                aoff += idx[k] * a->strides[k];
        if (a->ndim)
            aoff += etc_idata(ix)[n] * a->strides[d];
        out->data[n] = a->data[aoff];
        for (int k = index->ndim - 1; k >= 0; k--) {
            if (++idx[k] < index->shape[k])
                break;
            idx[k] = 0;
        }
    }
    out->aux.i[0] = d;
    out = etc_finish(out, ETC_OP_GATHER, &a, 1);
    if (out && out->requires_grad)
        out->saved = etc_ref(ix);
    etc_release(ix);
    return etc_pooled(out);
}

ETC_BW(gather)
{
    et_tensor *a = out->in[0];
    int d = out->aux.i[0];
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(a, g, &gz, &gc))
        return false;
    const et_tensor *ix = out->saved;
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t n = 0; n < ix->numel; n++) {
        int64_t off = 0;
        for (int k = 0; k < a->ndim; k++)
            off += (k == d ? etc_idata(ix)[n] : idx[k]) * gz->strides[k];
        gz->data[off] += gc->data[n];
        for (int k = ix->ndim - 1; k >= 0; k--) {
            if (++idx[k] < ix->shape[k])
                break;
            idx[k] = 0;
        }
    }
    etc_release(gc);
    gin[0] = gz;
    return true;
}
