/* onnx_ox.c - the building blocks of the ONNX export (onnx_ox.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_ox.h"

/* ---------------------------------------------------------------- building blocks */

void *ox_own(ox *x, void *p)
{
    if (!p) {
        x->oom = true;
        return NULL;
    }
    if (x->nowned == x->cowned) {
        size_t c = x->cowned ? x->cowned * 2 : 256;
        void **n = realloc(x->owned, c * sizeof *n);
        if (!n) {
            free(p);
            x->oom = true;
            return NULL;
        }
        x->owned = n;
        x->cowned = c;
    }
    x->owned[x->nowned++] = p;
    return p;
}

void *ox_alloc(ox *x, size_t n) { return ox_own(x, calloc(1, n ? n : 1)); }

char *ox_str(ox *x, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ox_own(x, strdup(buf));
}

bool ox_push(ox *x, void ***arr, size_t *n, size_t *cap, void *v)
{
    if (!v)
        return false;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a) {
            x->oom = true;
            return false;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return true;
}

/* An attribute `name` of type `type`, its value for the caller to set. */
Onnx__AttributeProto *ox_attr(ox *x, const char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = ox_alloc(x, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true;
    a->type = type;
    return a;
}

Onnx__AttributeProto *ox_attr_i(ox *x, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = true;
        a->i = v;
    }
    return a;
}

Onnx__AttributeProto *ox_attr_f(ox *x, const char *name, double v)
{
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = true;
        a->f = (float)v;
    }
    return a;
}

Onnx__AttributeProto *ox_attr_ints(ox *x, const char *name, const int64_t *v, int n)
{
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = ox_alloc(x, (size_t)n * sizeof *c);
    if (!a || !c)
        return NULL;
    if (n)
        memcpy(c, v, (size_t)n * sizeof *c);
    a->n_ints = (size_t)n;
    a->ints = c;
    return a;
}

Onnx__AttributeProto *ox_attr_s(ox *x, const char *name, const char *v)
{
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = true;
        a->s.data = (uint8_t *)v;
        a->s.len = strlen(v);
    }
    return a;
}

/* A node op(in...) -> a new value named after the layer; returns its name.
 * in and attrs are NULL-terminated lists ("" is an omitted optional input). */
const char *ox_node(ox *x, const char *op, const char *const *in,
                        Onnx__AttributeProto *const *attrs)
{
    Onnx__NodeProto *n = ox_alloc(x, sizeof *n);
    if (!n)
        return "";
    onnx__node_proto__init(n);
    size_t ni = 0, na = 0;
    while (in[ni])
        ni++;
    while (attrs && attrs[na]) /* a NULL in the middle (a failed attr_*) cuts the list, */
        na++;                  /* but ox_alloc() has set x->oom: the export fails anyway */
    n->op_type = (char *)op;
    n->name = ox_str(x, "%s.%s.%zu", x->cp, op, x->nn);
    n->n_input = ni;
    n->input = ox_alloc(x, ni * sizeof *n->input);
    n->n_output = 1;
    n->output = ox_alloc(x, sizeof *n->output);
    n->n_attribute = na;
    n->attribute = na ? ox_alloc(x, na * sizeof *n->attribute) : NULL;
    if (!n->input || !n->output || (na && !n->attribute) || !n->name)
        return "";
    for (size_t i = 0; i < ni; i++)
        n->input[i] = (char *)in[i];
    for (size_t i = 0; i < na; i++)
        n->attribute[i] = attrs[i];
    n->output[0] = ox_str(x, "%s.%s_%zu", x->cp, op, x->nn);
    ox_push(x, (void ***)&x->nodes, &x->nn, &x->cn, n);
    return n->output[0] ? n->output[0] : "";
}


const char *ox_init(ox *x, const char *name, int dtype, const void *data, size_t esize,
                        const int64_t *dims, int nd)
{
    Onnx__TensorProto *t = ox_alloc(x, sizeof *t);
    int64_t numel = 1;
    for (int i = 0; i < nd; i++)
        numel *= dims[i];
    int64_t *d = ox_alloc(x, (size_t)(nd ? nd : 1) * sizeof *d);
    uint8_t *raw = ox_alloc(x, (size_t)numel * esize);
    if (!t || !d || !raw)
        return "";
    onnx__tensor_proto__init(t);
    if (nd)
        memcpy(d, dims, (size_t)nd * sizeof *d);
    memcpy(raw, data, (size_t)numel * esize); /* little-endian, as ONNX's raw_data */
    t->name = (char *)name;
    t->n_dims = (size_t)nd;
    t->dims = d;
    t->has_data_type = true;
    t->data_type = dtype;
    t->has_raw_data = true;
    t->raw_data.data = raw;
    t->raw_data.len = (size_t)numel * esize;
    ox_push(x, (void ***)&x->inits, &x->ni, &x->ci, t);
    return name;
}

const char *ox_init_f(ox *x, const char *what, const float *v, const int64_t *dims, int nd)
{
    return ox_init(x, ox_str(x, "%s.%s", x->cp, what), ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                v, sizeof(float), dims, nd);
}

const char *ox_init_i64(ox *x, const char *what, const int64_t *v, int64_t n)
{
    return ox_init(x, ox_str(x, "%s.%s", x->cp, what), ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                v, sizeof(int64_t), &n, 1);
}

const char *ox_scalar_f(ox *x, const char *what, float v)
{
    return ox_init(x, ox_str(x, "%s.%s", x->cp, what), ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                &v, sizeof v, NULL, 0);
}

/* A Constant node (value_float), as torch.onnx.export writes the numbers of
 * tensor code: the daemon's import takes these as numbers where it takes a
 * float initializer as a parameter. */
const char *ox_const_f(ox *x, float v)
{
    return ox_node(x, "Constant", IN(NULL), AT(ox_attr_f(x, "value_float", v)));
}

/* The state tensor `key` of the model as an initializer of that name and
 * its state_dict shape, once however often it is used (shared weights);
 * reshaped to dims by a Reshape node when dims are given. */
const char *ox_state(ox *x, const char *key, const int64_t *dims, int nd)
{
    et_module *net = x->m->net;
    const char *name = NULL;
    for (size_t i = 0; i < x->ni && !name; i++)
        if (strcmp(x->inits[i]->name, key) == 0)
            name = x->inits[i]->name;
    for (int k = 0; k < et_module_num_state(net) && !name; k++)
        if (strcmp(et_module_state_name(net, k), key) == 0) {
            et_tensor *t = et_clone(et_module_state_tensor(net, k)); /* contiguous */
            if (!t) {
                x->oom = true;
                return "";
            }
            bool i64 = et_tensor_dtype(t) == ET_INT64;
            name = ox_init(x, ox_str(x, "%s", key), i64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64
                                                        : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                           i64 ? (const void *)et_data_int64_const(t) : (const void *)et_data_const(t),
                           i64 ? sizeof(int64_t) : sizeof(float), et_shape(t), et_ndim(t));
            et_tensor_free(t);
        }
    if (!name) {
        x->oom = true; /* cannot happen: the spec made the layer with it */
        return "";
    }
    if (!dims)
        return name;
    return ox_node(x, "Reshape", IN(name, ox_init_i64(x, ox_str(x, "%s.shape_%zu", key, x->ni),
                                                      dims, nd)), NULL);
}

/* The layer's state tensor `what` ("weight", "self_attn.in_proj_weight"). */
const char *ox_param(ox *x, const char *what, const int64_t *dims, int nd)
{
    return ox_state(x, ox_str(x, "%s.%s", x->pp, what), dims, nd);
}

/* n copies of v as a 1-D initializer. */
const char *ox_fill(ox *x, const char *what, int64_t n, float v)
{
    float *d = ox_alloc(x, (size_t)n * sizeof *d);
    if (!d)
        return "";
    for (int64_t i = 0; i < n; i++)
        d[i] = v;
    return ox_init_f(x, what, d, &n, 1);
}

/* Reshape cur to the probed shape out[] with the batch dimension symbolic
 * (0: copied from the input; -1 where the batch was merged). */
const char *ox_reshape_to(ox *x, const char *cur, const int64_t *out, int nd, bool merged)
{
    int64_t s[ET_MAX_DIMS];
    memcpy(s, out, (size_t)nd * sizeof *s);
    s[0] = merged ? -1 : 0;
    return ox_node(x, "Reshape", IN(cur, ox_init_i64(x, "shape", s, nd)), NULL);
}


char *ox_num_batches_tracked(ox *x, et_module *net)
{
    static const char suffix[] = ".num_batches_tracked";
    cJSON *o = NULL;
    for (int k = 0; k < et_module_num_state(net); k++) {
        const char *name = et_module_state_name(net, k);
        size_t n = strlen(name);
        int64_t v;
        if (n < sizeof suffix - 1 || strcmp(name + n - (sizeof suffix - 1), suffix) != 0 ||
            et_item_int64(et_module_state_tensor(net, k), &v) != ET_OK)
            continue;
        if ((!o && !(o = cJSON_CreateObject())) || !cJSON_AddNumberToObject(o, name, (double)v)) {
            x->oom = true;
            break;
        }
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (o && !s)
        x->oom = true;
    cJSON_Delete(o);
    return s ? ox_own(x, s) : NULL;
}

void ox_at(ox *x, const etd_layer *l, const char *pp, const char *cp, const char *where, ...)
{
    x->l = l;
    snprintf(x->pp, sizeof x->pp, "%s", pp);
    snprintf(x->cp, sizeof x->cp, "%s", cp);
    va_list ap;
    va_start(ap, where);
    vsnprintf(x->where, sizeof x->where, where, ap);
    va_end(ap);
}

etd_rc ox_unsupported(ox *x, const char *what, etd_err *e)
{
    return etd_fail(e, ETD_EINVAL, "export: %s: %s has no ONNX form here", x->where, what);
}

const char *const *ox_node_n(ox *x, const char *op, const char *const *in,
                             Onnx__AttributeProto *const *attrs, int nout)
{
    const char *first = ox_node(x, op, in, attrs);
    char **outs = ox_alloc(x, (size_t)(nout > 0 ? nout : 1) * sizeof *outs);
    if (!first[0] || !outs)
        return NULL;
    Onnx__NodeProto *n = x->nodes[x->nn - 1];
    for (int i = 0; i < nout; i++)
        if (!(outs[i] = ox_str(x, "%s.%d", first, i)))
            return NULL;
    n->n_output = (size_t)nout;
    n->output = outs;
    return (const char *const *)outs;
}
