/*
 * et_bench - the C side of scripts/bench: easytorch workloads and the
 * OpenBLAS anchor of the matmul row, timed in one process.
 *
 * scripts/bench drives this program and benchmarks/torch_bench.py through
 * the same line protocol, so that each sample of ours is taken right next to
 * a sample of the anchor (same machine load, same moment):
 *
 *     -> run <workload> <iterations>
 *     <- ok <wall nanoseconds for all iterations> <value> <CPU nanoseconds>
 *     <- error <message>
 *
 * CPU time (CLOCK_PROCESS_CPUTIME_ID, all threads of the process) is
 * reported next to wall time because the benchmark machine may be shared:
 * time spent preempted by other processes counts in wall time only.
 * `value` is a number computed by the last iteration (the loss of a training
 * step, a checksum of a product) so the driver can check that the work was
 * done and produced a finite result.  Each workload's state (model, optimizer,
 * data) is built on first use and kept; it is not part of the timing.
 *
 * Run by hand:  et_bench --list | et_bench <workload> [iterations] | et_bench --blas-core
 *               | et_bench --gemm-table | et_bench --bw-table
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <easytorch/easytorch.h>
#include "driver.h"

#include "bench_attention.h"
#include "bench_bw.h"
#include "bench_div.h"
#include "bench_graph.h"
#include "bench_conv.h"
#include "bench_floor.h"
#include "bench_train.h"
#include "core/core_internal.h"   /* etc_gemm, for --gemm-table */

/* One benchmark: setup builds the state once (NULL + et_errmsg() on error);
 * run performs `iters` repetitions, storing a result value in *value. */
typedef struct workload {
    const char *name;
    const char *what;
    void *(*setup)(void);
    et_status (*run)(void *state, long iters, double *value);
    void (*teardown)(void *state);
} workload;

static double now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Fails the current iteration when an op returned NULL. */
#define CHECK(x)                                                          \
    do {                                                                  \
        if ((x) == NULL) {                                                \
            et_pool_end();                                                \
            return et_errcode() != ET_OK ? et_errcode() : ET_ERR_STATE;   \
        }                                                                 \
    } while (0)

/* ---- (a*b + a).sum().backward() on 2x2 tensors: per-op overhead ---- */

typedef struct {
    et_tensor *a, *b;
} tiny_state;

static void tiny_teardown(void *p)
{
    tiny_state *s = p;
    if (s == NULL)
        return;
    et_tensor_free(s->a);
    et_tensor_free(s->b);
    free(s);
}

static void *tiny_setup(void)
{
    tiny_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->a = et_tensor_new((const float[]){1, 2, 3, 4}, ET_SHAPE(2, 2));
    s->b = et_tensor_new((const float[]){5, 6, 7, 8}, ET_SHAPE(2, 2));
    if (s->a == NULL || s->b == NULL || et_set_requires_grad(s->a, true) != ET_OK ||
        et_set_requires_grad(s->b, true) != ET_OK) {
        tiny_teardown(s);
        return NULL;
    }
    return s;
}

/* Gradients accumulate across iterations, exactly as the PyTorch side. */
static et_status tiny_run(void *p, long iters, double *value)
{
    tiny_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_tensor *ab, *y, *sum;
        CHECK(ab = et_mul(s->a, s->b));
        CHECK(y = et_add(ab, s->a));
        CHECK(sum = et_sum_all(y));
        et_status st = et_backward(sum, NULL);
        if (st != ET_OK) {
            et_pool_end();
            return st;
        }
        if (i == iters - 1)
            *value = et_item(sum);
        et_pool_end();
    }
    return ET_OK;
}

/* ---- training steps of an MLP: zero_grad, forward, loss, backward, step ---- */

typedef enum { ACT_TANH, ACT_RELU } act_kind;
typedef enum { LOSS_MSE, LOSS_CE } loss_kind;
typedef enum { OPT_SGD, OPT_SGD_MOMENTUM, OPT_ADAM } opt_kind;

typedef struct {
    const int64_t *sizes;   /* layer widths, input first */
    int nsizes;
    act_kind act;
    loss_kind loss;
    opt_kind opt;
    int64_t batch;
} mlp_spec;

typedef struct {
    et_module *net;
    et_optim *opt;
    et_tensor *x, *y;
    loss_kind loss;
    et_generator *g;
} mlp_state;

static void mlp_teardown(void *p)
{
    mlp_state *s = p;
    if (s == NULL)
        return;
    et_optim_free(s->opt);
    et_module_free(s->net);
    et_tensor_free(s->x);
    et_tensor_free(s->y);
    et_generator_free(s->g);
    free(s);
}

static mlp_state *mlp_setup(const mlp_spec *sp)
{
    mlp_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->loss = sp->loss;
    s->g = et_generator_new(0);
    s->net = et_sequential_new();
    if (s->g == NULL || s->net == NULL)
        goto fail;
    for (int i = 0; i + 1 < sp->nsizes; i++) {
        if (et_sequential_append(s->net, et_linear_new(sp->sizes[i], sp->sizes[i + 1], true, s->g)) != ET_OK)
            goto fail;
        if (i + 2 < sp->nsizes &&
            et_sequential_append(s->net, sp->act == ACT_TANH ? et_tanh_new() : et_relu_new()) != ET_OK)
            goto fail;
    }

    int n;
    et_tensor **params = bench_params(s->net, &n);
    if (params == NULL)
        goto fail;
    if (sp->opt == OPT_ADAM) {
        s->opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    } else {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.01;
        if (sp->opt == OPT_SGD_MOMENTUM)
            o.momentum = 0.9;
        s->opt = et_sgd_new(params, n, o);
    }
    free(params);
    if (s->opt == NULL)
        goto fail;

    int64_t in = sp->sizes[0], out = sp->sizes[sp->nsizes - 1];
    s->x = et_randn(s->g, ET_SHAPE(sp->batch, in));
    if (sp->loss == LOSS_CE) {
        /* class indices 0..out-1, stored as float32 (tensor.h) */
        s->y = et_zeros(ET_SHAPE(sp->batch));
        if (s->y != NULL) {
            float *d = et_data(s->y);
            for (int64_t i = 0; i < sp->batch; i++)
                d[i] = (float)(et_generator_next(s->g) % (uint64_t)out);
        }
    } else {
        s->y = et_randn(s->g, ET_SHAPE(sp->batch, out));
    }
    if (s->x == NULL || s->y == NULL)
        goto fail;
    return s;
fail:
    mlp_teardown(s);
    return NULL;
}

static et_status mlp_run(void *p, long iters, double *value)
{
    mlp_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_optim_zero_grad(s->opt);
        et_tensor *out, *loss;
        CHECK(out = et_module_forward(s->net, s->x));
        if (s->loss == LOSS_CE)
            loss = et_cross_entropy(out, s->y, ET_REDUCTION_MEAN, 0.0f);
        else
            loss = et_mse_loss(out, s->y, ET_REDUCTION_MEAN);
        CHECK(loss);
        et_status st = et_backward(loss, NULL);
        if (st == ET_OK)
            st = et_optim_step(s->opt);
        if (st != ET_OK) {
            et_pool_end();
            return st;
        }
        if (i == iters - 1)
            *value = et_item(loss);
        et_pool_end();
    }
    return ET_OK;
}

static void *mlp_1_5_1_setup(void)
{
    static const int64_t sizes[] = {1, 5, 1};
    return mlp_setup(&(mlp_spec){sizes, 3, ACT_TANH, LOSS_MSE, OPT_SGD, 256});
}

static void *mlp_13_64_64_1_setup(void)
{
    static const int64_t sizes[] = {13, 64, 64, 1};
    return mlp_setup(&(mlp_spec){sizes, 4, ACT_RELU, LOSS_MSE, OPT_ADAM, 32});
}

/* issue 15's binary rows (predict/train 1024 rows over HTTP): the model's
 * own compute, what the HTTP rows cannot go below. */
static void *mlp_13_64_64_1_b1024_setup(void)
{
    static const int64_t sizes[] = {13, 64, 64, 1};
    return mlp_setup(&(mlp_spec){sizes, 4, ACT_RELU, LOSS_MSE, OPT_ADAM, 1024});
}

/* eval-mode forward without grad: the daemon's predict */
static et_status mlp_forward_run(void *p, long iters, double *value)
{
    mlp_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_tensor *out = NULL;
        ET_NO_GRAD { out = et_module_forward(s->net, s->x); }
        if (out == NULL) {
            et_pool_end();
            return et_errcode();
        }
        if (i == iters - 1)
            *value = et_data(out)[0];
        et_pool_end();
    }
    return ET_OK;
}

static void *mlp_784_setup(void)
{
    static const int64_t sizes[] = {784, 1024, 1024, 10};
    return mlp_setup(&(mlp_spec){sizes, 4, ACT_RELU, LOSS_CE, OPT_SGD_MOMENTUM, 256});
}

/* ---- the character model of examples/char_lm (Bengio et al. 2003, makemore):
 * Embedding(27, 10) -> Flatten -> Linear(30, 200) -> BatchNorm1d(200) -> Tanh ->
 * Linear(200, 27), cross-entropy, SGD lr 0.1.  A step draws a batch of 32 rows
 * of a fixed 4096-row dataset (index_select of int64 contexts and targets),
 * then zero_grad, forward, loss, backward, step -- makemore's loop. ---- */

enum { CHAR_ROWS = 4096, CHAR_BATCH = 32 };

typedef struct {
    et_module *net;
    et_optim *opt;
    et_tensor *X, *Y;   /* [4096, 3], [4096] int64 */
    et_generator *g;
} char_state;

static void char_teardown(void *p)
{
    char_state *s = p;
    if (s == NULL)
        return;
    et_optim_free(s->opt);
    et_module_free(s->net);
    et_tensor_free(s->X);
    et_tensor_free(s->Y);
    et_generator_free(s->g);
    free(s);
}

static void *char_setup(void)
{
    char_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->g = et_generator_new(0);
    s->net = et_sequential_new();
    if (s->g == NULL || s->net == NULL)
        goto fail;
    et_module *layers[] = {
        et_embedding_new(27, 10, ET_EMBEDDING_DEFAULTS, s->g), et_flatten_new(1, -1),
        et_linear_new(30, 200, true, s->g), et_batch_norm1d_new(200, ET_BATCH_NORM_DEFAULTS),
        et_tanh_new(), et_linear_new(200, 27, true, s->g)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (et_sequential_append(s->net, layers[i]) != ET_OK)
            goto fail;
    int n;
    et_tensor **params = bench_params(s->net, &n);
    if (params == NULL)
        goto fail;
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = 0.1;
    s->opt = et_sgd_new(params, n, o);
    free(params);
    int64_t *x = malloc(CHAR_ROWS * 3 * sizeof *x), *y = malloc(CHAR_ROWS * sizeof *y);
    if (x && y) {
        for (int i = 0; i < CHAR_ROWS * 3; i++)
            x[i] = (int64_t)(et_generator_next(s->g) % 27);
        for (int i = 0; i < CHAR_ROWS; i++)
            y[i] = (int64_t)(et_generator_next(s->g) % 27);
        s->X = et_tensor_new_int64(x, ET_SHAPE(CHAR_ROWS, 3));
        s->Y = et_tensor_new_int64(y, ET_SHAPE(CHAR_ROWS));
    }
    free(x);
    free(y);
    if (s->opt == NULL || s->X == NULL || s->Y == NULL)
        goto fail;
    return s;
fail:
    char_teardown(s);
    return NULL;
}

static et_status char_run(void *p, long iters, double *value)
{
    char_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        int64_t ix[CHAR_BATCH];
        for (int k = 0; k < CHAR_BATCH; k++)
            ix[k] = (int64_t)(et_generator_next(s->g) % CHAR_ROWS);
        et_tensor *it = et_tensor_new_int64(ix, ET_SHAPE(CHAR_BATCH)), *out, *loss;
        et_tensor *xb = it ? et_index_select(s->X, 0, it) : NULL;
        et_tensor *yb = xb ? et_index_select(s->Y, 0, it) : NULL;
        et_optim_zero_grad(s->opt);
        CHECK(yb);
        CHECK(out = et_module_forward(s->net, xb));
        CHECK(loss = et_cross_entropy(out, yb, ET_REDUCTION_MEAN, 0.0f));
        et_status st = et_backward(loss, NULL);
        if (st == ET_OK)
            st = et_optim_step(s->opt);
        if (st != ET_OK) {
            et_pool_end();
            return st;
        }
        if (i == iters - 1)
            *value = et_item(loss);
        et_pool_end();
    }
    return ET_OK;
}

/* ---- matmul 1024^3: et_matmul against a bare cblas_sgemm ---- */

enum { MM_N = 1024 };

typedef struct {
    et_tensor *a, *b;
    float *c;      /* output buffer of the bare sgemm */
} mm_state;

static void mm_teardown(void *p)
{
    mm_state *s = p;
    if (s == NULL)
        return;
    et_tensor_free(s->a);
    et_tensor_free(s->b);
    free(s->c);
    free(s);
}

static void *mm_setup(void)
{
    mm_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    et_generator *g = et_generator_new(1);
    s->a = et_randn(g, ET_SHAPE(MM_N, MM_N));
    s->b = et_randn(g, ET_SHAPE(MM_N, MM_N));
    et_generator_free(g);
    s->c = malloc(sizeof(float) * MM_N * MM_N);
    if (s->a == NULL || s->b == NULL || s->c == NULL) {
        mm_teardown(s);
        return NULL;
    }
    /* Refuse to time a wrong product: compare et_matmul with sgemm once. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, MM_N, MM_N, MM_N, 1.0f,
                et_data(s->a), MM_N, et_data(s->b), MM_N, 0.0f, s->c, MM_N);
    et_pool_begin();
    et_tensor *c = et_matmul(s->a, s->b);
    int bad = c == NULL || et_numel(c) != (int64_t)MM_N * MM_N;
    for (int64_t i = 0; !bad && i < (int64_t)MM_N * MM_N; i++)
        bad = fabsf(et_data(c)[i] - s->c[i]) > 1e-3f * (1.0f + fabsf(s->c[i]));
    et_pool_end();
    if (bad) {
        if (c != NULL)
            et_set_error(ET_ERR_STATE, "matmul: et_matmul differs from cblas_sgemm");
        mm_teardown(s);
        return NULL;
    }
    return s;
}

static et_status mm_et_run(void *p, long iters, double *value)
{
    mm_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_tensor *c;
        CHECK(c = et_matmul(s->a, s->b));
        if (i == iters - 1)
            *value = et_data(c)[0];
        et_pool_end();
    }
    return ET_OK;
}

static et_status mm_sgemm_run(void *p, long iters, double *value)
{
    mm_state *s = p;
    for (long i = 0; i < iters; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, MM_N, MM_N, MM_N, 1.0f,
                    et_data(s->a), MM_N, et_data(s->b), MM_N, 0.0f, s->c, MM_N);
    *value = s->c[0];
    return ET_OK;
}

/* ---- an optimizer's update alone, and the memory-bandwidth floor of it ---- */

/* The optimizer of an MLP workload after one backward (so every parameter
 * has a gradient); each iteration is one et_optim_step. */
static et_status optim_run(void *p, long iters, double *value)
{
    mlp_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_status st = et_optim_step(s->opt);
        if (st != ET_OK)
            return st;
    }
    *value = et_data(et_module_param(s->net, 0))[0];
    return ET_OK;
}

static void *optim_prepare(mlp_state *s)
{
    if (s == NULL)
        return NULL;
    double v;
    if (mlp_run(s, 1, &v) != ET_OK) {
        mlp_teardown(s);
        return NULL;
    }
    return s;
}

static void *optim_adam_setup(void) { return optim_prepare(mlp_13_64_64_1_setup()); }
static void *optim_sgd_setup(void) { return optim_prepare(mlp_784_setup()); }

/* ---- --gemm-table: our kernels against OpenBLAS, per shape ---- */

typedef struct {
    const char *model;
    int64_t m, n, k;
    char form;   /* 'F' forward x W^T, 'W' weight gradient G^T X, 'X' input gradient G W */
} gemm_shape;

/* Best of 5 samples of >= 20 ms each: the time of one call. */
static double gemm_time(const etc_gemm_t *g, unsigned flags)
{
    double best = 1e30;
    long iters = 1;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        for (long i = 0; i < iters; i++)
            etc_gemm(g, flags);
        double t = now_ns(CLOCK_PROCESS_CPUTIME_ID) - t0;
        if (rep == 0) {   /* calibration */
            iters = (long)(20e6 / (t > 1 ? t : 1)) + 1;
            continue;
        }
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    return best;
}

static int gemm_table(void)
{
    /* dx0: the first layer's input gradient is needed too (the char model's
     * input is an Embedding's output) */
    static const struct { const char *name; int64_t sizes[5]; int n, batch; bool dx0; } models[] = {
        {"1-5-1 b256", {1, 5, 1}, 3, 256, false},
        {"13-64-64-1 b32", {13, 64, 64, 1}, 4, 32, false},
        {"13-64-64-1 b1024", {13, 64, 64, 1}, 4, 1024, false},   /* the HTTP b1024 rows */
        {"784-1024-1024-10 b256", {784, 1024, 1024, 10}, 4, 256, false},
        {"784-1024-1024-10 b64", {784, 1024, 1024, 10}, 4, 64, false},
        {"784-1024-1024-10 b1", {784, 1024, 1024, 10}, 4, 1, false},
        {"char b32", {30, 200, 27}, 3, 32, true},
        /* the Transformer step's linear layers (d_model 64, ff 256, 16 x 32 tokens) */
        {"enc in_proj b512", {64, 192}, 2, 512, true},
        {"enc out_proj b512", {64, 64}, 2, 512, true},
        {"enc linear1 b512", {64, 256}, 2, 512, true},
        {"enc linear2 b512", {256, 64}, 2, 512, true},
    };
    printf("# kernels: %s; OpenBLAS %s, %d thread(s); times per call (best of 5)\n",
           etc_gemm_isa(), openblas_get_corename(), openblas_get_num_threads());
    printf("| model | GEMM | m x n x k | ours (µs) | tile kernel (µs) | invariant (µs) | OpenBLAS (µs) | OpenBLAS / ours | etc_gemm uses |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        int64_t b = models[mi].batch;
        for (int l = 0; l + 1 < models[mi].n; l++) {
            int64_t in = models[mi].sizes[l], out = models[mi].sizes[l + 1];
            gemm_shape sh[3] = {{models[mi].name, b, out, in, 'F'},
                                {models[mi].name, out, in, b, 'W'},
                                {models[mi].name, b, in, out, 'X'}};
            int forms = b == 1 ? 1 : (l > 0 || models[mi].dx0 ? 3 : 2);
            for (int f = 0; f < forms; f++) {
                gemm_shape s = sh[f];
                size_t na = (size_t)(s.m * s.k), nb = (size_t)(s.k * s.n), nc = (size_t)(s.m * s.n);
                float *a = malloc(na * sizeof(float)), *bb = malloc(nb * sizeof(float));
                float *c = malloc(nc * sizeof(float)), *bias = malloc((size_t)s.n * sizeof(float));
                if (!a || !bb || !c || !bias)
                    return 1;
                for (size_t i = 0; i < na; i++)
                    a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
                for (size_t i = 0; i < nb; i++)
                    bb[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
                for (int64_t i = 0; i < s.n; i++)
                    bias[i] = 0.01f * (float)i;
                etc_gemm_t g = {.m = s.m, .n = s.n, .k = s.k, .a = a, .b = bb, .c = c, .ldc = s.n};
                const char *what;
                if (s.form == 'F') {        /* x [m,k] row-major, W [n,k]: B(p,j) = W[j,p] */
                    g.ars = s.k, g.acs = 1, g.brs = 1, g.bcs = s.k, g.bias = bias;
                    what = "forward x·Wᵀ+b";
                } else if (s.form == 'W') { /* G [k,m] (A = Gᵀ), X [k,n] */
                    g.ars = 1, g.acs = s.m, g.brs = s.n, g.bcs = 1;
                    what = "dW = Gᵀ·X";
                } else {                    /* G [m,k], W [k,n] */
                    g.ars = s.k, g.acs = 1, g.brs = s.n, g.bcs = 1;
                    what = "dX = G·W";
                }
                double ours = gemm_time(&g, ETC_GEMM_NO_BLAS);
                double tile = gemm_time(&g, ETC_GEMM_NO_BLAS | ETC_GEMM_TILE);
                double inv = gemm_time(&g, ETC_GEMM_INVARIANT);
                double blas = gemm_time(&g, ETC_GEMM_BLAS);
                printf("| %s | %s | %lld x %lld x %lld | %.3g | %.3g | %.3g | %.3g | %.2f | %s |\n",
                       s.model, what, (long long)s.m, (long long)s.n, (long long)s.k, ours / 1e3,
                       tile / 1e3, inv / 1e3, blas / 1e3, blas / ours,
                       etc_gemm_uses_blas(&g, 0) ? "OpenBLAS" : "ours");
                free(a);
                free(bb);
                free(c);
                free(bias);
            }
        }
    }
    return 0;
}

static const workload workloads[] = {
    {"tiny_backward", "(a*b + a).sum().backward(), 2x2", tiny_setup, tiny_run, tiny_teardown},
    {"train_1_5_1", "1-5-1 Tanh, MSE, SGD, batch 256", mlp_1_5_1_setup, mlp_run, mlp_teardown},
    {"train_13_64_64_1", "13-64-64-1 ReLU, MSE, Adam, batch 32", mlp_13_64_64_1_setup, mlp_run,
     mlp_teardown},
    {"train_13_64_64_1_b1024", "13-64-64-1 ReLU, MSE, Adam, batch 1024 (the HTTP train rows' step)",
     mlp_13_64_64_1_b1024_setup, mlp_run, mlp_teardown},
    {"forward_13_64_64_1_b1024", "13-64-64-1 ReLU forward without grad, 1024 rows (HTTP predict's)",
     mlp_13_64_64_1_b1024_setup, mlp_forward_run, mlp_teardown},
    {"train_784_1024_1024_10", "784-1024-1024-10 ReLU, CE, SGD momentum, batch 256", mlp_784_setup,
     mlp_run, mlp_teardown},
    {"train_char_mlp", "char model Embedding-Linear-BatchNorm1d-Tanh-Linear, CE, SGD, batch 32",
     char_setup, char_run, char_teardown},
    BENCH_FLOOR_WORKLOADS       /* bench_floor.c */
    {"optim_adam_13_64_64_1", "Adam step alone, 13-64-64-1", optim_adam_setup, optim_run,
     mlp_teardown},
    {"optim_sgd_784_1024_1024_10", "SGD momentum step alone, 784-1024-1024-10", optim_sgd_setup,
     optim_run, mlp_teardown},
    BENCH_BW_WORKLOADS          /* bench_bw.c */
    BENCH_DIV_WORKLOADS         /* bench_div.c */
    {"matmul_1024", "et_matmul 1024x1024 @ 1024x1024", mm_setup, mm_et_run, mm_teardown},
    {"sgemm_1024", "cblas_sgemm 1024x1024 @ 1024x1024", mm_setup, mm_sgemm_run, mm_teardown},
    BENCH_CONV_WORKLOADS   /* bench_conv.c */
    BENCH_ATTENTION_WORKLOADS   /* bench_attention.c */
    BENCH_GRAPH_WORKLOADS       /* bench_graph.c */
};
enum { NWORKLOADS = sizeof workloads / sizeof workloads[0] };
static void *states[NWORKLOADS];

static int find_workload(const char *name)
{
    for (int i = 0; i < NWORKLOADS; i++)
        if (strcmp(workloads[i].name, name) == 0)
            return i;
    return -1;
}

/* Time `iters` repetitions of workload `name`; prints the protocol answer. */
static int run_one(const char *name, long iters)
{
    int w = find_workload(name);
    if (w < 0) {
        printf("error unknown workload '%s'\n", name);
        return 1;
    }
    if (iters < 1) {
        printf("error iterations must be >= 1\n");
        return 1;
    }
    if (states[w] == NULL) {
        et_clear_error();
        states[w] = workloads[w].setup();
        if (states[w] == NULL) {
            printf("error %s setup: %s\n", name, et_errmsg());
            return 1;
        }
    }
    double value = NAN;
    et_clear_error();
    double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
    et_status st = workloads[w].run(states[w], iters, &value);
    double t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (st != ET_OK) {
        printf("error %s: %s\n", name, et_errmsg());
        return 1;
    }
    printf("ok %.0f %.9g %.0f\n", t1 - t0, value, c1 - c0);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = 0;
    if (argc >= 2 && strcmp(argv[1], "--gemm-table") == 0) {
        rc = gemm_table();
    } else if (argc >= 2 && strcmp(argv[1], "--bw-table") == 0) {
        rc = bw_table();
    } else if (argc >= 2 && strcmp(argv[1], "--blas-core") == 0) {
        printf("%s\n", openblas_get_corename());
    } else if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < NWORKLOADS; i++)
            printf("%-24s %s\n", workloads[i].name, workloads[i].what);
    } else if (argc >= 2) {
        rc = run_one(argv[1], argc >= 3 ? atol(argv[2]) : 1);
    } else {
        /* Driver mode: announce the configuration, then serve commands. */
        printf("ready easytorch=%s openblas_threads=%d openblas_core=%s openblas=\"%s\"\n",
               EASYTORCH_VERSION, openblas_get_num_threads(), openblas_get_corename(),
               openblas_get_config());
        bench_serve(run_one); /* a failed run says so on its line; the exit status stays 0 */
    }
    for (int i = 0; i < NWORKLOADS; i++)
        if (states[i] != NULL)
            workloads[i].teardown(states[i]);
    return rc;
}
