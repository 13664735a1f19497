/* check_pad.c - et_pad in its four modes (src/core/pad.c).  Expected
 * numbers come from torch 1.13 (expression quoted); the grid is in
 * tests/torch/cases_pool.py. */
#include "check_helpers.h"
#include "easytorch/conv.h"

/* a = torch.arange(1., 6.).reshape(1, 1, 5) */
static et_tensor *make_a(void) { return TV(ET_SHAPE(1, 1, 5), 1, 2, 3, 4, 5); }

START_TEST(test_pad_modes)
{
    et_pool_begin();
    et_tensor *a = make_a();
    const int64_t p[2] = {2, 1};
    /* F.pad(a, (2, 1), mode=...) */
    ASSERT_VALUES(et_pad(a, p, 2, ET_PAD_REFLECT, 0), 3, 2, 1, 2, 3, 4, 5, 4);
    ASSERT_VALUES(et_pad(a, p, 2, ET_PAD_REPLICATE, 0), 1, 1, 1, 2, 3, 4, 5, 5);
    ASSERT_VALUES(et_pad(a, p, 2, ET_PAD_CIRCULAR, 0), 4, 5, 1, 2, 3, 4, 5, 1);
    /* F.pad(a, (1, -2), value=9.): negative padding crops */
    ASSERT_VALUES(et_pad(a, (int64_t[]){1, -2}, 2, ET_PAD_CONSTANT, 9), 9, 1, 2, 3);
    /* F.pad(torch.arange(1., 7.).reshape(1, 2, 3), (1, 1, 1, 0), mode="reflect") */
    et_tensor *b = et_pad(TV(ET_SHAPE(1, 2, 3), 1, 2, 3, 4, 5, 6), (int64_t[]){1, 1, 1, 0}, 4,
                          ET_PAD_REFLECT, 0);
    ASSERT_SHAPE(b, 1, 3, 5);
    ASSERT_VALUES(b, 5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5);
    /* constant padding of a leading dim */
    ASSERT_SHAPE(et_pad(a, (int64_t[]){0, 0, 0, 0, 1, 2}, 6, ET_PAD_CONSTANT, 0), 4, 1, 5);
    et_pool_end();
}
END_TEST

START_TEST(test_pad_backward)
{
    et_pool_begin();
    et_tensor *z = make_a();
    et_set_requires_grad(z, true);
    /* F.pad(z, (3, 2), mode="reflect").sum().backward(): mirrored copies add up */
    ck_assert_int_eq(et_backward(et_sum_all(et_pad(z, (int64_t[]){3, 2}, 2, ET_PAD_REFLECT, 0)),
                                 NULL), ET_OK);
    ASSERT_VALUES(et_grad(z), 1, 2, 3, 3, 1);
    et_pool_end();
}
END_TEST

START_TEST(test_pad_errors)
{
    et_pool_begin();
    et_tensor *a = make_a();
    ASSERT_ERROR(et_pad(a, (int64_t[]){1, 1, 1}, 3, ET_PAD_CONSTANT, 0), ET_ERR_ARG,
                 "divisible by 2");
    ASSERT_ERROR(et_pad(a, (int64_t[]){5, 0}, 2, ET_PAD_REFLECT, 0), ET_ERR_ARG,
                 "less than the corresponding input dimension");
    ASSERT_ERROR(et_pad(a, (int64_t[]){6, 0}, 2, ET_PAD_CIRCULAR, 0), ET_ERR_ARG,
                 "wrapping around more than once");
    ASSERT_ERROR(et_pad(a, (int64_t[]){1, 1}, 2, ET_PAD_REPLICATE, 2.0f), ET_ERR_ARG,
                 "doesn't take in value");
    ASSERT_ERROR(et_pad(a, (int64_t[]){-3, -3}, 2, ET_PAD_CONSTANT, 0), ET_ERR_SHAPE,
                 "invalid output size -1");
    ASSERT_ERROR(et_pad(a, (int64_t[]){1, 1}, 2, (et_pad_mode)9, 0), ET_ERR_ARG, "unknown mode");
    et_pool_end();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pad");
    TCase *tc = tcase_create("pad_modes");
    tcase_add_test(tc, test_pad_modes);
    suite_add_tcase(s, tc);
    tc = tcase_create("pad_backward");
    tcase_add_test(tc, test_pad_backward);
    suite_add_tcase(s, tc);
    tc = tcase_create("pad_errors");
    tcase_add_test(tc, test_pad_errors);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
