/*
 * check_module.c - unit tests of nn.h's leaf modules: Linear, the
 * activations, Dropout, Flatten (Sequential, zero_grad and clipping:
 * check_sequential.c).  Expected values come from the definitions (computed
 * here in double); the PyTorch comparison lives in tests/torch/test_nn.py.
 */
#include <string.h>

#include "nn_check.h"

START_TEST(linear_new_has_torch_names_shapes_and_bounds)
{
    et_generator *g = et_generator_new(1);
    et_module *m = et_linear_new(9, 4, true, g);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(et_module_type(m), "Linear");
    ck_assert_int_eq(et_module_num_params(m), 2);
    ck_assert_str_eq(et_module_param_name(m, 0), "weight");
    ck_assert_str_eq(et_module_param_name(m, 1), "bias");
    et_tensor *w = et_module_param(m, 0), *b = et_module_param(m, 1);
    ck_assert_int_eq(et_ndim(w), 2);
    ck_assert_int_eq(et_size(w, 0), 4);
    ck_assert_int_eq(et_size(w, 1), 9);
    ck_assert_int_eq(et_ndim(b), 1);
    ck_assert_int_eq(et_size(b, 0), 4);
    ck_assert(et_requires_grad(w) && et_requires_grad(b) && et_is_leaf(w));
    ck_assert_int_eq(et_module_param_count(m), 40);
    /* U(-1/sqrt(9), 1/sqrt(9)) = U(-1/3, 1/3) */
    const float *wd = et_data_const(w);
    float lo = 1, hi = -1;
    for (int i = 0; i < 36; i++) {
        lo = fminf(lo, wd[i]);
        hi = fmaxf(hi, wd[i]);
    }
    ck_assert(lo >= -1.0f / 3 && hi < 1.0f / 3 && hi - lo > 0.2f);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

START_TEST(linear_init_draws_weight_then_bias_from_generator)
{
    /* Same seed -> same parameters; weight first then bias, row-major, as
     * two et_uniform calls on a generator with that seed. */
    et_generator *g1 = et_generator_new(42), *g2 = et_generator_new(42);
    et_module *m = et_linear_new(3, 2, true, g1);
    et_tensor *w = et_uniform(g2, ET_SHAPE(2, 3), -1 / sqrt(3.0), 1 / sqrt(3.0));
    et_tensor *b = et_uniform(g2, ET_SHAPE(2), -1 / sqrt(3.0), 1 / sqrt(3.0));
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(et_data(et_module_param(m, 0))[i], et_data(w)[i]);
    for (int i = 0; i < 2; i++)
        ck_assert_float_eq(et_data(et_module_param(m, 1))[i], et_data(b)[i]);
    et_tensor_free(w);
    et_tensor_free(b);
    et_module_free(m);
    et_generator_free(g1);
    et_generator_free(g2);
}
END_TEST

START_TEST(linear_without_bias_and_bad_sizes)
{
    et_module *m = et_linear_new(3, 2, false, NULL);
    ck_assert_int_eq(et_module_num_params(m), 1);
    ck_assert_ptr_null(et_module_param_by_name(m, "bias"));
    et_module_free(m);
    ck_assert_ptr_null(et_linear_new(0, 2, true, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_linear_new(2, -1, true, NULL));
}
END_TEST

START_TEST(linear_forward_matches_definition_2d_and_3d)
{
    et_generator *g = et_generator_new(3);
    et_module *m = et_linear_new(5, 3, true, g);
    float x[2 * 4 * 5], y[2 * 4 * 3];
    nn_fill_uniform(g, x, 40, -2, 2);
    ref_linear(x, et_data(et_module_param(m, 0)), et_data(et_module_param(m, 1)), y, 8, 5, 3);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(8, 5));
    et_tensor *out = et_module_forward(m, xt);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(et_size(out, 0), 8);
    ck_assert_int_eq(et_size(out, 1), 3);
    for (int i = 0; i < 24; i++)
        ck_close(et_data(out)[i], y[i]);
    et_tensor *x3 = et_tensor_new(x, ET_SHAPE(2, 4, 5));
    et_tensor *out3 = et_module_forward(m, x3);
    ck_assert_int_eq(et_ndim(out3), 3);
    float o3[24];
    et_copy_to(out3, o3);
    for (int i = 0; i < 24; i++)
        ck_close(o3[i], y[i]);
    et_tensor_free(out3);
    et_tensor_free(x3);
    et_tensor_free(out);
    et_tensor_free(xt);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

START_TEST(linear_forward_rejects_wrong_width)
{
    et_module *m = et_linear_new(5, 3, true, NULL);
    et_tensor *x = et_zeros(ET_SHAPE(2, 4));
    ck_assert_ptr_null(et_module_forward(m, x));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "Linear"));
    et_tensor_free(x);
    et_module_free(m);
}
END_TEST

/* The chain from the issue: item(forward(Linear(2, 1), [1, 3])) still names
 * the Linear's failure, not item's NULL argument. */
START_TEST(error_chain_keeps_the_layer_message)
{
    et_module *m = et_linear_new(2, 1, true, NULL);
    et_tensor *x = et_zeros(ET_SHAPE(1, 3));
    et_pool_begin();
    float v = et_item(et_module_forward(m, x));
    et_pool_end();
    ck_assert(v != v);
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG); /* item's own failure */
    ck_assert_msg(strncmp(et_errmsg(), "Linear: input of shape [1, 3], expected last dim 2", 50) == 0,
                  "%s", et_errmsg());
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "(then: item: tensor argument is NULL)"));
    et_tensor_free(x);
    et_module_free(m);
}
END_TEST

/* d(sum(y * r))/dW by finite differences equals autograd's gradient. */
START_TEST(linear_backward_matches_finite_differences)
{
    et_generator *g = et_generator_new(5);
    et_module *m = et_linear_new(4, 3, true, g);
    float x[2 * 4], r[2 * 3];
    nn_fill_uniform(g, x, 8, -1, 1);
    nn_fill_uniform(g, r, 6, -1, 1);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(2, 4));
    et_set_requires_grad(xt, true);
    et_tensor *rt = et_tensor_new(r, ET_SHAPE(2, 3));
    et_pool_begin();
    et_tensor *loss = et_sum_all(et_mul(et_module_forward(m, xt), rt));
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    et_pool_end();
    for (int p = 0; p < 2; p++) {
        et_tensor *param = et_module_param(m, p);
        float *d = et_data(param);
        for (int64_t i = 0; i < et_numel(param); i++) {
            float keep = d[i];
            double f[2];
            for (int s = 0; s < 2; s++) {
                d[i] = keep + (s ? -1e-2f : 1e-2f);
                ET_NO_GRAD
                {
                    et_pool_begin();
                    f[s] = et_item(et_sum_all(et_mul(et_module_forward(m, xt), rt)));
                    et_pool_end();
                }
            }
            d[i] = keep;
            ck_close_tol(et_data(et_grad(param))[i], (f[0] - f[1]) / 2e-2, 1e-3, 1e-3);
        }
    }
    ck_assert_ptr_nonnull(et_grad(xt));
    et_tensor_free(rt);
    et_tensor_free(xt);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

static float ref_act(const char *type, float v)
{
    if (!strcmp(type, "ReLU"))
        return v > 0 ? v : 0;
    if (!strcmp(type, "Tanh"))
        return tanhf(v);
    if (!strcmp(type, "Sigmoid"))
        return (float)(1 / (1 + exp(-(double)v)));
    if (!strcmp(type, "LeakyReLU"))
        return v > 0 ? v : 0.2f * v;
    if (!strcmp(type, "GELU"))
        return (float)(0.5 * v * (1 + erf(v / sqrt(2.0))));
    return v; /* Identity */
}

START_TEST(activations_match_their_definitions)
{
    et_module *ms[] = {et_relu_new(), et_tanh_new(), et_sigmoid_new(), et_leaky_relu_new(0.2f),
                       et_gelu_new(false), et_identity_new()};
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = -4.0f + 0.5f * (float)i + 0.125f;
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(4, 4));
    for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
        et_tensor *y = et_module_forward(ms[k], xt);
        ck_assert_ptr_nonnull(y);
        ck_assert(et_same_shape(y, xt));
        for (int i = 0; i < 16; i++)
            ck_close(et_data(y)[i], ref_act(et_module_type(ms[k]), x[i]));
        et_tensor_free(y);
        et_module_free(ms[k]);
    }
    et_tensor_free(xt);
}
END_TEST

START_TEST(softmax_and_log_softmax_normalise_along_dim)
{
    et_generator *g = et_generator_new(9);
    float x[12];
    nn_fill_uniform(g, x, 12, -3, 3);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(3, 4));
    et_module *sm = et_softmax_new(0), *lsm = et_log_softmax_new(1);
    ck_assert_str_eq(et_module_type(sm), "Softmax");
    ck_assert_str_eq(et_module_type(lsm), "LogSoftmax");
    et_tensor *s = et_module_forward(sm, xt), *l = et_module_forward(lsm, xt);
    for (int c = 0; c < 4; c++) {
        double tot = 0;
        for (int r = 0; r < 3; r++)
            tot += et_data(s)[r * 4 + c];
        ck_close(tot, 1.0);
    }
    for (int r = 0; r < 3; r++) {
        double z = 0;
        for (int c = 0; c < 4; c++)
            z += exp(x[r * 4 + c]);
        for (int c = 0; c < 4; c++)
            ck_close(et_data(l)[r * 4 + c], x[r * 4 + c] - log(z));
    }
    et_tensor_free(s);
    et_tensor_free(l);
    et_module_free(sm);
    et_module_free(lsm);
    et_tensor_free(xt);
    et_generator_free(g);
}
END_TEST

START_TEST(dropout_masks_scale_and_eval_identity)
{
    et_generator *g = et_generator_new(7);
    et_module *d = et_dropout_new(0.25f, g);
    et_tensor *x = et_ones(ET_SHAPE(100, 100));
    et_tensor *y = et_module_forward(d, x);
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        float v = et_data(y)[i];
        ck_assert(v == 0.0f || fabsf(v - 1.0f / 0.75f) < 1e-6f);
        zeros += v == 0.0f;
    }
    /* 10000 Bernoulli(0.25): mean 2500, sd 43; 10 sd either side. */
    ck_assert_int_gt(zeros, 2070);
    ck_assert_int_lt(zeros, 2930);
    et_module_train(d, false);
    ck_assert(!et_module_is_training(d));
    et_tensor *e = et_module_forward(d, x);
    for (int i = 0; i < 10000; i++)
        ck_assert_float_eq(et_data(e)[i], 1.0f);
    et_tensor_free(e);
    et_tensor_free(y);
    et_module_free(d);
    et_tensor_free(x);
    et_generator_free(g);
}
END_TEST

START_TEST(dropout_same_seed_same_mask_and_edge_probabilities)
{
    et_generator *g1 = et_generator_new(11), *g2 = et_generator_new(11);
    et_module *d1 = et_dropout_new(0.5f, g1), *d2 = et_dropout_new(0.5f, g2);
    et_module *all = et_dropout_new(1.0f, g1), *none = et_dropout_new(0.0f, g1);
    et_tensor *x = et_full(ET_SHAPE(64), 3.0f);
    et_tensor *a = et_module_forward(d1, x), *b = et_module_forward(d2, x);
    et_tensor *z = et_module_forward(all, x), *s = et_module_forward(none, x);
    for (int i = 0; i < 64; i++) {
        ck_assert_float_eq(et_data(a)[i], et_data(b)[i]);
        ck_assert_float_eq(et_data(z)[i], 0.0f);
        ck_assert_float_eq(et_data(s)[i], 3.0f);
    }
    ck_assert_ptr_null(et_dropout_new(1.5f, g1));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_dropout_new(-0.1f, g1));
    et_tensor_free(a);
    et_tensor_free(b);
    et_tensor_free(z);
    et_tensor_free(s);
    et_tensor_free(x);
    et_module_free(d1);
    et_module_free(d2);
    et_module_free(all);
    et_module_free(none);
    et_generator_free(g1);
    et_generator_free(g2);
}
END_TEST

START_TEST(flatten_collapses_dims)
{
    et_module *f = et_flatten_new(1, -1);
    ck_assert_str_eq(et_module_type(f), "Flatten");
    et_tensor *x = et_zeros(ET_SHAPE(2, 3, 4));
    et_tensor *y = et_module_forward(f, x);
    ck_assert_int_eq(et_ndim(y), 2);
    ck_assert_int_eq(et_size(y, 1), 12);
    et_tensor_free(y);
    et_module_free(f);
    f = et_flatten_new(0, 1);
    y = et_module_forward(f, x);
    ck_assert_int_eq(et_ndim(y), 2);
    ck_assert_int_eq(et_size(y, 0), 6);
    ck_assert_int_eq(et_size(y, 1), 4);
    et_tensor_free(y);
    et_module_free(f);
    et_tensor_free(x);
}
END_TEST

static Suite *module_suite(void)
{
    Suite *s = suite_create("nn_module");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"linear_new", linear_new_has_torch_names_shapes_and_bounds},
        {"linear_init", linear_init_draws_weight_then_bias_from_generator},
        {"linear_args", linear_without_bias_and_bad_sizes},
        {"linear_forward", linear_forward_matches_definition_2d_and_3d},
        {"linear_shape", linear_forward_rejects_wrong_width},
        {"error_chain", error_chain_keeps_the_layer_message},
        {"linear_backward", linear_backward_matches_finite_differences},
        {"activations", activations_match_their_definitions},
        {"softmax", softmax_and_log_softmax_normalise_along_dim},
        {"dropout", dropout_masks_scale_and_eval_identity},
        {"dropout_edges", dropout_same_seed_same_mask_and_edge_probabilities},
        {"flatten", flatten_collapses_dims},
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
    return nn_run_suite(module_suite());
}
