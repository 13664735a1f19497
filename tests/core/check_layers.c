/* check_layers.c - the layer ops of functional.h beyond what PyTorch can
 * check (tests/torch/test_layers.py compares the rest): embedding_bag with
 * include_last_offset and a short last offset (PyTorch 1.13 miscomputes
 * it), grad_fn names, the in-place running-statistics update, and that
 * bad arguments change nothing. */
#include "check_helpers.h"
#include "easytorch/functional.h"

START_TEST(embedding_bag_last_offset_short_of_the_input)
{
    et_pool_begin();
    /* rows r of w are [r, 10 r]; bags [0, 3) and [3, 5); indices 5.. belong to no bag */
    float wv[20];
    for (int r = 0; r < 10; r++) {
        wv[2 * r] = (float)r;
        wv[2 * r + 1] = 10.0f * (float)r;
    }
    et_tensor *w = et_tensor_new(wv, ET_SHAPE(10, 2));
    et_set_requires_grad(w, true);
    et_tensor *in = et_tensor_new_int64((int64_t[]){1, 2, 4, 5, 4, 3, 2, 9}, ET_SHAPE(8));
    et_embedding_bag_opts o = ET_EMBEDDING_BAG_DEFAULTS;
    o.offsets = et_tensor_new_int64((int64_t[]){0, 3, 5}, ET_SHAPE(3));
    o.include_last_offset = true;
    o.mode = ET_BAG_MEAN;
    et_tensor *y = et_embedding_bag(in, w, o);
    ASSERT_SHAPE(y, 2, 2);
    ASSERT_VALUES(y, 7.0f / 3, 70.0f / 3, 4.5f, 45.0f);
    ck_assert_str_eq(et_grad_fn_name(y), "EmbeddingBagBackward0");
    ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_OK);
    /* mean: 1/3 to rows 1, 2, 4 from bag 0; 1/2 to rows 5, 4 from bag 1 */
    ASSERT_VALUES(et_grad(w), 0, 0, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 0, 0,
                  1.0f / 3 + 0.5f, 1.0f / 3 + 0.5f, 0.5f, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0);
    o.mode = ET_BAG_MAX;
    ASSERT_VALUES(et_embedding_bag(in, w, o), 4, 40, 5, 50);
    et_pool_end();
}
END_TEST

START_TEST(grad_fn_names_are_torchs)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2, 2), 1, 2, 3, 5);
    et_set_requires_grad(x, true);
    ck_assert_str_eq(et_grad_fn_name(et_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5)),
                     "NativeBatchNormBackward0");
    ck_assert_str_eq(et_grad_fn_name(et_layer_norm(x, ET_SHAPE(2), NULL, NULL, 1e-5)),
                     "NativeLayerNormBackward0");
    ck_assert_str_eq(et_grad_fn_name(et_group_norm(x, 1, NULL, NULL, 1e-5)),
                     "NativeGroupNormBackward0");
    ck_assert_str_eq(et_grad_fn_name(et_embedding(et_tensor_new_int64((int64_t[]){1}, ET_SHAPE(1)),
                                                  x, ET_EMBEDDING_DEFAULTS)),
                     "EmbeddingBackward0");
    /* no input requires grad: no graph */
    ck_assert_ptr_null(et_grad_fn_name(et_layer_norm(TV(ET_SHAPE(2), 1, 2), ET_SHAPE(2), NULL,
                                                     NULL, 1e-5)));
    et_pool_end();
}
END_TEST

START_TEST(batch_norm_updates_running_stats_in_place_only_when_training)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(4, 1), 1, 2, 3, 6);   /* mean 3, biased var 3.5, unbiased 14/3 */
    et_tensor *rm = TV(ET_SHAPE(1), 1), *rv = TV(ET_SHAPE(1), 2);
    ck_assert_ptr_nonnull(et_batch_norm(x, rm, rv, NULL, NULL, true, 0.25, 0));
    ASSERT_VALUES(rm, 0.75f * 1 + 0.25f * 3);
    ASSERT_VALUES(rv, 0.75f * 2 + 0.25f * (14.0f / 3));
    float before[2] = {et_item(rm), et_item(rv)};
    et_tensor *y = et_batch_norm(x, rm, rv, NULL, NULL, false, 0.25, 0);
    ck_assert_float_eq(et_item(rm), before[0]);
    ck_assert_float_eq(et_item(rv), before[1]);
    ASSERT_VALUES(y, (1 - before[0]) / sqrtf(before[1]), (2 - before[0]) / sqrtf(before[1]),
                  (3 - before[0]) / sqrtf(before[1]), (6 - before[0]) / sqrtf(before[1]));
    /* a failing call leaves the running statistics alone */
    ASSERT_ERROR(et_batch_norm(x, rm, rv, TV(ET_SHAPE(2), 1, 1), NULL, true, 0.25, 0),
                 ET_ERR_SHAPE, "weight");
    ck_assert_float_eq(et_item(rm), before[0]);
    ASSERT_ERROR(et_batch_norm(x, rm, NULL, NULL, NULL, true, 0.1, 1e-5), ET_ERR_ARG, "together");
    ASSERT_ERROR(et_batch_norm(x, rm, rv, NULL, NULL, true, NAN, 1e-5), ET_ERR_ARG, "momentum");
    et_pool_end();
}
END_TEST

START_TEST(embedding_max_norm_renormalises_looked_up_rows_in_place)
{
    et_pool_begin();
    et_tensor *w = TV(ET_SHAPE(3, 2), 3, 4, 0.3f, 0.4f, 6, 8);
    et_embedding_opts o = ET_EMBEDDING_DEFAULTS;
    o.max_norm = 1.0;
    et_tensor *y = et_embedding(et_tensor_new_int64((int64_t[]){0, 1, 0}, ET_SHAPE(3)), w, o);
    float s = 1.0f / (5.0f + 1e-7f);
    ASSERT_VALUES(y, 3 * s, 4 * s, 0.3f, 0.4f, 3 * s, 4 * s);
    ASSERT_VALUES(w, 3 * s, 4 * s, 0.3f, 0.4f, 6, 8);   /* row 2 was not looked up */
    ASSERT_ERROR(et_embedding(et_tensor_new_int64((int64_t[]){3}, ET_SHAPE(1)), w, o), ET_ERR_INDEX,
                 "index 3 is out of range for dim 0 of size 3");
    o.max_norm = -1;
    ASSERT_ERROR(et_embedding(et_tensor_new_int64((int64_t[]){0}, ET_SHAPE(1)), w, o), ET_ERR_ARG,
                 "max_norm");
    et_bag_mode m;
    ck_assert_int_eq(et_bag_mode_parse("max", &m), ET_OK);
    ck_assert_int_eq(m, ET_BAG_MAX);
    ck_assert_str_eq(et_bag_mode_name(ET_BAG_SUM), "sum");
    ck_assert_int_eq(et_bag_mode_parse("median", &m), ET_ERR_ARG);
    et_pool_end();
}
END_TEST

static Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("functional");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, embedding_bag_last_offset_short_of_the_input);
    tcase_add_test(tc, grad_fn_names_are_torchs);
    tcase_add_test(tc, batch_norm_updates_running_stats_in_place_only_when_training);
    tcase_add_test(tc, embedding_max_norm_renormalises_looked_up_rows_in_place);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(layers_suite()); }
