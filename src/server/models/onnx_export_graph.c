/* onnx_export_graph.c - a graph model ("inputs", "modules", "nodes",
 * "outputs"; spec_graph.h) as an ONNX file (onnx_ox.h).
 *
 * The graph's inputs and outputs keep their spec names; every node becomes
 * ONNX nodes in the library graph's (topological) order: a module call
 * writes its layer -- or a Sequential's layers in turn -- as a layer list
 * does (onnx_export.c), its state under the module's path ("enc.0.weight");
 * a module called by several nodes writes its initializers once (shared
 * weights); a get_attr node is the state tensor itself; functional ops map
 * onto their ONNX ops (chunk and split onto one Split with an output per
 * piece, getitem onto that output, or onto Gather for a tensor).  Shapes
 * come from one forward of a batch of one row (zeros; index 0 for inputs
 * an Embedding takes) that reports every node's value
 * (et_graph_forward_visit), under the model's shared lock; the batch
 * dimension stays symbolic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/nn_graph.h>

#include "server/models/onnx_ox.h"
#include "server/models/spec_graph_internal.h"

typedef struct gval {       /* a node's probed value: a tensor, or a tuple's pieces */
    shape s;
    int npieces;
    shape *pieces;
    const char *name;       /* its ONNX value (tensor) */
    const char *const *pnames; /* the pieces' ONNX values (a tuple), NULL until written */
} gval;

typedef struct gx {
    ox x;
    et_module *g;
    int nin, nn;
    shape in[ETD_GMAX_IO];
    gval *v;                /* per library node */
    bool oom;
} gx;

static void to_shape(const et_tensor *t, shape *s)
{
    s->nd = et_ndim(t);
    memcpy(s->d, et_shape(t), (size_t)s->nd * sizeof *s->d);
}

static void visit(void *ctx, int node, const et_tensor *value, et_tensor *const *pieces, int np)
{
    gx *G = ctx;
    gval *v = &G->v[node];
    if (value) {
        to_shape(value, &v->s);
        return;
    }
    v->npieces = np;
    v->pieces = ox_alloc(&G->x, (size_t)(np > 0 ? np : 1) * sizeof *v->pieces);
    for (int i = 0; v->pieces && i < np; i++)
        to_shape(pieces[i], &v->pieces[i]);
}

/* The value an argument names: input i (-1 - i) or node k (k >= 0). */
static int arg_value(const gx *G, int upto, const char *name)
{
    for (int k = upto - 1; k >= 0; k--) {
        et_graph_node_info in;
        if (et_graph_node(G->g, k, &in) == ET_OK && strcmp(in.name, name) == 0)
            return k;
    }
    for (int i = 0; i < G->nin; i++)
        if (strcmp(et_graph_input_name(G->g, i), name) == 0)
            return -1 - i;
    return INT32_MIN;
}

static const char *val_name(const gx *G, int v)
{
    return v < 0 ? et_graph_input_name(G->g, -1 - v) : G->v[v].name;
}

static const shape *val_shape(const gx *G, int v)
{
    return v < 0 ? &G->in[-1 - v] : &G->v[v].s;
}

static int norm_dim(int64_t d, int nd)
{
    return (int)(d < 0 ? d + nd : d);
}

/* A zero tensor of s (int64 for an index-taking module when idx). */
static et_tensor *zeros_of(const shape *s, bool idx)
{
    et_tensor *t = et_zeros(s->d, s->nd);
    return idx ? et_to_dtype(t, ET_INT64) : t;
}

/* A module definition on *cur of shape *s (the shape after it on return;
 * idx: *cur holds indices).  Each layer's output shape comes from a
 * forward of zeros in a pool of its own: the ONNX nodes are written
 * outside any pool (ox_state's clones are freed by hand). */
static etd_rc export_mod(gx *G, const gmod *gm, et_module *mod, const char *pp, const char *cp,
                         const char *node, shape *s, bool *idx, const char **cur, etd_err *e)
{
    ox *x = &G->x;
    if (gm->kind == 1) { /* Sequential: its layers in turn */
        for (int j = 0; j < gm->nkids; j++) {
            char kp[160], kc[192];
            snprintf(kp, sizeof kp, "%s.%s", pp, gm->kids[j].name);
            snprintf(kc, sizeof kc, "%s.%s", cp, gm->kids[j].name);
            etd_rc rc = export_mod(G, &gm->kids[j], et_module_child(mod, j), kp, kc, node, s, idx,
                                   cur, e);
            if (rc != ETD_OK)
                return rc;
        }
        return ETD_OK;
    }
    if (gm->kind != 0)
        return etd_fail(e, ETD_EINVAL, "export: node '%s': module '%s' (ModuleList) is not "
                        "callable", node, pp);
    ox_at(x, &gm->layer, pp, cp, "node '%s' (%s, module '%s')", node, gm->layer.type->name, pp);
    shape in = *s, out;
    bool ok = false;
    et_pool_begin();
    ET_NO_GRAD {
        et_tensor *t = zeros_of(&in, *idx);
        et_tensor *y = t ? et_module_forward(mod, t) : NULL;
        if (y) {
            to_shape(y, &out);
            ok = true;
        }
    }
    if (!ok) {
        char sh[160];
        et_shape_str(in.d, in.nd, sh, sizeof sh);
        etd_fail(e, ETD_EINVAL, "export: %s, probing the shapes with an input of shape %s: "
                 "%s (give ?input_shape=...)", x->where, sh, et_errmsg());
    }
    et_pool_end();
    if (!ok)
        return e->rc;
    *s = out;
    *idx = false;
    return ox_export_layer(x, &gm->layer, &in, &out, cur, e);
}

static etd_rc module_node(gx *G, int k, const et_graph_node_info *in, const etd_graph *sg,
                          const int *av, etd_err *e)
{
    ox *x = &G->x;
    const gmod *gm = etd_graph_find_mod(sg, in->target);
    if (!gm)
        return etd_fail(e, ETD_EINVAL, "export: node '%s': no module '%s'", in->name, in->target);
    bool mha = gm->kind == 0 && !strcmp(gm->layer.type->name, "MultiheadAttention");
    if (mha) { /* query[, key[, value]]: torch's tuple (attn_output, attn_weights) */
        char cp[192];
        snprintf(cp, sizeof cp, "nodes.%s", in->name);
        ox_at(x, &gm->layer, in->target, cp, "node '%s' (MultiheadAttention, module '%s')",
              in->name, in->target);
        const char *qkv[3];
        qkv[0] = val_name(G, av[0]);
        qkv[1] = in->nargs > 1 ? val_name(G, av[1]) : qkv[0];
        qkv[2] = in->nargs > 2 ? val_name(G, av[2]) : qkv[1];
        const char **pn = ox_alloc(x, 2 * sizeof *pn);
        if (!pn)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        etd_rc rc = ox_export_mha_node(x, &gm->layer, val_shape(G, av[0])->nd, qkv, &pn[0], &pn[1], e);
        G->v[k].pnames = pn;
        G->v[k].name = pn[0];
        return rc;
    }
    bool bag = gm->kind == 0 && !strcmp(gm->layer.type->name, "EmbeddingBag");
    if (bag && in->nargs == 2) { /* (input, offsets) */
        char cp[192];
        snprintf(cp, sizeof cp, "nodes.%s", in->name);
        ox_at(x, &gm->layer, in->target, cp, "node '%s' (EmbeddingBag, module '%s')", in->name,
              in->target);
        bool i64 = av[0] < 0 && etd_graph_input_dtype(sg, -1 - av[0]) == ET_INT64;
        return ox_export_embedding_bag(x, &gm->layer, val_shape(G, av[0]), val_name(G, av[0]),
                                       i64, val_name(G, av[1]), &G->v[k].name, e);
    }
    bool enc = gm->kind == 0 && (!strcmp(gm->layer.type->name, "TransformerEncoderLayer") ||
                                 !strcmp(gm->layer.type->name, "TransformerEncoder"));
    if (enc && in->nargs > 1) { /* (src, mask[, src_key_padding_mask]) */
        char cp[192];
        snprintf(cp, sizeof cp, "nodes.%s", in->name);
        ox_at(x, &gm->layer, in->target, cp, "node '%s' (%s, module '%s')", in->name,
              gm->layer.type->name, in->target);
        ox_mask_in mk[2] = {{0}, {0}};
        for (int j = 1; j < in->nargs && j < 3; j++)
            mk[j - 1] = (ox_mask_in){.name = val_name(G, av[j]), .nd = val_shape(G, av[j])->nd,
                                     .is_bool = av[j] < 0 && etd_graph_input_dtype(sg, -1 - av[j])
                                                                 == ET_INT64};
        const char *cur = val_name(G, av[0]);
        etd_rc rc = ox_export_attention(x, &gm->layer, val_shape(G, av[0]), val_shape(G, av[0]),
                                        &mk[0], &mk[1], &cur, e);
        G->v[k].name = cur;
        return rc;
    }
    if (in->nargs != 1) /* no other module takes several */
        return etd_fail(e, ETD_EINVAL, "export: node '%s' (%s): a module call with %d arguments "
                        "has no ONNX form here (masks as graph values)", in->name,
                        gm->kind == 0 ? gm->layer.type->name : "Sequential", in->nargs);
    char cp[192];
    snprintf(cp, sizeof cp, "nodes.%s", in->name);
    const char *cur = val_name(G, av[0]);
    shape s = *val_shape(G, av[0]);
    bool idx = av[0] < 0 && etd_graph_input_dtype(sg, -1 - av[0]) == ET_INT64;
    etd_rc rc = export_mod(G, gm, in->module, in->target, cp, in->name, &s, &idx, &cur, e);
    if (rc != ETD_OK)
        return rc;
    G->v[k].name = cur;
    return ETD_OK;
}

/* A mask as ONNX's bool: nonzero true, as the library's where / masked_fill. */
static const char *to_bool(ox *x, const char *v)
{
    return ox_node(x, "Cast", IN(v), AT(ox_attr_i(x, "to", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)));
}

static etd_rc op_node(gx *G, int k, const et_graph_node_info *in, const int *av, etd_err *e)
{
    ox *x = &G->x;
    const et_graph_op_args *a = in->args;
    const char *y = NULL, *c = val_name(G, av[0]);
    const shape *s0 = val_shape(G, av[0]);
    int nd = s0->nd;
    char cp[192];
    snprintf(cp, sizeof cp, "nodes.%s", in->name);
    ox_at(x, NULL, "", cp, "node '%s' (%s)", in->name, et_graph_op_name(in->op));
    static const char *const binary[] = {[ET_GOP_ADD] = "Add", [ET_GOP_SUB] = "Sub",
                                         [ET_GOP_MUL] = "Mul", [ET_GOP_DIV] = "Div",
                                         [ET_GOP_MATMUL] = "MatMul", [ET_GOP_POW] = "Pow"};
    static const char *const unary[] = {[ET_GOP_NEG] = "Neg", [ET_GOP_EXP] = "Exp",
                                        [ET_GOP_LOG] = "Log", [ET_GOP_SQRT] = "Sqrt",
                                        [ET_GOP_ERF] = "Erf"};
    /* x op number: the number a float32 constant (masked_fill's number: below) */
    if (a->has_scalar && (size_t)in->op < sizeof binary / sizeof *binary && binary[in->op]) {
        const char *sc = ox_scalar_f(x, "scalar", (float)a->scalar);
        y = ox_node(x, binary[in->op], a->scalar_pos == 0 ? IN(sc, c) : IN(c, sc), NULL);
        G->v[k].name = y;
        return ETD_OK;
    }
    switch (in->op) {
    case ET_GOP_NEG: case ET_GOP_EXP: case ET_GOP_LOG: case ET_GOP_SQRT: case ET_GOP_ERF:
        y = ox_node(x, unary[in->op], IN(c), NULL);
        break;
    case ET_GOP_UNSQUEEZE: {
        int64_t ax = a->dim;
        y = ox_node(x, "Unsqueeze", IN(c, ox_init_i64(x, "axes", &ax, 1)), NULL);
        break;
    }
    case ET_GOP_SQUEEZE: { /* torch's squeeze(dim) leaves a dimension that is not 1 */
        int64_t ax = norm_dim(a->dim, nd);
        if (ax == 0)
            return ox_unsupported(x, "a squeeze of the batch dimension", e);
        y = s0->d[ax] == 1 ? ox_node(x, "Squeeze", IN(c, ox_init_i64(x, "axes", &ax, 1)), NULL)
                           : ox_node(x, "Identity", IN(c), NULL);
        break;
    }
    case ET_GOP_SLICE: {
        int64_t ax = norm_dim(a->dim, nd);
        if (ax == 0)
            return ox_unsupported(x, "a slice of the batch dimension", e);
        y = ox_node(x, "Slice", IN(c, ox_init_i64(x, "starts", &a->start, 1),
                                   ox_init_i64(x, "ends", &a->end, 1),
                                   ox_init_i64(x, "axes", &ax, 1),
                                   ox_init_i64(x, "steps", &a->step, 1)), NULL);
        break;
    }
    case ET_GOP_ADD: case ET_GOP_SUB: case ET_GOP_MUL: case ET_GOP_DIV: case ET_GOP_MATMUL:
    case ET_GOP_POW:
        y = ox_node(x, binary[in->op], IN(c, val_name(G, av[1])), NULL);
        break;
    case ET_GOP_CAT: case ET_GOP_STACK: {
        const char **xs = ox_alloc(x, (size_t)(in->nargs + 1) * sizeof *xs);
        if (!xs)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        int64_t ax = a->dim;
        const char *axis = in->op == ET_GOP_STACK ? ox_init_i64(x, "axis", &ax, 1) : NULL;
        for (int i = 0; i < in->nargs; i++) {
            xs[i] = val_name(G, av[i]);
            if (axis)
                xs[i] = ox_node(x, "Unsqueeze", IN(xs[i], axis), NULL);
        }
        y = ox_node(x, "Concat", xs, AT(ox_attr_i(x, "axis", a->dim)));
        break;
    }
    case ET_GOP_RESHAPE:
        for (int i = 0; i < a->nints; i++)
            if (a->ints[i] == 0) /* ONNX's 0 copies a dimension, torch's is a size */
                return ox_unsupported(x, "a shape with a 0", e);
        y = ox_node(x, "Reshape", IN(c, ox_init_i64(x, "shape", a->ints, a->nints)), NULL);
        break;
    case ET_GOP_FLATTEN: {
        const shape *o = &G->v[k].s;
        int st = norm_dim(a->dim, nd);
        int64_t t[ET_MAX_DIMS];
        for (int i = 0; i < o->nd; i++)
            t[i] = i == st ? -1 : i == 0 ? 0 : o->d[i];
        y = o->nd == nd ? ox_node(x, "Identity", IN(c), NULL)
                        : ox_node(x, "Reshape", IN(c, ox_init_i64(x, "shape", t, o->nd)), NULL);
        break;
    }
    case ET_GOP_TRANSPOSE: case ET_GOP_PERMUTE: {
        int64_t perm[ET_MAX_DIMS];
        for (int i = 0; i < nd; i++)
            perm[i] = i;
        if (in->op == ET_GOP_TRANSPOSE) {
            int d0 = norm_dim(a->dim, nd), d1 = norm_dim(a->dim1, nd);
            perm[d0] = d1;
            perm[d1] = d0;
        } else {
            for (int i = 0; i < a->nints && i < nd; i++)
                perm[i] = norm_dim(a->ints[i], nd);
        }
        y = ox_node(x, "Transpose", IN(c), AT(ox_attr_ints(x, "perm", perm, nd)));
        break;
    }
    case ET_GOP_SUM:
        y = a->nints ? ox_node(x, "ReduceSum", IN(c, ox_init_i64(x, "axes", a->ints, a->nints)),
                               AT(ox_attr_i(x, "keepdims", a->keepdim)))
                     : ox_node(x, "ReduceSum", IN(c), AT(ox_attr_i(x, "keepdims", a->keepdim)));
        break;
    case ET_GOP_MEAN:
        y = a->nints ? ox_node(x, "ReduceMean", IN(c), AT(ox_attr_ints(x, "axes", a->ints, a->nints),
                                                         ox_attr_i(x, "keepdims", a->keepdim)))
                     : ox_node(x, "ReduceMean", IN(c), AT(ox_attr_i(x, "keepdims", a->keepdim)));
        break;
    case ET_GOP_SOFTMAX:
        y = ox_node(x, "Softmax", IN(c), AT(ox_attr_i(x, "axis", a->dim)));
        break;
    case ET_GOP_LOG_SOFTMAX:
        y = ox_node(x, "LogSoftmax", IN(c), AT(ox_attr_i(x, "axis", a->dim)));
        break;
    case ET_GOP_GETITEM:
        if (av[0] >= 0 && G->v[av[0]].pnames) {
            const gval *t = &G->v[av[0]];
            int64_t i = a->index < 0 ? a->index + t->npieces : a->index;
            if (i < 0 || i >= t->npieces)
                return ox_unsupported(x, "an index out of the tuple", e);
            y = ox_node(x, "Identity", IN(t->pnames[i]), NULL);
        } else { /* select(dim, index): Gather of a scalar index drops the dimension */
            if (norm_dim(a->dim, nd) == 0)
                return ox_unsupported(x, "a select along the batch dimension", e);
            int64_t idx = a->index;
            y = ox_node(x, "Gather", IN(c, ox_init(x, ox_str(x, "%s.index", x->cp),
                                                   ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &idx,
                                                   sizeof idx, NULL, 0)),
                        AT(ox_attr_i(x, "axis", a->dim)));
        }
        break;
    case ET_GOP_CHUNK: case ET_GOP_SPLIT: {
        gval *t = &G->v[k];
        int dim = norm_dim(a->dim, nd);
        if (dim == 0)
            return ox_unsupported(x, "a split along the batch dimension (how many pieces torch "
                                  "gives, and their sizes, follow the batch)", e);
        if (!t->pieces || t->npieces < 1)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        int64_t *sizes = ox_alloc(x, (size_t)t->npieces * sizeof *sizes);
        if (!sizes)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        for (int i = 0; i < t->npieces; i++)
            sizes[i] = t->pieces[i].d[dim];
        t->pnames = ox_node_n(x, "Split", IN(c, ox_init_i64(x, "split", sizes, t->npieces)),
                              AT(ox_attr_i(x, "axis", dim)), t->npieces);
        if (!t->pnames)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        t->name = t->pnames[0];
        return ETD_OK;
    }
    case ET_GOP_COSINE_SIMILARITY: { /* as graph.c: each divided by max(||x||, eps) */
        int64_t ax = a->dim;
        const char *eps = ox_scalar_f(x, "eps", (float)a->eps), *xs[2];
        for (int i = 0; i < 2; i++) {
            const char *xi = val_name(G, av[i]);
            const char *n = ox_node(x, "ReduceL2", IN(xi), AT(ox_attr_ints(x, "axes", &ax, 1),
                                                             ox_attr_i(x, "keepdims", 1)));
            xs[i] = ox_node(x, "Div", IN(xi, ox_node(x, "Max", IN(n, eps), NULL)), NULL);
        }
        y = ox_node(x, "ReduceSum", IN(ox_node(x, "Mul", IN(xs[0], xs[1]), NULL),
                                       ox_init_i64(x, "axes", &ax, 1)),
                    AT(ox_attr_i(x, "keepdims", 0)));
        break;
    }
    case ET_GOP_LINEAR: {
        int64_t perm[2] = {1, 0};
        const char *wt = ox_node(x, "Transpose", IN(val_name(G, av[1])),
                                 AT(ox_attr_ints(x, "perm", perm, 2)));
        y = ox_node(x, "MatMul", IN(c, wt), NULL);
        if (in->nargs > 2)
            y = ox_node(x, "Add", IN(y, val_name(G, av[2])), NULL);
        break;
    }
    case ET_GOP_WHERE: /* conditions are numbers, nonzero true: a Cast to bool */
        y = ox_node(x, "Where", IN(to_bool(x, c), val_name(G, av[1]), val_name(G, av[2])), NULL);
        break;
    case ET_GOP_MASKED_FILL: { /* Where(mask, value, x); the numbers Constant nodes, as torch
                                  writes them (the import reads those back as numbers) */
        const char *v = ox_const_f(x, (float)a->value);
        y = a->has_scalar ? ox_node(x, "Where", IN(to_bool(x, c), v, ox_const_f(x, (float)a->scalar)),
                                    NULL)
                          : ox_node(x, "Where", IN(to_bool(x, val_name(G, av[1])), v, c), NULL);
        break;
    }
    case ET_GOP_LOGICAL_NOT: case ET_GOP_LOGICAL_AND: case ET_GOP_LOGICAL_OR: {
        const char *op = in->op == ET_GOP_LOGICAL_NOT ? "Not"
                         : in->op == ET_GOP_LOGICAL_AND ? "And" : "Or";
        y = in->op == ET_GOP_LOGICAL_NOT ? ox_node(x, op, IN(to_bool(x, c)), NULL)
                                         : ox_node(x, op, IN(to_bool(x, c),
                                                             to_bool(x, val_name(G, av[1]))), NULL);
        y = ox_node(x, "Cast", IN(y), AT(ox_attr_i(x, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)));
        break;
    }
    case ET_GOP_EXPAND: { /* ONNX's Expand broadcasts: a size of 1 keeps the input's size */
        if (a->nints != nd || a->ints[0] != -1)
            return ox_unsupported(x, "an expand of the batch dimension (or adding leading "
                                  "dimensions; give -1 first)", e);
        int64_t sh[8];
        for (int i = 0; i < nd; i++)
            sh[i] = a->ints[i] == -1 ? 1 : a->ints[i];
        y = ox_node(x, "Expand", IN(c, ox_init_i64(x, "shape", sh, nd)), NULL);
        break;
    }
    default:
        return ox_unsupported(x, "this op", e);
    }
    G->v[k].name = y;
    return ETD_OK;
}

etd_rc ox_export_graph(etd_model *m, const int64_t *in_dims, int in_nd, uint8_t **buf,
                       size_t *len, etd_err *e)
{
    const etd_graph *sg = m->spec.graph;
    gx G = {.x = {.m = m}, .g = m->net};
    G.nin = et_graph_num_inputs(m->net);
    G.nn = et_graph_num_nodes(m->net);
    int nout = et_graph_num_outputs(m->net);
    int part = 0, at = 0;
    for (int i = 0; i < G.nin; i++) {
        shape *s = &G.in[i];
        s->d[0] = 1;
        s->nd = 1;
        if (in_nd >= 0) { /* this input's part of ?input_shape */
            for (; at < in_nd && in_dims[at] > 0; at++)
                if (s->nd < ET_MAX_DIMS)
                    s->d[s->nd++] = in_dims[at];
                else
                    return etd_fail(e, ETD_EINVAL, "input_shape: input '%s': at most %d "
                                    "dimensions", et_graph_input_name(m->net, i), ET_MAX_DIMS - 1);
            part++;
            if (at < in_nd)
                at++; /* the 0 between two inputs */
            else if (i + 1 < G.nin)
                return etd_fail(e, ETD_EINVAL, "input_shape: %d part%s for %d inputs (separate "
                                "them by ';', in the order of \"inputs\")", part,
                                part == 1 ? "" : "s", G.nin);
        } else if (etd_graph_input_features(sg, i) > 0) {
            s->nd = 2;
            s->d[1] = etd_graph_input_features(sg, i);
        } else {
            return etd_fail(e, ETD_EINVAL, "input_shape: the spec does not fix the size of input "
                            "'%s'; give the dimensions after the batch (?input_shape=3,8; a "
                            "graph's inputs separated by ';')", et_graph_input_name(m->net, i));
        }
    }
    if (in_nd >= 0 && at < in_nd)
        return etd_fail(e, ETD_EINVAL, "input_shape: more parts than the graph's %d input%s",
                        G.nin, G.nin == 1 ? "" : "s");
    etd_rc rc = ETD_OK;
    if (!(G.v = calloc((size_t)(G.nn > 0 ? G.nn : 1), sizeof *G.v)))
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    ox *x = &G.x;
    Onnx__ValueInfoProto *vin[ETD_GMAX_IO], *vout[ETD_GMAX_IO];
    et_pool_begin();
    ET_NO_GRAD {
        et_tensor *ins[ETD_GMAX_IO];
        for (int i = 0; i < G.nin; i++)
            ins[i] = zeros_of(&G.in[i], etd_graph_input_dtype(sg, i) == ET_INT64);
        if (et_graph_forward_visit(m->net, ins, G.nin, visit, &G) != ET_OK) {
            char sh[160];
            et_shape_str(G.in[0].d, G.in[0].nd, sh, sizeof sh);
            rc = etd_fail(e, ETD_EINVAL, "export: probing the shapes with inputs of shape %s%s: "
                          "%s (give ?input_shape=...)", sh, G.nin > 1 ? ", ..." : "", et_errmsg());
        }
    }
    et_pool_end();
    if (rc == ETD_OK) {
        for (int k = 0; k < G.nn && rc == ETD_OK; k++) {
            et_graph_node_info in;
            int av[GMAX_ARGS];
            if (et_graph_node(m->net, k, &in) != ET_OK || in.nargs > GMAX_ARGS) {
                rc = etd_fail(e, ETD_EINVAL, "export: node %d: %s", k, et_errmsg());
                break;
            }
            for (int j = 0; j < in.nargs; j++)
                if ((av[j] = arg_value(&G, k, in.arg_names[j])) == INT32_MIN)
                    rc = etd_fail(e, ETD_EINVAL, "export: node '%s': no value '%s'", in.name,
                                  in.arg_names[j]);
            if (rc != ETD_OK)
                break;
            if (in.kind == ET_GNODE_ATTR) {
                ox_at(x, NULL, "", "attr", "node '%s'", in.name);
                G.v[k].name = ox_state(x, in.target, NULL, 0);
            } else if (in.kind == ET_GNODE_MODULE) {
                rc = module_node(&G, k, &in, sg, av, e);
            } else {
                rc = op_node(&G, k, &in, av, e);
            }
        }
    }
    if (rc != ETD_OK)
        goto out;
    /* the outputs: Identity nodes named as the spec's outputs */
    for (int i = 0; i < nout; i++) {
        const char *on = et_graph_output_name(m->net, i);
        int v = arg_value(&G, G.nn, et_graph_output_node(m->net, i));
        for (int j = 0; j < G.nin; j++)
            if (strcmp(et_graph_input_name(m->net, j), on) == 0) {
                rc = etd_fail(e, ETD_EINVAL, "export: output '%s' has an input's name (ONNX "
                              "names values once)", on);
                goto out;
            }
        if (v == INT32_MIN || (v >= 0 && G.v[v].pnames && !G.v[v].s.nd)) {
            rc = etd_fail(e, ETD_EINVAL, "export: output '%s' is not a tensor", on);
            goto out;
        }
        ox_at(x, NULL, "", "outputs", "output '%s'", on);
        ox_node(x, "Identity", IN(val_name(&G, v)), NULL);
        if (!x->oom)
            x->nodes[x->nn - 1]->output[0] = (char *)on;
        vout[i] = ox_value_info(x, on, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, val_shape(&G, v));
    }
    for (int i = 0; i < G.nin; i++)
        vin[i] = ox_value_info(x, et_graph_input_name(m->net, i),
                               etd_graph_input_dtype(sg, i) == ET_INT64
                                   ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64
                                   : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &G.in[i]);
    rc = ox_pack(x, vin, (size_t)G.nin, vout, (size_t)nout, buf, len, e);
out:
    ox_free(x);
    free(G.v);
    return rc;
}
