/*
 * activation.c - the activation modules beyond module.c's (torch.nn.SiLU,
 * ELU, Mish, Softplus, Hardtanh, ReLU6): each forwards to its core op with
 * the configuration it was built with.
 */
#include "nn/module_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float a, b;   /* alpha | beta, threshold | min_val, max_val */
} act_cfg;

static const act_cfg *cfg(const et_module *m) { return (const act_cfg *)m->impl; }

static et_tensor *silu_forward(et_module *m, et_tensor *x) { return et_silu(x); }
static et_tensor *mish_forward(et_module *m, et_tensor *x) { return et_mish(x); }
static et_tensor *elu_forward(et_module *m, et_tensor *x) { return et_elu(x, cfg(m)->a); }
static et_tensor *softplus_forward(et_module *m, et_tensor *x)
{
    return et_softplus(x, cfg(m)->a, cfg(m)->b);
}
static et_tensor *hardtanh_forward(et_module *m, et_tensor *x)
{
    return et_hardtanh(x, cfg(m)->a, cfg(m)->b);
}

/* A module of `type` with two configuration floats. */
static et_module *with_cfg(const char *type, nn_forward_fn fwd, float a, float b)
{
    et_module *m = nn_module_alloc(type, fwd);
    act_cfg *c = m ? malloc(sizeof *c) : NULL;
    if (!c) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    c->a = a;
    c->b = b;
    nn_module_set_impl(m, c, NULL);
    return m;
}

et_module *et_silu_new(void) { return nn_module_alloc("SiLU", silu_forward); }
et_module *et_mish_new(void) { return nn_module_alloc("Mish", mish_forward); }

et_module *et_elu_new(float alpha)
{
    if (!isfinite(alpha)) {
        et_set_error(ET_ERR_ARG, "ELU: alpha must be finite, got %g", (double)alpha);
        return NULL;
    }
    return with_cfg("ELU", elu_forward, alpha, 0.0f);
}

et_module *et_softplus_new(float beta, float threshold)
{
    if (!isfinite(beta) || beta == 0.0f || isnan(threshold)) {
        et_set_error(ET_ERR_ARG, "Softplus: beta must be finite and non-zero and threshold a "
                     "number (got beta %g, threshold %g)", (double)beta, (double)threshold);
        return NULL;
    }
    return with_cfg("Softplus", softplus_forward, beta, threshold);
}

et_module *et_hardtanh_new(float min_val, float max_val)
{
    if (!(max_val > min_val)) {   /* torch.nn.Hardtanh asserts max_val > min_val */
        et_set_error(ET_ERR_ARG, "Hardtanh: max_val (%g) must be greater than min_val (%g)",
                     (double)max_val, (double)min_val);
        return NULL;
    }
    return with_cfg("Hardtanh", hardtanh_forward, min_val, max_val);
}

et_module *et_relu6_new(void) { return with_cfg("ReLU6", hardtanh_forward, 0.0f, 6.0f); }

/* The configuration of an activation made here, for the daemon's spec
 * writer and the tests: alpha (ELU), beta and threshold (Softplus), min_val
 * and max_val (Hardtanh, ReLU6); false for other modules. */
bool et_activation_params(const et_module *m, float *a, float *b)
{
    if (!m || !m->impl || (m->forward != elu_forward && m->forward != softplus_forward &&
                           m->forward != hardtanh_forward))
        return false;
    if (a)
        *a = cfg(m)->a;
    if (b)
        *b = cfg(m)->b;
    return true;
}
