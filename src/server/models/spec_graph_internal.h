/*
 * spec_graph_internal.h - what spec_graph.c (parsing, building) and
 * spec_graph_check.c (wiring, order, widths, unused values) share.
 */
#ifndef EASYTORCHD_SPEC_GRAPH_INTERNAL_H
#define EASYTORCHD_SPEC_GRAPH_INTERNAL_H

#include <easytorch/nn_graph.h>

#include "server/models/spec_graph.h"

#define GNAME 64
#define GMAX_NODES 1000
#define GMAX_ARGS 16
#define GMAX_KIDS 256
#define KEEPS (-2)          /* flow sentinel: the module keeps its input's width */

typedef struct gmod {       /* a module definition: a layer, or a container of them */
    char name[GNAME];       /* its key under its parent ("fc1", "0") */
    int kind;               /* 0 layer, 1 Sequential, 2 ModuleList */
    etd_layer layer;
    struct gmod *kids;
    int nkids;
    int64_t need, gives;    /* input width it requires / output width (-1 unknown, KEEPS) */
    bool index_input;       /* its first layer takes indices */
} gmod;

typedef struct gnode {
    char name[GNAME];
    int spec;               /* its index in "nodes" */
    et_graph_node_kind kind;
    char target[160];       /* module path / state name */
    const gmod *mod;        /* the called module's definition */
    int op;
    et_graph_op_args a;
    int nargs;
    char arg[GMAX_ARGS][GNAME];
    int argv[GMAX_ARGS];    /* value indices: inputs, then nodes in spec order */
    int64_t features;       /* its output's last dimension, -1 unknown */
} gnode;

struct etd_graph {
    int ninputs;
    char inputs[ETD_GMAX_IO][GNAME];
    et_dtype in_dtype[ETD_GMAX_IO];
    int64_t in_features[ETD_GMAX_IO];
    gmod *mods;             /* top-level modules in registration order */
    int nmods;
    gnode *nodes;           /* spec order */
    int nnodes;
    int *order;             /* topological order of node indices */
    int nout;
    char outputs[ETD_GMAX_IO][GNAME];
    int out_val[ETD_GMAX_IO];
};

/* spec_graph_check.c: the value called name (input i -> i, node k ->
 * ninputs + k, or -1); resolve arguments and targets and sort the nodes
 * (cycles named); every value leads to an output; the widths known, node
 * to node; a value's known width. */
int etd_graph_value_of(const etd_graph *g, const char *name);
bool etd_graph_is_tuple(const etd_graph *g, int v);
bool etd_graph_wire(etd_graph *g, etd_err *e);
bool etd_graph_all_used(const etd_graph *g, etd_err *e);
bool etd_graph_follow_features(etd_graph *g, etd_err *e);
int64_t etd_graph_value_features(const etd_graph *g, int v);
/* spec_graph.c: the module at a dotted path of top-level modules, or NULL. */
const gmod *etd_graph_find_mod(const etd_graph *g, const char *path);

#endif
