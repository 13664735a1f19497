/* onnx_import_fold.c - the constant side of a graph import
 * (onnx_import_ops.c): dimensions as k * batch^p followed node to node,
 * constants (Constant nodes, int initializers, float scalars the exporter
 * folded: "onnx::Div_12") and the nodes computing only from constants and
 * shapes (Shape -> Gather -> Unsqueeze -> Concat, Cast, arithmetic, Slice
 * of a shape), folded without a spec node; Identity of an initializer (how
 * torch writes equal initializers once) as another name of its data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_import_internal.h"
#include "server/models/onnx_import_ops.h"

/* ------------------------------------------------------------ shapes */

const oi_dim OI_UNKNOWN = {0, -1};

void oi_shape_of_info(const oi_graph *G, const Onnx__ValueInfoProto *v, oi_shape *out)
{
    out->nd = -1;
    const Onnx__TypeProto *t = v ? v->type : NULL;
    const Onnx__TensorShapeProto *sh = t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                           && t->tensor_type ? t->tensor_type->shape : NULL;
    if (!sh || sh->n_dim > ET_MAX_DIMS)
        return;
    out->nd = (int)sh->n_dim;
    for (size_t d = 0; d < sh->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            dm->dim_value >= 0 && dm->dim_value < BIG)
            out->d[d] = (oi_dim){dm->dim_value, 0};
        else if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                 G->batch[0] && !strcmp(oi_s(dm->dim_param), G->batch))
            out->d[d] = (oi_dim){1, 1};
        else
            out->d[d] = UNKNOWN;
    }
}

void oi_shape_from_file(const oi_graph *G, const char *value, oi_shape *out)
{
    const Onnx__GraphProto *g = G->x->g;
    out->nd = -1;
    for (size_t i = 0; i < g->n_value_info; i++)
        if (!strcmp(oi_s(g->value_info[i]->name), value)) {
            oi_shape_of_info(G, g->value_info[i], out);
            return;
        }
    for (size_t i = 0; i < g->n_output; i++)
        if (!strcmp(oi_s(g->output[i]->name), value)) {
            oi_shape_of_info(G, g->output[i], out);
            return;
        }
}

bool oi_dim_known(oi_dim d)
{
    return d.p == 0;
}

bool oi_dim_eq(oi_dim a, oi_dim b)
{
    return a.p >= 0 && a.p == b.p && a.k == b.k;
}

/* file data may hold any int64: overflow is "not known", never UB */
oi_dim oi_dim_mul(oi_dim a, oi_dim b)
{
    int64_t k;
    if (a.p < 0 || b.p < 0 || __builtin_mul_overflow(a.k, b.k, &k) || k > BIG || k < -BIG)
        return UNKNOWN;
    return (oi_dim){k, k != 0 ? a.p + b.p : 0};
}

oi_dim oi_dim_div(oi_dim a, oi_dim b) /* exact only; ONNX's int Div truncates */
{
    if (a.p < 0 || b.p < 0 || b.k == 0 || (a.k == INT64_MIN && b.k == -1))
        return UNKNOWN;
    if (a.p == 0 && b.p == 0)
        return (oi_dim){a.k / b.k, 0};
    if (a.p < b.p || a.k % b.k)
        return UNKNOWN;
    return (oi_dim){a.k / b.k, a.k ? a.p - b.p : 0};
}

oi_dim oi_dim_add(oi_dim a, oi_dim b, int sign)
{
    int64_t bk, k;
    if (a.p < 0 || b.p < 0 || __builtin_mul_overflow(b.k, (int64_t)sign, &bk))
        return UNKNOWN;
    if (a.k == 0)
        return (oi_dim){bk, b.p};
    if (b.k == 0)
        return a;
    if (a.p != b.p || __builtin_add_overflow(a.k, bk, &k))
        return UNKNOWN;
    return (oi_dim){k, k ? a.p : 0};
}

oi_dim oi_numel_of(const oi_shape *s)
{
    oi_dim n = {1, 0};
    for (int d = 0; d < s->nd; d++)
        n = dim_mul(n, s->d[d]);
    return s->nd < 0 ? UNKNOWN : n;
}

/* numpy broadcasting of a and b */
void oi_broadcast(const oi_shape *a, const oi_shape *b, oi_shape *out)
{
    if (a->nd < 0 || b->nd < 0) {
        out->nd = -1;
        return;
    }
    int nd = a->nd > b->nd ? a->nd : b->nd;
    out->nd = nd;
    for (int i = 0; i < nd; i++) {
        int ia = a->nd - nd + i, ib = b->nd - nd + i;
        oi_dim x = ia >= 0 ? a->d[ia] : (oi_dim){1, 0}, y = ib >= 0 ? b->d[ib] : (oi_dim){1, 0};
        out->d[i] = dim_known(x) && x.k == 1 ? y : dim_known(y) && y.k == 1 ? x
                    : dim_eq(x, y) ? x : x.p >= 0 ? x : y;
    }
}

void oi_module_shape(const cJSON *layers, const oi_shape *in, oi_shape *out)
{
    *out = *in;
    for (const cJSON *l = layers ? layers->child : NULL; l && out->nd >= 0; l = l->next) {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "type"));
        if (!t) {
            out->nd = -1;
        } else if (!strcmp(t, "Linear")) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(l, "out_features");
            if (out->nd >= 1 && cJSON_IsNumber(f))
                out->d[out->nd - 1] = (oi_dim){(int64_t)f->valuedouble, 0};
            else
                out->nd = -1;
        } else if (!strcmp(t, "Embedding")) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(l, "embedding_dim");
            if (out->nd < ET_MAX_DIMS && cJSON_IsNumber(f))
                out->d[out->nd++] = (oi_dim){(int64_t)f->valuedouble, 0};
            else
                out->nd = -1;
        } else if (!strcmp(t, "Flatten")) {
            if (out->nd >= 2) {
                oi_dim n = {1, 0};
                for (int d = 1; d < out->nd; d++)
                    n = dim_mul(n, out->d[d]);
                out->d[1] = n;
                out->nd = 2;
            }
        } else if (strcmp(t, "ReLU") && strcmp(t, "Tanh") && strcmp(t, "Sigmoid") &&
                   strcmp(t, "LeakyReLU") && strcmp(t, "GELU") && strcmp(t, "Softmax") &&
                   strcmp(t, "LogSoftmax") && strcmp(t, "LayerNorm") &&
                   strcmp(t, "BatchNorm1d") && strcmp(t, "BatchNorm2d") &&
                   strcmp(t, "Identity") && strcmp(t, "Dropout")) {
            out->nd = -1; /* convolutions, pools: the file's value_info says */
        }
    }
}

/* ------------------------------------------------------------ constants */

void oi_consts_free(oi_graph *G)
{
    for (size_t i = 0; i < G->nc; i++) {
        free(G->c[i]->iv);
        free(G->c[i]->fv);
        free(G->c[i]);
    }
    free(G->c);
    G->c = NULL;
    G->nc = G->cc = 0;
}

/* A new constant named onnx (its arrays allocated for n elements); each
 * its own allocation, so the pointers cget hands out stay valid. */
oi_const *oi_new_const(oi_graph *G, const char *onnx, bool is_int, int nd, const int64_t *dims,
                       int64_t n)
{
    if (n < 0 || n > OI_MAX_CONST || nd > ET_MAX_DIMS)
        return NULL;
    if (G->nc == G->cc) {
        size_t c = G->cc ? 2 * G->cc : 32;
        void *p = realloc(G->c, c * sizeof *G->c);
        if (!p)
            return NULL;
        G->c = p;
        G->cc = c;
    }
    oi_const *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    *k = (oi_const){.onnx = onnx, .is_int = is_int, .nd = nd, .n = n};
    for (int d = 0; d < nd; d++)
        k->dims[d] = dims[d];
    if (is_int)
        k->iv = calloc((size_t)n + 1, sizeof *k->iv);
    else
        k->fv = calloc((size_t)n + 1, sizeof *k->fv);
    if (!k->iv && !k->fv) {
        free(k);
        return NULL;
    }
    G->c[G->nc++] = k;
    return k;
}

/* Did the exporter make this initializer (a folded constant), or is it a
 * module's state (a parameter, which only a layer may take)? */
static bool folded_name(const char *s)
{
    size_t n = strlen(s);
    return strstr(s, "::") || s[0] == '/' ||
           (!strncmp(s, "nodes.", 6) && n > 7 && !strcmp(s + n - 7, ".scalar"));
}

oi_const *oi_const_of_tensor(oi_graph *G, const char *onnx, const Onnx__TensorProto *t)
{
    int dt = t->data_type;
    bool is_int = dt == T_INT64 || dt == T_INT32 || dt == T_BOOL;
    if ((!is_int && dt != T_FLOAT && dt != T_DOUBLE) || t->n_dims > ET_MAX_DIMS)
        return NULL;
    int64_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || t->dims[d] > OI_MAX_CONST)
            return NULL;
        n *= t->dims[d];
        if (n > OI_MAX_CONST)
            return NULL;
    }
    size_t es = dt == T_INT64 || dt == T_DOUBLE ? 8 : dt == T_BOOL ? 1 : 4;
    const uint8_t *raw = NULL;
    if (t->has_raw_data) {
        if (t->raw_data.len != (size_t)n * es)
            return NULL;
        raw = t->raw_data.data;
    } else {
        size_t have = dt == T_INT64 ? t->n_int64_data : dt == T_FLOAT ? t->n_float_data
                      : dt == T_DOUBLE ? t->n_double_data : t->n_int32_data;
        if (have != (size_t)n)
            return NULL;
    }
    oi_const *k = new_const(G, onnx, is_int, (int)t->n_dims, t->dims, n);
    if (!k)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (raw) {
            uint8_t b[8];
            memcpy(b, raw + (size_t)i * es, es);
            if (dt == T_INT64) { int64_t q; memcpy(&q, b, 8); v = (double)q; }
            else if (dt == T_INT32) { int32_t q; memcpy(&q, b, 4); v = q; }
            else if (dt == T_BOOL) { v = b[0] != 0; }
            else if (dt == T_FLOAT) { float q; memcpy(&q, b, 4); v = q; }
            else { double q; memcpy(&q, b, 8); v = q; }
            if (is_int) {
                int64_t q = 0;
                if (dt == T_INT64)
                    memcpy(&q, b, 8);
                else
                    q = (int64_t)v;
                k->iv[i] = (oi_dim){q, 0};
                continue;
            }
        } else if (dt == T_INT64) {
            k->iv[i] = (oi_dim){t->int64_data[i], 0};
            continue;
        } else if (is_int) {
            k->iv[i] = (oi_dim){t->int32_data[i], 0};
            continue;
        } else {
            v = dt == T_FLOAT ? t->float_data[i] : t->double_data[i];
        }
        k->fv[i] = (float)v;
    }
    return k;
}

/* The constant called name: folded before, a Constant node's, an int
 * initializer, a float initializer the exporter folded; NULL otherwise. */
const oi_const *oi_cget(oi_graph *G, const char *name)
{
    if (!name || !name[0])
        return NULL;
    for (size_t i = G->nc; i-- > 0;)
        if (!strcmp(G->c[i]->onnx, name))
            return G->c[i]->sym ? NULL : G->c[i];
    const Onnx__TensorProto *t = oi_initializer(G->x, name);
    if (!t || oi_find(G, name))
        return NULL;
    bool is_int = t->data_type == T_INT64 || t->data_type == T_INT32 || t->data_type == T_BOOL;
    if (!is_int && !folded_name(name))
        return NULL;
    return oi_const_of_tensor(G, name, t);
}

const oi_const *oi_cget_sym(oi_graph *G, const char *name)
{
    for (size_t i = G->nc; name && i-- > 0;)
        if (!strcmp(G->c[i]->onnx, name))
            return G->c[i]->sym ? G->c[i] : NULL;
    return NULL;
}

bool oi_is_const(oi_graph *G, const char *name)
{
    return cget(G, name) != NULL;
}

bool oi_const_int(const oi_const *k, int64_t i, int64_t *out) /* a known integer */
{
    if (!k || i >= k->n)
        return false;
    if (k->is_int) {
        if (k->iv[i].p != 0)
            return false;
        *out = k->iv[i].k;
        return true;
    }
    if (!isfinite(k->fv[i]) || k->fv[i] != floorf(k->fv[i]) || fabsf(k->fv[i]) > 9.0e15f)
        return false;
    *out = (int64_t)k->fv[i];
    return true;
}

double oi_const_num(const oi_const *k, int64_t i) /* NAN unless known */
{
    if (!k->is_int)
        return k->fv[i];
    return k->iv[i].p == 0 ? (double)k->iv[i].k : NAN;
}

/* ------------------------------------------------------------ attributes */

const Onnx__AttributeProto *oi_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (!strcmp(oi_s(n->attribute[i]->name), name))
            return n->attribute[i];
    return NULL;
}

/* ints attribute (or the constant input at index in, when in >= 0 and
 * given) into v[0..ET_MAX_DIMS); count, -1 absent, -2 not constant. */
int oi_ints_of(oi_graph *G, const Onnx__NodeProto *n, const char *aname, int in, int64_t *v)
{
    const Onnx__AttributeProto *a = aname ? attr(n, aname) : NULL;
    if (a) {
        if (a->n_ints > ET_MAX_DIMS)
            return -2;
        for (size_t i = 0; i < a->n_ints; i++)
            v[i] = a->ints[i];
        return (int)a->n_ints;
    }
    if (in < 0 || (size_t)in >= n->n_input || !oi_s(n->input[in])[0])
        return -1;
    const oi_const *k = cget(G, n->input[in]);
    if (!k || k->n > ET_MAX_DIMS)
        return -2;
    for (int64_t i = 0; i < k->n; i++)
        if (!const_int(k, i, &v[i]))
            return -2;
    return (int)k->n;
}

bool oi_norm_axis(int64_t a, int nd, int *out)
{
    if (nd < 0 || a < -nd || a >= nd)
        return false;
    *out = (int)(a < 0 ? a + nd : a);
    return true;
}

/* ------------------------------------------------------------ folding */


static etd_rc fold_unary(ctx *C, const oi_const *a, const char *op)
{
    oi_const *r = new_const(C->G, oi_s(C->n->output[0]), false, a->nd, a->dims, a->n);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < a->n; i++) {
        double v = const_num(a, i);
        r->fv[i] = (float)(!strcmp(op, "Sqrt") ? sqrt(v) : !strcmp(op, "Neg") ? -v
                           : !strcmp(op, "Exp") ? exp(v) : !strcmp(op, "Log") ? log(v)
                           : !strcmp(op, "Erf") ? erf(v) : 1.0 / v);
    }
    return ETD_OK;
}

/* Elementwise arithmetic of two constants (numpy broadcasting of a scalar
 * or equal shapes): ints stay symbolic, a float makes it float. */
static etd_rc fold_binary(ctx *C, const oi_const *a, const oi_const *b, const char *op)
{
    const oi_const *big = a->n >= b->n ? a : b;
    if ((a->n != b->n && a->n != 1 && b->n != 1))
        return FAIL("%s", "constant operands of shapes this import does not broadcast");
    bool is_int = a->is_int && b->is_int && strcmp(op, "Pow") != 0;
    oi_const *r = new_const(C->G, oi_s(C->n->output[0]), is_int, big->nd, big->dims, big->n);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < big->n; i++) {
        int64_t ia = a->n == 1 ? 0 : i, ib = b->n == 1 ? 0 : i;
        if (is_int) {
            oi_dim x = a->iv[ia], y = b->iv[ib];
            r->iv[i] = !strcmp(op, "Mul") ? dim_mul(x, y) : !strcmp(op, "Div") ? dim_div(x, y)
                       : !strcmp(op, "Add") ? dim_add(x, y, 1) : dim_add(x, y, -1);
            continue;
        }
        double x = const_num(a, ia), y = const_num(b, ib);
        r->fv[i] = (float)(!strcmp(op, "Mul") ? x * y : !strcmp(op, "Div") ? x / y
                           : !strcmp(op, "Add") ? x + y : !strcmp(op, "Sub") ? x - y : pow(x, y));
    }
    return ETD_OK;
}

/* Copy a (or pick its elements idx[0..n)) as the node's output of dims. */
static etd_rc fold_pick(ctx *C, const oi_const *a, const int64_t *idx, int64_t n,
                        const int64_t *dims, int nd, bool to_float)
{
    oi_const *r = new_const(C->G, oi_s(C->n->output[0]), a->is_int && !to_float, nd, dims, n);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < n; i++) {
        int64_t j = idx ? idx[i] : i;
        if (j < 0 || j >= a->n)
            return FAIL("%s", "an index out of range of a constant");
        if (r->is_int)
            r->iv[i] = a->iv[j];
        else
            r->fv[i] = (float)const_num(a, j);
    }
    return ETD_OK;
}

bool oi_all_const(oi_graph *G, const Onnx__NodeProto *n)
{
    for (size_t j = 0; j < n->n_input; j++)
        if (oi_s(n->input[j])[0] && !cget(G, n->input[j]))
            return false;
    return true;
}

/* Node n computes constants only: fold it (no spec node). */
etd_rc oi_fold(ctx *C)
{
    oi_graph *G = C->G;
    const Onnx__NodeProto *n = C->n;
    const char *op = oi_s(n->op_type);
    const oi_const *a = n->n_input ? cget(G, n->input[0]) : NULL;
    const oi_const *b = n->n_input > 1 ? cget(G, n->input[1]) : NULL;
    if (!a)
        return FAIL("%s", "its first input is missing");
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout"))
        return fold_pick(C, a, NULL, a->n, a->dims, a->nd, false);
    if (!strcmp(op, "Cast")) {
        int64_t to = oi_attr_i(n, "to", 0);
        bool f = to == T_FLOAT || to == T_DOUBLE;
        if (!f && to != T_INT64 && to != T_INT32 && to != T_BOOL)
            return FAIL("%s", "a Cast of a constant to a type this import does not fold");
        if (!f && !a->is_int) { /* float -> int: truncate */
            oi_const *r = new_const(G, oi_s(n->output[0]), true, a->nd, a->dims, a->n);
            if (!r)
                return OOM();
            for (int64_t i = 0; i < a->n; i++)
                r->iv[i] = isfinite(a->fv[i]) && fabsf(a->fv[i]) < 9.0e15f
                               ? (oi_dim){(int64_t)a->fv[i], 0} : UNKNOWN;
            return ETD_OK;
        }
        return fold_pick(C, a, NULL, a->n, a->dims, a->nd, f);
    }
    if (!strcmp(op, "Sqrt") || !strcmp(op, "Neg") || !strcmp(op, "Exp") || !strcmp(op, "Log") ||
        !strcmp(op, "Erf") || !strcmp(op, "Reciprocal")) {
        if (!strcmp(op, "Neg") && a->is_int)
            return fold_binary(C, &(oi_const){.is_int = true, .n = 1, .iv = &(oi_dim){0, 0}}, a,
                               "Sub");
        return fold_unary(C, a, op);
    }
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div") ||
        !strcmp(op, "Pow"))
        return b ? fold_binary(C, a, b, op) : FAIL("%s", "expected two inputs");
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze") || !strcmp(op, "Reshape")) {
        int64_t dims[ET_MAX_DIMS];
        int nd = 0;
        if (!strcmp(op, "Unsqueeze") && a->nd < ET_MAX_DIMS) { /* values unchanged */
            for (int d = 0; d < a->nd; d++)
                dims[nd++] = a->dims[d];
            dims[nd++] = 1;
        } else if (!strcmp(op, "Reshape") && a->n <= ET_MAX_DIMS * 8) {
            dims[nd++] = a->n;
        } else if (!strcmp(op, "Squeeze")) {
            for (int d = 0; d < a->nd; d++)
                if (a->dims[d] != 1)
                    dims[nd++] = a->dims[d];
        }
        return fold_pick(C, a, NULL, a->n, dims, nd > 1 && a->n <= 1 ? 0 : nd, false);
    }
    if (!strcmp(op, "Concat")) {
        int64_t total = 0;
        for (size_t j = 0; j < n->n_input; j++) {
            const oi_const *k = cget(G, n->input[j]);
            if (!k || k->nd > 1 || !k->is_int)
                return FAIL("%s", "only a Concat of 1-D integer constants folds");
            total += k->n;
        }
        if (total > OI_MAX_CONST)
            return FAIL("%s", "a folded constant of too many elements");
        oi_const *r = new_const(G, oi_s(n->output[0]), true, 1, &total, total);
        if (!r)
            return OOM();
        int64_t at = 0;
        for (size_t j = 0; j < n->n_input; j++) {
            const oi_const *k = cget(G, n->input[j]);
            memcpy(r->iv + at, k->iv, (size_t)k->n * sizeof *k->iv);
            at += k->n;
        }
        return ETD_OK;
    }
    if (!strcmp(op, "Gather")) {
        if (!b || a->nd != 1 || b->nd > 1 || oi_attr_i(n, "axis", 0) != 0)
            return FAIL("%s", "only a Gather of a 1-D constant along axis 0 folds");
        int64_t idx[ET_MAX_DIMS * 8];
        if (b->n > (int64_t)(sizeof idx / sizeof *idx))
            return FAIL("%s", "too many indices");
        for (int64_t i = 0; i < b->n; i++) {
            if (!const_int(b, i, &idx[i]))
                return FAIL("%s", "the indices must be known integers");
            idx[i] += idx[i] < 0 ? a->n : 0;
        }
        return fold_pick(C, a, idx, b->n, b->dims, b->nd, false);
    }
    if (!strcmp(op, "Slice")) {
        int64_t st[ET_MAX_DIMS], en[ET_MAX_DIMS], ax[ET_MAX_DIMS], sp[ET_MAX_DIMS];
        if (a->nd != 1 || ints_of(G, n, NULL, 1, st) != 1 || ints_of(G, n, NULL, 2, en) != 1)
            return FAIL("%s", "only a Slice of a 1-D constant folds");
        int na = ints_of(G, n, NULL, 3, ax), ns = ints_of(G, n, NULL, 4, sp);
        if ((na >= 0 && (na != 1 || (ax[0] != 0 && ax[0] != -1))) || na == -2 || ns == -2 ||
            (ns >= 0 && (ns != 1 || sp[0] != 1)))
            return FAIL("%s", "only a Slice of a 1-D constant with step 1 folds");
        int64_t s = st[0] < 0 ? st[0] + a->n : st[0], e = en[0] < 0 ? en[0] + a->n : en[0];
        s = s < 0 ? 0 : s > a->n ? a->n : s;
        e = e < s ? s : e > a->n ? a->n : e;
        int64_t idx[ET_MAX_DIMS * 8], len = e - s;
        if (len > (int64_t)(sizeof idx / sizeof *idx))
            return FAIL("%s", "too long");
        for (int64_t i = 0; i < len; i++)
            idx[i] = s + i;
        return fold_pick(C, a, idx, len, &len, 1, false);
    }
    return FAIL("%s", "its inputs are all constants, and folding this op is not supported");
}

/* A Constant node's value as a constant. */
etd_rc oi_constant_node(ctx *C)
{
    const Onnx__NodeProto *n = C->n;
    const char *out = oi_s(n->output[0]);
    const Onnx__AttributeProto *a;
    oi_const *k = NULL;
    if ((a = attr(n, "value")) && a->t) {
        k = oi_const_of_tensor(C->G, out, a->t);
        if (!k)
            return FAIL("%s", "its value is not a small float, double, int or bool tensor");
        return ETD_OK;
    }
    if ((a = attr(n, "value_float")) && a->has_f) {
        if ((k = new_const(C->G, out, false, 0, NULL, 1)))
            k->fv[0] = a->f;
    } else if ((a = attr(n, "value_int")) && a->has_i) {
        if ((k = new_const(C->G, out, true, 0, NULL, 1)))
            k->iv[0] = (oi_dim){a->i, 0};
    } else if ((a = attr(n, "value_ints")) && a->n_ints <= OI_MAX_CONST) {
        int64_t len = (int64_t)a->n_ints;
        if ((k = new_const(C->G, out, true, 1, &len, len)))
            for (int64_t i = 0; i < len; i++)
                k->iv[i] = (oi_dim){a->ints[i], 0};
    } else {
        return FAIL("%s", "a Constant without a value this import reads (value, value_float, "
                    "value_int, value_ints)");
    }
    return k ? ETD_OK : OOM();
}

/* Identity(initializer): another name of that initializer's data (each
 * name a parameter of its own when a layer takes it). */
etd_rc oi_alias(ctx *C)
{
    return oi_alias_as(C, false);
}

etd_rc oi_alias_as(ctx *C, bool transposed)
{
    imp *x = C->G->x;
    const Onnx__TensorProto *t = oi_initializer(x, oi_s(C->n->input[0]));
    const char *name = oi_s(C->n->output[0]);
    if (oi_initializer(x, name))
        return FAIL("%s", "its output is named as an initializer");
    if (x->nalias == x->calias) {
        size_t c = x->calias ? 2 * x->calias : 16;
        void *p = realloc(x->alias, c * sizeof *x->alias);
        if (!p)
            return OOM();
        x->alias = p;
        x->calias = c;
    }
    x->alias[x->nalias++] = (struct oi_alias){name, t, transposed};
    return ETD_OK;
}

/* Shape(x): x's dimensions as a constant (the batch symbolic). */
etd_rc oi_shape_node(ctx *C, const oi_val *x)
{
    if (x->s.nd < 0)
        return FAIL("%s", "the shape of its input is not known here");
    int64_t nd = x->s.nd, s = oi_attr_i(C->n, "start", 0), e = oi_attr_i(C->n, "end", nd);
    s = s < 0 ? s + nd : s;
    e = e < 0 ? e + nd : e;
    s = s < 0 ? 0 : s > nd ? nd : s;
    e = e < s ? s : e > nd ? nd : e;
    int64_t len = e - s;
    oi_const *r = new_const(C->G, oi_s(C->n->output[0]), true, 1, &len, len);
    if (!r)
        return OOM();
    for (int64_t i = 0; i < len; i++)
        r->iv[i] = x->s.d[s + i];
    return ETD_OK;
}
