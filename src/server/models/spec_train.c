/* spec_train.c - the loss, optimizer and scheduler types of a model spec:
 * one row each (name, fields, parse, build), see spec.h for how to add one. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/spec.h"
#include "server/models/spec_losses.h"

#define NUM(key, def, lo, hi, dst) \
    do { double v_; if (!etd_field_num(o, key, false, def, lo, hi, &v_)) return false; dst = v_; } while (0)
#define BOOL(key, def, dst) \
    do { if (!etd_field_bool(o, key, def, &dst)) return false; } while (0)

/* ================================================================ losses */

static const char *const f_plain[] = {"reduction", NULL};
static const char *const f_ce[] = {"weight", "ignore_index", "reduction", "label_smoothing", NULL};
static const char *const f_nll[] = {"weight", "ignore_index", "reduction", NULL};
static const char *const f_huber[] = {"reduction", "delta", NULL};
static const char *const f_sl1[] = {"reduction", "beta", NULL};
static const char *const f_bcel[] = {"weight", "reduction", "pos_weight", NULL};
static const char *const f_kl[] = {"reduction", "log_target", NULL};

/* A list of numbers (torch's weight tensors, one per class / output column)
 * as malloc'ed floats; absent: NULL, 0. */
static bool field_floats(const etd_obj *o, const char *key, float **out, int *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o->o, key);
    *out = NULL;
    *n = 0;
    if (!v || cJSON_IsNull(v))
        return true;
    int k = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || k < 1 || k > 1000000)
        return etd_field_fail(o, key, "expected a non-empty list of numbers");
    float *a = malloc((size_t)k * sizeof *a);
    if (!a)
        return etd_fail(o->e, ETD_ENOMEM, "%s.%s: out of memory", o->path, key), false;
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > FLT_MAX) {
            free(a);
            char k2[64];
            snprintf(k2, sizeof k2, "%s[%d]", key, i);
            return etd_field_fail(o, k2, "expected a finite number");
        }
        a[i] = (float)x->valuedouble;
    }
    *out = a;
    *n = k;
    return true;
}

static bool class_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_int(o, "ignore_index", false, -100, INT64_MIN / 2, INT64_MAX / 2,
                         &l->ignore_index) &&
           field_floats(o, "weight", &l->weight, &l->nweight);
}

static bool ce_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_num(o, "label_smoothing", false, 0.0, 0.0, 1.0, &l->arg) &&
           class_parse(l, o);
}

static bool bcel_parse(etd_loss_spec *l, const etd_obj *o)
{
    return field_floats(o, "weight", &l->weight, &l->nweight) &&
           field_floats(o, "pos_weight", &l->pos_weight, &l->npos_weight);
}

static bool kl_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_bool(o, "log_target", false, &l->flag);
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

/* Class losses: output [N, C] (or [N, C, d1, ...]) with targets of class
 * indices [N] ([N, d1, ...]), whole numbers in [0, C) or ignore_index;
 * CrossEntropyLoss also takes probability targets shaped like the output. */
static bool class_check(const etd_loss_spec *l, const et_tensor *out, const et_tensor *t,
                        etd_err *e)
{
    int nd = et_ndim(out);
    if (nd < 2)
        return true; /* [C] with a scalar target, or an error the library names */
    const int64_t *os = et_shape(out);
    int64_t c = os[1];
    char a[160], b[160];
    et_shape_str(os, nd, a, sizeof a);
    et_shape_str(et_shape(t), et_ndim(t), b, sizeof b);
    if (l->weight && l->nweight != c) {
        etd_fail(e, ETD_EINVAL, "loss.weight: %d class weights for an output of %lld classes %s",
                 l->nweight, (long long)c, a);
        return false;
    }
    bool ce = strcmp(l->type->name, "CrossEntropyLoss") == 0;
    if (et_same_shape(out, t)) {
        if (ce && l->ignore_index == -100)
            return true; /* class probabilities */
        etd_fail(e, ETD_EINVAL, "targets: %s takes class indices, one per row: expected shape "
                 "[%lld], got %s like the output (%s)", l->type->name, (long long)os[0], b,
                 ce ? "probability targets do not take an ignore_index"
                    : "probability targets are CrossEntropyLoss's; send the index of each row's "
                      "class");
        return false;
    }
    /* the output's shape without the class dim */
    int64_t want[ET_MAX_DIMS];
    int nw = 0;
    for (int d = 0; d < nd; d++)
        if (d != 1)
            want[nw++] = os[d];
    bool ok = et_ndim(t) == nw;
    for (int d = 0; ok && d < nw; d++)
        ok = et_shape(t)[d] == want[d];
    if (!ok) {
        char w[160];
        et_shape_str(want, nw, w, sizeof w);
        etd_fail(e, ETD_EINVAL, "targets: expected shape %s (one class index per %s of the "
                 "output %s%s), got %s", w, nd == 2 ? "row" : "position", a,
                 ce ? ", or class probabilities of its shape" : "", b);
        return false;
    }
    int64_t n = et_numel(t);
    /* int64 targets (what the endpoints make for class losses); float32 ones
     * holding whole numbers are accepted as the library does */
    if (et_tensor_dtype(t) == ET_INT64) {
        const int64_t *v = et_is_contiguous(t) ? et_data_int64_const(t) : NULL;
        for (int64_t i = 0; v && i < n; i++)
            if ((v[i] < 0 || v[i] >= c) && v[i] != l->ignore_index) {
                etd_fail(e, ETD_EINVAL, "targets[%lld]: class %lld is out of range for %lld "
                         "classes (expected 0 to %lld, or %lld to ignore the row)", (long long)i,
                         (long long)v[i], (long long)c, (long long)c - 1,
                         (long long)l->ignore_index);
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
        if ((v[i] < 0 || v[i] >= (float)c) && (double)v[i] != (double)l->ignore_index) {
            etd_fail(e, ETD_EINVAL, "targets[%lld]: class %g is out of range for %lld classes "
                     "(expected 0 to %lld, or %lld to ignore it)", (long long)i, (double)v[i],
                     (long long)c, (long long)c - 1, (long long)l->ignore_index);
            return false;
        }
    }
    return true;
}

/* BCEWithLogitsLoss: targets shaped like the output; weight / pos_weight one
 * per output column (broadcast over the batch, like a torch tensor [C]). */
static bool bcel_check(const etd_loss_spec *l, const et_tensor *out, const et_tensor *t,
                       etd_err *e)
{
    if (!same_shape_check(l, out, t, e))
        return false;
    int64_t c = et_ndim(out) ? et_shape(out)[et_ndim(out) - 1] : 1;
    if ((l->weight && l->nweight != c) || (l->pos_weight && l->npos_weight != c)) {
        etd_fail(e, ETD_EINVAL, "loss.%s: %d values for an output whose last dimension is %lld "
                 "(one per output column)", l->weight && l->nweight != c ? "weight" : "pos_weight",
                 l->weight && l->nweight != c ? l->nweight : l->npos_weight, (long long)c);
        return false;
    }
    return true;
}

/* The loss's weights as a [n] tensor (owned by the caller's pool: losses run in one). */
static et_tensor *weights(const float *w, int n)
{
    return w ? et_tensor_new(w, ET_SHAPE(n)) : NULL;
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
    /* whole-number probabilities (one-hot rows) arrive as int64 */
    if (et_tensor_dtype(t) == ET_INT64 && et_same_shape(o, t) && !(t = et_to_dtype(t, ET_FLOAT32)))
        return NULL;
    et_class_loss_opts c = {weights(l->weight, l->nweight), l->ignore_index, (float)l->arg};
    return et_cross_entropy_ex(o, t, l->reduction, c);
}
static et_tensor *nll_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    et_class_loss_opts c = {weights(l->weight, l->nweight), l->ignore_index, 0.0f};
    return et_nll_loss_ex(o, t, l->reduction, c);
}
static et_tensor *kl_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_kl_div(o, t, l->reduction, l->flag);
}
static et_tensor *bce_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_bce_loss(o, t, l->reduction);
}
static et_tensor *bcel_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_bce_with_logits_ex(o, t, l->reduction, weights(l->weight, l->nweight),
                                 weights(l->pos_weight, l->npos_weight));
}
static et_tensor *huber_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_huber_loss(o, t, l->reduction, (float)l->arg);
}
static et_tensor *sl1_fn(const etd_loss_spec *l, et_tensor *o, et_tensor *t)
{
    return et_smooth_l1_loss(o, t, l->reduction, (float)l->arg);
}

double etd_spec_loss_norm(const etd_loss_spec *l, const et_tensor *target)
{
    if (l->reduction == ET_REDUCTION_SUM)
        return 0;
    int64_t n = et_numel(target);
    if (l->reduction == ET_REDUCTION_BATCHMEAN)
        return et_ndim(target) > 0 ? (double)et_shape(target)[0] : 1;
    if (l->type->class_targets && et_tensor_dtype(target) == ET_INT64) {
        /* torch: sum of weight[target] over the targets not ignored */
        const int64_t *v = et_data_int64_const(target);
        double d = 0;
        for (int64_t i = 0; v && i < n; i++)
            if (v[i] != l->ignore_index)
                d += l->weight && v[i] >= 0 && v[i] < l->nweight ? (double)l->weight[v[i]] : 1.0;
        return d;
    }
    if (l->type->class_targets) /* probabilities [N, C, ...]: the positions */
        return et_ndim(target) >= 2 && et_shape(target)[1] ? (double)(n / et_shape(target)[1]) : 1;
    return (double)n;
}

const etd_loss_type etd_loss_types[] = {
    {"MSELoss", f_plain, NULL, same_shape_check, mse_fn, false, false, 0, false, NULL},
    {"L1Loss", f_plain, NULL, same_shape_check, l1_fn, false, false, 0, false, NULL},
    {"CrossEntropyLoss", f_ce, ce_parse, class_check, ce_fn, true, true, 0, false, NULL},
    {"NLLLoss", f_nll, class_parse, class_check, nll_fn, true, false, 0, false, NULL},
    {"BCELoss", f_plain, NULL, same_shape_check, bce_fn, false, false, 0, false, NULL},
    {"BCEWithLogitsLoss", f_bcel, bcel_parse, bcel_check, bcel_fn, false, false, 0, false, NULL},
    {"HuberLoss", f_huber, huber_parse, same_shape_check, huber_fn, false, false, 0, false, NULL},
    {"SmoothL1Loss", f_sl1, sl1_parse, same_shape_check, sl1_fn, false, false, 0, false, NULL},
    {"KLDivLoss", f_kl, kl_parse, same_shape_check, kl_fn, false, false, 0, false, NULL},
    /* several outputs of a graph model (spec_losses.c): only in a loss list */
    {"MarginRankingLoss", etd_margin_fields, etd_margin_parse, NULL, NULL, false, false, 2, false,
     etd_margin_ranking_fn},
    {"CosineEmbeddingLoss", etd_margin_fields, etd_margin_parse, NULL, NULL, false, false, 2,
     false, etd_cosine_embedding_fn},
    {"TripletMarginLoss", etd_triplet_fields, etd_triplet_parse, NULL, NULL, false, false, 3, true,
     etd_triplet_fn},
};
const int etd_nloss_types = (int)(sizeof etd_loss_types / sizeof etd_loss_types[0]);

/* ================================================================ optimizers */

/* torch's constructor arguments; every optimizer also takes "param_groups" (not
 * one of them: spec.c parses it, see docs/API.md) */
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

/* torch's betas=(beta1, beta2); absent: *b1, *b2 stay */
static bool parse_betas(const etd_obj *o, double *b1, double *b2)
{
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
        *(i == 0 ? b1 : b2) = v;
    }
    return true;
}

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
    return parse_betas(o, &p->beta1, &p->beta2);
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

static const char *const nadam_fields[] = {"lr", "betas", "eps", "weight_decay",
                                           "momentum_decay", NULL};

static bool nadam_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_nadam_opts *p = &s->u.nadam;
    *p = ET_NADAM_DEFAULTS;
    NUM("lr", 2e-3, 0.0, INFINITY, p->lr);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    NUM("momentum_decay", 4e-3, 0.0, INFINITY, p->momentum_decay);
    return parse_betas(o, &p->beta1, &p->beta2);
}

static et_optim *nadam_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_nadam_new(p, n, s->u.nadam);
}

static const char *const radam_fields[] = {"lr", "betas", "eps", "weight_decay",
                                           NULL};

static bool radam_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_radam_opts *p = &s->u.radam;
    *p = ET_RADAM_DEFAULTS;
    NUM("lr", 1e-3, 0.0, INFINITY, p->lr);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    return parse_betas(o, &p->beta1, &p->beta2);
}

static et_optim *radam_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_radam_new(p, n, s->u.radam);
}

static const char *const adamax_fields[] = {"lr", "betas", "eps", "weight_decay", "maximize", NULL};

static bool adamax_parse(etd_optim_spec *s, const etd_obj *o)
{
    et_adamax_opts *p = &s->u.adamax;
    *p = ET_ADAMAX_DEFAULTS;
    NUM("lr", 2e-3, 0.0, INFINITY, p->lr);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
    BOOL("maximize", false, p->maximize);
    return parse_betas(o, &p->beta1, &p->beta2);
}

static et_optim *adamax_build(const etd_optim_spec *s, et_tensor *const *p, int n)
{
    return et_adamax_new(p, n, s->u.adamax);
}

const etd_optim_type etd_optim_types[] = {
    {"SGD", sgd_fields, sgd_parse, sgd_build},
    {"Adagrad", adagrad_fields, adagrad_parse, adagrad_build},
    {"RMSprop", rmsprop_fields, rmsprop_parse, rmsprop_build},
    {"Adam", adam_fields, adam_parse, adam_build},
    {"AdamW", adam_fields, adamw_parse, adamw_build},
    {"NAdam", nadam_fields, nadam_parse, nadam_build},
    {"RAdam", radam_fields, radam_parse, radam_build},
    {"Adamax", adamax_fields, adamax_parse, adamax_build},
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

static const char *const constant_fields[] = {"factor", "total_iters", NULL};

static bool constant_parse(etd_sched_spec *s, const etd_obj *o)
{
    NUM("factor", 1.0 / 3.0, 0.0, 1.0, s->u.constant.factor);
    if (s->u.constant.factor <= 0)   /* torch divides by it at total_iters */
        return etd_field_fail(o, "factor", "expected a number in (0, 1]");
    return etd_field_int(o, "total_iters", false, 5, 0, INT64_MAX, &s->u.constant.total_iters);
}

static et_scheduler *constant_build(const etd_sched_spec *s, et_optim *o)
{
    return et_constantlr_new(o, s->u.constant.factor, s->u.constant.total_iters);
}

static const char *const warm_fields[] = {"T_0", "T_mult", "eta_min", NULL};

static bool warm_parse(etd_sched_spec *s, const etd_obj *o)
{
    NUM("eta_min", 0.0, 0.0, INFINITY, s->u.warm.eta_min);
    return etd_field_int(o, "T_0", true, 0, 1, (int64_t)1 << 40, &s->u.warm.T_0) &&
           etd_field_int(o, "T_mult", false, 1, 1, 1024, &s->u.warm.T_mult);
}

static et_scheduler *warm_build(const etd_sched_spec *s, et_optim *o)
{
    return et_cosineannealingwarmrestarts_new(o, s->u.warm.T_0, s->u.warm.T_mult,
                                              s->u.warm.eta_min);
}

static const char *const onecycle_fields[] = {
    "max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start", "anneal_strategy",
    "cycle_momentum", "base_momentum", "max_momentum", "div_factor", "final_div_factor",
    "three_phase", NULL};

static bool onecycle_parse(etd_sched_spec *s, const etd_obj *o)
{
    static const char *const strategies[] = {"cos", "linear", NULL};
    et_onecycle_opts *c = &s->u.onecycle;
    *c = ET_ONECYCLE_DEFAULTS;
    int64_t epochs = 0, per = 0, total = 0;
    int strat = 0;
    if (!etd_field_num(o, "max_lr", true, 0, 0.0, INFINITY, &c->max_lr) ||
        !etd_field_int(o, "total_steps", false, 0, 1, INT64_MAX / 2, &total) ||
        !etd_field_int(o, "epochs", false, 0, 1, INT64_MAX / 2, &epochs) ||
        !etd_field_int(o, "steps_per_epoch", false, 0, 1, INT64_MAX / 2, &per) ||
        !etd_field_choice(o, "anneal_strategy", strategies, 0, &strat))
        return false;
    /* torch: total_steps, else epochs * steps_per_epoch */
    if (!total && !(epochs && per))
        return etd_field_fail(o, NULL, "expected total_steps, or epochs and steps_per_epoch "
                              "(the number of optimizer steps of the cycle)");
    if (!total && epochs > (INT64_MAX / 2) / per)
        return etd_field_fail(o, "epochs", "epochs * steps_per_epoch is too large");
    c->total_steps = total ? total : epochs * per;
    c->anneal_linear = strat == 1;
    NUM("pct_start", 0.3, 0.0, 1.0, c->pct_start);
    BOOL("cycle_momentum", true, c->cycle_momentum);
    NUM("base_momentum", 0.85, 0.0, 1.0, c->base_momentum);
    NUM("max_momentum", 0.95, 0.0, 1.0, c->max_momentum);
    NUM("div_factor", 25.0, 0.0, INFINITY, c->div_factor);
    NUM("final_div_factor", 1e4, 0.0, INFINITY, c->final_div_factor);
    BOOL("three_phase", false, c->three_phase);
    if (c->div_factor <= 0 || c->final_div_factor <= 0)
        return etd_field_fail(o, c->div_factor <= 0 ? "div_factor" : "final_div_factor",
                              "expected a positive number");
    return true;
}

static et_scheduler *onecycle_build(const etd_sched_spec *s, et_optim *o)
{
    return et_onecyclelr_new(o, s->u.onecycle);
}

static const char *const plateau_fields[] = {"mode", "factor", "patience", "threshold",
                                             "threshold_mode", "cooldown", "min_lr", "eps", NULL};

/* steps on each optimizer step's training loss (the mean over its batches) */
static bool plateau_parse(etd_sched_spec *s, const etd_obj *o)
{
    static const char *const modes[] = {"min", "max", NULL};
    static const char *const tmodes[] = {"rel", "abs", NULL};
    et_plateau_opts *p = &s->u.plateau;
    *p = ET_PLATEAU_DEFAULTS;
    int mode = 0, tmode = 0;
    if (!etd_field_choice(o, "mode", modes, 0, &mode) ||
        !etd_field_choice(o, "threshold_mode", tmodes, 0, &tmode) ||
        !etd_field_int(o, "patience", false, 10, 0, INT64_MAX / 2, &p->patience) ||
        !etd_field_int(o, "cooldown", false, 0, 0, INT64_MAX / 2, &p->cooldown))
        return false;
    p->mode_max = mode == 1;
    p->threshold_abs = tmode == 1;
    NUM("factor", 0.1, 0.0, 1.0, p->factor);
    if (p->factor >= 1.0)
        return etd_field_fail(o, "factor", "expected a number in [0, 1) (torch: factor should "
                              "be < 1.0)");
    NUM("threshold", 1e-4, 0.0, INFINITY, p->threshold);
    NUM("min_lr", 0.0, 0.0, INFINITY, p->min_lr);
    NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
    return true;
}

static et_scheduler *plateau_build(const etd_sched_spec *s, et_optim *o)
{
    return et_reducelronplateau_new(o, s->u.plateau);
}

static const char *const seq_fields[] = {"schedulers", "milestones", NULL};
static const char *const chained_fields[] = {"schedulers", NULL};

/* "schedulers": [scheduler objects] -- a SequentialLR's or ChainedScheduler's
 * children.  etd_sched_parse leaves the nesting depth in u.seq.n. */
static bool kids_parse(etd_sched_spec *s, const etd_obj *o, bool sequential)
{
    int depth = s->u.seq.n;
    s->u.seq.n = 0;
    s->u.seq.kids = NULL;
    s->u.seq.milestones = NULL;
    s->u.seq.nm = 0;
    const cJSON *ks = cJSON_GetObjectItemCaseSensitive(o->o, "schedulers");
    int n = cJSON_GetArraySize(ks);
    if (!cJSON_IsArray(ks) || n < 1 || n > 8)
        return etd_field_fail(o, "schedulers", "expected a list of 1 to 8 schedulers");
    s->u.seq.kids = calloc((size_t)n, sizeof *s->u.seq.kids);
    if (!s->u.seq.kids)
        return etd_fail(o->e, ETD_ENOMEM, "%s: out of memory", o->path), false;
    int i = 0;
    for (const cJSON *k = ks->child; k; k = k->next, i++) {
        char path[96];
        snprintf(path, sizeof path, "%s.schedulers[%d]", o->path, i);
        etd_sched_spec *kid = &s->u.seq.kids[i];
        if (!etd_sched_parse(k, path, depth + 1, kid, o->e))
            return false;
        s->u.seq.n = i + 1;
        const char *t = kid->type->name;
        if (!strcmp(t, "ReduceLROnPlateau") ||
            (sequential && (!strcmp(t, "SequentialLR") || !strcmp(t, "ChainedScheduler")))) {
            etd_obj ko = {k, path, o->e};
            return etd_field_fail(&ko, "type", "%s cannot be a child of %s (%s)", t,
                                  sequential ? "SequentialLR" : "ChainedScheduler",
                                  !strcmp(t, "ReduceLROnPlateau")
                                      ? "it steps on a metric, not on the epoch"
                                      : "it has no step(0) to start at a milestone");
        }
    }
    if (!sequential)
        return true;
    if (!etd_field_ints(o, "milestones", n > 1, 8, 1, &s->u.seq.milestones, &s->u.seq.nm))
        return false;
    if (s->u.seq.nm != n - 1)
        return etd_field_fail(o, "milestones", "expected %d milestones (one fewer than the "
                              "schedulers), got %d", n - 1, s->u.seq.nm);
    for (int k = 1; k < s->u.seq.nm; k++)
        if (s->u.seq.milestones[k] < s->u.seq.milestones[k - 1])
            return etd_field_fail(o, "milestones", "expected increasing milestones");
    return true;
}

static bool seq_parse(etd_sched_spec *s, const etd_obj *o) { return kids_parse(s, o, true); }
static bool chained_parse(etd_sched_spec *s, const etd_obj *o) { return kids_parse(s, o, false); }

static bool build_kids(const etd_sched_spec *s, et_optim *o, et_scheduler **kids)
{
    for (int i = 0; i < s->u.seq.n; i++) {
        const etd_sched_spec *k = &s->u.seq.kids[i];
        if (!(kids[i] = k->type->build(k, o))) {
            for (int j = 0; j < i; j++)
                et_scheduler_free(kids[j]);
            return false;
        }
    }
    return true;
}

static et_scheduler *seq_build(const etd_sched_spec *s, et_optim *o)
{
    et_scheduler *kids[8];
    if (!build_kids(s, o, kids))
        return NULL;
    return et_sequentiallr_new(o, kids, s->u.seq.n, s->u.seq.milestones);
}

static et_scheduler *chained_build(const etd_sched_spec *s, et_optim *o)
{
    et_scheduler *kids[8];
    if (!build_kids(s, o, kids))
        return NULL;
    return et_chainedscheduler_new(kids, s->u.seq.n);
}

static void seq_free(etd_sched_spec *s)
{
    for (int i = 0; i < s->u.seq.n; i++)
        etd_sched_free(&s->u.seq.kids[i]);
    free(s->u.seq.kids);
    free(s->u.seq.milestones);
    s->u.seq.kids = NULL;
    s->u.seq.milestones = NULL;
    s->u.seq.n = s->u.seq.nm = 0;
}

const etd_sched_type etd_sched_types[] = {
    {"StepLR", step_fields, step_parse, step_build, NULL},
    {"MultiStepLR", multistep_fields, multistep_parse, multistep_build, multistep_free},
    {"ExponentialLR", exp_fields, exp_parse, exp_build, NULL},
    {"CosineAnnealingLR", cosine_fields, cosine_parse, cosine_build, NULL},
    {"LinearLR", linear_fields, linear_parse, linear_build, NULL},
    {"ConstantLR", constant_fields, constant_parse, constant_build, NULL},
    {"CosineAnnealingWarmRestarts", warm_fields, warm_parse, warm_build, NULL},
    {"OneCycleLR", onecycle_fields, onecycle_parse, onecycle_build, NULL},
    {"ReduceLROnPlateau", plateau_fields, plateau_parse, plateau_build, NULL},
    {"SequentialLR", seq_fields, seq_parse, seq_build, seq_free},
    {"ChainedScheduler", chained_fields, chained_parse, chained_build, seq_free},
};
const int etd_nsched_types = (int)(sizeof etd_sched_types / sizeof etd_sched_types[0]);
