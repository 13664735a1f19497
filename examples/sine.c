/*
 * sine.c - fit sin(x) on [-pi, pi]: the quick-start network of easytorch.h
 * (Linear(1,5) - Tanh - Linear(5,1)) and a wider 1-32-32-1 Tanh network,
 * both trained full-batch with Adam.  Prints the loss every few hundred steps
 * (the daemon-less demo) and ends with machine-readable lines
 *     quickstart_mse=<float>
 *     wide_mse=<float>
 * checked by examples/check_metrics.py.
 *
 * usage: sine [steps]   (default 3000)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <easytorch/easytorch.h>

#define NPOINTS 256

static et_module *make_net(const int *widths, int n, et_generator *g)
{
    et_module *net = et_sequential_new();
    for (int i = 0; i + 1 < n; i++) {
        if (et_sequential_append(net, et_linear_new(widths[i], widths[i + 1], true, g)) != ET_OK)
            goto fail;
        if (i + 2 < n && et_sequential_append(net, et_tanh_new()) != ET_OK)
            goto fail;
    }
    return net;
fail:
    fprintf(stderr, "sine: building the network: %s\n", et_errmsg());
    et_module_free(net);
    return NULL;
}

/* Trains `net` on (x, y) and returns the final full-batch MSE (NAN on error). */
static double train(const char *name, et_module *net, et_tensor *x, et_tensor *y, int steps,
                    double lr)
{
    et_tensor *params[16];
    int np = et_module_num_params(net);
    for (int i = 0; i < np && i < 16; i++)
        params[i] = et_module_param(net, i);
    et_adam_opts ao = ET_ADAM_DEFAULTS;
    ao.lr = lr;
    et_optim *opt = et_adam_new(params, np, ao);
    /* anneal the lr over the run for a clean final fit */
    et_scheduler *sched = et_cosineannealinglr_new(opt, steps, lr * 0.01);
    if (!opt || !sched) {
        fprintf(stderr, "sine: %s\n", et_errmsg());
        et_scheduler_free(sched);
        et_optim_free(opt);
        return NAN;
    }
    double loss_value = NAN;
    printf("== %s (%lld parameters)\n", name, (long long)et_module_param_count(net));
    for (int step = 1; step <= steps; step++) {
        et_pool_begin();
        et_optim_zero_grad(opt);
        et_tensor *pred = et_module_forward(net, x);
        et_tensor *loss = pred ? et_mse_loss(pred, y, ET_REDUCTION_MEAN) : NULL;
        if (!loss || et_backward(loss, NULL) != ET_OK || et_optim_step(opt) != ET_OK) {
            fprintf(stderr, "sine: step %d: %s\n", step, et_errmsg());
            et_pool_end();
            loss_value = NAN;
            break;
        }
        et_scheduler_step(sched);
        loss_value = et_item(loss);
        if (step == 1 || step % 500 == 0)
            printf("step %5d  loss %.6f  lr %.5f\n", step, loss_value,
                   et_scheduler_get_last_lr(sched));
        et_pool_end();
    }
    /* final MSE with the trained parameters */
    double mse = NAN;
    if (!isnan(loss_value)) {
        ET_NO_GRAD
        {
            et_pool_begin();
            et_tensor *l = et_mse_loss(et_module_forward(net, x), y, ET_REDUCTION_MEAN);
            mse = l ? et_item(l) : NAN;
            et_pool_end();
        }
    }
    et_scheduler_free(sched);
    et_optim_free(opt);
    return mse;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 3000;
    if (steps <= 0) {
        fprintf(stderr, "usage: sine [steps > 0]\n");
        return 2;
    }
    float xs[NPOINTS], ys[NPOINTS];
    for (int i = 0; i < NPOINTS; i++) {
        xs[i] = (float)(-M_PI + 2 * M_PI * i / (NPOINTS - 1));
        ys[i] = sinf(xs[i]);
    }
    et_tensor *x = et_tensor_new(xs, ET_SHAPE(NPOINTS, 1));
    et_tensor *y = et_tensor_new(ys, ET_SHAPE(NPOINTS, 1));
    et_generator *g = et_generator_new(0);

    et_module *quick = make_net((const int[]){1, 5, 1}, 3, g);
    et_module *wide = make_net((const int[]){1, 32, 32, 1}, 4, g);
    double q = quick ? train("quick-start Linear(1,5)-Tanh-Linear(5,1)", quick, x, y, steps, 0.02)
                     : NAN;
    double w = wide ? train("wide 1-32-32-1 Tanh", wide, x, y, steps, 0.01) : NAN;
    printf("quickstart_mse=%.6g\n", q);
    printf("wide_mse=%.6g\n", w);

    et_module_free(quick);
    et_module_free(wide);
    et_generator_free(g);
    et_tensor_free(x);
    et_tensor_free(y);
    return isnan(q) || isnan(w) ? 1 : 0;
}
