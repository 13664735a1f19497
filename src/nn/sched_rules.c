/*
 * sched_rules.c - the lr rule of each scheduler kind, as torch 1.13's
 * lr_scheduler.py: the chainable ones (StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, LinearLR, ConstantLR) in torch's recursive get_lr form
 * and their closed forms (SequentialLR's step(0)); OneCycleLR's phases and
 * momentum; CosineAnnealingWarmRestarts; SequentialLR / ChainedScheduler
 * stepping their children; ReduceLROnPlateau's reduction.  sched.c builds
 * the schedulers and calls nn_sched_step / nn_sched_plateau_step.
 */
#include "nn/sched_internal.h"

#include <math.h>

/* ------------------------------------------------------------ lr rules */

/* torch's get_lr (chainable form, from the group's current lr) */
static double chain_lr(const et_scheduler *s, int g, double lr)
{
    int64_t e = s->last_epoch;
    switch (s->kind) {
    case SCH_STEP:
        return (e == 0 || e % s->step_size != 0) ? lr : lr * s->gamma;
    case SCH_MULTISTEP: {
        int count = 0;
        for (int i = 0; i < s->nmilestones; i++)
            count += s->milestones[i] == e;
        return count == 0 ? lr : lr * pow(s->gamma, (double)count);
    }
    case SCH_EXP:
        return e == 0 ? lr : lr * s->gamma;
    case SCH_COSINE: {
        if (e == 0)
            return lr;
        double tm = (double)s->t_max;
        int64_t period = 2 * s->t_max;
        int64_t r = (e - 1 - s->t_max) % period;   /* Python's modulo */
        if (r < 0)
            r += period;
        if (r == 0)
            return lr + (s->base_lrs[g] - s->eta_min) * (1.0 - cos(M_PI / tm)) / 2.0;
        return (1.0 + cos(M_PI * (double)e / tm)) / (1.0 + cos(M_PI * (double)(e - 1) / tm)) *
                   (lr - s->eta_min) + s->eta_min;
    }
    case SCH_LINEAR:
        if (e == 0)
            return lr * s->start_factor;
        if (e > s->total_iters)
            return lr;
        return lr * (1.0 + (s->end_factor - s->start_factor) /
                               ((double)s->total_iters * s->start_factor +
                                (double)(e - 1) * (s->end_factor - s->start_factor)));
    case SCH_CONSTANT:
        if (e == 0)
            return lr * s->factor;
        if (e != s->total_iters)
            return lr;
        return lr * (1.0 / s->factor);
    default:
        return lr;
    }
}

/* torch's _get_closed_form_lr (SequentialLR calls step(0) at a milestone) */
static bool closed_lr(const et_scheduler *s, int g, double *out)
{
    double b = s->base_lrs[g], e = (double)s->last_epoch;
    switch (s->kind) {
    case SCH_STEP: *out = b * pow(s->gamma, floor(e / (double)s->step_size)); return true;
    case SCH_MULTISTEP: {
        int count = 0;   /* bisect_right over the sorted milestones */
        for (int i = 0; i < s->nmilestones; i++)
            count += (double)s->milestones[i] <= e;
        *out = b * pow(s->gamma, (double)count);
        return true;
    }
    case SCH_EXP: *out = b * pow(s->gamma, e); return true;
    case SCH_COSINE:
        *out = s->eta_min + (b - s->eta_min) * (1.0 + cos(M_PI * e / (double)s->t_max)) / 2.0;
        return true;
    case SCH_LINEAR:
        *out = b * (s->start_factor + (s->end_factor - s->start_factor) *
                                          fmin((double)s->total_iters, e) / (double)s->total_iters);
        return true;
    case SCH_CONSTANT:
        *out = b * (s->factor + (e >= (double)s->total_iters) * (1.0 - s->factor));
        return true;
    default: return false;
    }
}

static double anneal(const et_scheduler *s, double start, double end, double pct)
{
    if (s->oc.anneal_linear)
        return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1.0);
}

/* OneCycleLR.get_lr (and its momentum); ET_ERR_STATE past total_steps */
static et_status onecycle_step(et_scheduler *s)
{
    int64_t step = s->last_epoch;
    if (step > s->oc.total_steps)
        return et_set_error(ET_ERR_STATE, "OneCycleLR: tried to step %lld times; the specified "
                            "number of total steps is %lld", (long long)(step + 1),
                            (long long)s->oc.total_steps);
    double T = (double)s->oc.total_steps, pct0 = s->oc.pct_start;
    /* phases: end step, start/end lr (0 initial, 1 max, 2 min), start/end momentum (0 base, 1 max) */
    double ends[3];
    int lr_from[3], lr_to[3], mom_from[3], mom_to[3], np;
    if (s->oc.three_phase) {
        np = 3;
        ends[0] = pct0 * T - 1, ends[1] = 2 * pct0 * T - 2, ends[2] = T - 1;
        lr_from[0] = 0, lr_to[0] = 1, mom_from[0] = 1, mom_to[0] = 0;
        lr_from[1] = 1, lr_to[1] = 0, mom_from[1] = 0, mom_to[1] = 1;
        lr_from[2] = 0, lr_to[2] = 2, mom_from[2] = 1, mom_to[2] = 1;
    } else {
        np = 2;
        ends[0] = pct0 * T - 1, ends[1] = T - 1;
        lr_from[0] = 0, lr_to[0] = 1, mom_from[0] = 1, mom_to[0] = 0;
        lr_from[1] = 1, lr_to[1] = 2, mom_from[1] = 0, mom_to[1] = 1;
    }
    double mom[2] = {s->oc.base_momentum, s->oc.max_momentum};
    for (int g = 0; g < s->ng; g++) {
        double start = 0, lr = 0, m = 0;
        for (int i = 0; i < np; i++) {
            if ((double)step <= ends[i] || i == np - 1) {
                if (ends[i] == start)
                    return et_set_error(ET_ERR_STATE, "OneCycleLR: phase %d has no steps "
                                        "(pct_start %g of %lld total steps): division by zero",
                                        i, pct0, (long long)s->oc.total_steps);
                double pct = ((double)step - start) / (ends[i] - start);
                const double *lrs = &s->oc_lr[g * 3];
                lr = anneal(s, lrs[lr_from[i]], lrs[lr_to[i]], pct);
                m = anneal(s, mom[mom_from[i]], mom[mom_to[i]], pct);
                break;
            }
            start = ends[i];
        }
        if (s->mom_key) {
            et_status st = et_optim_group_set(s->o, g, s->mom_key, m);
            if (st != ET_OK)
                return st;
        }
        nn_optim_set_group_lr(s->o, g, lr);
    }
    return ET_OK;
}

/* one step; epoch0: SequentialLR's step(0) (last_epoch = 0, closed form) */
et_status nn_sched_step(et_scheduler *s, bool epoch0)
{
    et_status st = ET_OK;
    switch (s->kind) {
    case SCH_PLATEAU:
        return et_set_error(ET_ERR_STATE, "ReduceLROnPlateau: step needs a metric "
                            "(et_scheduler_step_metric)");
    case SCH_SEQUENTIAL: {
        s->last_epoch++;
        int idx = 0;   /* bisect_right(milestones, last_epoch) */
        while (idx < s->nmilestones && s->milestones[idx] <= s->last_epoch)
            idx++;
        et_scheduler *k = s->kids[idx];
        st = nn_sched_step(k, idx > 0 && s->milestones[idx - 1] == s->last_epoch);
        for (int g = 0; st == ET_OK && g < s->ng; g++)
            s->last_lrs[g] = k->last_lrs[g];
        return st;
    }
    case SCH_CHAINED:
        for (int k = 0; st == ET_OK && k < s->nkids; k++)
            st = nn_sched_step(s->kids[k], false);
        break;
    case SCH_WARM_RESTARTS: {
        if (epoch0 || s->last_epoch < 0) {
            s->t_i = s->t0;
            s->t_cur = 0;
            s->last_epoch = 0;
        } else {
            s->last_epoch++;
            if (++s->t_cur >= s->t_i) {
                s->t_cur -= s->t_i;
                s->t_i *= s->t_mult;
            }
        }
        for (int g = 0; g < s->ng; g++)
            nn_optim_set_group_lr(s->o, g, s->eta_min + (s->base_lrs[g] - s->eta_min) *
                                               (1.0 + cos(M_PI * (double)s->t_cur /
                                                          (double)s->t_i)) / 2.0);
        break;
    }
    case SCH_ONECYCLE:
        s->last_epoch = epoch0 ? 0 : s->last_epoch + 1;
        st = onecycle_step(s);
        break;
    default: {
        s->last_epoch = epoch0 ? 0 : s->last_epoch + 1;
        for (int g = 0; g < s->ng; g++) {
            double lr;
            if (!epoch0 || !closed_lr(s, g, &lr))
                lr = chain_lr(s, g, nn_optim_group_lr(s->o, g));
            nn_optim_set_group_lr(s->o, g, lr);
        }
    }
    }
    for (int g = 0; st == ET_OK && g < s->ng; g++)
        s->last_lrs[g] = nn_optim_group_lr(s->o, g);
    return st;
}

/* ReduceLROnPlateau.step(metric); et_scheduler_step_metric checked s and metric */
void nn_sched_plateau_step(et_scheduler *s, double metric)
{
    const et_plateau_opts *p = &s->pl;
    s->last_epoch++;
    bool better = p->mode_max ? (p->threshold_abs ? metric > s->best + p->threshold
                                                  : metric > s->best * (p->threshold + 1.0))
                              : (p->threshold_abs ? metric < s->best - p->threshold
                                                  : metric < s->best * (1.0 - p->threshold));
    if (better) {
        s->best = metric;
        s->num_bad = 0;
    } else {
        s->num_bad++;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->num_bad = 0;   /* bad epochs in cooldown are ignored */
    }
    if (s->num_bad > p->patience) {
        for (int g = 0; g < s->ng; g++) {
            double old = nn_optim_group_lr(s->o, g);
            double lr = fmax(old * p->factor, p->min_lr);
            if (old - lr > p->eps)
                nn_optim_set_group_lr(s->o, g, lr);
        }
        s->cooldown_counter = p->cooldown;
        s->num_bad = 0;
    }
    for (int g = 0; g < s->ng; g++)
        s->last_lrs[g] = nn_optim_group_lr(s->o, g);
}
