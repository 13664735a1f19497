/* bench_conv.h - the convolution workloads of et_bench (bench_conv.c). */
#ifndef BENCH_CONV_H
#define BENCH_CONV_H

#include <easytorch/easytorch.h>

#include "bench_train.h"

void *conv_setup(void);
void conv_teardown(void *state);
et_status conv_et_run(void *state, long iters, double *value);
et_status conv_onednn_run(void *state, long iters, double *value);
et_status conv_im2col_run(void *state, long iters, double *value);
void *lenet_setup(void); /* a bench_train (bench_train.h: its run and teardown) */

/* Rows of et_bench.c's workload table. */
#define BENCH_CONV_WORKLOADS                                                                   \
    {"conv2d_56", "et_conv2d forward 64x64x56x56, 3x3, padding 1", conv_setup, conv_et_run,   \
     conv_teardown},                                                                           \
    {"conv2d_56_onednn", "the same convolution on bare oneDNN (NCHW in/out)", conv_setup,     \
     conv_onednn_run, conv_teardown},                                                          \
    {"conv2d_56_im2col", "the same convolution as bare im2col + cblas_sgemm", conv_setup,     \
     conv_im2col_run, conv_teardown},                                                          \
    {"train_lenet5_b64", "LeNet-5 train step, CE, SGD momentum, batch 64 of 1x28x28",         \
     lenet_setup, bench_train_run, bench_train_free},

#endif
