/*
 * attention.c - F.dropout and scaled dot-product attention.
 *
 * Attention is torch 1.13's math implementation
 * (aten/src/ATen/native/transformers/attention.cpp,
 * _scaled_dot_product_attention_math: scale, matmul, mask add, softmax,
 * dropout, matmul).  Without attention weights it is one fused op with its
 * own backward (sdpa.c); when the weights are asked for (they are a graph
 * tensor of their own) it is composed of those recorded ops.  The work runs
 * inside a pool of its own, so the intermediates are freed here whatever
 * pool the caller has.
 */
#include <math.h>
#include <stdlib.h>

#include "core/core_internal.h"

et_tensor *et_dropout(et_tensor *a, float p, bool training, et_generator *g)
{
    if (!etc_null_check(a, "dropout"))
        return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "dropout: probability has to be between 0 and 1, but got %g",
                     (double)p);
        return NULL;
    }
    if (!training || p == 0.0f)
        return etc_pooled(etc_ref(a));
    if (p >= 1.0f)
        return et_mul_scalar(a, 0.0f);
    if (!g)
        g = et_default_generator();
    et_tensor *mt = etc_alloc(a->shape, a->ndim);
    if (!mt)
        return NULL;
    /* bernoulli(1 - p) then divided by (1 - p), as torch's dropout; the
     * product is recorded as a mul by the mask (its backward: g * mask) and,
     * for a contiguous float input, computed in the mask's pass */
    et_tensor *r = NULL;
    if (a->contiguous && a->dtype == ET_FLOAT32 && (r = etc_alloc(a->shape, a->ndim))) {
        etc_dropout_mask(g, mt->data, a->numel, 1.0f - p, 1.0f / (1.0f - p), a->data, r->data);
        et_tensor *ins[2] = {a, mt};
        r = etc_finish(r, ETC_OP_MUL, ins, 2);
    } else {
        etc_dropout_mask(g, mt->data, a->numel, 1.0f - p, 1.0f / (1.0f - p), NULL, NULL);
        r = etc_mul(a, mt);
    }
    etc_release(mt);
    return etc_pooled(r);
}

/* The additive float mask of an int64 (bool) mask: 0 where it takes part
 * (nonzero), -inf where it does not; no gradient. */
static et_tensor *additive_of_bool(et_tensor *m)
{
    et_tensor *c = etc_contig(m);
    et_tensor *f = c ? etc_alloc(m->shape, m->ndim) : NULL;
    if (f) {
        const int64_t *d = (const int64_t *)c->data;
        for (int64_t i = 0; i < m->numel; i++)
            f->data[i] = d[i] != 0 ? 0.0f : -INFINITY;
    }
    etc_release(c);
    return f;
}

static et_tensor *sdpa_impl(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *attn_mask,
                            float dropout_p, bool is_causal, et_generator *g,
                            et_tensor **weights)
{
    static const char *op = "scaled_dot_product_attention";
    char b1[128], b2[128], b3[128];
    int nq = q->ndim, nk = k->ndim, nv = v->ndim;
    if (nq < 2 || nk < 2 || nv < 2 || q->shape[nq - 1] != k->shape[nk - 1] ||
        k->shape[nk - 2] != v->shape[nv - 2]) {
        et_set_error(ET_ERR_SHAPE, "%s: query %s, key %s and value %s do not fit (expected "
                     "[..., L, E], [..., S, E], [..., S, Ev])", op,
                     etc_shape_fmt(q->shape, nq, b1, sizeof b1),
                     etc_shape_fmt(k->shape, nk, b2, sizeof b2),
                     etc_shape_fmt(v->shape, nv, b3, sizeof b3));
        return NULL;
    }
    if (!(dropout_p >= 0.0f && dropout_p <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "%s: dropout_p has to be between 0 and 1, but got %g", op,
                     (double)dropout_p);
        return NULL;
    }
    if (is_causal && attn_mask) {
        et_set_error(ET_ERR_ARG, "%s: is_causal with an attn_mask (give one or the other)", op);
        return NULL;
    }
    int64_t L = q->shape[nq - 2], S = k->shape[nk - 2], E = q->shape[nq - 1];
    et_tensor *mask = NULL;
    if (attn_mask) {
        mask = et_tensor_dtype(attn_mask) == ET_INT64 ? additive_of_bool(attn_mask)
                                                      : etc_ref(attn_mask);
        if (!mask || !etc_pooled(mask))
            return NULL;
    } else if (is_causal) {
        mask = etc_alloc(ET_SHAPE(L, S));
        if (!mask || !etc_pooled(mask))
            return NULL;
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < S; j++)
                mask->data[i * S + j] = j > i ? -INFINITY : 0.0f;
    }
    if (!weights && dropout_p < 1.0f && q->dtype == ET_FLOAT32 && k->dtype == ET_FLOAT32 &&
        v->dtype == ET_FLOAT32 && q->numel > 0 && k->numel > 0 && v->numel > 0) {
        /* one fused op (sdpa.c); the mask has to broadcast to the scores
         * [batch(q, k)..., L, S], as below */
        int64_t bs[ET_MAX_DIMS], ss[ET_MAX_DIMS];
        int nb = etc_broadcast_shape(q->shape, nq - 2, k->shape, nk - 2, bs);
        if (nb >= 0 && nb + 2 <= ET_MAX_DIMS) {
            bs[nb] = L;
            bs[nb + 1] = S;
            int ns = mask ? etc_broadcast_shape(bs, nb + 2, mask->shape, mask->ndim, ss) : nb + 2;
            bool same = ns == nb + 2;
            for (int d = 0; mask && same && d < ns; d++)
                same = ss[d] == bs[d];
            if (!same) {
                et_set_error(ET_ERR_SHAPE, "%s: attn_mask %s does not broadcast to the "
                             "attention scores %s", op,
                             etc_shape_fmt(mask->shape, mask->ndim, b1, sizeof b1),
                             etc_shape_fmt(bs, nb + 2, b2, sizeof b2));
                return NULL;
            }
            return etc_sdpa(q, k, v, mask, 0, dropout_p, g);
        }
    }
    et_tensor *qs = et_mul_scalar(q, (float)(1.0 / sqrt((double)E)));
    et_tensor *scores = qs ? et_matmul(qs, et_transpose(k, -2, -1)) : NULL;
    if (!scores)
        return NULL;
    if (mask) {
        /* torch adds the mask in place: it broadcasts to the scores, never
         * the scores to it */
        int64_t bs[ET_MAX_DIMS];
        int nb = etc_broadcast_shape(scores->shape, scores->ndim, mask->shape, mask->ndim, bs);
        bool same = nb == scores->ndim;
        for (int d = 0; same && d < nb; d++)
            same = bs[d] == scores->shape[d];
        if (!same) {
            et_set_error(ET_ERR_SHAPE, "%s: attn_mask %s does not broadcast to the attention "
                         "scores %s", op, etc_shape_fmt(mask->shape, mask->ndim, b1, sizeof b1),
                         etc_shape_fmt(scores->shape, scores->ndim, b2, sizeof b2));
            return NULL;
        }
        scores = et_add(scores, mask);
    }
    et_tensor *w = scores ? et_softmax(scores, -1) : NULL;
    if (w && dropout_p > 0.0f)
        w = et_dropout(w, dropout_p, true, g);
    et_tensor *out = w ? et_matmul(w, v) : NULL;
    if (out && weights)
        *weights = etc_ref(w);
    return out ? etc_ref(out) : NULL;
}

et_tensor *et_scaled_dot_product_attention(et_tensor *q, et_tensor *k, et_tensor *v,
                                           et_tensor *attn_mask, float dropout_p,
                                           bool is_causal, et_generator *g,
                                           et_tensor **attn_weights)
{
    if (attn_weights)
        *attn_weights = NULL;
    static const char *op = "scaled_dot_product_attention";
    if (!etc_null_check(q, op) || !etc_null_check(k, op) || !etc_null_check(v, op) ||
        (attn_mask && !etc_any_check(attn_mask, op)))
        return NULL;
    et_tensor *w = NULL;
    et_pool_begin();
    et_tensor *out = sdpa_impl(q, k, v, attn_mask, dropout_p, is_causal, g,
                               attn_weights ? &w : NULL);
    et_pool_end();
    if (attn_weights && out)
        *attn_weights = etc_pooled(w);
    return etc_pooled(out);
}
