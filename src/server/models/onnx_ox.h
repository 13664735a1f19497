/*
 * onnx_ox.h - the building blocks of the ONNX export (internal to
 * src/server/models; onnx_ox.c): a graph under construction (ox) whose
 * nodes, initializers and every allocation it owns are freed together, and
 * helpers that add attributes, nodes and initializers named after the spec
 * layer being written.  onnx_export.c writes the layers and the model,
 * onnx_export_attn.c the attention layers.
 */
#ifndef EASYTORCHD_ONNX_OX_H
#define EASYTORCHD_ONNX_OX_H

#include "onnx.pb-c.h"
#include "server/models/model_internal.h"
#include "server/models/onnx.h"

#define OPSET 17

typedef struct ox {
    void **owned;
    size_t nowned, cowned;
    Onnx__NodeProto **nodes;
    size_t nn, cn;
    Onnx__TensorProto **inits;
    size_t ni, ci;
    bool oom;
    etd_model *m;
    const etd_layer *l;         /* the layer being written */
    char pp[160];               /* its state_dict prefix ("3", "blocks.0.1") */
    char cp[192];               /* prefix of the constants and nodes it writes ("layers.3") */
    char where[256];            /* for messages: "layers[3] (Linear)" */
} ox;

/* What is written next: layer l, its state under pp, its constants and
 * nodes under cp, messages naming `where` (printf-style). */
void ox_at(ox *x, const etd_layer *l, const char *pp, const char *cp, const char *where, ...);
/* "export: <where>: <what> has no ONNX form here" (ETD_EINVAL). */
etd_rc ox_unsupported(ox *x, const char *what, etd_err *e);

/* A tensor shape as the probe forward saw it (batch of one). */
typedef struct shape {
    int nd;
    int64_t d[ET_MAX_DIMS];
} shape;

void *ox_own(ox *x, void *p);                /* x frees p (NULL: x->oom) */
void *ox_alloc(ox *x, size_t n);             /* zeroed, owned */
char *ox_str(ox *x, const char *fmt, ...);   /* owned, up to 255 bytes */
bool ox_push(ox *x, void ***arr, size_t *n, size_t *cap, void *v);
Onnx__AttributeProto *ox_attr(ox *x, const char *name, Onnx__AttributeProto__AttributeType type);
Onnx__AttributeProto *ox_attr_i(ox *x, const char *name, int64_t v);
Onnx__AttributeProto *ox_attr_f(ox *x, const char *name, double v);
Onnx__AttributeProto *ox_attr_ints(ox *x, const char *name, const int64_t *v, int n);
Onnx__AttributeProto *ox_attr_s(ox *x, const char *name, const char *v);
/* A node op(in...) -> a new value named after the layer; returns its name.
 * in and attrs are NULL-terminated lists ("" is an omitted optional input). */
const char *ox_node(ox *x, const char *op, const char *const *in,
                    Onnx__AttributeProto *const *attrs);
#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})
#define AT(...) ((Onnx__AttributeProto *const[]){__VA_ARGS__, NULL})
/* Initializers: data copied (little-endian raw_data), named as given / after the layer. */
const char *ox_init(ox *x, const char *name, int dtype, const void *data, size_t esize,
                    const int64_t *dims, int nd);
const char *ox_init_f(ox *x, const char *what, const float *v, const int64_t *dims, int nd);
const char *ox_init_i64(ox *x, const char *what, const int64_t *v, int64_t n);
const char *ox_scalar_f(ox *x, const char *what, float v);
const char *ox_const_f(ox *x, float v);    /* a Constant node of a float32 scalar */
/* The layer's state tensor `what` ("weight", "self_attn.in_proj_weight"),
 * optionally reshaped to dims, as an initializer named as in the state_dict. */
const char *ox_param(ox *x, const char *what, const int64_t *dims, int nd);
/* The model's state tensor by its full state_dict name (once per file). */
const char *ox_state(ox *x, const char *key, const int64_t *dims, int nd);
/* A node with nout outputs (their names; NULL on failure). */
const char *const *ox_node_n(ox *x, const char *op, const char *const *in,
                             Onnx__AttributeProto *const *attrs, int nout);
const char *ox_fill(ox *x, const char *what, int64_t n, float v);  /* n copies of v */
/* Reshape cur to out[] with the batch dimension symbolic (0: copied from
 * the input; -1 where the batch was merged). */
const char *ox_reshape_to(ox *x, const char *cur, const int64_t *out, int nd, bool merged);

/* That JSON of net's counters (owned by x), or NULL when it has none. */
char *ox_num_batches_tracked(ox *x, et_module *net);

/* onnx_export.c: one layer (x at it) on *cur of shape in (out after it). */
etd_rc ox_export_layer(ox *x, const etd_layer *l, const shape *in, const shape *out,
                       const char **cur, etd_err *e);
/* onnx_export.c: the model proto of x's nodes and initializers, graph
 * inputs / outputs vin[0..nin) / vout[0..nout), packed into *buf. */
Onnx__ValueInfoProto *ox_value_info(ox *x, const char *name, int elem, const shape *s);
etd_rc ox_pack(ox *x, Onnx__ValueInfoProto **vin, size_t nin, Onnx__ValueInfoProto **vout,
               size_t nout, uint8_t **buf, size_t *len, etd_err *e);
void ox_free(ox *x);
/* onnx_export_graph.c: a graph model ("nodes"), the model's lock held. */
etd_rc ox_export_graph(etd_model *m, const int64_t *in_dims, int in_nd, uint8_t **buf,
                       size_t *len, etd_err *e);

/* onnx_export_bag.c: EmbeddingBag (x at the layer) on idx of shape in
 * ([B, L]; [N] with offsets, a graph's second argument, else NULL; idx_int64:
 * idx needs no Cast) -> *cur [B, E]. */
etd_rc ox_export_embedding_bag(ox *x, const etd_layer *l, const shape *in, const char *idx,
                               bool idx_int64, const char *offsets, const char **cur, etd_err *e);

/* onnx_export_attn.c: MultiheadAttention, TransformerEncoderLayer and
 * TransformerEncoder (eval mode, self-attention, the spec's fixed mask or
 * a graph call's mask values am = src_mask / attn_mask and kpm =
 * src_key_padding_mask, NULL for none). */
typedef struct ox_mask_in {  /* a mask passed as a value: its ONNX name (NULL: none) */
    const char *name;
    int nd;
    bool is_bool;           /* int64: nonzero is masked; else float, added */
} ox_mask_in;
etd_rc ox_export_attention(ox *x, const etd_layer *l, const shape *in, const shape *out,
                           const ox_mask_in *am, const ox_mask_in *kpm, const char **cur,
                           etd_err *e);
/* A graph's MultiheadAttention node: forward(query, key, value) of rank nd
 * with need_weights=True -> *out (attn_output) and *weights (averaged over
 * the heads), x at the layer. */
etd_rc ox_export_mha_node(ox *x, const etd_layer *l, int nd, const char *const qkv[3],
                          const char **out, const char **weights, etd_err *e);

#endif
