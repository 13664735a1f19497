/* check_dtype.c - int64 tensors (dtype.c and the dtype paths of tensor.c,
 * tensor_alloc.c, shape.c, shape_copy.c, index.c, print.c): creation,
 * exactness above 2^24, views and copies, conversion, index arguments,
 * rejection by float ops.  Values against PyTorch (views, printing, index
 * ops) are in tests/torch/cases_layers.py. */
#include "check_helpers.h"
#include "core/core_internal.h"

#define BIG ((int64_t)1 << 40)

START_TEST(new_int64_keeps_values_exactly)
{
    et_pool_begin();
    const int64_t v[] = {0, -1, (1 << 24) + 1, BIG + 3, INT64_MAX, INT64_MIN};
    et_tensor *t = et_tensor_new_int64(v, ET_SHAPE(2, 3));
    ck_assert_int_eq(et_tensor_dtype(t), ET_INT64);
    ck_assert_str_eq(et_dtype_name(et_tensor_dtype(t)), "int64");
    ck_assert(!et_requires_grad(t));
    const int64_t *d = et_data_int64(t);
    ck_assert_ptr_nonnull(d);
    for (int i = 0; i < 6; i++)
        ck_assert(d[i] == v[i]);
    int64_t out[6];
    ck_assert_int_eq(et_copy_to_int64(t, out), ET_OK);
    ck_assert(memcmp(out, v, sizeof v) == 0);
    et_tensor *z = et_tensor_new_int64(NULL, ET_SHAPE(3));
    ck_assert(et_data_int64(z)[0] == 0 && et_data_int64(z)[2] == 0);
    int64_t one;
    ck_assert_int_eq(et_item_int64(et_select(et_select(t, 0, 1), 0, 0), &one), ET_OK);
    ck_assert(one == BIG + 3);
    /* et_data is the float view: refused for an int64 tensor */
    ASSERT_ERROR(et_data(t), ET_ERR_ARG, "int64");
    ASSERT_ERROR(et_data_int64(et_zeros(ET_SHAPE(2))), ET_ERR_ARG, "float32");
    et_pool_end();
}
END_TEST

START_TEST(views_and_copies_of_int64)
{
    et_pool_begin();
    int64_t v[12];
    for (int i = 0; i < 12; i++)
        v[i] = BIG + i;
    et_tensor *t = et_tensor_new_int64(v, ET_SHAPE(3, 4));
    et_tensor *tt = et_transpose(t, 0, 1);   /* [4, 3], non-contiguous */
    ck_assert(!et_is_contiguous(tt));
    ck_assert_int_eq(et_tensor_dtype(tt), ET_INT64);
    int64_t out[12];
    ck_assert_int_eq(et_copy_to_int64(tt, out), ET_OK);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            ck_assert(out[i * 3 + j] == BIG + j * 4 + i);
    et_tensor *c = et_contiguous(tt);
    ck_assert(et_is_contiguous(c) && et_tensor_dtype(c) == ET_INT64);
    ck_assert(et_data_int64(c)[1] == BIG + 4);
    et_tensor *r = et_reshape(tt, ET_SHAPE(12));   /* must copy */
    ck_assert(et_data_int64(r)[11] == BIG + 11);
    et_tensor *s = et_slice(t, 1, 1, 4, 2);        /* [3, 2]: columns 1, 3 */
    ck_assert_int_eq(et_copy_to_int64(s, out), ET_OK);
    ck_assert(out[0] == BIG + 1 && out[1] == BIG + 3 && out[5] == BIG + 11);
    et_tensor *f = et_flatten(et_unsqueeze(t, 0), 0, -1);
    ASSERT_SHAPE(f, 12);
    ck_assert(et_data_int64(f)[7] == BIG + 7);
    et_tensor *e = et_expand(et_slice(t, 0, 0, 1, 1), ET_SHAPE(2, 4));
    ck_assert_int_eq(et_copy_to_int64(e, out), ET_OK);
    ck_assert(out[4] == BIG && out[7] == BIG + 3);
    et_tensor *parts[2] = {t, s};
    ASSERT_ERROR(et_cat(parts, 2, 0), ET_ERR_SHAPE, "cat");
    ASSERT_SHAPE(et_cat(parts, 2, 1), 3, 6);
    parts[1] = et_slice(t, 0, 1, 3, 1);
    et_tensor *cat = et_cat(parts, 2, 0);
    ASSERT_SHAPE(cat, 5, 4);
    ck_assert(et_data_int64(cat)[19] == BIG + 11);
    et_tensor *mixed[2] = {t, et_zeros(ET_SHAPE(3, 4))};
    ASSERT_ERROR(et_cat(mixed, 2, 0), ET_ERR_ARG, "int64");
    et_tensor *st = et_stack(parts, 1, 0);
    ASSERT_SHAPE(st, 1, 3, 4);
    ck_assert_int_eq(et_tensor_dtype(et_clone(tt)), ET_INT64);
    ck_assert_int_eq(et_tensor_dtype(et_detach(tt)), ET_INT64);
    et_tensor *ol = et_ones_like(tt);
    ck_assert(et_tensor_dtype(ol) == ET_INT64 && et_data_int64(ol)[5] == 1);
    /* in-place write through a view */
    int64_t w[2] = {-5, BIG * 2};
    ck_assert_int_eq(et_copy_from_int64(et_select(tt, 1, 0), (int64_t[]){7, 8, 9, 10}), ET_OK);
    ck_assert(et_data_int64(t)[0] == 7 && et_data_int64(t)[3] == 10);
    ck_assert_int_eq(et_copy_from_int64(et_slice(et_select(t, 0, 2), 0, 0, 2, 1), w), ET_OK);
    ck_assert(et_data_int64(t)[8] == -5 && et_data_int64(t)[9] == BIG * 2);
    et_pool_end();
}
END_TEST

START_TEST(conversion_is_exact_or_an_error)
{
    et_pool_begin();
    et_tensor *f = TV(ET_SHAPE(4), 3, -2, 16777216, 0);
    et_tensor *i = et_to_dtype(f, ET_INT64);
    ck_assert_int_eq(et_tensor_dtype(i), ET_INT64);
    ck_assert(et_data_int64(i)[0] == 3 && et_data_int64(i)[1] == -2 &&
              et_data_int64(i)[2] == 16777216);
    et_tensor *back = et_to_dtype(i, ET_FLOAT32);
    ASSERT_VALUES(back, 3, -2, 16777216, 0);
    ck_assert_ptr_eq(et_to_dtype(i, ET_INT64), i);   /* same dtype: the tensor itself */
    ASSERT_ERROR(et_to_dtype(TV(ET_SHAPE(3), 1, 2.5f, 3), ET_INT64), ET_ERR_ARG, "element 1");
    ASSERT_ERROR(et_to_dtype(TV(ET_SHAPE(2), 1, NAN), ET_INT64), ET_ERR_ARG, "element 1");
    ASSERT_ERROR(et_to_dtype(TV(ET_SHAPE(1), INFINITY), ET_INT64), ET_ERR_ARG, "element 0");
    ASSERT_ERROR(et_to_dtype(TV(ET_SHAPE(1), 1e30f), ET_INT64), ET_ERR_ARG, "element 0");
    ASSERT_ERROR(et_to_dtype(f, (et_dtype)7), ET_ERR_ARG, "dtype");
    int64_t v;
    ck_assert_int_eq(et_item_int64(TV(ET_SHAPE(1), 2.5f), &v), ET_ERR_ARG);
    ck_assert_int_eq(et_item_int64(f, &v), ET_ERR_SHAPE);
    int64_t out[4];
    ck_assert_int_eq(et_copy_to_int64(f, out), ET_OK);
    ck_assert(out[2] == 16777216);
    float fo[2];
    et_copy_to(et_tensor_new_int64((int64_t[]){5, -7}, ET_SHAPE(2)), fo);
    ck_assert(fo[0] == 5.0f && fo[1] == -7.0f);
    ck_assert(et_item(et_tensor_new_int64((int64_t[]){9}, ET_SHAPE(1))) == 9.0f);
    et_pool_end();
}
END_TEST

START_TEST(float_ops_refuse_int64_and_int64_cannot_require_grad)
{
    et_pool_begin();
    et_tensor *i = et_tensor_new_int64((int64_t[]){1, 2}, ET_SHAPE(2));
    et_tensor *f = TV(ET_SHAPE(2), 1, 2);
    ASSERT_ERROR(et_exp(i), ET_ERR_ARG, "exp: expected a float32 tensor, got int64");
    ASSERT_ERROR(et_add(f, i), ET_ERR_ARG, "int64");
    ASSERT_ERROR(et_sum_all(i), ET_ERR_ARG, "int64");
    ASSERT_ERROR(et_matmul(i, i), ET_ERR_ARG, "int64");
    ASSERT_ERROR(et_softmax(i, 0), ET_ERR_ARG, "int64");
    ck_assert_int_eq(et_fill_(i, 1.0f), ET_ERR_ARG);
    ck_assert_int_eq(et_copy_from(i, (float[]){1, 2}), ET_ERR_ARG);
    ck_assert_int_eq(et_set_requires_grad(i, true), ET_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "floating point"));
    ck_assert_int_eq(et_set_requires_grad(i, false), ET_OK);
    ck_assert_int_eq(et_backward(i, NULL), ET_ERR_ARG);
    et_pool_end();
}
END_TEST

START_TEST(index_arguments_take_int64_beyond_float_precision)
{
    /* a dim of 2^24 + 3 rows: float32 cannot tell 2^24 + 1 from 2^24 */
    int64_t rows = ((int64_t)1 << 24) + 3;
    et_pool_begin();
    et_tensor *a = et_arange(0, (double)rows, 1);   /* a[k] = k, rounded for k > 2^24 */
    float *ad = et_data(a);
    ad[rows - 2] = -1.0f;                            /* mark row 2^24 + 1 */
    ad[rows - 3] = -2.0f;                            /* and row 2^24 */
    et_tensor *ix = et_tensor_new_int64((int64_t[]){rows - 2, rows - 3, 0}, ET_SHAPE(3));
    ASSERT_VALUES(et_index_select(a, 0, ix), -1, -2, 0);
    et_tensor *a2 = et_reshape(a, ET_SHAPE(1, rows));
    et_tensor *gx = et_tensor_new_int64((int64_t[]){rows - 2, rows - 1}, ET_SHAPE(1, 2));
    ASSERT_VALUES(et_gather(a2, 1, gx), -1, (float)(rows - 1));
    ASSERT_ERROR(et_index_select(a, 0, et_tensor_new_int64((int64_t[]){rows}, ET_SHAPE(1))),
                 ET_ERR_INDEX, "index 16777219 is out of range for dim 0 of size 16777219");
    ASSERT_ERROR(et_index_select(a, 0, et_tensor_new_int64((int64_t[]){-1}, ET_SHAPE(1))),
                 ET_ERR_INDEX, "index -1 is out of range");
    ASSERT_ERROR(et_gather(a2, 1, et_tensor_new_int64((int64_t[]){0, INT64_MAX}, ET_SHAPE(1, 2))),
                 ET_ERR_INDEX, "9223372036854775807");
    et_pool_end();
}
END_TEST

START_TEST(index_select_gather_backward_with_int64_index)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    et_set_requires_grad(a, true);
    et_tensor *ix = et_tensor_new_int64((int64_t[]){2, 0, 2}, ET_SHAPE(3));
    et_tensor *y = et_sum_all(et_index_select(a, 0, ix));
    ck_assert_int_eq(et_backward(y, NULL), ET_OK);
    ASSERT_VALUES(et_grad(a), 1, 1, 0, 0, 2, 2);
    /* an int64 source can be indexed too (no gradient) */
    et_tensor *src = et_tensor_new_int64((int64_t[]){10, 11, 12, 13}, ET_SHAPE(2, 2));
    et_tensor *sel = et_index_select(src, 1, et_tensor_new_int64((int64_t[]){1}, ET_SHAPE(1)));
    ck_assert(et_tensor_dtype(sel) == ET_INT64 && et_data_int64(sel)[1] == 13);
    et_pool_end();
}
END_TEST

START_TEST(printing_int64_like_pytorch)
{
    et_pool_begin();
    /* str(torch.tensor([[1, -20, 300], [4, 5, 6]])) and friends */
    char *s = et_to_string(et_tensor_new_int64((int64_t[]){1, -20, 300, 4, 5, 6}, ET_SHAPE(2, 3)));
    ck_assert_str_eq(s, "tensor([[  1, -20, 300],\n        [  4,   5,   6]])");
    free(s);
    s = et_to_string(et_tensor_new_int64((int64_t[]){7}, ET_SHAPE(0)));
    ck_assert_str_eq(s, "tensor([], dtype=torch.int64)");
    free(s);
    s = et_to_string(et_tensor_new_int64((int64_t[]){42}, NULL, 0));
    ck_assert_str_eq(s, "tensor(42)");
    free(s);
    et_pool_end();
}
END_TEST

static Suite *dtype_suite(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("int64");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, new_int64_keeps_values_exactly);
    tcase_add_test(tc, views_and_copies_of_int64);
    tcase_add_test(tc, conversion_is_exact_or_an_error);
    tcase_add_test(tc, float_ops_refuse_int64_and_int64_cannot_require_grad);
    tcase_add_test(tc, index_arguments_take_int64_beyond_float_precision);
    tcase_add_test(tc, index_select_gather_backward_with_int64_index);
    tcase_add_test(tc, printing_int64_like_pytorch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(dtype_suite()); }
