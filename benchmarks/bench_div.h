/* bench_div.h - the divider floor of et_bench (bench_div.c): the square root
 * and divisions an Adam update does per parameter, alone, for the
 * 13-64-64-1 model's 5,121 parameters. */
#ifndef BENCH_DIV_H
#define BENCH_DIV_H

#include <easytorch/easytorch.h>

void *div_adam_setup(void);
et_status div_run(void *state, long iters, double *value);
void div_teardown(void *state);

/* Rows of et_bench.c's workload table. */
#define BENCH_DIV_WORKLOADS                                                                   \
    {"div_adam_13_64_64_1", "the sqrt and divisions of an Adam step alone (13-64-64-1)", \
     div_adam_setup, div_run, div_teardown},

#endif
