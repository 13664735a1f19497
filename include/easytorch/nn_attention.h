/*
 * nn_attention.h - torch.nn.MultiheadAttention, TransformerEncoderLayer and
 * TransformerEncoder (torch 1.13 semantics, parameter names and init).
 *
 * Masks follow nn.MultiheadAttention: a float32 mask is ADDED to the
 * attention scores; an int64 mask stands for torch's bool mask, nonzero =
 * True = "may not attend" (attn_mask) / "padding" (key_padding_mask).
 * (F.scaled_dot_product_attention in ops.h reads bool masks the other way
 * round, as torch does.)  Mixing a bool and a float mask in one call is
 * ET_ERR_ARG: torch 1.13 cannot merge them either.  A query whose keys are
 * all masked gives NaN, as torch.
 *
 * Modules are driven by et_module_forward (self-attention / the encoder
 * without masks) or by the *_forward functions below; results are new
 * references (or NULL + et_errmsg()), as every op's.
 */
#ifndef EASYTORCH_NN_ATTENTION_H
#define EASYTORCH_NN_ATTENTION_H

#include "easytorch/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float dropout;        /* [0] on the attention weights, training mode only */
    bool bias;            /* [true] in_proj_bias [3E] and out_proj.bias [E] */
    bool add_bias_kv;     /* [false] bias_k, bias_v [1, 1, E] appended to key / value */
    bool add_zero_attn;   /* [false] a zero key and value appended after the projections */
    int64_t kdim, vdim;   /* [0 = embed_dim] key / value feature sizes; when either differs
                             from embed_dim the projections are q_proj_weight [E, E],
                             k_proj_weight [E, kdim], v_proj_weight [E, vdim] instead of
                             in_proj_weight [3E, E] */
    bool batch_first;     /* [false] inputs [L, N, E]; true: [N, L, E] */
} et_mha_opts;
#define ET_MHA_DEFAULTS ((et_mha_opts){.dropout = 0.0f, .bias = true})

/* nn.MultiheadAttention(embed_dim, num_heads, ...).  state_dict, in torch's
 * order: in_proj_weight (or q_proj_weight, k_proj_weight, v_proj_weight),
 * in_proj_bias, bias_k, bias_v, out_proj.weight, out_proj.bias.  Init as
 * torch: xavier_uniform_ projections, zero biases, out_proj.weight
 * U(+-1/sqrt(E)), bias_k/bias_v xavier_normal_; drawn from g (default
 * generator if NULL; borrowed, also for dropout: it must outlive the
 * module).  embed_dim must be divisible by num_heads. */
et_module *et_multihead_attention_new(int64_t embed_dim, int64_t num_heads, et_mha_opts o,
                                      et_generator *g);

/* MultiheadAttention.forward(query, key, value, key_padding_mask,
 * need_weights, attn_mask, average_attn_weights).  query [L, N, E] ([N, L,
 * E] batch_first, [L, E] unbatched), key [S, N, kdim], value [S, N, vdim];
 * key_padding_mask [N, S] ([S] unbatched) or NULL; attn_mask [L, S] or
 * [N * num_heads, L, S] or NULL.  Returns attn_output shaped like query (E
 * features).  need_weights: *attn_weights (must then be non-NULL) receives
 * the weights [N, L, S] averaged over heads (average_attn_weights) or [N,
 * num_heads, L, S] (unbatched: without N), after dropout as torch; it
 * carries gradient.  Otherwise *attn_weights (if given) is set to NULL. */
et_tensor *et_multihead_attention_forward(et_module *m, et_tensor *query, et_tensor *key,
                                          et_tensor *value, et_tensor *key_padding_mask,
                                          bool need_weights, et_tensor *attn_mask,
                                          bool average_attn_weights, et_tensor **attn_weights);

typedef enum { ET_ACT_RELU = 0, ET_ACT_GELU = 1 } et_transformer_activation;

typedef struct {
    int64_t dim_feedforward;                /* [2048] */
    float dropout;                          /* [0.1] */
    et_transformer_activation activation;   /* [relu] relu or gelu (exact erf form) */
    double layer_norm_eps;                  /* [1e-5] */
    bool batch_first;                       /* [false] */
    bool norm_first;                        /* [false] pre-norm when true */
} et_encoder_layer_opts;
#define ET_ENCODER_LAYER_DEFAULTS \
    ((et_encoder_layer_opts){.dim_feedforward = 2048, .dropout = 0.1f, \
                             .activation = ET_ACT_RELU, .layer_norm_eps = 1e-5})
/* "relu" / "gelu" -> *out; ET_ERR_ARG otherwise (torch's message). */
et_status et_transformer_activation_parse(const char *name, et_transformer_activation *out);

/* nn.TransformerEncoderLayer(d_model, nhead, ...).  Children in torch's
 * order: self_attn (MultiheadAttention), linear1, dropout, linear2, norm1,
 * norm2, dropout1, dropout2; state_dict names self_attn.in_proj_weight,
 * ..., linear1.weight, ..., norm2.bias.  g as for MultiheadAttention. */
et_module *et_transformer_encoder_layer_new(int64_t d_model, int64_t nhead,
                                            et_encoder_layer_opts o, et_generator *g);
/* forward(src, src_mask, src_key_padding_mask); masks as MultiheadAttention's
 * attn_mask / key_padding_mask (NULL allowed). */
et_tensor *et_transformer_encoder_layer_forward(et_module *m, et_tensor *src,
                                                et_tensor *src_mask,
                                                et_tensor *src_key_padding_mask);

/* nn.TransformerEncoder(encoder_layer, num_layers, norm): takes ownership
 * of encoder_layer (a TransformerEncoderLayer) and of norm (any module, or
 * NULL: no final norm), also on failure.  As torch's deep copies, all
 * num_layers layers start with encoder_layer's parameters; they are
 * "layers.0." ... "layers.<n-1>." in the state_dict, then "norm.". */
et_module *et_transformer_encoder_new(et_module *encoder_layer, int num_layers,
                                      et_module *norm);
/* forward(src, mask, src_key_padding_mask).  (torch 1.13 in eval mode
 * under no_grad may take a nested-tensor fast path that writes zeros at
 * padded positions; this always computes the regular path, which is what
 * torch computes in training and whenever gradients are recorded.) */
et_tensor *et_transformer_encoder_forward(et_module *m, et_tensor *src, et_tensor *mask,
                                          et_tensor *src_key_padding_mask);

#ifdef __cplusplus
}
#endif
#endif
