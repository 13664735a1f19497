/*
 * attention.c - torch.nn.MultiheadAttention (torch 1.13's
 * F.multi_head_attention_forward, step by step: packed or separate input
 * projections, bias_k/bias_v, heads folded into the batch, zero attention,
 * masks merged into one additive mask, scaled dot-product attention with
 * dropout, output projection, weights averaged over heads).
 *
 * Masks are carried as one additive float mask: a bool (int64) mask
 * becomes 0 / -inf, which is what torch converts it to before it adds it.
 */
#include "nn/module_internal.h"
#include "core/core_internal.h"   /* etc_sdpa, etc_pooled */
#include "easytorch/nn_attention.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t E, H, kdim, vdim;
    et_mha_opts o;
    bool same_dim;     /* packed in_proj_weight */
    et_generator *g;   /* borrowed */
} mha_cfg;

#define MHA_PREFIX(c) "MultiheadAttention(%lld, %lld): ", (long long)(c)->E, (long long)(c)->H

/* ---------------------------------------------------------------- masks */

/* Additive float mask of a user mask: float32 as it is (borrowed from the
 * caller), int64 (bool) nonzero -> -inf, zero -> 0 (owned by the scope). */
static et_tensor *additive(et_tensor *m)
{
    if (et_tensor_dtype(m) == ET_FLOAT32)
        return m;
    et_tensor *c = et_contiguous(m);
    if (!c)
        return NULL;
    et_tensor *f = et_zeros(et_shape(m), et_ndim(m));
    if (!f)
        return NULL;
    const int64_t *d = et_data_int64_const(c);
    float *o = et_data(f);
    int64_t n = et_numel(m);
    for (int64_t i = 0; i < n; i++)
        o[i] = d[i] != 0 ? -INFINITY : 0.0f;
    return f;
}

static bool is_bool(et_tensor *m) { return m && et_tensor_dtype(m) == ET_INT64; }

/* ---------------------------------------------------------------- forward */

static et_tensor *pad_last(et_tensor *t)
{
    static const int64_t p[2] = {0, 1};
    return t ? et_pad(t, p, 2, ET_PAD_CONSTANT, 0.0f) : NULL;
}

/* [T, bsz, E] -> [bsz * H, T, hd] */
static et_tensor *heads(et_tensor *x, int64_t bsz, int64_t H, int64_t hd)
{
    et_tensor *c = et_contiguous(x);
    et_tensor *v = c ? et_view(c, ET_SHAPE(et_size(x, 0), bsz * H, hd)) : NULL;
    return v ? et_transpose(v, 0, 1) : NULL;
}

static et_tensor *mha_impl(et_module *m, et_tensor *query, et_tensor *key, et_tensor *value,
                           et_tensor *kpm, bool need_weights, et_tensor *attn_mask,
                           bool average, et_tensor **weights)
{
    const mha_cfg *c = m->impl;
    char b1[64], b2[64], b3[64];
    int qd = et_ndim(query);
    if (et_tensor_dtype(query) != ET_FLOAT32 || et_tensor_dtype(key) != ET_FLOAT32 ||
        et_tensor_dtype(value) != ET_FLOAT32) {
        et_set_error(ET_ERR_ARG, "query, key and value must be float32");
        return NULL;
    }
    if (qd != 2 && qd != 3) {
        et_set_error(ET_ERR_SHAPE, "query should be unbatched 2D or batched 3D tensor but "
                     "received %dD query of shape %s", qd, NN_SHAPE_STR(query, b1));
        return NULL;
    }
    bool batched = qd == 3;
    if (et_ndim(key) != qd || et_ndim(value) != qd) {
        et_set_error(ET_ERR_SHAPE, "for %s query %s, expected key and value to be %dD but "
                     "found key %s and value %s", batched ? "batched (3D)" : "unbatched (2D)",
                     NN_SHAPE_STR(query, b1), qd, NN_SHAPE_STR(key, b2), NN_SHAPE_STR(value, b3));
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        et_tensor *mk = i ? attn_mask : kpm;
        if (mk && et_tensor_dtype(mk) != ET_FLOAT32 && et_tensor_dtype(mk) != ET_INT64) {
            et_set_error(ET_ERR_ARG, "%s must be float32 or int64 (bool)",
                         i ? "attn_mask" : "key_padding_mask");
            return NULL;
        }
    }
    if (kpm && et_ndim(kpm) != (batched ? 2 : 1)) {
        et_set_error(ET_ERR_SHAPE, "for %s query, expected key_padding_mask to be NULL or %dD "
                     "but found %dD of shape %s", batched ? "batched (3D)" : "unbatched (2D)",
                     batched ? 2 : 1, et_ndim(kpm), NN_SHAPE_STR(kpm, b1));
        return NULL;
    }
    if (attn_mask && et_ndim(attn_mask) != 2 && et_ndim(attn_mask) != 3) {
        et_set_error(ET_ERR_SHAPE, "expected attn_mask to be NULL, 2D or 3D but found %dD of "
                     "shape %s", et_ndim(attn_mask), NN_SHAPE_STR(attn_mask, b1));
        return NULL;
    }
    if (kpm && !is_bool(kpm) && attn_mask) {
        et_set_error(ET_ERR_ARG, "a float key_padding_mask cannot be combined with an "
                     "attn_mask (torch 1.13 merges masks with masked_fill, which needs a "
                     "bool key_padding_mask)");
        return NULL;
    }
    /* the fused attention op (core's etc_sdpa) unless the weights are wanted
     * or add_zero_attn pads the folded heads */
    float p = m->training ? c->o.dropout : 0.0f;
    bool fused = !need_weights && !c->o.add_zero_attn && p < 1.0f;
    bool self = query == key && key == value;
    et_tensor *x_bf = batched && c->o.batch_first && self ? query : NULL;
    if (batched && c->o.batch_first) {
        /* as torch: one transpose when query, key and value are one tensor */
        query = et_transpose(query, 0, 1);
        key = self ? query : key == value ? NULL : et_transpose(key, 0, 1);
        value = self ? query : et_transpose(value, 0, 1);
        if (!key)
            key = value;
    } else if (!batched) {
        query = et_unsqueeze(query, 1);
        key = et_unsqueeze(key, 1);
        value = et_unsqueeze(value, 1);
        if (kpm)
            kpm = et_unsqueeze(kpm, 0);
    }
    if (!query || !key || !value)
        return NULL;
    int64_t L = et_size(query, 0), bsz = et_size(query, 1), E = et_size(query, 2);
    int64_t S = et_size(key, 0), H = c->H, hd = c->E / c->H;
    if (E != c->E) {
        et_set_error(ET_ERR_SHAPE, "was expecting embedding dimension of %lld, but got %lld "
                     "(query %s)", (long long)c->E, (long long)E, NN_SHAPE_STR(query, b1));
        return NULL;
    }
    if (et_size(key, 2) != c->kdim || et_size(value, 2) != c->vdim ||
        et_size(key, 0) != et_size(value, 0) || et_size(key, 1) != bsz ||
        et_size(value, 1) != bsz) {
        et_set_error(ET_ERR_SHAPE, "key %s and value %s do not fit query %s (key dim %lld, "
                     "value dim %lld; same batch, key and value the same length)",
                     NN_SHAPE_STR(key, b1), NN_SHAPE_STR(value, b2), NN_SHAPE_STR(query, b3),
                     (long long)c->kdim, (long long)c->vdim);
        return NULL;
    }

    /* ---- in-projection ---- */
    et_tensor *bias = nn_param(m, "in_proj_bias");
    et_tensor *bq = NULL, *bk = NULL, *bv = NULL;
    if (bias) {
        bq = et_slice(bias, 0, 0, E, 1);
        bk = et_slice(bias, 0, E, 2 * E, 1);
        bv = et_slice(bias, 0, 2 * E, 3 * E, 1);
    }
    et_tensor *q, *k, *v;
    if (c->same_dim) {
        et_tensor *w = nn_param(m, "in_proj_weight");
        if (query == key && key == value) {
            /* self-attention: one GEMM, as torch's linear(q, w, b).chunk(3);
             * batch_first for the fused op: on x itself (rows are rows: the
             * same values), the chunks transposed as views */
            bool bf = fused && x_bf && et_is_contiguous(x_bf);
            et_tensor *qkv = et_linear(bf ? x_bf : query, w, bias), *part[3];
            if (!qkv || et_chunk(qkv, 3, -1, part, 3) != 3)
                return NULL;
            for (int i = 0; bf && i < 3; i++)
                if (!(part[i] = et_transpose(part[i], 0, 1)))
                    return NULL;
            q = part[0], k = part[1], v = part[2];
        } else {
            q = et_linear(query, et_slice(w, 0, 0, E, 1), bq);
            k = et_linear(key, et_slice(w, 0, E, 2 * E, 1), bk);
            v = et_linear(value, et_slice(w, 0, 2 * E, 3 * E, 1), bv);
        }
    } else {
        q = et_linear(query, nn_param(m, "q_proj_weight"), bq);
        k = et_linear(key, nn_param(m, "k_proj_weight"), bk);
        v = et_linear(value, nn_param(m, "v_proj_weight"), bv);
    }
    if (!q || !k || !v)
        return NULL;

    /* ---- masks ---- */
    et_tensor *am = NULL;
    bool am_bool = is_bool(attn_mask);
    if (attn_mask) {
        if (et_ndim(attn_mask) == 2 ? (et_size(attn_mask, 0) != L || et_size(attn_mask, 1) != S)
                                    : (et_size(attn_mask, 0) != bsz * H ||
                                       et_size(attn_mask, 1) != L || et_size(attn_mask, 2) != S)) {
            if (et_ndim(attn_mask) == 2)
                et_set_error(ET_ERR_SHAPE, "the shape of the 2D attn_mask is %s, but should be "
                             "[%lld, %lld]", NN_SHAPE_STR(attn_mask, b1), (long long)L,
                             (long long)S);
            else
                et_set_error(ET_ERR_SHAPE, "the shape of the 3D attn_mask is %s, but should be "
                             "[%lld, %lld, %lld]", NN_SHAPE_STR(attn_mask, b1),
                             (long long)(bsz * H), (long long)L, (long long)S);
            return NULL;
        }
        am = additive(attn_mask);
        if (am && et_ndim(am) == 2)
            am = et_unsqueeze(am, 0);
        if (!am)
            return NULL;
    }
    et_tensor *km = NULL;   /* additive (float) or 0/1 (bool) key padding mask */
    bool km_bool = is_bool(kpm);
    if (kpm) {
        if (km_bool) {
            et_tensor *z = et_zeros(et_shape(kpm), et_ndim(kpm));
            et_tensor *kc = et_contiguous(kpm);
            if (!z || !kc)
                return NULL;
            float *o = et_data(z);
            const int64_t *d = et_data_int64_const(kc);
            for (int64_t i = 0; i < et_numel(kpm); i++)
                o[i] = d[i] != 0 ? 1.0f : 0.0f;
            km = z;
        } else {
            km = kpm;
        }
    }

    /* ---- bias_k / bias_v ---- */
    et_tensor *bias_k = nn_param(m, "bias_k"), *bias_v = nn_param(m, "bias_v");
    if (bias_k && bias_v) {
        int64_t rep[3] = {1, bsz, 1};
        et_tensor *kk[2] = {k, et_repeat(bias_k, rep, 3)};
        et_tensor *vv[2] = {v, et_repeat(bias_v, rep, 3)};
        k = kk[1] ? et_cat(kk, 2, 0) : NULL;
        v = vv[1] ? et_cat(vv, 2, 0) : NULL;
        if (am)
            am = pad_last(am);
        if (km)
            km = pad_last(km);
        if (!k || !v || (attn_mask && !am) || (kpm && !km))
            return NULL;
    }
    if (fused) {
        S = et_size(k, 0);
    } else {
        q = heads(q, bsz, H, hd);
        k = heads(k, bsz, H, hd);
        v = heads(v, bsz, H, hd);
        if (!q || !k || !v)
            return NULL;
        S = et_size(k, 1);
    }
    if (c->o.add_zero_attn) {
        et_tensor *zk = et_zeros(ET_SHAPE(bsz * H, 1, hd)), *zv = et_zeros(ET_SHAPE(bsz * H, 1, hd));
        et_tensor *kk[2] = {k, zk}, *vv[2] = {v, zv};
        k = zk ? et_cat(kk, 2, 1) : NULL;
        v = zv ? et_cat(vv, 2, 1) : NULL;
        if (am)
            am = pad_last(am);
        if (km)
            km = pad_last(km);
        if (!k || !v || (attn_mask && !am) || (kpm && !km))
            return NULL;
        S = et_size(k, 1);
    }
    if (km) {
        if (et_size(km, 0) != bsz || et_size(km, 1) != S) {
            et_set_error(ET_ERR_SHAPE, "expecting key_padding_mask shape of [%lld, %lld], but "
                         "got %s", (long long)bsz, (long long)S, NN_SHAPE_STR(kpm, b1));
            return NULL;
        }
        et_tensor *kv = et_view(et_contiguous(km), ET_SHAPE(bsz, 1, 1, S));
        kv = kv ? et_expand(kv, ET_SHAPE(bsz, H, 1, S)) : NULL;
        kv = kv ? et_reshape(kv, ET_SHAPE(bsz * H, 1, S)) : NULL;
        if (!kv)
            return NULL;
        if (!km_bool)
            am = kv;                          /* float padding mask, alone */
        else if (!am || am_bool)              /* bool | bool: -inf where either is set */
            am = am ? et_add(am, et_masked_fill(et_zeros_like(kv), kv, -INFINITY))
                    : et_masked_fill(et_zeros_like(kv), kv, -INFINITY);
        else                                  /* float attn_mask, bool padding */
            am = et_masked_fill(am, kv, -INFINITY);
        if (!am)
            return NULL;
    }

    /* ---- attention ---- */
    et_module *out_proj = m->children[0];
    if (fused) {
        /* [T, bsz, E] -> [bsz, T, E] views; the result [bsz, L, E] has the
         * heads merged, the out-projection's rows as they are */
        et_tensor *o = etc_pooled(etc_sdpa(et_transpose(q, 0, 1), et_transpose(k, 0, 1),
                                           et_transpose(v, 0, 1), am, (int)H, p, c->g));
        o = o ? out_proj->forward(out_proj, et_view(o, ET_SHAPE(bsz * L, E))) : NULL;
        o = o ? et_view(o, ET_SHAPE(bsz, L, E)) : NULL;
        if (!o)
            return NULL;
        if (!batched)
            return et_squeeze(o, 0);
        return c->o.batch_first ? o : et_transpose(o, 0, 1);
    }
    et_tensor *w = NULL;
    et_tensor *o = et_scaled_dot_product_attention(q, k, v, am, p, false, c->g,
                                                   need_weights ? &w : NULL);
    if (!o)
        return NULL;
    o = et_view(et_contiguous(et_transpose(o, 0, 1)), ET_SHAPE(L * bsz, E));
    o = o ? out_proj->forward(out_proj, o) : NULL;
    o = o ? et_view(o, ET_SHAPE(L, bsz, E)) : NULL;
    if (!o)
        return NULL;
    if (need_weights) {
        w = et_view(w, ET_SHAPE(bsz, H, L, S));
        if (w && average) {
            int d1 = 1;
            w = et_div_scalar(et_sum(w, &d1, 1, false), (float)H);
        }
        if (w && !batched)
            w = et_squeeze(w, 0);
        if (!w)
            return NULL;
        *weights = w;
    }
    if (!batched)
        return et_squeeze(o, 1);
    return c->o.batch_first ? et_transpose(o, 0, 1) : o;
}

et_tensor *et_multihead_attention_forward(et_module *m, et_tensor *query, et_tensor *key,
                                          et_tensor *value, et_tensor *key_padding_mask,
                                          bool need_weights, et_tensor *attn_mask,
                                          bool average_attn_weights, et_tensor **attn_weights)
{
    if (attn_weights)
        *attn_weights = NULL;
    if (!m || strcmp(m->type, "MultiheadAttention") != 0) {
        et_set_error_after(ET_ERR_ARG, "multihead_attention_forward: %s",
                           m ? "not a MultiheadAttention" : "NULL module");
        return NULL;
    }
    const mha_cfg *c = m->impl;
    if (!query || !key || !value || (need_weights && !attn_weights)) {
        et_set_error_after(ET_ERR_ARG, MHA_PREFIX(c));
        et_set_error(ET_ERR_ARG, "MultiheadAttention(%lld, %lld): NULL %s", (long long)c->E,
                     (long long)c->H, !query ? "query" : !key ? "key" : !value ? "value"
                                                                  : "attn_weights (need_weights)");
        return NULL;
    }
    nn_scope_begin();
    et_tensor *w = NULL;
    et_tensor *o = mha_impl(m, query, key, value, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, &w);
    if (!o)
        nn_error_prefix(MHA_PREFIX(c));
    if (o && need_weights)
        et_tensor_ref(w);          /* survives the scope */
    o = nn_scope_end(o);
    if (need_weights) {
        if (o) {
            nn_scope_begin();
            *attn_weights = nn_scope_end(w);
        }
        et_tensor_free(o ? w : NULL);
    }
    return o;
}

/* et_module_forward: self-attention, no masks, no weights */
static et_tensor *mha_forward(et_module *m, et_tensor *x)
{
    et_tensor *o = mha_impl(m, x, x, x, NULL, false, NULL, false, NULL);
    if (!o)
        nn_error_prefix(MHA_PREFIX((const mha_cfg *)m->impl));
    return o;
}

/* ---------------------------------------------------------------- new */

/* xavier_uniform_ of a [rows, cols] weight: U(+-sqrt(6 / (fan_in + fan_out))) */
static et_tensor *xavier_uniform(et_generator *g, int64_t rows, int64_t cols)
{
    return nn_keep_uniform(g, ET_SHAPE(rows, cols), sqrt(6.0 / (double)(rows + cols)));
}

et_module *et_multihead_attention_new(int64_t embed_dim, int64_t num_heads, et_mha_opts o,
                                      et_generator *g)
{
    if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads != 0) {
        et_set_error(ET_ERR_ARG, "MultiheadAttention(%lld, %lld): embed_dim must be positive "
                     "and divisible by num_heads", (long long)embed_dim, (long long)num_heads);
        return NULL;
    }
    if (!(o.dropout >= 0.0f && o.dropout <= 1.0f) || o.kdim < 0 || o.vdim < 0) {
        et_set_error(ET_ERR_ARG, "MultiheadAttention(%lld, %lld): dropout must be in [0, 1] "
                     "(got %g) and kdim, vdim positive (or 0: embed_dim)", (long long)embed_dim,
                     (long long)num_heads, (double)o.dropout);
        return NULL;
    }
    if (!g)
        g = et_default_generator();
    mha_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc("MultiheadAttention", mha_forward) : NULL;
    if (!m) {
        free(c);
        et_set_error(ET_ERR_NOMEM, "MultiheadAttention: out of memory");
        return NULL;
    }
    int64_t E = embed_dim;
    *c = (mha_cfg){.E = E, .H = num_heads, .kdim = o.kdim ? o.kdim : E,
                   .vdim = o.vdim ? o.vdim : E, .o = o, .g = g};
    c->same_dim = c->kdim == E && c->vdim == E;
    nn_module_set_impl(m, c, NULL);
    /* torch draws out_proj (a Linear) in __init__, then _reset_parameters */
    et_module *out_proj = et_linear_new(E, E, o.bias, g);
    et_status st = out_proj ? ET_OK : et_errcode();
    if (st == ET_OK && c->same_dim) {
        st = nn_module_add_param(m, "in_proj_weight", xavier_uniform(g, 3 * E, E));
    } else if (st == ET_OK) {
        st = nn_module_add_param(m, "q_proj_weight", xavier_uniform(g, E, E));
        if (st == ET_OK)
            st = nn_module_add_param(m, "k_proj_weight", xavier_uniform(g, E, c->kdim));
        if (st == ET_OK)
            st = nn_module_add_param(m, "v_proj_weight", xavier_uniform(g, E, c->vdim));
    }
    if (st == ET_OK && o.bias) {
        st = nn_module_add_param(m, "in_proj_bias", nn_keep_new(NULL, ET_SHAPE(3 * E)));
        if (st == ET_OK)
            st = et_fill_(nn_param(out_proj, "bias"), 0.0f);
    }
    if (st == ET_OK && o.add_bias_kv) {
        /* xavier_normal_ of [1, 1, E]: fan_in = fan_out = E, std sqrt(1 / E) */
        for (int i = 0; i < 2 && st == ET_OK; i++) {
            et_tensor *t = nn_keep_new(NULL, ET_SHAPE(1, 1, E));
            if (t) {
                et_pool_begin();
                et_tensor *r = et_randn(g, ET_SHAPE(1, 1, E));
                st = r ? et_copy_(t, et_mul_scalar(r, (float)sqrt(1.0 / (double)E))) : et_errcode();
                et_pool_end();
            }
            if (st == ET_OK)
                st = nn_module_add_param(m, i ? "bias_v" : "bias_k", t);
            else
                et_tensor_free(t);
        }
    }
    if (st == ET_OK)
        st = nn_module_add_child(m, "out_proj", out_proj);
    else
        et_module_free(out_proj);
    if (st != ET_OK) {
        nn_error_prefix("MultiheadAttention(%lld, %lld): ", (long long)E, (long long)num_heads);
        et_module_free(m);
        return NULL;
    }
    return m;
}
