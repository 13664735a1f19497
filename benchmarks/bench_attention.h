/* bench_attention.h - the Transformer workload of et_bench (bench_attention.c). */
#ifndef BENCH_ATTENTION_H
#define BENCH_ATTENTION_H

#include <easytorch/easytorch.h>

#include "bench_train.h"

void *encoder_setup(void); /* a bench_train (its run and teardown) */

/* Rows of et_bench.c's workload table. */
#define BENCH_ATTENTION_WORKLOADS                                                              \
    {"train_transformer_enc2", "2-layer TransformerEncoder train step (d_model 64, 4 heads, "  \
     "ff 256, dropout 0.1, batch_first), seq 32, batch 16, MSE, Adam", encoder_setup,          \
     bench_train_run, bench_train_free},

#endif
