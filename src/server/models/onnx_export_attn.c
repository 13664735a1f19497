/* onnx_export_attn.c - the attention layers as ONNX opset 17 nodes (onnx_ox.h):
 * MultiheadAttention (self-attention, as in a layer list), TransformerEncoderLayer
 * and TransformerEncoder, in eval mode (no dropout) with the mask fixed in the spec.
 *
 * Opset 17 has no attention op: torch 1.13's math, node by node, on the
 * batch-first form [N, L, E] (a batch_first=False input is transposed in and
 * out, an unbatched [L, E] one unsqueezed): the packed in-projection, the
 * heads by Reshape [0, 0, H, D] + Transpose, q scaled by 1/sqrt(D) before
 * q k^T (as torch), the mask added, Softmax, the weighted values, the heads
 * merged and the out-projection.  A "causal" mask is built from the input's
 * own length at run time (Shape, Range, Greater, Where), so the exported
 * file takes any sequence length; a matrix mask is an initializer (booleans
 * as 0 / -inf, as torch converts them).  Initializers keep the state_dict's
 * names ("0.self_attn.in_proj_weight"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "server/models/onnx_ox.h"

/* A unique initializer name for a constant `what` (one layer writes many) */
#define U(what) ox_str(x, "%s_%zu", what, x->ni)

static const char *scalar_i64(ox *x, const char *what, int64_t v)
{
    return ox_init(x, ox_str(x, "%s.%s", x->cp, what),
                   ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &v, sizeof v, NULL, 0);
}

static const char *transpose(ox *x, const char *c, int64_t a, int64_t b, int64_t d, int64_t f,
                             int nd)
{
    int64_t perm[4] = {a, b, d, f};
    return ox_node(x, "Transpose", IN(c), AT(ox_attr_ints(x, "perm", perm, nd)));
}

/* c @ W^T (+ b) for an input of any rank; keys as in the state_dict after
 * the layer's index ("self_attn.out_proj.weight"), b NULL: no bias. */
static const char *linear(ox *x, const char *c, const char *w, const char *b)
{
    const char *wt = transpose(x, ox_param(x, w, NULL, 0), 1, 0, 0, 0, 2);
    const char *y = ox_node(x, "MatMul", IN(c, wt), NULL);
    return b ? ox_node(x, "Add", IN(y, ox_param(x, b, NULL, 0)), NULL) : y;
}

/* LayerNorm over the last dimension, weight and bias from the state */
static const char *layer_norm(ox *x, const char *c, const char *pre, const char *name, double eps)
{
    return ox_node(x, "LayerNormalization",
                   IN(c, ox_param(x, ox_str(x, "%s%s.weight", pre, name), NULL, 0),
                      ox_param(x, ox_str(x, "%s%s.bias", pre, name), NULL, 0)),
                   AT(ox_attr_i(x, "axis", -1), ox_attr_f(x, "epsilon", eps)));
}

/* The spec's fixed mask as a value added to the scores, NULL for none.
 * bf: the batch-first input [N, L, E] (a causal mask takes its L). */
static const char *mask_value(ox *x, const etd_mask *m, const char *bf)
{
    switch (m->kind) {
    case ETD_MASK_NONE:
        return NULL;
    case ETD_MASK_FLOAT:
    case ETD_MASK_BOOL: {
        int64_t dims[2] = {m->rows, m->cols}, n = m->rows * m->cols;
        float *v = ox_alloc(x, (size_t)n * sizeof *v);
        if (!v)
            return "";
        for (int64_t i = 0; i < n; i++)
            v[i] = m->kind == ETD_MASK_FLOAT ? m->f[i] : m->b[i] ? -INFINITY : 0.0f;
        return ox_init_f(x, U("attn_mask"), v, dims, 2);
    }
    case ETD_MASK_CAUSAL: {
        /* torch's generate_square_subsequent_mask(L): -inf where key j > query i */
        const char *L = ox_node(x, "Gather", IN(ox_node(x, "Shape", IN(bf), NULL),
                                                 scalar_i64(x, U("seq_dim"), 1)),
                                AT(ox_attr_i(x, "axis", 0)));
        const char *r = ox_node(x, "Range", IN(scalar_i64(x, U("zero"), 0), L,
                                               scalar_i64(x, U("one"), 1)), NULL);
        int64_t a0 = 0, a1 = 1;
        const char *rows = ox_node(x, "Unsqueeze", IN(r, ox_init_i64(x, U("axes1"), &a1, 1)), NULL);
        const char *cols = ox_node(x, "Unsqueeze", IN(r, ox_init_i64(x, U("axes0"), &a0, 1)), NULL);
        const char *later = ox_node(x, "Greater", IN(cols, rows), NULL);
        return ox_node(x, "Where", IN(later, ox_scalar_f(x, U("ninf"), -INFINITY),
                                      ox_scalar_f(x, U("zero_f"), 0.0f)), NULL);
    }
    }
    return NULL;
}

/* Self-attention on bf [N, L, E] with the projections under `pre`
 * ("self_attn." or "": the layer itself) -> [N, L, E]. */
static const char *mha(ox *x, const char *pre, int64_t E, int64_t H, bool bias, const char *bf,
                       const char *mask)
{
    int64_t D = E / H;
    const char *qkv = linear(x, bf, ox_str(x, "%sin_proj_weight", pre),
                             bias ? ox_str(x, "%sin_proj_bias", pre) : NULL);
    int64_t heads[4] = {0, 0, H, D}, merged[3] = {0, 0, E}, axis = -1;
    const char *hs = ox_init_i64(x, U("heads"), heads, 4), *ax = ox_init_i64(x, U("last"), &axis, 1);
    const char *part[3];
    for (int i = 0; i < 3; i++) { /* q, k, v: thirds of the packed projection */
        int64_t st = i * E, en = (i + 1) * E;
        part[i] = ox_node(x, "Slice", IN(qkv, ox_init_i64(x, U("start"), &st, 1),
                                         ox_init_i64(x, U("end"), &en, 1), ax), NULL);
        part[i] = ox_node(x, "Reshape", IN(part[i], hs), NULL);
    }
    const char *q = transpose(x, part[0], 0, 2, 1, 3, 4);         /* [N, H, L, D] */
    const char *k = transpose(x, part[1], 0, 2, 3, 1, 4);         /* [N, H, D, S] */
    const char *v = transpose(x, part[2], 0, 2, 1, 3, 4);         /* [N, H, S, D] */
    q = ox_node(x, "Mul", IN(q, ox_scalar_f(x, U("scale"), (float)(1.0 / sqrt((double)D)))), NULL);
    const char *s = ox_node(x, "MatMul", IN(q, k), NULL);         /* [N, H, L, S] */
    if (mask)
        s = ox_node(x, "Add", IN(s, mask), NULL);
    s = ox_node(x, "Softmax", IN(s), AT(ox_attr_i(x, "axis", -1)));
    const char *o = transpose(x, ox_node(x, "MatMul", IN(s, v), NULL), 0, 2, 1, 3, 4);
    o = ox_node(x, "Reshape", IN(o, ox_init_i64(x, U("merged"), merged, 3)), NULL);
    return linear(x, o, ox_str(x, "%sout_proj.weight", pre),
                  bias ? ox_str(x, "%sout_proj.bias", pre) : NULL);
}

/* torch's exact GELU: y * 0.5 * (1 + erf(y / sqrt(2))) */
static const char *gelu(ox *x, const char *c)
{
    const char *y = ox_node(x, "Div", IN(c, ox_scalar_f(x, U("sqrt2"), (float)M_SQRT2)), NULL);
    y = ox_node(x, "Erf", IN(y), NULL);
    y = ox_node(x, "Add", IN(y, ox_scalar_f(x, U("one_f"), 1.0f)), NULL);
    y = ox_node(x, "Mul", IN(c, y), NULL);
    return ox_node(x, "Mul", IN(y, ox_scalar_f(x, U("half"), 0.5f)), NULL);
}

/* One TransformerEncoderLayer (opts o) on bf, its state under `pre`. */
static const char *enc_layer(ox *x, const char *pre, int64_t d, int64_t h,
                             const et_encoder_layer_opts *o, const char *bf, const char *mask)
{
    const char *y = bf;
    for (int blk = 0; blk < 2; blk++) { /* self-attention, then the feed-forward block */
        const char *norm = blk ? "norm2" : "norm1";
        const char *in = o->norm_first ? layer_norm(x, y, pre, norm, o->layer_norm_eps) : y;
        const char *f;
        if (blk == 0) {
            f = mha(x, ox_str(x, "%sself_attn.", pre), d, h, true, in, mask);
        } else {
            f = linear(x, in, ox_str(x, "%slinear1.weight", pre), ox_str(x, "%slinear1.bias", pre));
            f = o->activation == ET_ACT_GELU ? gelu(x, f) : ox_node(x, "Relu", IN(f), NULL);
            f = linear(x, f, ox_str(x, "%slinear2.weight", pre), ox_str(x, "%slinear2.bias", pre));
        }
        y = ox_node(x, "Add", IN(y, f), NULL);
        if (!o->norm_first)
            y = layer_norm(x, y, pre, norm, o->layer_norm_eps);
    }
    return y;
}

etd_rc ox_export_attention(ox *x, const etd_layer *l, const shape *in, const shape *out,
                           const char **cur, etd_err *e)
{
    (void)out;
    const char *n = l->type->name;
    bool mha_layer = !strcmp(n, "MultiheadAttention"), encoder = !strcmp(n, "TransformerEncoder");
    if (!mha_layer && !encoder && strcmp(n, "TransformerEncoderLayer") != 0)
        return ox_unsupported(x, "this layer type", e);
    const etd_layer *el = encoder ? &l->kids[0] : l;
    bool bf_in = mha_layer ? l->u.mha.o.batch_first : el->u.enc_layer.o.batch_first;
    if (in->nd != 2 && in->nd != 3)
        return ox_unsupported(x, "an input that is not [L, E] or 3-D", e);
    if (l->kpm)
        return ox_unsupported(x, "a key padding mask made from the model's input", e);
    if (mha_layer && (l->u.mha.o.add_bias_kv || l->u.mha.o.add_zero_attn))
        return ox_unsupported(x, "add_bias_kv / add_zero_attn", e);
    if (encoder && l->kids[1].type &&
        (strcmp(l->kids[1].type->name, "LayerNorm") != 0 || !l->kids[1].u.layer_norm.affine ||
         l->kids[1].u.layer_norm.nd != 1))
        return ox_unsupported(x, "a final norm other than an affine LayerNorm over the last dimension", e);
    /* to [N, L, E] */
    int64_t a0 = 0;
    const char *bf = *cur;
    if (in->nd == 2)
        bf = ox_node(x, "Unsqueeze", IN(bf, ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
    else if (!bf_in)
        bf = transpose(x, bf, 1, 0, 2, 0, 3);
    const char *mask = mask_value(x, &l->mask, bf);
    const char *y;
    if (mha_layer) {
        y = mha(x, "", l->u.mha.embed_dim, l->u.mha.num_heads, l->u.mha.o.bias, bf, mask);
    } else if (!encoder) {
        y = enc_layer(x, "", l->u.enc_layer.d_model, l->u.enc_layer.nhead, &l->u.enc_layer.o, bf,
                      mask);
    } else {
        y = bf;
        for (int k = 0; k < l->u.encoder.num_layers; k++)
            y = enc_layer(x, ox_str(x, "layers.%d.", k), el->u.enc_layer.d_model,
                          el->u.enc_layer.nhead, &el->u.enc_layer.o, y, mask);
        if (l->kids[1].type)
            y = layer_norm(x, y, "", "norm", l->kids[1].u.layer_norm.eps);
    }
    /* back to the input's layout */
    if (in->nd == 2)
        y = ox_node(x, "Squeeze", IN(y, ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
    else if (!bf_in)
        y = transpose(x, y, 1, 0, 2, 0, 3);
    *cur = y;
    return ETD_OK;
}

/* in [.., E] @ W[part]^T (+ b[part]): one third of the packed projection */
static const char *proj_part(ox *x, const char *in, int part, int64_t E, bool bias)
{
    int64_t st = part * E, en = (part + 1) * E, a0 = 0;
    const char *s = ox_init_i64(x, U("start"), &st, 1), *en_ = ox_init_i64(x, U("end"), &en, 1);
    const char *ax = ox_init_i64(x, U("axis0"), &a0, 1);
    const char *w = ox_node(x, "Slice", IN(ox_param(x, "in_proj_weight", NULL, 0), s, en_, ax), NULL);
    const char *y = ox_node(x, "MatMul", IN(in, transpose(x, w, 1, 0, 0, 0, 2)), NULL);
    if (!bias)
        return y;
    return ox_node(x, "Add", IN(y, ox_node(x, "Slice", IN(ox_param(x, "in_proj_bias", NULL, 0), s,
                                                          en_, ax), NULL)), NULL);
}

etd_rc ox_export_mha_node(ox *x, const etd_layer *l, int nd, const char *const qkv[3],
                          const char **out, const char **weights, etd_err *e)
{
    const et_mha_opts *o = &l->u.mha.o;
    int64_t E = l->u.mha.embed_dim, H = l->u.mha.num_heads, D = E / H, a0 = 0;
    if (o->add_bias_kv || o->add_zero_attn)
        return ox_unsupported(x, "add_bias_kv / add_zero_attn", e);
    if ((o->kdim && o->kdim != E) || (o->vdim && o->vdim != E))
        return ox_unsupported(x, "kdim / vdim other than embed_dim", e);
    if (nd != 2 && nd != 3)
        return ox_unsupported(x, "an input that is not [L, E] or 3-D", e);
    const char *bf[3], *p[3];
    for (int i = 0; i < 3; i++) { /* to [N, L, E], projected, heads [N, H, L, D] */
        bf[i] = qkv[i];
        if (i > 0 && qkv[i] == qkv[i - 1]) {
            bf[i] = bf[i - 1];
        } else if (nd == 2) {
            bf[i] = ox_node(x, "Unsqueeze", IN(bf[i], ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
        } else if (!o->batch_first) {
            bf[i] = transpose(x, bf[i], 1, 0, 2, 0, 3);
        }
        int64_t heads[4] = {0, 0, H, D};
        p[i] = ox_node(x, "Reshape", IN(proj_part(x, bf[i], i, E, o->bias),
                                        ox_init_i64(x, U("heads"), heads, 4)), NULL);
        p[i] = i == 1 ? transpose(x, p[i], 0, 2, 3, 1, 4) : transpose(x, p[i], 0, 2, 1, 3, 4);
    }
    const char *q = ox_node(x, "Mul", IN(p[0], ox_scalar_f(x, U("scale"), (float)(1.0 / sqrt((double)D)))),
                            NULL);
    const char *s = ox_node(x, "Softmax", IN(ox_node(x, "MatMul", IN(q, p[1]), NULL)),
                            AT(ox_attr_i(x, "axis", -1)));               /* [N, H, L, S] */
    int64_t merged[3] = {0, 0, E}, ax1 = 1;
    const char *y = transpose(x, ox_node(x, "MatMul", IN(s, p[2]), NULL), 0, 2, 1, 3, 4);
    y = ox_node(x, "Reshape", IN(y, ox_init_i64(x, U("merged"), merged, 3)), NULL);
    y = linear(x, y, "out_proj.weight", o->bias ? "out_proj.bias" : NULL);
    /* torch: the weights averaged over the heads, [N, L, S] ([L, S] unbatched) */
    const char *w = ox_node(x, "ReduceMean", IN(s), AT(ox_attr_ints(x, "axes", &ax1, 1),
                                                     ox_attr_i(x, "keepdims", 0)));
    if (nd == 2) {
        y = ox_node(x, "Squeeze", IN(y, ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
        w = ox_node(x, "Squeeze", IN(w, ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
    } else if (!o->batch_first) {
        y = transpose(x, y, 1, 0, 2, 0, 3);
    }
    *out = y;
    *weights = w;
    return ETD_OK;
}
