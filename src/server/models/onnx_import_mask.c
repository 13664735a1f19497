/* onnx_import_mask.c - the masks of attention in a graph import
 * (onnx_import_ops.c).  torch.onnx.export writes nn.MultiheadAttention's
 * attn_mask and key_padding_mask (torch 1.13's F.multi_head_attention_forward)
 * as
 *   - a bool mask:  Cast(mask, to=bool) -> Where(c, -inf, zeros) -> Add to the scores;
 *   - key_padding_mask: Reshape(N, 1, 1, S) -> Expand(-1, heads, -1, -1) -> Reshape,
 *     the Expand's shape computed by ConstantOfShape / Equal / Where of constants;
 *   - both: Or (two bool masks) or Where(kpm, -inf, float mask) (masked_fill);
 *   - zeros_like(mask) as ConstantOfShape(Shape(mask)).
 * Constants fold (ConstantOfShape, Equal, Where, Not, And, Or, Cast to bool);
 * on values they become graph op nodes: Where(c, number, x) is
 * masked_fill(x, c, number), Where(c, number, number) masked_fill(number,
 * c, number) (a tensor of c's shape), Not/And/Or logical_not/and/or, Expand
 * expand.  A bool value is any number, nonzero true (graph ops test != 0),
 * and becomes 0/1 only where a Cast to float asks for it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_import_internal.h"
#include "server/models/onnx_import_ops.h"

/* ------------------------------------------------------------ folding */

static bool truth(const oi_const *k, int64_t i, bool *out) /* a known element's truth */
{
    if (k->is_int) {
        if (k->iv[i].p < 0 || (k->iv[i].p > 0 && k->iv[i].k == 0))
            return false;
        *out = k->iv[i].k != 0; /* k * batch^p, batch >= 1 */
        return true;
    }
    *out = k->fv[i] != 0; /* NaN is true, as torch's bool() */
    return true;
}

/* The broadcast of constants ks[0..n) of one shape or one element each:
 * the biggest's shape; false when they do not fit. */
static const oi_const *fold_shape(const oi_const *const *ks, int n)
{
    const oi_const *big = ks[0];
    for (int j = 1; j < n; j++)
        big = ks[j]->n > big->n ? ks[j] : big;
    for (int j = 0; j < n; j++) {
        if (ks[j]->n == 1)
            continue;
        if (ks[j]->nd != big->nd)
            return NULL;
        for (int d = 0; d < big->nd; d++)
            if (ks[j]->dims[d] != big->dims[d])
                return NULL;
    }
    return big;
}

#define AT(k, i) ((k)->n == 1 ? 0 : (i))

static etd_rc fold_logic(ctx *C, const char *op)
{
    oi_graph *G = C->G;
    const Onnx__NodeProto *n = C->n;
    bool where = !strcmp(op, "Where"), un = !strcmp(op, "Not");
    int na = where ? 3 : un ? 1 : 2;
    if ((int)n->n_input != na)
        return FAIL("expected %s inputs", where ? "3" : un ? "1" : "2");
    const oi_const *k[3];
    for (int j = 0; j < na; j++)
        if (!(k[j] = cget(G, n->input[j])))
            return FAIL("%s", "an input is missing");
    const oi_const *big = fold_shape(k, na);
    if (!big)
        return FAIL("%s", "constant operands of shapes this import does not broadcast");
    bool is_int = where ? k[1]->is_int && k[2]->is_int : true;
    oi_const *r = new_const(G, oi_s(n->output[0]), is_int, big->nd, big->dims, big->n);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < big->n; i++) {
        bool a, b = false;
        if (where) {
            if (!truth(k[0], AT(k[0], i), &a))
                return FAIL("%s", "a condition not known here");
            const oi_const *s = a ? k[1] : k[2];
            if (is_int)
                r->iv[i] = s->iv[AT(s, i)];
            else
                r->fv[i] = (float)const_num(s, AT(s, i));
            continue;
        }
        if (!strcmp(op, "Equal")) {
            const oi_const *x = k[0], *y = k[1];
            int64_t ix = AT(x, i), iy = AT(y, i);
            if (x->is_int && y->is_int) {
                oi_dim p = x->iv[ix], q = y->iv[iy];
                if (dim_eq(p, q))
                    a = true;
                else if (dim_known(p) && dim_known(q))
                    a = false;
                else
                    return FAIL("%s", "an Equal of dimensions not known here");
            } else {
                a = const_num(x, ix) == const_num(y, iy);
            }
            r->iv[i] = (oi_dim){a, 0};
            continue;
        }
        if (!truth(k[0], AT(k[0], i), &a) || (!un && !truth(k[1], AT(k[1], i), &b)))
            return FAIL("%s", "an operand not known here");
        r->iv[i] = (oi_dim){un ? !a : !strcmp(op, "And") ? a && b : a || b, 0};
    }
    return ETD_OK;
}

/* ConstantOfShape(shape): a constant of that shape filled with the value
 * attribute (float 0 by default); uniform (sym) when the shape follows the
 * batch or is too big to hold. */
static etd_rc constant_of_shape(ctx *C)
{
    const Onnx__NodeProto *n = C->n;
    const oi_const *sh = cget(C->G, n->input[0]);
    if (!sh || !sh->is_int || sh->nd > 1 || sh->n > ET_MAX_DIMS)
        return FAIL("%s", "the shape must be a constant 1-D list of at most 8 integers");
    const Onnx__AttributeProto *va = attr(n, "value");
    oi_const one = {.is_int = false, .n = 1, .fv = &(float){0}};
    const oi_const *v = &one;
    if (va && va->t && !(v = oi_const_of_tensor(C->G, "", va->t)))
        return FAIL("%s", "its value must be one float, double, int or bool");
    if (v->n != 1)
        return FAIL("%s", "its value must be one element");
    int64_t dims[ET_MAX_DIMS], total = 1;
    bool known = true;
    for (int64_t d = 0; d < sh->n; d++) {
        oi_dim x = sh->iv[d];
        if (dim_known(x) && x.k < 0)
            return FAIL("%s", "a negative dimension in the shape");
        known = known && dim_known(x) && x.k <= OI_MAX_CONST;
        dims[d] = dim_known(x) ? x.k : -1;
        if (known && (total *= x.k) > OI_MAX_CONST) /* both <= 4096: no overflow */
            known = false;
    }
    int nd = (int)sh->n;
    oi_const *r = new_const(C->G, oi_s(n->output[0]), v->is_int, nd, dims, known ? total : 1);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < r->n; i++) {
        if (v->is_int)
            r->iv[i] = v->iv[0];
        else
            r->fv[i] = v->fv[0];
    }
    if (!known) {
        r->sym = true;
        for (int d = 0; d < nd; d++)
            r->sd[d] = sh->iv[d];
    }
    return ETD_OK;
}

/* Cast of a constant to bool: nonzero is 1 */
static etd_rc fold_to_bool(ctx *C, const oi_const *a)
{
    oi_const *r = new_const(C->G, oi_s(C->n->output[0]), true, a->nd, a->dims, a->n);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < a->n; i++) {
        bool t;
        if (!truth(a, i, &t))
            return FAIL("%s", "a value not known here");
        r->iv[i] = (oi_dim){t, 0};
    }
    return ETD_OK;
}

/* ------------------------------------------------------------ on values */

/* An operand of Where: a value, or a constant of one value (a number) with
 * the shape it broadcasts as. */
typedef struct operand {
    const char *spec;         /* a value's spec name, or NULL: the number v */
    double v;
    oi_shape s;
    bool boolish;
} operand;

static bool operand_of(ctx *C, const char *name, operand *o)
{
    const oi_val *x = oi_find(C->G, name);
    if (x) {
        *o = (operand){.spec = x->spec, .s = x->s, .boolish = x->boolish};
        return true;
    }
    const oi_const *k = cget(C->G, name), *sym = k ? NULL : oi_cget_sym(C->G, name);
    if (sym) {
        *o = (operand){.v = const_num(sym, 0), .s = {.nd = sym->nd}};
        memcpy(o->s.d, sym->sd, sizeof sym->sd);
        return true;
    }
    if (!k)
        return false;
    for (int64_t i = 1; i < k->n; i++)
        if (!(const_num(k, i) == const_num(k, 0)))
            return false;
    *o = (operand){.v = k->n ? const_num(k, 0) : 0, .s = {.nd = k->nd}};
    for (int d = 0; d < k->nd; d++)
        o->s.d[d] = (oi_dim){k->dims[d], 0};
    return k->n > 0;
}

static bool shape_eq(const oi_shape *a, const oi_shape *b)
{
    if (a->nd != b->nd || a->nd < 0)
        return false;
    for (int d = 0; d < a->nd; d++)
        if (!dim_eq(a->d[d], b->d[d]))
            return false;
    return true;
}

static bool all_ones(const oi_shape *s)
{
    for (int d = 0; d < s->nd; d++)
        if (!(dim_known(s->d[d]) && s->d[d].k == 1))
            return false;
    return s->nd >= 0;
}

static etd_rc where_node(ctx *C)
{
    const Onnx__NodeProto *n = C->n;
    if (n->n_input != 3)
        return FAIL("%s", "expected 3 inputs");
    operand o[3];
    for (int j = 0; j < 3; j++)
        if (!operand_of(C, oi_s(n->input[j]), &o[j]))
            return FAIL("input \"%.100s\" is a tensor constant of several values (only "
                        "values and constants of one value are taken)", oi_s(n->input[j]));
    if (!o[0].spec)
        return FAIL("%s", "a constant condition selecting between values is not supported");
    /* the result's shape, and that of the values alone (the numbers must not grow it) */
    oi_shape all = o[0].s, vals = o[0].s;
    for (int j = 1; j < 3; j++) {
        oi_shape t;
        broadcast(&all, &o[j].s, &t);
        all = t;
        if (o[j].spec) {
            broadcast(&vals, &o[j].s, &t);
            vals = t;
        }
    }
    for (int j = 1; j < 3; j++)
        if (!o[j].spec && !all_ones(&o[j].s) && !shape_eq(&all, &vals))
            return FAIL("input \"%.100s\": a constant that would broadcast the result beyond "
                        "the shape of the values (or a shape not known here)",
                        oi_s(n->input[j]));
    for (int j = 1; j < 3; j++)
        if (!o[j].spec && isnan(o[j].v))
            return FAIL("%s", "a NaN operand is not supported");
    char name[OI_NAMELEN], inv[OI_NAMELEN];
    const char *c = o[0].spec;
    cJSON *nd;
    if (o[1].spec && o[2].spec) {
        nd = emit(C, "where", (const char *[]){c, o[1].spec, o[2].spec}, 3, NULL, true, &all,
                  name);
        if (nd && o[1].boolish && o[2].boolish)
            oi_find(C->G, oi_s(n->output[0]))->boolish = true;
        return nd ? ETD_OK : OOM();
    }
    /* masked_fill(x, mask, value): value where the mask is true */
    int fill = o[1].spec ? 2 : 1;  /* the number written */
    const char *x = o[1].spec ? o[1].spec : o[2].spec;
    if (o[1].spec) {               /* Where(c, x, number): x.masked_fill(not c, number) */
        oi_shape cs = o[0].s;
        if (!emit(C, "logical_not", (const char *[]){c}, 1, NULL, false, &cs, inv))
            return OOM();
        c = inv;
    }
    double scalar = o[2].v;
    if (!x && !isfinite(scalar))
        return FAIL("%s", "both operands constant, the one where the condition is false must "
                    "be finite");
    nd = x ? emit(C, "masked_fill", (const char *[]){x, c}, 2, NULL, true, &all, name)
           : emit(C, "masked_fill", (const char *[]){NULL, c}, 2, &scalar, true, &all, name);
    if (!nd)
        return OOM();
    double v = o[fill].v;
    if (isfinite(v))
        cJSON_AddNumberToObject(nd, "value", v);
    else
        cJSON_AddStringToObject(nd, "value", v < 0 ? "-inf" : "inf");
    return ETD_OK;
}

/* Expand(x, shape): ONNX broadcasts x to shape; torch's expand with -1
 * where x's dimension stays */
static etd_rc expand_node(ctx *C, const oi_val *x)
{
    const Onnx__NodeProto *n = C->n;
    const oi_const *sh = n->n_input == 2 ? cget(C->G, n->input[1]) : NULL;
    if (!sh || !sh->is_int || sh->nd > 1 || sh->n > ET_MAX_DIMS)
        return FAIL("%s", "the shape must be a constant 1-D list of at most 8 integers");
    if (x->s.nd < 0)
        return FAIL("%s", "the input's rank is not known here");
    oi_shape want = {.nd = (int)sh->n}, os;
    for (int d = 0; d < want.nd; d++)
        want.d[d] = sh->iv[d];
    broadcast(&x->s, &want, &os);
    int64_t ints[ET_MAX_DIMS];
    for (int d = 0; d < os.nd; d++) {
        int xd = d - (os.nd - x->s.nd);
        if (xd >= 0 && dim_eq(x->s.d[xd], os.d[d]))
            ints[d] = -1;
        else if (dim_known(os.d[d]) && os.d[d].k >= 0 &&
                 (xd < 0 || (dim_known(x->s.d[xd]) && x->s.d[xd].k == 1)))
            ints[d] = os.d[d].k;
        else
            return FAIL("%s", "a dimension that does not broadcast (or is not known here)");
    }
    char name[OI_NAMELEN];
    const char *spec = x->spec;
    cJSON *nd = emit(C, "expand", (const char *[]){spec}, 1, NULL, true, &os, name);
    if (!nd)
        return OOM();
    cJSON *a = cJSON_AddArrayToObject(nd, "shape");
    for (int d = 0; d < os.nd; d++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ints[d]));
    return ETD_OK;
}

etd_rc oi_mask_node(ctx *C, bool *handled)
{
    oi_graph *G = C->G;
    const Onnx__NodeProto *n = C->n;
    const char *op = oi_s(n->op_type);
    bool logic = !strcmp(op, "Where") || !strcmp(op, "Not") || !strcmp(op, "And") ||
                 !strcmp(op, "Or") || !strcmp(op, "Equal");
    bool cast = !strcmp(op, "Cast");
    *handled = true;
    if (!strcmp(op, "ConstantOfShape") && n->n_input == 1 && cget(G, n->input[0]))
        return constant_of_shape(C);
    if (n->n_input >= 1 && all_const(G, n)) {
        if (logic)
            return fold_logic(C, op);
        if (cast && oi_attr_i(n, "to", 0) == T_BOOL)
            return fold_to_bool(C, cget(G, n->input[0]));
        *handled = false; /* oi_fold's */
        return ETD_OK;
    }
    if (!strcmp(op, "Where"))
        return where_node(C);
    const oi_val *x0 = n->n_input ? oi_find(G, oi_s(n->input[0])) : NULL;
    if (!x0) {
        if (logic || !strcmp(op, "Expand") || !strcmp(op, "ConstantOfShape"))
            return FAIL("%s", "its first input must be a computed value or a constant");
        *handled = false;
        return ETD_OK;
    }
    oi_val x = *x0; /* emitting may move G->v */
    char name[OI_NAMELEN];
    if (cast) {
        int64_t to = oi_attr_i(n, "to", 0);
        if (to == T_FLOAT && x.boolish) { /* a bool as 0/1: masked_fill(0, x, 1) */
            double zero = 0;
            cJSON *nd = emit(C, "masked_fill", (const char *[]){NULL, x.spec}, 2, &zero, true,
                             &x.s, name);
            if (!nd)
                return OOM();
            cJSON_AddNumberToObject(nd, "value", 1);
            return ETD_OK;
        }
        if (to != T_FLOAT && to != T_BOOL)
            return FAIL("%s", "only a Cast of a value to float or to bool");
        oi_val *v = oi_add_val(G, oi_s(n->output[0]), x.spec, &x.s);
        if (!v)
            return OOM();
        v->boolish = to == T_BOOL || x.boolish;
        return ETD_OK;
    }
    if (!strcmp(op, "Expand"))
        return expand_node(C, &x);
    if (!strcmp(op, "Not") || !strcmp(op, "And") || !strcmp(op, "Or")) {
        bool un = op[0] == 'N';
        const oi_val *y = !un && n->n_input == 2 ? oi_find(G, oi_s(n->input[1])) : NULL;
        if ((un && n->n_input != 1) || (!un && !y))
            return FAIL("%s", un ? "expected one input" : "both inputs must be computed values");
        oi_shape os = x.s;
        if (y)
            broadcast(&x.s, &y->s, &os);
        const char *args[2] = {x.spec, y ? y->spec : NULL};
        cJSON *nd = emit(C, un ? "logical_not" : op[0] == 'A' ? "logical_and" : "logical_or",
                         args, un ? 1 : 2, NULL, true, &os, name);
        if (!nd)
            return OOM();
        oi_find(G, oi_s(n->output[0]))->boolish = true;
        return ETD_OK;
    }
    if (logic) /* Equal */
        return FAIL("%s", "an Equal of computed values is not supported (only of constants "
                    "and shapes)");
    *handled = false;
    return ETD_OK;
}
