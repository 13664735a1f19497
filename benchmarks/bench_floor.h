/* bench_floor.h - the GEMM floors of et_bench (bench_floor.c): the GEMMs an
 * MLP training step (or a forward) must do, with its shapes, into
 * preallocated buffers, and nothing else. */
#ifndef BENCH_FLOOR_H
#define BENCH_FLOOR_H

#include <easytorch/easytorch.h>

void *floor_1_5_1_setup(void);
void *floor_13_64_64_1_setup(void);
void *floor_784_setup(void);
void *floor_13_64_64_1_b1024_setup(void);
void *floor_forward_13_64_64_1_b1024_setup(void);
et_status floor_run(void *state, long iters, double *value);
void floor_teardown(void *state);

/* Rows of et_bench.c's workload table. */
#define BENCH_FLOOR_WORKLOADS                                                                 \
    {"floor_1_5_1", "the GEMMs of a 1-5-1 batch-256 step alone", floor_1_5_1_setup,           \
     floor_run, floor_teardown},                                                              \
    {"floor_13_64_64_1", "the GEMMs of a 13-64-64-1 batch-32 step alone",                     \
     floor_13_64_64_1_setup, floor_run, floor_teardown},                                      \
    {"floor_784_1024_1024_10", "the GEMMs of a 784-1024-1024-10 batch-256 step alone",        \
     floor_784_setup, floor_run, floor_teardown},                                             \
    {"floor_13_64_64_1_b1024", "the GEMMs of a 13-64-64-1 batch-1024 step alone, each the "   \
     "faster of our kernels and OpenBLAS (the HTTP train b1024 rows' floor)",                 \
     floor_13_64_64_1_b1024_setup, floor_run, floor_teardown},                                \
    {"floor_forward_13_64_64_1_b1024", "the forward GEMMs of 13-64-64-1 on 1024 rows alone, " \
     "each the faster of ours and OpenBLAS (the HTTP predict b1024 rows' floor)",             \
     floor_forward_13_64_64_1_b1024_setup, floor_run, floor_teardown},

#endif
