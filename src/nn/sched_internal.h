/*
 * sched_internal.h - the scheduler object, shared by sched.c (life cycle,
 * constructors, stepping, accessors and named state) and sched_rules.c (each
 * scheduler kind's lr formula: torch 1.13's get_lr / _get_closed_form_lr,
 * OneCycleLR's phases, CosineAnnealingWarmRestarts, ReduceLROnPlateau's
 * reduction).  Never installed.
 */
#ifndef EASYTORCH_SCHED_INTERNAL_H
#define EASYTORCH_SCHED_INTERNAL_H

#include "nn/optim_internal.h"

typedef enum {
    SCH_STEP, SCH_MULTISTEP, SCH_EXP, SCH_COSINE, SCH_LINEAR, SCH_CONSTANT, SCH_PLATEAU,
    SCH_ONECYCLE, SCH_WARM_RESTARTS, SCH_SEQUENTIAL, SCH_CHAINED
} sched_kind;

/* one scalar of the scheduler's state, for checkpoints */
typedef struct {
    char *name;
    double *d;       /* a double, or */
    int64_t *i;      /* an integer */
} sched_var;

struct et_scheduler {
    sched_kind kind;
    const char *type;
    et_optim *o;             /* borrowed */
    int ng;                  /* parameter groups at construction */
    double *base_lrs, *last_lrs;
    int64_t last_epoch;
    /* chainable */
    int64_t step_size, t_max, total_iters;
    double gamma, eta_min, start_factor, end_factor, factor;
    int64_t *milestones;
    int nmilestones;
    /* ReduceLROnPlateau */
    et_plateau_opts pl;
    double best;
    int64_t num_bad, cooldown_counter;
    /* OneCycleLR: per group initial / max / min lr, base / max momentum */
    et_onecycle_opts oc;
    double *oc_lr;           /* ng * 3: initial, max, min */
    const char *mom_key;     /* NULL: no momentum cycling */
    /* CosineAnnealingWarmRestarts */
    int64_t t0, t_i, t_mult, t_cur;
    /* SequentialLR / ChainedScheduler (owned children) */
    et_scheduler **kids;
    int nkids;
    /* checkpoint state */
    sched_var *vars;
    int nvars;
};

/* ---- the lr rules (sched_rules.c) ---- */
/* One step of s by its kind (torch's step(): last_epoch + 1, get_lr, the
 * groups' lr and last_lrs); epoch0: SequentialLR's step(0) (last_epoch = 0,
 * closed form).  ET_ERR_STATE for ReduceLROnPlateau (needs a metric) and
 * OneCycleLR past total_steps. */
et_status nn_sched_step(et_scheduler *s, bool epoch0);
/* ReduceLROnPlateau.step(metric) for a non-NaN metric: last_epoch + 1, best /
 * bad epochs / cooldown, the groups' reduced lr and last_lrs. */
void nn_sched_plateau_step(et_scheduler *s, double metric);

#endif
