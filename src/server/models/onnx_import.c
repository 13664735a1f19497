/* onnx_import.c - a model from an ONNX file (onnx.h): the graphs
 * torch.onnx.export writes for torch.nn.Sequential models of the layers the
 * daemon hosts, decoded with protobuf-c (onnx.pb-c.c).  A chain -- every
 * node takes the previous node's output (its other inputs are initializers)
 * -- becomes a layer list; a graph with branches goes to
 * onnx_import_graph.c (a graph model) through the same node mapping.  Each node
 * (or MatMul + Add) becomes one layer of the spec, its initializers that
 * layer's parameters and buffers; the rest of the body (loss, optimizer, ...)
 * is the usual spec.  Anything else is a 400 naming the node and its op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "server/formats/base64.h"
#include "server/models/model_internal.h"
#include "server/models/onnx.h"
#include "server/models/onnx_import_internal.h"

#define SUPPORTED "Gemm, MatMul (+ Add), Conv, MaxPool, AveragePool, GlobalAveragePool, " \
    "BatchNormalization, LayerNormalization, Gather (embedding), Flatten, Reshape (keeping the " \
    "batch), Relu, Tanh, Sigmoid, LeakyRelu, Softmax, LogSoftmax, Identity, Dropout; in graphs " \
    "also Add/Sub/Mul/Div/Pow/MatMul/Concat of values or a scalar constant, Transpose, " \
    "ReduceMean, ReduceSum, Split, Slice, Squeeze, Unsqueeze, Sqrt, Erf, Neg, Exp, Log, " \
    "Reciprocal, Reshape, Gather (select), Cast, Shape and Constant (folded)"

/* the short names inside this file */
#define S oi_s
#define attr_i oi_attr_i
#define node_fail oi_node_fail
#define one_node oi_one_node
#define tensor_of oi_tensor_of

/* A protobuf varint at p[*i..len) into *v; false when it runs off the end. */
static bool varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (*i >= len)
            return false;
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Nesting depth of the protobuf (messages in messages) within `max`:
 * protobuf-c's decoder recurses once per level and has no limit of its own,
 * so a small file of nested attributes would overflow the stack.  A walk
 * of the wire format by the descriptors, no allocation; malformed bytes are
 * left to the decoder to refuse (true). */
static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int max)
{
    size_t i = 0;
    while (i < len) {
        uint64_t key, n;
        if (!varint(p, len, &i, &key))
            return true;
        switch (key & 7) {
        case 0:
            if (!varint(p, len, &i, &n))
                return true;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2: {
            if (!varint(p, len, &i, &n) || n > len - i)
                return true;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                                       : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                (max <= 0 || !depth_ok(f->descriptor, p + i, (size_t)n, max - 1)))
                return false;
            i += (size_t)n;
            break;
        }
        default:
            return true; /* groups (3, 4) and bad wire types: the decoder refuses them */
        }
    }
    return true;
}

#define MAX_DEPTH 64 /* Model > Graph > Node > Attribute > Graph ... nests far less */


const Onnx__TensorProto *oi_initializer(const imp *x, const char *name)
{
    for (size_t i = 0; i < x->g->n_initializer; i++)
        if (strcmp(S(x->g->initializer[i]->name), name) == 0)
            return x->g->initializer[i];
    for (size_t i = 0; i < x->nalias; i++)
        if (strcmp(x->alias[i].name, name) == 0)
            return x->alias[i].t;
    return NULL;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(S(n->attribute[i]->name), name) == 0)
            return n->attribute[i];
    return NULL;
}

int64_t oi_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : def;
}

static double attr_f(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* ints attribute into v[0..max); count or -1 if absent. */
static int attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max)
{
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a)
        return -1;
    int k = (int)(a->n_ints < (size_t)max ? a->n_ints : (size_t)max);
    for (int i = 0; i < k; i++)
        v[i] = a->ints[i];
    return (int)a->n_ints;
}

/* s as printable ASCII (names in a file may be any bytes; messages are JSON). */
static const char *clean(char *dst, size_t cap, const char *s)
{
    size_t k = 0;
    for (; s && *s && k + 1 < cap; s++)
        dst[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    dst[k] = 0;
    return dst;
}

etd_rc oi_node_fail(imp *x, const Onnx__NodeProto *n, const char *fmt, const char *arg)
{
    char msg[1000], a[800], nm[128], op[64]; /* a: up to the list of supported ops */
    snprintf(msg, sizeof msg, fmt, clean(a, sizeof a, arg));
    return etd_fail(x->e, ETD_EINVAL, "onnx: node \"%s\" (%s): %s",
                    n->name && n->name[0] ? clean(nm, sizeof nm, n->name) : "(unnamed)",
                    clean(op, sizeof op, n->op_type), msg);
}

et_tensor *oi_tensor_of(imp *x, const Onnx__NodeProto *n, const char *name, bool transpose)
{
    const Onnx__TensorProto *t = name ? oi_initializer(x, name) : NULL;
    for (size_t i = 0; t && i < x->nalias; i++)
        if (!strcmp(x->alias[i].name, name) && x->alias[i].transposed)
            transpose = !transpose;
    if (!t) {
        node_fail(x, n, "input \"%.100s\" is not an initializer (only sequential graphs with "
                  "constant weights are imported)", name ? name : "");
        return NULL;
    }
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t->n_dims > ET_MAX_DIMS) {
        node_fail(x, n, "initializer \"%.100s\" is not a float32 tensor", t->name);
        return NULL;
    }
    int64_t shape[ET_MAX_DIMS], numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > (1LL << 31) || (numel *= t->dims[i]) > (1LL << 31)) {
            node_fail(x, n, "initializer \"%.100s\" has a bad shape", t->name);
            return NULL;
        }
        shape[i] = t->dims[i];
    }
    const float *data = NULL;
    if (t->has_raw_data && t->raw_data.len == (size_t)numel * sizeof(float))
        data = (const float *)(const void *)t->raw_data.data;
    else if (!t->has_raw_data && t->n_float_data == (size_t)numel)
        data = t->float_data;
    if (!data && numel > 0) {
        node_fail(x, n, "initializer \"%.100s\": its data does not match its shape", t->name);
        return NULL;
    }
    float *copy = malloc((size_t)(numel ? numel : 1) * sizeof *copy);
    if (!copy) {
        etd_fail(x->e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
    if (numel)
        memcpy(copy, data, (size_t)numel * sizeof *copy); /* raw_data may be unaligned */
    et_tensor *r = et_tensor_new(copy, shape, (int)t->n_dims);
    free(copy);
    if (r && transpose && et_ndim(r) == 2) {
        et_tensor *tt = et_transpose(r, 0, 1);
        et_tensor *c = tt ? et_clone(tt) : NULL;
        et_tensor_free(tt);
        et_tensor_free(r);
        r = c;
    }
    if (!r)
        etd_fail(x->e, ETD_ENOMEM, "out of memory");
    return r;
}

static bool put(imp *x, int layer, const char *what, et_tensor *t)
{
    char key[64];
    snprintf(key, sizeof key, "%d.%s", layer, what);
    bool ok = t && et_tensor_dict_set(x->state, key, t) == ET_OK;
    et_tensor_free(t);
    if (!ok && x->e->rc == ETD_OK)
        etd_fail(x->e, ETD_ENOMEM, "out of memory");
    return ok;
}

/* The BatchNormalization n's num_batches_tracked from our exporter's
 * metadata (onnx_ox.h OX_NBT_KEY), by its running_mean's initializer name;
 * 0 when the file has none for it.  false + 400 for a bad counter. */
static bool nbt_of(imp *x, const Onnx__NodeProto *n, int64_t *out)
{
    static const char rm[] = ".running_mean";
    *out = 0;
    const char *mean = n->n_input > 3 ? S(n->input[3]) : "";
    size_t len = strlen(mean);
    if (!x->nbt || len <= sizeof rm - 1 || strcmp(mean + len - (sizeof rm - 1), rm) != 0 ||
        len > 200)
        return true;
    char key[256];
    snprintf(key, sizeof key, "%.*s.num_batches_tracked", (int)(len - (sizeof rm - 1)), mean);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->nbt, key);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble)) {
        etd_fail(x->e, ETD_EINVAL, "onnx: metadata_props \"%s\": \"%.100s\" must be a "
                 "non-negative integer", OX_NBT_KEY, key);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

static cJSON *layer(imp *x, const char *type)
{
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "type", type);
    cJSON_AddItemToArray(x->layers, l);
    return l;
}

static void add_ints(cJSON *l, const char *key, const int64_t *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(l, key);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

/* Symmetric ONNX pads (begins == ends) into p[0..k); false if not. */
static bool sym_pads(const Onnx__NodeProto *n, int k, int64_t *p)
{
    int64_t v[8] = {0};
    int c = attr_ints(n, "pads", v, 8);
    for (int i = 0; i < k; i++)
        p[i] = c < 0 ? 0 : v[i];
    if (c < 0)
        return true;
    if (c != 2 * k)
        return false;
    for (int i = 0; i < k; i++)
        if (v[i] != v[k + i])
            return false;
    return true;
}

etd_rc oi_one_node(imp *x, Onnx__NodeProto **nodes, size_t nn, size_t *i)
{
    const Onnx__NodeProto *n = nodes[*i];
    const char *op = S(n->op_type);
    int li = cJSON_GetArraySize(x->layers);
    if (!strcmp(op, "Gemm")) {
        if (attr_f(n, "alpha", 1) != 1 || attr_f(n, "beta", 1) != 1 || attr_i(n, "transA", 0))
            return node_fail(x, n, "%s", "only alpha = beta = 1 and transA = 0 (torch's Linear)");
        et_tensor *w = tensor_of(x, n, n->n_input > 1 ? n->input[1] : NULL, !attr_i(n, "transB", 0));
        if (!w)
            return x->e->rc;
        if (et_ndim(w) != 2) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "the weight must be 2-D");
        }
        cJSON *l = layer(x, "Linear");
        cJSON_AddNumberToObject(l, "in_features", (double)et_shape(w)[1]);
        cJSON_AddNumberToObject(l, "out_features", (double)et_shape(w)[0]);
        bool bias = n->n_input > 2 && n->input[2][0];
        cJSON_AddBoolToObject(l, "bias", bias);
        if (!put(x, li, "weight", w))
            return x->e->rc;
        if (bias && !put(x, li, "bias", tensor_of(x, n, n->input[2], false)))
            return x->e->rc;
        x->rank = 2;
    } else if (!strcmp(op, "MatMul")) { /* x @ W (+ b): a Linear whose weight is W^T */
        et_tensor *w = tensor_of(x, n, n->n_input > 1 ? n->input[1] : NULL, true);
        if (!w)
            return x->e->rc;
        if (et_ndim(w) != 2) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "the weight must be 2-D");
        }
        const Onnx__NodeProto *add = *i + 1 < nn ? nodes[*i + 1] : NULL;
        /* the Add takes the MatMul's output and the bias, in either order
         * (torch 1.13 writes Add(bias, MatMul) inside MultiheadAttention) */
        int bi = add && add->n_input == 2 && !strcmp(S(add->input[0]), S(n->output[0])) ? 1
                 : add && add->n_input == 2 && !strcmp(S(add->input[1]), S(n->output[0])) ? 0
                                                                                      : -1;
        bool bias = add && !strcmp(S(add->op_type), "Add") && bi >= 0 &&
                    add->n_output >= 1 && (!add->domain || !add->domain[0]) &&
                    oi_initializer(x, S(add->input[bi]));
        cJSON *l = layer(x, "Linear");
        cJSON_AddNumberToObject(l, "in_features", (double)et_shape(w)[1]);
        cJSON_AddNumberToObject(l, "out_features", (double)et_shape(w)[0]);
        cJSON_AddBoolToObject(l, "bias", bias);
        if (!put(x, li, "weight", w))
            return x->e->rc;
        if (bias) {
            if (!put(x, li, "bias", tensor_of(x, add, add->input[bi], false)))
                return x->e->rc;
            (*i)++;
        }
    } else if (!strcmp(op, "Relu") || !strcmp(op, "Tanh") || !strcmp(op, "Sigmoid")) {
        layer(x, !strcmp(op, "Relu") ? "ReLU" : op);
    } else if (!strcmp(op, "LeakyRelu")) {
        cJSON_AddNumberToObject(layer(x, "LeakyReLU"), "negative_slope", attr_f(n, "alpha", 0.01));
    } else if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
        cJSON_AddNumberToObject(layer(x, op), "dim", (double)attr_i(n, "axis", -1));
    } else if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        /* eval-mode no-ops: no layer */
    } else if (!strcmp(op, "Flatten")) {
        if (attr_i(n, "axis", 1) != 1)
            return node_fail(x, n, "%s", "only axis = 1 (torch's Flatten)");
        layer(x, "Flatten");
        x->rank = 2;
    } else if (!strcmp(op, "Reshape")) {
        /* [0, d1, ...] keeps the batch: Flatten, then Unflatten when more
         * than one dimension follows it (what the export writes for both) */
        const Onnx__TensorProto *t = n->n_input > 1 ? oi_initializer(x, n->input[1]) : NULL;
        int64_t s[ET_MAX_DIMS];
        int nd = t ? (int)t->n_dims : 0;
        size_t k = 0;
        if (t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && nd == 1 &&
            t->dims[0] >= 2 && t->dims[0] <= ET_MAX_DIMS) {
            k = (size_t)t->dims[0];
            if (t->has_raw_data && t->raw_data.len == k * sizeof(int64_t))
                memcpy(s, t->raw_data.data, k * sizeof(int64_t));
            else if (!t->has_raw_data && t->n_int64_data == k)
                memcpy(s, t->int64_data, k * sizeof(int64_t));
            else
                k = 0;
        }
        bool ok = k >= 2 && s[0] == 0;
        for (size_t d = 1; ok && d < k; d++)
            ok = s[d] > 0 || (k == 2 && s[d] == -1);
        if (!ok)
            return node_fail(x, n, "%s", "only a constant int64 shape [0, d1, ...] (the batch "
                             "kept, the other dimensions positive)");
        if (x->rank != 2 || k == 2)
            layer(x, "Flatten");
        if (k > 2) {
            cJSON *l = layer(x, "Unflatten");
            cJSON_AddNumberToObject(l, "dim", 1);
            add_ints(l, "unflattened_size", s + 1, (int)k - 1);
        }
        x->rank = (int)k;
    } else if (!strcmp(op, "Conv")) {
        et_tensor *w = tensor_of(x, n, n->n_input > 1 ? n->input[1] : NULL, false);
        if (!w)
            return x->e->rc;
        int k = et_ndim(w) - 2;
        if (k < 1 || k > 2) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "only 1-D and 2-D convolutions");
        }
        int64_t pads[2], st[2] = {1, 1}, dil[2] = {1, 1}, ks[2];
        if (!sym_pads(n, k, pads)) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "asymmetric pads");
        }
        attr_ints(n, "strides", st, 2);
        attr_ints(n, "dilations", dil, 2);
        int64_t g = attr_i(n, "group", 1);
        if (g < 1 || g > (1 << 20)) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "group must be in [1, 2^20]");
        }
        for (int d = 0; d < k; d++)
            ks[d] = et_shape(w)[2 + d];
        cJSON *l = layer(x, k == 1 ? "Conv1d" : "Conv2d");
        cJSON_AddNumberToObject(l, "in_channels", (double)(et_shape(w)[1] * g));
        cJSON_AddNumberToObject(l, "out_channels", (double)et_shape(w)[0]);
        add_ints(l, "kernel_size", ks, k);
        add_ints(l, "stride", st, k);
        add_ints(l, "padding", pads, k);
        add_ints(l, "dilation", dil, k);
        cJSON_AddNumberToObject(l, "groups", (double)g);
        bool bias = n->n_input > 2 && n->input[2][0];
        cJSON_AddBoolToObject(l, "bias", bias);
        if (!put(x, li, "weight", w))
            return x->e->rc;
        if (bias && !put(x, li, "bias", tensor_of(x, n, n->input[2], false)))
            return x->e->rc;
        x->rank = k + 2;
    } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
        int64_t ks[2], st[2], pads[2], dil[2] = {1, 1};
        int k = attr_ints(n, "kernel_shape", ks, 2);
        if (k < 1 || k > 2)
            return node_fail(x, n, "%s", "only 1-D and 2-D pools");
        for (int d = 0; d < k; d++)
            st[d] = ks[d];
        attr_ints(n, "strides", st, 2);
        attr_ints(n, "dilations", dil, 2);
        if (!sym_pads(n, k, pads))
            return node_fail(x, n, "%s", "asymmetric pads");
        bool max = op[0] == 'M';
        cJSON *l = layer(x, max ? (k == 1 ? "MaxPool1d" : "MaxPool2d")
                                : (k == 1 ? "AvgPool1d" : "AvgPool2d"));
        add_ints(l, "kernel_size", ks, k);
        add_ints(l, "stride", st, k);
        add_ints(l, "padding", pads, k);
        if (max)
            add_ints(l, "dilation", dil, k);
        else
            cJSON_AddBoolToObject(l, "count_include_pad", attr_i(n, "count_include_pad", 0));
        cJSON_AddBoolToObject(l, "ceil_mode", attr_i(n, "ceil_mode", 0));
    } else if (!strcmp(op, "GlobalAveragePool")) {
        cJSON *l = layer(x, x->rank == 3 ? "AdaptiveAvgPool1d" : "AdaptiveAvgPool2d");
        cJSON_AddNumberToObject(l, "output_size", 1);
    } else if (!strcmp(op, "BatchNormalization")) {
        if (n->n_input != 5 || n->n_output != 1 || attr_i(n, "training_mode", 0))
            return node_fail(x, n, "%s", "only the inference form (5 inputs, 1 output)");
        et_tensor *sc = tensor_of(x, n, n->input[1], false);
        if (!sc)
            return x->e->rc;
        int64_t c = et_numel(sc);
        cJSON *l = layer(x, x->rank == 4 ? "BatchNorm2d" : "BatchNorm1d");
        cJSON_AddNumberToObject(l, "num_features", (double)c);
        cJSON_AddNumberToObject(l, "eps", attr_f(n, "epsilon", 1e-5));
        /* ONNX's momentum weighs the old statistic, torch's the new one */
        cJSON_AddNumberToObject(l, "momentum", 1.0 - attr_f(n, "momentum", 0.9));
        int64_t tracked = 0;
        if (!nbt_of(x, n, &tracked)) {
            et_tensor_free(sc);
            return x->e->rc;
        }
        if (!put(x, li, "weight", sc) || !put(x, li, "bias", tensor_of(x, n, n->input[2], false)) ||
            !put(x, li, "running_mean", tensor_of(x, n, n->input[3], false)) ||
            !put(x, li, "running_var", tensor_of(x, n, n->input[4], false)) ||
            !put(x, li, "num_batches_tracked", et_tensor_new_int64(&tracked, NULL, 0)))
            return x->e->rc;
    } else if (!strcmp(op, "LayerNormalization")) {
        et_tensor *sc = tensor_of(x, n, n->n_input > 1 ? n->input[1] : NULL, false);
        if (!sc)
            return x->e->rc;
        int64_t axis = attr_i(n, "axis", -1);
        if (axis >= 0 && x->rank)
            axis -= x->rank;
        if (axis != -et_ndim(sc)) {
            et_tensor_free(sc);
            return node_fail(x, n, "%s", "axis must cover exactly the scale's dimensions");
        }
        cJSON *l = layer(x, "LayerNorm");
        add_ints(l, "normalized_shape", et_shape(sc), et_ndim(sc));
        cJSON_AddNumberToObject(l, "eps", attr_f(n, "epsilon", 1e-5));
        et_tensor *b = n->n_input > 2 && n->input[2][0] ? tensor_of(x, n, n->input[2], false)
                                                         : et_zeros_like(sc);
        if (!put(x, li, "weight", sc) || !put(x, li, "bias", b))
            return x->e->rc;
    } else if (!strcmp(op, "Gather")) {
        if (li != 0 || attr_i(n, "axis", 0) != 0 || n->n_input != 2)
            return node_fail(x, n, "%s", "only as the first node, axis 0 (an Embedding)");
        et_tensor *w = tensor_of(x, n, n->input[0], false);
        if (!w)
            return x->e->rc;
        if (et_ndim(w) != 2) {
            et_tensor_free(w);
            return node_fail(x, n, "%s", "the table must be 2-D");
        }
        cJSON *l = layer(x, "Embedding");
        cJSON_AddNumberToObject(l, "num_embeddings", (double)et_shape(w)[0]);
        cJSON_AddNumberToObject(l, "embedding_dim", (double)et_shape(w)[1]);
        if (!put(x, li, "weight", w))
            return x->e->rc;
        x->rank = x->rank ? x->rank + 1 : 0;
    } else {
        return node_fail(x, n, "unsupported op (supported: %s)", SUPPORTED);
    }
    return ETD_OK;
}

/* One input that is not an initializer, one output, every node taking the
 * previous node's output (Gather: second; MatMul + Add: the Add its
 * MatMul's), the last one's the graph's output. */
static bool is_chain(const imp *x)
{
    const Onnx__GraphProto *g = x->g;
    const char *cur = NULL;
    for (size_t i = 0; i < g->n_input; i++)
        if (!oi_initializer(x, S(g->input[i]->name))) {
            if (cur)
                return false;
            cur = S(g->input[i]->name);
        }
    if (!cur || g->n_output != 1)
        return false;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (n->n_input < 1 || n->n_output < 1)
            return !!strcmp(S(n->op_type), "Constant"); /* the chain import names the node */
        /* ops only graphs map (onnx_import_ops.c), but a Linear's MatMul + Add */
        if (oi_graph_only_op(S(n->op_type)) &&
            !(i > 0 && !strcmp(S(n->op_type), "Add") && !strcmp(S(g->node[i - 1]->op_type), "MatMul")))
            return false;
        const char *data = !strcmp(S(n->op_type), "Gather") && n->n_input > 1 ? n->input[1]
                                                                            : n->input[0];
        if (strcmp(S(data), cur) != 0)
            return false;
        for (size_t j = 1; j < n->n_input; j++) /* its other inputs: constants */
            if (n->input[j] && n->input[j][0] && strcmp(n->input[j], data) != 0 &&
                !oi_initializer(x, n->input[j]))
                return false;
        cur = S(n->output[0]);
    }
    return strcmp(cur, S(g->output[0]->name)) == 0;
}

etd_rc etd_onnx_import(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e)
{
    *out = NULL;
    const cJSON *oj = cJSON_GetObjectItemCaseSensitive(body, "onnx");
    if (!cJSON_IsString(oj))
        return etd_fail(e, ETD_EINVAL, "onnx: expected the ONNX file as a base64 string");
    uint8_t *bytes;
    size_t len;
    if (etd_base64_decode(oj->valuestring, strlen(oj->valuestring), &bytes, &len, e) != ETD_OK) {
        etd_err_append(e, " (onnx)");
        return e->rc;
    }
    cJSON *spec = cJSON_Duplicate(body, 1);
    etd_rc rc = spec ? ETD_OK : etd_fail(e, ETD_ENOMEM, "out of memory");
    if (spec) {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "onnx");
        rc = etd_onnx_import_file(r, spec, bytes, len, out, e);
    }
    cJSON_Delete(spec);
    free(bytes);
    return rc;
}

etd_rc etd_onnx_import_file(etd_registry *r, const cJSON *spec_in, const uint8_t *bytes,
                            size_t len, etd_model **out, etd_err *e)
{
    *out = NULL;
    if (!cJSON_IsObject(spec_in))
        return etd_fail(e, ETD_EINVAL, "body: expected a JSON object");
    if (cJSON_GetObjectItemCaseSensitive(spec_in, "layers"))
        return etd_fail(e, ETD_EINVAL, "layers: not with an ONNX model (the layers come from "
                        "the file)");
    if (len == 0)
        return etd_fail(e, ETD_EINVAL, "onnx: the file is empty");
    if (!depth_ok(&onnx__model_proto__descriptor, bytes, len, MAX_DEPTH))
        return etd_fail(e, ETD_EINVAL, "onnx: messages nested deeper than %d levels", MAX_DEPTH);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, bytes);
    if (!mp || !mp->graph)
        return onnx__model_proto__free_unpacked(mp, NULL),
               etd_fail(e, ETD_EINVAL, "onnx: not an ONNX model (the protobuf did not decode)");
    imp x = {.g = mp->graph, .layers = cJSON_CreateArray(), .state = et_tensor_dict_new(), .e = e};
    etd_rc rc = ETD_OK;
    e->rc = ETD_OK;
    Onnx__GraphProto *g = mp->graph;
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (!strcmp(S(mp->metadata_props[i]->key), OX_NBT_KEY)) {
            cJSON_Delete(x.nbt);
            x.nbt = cJSON_Parse(S(mp->metadata_props[i]->value));
            if (!cJSON_IsObject(x.nbt)) {
                rc = etd_fail(e, ETD_EINVAL, "onnx: metadata_props \"%s\": expected a JSON "
                              "object of counters", OX_NBT_KEY);
                goto out;
            }
        }
    /* a graph with branches (several inputs or outputs, a node not taking
     * the previous one's output) becomes a graph model */
    if (!is_chain(&x)) {
        rc = oi_import_graph(&x, r, spec_in, out);
        goto out;
    }
    /* the one graph input that is not an initializer, and its rank */
    const char *cur = NULL;
    for (size_t i = 0; i < g->n_input; i++)
        if (!oi_initializer(&x, S(g->input[i]->name))) {
            if (cur) {
                rc = etd_fail(e, ETD_EINVAL, "onnx: the graph has more than one input");
                goto out;
            }
            cur = S(g->input[i]->name);
            const Onnx__TypeProto *t = g->input[i]->type;
            if (t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type->shape)
                x.rank = (int)t->tensor_type->shape->n_dim;
        }
    if (!cur || g->n_output != 1 || !x.layers || !x.state) {
        rc = etd_fail(e, x.layers && x.state ? ETD_EINVAL : ETD_ENOMEM,
                      "onnx: the graph must have one input and one output");
        goto out;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (n->n_input < 1 || n->n_output < 1) {
            rc = node_fail(&x, n, "%s", "a node needs an input and an output");
            goto out;
        }
        if (n->domain && n->domain[0]) {
            rc = node_fail(&x, n, "%s", "not an operator of the default ONNX domain");
            goto out;
        }
        /* the data input: the previous value (Gather takes it second) */
        const char *data = !strcmp(S(n->op_type), "Gather") && n->n_input > 1 ? n->input[1]
                                                                            : n->input[0];
        if (strcmp(data, cur) != 0) {
            rc = node_fail(&x, n, "input \"%.100s\" is not the previous node's output (only "
                           "sequential graphs are imported)", data);
            goto out;
        }
        size_t before = i;
        if ((rc = one_node(&x, g->node, g->n_node, &i)) != ETD_OK)
            goto out;
        cur = g->node[i]->output[0];
        (void)before;
    }
    if (strcmp(cur, S(g->output[0]->name)) != 0) {
        rc = etd_fail(e, ETD_EINVAL, "onnx: the graph's output is not its last node's");
        goto out;
    }
    if (cJSON_GetArraySize(x.layers) == 0) {
        rc = etd_fail(e, ETD_EINVAL, "onnx: the graph has no layers");
        goto out;
    }
    cJSON *spec = cJSON_Duplicate(spec_in, 1);
    if (!spec) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_AddItemToObject(spec, "layers", x.layers);
    x.layers = NULL;
    rc = etd_registry_define_state(r, spec, x.state, out, e);
    cJSON_Delete(spec);
out:
    free(x.alias);
    cJSON_Delete(x.nbt);
    cJSON_Delete(x.layers);
    et_tensor_dict_free(x.state);
    onnx__model_proto__free_unpacked(mp, NULL);
    return rc;
}
