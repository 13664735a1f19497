/*
 * onnx_import_internal.h - what onnx_import.c (the file, chains of nodes)
 * and onnx_import_graph.c (graphs with branches, as graph models) share.
 */
#ifndef EASYTORCHD_ONNX_IMPORT_INTERNAL_H
#define EASYTORCHD_ONNX_IMPORT_INTERNAL_H

#include "onnx.pb-c.h"
#include "server/models/model_internal.h"

typedef struct imp {
    Onnx__GraphProto *g;
    cJSON *layers;
    et_tensor_dict *state;
    int rank;                 /* of the value flowing, 0: unknown */
    cJSON *nbt;               /* our exporter's num_batches_tracked counters, or NULL */
    etd_err *e;
    /* torch writes one initializer for equal ones (two LayerNorms' ones) and
     * the others as Identity nodes of it: those names, each its own copy */
    struct oi_alias {
        const char *name;
        const Onnx__TensorProto *t;
        bool transposed;      /* a Transpose of a 2-D initializer (the daemon's linear export) */
    } *alias;
    size_t nalias, calias;
} imp;

/* protobuf-c leaves an absent optional string NULL: compare through this */
static inline const char *oi_s(const char *s)
{
    return s ? s : "";
}
const Onnx__TensorProto *oi_initializer(const imp *x, const char *name);
int64_t oi_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
etd_rc oi_node_fail(imp *x, const Onnx__NodeProto *n, const char *fmt, const char *arg);
/* The node at *i (and the Add after a MatMul: *i moves to it) as layers
 * appended to x->layers, their state "<k>.<name>" in x->state. */
etd_rc oi_one_node(imp *x, Onnx__NodeProto **nodes, size_t nn, size_t *i);
/* onnx_import_graph.c: x->g as a graph model ("inputs", "nodes",
 * "outputs") with spec_in's other fields. */
etd_rc oi_import_graph(imp *x, etd_registry *r, const cJSON *spec_in, etd_model **out);

/* A float32 initializer as a tensor (a new reference), transposed if 2-D
 * and asked; NULL + x->e naming node n if it is missing or not float32 data. */
et_tensor *oi_tensor_of(imp *x, const Onnx__NodeProto *n, const char *name, bool transpose);

/* ---- what onnx_import_graph.c and onnx_import_ops.c share ---- */

#define OI_NAMELEN 64
#define OI_MAX_CONST 4096     /* elements of a constant kept for folding */

/* A dimension k * batch^p (the file's symbolic batch dimension; p < 0: unknown). */
typedef struct oi_dim {
    int64_t k;
    int p;
} oi_dim;

typedef struct oi_shape {
    int nd;                   /* < 0: unknown */
    oi_dim d[ET_MAX_DIMS];
} oi_shape;

typedef struct oi_val {       /* a value computed by the graph: an input or a spec node */
    const char *onnx;
    char spec[OI_NAMELEN];    /* the spec's name of it */
    int rank;                 /* 0: unknown */
    oi_shape s;
    bool boolish;             /* a bool of the file's: nonzero is true, the numbers any */
} oi_val;

typedef struct oi_const {     /* a constant: a Constant node, an initializer, or folded */
    const char *onnx;
    bool is_int;              /* iv (int64, bool, int32: symbolic for shape arithmetic) or fv */
    int nd;
    int64_t dims[ET_MAX_DIMS];
    int64_t n;
    oi_dim *iv;
    float *fv;
    /* uniform: every element fv[0] / iv[0] (n 1), of shape sd[0..nd) that may
     * follow the batch (ConstantOfShape of a computed shape); taken only as
     * a number where the shape cannot grow the result (Where), cget skips it */
    bool sym;
    oi_dim sd[ET_MAX_DIMS];
} oi_const;

typedef struct oi_graph {
    imp *x;
    oi_val *v;
    size_t nv, cv;
    char (*taken)[OI_NAMELEN]; /* spec names in use */
    size_t nt, ct;
    oi_const **c;
    size_t nc, cc;
    char batch[OI_NAMELEN];   /* the dim_param of the batch dimension ("" if none) */
    cJSON *nodes;             /* the spec's "nodes" */
    cJSON *modules;           /* the spec's "modules" (attention's parameters, torch's names) */
    struct oi_attn {          /* a MultiheadAttention whose in_proj was seen */
        char prefix[OI_NAMELEN];
        const char *v;        /* the in-projection's output value */
        int64_t E;
        bool heads, out;      /* num_heads found, out_proj seen */
    } attn[8];
    int nattn;
} oi_graph;

/* onnx_import_graph.c */
oi_val *oi_find(oi_graph *G, const char *onnx);
oi_val *oi_add_val(oi_graph *G, const char *onnx, const char *spec, const oi_shape *s);
bool oi_take(oi_graph *G, const char *want, char *out);
/* The spec name of the node computing out_value of ONNX node i (a graph
 * output's name, its weights' prefix, or n<i>). */
bool oi_node_name(oi_graph *G, const Onnx__NodeProto *n, const char *out_value, size_t i,
                  char *name);

/* onnx_import_ops.c: node i, when it is a constant computation (folded,
 * no spec node) or one of the ops mapped onto graph op nodes (Transpose,
 * Softmax, Reduce*, Split, Slice, Squeeze, Unsqueeze, elementwise math,
 * Reshape, Gather as select, Concat, Cast); *handled false for the rest
 * (modules, left to oi_one_node). */
etd_rc oi_ops_node(oi_graph *G, const Onnx__NodeProto *n, size_t i, bool *handled);
/* A value's shape from the file's type (value_info, input, output), or unknown. */
void oi_shape_of_info(const oi_graph *G, const Onnx__ValueInfoProto *v, oi_shape *out);
void oi_shape_from_file(const oi_graph *G, const char *value, oi_shape *out);
/* The shape a module node (layers as oi_one_node made them) gives for in. */
void oi_module_shape(const cJSON *layers, const oi_shape *in, oi_shape *out);
void oi_consts_free(oi_graph *G);
/* Is name a constant (folded, a Constant node's, an int initializer, ...)? */
bool oi_is_const(oi_graph *G, const char *name);
/* onnx_import_attn.c: node *i, when it is nn.MultiheadAttention's in_proj
 * (MatMul + Add of "<p>.in_proj_bias") or out_proj (Gemm of
 * "<p>.out_proj.weight") -- a linear op on attr nodes of a module <p> in
 * "modules" holding torch's parameters (<p>.in_proj_weight, ...); *i moves
 * past the Add.  *handled false for the rest.  oi_attn_heads: a Reshape of a
 * slice of an in_projection gives the module its num_heads. */
etd_rc oi_attn_param(oi_graph *G, size_t *i, bool *handled);
void oi_attn_heads(oi_graph *G, const Onnx__NodeProto *n);
/* The ops that only graphs import (a file using one is not a chain). */
bool oi_graph_only_op(const char *op);

#endif
