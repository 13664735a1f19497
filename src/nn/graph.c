/*
 * graph.c - graph modules (nn_graph.h): named inputs, submodules, nodes
 * (module calls, functional ops, attributes) and named outputs, as a
 * torch.fx GraphModule.
 *
 * Every input and node is a "value" in one namespace; a node's arguments are
 * value indices, always of earlier values, so the node list is a valid
 * execution order (fx's invariant) and forward is one pass over it.  The
 * submodules are the module's children (module.c's registration), which is
 * what gives parameters torch's "<child>.<param>" names; nodes only borrow
 * them, so several nodes may call one module (shared weights).
 */
#include "nn/module_internal.h"
#include "core/core_internal.h"   /* etc_pooled */
#include "easytorch/nn_attention.h"
#include "easytorch/nn_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *gstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

typedef struct gvalue {
    char *name;
    int node;                  /* its node, or -1 for an input */
    bool tuple;                /* chunk / split: only getitem may use it */
} gvalue;

typedef struct gnode {
    et_graph_node_kind kind;
    int value;                 /* its value index */
    char *target;              /* module path / state name, or NULL */
    et_module *mod;            /* borrowed */
    et_tensor *attr;           /* borrowed */
    et_graph_op op;
    et_graph_op_args a;
    int nargs;
    int *arg;                  /* value indices */
    const char **arg_names;    /* the values' names (for et_graph_node) */
} gnode;

typedef struct graph {
    gvalue *vals;
    int nvals;
    int *inputs;               /* value indices of the inputs, in order */
    int ninputs;
    gnode *nodes;
    int nnodes;
    char **out_names;
    int *out_vals;
    int nout;
} graph;

static const struct { const char *name; int arity; } op_info[ET_GOP_COUNT] = {
    [ET_GOP_ADD] = {"add", 2},          [ET_GOP_SUB] = {"sub", 2},
    [ET_GOP_MUL] = {"mul", 2},          [ET_GOP_DIV] = {"div", 2},
    [ET_GOP_MATMUL] = {"matmul", 2},    [ET_GOP_CAT] = {"cat", -1},
    [ET_GOP_STACK] = {"stack", -1},     [ET_GOP_RESHAPE] = {"reshape", 1},
    [ET_GOP_FLATTEN] = {"flatten", 1},  [ET_GOP_TRANSPOSE] = {"transpose", 1},
    [ET_GOP_PERMUTE] = {"permute", 1},  [ET_GOP_SUM] = {"sum", 1},
    [ET_GOP_MEAN] = {"mean", 1},        [ET_GOP_SOFTMAX] = {"softmax", 1},
    [ET_GOP_LOG_SOFTMAX] = {"log_softmax", 1}, [ET_GOP_GETITEM] = {"getitem", 1},
    [ET_GOP_CHUNK] = {"chunk", 1},      [ET_GOP_SPLIT] = {"split", 1},
    [ET_GOP_COSINE_SIMILARITY] = {"cosine_similarity", 2},
    [ET_GOP_LINEAR] = {"linear", -2},
    [ET_GOP_NEG] = {"neg", 1},          [ET_GOP_EXP] = {"exp", 1},
    [ET_GOP_LOG] = {"log", 1},          [ET_GOP_SQRT] = {"sqrt", 1},
    [ET_GOP_ERF] = {"erf", 1},          [ET_GOP_POW] = {"pow", 2},
    [ET_GOP_UNSQUEEZE] = {"unsqueeze", 1}, [ET_GOP_SQUEEZE] = {"squeeze", 1},
    [ET_GOP_SLICE] = {"slice", 1},
    [ET_GOP_WHERE] = {"where", 3},      [ET_GOP_MASKED_FILL] = {"masked_fill", 2},
    [ET_GOP_LOGICAL_NOT] = {"logical_not", 1}, [ET_GOP_LOGICAL_AND] = {"logical_and", 2},
    [ET_GOP_LOGICAL_OR] = {"logical_or", 2}, [ET_GOP_EXPAND] = {"expand", 1},
};

const char *et_graph_op_name(et_graph_op op)
{
    return (int)op >= 0 && op < ET_GOP_COUNT ? op_info[op].name : NULL;
}

int et_graph_op_from_name(const char *name)
{
    for (int i = 0; name && i < ET_GOP_COUNT; i++)
        if (!strcmp(op_info[i].name, name))
            return i;
    return -1;
}

int et_graph_op_arity(et_graph_op op)
{
    return (int)op >= 0 && op < ET_GOP_COUNT ? op_info[op].arity : 0;
}

/* ------------------------------------------------------------ life cycle */

static void graph_free(void *p)
{
    graph *G = p;
    if (!G)
        return;
    for (int i = 0; i < G->nvals; i++)
        free(G->vals[i].name);
    for (int k = 0; k < G->nnodes; k++) {
        free(G->nodes[k].target);
        free(G->nodes[k].arg);
        free(G->nodes[k].arg_names);
    }
    for (int i = 0; i < G->nout; i++)
        free(G->out_names[i]);
    free(G->vals);
    free(G->inputs);
    free(G->nodes);
    free(G->out_names);
    free(G->out_vals);
    free(G);
}

static et_tensor *graph_forward1(et_module *m, et_tensor *x);

et_module *et_graph_new(void)
{
    et_module *m = nn_module_alloc("GraphModule", graph_forward1);
    graph *G = m ? calloc(1, sizeof *G) : NULL;
    if (!G) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "graph_new: out of memory");
        return NULL;
    }
    nn_module_set_impl(m, G, graph_free);
    return m;
}

bool et_is_graph(const et_module *m)
{
    return m && m->forward == graph_forward1;
}

static graph *graph_of(et_module *m, const char *fn)
{
    if (!et_is_graph(m)) {
        et_set_error(ET_ERR_ARG, "%s: %s", fn, m ? "not a graph module" : "NULL module");
        return NULL;
    }
    return m->impl;
}

static const graph *cgraph_of(const et_module *m)
{
    return et_is_graph(m) ? m->impl : NULL;
}

static int value_index(const graph *G, const char *name)
{
    for (int i = 0; i < G->nvals; i++)
        if (!strcmp(G->vals[i].name, name))
            return i;
    return -1;
}

/* A new value called name (checked: non-empty, unique).  -1 + error. */
static int add_value(graph *G, const char *fn, const char *name, int node, bool tuple)
{
    if (!name || !*name) {
        et_set_error(ET_ERR_ARG, "%s: a name must be a non-empty string", fn);
        return -1;
    }
    if (value_index(G, name) >= 0) {
        et_set_error(ET_ERR_ARG, "%s: the name '%s' is taken (by an input or node)", fn, name);
        return -1;
    }
    char *nm = gstrdup(name);
    gvalue *v = nm ? realloc(G->vals, (size_t)(G->nvals + 1) * sizeof *v) : NULL;
    if (!v) {
        free(nm);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", fn);
        return -1;
    }
    G->vals = v;
    G->vals[G->nvals] = (gvalue){.name = nm, .node = node, .tuple = tuple};
    return G->nvals++;
}

et_status et_graph_add_input(et_module *g, const char *name)
{
    graph *G = graph_of(g, "graph_add_input");
    if (!G)
        return et_errcode();
    int *in = realloc(G->inputs, (size_t)(G->ninputs + 1) * sizeof *in);
    if (!in)
        return et_set_error(ET_ERR_NOMEM, "graph_add_input: out of memory");
    G->inputs = in;
    int v = add_value(G, "graph_add_input", name, -1, false);
    if (v < 0)
        return et_errcode();
    G->inputs[G->ninputs++] = v;
    return ET_OK;
}

et_status et_graph_add_module(et_module *g, const char *name, et_module *m)
{
    if (!et_is_graph(g)) {
        et_module_free(m && !m->parent && m != g ? m : NULL);
        return et_set_error(ET_ERR_ARG, "graph_add_module: %s", g ? "not a graph module"
                                                                 : "NULL module");
    }
    if (!name || !*name || strchr(name, '.') || et_module_get_submodule(g, name)) {
        bool dup = name && *name && !strchr(name, '.');
        et_module_free(m && !m->parent && m != g ? m : NULL);
        return et_set_error(ET_ERR_ARG, "graph_add_module: %s", dup
                            ? "a submodule of that name exists" : "a submodule name is a "
                            "non-empty name without '.' (torch's rule)");
    }
    return nn_module_add_child(g, name, m);
}

/* Resolve argument names into a new node's arrays (all or nothing). */
static et_status add_node(graph *G, const char *fn, const char *node, gnode nd,
                          const char *const *args, int nargs, bool tuple)
{
    if (nargs < 0 || (nargs > 0 && !args))
        return et_set_error(ET_ERR_ARG, "%s: node '%s': bad argument list", fn,
                            node ? node : "?");
    nd.nargs = nargs;
    nd.arg = calloc((size_t)nargs + 1, sizeof *nd.arg);
    nd.arg_names = calloc((size_t)nargs + 1, sizeof *nd.arg_names);
    gnode *nn = realloc(G->nodes, (size_t)(G->nnodes + 1) * sizeof *nn);
    if (nn)
        G->nodes = nn;
    if (!nd.arg || !nd.arg_names || !nn) {
        free(nd.arg);
        free(nd.arg_names);
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (int i = 0; i < nargs; i++) {
        int v = args[i] ? value_index(G, args[i]) : -1;
        const char *bad = NULL;
        if (v < 0)
            bad = "is not an input or an earlier node";
        else if (G->vals[v].tuple && !(nd.kind == ET_GNODE_OP && nd.op == ET_GOP_GETITEM))
            bad = "is a tuple (chunk/split): pick a piece with a getitem node";
        if (bad) {
            free(nd.arg);
            free(nd.arg_names);
            return et_set_error(ET_ERR_ARG, "%s: node '%s': args[%d] '%s' %s", fn,
                                node ? node : "?", i, args[i] ? args[i] : "(null)", bad);
        }
        nd.arg[i] = v;
        nd.arg_names[i] = G->vals[v].name;
    }
    int v = add_value(G, fn, node, G->nnodes, tuple);
    if (v < 0) {
        free(nd.arg);
        free(nd.arg_names);
        return et_errcode();
    }
    nd.value = v;
    G->nodes[G->nnodes++] = nd;
    return ET_OK;
}

static int module_arity_max(const et_module *m)
{
    const char *t = m->type;
    if (!strcmp(t, "MultiheadAttention") || !strcmp(t, "TransformerEncoderLayer") ||
        !strcmp(t, "TransformerEncoder"))
        return 3;
    if (!strcmp(t, "EmbeddingBag"))
        return 2;
    return 1;
}

et_status et_graph_call_module(et_module *g, const char *node, const char *target,
                               const char *const *args, int nargs)
{
    const char *fn = "graph_call_module";
    graph *G = graph_of(g, fn);
    if (!G)
        return et_errcode();
    if (!target || !*target)
        return et_set_error(ET_ERR_ARG, "%s: node '%s': the target is empty", fn,
                            node ? node : "?");
    et_module *m = et_module_get_submodule(g, target);
    if (!m)
        return nn_error_prefix("%s: node '%s': target '%s' is not a submodule: ", fn,
                               node ? node : "?", target ? target : "(null)");
    int amax = module_arity_max(m);
    if (nargs < 1 || nargs > amax)
        return et_set_error(ET_ERR_ARG, "%s: node '%s': %s takes %s%d argument%s, %d given", fn,
                            node ? node : "?", m->type, amax > 1 ? "1 to " : "", amax,
                            amax > 1 ? "s" : "", nargs);
    char *tg = gstrdup(target);
    if (!tg)
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory", fn);
    gnode nd = {.kind = ET_GNODE_MODULE, .target = tg, .mod = m};
    /* torch's MultiheadAttention returns (attn_output, attn_weights) */
    et_status st = add_node(G, fn, node, nd, args, nargs, !strcmp(m->type, "MultiheadAttention"));
    if (st != ET_OK)
        free(tg);
    return st;
}

et_status et_graph_call_op(et_module *g, const char *node, et_graph_op op,
                           const char *const *args, int nargs, const et_graph_op_args *a)
{
    const char *fn = "graph_call_op";
    graph *G = graph_of(g, fn);
    if (!G)
        return et_errcode();
    if ((int)op < 0 || op >= ET_GOP_COUNT)
        return et_set_error(ET_ERR_ARG, "%s: node '%s': unknown op %d", fn, node ? node : "?",
                            (int)op);
    int ar = op_info[op].arity;
    bool binary = op == ET_GOP_ADD || op == ET_GOP_SUB || op == ET_GOP_MUL || op == ET_GOP_DIV ||
                  op == ET_GOP_POW;
    if (a && a->has_scalar) {
        bool fill = op == ET_GOP_MASKED_FILL; /* masked_fill(number, mask, value) */
        if (!(binary || fill) || (a->scalar_pos != 0 && (fill || a->scalar_pos != 1)) ||
            !isfinite(a->scalar))
            return et_set_error(ET_ERR_ARG, "%s: node '%s' (%s): %s", fn, node ? node : "?",
                                op_info[op].name, binary ? "the scalar must be finite, at "
                                "position 0 or 1" : fill ? "the scalar must be finite, at "
                                "position 0" : "only add, sub, mul, div, pow and masked_fill "
                                "take a scalar operand");
        ar = 1;
    }
    if (op == ET_GOP_SLICE && a && a->step < 1)
        return et_set_error(ET_ERR_ARG, "%s: node '%s' (slice): step must be >= 1, got %lld", fn,
                            node ? node : "?", (long long)a->step);
    if ((ar >= 0 && nargs != ar) || (ar == -1 && nargs < 1) || (ar == -2 && (nargs < 2 || nargs > 3)))
        return et_set_error(ET_ERR_ARG, "%s: node '%s' (%s): takes %s argument%s, %d given", fn,
                            node ? node : "?", op_info[op].name,
                            ar == -1 ? "1 or more" : ar == -2 ? "2 or 3" : ar == 1 ? "1" :
                            ar == 2 ? "2" : "3",
                            ar == 1 ? "" : "s", nargs);
    gnode nd = {.kind = ET_GNODE_OP, .op = op, .a = a ? *a : ET_GRAPH_OP_ARGS_DEFAULTS};
    if (nd.a.nints < 0 || nd.a.nints > 8)
        return et_set_error(ET_ERR_ARG, "%s: node '%s' (%s): %d dims (at most 8)", fn,
                            node ? node : "?", op_info[op].name, nd.a.nints);
    if ((op == ET_GOP_CHUNK && nd.a.index < 1) || (op == ET_GOP_SPLIT && nd.a.index < 1))
        return et_set_error(ET_ERR_ARG, "%s: node '%s' (%s): %s must be >= 1, got %lld", fn,
                            node ? node : "?", op_info[op].name,
                            op == ET_GOP_CHUNK ? "chunks" : "split_size", (long long)nd.a.index);
    if (op == ET_GOP_GETITEM && nargs == 1 && args && args[0]) {
        int v = value_index(G, args[0]);
        if (v >= 0 && !G->vals[v].tuple && !nd.a.has_dim)
            return et_set_error(ET_ERR_ARG, "%s: node '%s' (getitem): '%s' is a tensor: give "
                                "the dim to select along", fn, node ? node : "?", args[0]);
    }
    return add_node(G, fn, node, nd, args, nargs, op == ET_GOP_CHUNK || op == ET_GOP_SPLIT);
}

et_status et_graph_get_attr(et_module *g, const char *node, const char *state_name)
{
    const char *fn = "graph_get_attr";
    graph *G = graph_of(g, fn);
    if (!G)
        return et_errcode();
    et_tensor *t = state_name ? et_module_param_by_name(g, state_name) : NULL;
    if (!t && state_name)
        t = et_module_buffer_by_name(g, state_name);
    if (!t)
        return et_set_error(ET_ERR_ARG, "%s: node '%s': '%s' is not a parameter or buffer of "
                            "the graph", fn, node ? node : "?", state_name ? state_name : "(null)");
    char *tg = gstrdup(state_name);
    if (!tg)
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory", fn);
    gnode nd = {.kind = ET_GNODE_ATTR, .target = tg, .attr = t};
    et_status st = add_node(G, fn, node, nd, NULL, 0, false);
    if (st != ET_OK)
        free(tg);
    return st;
}

et_status et_graph_add_output(et_module *g, const char *name, const char *node)
{
    const char *fn = "graph_add_output";
    graph *G = graph_of(g, fn);
    if (!G)
        return et_errcode();
    int v = node ? value_index(G, node) : -1;
    if (v < 0 || G->vals[v].tuple)
        return et_set_error(ET_ERR_ARG, "%s: output '%s': '%s' %s", fn, name ? name : "?",
                            node ? node : "(null)", v < 0 ? "is not an input or node"
                                                          : "is a tuple: output its pieces");
    for (int i = 0; name && i < G->nout; i++)
        if (!strcmp(G->out_names[i], name))
            return et_set_error(ET_ERR_ARG, "%s: output '%s' is given twice", fn, name);
    if (!name || !*name)
        return et_set_error(ET_ERR_ARG, "%s: an output name must be a non-empty string", fn);
    char *nm = gstrdup(name);
    char **on = nm ? realloc(G->out_names, (size_t)(G->nout + 1) * sizeof *on) : NULL;
    if (on)
        G->out_names = on;
    int *ov = on ? realloc(G->out_vals, (size_t)(G->nout + 1) * sizeof *ov) : NULL;
    if (!ov) {
        free(nm);
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory", fn);
    }
    G->out_vals = ov;
    G->out_names[G->nout] = nm;
    G->out_vals[G->nout++] = v;
    return ET_OK;
}

/* --------------------------------------------------------------- forward */

/* What a forward pass holds: one tensor per value, or a tuple's pieces. */
typedef struct run {
    et_tensor **t;
    et_tensor ***tup;
    int *ntup;
    et_graph_visit visit;   /* et_graph_forward_visit's, or NULL */
    void *ctx;
} run;

static et_tensor *cosine_similarity(et_tensor *x1, et_tensor *x2, int dim, double eps)
{
    /* torch 1.13 (ATen Distance.cpp): each input divided by
     * max(||x||_2, eps) along dim, then their product summed over dim */
    int d[1] = {dim};
    et_tensor *n1 = et_clamp(et_norm(x1, 2.0, d, 1, true), (float)eps, INFINITY);
    et_tensor *n2 = et_clamp(et_norm(x2, 2.0, d, 1, true), (float)eps, INFINITY);
    return et_sum(et_mul(et_div(x1, n1), et_div(x2, n2)), d, 1, false);
}

static int ints_dims(const et_graph_op_args *a, int *out)
{
    for (int i = 0; i < a->nints; i++)
        out[i] = (int)a->ints[i];
    return a->nints;
}

/* add/sub/mul/div/pow with the number a->scalar on one side */
static et_tensor *run_scalar(et_graph_op op, et_tensor *x, const et_graph_op_args *a)
{
    float s = (float)a->scalar;
    bool first = a->scalar_pos == 0;
    switch (op) {
    case ET_GOP_ADD: return et_add_scalar(x, s);
    case ET_GOP_SUB: return first ? et_rsub_scalar(s, x) : et_sub_scalar(x, s);
    case ET_GOP_MUL: return et_mul_scalar(x, s);
    case ET_GOP_DIV: return first ? et_rdiv_scalar(s, x) : et_div_scalar(x, s);
    case ET_GOP_POW: return first ? et_rpow_scalar(s, x) : et_pow_scalar(x, s);
    case ET_GOP_MASKED_FILL: { /* x is the mask: full_like(mask, s).masked_fill(mask, value) */
        et_tensor *f = et_full(et_shape(x), et_ndim(x), s); /* the pool's, as every value */
        return f ? et_masked_fill(f, x, (float)a->value) : NULL;
    }
    default:
        et_set_error(ET_ERR_ARG, "a scalar operand of an op that takes none");
        return NULL;
    }
}

static et_tensor *run_op(const gnode *nd, et_tensor **x, run *R, int *tuple_n)
{
    const et_graph_op_args *a = &nd->a;
    int dims[8];
    if (a->has_scalar)
        return run_scalar(nd->op, x[0], a);
    switch (nd->op) {
    case ET_GOP_ADD: return et_add(x[0], x[1]);
    case ET_GOP_SUB: return et_sub(x[0], x[1]);
    case ET_GOP_MUL: return et_mul(x[0], x[1]);
    case ET_GOP_DIV: return et_div(x[0], x[1]);
    case ET_GOP_MATMUL: return et_matmul(x[0], x[1]);
    case ET_GOP_CAT: return et_cat(x, nd->nargs, a->dim);
    case ET_GOP_STACK: return et_stack(x, nd->nargs, a->dim);
    case ET_GOP_RESHAPE: return et_reshape(x[0], a->ints, a->nints);
    case ET_GOP_FLATTEN: return et_flatten(x[0], a->dim, a->dim1);
    case ET_GOP_TRANSPOSE: return et_transpose(x[0], a->dim, a->dim1);
    case ET_GOP_PERMUTE: return et_permute(x[0], dims, ints_dims(a, dims));
    case ET_GOP_SUM: return et_sum(x[0], dims, ints_dims(a, dims), a->keepdim);
    case ET_GOP_MEAN: return et_mean(x[0], dims, ints_dims(a, dims), a->keepdim);
    case ET_GOP_SOFTMAX: return et_softmax(x[0], a->dim);
    case ET_GOP_LOG_SOFTMAX: return et_log_softmax(x[0], a->dim);
    case ET_GOP_COSINE_SIMILARITY: return cosine_similarity(x[0], x[1], a->dim, a->eps);
    case ET_GOP_LINEAR: return et_linear(x[0], x[1], nd->nargs > 2 ? x[2] : NULL);
    case ET_GOP_NEG: return et_neg(x[0]);
    case ET_GOP_EXP: return et_exp(x[0]);
    case ET_GOP_LOG: return et_log(x[0]);
    case ET_GOP_SQRT: return et_sqrt(x[0]);
    case ET_GOP_ERF: return et_erf(x[0]);
    case ET_GOP_POW: return et_pow(x[0], x[1]);
    case ET_GOP_UNSQUEEZE: return et_unsqueeze(x[0], a->dim);
    case ET_GOP_SQUEEZE: return et_squeeze(x[0], a->dim);
    case ET_GOP_SLICE: return et_slice(x[0], a->dim, a->start, a->end, a->step);
    case ET_GOP_WHERE: return et_where(x[0], x[1], x[2]);
    case ET_GOP_MASKED_FILL: return et_masked_fill(x[0], x[1], (float)a->value);
    case ET_GOP_LOGICAL_NOT: return et_logical_not(x[0]);
    case ET_GOP_LOGICAL_AND: return et_logical_and(x[0], x[1]);
    case ET_GOP_LOGICAL_OR: return et_logical_or(x[0], x[1]);
    case ET_GOP_EXPAND: return et_expand(x[0], a->ints, a->nints);
    case ET_GOP_GETITEM: {
        int v = nd->arg[0];
        if (!R->tup[v])
            return et_select(x[0], a->dim, a->index);
        int64_t i = a->index < 0 ? a->index + R->ntup[v] : a->index;
        if (i < 0 || i >= R->ntup[v]) {
            et_set_error(ET_ERR_INDEX, "index %lld is out of range of a tuple of %d pieces",
                         (long long)a->index, R->ntup[v]);
            return NULL;
        }
        return R->tup[v][i];
    }
    case ET_GOP_CHUNK: case ET_GOP_SPLIT: {
        bool chunk = nd->op == ET_GOP_CHUNK;
        if (chunk && a->index > (1 << 20)) {
            et_set_error(ET_ERR_ARG, "chunks %lld: too many", (long long)a->index);
            return NULL;
        }
        int n = chunk ? et_chunk(x[0], (int)a->index, a->dim, NULL, 0)
                      : et_split(x[0], a->index, a->dim, NULL, 0);
        et_tensor **p = n > 0 ? calloc((size_t)n, sizeof *p) : NULL;
        if (n > 0 && !p)
            et_set_error(ET_ERR_NOMEM, "out of memory");
        if (!p)
            return NULL;
        n = chunk ? et_chunk(x[0], (int)a->index, a->dim, p, n)
                  : et_split(x[0], a->index, a->dim, p, n);
        if (n < 0) {
            free(p);
            return NULL;
        }
        R->tup[nd->value] = p;
        *tuple_n = n;
        return x[0];   /* non-NULL: success; the value itself is never read */
    }
    default:
        et_set_error(ET_ERR_ARG, "unknown op");
        return NULL;
    }
}

static et_tensor *run_module(const gnode *nd, et_tensor **x, run *R, int *tuple_n)
{
    et_module *m = nd->mod;
    const char *t = m->type;
    et_tensor *a1 = nd->nargs > 1 ? x[1] : NULL, *a2 = nd->nargs > 2 ? x[2] : NULL;
    if (!strcmp(t, "MultiheadAttention")) {
        /* forward(query, key, value) with torch's defaults: need_weights=True,
         * the weights averaged over heads; a tuple of the two */
        et_tensor **p = calloc(2, sizeof *p);
        if (!p) {
            et_set_error(ET_ERR_NOMEM, "out of memory");
            return NULL;
        }
        et_tensor *k = a1 ? a1 : x[0];
        p[0] = et_multihead_attention_forward(m, x[0], k, a2 ? a2 : k, NULL, true, NULL, true,
                                              &p[1]);
        if (!p[0]) {
            free(p);
            return NULL;
        }
        R->tup[nd->value] = p;
        *tuple_n = 2;
        return p[0];
    }
    if (nd->nargs == 1)
        return m->forward(m, x[0]);
    if (!strcmp(t, "TransformerEncoderLayer"))
        return et_transformer_encoder_layer_forward(m, x[0], a1, a2);
    if (!strcmp(t, "TransformerEncoder"))
        return et_transformer_encoder_forward(m, x[0], a1, a2);
    return et_embedding_bag_module_forward(m, x[0], a1, NULL);
}

/* The pass, inside the caller's open pool: values of every node. */
static et_status graph_run(const graph *G, et_tensor *const *inputs, run *R)
{
    for (int i = 0; i < G->ninputs; i++) {
        if (!inputs[i])
            return et_set_error_after(ET_ERR_ARG, "graph forward: input '%s' is NULL",
                                      G->vals[G->inputs[i]].name);
        R->t[G->inputs[i]] = inputs[i];
    }
    et_tensor *argv_small[8];
    for (int k = 0; k < G->nnodes; k++) {
        const gnode *nd = &G->nodes[k];
        et_tensor **x = argv_small;
        if (nd->nargs > 8 && !(x = malloc((size_t)nd->nargs * sizeof *x)))
            return et_set_error(ET_ERR_NOMEM, "graph forward: out of memory");
        for (int i = 0; i < nd->nargs; i++)
            x[i] = R->t[nd->arg[i]];
        int ntuple = 0;
        et_tensor *y = nd->kind == ET_GNODE_ATTR ? nd->attr
                       : nd->kind == ET_GNODE_MODULE ? run_module(nd, x, R, &ntuple)
                                                     : run_op(nd, x, R, &ntuple);
        if (x != argv_small)
            free(x);
        if (!y) {
            const char *what = nd->kind == ET_GNODE_MODULE ? nd->mod->type
                                                           : op_info[nd->op].name;
            return nn_error_prefix("node '%s' (%s): ", G->vals[nd->value].name, what);
        }
        R->t[nd->value] = y;
        R->ntup[nd->value] = ntuple;
        if (R->visit)
            R->visit(R->ctx, k, R->tup[nd->value] ? NULL : y, R->tup[nd->value], ntuple);
    }
    return ET_OK;
}

static et_status forward_common(et_module *g, et_tensor *const *inputs, int ninputs,
                                et_tensor **outputs, int noutputs, et_graph_visit visit,
                                void *ctx)
{
    graph *G = graph_of(g, "graph_forward");
    if (!G)
        return et_errcode();
    if (ninputs != G->ninputs || noutputs != G->nout || (ninputs && !inputs) ||
        (noutputs && !outputs))
        return et_set_error(ET_ERR_ARG, "graph_forward: the graph takes %d input%s and gives "
                            "%d output%s (%d and %d given)", G->ninputs,
                            G->ninputs == 1 ? "" : "s", G->nout, G->nout == 1 ? "" : "s",
                            ninputs, noutputs);
    if (G->nout == 0)
        return et_set_error(ET_ERR_STATE, "graph_forward: the graph has no outputs");
    run R = {calloc((size_t)G->nvals + 1, sizeof *R.t), calloc((size_t)G->nvals + 1,
             sizeof *R.tup), calloc((size_t)G->nvals + 1, sizeof *R.ntup), visit, ctx};
    et_status st = R.t && R.tup && R.ntup
                       ? ET_OK : et_set_error(ET_ERR_NOMEM, "graph_forward: out of memory");
    et_pool_begin();
    if (st == ET_OK)
        st = graph_run(G, inputs, &R);
    if (st == ET_OK)
        for (int i = 0; i < G->nout; i++)
            et_tensor_ref(outputs[i] = R.t[G->out_vals[i]]);
    et_pool_end();
    if (st == ET_OK)
        for (int i = 0; i < G->nout; i++)
            outputs[i] = etc_pooled(outputs[i]);
    for (int i = 0; R.tup && i < G->nvals; i++)
        free(R.tup[i]);
    free(R.t);
    free(R.tup);
    free(R.ntup);
    return st;
}

et_status et_graph_forward(et_module *g, et_tensor *const *inputs, int ninputs,
                           et_tensor **outputs, int noutputs)
{
    return forward_common(g, inputs, ninputs, outputs, noutputs, NULL, NULL);
}

et_status et_graph_forward_visit(et_module *g, et_tensor *const *inputs, int ninputs,
                                 et_graph_visit visit, void *ctx)
{
    const graph *G = graph_of(g, "graph_forward_visit");
    if (!G)
        return et_errcode();
    et_tensor *small[16], **out = G->nout <= 16 ? small : malloc((size_t)G->nout * sizeof *out);
    if (!out)
        return et_set_error(ET_ERR_NOMEM, "graph_forward: out of memory");
    et_pool_begin(); /* the outputs go with it (they are pooled in the innermost scope) */
    et_status st = forward_common(g, inputs, ninputs, out, G->nout, visit, ctx);
    et_pool_end();
    if (out != small)
        free(out);
    return st;
}

/* et_module_forward's entry (one input, one output); it runs inside the
 * scope et_module_forward opened, so the result may stay pooled there. */
static et_tensor *graph_forward1(et_module *m, et_tensor *x)
{
    const graph *G = m->impl;
    if (G->ninputs != 1 || G->nout != 1) {
        et_set_error(ET_ERR_ARG, "graph forward: the graph takes %d inputs and gives %d "
                     "outputs: call et_graph_forward", G->ninputs, G->nout);
        return NULL;
    }
    et_tensor *y = NULL;
    return forward_common(m, &x, 1, &y, 1, NULL, NULL) == ET_OK ? y : NULL;
}

/* --------------------------------------------------------- introspection */

int et_graph_num_inputs(const et_module *g)
{
    const graph *G = cgraph_of(g);
    return G ? G->ninputs : 0;
}

const char *et_graph_input_name(const et_module *g, int i)
{
    const graph *G = cgraph_of(g);
    return G && i >= 0 && i < G->ninputs ? G->vals[G->inputs[i]].name : NULL;
}

int et_graph_num_outputs(const et_module *g)
{
    const graph *G = cgraph_of(g);
    return G ? G->nout : 0;
}

const char *et_graph_output_name(const et_module *g, int i)
{
    const graph *G = cgraph_of(g);
    return G && i >= 0 && i < G->nout ? G->out_names[i] : NULL;
}

const char *et_graph_output_node(const et_module *g, int i)
{
    const graph *G = cgraph_of(g);
    return G && i >= 0 && i < G->nout ? G->vals[G->out_vals[i]].name : NULL;
}

int et_graph_num_nodes(const et_module *g)
{
    const graph *G = cgraph_of(g);
    return G ? G->nnodes : 0;
}

et_status et_graph_node(const et_module *g, int i, et_graph_node_info *out)
{
    const graph *G = cgraph_of(g);
    if (!G || !out || i < 0 || i >= G->nnodes)
        return et_set_error(ET_ERR_INDEX, "graph_node: index %d out of range (%d nodes)", i,
                            G ? G->nnodes : 0);
    const gnode *nd = &G->nodes[i];
    *out = (et_graph_node_info){
        .name = G->vals[nd->value].name, .kind = nd->kind, .target = nd->target,
        .module = nd->mod, .op = nd->op, .args = &nd->a, .nargs = nd->nargs,
        .arg_names = nd->arg_names};
    return ET_OK;
}
