/*
 * onnx.h - ONNX export of a model (internal; the models layer, issue 18).
 * Built only with protobuf-c (meson feature "onnx"; meson's etd_have_onnx says
 * so): otherwise onnx_none.c answers that the build has no ONNX.
 */
#ifndef EASYTORCHD_ONNX_H
#define EASYTORCHD_ONNX_H

#include "server/models/models.h"

/* BatchNorm's num_batches_tracked has no place in ONNX: the exporter keeps
 * the counters in the model's metadata_props under this key, as a JSON
 * object {"<state_dict name>": count, ...}; the importer restores them by
 * the BatchNormalization's running_mean initializer ("1.running_mean" ->
 * "1.num_batches_tracked"), 0 without the entry (a file from torch). */
#define OX_NBT_KEY "easytorch.num_batches_tracked"

/* in_dims of a graph model with several inputs: each input's dimensions,
 * a 0 between two inputs ("6;3,4" -> {6, 0, 3, 4}) */
#define ETD_ONNX_MAX_INPUTS 16
#define ETD_ONNX_MAX_DIMS (ETD_ONNX_MAX_INPUTS * ET_MAX_DIMS)

/* The model (or a version's model, versions.h) as an ONNX file: opset 17,
 * IR version 8, input "input" and output "output" with a symbolic batch
 * dimension, parameters and buffers as initializers named as in the
 * state_dict, eval-mode semantics.  in_dims[0..in_nd) are the input's
 * dimensions after the batch (in_nd < 0: the spec's in_features).  *buf is
 * malloc'ed.  ETD_EINVAL naming the layer for what ONNX cannot express;
 * ETD_ESTATE when the daemon was built without ONNX. */
etd_rc etd_model_export_onnx(etd_model *m, const int64_t *in_dims, int in_nd, uint8_t **buf,
                             size_t *len, etd_err *e);

/* POST /v1/models {"name", "onnx": <base64 ONNX file>, "loss", "optimizer",
 * "scheduler", "seed", "keep_versions"}: a model exported by torch.onnx.export
 * whose graph is a chain of supported nodes becomes a trainable model of
 * the matching layers, a graph with branches a graph model (onnx_import_graph.c),
 * its initializers the parameters.  ETD_EINVAL naming
 * the node ("onnx: node \"/0/Gemm\" (Gemm): ...") for anything else. */
etd_rc etd_onnx_import(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e);
/* The same from the file's bytes (a Content-Type: application/onnx body):
 * spec holds the other fields (name, loss, optimizer, ...; no "layers"). */
etd_rc etd_onnx_import_file(etd_registry *r, const cJSON *spec, const uint8_t *bytes,
                            size_t len, etd_model **out, etd_err *e);

#endif
