/* bench_train.c - the training-step workloads' shared state and loop (bench_train.h). */
#include <stdlib.h>

#include "bench_train.h"

bench_train *bench_train_new(et_tensor *(*loss)(et_tensor *out, et_tensor *y))
{
    bench_train *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loss = loss;
    s->g = et_generator_new(0);
    if (!s->g) {
        free(s);
        return NULL;
    }
    return s;
}

void bench_train_free(void *p)
{
    bench_train *s = p;
    if (!s)
        return;
    et_optim_free(s->opt);
    et_module_free(s->net);
    et_tensor_free(s->x);
    et_tensor_free(s->y);
    et_generator_free(s->g);
    free(s);
}

et_tensor **bench_params(et_module *net, int *n)
{
    *n = et_module_num_params(net);
    et_tensor **params = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *params);
    for (int i = 0; params && i < *n; i++)
        params[i] = et_module_param(net, i);
    return params;
}

et_status bench_train_run(void *p, long iters, double *value)
{
    bench_train *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_optim_zero_grad(s->opt);
        et_tensor *out = et_module_forward(s->net, s->x);
        et_tensor *loss = out ? s->loss(out, s->y) : NULL;
        et_status st = loss ? et_backward(loss, NULL) : et_errcode();
        if (st == ET_OK)
            st = et_optim_step(s->opt);
        if (st == ET_OK && i == iters - 1)
            *value = et_item(loss);
        et_pool_end();
        if (st != ET_OK)
            return st;
    }
    return ET_OK;
}
