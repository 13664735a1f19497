/* check_spec_optim.c - the optimizer and scheduler parts of model
 * specifications (spec.h): every type parses with torch's defaults (read
 * from torch's own signatures, spec_testlib.c); bad fields are refused with
 * a message naming them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec_testlib.h"

/* ---- optimizers ---- */

static void opt_spec(const char *opt_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text, "{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":%s}", opt_json);
    must_parse(text, s);
}

START_TEST(test_every_optimizer_type_parses_with_torch_defaults)
{
    etd_spec s;
    opt_spec("{\"type\":\"SGD\",\"lr\":0.5}", &s);
    ck_assert_str_eq(s.optim.type->name, "SGD");
    ck_assert(s.optim.u.sgd.lr == 0.5);
    eq_num("SGD.momentum", s.optim.u.sgd.momentum);
    eq_num("SGD.dampening", s.optim.u.sgd.dampening);
    eq_num("SGD.weight_decay", s.optim.u.sgd.weight_decay);
    eq_num("SGD.nesterov", s.optim.u.sgd.nesterov);
    eq_num("SGD.maximize", s.optim.u.sgd.maximize);
    etd_spec_free(&s);

    opt_spec("{\"type\":\"Adagrad\"}", &s);
    ck_assert_str_eq(s.optim.type->name, "Adagrad");
    eq_num("Adagrad.lr", s.optim.u.adagrad.lr);
    eq_num("Adagrad.lr_decay", s.optim.u.adagrad.lr_decay);
    eq_num("Adagrad.weight_decay", s.optim.u.adagrad.weight_decay);
    eq_num("Adagrad.initial_accumulator_value", s.optim.u.adagrad.initial_accumulator_value);
    eq_num("Adagrad.eps", s.optim.u.adagrad.eps);
    eq_num("Adagrad.maximize", s.optim.u.adagrad.maximize);
    etd_spec_free(&s);

    opt_spec("{\"type\":\"RMSprop\"}", &s);
    ck_assert_str_eq(s.optim.type->name, "RMSprop");
    eq_num("RMSprop.lr", s.optim.u.rmsprop.lr);
    eq_num("RMSprop.alpha", s.optim.u.rmsprop.alpha);
    eq_num("RMSprop.eps", s.optim.u.rmsprop.eps);
    eq_num("RMSprop.weight_decay", s.optim.u.rmsprop.weight_decay);
    eq_num("RMSprop.momentum", s.optim.u.rmsprop.momentum);
    eq_num("RMSprop.centered", s.optim.u.rmsprop.centered);
    eq_num("RMSprop.maximize", s.optim.u.rmsprop.maximize);
    etd_spec_free(&s);

    const char *adams[] = {"Adam", "AdamW"};
    for (int i = 0; i < 2; i++) {
        char j[64], key[64];
        snprintf(j, sizeof j, "{\"type\":\"%s\"}", adams[i]);
        opt_spec(j, &s);
        ck_assert_str_eq(s.optim.type->name, adams[i]);
#define A(field, val) (snprintf(key, sizeof key, "%s.%s", adams[i], field), eq_num(key, val))
        A("lr", s.optim.u.adam.lr);
        A("eps", s.optim.u.adam.eps);
        A("weight_decay", s.optim.u.adam.weight_decay);
        A("amsgrad", s.optim.u.adam.amsgrad);
        A("maximize", s.optim.u.adam.maximize);
#undef A
        snprintf(key, sizeof key, "%s.betas", adams[i]);
        const cJSON *b = tdef(key);
        ck_assert(s.optim.u.adam.beta1 == cJSON_GetArrayItem(b, 0)->valuedouble);
        ck_assert(s.optim.u.adam.beta2 == cJSON_GetArrayItem(b, 1)->valuedouble);
        etd_spec_free(&s);
    }
    opt_spec("{\"type\":\"NAdam\"}", &s);
    eq_num("NAdam.lr", s.optim.u.nadam.lr);
    eq_num("NAdam.eps", s.optim.u.nadam.eps);
    eq_num("NAdam.weight_decay", s.optim.u.nadam.weight_decay);
    eq_num("NAdam.momentum_decay", s.optim.u.nadam.momentum_decay);
    ck_assert(s.optim.u.nadam.beta1 == cJSON_GetArrayItem(tdef("NAdam.betas"), 0)->valuedouble);
    etd_spec_free(&s);
    opt_spec("{\"type\":\"RAdam\"}", &s);
    eq_num("RAdam.lr", s.optim.u.radam.lr);
    eq_num("RAdam.eps", s.optim.u.radam.eps);
    eq_num("RAdam.weight_decay", s.optim.u.radam.weight_decay);
    ck_assert(s.optim.u.radam.beta2 == cJSON_GetArrayItem(tdef("RAdam.betas"), 1)->valuedouble);
    etd_spec_free(&s);
    opt_spec("{\"type\":\"Adamax\"}", &s);
    eq_num("Adamax.lr", s.optim.u.adamax.lr);
    eq_num("Adamax.eps", s.optim.u.adamax.eps);
    eq_num("Adamax.weight_decay", s.optim.u.adamax.weight_decay);
    eq_num("Adamax.maximize", s.optim.u.adamax.maximize);
    etd_spec_free(&s);
    /* param_groups: prefixes and the keys each group sets (betas as beta1, beta2) */
    opt_spec("{\"type\":\"Adam\",\"lr\":0.01,\"param_groups\":[{\"params\":[\"0.\"],"
             "\"lr\":0.1,\"betas\":[0.5,0.6]},{\"params\":[\"1.weight\",\"1.bias\"],"
             "\"amsgrad\":true}]}", &s);
    ck_assert_int_eq(s.optim.ngroups, 2);
    ck_assert_str_eq(s.optim.groups[0].prefixes[0], "0.");
    ck_assert_int_eq(s.optim.groups[0].nset, 3);
    ck_assert_str_eq(s.optim.groups[0].key[1], "beta1");
    ck_assert(s.optim.groups[0].value[2] == 0.6);
    ck_assert_int_eq(s.optim.groups[1].nprefixes, 2);
    ck_assert_str_eq(s.optim.groups[1].key[0], "amsgrad");
    ck_assert(s.optim.groups[1].value[0] == 1);
    etd_spec_free(&s);
    opt_spec("{\"type\":\"Adam\",\"betas\":[0.5,0.75],\"lr\":0.02,\"amsgrad\":true}", &s);
    ck_assert(s.optim.u.adam.beta1 == 0.5 && s.optim.u.adam.beta2 == 0.75 && s.optim.u.adam.lr == 0.02 && s.optim.u.adam.amsgrad);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_optimizer_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\"}}", "optimizer.lr",
              "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,\"beta\":1}}",
              "optimizer.beta", "unknown field");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"betas\":[0.9,1]}}",
              "optimizer.betas[1]", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"lr\":-1}}",
              "optimizer.lr", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,"
              "\"nesterov\":true}}", "optimizer.nesterov", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"LBFGS\"}}", "LBFGS", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"lr\":0.1,\"lr\":0.2}}",
              "optimizer.lr", "repeated");
    /* param_groups: each group is checked as an optimizer would be */
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,"
              "\"param_groups\":[{\"params\":[\"0.\"],\"nesterov\":true}]}}",
              "optimizer.param_groups[0].nesterov", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,"
              "\"param_groups\":[{\"params\":[\"0.\"],\"betas\":[0.9,0.99]}]}}",
              "optimizer.param_groups[0].betas", "unknown field");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,"
              "\"param_groups\":[{\"lr\":0.2}]}}", "optimizer.param_groups[0].params", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\","
              "\"param_groups\":[{\"params\":[\"0.\"],\"lr\":-1}]}}",
              "optimizer.param_groups[0].lr", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\","
              "\"param_groups\":{}}}", "optimizer.param_groups", NULL);
}
END_TEST

/* ---- schedulers ---- */

static void sched_spec(const char *sched_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text, "{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":%s}",
             sched_json);
    must_parse(text, s);
}

START_TEST(test_every_scheduler_type_parses_with_torch_defaults)
{
    etd_spec s;
    must_parse("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert_ptr_null(s.sched.type);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"StepLR\",\"step_size\":3}", &s);
    ck_assert_str_eq(s.sched.type->name, "StepLR");
    ck_assert_int_eq(s.sched.u.step.step_size, 3);
    eq_num("StepLR.gamma", s.sched.u.step.gamma);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"MultiStepLR\",\"milestones\":[2,5]}", &s);
    ck_assert_str_eq(s.sched.type->name, "MultiStepLR");
    ck_assert_int_eq(s.sched.u.multistep.n, 2);
    ck_assert_int_eq(s.sched.u.multistep.milestones[1], 5);
    eq_num("MultiStepLR.gamma", s.sched.u.multistep.gamma);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"ExponentialLR\",\"gamma\":0.9}", &s);
    ck_assert_str_eq(s.sched.type->name, "ExponentialLR");
    ck_assert(s.sched.u.exp.gamma == 0.9);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"CosineAnnealingLR\",\"T_max\":10}", &s);
    ck_assert_str_eq(s.sched.type->name, "CosineAnnealingLR");
    ck_assert_int_eq(s.sched.u.cosine.T_max, 10);
    eq_num("CosineAnnealingLR.eta_min", s.sched.u.cosine.eta_min);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"LinearLR\"}", &s);
    ck_assert_str_eq(s.sched.type->name, "LinearLR");
    eq_num("LinearLR.start_factor", s.sched.u.linear.start_factor);
    eq_num("LinearLR.end_factor", s.sched.u.linear.end_factor);
    eq_num("LinearLR.total_iters", (double)s.sched.u.linear.total_iters);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_new_schedulers_parse_with_torch_defaults)
{
    etd_spec s;
    sched_spec("{\"type\":\"ConstantLR\"}", &s);
    eq_num("ConstantLR.factor", s.sched.u.constant.factor);
    eq_num("ConstantLR.total_iters", (double)s.sched.u.constant.total_iters);
    etd_spec_free(&s);
    sched_spec("{\"type\":\"CosineAnnealingWarmRestarts\",\"T_0\":4}", &s);
    eq_num("CosineAnnealingWarmRestarts.T_mult", (double)s.sched.u.warm.T_mult);
    eq_num("CosineAnnealingWarmRestarts.eta_min", s.sched.u.warm.eta_min);
    etd_spec_free(&s);
    sched_spec("{\"type\":\"OneCycleLR\",\"max_lr\":0.1,\"epochs\":3,\"steps_per_epoch\":7}", &s);
    ck_assert_int_eq(s.sched.u.onecycle.total_steps, 21);
    eq_num("OneCycleLR.pct_start", s.sched.u.onecycle.pct_start);
    eq_str("OneCycleLR.anneal_strategy", s.sched.u.onecycle.anneal_linear ? "linear" : "cos");
    eq_num("OneCycleLR.cycle_momentum", s.sched.u.onecycle.cycle_momentum);
    eq_num("OneCycleLR.base_momentum", s.sched.u.onecycle.base_momentum);
    eq_num("OneCycleLR.max_momentum", s.sched.u.onecycle.max_momentum);
    eq_num("OneCycleLR.div_factor", s.sched.u.onecycle.div_factor);
    eq_num("OneCycleLR.final_div_factor", s.sched.u.onecycle.final_div_factor);
    eq_num("OneCycleLR.three_phase", s.sched.u.onecycle.three_phase);
    etd_spec_free(&s);
    sched_spec("{\"type\":\"ReduceLROnPlateau\"}", &s);
    eq_str("ReduceLROnPlateau.mode", s.sched.u.plateau.mode_max ? "max" : "min");
    eq_num("ReduceLROnPlateau.factor", s.sched.u.plateau.factor);
    eq_num("ReduceLROnPlateau.patience", (double)s.sched.u.plateau.patience);
    eq_num("ReduceLROnPlateau.threshold", s.sched.u.plateau.threshold);
    eq_str("ReduceLROnPlateau.threshold_mode", s.sched.u.plateau.threshold_abs ? "abs" : "rel");
    eq_num("ReduceLROnPlateau.cooldown", (double)s.sched.u.plateau.cooldown);
    eq_num("ReduceLROnPlateau.min_lr", s.sched.u.plateau.min_lr);
    eq_num("ReduceLROnPlateau.eps", s.sched.u.plateau.eps);
    etd_spec_free(&s);
    sched_spec("{\"type\":\"ChainedScheduler\",\"schedulers\":["
               "{\"type\":\"LinearLR\",\"start_factor\":0.1,\"total_iters\":3},"
               "{\"type\":\"SequentialLR\",\"milestones\":[4],\"schedulers\":["
               "{\"type\":\"StepLR\",\"step_size\":2},{\"type\":\"ConstantLR\"}]}]}", &s);
    ck_assert_int_eq(s.sched.u.seq.n, 2);
    ck_assert_str_eq(s.sched.u.seq.kids[1].type->name, "SequentialLR");
    ck_assert_int_eq(s.sched.u.seq.kids[1].u.seq.kids[0].u.step.step_size, 2);
    ck_assert_int_eq(s.sched.u.seq.kids[1].u.seq.milestones[0], 4);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_scheduler_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"StepLR\"}}",
              "scheduler.step_size", "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"StepLR\",\"step_size\":1,\"T_max\":2}}",
              "scheduler.T_max", "unknown field");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"MultiStepLR\",\"milestones\":[1,-2]}}",
              "scheduler.milestones[1]", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"ExponentialLR\"}}",
              "scheduler.gamma", "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"LinearLR\",\"start_factor\":0}}",
              "scheduler.start_factor", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"CyclicLR\"}}",
              "CyclicLR", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"OneCycleLR\"}}",
              "scheduler.max_lr", "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"OneCycleLR\",\"max_lr\":0.1}}",
              "total_steps", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"ReduceLROnPlateau\",\"factor\":1}}",
              "scheduler.factor", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"SequentialLR\",\"schedulers\":[{\"type\":\"ConstantLR\"},"
              "{\"type\":\"ExponentialLR\",\"gamma\":0.9}]}}", "scheduler.milestones", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"SequentialLR\",\"milestones\":[2],\"schedulers\":["
              "{\"type\":\"ConstantLR\"},{\"type\":\"ReduceLROnPlateau\"}]}}",
              "scheduler.schedulers[1].type", "ReduceLROnPlateau");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"ChainedScheduler\",\"schedulers\":["
              "{\"type\":\"StepLR\"}]}}", "scheduler.schedulers[0].step_size", "missing");
    /* the spec promises that a parsed spec builds: et_linearlr_new refuses total_iters 0 */
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"LinearLR\",\"total_iters\":0}}",
              "scheduler.total_iters", NULL);
}
END_TEST


static Suite *suite(void)
{
    Suite *s = suite_create("spec_optim");
    TCase *tc;
    tc = tcase_create("optimizers");
    tcase_add_test(tc, test_every_optimizer_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_optimizer_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedulers");
    tcase_add_test(tc, test_every_scheduler_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_new_schedulers_parse_with_torch_defaults);
    tcase_add_test(tc, test_scheduler_errors_name_the_field);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    load_torch_defaults(); /* once: the forked tests inherit it */
    int rc = run_suite(suite());
    cJSON_Delete(torch_defaults);
    return rc;
}
