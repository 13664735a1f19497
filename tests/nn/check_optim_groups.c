/*
 * check_optim_groups.c - parameter groups and the schedulers added with
 * them: what the step-by-step PyTorch comparison (tests/torch/nn_more.py)
 * cannot reach -- refused arguments that change nothing, state created by
 * a group key, ownership of sequenced schedulers, the named scheduler state.
 */
#include <math.h>
#include <string.h>

#include "nn_check.h"

static et_tensor *leaf(float v)
{
    et_tensor *p = et_full(ET_SHAPE(2), v);
    et_set_requires_grad(p, true);
    return p;
}

START_TEST(groups_start_from_the_constructor_options)
{
    et_tensor *a = leaf(1), *b = leaf(2), *c = leaf(3);
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = 0.1;
    et_optim *opt = et_sgd_new(&a, 1, o);
    ck_assert_int_eq(et_optim_group_set(opt, 0, "lr", 0.5), ET_OK);
    ck_assert_int_eq(et_optim_add_param_group(opt, &b, 1), 1);
    /* torch fills a new group from the defaults, not from group 0 */
    ck_assert(et_optim_group_get(opt, 1, "lr") == 0.1);
    ck_assert(et_optim_group_get(opt, 0, "lr") == 0.5);
    ck_assert_int_eq(et_optim_num_groups(opt), 2);
    ck_assert_int_eq(et_optim_group_num_params(opt, 1), 1);
    ck_assert_ptr_eq(et_optim_group_param(opt, 1, 0), b);
    /* a parameter already in a group, a NULL one, a non-leaf */
    ck_assert_int_eq(et_optim_add_param_group(opt, &a, 1), -1);
    ck_assert(strstr(et_errmsg(), "more than one parameter group") != NULL);
    et_tensor *nl = et_mul_scalar(c, 2);
    ck_assert_int_eq(et_optim_add_param_group(opt, &nl, 1), -1);
    ck_assert(strstr(et_errmsg(), "non-leaf") != NULL);
    ck_assert_int_eq(et_optim_num_groups(opt), 2);
    et_tensor_free(nl);
    et_optim_free(opt);
    et_tensor_free(a);
    et_tensor_free(b);
    et_tensor_free(c);
}
END_TEST

START_TEST(bad_group_values_change_nothing)
{
    et_tensor *a = leaf(1);
    et_optim *opt = et_adam_new(&a, 1, ET_ADAM_DEFAULTS);
    ck_assert_int_eq(et_optim_group_set(opt, 0, "beta1", 1.0), ET_ERR_ARG);
    ck_assert(strstr(et_errmsg(), "param_groups[0]") != NULL);
    ck_assert(et_optim_group_get(opt, 0, "beta1") == 0.9);
    ck_assert_int_eq(et_optim_group_set(opt, 0, "momentum", 0.9), ET_ERR_ARG);
    ck_assert(strstr(et_errmsg(), "beta1") != NULL);   /* lists what Adam has */
    ck_assert_int_eq(et_optim_group_set(opt, 0, "amsgrad", 0.5), ET_ERR_ARG);
    ck_assert_int_eq(et_optim_group_set(opt, 3, "lr", 0.1), ET_ERR_INDEX);
    ck_assert(isnan(et_optim_group_get(opt, 0, "nesterov")));
    ck_assert_int_eq(et_optim_num_hparams(opt), 7);
    ck_assert_str_eq(et_optim_hparam_name(opt, 1), "beta1");
    /* amsgrad creates the max_exp_avg_sq slot */
    int before = et_optim_state_count(opt);
    ck_assert_int_eq(et_optim_group_set(opt, 0, "amsgrad", 1), ET_OK);
    ck_assert_int_eq(et_optim_state_count(opt), before + 1);
    ck_assert_str_eq(et_optim_state_name(opt, before), "0.max_exp_avg_sq");
    et_optim_free(opt);
    /* SGD: nesterov needs momentum; setting momentum creates the buffer */
    et_optim *sgd = et_sgd_new(&a, 1, ET_SGD_DEFAULTS);
    ck_assert_int_eq(et_optim_state_count(sgd), 0);
    ck_assert_int_eq(et_optim_group_set(sgd, 0, "nesterov", 1), ET_ERR_ARG);
    ck_assert_int_eq(et_optim_group_set(sgd, 0, "momentum", 0.9), ET_OK);
    ck_assert_int_eq(et_optim_state_count(sgd), 1);
    ck_assert_int_eq(et_optim_group_set(sgd, 0, "nesterov", 1), ET_OK);
    et_optim_free(sgd);
    et_tensor_free(a);
}
END_TEST

START_TEST(scheduler_errors_and_ownership)
{
    et_tensor *a = leaf(1);
    et_optim *sgd = et_sgd_new(&a, 1, ET_SGD_DEFAULTS);
    et_optim *ada = et_adagrad_new(&a, 1, ET_ADAGRAD_DEFAULTS);
    /* plateau wants a metric */
    et_scheduler *pl = et_reducelronplateau_new(sgd, ET_PLATEAU_DEFAULTS);
    ck_assert(et_scheduler_needs_metric(pl));
    ck_assert_int_eq(et_scheduler_step(pl), ET_ERR_STATE);
    ck_assert_int_eq(et_scheduler_step_metric(pl, NAN), ET_ERR_ARG);
    ck_assert_int_eq(et_scheduler_step_metric(pl, 1.0), ET_OK);
    /* OneCycleLR: Adagrad has no momentum to cycle; stepping past total_steps fails */
    et_onecycle_opts c = ET_ONECYCLE_DEFAULTS;
    c.max_lr = 0.1;
    c.total_steps = 3;
    ck_assert_ptr_null(et_onecyclelr_new(ada, c));
    ck_assert(strstr(et_errmsg(), "cycle_momentum") != NULL);
    et_scheduler *oc = et_onecyclelr_new(sgd, c);
    ck_assert_ptr_nonnull(oc);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(et_scheduler_step(oc), ET_OK);
    ck_assert_int_eq(et_scheduler_step(oc), ET_ERR_STATE);
    ck_assert(strstr(et_errmsg(), "total steps") != NULL);
    et_scheduler_free(oc);
    /* a Sequential that fails frees its children (LeakSanitizer checks) */
    et_scheduler *k1[2] = {et_linearlr_new(sgd, 0.5, 1, 4), et_exponentiallr_new(sgd, 0.9)};
    ck_assert_ptr_null(et_sequentiallr_new(sgd, k1, 2, NULL));
    et_scheduler *k2[2] = {et_linearlr_new(sgd, 0.5, 1, 4), pl};
    ck_assert_ptr_null(et_chainedscheduler_new(k2, 2));   /* pl is freed with it */
    ck_assert(strstr(et_errmsg(), "ReduceLROnPlateau") != NULL);
    et_scheduler *k3[2] = {et_linearlr_new(sgd, 0.5, 1, 4), et_exponentiallr_new(ada, 0.9)};
    ck_assert_ptr_null(et_chainedscheduler_new(k3, 2));
    ck_assert(strstr(et_errmsg(), "same optimizer") != NULL);
    et_optim_free(sgd);
    et_optim_free(ada);
    et_tensor_free(a);
}
END_TEST

START_TEST(scheduler_state_is_named)
{
    et_tensor *a = leaf(1), *b = leaf(2);
    et_optim *opt = et_sgd_new(&a, 1, ET_SGD_DEFAULTS);
    et_optim_add_param_group(opt, &b, 1);
    et_scheduler *kids[2] = {et_constantlr_new(opt, 0.5, 2),
                             et_cosineannealingwarmrestarts_new(opt, 4, 2, 0)};
    et_scheduler *s = et_sequentiallr_new(opt, kids, 2, (const int64_t[]){2});
    ck_assert_ptr_nonnull(s);
    const char *want[] = {"last_epoch", "0.last_epoch", "0.last_lr", "0.last_lr.1",
                          "1.last_epoch", "1.last_lr", "1.last_lr.1", "1.T_cur", "1.T_i"};
    ck_assert_int_eq(et_scheduler_state_count(s), 9);
    for (int i = 0; i < 9; i++)
        ck_assert_str_eq(et_scheduler_state_name(s, i), want[i]);
    ck_assert_int_eq(et_scheduler_state_check(s, "1.last_epoch", -1), ET_OK);
    ck_assert_int_eq(et_scheduler_state_check(s, "last_epoch", -1), ET_ERR_ARG);
    ck_assert_int_eq(et_scheduler_state_check(s, "1.T_i", 2.5), ET_ERR_ARG);
    ck_assert_int_eq(et_scheduler_state_check(s, "0.last_lr", INFINITY), ET_ERR_ARG);
    ck_assert_int_eq(et_scheduler_state_set(s, "nope", 1), ET_ERR_ARG);
    et_scheduler_free(s);
    et_optim_free(opt);
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_optim_groups");
    TCase *tc = tcase_create("groups");
    tcase_add_test(tc, groups_start_from_the_constructor_options);
    tcase_add_test(tc, bad_group_values_change_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedulers");
    tcase_add_test(tc, scheduler_errors_and_ownership);
    tcase_add_test(tc, scheduler_state_is_named);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
