/*
 * sched.c - learning-rate schedulers as torch 1.13's lr_scheduler.py: life
 * cycle, constructors (argument checks, torch's __init__ and initial step),
 * the public step functions, accessors and the named state of checkpoints.
 * The object is in sched_internal.h; each kind's lr rule (StepLR,
 * MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR,
 * CosineAnnealingWarmRestarts, OneCycleLR with momentum cycling,
 * ReduceLROnPlateau, SequentialLR and ChainedScheduler) is in sched_rules.c.
 * Every scheduler sets each parameter group's lr; the base lrs are torch's
 * group['initial_lr'] (set by the first scheduler of an optimizer).
 */
#include "nn/sched_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ life cycle */

void et_scheduler_free(et_scheduler *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->nkids; k++)
        et_scheduler_free(s->kids[k]);
    for (int v = 0; v < s->nvars; v++)
        free(s->vars[v].name);
    free(s->vars);
    free(s->kids);
    free(s->milestones);
    free(s->base_lrs);
    free(s->last_lrs);
    free(s->oc_lr);
    free(s);
}

static et_scheduler *sched_alloc(sched_kind kind, const char *type, et_optim *o)
{
    if (!o) {
        et_set_error_after(ET_ERR_ARG, "%s: NULL optimizer", type);
        return NULL;
    }
    et_scheduler *s = calloc(1, sizeof *s);
    int ng = nn_optim_ngroups(o);
    if (s) {
        s->base_lrs = calloc((size_t)ng, sizeof(double));
        s->last_lrs = calloc((size_t)ng, sizeof(double));
    }
    if (!s || !s->base_lrs || !s->last_lrs) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    s->kind = kind;
    s->type = type;
    s->o = o;
    s->ng = ng;
    s->last_epoch = -1;
    for (int g = 0; g < ng; g++)
        s->last_lrs[g] = nn_optim_group_lr(o, g);
    return s;
}

/* state variable "name" (copied) -> d or i; false on NOMEM */
static bool add_var(et_scheduler *s, const char *prefix, const char *name, double *d, int64_t *i)
{
    sched_var *v = realloc(s->vars, (size_t)(s->nvars + 1) * sizeof *v);
    if (!v)
        return false;
    s->vars = v;
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *n = malloc(len);
    if (!n)
        return false;
    snprintf(n, len, "%s%s", prefix, name);
    v[s->nvars++] = (sched_var){n, d, i};
    return true;
}

/* s's own state variables, and its children's as "<k>.<name>" */
static bool list_vars(et_scheduler *s, et_scheduler *of, const char *prefix)
{
    bool ok = true;
    if (of->kind != SCH_CHAINED)
        ok = add_var(s, prefix, "last_epoch", NULL, &of->last_epoch);
    for (int g = 0; ok && g < of->ng && of->kind != SCH_SEQUENTIAL && of->kind != SCH_CHAINED;
         g++) {
        char n[32];
        snprintf(n, sizeof n, g ? "last_lr.%d" : "last_lr", g);
        ok = add_var(s, prefix, n, &of->last_lrs[g], NULL);
    }
    if (ok && of->kind == SCH_PLATEAU)
        ok = add_var(s, prefix, "best", &of->best, NULL) &&
             add_var(s, prefix, "num_bad_epochs", NULL, &of->num_bad) &&
             add_var(s, prefix, "cooldown_counter", NULL, &of->cooldown_counter);
    if (ok && of->kind == SCH_WARM_RESTARTS)
        ok = add_var(s, prefix, "T_cur", NULL, &of->t_cur) &&
             add_var(s, prefix, "T_i", NULL, &of->t_i);
    for (int k = 0; ok && k < of->nkids; k++) {
        char p[64];
        snprintf(p, sizeof p, "%s%d.", prefix, k);
        ok = list_vars(s, of->kids[k], p);
    }
    return ok;
}

/* ------------------------------------------------------------ stepping */

et_status et_scheduler_step(et_scheduler *s)
{
    if (!s)
        return et_set_error_after(ET_ERR_ARG, "scheduler_step: NULL scheduler");
    if (s->ng != nn_optim_ngroups(s->o))
        return et_set_error(ET_ERR_STATE, "%s: the optimizer has %d parameter groups, the "
                            "scheduler was made for %d", s->type, nn_optim_ngroups(s->o), s->ng);
    return nn_sched_step(s, false);
}

bool et_scheduler_needs_metric(const et_scheduler *s) { return s && s->kind == SCH_PLATEAU; }

bool et_scheduler_exhausted(const et_scheduler *s)
{
    if (!s)
        return false;
    switch (s->kind) {
    case SCH_ONECYCLE:
        return s->last_epoch + 1 > s->oc.total_steps;
    case SCH_SEQUENTIAL: {
        int64_t e = s->last_epoch + 1;
        int idx = 0;
        while (idx < s->nmilestones && s->milestones[idx] <= e)
            idx++;
        if (idx > 0 && s->milestones[idx - 1] == e)
            return false;   /* the child starts afresh (step(0)) */
        return et_scheduler_exhausted(s->kids[idx]);
    }
    case SCH_CHAINED:
        for (int k = 0; k < s->nkids; k++)
            if (et_scheduler_exhausted(s->kids[k]))
                return true;
        return false;
    default:
        return false;
    }
}

et_status et_scheduler_step_metric(et_scheduler *s, double metric)
{
    if (!s)
        return et_set_error_after(ET_ERR_ARG, "scheduler_step: NULL scheduler");
    if (s->kind != SCH_PLATEAU)
        return et_scheduler_step(s);
    if (isnan(metric))
        return et_set_error(ET_ERR_ARG, "ReduceLROnPlateau: the metric is NaN");
    nn_sched_plateau_step(s, metric);
    return ET_OK;
}

/* _LRScheduler.__init__: base lrs from initial_lr, then the initial step */
static et_scheduler *sched_start(et_scheduler *s)
{
    if (!s)
        return NULL;
    for (int g = 0; g < s->ng; g++)
        s->base_lrs[g] = nn_optim_initial_lr(s->o, g);
    if (!list_vars(s, s, "")) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "scheduler: out of memory");
        return NULL;
    }
    if (nn_sched_step(s, false) != ET_OK) {
        et_scheduler_free(s);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------ constructors */

et_scheduler *et_steplr_new(et_optim *o, int64_t step_size, double gamma)
{
    if (step_size <= 0 || !isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "StepLR: step_size must be positive (got %lld) and gamma finite",
                     (long long)step_size);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_STEP, "StepLR", o);
    if (s) {
        s->step_size = step_size;
        s->gamma = gamma;
    }
    return sched_start(s);
}

et_scheduler *et_multisteplr_new(et_optim *o, const int64_t *milestones, int n, double gamma)
{
    if (n < 0 || (n > 0 && !milestones) || !isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "MultiStepLR: invalid milestones or gamma");
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_MULTISTEP, "MultiStepLR", o);
    if (!s)
        return NULL;
    s->milestones = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!s->milestones) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "MultiStepLR: out of memory");
        return NULL;
    }
    if (n > 0)
        memcpy(s->milestones, milestones, (size_t)n * sizeof(int64_t));
    s->nmilestones = n;
    s->gamma = gamma;
    return sched_start(s);
}

et_scheduler *et_exponentiallr_new(et_optim *o, double gamma)
{
    if (!isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "ExponentialLR: gamma must be finite");
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_EXP, "ExponentialLR", o);
    if (s)
        s->gamma = gamma;
    return sched_start(s);
}

et_scheduler *et_cosineannealinglr_new(et_optim *o, int64_t T_max, double eta_min)
{
    /* the period 2 * T_max must not overflow (and T_max is used as a double) */
    if (T_max <= 0 || T_max > ((int64_t)1 << 53) || !isfinite(eta_min)) {
        et_set_error(ET_ERR_ARG, "CosineAnnealingLR: T_max must be in [1, 2^53] (got %lld) and "
                     "eta_min finite", (long long)T_max);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_COSINE, "CosineAnnealingLR", o);
    if (s) {
        s->t_max = T_max;
        s->eta_min = eta_min;
    }
    return sched_start(s);
}

et_scheduler *et_linearlr_new(et_optim *o, double start_factor, double end_factor,
                              int64_t total_iters)
{
    if (!(start_factor > 0.0 && start_factor <= 1.0) ||
        !(end_factor >= 0.0 && end_factor <= 1.0) || total_iters <= 0) {
        et_set_error(ET_ERR_ARG, "LinearLR: start_factor must be in (0, 1], end_factor in "
                     "[0, 1] and total_iters positive (got %g, %g, %lld)", start_factor,
                     end_factor, (long long)total_iters);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_LINEAR, "LinearLR", o);
    if (s) {
        s->start_factor = start_factor;
        s->end_factor = end_factor;
        s->total_iters = total_iters;
    }
    return sched_start(s);
}

et_scheduler *et_constantlr_new(et_optim *o, double factor, int64_t total_iters)
{
    /* factor 0 would divide by zero at total_iters (torch: ZeroDivisionError) */
    if (!(factor > 0.0 && factor <= 1.0) || total_iters < 0) {
        et_set_error(ET_ERR_ARG, "ConstantLR: factor must be in (0, 1] and total_iters "
                     "non-negative (got %g, %lld)", factor, (long long)total_iters);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_CONSTANT, "ConstantLR", o);
    if (s) {
        s->factor = factor;
        s->total_iters = total_iters;
    }
    return sched_start(s);
}

et_scheduler *et_cosineannealingwarmrestarts_new(et_optim *o, int64_t T_0, int64_t T_mult,
                                                 double eta_min)
{
    if (T_0 <= 0 || T_0 > ((int64_t)1 << 40) || T_mult < 1 || T_mult > 1024 ||
        !isfinite(eta_min)) {
        et_set_error(ET_ERR_ARG, "CosineAnnealingWarmRestarts: expected a positive integer T_0 "
                     "(got %lld), an integer T_mult >= 1 (got %lld) and a finite eta_min",
                     (long long)T_0, (long long)T_mult);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_WARM_RESTARTS, "CosineAnnealingWarmRestarts", o);
    if (s) {
        s->t0 = s->t_i = T_0;
        s->t_mult = T_mult;
        s->eta_min = eta_min;
        s->t_cur = -1;
    }
    return sched_start(s);
}

et_scheduler *et_onecyclelr_new(et_optim *o, et_onecycle_opts c)
{
    if (!(c.max_lr >= 0) || isinf(c.max_lr) || c.total_steps <= 0 ||
        !(c.pct_start >= 0 && c.pct_start <= 1) || !(c.div_factor > 0) ||
        !(c.final_div_factor > 0) || !isfinite(c.base_momentum) || !isfinite(c.max_momentum)) {
        et_set_error(ET_ERR_ARG, "OneCycleLR: expected max_lr >= 0 (got %g), a positive "
                     "total_steps (got %lld), pct_start in [0, 1] (got %g) and positive "
                     "div_factor / final_div_factor", c.max_lr, (long long)c.total_steps,
                     c.pct_start);
        return NULL;
    }
    const char *key = NULL;
    if (o && c.cycle_momentum && !(key = nn_optim_momentum_key(o))) {
        et_set_error(ET_ERR_ARG, "OneCycleLR: optimizer must support momentum with "
                     "`cycle_momentum` option enabled (%s has neither momentum nor betas)",
                     et_optim_type(o));
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_ONECYCLE, "OneCycleLR", o);
    if (!s)
        return NULL;
    s->oc = c;
    s->mom_key = key;
    s->oc_lr = malloc((size_t)s->ng * 3 * sizeof(double));
    if (!s->oc_lr) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "OneCycleLR: out of memory");
        return NULL;
    }
    for (int g = 0; g < s->ng; g++) {
        double init = c.max_lr / c.div_factor;
        s->oc_lr[g * 3] = init;
        s->oc_lr[g * 3 + 1] = c.max_lr;
        s->oc_lr[g * 3 + 2] = init / c.final_div_factor;
        nn_optim_set_initial_lr(o, g, init);
        if (key && et_optim_group_set(o, g, key, c.max_momentum) != ET_OK) {
            et_scheduler_free(s);
            return NULL;
        }
    }
    return sched_start(s);
}

et_scheduler *et_reducelronplateau_new(et_optim *o, et_plateau_opts p)
{
    if (!(p.factor < 1.0) || !(p.factor >= 0) || p.patience < 0 || p.cooldown < 0 ||
        !(p.threshold >= 0) || isinf(p.threshold) || !(p.min_lr >= 0) || !(p.eps >= 0)) {
        et_set_error(ET_ERR_ARG, "ReduceLROnPlateau: factor should be in [0, 1) (got %g), "
                     "patience and cooldown non-negative, threshold, min_lr and eps "
                     "non-negative", p.factor);
        return NULL;
    }
    et_scheduler *s = sched_alloc(SCH_PLATEAU, "ReduceLROnPlateau", o);
    if (!s)
        return NULL;
    s->pl = p;
    s->last_epoch = 0;
    s->best = p.mode_max ? -INFINITY : INFINITY;
    if (!list_vars(s, s, "")) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "ReduceLROnPlateau: out of memory");
        return NULL;
    }
    return s;
}

static void free_kids(et_scheduler **kids, int n)
{
    for (int k = 0; kids && k < n; k++) {
        bool dup = false;
        for (int j = 0; j < k; j++)
            dup |= kids[j] == kids[k];
        if (!dup)
            et_scheduler_free(kids[k]);
    }
}

/* Takes the children; frees them (and returns NULL) on any error, or when
 * the caller already found one (why). */
static et_scheduler *with_kids(sched_kind kind, const char *type, et_optim *o,
                               et_scheduler **kids, int n, const char *why)
{
    et_scheduler *s = NULL;
    if (!why && (n <= 0 || !kids))
        why = "expected a non-empty list of schedulers";
    for (int k = 0; !why && k < n; k++) {
        if (!kids[k])
            why = "a scheduler in the list is NULL";
        else if (kids[k]->o != (o ? o : kids[0]->o))
            why = "all schedulers must belong to the same optimizer";
        else if (kids[k]->kind == SCH_PLATEAU)
            why = "ReduceLROnPlateau cannot be sequenced or chained (its step needs a metric)";
        else if (kind == SCH_SEQUENTIAL && (kids[k]->kind == SCH_SEQUENTIAL ||
                                            kids[k]->kind == SCH_CHAINED))
            why = "SequentialLR cannot hold SequentialLR or ChainedScheduler (they have no "
                  "step(0))";
        for (int j = 0; !why && j < k; j++)
            if (kids[j] == kids[k])
                why = "a scheduler appears twice";
    }
    if (!why && !(s = sched_alloc(kind, type, o ? o : kids[0]->o)))
        why = "";
    if (!why && !(s->kids = malloc((size_t)n * sizeof *s->kids)))
        why = "out of memory";
    if (why) {
        if (*why)
            et_set_error(ET_ERR_ARG, "%s: %s", type, why);
        free_kids(kids, n);
        et_scheduler_free(s);
        return NULL;
    }
    memcpy(s->kids, kids, (size_t)n * sizeof *kids);
    s->nkids = n;
    return s;
}

et_scheduler *et_sequentiallr_new(et_optim *o, et_scheduler **schedulers, int n,
                                  const int64_t *milestones)
{
    const char *why = NULL;
    if (!o)
        why = "NULL optimizer";
    else if (n > 1 && !milestones)
        why = "expects one milestone fewer than schedulers";
    for (int i = 1; !why && i < n - 1; i++)
        if (milestones[i] < milestones[i - 1])
            why = "milestones must be increasing";
    et_scheduler *s = with_kids(SCH_SEQUENTIAL, "SequentialLR", o, schedulers, n, why);
    if (!s)
        return NULL;
    s->milestones = malloc((size_t)(n > 1 ? n - 1 : 1) * sizeof(int64_t));
    if (!s->milestones) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "SequentialLR: out of memory");
        return NULL;
    }
    if (n > 1)
        memcpy(s->milestones, milestones, (size_t)(n - 1) * sizeof(int64_t));
    s->nmilestones = n - 1;
    /* torch: lr back to initial_lr, every child one epoch back, child 0's initial step */
    s->last_epoch = 0;
    for (int g = 0; g < s->ng; g++)
        nn_optim_set_group_lr(s->o, g, nn_optim_initial_lr(s->o, g));
    for (int k = 0; k < n; k++)
        s->kids[k]->last_epoch--;
    et_scheduler *first = s->kids[0];
    if (!list_vars(s, s, "")) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "SequentialLR: out of memory");
        return NULL;
    }
    if (nn_sched_step(first, false) != ET_OK) {
        et_scheduler_free(s);
        return NULL;
    }
    for (int g = 0; g < s->ng; g++)
        s->last_lrs[g] = first->last_lrs[g];
    return s;
}

et_scheduler *et_chainedscheduler_new(et_scheduler **schedulers, int n)
{
    et_scheduler *s = with_kids(SCH_CHAINED, "ChainedScheduler", NULL, schedulers, n, NULL);
    if (s && !list_vars(s, s, "")) {
        et_scheduler_free(s);
        et_set_error(ET_ERR_NOMEM, "ChainedScheduler: out of memory");
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------ accessors */

double et_scheduler_get_last_lr(const et_scheduler *s) { return s ? s->last_lrs[0] : NAN; }

double et_scheduler_get_last_lr_group(const et_scheduler *s, int g)
{
    if (!s || g < 0 || g >= s->ng) {
        et_set_error(ET_ERR_INDEX, "scheduler_get_last_lr: group %d out of range", g);
        return NAN;
    }
    return s->last_lrs[g];
}

const char *et_scheduler_type(const et_scheduler *s) { return s ? s->type : NULL; }
int64_t et_scheduler_last_epoch(const et_scheduler *s) { return s ? s->last_epoch : -1; }

et_status et_scheduler_load_state(et_scheduler *s, int64_t last_epoch, double last_lr)
{
    if (!s || last_epoch < 0 || !isfinite(last_lr))
        return et_set_error(ET_ERR_ARG, "scheduler_load_state: invalid state (last_epoch %lld)",
                            (long long)last_epoch);
    s->last_epoch = last_epoch;
    for (int g = 0; g < s->ng; g++) {
        s->last_lrs[g] = last_lr;
        nn_optim_set_group_lr(s->o, g, last_lr);
    }
    return ET_OK;
}

int et_scheduler_state_count(const et_scheduler *s) { return s ? s->nvars : 0; }

const char *et_scheduler_state_name(const et_scheduler *s, int i)
{
    if (!s || i < 0 || i >= s->nvars) {
        et_set_error(ET_ERR_INDEX, "scheduler_state_name: index %d out of range", i);
        return NULL;
    }
    return s->vars[i].name;
}

double et_scheduler_state_get(const et_scheduler *s, int i)
{
    if (!s || i < 0 || i >= s->nvars) {
        et_set_error(ET_ERR_INDEX, "scheduler_state_get: index %d out of range", i);
        return NAN;
    }
    return s->vars[i].d ? *s->vars[i].d : (double)*s->vars[i].i;
}

static const sched_var *find_var(const et_scheduler *s, const char *name)
{
    for (int i = 0; s && name && i < s->nvars; i++)
        if (strcmp(s->vars[i].name, name) == 0)
            return &s->vars[i];
    return NULL;
}

et_status et_scheduler_state_check(const et_scheduler *s, const char *name, double value)
{
    const sched_var *v = find_var(s, name);
    if (!v)
        return et_set_error(ET_ERR_ARG, "%s: no state named %s", s ? s->type : "scheduler",
                            name ? name : "(null)");
    /* a child's names start with "<k>." (nested: "<k>.<j>."), then the variable */
    const char *base = name;
    while (*base >= '0' && *base <= '9') {
        const char *p = base;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p != '.')
            break;
        base = p + 1;
    }
    bool child = base != name;
    if (v->d) {
        bool lr = strncmp(base, "last_lr", 7) == 0;
        if (lr ? !(value >= 0) || isinf(value) : isnan(value))
            return et_set_error(ET_ERR_ARG, "%s: state %s must be a %s number, got %g", s->type,
                                name, lr ? "finite non-negative" : "", value);
        return ET_OK;
    }
    double lo = child && !strcmp(base, "last_epoch") ? -1 : 0;
    if (value != floor(value) || !(value >= lo && value <= 9007199254740992.0))
        return et_set_error(ET_ERR_ARG, "%s: state %s must be an integer >= %g, got %g", s->type,
                            name, lo, value);
    return ET_OK;
}

et_status et_scheduler_state_set(et_scheduler *s, const char *name, double value)
{
    et_status st = et_scheduler_state_check(s, name, value);
    if (st != ET_OK)
        return st;
    const sched_var *v = find_var(s, name);
    if (v->d)
        *v->d = value;
    else
        *v->i = (int64_t)value;
    return ET_OK;
}
