/*
 * check_conv_layers.c - the image layers of nn_conv.h (src/nn/conv.c,
 * pool.c, pad.c, spatial.c): construction, defaults, initialisation,
 * state_dict names, train/eval, and the error messages.  Values against
 * torch are in tests/torch/nn_conv.py.
 */
#include <string.h>

#include "nn_check.h"

/* Weights and bias of a fresh layer: inside U(-b, b), b = 1/sqrt(fan_in),
 * and spread like it (mean ~0, variance ~b^2/3). */
static void check_uniform(et_tensor *t, double bound)
{
    int64_t n = et_numel(t);
    const float *d = et_data_const(t);
    double s = 0, s2 = 0, top = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(fabs(d[i]) <= bound, "value %g outside +-%g", d[i], bound);
        s += d[i];
        s2 += (double)d[i] * d[i];
        top = fmax(top, fabs(d[i]));
    }
    if (n >= 1000) {
        double mean = s / (double)n, var = s2 / (double)n - mean * mean;
        ck_assert_msg(fabs(mean) < 0.05 * bound, "mean %g", mean);
        ck_assert_msg(fabs(var / (bound * bound / 3.0) - 1.0) < 0.1, "variance %g", var);
        ck_assert(top > 0.99 * bound);
    }
}

START_TEST(test_conv2d_init_and_names)
{
    et_generator *g = et_generator_new(1);
    et_conv_opts o = ET_CONV_DEFAULTS;
    o.groups = 2;
    et_module *m = et_conv2d_new(16, 32, (int64_t[]){3, 5}, &o, g);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(et_module_type(m), "Conv2d");
    ck_assert_int_eq(et_module_num_params(m), 2);
    ck_assert_str_eq(et_module_param_name(m, 0), "weight");
    ck_assert_str_eq(et_module_param_name(m, 1), "bias");
    et_tensor *w = et_module_param(m, 0);
    ck_assert_int_eq(et_ndim(w), 4);
    ck_assert_int_eq(et_size(w, 0), 32);
    ck_assert_int_eq(et_size(w, 1), 8);    /* in / groups */
    ck_assert(et_requires_grad(w));
    double bound = 1.0 / sqrt(8.0 * 3 * 5);
    check_uniform(w, bound);
    check_uniform(et_module_param(m, 1), bound);
    et_module_free(m);
    /* bias=False: weight only; transposed: [in, out/groups, kH, kW], fan_in from out/groups */
    o = ET_CONV_DEFAULTS;
    o.bias = false;
    m = et_conv_transpose2d_new(6, 40, (int64_t[]){4, 4}, &o, g);
    ck_assert_int_eq(et_module_num_params(m), 1);
    ck_assert_int_eq(et_size(et_module_param(m, 0), 0), 6);
    ck_assert_int_eq(et_size(et_module_param(m, 0), 1), 40);
    check_uniform(et_module_param(m, 0), 1.0 / sqrt(40.0 * 16));
    et_module_free(m);
    m = et_conv1d_new(3, 5, 7, NULL, g);
    ck_assert_int_eq(et_ndim(et_module_param(m, 0)), 3);
    ck_assert_int_eq(et_size(et_module_param(m, 0), 2), 7);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

/* The same generator seed gives the same weights (weight first, then bias). */
START_TEST(test_conv_init_deterministic)
{
    et_generator *g1 = et_generator_new(42), *g2 = et_generator_new(42);
    et_module *a = et_conv2d_new(3, 4, (int64_t[]){3, 3}, NULL, g1);
    et_module *b = et_conv2d_new(3, 4, (int64_t[]){3, 3}, NULL, g2);
    for (int i = 0; i < 2; i++) {
        const float *x = et_data_const(et_module_param(a, i)), *y = et_data_const(et_module_param(b, i));
        ck_assert(memcmp(x, y, (size_t)et_numel(et_module_param(a, i)) * sizeof(float)) == 0);
    }
    et_module_free(a);
    et_module_free(b);
    et_generator_free(g1);
    et_generator_free(g2);
}
END_TEST

START_TEST(test_sequential_cnn_names)
{
    et_module *net = et_sequential_new();
    ck_assert_int_eq(et_sequential_append(net, et_conv2d_new(1, 4, (int64_t[]){3, 3}, NULL, NULL)), ET_OK);
    ck_assert_int_eq(et_sequential_append(net, et_max_pool2d_new((int64_t[]){2, 2}, NULL)), ET_OK);
    ck_assert_int_eq(et_sequential_append(net, et_conv2d_new(4, 2, (int64_t[]){1, 1}, NULL, NULL)), ET_OK);
    ck_assert_int_eq(et_module_num_params(net), 4);
    ck_assert_str_eq(et_module_param_name(net, 0), "0.weight");
    ck_assert_str_eq(et_module_param_name(net, 3), "2.bias");
    et_pool_begin();
    et_tensor *y = et_module_forward(net, et_zeros(ET_SHAPE(2, 1, 9, 9)));
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(et_size(y, 2), 3);   /* 9 -> 7 -> 3 -> 3 */
    et_pool_end();
    et_module_free(net);
}
END_TEST

START_TEST(test_dropout2d)
{
    et_generator *g = et_generator_new(3);
    et_module *m = et_dropout2d_new(0.5f, g);
    ck_assert_str_eq(et_module_type(m), "Dropout2d");
    et_pool_begin();
    et_tensor *x = et_ones(ET_SHAPE(40, 50, 3, 2));
    et_tensor *y = et_module_forward(m, x);
    const float *d = et_data_const(y);
    int kept = 0;
    for (int64_t c = 0; c < 40 * 50; c++) {   /* each channel all 0 or all 2 */
        float v = d[c * 6];
        ck_assert(v == 0.0f || v == 2.0f);
        for (int k = 1; k < 6; k++)
            ck_assert_float_eq(d[c * 6 + k], v);
        kept += v != 0.0f;
    }
    ck_assert_msg(kept > 900 && kept < 1100, "kept %d of 2000 channels", kept);
    /* the channels kept are etc_dropout_mask's draws (core_internal.h): 16
     * xoshiro128++ lanes seeded by splitmix64 from two draws of the module's
     * generator, channel c from lane c % 16's (c / 16)-th output, kept when
     * below ceil((1 - p) * 2^32) */
    et_generator *g2 = et_generator_new(3);
    uint64_t d0 = et_generator_next(g2), d1 = et_generator_next(g2);
    uint64_t seed = d0 ^ ((d1 << 32) | (d1 >> 32)) * UINT64_C(0x9e3779b97f4a7c15);
    uint32_t ls[16][4];
    for (int l = 0; l < 16; l++)
        for (int w = 0; w < 4; w += 2) {
            uint64_t z = (seed += UINT64_C(0x9e3779b97f4a7c15));
            z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
            z ^= z >> 31;
            ls[l][w] = (uint32_t)(z >> 32);
            ls[l][w + 1] = (uint32_t)z | (w == 0);
        }
    for (int64_t c = 0; c < 40 * 50; c++) {
        uint32_t *s = ls[c % 16];
        uint32_t sum = s[0] + s[3], u = ((sum << 7) | (sum >> 25)) + s[0], t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = (s[3] << 11) | (s[3] >> 21);
        ck_assert_msg((d[c * 6] != 0.0f) == (u < UINT32_C(0x80000000)),
                      "channel %lld: not the generator's draw", (long long)c);
    }
    et_generator_free(g2);
    /* a 3-d input masks dim-0 slices (torch 1.13) */
    y = et_module_forward(m, et_ones(ET_SHAPE(30, 4, 5)));
    d = et_data_const(y);
    for (int64_t c = 0; c < 30; c++)
        for (int k = 1; k < 20; k++)
            ck_assert_float_eq(d[c * 20 + k], d[c * 20]);
    /* eval: identity */
    et_module_train(m, false);
    ck_assert_ptr_eq(et_data_const(et_module_forward(m, x)), et_data_const(x));
    et_pool_end();
    et_module_free(m);
    ck_assert_ptr_null(et_dropout2d_new(1.5f, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    et_generator_free(g);
}
END_TEST

START_TEST(test_unflatten_and_pads)
{
    et_pool_begin();
    et_module *u = et_unflatten_new(1, (const int64_t[]){2, -1}, 2);
    et_tensor *y = et_module_forward(u, et_zeros(ET_SHAPE(3, 12, 5)));
    ck_assert_int_eq(et_ndim(y), 4);
    ck_assert_int_eq(et_size(y, 2), 6);
    ck_assert_ptr_null(et_module_forward(u, et_zeros(ET_SHAPE(3, 7))));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "Unflatten"));
    et_module_free(u);
    et_module *p = et_zero_pad2d_new((const int64_t[]){1, 2, 3, 4});
    y = et_module_forward(p, et_ones(ET_SHAPE(1, 1, 2, 2)));
    ck_assert_int_eq(et_size(y, 2), 9);
    ck_assert_int_eq(et_size(y, 3), 5);
    ck_assert_str_eq(et_module_type(p), "ZeroPad2d");
    et_module_free(p);
    et_pool_end();
}
END_TEST

START_TEST(test_layer_errors)
{
    et_pool_begin();
    et_module *pool = et_max_pool2d_new((int64_t[]){2, 2}, NULL);
    ck_assert_ptr_null(et_module_forward(pool, et_zeros(ET_SHAPE(32, 8, 1, 1))));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_str_eq(et_errmsg(), "MaxPool2d: input [32, 8, 1, 1] is smaller than kernel 2");
    et_module_free(pool);
    et_module *c = et_conv2d_new(3, 8, (int64_t[]){3, 3}, NULL, NULL);
    ck_assert_ptr_null(et_module_forward(c, et_zeros(ET_SHAPE(2, 4, 5, 5))));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "Conv2d(3, 8, kernel_size=(3, 3)"));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "[2, 4, 5, 5]"));
    et_module_free(c);
    et_pool_end();
    et_conv_opts o = ET_CONV_DEFAULTS;
    o.groups = 2;
    ck_assert_ptr_null(et_conv2d_new(3, 4, (int64_t[]){3, 3}, &o, NULL));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "divisible by groups"));
    ck_assert_ptr_null(et_conv2d_new(3, 4, NULL, NULL, NULL));
    ck_assert_ptr_null(et_avg_pool2d_new((int64_t[]){2, 0}, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_unflatten_new(0, (const int64_t[]){-1, -1}, 2));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_layers");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"conv2d_init_and_names", test_conv2d_init_and_names},
        {"conv_init_deterministic", test_conv_init_deterministic},
        {"sequential_cnn_names", test_sequential_cnn_names},
        {"dropout2d", test_dropout2d},
        {"unflatten_and_pads", test_unflatten_and_pads},
        {"layer_errors", test_layer_errors},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);   /* a hang guard: a loaded 2-core machine is slow */
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return nn_run_suite(s);
}
