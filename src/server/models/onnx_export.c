/* onnx_export.c - a model as an ONNX file (onnx.h): opset 17, IR 8,
 * dynamic batch dimension, encoded with protobuf-c from ONNX's own
 * onnx.proto (meson generates onnx.pb-c.c).
 *
 * Every layer of the spec becomes ONNX nodes that compute what the layer
 * computes in eval mode (PyTorch's .eval(): Dropout is Identity, BatchNorm
 * uses its running statistics), its parameters and buffers initializers.
 * Shapes that ONNX needs statically (Reshape targets, Pad ranks, adaptive
 * pool windows) come from one probe forward of a batch of one row through
 * the network, layer by layer, under the model's shared lock; the batch
 * dimension stays symbolic ("batch", Reshape's 0). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "server/models/versions.h"
#include "server/models/model_internal.h"
#include "server/models/onnx.h"
#include "server/models/onnx_ox.h"

#define IR_VERSION 8


/* ---------------------------------------------------------------- the layers */


/* "pads" of ONNX (begins then ends) for spatial padding p[0..k). */
static Onnx__AttributeProto *pads_attr(ox *x, const int64_t *p, int k)
{
    int64_t v[4];
    for (int i = 0; i < k; i++)
        v[i] = v[k + i] = p[i];
    return ox_attr_ints(x, "pads", v, 2 * k);
}

/* A torch pad layer's (left, right[, top, bottom]) padding of the last
 * dims of an input of rank nd as ONNX Pad's pads input. */
static const char *pad_input(ox *x, const int64_t *tp, int k, int nd)
{
    int64_t v[2 * ET_MAX_DIMS] = {0};
    for (int j = 0; j < k; j++) { /* torch: pairs from the last dim backwards */
        int dim = nd - 1 - j;
        v[dim] = tp[2 * j];
        v[nd + dim] = tp[2 * j + 1];
    }
    return ox_init_i64(x, "pads", v, 2 * nd);
}

etd_rc ox_export_layer(ox *x, const etd_layer *l, const shape *in, const shape *out,
                       const char **cur, etd_err *e)
{
    const char *n = l->type->name, *c = *cur, *y = NULL;
    if (l->type->forward) /* the layers whose forward takes masks: onnx_export_attn.c */
        return ox_export_attention(x, l, in, out, NULL, NULL, cur, e);
    if (!strcmp(n, "Linear")) {
        const char *b = l->u.linear.bias ? ox_param(x, "bias", NULL, 0) : "";
        if (in->nd == 2) {
            y = ox_node(x, "Gemm", IN(c, ox_param(x, "weight", NULL, 0), b), AT(ox_attr_i(x, "transB", 1)));
        } else { /* MatMul broadcasts over the leading dims: x @ W^T (+ b) */
            int64_t perm[2] = {1, 0};
            y = ox_node(x, "Transpose", IN(ox_param(x, "weight", NULL, 0)),
                     AT(ox_attr_ints(x, "perm", perm, 2)));
            y = ox_node(x, "MatMul", IN(c, y), NULL);
            if (l->u.linear.bias)
                y = ox_node(x, "Add", IN(y, b), NULL);
        }
    } else if (!strcmp(n, "ReLU")) {
        y = ox_node(x, "Relu", IN(c), NULL);
    } else if (!strcmp(n, "Tanh")) {
        y = ox_node(x, "Tanh", IN(c), NULL);
    } else if (!strcmp(n, "Sigmoid")) {
        y = ox_node(x, "Sigmoid", IN(c), NULL);
    } else if (!strcmp(n, "GELU")) { /* no Gelu before opset 20: torch's formulas */
        if (!l->u.gelu.tanh) {       /* x * 0.5 * (1 + erf(x / sqrt(2))) */
            y = ox_node(x, "Div", IN(c, ox_scalar_f(x, "sqrt2", (float)M_SQRT2)), NULL);
            y = ox_node(x, "Erf", IN(y), NULL);
        } else { /* x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) */
            y = ox_node(x, "Mul", IN(c, c), NULL);
            y = ox_node(x, "Mul", IN(y, c), NULL);
            y = ox_node(x, "Mul", IN(y, ox_scalar_f(x, "k0", 0.044715f)), NULL);
            y = ox_node(x, "Add", IN(c, y), NULL);
            y = ox_node(x, "Mul", IN(y, ox_scalar_f(x, "k1", (float)(M_2_SQRTPI * M_SQRT1_2))), NULL);
            y = ox_node(x, "Tanh", IN(y), NULL);
        }
        y = ox_node(x, "Add", IN(y, ox_scalar_f(x, "one", 1.0f)), NULL);
        y = ox_node(x, "Mul", IN(c, y), NULL);
        y = ox_node(x, "Mul", IN(y, ox_scalar_f(x, "half", 0.5f)), NULL);
    } else if (!strcmp(n, "Softmax") || !strcmp(n, "LogSoftmax")) {
        y = ox_node(x, n, IN(c), AT(ox_attr_i(x, "axis", l->u.softmax.dim)));
    } else if (!strcmp(n, "SiLU")) {          /* x * sigmoid(x) */
        y = ox_node(x, "Sigmoid", IN(c), NULL);
        y = ox_node(x, "Mul", IN(c, y), NULL);
    } else if (!strcmp(n, "Mish")) {          /* x * tanh(softplus(x)) */
        y = ox_node(x, "Softplus", IN(c), NULL);
        y = ox_node(x, "Tanh", IN(y), NULL);
        y = ox_node(x, "Mul", IN(c, y), NULL);
    } else if (!strcmp(n, "ELU")) {
        y = ox_node(x, "Elu", IN(c), AT(ox_attr_f(x, "alpha", l->u.act.a)));
    } else if (!strcmp(n, "Softplus")) {      /* torch: x where beta x > threshold */
        const char *beta = ox_scalar_f(x, "beta", (float)l->u.act.a);
        const char *bx = ox_node(x, "Mul", IN(c, beta), NULL);
        y = ox_node(x, "Softplus", IN(bx), NULL);
        y = ox_node(x, "Div", IN(y, beta), NULL);
        const char *big = ox_node(x, "Greater", IN(bx, ox_scalar_f(x, "threshold",
                                                             (float)l->u.act.b)), NULL);
        y = ox_node(x, "Where", IN(big, c, y), NULL);
    } else if (!strcmp(n, "Hardtanh") || !strcmp(n, "ReLU6")) {
        bool six = !strcmp(n, "ReLU6");
        y = ox_node(x, "Clip", IN(c, ox_scalar_f(x, "min", six ? 0.0f : (float)l->u.act.a),
                               ox_scalar_f(x, "max", six ? 6.0f : (float)l->u.act.b)), NULL);
    } else if (!strcmp(n, "LeakyReLU")) {
        y = ox_node(x, "LeakyRelu", IN(c), AT(ox_attr_f(x, "alpha", l->u.leaky_relu.negative_slope)));
    } else if (!strcmp(n, "Dropout") || !strcmp(n, "Dropout2d") || !strcmp(n, "Identity")) {
        y = ox_node(x, "Identity", IN(c), NULL);
    } else if (!strcmp(n, "Flatten") || !strcmp(n, "Unflatten")) {
        int sd = !strcmp(n, "Flatten") ? l->u.flatten.start_dim : l->u.unflatten.dim;
        if (sd < 0)
            sd += in->nd;
        y = ox_reshape_to(x, c, out->d, out->nd, sd == 0);
    } else if (!strcmp(n, "BatchNorm1d") || !strcmp(n, "BatchNorm2d")) {
        const et_batch_norm_opts *o = &l->u.batch_norm.o;
        int64_t C = l->u.batch_norm.num_features;
        if (!o->track_running_stats)
            return ox_unsupported(x, "eval with batch statistics (track_running_stats=false)", e);
        const char *w = o->affine ? ox_param(x, "weight", NULL, 0) : ox_fill(x, "weight", C, 1);
        const char *b = o->affine ? ox_param(x, "bias", NULL, 0) : ox_fill(x, "bias", C, 0);
        y = ox_node(x, "BatchNormalization",
                 IN(c, w, b, ox_param(x, "running_mean", NULL, 0), ox_param(x, "running_var", NULL, 0)),
                 AT(ox_attr_f(x, "epsilon", o->eps)));
    } else if (!strcmp(n, "LayerNorm")) {
        int k = l->u.layer_norm.nd;
        int64_t numel = 1;
        for (int i = 0; i < k; i++)
            numel *= l->u.layer_norm.shape[i];
        const char *w = l->u.layer_norm.affine ? ox_param(x, "weight", NULL, 0)
                                               : ox_fill(x, "weight", numel, 1);
        const char *b = l->u.layer_norm.affine ? ox_param(x, "bias", NULL, 0) : "";
        if (!l->u.layer_norm.affine && k > 1) {
            y = ox_node(x, "Reshape", IN(w, ox_init_i64(x, "wshape", l->u.layer_norm.shape, k)), NULL);
            w = y;
        }
        y = ox_node(x, "LayerNormalization", b[0] ? IN(c, w, b) : IN(c, w),
                 AT(ox_attr_i(x, "axis", -k), ox_attr_f(x, "epsilon", l->u.layer_norm.eps)));
    } else if (!strcmp(n, "GroupNorm")) {
        /* no GroupNormalization before opset 18: InstanceNormalization over
         * [N, G, rest], back to the input's shape, then the affine part */
        int64_t G = l->u.group_norm.groups, C = l->u.group_norm.channels;
        int64_t s3[3] = {0, G, -1};
        y = ox_node(x, "Reshape", IN(c, ox_init_i64(x, "groups", s3, 3)), NULL);
        y = ox_node(x, "InstanceNormalization", IN(y, ox_fill(x, "ones", G, 1), ox_fill(x, "zeros", G, 0)),
                 AT(ox_attr_f(x, "epsilon", l->u.group_norm.eps)));
        y = ox_reshape_to(x, y, in->d, in->nd, false);
        if (l->u.group_norm.affine) {
            int64_t wd[ET_MAX_DIMS];
            wd[0] = C;
            for (int i = 1; i < in->nd - 1; i++)
                wd[i] = 1;
            y = ox_node(x, "Mul", IN(y, ox_param(x, "weight", wd, in->nd - 1)), NULL);
            y = ox_node(x, "Add", IN(y, ox_param(x, "bias", wd, in->nd - 1)), NULL);
        }
    } else if (!strcmp(n, "Embedding")) {
        if (l->u.embedding.o.max_norm > 0)
            return ox_unsupported(x, "max_norm (it renormalises the weight in the forward)", e);
        y = ox_node(x, "Gather", IN(ox_param(x, "weight", NULL, 0), c), AT(ox_attr_i(x, "axis", 0)));
    } else if (!strcmp(n, "EmbeddingBag")) { /* each row a bag: onnx_export_bag.c */
        bool i64 = !strcmp(c, "input") && x->m->spec.input_dtype == ET_INT64;
        return ox_export_embedding_bag(x, l, in, c, i64, NULL, cur, e);
    } else if (!strcmp(n, "Conv1d") || !strcmp(n, "Conv2d") || !strcmp(n, "ConvTranspose2d")) {
        const et_conv_opts *o = &l->u.conv.o;
        int k = !strcmp(n, "Conv1d") ? 1 : 2;
        bool tr = n[4] == 'T';
        int64_t pad[2] = {o->padding[0], o->padding[1]}, pb[2], pe[2];
        if (o->padding_same) { /* torch: total = dilation * (kernel - 1), the extra one at the end */
            for (int i = 0; i < k; i++) {
                int64_t tot = o->dilation[i] * (l->u.conv.kernel[i] - 1);
                pb[i] = tot / 2;
                pe[i] = tot - pb[i];
            }
        } else {
            for (int i = 0; i < k; i++)
                pb[i] = pe[i] = pad[i];
        }
        if (o->padding_mode != ET_PAD_CONSTANT && !tr) {
            if (o->padding_mode == ET_PAD_CIRCULAR)
                return ox_unsupported(x, "padding_mode=\"circular\" (ONNX Pad has no wrap before opset 19)", e);
            int64_t tp[4];
            for (int j = 0; j < k; j++) { /* torch order: last dim first */
                int dim = k - 1 - j;
                tp[2 * j] = pb[dim];
                tp[2 * j + 1] = pe[dim];
            }
            c = ox_node(x, "Pad", IN(c, pad_input(x, tp, k, in->nd)),
                     AT(ox_attr_s(x, "mode", o->padding_mode == ET_PAD_REFLECT ? "reflect" : "edge")));
            pb[0] = pb[1] = pe[0] = pe[1] = 0;
        }
        int64_t pads[4];
        for (int i = 0; i < k; i++) {
            pads[i] = pb[i];
            pads[k + i] = pe[i];
        }
        const char *b = o->bias ? ox_param(x, "bias", NULL, 0) : "";
        const char *w = ox_param(x, "weight", NULL, 0);
        Onnx__AttributeProto *at[] = {
            ox_attr_ints(x, "kernel_shape", l->u.conv.kernel, k), ox_attr_ints(x, "strides", o->stride, k),
            ox_attr_ints(x, "pads", pads, 2 * k), ox_attr_ints(x, "dilations", o->dilation, k),
            ox_attr_i(x, "group", o->groups),
            tr ? ox_attr_ints(x, "output_padding", o->output_padding, k) : NULL, NULL};
        y = ox_node(x, tr ? "ConvTranspose" : "Conv", o->bias ? IN(c, w, b) : IN(c, w), at);
    } else if (!strcmp(n, "MaxPool1d") || !strcmp(n, "MaxPool2d") || !strcmp(n, "AvgPool1d") ||
               !strcmp(n, "AvgPool2d")) {
        const et_pool_opts *o = &l->u.pool.o;
        int k = strchr(n, '1') ? 1 : 2;
        int64_t stride[2];
        for (int i = 0; i < k; i++)
            stride[i] = o->stride[i] > 0 ? o->stride[i] : l->u.pool.kernel[i];
        if (n[0] == 'M') {
            y = ox_node(x, "MaxPool", IN(c),
                     AT(ox_attr_ints(x, "kernel_shape", l->u.pool.kernel, k),
                        ox_attr_ints(x, "strides", stride, k), pads_attr(x, o->padding, k),
                        ox_attr_ints(x, "dilations", o->dilation, k),
                        ox_attr_i(x, "ceil_mode", o->ceil_mode)));
        } else {
            if (o->divisor_override)
                return ox_unsupported(x, "divisor_override", e);
            y = ox_node(x, "AveragePool", IN(c),
                     AT(ox_attr_ints(x, "kernel_shape", l->u.pool.kernel, k),
                        ox_attr_ints(x, "strides", stride, k), pads_attr(x, o->padding, k),
                        ox_attr_i(x, "ceil_mode", o->ceil_mode),
                        ox_attr_i(x, "count_include_pad", o->count_include_pad)));
        }
    } else if (!strncmp(n, "Adaptive", 8)) {
        int k = strchr(n, '1') ? 1 : 2;
        bool max = n[8] == 'M';
        bool global = true, exact = true;
        int64_t ks[2];
        for (int i = 0; i < k; i++) {
            int64_t is = in->d[in->nd - k + i], os = out->d[out->nd - k + i];
            global = global && os == 1;
            exact = exact && os > 0 && is % os == 0;
            ks[i] = os > 0 ? is / os : 1;
        }
        if (global)
            y = ox_node(x, max ? "GlobalMaxPool" : "GlobalAveragePool", IN(c), NULL);
        else if (exact) /* equal windows: a plain pool */
            y = ox_node(x, max ? "MaxPool" : "AveragePool", IN(c),
                     AT(ox_attr_ints(x, "kernel_shape", ks, k), ox_attr_ints(x, "strides", ks, k)));
        else
            return ox_unsupported(x, "an output size that does not divide the input size", e);
    } else if (strstr(n, "Pad")) {
        int k = strchr(n, '1') ? 1 : 2;
        const char *mode = !strncmp(n, "Reflection", 10) ? "reflect"
                           : !strncmp(n, "Replication", 11) ? "edge" : "constant";
        const char *p = pad_input(x, l->u.pad.pad, k, in->nd);
        if (!strcmp(mode, "constant"))
            y = ox_node(x, "Pad", IN(c, p, ox_scalar_f(x, "value", (float)l->u.pad.value)),
                     AT(ox_attr_s(x, "mode", mode)));
        else
            y = ox_node(x, "Pad", IN(c, p), AT(ox_attr_s(x, "mode", mode)));
    } else {
        return ox_unsupported(x, "this layer type", e);
    }
    *cur = y;
    return ETD_OK;
}

/* ---------------------------------------------------------------- the model */

Onnx__ValueInfoProto *ox_value_info(ox *x, const char *name, int elem, const shape *s)
{
    Onnx__ValueInfoProto *v = ox_alloc(x, sizeof *v);
    Onnx__TypeProto *t = ox_alloc(x, sizeof *t);
    Onnx__TypeProto__Tensor *tt = ox_alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ox_alloc(x, (size_t)s->nd * sizeof *dims);
    if (!v || !t || !tt || !sh || !dims)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < s->nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = ox_alloc(x, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = (char *)"batch";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = s->d[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)s->nd;
    sh->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = elem;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = (char *)name;
    v->type = t;
    return v;
}

/* Shapes of the input and of every layer's output: a forward of one row
 * (zeros; index 0 for an index-taking model), layer by layer. */
static etd_rc probe(etd_model *m, const int64_t *dims, int nd, shape *shapes, etd_err *e)
{
    shape s0 = {.nd = nd + 1};
    s0.d[0] = 1;
    memcpy(s0.d + 1, dims, (size_t)nd * sizeof *dims);
    shapes[0] = s0;
    etd_rc rc = ETD_OK;
    et_pool_begin();
    et_tensor *t = m->spec.input_dtype == ET_INT64 ? et_to_dtype(et_zeros(s0.d, s0.nd), ET_INT64)
                                                    : et_zeros(s0.d, s0.nd);
    int n = et_sequential_len(m->net);
    ET_NO_GRAD {
        for (int i = 0; i < n && t; i++) {
            et_tensor *in[ETD_MAX_FWD_ARGS] = {t}; /* as run_net (train.c): masks from the spec */
            t = etd_layer_forward(&m->spec.layers[i], et_sequential_get(m->net, i), in);
            if (!t) {
                char sh[160];
                et_shape_str(s0.d, s0.nd, sh, sizeof sh);
                rc = etd_fail(e, ETD_EINVAL, "export: layers[%d] (%s), probing the shapes with an "
                              "input of shape %s: %s (give ?input_shape=...)", i,
                              m->spec.layers[i].type->name, sh, et_errmsg());
                break;
            }
            shapes[i + 1].nd = et_ndim(t);
            memcpy(shapes[i + 1].d, et_shape(t), (size_t)et_ndim(t) * sizeof(int64_t));
        }
    }
    if (!t && rc == ETD_OK)
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
    et_pool_end();
    return rc;
}

etd_rc ox_pack(ox *x, Onnx__ValueInfoProto **vin, size_t nin, Onnx__ValueInfoProto **vout,
               size_t nout, uint8_t **buf, size_t *len, etd_err *e)
{
    etd_model *m = x->m;
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto ops = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsp = &ops;
    g.name = m->name;
    g.n_node = x->nn;
    g.node = x->nodes;
    g.n_initializer = x->ni;
    g.initializer = x->inits;
    g.n_input = nin;
    g.input = vin;
    g.n_output = nout;
    g.output = vout;
    ops.domain = (char *)"";
    ops.has_version = true;
    ops.version = OPSET;
    mp.has_ir_version = true;
    mp.ir_version = IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = &opsp;
    mp.producer_name = (char *)"easytorchd";
    mp.producer_version = (char *)EASYTORCH_VERSION;
    mp.graph = &g;
    Onnx__StringStringEntryProto nbt = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *nbtp = &nbt;
    if ((nbt.value = ox_num_batches_tracked(x, m->net))) {
        nbt.key = (char *)OX_NBT_KEY;
        mp.n_metadata_props = 1;
        mp.metadata_props = &nbtp;
    }
    for (size_t i = 0; i < nin; i++)
        x->oom = x->oom || !vin[i];
    for (size_t i = 0; i < nout; i++)
        x->oom = x->oom || !vout[i];
    if (x->oom)
        return etd_fail(e, ETD_ENOMEM, "out of memory exporting the model");
    *len = onnx__model_proto__get_packed_size(&mp);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return etd_fail(e, ETD_ENOMEM, "out of memory exporting the model");
    onnx__model_proto__pack(&mp, *buf);
    return ETD_OK;
}

void ox_free(ox *x)
{
    for (size_t i = 0; i < x->nowned; i++)
        free(x->owned[i]);
    free(x->owned);
    free(x->nodes);
    free(x->inits);
}

etd_rc etd_model_export_onnx(etd_model *m, const int64_t *in_dims, int in_nd, uint8_t **buf,
                             size_t *len, etd_err *e)
{
    *buf = NULL;
    etd_rc rc;
    if (m->spec.graph) {
        if ((rc = etd_model_lock(m, false, e)) != ETD_OK)
            return rc;
        rc = ox_export_graph(m, in_dims, in_nd, buf, len, e);
        etd_model_unlock(m);
        return rc;
    }
    int64_t dims[ET_MAX_DIMS];
    if (in_nd < 0) { /* not given: what the spec fixes */
        if (m->spec.in_features < 0)
            return etd_fail(e, ETD_EINVAL, "input_shape: the model's layers do not fix its input "
                            "size; give the dimensions after the batch (?input_shape=1,28,28)");
        dims[0] = m->spec.in_features; /* [batch, features] (an index model: its length) */
        in_nd = 1;
    } else {
        if (in_nd + 1 > ET_MAX_DIMS)
            return etd_fail(e, ETD_EINVAL, "input_shape: at most %d dimensions", ET_MAX_DIMS - 1);
        for (int i = 0; i < in_nd; i++)
            if (in_dims[i] < 1)
                return etd_fail(e, ETD_EINVAL, "input_shape: a layer list has one input "
                                "(no ';') and at least one dimension after the batch");
        memcpy(dims, in_dims, (size_t)in_nd * sizeof *dims);
    }
    int nl = m->spec.nlayers;
    shape *shapes = calloc((size_t)nl + 1, sizeof *shapes);
    if (!shapes)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    ox x = {.m = m};
    if ((rc = etd_model_lock(m, false, e)) != ETD_OK) {
        free(shapes);
        return rc;
    }
    if ((rc = probe(m, dims, in_nd, shapes, e)) != ETD_OK)
        goto out;
    const char *cur = "input";
    for (int i = 0; i < nl && rc == ETD_OK; i++) {
        char pp[16], cp[32];
        snprintf(pp, sizeof pp, "%d", i);
        snprintf(cp, sizeof cp, "layers.%d", i);
        ox_at(&x, &m->spec.layers[i], pp, cp, "layers[%d] (%s)", i, m->spec.layers[i].type->name);
        rc = ox_export_layer(&x, &m->spec.layers[i], &shapes[i], &shapes[i + 1], &cur, e);
    }
    if (rc != ETD_OK)
        goto out;
    char cpo[32];
    snprintf(cpo, sizeof cpo, "layers.%d", nl);
    ox_at(&x, NULL, "", cpo, "output");
    cur = ox_node(&x, "Identity", IN(cur), NULL);
    Onnx__NodeProto *last = x.nodes[x.nn - 1];
    last->output[0] = (char *)"output";
    int in_elem = m->spec.input_dtype == ET_INT64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64
                                                  : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    Onnx__ValueInfoProto *vin = ox_value_info(&x, "input", in_elem, &shapes[0]);
    Onnx__ValueInfoProto *vout = ox_value_info(&x, "output", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                                               &shapes[nl]);
    rc = ox_pack(&x, &vin, 1, &vout, 1, buf, len, e);
out:
    etd_model_unlock(m);
    ox_free(&x);
    free(shapes);
    return rc;
}
