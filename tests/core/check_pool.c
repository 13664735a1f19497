/* check_pool.c - max/avg/adaptive pooling (src/core/pool.c).  Expected
 * numbers come from torch 1.13 on the same input (expression quoted); the
 * grid of configurations is in tests/torch/cases_pool.py. */
#include "check_helpers.h"
#include "easytorch/conv.h"

/* x = torch.tensor([[[[1,5,2,0],[3,4,8,1],[0,2,6,7],[9,1,3,5]]]]) */
static et_tensor *make_x(void)
{
    return TV(ET_SHAPE(1, 1, 4, 4), 1, 5, 2, 0, 3, 4, 8, 1, 0, 2, 6, 7, 9, 1, 3, 5);
}

static void assert_indices(et_tensor *ix, const int64_t *expect, int64_t n)
{
    ck_assert_ptr_nonnull(ix);
    ck_assert_int_eq(et_tensor_dtype(ix), ET_INT64);
    ck_assert_int_eq(et_numel(ix), n);
    const int64_t *d = et_data_int64(ix);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(d[i] == expect[i], "index %lld is %lld, expected %lld", (long long)i,
                      (long long)d[i], (long long)expect[i]);
}

START_TEST(test_max_pool2d)
{
    et_pool_begin();
    et_tensor *x = make_x(), *ix = NULL;
    et_set_requires_grad(x, true);
    /* F.max_pool2d(x, 2, return_indices=True) */
    et_tensor *y = et_max_pool2d(x, (int64_t[]){2, 2}, NULL, NULL, NULL, false, &ix);
    ASSERT_SHAPE(y, 1, 1, 2, 2);
    ASSERT_VALUES(y, 5, 8, 9, 7);
    assert_indices(ix, (const int64_t[]){1, 6, 12, 11}, 4);
    ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0);
    /* F.max_pool2d(x, 3, stride=1, padding=1): padding is never chosen */
    y = et_max_pool2d(x, (int64_t[]){3, 3}, (int64_t[]){1, 1}, (int64_t[]){1, 1}, NULL, false, &ix);
    ASSERT_VALUES(y, 5, 8, 8, 8, 5, 8, 8, 8, 9, 9, 8, 8, 9, 9, 7, 7);
    assert_indices(ix, (const int64_t[]){1, 6, 6, 6, 1, 6, 6, 6, 12, 12, 6, 6, 12, 12, 11, 11}, 16);
    /* F.max_pool2d(x, 3, stride=2, ceil_mode=True) */
    y = et_max_pool2d(x, (int64_t[]){3, 3}, (int64_t[]){2, 2}, NULL, NULL, true, NULL);
    ASSERT_SHAPE(y, 1, 1, 2, 2);
    ASSERT_VALUES(y, 8, 8, 9, 7);
    et_pool_end();
}
END_TEST

START_TEST(test_max_pool1d)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(1, 1, 5), 1, 2, 3, 4, 5);
    /* F.max_pool1d(a, 2, ceil_mode=True) */
    ASSERT_VALUES(et_max_pool1d(a, (int64_t[]){2}, NULL, NULL, NULL, true, NULL), 2, 4, 5);
    /* unbatched [C, L] */
    ASSERT_SHAPE(et_max_pool1d(et_select(a, 0, 0), (int64_t[]){2}, NULL, NULL, NULL, false, NULL), 1, 2);
    et_pool_end();
}
END_TEST

START_TEST(test_avg_pool)
{
    et_pool_begin();
    et_tensor *x = make_x();
    /* F.avg_pool2d(x, 3, stride=2, padding=1) */
    ASSERT_VALUES(et_avg_pool2d(x, (int64_t[]){3, 3}, (int64_t[]){2, 2}, (int64_t[]){1, 1}, false,
                                true, 0),
                  1.4444444f, 2.2222223f, 2.1111112f, 4.1111112f);
    /* ... count_include_pad=False */
    ASSERT_VALUES(et_avg_pool2d(x, (int64_t[]){3, 3}, (int64_t[]){2, 2}, (int64_t[]){1, 1}, false,
                                false, 0),
                  3.25f, 3.3333333f, 3.1666667f, 4.1111112f);
    /* F.avg_pool2d(x, 2, divisor_override=1) */
    ASSERT_VALUES(et_avg_pool2d(x, (int64_t[]){2, 2}, NULL, NULL, false, true, 1), 13, 11, 12, 21);
    /* F.avg_pool1d(a, 3, stride=2, padding=1, count_include_pad=False) */
    et_tensor *a = TV(ET_SHAPE(1, 1, 5), 1, 2, 3, 4, 5);
    ASSERT_VALUES(et_avg_pool1d(a, (int64_t[]){3}, (int64_t[]){2}, (int64_t[]){1}, false, false),
                  1.5f, 3, 4.5f);
    et_pool_end();
}
END_TEST

START_TEST(test_adaptive)
{
    et_pool_begin();
    et_tensor *x = make_x(), *ix = NULL;
    /* F.adaptive_avg_pool2d(x, (3, 2)) */
    ASSERT_VALUES(et_adaptive_avg_pool2d(x, (int64_t[]){3, 2}), 3.25f, 2.75f, 2.25f, 5.5f, 3, 5.25f);
    /* F.adaptive_max_pool2d(x, (3, 3), return_indices=True): overlapping windows */
    et_tensor *y = et_adaptive_max_pool2d(x, (int64_t[]){3, 3}, &ix);
    ASSERT_VALUES(y, 5, 8, 8, 4, 8, 8, 9, 6, 7);
    assert_indices(ix, (const int64_t[]){1, 6, 6, 5, 6, 6, 12, 10, 11}, 9);
    /* -1 keeps the size (torch's None); 1x1 is a global pool */
    ASSERT_SHAPE(et_adaptive_avg_pool2d(x, (int64_t[]){-1, 1}), 1, 1, 4, 1);
    ASSERT_VALUES(et_adaptive_avg_pool2d(x, (int64_t[]){1, 1}), 3.5625f);
    ASSERT_VALUES(et_adaptive_max_pool1d(TV(ET_SHAPE(1, 4), 3, 1, 4, 2), (int64_t[]){1}, NULL), 4);
    et_pool_end();
}
END_TEST

START_TEST(test_pool_errors)
{
    et_pool_begin();
    et_tensor *x = make_x();
    ASSERT_ERROR(et_max_pool2d(et_zeros(ET_SHAPE(32, 8, 1, 1)), (int64_t[]){2, 2}, NULL, NULL, NULL,
                               false, NULL),
                 ET_ERR_SHAPE, "input [32,8,1,1] is smaller than kernel 2 x 2");
    ASSERT_ERROR(et_max_pool2d(x, NULL, NULL, NULL, NULL, false, NULL), ET_ERR_ARG, "kernel_size");
    ASSERT_ERROR(et_max_pool2d(x, (int64_t[]){2, 2}, NULL, (int64_t[]){2, 0}, NULL, false, NULL),
                 ET_ERR_ARG, "half of kernel size");
    ASSERT_ERROR(et_avg_pool2d(x, (int64_t[]){2, 2}, (int64_t[]){0, 1}, NULL, false, true, 0),
                 ET_ERR_ARG, "stride should be greater than zero");
    ASSERT_ERROR(et_avg_pool1d(x, (int64_t[]){2}, NULL, NULL, false, true), ET_ERR_SHAPE,
                 "expected 2D (unbatched) or 3D (batched) input");
    ASSERT_ERROR(et_adaptive_avg_pool2d(x, (int64_t[]){-3, 1}), ET_ERR_ARG, "output_size");
    ASSERT_ERROR(et_max_pool2d(et_tensor_new_int64(NULL, ET_SHAPE(1, 1, 2, 2)), (int64_t[]){2, 2},
                               NULL, NULL, NULL, false, NULL),
                 ET_ERR_ARG, "float32");
    et_pool_end();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"max_pool2d", test_max_pool2d}, {"max_pool1d", test_max_pool1d},
        {"avg_pool", test_avg_pool},     {"adaptive", test_adaptive},
        {"pool_errors", test_pool_errors},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);   /* a hang guard: a loaded 2-core machine is slow */
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return run_suite(s);
}
