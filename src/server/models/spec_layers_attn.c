/* spec_layers_attn.c - the attention layer types of a model spec:
 * MultiheadAttention, TransformerEncoderLayer and TransformerEncoder, with
 * torch 1.13's constructor arguments and defaults (rows in spec_layers.c).
 *
 * Their torch forward takes masks besides the input.  A mask may be fixed
 * in the spec under the forward argument's torch name (attn_mask, src_mask,
 * mask): "causal" (nn.Transformer.generate_square_subsequent_mask of the
 * input's sequence length, at every forward) or a matrix.  Graph nodes pass
 * any forward argument as a tensor (fwd_args); one given there wins over
 * the spec's.  In a layer list a MultiheadAttention is self-attention
 * (query = key = value = the input) and its output is attn_output. */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"
#include "server/models/spec_layers.h"

/* sizes big enough for anything real, small enough that E * E * 4 cannot
 * overflow before max_params rejects it */
#define MAX_DIM (INT64_C(1) << 20)
#define MAX_MASK (INT64_C(1) << 22)

/* ---- masks fixed in the spec ---- */

static bool mask_parse(etd_mask *m, const etd_obj *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o->o, key);
    memset(m, 0, sizeof *m);
    if (!j || cJSON_IsNull(j))
        return true;
    if (cJSON_IsString(j)) {
        if (strcmp(j->valuestring, "causal") == 0)
            return m->kind = ETD_MASK_CAUSAL, true;
        return etd_field_fail(o, key, "unknown mask \"%.40s\" (expected \"causal\", a matrix of "
                              "numbers added to the attention scores, or of booleans, true = "
                              "may not attend)", j->valuestring);
    }
    const char *expect = "expected \"causal\" or a non-empty matrix (a list of equally long "
                         "lists) of numbers or of booleans";
    int rows = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0;
    int cols = rows && cJSON_IsArray(j->child) ? cJSON_GetArraySize(j->child) : 0;
    if (rows == 0 || cols == 0)
        return etd_field_fail(o, key, "%s", expect);
    if ((int64_t)rows * cols > MAX_MASK)
        return etd_field_fail(o, key, "a %d x %d matrix is over the limit of %lld entries", rows,
                              cols, (long long)MAX_MASK);
    bool boolean = cJSON_IsBool(j->child->child);
    m->kind = boolean ? ETD_MASK_BOOL : ETD_MASK_FLOAT;
    m->rows = rows;
    m->cols = cols;
    if (boolean)
        m->b = malloc((size_t)rows * (size_t)cols * sizeof *m->b);
    else
        m->f = malloc((size_t)rows * (size_t)cols * sizeof *m->f);
    if (!m->b && !m->f)
        return etd_field_fail(o, key, "out of memory");
    int r = 0;
    for (const cJSON *row = j->child; row; row = row->next, r++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != cols)
            return etd_field_fail(o, key, "row %d: expected a list of %d entries, as row 0", r,
                                  cols);
        int c = 0;
        for (const cJSON *v = row->child; v; v = v->next, c++) {
            size_t at = (size_t)r * (size_t)cols + (size_t)c;
            if (boolean && cJSON_IsBool(v)) {
                m->b[at] = cJSON_IsTrue(v);
            } else if (!boolean && cJSON_IsNumber(v) && v->valuedouble >= -FLT_MAX &&
                       v->valuedouble <= FLT_MAX) {
                m->f[at] = (float)v->valuedouble;
            } else {
                return etd_field_fail(o, key, "[%d][%d]: expected %s, as [0][0]", r, c,
                                      boolean ? "a boolean" : "a finite float32 number");
            }
        }
    }
    return true;
}

/* The sequence length of an attention input: [L, N, E] ([N, L, E]
 * batch_first), [L, E] unbatched; -1 for other ranks (the library says
 * what it expects). */
static int64_t seq_len(const et_tensor *x, bool batch_first)
{
    int nd = et_ndim(x);
    if (nd == 2)
        return et_shape(x)[0];
    if (nd == 3)
        return et_shape(x)[batch_first ? 1 : 0];
    return -1;
}

/* The spec's mask as a tensor for queries of length L over keys of length
 * S (pool-owned), NULL when there is none -- or when it cannot be made:
 * then *fail is set and et_errmsg() says why. */
static et_tensor *mask_tensor(const etd_mask *m, int64_t L, int64_t S, bool *fail)
{
    *fail = false;
    et_tensor *t = NULL;
    switch (m->kind) {
    case ETD_MASK_NONE:
        return NULL;
    case ETD_MASK_FLOAT:
        t = et_tensor_new(m->f, ET_SHAPE(m->rows, m->cols));
        break;
    case ETD_MASK_BOOL:
        t = et_tensor_new_int64(m->b, ET_SHAPE(m->rows, m->cols));
        break;
    case ETD_MASK_CAUSAL: {
        if (L < 0 || S < 0)
            return NULL;    /* a rank the library rejects with its own message */
        /* torch's square subsequent mask: key j > query i may not be attended */
        int64_t *b = malloc((size_t)(L * S > 0 ? L * S : 1) * sizeof *b);
        if (!b) {
            et_set_error(ET_ERR_NOMEM, "causal mask: out of memory");
            *fail = true;
            return NULL;
        }
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < S; j++)
                b[i * S + j] = j > i;
        t = et_tensor_new_int64(b, ET_SHAPE(L, S));
        free(b);
        break;
    }
    }
    *fail = t == NULL;
    return t;
}

/* A key padding mask from the model's token input, {"input_equals": pad}:
 * key positions whose token is pad are padding (torch: src == pad). */
static bool kpm_parse(etd_layer *l, const etd_obj *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o->o, key);
    l->kpm = false;
    if (!j || cJSON_IsNull(j))
        return true;
    static const char *const fields[] = {"input_equals", NULL};
    char path[200];
    snprintf(path, sizeof path, "%s.%s", o->path, key);
    if (!cJSON_IsObject(j))
        return etd_field_fail(o, key, "expected {\"input_equals\": PAD} (key positions whose "
                              "token in the model's input is PAD are padding), or null");
    if (!etd_check_keys(j, path, NULL, fields, NULL, o->e))
        return false;
    etd_obj k = {j, path, o->e};
    if (!etd_field_int(&k, "input_equals", true, 0, INT64_MIN, INT64_MAX, &l->kpm_pad))
        return false;
    l->kpm = true;
    return true;
}

/* ---- MultiheadAttention ---- */

const char *const etd_mha_fields[] = {"embed_dim", "num_heads", "dropout", "bias", "add_bias_kv",
                                      "add_zero_attn", "kdim", "vdim", "batch_first",
                                      "attn_mask", "key_padding_mask", NULL};
const char *const etd_mha_fwd_args[] = {"query", "key", "value", "key_padding_mask",
                                        "attn_mask", NULL};

/* [E, E] and [E, kdim], [E, vdim] projections or in_proj [3E, E], biases,
 * bias_k and bias_v, out_proj */
static int64_t mha_params(int64_t E, const et_mha_opts *o)
{
    int64_t kd = o->kdim ? o->kdim : E, vd = o->vdim ? o->vdim : E;
    return E * E + E * kd + E * vd + (o->bias ? 3 * E : 0) + (o->add_bias_kv ? 2 * E : 0) +
           E * E + (o->bias ? E : 0);
}

/* embed_dim / num_heads: positive, num_heads divides embed_dim */
static bool heads_parse(const etd_obj *o, const char *dkey, const char *hkey, int64_t *d,
                        int64_t *h)
{
    if (!etd_field_int(o, dkey, true, 0, 1, MAX_DIM, d) ||
        !etd_field_int(o, hkey, true, 0, 1, MAX_DIM, h))
        return false;
    if (*d % *h != 0)
        return etd_field_fail(o, hkey, "%s (%lld) must divide %s (%lld)", hkey, (long long)*h,
                              dkey, (long long)*d);
    return true;
}

static bool kvdim_parse(const etd_obj *o, const char *key, int64_t *out)
{
    bool none;
    if (!etd_field_int_or_null(o, key, 1, MAX_DIM, out, &none))
        return false;
    if (none)
        *out = 0;   /* torch's None: embed_dim */
    return true;
}

bool etd_mha_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    et_mha_opts *m = &l->u.mha.o;
    *m = ET_MHA_DEFAULTS;
    double p;
    int64_t E, H;
    if (!heads_parse(o, "embed_dim", "num_heads", &E, &H) ||
        !etd_field_num(o, "dropout", false, 0.0, 0.0, 1.0, &p) ||
        !etd_field_bool(o, "bias", true, &m->bias) ||
        !etd_field_bool(o, "add_bias_kv", false, &m->add_bias_kv) ||
        !etd_field_bool(o, "add_zero_attn", false, &m->add_zero_attn) ||
        !kvdim_parse(o, "kdim", &m->kdim) || !kvdim_parse(o, "vdim", &m->vdim) ||
        !etd_field_bool(o, "batch_first", false, &m->batch_first) ||
        !mask_parse(&l->mask, o, "attn_mask") || !kpm_parse(l, o, "key_padding_mask") ||
        !etd_flow_need(f, o, "embed_dim", E) || !etd_flow_params(f, o, mha_params(E, m)))
        return false;
    m->dropout = (float)p;
    l->u.mha.embed_dim = E;
    l->u.mha.num_heads = H;
    etd_flow_give(f, E, "the embed_dim of the previous MultiheadAttention");
    return true;
}

et_module *etd_mha_build(const etd_layer *l, et_generator *g)
{
    return et_multihead_attention_new(l->u.mha.embed_dim, l->u.mha.num_heads, l->u.mha.o, g);
}

et_tensor *etd_mha_forward(const etd_layer *l, et_module *m, et_tensor *const *in)
{
    et_tensor *q = in[0], *k = in[1] ? in[1] : q, *v = in[2] ? in[2] : k;
    et_tensor *mask = in[4];
    bool bf = l->u.mha.o.batch_first, fail = false;
    if (!mask)
        mask = mask_tensor(&l->mask, seq_len(q, bf), seq_len(k, bf), &fail);
    if (fail)
        return NULL;
    return et_multihead_attention_forward(m, q, k, v, in[3], false, mask, true, NULL);
}

/* ---- TransformerEncoderLayer ---- */

const char *const etd_enc_layer_fields[] = {"d_model", "nhead", "dim_feedforward", "dropout",
                                            "activation", "layer_norm_eps", "batch_first",
                                            "norm_first", "src_mask", "src_key_padding_mask",
                                            NULL};
const char *const etd_enc_layer_fwd_args[] = {"src", "src_mask", "src_key_padding_mask", NULL};

bool etd_enc_layer_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    static const char *const acts[] = {"relu", "gelu", NULL};   /* by et_transformer_activation */
    et_encoder_layer_opts *e = &l->u.enc_layer.o;
    *e = ET_ENCODER_LAYER_DEFAULTS;
    int64_t d, h;
    double p;
    int act;
    if (!heads_parse(o, "d_model", "nhead", &d, &h) ||
        !etd_field_int(o, "dim_feedforward", false, 2048, 1, MAX_DIM, &e->dim_feedforward) ||
        !etd_field_num(o, "dropout", false, 0.1, 0.0, 1.0, &p) ||
        !etd_field_choice(o, "activation", acts, 0, &act) ||
        !etd_field_num(o, "layer_norm_eps", false, 1e-5, DBL_MIN, FLT_MAX, &e->layer_norm_eps) ||
        !etd_field_bool(o, "batch_first", false, &e->batch_first) ||
        !etd_field_bool(o, "norm_first", false, &e->norm_first) ||
        !mask_parse(&l->mask, o, "src_mask") || !kpm_parse(l, o, "src_key_padding_mask") ||
        !etd_flow_need(f, o, "d_model", d))
        return false;
    e->dropout = (float)p;
    e->activation = act == 1 ? ET_ACT_GELU : ET_ACT_RELU;
    /* self_attn, linear1 [ff, d] + ff, linear2 [d, ff] + d, norm1 and norm2 */
    et_mha_opts mo = ET_MHA_DEFAULTS;
    int64_t ff = e->dim_feedforward;
    if (!etd_flow_params(f, o, mha_params(d, &mo) + 2 * d * ff + ff + d + 4 * d))
        return false;
    l->u.enc_layer.d_model = d;
    l->u.enc_layer.nhead = h;
    etd_flow_give(f, d, "the d_model of the previous TransformerEncoderLayer");
    return true;
}

et_module *etd_enc_layer_build(const etd_layer *l, et_generator *g)
{
    return et_transformer_encoder_layer_new(l->u.enc_layer.d_model, l->u.enc_layer.nhead,
                                            l->u.enc_layer.o, g);
}

et_tensor *etd_enc_layer_forward(const etd_layer *l, et_module *m, et_tensor *const *in)
{
    et_tensor *mask = in[1];
    bool fail = false;
    if (!mask) {
        int64_t L = seq_len(in[0], l->u.enc_layer.o.batch_first);
        mask = mask_tensor(&l->mask, L, L, &fail);
    }
    return fail ? NULL : et_transformer_encoder_layer_forward(m, in[0], mask, in[2]);
}

/* ---- TransformerEncoder ---- */

const char *const etd_encoder_fields[] = {"encoder_layer", "num_layers", "norm",
                                          "enable_nested_tensor", "mask_check", "mask",
                                          "src_key_padding_mask", NULL};
const char *const etd_encoder_fwd_args[] = {"src", "mask", "src_key_padding_mask", NULL};

bool etd_encoder_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t n;
    /* torch's eval fast path switch and its mask check: the regular path is always taken here */
    bool nested, check;
    if (!etd_field_int(o, "num_layers", true, 0, 1, 1000, &n) ||
        !etd_field_bool(o, "enable_nested_tensor", true, &nested) ||
        !etd_field_bool(o, "mask_check", true, &check) ||
        !mask_parse(&l->mask, o, "mask") || !kpm_parse(l, o, "src_key_padding_mask"))
        return false;
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(o->o, "encoder_layer");
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(o->o, "norm");
    if (!jl)
        return etd_field_fail(o, "encoder_layer", "required field is missing");
    if (!(l->kids = calloc(2, sizeof *l->kids)))
        return etd_field_fail(o, NULL, "out of memory");
    l->nkids = 2;
    char path[160];
    snprintf(path, sizeof path, "%s.encoder_layer", o->path);
    int64_t before = f->params;
    if (!etd_spec_parse_layer(jl, path, &l->kids[0], f, o->e))
        return false;
    if (strcmp(l->kids[0].type->name, "TransformerEncoderLayer") != 0)
        return etd_field_fail(o, "encoder_layer", "expected a TransformerEncoderLayer, not %s",
                              l->kids[0].type->name);
    /* torch's encoder hands its own mask to every layer */
    if (l->kids[0].mask.kind != ETD_MASK_NONE)
        return etd_field_fail(o, "encoder_layer", "src_mask is not used inside a "
                              "TransformerEncoder: give the encoder's \"mask\" instead");
    if (l->kids[0].kpm)
        return etd_field_fail(o, "encoder_layer", "src_key_padding_mask is not used inside a "
                              "TransformerEncoder: give the encoder's instead");
    /* torch deep-copies the layer num_layers times */
    if (!etd_flow_params(f, o, (f->params - before) * (n - 1)))
        return false;
    if (jn && !cJSON_IsNull(jn)) {
        snprintf(path, sizeof path, "%s.norm", o->path);
        if (!etd_spec_parse_layer(jn, path, &l->kids[1], f, o->e))
            return false;
    }
    l->u.encoder.num_layers = (int)n;
    return true;
}

et_module *etd_encoder_build(const etd_layer *l, et_generator *g)
{
    et_module *layer = l->kids[0].type->build(&l->kids[0], g);
    if (!layer)
        return NULL;
    et_module *norm = NULL;
    if (l->kids[1].type && !(norm = l->kids[1].type->build(&l->kids[1], g))) {
        et_module_free(layer);
        return NULL;
    }
    return et_transformer_encoder_new(layer, l->u.encoder.num_layers, norm);
}

et_tensor *etd_encoder_forward(const etd_layer *l, et_module *m, et_tensor *const *in)
{
    et_tensor *mask = in[1];
    bool fail = false;
    if (!mask) {
        int64_t L = seq_len(in[0], l->kids[0].u.enc_layer.o.batch_first);
        mask = mask_tensor(&l->mask, L, L, &fail);
    }
    return fail ? NULL : et_transformer_encoder_forward(m, in[0], mask, in[2]);
}
