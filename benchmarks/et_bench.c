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
 * Run by hand:  et_bench --list | et_bench <workload> [iterations]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <easytorch/easytorch.h>

#include "bench_conv.h"

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

    int n = et_module_num_params(s->net);
    et_tensor *params[64];
    if (n > 64)
        goto fail;
    for (int i = 0; i < n; i++)
        params[i] = et_module_param(s->net, i);
    if (sp->opt == OPT_ADAM) {
        s->opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    } else {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.01;
        if (sp->opt == OPT_SGD_MOMENTUM)
            o.momentum = 0.9;
        s->opt = et_sgd_new(params, n, o);
    }
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
    int n = et_module_num_params(s->net);
    et_tensor *params[16];
    for (int i = 0; i < n; i++)
        params[i] = et_module_param(s->net, i);
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = 0.1;
    s->opt = et_sgd_new(params, n, o);
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

/* ---- the floor of the 784-1024-1024-10 step: its 8 sgemm calls alone ---- */

/* batch, input, hidden, output widths (complex.h may define I) */
enum { FL_B = 256, FL_I = 784, FL_H = 1024, FL_O = 10 };

typedef struct {
    float *x, *w1, *w2, *w3, *h1, *h2, *y, *dw1, *dw2, *dw3, *dh1, *dh2;
} floor_state;

static void floor_teardown(void *p)
{
    floor_state *s = p;
    if (s == NULL)
        return;
    float **bufs[] = {&s->x, &s->w1, &s->w2, &s->w3, &s->h1, &s->h2, &s->y,
                      &s->dw1, &s->dw2, &s->dw3, &s->dh1, &s->dh2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(*bufs[i]);
    free(s);
}

static void *floor_setup(void)
{
    floor_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    struct { float **p; size_t n; } bufs[] = {
        {&s->x, FL_B * FL_I}, {&s->w1, FL_H * FL_I}, {&s->w2, FL_H * FL_H}, {&s->w3, FL_O * FL_H}, {&s->h1, FL_B * FL_H},
        {&s->h2, FL_B * FL_H}, {&s->y, FL_B * FL_O}, {&s->dw1, FL_H * FL_I}, {&s->dw2, FL_H * FL_H}, {&s->dw3, FL_O * FL_H},
        {&s->dh1, FL_B * FL_H}, {&s->dh2, FL_B * FL_H}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = calloc(bufs[i].n, sizeof(float));
        if (*bufs[i].p == NULL) {
            floor_teardown(s);
            et_set_error(ET_ERR_NOMEM, "sgemm_784_step: out of memory");
            return NULL;
        }
        for (size_t j = 0; j < bufs[i].n; j++)
            (*bufs[i].p)[j] = (float)((j * 2654435761u) % 1000) * 1e-3f - 0.5f;
    }
    return s;
}

/* Forward x W1^T, h1 W2^T, h2 W3^T; backward dW3 = dy^T h2, dh2 = dy W3,
 * dW2 = dh2^T h1, dh1 = dh2 W2, dW1 = dh1^T x: the minimum BLAS work of a
 * training step of that MLP (what both easytorch and PyTorch must do). */
static et_status floor_run(void *p, long iters, double *value)
{
    floor_state *s = p;
    const CBLAS_ORDER R = CblasRowMajor;
    const CBLAS_TRANSPOSE N = CblasNoTrans, T = CblasTrans;
    for (long i = 0; i < iters; i++) {
        cblas_sgemm(R, N, T, FL_B, FL_H, FL_I, 1, s->x, FL_I, s->w1, FL_I, 0, s->h1, FL_H);
        cblas_sgemm(R, N, T, FL_B, FL_H, FL_H, 1, s->h1, FL_H, s->w2, FL_H, 0, s->h2, FL_H);
        cblas_sgemm(R, N, T, FL_B, FL_O, FL_H, 1, s->h2, FL_H, s->w3, FL_H, 0, s->y, FL_O);
        cblas_sgemm(R, T, N, FL_O, FL_H, FL_B, 1, s->y, FL_O, s->h2, FL_H, 0, s->dw3, FL_H);
        cblas_sgemm(R, N, N, FL_B, FL_H, FL_O, 1, s->y, FL_O, s->w3, FL_H, 0, s->dh2, FL_H);
        cblas_sgemm(R, T, N, FL_H, FL_H, FL_B, 1, s->dh2, FL_H, s->h1, FL_H, 0, s->dw2, FL_H);
        cblas_sgemm(R, N, N, FL_B, FL_H, FL_H, 1, s->dh2, FL_H, s->w2, FL_H, 0, s->dh1, FL_H);
        cblas_sgemm(R, T, N, FL_H, FL_I, FL_B, 1, s->dh1, FL_H, s->x, FL_I, 0, s->dw1, FL_I);
    }
    *value = s->dw1[0];
    return ET_OK;
}

static const workload workloads[] = {
    {"tiny_backward", "(a*b + a).sum().backward(), 2x2", tiny_setup, tiny_run, tiny_teardown},
    {"train_1_5_1", "1-5-1 Tanh, MSE, SGD, batch 256", mlp_1_5_1_setup, mlp_run, mlp_teardown},
    {"train_13_64_64_1", "13-64-64-1 ReLU, MSE, Adam, batch 32", mlp_13_64_64_1_setup, mlp_run,
     mlp_teardown},
    {"train_784_1024_1024_10", "784-1024-1024-10 ReLU, CE, SGD momentum, batch 256", mlp_784_setup,
     mlp_run, mlp_teardown},
    {"train_char_mlp", "char model Embedding-Linear-BatchNorm1d-Tanh-Linear, CE, SGD, batch 32",
     char_setup, char_run, char_teardown},
    {"matmul_1024", "et_matmul 1024x1024 @ 1024x1024", mm_setup, mm_et_run, mm_teardown},
    {"sgemm_1024", "cblas_sgemm 1024x1024 @ 1024x1024", mm_setup, mm_sgemm_run, mm_teardown},
    {"sgemm_784_step", "the 8 cblas_sgemm calls of a 784-1024-1024-10 step (floor)", floor_setup,
     floor_run, floor_teardown},
    BENCH_CONV_WORKLOADS   /* bench_conv.c */
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
    if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < NWORKLOADS; i++)
            printf("%-24s %s\n", workloads[i].name, workloads[i].what);
    } else if (argc >= 2) {
        rc = run_one(argv[1], argc >= 3 ? atol(argv[2]) : 1);
    } else {
        /* Driver mode: announce the configuration, then serve commands. */
        printf("ready easytorch=%s openblas_threads=%d openblas=\"%s\"\n", EASYTORCH_VERSION,
               openblas_get_num_threads(), openblas_get_config());
        char line[256], name[128];
        long iters;
        while (fgets(line, sizeof line, stdin) != NULL) {
            if (strncmp(line, "quit", 4) == 0)
                break;
            if (sscanf(line, "run %127s %ld", name, &iters) == 2)
                run_one(name, iters);
            else
                printf("error bad command\n");
        }
    }
    for (int i = 0; i < NWORKLOADS; i++)
        if (states[i] != NULL)
            workloads[i].teardown(states[i]);
    return rc;
}
