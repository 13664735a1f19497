/* reduce.c - reductions beyond sum/mean/max: logsumexp, var/std, prod,
 * cumsum, norm, amax/amin over several dims, and their backward functions
 * (torch 1.13's formulas, FunctionsManual.cpp).
 *
 * A multi-dim reduction sees its input as a contiguous [K, R] block (kept
 * dims first, in order, then the reduced ones), so row k of the block is
 * element k of the result in row-major order.  Sums run in double, as
 * torch's CPU accumulate type for float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* the [K, R] view of a reduction                                       */

typedef struct {
    unsigned mask;                    /* reduced dims of the input */
    bool keepdim;
    int64_t K, R;                     /* results, elements per result */
    int64_t out_shape[ET_MAX_DIMS];   /* the result's shape */
    int out_nd;
    int64_t keep_shape[ET_MAX_DIMS];  /* the input's, 1 on reduced dims */
} plan;

static bool plan_of(et_tensor *a, const int *dims, int ndims, bool keepdim, const char *name,
                    plan *p)
{
    if (!etc_reduce_mask(a, dims, ndims, name, &p->mask))
        return false;
    p->keepdim = keepdim;
    p->K = p->R = 1;
    p->out_nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (p->mask & (1u << d)) {
            p->R *= a->shape[d];
            p->keep_shape[d] = 1;
            if (keepdim)
                p->out_shape[p->out_nd++] = 1;
        } else {
            p->K *= a->shape[d];
            p->keep_shape[d] = a->shape[d];
            p->out_shape[p->out_nd++] = a->shape[d];
        }
    }
    return true;
}

/* a as a contiguous [K, R] block (a new reference; a itself when it already is one). */
static et_tensor *rows_of(et_tensor *a, const plan *p)
{
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int d = 0; d < a->ndim; d++)
            if (((p->mask >> d) & 1u) == (unsigned)pass) {
                sh[m] = a->shape[d];
                st[m++] = a->strides[d];
            }
    et_tensor *v = etc_view_of(a, sh, st, a->ndim, a->offset);
    if (!v)
        return NULL;
    et_tensor *c = etc_contig(v);
    etc_release(v);
    return c;
}

/* Result tensor of plan p, recorded as op on a with the plan in aux. */
static et_tensor *finish(et_tensor *out, et_tensor *a, const plan *p, int op)
{
    out->aux.i[0] = (int)p->mask;
    out->aux.i[1] = p->keepdim;
    return etc_finish(out, op, &a, 1);
}

static inline unsigned out_mask(const et_tensor *out) { return (unsigned)out->aux.i[0]; }
static inline bool out_keep(const et_tensor *out) { return out->aux.i[1] != 0; }

/* t (shaped like out) broadcast back to the input's shape */
static et_tensor *back(et_tensor *t, et_tensor *out)
{
    return etc_expand_back(t, out->in[0], out_mask(out), out_keep(out));
}

/* t (shaped like out) as a contiguous tensor of the input's keepdim shape */
static et_tensor *as_keep(et_tensor *t, et_tensor *out)
{
    et_tensor *a = out->in[0];
    int64_t ks[ET_MAX_DIMS], st[ET_MAX_DIMS];
    unsigned mask = out_mask(out);
    for (int d = 0; d < a->ndim; d++)
        ks[d] = (mask & (1u << d)) ? 1 : a->shape[d];
    int64_t s = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= ks[d];
    }
    et_tensor *c = etc_contig(t);
    if (!c)
        return NULL;
    et_tensor *v = etc_view_of(c, ks, st, a->ndim, c->offset);
    etc_release(c);
    return v;
}

/* ------------------------------------------------------------------ */
/* logsumexp                                                            */

et_tensor *et_logsumexp(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    plan p;
    if (!etc_null_check(a, "logsumexp") || !plan_of(a, dims, ndims, keepdim, "logsumexp", &p))
        return NULL;
    et_tensor *x = rows_of(a, &p);
    et_tensor *out = x ? etc_alloc(p.out_shape, p.out_nd) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    for (int64_t k = 0; k < p.K; k++) {
        const float *r = x->data + k * p.R;
        float m = -INFINITY;
        bool nan = false;
        for (int64_t j = 0; j < p.R; j++) {
            m = r[j] > m ? r[j] : m;
            nan |= r[j] != r[j];
        }
        if (isinf(m))   /* torch: maxes.masked_fill_(maxes.abs() == inf, 0) */
            m = 0.0f;
        double s = 0;
        for (int64_t j = 0; j < p.R; j++)
            s += exp((double)r[j] - m);
        out->data[k] = nan ? NAN : (float)(log(s) + m);
    }
    etc_release(x);
    return etc_pooled(finish(out, a, &p, ETC_OP_LOGSUMEXP));
}

/* g * exp(x - result) */
ETC_BW(logsumexp)
{
    et_tensor *a = out->in[0];
    et_tensor *ob = back(out, out), *gb = back(g, out);
    et_tensor *d = ob && gb ? etc_ew2(EW_SUB, "logsumexp", a, ob, 0) : NULL;
    et_tensor *e = d ? etc_ew1(EW_EXP, d, 0, 0) : NULL;
    gin[0] = e ? etc_ew2(EW_MUL, "logsumexp", gb, e, 0) : NULL;
    etc_release(ob);
    etc_release(gb);
    etc_release(d);
    etc_release(e);
    return gin[0] != NULL;
}

/* ------------------------------------------------------------------ */
/* var / std                                                            */

static et_tensor *var_std(et_tensor *a, const int *dims, int ndims, double correction,
                          bool keepdim, bool is_std)
{
    const char *name = is_std ? "std" : "var";
    plan p;
    if (!etc_null_check(a, name) || !plan_of(a, dims, ndims, keepdim, name, &p))
        return NULL;
    if (!isfinite(correction)) {
        et_set_error(ET_ERR_ARG, "%s: correction must be finite, got %g", name, correction);
        return NULL;
    }
    et_tensor *x = rows_of(a, &p);
    et_tensor *out = x ? etc_alloc(p.out_shape, p.out_nd) : NULL;
    et_tensor *mean = out ? etc_alloc(p.keep_shape, a->ndim) : NULL;
    if (!mean) {
        etc_release(x);
        etc_release(out);
        return NULL;
    }
    /* torch divides by max(0, N - correction): 0/0 = NaN, x/0 = inf */
    double div = (double)p.R - correction;
    if (div < 0)
        div = 0;
    for (int64_t k = 0; k < p.K; k++) {
        const float *r = x->data + k * p.R;
        double m = 0;
        for (int64_t j = 0; j < p.R; j++)
            m += r[j];
        m /= (double)p.R;
        double ss = 0;
        for (int64_t j = 0; j < p.R; j++)
            ss += ((double)r[j] - m) * ((double)r[j] - m);
        double v = ss / div;
        out->data[k] = (float)(is_std ? sqrt(v) : v);
        mean->data[k] = (float)m;
    }
    etc_release(x);
    out = finish(out, a, &p, is_std ? ETC_OP_STD : ETC_OP_VAR);
    if (out) {
        out->aux.f[2] = (float)correction;
        if (out->requires_grad) {
            out->saved = mean;
            mean = NULL;
        }
    }
    etc_release(mean);
    return etc_pooled(out);
}

et_tensor *et_var(et_tensor *a, const int *dims, int ndims, double correction, bool keepdim)
{
    return var_std(a, dims, ndims, correction, keepdim, false);
}

et_tensor *et_std(et_tensor *a, const int *dims, int ndims, double correction, bool keepdim)
{
    return var_std(a, dims, ndims, correction, keepdim, true);
}

/* var: (2 / (N - correction)) * g * (x - mean); std: var's with g / (2 std),
 * 0 where std == 0 (torch's std_backward) */
static bool var_back(et_tensor *out, et_tensor *g, et_tensor **gin, bool is_std)
{
    et_tensor *a = out->in[0];
    unsigned mask = out_mask(out);
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++)
        if (mask & (1u << d))
            n *= a->shape[d];
    float scale = (float)(2.0 / ((double)n - (double)out->aux.f[2]));
    et_tensor *gs = NULL;
    if (is_std) {
        et_tensor *two = etc_ew1(EW_MULS, out, 2.0f, 0);
        et_tensor *q = two ? etc_ew2(EW_DIV, "std", g, two, 0) : NULL;
        /* masked_fill(result == 0, 0) */
        et_tensor *zero = q ? etc_full(NULL, 0, 0.0f) : NULL;
        et_tensor *isz = zero ? etc_ew2(EW_EQ, "std", out, zero, 0) : NULL;
        gs = isz ? etc_ew2(EW_MASKED_FILL, "std", q, isz, 0.0f) : NULL;
        etc_release(two);
        etc_release(q);
        etc_release(zero);
        etc_release(isz);
        if (!gs)
            return false;
        g = gs;
    }
    et_tensor *gb = back(g, out);
    et_tensor *d = gb ? etc_ew2(EW_SUB, "var", a, out->saved, 0) : NULL;
    et_tensor *m = d ? etc_ew2(EW_MUL, "var", gb, d, 0) : NULL;
    gin[0] = m ? etc_ew1(EW_MULS, m, scale, 0) : NULL;
    etc_release(gs);
    etc_release(gb);
    etc_release(d);
    etc_release(m);
    return gin[0] != NULL;
}

ETC_BW(var) { return var_back(out, g, gin, false); }
ETC_BW(std) { return var_back(out, g, gin, true); }

/* ------------------------------------------------------------------ */
/* prod, cumsum (one dim)                                               */

/* a as contiguous [outer, D, inner] around dim d (all of a as one row for d < 0). */
static void around(const et_tensor *a, int d, int64_t *outer, int64_t *D, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    *D = d < 0 ? a->numel : a->shape[d];
    for (int k = 0; d >= 0 && k < d; k++)
        *outer *= a->shape[k];
    for (int k = d + 1; d >= 0 && k < a->ndim; k++)
        *inner *= a->shape[k];
}

static et_tensor *prod_impl(et_tensor *a, int dim, bool keepdim, bool all)
{
    if (!etc_null_check(a, "prod"))
        return NULL;
    int d = -1;
    int64_t shape[ET_MAX_DIMS];
    int nd = 0;
    if (!all) {
        d = etc_wrap_dim(dim, a->ndim, "prod");
        if (d < 0)
            return NULL;
        if (a->ndim == 0)
            d = -1;
        for (int k = 0; k < a->ndim; k++)
            if (k != d || keepdim)
                shape[nd++] = k == d ? 1 : a->shape[k];
    }
    et_tensor *x = etc_contig(a);
    et_tensor *out = x ? etc_alloc(shape, nd) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    int64_t outer, D, inner;
    around(x, d, &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double p = 1;
            for (int64_t k = 0; k < D; k++)
                p *= x->data[(o * D + k) * inner + i];
            out->data[o * inner + i] = (float)p;
        }
    etc_release(x);
    out->aux.i[0] = d;
    out->aux.i[1] = keepdim;
    return etc_pooled(etc_finish(out, all ? ETC_OP_PROD_ALL : ETC_OP_PROD, &a, 1));
}

et_tensor *et_prod(et_tensor *a, int dim, bool keepdim) { return prod_impl(a, dim, keepdim, false); }
et_tensor *et_prod_all(et_tensor *a) { return prod_impl(a, 0, false, true); }

/* d prod / d x_k = product of the others: prefix * suffix products, exact
 * with zeros (torch's prod_safe_zeros_backward) */
ETC_BW(prod)
{
    et_tensor *a = out->in[0];
    int d = out->aux.i[0];
    et_tensor *x = etc_contig(a);
    et_tensor *gc = x ? etc_contig(g) : NULL;
    et_tensor *gz = gc ? etc_alloc(a->shape, a->ndim) : NULL;
    if (!gz) {
        etc_release(x);
        etc_release(gc);
        return false;
    }
    int64_t outer, D, inner;
    around(x, d, &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *p = x->data + o * D * inner + i;
            float *r = gz->data + o * D * inner + i;
            float gv = gc->data[o * inner + i];
            double pre = 1;
            for (int64_t k = 0; k < D; k++) {   /* r[k] = prefix product before k */
                r[k * inner] = (float)pre;
                pre *= p[k * inner];
            }
            double suf = 1;
            for (int64_t k = D - 1; k >= 0; k--) {
                r[k * inner] = (float)((double)r[k * inner] * suf * gv);
                suf *= p[k * inner];
            }
        }
    etc_release(x);
    etc_release(gc);
    gin[0] = gz;
    return true;
}

et_tensor *et_cumsum(et_tensor *a, int dim)
{
    if (!etc_null_check(a, "cumsum"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "cumsum");
    if (d < 0)
        return NULL;
    if (a->ndim == 0)
        d = -1;
    et_tensor *x = etc_contig(a);
    et_tensor *out = x ? etc_alloc(a->shape, a->ndim) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    int64_t outer, D, inner;
    around(x, d, &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t k = 0; k < D; k++) {
                int64_t at = (o * D + k) * inner + i;
                s += x->data[at];
                out->data[at] = (float)s;
            }
        }
    etc_release(x);
    out->aux.i[0] = d;
    return etc_pooled(etc_finish(out, ETC_OP_CUMSUM, &a, 1));
}

/* the gradient is the reversed cumulative sum of g */
ETC_BW(cumsum)
{
    et_tensor *a = out->in[0];
    et_tensor *gc = etc_contig(g);
    et_tensor *gz = gc ? etc_alloc(a->shape, a->ndim) : NULL;
    if (!gz) {
        etc_release(gc);
        return false;
    }
    int64_t outer, D, inner;
    around(a, out->aux.i[0], &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t k = D - 1; k >= 0; k--) {
                int64_t at = (o * D + k) * inner + i;
                s += gc->data[at];
                gz->data[at] = (float)s;
            }
        }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

/* ------------------------------------------------------------------ */
/* norm                                                                 */

et_tensor *et_norm(et_tensor *a, double p, const int *dims, int ndims, bool keepdim)
{
    plan pl;
    if (!etc_null_check(a, "norm") || !plan_of(a, dims, ndims, keepdim, "norm", &pl))
        return NULL;
    if (isnan(p)) {
        et_set_error(ET_ERR_ARG, "norm: p must not be NaN");
        return NULL;
    }
    et_tensor *x = rows_of(a, &pl);
    et_tensor *out = x ? etc_alloc(pl.out_shape, pl.out_nd) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    for (int64_t k = 0; k < pl.K; k++) {
        const float *r = x->data + k * pl.R;
        double acc = isinf(p) && p < 0 ? INFINITY : 0;
        bool nan = false;
        for (int64_t j = 0; j < pl.R; j++) {
            double v = fabs((double)r[j]);
            nan |= v != v;
            if (isinf(p))
                acc = p > 0 ? (v > acc ? v : acc) : (v < acc ? v : acc);
            else if (p == 0)
                acc += v != 0;
            else if (p == 1)
                acc += v;
            else if (p == 2)
                acc += v * v;
            else
                acc += pow(v, p);
        }
        double res = isinf(p) || p == 0 || p == 1 ? acc : p == 2 ? sqrt(acc) : pow(acc, 1.0 / p);
        if (isinf(p) && p < 0 && pl.R == 0)
            res = INFINITY;
        out->data[k] = nan ? NAN : (float)res;
    }
    etc_release(x);
    out = finish(out, a, &pl, ETC_OP_NORM);
    if (out)
        out->aux.f[2] = (float)p;
    return etc_pooled(out);
}

/* torch's norm_backward: p 0 -> no gradient; 1 -> sgn(x) g; 2 -> x g / norm;
 * +-inf -> sgn(x) g / (number of ties) at the elements with |x| == norm;
 * else x |x|^(p-2) g / norm^(p-1) (p < 1: sgn(x) |x|^(p-1) ...); 0 where norm == 0 */
ETC_BW(norm)
{
    et_tensor *a = out->in[0];
    float p = out->aux.f[2];
    if (p == 0.0f)
        return true;   /* torch returns an undefined gradient: .grad stays unset */
    et_tensor *ob = back(out, out);
    if (!ob)
        return false;
    et_tensor *scale = NULL;   /* g, or g / ties for +-inf, shaped like out */
    if (isinf(p)) {
        et_tensor *ab = etc_ew1(EW_ABS, a, 0, 0);
        et_tensor *tie = ab ? etc_ew2(EW_EQ, "norm", ab, ob, 0) : NULL;
        int64_t ks[ET_MAX_DIMS];
        unsigned mask = out_mask(out);
        for (int d = 0; d < a->ndim; d++)
            ks[d] = (mask & (1u << d)) ? 1 : a->shape[d];
        et_tensor *cnt = tie ? etc_sum_to(tie, ks, a->ndim, 1.0) : NULL;
        et_tensor *gk = cnt ? as_keep(g, out) : NULL;
        et_tensor *q = gk ? etc_ew2(EW_DIV, "norm", gk, cnt, 0) : NULL;
        etc_release(ab);
        etc_release(tie);
        etc_release(cnt);
        etc_release(gk);
        if (!q) {
            etc_release(ob);
            return false;
        }
        /* q has the keepdim shape: broadcast it like out's keepdim form */
        scale = q;
        et_tensor *in3[3] = {a, ob, scale};
        gin[0] = etc_ew(EW_NORM_INF_B, "norm", in3, 3, 0, 0);
    } else {
        et_tensor *gb = back(g, out);
        et_tensor *in3[3] = {a, ob, gb};
        gin[0] = gb ? etc_ew(EW_NORM_B, "norm", in3, 3, p, 0) : NULL;
        etc_release(gb);
    }
    etc_release(scale);
    etc_release(ob);
    return gin[0] != NULL;
}

/* ------------------------------------------------------------------ */
/* amax / amin                                                          */

static et_tensor *aminmax(et_tensor *a, const int *dims, int ndims, bool keepdim, bool is_max)
{
    const char *name = is_max ? "amax" : "amin";
    plan p;
    if (!etc_null_check(a, name) || !plan_of(a, dims, ndims, keepdim, name, &p))
        return NULL;
    if (p.R == 0 && p.K > 0) {
        et_set_error(ET_ERR_INDEX, "%s: expected the reduced dims to have non-zero size "
                     "(there is no identity to return)", name);
        return NULL;
    }
    et_tensor *x = rows_of(a, &p);
    et_tensor *out = x ? etc_alloc(p.out_shape, p.out_nd) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    for (int64_t k = 0; k < p.K; k++) {
        const float *r = x->data + k * p.R;
        float best = r[0];
        for (int64_t j = 1; j < p.R && best == best; j++)
            if (r[j] != r[j] || (is_max ? r[j] > best : r[j] < best))
                best = r[j];
        out->data[k] = best;
    }
    etc_release(x);
    return etc_pooled(finish(out, a, &p, is_max ? ETC_OP_AMAX : ETC_OP_AMIN));
}

et_tensor *et_amax(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    return aminmax(a, dims, ndims, keepdim, true);
}

et_tensor *et_amin(et_tensor *a, const int *dims, int ndims, bool keepdim)
{
    return aminmax(a, dims, ndims, keepdim, false);
}

/* the gradient is shared evenly by the elements equal to the result */
ETC_BW(amax)
{
    et_tensor *a = out->in[0];
    et_tensor *ob = back(out, out);
    et_tensor *tie = ob ? etc_ew2(EW_EQ, "amax", a, ob, 0) : NULL;
    int64_t ks[ET_MAX_DIMS];
    unsigned mask = out_mask(out);
    for (int d = 0; d < a->ndim; d++)
        ks[d] = (mask & (1u << d)) ? 1 : a->shape[d];
    et_tensor *cnt = tie ? etc_sum_to(tie, ks, a->ndim, 1.0) : NULL;
    et_tensor *gk = cnt ? as_keep(g, out) : NULL;
    et_tensor *q = gk ? etc_ew2(EW_DIV, "amax", gk, cnt, 0) : NULL;
    gin[0] = q ? etc_ew2(EW_MUL, "amax", tie, q, 0) : NULL;
    etc_release(ob);
    etc_release(tie);
    etc_release(cnt);
    etc_release(gk);
    etc_release(q);
    return gin[0] != NULL;
}
