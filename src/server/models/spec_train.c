/* spec_train.c - the loss, optimizer and scheduler types of a model spec:
 * one row each (name, fields, parse, build), see spec.h for how to add one. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/models/spec.h"

#define NUM(key, def, lo, hi, dst) \
    do { double v_; if (!etd_field_num(o, key, false, def, lo, hi, &v_)) return false; dst = v_; } while (0)
#define BOOL(key, def, dst) \
    do { if (!etd_field_bool(o, key, def, &dst)) return false; } while (0)

/* ================================================================ losses */

static const char *const f_plain[] = {"reduction", NULL};
static const char *const f_ce[] = {"reduction", "label_smoothing", NULL};
static const char *const f_huber[] = {"reduction", "delta", NULL};
static const char *const f_sl1[] = {"reduction", "beta", NULL};

static bool ce_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_num(o, "label_smoothing", false, 0.0, 0.0, 1.0, &l->arg);
}

static bool huber_parse(etd_loss_spec *l, const etd_obj *o)
{
    if (!etd_field_num(o, "delta", false, 1.0, 0.0, FLT_MAX, &l->arg))
        return false;
    if (l->arg <= 0)
        return etd_field_fail(o, "delta", "expected a positive number");
    return true;
}

static bool sl1_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_num(o, "beta", false, 1.0, 0.0, FLT_MAX, &l->arg);
}

/* Losses between the output and a target of its shape. */
static bool same_shape_check(const etd_loss_spec *l, const et_tensor *out, const et_tensor *t,
                             etd_err *e)
{
    if (et_same_shape(out, t))
        return true;
    char a[160], b[160];
    et_shape_str(et_shape(out), et_ndim(out), a, sizeof a);
    et_shape_str(et_shape(t), et_ndim(t), b, sizeof b);
    etd_fail(e, ETD_EINVAL, "targets: expected shape %s (the model's output; %s compares them "
             "element by element), got %s", a, l->type->name, b);
    return false;
}

/* Class-index losses: output [N, C], targets [N] of whole numbers in [0, C)
 * (or torch's default ignore_index -100). */
static bool class_check(const etd_loss_spec *l, const et_tensor *out, const et_tensor *t,
                        etd_err *e)
{
    if (et_ndim(out) != 2)
        return true; /* [C] with a scalar target, or an error the library names */
    int64_t n = et_shape(out)[0], c = et_shape(out)[1];
    char a[160], b[160];
    et_shape_str(et_shape(out), et_ndim(out), a, sizeof a);
    et_shape_str(et_shape(t), et_ndim(t), b, sizeof b);
    if (et_same_shape(out, t)) {
        etd_fail(e, ETD_EINVAL, "targets: %s takes class indices, one per row: expected shape "
                 "[%lld], got %s like the output (one-hot or probability targets are not "
                 "supported; send the index of each row's class)", l->type->name, (long long)n, b);
        return false;
    }
    if (et_ndim(t) != 1 || et_shape(t)[0] != n) {
        etd_fail(e, ETD_EINVAL, "targets: expected shape [%lld] (one class index per row of the "
                 "output %s), got %s", (long long)n, a, b);
        return false;
    }
    /* int64 targets (what the endpoints make for class losses); float32 ones
     * holding whole numbers are accepted as the library does */
    if (et_tensor_dtype(t) == ET_INT64) {
        const int64_t *v = et_is_contiguous(t) ? et_data_int64_const(t) : NULL;
        for (int64_t i = 0; v && i < n; i++)
            if ((v[i] < 0 || v[i] >= c) && v[i] != -100) {
                etd_fail(e, ETD_EINVAL, "targets[%lld]: class %lld is out of range for %lld "
                         "classes (expected 0 to %lld, or -100 to ignore the row)", (long long)i,
                         (long long)v[i], (long long)c, (long long)c - 1);
                return false;
            }
        return true;
    }
    const float *v = et_is_contiguous(t) ? et_data_const(t) : NULL;
    for (int64_t i = 0; v && i < n; i++) {
        if (v[i] != floorf(v[i])) {
            etd_fail(e, ETD_EINVAL, "targets[%lld]: %g is not an integer (class indices are whole "
                     "numbers in [0, %lld))", (long long)i, (double)v[i], (long long)c);
            return false;
        }
        if ((v[i] < 0 || v[i] >= (float)c) && v[i] != -100.0f) {
            etd_fail(e, ETD_EINVAL, "targets[%lld]: class %g is out of range for %lld classes "
                     "(expected 0 to %lld, or -100 to ignore the row)", (long long)i,
                     (double)v[i], (long long)c, (long long)c - 1);
            return false;
        }
    }
    return true;
}

static et_tensor *mse_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_mse_loss(o, t, l->reduction);
}
static et_tensor *l1_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_l1_loss(o, t, l->reduction);
}
static et_tensor *ce_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_cross_entropy(o, t, l->reduction, (float)l->arg);
}
static et_tensor *nll_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_nll_loss(o, t, l->reduction);
}
static et_tensor *bce_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_bce_loss(o, t, l->reduction);
}
static et_tensor *bcel_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_bce_with_logits(o, t, l->reduction);
}
static et_tensor *huber_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_huber_loss(o, t, l->reduction, (float)l->arg);
}
static et_tensor *sl1_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_smooth_l1_loss(o, t, l->reduction, (float)l->arg);
}

const etd_loss_type etd_loss_types[] = {
    {"MSELoss", f_plain, NULL, same_shape_check, mse_fn, false},
    {"L1Loss", f_plain, NULL, same_shape_check, l1_fn, false},
    {"CrossEntropyLoss", f_ce, ce_parse, class_check, ce_fn, true},
    {"NLLLoss", f_plain, NULL, class_check, nll_fn, true},
    {"BCELoss", f_plain, NULL, same_shape_check, bce_fn, false},
    {"BCEWithLogitsLoss", f_plain, NULL, same_shape_check, bcel_fn, false},
    {"HuberLoss", f_huber, huber_parse, same_shape_check, huber_fn, false},
    {"SmoothL1Loss", f_sl1, sl1_parse, same_shape_check, sl1_fn, false},
};
const int etd_nloss_types = (int)(sizeof etd_loss_types / sizeof etd_loss_types[0]);

/* ================================================================ optimizers */

static const char *const sgd_fields[] = {"lr", "momentum", "dampening", "weight_decay",
                                         "nesterov", "maximize", NULL};

static bool sgd_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_sgd_opts *p = &s->u.sgd;
    *p = ET_SGD_DEFAULTS;
    /* torch.optim.SGD has no default lr: required here too */
    if (!etd_field_num(o, "lr", true, 0, 0, INFINITY, &p->lr))
        return false;
    NUM("momentum", 0.0, 0.0, INFINITY, p->momentum);
    NUM("dampening", 0.0, -INFINITY, INFINITY, p->dampening);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    BOOL("nesterov", false, p->nesterov);
    BOOL("maximize", false, p->maximize);
    if (p->nesterov && (p->momentum <= 0 || p->dampening != 0))
        return etd_field_fail(o, "nesterov",
                              "Nesterov momentum requires a momentum and zero dampening");
    return true;
}

static et_optim *sgd_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_sgd_new(p, n, s->u.sgd);
}

static const char *const adagrad_fields[] = {"lr", "lr_decay", "weight_decay",
                                             "initial_accumulator_value", "eps", "maximize", NULL};

static bool adagrad_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_adagrad_opts *p = &s->u.adagrad;
    *p = ET_ADAGRAD_DEFAULTS;
    NUM("lr", 1e-2, 0.0, INFINITY, p->lr);
    NUM("lr_decay", 0.0, 0.0, INFINITY, p->lr_decay);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    NUM("initial_accumulator_value", 0.0, 0.0, INFINITY, p->initial_accumulator_value);
    NUM("eps", 1e-10, 0.0, INFINITY, p->eps);
    BOOL("maximize", false, p->maximize);
    return true;
}

static et_optim *adagrad_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_adagrad_new(p, n, s->u.adagrad);
}

static const char *const rmsprop_fields[] = {"lr", "alpha", "eps", "weight_decay", "momentum",
                                             "centered", "maximize", NULL};

static bool rmsprop_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_rmsprop_opts *p = &s->u.rmsprop;
    *p = ET_RMSPROP_DEFAULTS;
    NUM("lr", 1e-2, 0.0, INFINITY, p->lr);
    NUM("alpha", 0.99, 0.0, INFINITY, p->alpha);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    NUM("momentum", 0.0, 0.0, INFINITY, p->momentum);
    BOOL("centered", false, p->centered);
    BOOL("maximize", false, p->maximize);
    return true;
}

static et_optim *rmsprop_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_rmsprop_new(p, n, s->u.rmsprop);
}

static const char *const adam_fields[] = {"lr", "betas", "eps", "weight_decay", "amsgrad",
                                          "maximize", NULL};

/* Adam and AdamW share their fields; AdamW's weight_decay defaults to 0.01 */
static bool adam_parse_common(etd_optim_spec *s, const etd_obj *o, bool w)
{
    et_adam_opts *p = &s->u.adam;
    *p = w ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
    NUM("lr", 1e-3, 0.0, INFINITY, p->lr);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    NUM("weight_decay", w ? 1e-2 : 0.0, 0.0, INFINITY, p->weight_decay);
    BOOL("amsgrad", false, p->amsgrad);
    BOOL("maximize", false, p->maximize);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o->o, "betas");
    if (!b)
        return true;
    if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2)
        return etd_field_fail(o, "betas", "expected a list of two numbers in [0, 1)");
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(b, i);
        double v = x ? x->valuedouble : -1;
        if (!cJSON_IsNumber(x) || !(v >= 0 && v < 1)) {
            char k[16];
            snprintf(k, sizeof k, "betas[%d]", i);
            return etd_field_fail(o, k, "expected a number in [0, 1)");
        }
        if (i == 0)
            p->beta1 = v;
        else
            p->beta2 = v;
    }
    return true;
}

static bool adam_parse(etd_optim_spec *s, const etd_obj *o) { return adam_parse_common(s, o, false); }
static bool adamw_parse(etd_optim_spec *s, const etd_obj *o) { return adam_parse_common(s, o, true); }

static et_optim *adam_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_adam_new(p, n, s->u.adam);
}

static et_optim *adamw_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_adamw_new(p, n, s->u.adam);
}

const etd_optim_type etd_optim_types[] = {
    {"SGD", sgd_fields, sgd_parse, sgd_build},
    {"Adagrad", adagrad_fields, adagrad_parse, adagrad_build},
    {"RMSprop", rmsprop_fields, rmsprop_parse, rmsprop_build},
    {"Adam", adam_fields, adam_parse, adam_build},
    {"AdamW", adam_fields, adamw_parse, adamw_build},
};
const int etd_noptim_types = (int)(sizeof etd_optim_types / sizeof etd_optim_types[0]);

/* ================================================================ schedulers
 * A scheduler steps once per optimizer step. */

static const char *const step_fields[] = {"step_size", "gamma", NULL};

static bool step_parse(etd_sched_spec *s, const etd_obj *o)
{
    if (!etd_field_int(o, "step_size", true, 0, 1, INT64_MAX, &s->u.step.step_size))
        return false;
    NUM("gamma", 0.1, 0.0, INFINITY, s->u.step.gamma);
    return true;
}

static et_scheduler *step_build(const etd_sched_spec *s, et_optim *o)
{
    return et_steplr_new(o, s->u.step.step_size, s->u.step.gamma);
}

static const char *const multistep_fields[] = {"milestones", "gamma", NULL};

static bool multistep_parse(etd_sched_spec *s, const etd_obj *o)
{
    NUM("gamma", 0.1, 0.0, INFINITY, s->u.multistep.gamma);
    return etd_field_ints(o, "milestones", true, 10000, 0, &s->u.multistep.milestones,
                          &s->u.multistep.n);
}

static et_scheduler *multistep_build(const etd_sched_spec *s, et_optim *o)
{
    return et_multisteplr_new(o, s->u.multistep.milestones, s->u.multistep.n,
                              s->u.multistep.gamma);
}

static void multistep_free(etd_sched_spec *s)
{
    free(s->u.multistep.milestones);
    s->u.multistep.milestones = NULL;
    s->u.multistep.n = 0;
}

static const char *const exp_fields[] = {"gamma", NULL};

static bool exp_parse(etd_sched_spec *s, const etd_obj *o)
{
    return etd_field_num(o, "gamma", true, 0, 0, INFINITY, &s->u.exp.gamma);
}

static et_scheduler *exp_build(const etd_sched_spec *s, et_optim *o)
{
    return et_exponentiallr_new(o, s->u.exp.gamma);
}

static const char *const cosine_fields[] = {"T_max", "eta_min", NULL};

static bool cosine_parse(etd_sched_spec *s, const etd_obj *o)
{
    if (!etd_field_int(o, "T_max", true, 0, 1, INT64_MAX, &s->u.cosine.T_max))
        return false;
    NUM("eta_min", 0.0, 0.0, INFINITY, s->u.cosine.eta_min);
    return true;
}

static et_scheduler *cosine_build(const etd_sched_spec *s, et_optim *o)
{
    return et_cosineannealinglr_new(o, s->u.cosine.T_max, s->u.cosine.eta_min);
}

static const char *const linear_fields[] = {"start_factor", "end_factor", "total_iters", NULL};

static bool linear_parse(etd_sched_spec *s, const etd_obj *o)
{
    /* torch takes total_iters 0 (the lr then stays at start_factor x lr for
     * ever); et_linearlr_new needs at least 1 */
    if (!etd_field_int(o, "total_iters", false, 5, 1, INT64_MAX, &s->u.linear.total_iters))
        return false;
    NUM("end_factor", 1.0, 0.0, 1.0, s->u.linear.end_factor);
    NUM("start_factor", 1.0 / 3.0, 0.0, 1.0, s->u.linear.start_factor);
    if (s->u.linear.start_factor <= 0)
        return etd_field_fail(o, "start_factor", "expected a number in (0, 1]");
    return true;
}

static et_scheduler *linear_build(const etd_sched_spec *s, et_optim *o)
{
    return et_linearlr_new(o, s->u.linear.start_factor, s->u.linear.end_factor,
                           s->u.linear.total_iters);
}

const etd_sched_type etd_sched_types[] = {
    {"StepLR", step_fields, step_parse, step_build, NULL},
    {"MultiStepLR", multistep_fields, multistep_parse, multistep_build, multistep_free},
    {"ExponentialLR", exp_fields, exp_parse, exp_build, NULL},
    {"CosineAnnealingLR", cosine_fields, cosine_parse, cosine_build, NULL},
    {"LinearLR", linear_fields, linear_parse, linear_build, NULL},
};
const int etd_nsched_types = (int)(sizeof etd_sched_types / sizeof etd_sched_types[0]);
