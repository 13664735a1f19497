/* check_error.c - the per-thread error (error.h): codes and messages, and
 * chains -- a NULL argument left by a failed call keeps that call's message
 * (et_set_error_after), so et_errmsg() names the first failure. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/easytorch.h>

#include "check_helpers.h"

static et_tensor *mat(int64_t r, int64_t c)
{
    return et_zeros((int64_t[]){r, c}, 2);
}

START_TEST(test_a_failure_sets_code_and_message)
{
    et_clear_error();
    ck_assert_int_eq(et_errcode(), ET_OK);
    ck_assert_str_eq(et_errmsg(), "");
    et_tensor *a = mat(3, 4), *b = mat(5, 2);
    ck_assert_ptr_null(et_matmul(a, b));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_msg(strstr(et_errmsg(), "matmul") && strstr(et_errmsg(), "[3,4]"), "%s", et_errmsg());
    et_tensor_free(a);
    et_tensor_free(b);
    ck_assert_str_eq(et_errstr(ET_ERR_SHAPE), "shape mismatch");
}
END_TEST

START_TEST(test_null_from_a_failed_call_keeps_the_first_message)
{
    et_clear_error();
    et_tensor *a = mat(3, 4), *b = mat(5, 2);
    /* item(sum(matmul(bad))): the NULLs are consequences of matmul's failure */
    et_tensor *y = et_matmul(a, b);
    et_tensor *s = et_sum_all(y);
    float v = et_item(s);
    ck_assert(v != v); /* NaN */
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG); /* the last failure's code */
    const char *m = et_errmsg();
    ck_assert_msg(strncmp(m, "matmul: ", 8) == 0, "the first failure comes first: %s", m);
    ck_assert_msg(strstr(m, "(then: sum: tensor argument is NULL)"), "%s", m);
    ck_assert_msg(!strstr(m, "item:"), "one consequence is enough: %s", m);
    /* a call's return value is its own failure: a NULL argument */
    ck_assert_int_eq(et_add_scalar_(NULL, 1), ET_ERR_ARG);
    ck_assert_msg(strncmp(et_errmsg(), "matmul: ", 8) == 0, "%s", et_errmsg());
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

START_TEST(test_null_after_other_work_is_its_own_failure)
{
    et_clear_error();
    et_tensor *a = mat(3, 4), *b = mat(5, 2);
    ck_assert_ptr_null(et_matmul(a, b));
    /* a tensor made since: the old failure is not the cause any more */
    et_tensor *c = mat(2, 2);
    ck_assert_ptr_nonnull(c);
    float v = et_item(NULL);
    ck_assert(v != v);
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_str_eq(et_errmsg(), "item: tensor argument is NULL");
    /* and after et_clear_error nothing is pending */
    et_clear_error();
    et_item(NULL);
    ck_assert_str_eq(et_errmsg(), "item: tensor argument is NULL");
    et_tensor_free(a);
    et_tensor_free(b);
    et_tensor_free(c);
}
END_TEST

START_TEST(test_a_new_root_failure_replaces_the_chain)
{
    et_clear_error();
    et_tensor *a = mat(3, 4), *b = mat(5, 2);
    ck_assert_ptr_null(et_matmul(a, b));
    et_item(NULL);
    /* another real failure (not a NULL argument) starts a new chain */
    ck_assert_ptr_null(et_reshape(a, (int64_t[]){5}, 1));
    ck_assert_msg(strstr(et_errmsg(), "reshape") && !strstr(et_errmsg(), "matmul"), "%s",
                  et_errmsg());
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

static void *other_thread(void *arg)
{
    (void)arg;
    et_item(NULL);
    return strcmp(et_errmsg(), "item: tensor argument is NULL") == 0 ? (void *)1 : NULL;
}

START_TEST(test_errors_are_per_thread)
{
    et_clear_error();
    et_tensor *a = mat(3, 4), *b = mat(5, 2);
    ck_assert_ptr_null(et_matmul(a, b));
    pthread_t t;
    void *ok = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    pthread_join(t, &ok);
    ck_assert_ptr_nonnull(ok);
    ck_assert_msg(strncmp(et_errmsg(), "matmul: ", 8) == 0, "%s", et_errmsg());
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("messages");
    tcase_add_test(tc, test_a_failure_sets_code_and_message);
    tcase_add_test(tc, test_errors_are_per_thread);
    suite_add_tcase(s, tc);
    tc = tcase_create("chains");
    tcase_add_test(tc, test_null_from_a_failed_call_keeps_the_first_message);
    tcase_add_test(tc, test_null_after_other_work_is_its_own_failure);
    tcase_add_test(tc, test_a_new_root_failure_replaces_the_chain);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
