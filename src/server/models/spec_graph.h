/*
 * spec_graph.h - graph model specs (internal to easytorchd's models layer):
 * "inputs", "modules", "nodes" and "outputs" instead of "layers", in the
 * shape of a torch.fx graph (docs/API.md "Graph models").
 *
 * Parsing checks names, fields, arities, the last-dimension sizes it can
 * follow, cycles and unused inputs/nodes, naming the node and field; the
 * network is a library graph module (nn_graph.h) built in the nodes'
 * topological order, its submodules registered in the spec's order
 * ("modules" first, then the nodes' own), so parameter names are torch's
 * "<module>.<param>".
 */
#ifndef EASYTORCHD_SPEC_GRAPH_H
#define EASYTORCHD_SPEC_GRAPH_H

#include "server/models/spec.h"

#define ETD_GMAX_IO 16          /* inputs, outputs */

/* Parse root's graph members into s->graph (allocated; freed by
 * etd_spec_free); flow counts the parameters.  false + e (ETD_EINVAL). */
bool etd_graph_parse(const cJSON *root, etd_spec *s, etd_flow *flow, etd_err *e);
void etd_graph_free(etd_graph *g);
/* The graph module (NULL + e on failure). */
et_module *etd_graph_build(const etd_graph *g, et_generator *gen, etd_err *e);

/* The inputs and outputs: count, i-th name, and an input's dtype (ET_INT64
 * when an Embedding takes it) and known last dimension (-1: unknown). */
int etd_graph_num_inputs(const etd_graph *g);
const char *etd_graph_input(const etd_graph *g, int i);
et_dtype etd_graph_input_dtype(const etd_graph *g, int i);
int64_t etd_graph_input_features(const etd_graph *g, int i);
int etd_graph_num_outputs(const etd_graph *g);
const char *etd_graph_output(const etd_graph *g, int i);
int64_t etd_graph_output_features(const etd_graph *g, int i);

/* Dynamic batching (spec_graph_batch.c): can requests whose inputs have
 * ranks[0..ninputs) -- dim 0 of each the batch -- be concatenated along
 * dim 0, run as one forward pass and split back along dim 0 of every
 * output, each row the bits it has alone?  net: the built graph (the ranks
 * of attr nodes' parameters; may be NULL).  false + why naming the node that
 * mixes rows or is not known to be batch-invariant. */
bool etd_graph_rows_ok(const etd_graph *g, const et_module *net, const int *ranks, char *why,
                       size_t cap);
/* The spec's check of "batching" on a graph: etd_graph_rows_ok at the
 * ranks of a plain batch (1 for an index input, 2 otherwise) or with rank 2
 * for some index inputs (token sequences); ETD_EINVAL with the reason at
 * the first: "batching: ... nodes[3] (total, sum): reduces over every dim". */
bool etd_graph_check_batching(const etd_graph *g, const et_module *net, etd_err *e);

#endif
