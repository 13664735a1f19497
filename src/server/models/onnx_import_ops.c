/* onnx_import_ops.c - the ONNX primitives a graph import maps onto graph op
 * nodes (spec_graph.h), and the constant computations it folds away.
 *
 * torch.onnx.export writes attention, GELU, chunk/permute/view and the like
 * as primitives: Transpose, Softmax, ReduceMean/Sum, Split, Slice, Squeeze,
 * Unsqueeze, Sqrt/Pow/Erf/Neg/Exp/Log, Reshape to a shape computed from the
 * input's (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), and
 * arithmetic with scalar constants.  Each becomes the op node torch.fx would
 * show (permute, softmax, mean, slice, squeeze, div(x, 8.0), reshape, ...),
 * so autograd -- and training -- is torch's.
 *
 * Constants (Constant nodes, int initializers, float scalar initializers
 * the exporter folded: "onnx::Div_12") and everything computed from
 * constants and shapes only is folded here: shapes are followed node to
 * node as dimensions k * batch^p (the file's symbolic batch dimension), so
 * a Reshape's computed shape becomes the numbers it is, the one dimension
 * that follows the batch a -1.  What cannot be followed is a 400 naming
 * the node. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_import_internal.h"
#include "server/models/onnx_import_ops.h"


static const char *const graph_only[] = {
    "Constant", "Shape", "Transpose", "ReduceMean", "ReduceSum", "Split", "Slice", "Squeeze",
    "Unsqueeze", "Sqrt", "Pow", "Erf", "Neg", "Exp", "Log", "Reciprocal", "Cast", "Add", "Sub",
    "Mul", "Div", "Concat", "Where", "Not", "And", "Or", "Equal", "Expand", "ConstantOfShape",
    NULL};

bool oi_graph_only_op(const char *op)
{
    for (int i = 0; graph_only[i]; i++)
        if (!strcmp(op, graph_only[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------ op nodes */

/* ops that only move elements: a bool stays one */
static bool moves_only(const char *op)
{
    static const char *const m[] = {"reshape", "unsqueeze", "squeeze", "permute", "slice",
                                    "expand", "getitem", "cat", NULL};
    for (int i = 0; m[i]; i++)
        if (!strcmp(op, m[i]))
            return true;
    return false;
}

static bool spec_boolish(const oi_graph *G, const char *spec)
{
    for (size_t i = G->nv; i-- > 0;)
        if (!strcmp(G->v[i].spec, spec))
            return G->v[i].boolish;
    return false;
}

cJSON *oi_emit(ctx *C, const char *op, const char *const *args, int nargs, const double *scalar,
               bool last, const oi_shape *s, char *name)
{
    oi_graph *G = C->G;
    char d[40];
    snprintf(d, sizeof d, "n%zu_%d", C->i, C->emitted++);
    bool ok = last ? oi_node_name(G, C->n, oi_s(C->n->output[0]), C->i, name)
                   : oi_take(G, d, name);
    cJSON *node = ok ? cJSON_CreateObject() : NULL;
    if (!node)
        return NULL;
    cJSON_AddItemToArray(G->nodes, node);
    cJSON_AddStringToObject(node, "name", name);
    cJSON_AddStringToObject(node, "op", op);
    cJSON *a = cJSON_AddArrayToObject(node, "args");
    for (int j = 0; j < nargs; j++)
        cJSON_AddItemToArray(a, args[j] ? cJSON_CreateString(args[j])
                                        : cJSON_CreateNumber(*scalar));
    bool boolish = moves_only(op) && nargs > 0;
    for (int j = 0; j < nargs && boolish; j++)
        boolish = args[j] && spec_boolish(G, args[j]);
    oi_val *v = last ? oi_add_val(G, oi_s(C->n->output[0]), name, s) : NULL;
    if (last && !v)
        return NULL;
    if (v)
        v->boolish = boolish;
    return node;
}

static void add_ints(cJSON *node, const char *key, const int64_t *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(node, key);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

/* the element of dimension d of shape s after a slice [st, en) by sp */
static oi_dim slice_dim(oi_dim d, int64_t st, int64_t en, int64_t sp)
{
    if (!dim_known(d))
        return st == 0 && en >= BIG && sp == 1 ? d : UNKNOWN;
    int64_t n = d.k;
    st = st < 0 ? st + n : st;
    en = en < 0 ? en + n : en;
    st = st < 0 ? 0 : st > n ? n : st;
    en = en < st ? st : en > n ? n : en;
    return (oi_dim){en == st ? 0 : (en - st - 1) / sp + 1, 0};
}

/* x sliced along dim [st, en) by sp; out the spec node's name */
static bool emit_slice(ctx *C, const char *x, const oi_shape *xs, int dim, int64_t st,
                       int64_t en, int64_t sp, bool last, oi_shape *os, char *out)
{
    sp = sp > BIG ? BIG : sp;
    *os = *xs;
    if (os->nd > dim)
        os->d[dim] = slice_dim(xs->d[dim], st, en, sp);
    cJSON *nd = emit(C, "slice", (const char *[]){x}, 1, NULL, last, os, out);
    if (!nd)
        return false;
    cJSON_AddNumberToObject(nd, "dim", dim);
    cJSON_AddNumberToObject(nd, "start", (double)(st < -BIG ? -BIG : st > BIG ? BIG : st));
    if (en < BIG)
        cJSON_AddNumberToObject(nd, "end", (double)(en < -BIG ? -BIG : en));
    if (sp != 1)
        cJSON_AddNumberToObject(nd, "step", (double)sp);
    return true;
}

/* Is ONNX value v read by a node after i or a graph output? */
static bool used_after(const oi_graph *G, const char *v, size_t i)
{
    const Onnx__GraphProto *g = G->x->g;
    for (size_t o = 0; o < g->n_output; o++)
        if (!strcmp(oi_s(g->output[o]->name), v))
            return true;
    for (size_t k = i + 1; k < g->n_node; k++)
        for (size_t j = 0; j < g->node[k]->n_input; j++)
            if (!strcmp(oi_s(g->node[k]->input[j]), v))
                return true;
    return false;
}

static etd_rc split_node(ctx *C, const oi_val *xv)
{
    const oi_val copy = *xv, *x = &copy; /* each piece's value may move G->v */
    const Onnx__NodeProto *n = C->n;
    int axis;
    if (!norm_axis(oi_attr_i(n, "axis", 0), x->s.nd, &axis))
        return FAIL("%s", "the axis is out of range (or the input's rank unknown)");
    int64_t sz[ET_MAX_DIMS * 8];
    int k = (int)n->n_output;
    if (k < 1 || k > (int)(sizeof sz / sizeof *sz))
        return FAIL("%s", "too many outputs");
    const Onnx__AttributeProto *sa = attr(n, "split");
    const oi_const *sc = n->n_input > 1 ? cget(C->G, n->input[1]) : NULL;
    if (n->n_input > 1 && oi_s(n->input[1])[0] && !sc)
        return FAIL("%s", "the split sizes must be constant");
    if (sa || sc) {
        if ((sa ? (int)sa->n_ints : (int)sc->n) != k)
            return FAIL("%s", "one split size per output");
        for (int j = 0; j < k; j++)
            if (sa ? (sz[j] = sa->ints[j]) < 0 : !const_int(sc, j, &sz[j]) || sz[j] < 0 ||
                sz[j] > BIG)
                return FAIL("%s", "the split sizes must be non-negative integers");
    } else { /* equal pieces of a known dimension */
        oi_dim d = x->s.d[axis];
        if (!dim_known(d) || d.k % k)
            return FAIL("%s", "a split into equal pieces of a dimension not known here");
        for (int j = 0; j < k; j++)
            sz[j] = d.k / k;
    }
    int64_t at = 0;
    for (int j = 0; j < k; j++) {
        const char *o = oi_s(n->output[j]);
        if (o[0] && used_after(C->G, o, C->i)) {
            ctx one = *C;
            oi_shape os;
            char name[OI_NAMELEN];
            /* each piece a slice, named after the value it gives */
            Onnx__NodeProto piece = *n;
            char *outs[1] = {(char *)o};
            piece.output = outs;
            piece.n_output = 1;
            one.n = &piece;
            if (!emit_slice(&one, x->spec, &x->s, axis, at, at + sz[j], 1, true, &os, name))
                return OOM();
            C->emitted = one.emitted;
        }
        at += sz[j];
    }
    return ETD_OK;
}

static etd_rc slice_node(ctx *C, const oi_val *x)
{
    oi_graph *G = C->G;
    const Onnx__NodeProto *n = C->n;
    int64_t st[ET_MAX_DIMS], en[ET_MAX_DIMS], ax[ET_MAX_DIMS], sp[ET_MAX_DIMS];
    int ns = ints_of(G, n, NULL, 1, st), ne = ints_of(G, n, NULL, 2, en);
    int na = ints_of(G, n, NULL, 3, ax), np = ints_of(G, n, NULL, 4, sp);
    if (ns < 1 || ne != ns || na == -2 || np == -2 || (na >= 0 && na != ns) ||
        (np >= 0 && np != ns))
        return FAIL("%s", "starts, ends (and axes, steps) must be constant lists of one length");
    const char *cur = x->spec;
    oi_shape s = x->s;
    char name[OI_NAMELEN];
    for (int j = 0; j < ns; j++) {
        int dim;
        int64_t step = np >= 0 ? sp[j] : 1;
        if (!norm_axis(na >= 0 ? ax[j] : j, s.nd, &dim))
            return FAIL("%s", "an axis out of range (or the input's rank unknown)");
        if (step < 1)
            return FAIL("%s", "only positive steps");
        oi_shape os;
        if (!emit_slice(C, cur, &s, dim, st[j], en[j], step, j == ns - 1, &os, name))
            return OOM();
        cur = name;
        s = os;
    }
    return ETD_OK;
}

/* Squeeze / Unsqueeze: one op node per axis */
static etd_rc squeeze_node(ctx *C, const oi_val *x, bool un)
{
    const Onnx__NodeProto *n = C->n;
    int64_t ax[ET_MAX_DIMS];
    int na = ints_of(C->G, n, "axes", 1, ax);
    if (na == -2 || (un && na < 1))
        return FAIL("%s", "the axes must be constant");
    oi_shape s = x->s;
    int out_nd = s.nd < 0 ? -1 : un ? s.nd + na : s.nd;
    int axes[ET_MAX_DIMS], k = 0;
    if (na < 0) { /* squeeze every dimension of size 1 */
        for (int d = 0; d < s.nd; d++) {
            if (!dim_known(s.d[d]) && !(s.d[d].p > 0))
                return FAIL("%s", "a Squeeze without axes of a shape not known here");
            if (dim_known(s.d[d]) && s.d[d].k == 1)
                axes[k++] = d;
        }
    } else {
        for (int j = 0; j < na; j++)
            if (!norm_axis(ax[j], un ? out_nd : s.nd, &axes[k++]))
                return FAIL("%s", "an axis out of range (or the input's rank unknown)");
    }
    /* unsqueeze in ascending order of the output's axes, squeeze descending */
    for (int a = 0; a < k; a++)
        for (int b = a + 1; b < k; b++)
            if (un ? axes[b] < axes[a] : axes[b] > axes[a]) {
                int t = axes[a];
                axes[a] = axes[b];
                axes[b] = t;
            }
    const char *cur = x->spec;
    char name[OI_NAMELEN];
    if (k == 0)
        return oi_add_val(C->G, oi_s(n->output[0]), x->spec, &x->s) ? ETD_OK : OOM();
    for (int j = 0; j < k; j++) {
        int d = axes[j];
        if (!un && s.nd > d && !(dim_known(s.d[d]) && s.d[d].k == 1))
            return FAIL("%s", "a Squeeze of a dimension not known to be 1");
        if (s.nd >= 0) {
            if (un) {
                if (s.nd >= ET_MAX_DIMS)
                    return FAIL("%s", "too many dimensions");
                memmove(&s.d[d + 1], &s.d[d], (size_t)(s.nd - d) * sizeof s.d[0]);
                s.d[d] = (oi_dim){1, 0};
                s.nd++;
            } else {
                memmove(&s.d[d], &s.d[d + 1], (size_t)(s.nd - d - 1) * sizeof s.d[0]);
                s.nd--;
            }
        }
        cJSON *nd = emit(C, un ? "unsqueeze" : "squeeze", (const char *[]){cur}, 1, NULL,
                         j == k - 1, &s, name);
        if (!nd)
            return OOM();
        cJSON_AddNumberToObject(nd, "dim", d);
        cur = name;
    }
    return ETD_OK;
}

/* Reshape(x, shape): ONNX's 0 copies x's dimension, the one entry that
 * follows the batch (or x's -1) becomes torch's -1. */
static etd_rc reshape_node(ctx *C, const oi_val *x, const oi_const *sh)
{
    if (!sh || !sh->is_int || sh->nd != 1 || sh->n < 1 || sh->n > ET_MAX_DIMS)
        return FAIL("%s", "the shape must be a constant (or computed from shapes) 1-D list of "
                    "at most 8 integers");
    if (oi_attr_i(C->n, "allowzero", 0))
        return FAIL("%s", "allowzero = 1 is not supported");
    oi_shape os = {.nd = (int)sh->n};
    int minus = -1;
    for (int d = 0; d < os.nd; d++) {
        oi_dim v = sh->iv[d];
        if (dim_known(v) && v.k == 0)
            v = x->s.nd > d ? x->s.d[d] : UNKNOWN;
        if (dim_known(v) && v.k == -1) {
            if (minus >= 0)
                return FAIL("%s", "more than one -1 in the shape");
            minus = d;
        } else if (dim_known(v) && v.k < 0) {
            return FAIL("%s", "a negative dimension in the shape");
        }
        os.d[d] = v;
    }
    if (minus >= 0) { /* -1: what is left of x's elements */
        oi_dim rest = {1, 0};
        for (int d = 0; d < os.nd; d++)
            if (d != minus)
                rest = dim_mul(rest, os.d[d]);
        os.d[minus] = dim_div(numel_of(&x->s), rest);
    }
    int64_t out[ET_MAX_DIMS];
    int sym = 0;
    for (int d = 0; d < os.nd; d++) {
        out[d] = dim_known(os.d[d]) ? os.d[d].k : -1;
        sym += !dim_known(os.d[d]);
    }
    if (sym > 1)
        return FAIL("%s", "more than one dimension of the shape depends on the batch or is "
                    "not known here");
    char name[OI_NAMELEN];
    cJSON *nd = emit(C, "reshape", (const char *[]){x->spec}, 1, NULL, true, &os, name);
    if (!nd)
        return OOM();
    add_ints(nd, "shape", out, os.nd);
    return ETD_OK;
}

static etd_rc matmul_shape(const oi_shape *a, const oi_shape *b, oi_shape *o)
{
    o->nd = -1;
    if (a->nd < 2 || b->nd < 2)
        return ETD_OK;
    oi_shape ba = *a, bb = *b;
    ba.nd -= 2;
    bb.nd -= 2;
    broadcast(&ba, &bb, o);
    if (o->nd + 2 > ET_MAX_DIMS) {
        o->nd = -1;
        return ETD_OK;
    }
    o->d[o->nd] = a->d[a->nd - 2];
    o->d[o->nd + 1] = b->d[b->nd - 1];
    o->nd += 2;
    return ETD_OK;
}

static void lower_op(char *dst, size_t cap, const char *op) /* "MatMul" -> "matmul" */
{
    size_t k = 0;
    for (; op[k] && k + 1 < cap; k++)
        dst[k] = (char)(op[k] >= 'A' && op[k] <= 'Z' ? op[k] - 'A' + 'a' : op[k]);
    dst[k] = 0;
}

etd_rc oi_ops_node(oi_graph *G, const Onnx__NodeProto *n, size_t i, bool *handled)
{
    ctx c = {G, n, i, 0}, *C = &c;
    const char *op = oi_s(n->op_type);
    *handled = true;
    if (!strcmp(op, "Constant"))
        return oi_constant_node(C);
    etd_rc rc = oi_mask_node(C, handled);
    if (rc != ETD_OK || *handled)
        return rc;
    *handled = true;
    const Onnx__TensorProto *init = n->n_input == 1 ? oi_initializer(G->x, oi_s(n->input[0]))
                                                     : NULL;
    if (!strcmp(op, "Identity") && init && init->data_type == T_FLOAT &&
        !oi_find(G, oi_s(n->input[0])))
        return oi_alias(C);
    /* the daemon exports linear(x, attr) as MatMul(x, Transpose(weight)): the weight
     * (a Linear's, or attention's under torch's names) as it is stored */
    if (!strcmp(op, "Transpose") && init && init->data_type == T_FLOAT && init->n_dims == 2 &&
        !oi_find(G, oi_s(n->input[0])) && !oi_is_const(G, oi_s(n->input[0]))) {
        const Onnx__AttributeProto *pa = attr(n, "perm");
        if (!pa || (pa->n_ints == 2 && pa->ints[0] == 1 && pa->ints[1] == 0))
            return oi_alias_as(C, true);
    }
    if (n->n_input >= 1 && all_const(G, n) && strcmp(op, "Gather") != 0)
        return oi_fold(C);
    /* Gather of constants: a table initializer is an Embedding (a module) */
    if (!strcmp(op, "Gather") && all_const(G, n) && cget(G, n->input[0]))
        return oi_fold(C);
    oi_val *x = n->n_input ? oi_find(G, oi_s(n->input[0])) : NULL;
    const oi_val *y = n->n_input > 1 ? oi_find(G, oi_s(n->input[1])) : NULL;
    char name[OI_NAMELEN];
    oi_shape os;
    if (!strcmp(op, "Shape") && x)
        return oi_shape_node(C, x);
    bool binary = !strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") ||
                  !strcmp(op, "Div") || !strcmp(op, "Pow");
    if ((binary || !strcmp(op, "MatMul")) && n->n_input == 2 && x && y) {
        char lower[8];
        lower_op(lower, sizeof lower, op);
        if (binary)
            broadcast(&x->s, &y->s, &os);
        else
            matmul_shape(&x->s, &y->s, &os);
        return emit(C, lower, (const char *[]){x->spec, y->spec}, 2, NULL, true, &os, name)
                   ? ETD_OK : OOM();
    }
    if (binary && n->n_input == 2 && (x || y)) { /* one operand a constant: a scalar */
        const oi_const *k = cget(G, n->input[x ? 1 : 0]);
        const char *other = oi_s(n->input[x ? 1 : 0]);
        if (!k && oi_initializer(G->x, other))
            return FAIL("initializer \"%.100s\" is a parameter: only layers take parameters "
                        "(a constant operand must be a scalar the exporter folded)", other);
        if (!k && oi_cget_sym(G, other))
            return FAIL("input \"%.100s\" is a constant of the batch's shape: only Where "
                        "takes one", other);
        if (!k || k->n != 1)
            return FAIL("%s", "a constant operand must be a scalar (one element)");
        double v = const_num(k, 0);
        if (!isfinite(v))
            return FAIL("%s", "a constant operand that is not a finite number");
        const oi_val *t = x ? x : y;
        oi_shape ks = {.nd = k->nd};
        for (int d = 0; d < k->nd; d++)
            ks.d[d] = (oi_dim){k->dims[d], 0};
        broadcast(&t->s, &ks, &os);
        char lower[8];
        lower_op(lower, sizeof lower, op);
        const char *args[2] = {x ? x->spec : NULL, x ? NULL : y->spec};
        return emit(C, lower, args, 2, &v, true, &os, name) ? ETD_OK : OOM();
    }
    if (!x) { /* modules on initializers (Gather of an embedding table) */
        *handled = false;
        return ETD_OK;
    }
    if (!strcmp(op, "Sqrt") || !strcmp(op, "Erf") || !strcmp(op, "Neg") || !strcmp(op, "Exp") ||
        !strcmp(op, "Log")) {
        char lower[8];
        lower_op(lower, sizeof lower, op);
        return emit(C, lower, (const char *[]){x->spec}, 1, NULL, true, &x->s, name)
                   ? ETD_OK : OOM();
    }
    if (!strcmp(op, "Reciprocal")) {
        double one = 1;
        return emit(C, "div", (const char *[]){NULL, x->spec}, 2, &one, true, &x->s, name)
                   ? ETD_OK : OOM();
    }
    if (!strcmp(op, "Transpose")) {
        int64_t perm[ET_MAX_DIMS];
        int np = ints_of(G, n, "perm", -1, perm);
        if (np == -1 && x->s.nd > 0) { /* default: reversed */
            np = x->s.nd;
            for (int d = 0; d < np; d++)
                perm[d] = np - 1 - d;
        }
        if (np < 1 || (x->s.nd >= 0 && np != x->s.nd))
            return FAIL("%s", "perm must list every dimension (or the input's rank be known)");
        os.nd = np;
        for (int d = 0; d < np; d++) {
            bool twice = false;
            for (int e = 0; e < d; e++)
                twice = twice || perm[e] == perm[d];
            if (perm[d] < 0 || perm[d] >= np || twice)
                return FAIL("%s", "perm must list each axis once");
            os.d[d] = x->s.nd >= 0 ? x->s.d[perm[d]] : UNKNOWN;
        }
        cJSON *nd = emit(C, "permute", (const char *[]){x->spec}, 1, NULL, true, &os, name);
        if (!nd)
            return OOM();
        add_ints(nd, "dims", perm, np);
        return ETD_OK;
    }
    if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
        cJSON *nd = emit(C, op[0] == 'S' ? "softmax" : "log_softmax", (const char *[]){x->spec},
                         1, NULL, true, &x->s, name);
        if (!nd)
            return OOM();
        cJSON_AddNumberToObject(nd, "dim", (double)oi_attr_i(n, "axis", -1));
        return ETD_OK;
    }
    if (!strcmp(op, "ReduceMean") || !strcmp(op, "ReduceSum")) {
        bool sum = !strcmp(op, "ReduceSum");
        int64_t ax[ET_MAX_DIMS];
        int na = sum ? ints_of(G, n, NULL, 1, ax) : ints_of(G, n, "axes", -1, ax);
        bool keep = oi_attr_i(n, "keepdims", 1) != 0;
        if (na == -2)
            return FAIL("%s", "the axes must be constant");
        if (sum && na <= 0 && oi_attr_i(n, "noop_with_empty_axes", 0))
            return oi_add_val(G, oi_s(n->output[0]), x->spec, &x->s) ? ETD_OK : OOM();
        bool red[ET_MAX_DIMS] = {false};
        os = x->s;
        for (int j = 0; j < na; j++) {
            int d;
            if (!norm_axis(ax[j], x->s.nd, &d))
                return FAIL("%s", "an axis out of range (or the input's rank unknown)");
            red[d] = true;
        }
        if (x->s.nd >= 0) {
            os.nd = 0;
            for (int d = 0; d < x->s.nd; d++) {
                if (na > 0 && !red[d])
                    os.d[os.nd++] = x->s.d[d];
                else if (keep)
                    os.d[os.nd++] = (oi_dim){1, 0};
            }
        }
        cJSON *nd = emit(C, sum ? "sum" : "mean", (const char *[]){x->spec}, 1, NULL, true, &os,
                         name);
        if (!nd)
            return OOM();
        if (na > 0)
            add_ints(nd, "dim", ax, na);
        cJSON_AddBoolToObject(nd, "keepdim", keep);
        return ETD_OK;
    }
    if (!strcmp(op, "Split"))
        return split_node(C, x);
    if (!strcmp(op, "Slice"))
        return slice_node(C, x);
    if (!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze"))
        return squeeze_node(C, x, op[0] == 'U');
    if (!strcmp(op, "Reshape") && n->n_input == 2)
        return reshape_node(C, x, cget(G, n->input[1]));
    if (!strcmp(op, "Gather") && n->n_input == 2 && !oi_initializer(G->x, oi_s(n->input[0]))) {
        const oi_const *k = cget(G, n->input[1]);
        int axis;
        int64_t idx;
        if (!k || k->nd != 0 || !const_int(k, 0, &idx))
            return FAIL("%s", "a Gather of a computed value needs one constant index (a select)");
        if (!norm_axis(oi_attr_i(n, "axis", 0), x->s.nd, &axis))
            return FAIL("%s", "the axis is out of range (or the input's rank unknown)");
        os = x->s;
        memmove(&os.d[axis], &os.d[axis + 1], (size_t)(os.nd - axis - 1) * sizeof os.d[0]);
        os.nd--;
        cJSON *nd = emit(C, "getitem", (const char *[]){x->spec}, 1, NULL, true, &os, name);
        if (!nd)
            return OOM();
        cJSON_AddNumberToObject(nd, "index", (double)idx);
        cJSON_AddNumberToObject(nd, "dim", axis);
        return ETD_OK;
    }
    if (!strcmp(op, "Concat")) {
        const char *args[16];
        if (n->n_input > 16)
            return FAIL("%s", "more than 16 values in");
        int axis = 0;
        int64_t ax = oi_attr_i(n, "axis", 0);
        os = x->s;
        bool known = norm_axis(ax, x->s.nd, &axis);
        for (size_t j = 0; j < n->n_input; j++) {
            const oi_val *v = oi_find(G, oi_s(n->input[j]));
            if (!v)
                return FAIL("input \"%.100s\" is a constant: only values are concatenated",
                            oi_s(n->input[j]));
            args[j] = v->spec;
            if (j && known && v->s.nd == os.nd)
                os.d[axis] = dim_add(os.d[axis], v->s.d[axis], 1);
            else if (j)
                os.nd = -1;
        }
        cJSON *nd = emit(C, "cat", args, (int)n->n_input, NULL, true, &os, name);
        if (!nd)
            return OOM();
        cJSON_AddNumberToObject(nd, "dim", (double)ax);
        return ETD_OK;
    }
    *handled = false;
    return ETD_OK;
}
