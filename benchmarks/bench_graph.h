/* bench_graph.h - the graph-model workload of et_bench (bench_graph.c). */
#ifndef BENCH_GRAPH_H
#define BENCH_GRAPH_H

#include <easytorch/easytorch.h>

void *two_tower_setup(void);
et_status two_tower_run(void *state, long iters, double *value);
void two_tower_free(void *state);

/* Rows of et_bench.c's workload table. */
#define BENCH_GRAPH_WORKLOADS                                                                  \
    {"train_two_tower", "two-tower recommender train step: user/item Embedding(10000, 32) -> "  \
     "Linear 32-64 ReLU Linear 64-32 each, dot score, BCEWithLogits, Adam, batch 256 (a graph " \
     "module)", two_tower_setup, two_tower_run, two_tower_free},

#endif
