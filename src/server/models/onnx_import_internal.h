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

#endif
