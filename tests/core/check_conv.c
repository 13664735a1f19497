/* check_conv.c - conv1d, conv2d, conv_transpose2d and the algorithm switch
 * (src/core/conv.c, conv_im2col.c, conv_onednn.c).  Expected numbers come
 * from torch 1.13 on the same inputs (the expression is quoted); the
 * differential suite (tests/torch, cases_conv.py) covers the full grid. */
#include <pthread.h>

#include "check_helpers.h"
#include "easytorch/conv.h"

/* x = torch.arange(1., 33.).reshape(2, 1, 4, 4) / 10 */
static et_tensor *make_x(void)
{
    float v[32];
    for (int i = 0; i < 32; i++)
        v[i] = (float)(i + 1) / 10.0f;
    return et_tensor_new(v, ET_SHAPE(2, 1, 4, 4));
}

/* w = [[[[1,0,-1],[2,0,-2],[1,0,-1]]], [[[0,1,0],[1,-4,1],[0,1,0]]]]  (Sobel, Laplace) */
static et_tensor *make_w(void)
{
    return TV(ET_SHAPE(2, 1, 3, 3), 1, 0, -1, 2, 0, -2, 1, 0, -1, 0, 1, 0, 1, -4, 1, 0, 1, 0);
}

static const et_conv_algo ALGOS[] = {ET_CONV_IM2COL, ET_CONV_ONEDNN, ET_CONV_AUTO};

/* Runs the body once per available algorithm. */
#define FOR_EACH_ALGO(a)                                                        \
    for (int a##_i = 0; a##_i < 3; a##_i++)                                     \
        if (et_set_conv_algo(ALGOS[a##_i]) == ET_OK)

START_TEST(test_conv2d_values)
{
    FOR_EACH_ALGO(algo) {
        et_pool_begin();
        et_tensor *x = make_x(), *w = make_w(), *b = TV(ET_SHAPE(2), 0.5f, -1);
        /* F.conv2d(x, w, b, padding=1)[0, 0] */
        et_tensor *y = et_conv2d(x, w, b, NULL, (int64_t[]){1, 1}, NULL, 1);
        ASSERT_SHAPE(y, 2, 2, 4, 4);
        ASSERT_VALUES(et_select(et_select(y, 0, 0), 0, 0), -0.5f, -0.1f, -0.1f, 1.8f, -1.9f,
                      -0.3f, -0.3f, 3.3f, -3.5f, -0.3f, -0.3f, 4.9f, -3.3f, -0.1f, -0.1f, 4.6f);
        /* F.conv2d(x, w, b, stride=2) */
        y = et_conv2d(x, w, b, (int64_t[]){2, 2}, NULL, NULL, 1);
        ASSERT_SHAPE(y, 2, 2, 1, 1);
        ASSERT_VALUES(y, -0.3f, -1.0f, -0.3f, -1.0f);
        /* no bias, padding "same" keeps the size */
        y = et_conv2d(x, w, NULL, NULL, ET_PADDING_SAME, NULL, 1);
        ASSERT_SHAPE(y, 2, 2, 4, 4);
        ASSERT_VALUES(et_select(et_select(y, 0, 0), 0, 0), -1.0f, -0.6f, -0.6f, 1.3f, -2.4f,
                      -0.8f, -0.8f, 2.8f, -4.0f, -0.8f, -0.8f, 4.4f, -3.8f, -0.6f, -0.6f, 4.1f);
        et_pool_end();
    }
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

START_TEST(test_conv2d_grads)
{
    FOR_EACH_ALGO(algo) {
        et_pool_begin();
        et_tensor *x = make_x(), *w = make_w(), *b = TV(ET_SHAPE(2), 0.5f, -1);
        et_set_requires_grad(x, true);
        et_set_requires_grad(w, true);
        et_set_requires_grad(b, true);
        et_tensor *y = et_conv2d(x, w, b, NULL, (int64_t[]){1, 1}, NULL, 1);
        ck_assert(et_requires_grad(y) && !et_is_leaf(y));
        ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_OK);
        /* F.conv2d(x, w, b, padding=1).sum().backward(); x.grad[0, 0] */
        ASSERT_VALUES(et_select(et_select(et_grad(x), 0, 0), 0, 0), 1, -1, -1, -5, 3, 0, 0, -5,
                      3, 0, 0, -5, 1, -1, -1, -5);
        ASSERT_VALUES(et_grad(w), 25.2f, 34.8f, 27.0f, 38.4f, 52.8f, 40.8f, 32.4f, 44.4f, 34.2f,
                      25.2f, 34.8f, 27.0f, 38.4f, 52.8f, 40.8f, 32.4f, 44.4f, 34.2f);
        ASSERT_VALUES(et_grad(b), 32, 32);
        et_pool_end();
    }
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

/* Central differences in double of sum(conv2d(x, w) * u) for a grouped,
 * strided, dilated, asymmetric-padded geometry, against backward. */
START_TEST(test_conv2d_finite_differences)
{
    FOR_EACH_ALGO(algo) {
        et_pool_begin();
        et_generator *gen = et_generator_new(7);
        et_tensor *x = et_randn(gen, ET_SHAPE(2, 4, 6, 5));
        et_tensor *w = et_randn(gen, ET_SHAPE(6, 2, 3, 2));
        et_tensor *u = NULL;
        const int64_t st[2] = {2, 1}, pad[2] = {1, 2}, dil[2] = {1, 2};
        et_set_requires_grad(x, true);
        et_set_requires_grad(w, true);
        et_tensor *y = et_conv2d(x, w, NULL, st, pad, dil, 2);
        ck_assert_ptr_nonnull(y);
        u = et_randn(gen, et_shape(y), et_ndim(y));
        ck_assert_int_eq(et_backward(et_sum_all(et_mul(y, u)), NULL), ET_OK);
        et_tensor *targets[2] = {x, w};
        for (int k = 0; k < 2; k++) {
            et_tensor *t = targets[k];
            float *d = et_data(t);
            const float *gr = et_data_const(et_grad(t));
            for (int64_t i = 0; i < et_numel(t); i += 7) {
                float keep = d[i];
                const float h = 1e-2f;
                double f[2];
                for (int s = 0; s < 2; s++) {
                    d[i] = keep + (s ? -h : h);
                    bool prev = et_set_grad_enabled(false);
                    f[s] = et_item(et_sum_all(et_mul(et_conv2d(x, w, NULL, st, pad, dil, 2), u)));
                    et_set_grad_enabled(prev);
                }
                d[i] = keep;
                double fd = (f[0] - f[1]) / (2.0 * h);
                ck_assert_msg(fabs(fd - gr[i]) <= 2e-2 + 1e-2 * fabs(fd),
                              "grad %d[%lld]: backward %g, finite differences %g", k,
                              (long long)i, gr[i], fd);
            }
        }
        et_generator_free(gen);
        et_pool_end();
    }
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

START_TEST(test_conv1d)
{
    FOR_EACH_ALGO(algo) {
        et_pool_begin();
        et_tensor *x = TV(ET_SHAPE(1, 1, 5), 1, 2, 3, 4, 5), *w = TV(ET_SHAPE(1, 1, 2), 1, -1);
        /* F.conv1d(x, w, padding="same"): the extra zero goes at the end */
        ASSERT_VALUES(et_conv1d(x, w, NULL, NULL, ET_PADDING_SAME, NULL, 1), -1, -1, -1, -1, 5);
        /* F.conv1d(x, w, dilation=2) */
        ASSERT_VALUES(et_conv1d(x, w, NULL, NULL, NULL, (int64_t[]){2}, 1), -2, -2, -2);
        /* unbatched [C, L] */
        et_tensor *y = et_conv1d(et_select(x, 0, 0), w, TV(ET_SHAPE(1), 10), (int64_t[]){2},
                                 NULL, NULL, 1);
        ASSERT_SHAPE(y, 1, 2);
        ASSERT_VALUES(y, 9, 9);
        et_pool_end();
    }
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

START_TEST(test_conv_transpose2d)
{
    FOR_EACH_ALGO(algo) {
        et_pool_begin();
        et_tensor *x = TV(ET_SHAPE(1, 1, 2, 2), 1, 2, 3, 4), *w = TV(ET_SHAPE(1, 1, 2, 2), 1, 1, 1, 1);
        /* F.conv_transpose2d(x, w, stride=2): each input spreads over a 2x2 block */
        et_tensor *y = et_conv_transpose2d(x, w, NULL, (int64_t[]){2, 2}, NULL, NULL, 1, NULL);
        ASSERT_SHAPE(y, 1, 1, 4, 4);
        ASSERT_VALUES(y, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4);
        /* F.conv_transpose2d(x, w) */
        ASSERT_VALUES(et_conv_transpose2d(x, w, NULL, NULL, NULL, NULL, 1, NULL), 1, 3, 2, 4, 10,
                      6, 3, 7, 4);
        /* output_padding adds a row/column that only the bias reaches */
        y = et_conv_transpose2d(x, w, TV(ET_SHAPE(1), 0.5f), (int64_t[]){2, 2}, NULL,
                                (int64_t[]){1, 1}, 1, NULL);
        ASSERT_SHAPE(y, 1, 1, 5, 5);
        ck_assert_float_eq(et_get(y, (int64_t[]){0, 0, 4, 4}), 0.5f);
        ck_assert_float_eq(et_get(y, (int64_t[]){0, 0, 4, 0}), 0.5f);
        ck_assert_float_eq(et_get(y, (int64_t[]){0, 0, 3, 3}), 4.5f);
        et_pool_end();
    }
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

/* conv_transpose2d is the adjoint of conv2d: <conv2d(a, w), b> == <a, conv_transpose2d(b, w)>. */
START_TEST(test_conv_transpose_is_adjoint)
{
    et_pool_begin();
    et_generator *gen = et_generator_new(3);
    et_tensor *a = et_randn(gen, ET_SHAPE(2, 4, 9, 9));
    et_tensor *w = et_randn(gen, ET_SHAPE(6, 2, 3, 3));
    const int64_t st[2] = {2, 3}, pad[2] = {1, 0}, dil[2] = {1, 2};
    et_tensor *ya = et_conv2d(a, w, NULL, st, pad, dil, 2);
    ck_assert_ptr_nonnull(ya);
    et_tensor *bb = et_randn(gen, et_shape(ya), et_ndim(ya));
    /* the width 9 needs output_padding 1 to come back from the strided output */
    int64_t oh = (et_size(ya, 2) - 1) * 2 - 2 + 3, ow = (et_size(ya, 3) - 1) * 3 + 2 * 2 + 1;
    ck_assert_int_eq(9 - ow, 1);
    et_tensor *tb = et_conv_transpose2d(bb, w, NULL, st, pad, (int64_t[]){9 - oh, 9 - ow}, 2, dil);
    ASSERT_SHAPE(tb, 2, 4, 9, 9);
    double lhs = et_item(et_sum_all(et_mul(ya, bb))), rhs = et_item(et_sum_all(et_mul(a, tb)));
    ck_assert_msg(fabs(lhs - rhs) <= 1e-3 * fabs(lhs) + 1e-3, "%g vs %g", lhs, rhs);
    et_generator_free(gen);
    et_pool_end();
}
END_TEST

/* The two algorithms agree on a shape each handles differently (chunked
 * im2col; oneDNN blocked layouts), forward and backward. */
START_TEST(test_algorithms_agree)
{
    if (!et_have_onednn())
        return;
    float *res[2][3];
    et_generator *gen = et_generator_new(11);
    et_pool_begin();
    et_tensor *x = et_randn(gen, ET_SHAPE(5, 16, 7, 7)), *w = et_randn(gen, ET_SHAPE(24, 8, 3, 3));
    et_tensor *b = et_randn(gen, ET_SHAPE(24));
    et_set_requires_grad(x, true);
    et_set_requires_grad(w, true);
    et_set_requires_grad(b, true);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(et_set_conv_algo(k ? ET_CONV_ONEDNN : ET_CONV_IM2COL), ET_OK);
        et_tensor *y = et_conv2d(x, w, b, NULL, ET_PADDING_SAME, NULL, 2);
        ck_assert_int_eq(et_backward(et_sum_all(et_tanh(y)), NULL), ET_OK);
        et_tensor *outs[3] = {y, et_grad(x), et_grad(w)};
        for (int j = 0; j < 3; j++) {
            res[k][j] = malloc((size_t)et_numel(outs[j]) * sizeof(float));
            et_copy_to(outs[j], res[k][j]);
        }
        et_fill_(et_grad(x), 0);
        et_fill_(et_grad(w), 0);
        et_fill_(et_grad(b), 0);
    }
    int64_t n[3] = {5 * 24 * 49, et_numel(x), et_numel(w)};
    for (int j = 0; j < 3; j++) {
        for (int64_t i = 0; i < n[j]; i++)
            ck_assert_msg(fabsf(res[0][j][i] - res[1][j][i]) <= 1e-4f + 1e-4f * fabsf(res[1][j][i]),
                          "output %d[%lld]: im2col %g, oneDNN %g", j, (long long)i,
                          res[0][j][i], res[1][j][i]);
        free(res[0][j]);
        free(res[1][j]);
    }
    et_pool_end();
    et_generator_free(gen);
    et_set_conv_algo(ET_CONV_AUTO);
}
END_TEST

START_TEST(test_unfold_fold)
{
    et_pool_begin();
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)(i + 1);
    /* x = torch.arange(1., 13.).reshape(1, 1, 3, 4); F.unfold(x, 2) */
    et_tensor *x = et_tensor_new(v, ET_SHAPE(1, 1, 3, 4));
    et_tensor *u = et_unfold(x, (int64_t[]){2, 2}, NULL, NULL, NULL);
    ASSERT_SHAPE(u, 1, 4, 6);
    ASSERT_VALUES(u, 1, 2, 3, 5, 6, 7, 2, 3, 4, 6, 7, 8, 5, 6, 7, 9, 10, 11, 6, 7, 8, 10, 11, 12);
    /* F.fold(u, (3, 4), 2): each pixel times the number of blocks covering it */
    et_tensor *f = et_fold(u, (int64_t[]){3, 4}, (int64_t[]){2, 2}, NULL, NULL, NULL);
    ASSERT_SHAPE(f, 1, 1, 3, 4);
    ASSERT_VALUES(f, 1, 4, 6, 4, 10, 24, 28, 16, 9, 20, 22, 12);
    ASSERT_ERROR(et_fold(u, (int64_t[]){4, 4}, (int64_t[]){2, 2}, NULL, NULL, NULL), ET_ERR_SHAPE,
                 "sliding blocks 3 * 3 = 9, but got input.size(2)=6");
    ASSERT_ERROR(et_unfold(x, (int64_t[]){4, 4}, NULL, NULL, NULL), ET_ERR_SHAPE,
                 "must be at least one");
    et_pool_end();
}
END_TEST

/* Concurrent convolutions (what easytorchd's parallel predictions and
 * trainings do): each thread gets its own oneDNN stream and scratch; the
 * results must equal a single thread's. */
typedef struct {
    et_tensor *x, *w;       /* shared, read only */
    float out[2];           /* a forward value and a weight-gradient value */
    bool ok;
} conv_job;

static void *conv_worker(void *arg)
{
    conv_job *j = arg;
    j->ok = true;
    for (int it = 0; it < 10 && j->ok; it++) {
        et_pool_begin();
        et_tensor *w = et_clone(j->w);
        et_set_requires_grad(w, true);
        et_tensor *y = et_conv2d(j->x, w, NULL, NULL, (int64_t[]){1, 1}, NULL, 1);
        j->ok = y && et_backward(et_sum_all(et_tanh(y)), NULL) == ET_OK;
        if (j->ok) {
            j->out[0] = et_data(y)[123];
            j->out[1] = et_data(et_grad(w))[7];
        }
        et_pool_end();
    }
    return NULL;
}

START_TEST(test_conv_threads)
{
    et_generator *gen = et_generator_new(9);
    conv_job ref = {.x = et_randn(gen, ET_SHAPE(4, 8, 12, 12)), .w = et_randn(gen, ET_SHAPE(16, 8, 3, 3))};
    conv_worker(&ref);
    ck_assert(ref.ok);
    conv_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (conv_job){.x = ref.x, .w = ref.w};
        ck_assert_int_eq(pthread_create(&th[i], NULL, conv_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(jobs[i].ok);
        ck_assert_float_eq(jobs[i].out[0], ref.out[0]);
        ck_assert_float_eq(jobs[i].out[1], ref.out[1]);
    }
    et_tensor_free(ref.x);
    et_tensor_free(ref.w);
    et_generator_free(gen);
}
END_TEST

START_TEST(test_conv_algo_switch)
{
    ck_assert_int_eq(et_get_conv_algo(), ET_CONV_AUTO);
    ck_assert_int_eq(et_set_conv_algo(ET_CONV_IM2COL), ET_OK);
    ck_assert_int_eq(et_get_conv_algo(), ET_CONV_IM2COL);
    ck_assert_int_eq(et_set_conv_algo((et_conv_algo)7), ET_ERR_ARG);
    ck_assert_int_eq(et_get_conv_algo(), ET_CONV_IM2COL);
    ck_assert_int_eq(et_set_conv_algo(ET_CONV_ONEDNN), et_have_onednn() ? ET_OK : ET_ERR_ARG);
    ck_assert_int_eq(et_set_conv_algo(ET_CONV_AUTO), ET_OK);
}
END_TEST

START_TEST(test_conv_errors)
{
    et_pool_begin();
    et_tensor *x = make_x(), *w = make_w();
    ASSERT_ERROR(et_conv2d(NULL, w, NULL, NULL, NULL, NULL, 1), ET_ERR_ARG, "conv2d");
    ASSERT_ERROR(et_conv2d(et_select(et_select(x, 0, 0), 0, 0), w, NULL, NULL, NULL, NULL, 1),
                 ET_ERR_SHAPE, "input of size [4,4]");
    ASSERT_ERROR(et_conv2d(x, TV(ET_SHAPE(2, 1, 3), 1, 2, 3, 4, 5, 6), NULL, NULL, NULL, NULL, 1),
                 ET_ERR_SHAPE, "weight of size [2,1,3]");
    ASSERT_ERROR(et_conv2d(x, w, TV(ET_SHAPE(3), 1, 2, 3), NULL, NULL, NULL, 1), ET_ERR_SHAPE,
                 "expected bias to be 1-dimensional with 2 elements, but got bias of size [3]");
    ASSERT_ERROR(et_conv2d(x, w, NULL, NULL, NULL, NULL, 2), ET_ERR_SHAPE,
                 "expected input[2,1,4,4] to have 2 channels, but got 1 channels");
    ASSERT_ERROR(et_conv2d(x, w, NULL, (int64_t[]){2, 2}, ET_PADDING_SAME, NULL, 1), ET_ERR_ARG,
                 "strided");
    ASSERT_ERROR(et_conv2d(x, w, NULL, NULL, NULL, (int64_t[]){3, 1}, 1), ET_ERR_SHAPE,
                 "Kernel size can't be greater than actual input size");
    ASSERT_ERROR(et_conv2d(x, w, NULL, (int64_t[]){0, 1}, NULL, NULL, 1), ET_ERR_ARG, "stride 0");
    ASSERT_ERROR(et_conv2d(x, w, NULL, NULL, (int64_t[]){-1, 0}, NULL, 1), ET_ERR_ARG,
                 "padding -1");
    ASSERT_ERROR(et_conv2d(x, w, NULL, NULL, NULL, NULL, 0), ET_ERR_ARG, "groups");
    ASSERT_ERROR(et_conv_transpose2d(x, w, NULL, NULL, NULL, (int64_t[]){1, 0}, 1, NULL),
                 ET_ERR_ARG, "output padding must be smaller");
    ASSERT_ERROR(et_conv_transpose2d(x, TV(ET_SHAPE(2, 1, 1, 1), 1, 1), NULL, NULL, NULL, NULL,
                                     1, NULL),
                 ET_ERR_SHAPE, "expected input[2,1,4,4] to have 2 channels");
    ASSERT_ERROR(et_conv1d(x, w, NULL, NULL, NULL, NULL, 1), ET_ERR_SHAPE, "conv1d");
    et_pool_end();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"conv2d_values", test_conv2d_values},
        {"conv2d_grads", test_conv2d_grads},
        {"conv2d_finite_differences", test_conv2d_finite_differences},
        {"conv1d", test_conv1d},
        {"conv_transpose2d", test_conv_transpose2d},
        {"conv_transpose_is_adjoint", test_conv_transpose_is_adjoint},
        {"algorithms_agree", test_algorithms_agree},
        {"unfold_fold", test_unfold_fold},
        {"conv_threads", test_conv_threads},
        {"conv_algo_switch", test_conv_algo_switch},
        {"conv_errors", test_conv_errors},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);   /* a hang guard: a loaded 2-core machine is slow */
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return run_suite(s);
}
