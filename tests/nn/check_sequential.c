/*
 * check_sequential.c - unit tests of nn.h's containers and training
 * utilities: Sequential (names, ownership, forward, fused Linear +
 * activation, ranges), gradients of shared leaves, zero_grad, gradient
 * clipping, pooled training loops and concurrent no-grad forwards.
 * Expected values come from the definitions (computed here in double); the
 * PyTorch comparison lives in tests/torch/test_nn.py.
 */
#include <pthread.h>
#include <string.h>

#include "nn_check.h"

static et_module *mlp(et_generator *g)
{
    et_module *s = et_sequential_new();
    et_sequential_append(s, et_linear_new(3, 5, true, g));
    et_sequential_append(s, et_tanh_new());
    et_sequential_append(s, et_linear_new(5, 2, true, g));
    return s;
}

START_TEST(sequential_names_params_like_state_dict)
{
    et_generator *g = et_generator_new(2);
    et_module *s = mlp(g);
    ck_assert_str_eq(et_module_type(s), "Sequential");
    ck_assert_int_eq(et_sequential_len(s), 3);
    ck_assert_int_eq(et_module_num_params(s), 4);
    const char *want[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(et_module_param_name(s, i), want[i]);
        ck_assert_ptr_eq(et_module_param_by_name(s, want[i]), et_module_param(s, i));
    }
    ck_assert_ptr_eq(et_module_param(s, 2), et_module_param(et_sequential_get(s, 2), 0));
    ck_assert_int_eq(et_module_param_count(s), 3 * 5 + 5 + 5 * 2 + 2);
    ck_assert_ptr_null(et_module_param(s, 4));
    ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
    ck_assert_ptr_null(et_sequential_get(s, 3));
    ck_assert_ptr_null(et_module_param_by_name(s, "1.weight"));
    /* nested Sequential prefixes twice */
    et_module *outer = et_sequential_new();
    et_sequential_append(outer, et_identity_new());
    et_sequential_append(outer, s);
    ck_assert_str_eq(et_module_param_name(outer, 0), "1.0.weight");
    et_module_free(outer);
    et_generator_free(g);
}
END_TEST

START_TEST(sequential_append_errors_take_ownership)
{
    et_module *lin = et_linear_new(2, 2, true, NULL);
    /* not a Sequential: the child is freed (no leak under ASan) */
    ck_assert_int_eq(et_sequential_append(lin, et_relu_new()), ET_ERR_ARG);
    et_module *s = et_sequential_new();
    ck_assert_int_eq(et_sequential_append(s, NULL), ET_ERR_ARG);
    ck_assert_int_eq(et_sequential_append(s, s), ET_ERR_ARG);
    et_module_free(s);
    et_module_free(lin);
    et_module_free(NULL);
}
END_TEST

/* A module has one parent.  Appending a child twice, or A into B and then B
 * into A, used to succeed: et_module_free then freed the child twice or
 * recursed around the cycle forever.  Growing a Sequential that is already
 * nested used to leave its parent's parameter list stale (state_dict and
 * optimizers silently missed the new parameters). */
START_TEST(sequential_append_keeps_one_parent_and_fresh_names)
{
    et_module *outer = et_sequential_new(), *inner = et_sequential_new();
    et_module *lin = et_linear_new(2, 3, true, NULL);
    ck_assert_int_eq(et_sequential_append(inner, lin), ET_OK);
    ck_assert_int_eq(et_sequential_append(outer, inner), ET_OK);
    /* lin already belongs to inner: refused, not freed */
    ck_assert_int_eq(et_sequential_append(outer, lin), ET_ERR_STATE);
    ck_assert_int_eq(et_module_num_params(lin), 2);
    /* cycle: outer into inner */
    ck_assert_int_eq(et_sequential_append(inner, outer), ET_ERR_STATE);
    /* growing the nested inner: refused (the new child is freed) */
    ck_assert_int_eq(et_sequential_append(inner, et_linear_new(3, 1, true, NULL)), ET_ERR_STATE);
    ck_assert_int_eq(et_module_num_params(outer), 2);
    ck_assert_str_eq(et_module_param_name(outer, 0), "0.0.weight");
    ck_assert_int_eq(et_sequential_len(inner), 1);
    et_module_free(outer);   /* frees inner and lin exactly once (ASan) */
}
END_TEST

START_TEST(sequential_forward_chains_children_and_train_eval_recurses)
{
    et_generator *g = et_generator_new(4);
    et_module *s = mlp(g);
    float x[6], h[10], y[4];
    nn_fill_uniform(g, x, 6, -1, 1);
    et_module *l0 = et_sequential_get(s, 0), *l2 = et_sequential_get(s, 2);
    ref_linear(x, et_data(et_module_param(l0, 0)), et_data(et_module_param(l0, 1)), h, 2, 3, 5);
    for (int i = 0; i < 10; i++)
        h[i] = tanhf(h[i]);
    ref_linear(h, et_data(et_module_param(l2, 0)), et_data(et_module_param(l2, 1)), y, 2, 5, 2);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(2, 3));
    et_pool_begin(); /* forward also works inside a pool */
    et_tensor *out = et_module_forward(s, xt);
    for (int i = 0; i < 4; i++)
        ck_close(et_data(out)[i], y[i]);
    et_pool_end();
    ck_assert(et_module_is_training(l2));
    et_module_train(s, false);
    ck_assert(!et_module_is_training(s) && !et_module_is_training(l2));
    et_module_train(s, true);
    ck_assert(et_module_is_training(l0));
    et_tensor_free(xt);
    et_module_free(s);
    et_generator_free(g);
}
END_TEST

/* Sequential runs Linear + ReLU/Tanh/Sigmoid as one fused op (core's
 * etc_linear_act).  It must give the same bits as the modules run one by
 * one, forward and every gradient: on the first backward (gradients made
 * new) and on the second (added straight into the existing .grad, so
 * exactly twice the first), and the output's grad_fn is the activation's,
 * as torch's. */
static bool same_bits(et_tensor *a, et_tensor *b)
{
    return a && b && et_numel(a) == et_numel(b) &&
           memcmp(et_data(a), et_data(b), (size_t)et_numel(a) * sizeof(float)) == 0;
}

/* y and, after each of two backwards of sum(y * y), x's and the params'
 * gradients (clones) -> out[0] = y, out[1 + 5 * rep + i] */
static void fused_run(et_module *s, et_module **kids, bool fused, et_tensor *x, et_tensor **out)
{
    for (int i = 0; i < 4; i++)
        et_set_grad(et_module_param(s, i), NULL);
    et_set_grad(x, NULL);
    for (int rep = 0; rep < 2; rep++) {
        et_pool_begin();
        et_tensor *y = fused ? et_module_forward(s, x)
                             : et_module_forward(kids[2], et_module_forward(kids[1],
                                                 et_module_forward(kids[0], x)));
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(et_backward(et_sum_all(et_mul(y, y)), NULL), ET_OK);
        if (rep == 0)
            out[0] = et_tensor_ref(et_clone(y));   /* past the pool */
        et_pool_end();
        out[1 + 5 * rep] = et_clone(et_grad(x));
        for (int i = 0; i < 4; i++)
            out[2 + 5 * rep + i] = et_clone(et_grad(et_module_param(s, i)));
    }
}

START_TEST(sequential_fused_linear_activation_same_bits_as_unfused)
{
    const char *names[] = {"ReluBackward0", "TanhBackward0", "SigmoidBackward0"};
    /* 64 hidden and more: ReLU's backward and the bias gradient as one pass
     * (linear.c's relu_back_col_sums, blocks of 16 rows: 64 and 300 = 4 x 64
     * + 44 in 64-column strips and a tail, 600 whole rows) */
    static const int64_t hids[] = {24, 64, 300, 600};
    for (int a = 0; a < 3; a++)
        for (size_t hi = 0; hi < sizeof hids / sizeof hids[0]; hi++)
        for (int64_t rows = 1; rows <= 37; rows += 12) {
            int64_t hid = hids[hi];
            et_generator *g = et_generator_new(40 + (uint64_t)a);
            et_module *kids[3] = {et_linear_new(13, hid, true, g),
                                  a == 0 ? et_relu_new() : a == 1 ? et_tanh_new()
                                                                  : et_sigmoid_new(),
                                  et_linear_new(hid, 3, true, g)};
            et_module *s = et_sequential_new();
            for (int i = 0; i < 3; i++)
                ck_assert_int_eq(et_sequential_append(s, kids[i]), ET_OK);
            et_tensor *x = et_randn(g, ET_SHAPE(rows, 13));
            et_set_requires_grad(x, true);
            et_tensor *f[11], *u[11];
            fused_run(s, kids, true, x, f);
            fused_run(s, kids, false, x, u);
            for (int i = 0; i < 11; i++)
                ck_assert_msg(same_bits(f[i], u[i]), "%s %lld hidden, rows %lld: result %d differs",
                              names[a], (long long)hid, (long long)rows, i);
            for (int i = 1; i < 6; i++)   /* second backward added into .grad */
                for (int64_t k = 0; k < et_numel(f[i]); k++)
                    ck_assert_float_eq(et_data(f[i + 5])[k], 2 * et_data(f[i])[k]);
            /* the fused output's grad_fn is the activation's */
            et_module *s2 = et_sequential_new();
            et_sequential_append(s2, et_linear_new(13, 4, true, g));
            et_sequential_append(s2, a == 0 ? et_relu_new() : a == 1 ? et_tanh_new()
                                                                     : et_sigmoid_new());
            et_pool_begin();
            ck_assert_str_eq(et_grad_fn_name(et_module_forward(s2, x)), names[a]);
            et_pool_end();
            for (int i = 0; i < 11; i++) {
                et_tensor_free(f[i]);
                et_tensor_free(u[i]);
            }
            et_module_free(s2);
            et_tensor_free(x);
            et_module_free(s);
            et_generator_free(g);
        }
}
END_TEST

/* et_sequential_forward_range: children [from, to) as the whole forward runs
 * them (a Linear + ReLU pair fused), bit for bit; bad ranges refused. */
START_TEST(sequential_forward_range_runs_a_slice)
{
    et_generator *g = et_generator_new(7);
    et_module *s = et_sequential_new();
    et_sequential_append(s, et_linear_new(5, 6, true, g));
    et_sequential_append(s, et_relu_new());
    et_sequential_append(s, et_linear_new(6, 2, true, g));
    et_pool_begin();
    et_tensor *x = et_randn(g, ET_SHAPE(9, 5));
    et_tensor *h = et_sequential_forward_range(s, 0, 2, x);
    ck_assert_str_eq(et_grad_fn_name(h), "ReluBackward0");
    et_tensor *y = et_sequential_forward_range(s, 2, 3, h);
    ck_assert(same_bits(y, et_module_forward(s, x)));
    ck_assert(same_bits(h, et_sequential_forward_range(
                               s, 1, 2, et_sequential_forward_range(s, 0, 1, x))));
    ck_assert_ptr_eq(et_sequential_forward_range(s, 1, 1, x), x); /* empty: x itself */
    ck_assert_ptr_null(et_sequential_forward_range(s, 2, 4, h));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_sequential_forward_range(et_sequential_get(s, 0), 0, 0, x));
    et_pool_end();
    et_module_free(s);
    et_generator_free(g);
}
END_TEST

/* A leaf used twice in one graph gets both contributions (no direct write
 * into .grad by the first consumer): y = linear(x) + x. */
START_TEST(linear_leaf_used_twice_gets_both_gradients)
{
    et_generator *g = et_generator_new(7);
    et_module *l = et_linear_new(4, 4, true, g);
    et_tensor *x = et_randn(g, ET_SHAPE(3, 4));
    et_set_requires_grad(x, true);
    const float *w = et_data(et_module_param(l, 0));
    for (int rep = 1; rep <= 2; rep++) {
        et_pool_begin();
        et_backward(et_sum_all(et_add(et_module_forward(l, x), x)), NULL);
        et_pool_end();
        /* d/dx sum(x Wᵀ + b + x) = column sums of W + 1, per row */
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 4; k++) {
                double e = 1;
                for (int o = 0; o < 4; o++)
                    e += w[o * 4 + k];
                ck_close(et_data(et_grad(x))[i * 4 + k], rep * e);
            }
        for (int64_t k = 0; k < 4; k++)
            ck_close(et_data(et_grad(et_module_param(l, 1)))[k], rep * 3.0);
    }
    et_tensor_free(x);
    et_module_free(l);
    et_generator_free(g);
}
END_TEST

START_TEST(zero_grad_zeroes_every_gradient)
{
    et_generator *g = et_generator_new(8);
    et_module *s = mlp(g);
    et_tensor *x = et_ones(ET_SHAPE(4, 3));
    et_pool_begin();
    et_backward(et_sum_all(et_module_forward(s, x)), NULL);
    et_pool_end();
    double before = 0;
    for (int i = 0; i < 4; i++) {
        et_tensor *gr = et_grad(et_module_param(s, i));
        ck_assert_ptr_nonnull(gr);
        for (int64_t k = 0; k < et_numel(gr); k++)
            before += fabs(et_data(gr)[k]);
    }
    ck_assert(before > 0);
    et_module_zero_grad(s);
    for (int i = 0; i < 4; i++) {
        et_tensor *gr = et_grad(et_module_param(s, i));
        ck_assert_ptr_nonnull(gr);
        for (int64_t k = 0; k < et_numel(gr); k++)
            ck_assert_float_eq(et_data(gr)[k], 0.0f);
    }
    et_tensor_free(x);
    et_module_free(s);
    et_generator_free(g);
}
END_TEST

/* Two leaves with gradients [3, 4] and [12] -> total 2-norm 13, inf-norm 12. */
static void make_grads(et_tensor **p)
{
    p[0] = et_zeros(ET_SHAPE(2));
    p[1] = et_zeros(ET_SHAPE(1));
    et_set_requires_grad(p[0], true);
    et_set_requires_grad(p[1], true);
    et_tensor *g0 = et_tensor_new((float[]){3, 4}, ET_SHAPE(2));
    et_tensor *g1 = et_tensor_new((float[]){-12}, ET_SHAPE(1));
    et_set_grad(p[0], g0);
    et_set_grad(p[1], g1);
    et_tensor_free(g0);
    et_tensor_free(g1);
}

START_TEST(clip_grad_norm_scales_to_max_norm)
{
    et_tensor *p[3];
    make_grads(p);
    p[2] = et_zeros(ET_SHAPE(3)); /* no grad: skipped */
    double total = et_clip_grad_norm(p, 3, 6.5, 2.0);
    ck_close(total, 13.0);
    double coef = 6.5 / (13.0 + 1e-6);
    ck_close(et_data(et_grad(p[0]))[0], 3 * coef);
    ck_close(et_data(et_grad(p[0]))[1], 4 * coef);
    ck_close(et_data(et_grad(p[1]))[0], -12 * coef);
    /* below max_norm: unchanged, returns the norm */
    total = et_clip_grad_norm(p, 2, 100.0, 2.0);
    ck_close(total, 6.5);
    ck_close(et_data(et_grad(p[1]))[0], -12 * coef);
    for (int i = 0; i < 3; i++)
        et_tensor_free(p[i]);
}
END_TEST

START_TEST(clip_grad_norm_infinity_and_bad_args)
{
    et_tensor *p[2];
    make_grads(p);
    double total = et_clip_grad_norm(p, 2, 6.0, INFINITY);
    ck_close(total, 12.0);
    ck_close(et_data(et_grad(p[1]))[0], -12 * 6.0 / (12 + 1e-6));
    ck_assert(isnan(et_clip_grad_norm(p, 2, 1.0, -1.0)));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert(isnan(et_clip_grad_norm(NULL, 2, 1.0, 2.0)));
    ck_assert_double_eq(et_clip_grad_norm(p, 0, 1.0, 2.0), 0.0);
    et_tensor_free(p[0]);
    et_tensor_free(p[1]);
}
END_TEST

START_TEST(clip_grad_value_clamps_each_element)
{
    et_tensor *p[2];
    make_grads(p);
    ck_assert_int_eq(et_clip_grad_value(p, 2, 3.5), ET_OK);
    ck_assert_float_eq(et_data(et_grad(p[0]))[0], 3.0f);
    ck_assert_float_eq(et_data(et_grad(p[0]))[1], 3.5f);
    ck_assert_float_eq(et_data(et_grad(p[1]))[0], -3.5f);
    ck_assert_int_eq(et_clip_grad_value(p, 2, -1.0), ET_ERR_ARG);
    et_tensor_free(p[0]);
    et_tensor_free(p[1]);
}
END_TEST

START_TEST(training_loop_in_pools_keeps_memory_bounded)
{
    /* 10,000 pooled steps: under ASan/LSan this also proves nothing leaks. */
    et_generator *g = et_generator_new(12);
    et_module *s = mlp(g);
    et_tensor *x = et_rand(g, ET_SHAPE(8, 3));
    for (int step = 0; step < 10000; step++) {
        et_pool_begin();
        et_module_zero_grad(s);
        et_tensor *y = et_module_forward(s, x);
        et_tensor *l = et_mean_all(et_mul(y, y));
        ck_assert_int_eq(et_backward(l, NULL), ET_OK);
        et_pool_end();
    }
    et_tensor_free(x);
    et_module_free(s);
    et_generator_free(g);
}
END_TEST

/* The daemon's pattern: several threads run no-grad eval forwards (and a
 * loss) of ONE model at once, each in its own pool.  Every thread must get
 * exactly the serial result, and the shared parameters must be untouched
 * (run under -Db_sanitize=thread to check the refcounts for races too). */
typedef struct {
    et_module *net;
    et_tensor *x, *y;
    const float *want;
    float want_loss;
    int bad;
} fwd_job;

static void *concurrent_forward(void *arg)
{
    fwd_job *j = arg;
    for (int it = 0; it < 100; it++) {
        ET_NO_GRAD
        {
            et_pool_begin();
            et_tensor *out = et_module_forward(j->net, j->x);
            et_tensor *l = et_mse_loss(out, j->y, ET_REDUCTION_MEAN);
            if (!out || !l || memcmp(et_data(out), j->want, 16 * 4 * sizeof(float)) != 0 ||
                et_item(l) != j->want_loss)
                j->bad++;
            et_pool_end();
        }
    }
    return NULL;
}

START_TEST(concurrent_no_grad_forwards_share_parameters)
{
    et_generator *g = et_generator_new(3);
    et_module *net = et_sequential_new();
    et_sequential_append(net, et_linear_new(8, 32, true, g));
    et_sequential_append(net, et_tanh_new());
    et_sequential_append(net, et_dropout_new(0.5f, g));
    et_sequential_append(net, et_linear_new(32, 4, true, g));
    et_module_train(net, false);
    et_tensor *x = et_randn(g, ET_SHAPE(16, 8)), *y = et_randn(g, ET_SHAPE(16, 4));
    et_tensor *ref = et_module_forward(net, x);
    et_tensor *rl = et_mse_loss(ref, y, ET_REDUCTION_MEAN);
    et_tensor *w0 = et_clone(et_module_param(net, 0));
    fwd_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (fwd_job){net, x, y, et_data(ref), et_item(rl), 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, concurrent_forward, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].bad, 0);
    }
    ck_assert_int_eq(memcmp(et_data(w0), et_data(et_module_param(net, 0)), 32 * 8 * 4), 0);
    ck_assert_ptr_null(et_grad(et_module_param(net, 0)));
    et_tensor_free(w0);
    et_tensor_free(rl);
    et_tensor_free(ref);
    et_tensor_free(x);
    et_tensor_free(y);
    et_module_free(net);
    et_generator_free(g);
}
END_TEST

static Suite *sequential_suite(void)
{
    Suite *s = suite_create("nn_sequential");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"sequential_names", sequential_names_params_like_state_dict},
        {"sequential_append", sequential_append_errors_take_ownership},
        {"sequential_one_parent", sequential_append_keeps_one_parent_and_fresh_names},
        {"sequential_forward", sequential_forward_chains_children_and_train_eval_recurses},
        {"sequential_fused", sequential_fused_linear_activation_same_bits_as_unfused},
        {"sequential_range", sequential_forward_range_runs_a_slice},
        {"leaf_used_twice", linear_leaf_used_twice_gets_both_gradients},
        {"zero_grad", zero_grad_zeroes_every_gradient},
        {"clip_grad_norm", clip_grad_norm_scales_to_max_norm},
        {"clip_grad_norm_inf", clip_grad_norm_infinity_and_bad_args},
        {"clip_grad_value", clip_grad_value_clamps_each_element},
        {"pooled_loop", training_loop_in_pools_keeps_memory_bounded},
        {"concurrent_forward", concurrent_no_grad_forwards_share_parameters},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return nn_run_suite(sequential_suite());
}
