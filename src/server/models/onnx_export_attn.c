/* onnx_export_attn.c - the attention layers as ONNX opset 17 nodes (onnx_ox.h):
 * MultiheadAttention (self-attention in a layer list; a graph's node: query, key,
 * value), TransformerEncoderLayer and TransformerEncoder, in eval mode (no
 * dropout) with the mask fixed in the spec, or a graph's mask values.
 *
 * Opset 17 has no attention op: torch 1.13's math, node by node, on the
 * batch-first form [N, L, E] (a batch_first=False input is transposed in and
 * out, an unbatched [L, E] one unsqueezed): the packed in-projection, the
 * heads by Reshape [0, 0, H, D] + Transpose, q scaled by 1/sqrt(D) before
 * q k^T (as torch), the mask added, Softmax, the weighted values, the heads
 * merged and the out-projection; separate q/k/v_proj_weight when kdim / vdim
 * differ from embed_dim, bias_k / bias_v and zero attention appended after
 * the projection.  A key padding mask (a graph value, or the layer list's
 * {"input_equals": pad} on its token input) merges into the mask as torch
 * 1.13 merges it.  A "causal" mask is built from the input's
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

/* One attention call: the layer's options and its state under pre
 * ("self_attn." or "": the layer itself). */
typedef struct att {
    const char *pre;
    int64_t E, H;
    bool bias, bias_kv, zero_attn, packed; /* packed: in_proj_weight, else q/k/v_proj_weight */
} att;

static att att_of(const et_mha_opts *o, const char *pre, int64_t E, int64_t H)
{
    return (att){.pre = pre, .E = E, .H = H, .bias = o->bias, .bias_kv = o->add_bias_kv,
                 .zero_attn = o->add_zero_attn,
                 .packed = (!o->kdim || o->kdim == E) && (!o->vdim || o->vdim == E)};
}

/* in [.., d] @ W_part^T (+ b[part]): part 0, 1, 2 of the in-projection
 * (one third of the packed in_proj_weight, or q/k/v_proj_weight). */
static const char *proj_part(ox *x, const att *a, const char *in, int part)
{
    int64_t E = a->E, st = part * E, en = (part + 1) * E, a0 = 0;
    const char *s = ox_init_i64(x, U("start"), &st, 1), *en_ = ox_init_i64(x, U("end"), &en, 1);
    const char *ax = ox_init_i64(x, U("axis0"), &a0, 1), *w;
    if (a->packed) {
        w = ox_node(x, "Slice", IN(ox_param(x, ox_str(x, "%sin_proj_weight", a->pre), NULL, 0), s,
                                   en_, ax), NULL);
    } else {
        static const char *const name[3] = {"q", "k", "v"};
        w = ox_param(x, ox_str(x, "%s%s_proj_weight", a->pre, name[part]), NULL, 0);
    }
    const char *y = ox_node(x, "MatMul", IN(in, transpose(x, w, 1, 0, 0, 0, 2)), NULL);
    if (!a->bias)
        return y;
    return ox_node(x, "Add", IN(y, ox_node(x, "Slice", IN(ox_param(x, ox_str(x, "%sin_proj_bias",
                                                                             a->pre), NULL, 0),
                                                          s, en_, ax), NULL)), NULL);
}

/* torch 1.13's F.multi_head_attention_forward on batch-first q [N, L, E],
 * k [N, S, kdim], v [N, S, vdim] (q == k == v: one packed projection, as
 * torch's self-attention); mask additive, of rank mr, broadcasting to the
 * scores [N, H, L, S] (NULL: none).  bias_k / bias_v and zero attention
 * append key / value rows after the projection, and zero columns to the
 * mask, as torch.  -> [N, L, E]; *probs: the softmax [N, H, L, S'] */
static const char *attend(ox *x, const att *a, const char *q, const char *k, const char *v,
                          const char *mask, int mr, const char **probs)
{
    int64_t E = a->E, H = a->H, D = E / H;
    const char *p[3];
    if (a->packed && q == k && k == v) { /* one GEMM, its thirds */
        const char *qkv = linear(x, q, ox_str(x, "%sin_proj_weight", a->pre),
                                 a->bias ? ox_str(x, "%sin_proj_bias", a->pre) : NULL);
        int64_t axis = -1;
        const char *ax = ox_init_i64(x, U("last"), &axis, 1);
        for (int i = 0; i < 3; i++) {
            int64_t st = i * E, en = (i + 1) * E;
            p[i] = ox_node(x, "Slice", IN(qkv, ox_init_i64(x, U("start"), &st, 1),
                                          ox_init_i64(x, U("end"), &en, 1), ax), NULL);
        }
    } else {
        const char *in[3] = {q, k, v};
        for (int i = 0; i < 3; i++)
            p[i] = proj_part(x, a, in[i], i);
    }
    int extra = 0;
    if (a->bias_kv || a->zero_attn) { /* rows [N, 1, E] after the keys and values */
        int64_t z = 0, one = 1, row[2] = {1, E};
        const char *n = ox_node(x, "Slice", IN(ox_node(x, "Shape", IN(p[1]), NULL),
                                               ox_init_i64(x, U("start"), &z, 1),
                                               ox_init_i64(x, U("end"), &one, 1)), NULL);
        const char *sh = ox_node(x, "Concat", IN(n, ox_init_i64(x, U("row"), row, 2)),
                                 AT(ox_attr_i(x, "axis", 0)));
        for (int r = 0; r < 2; r++) {
            if (r == 0 ? !a->bias_kv : !a->zero_attn)
                continue;
            for (int i = 1; i < 3; i++) {
                const char *b = r == 0 ? ox_param(x, ox_str(x, "%sbias_%c", a->pre, "kv"[i - 1]),
                                                  NULL, 0)
                                       : ox_scalar_f(x, U("zero_attn"), 0.0f);
                p[i] = ox_node(x, "Concat", IN(p[i], ox_node(x, "Expand", IN(b, sh), NULL)),
                               AT(ox_attr_i(x, "axis", 1)));
            }
            extra++;
        }
    }
    int64_t heads[4] = {0, 0, H, D}, merged[3] = {0, 0, E};
    const char *hs = ox_init_i64(x, U("heads"), heads, 4);
    for (int i = 0; i < 3; i++)
        p[i] = ox_node(x, "Reshape", IN(p[i], hs), NULL);
    const char *qh = transpose(x, p[0], 0, 2, 1, 3, 4);           /* [N, H, L, D] */
    const char *kh = transpose(x, p[1], 0, 2, 3, 1, 4);           /* [N, H, D, S] */
    const char *vh = transpose(x, p[2], 0, 2, 1, 3, 4);           /* [N, H, S, D] */
    qh = ox_node(x, "Mul", IN(qh, ox_scalar_f(x, U("scale"), (float)(1.0 / sqrt((double)D)))), NULL);
    const char *s = ox_node(x, "MatMul", IN(qh, kh), NULL);       /* [N, H, L, S] */
    if (mask) {
        if (extra) { /* the appended keys are not masked */
            int64_t pads[8] = {0};
            pads[mr + mr - 1] = extra;
            mask = ox_node(x, "Pad", IN(mask, ox_init_i64(x, U("pads"), pads, 2 * mr)), NULL);
        }
        s = ox_node(x, "Add", IN(s, mask), NULL);
    }
    s = ox_node(x, "Softmax", IN(s), AT(ox_attr_i(x, "axis", -1)));
    *probs = s;
    const char *o = transpose(x, ox_node(x, "MatMul", IN(s, vh), NULL), 0, 2, 1, 3, 4);
    o = ox_node(x, "Reshape", IN(o, ox_init_i64(x, U("merged"), merged, 3)), NULL);
    return linear(x, o, ox_str(x, "%sout_proj.weight", a->pre),
                  a->bias ? ox_str(x, "%sout_proj.bias", a->pre) : NULL);
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
                             const et_encoder_layer_opts *o, const char *bf, const char *mask, int mr)
{
    const char *y = bf;
    for (int blk = 0; blk < 2; blk++) { /* self-attention, then the feed-forward block */
        const char *norm = blk ? "norm2" : "norm1";
        const char *in = o->norm_first ? layer_norm(x, y, pre, norm, o->layer_norm_eps) : y;
        const char *f;
        if (blk == 0) {
            att a = {.pre = ox_str(x, "%sself_attn.", pre), .E = d, .H = h, .bias = true,
                     .packed = true};
            const char *probs;
            f = attend(x, &a, in, in, in, mask, mr, &probs);
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

static const char *unsqueeze(ox *x, const char *v, const int64_t *axes, int n)
{
    return ox_node(x, "Unsqueeze", IN(v, ox_init_i64(x, U("axes"), axes, n)), NULL);
}

/* The additive mask of one call (NULL: none; *mr its rank): the spec's
 * fixed mask (l->mask) or am, a graph value [L, S] / [N * H, L, S] (bool:
 * nonzero -> -inf, as torch), merged with a key padding mask kpm [N, S]
 * ([S] unbatched) as torch 1.13 does: a float one is the mask (alone),
 * a bool one puts -inf in its columns (Where).  bf: the batch-first input
 * (a causal mask takes its length). */
static const char *call_mask(ox *x, const etd_layer *l, int64_t H, const char *bf,
                             const ox_mask_in *am, const ox_mask_in *kpm, int *mr)
{
    const float ninf = -INFINITY;
    const char *m = mask_value(x, &l->mask, bf);
    *mr = 2;
    if (!m && am && am->name) {
        m = am->is_bool ? ox_node(x, "Where", IN(ox_node(x, "Cast", IN(am->name),
                                                         AT(ox_attr_i(x, "to", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL))),
                                                 ox_scalar_f(x, U("ninf"), ninf),
                                                 ox_scalar_f(x, U("zero_f"), 0.0f)), NULL)
                        : am->name;
        *mr = am->nd;
        if (am->nd == 3) { /* [N * H, L, S] -> [N, H, L, S] */
            int64_t nh[2] = {-1, H}, one = 1, three = 3;
            const char *ls = ox_node(x, "Slice", IN(ox_node(x, "Shape", IN(m), NULL),
                                                    ox_init_i64(x, U("start"), &one, 1),
                                                    ox_init_i64(x, U("end"), &three, 1)), NULL);
            m = ox_node(x, "Reshape", IN(m, ox_node(x, "Concat", IN(ox_init_i64(x, U("nh"), nh, 2), ls),
                                                    AT(ox_attr_i(x, "axis", 0)))), NULL);
            *mr = 4;
        }
    }
    if (!kpm || !kpm->name)
        return m;
    static const int64_t ax[3] = {0, 1, 2};
    const char *k4 = unsqueeze(x, kpm->name, kpm->nd == 1 ? ax : ax + 1, kpm->nd == 1 ? 3 : 2);
    *mr = 4;                                                       /* [N, 1, 1, S] */
    if (!kpm->is_bool)
        return k4;
    k4 = ox_node(x, "Cast", IN(k4), AT(ox_attr_i(x, "to", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)));
    return ox_node(x, "Where", IN(k4, ox_scalar_f(x, U("ninf"), ninf),
                                  m ? m : ox_scalar_f(x, U("zero_f"), 0.0f)), NULL);
}

etd_rc ox_export_attention(ox *x, const etd_layer *l, const shape *in, const shape *out,
                           const ox_mask_in *am, const ox_mask_in *kpm, const char **cur, etd_err *e)
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
    if (encoder && l->kids[1].type &&
        (strcmp(l->kids[1].type->name, "LayerNorm") != 0 || !l->kids[1].u.layer_norm.affine ||
         l->kids[1].u.layer_norm.nd != 1))
        return ox_unsupported(x, "a final norm other than an affine LayerNorm over the last dimension", e);
    if (am && am->name && am->nd != 2 && am->nd != 3)
        return ox_unsupported(x, "a mask that is not 2-D or 3-D", e);
    if (kpm && kpm->name && kpm->nd != in->nd - 1)
        return ox_unsupported(x, "a key padding mask that is not [N, S] ([S] unbatched)", e);
    ox_mask_in tok = {0};
    if (l->kpm) { /* the model's tokens [N, S] ([S, N] seq-first) equal to the pad */
        if (in->nd != 3 || !x->m || x->m->spec.graph)
            return ox_unsupported(x, "a key padding mask made from an input that is not the "
                                  "model's [batch, seq] tokens", e);
        const char *eq = ox_node(x, "Equal", IN("input", ox_init(x, U("pad"),
                                                                 ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                                                                 &l->kpm_pad, sizeof l->kpm_pad,
                                                                 NULL, 0)), NULL);
        tok = (ox_mask_in){.name = bf_in ? eq : transpose(x, eq, 1, 0, 0, 0, 2), .nd = 2,
                           .is_bool = true};
        kpm = &tok;
    }
    /* to [N, L, E] */
    int64_t a0 = 0;
    const char *bf = *cur;
    if (in->nd == 2)
        bf = ox_node(x, "Unsqueeze", IN(bf, ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
    else if (!bf_in)
        bf = transpose(x, bf, 1, 0, 2, 0, 3);
    int64_t H = mha_layer ? l->u.mha.num_heads : el->u.enc_layer.nhead;
    int mr;
    const char *mask = call_mask(x, l, H, bf, am, kpm, &mr);
    const char *y;
    if (mha_layer) {
        att a = att_of(&l->u.mha.o, "", l->u.mha.embed_dim, H);
        const char *probs;
        y = attend(x, &a, bf, bf, bf, mask, mr, &probs);
    } else if (!encoder) {
        y = enc_layer(x, "", l->u.enc_layer.d_model, H, &l->u.enc_layer.o, bf, mask, mr);
    } else {
        y = bf;
        for (int k = 0; k < l->u.encoder.num_layers; k++)
            y = enc_layer(x, ox_str(x, "layers.%d.", k), el->u.enc_layer.d_model, H,
                          &el->u.enc_layer.o, y, mask, mr);
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

etd_rc ox_export_mha_node(ox *x, const etd_layer *l, int nd, const char *const qkv[3],
                          const char **out, const char **weights, etd_err *e)
{
    const et_mha_opts *o = &l->u.mha.o;
    int64_t a0 = 0, ax1 = 1;
    if (nd != 2 && nd != 3)
        return ox_unsupported(x, "an input that is not [L, E] or 3-D", e);
    const char *bf[3];
    for (int i = 0; i < 3; i++) { /* to [N, L, E] */
        bf[i] = qkv[i];
        if (i > 0 && qkv[i] == qkv[i - 1])
            bf[i] = bf[i - 1];
        else if (nd == 2)
            bf[i] = ox_node(x, "Unsqueeze", IN(bf[i], ox_init_i64(x, U("batch_axis"), &a0, 1)), NULL);
        else if (!o->batch_first)
            bf[i] = transpose(x, bf[i], 1, 0, 2, 0, 3);
    }
    att a = att_of(o, "", l->u.mha.embed_dim, l->u.mha.num_heads);
    const char *s, *y = attend(x, &a, bf[0], bf[1], bf[2], NULL, 0, &s);
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
