/* bench_train.h - what et_bench's training-step workloads share (bench_train.c):
 * their state (a network, its optimizer, one fixed batch, the generator that
 * made them), its teardown, the list of a network's parameters for the
 * optimizer, and the timed loop of steps. */
#ifndef BENCH_TRAIN_H
#define BENCH_TRAIN_H

#include <easytorch/easytorch.h>

typedef struct bench_train {
    et_module *net;
    et_optim *opt;
    et_tensor *x, *y;
    et_generator *g;
    et_tensor *(*loss)(et_tensor *out, et_tensor *y); /* mean loss, for bench_train_run */
} bench_train;

/* A zeroed state with g = et_generator_new(0) and the loss; NULL when out of memory. */
bench_train *bench_train_new(et_tensor *(*loss)(et_tensor *out, et_tensor *y));
/* Frees what is set (a workload's teardown; NULL is fine). */
void bench_train_free(void *state);
/* Every parameter of net, malloc'ed (the caller frees it), *n of them; NULL
 * when out of memory. */
et_tensor **bench_params(et_module *net, int *n);
/* iters steps of zero_grad, forward of x, loss against y, backward, step;
 * *value is the last step's loss (a workload's run). */
et_status bench_train_run(void *state, long iters, double *value);

#endif
