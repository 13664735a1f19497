/* spec_graph_batch.c - may a graph model's requests be batched dynamically
 * (a spec's "batching"; models/batcher.c)?
 *
 * Batching concatenates the requests' inputs along dim 0 and splits every
 * output back along dim 0, so it is right only when, for the ranks the
 * inputs have, every output has the batch at its dim 0 and each of its rows
 * is computed from that row of the inputs alone, by kernels whose bits do
 * not depend on how many rows there are.  This walks the nodes in
 * topological order with each value's rank and whether dim 0 is the batch
 * ("rows") or the value does not depend on the batch at all (a parameter,
 * "constant"), resolving negative dims against the ranks -- a softmax over
 * dim -1 of rank-1 rows is over the batch.  What mixes rows (a reduction or
 * softmax over dim 0, cat/stack/chunk/select along it, a transpose or
 * permute that moves it, a broadcast that aligns the batch with another
 * dim, a matmul that contracts it, a reshape, whose effect on the rows
 * depends on the sizes) or is not known to be batch-invariant (the modules
 * beyond Linear, Embedding, the activations, Dropout, Identity, Softmax and
 * Flatten, as for layer lists) makes the ranks unbatchable, naming the node.
 *
 * The ranks of a request are known only when it comes: the batcher asks
 * again for each distinct set of input ranks (and sends a request whose
 * ranks cannot be batched alone); the spec is refused at create time when
 * it cannot be batched at the ranks of a plain batch -- rank 1 for an index
 * input (an Embedding's), rank 2 otherwise -- nor with [batch, seq] token
 * sequences for some of the index inputs. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/models/spec_graph_internal.h"

enum { CONSTANT, ROWS, ROW_TUPLE };

typedef struct bval {
    int kind;
    int rank;               /* -1: not known (constants only) */
} bval;

typedef struct bctx {
    const gnode *nd;
    char *why;
    size_t cap;
} bctx;

__attribute__((format(printf, 2, 3))) static bool bad(bctx *c, const char *fmt, ...)
{
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const gnode *nd = c->nd;
    const char *what = nd->kind == ET_GNODE_OP ? et_graph_op_name((et_graph_op)nd->op)
                       : nd->kind == ET_GNODE_ATTR ? "attr"
                       : nd->mod->kind == 1 ? "Sequential"
                                            : nd->mod->layer.type->name;
    snprintf(c->why, c->cap, "nodes[%d] (%s, %s): %s", nd->spec, nd->name, what, reason);
    return false;
}

/* dim d of a value of rank r, as torch wraps it */
static int wrap(int d, int r) { return d < 0 ? d + r : d; }

/* One layer of a module node on x (updated in place). */
static bool layer_rows(bctx *c, const etd_layer *l, bval *x)
{
    static const char *const plain[] = {"ReLU", "Tanh", "Sigmoid", "GELU", "LeakyReLU",
                                        "Dropout", "Identity", NULL};
    const char *n = l->type->name;
    for (int i = 0; plain[i]; i++)
        if (!strcmp(n, plain[i]))
            return true;
    if (!strcmp(n, "Linear")) {
        if (x->rank < 2)
            return bad(c, "Linear over rank-%d rows would take the batch as its features",
                       x->rank);
        return true;
    }
    if (!strcmp(n, "Embedding")) {
        if (l->u.embedding.o.max_norm > 0)
            return bad(c, "Embedding with max_norm renormalises its weights in the forward");
        x->rank++;
        return true;
    }
    if (!strcmp(n, "Softmax") || !strcmp(n, "LogSoftmax")) {
        if (wrap(l->u.softmax.dim, x->rank) == 0)
            return bad(c, "%s over dim %d: the batch dimension", n, l->u.softmax.dim);
        return true;
    }
    if (!strcmp(n, "Flatten")) {
        int s = wrap(l->u.flatten.start_dim, x->rank), e = wrap(l->u.flatten.end_dim, x->rank);
        if (s == 0 && e > 0)
            return bad(c, "Flatten from dim 0 merges the batch with dim %d", e);
        if (e > s)
            x->rank -= e - s;
        return true;
    }
    return bad(c, "%s's forward is not known to be batch-invariant (rows computed together "
               "may differ in their last bits from rows computed alone)", n);
}

static bool module_rows(bctx *c, const gmod *m, bval *x)
{
    if (m->kind == 0)
        return layer_rows(c, &m->layer, x);
    for (int i = 0; i < m->nkids; i++)
        if (!module_rows(c, &m->kids[i], x))
            return false;
    return true;
}

/* A broadcasting op of a and b. */
static bool broadcast(bctx *c, bval a, bval b, bval *out)
{
    if (a.kind == CONSTANT && b.kind == CONSTANT) {
        *out = (bval){CONSTANT, a.rank < 0 || b.rank < 0 ? -1 : a.rank > b.rank ? a.rank : b.rank};
        return true;
    }
    if (a.kind == ROWS && b.kind == ROWS) {
        if (a.rank != b.rank)
            return bad(c, "broadcasting rank-%d rows with rows of another rank aligns the "
                       "batch with another dim", a.rank > b.rank ? b.rank : a.rank);
        *out = a;
        return true;
    }
    bval r = a.kind == ROWS ? a : b, k = a.kind == ROWS ? b : a;
    if (k.rank < 0 || k.rank >= r.rank)
        return bad(c, "a value that does not depend on the batch, of rank %d or more, "
                   "broadcasts over the batch dimension", r.rank);
    *out = r;
    return true;
}

static bool matmul_rows(bctx *c, bval a, bval b, bval *out)
{
    if (a.kind == CONSTANT && b.kind == CONSTANT) {
        *out = (bval){CONSTANT, -1};
        return true;
    }
    if (a.kind == ROWS && b.kind == CONSTANT && a.rank >= 2 && (b.rank == 1 || b.rank == 2)) {
        *out = (bval){ROWS, b.rank == 1 ? a.rank - 1 : a.rank};
        return true;
    }
    if (a.kind == CONSTANT && b.kind == ROWS && b.rank >= 3 && (a.rank == 1 || a.rank == 2)) {
        *out = (bval){ROWS, a.rank == 1 ? b.rank - 1 : b.rank};
        return true;
    }
    if (a.kind == ROWS && b.kind == ROWS && a.rank >= 3 && a.rank == b.rank) {
        *out = a;   /* a batched matmul over the rows */
        return true;
    }
    return bad(c, "this matmul of %s would contract or move the batch dimension",
               a.kind == ROWS && b.kind == ROWS ? "rows with rows" : "rows of these ranks");
}

static bool op_rows(bctx *c, const bval *x, bval *out)
{
    const gnode *nd = c->nd;
    const et_graph_op_args *a = &nd->a;
    int n = nd->nargs;
    bool rows = false;
    for (int i = 0; i < n; i++)
        rows |= x[i].kind == ROWS;
    if (!rows && nd->op != ET_GOP_GETITEM) {   /* nothing of the batch in it */
        *out = (bval){CONSTANT, -1};
        return true;
    }
    int r = x[0].rank;
    switch (nd->op) {
    case ET_GOP_ADD: case ET_GOP_SUB: case ET_GOP_MUL: case ET_GOP_DIV:
        return broadcast(c, x[0], x[1], out);
    case ET_GOP_MATMUL:
        return matmul_rows(c, x[0], x[1], out);
    case ET_GOP_LINEAR:
        if (x[0].kind != ROWS || x[1].kind != CONSTANT || (n > 2 && x[2].kind != CONSTANT))
            return bad(c, "its weight and bias depend on the batch");
        if (r < 2)
            return bad(c, "linear over rank-%d rows would take the batch as its features", r);
        *out = x[0];
        return true;
    case ET_GOP_CAT: case ET_GOP_STACK: case ET_GOP_COSINE_SIMILARITY: {
        for (int i = 0; i < n; i++)
            if (x[i].kind != ROWS || x[i].rank != r)
                return bad(c, "its arguments are not all rows of the same rank (args[%d])", i);
        int rank = nd->op == ET_GOP_STACK ? r + 1 : r;
        if (wrap(a->dim, rank) == 0)
            return bad(c, "along dim %d: the batch dimension", a->dim);
        *out = (bval){ROWS, nd->op == ET_GOP_STACK ? r + 1
                            : nd->op == ET_GOP_CAT ? r : r - 1};
        return true;
    }
    case ET_GOP_RESHAPE:
        return bad(c, "whether a reshape keeps the rows apart depends on the sizes (use "
                   "flatten from dim 1)");
    case ET_GOP_FLATTEN: {
        int s = wrap(a->dim, r), e = wrap(a->dim1, r);
        if (s == 0 && e > 0)
            return bad(c, "flattens dims 0..%d: merges the batch with other dims (start_dim "
                       "1 keeps it)", e);
        *out = (bval){ROWS, e > s ? r - (e - s) : r};
        return true;
    }
    case ET_GOP_TRANSPOSE:
        if ((wrap(a->dim, r) == 0) != (wrap(a->dim1, r) == 0))
            return bad(c, "moves the batch dimension (dim 0) to dim %d",
                       wrap(a->dim, r) == 0 ? wrap(a->dim1, r) : wrap(a->dim, r));
        *out = x[0];
        return true;
    case ET_GOP_PERMUTE:
        if (a->nints < 1 || wrap((int)a->ints[0], r) != 0)
            return bad(c, "moves the batch dimension (dims[0] must be 0)");
        *out = x[0];
        return true;
    case ET_GOP_SUM: case ET_GOP_MEAN: {
        if (a->nints == 0)
            return bad(c, "reduces over every dim, the batch too (one value for all the rows)");
        for (int i = 0; i < a->nints; i++)
            if (wrap((int)a->ints[i], r) == 0)
                return bad(c, "reduces over dim %d: the batch dimension", (int)a->ints[i]);
        *out = (bval){ROWS, a->keepdim ? r : r - a->nints};
        return true;
    }
    case ET_GOP_SOFTMAX: case ET_GOP_LOG_SOFTMAX:
        if (wrap(a->dim, r) == 0)
            return bad(c, "over dim %d: the batch dimension", a->dim);
        *out = x[0];
        return true;
    case ET_GOP_CHUNK: case ET_GOP_SPLIT:
        if (wrap(a->dim, r) == 0)
            return bad(c, "along dim %d: the batch dimension", a->dim);
        *out = (bval){ROW_TUPLE, r};
        return true;
    case ET_GOP_GETITEM:
        if (x[0].kind == ROW_TUPLE) {
            *out = (bval){ROWS, x[0].rank};
            return true;
        }
        if (x[0].kind != ROWS) {
            *out = (bval){CONSTANT, -1};
            return true;
        }
        if (wrap(a->dim, r) == 0)
            return bad(c, "selects along dim %d: the batch dimension", a->dim);
        *out = (bval){ROWS, r - 1};
        return true;
    default:
        return bad(c, "is not known to keep the rows apart");
    }
}

/* The rank of the parameter called name, or -1. */
static int param_rank(const et_module *net, const char *name)
{
    int n = et_module_num_params(net);
    for (int i = 0; i < n; i++)
        if (!strcmp(et_module_param_name(net, i), name))
            return et_ndim(et_module_param(net, i));
    return -1;
}

bool etd_graph_rows_ok(const etd_graph *g, const et_module *net, const int *ranks, char *why,
                       size_t cap)
{
    bval v[ETD_GMAX_IO + GMAX_NODES];
    for (int i = 0; i < g->ninputs; i++) {
        if (ranks[i] < 1) {
            snprintf(why, cap, "inputs[%d] (%s): a rank-0 input has no batch dimension", i,
                     g->inputs[i]);
            return false;
        }
        v[i] = (bval){ROWS, ranks[i]};
    }
    for (int o = 0; o < g->nnodes; o++) {
        int k = g->order[o];
        const gnode *nd = &g->nodes[k];
        bctx c = {nd, why, cap};
        bval *out = &v[g->ninputs + k];
        if (nd->kind == ET_GNODE_ATTR) {
            *out = (bval){CONSTANT, net ? param_rank(net, nd->target) : -1};
            continue;
        }
        bval x[GMAX_ARGS];
        for (int i = 0; i < nd->nargs; i++)
            x[i] = v[nd->argv[i]];
        if (nd->kind == ET_GNODE_MODULE) {
            if (nd->nargs == 1 && x[0].kind == CONSTANT) { /* nothing of the batch in it */
                *out = (bval){CONSTANT, -1};
                continue;
            }
            if (nd->nargs != 1)
                return bad(&c, "modules of several arguments are not known to be "
                           "batch-invariant");
            *out = x[0];
            if (!module_rows(&c, nd->mod, out))
                return false;
            continue;
        }
        if (!op_rows(&c, x, out))
            return false;
    }
    for (int i = 0; i < g->nout; i++) {
        int val = g->out_val[i];
        if (v[val].kind != ROWS) {
            snprintf(why, cap, "outputs[%d] (%s): does not depend on the batch (no row per "
                     "request to split back)", i, g->outputs[i]);
            return false;
        }
    }
    return true;
}

bool etd_graph_check_batching(const etd_graph *g, const et_module *net, etd_err *e)
{
    /* the ranks of a plain batch first (its answer is the one reported),
     * then with index inputs of [batch, seq] tokens instead of [batch] ids
     * (each one or not) */
    int n = g->ninputs, base[ETD_GMAX_IO] = {0}, ranks[ETD_GMAX_IO], idx[ETD_GMAX_IO], nidx = 0;
    for (int i = 0; i < n; i++) {
        base[i] = g->in_dtype[i] == ET_INT64 ? 1 : 2;
        if (g->in_dtype[i] == ET_INT64 && nidx < 8)
            idx[nidx++] = i;
    }
    char why[ETD_ERRCAP], other[ETD_ERRCAP];
    if (etd_graph_rows_ok(g, net, base, why, sizeof why))
        return true;
    for (unsigned c = 1; c < 1u << nidx; c++) {
        memcpy(ranks, base, sizeof ranks);
        for (int i = 0; i < nidx; i++)
            ranks[idx[i]] += (int)(c >> i & 1u);
        if (etd_graph_rows_ok(g, net, ranks, other, sizeof other))
            return true;
    }
    return etd_fail(e, ETD_EINVAL, "batching: the model cannot be batched dynamically: %s",
                    why), false;
}
