/* spec_layers.c - the layer types of a model spec: one row each (name,
 * fields, parse, build, takes indices), see spec.h for how to add one.
 * The normalisation, embedding and image layers are parsed in
 * spec_layers_norm.c and spec_layers_conv.c (spec_layers.h). */
#include <float.h>
#include <stdint.h>

#include "server/models/spec_layers.h"

/* ---- Linear ---- */

static const char *const linear_fields[] = {"in_features", "out_features", "bias", NULL};

static bool linear_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t in, out;
    if (!etd_field_int(o, "in_features", true, 0, 1, INT64_MAX, &in) ||
        !etd_field_int(o, "out_features", true, 0, 1, INT64_MAX, &out) ||
        !etd_field_bool(o, "bias", true, &l->u.linear.bias) ||
        !etd_flow_need(f, o, "in_features", in))
        return false;
    /* overflow-free: in * out is only formed once it is known to fit */
    if (in > f->max_params / out)
        return etd_flow_params(f, o, -1);
    if (!etd_flow_params(f, o, in * out + (l->u.linear.bias ? out : 0)))
        return false;
    l->u.linear.in_features = in;
    l->u.linear.out_features = out;
    etd_flow_give(f, out, "the out_features of the previous Linear");
    return true;
}

static et_module *linear_build(const etd_layer *l, et_generator *g)
{
    return et_linear_new(l->u.linear.in_features, l->u.linear.out_features, l->u.linear.bias, g);
}

/* ---- activations and friends ---- */

static const char *const inplace_field[] = {"inplace", NULL};

/* inplace is accepted for torch compatibility and has no effect */
static bool inplace_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    (void)l;
    (void)f;
    bool inplace;
    return etd_field_bool(o, "inplace", false, &inplace);
}

static et_module *relu_build(const etd_layer *l, et_generator *g) { return et_relu_new(); }
static et_module *tanh_build(const etd_layer *l, et_generator *g) { return et_tanh_new(); }
static et_module *sigmoid_build(const etd_layer *l, et_generator *g) { return et_sigmoid_new(); }
static et_module *identity_build(const etd_layer *l, et_generator *g) { return et_identity_new(); }

static const char *const gelu_fields[] = {"approximate", NULL};

static bool gelu_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    static const char *const modes[] = {"none", "tanh", NULL};
    int mode;
    if (!etd_field_choice(o, "approximate", modes, 0, &mode))
        return false;
    l->u.gelu.tanh = mode == 1;
    return true;
}

static et_module *gelu_build(const etd_layer *l, et_generator *g) { return et_gelu_new(l->u.gelu.tanh); }

static const char *const dim_field[] = {"dim", NULL};

/* PyTorch's dim=None is not supported; -1 is what it means for [batch, features] */
static bool softmax_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t dim;
    if (!etd_field_int(o, "dim", false, -1, -ET_MAX_DIMS, ET_MAX_DIMS - 1, &dim))
        return false;
    l->u.softmax.dim = (int)dim;
    return true;
}

static et_module *softmax_build(const etd_layer *l, et_generator *g)
{
    return et_softmax_new(l->u.softmax.dim);
}

static et_module *log_softmax_build(const etd_layer *l, et_generator *g)
{
    return et_log_softmax_new(l->u.softmax.dim);
}

static const char *const leaky_fields[] = {"negative_slope", "inplace", NULL};

static bool leaky_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    /* a float in nn: bounded by FLT_MAX so the cast cannot overflow */
    return etd_field_num(o, "negative_slope", false, 0.01, -FLT_MAX, FLT_MAX,
                         &l->u.leaky_relu.negative_slope) &&
           inplace_parse(l, o, f);
}

static et_module *leaky_build(const etd_layer *l, et_generator *g)
{
    return et_leaky_relu_new((float)l->u.leaky_relu.negative_slope);
}

static const char *const dropout_fields[] = {"p", "inplace", NULL};

static bool dropout_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return etd_field_num(o, "p", false, 0.5, 0.0, 1.0, &l->u.dropout.p) && inplace_parse(l, o, f);
}

/* Dropout draws its masks from the model's generator */
static et_module *dropout_build(const etd_layer *l, et_generator *g)
{
    return et_dropout_new((float)l->u.dropout.p, g);
}

static const char *const flatten_fields[] = {"start_dim", "end_dim", NULL};

static bool flatten_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t s, e;
    if (!etd_field_int(o, "start_dim", false, 1, -ET_MAX_DIMS, ET_MAX_DIMS - 1, &s) ||
        !etd_field_int(o, "end_dim", false, -1, -ET_MAX_DIMS, ET_MAX_DIMS - 1, &e))
        return false;
    l->u.flatten.start_dim = (int)s;
    l->u.flatten.end_dim = (int)e;
    etd_flow_reshape(f);
    return true;
}

static et_module *flatten_build(const etd_layer *l, et_generator *g)
{
    return et_flatten_new(l->u.flatten.start_dim, l->u.flatten.end_dim);
}

/* ---- more activations (torch.nn.SiLU, Mish, ReLU6, ELU, Softplus, Hardtanh) ---- */

static et_module *silu_build(const etd_layer *l, et_generator *g) { return et_silu_new(); }
static et_module *mish_build(const etd_layer *l, et_generator *g) { return et_mish_new(); }
static et_module *relu6_build(const etd_layer *l, et_generator *g) { return et_relu6_new(); }

static const char *const elu_fields[] = {"alpha", "inplace", NULL};

static bool elu_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return etd_field_num(o, "alpha", false, 1.0, -FLT_MAX, FLT_MAX, &l->u.act.a) &&
           inplace_parse(l, o, f);
}

static et_module *elu_build(const etd_layer *l, et_generator *g)
{
    return et_elu_new((float)l->u.act.a);
}

static const char *const softplus_fields[] = {"beta", "threshold", NULL};

static bool softplus_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    if (!etd_field_num(o, "beta", false, 1.0, -FLT_MAX, FLT_MAX, &l->u.act.a) ||
        !etd_field_num(o, "threshold", false, 20.0, -FLT_MAX, FLT_MAX, &l->u.act.b))
        return false;
    if (l->u.act.a == 0)
        return etd_field_fail(o, "beta", "expected a non-zero number (softplus divides by it)");
    return true;
}

static et_module *softplus_build(const etd_layer *l, et_generator *g)
{
    return et_softplus_new((float)l->u.act.a, (float)l->u.act.b);
}

static const char *const hardtanh_fields[] = {"min_val", "max_val", "inplace", NULL};

static bool hardtanh_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    if (!etd_field_num(o, "min_val", false, -1.0, -FLT_MAX, FLT_MAX, &l->u.act.a) ||
        !etd_field_num(o, "max_val", false, 1.0, -FLT_MAX, FLT_MAX, &l->u.act.b) ||
        !inplace_parse(l, o, f))
        return false;
    if (!(l->u.act.b > l->u.act.a))   /* torch.nn.Hardtanh asserts it */
        return etd_field_fail(o, "max_val", "expected a number greater than min_val (%g)",
                              l->u.act.a);
    return true;
}

static et_module *hardtanh_build(const etd_layer *l, et_generator *g)
{
    return et_hardtanh_new((float)l->u.act.a, (float)l->u.act.b);
}

/* ---- the table: one row per type, in the order of "known: ..." ---- */

const etd_layer_type etd_layer_types[] = {
    {"Linear", linear_fields, linear_parse, linear_build, false, NULL, NULL},
    {"ReLU", inplace_field, inplace_parse, relu_build, false, NULL, NULL},
    {"Tanh", NULL, NULL, tanh_build, false, NULL, NULL},
    {"Sigmoid", NULL, NULL, sigmoid_build, false, NULL, NULL},
    {"GELU", gelu_fields, gelu_parse, gelu_build, false, NULL, NULL},
    {"Softmax", dim_field, softmax_parse, softmax_build, false, NULL, NULL},
    {"LogSoftmax", dim_field, softmax_parse, log_softmax_build, false, NULL, NULL},
    {"LeakyReLU", leaky_fields, leaky_parse, leaky_build, false, NULL, NULL},
    {"Dropout", dropout_fields, dropout_parse, dropout_build, false, NULL, NULL},
    {"Flatten", flatten_fields, flatten_parse, flatten_build, false, NULL, NULL},
    {"Identity", NULL, NULL, identity_build, false, NULL, NULL},
    /* spec_layers_norm.c */
    {"BatchNorm1d", etd_batch_norm1d_fields, etd_batch_norm1d_parse, etd_batch_norm1d_build, false, NULL, NULL},
    {"BatchNorm2d", etd_batch_norm2d_fields, etd_batch_norm2d_parse, etd_batch_norm2d_build, false, NULL, NULL},
    {"LayerNorm", etd_layer_norm_fields, etd_layer_norm_parse, etd_layer_norm_build, false, NULL, NULL},
    {"GroupNorm", etd_group_norm_fields, etd_group_norm_parse, etd_group_norm_build, false, NULL, NULL},
    {"Embedding", etd_embedding_fields, etd_embedding_parse, etd_embedding_build, true, NULL, NULL},
    {"EmbeddingBag", etd_embedding_bag_fields, etd_embedding_bag_parse, etd_embedding_bag_build, true, NULL, NULL},
    /* spec_layers_conv.c */
    {"Conv1d", etd_conv1d_fields, etd_conv1d_parse, etd_conv1d_build, false, NULL, NULL},
    {"Conv2d", etd_conv2d_fields, etd_conv2d_parse, etd_conv2d_build, false, NULL, NULL},
    {"ConvTranspose2d", etd_conv_transpose2d_fields, etd_conv_transpose2d_parse, etd_conv_transpose2d_build, false, NULL, NULL},
    {"MaxPool1d", etd_max_pool1d_fields, etd_max_pool1d_parse, etd_max_pool1d_build, false, NULL, NULL},
    {"MaxPool2d", etd_max_pool2d_fields, etd_max_pool2d_parse, etd_max_pool2d_build, false, NULL, NULL},
    {"AvgPool1d", etd_avg_pool1d_fields, etd_avg_pool1d_parse, etd_avg_pool1d_build, false, NULL, NULL},
    {"AvgPool2d", etd_avg_pool2d_fields, etd_avg_pool2d_parse, etd_avg_pool2d_build, false, NULL, NULL},
    {"AdaptiveAvgPool1d", etd_adaptive_avg_pool1d_fields, etd_adaptive_avg_pool1d_parse, etd_adaptive_avg_pool1d_build, false, NULL, NULL},
    {"AdaptiveAvgPool2d", etd_adaptive_avg_pool2d_fields, etd_adaptive_avg_pool2d_parse, etd_adaptive_avg_pool2d_build, false, NULL, NULL},
    {"AdaptiveMaxPool1d", etd_adaptive_max_pool1d_fields, etd_adaptive_max_pool1d_parse, etd_adaptive_max_pool1d_build, false, NULL, NULL},
    {"AdaptiveMaxPool2d", etd_adaptive_max_pool2d_fields, etd_adaptive_max_pool2d_parse, etd_adaptive_max_pool2d_build, false, NULL, NULL},
    {"ZeroPad2d", etd_zero_pad2d_fields, etd_zero_pad2d_parse, etd_zero_pad2d_build, false, NULL, NULL},
    {"ConstantPad1d", etd_constant_pad1d_fields, etd_constant_pad1d_parse, etd_constant_pad1d_build, false, NULL, NULL},
    {"ConstantPad2d", etd_constant_pad2d_fields, etd_constant_pad2d_parse, etd_constant_pad2d_build, false, NULL, NULL},
    {"ReflectionPad1d", etd_reflection_pad1d_fields, etd_reflection_pad1d_parse, etd_reflection_pad1d_build, false, NULL, NULL},
    {"ReflectionPad2d", etd_reflection_pad2d_fields, etd_reflection_pad2d_parse, etd_reflection_pad2d_build, false, NULL, NULL},
    {"ReplicationPad1d", etd_replication_pad1d_fields, etd_replication_pad1d_parse, etd_replication_pad1d_build, false, NULL, NULL},
    {"ReplicationPad2d", etd_replication_pad2d_fields, etd_replication_pad2d_parse, etd_replication_pad2d_build, false, NULL, NULL},
    {"Unflatten", etd_unflatten_fields, etd_unflatten_parse, etd_unflatten_build, false, NULL, NULL},
    {"Dropout2d", etd_dropout2d_fields, etd_dropout2d_parse, etd_dropout2d_build, false, NULL, NULL},
    /* spec_layers.c: issue 14's activations */
    {"SiLU", inplace_field, inplace_parse, silu_build, false, NULL, NULL},
    {"Mish", inplace_field, inplace_parse, mish_build, false, NULL, NULL},
    {"ELU", elu_fields, elu_parse, elu_build, false, NULL, NULL},
    {"Softplus", softplus_fields, softplus_parse, softplus_build, false, NULL, NULL},
    {"Hardtanh", hardtanh_fields, hardtanh_parse, hardtanh_build, false, NULL, NULL},
    {"ReLU6", inplace_field, inplace_parse, relu6_build, false, NULL, NULL},
    /* spec_layers_attn.c */
    {"MultiheadAttention", etd_mha_fields, etd_mha_parse, etd_mha_build, false, etd_mha_fwd_args,
     etd_mha_forward},
    {"TransformerEncoderLayer", etd_enc_layer_fields, etd_enc_layer_parse, etd_enc_layer_build,
     false, etd_enc_layer_fwd_args, etd_enc_layer_forward},
    {"TransformerEncoder", etd_encoder_fields, etd_encoder_parse, etd_encoder_build, false,
     etd_encoder_fwd_args, etd_encoder_forward},
};
const int etd_nlayer_types = (int)(sizeof etd_layer_types / sizeof etd_layer_types[0]);
