/*
 * batch_forward.c - the dynamic-batching row's forward alone (issue 12):
 * the 784-1024-1024-10 ReLU model (et_sequential of Linear and ReLU, no
 * grad, as easytorchd's predict runs it) on M rows, batch-invariant as a
 * batching model runs it, and one row in the default mode as the model
 * without batching runs it.
 *
 *   batch_forward              CPU time per forward and per row (best of 5
 *                              samples of >= 50 ms each) for M = 1, 2, 4, 8,
 *                              16, 32, 48, 64 invariant, M >= 16 invariant
 *                              with the weights' panels cached (et_pack_cache,
 *                              as a batching easytorchd runs), and M = 1 to 4
 *                              default
 *   batch_forward --floor [--json]  the 64-row x·Wᵀ of each layer: ours
 *                              against OpenBLAS and the FMA peak (batch_floor.c)
 *   batch_forward M N [plain|cached]  N forwards of M rows (invariant unless
 *                              "plain"; "cached": with a pack cache): for
 *                              valgrind --tool=callgrind
 *
 * The weights are 7.4 MB: they stay in L3 between calls here, as they do
 * in the daemon between batches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <easytorch/easytorch.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static et_module *net_new(void)
{
    et_generator *g = et_generator_new(0);
    et_module *net = et_sequential_new();
    et_sequential_append(net, et_linear_new(784, 1024, true, g));
    et_sequential_append(net, et_relu_new());
    et_sequential_append(net, et_linear_new(1024, 1024, true, g));
    et_sequential_append(net, et_relu_new());
    et_sequential_append(net, et_linear_new(1024, 10, true, g));
    et_generator_free(g);
    return net;
}

static et_pack_cache *cache;   /* "cached" mode's, else NULL */

static int forward(et_module *net, et_tensor *x, long iters, bool invariant)
{
    bool was = et_set_batch_invariant(invariant), grad = et_set_grad_enabled(false);
    et_pack_cache *prev = et_set_pack_cache(cache);
    int rc = 0;
    for (long i = 0; i < iters && rc == 0; i++) {
        et_pool_begin();
        if (!et_module_forward(net, x))
            rc = 1;
        et_pool_end();
    }
    et_set_pack_cache(prev);
    et_set_grad_enabled(grad);
    et_set_batch_invariant(was);
    return rc;
}

/* best of 5 samples (after one calibration) of one forward, in ns */
static double time_forward(et_module *net, et_tensor *x, bool invariant)
{
    double best = 1e30;
    long iters = 1;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now_ns();
        if (forward(net, x, iters, invariant) != 0)
            return -1;
        double t = now_ns() - t0;
        if (rep == 0) {
            iters = (long)(50e6 / (t > 1 ? t : 1)) + 1;
            continue;
        }
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    return best;
}

int batch_floor(bool json);   /* batch_floor.c */

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--floor") == 0)
        return batch_floor(argc >= 3 && strcmp(argv[2], "--json") == 0);
    et_module *net = net_new();
    et_generator *g = et_generator_new(1);
    et_tensor *x64 = et_randn(g, (const int64_t[]){64, 784}, 2);
    if (!net || !x64) {
        fprintf(stderr, "batch_forward: %s\n", et_errmsg());
        return 1;
    }
    int rc = 0;
    if (argc >= 3) {
        long m = atol(argv[1]), n = atol(argv[2]);
        bool plain = argc >= 4 && strcmp(argv[3], "plain") == 0;
        bool cached = argc >= 4 && strcmp(argv[3], "cached") == 0;
        if (m < 1 || m > 64 || n < 1) {
            fprintf(stderr, "usage: batch_forward [M (1..64) N [plain|cached]]\n");
            return 2;
        }
        if (cached)
            cache = et_pack_cache_new(0);
        et_tensor *x = et_slice(x64, 0, 0, m, 1);
        rc = forward(net, x, n, !plain);
        et_tensor_free(x);
    } else {
        static const struct { int m; char mode; } runs[] = {
            {1, 'i'}, {2, 'i'}, {4, 'i'}, {8, 'i'}, {16, 'i'}, {32, 'i'}, {48, 'i'}, {64, 'i'},
            {16, 'c'}, {32, 'c'}, {48, 'c'}, {64, 'c'}, {1, 'd'}, {2, 'd'}, {4, 'd'}};
        et_pack_cache *pc = et_pack_cache_new(0);
        printf("| rows | mode | µs per forward | µs per row |\n|---|---|---|---|\n");
        for (size_t i = 0; i < sizeof runs / sizeof runs[0] && rc == 0; i++) {
            int m = runs[i].m;
            char mode = runs[i].mode;
            cache = mode == 'c' ? pc : NULL;
            et_tensor *x = et_slice(x64, 0, 0, m, 1);
            double t = time_forward(net, x, mode != 'd');
            et_tensor_free(x);
            if (t < 0) {
                rc = 1;
                break;
            }
            printf("| %d | %s | %.1f | %.1f |\n", m,
                   mode == 'i' ? "invariant" : mode == 'c' ? "invariant, cached" : "default",
                   t / 1e3, t / 1e3 / m);
        }
        cache = NULL;
        et_pack_cache_free(pc);
    }
    if (rc)
        fprintf(stderr, "batch_forward: %s\n", et_errmsg());
    et_tensor_free(x64);
    et_generator_free(g);
    et_module_free(net);
    et_pack_cache_free(cache);
    return rc;
}
