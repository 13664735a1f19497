/*
 * nn_graph.h - graph modules: a torch.fx GraphModule of torch.nn modules.
 *
 * A graph module has named inputs (fx "placeholder"), named submodules
 * (its children, as a torch.nn.Module's attributes: state_dict names
 * "<child>.<param>", nested ones "<child>.0.weight"), nodes and named
 * outputs.  A node is one of
 *   - a module call (fx "call_module"): target is a submodule path
 *     ("fc1", "blocks.0"); several nodes may call one module (shared weights);
 *   - a functional op (fx "call_function"): et_graph_op below, extra
 *     arguments in et_graph_op_args;
 *   - an attribute (fx "get_attr"): a parameter or buffer of the graph by its
 *     state_dict name ("emb.weight"), e.g. for a tied output projection.
 * Node and input names share one namespace; a node's arguments name inputs
 * or earlier nodes, so a graph is acyclic and in execution order by
 * construction (fx's invariant); ordering a free-form description is the
 * caller's job (easytorchd's spec parser sorts and reports cycles).
 * chunk and split nodes yield tuples; a getitem node picks one piece (on a
 * tensor, getitem with a dim is x.select(dim, index)).  Module calls take
 * one argument, except MultiheadAttention (query[, key[, value]]: as torch's
 * forward with need_weights=True, a tuple (attn_output, attn_weights averaged
 * over heads); key defaults to query, value to key), TransformerEncoderLayer /
 * TransformerEncoder (src, mask, src_key_padding_mask) and EmbeddingBag
 * (input, offsets).
 *
 * Builders return ET_OK or an error naming the node and field (ET_ERR_ARG:
 * unknown or duplicate name, wrong arity, a tuple used as a tensor...);
 * a failed call leaves the graph as it was.  Forward errors name the node:
 * "node 'sum' (add): ...".  With one input and one output, et_module_forward
 * runs the graph too, so a graph goes wherever a module goes.
 */
#ifndef EASYTORCH_NN_GRAPH_H
#define EASYTORCH_NN_GRAPH_H

#include "easytorch/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum et_graph_op {
    ET_GOP_ADD = 0, ET_GOP_SUB, ET_GOP_MUL, ET_GOP_DIV,   /* broadcasting, 2 args */
    ET_GOP_MATMUL,                                        /* torch.matmul, 2 args */
    ET_GOP_CAT, ET_GOP_STACK,                             /* 1+ args, dim */
    ET_GOP_RESHAPE,                                       /* ints = shape (one -1) */
    ET_GOP_FLATTEN,                                       /* dim = start, dim1 = end */
    ET_GOP_TRANSPOSE,                                     /* dim, dim1 */
    ET_GOP_PERMUTE,                                       /* ints = dims */
    ET_GOP_SUM, ET_GOP_MEAN,                              /* ints = dims (none: all), keepdim */
    ET_GOP_SOFTMAX, ET_GOP_LOG_SOFTMAX,                   /* dim */
    ET_GOP_GETITEM,                                       /* index; on a tensor: select(dim, index) */
    ET_GOP_CHUNK,                                         /* index = chunks, dim: a tuple */
    ET_GOP_SPLIT,                                         /* index = split_size, dim: a tuple */
    ET_GOP_COSINE_SIMILARITY,                             /* F.cosine_similarity: dim, eps */
    ET_GOP_LINEAR,                                        /* F.linear(x, weight[, bias]) */
    ET_GOP_NEG, ET_GOP_EXP, ET_GOP_LOG, ET_GOP_SQRT, ET_GOP_ERF, /* elementwise, 1 arg */
    ET_GOP_POW,                                           /* torch.pow, 2 args */
    ET_GOP_UNSQUEEZE, ET_GOP_SQUEEZE,                     /* dim (squeeze: no-op unless 1) */
    ET_GOP_SLICE,                                         /* x[start:end:step] along dim */
    ET_GOP_WHERE,                                         /* torch.where(cond, x, y), 3 args */
    ET_GOP_MASKED_FILL,                                   /* x.masked_fill(mask, value), 2 args */
    ET_GOP_LOGICAL_NOT, ET_GOP_LOGICAL_AND, ET_GOP_LOGICAL_OR, /* 1.0 / 0.0, nonzero true */
    ET_GOP_EXPAND,                                        /* x.expand(ints), -1 keeps a size */
    ET_GOP_COUNT
} et_graph_op;

/* torch's function name ("add", "cosine_similarity"), or NULL. */
const char *et_graph_op_name(et_graph_op op);
/* By name; -1 if unknown. */
int et_graph_op_from_name(const char *name);
/* Arity: exact number of tensor arguments, or -1 for "1 or more" (cat,
 * stack), -2 for "2 or 3" (linear); one less with a scalar operand. */
int et_graph_op_arity(et_graph_op op);

typedef struct et_graph_op_args {
    int dim, dim1;            /* see et_graph_op */
    bool has_dim;             /* getitem: a dim was given (select) */
    int64_t ints[8];          /* shape / dims */
    int nints;
    bool keepdim;
    int64_t index;            /* getitem index; chunk's chunks; split's split_size */
    double eps;               /* cosine_similarity [1e-8] */
    int64_t start, end, step; /* slice: Python's clamped slice [0, ET_END, 1], step > 0 */
    /* add, sub, mul, div, pow: one operand is the number `scalar` (torch.fx's
     * add(x, 2.0)), at argument position scalar_pos (0: scalar op x, 1: x op
     * scalar); the node then takes the other operand as its one argument */
    bool has_scalar;
    int scalar_pos;
    double scalar;
    /* masked_fill: the value written where the mask is nonzero (any float,
     * -inf too); its x may be the number `scalar` (scalar_pos 0): a tensor of
     * the mask's shape, torch.full_like(mask, scalar).masked_fill(mask, value) */
    double value;
} et_graph_op_args;
#define ET_GRAPH_OP_ARGS_DEFAULTS \
    ((et_graph_op_args){.dim = 0, .dim1 = -1, .eps = 1e-8, .end = INT64_MAX, .step = 1})

/* A new, empty graph module ("GraphModule"), in training mode. */
et_module *et_graph_new(void);
/* A named input (placeholder), in forward's argument order. */
et_status et_graph_add_input(et_module *g, const char *name);
/* Register a submodule (owned from now on, also on failure, as
 * et_sequential_append; build it completely first).  Its state joins the
 * graph's state_dict as "<name>.<entry>", in registration order. */
et_status et_graph_add_module(et_module *g, const char *name, et_module *m);
/* A node calling the submodule at target (dotted path) on args. */
et_status et_graph_call_module(et_module *g, const char *node, const char *target,
                               const char *const *args, int nargs);
/* A node applying op to args (a NULL a: ET_GRAPH_OP_ARGS_DEFAULTS). */
et_status et_graph_call_op(et_module *g, const char *node, et_graph_op op,
                           const char *const *args, int nargs, const et_graph_op_args *a);
/* A node that is the graph's parameter or buffer named state_name. */
et_status et_graph_get_attr(et_module *g, const char *node, const char *state_name);
/* A named output: the value of node (or of an input). */
et_status et_graph_add_output(et_module *g, const char *name, const char *node);

/* Run the graph: inputs in et_graph_add_input order; outputs[0..noutputs)
 * receive new references (the caller's pool's when one is open) in
 * et_graph_add_output order.  ninputs / noutputs must be the graph's.  On an
 * error nothing is written and nothing leaks. */
et_status et_graph_forward(et_module *g, et_tensor *const *inputs, int ninputs,
                           et_tensor **outputs, int noutputs);

/* A forward (no outputs kept) that calls visit after every node i (in
 * et_graph_node order) with its value, or -- for a node yielding a tuple
 * (chunk, split, MultiheadAttention) -- value NULL and its npieces pieces.
 * The tensors are borrowed for the call (the ONNX export reads shapes). */
typedef void (*et_graph_visit)(void *ctx, int node, const et_tensor *value,
                               et_tensor *const *pieces, int npieces);
et_status et_graph_forward_visit(et_module *g, et_tensor *const *inputs, int ninputs,
                                 et_graph_visit visit, void *ctx);

/* Introspection (ONNX export, the daemon): counts, names, nodes. */
bool et_is_graph(const et_module *m);
int et_graph_num_inputs(const et_module *g);
const char *et_graph_input_name(const et_module *g, int i);
int et_graph_num_outputs(const et_module *g);
const char *et_graph_output_name(const et_module *g, int i);
const char *et_graph_output_node(const et_module *g, int i);
typedef enum { ET_GNODE_MODULE = 0, ET_GNODE_OP, ET_GNODE_ATTR } et_graph_node_kind;
typedef struct et_graph_node_info {
    const char *name;
    et_graph_node_kind kind;
    const char *target;             /* module path / state name; NULL for ops */
    et_module *module;              /* the called module (borrowed), or NULL */
    et_graph_op op;                 /* ET_GNODE_OP */
    const et_graph_op_args *args;   /* ET_GNODE_OP */
    int nargs;
    const char *const *arg_names;   /* input or node names */
} et_graph_node_info;
int et_graph_num_nodes(const et_module *g);
et_status et_graph_node(const et_module *g, int i, et_graph_node_info *out);

/* torch.nn.ModuleList: children by index ("0.weight"), no forward of its
 * own (graph nodes call "<list>.<i>").  Append as et_sequential_append. */
et_module *et_module_list_new(void);
et_status et_module_list_append(et_module *list, et_module *child);
/* torch's get_submodule: the descendant at a dotted path of child names
 * ("blocks.0.linear1"; "" is m itself), borrowed, or NULL + ET_ERR_ARG
 * naming the missing part. */
et_module *et_module_get_submodule(const et_module *m, const char *target);
/* Number of direct children and the i-th one's name (its key in the
 * state_dict) and module (borrowed). */
int et_module_num_children(const et_module *m);
const char *et_module_child_name(const et_module *m, int i);
et_module *et_module_child(const et_module *m, int i);

#ifdef __cplusplus
}
#endif
#endif
