/*
 * pad.c - the padding layers of torch.nn: ZeroPad2d, ConstantPad1d/2d,
 * ReflectionPad1d/2d, ReplicationPad1d/2d (no parameters).  `padding` is
 * (left, right) or (left, right, top, bottom), F.pad's order; negative
 * values crop, as torch.
 */
#include "nn/module_internal.h"
#include "easytorch/conv.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int n;                      /* padding values: 2 or 4 */
    int64_t pad[4];
    et_pad_mode mode;
    float value;
    char repr[128];
} pad_cfg;

static et_tensor *pad_forward(et_module *m, et_tensor *x)
{
    pad_cfg *c = m->impl;
    et_tensor *y = et_pad(x, c->pad, c->n, c->mode, c->value);
    if (!y)
        nn_error_prefix("%s: ", c->repr);
    return y;
}

static et_module *pad_new(const char *type, int n, const int64_t *padding, et_pad_mode mode,
                          float value)
{
    if (!padding) {
        et_set_error(ET_ERR_ARG, "%s: padding is NULL", type);
        return NULL;
    }
    pad_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc(type, pad_forward) : NULL;
    if (!m) {
        free(c);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    c->n = n;
    c->mode = mode;
    c->value = value;
    for (int i = 0; i < n; i++)
        c->pad[i] = padding[i];
    if (n == 2)
        snprintf(c->repr, sizeof c->repr, "%s((%lld, %lld))", type, (long long)padding[0],
                 (long long)padding[1]);
    else
        snprintf(c->repr, sizeof c->repr, "%s((%lld, %lld, %lld, %lld))", type,
                 (long long)padding[0], (long long)padding[1], (long long)padding[2],
                 (long long)padding[3]);
    nn_module_set_impl(m, c, NULL);   /* sizes are checked against each input by et_pad */
    return m;
}

et_module *et_zero_pad2d_new(const int64_t padding[4])
{
    return pad_new("ZeroPad2d", 4, padding, ET_PAD_CONSTANT, 0.0f);
}

et_module *et_constant_pad1d_new(const int64_t padding[2], float value)
{
    return pad_new("ConstantPad1d", 2, padding, ET_PAD_CONSTANT, value);
}

et_module *et_constant_pad2d_new(const int64_t padding[4], float value)
{
    return pad_new("ConstantPad2d", 4, padding, ET_PAD_CONSTANT, value);
}

et_module *et_reflection_pad1d_new(const int64_t padding[2])
{
    return pad_new("ReflectionPad1d", 2, padding, ET_PAD_REFLECT, 0.0f);
}

et_module *et_reflection_pad2d_new(const int64_t padding[4])
{
    return pad_new("ReflectionPad2d", 4, padding, ET_PAD_REFLECT, 0.0f);
}

et_module *et_replication_pad1d_new(const int64_t padding[2])
{
    return pad_new("ReplicationPad1d", 2, padding, ET_PAD_REPLICATE, 0.0f);
}

et_module *et_replication_pad2d_new(const int64_t padding[4])
{
    return pad_new("ReplicationPad2d", 4, padding, ET_PAD_REPLICATE, 0.0f);
}
