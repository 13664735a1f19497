/*
 * check_checkpoint.c - unit tests of the training checkpoint functions of
 * serialize.h: a run interrupted after step K and resumed from a checkpoint
 * file (in freshly built objects with different initial weights) must give
 * bit-identical parameters, optimizer state and lr at every later step to
 * the uninterrupted run; corrupt, truncated or mismatched checkpoints are
 * rejected with nothing changed.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nn_check.h"

#define TOTAL 12
#define RESUME_AT 5

typedef enum {
    RUN_ADAM_STEPLR, RUN_SGD_MOMENTUM_MULTISTEP,
    RUN_NADAM_GROUPS_SEQUENTIAL,   /* two parameter groups, LinearLR then warm restarts */
    RUN_SGD_ONECYCLE,              /* OneCycleLR cycles the momentum too */
    RUN_ADAMAX_PLATEAU,            /* ReduceLROnPlateau on the loss */
    RUN_RADAM_CHAINED
} run_kind;

typedef struct {
    et_generator *init, *drop;
    et_module *net;
    et_tensor *params[8];
    int np;
    et_optim *opt;
    et_scheduler *sched;
} run;

/* 3 -> 8 -> Tanh -> Dropout(0.25) -> 1.  `seed` sets the initial weights. */
static void run_new(run *r, run_kind kind, uint64_t seed)
{
    r->init = et_generator_new(seed);
    r->drop = et_generator_new(seed + 1000);
    r->net = et_sequential_new();
    et_sequential_append(r->net, et_linear_new(3, 8, true, r->init));
    et_sequential_append(r->net, et_tanh_new());
    et_sequential_append(r->net, et_dropout_new(0.25f, r->drop));
    et_sequential_append(r->net, et_linear_new(8, 1, true, r->init));
    r->np = et_module_num_params(r->net);
    for (int i = 0; i < r->np; i++)
        r->params[i] = et_module_param(r->net, i);
    if (kind == RUN_ADAM_STEPLR) {
        et_adam_opts o = ET_ADAM_DEFAULTS;
        o.lr = 0.031415926535897934; /* many digits: the lr must round-trip exactly */
        o.weight_decay = 0.01;
        r->opt = et_adam_new(r->params, r->np, o);
        r->sched = et_steplr_new(r->opt, 3, 0.7);
    } else if (kind == RUN_SGD_MOMENTUM_MULTISTEP) {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.1 / 3;
        o.momentum = 0.9;
        o.weight_decay = 1e-3;
        r->opt = et_sgd_new(r->params, r->np, o);
        const int64_t ms[] = {4, 7, 9};
        r->sched = et_multisteplr_new(r->opt, ms, 3, 0.3);
    } else if (kind == RUN_NADAM_GROUPS_SEQUENTIAL) {
        et_nadam_opts o = ET_NADAM_DEFAULTS;
        o.lr = 0.02;
        r->opt = et_nadam_new(r->params, 2, o);
        ck_assert_int_eq(et_optim_add_param_group(r->opt, r->params + 2, r->np - 2), 1);
        ck_assert_int_eq(et_optim_group_set(r->opt, 1, "lr", 0.1 / 7), ET_OK);
        ck_assert_int_eq(et_optim_group_set(r->opt, 1, "weight_decay", 0.01), ET_OK);
        et_scheduler *kids[2] = {et_linearlr_new(r->opt, 0.2, 1.0, 4),
                                 et_cosineannealingwarmrestarts_new(r->opt, 3, 2, 1e-4)};
        r->sched = et_sequentiallr_new(r->opt, kids, 2, (const int64_t[]){4});
    } else if (kind == RUN_SGD_ONECYCLE) {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.05;
        o.momentum = 0.9;
        r->opt = et_sgd_new(r->params, r->np, o);
        et_onecycle_opts c = ET_ONECYCLE_DEFAULTS;
        c.max_lr = 0.1;
        c.total_steps = TOTAL + 2;
        r->sched = et_onecyclelr_new(r->opt, c);
    } else if (kind == RUN_ADAMAX_PLATEAU) {
        et_adamax_opts o = ET_ADAMAX_DEFAULTS;
        o.lr = 0.05;
        r->opt = et_adamax_new(r->params, r->np, o);
        et_plateau_opts p = ET_PLATEAU_DEFAULTS;
        p.patience = 1;
        p.factor = 0.5;
        p.cooldown = 1;
        p.threshold = 0.5;   /* few steps count as improving: the lr moves */
        r->sched = et_reducelronplateau_new(r->opt, p);
    } else {
        et_radam_opts o = ET_RADAM_DEFAULTS;
        o.lr = 0.03;
        r->opt = et_radam_new(r->params, r->np, o);
        et_scheduler *kids[2] = {et_constantlr_new(r->opt, 0.5, 3),
                                 et_exponentiallr_new(r->opt, 0.9)};
        r->sched = et_chainedscheduler_new(kids, 2);
    }
    ck_assert_ptr_nonnull(r->opt);
    ck_assert_ptr_nonnull(r->sched);
}

static void run_free(run *r)
{
    et_scheduler_free(r->sched);
    et_optim_free(r->opt);
    et_module_free(r->net);
    et_generator_free(r->init);
    et_generator_free(r->drop);
}

/* One training step on a batch that depends only on the step number. */
static void run_step(run *r, int step)
{
    et_generator *dg = et_generator_new(77 + (uint64_t)step);
    et_pool_begin();
    et_tensor *x = et_randn(dg, ET_SHAPE(16, 3));
    et_tensor *y = et_randn(dg, ET_SHAPE(16, 1));
    et_optim_zero_grad(r->opt);
    et_tensor *loss = et_mse_loss(et_module_forward(r->net, x), y, ET_REDUCTION_MEAN);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    ck_assert_int_eq(et_optim_step(r->opt), ET_OK);
    ck_assert_int_eq(et_scheduler_step_metric(r->sched, et_item(loss)), ET_OK);
    et_pool_end();
    et_generator_free(dg);
}

/* Everything observable about the run, bit for bit. */
typedef struct {
    float p[200];
    float s[600];
    int np, ns;
    double lr;
    double hp[64];   /* every group's hyper-parameters (lr, momentum ...) */
    uint64_t gen[4];
} snapshot;

static void snap(const run *r, snapshot *sn)
{
    memset(sn, 0, sizeof *sn);
    for (int i = 0; i < r->np; i++) {
        ck_assert_int_le(sn->np + et_numel(r->params[i]), 200);
        et_copy_to(r->params[i], sn->p + sn->np);
        sn->np += (int)et_numel(r->params[i]);
    }
    for (int i = 0; i < et_optim_state_count(r->opt); i++) {
        et_tensor *t = et_optim_state_tensor(r->opt, i);
        ck_assert_int_le(sn->ns + et_numel(t), 600);
        et_copy_to(t, sn->s + sn->ns);
        sn->ns += (int)et_numel(t);
    }
    sn->lr = et_optim_get_lr(r->opt);
    int k = 0;
    for (int g = 0; g < et_optim_num_groups(r->opt); g++)
        for (int h = 0; h < et_optim_num_hparams(r->opt); h++) {
            ck_assert_int_lt(k, 64);
            sn->hp[k++] = et_optim_group_get(r->opt, g, et_optim_hparam_name(r->opt, h));
        }
    et_generator_get_state(r->drop, sn->gen);
}

static void assert_identical(const snapshot *a, const snapshot *b, int step)
{
    ck_assert_int_eq(a->np, b->np);
    ck_assert_int_eq(a->ns, b->ns);
    ck_assert_msg(memcmp(a->p, b->p, sizeof a->p) == 0, "parameters differ after step %d", step);
    ck_assert_msg(memcmp(a->s, b->s, sizeof a->s) == 0, "optimizer state differs after step %d",
                  step);
    ck_assert_msg(memcmp(&a->lr, &b->lr, sizeof a->lr) == 0, "lr %.17g vs %.17g after step %d",
                  a->lr, b->lr, step);
    for (int k = 0; k < 64; k++)
        ck_assert_msg(memcmp(&a->hp[k], &b->hp[k], sizeof a->hp[k]) == 0,
                      "hyper-parameter %d: %.17g vs %.17g after step %d", k, a->hp[k], b->hp[k],
                      step);
    ck_assert_msg(memcmp(a->gen, b->gen, sizeof a->gen) == 0, "generator differs after step %d",
                  step);
}

static void tmp_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/et_check_ckpt_%ld_%s.safetensors", (long)getpid(), tag);
}

static void resume_is_bit_identical(run_kind kind)
{
    snapshot ref[TOTAL + 1], got;
    run a;
    run_new(&a, kind, 1);
    char path[128];
    char tag[16];
    snprintf(tag, sizeof tag, "kind%d", (int)kind);
    tmp_path(path, sizeof path, tag);
    for (int step = 1; step <= TOTAL; step++) {
        run_step(&a, step);
        snap(&a, &ref[step]);
        if (step == RESUME_AT)
            ck_assert_int_eq(et_checkpoint_save(path, a.net, a.opt, a.sched, a.drop, step),
                             ET_OK);
    }
    run_free(&a);

    /* different initial weights and dropout stream: everything must come
     * from the file */
    run b;
    run_new(&b, kind, 2);
    int64_t step0 = -1;
    ck_assert_int_eq(et_checkpoint_load(path, b.net, b.opt, b.sched, b.drop, &step0), ET_OK);
    ck_assert_int_eq(step0, RESUME_AT);
    ck_assert_int_eq(et_optim_steps(b.opt), RESUME_AT);
    if (kind != RUN_RADAM_CHAINED)   /* a ChainedScheduler has no epoch of its own */
        ck_assert_int_eq(et_scheduler_last_epoch(b.sched), RESUME_AT);
    snap(&b, &got);
    assert_identical(&got, &ref[RESUME_AT], RESUME_AT);
    for (int step = RESUME_AT + 1; step <= TOTAL; step++) {
        run_step(&b, step);
        snap(&b, &got);
        assert_identical(&got, &ref[step], step);
    }
    run_free(&b);
    unlink(path);
}

START_TEST(adam_steplr_resumes_bit_identically) { resume_is_bit_identical(RUN_ADAM_STEPLR); }
END_TEST

START_TEST(sgd_momentum_resumes_bit_identically)
{
    resume_is_bit_identical(RUN_SGD_MOMENTUM_MULTISTEP);
}
END_TEST

/* parameter groups and the schedulers that keep state of their own */
START_TEST(groups_and_stateful_schedulers_resume_bit_identically)
{
    resume_is_bit_identical(RUN_NADAM_GROUPS_SEQUENTIAL);
    resume_is_bit_identical(RUN_SGD_ONECYCLE);
    resume_is_bit_identical(RUN_ADAMAX_PLATEAU);
    resume_is_bit_identical(RUN_RADAM_CHAINED);
}
END_TEST

/* A run trained for a few steps, its checkpoint as a buffer. */
static void trained_buffer(run *r, uint8_t **buf, size_t *len)
{
    run_new(r, RUN_ADAM_STEPLR, 1);
    for (int step = 1; step <= 3; step++)
        run_step(r, step);
    et_tensor_dict *d = et_checkpoint_state(r->net, r->opt, r->sched, r->drop, 3);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(et_safetensors_dump(d, buf, len), ET_OK);
    et_tensor_dict_free(d);
}

START_TEST(truncated_checkpoint_files_are_rejected_unchanged)
{
    run a, b;
    uint8_t *buf;
    size_t len;
    trained_buffer(&a, &buf, &len);
    run_new(&b, RUN_ADAM_STEPLR, 2);
    snapshot before, after;
    snap(&b, &before);
    char path[128];
    tmp_path(path, sizeof path, "trunc");
    /* every truncation of the header region and a spread through the data */
    for (size_t cut = 0; cut < len; cut += cut < 600 ? 1 : 97) {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, cut, f), cut);
        fclose(f);
        int64_t step = -1;
        et_status st = et_checkpoint_load(path, b.net, b.opt, b.sched, b.drop, &step);
        ck_assert_msg(st == ET_ERR_FORMAT, "cut at %zu of %zu: status %d", cut, len, (int)st);
        ck_assert_int_eq(step, -1);
        snap(&b, &after);
        assert_identical(&after, &before, (int)cut);
    }
    ck_assert_int_eq(et_checkpoint_load("/nonexistent/dir/x.safetensors", b.net, b.opt, b.sched,
                                        b.drop, NULL), ET_ERR_IO);
    unlink(path);
    free(buf);
    run_free(&a);
    run_free(&b);
}
END_TEST

/* Parse buf, apply `edit` to the dict, restore into b: must fail with
 * `want` and leave b exactly as it was. */
static void expect_rejected(const uint8_t *buf, size_t len, run *b,
                            void (*edit)(et_tensor_dict *), et_status want, const char *what)
{
    et_tensor_dict *d = NULL;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &d), ET_OK);
    edit(d);
    snapshot before, after;
    snap(b, &before);
    int64_t last_epoch = et_scheduler_last_epoch(b->sched);
    et_status st = et_checkpoint_restore(d, b->net, b->opt, b->sched, b->drop, NULL);
    ck_assert_msg(st == want, "%s: status %d (%s), expected %d", what, (int)st, et_errmsg(),
                  (int)want);
    ck_assert_msg(strlen(et_errmsg()) > 0, "%s: no message", what);
    snap(b, &after);
    assert_identical(&after, &before, 0);
    ck_assert_int_eq(et_scheduler_last_epoch(b->sched), last_epoch);
    et_tensor_dict_free(d);
}

static void edit_format(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "format", "pt"); }
static void edit_step(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "step", "3x"); }
static void edit_lr(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "optim.lr", "nan"); }
static void edit_epoch(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "scheduler.last_epoch", "-1"); }
static void edit_optim_type(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "optim.type", "SGD"); }
static void edit_sched_type(et_tensor_dict *d)
{
    et_tensor_dict_set_meta(d, "scheduler.type", "ExponentialLR");
}
static void edit_gen(et_tensor_dict *d) { et_tensor_dict_set_meta(d, "generator.state", "1 2 3"); }
static void edit_gen_zero(et_tensor_dict *d)
{
    et_tensor_dict_set_meta(d, "generator.state", "0 0 0 0");
}
/* optimizer entry of the wrong shape: the module (loaded first) must not change */
static void edit_optim_shape(et_tensor_dict *d)
{
    et_tensor *t = et_zeros(ET_SHAPE(2, 2));
    et_tensor_dict_set(d, "optim.0.exp_avg", t);
    et_tensor_free(t);
}
static void edit_model_shape(et_tensor_dict *d)
{
    et_tensor *t = et_zeros(ET_SHAPE(8, 4));
    et_tensor_dict_set(d, "model.0.weight", t);
    et_tensor_free(t);
}
static void edit_extra(et_tensor_dict *d)
{
    et_tensor *t = et_zeros(ET_SHAPE(1));
    et_tensor_dict_set(d, "stray", t);
    et_tensor_free(t);
}
static void edit_extra_optim(et_tensor_dict *d)
{
    et_tensor *t = et_zeros(ET_SHAPE(1));
    et_tensor_dict_set(d, "optim.9.exp_avg", t);
    et_tensor_free(t);
}

START_TEST(corrupt_or_mismatched_checkpoints_change_nothing)
{
    run a, b;
    uint8_t *buf;
    size_t len;
    trained_buffer(&a, &buf, &len);
    run_new(&b, RUN_ADAM_STEPLR, 2);
    expect_rejected(buf, len, &b, edit_format, ET_ERR_FORMAT, "format");
    expect_rejected(buf, len, &b, edit_step, ET_ERR_FORMAT, "step");
    expect_rejected(buf, len, &b, edit_lr, ET_ERR_FORMAT, "lr");
    expect_rejected(buf, len, &b, edit_epoch, ET_ERR_FORMAT, "last_epoch");
    expect_rejected(buf, len, &b, edit_optim_type, ET_ERR_FORMAT, "optim.type");
    expect_rejected(buf, len, &b, edit_sched_type, ET_ERR_FORMAT, "scheduler.type");
    expect_rejected(buf, len, &b, edit_gen, ET_ERR_FORMAT, "generator");
    expect_rejected(buf, len, &b, edit_gen_zero, ET_ERR_FORMAT, "generator zero");
    expect_rejected(buf, len, &b, edit_optim_shape, ET_ERR_SHAPE, "optim shape");
    expect_rejected(buf, len, &b, edit_model_shape, ET_ERR_SHAPE, "model shape");
    expect_rejected(buf, len, &b, edit_extra, ET_ERR_FORMAT, "stray tensor");
    expect_rejected(buf, len, &b, edit_extra_optim, ET_ERR_FORMAT, "extra optim state");
    /* a plain state_dict file is not a checkpoint */
    et_tensor_dict *sd = et_module_state_dict(b.net);
    ck_assert_int_eq(et_checkpoint_restore(sd, b.net, b.opt, b.sched, b.drop, NULL),
                     ET_ERR_FORMAT);
    et_tensor_dict_free(sd);
    /* the unedited buffer restores */
    et_tensor_dict *d = NULL;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &d), ET_OK);
    ck_assert_int_eq(et_checkpoint_restore(d, b.net, b.opt, b.sched, b.drop, NULL), ET_OK);
    ck_assert_int_eq(et_scheduler_last_epoch(b.sched), 3);
    et_tensor_dict_free(d);
    free(buf);
    run_free(&a);
    run_free(&b);
}
END_TEST

START_TEST(weights_only_restore_and_bad_arguments)
{
    run a, b;
    uint8_t *buf;
    size_t len;
    trained_buffer(&a, &buf, &len);
    run_new(&b, RUN_ADAM_STEPLR, 2);
    et_tensor_dict *d = NULL;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &d), ET_OK);
    /* NULL optimizer/scheduler/generator: only the module is restored */
    ck_assert_int_eq(et_checkpoint_restore(d, b.net, NULL, NULL, NULL, NULL), ET_OK);
    for (int i = 0; i < a.np; i++)
        ck_assert_int_eq(memcmp(et_data(a.params[i]), et_data(b.params[i]),
                                (size_t)et_numel(a.params[i]) * 4), 0);
    ck_assert_int_eq(et_optim_steps(b.opt), 0);
    ck_assert_int_eq(et_checkpoint_restore(d, b.net, NULL, b.sched, NULL, NULL), ET_ERR_ARG);
    ck_assert_int_eq(et_checkpoint_restore(NULL, b.net, NULL, NULL, NULL, NULL), ET_ERR_ARG);
    ck_assert_ptr_null(et_checkpoint_state(NULL, NULL, NULL, NULL, 0));
    ck_assert_ptr_null(et_checkpoint_state(b.net, NULL, NULL, NULL, -1));
    ck_assert_int_eq(et_checkpoint_save(NULL, b.net, NULL, NULL, NULL, 0), ET_ERR_ARG);
    et_tensor_dict_free(d);
    free(buf);
    run_free(&a);
    run_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_checkpoint");
    TCase *tc = tcase_create("resume");
    tcase_add_test(tc, adam_steplr_resumes_bit_identically);
    tcase_add_test(tc, sgd_momentum_resumes_bit_identically);
    tcase_add_test(tc, groups_and_stateful_schedulers_resume_bit_identically);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("reject");
    tcase_add_test(tc, truncated_checkpoint_files_are_rejected_unchanged);
    tcase_add_test(tc, corrupt_or_mismatched_checkpoints_change_nothing);
    tcase_add_test(tc, weights_only_restore_and_bad_arguments);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
