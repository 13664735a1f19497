/*
 * check_alloc.c - a steady-state training step allocates nothing: after a
 * few warm-up steps (which fill the per-thread caches of tensor blocks,
 * headers and GEMM panels), N more steps of zero_grad, forward, loss,
 * backward and optimizer step make no call to malloc, calloc, realloc or
 * posix_memalign.  This executable interposes those functions and counts.
 * (Not built under sanitizers, whose allocators it would bypass.)  With
 * more than one thread OpenBLAS's threaded sgemm mallocs its job list on
 * every call, so the large model's GEMMs run on one BLAS thread here.
 */
#include <cblas.h>
#include <check.h>
#include <stdatomic.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>

#include <easytorch/easytorch.h>

/* glibc's own entry points, behind the interposed ones */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t s);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);

static atomic_bool counting;
static atomic_long calls;

static void count(void)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
}

void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t s)
{
    count();
    return __libc_calloc(n, s);
}

void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t a, size_t n)
{
    count();
    void *p = __libc_memalign(a, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *aligned_alloc(size_t a, size_t n)
{
    count();
    return __libc_memalign(a, n);
}

void free(void *p) { __libc_free(p); }

typedef struct {
    const int64_t *sizes;
    int nsizes;
    bool tanh, ce, adam, momentum;
    int64_t batch;
} mlp;

/* Allocations made by `steps` training steps after `warm` warm-up steps. */
static long steady_allocations(const mlp *spec, int warm, int steps)
{
    et_generator *g = et_generator_new(0);
    et_module *net = et_sequential_new();
    for (int i = 0; i + 1 < spec->nsizes; i++) {
        ck_assert_int_eq(et_sequential_append(net, et_linear_new(spec->sizes[i], spec->sizes[i + 1],
                                                                 true, g)), ET_OK);
        if (i + 2 < spec->nsizes)
            ck_assert_int_eq(et_sequential_append(net, spec->tanh ? et_tanh_new() : et_relu_new()),
                             ET_OK);
    }
    int n = et_module_num_params(net);
    et_tensor *params[16];
    for (int i = 0; i < n; i++)
        params[i] = et_module_param(net, i);
    et_optim *opt;
    if (spec->adam) {
        opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    } else {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.01;
        o.momentum = spec->momentum ? 0.9 : 0.0;
        opt = et_sgd_new(params, n, o);
    }
    ck_assert_ptr_nonnull(opt);
    int64_t in = spec->sizes[0], out = spec->sizes[spec->nsizes - 1];
    et_tensor *x = et_randn(g, ET_SHAPE(spec->batch, in));
    et_tensor *y;
    if (spec->ce) {
        y = et_zeros(ET_SHAPE(spec->batch));
        float *d = et_data(y);
        for (int64_t i = 0; i < spec->batch; i++)
            d[i] = (float)(et_generator_next(g) % (uint64_t)out);
    } else {
        y = et_randn(g, ET_SHAPE(spec->batch, out));
    }
    long before = 0;
    bool ok = true;   /* no ck_assert while counting: Check allocates to record one */
    for (int s = 0; s < warm + steps && ok; s++) {
        if (s == warm) {
            before = atomic_load(&calls);
            atomic_store(&counting, true);
        }
        et_pool_begin();
        et_optim_zero_grad(opt);
        et_tensor *o = et_module_forward(net, x);
        et_tensor *loss = !o ? NULL : spec->ce ? et_cross_entropy(o, y, ET_REDUCTION_MEAN, 0.0f)
                                             : et_mse_loss(o, y, ET_REDUCTION_MEAN);
        ok = loss && et_backward(loss, NULL) == ET_OK && et_optim_step(opt) == ET_OK &&
             isfinite(et_item(loss));
        et_pool_end();
    }
    atomic_store(&counting, false);
    ck_assert_msg(ok, "a training step failed: %s", et_errmsg());
    long made = atomic_load(&calls) - before;
    et_optim_free(opt);
    et_module_free(net);
    et_tensor_free(x);
    et_tensor_free(y);
    et_generator_free(g);
    return made;
}

START_TEST(test_steady_step_allocates_nothing)
{
    openblas_set_num_threads(1);
    static const int64_t s151[] = {1, 5, 1}, s13[] = {13, 64, 64, 1}, s784[] = {784, 1024, 1024, 10};
    const mlp models[] = {
        {s151, 3, true, false, false, false, 256},   /* 1-5-1 Tanh, MSE, SGD */
        {s13, 4, false, false, true, false, 32},     /* 13-64-64-1 ReLU, MSE, Adam */
        {s784, 4, false, true, false, true, 64},     /* 784-1024-1024-10 ReLU, CE, SGD momentum */
    };
    const char *names[] = {"1-5-1", "13-64-64-1", "784-1024-1024-10"};
    for (int i = 0; i < 3; i++) {
        long made = steady_allocations(&models[i], 3, 20);
        ck_assert_msg(made == 0, "%s: %ld allocations in 20 steady-state steps", names[i], made);
    }
}
END_TEST

/* The counter counts: a fresh tensor outside any cache does allocate. */
START_TEST(test_counter_counts)
{
    atomic_store(&counting, true);
    long before = atomic_load(&calls);
    et_tensor *t = et_zeros(ET_SHAPE(3, 1000003));
    long made = atomic_load(&calls) - before;
    atomic_store(&counting, false);
    ck_assert_ptr_nonnull(t);
    et_tensor_free(t);
    ck_assert_int_ge(made, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_counter_counts);
    tcase_add_test(tc, test_steady_step_allocates_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
