/* bench_bw.h - the memory-bandwidth floors of et_bench (bench_bw.c): memcpy
 * of the bytes an optimizer update moves, and `et_bench --bw-table`, memcpy
 * against a plain vector copy loop at several sizes and relative offsets. */
#ifndef BENCH_BW_H
#define BENCH_BW_H

#include <easytorch/easytorch.h>

void *bw_adam_setup(void);   /* 13-64-64-1's Adam step: 28 bytes per parameter */
void *bw_sgd_setup(void);    /* 784-1024-1024-10's SGD momentum step: 20 bytes */
et_status bw_run(void *state, long iters, double *value);
void bw_teardown(void *state);
/* The table of docs/performance.md ("The bandwidth floor"); 0 on success. */
int bw_table(void);

/* Rows of et_bench.c's workload table. */
#define BENCH_BW_WORKLOADS                                                                    \
    {"bw_adam_13_64_64_1", "memcpy of the bytes an Adam step moves (13-64-64-1)",            \
     bw_adam_setup, bw_run, bw_teardown},                                                     \
    {"bw_sgd_784_1024_1024_10", "memcpy of the bytes an SGD momentum step moves (784-...)",  \
     bw_sgd_setup, bw_run, bw_teardown},

#endif
