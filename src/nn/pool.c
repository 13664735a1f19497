/*
 * pool.c - the pooling layers: MaxPool1d/2d, AvgPool1d/2d,
 * AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d (torch.nn's arguments and
 * defaults; no parameters).  return_indices is not a layer option here: a
 * layer returns one tensor (et_max_pool2d gives the indices).
 */
#include "nn/module_internal.h"
#include "easytorch/conv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAXP, AVGP, ADA_AVG, ADA_MAX };

typedef struct {
    int kind, sd;
    int64_t k[2];               /* kernel, or output size (adaptive) */
    et_pool_opts o;             /* {H, W}; a 1-d layer uses entry 1 */
    char repr[160];
} pool_cfg;

static const int64_t *dims(const pool_cfg *c, const int64_t v[2])
{
    return c->sd == 2 ? v : v + 1;
}

static et_tensor *pool_forward(et_module *m, et_tensor *x)
{
    pool_cfg *c = m->impl;
    char sx[96];
    int nd = et_ndim(x);
    if (nd != c->sd + 1 && nd != c->sd + 2) {
        et_set_error(ET_ERR_SHAPE, "%s: expected a %dD (unbatched) or %dD (batched) input, but got "
                     "input of shape %s", m->type, c->sd + 1, c->sd + 2, NN_SHAPE_STR(x, sx));
        return NULL;
    }
    const int64_t *k = dims(c, c->k);
    const int64_t *stride = c->o.stride[0] || c->o.stride[1] ? dims(c, c->o.stride) : NULL;
    const int64_t *pad = dims(c, c->o.padding), *dil = dims(c, c->o.dilation);
    /* the module's own wording for the common mistake (the HTTP layer prefixes
     * the layer index): "MaxPool2d: input [32, 8, 1, 1] is smaller than kernel 2" */
    if ((c->kind == MAXP || c->kind == AVGP) && !c->o.ceil_mode) {
        for (int i = 0; i < c->sd; i++) {
            int64_t in = et_size(x, nd - c->sd + i);
            int64_t ext = (c->kind == MAXP ? dil[i] : 1) * (k[i] - 1) + 1;
            if (in + 2 * pad[i] < ext) {
                char kb[48];
                if (c->sd == 2 && k[0] != k[1])
                    snprintf(kb, sizeof kb, "%lld x %lld", (long long)k[0], (long long)k[1]);
                else
                    snprintf(kb, sizeof kb, "%lld", (long long)k[i]);
                et_set_error(ET_ERR_SHAPE, "%s: input %s is smaller than kernel %s%s", m->type,
                             NN_SHAPE_STR(x, sx), kb,
                             pad[i] || (c->kind == MAXP && dil[i] != 1)
                                 ? " (with its padding and dilation)" : "");
                return NULL;
            }
        }
    }
    et_tensor *y = NULL;
    switch (c->kind) {
    case MAXP:
        y = c->sd == 2 ? et_max_pool2d(x, k, stride, pad, dil, c->o.ceil_mode, NULL)
                       : et_max_pool1d(x, k, stride, pad, dil, c->o.ceil_mode, NULL);
        break;
    case AVGP:
        y = c->sd == 2 ? et_avg_pool2d(x, k, stride, pad, c->o.ceil_mode, c->o.count_include_pad,
                                       c->o.divisor_override)
                       : et_avg_pool1d(x, k, stride, pad, c->o.ceil_mode, c->o.count_include_pad);
        break;
    case ADA_AVG:
        y = c->sd == 2 ? et_adaptive_avg_pool2d(x, k) : et_adaptive_avg_pool1d(x, k);
        break;
    default:
        y = c->sd == 2 ? et_adaptive_max_pool2d(x, k, NULL) : et_adaptive_max_pool1d(x, k, NULL);
        break;
    }
    if (!y)
        nn_error_prefix("%s: ", c->repr);
    return y;
}

/* o: the caller's options in {H, W} order (the 1-d constructors convert). */
static et_module *pool_new(const char *type, int kind, int sd, const int64_t k[2],
                           const et_pool_opts *o)
{
    pool_cfg *c = calloc(1, sizeof *c);
    if (!c) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    c->kind = kind;
    c->sd = sd;
    c->k[0] = k[0];
    c->k[1] = k[1];
    c->o = *o;
    const char *bad = NULL;
    bool stride_default = true;   /* every stride entry 0: stride = kernel_size */
    for (int i = 2 - sd; i < 2; i++)
        stride_default = stride_default && o->stride[i] == 0;
    for (int i = 2 - sd; i < 2 && !bad; i++) {
        if (kind == ADA_AVG || kind == ADA_MAX) {
            if (k[i] < -1)
                bad = "output_size entries must be >= 0 (or -1 for None)";
            continue;
        }
        if (k[i] <= 0)
            bad = "kernel_size must be positive";
        else if (!stride_default && o->stride[i] <= 0)
            bad = "stride must be positive (or all 0 for the default: kernel_size)";
        else if (o->padding[i] < 0 || o->padding[i] > k[i] / 2)
            bad = "padding must be non-negative and at most half the kernel size";
        else if (kind == MAXP && o->dilation[i] <= 0)
            bad = "dilation must be positive";
    }
    int n = 0;
    if (kind == ADA_AVG || kind == ADA_MAX) {
        if (sd == 2)
            n = snprintf(c->repr, sizeof c->repr, "%s(output_size=(%lld, %lld))", type,
                         (long long)k[0], (long long)k[1]);
        else
            n = snprintf(c->repr, sizeof c->repr, "%s(output_size=%lld)", type, (long long)k[1]);
    } else {
        const int64_t *s = o->stride[0] || o->stride[1] ? o->stride : k;
        if (sd == 2)
            n = snprintf(c->repr, sizeof c->repr, "%s(kernel_size=(%lld, %lld), stride=(%lld, "
                         "%lld), padding=(%lld, %lld)%s)", type, (long long)k[0],
                         (long long)k[1], (long long)s[0], (long long)s[1],
                         (long long)o->padding[0], (long long)o->padding[1],
                         o->ceil_mode ? ", ceil_mode=True" : "");
        else
            n = snprintf(c->repr, sizeof c->repr, "%s(kernel_size=%lld, stride=%lld, padding="
                         "%lld%s)", type, (long long)k[1], (long long)s[1],
                         (long long)o->padding[1], o->ceil_mode ? ", ceil_mode=True" : "");
    }
    (void)n;
    if (bad) {
        et_set_error(ET_ERR_ARG, "%s: %s", c->repr, bad);
        free(c);
        return NULL;
    }
    et_module *m = nn_module_alloc(type, pool_forward);
    if (!m) {
        free(c);
        return NULL;
    }
    nn_module_set_impl(m, c, NULL);
    return m;
}

/* 1-d options: the caller's entry 0 becomes the W entry. */
static et_pool_opts widen(const et_pool_opts *u)
{
    et_pool_opts o = *u;
    o.stride[0] = 0, o.stride[1] = u->stride[0];
    o.padding[0] = 0, o.padding[1] = u->padding[0];
    o.dilation[0] = 1, o.dilation[1] = u->dilation[0];
    return o;
}

static const et_pool_opts *opts_or_default(const et_pool_opts *o, et_pool_opts *buf)
{
    if (o)
        return o;
    *buf = ET_POOL_DEFAULTS;
    return buf;
}

et_module *et_max_pool2d_new(const int64_t kernel_size[2], const et_pool_opts *opts)
{
    et_pool_opts d;
    if (!kernel_size) {
        et_set_error(ET_ERR_ARG, "MaxPool2d: kernel_size is NULL");
        return NULL;
    }
    return pool_new("MaxPool2d", MAXP, 2, kernel_size, opts_or_default(opts, &d));
}

et_module *et_max_pool1d_new(int64_t kernel_size, const et_pool_opts *opts)
{
    et_pool_opts d, w = widen(opts_or_default(opts, &d));
    return pool_new("MaxPool1d", MAXP, 1, (int64_t[]){1, kernel_size}, &w);
}

et_module *et_avg_pool2d_new(const int64_t kernel_size[2], const et_pool_opts *opts)
{
    et_pool_opts d;
    if (!kernel_size) {
        et_set_error(ET_ERR_ARG, "AvgPool2d: kernel_size is NULL");
        return NULL;
    }
    return pool_new("AvgPool2d", AVGP, 2, kernel_size, opts_or_default(opts, &d));
}

et_module *et_avg_pool1d_new(int64_t kernel_size, const et_pool_opts *opts)
{
    et_pool_opts d, w = widen(opts_or_default(opts, &d));
    w.divisor_override = 0;
    return pool_new("AvgPool1d", AVGP, 1, (int64_t[]){1, kernel_size}, &w);
}

/* The adaptive pools: output_size only (the options stay at their defaults). */
static et_module *adaptive_new(const char *type, int kind, int sd, const int64_t *output_size)
{
    et_pool_opts d = ET_POOL_DEFAULTS;
    if (!output_size) {
        et_set_error(ET_ERR_ARG, "%s: output_size is NULL", type);
        return NULL;
    }
    const int64_t k[2] = {sd == 2 ? output_size[0] : 1, output_size[sd - 1]};
    return pool_new(type, kind, sd, k, &d);
}

et_module *et_adaptive_avg_pool2d_new(const int64_t output_size[2])
{
    return adaptive_new("AdaptiveAvgPool2d", ADA_AVG, 2, output_size);
}

et_module *et_adaptive_avg_pool1d_new(int64_t output_size)
{
    return adaptive_new("AdaptiveAvgPool1d", ADA_AVG, 1, &output_size);
}

et_module *et_adaptive_max_pool2d_new(const int64_t output_size[2])
{
    return adaptive_new("AdaptiveMaxPool2d", ADA_MAX, 2, output_size);
}

et_module *et_adaptive_max_pool1d_new(int64_t output_size)
{
    return adaptive_new("AdaptiveMaxPool1d", ADA_MAX, 1, &output_size);
}
