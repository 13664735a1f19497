/* reduce_basic.c - the basic reductions: sum/mean (over dims or all),
 * max/min/argmax/argmin along a dim and over all elements, softmax and
 * log_softmax, with their backward functions; also the two helpers every
 * reduction shares, etc_reduce_mask and etc_expand_back.  The further
 * reductions (logsumexp, var/std, prod, cumsum, norm, amax/amin) are in
 * reduce.c. */
#include <math.h>
#include <stdlib.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* sum / mean                                                           */

/* View of g (shape = out's shape) broadcast to `in`'s shape, where `mask`
 * marks the reduced dims of `in` and keepdim says whether they remain in g. */
static et_tensor *expand_back(et_tensor *g, const et_tensor *in, unsigned mask, bool keepdim)
{
    int64_t st[ET_MAX_DIMS];
    int gd = 0;
    for (int d = 0; d < in->ndim; d++) {
        if (mask & (1u << d)) {
            st[d] = 0;
            if (keepdim)
                gd++;
        } else {
            st[d] = g->strides[gd++];
        }
    }
    return etc_view_of(g, in->shape, st, in->ndim, g->offset);
}

/* Parse `dims` into a bit mask over a's dims (all dims when ndims == 0). */
static bool reduce_mask(const et_tensor *a, const int *dims, int ndims, const char *op,
                        unsigned *mask)
{
    *mask = 0;
    if (ndims < 0 || (ndims > 0 && !dims)) {
        et_set_error(ET_ERR_ARG, "%s: invalid dims list", op);
        return false;
    }
    if (ndims == 0) {
        *mask = a->ndim ? (1u << a->ndim) - 1 : 0;
        return true;
    }
    for (int i = 0; i < ndims; i++) {
        int d = etc_wrap_dim(dims[i], a->ndim, op);
        if (d < 0)
            return false;
        if (a->ndim == 0)
            continue;
        if (*mask & (1u << d)) {
            et_set_error(ET_ERR_ARG, "%s: dim %d appears multiple times in the list of dims", op, d);
            return false;
        }
        *mask |= 1u << d;
    }
    return true;
}

et_tensor *etc_expand_back(et_tensor *g, const et_tensor *in, unsigned mask, bool keepdim)
{
    return expand_back(g, in, mask, keepdim);
}

bool etc_reduce_mask(const et_tensor *a, const int *dims, int ndims, const char *op,
                     unsigned *mask)
{
    return reduce_mask(a, dims, ndims, op, mask);
}

static et_tensor *reduce_sum(et_tensor *a, const int *dims, int ndims, bool keepdim, bool mean,
                             const char *name)
{
    if (!etc_null_check(a, name))
        return NULL;
    unsigned mask;
    if (!reduce_mask(a, dims, ndims, name, &mask))
        return NULL;
    int64_t kshape[ET_MAX_DIMS];
    int64_t count = 1;
    for (int d = 0; d < a->ndim; d++) {
        kshape[d] = (mask & (1u << d)) ? 1 : a->shape[d];
        if (mask & (1u << d))
            count *= a->shape[d];
    }
    double scale = mean ? (count ? 1.0 / (double)count : NAN) : 1.0;
    et_tensor *out = etc_sum_to(a, kshape, a->ndim, scale);
    if (!out)
        return NULL;
    if (!keepdim) {
        /* fresh contiguous tensor: drop the reduced dims in place */
        int m = 0;
        for (int d = 0; d < a->ndim; d++)
            if (!(mask & (1u << d)))
                out->shape[m++] = a->shape[d];
        out->ndim = m;
        int64_t st = 1;
        for (int d = m - 1; d >= 0; d--) {
            out->strides[d] = st;
            st *= out->shape[d];
        }
    }
    out->aux.i[0] = (int)mask;
    out->aux.i[1] = keepdim;
    return etc_finish(out, mean ? ETC_OP_MEAN : ETC_OP_SUM, &a, 1);
}

et_tensor *etc_sum(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    return reduce_sum(a, dims, ndims, keepdim, false, "sum");
}

et_tensor *et_sum(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    return etc_pooled(etc_sum(a, dims, ndims, keepdim));
}

et_tensor *et_mean(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    return etc_pooled(reduce_sum(a, dims, ndims, keepdim, true, "mean"));
}

et_tensor *et_sum_all(et_tensor *a)
{
    if (!etc_null_check(a, "sum"))
        return NULL;
    return etc_pooled(etc_finish(etc_sum_to(a, NULL, 0, 1.0), ETC_OP_SUM_ALL, &a, 1));
}

et_tensor *et_mean_all(et_tensor *a)
{
    if (!etc_null_check(a, "mean"))
        return NULL;
    double scale = a->numel ? 1.0 / (double)a->numel : NAN;
    return etc_pooled(etc_finish(etc_sum_to(a, NULL, 0, scale), ETC_OP_MEAN_ALL, &a, 1));
}

ETC_BW(sum_all)
{
    et_tensor *a = out->in[0];
    /* small: a contiguous gradient keeps the ops below on their fast path */
    if (a->numel <= 4096)
        return (gin[0] = etc_full(a->shape, a->ndim, g->data[0])) != NULL;
    int64_t st[ET_MAX_DIMS] = {0};
    return (gin[0] = etc_view_of(g, a->shape, st, a->ndim, g->offset)) != NULL;
}

ETC_BW(mean_all)
{
    et_tensor *a = out->in[0];
    float v = (float)((double)g->data[0] / (double)a->numel);
    return (gin[0] = etc_full(a->shape, a->ndim, v)) != NULL;
}

ETC_BW(sum)
{
    gin[0] = expand_back(g, out->in[0], (unsigned)out->aux.i[0], out->aux.i[1] != 0);
    return gin[0] != NULL;
}

ETC_BW(mean)
{
    et_tensor *a = out->in[0];
    unsigned mask = (unsigned)out->aux.i[0];
    int64_t count = 1;
    for (int d = 0; d < a->ndim; d++)
        if (mask & (1u << d))
            count *= a->shape[d];
    et_tensor *v = expand_back(g, a, mask, out->aux.i[1] != 0);
    if (!v)
        return false;
    gin[0] = etc_ew1(EW_DIVS, v, (float)count, 0);
    etc_release(v);
    return gin[0] != NULL;
}

/* ------------------------------------------------------------------ */
/* max / min                                                            */

/* a viewed as [outer, D, inner] after making it contiguous. */
static void split3(const et_tensor *a, int dim, int64_t *outer, int64_t *D, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    *D = a->ndim ? a->shape[dim] : 1;
    for (int d = 0; d < dim; d++)
        *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++)
        *inner *= a->shape[d];
}

static void reduced_shape(const et_tensor *a, int dim, bool keepdim, int64_t *shape, int *nd)
{
    int m = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (d == dim) {
            if (keepdim)
                shape[m++] = 1;
        } else {
            shape[m++] = a->shape[d];
        }
    }
    *nd = m;
}

/* values (may be NULL) and indices of the max (is_max) or min along dim. */
static bool argext(et_tensor *a, int dim, bool keepdim, bool is_max, const char *name,
                   et_tensor **values, et_tensor **indices)
{
    int d = etc_wrap_dim(dim, a->ndim, name);
    if (d < 0)
        return false;
    if (a->ndim > 0 && a->shape[d] == 0) {
        et_set_error(ET_ERR_INDEX, "%s: expected reduction dim %d to have non-zero size", name, d);
        return false;
    }
    int64_t shape[ET_MAX_DIMS];
    int nd;
    reduced_shape(a, a->ndim ? d : -1, keepdim, shape, &nd);
    et_tensor *x = etc_contig(a);
    et_tensor *v = values ? etc_alloc(shape, nd) : NULL;
    et_tensor *ix = etc_alloc_dtype(shape, nd, ET_INT64);
    if (!x || (values && !v) || !ix) {
        etc_release(x);
        etc_release(v);
        etc_release(ix);
        return false;
    }
    int64_t outer, D, inner;
    split3(x, d, &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *p = x->data + o * D * inner + i;
            float best = p[0];
            int64_t bi = 0;
            for (int64_t k = 1; k < D && best == best; k++) {
                float c = p[k * inner];
                if (c != c || (is_max ? c > best : c < best)) {
                    best = c;
                    bi = k;
                }
            }
            if (v)
                v->data[o * inner + i] = best;
            etc_idata(ix)[o * inner + i] = bi;
        }
    }
    etc_release(x);
    if (values)
        *values = v;
    *indices = ix;
    return true;
}

static et_tensor *max_min(et_tensor *a, int dim, bool keepdim, et_tensor **indices, bool is_max)
{
    const char *name = is_max ? "max" : "min";
    if (indices)
        *indices = NULL;
    if (!etc_null_check(a, name))
        return NULL;
    et_tensor *v, *ix;
    if (!argext(a, dim, keepdim, is_max, name, &v, &ix))
        return NULL;
    v->aux.i[0] = etc_wrap_dim(dim, a->ndim, name);
    v->aux.i[1] = keepdim;
    if (!etc_record(v, is_max ? ETC_OP_MAX : ETC_OP_MIN, &a, 1)) {
        etc_release(v);
        etc_release(ix);
        return NULL;
    }
    if (v->requires_grad)
        v->saved = etc_ref(ix);
    if (indices)
        *indices = etc_pooled(ix);
    else
        etc_release(ix);
    return etc_pooled(v);
}

et_tensor *et_max(et_tensor *a, int dim, bool keepdim, et_tensor **indices)
{
    return max_min(a, dim, keepdim, indices, true);
}

et_tensor *et_min(et_tensor *a, int dim, bool keepdim, et_tensor **indices)
{
    return max_min(a, dim, keepdim, indices, false);
}

static et_tensor *arg_ext(et_tensor *a, int dim, bool keepdim, bool is_max)
{
    const char *name = is_max ? "argmax" : "argmin";
    if (!etc_null_check(a, name))
        return NULL;
    et_tensor *ix;
    if (!argext(a, dim, keepdim, is_max, name, NULL, &ix))
        return NULL;
    return etc_pooled(ix);
}

et_tensor *et_argmax(et_tensor *a, int dim, bool keepdim) { return arg_ext(a, dim, keepdim, true); }
et_tensor *et_argmin(et_tensor *a, int dim, bool keepdim) { return arg_ext(a, dim, keepdim, false); }

ETC_BW(max_dim)
{
    et_tensor *a = out->in[0];
    int d = out->aux.i[0];
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(a, g, &gz, &gc))
        return false;
    int64_t outer, D, inner;
    split3(a, d, &outer, &D, &inner);
    const int64_t *ix = etc_idata(out->saved);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t k = ix[o * inner + i];
            gz->data[(o * D + k) * inner + i] += gc->data[o * inner + i];
        }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

static et_tensor *ext_all(et_tensor *a, bool is_max)
{
    const char *name = is_max ? "max" : "min";
    if (!etc_null_check(a, name))
        return NULL;
    if (a->numel == 0) {
        et_set_error(ET_ERR_ARG,
                     "%s: operation does not have an identity, so it cannot reduce an empty tensor",
                     name);
        return NULL;
    }
    et_tensor *x = etc_contig(a);
    if (!x)
        return NULL;
    float best = x->data[0];
    for (int64_t i = 1; i < x->numel && best == best; i++) {
        float c = x->data[i];
        if (c != c || (is_max ? c > best : c < best))
            best = c;
    }
    etc_release(x);
    et_tensor *out = etc_alloc(NULL, 0);
    if (!out)
        return NULL;
    out->data[0] = best;
    return etc_pooled(etc_finish(out, is_max ? ETC_OP_MAX_ALL : ETC_OP_MIN_ALL, &a, 1));
}

et_tensor *et_max_all(et_tensor *a) { return ext_all(a, true); }
et_tensor *et_min_all(et_tensor *a) { return ext_all(a, false); }

/* PyTorch's evenly_distribute_backward: ties share the gradient. */
ETC_BW(max_all)
{
    et_tensor *a = out->in[0];
    float m = out->data[0];
    et_tensor *x = etc_contig(a);
    et_tensor *gz = etc_zeros(a->shape, a->ndim);
    if (!x || !gz) {
        etc_release(x);
        etc_release(gz);
        return false;
    }
    int64_t cnt = 0;
    bool isn = m != m;
    for (int64_t i = 0; i < x->numel; i++)
        if (isn ? x->data[i] != x->data[i] : x->data[i] == m)
            cnt++;
    float v = g->data[0] / (float)cnt;
    for (int64_t i = 0; i < x->numel; i++)
        if (isn ? x->data[i] != x->data[i] : x->data[i] == m)
            gz->data[i] = v;
    etc_release(x);
    gin[0] = gz;
    return true;
}

/* ------------------------------------------------------------------ */
/* softmax                                                              */

/* one contiguous row: q = softmax(p) or log_softmax(p).  Cloned for AVX2 /
 * AVX-512 and written as loops the vectoriser takes whole: softmax over
 * attention rows was ~7% of a Transformer training step in its scalar form.
 * Every pass runs 16 wide: the last partial block goes through a 16-float
 * copy padded with -inf (max ignores it, its exp is set to 0, and adding 0
 * to a partial sum leaves it as it was), since the scalar tails and the
 * NaN-checking max loop (which the vectoriser does not take) were most of
 * the cross-entropy's time over the 27 classes of the char model.  A NaN
 * input needs no check of its own: its exp is NaN, so the sum and every
 * output are NaN, as in PyTorch. */
ETC_CLONES
void etc_softmax_row(const float *restrict p, float *restrict q, int64_t D, bool logsm)
{
    const int64_t Df = D & ~(int64_t)15;
    const int r = (int)(D - Df);
    float tp[16], tx[16], tq[16], pm[16], part[16];
    for (int j = 0; j < 16; j++) {
        tp[j] = j < r ? p[Df + j] : -INFINITY;
        pm[j] = tp[j];
        part[j] = 0.0f;
    }
    for (int64_t k = 0; k < Df; k += 16)
        for (int j = 0; j < 16; j++)
            pm[j] = p[k + j] > pm[j] ? p[k + j] : pm[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++)
        m = pm[j] > m ? pm[j] : m;
    if (m == -INFINITY)
        m = 0; /* all -inf: 0/0 = nan like PyTorch */
    for (int64_t k = 0; k < Df; k += 16)
        for (int j = 0; j < 16; j++)
            q[k + j] = etc_expf(p[k + j] - m);
    for (int64_t k = 0; k < Df; k += 16)
        for (int j = 0; j < 16; j++)
            part[j] += q[k + j];
    /* the padding's exp is set to 0, not computed as exp(-inf): that path
     * scales into the subnormals, a microcode assist per row */
    for (int j = 0; j < 16; j++)
        tx[j] = j < r ? tp[j] - m : 0.0f;
    for (int j = 0; j < 16; j++)
        tq[j] = etc_expf(tx[j]);
    for (int j = r; j < 16; j++)
        tq[j] = 0.0f;
    for (int j = 0; j < 16; j++)
        part[j] += tq[j];
    double s = 0;
    for (int j = 0; j < 16; j++)
        s += part[j];
    if (logsm) {
        float ls = (float)log(s);
        for (int64_t k = 0; k < Df; k++)
            q[k] = p[k] - m - ls;
        for (int j = 0; j < 16; j++)
            tq[j] = tp[j] - m - ls;
    } else {
        float inv = s > 0 ? (float)(1.0 / s) : NAN; /* all -inf: NaN like PyTorch */
        for (int64_t k = 0; k < Df; k++)
            q[k] *= inv;
        for (int j = 0; j < 16; j++)
            tq[j] *= inv;
    }
    for (int j = 0; j < r; j++)
        q[Df + j] = tq[j];
}

static et_tensor *softmax_impl(et_tensor *a, int dim, bool logsm)
{
    const char *name = logsm ? "log_softmax" : "softmax";
    if (!etc_null_check(a, name))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, name);
    if (d < 0)
        return NULL;
    et_tensor *x = etc_contig(a);
    if (!x)
        return NULL;
    et_tensor *y = etc_alloc(a->shape, a->ndim);
    if (!y) {
        etc_release(x);
        return NULL;
    }
    int64_t outer, D, inner;
    split3(x, d, &outer, &D, &inner);
    float *tmp = inner > 1 ? malloc((size_t)D * 2 * sizeof(float)) : NULL;
    if (inner > 1 && !tmp) {
        etc_release(x);
        etc_release(y);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            /* gather a strided column into tmp so the row loops vectorise */
            const float *p = x->data + o * D * inner + i;
            float *q = y->data + o * D * inner + i;
            const float *pr = p;
            float *qr = q;
            if (inner > 1) {
                for (int64_t k = 0; k < D; k++)
                    tmp[k] = p[k * inner];
                pr = tmp;
                qr = tmp + D;
            }
            etc_softmax_row(pr, qr, D, logsm);
            if (inner > 1)
                for (int64_t k = 0; k < D; k++)
                    q[k * inner] = qr[k];
        }
    free(tmp);
    etc_release(x);
    y->aux.i[0] = d;
    return etc_pooled(etc_finish(y, logsm ? ETC_OP_LOG_SOFTMAX : ETC_OP_SOFTMAX, &a, 1));
}

et_tensor *et_softmax(et_tensor *a, int dim) { return softmax_impl(a, dim, false); }
et_tensor *et_log_softmax(et_tensor *a, int dim) { return softmax_impl(a, dim, true); }

/* softmax_back over one contiguous row: the same sums in the same order,
 * the elementwise loop vectorised (cloned; the cross-entropy of a small
 * model spent ~7% of its step in the scalar exp) */
ETC_CLONES
void etc_softmax_back_row(const float *restrict y, const float *restrict dy,
                             float *restrict r, int64_t D, bool logsm)
{
    double s = 0;
    if (logsm) {
        for (int64_t k = 0; k < D; k++)
            s += dy[k];
        float fs = (float)s;
        /* 16 wide to the end: the last partial block through a zero-padded
         * copy (the scalar tail's exp was half the work over 27 classes) */
        const int64_t Df = D & ~(int64_t)15;
        const int t = (int)(D - Df);
        for (int64_t k = 0; k < Df; k++)
            r[k] = dy[k] - etc_expf(y[k]) * fs;
        float ty[16], td[16], tr[16];
        for (int j = 0; j < 16; j++) {
            ty[j] = j < t ? y[Df + j] : 0.0f;
            td[j] = j < t ? dy[Df + j] : 0.0f;
        }
        for (int j = 0; j < 16; j++)
            tr[j] = td[j] - etc_expf(ty[j]) * fs;
        for (int j = 0; j < t; j++)
            r[Df + j] = tr[j];
    } else {
        for (int64_t k = 0; k < D; k++)
            s += (double)dy[k] * y[k];
        float fs = (float)s;
        for (int64_t k = 0; k < D; k++)
            r[k] = y[k] * (dy[k] - fs);
    }
}

/* softmax: dx = y*(dy - sum(dy*y, dim)); log_softmax: dx = dy - exp(y)*sum(dy, dim) */
static bool softmax_back(et_tensor *out, et_tensor *g, et_tensor **gin, bool logsm)
{
    et_tensor *gc = etc_contig(g);
    et_tensor *dx = etc_alloc(out->shape, out->ndim);
    if (!gc || !dx) {
        etc_release(gc);
        etc_release(dx);
        return false;
    }
    int64_t outer, D, inner;
    split3(out, out->aux.i[0], &outer, &D, &inner);
    for (int64_t o = 0; inner == 1 && o < outer; o++)
        etc_softmax_back_row(out->data + o * D, gc->data + o * D, dx->data + o * D, D, logsm);
    for (int64_t o = 0; inner > 1 && o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * D * inner + i;
            const float *y = out->data + base, *dy = gc->data + base;
            float *r = dx->data + base;
            double s = 0;
            if (logsm) {
                for (int64_t k = 0; k < D; k++)
                    s += dy[k * inner];
                for (int64_t k = 0; k < D; k++)
                    r[k * inner] = dy[k * inner] - etc_expf(y[k * inner]) * (float)s;
            } else {
                for (int64_t k = 0; k < D; k++)
                    s += (double)dy[k * inner] * y[k * inner];
                for (int64_t k = 0; k < D; k++)
                    r[k * inner] = y[k * inner] * (dy[k * inner] - (float)s);
            }
        }
    etc_release(gc);
    gin[0] = dx;
    return true;
}

ETC_BW(softmax) { return softmax_back(out, g, gin, false); }
ETC_BW(log_softmax) { return softmax_back(out, g, gin, true); }
