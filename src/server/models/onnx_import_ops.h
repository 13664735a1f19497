/*
 * onnx_import_ops.h - what onnx_import_ops.c (ONNX primitives as graph op
 * nodes) and onnx_import_fold.c (shapes, constants, folding) share.
 */
#ifndef EASYTORCHD_ONNX_IMPORT_OPS_H
#define EASYTORCHD_ONNX_IMPORT_OPS_H

#include "server/models/onnx_import_internal.h"

#define T_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define T_DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
#define T_INT64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64
#define T_INT32 ONNX__TENSOR_PROTO__DATA_TYPE__INT32
#define T_BOOL ONNX__TENSOR_PROTO__DATA_TYPE__BOOL
#define BIG (1LL << 53)        /* slice bounds beyond this are "to the end" */

typedef struct ctx {          /* the ONNX node being imported */
    oi_graph *G;
    const Onnx__NodeProto *n;
    size_t i;
    int emitted;              /* spec nodes written for this ONNX node */
} ctx;

#define FAIL(...) oi_node_fail(C->G->x, C->n, __VA_ARGS__)
#define OOM() etd_fail(C->G->x->e, ETD_ENOMEM, "out of memory")

/* dimensions: known (p == 0), equal, arithmetic (OI_UNKNOWN when not exact) */
extern const oi_dim OI_UNKNOWN;
bool oi_dim_known(oi_dim d);
bool oi_dim_eq(oi_dim a, oi_dim b);
oi_dim oi_dim_mul(oi_dim a, oi_dim b);
oi_dim oi_dim_div(oi_dim a, oi_dim b);
oi_dim oi_dim_add(oi_dim a, oi_dim b, int sign);
oi_dim oi_numel_of(const oi_shape *s);
void oi_broadcast(const oi_shape *a, const oi_shape *b, oi_shape *out);

/* constants: by name (NULL: not one), a known integer / number at i */
const oi_const *oi_cget(oi_graph *G, const char *name);
/* a TensorProto's data as a constant named onnx (NULL: not a kind kept, or
 * malformed) */
oi_const *oi_const_of_tensor(oi_graph *G, const char *onnx, const Onnx__TensorProto *t);
/* a uniform constant of a shape that follows the batch (oi_const.sym), or NULL */
const oi_const *oi_cget_sym(oi_graph *G, const char *name);
/* a new constant named onnx, its arrays allocated for n elements (NULL: out
 * of memory or too big); valid until oi_consts_free */
oi_const *oi_new_const(oi_graph *G, const char *onnx, bool is_int, int nd, const int64_t *dims,
                       int64_t n);
/* A spec op node of op on args (spec names; a NULL entry is the number
 * *scalar); the last one of this ONNX node is named as its output and
 * registered as that value with shape s (a bool when its tensor args all
 * are and op only moves elements). */
cJSON *oi_emit(ctx *C, const char *op, const char *const *args, int nargs, const double *scalar,
               bool last, const oi_shape *s, char *name);
/* onnx_import_mask.c: Where, Not/And/Or, Equal, Expand, ConstantOfShape and
 * Cast to or from bool -- the masks of attention -- folded or as op nodes;
 * *handled false for other nodes. */
etd_rc oi_mask_node(ctx *C, bool *handled);
bool oi_const_int(const oi_const *k, int64_t i, int64_t *out);
double oi_const_num(const oi_const *k, int64_t i);
bool oi_all_const(oi_graph *G, const Onnx__NodeProto *n);
/* attributes: by name; ints attribute aname, or else constant input in,
 * into v[0..ET_MAX_DIMS): count, -1 absent, -2 not constant */
const Onnx__AttributeProto *oi_attr(const Onnx__NodeProto *n, const char *name);
int oi_ints_of(oi_graph *G, const Onnx__NodeProto *n, const char *aname, int in, int64_t *v);
bool oi_norm_axis(int64_t a, int nd, int *out);

/* the node computes constants only / is a Constant / an Identity of an
 * initializer / Shape of value x: folded, no spec node */
etd_rc oi_fold(ctx *C);
etd_rc oi_constant_node(ctx *C);
etd_rc oi_alias(ctx *C);
etd_rc oi_alias_as(ctx *C, bool transposed); /* a Transpose of a 2-D initializer: a weight */
etd_rc oi_shape_node(ctx *C, const oi_val *x);

/* the short names inside these two files */
#define UNKNOWN OI_UNKNOWN
#define dim_known oi_dim_known
#define dim_eq oi_dim_eq
#define dim_mul oi_dim_mul
#define dim_div oi_dim_div
#define dim_add oi_dim_add
#define numel_of oi_numel_of
#define broadcast oi_broadcast
#define cget oi_cget
#define const_int oi_const_int
#define const_num oi_const_num
#define all_const oi_all_const
#define attr oi_attr
#define ints_of oi_ints_of
#define norm_axis oi_norm_axis
#define emit oi_emit
#define new_const oi_new_const

#endif
