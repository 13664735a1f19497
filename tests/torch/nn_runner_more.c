/*
 * nn_runner_more.c - nn_runner commands for what came after the first
 * release (tests/torch/nn_more.py drives them):
 *
 *   nn_runner nonleaf <optimizer>     prints "error: <message>" if the optimizer
 *                                     refuses a non-leaf parameter, else "accepted"
 */
#include <stdio.h>
#include <string.h>

#include "nn_runner.h"

et_module *module_from_spec_more(const char *name, int nargs, double a, double b, double c)
{
    (void)c;
    if (!strcmp(name, "silu"))
        return et_silu_new();
    if (!strcmp(name, "mish"))
        return et_mish_new();
    if (!strcmp(name, "relu6"))
        return et_relu6_new();
    if (!strcmp(name, "elu"))
        return et_elu_new(nargs >= 1 ? (float)a : 1.0f);
    if (!strcmp(name, "softplus"))
        return et_softplus_new(nargs >= 1 ? (float)a : 1.0f, nargs >= 2 ? (float)b : 20.0f);
    if (!strcmp(name, "hardtanh"))
        return et_hardtanh_new(nargs >= 1 ? (float)a : -1.0f, nargs >= 2 ? (float)b : 1.0f);
    return NULL;
}

static int cmd_nonleaf(const char *name)
{
    et_tensor *w = et_ones(ET_SHAPE(3));
    et_set_requires_grad(w, true);
    et_tensor *y = et_mul_scalar(w, 2.0f);   /* a non-leaf */
    et_optim *o = NULL;
    if (!strcmp(name, "sgd"))
        o = et_sgd_new(&y, 1, ET_SGD_DEFAULTS);
    else if (!strcmp(name, "adam"))
        o = et_adam_new(&y, 1, ET_ADAM_DEFAULTS);
    else
        return fail("nonleaf: unknown optimizer");
    if (o)
        printf("accepted\n");
    else
        printf("error: %s\n", et_errmsg());
    et_optim_free(o);
    et_tensor_free(y);
    et_tensor_free(w);
    return 0;
}

int nn_runner_more(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "nonleaf"))
        return cmd_nonleaf(argv[2]);
    return -1;
}
