/* spec_layers_conv.c - the image layer types of a model spec: convolutions,
 * pools, padding layers, Unflatten, Dropout2d (torch.nn names, arguments and
 * defaults; "int or tuple" arguments as a number or a JSON list; rows in
 * spec_layers.c).  These layers change the shape in ways the feature flow
 * does not follow: the width is unknown after them, and shape errors are
 * reported when the model runs, naming the layer. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "server/models/spec_layers.h"

#define BIG INT32_MAX   /* sizes: anything larger is not a real layer */

/* ---- convolutions ---- */

const char *const etd_conv1d_fields[] = {"in_channels", "out_channels", "kernel_size", "stride",
                                         "padding", "dilation", "groups", "bias", "padding_mode",
                                         NULL};
const char *const etd_conv2d_fields[] = {"in_channels", "out_channels", "kernel_size", "stride",
                                         "padding", "dilation", "groups", "bias", "padding_mode",
                                         NULL};
const char *const etd_conv_transpose2d_fields[] = {"in_channels", "out_channels", "kernel_size",
                                                   "stride", "padding", "output_padding",
                                                   "groups", "bias", "dilation", "padding_mode",
                                                   NULL};

static bool conv_parse(etd_layer *l, const etd_obj *o, etd_flow *f, int n, bool transpose)
{
    et_conv_opts *c = &l->u.conv.o;
    *c = ET_CONV_DEFAULTS;
    int64_t in, out;
    if (!etd_field_int(o, "in_channels", true, 0, 1, BIG, &in) ||
        !etd_field_int(o, "out_channels", true, 0, 1, BIG, &out) ||
        !etd_field_int_tuple(o, "kernel_size", true, n, 0, 1, BIG, l->u.conv.kernel) ||
        !etd_field_int_tuple(o, "stride", false, n, 1, 1, BIG, c->stride) ||
        !etd_field_int_tuple(o, "dilation", false, n, 1, 1, BIG, c->dilation) ||
        !etd_field_int(o, "groups", false, 1, 1, BIG, &c->groups) ||
        !etd_field_bool(o, "bias", true, &c->bias))
        return false;
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(o->o, "padding");
    if (!transpose && cJSON_IsString(pad)) {
        if (strcmp(pad->valuestring, "same") == 0) {
            c->padding_same = true;
            for (int i = 0; i < n; i++)
                if (c->stride[i] != 1)
                    return etd_field_fail(o, "padding", "\"same\" is not supported for strided "
                                          "convolutions (stride must be 1)");
        } else if (strcmp(pad->valuestring, "valid") != 0) {
            return etd_field_fail(o, "padding", "expected \"same\", \"valid\", an integer >= 0 "
                                  "or a list of %d of them", n);
        }
    } else if (!etd_field_int_tuple(o, "padding", false, n, 0, 0, BIG, c->padding)) {
        return false;
    }
    if (transpose) {
        if (!etd_field_int_tuple(o, "output_padding", false, n, 0, 0, BIG, c->output_padding))
            return false;
        for (int i = 0; i < n; i++)
            if (c->output_padding[i] >= c->stride[i] && c->output_padding[i] >= c->dilation[i])
                return etd_field_fail(o, "output_padding", "must be smaller than either stride "
                                      "or dilation");
    }
    static const char *const modes[] = {"zeros", "reflect", "replicate", "circular", NULL};
    int mode;
    if (!etd_field_choice(o, "padding_mode", modes, 0, &mode))
        return false;
    if (transpose && mode != 0)
        return etd_field_fail(o, "padding_mode", "only \"zeros\" is supported for "
                              "ConvTranspose2d");
    c->padding_mode = mode == 0 ? ET_PAD_CONSTANT : mode == 1 ? ET_PAD_REFLECT
                      : mode == 2 ? ET_PAD_REPLICATE : ET_PAD_CIRCULAR;
    if (in % c->groups || out % c->groups)
        return etd_field_fail(o, "groups", "in_channels (%lld) and out_channels (%lld) must be "
                              "divisible by groups (%lld)", (long long)in, (long long)out,
                              (long long)c->groups);
    if (n == 1) {   /* the 1-d layer reads entry 0 of each array */
        l->u.conv.kernel[1] = 1;
    }
    /* weight in * out / groups * prod(kernel), bias out: overflow-free */
    int64_t per = (transpose ? out : in) / c->groups, count = transpose ? in : out;
    int64_t k = l->u.conv.kernel[0] * l->u.conv.kernel[1];
    if (per > f->max_params / count || per * count > f->max_params / k)
        return etd_flow_params(f, o, -1);
    if (!etd_flow_params(f, o, per * count * k + (c->bias ? out : 0)))
        return false;
    l->u.conv.in = in;
    l->u.conv.out = out;
    etd_flow_reshape(f);
    return true;
}

bool etd_conv1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return conv_parse(l, o, f, 1, false); }
bool etd_conv2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return conv_parse(l, o, f, 2, false); }
bool etd_conv_transpose2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return conv_parse(l, o, f, 2, true);
}

et_module *etd_conv1d_build(const etd_layer *l, et_generator *g)
{
    return et_conv1d_new(l->u.conv.in, l->u.conv.out, l->u.conv.kernel[0], &l->u.conv.o, g);
}

et_module *etd_conv2d_build(const etd_layer *l, et_generator *g)
{
    return et_conv2d_new(l->u.conv.in, l->u.conv.out, l->u.conv.kernel, &l->u.conv.o, g);
}

et_module *etd_conv_transpose2d_build(const etd_layer *l, et_generator *g)
{
    return et_conv_transpose2d_new(l->u.conv.in, l->u.conv.out, l->u.conv.kernel, &l->u.conv.o, g);
}

/* ---- pools ---- */

const char *const etd_max_pool1d_fields[] = {"kernel_size", "stride", "padding", "dilation",
                                             "return_indices", "ceil_mode", NULL};
const char *const etd_max_pool2d_fields[] = {"kernel_size", "stride", "padding", "dilation",
                                             "return_indices", "ceil_mode", NULL};
const char *const etd_avg_pool1d_fields[] = {"kernel_size", "stride", "padding", "ceil_mode",
                                             "count_include_pad", NULL};
const char *const etd_avg_pool2d_fields[] = {"kernel_size", "stride", "padding", "ceil_mode",
                                             "count_include_pad", "divisor_override", NULL};

/* return_indices=True makes torch's pool return a tuple, which a Sequential cannot pass on */
static bool no_indices(const etd_obj *o)
{
    bool ri;
    if (!etd_field_bool(o, "return_indices", false, &ri))
        return false;
    return !ri || etd_field_fail(o, "return_indices", "must be false in a Sequential model (the "
                                 "layer would return a tuple)");
}

static bool pool_parse(etd_layer *l, const etd_obj *o, etd_flow *f, int n, bool max)
{
    et_pool_opts *p = &l->u.pool.o;
    *p = ET_POOL_DEFAULTS;
    if (!etd_field_int_tuple(o, "kernel_size", true, n, 0, 1, BIG, l->u.pool.kernel) ||
        !etd_field_int_tuple(o, "padding", false, n, 0, 0, BIG, p->padding) ||
        !etd_field_bool(o, "ceil_mode", false, &p->ceil_mode))
        return false;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o->o, "stride");
    if (st && !cJSON_IsNull(st) &&   /* null / absent: stride = kernel_size (stride all 0) */
        !etd_field_int_tuple(o, "stride", true, n, 0, 1, BIG, p->stride))
        return false;
    for (int i = 0; i < n; i++)
        if (2 * p->padding[i] > l->u.pool.kernel[i])
            return etd_field_fail(o, "padding", "should be at most half of the kernel size");
    if (max) {
        if (!etd_field_int_tuple(o, "dilation", false, n, 1, 1, BIG, p->dilation) ||
            !no_indices(o))
            return false;
    } else {
        if (!etd_field_bool(o, "count_include_pad", true, &p->count_include_pad))
            return false;
        if (n == 2) {
            bool none;
            if (!etd_field_int_or_null(o, "divisor_override", 1, BIG, &p->divisor_override,
                                       &none))
                return false;
            if (none)
                p->divisor_override = 0;
        }
    }
    etd_flow_reshape(f);
    return true;
}

bool etd_max_pool1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pool_parse(l, o, f, 1, true); }
bool etd_max_pool2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pool_parse(l, o, f, 2, true); }
bool etd_avg_pool1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pool_parse(l, o, f, 1, false); }
bool etd_avg_pool2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pool_parse(l, o, f, 2, false); }

et_module *etd_max_pool1d_build(const etd_layer *l, et_generator *g)
{
    return et_max_pool1d_new(l->u.pool.kernel[0], &l->u.pool.o);
}
et_module *etd_max_pool2d_build(const etd_layer *l, et_generator *g)
{
    return et_max_pool2d_new(l->u.pool.kernel, &l->u.pool.o);
}
et_module *etd_avg_pool1d_build(const etd_layer *l, et_generator *g)
{
    return et_avg_pool1d_new(l->u.pool.kernel[0], &l->u.pool.o);
}
et_module *etd_avg_pool2d_build(const etd_layer *l, et_generator *g)
{
    return et_avg_pool2d_new(l->u.pool.kernel, &l->u.pool.o);
}

/* ---- adaptive pools: output_size an integer, or (2-d) a list whose entries may be null ---- */

const char *const etd_adaptive_avg_pool1d_fields[] = {"output_size", NULL};
const char *const etd_adaptive_avg_pool2d_fields[] = {"output_size", NULL};
const char *const etd_adaptive_max_pool1d_fields[] = {"output_size", "return_indices", NULL};
const char *const etd_adaptive_max_pool2d_fields[] = {"output_size", "return_indices", NULL};

static bool adaptive_parse(etd_layer *l, const etd_obj *o, etd_flow *f, int n, bool max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o->o, "output_size");
    if (!v)
        return etd_field_fail(o, "output_size", "required field is missing");
    if (cJSON_IsArray(v) && n == 2 && cJSON_GetArraySize(v) == 2) {
        int i = 0;
        for (const cJSON *x = v->child; x; x = x->next, i++) {
            double d = x->valuedouble;
            if (cJSON_IsNull(x))
                l->u.adaptive.size[i] = -1;   /* None: the input's size */
            else if (!cJSON_IsNumber(x) || d != floor(d) || d < 0 || d > BIG)
                return etd_field_fail(o, "output_size", "expected integers >= 0 or null");
            else
                l->u.adaptive.size[i] = (int64_t)d;
        }
    } else if (!etd_field_int_tuple(o, "output_size", true, n, 0, 0, BIG, l->u.adaptive.size)) {
        return false;
    }
    if (max && !no_indices(o))
        return false;
    etd_flow_reshape(f);
    return true;
}

bool etd_adaptive_avg_pool1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return adaptive_parse(l, o, f, 1, false); }
bool etd_adaptive_avg_pool2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return adaptive_parse(l, o, f, 2, false); }
bool etd_adaptive_max_pool1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return adaptive_parse(l, o, f, 1, true); }
bool etd_adaptive_max_pool2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return adaptive_parse(l, o, f, 2, true); }

et_module *etd_adaptive_avg_pool1d_build(const etd_layer *l, et_generator *g)
{
    return et_adaptive_avg_pool1d_new(l->u.adaptive.size[0]);
}
et_module *etd_adaptive_avg_pool2d_build(const etd_layer *l, et_generator *g)
{
    return et_adaptive_avg_pool2d_new(l->u.adaptive.size);
}
et_module *etd_adaptive_max_pool1d_build(const etd_layer *l, et_generator *g)
{
    return et_adaptive_max_pool1d_new(l->u.adaptive.size[0]);
}
et_module *etd_adaptive_max_pool2d_build(const etd_layer *l, et_generator *g)
{
    return et_adaptive_max_pool2d_new(l->u.adaptive.size);
}

/* ---- padding layers: padding an integer or a list (left, right[, top, bottom]) ---- */

const char *const etd_zero_pad2d_fields[] = {"padding", NULL};
const char *const etd_constant_pad1d_fields[] = {"padding", "value", NULL};
const char *const etd_constant_pad2d_fields[] = {"padding", "value", NULL};
const char *const etd_reflection_pad1d_fields[] = {"padding", NULL};
const char *const etd_reflection_pad2d_fields[] = {"padding", NULL};
const char *const etd_replication_pad1d_fields[] = {"padding", NULL};
const char *const etd_replication_pad2d_fields[] = {"padding", NULL};

static bool pad_parse(etd_layer *l, const etd_obj *o, etd_flow *f, int n, bool value)
{
    /* torch accepts negative padding (cropping) for these layers */
    if (!etd_field_int_tuple(o, "padding", true, n, 0, -BIG, BIG, l->u.pad.pad))
        return false;
    l->u.pad.value = 0;
    if (value && !etd_field_num(o, "value", true, 0, -FLT_MAX, FLT_MAX, &l->u.pad.value))
        return false;
    etd_flow_reshape(f);
    return true;
}

bool etd_zero_pad2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 4, false); }
bool etd_constant_pad1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 2, true); }
bool etd_constant_pad2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 4, true); }
bool etd_reflection_pad1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 2, false); }
bool etd_reflection_pad2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 4, false); }
bool etd_replication_pad1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 2, false); }
bool etd_replication_pad2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f) { return pad_parse(l, o, f, 4, false); }

et_module *etd_zero_pad2d_build(const etd_layer *l, et_generator *g) { return et_zero_pad2d_new(l->u.pad.pad); }
et_module *etd_constant_pad1d_build(const etd_layer *l, et_generator *g)
{
    return et_constant_pad1d_new(l->u.pad.pad, (float)l->u.pad.value);
}
et_module *etd_constant_pad2d_build(const etd_layer *l, et_generator *g)
{
    return et_constant_pad2d_new(l->u.pad.pad, (float)l->u.pad.value);
}
et_module *etd_reflection_pad1d_build(const etd_layer *l, et_generator *g) { return et_reflection_pad1d_new(l->u.pad.pad); }
et_module *etd_reflection_pad2d_build(const etd_layer *l, et_generator *g) { return et_reflection_pad2d_new(l->u.pad.pad); }
et_module *etd_replication_pad1d_build(const etd_layer *l, et_generator *g) { return et_replication_pad1d_new(l->u.pad.pad); }
et_module *etd_replication_pad2d_build(const etd_layer *l, et_generator *g) { return et_replication_pad2d_new(l->u.pad.pad); }

/* ---- Unflatten, Dropout2d ---- */

const char *const etd_unflatten_fields[] = {"dim", "unflattened_size", NULL};

bool etd_unflatten_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t dim;
    if (!etd_field_int(o, "dim", true, 0, -ET_MAX_DIMS, ET_MAX_DIMS - 1, &dim))
        return false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o->o, "unflattened_size");
    if (!v)
        return etd_field_fail(o, "unflattened_size", "required field is missing");
    int n = cJSON_GetArraySize(v), i = 0, infer = 0;
    if (!cJSON_IsArray(v) || n < 1 || n > ET_MAX_DIMS - 1)
        return etd_field_fail(o, "unflattened_size", "expected a list of 1 to %d sizes",
                              ET_MAX_DIMS - 1);
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        double d = x->valuedouble;
        if (!cJSON_IsNumber(x) || d != floor(d) || d < -1 || d > BIG)
            return etd_field_fail(o, "unflattened_size", "expected sizes >= 0 (one may be -1)");
        infer += d == -1;
        l->u.unflatten.sizes[i] = (int64_t)d;
    }
    if (infer > 1)
        return etd_field_fail(o, "unflattened_size", "only one size can be -1");
    l->u.unflatten.dim = (int)dim;
    l->u.unflatten.n = n;
    etd_flow_reshape(f);
    return true;
}

et_module *etd_unflatten_build(const etd_layer *l, et_generator *g)
{
    return et_unflatten_new(l->u.unflatten.dim, l->u.unflatten.sizes, l->u.unflatten.n);
}

const char *const etd_dropout2d_fields[] = {"p", "inplace", NULL};

bool etd_dropout2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    bool inplace;   /* accepted for torch compatibility, no effect */
    return etd_field_num(o, "p", false, 0.5, 0.0, 1.0, &l->u.dropout.p) &&
           etd_field_bool(o, "inplace", false, &inplace);
}

/* Dropout2d draws its channel masks from the model's generator */
et_module *etd_dropout2d_build(const etd_layer *l, et_generator *g)
{
    return et_dropout2d_new((float)l->u.dropout.p, g);
}
