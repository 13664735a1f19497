/*
 * spec_layers.h - the parse and build functions of the layer types defined
 * outside spec_layers.c, for its table (internal to the models layer).
 * spec_layers_norm.c: BatchNorm1d/2d, LayerNorm, GroupNorm, Embedding,
 * EmbeddingBag; spec_layers_conv.c: convolutions, pools, padding layers,
 * Unflatten, Dropout2d; spec_layers_attn.c: MultiheadAttention,
 * TransformerEncoderLayer, TransformerEncoder (which also have forward
 * hooks).  Field lists are NULL-terminated, as in spec.h.
 */
#ifndef EASYTORCHD_SPEC_LAYERS_H
#define EASYTORCHD_SPEC_LAYERS_H

#include "server/models/spec.h"

#define ETD_LAYER_FNS(x)                                                        \
    extern const char *const x##_fields[];                                      \
    bool x##_parse(etd_layer *l, const etd_obj *o, etd_flow *f);                \
    et_module *x##_build(const etd_layer *l, et_generator *g)

/* spec_layers_norm.c */
ETD_LAYER_FNS(etd_batch_norm1d);
ETD_LAYER_FNS(etd_batch_norm2d);
ETD_LAYER_FNS(etd_layer_norm);
ETD_LAYER_FNS(etd_group_norm);
ETD_LAYER_FNS(etd_embedding);
ETD_LAYER_FNS(etd_embedding_bag);

/* spec_layers_conv.c */
ETD_LAYER_FNS(etd_conv1d);
ETD_LAYER_FNS(etd_conv2d);
ETD_LAYER_FNS(etd_conv_transpose2d);
ETD_LAYER_FNS(etd_max_pool1d);
ETD_LAYER_FNS(etd_max_pool2d);
ETD_LAYER_FNS(etd_avg_pool1d);
ETD_LAYER_FNS(etd_avg_pool2d);
ETD_LAYER_FNS(etd_adaptive_avg_pool1d);
ETD_LAYER_FNS(etd_adaptive_avg_pool2d);
ETD_LAYER_FNS(etd_adaptive_max_pool1d);
ETD_LAYER_FNS(etd_adaptive_max_pool2d);
ETD_LAYER_FNS(etd_zero_pad2d);
ETD_LAYER_FNS(etd_constant_pad1d);
ETD_LAYER_FNS(etd_constant_pad2d);
ETD_LAYER_FNS(etd_reflection_pad1d);
ETD_LAYER_FNS(etd_reflection_pad2d);
ETD_LAYER_FNS(etd_replication_pad1d);
ETD_LAYER_FNS(etd_replication_pad2d);
ETD_LAYER_FNS(etd_unflatten);
ETD_LAYER_FNS(etd_dropout2d);

/* spec_layers_attn.c */
#define ETD_LAYER_FWD(x)                                                        \
    ETD_LAYER_FNS(x);                                                           \
    extern const char *const x##_fwd_args[];                                    \
    et_tensor *x##_forward(const etd_layer *l, et_module *m, et_tensor *const *in)
ETD_LAYER_FWD(etd_mha);
ETD_LAYER_FWD(etd_enc_layer);
ETD_LAYER_FWD(etd_encoder);

#endif
