/*
 * conv.c - the convolution layers: Conv1d, Conv2d, ConvTranspose2d, in the
 * shape of torch.nn (arguments, defaults, initialisation, state_dict keys
 * "weight" and "bias").
 *
 * reset_parameters as torch: weight ~ kaiming_uniform(a=sqrt(5)), i.e.
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.size(1) * kH * kW
 * (in/groups for a convolution, out/groups for a transposed one), then the
 * bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), both drawn from g in row-major
 * order.  A padding_mode other than "zeros" pads the input with et_pad
 * first and convolves without padding, as torch's _conv_forward does.
 */
#include "nn/module_internal.h"
#include "easytorch/conv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int sd;                     /* spatial dims: 1 or 2 */
    bool transposed;
    int64_t in, out, k[2];
    et_conv_opts o;
    int64_t pad4[4];            /* explicit padding for padding_mode != zeros: l, r, t, b */
    char repr[192];             /* torch's repr, for error messages */
} conv_cfg;

static const char *const pad_mode_name[] = {"zeros", "reflect", "replicate", "circular"};

static void make_repr(conv_cfg *c, const char *type)
{
    char *p = c->repr;
    size_t cap = sizeof c->repr, n = 0;
#define ADD(...) n += (size_t)snprintf(p + n, n < cap ? cap - n : 0, __VA_ARGS__)
    if (c->sd == 2) {
        ADD("%s(%lld, %lld, kernel_size=(%lld, %lld), stride=(%lld, %lld)", type,
            (long long)c->in, (long long)c->out, (long long)c->k[0], (long long)c->k[1],
            (long long)c->o.stride[0], (long long)c->o.stride[1]);
        if (c->o.padding_same)
            ADD(", padding=same");
        else if (c->o.padding[0] || c->o.padding[1])
            ADD(", padding=(%lld, %lld)", (long long)c->o.padding[0], (long long)c->o.padding[1]);
        if (c->o.dilation[0] != 1 || c->o.dilation[1] != 1)
            ADD(", dilation=(%lld, %lld)", (long long)c->o.dilation[0], (long long)c->o.dilation[1]);
        if (c->transposed && (c->o.output_padding[0] || c->o.output_padding[1]))
            ADD(", output_padding=(%lld, %lld)", (long long)c->o.output_padding[0],
                (long long)c->o.output_padding[1]);
    } else {
        ADD("%s(%lld, %lld, kernel_size=(%lld,), stride=(%lld,)", type, (long long)c->in,
            (long long)c->out, (long long)c->k[1], (long long)c->o.stride[1]);
        if (c->o.padding_same)
            ADD(", padding=same");
        else if (c->o.padding[1])
            ADD(", padding=(%lld,)", (long long)c->o.padding[1]);
        if (c->o.dilation[1] != 1)
            ADD(", dilation=(%lld,)", (long long)c->o.dilation[1]);
    }
    if (c->o.groups != 1)
        ADD(", groups=%lld", (long long)c->o.groups);
    if (!c->o.bias)
        ADD(", bias=False");
    if (c->o.padding_mode != ET_PAD_CONSTANT)
        ADD(", padding_mode=%s", pad_mode_name[c->o.padding_mode]);
    ADD(")");
#undef ADD
}

/* The option arrays are kept as {H, W}; a 1-d layer's sizes are entry 1
 * (entry 0 is the identity), and the op takes only that entry. */
static const int64_t *dims(const conv_cfg *c, const int64_t v[2])
{
    return c->sd == 2 ? v : v + 1;
}

static et_tensor *conv_forward(et_module *m, et_tensor *x)
{
    conv_cfg *c = m->impl;
    et_tensor *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    char sx[96];
    int nd = et_ndim(x);
    if (nd != c->sd + 1 && nd != c->sd + 2) {
        et_set_error(ET_ERR_SHAPE, "%s: expected a %dD (unbatched) or %dD (batched) input, but got "
                     "input of shape %s", c->repr, c->sd + 1, c->sd + 2, NN_SHAPE_STR(x, sx));
        return NULL;
    }
    int64_t ch = et_size(x, nd - c->sd - 1);
    if (ch != c->in) {
        et_set_error(ET_ERR_SHAPE, "%s: expected input with %lld channels, but got input of shape "
                     "%s (%lld channels)", c->repr, (long long)c->in, NN_SHAPE_STR(x, sx),
                     (long long)ch);
        return NULL;
    }
    const int64_t *stride = dims(c, c->o.stride), *dil = dims(c, c->o.dilation);
    const int64_t *pad = c->o.padding_same ? ET_PADDING_SAME : dims(c, c->o.padding);
    if (c->o.padding_mode != ET_PAD_CONSTANT) {
        /* torch: F.pad(x, _reversed_padding_repeated_twice, mode), then padding 0 */
        const int64_t pv[4] = {c->pad4[0], c->pad4[1], c->pad4[2], c->pad4[3]};
        x = et_pad(x, pv, 2 * c->sd, c->o.padding_mode, 0.0f);
        pad = NULL;
    }
    et_tensor *y = NULL;
    if (x) {
        if (c->transposed)
            y = et_conv_transpose2d(x, w, b, stride, pad, dims(c, c->o.output_padding),
                                    c->o.groups, dil);
        else if (c->sd == 2)
            y = et_conv2d(x, w, b, stride, pad, dil, c->o.groups);
        else
            y = et_conv1d(x, w, b, stride, pad, dil, c->o.groups);
    }
    if (!y)
        nn_error_prefix("%s: ", c->repr);
    return y;
}

static et_module *conv_new(const char *type, int sd, bool transposed, int64_t in, int64_t out,
                           const int64_t k[2], const et_conv_opts *opts, et_generator *g)
{
    conv_cfg *c = calloc(1, sizeof *c);
    if (!c) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    c->sd = sd;
    c->transposed = transposed;
    c->in = in;
    c->out = out;
    c->k[0] = k[0];
    c->k[1] = k[1];
    c->o = opts ? *opts : ET_CONV_DEFAULTS;
    make_repr(c, type);
    const et_conv_opts *o = &c->o;
    const char *bad = NULL;
    if (in <= 0 || out <= 0)
        bad = "in_channels and out_channels must be positive";
    else if (o->groups <= 0)
        bad = "groups must be a positive integer";
    else if (in % o->groups != 0)
        bad = "in_channels must be divisible by groups";
    else if (out % o->groups != 0)
        bad = "out_channels must be divisible by groups";
    else if ((int)o->padding_mode < ET_PAD_CONSTANT || (int)o->padding_mode > ET_PAD_CIRCULAR)
        bad = "padding_mode must be zeros, reflect, replicate or circular";
    else if (transposed && o->padding_mode != ET_PAD_CONSTANT)
        bad = "only \"zeros\" padding mode is supported for ConvTranspose2d";
    else if (transposed && o->padding_same)
        bad = "padding=\"same\" is not supported for ConvTranspose2d";
    for (int i = 2 - sd; i < 2 && !bad; i++) {
        if (k[i] <= 0)
            bad = "kernel_size must be positive";
        else if (o->stride[i] <= 0)
            bad = "stride must be positive";
        else if (o->dilation[i] <= 0)
            bad = "dilation must be positive";
        else if (o->padding[i] < 0 && !o->padding_same)
            bad = "padding must be non-negative";
        else if (o->padding_same && o->stride[i] != 1)
            bad = "padding=\"same\" is not supported for strided convolutions";
        else if (transposed && (o->output_padding[i] < 0 ||
                                (o->output_padding[i] >= o->stride[i] &&
                                 o->output_padding[i] >= o->dilation[i])))
            bad = "output_padding must be non-negative and smaller than either stride or dilation";
    }
    if (bad) {
        et_set_error(ET_ERR_ARG, "%s: %s", c->repr, bad);
        free(c);
        return NULL;
    }
    /* explicit padding for the non-zeros modes, in F.pad's order (last dim first) */
    for (int i = 2 - sd; i < 2; i++) {
        int64_t l = o->padding[i], r = o->padding[i];
        if (o->padding_same) {
            int64_t total = o->dilation[i] * (k[i] - 1);
            l = total / 2;
            r = total - l;
        }
        int slot = sd == 2 ? 2 * (1 - i) : 0;   /* W pads first, then H */
        c->pad4[slot] = l;
        c->pad4[slot + 1] = r;
    }
    et_module *m = nn_module_alloc(type, conv_forward);
    if (!m) {
        free(c);
        return NULL;
    }
    nn_module_set_impl(m, c, NULL);
    if (!g)
        g = et_default_generator();
    int64_t wshape[4];
    int wnd = 0;
    wshape[wnd++] = transposed ? in : out;
    wshape[wnd++] = (transposed ? out : in) / o->groups;
    if (sd == 2)
        wshape[wnd++] = k[0];
    wshape[wnd++] = k[1];
    int64_t fan_in = wshape[1] * k[1] * (sd == 2 ? k[0] : 1);
    double bound = 1.0 / sqrt((double)fan_in);
    if (nn_module_add_param(m, "weight", nn_keep_uniform(g, wshape, wnd, bound)) != ET_OK ||
        (o->bias && nn_module_add_param(m, "bias", nn_keep_uniform(g, (int64_t[]){out}, 1,
                                                                   bound)) != ET_OK)) {
        nn_error_prefix("%s: ", c->repr);
        et_module_free(m);   /* frees c too */
        return NULL;
    }
    return m;
}

et_module *et_conv2d_new(int64_t in_channels, int64_t out_channels, const int64_t kernel_size[2],
                         const et_conv_opts *opts, et_generator *g)
{
    if (!kernel_size) {
        et_set_error(ET_ERR_ARG, "Conv2d: kernel_size is NULL");
        return NULL;
    }
    return conv_new("Conv2d", 2, false, in_channels, out_channels, kernel_size, opts, g);
}

et_module *et_conv1d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                         const et_conv_opts *opts, et_generator *g)
{
    /* the caller's entry 0 becomes the W entry; H is the identity */
    et_conv_opts u = opts ? *opts : ET_CONV_DEFAULTS, o = u;
    o.stride[0] = 1, o.stride[1] = u.stride[0];
    o.padding[0] = 0, o.padding[1] = u.padding[0];
    o.dilation[0] = 1, o.dilation[1] = u.dilation[0];
    o.output_padding[0] = 0, o.output_padding[1] = u.output_padding[0];
    return conv_new("Conv1d", 1, false, in_channels, out_channels, (int64_t[]){1, kernel_size},
                    &o, g);
}

et_module *et_conv_transpose2d_new(int64_t in_channels, int64_t out_channels,
                                   const int64_t kernel_size[2], const et_conv_opts *opts,
                                   et_generator *g)
{
    if (!kernel_size) {
        et_set_error(ET_ERR_ARG, "ConvTranspose2d: kernel_size is NULL");
        return NULL;
    }
    return conv_new("ConvTranspose2d", 2, true, in_channels, out_channels, kernel_size, opts, g);
}
