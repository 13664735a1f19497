/*
 * optim_internal.h - the optimizer object, shared by optim.c (groups, state,
 * step), optim_rules.c / optim_rules_more.c (the update rules) and sched.c /
 * sched_rules.c (schedulers read and write group learning rates).  Never
 * installed.
 *
 * Parameters are stored in one array in group order (torch numbers them
 * the same way in its state_dict); group g owns params[first .. first+n).
 * Each parameter has up to OPT_MAX_SLOTS state tensors, by slot id (an
 * optimizer's fixed list: Adam's exp_avg, exp_avg_sq, max_exp_avg_sq),
 * created for the slots its group's options need.
 */
#ifndef EASYTORCH_OPTIM_INTERNAL_H
#define EASYTORCH_OPTIM_INTERNAL_H

#include "nn/nn_internal.h"

#define OPT_MAX_SLOTS 3

typedef enum {
    OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW, OPT_NADAM, OPT_RADAM, OPT_ADAMAX
} opt_kind;

typedef union opt_opts {
    et_sgd_opts sgd;
    et_adagrad_opts ada;
    et_rmsprop_opts rms;
    et_adam_opts adam;       /* Adam, AdamW */
    et_nadam_opts nadam;
    et_radam_opts radam;
    et_adamax_opts adamax;
} opt_opts;

typedef struct optim_group {
    opt_opts o;              /* o.*.lr is the group's learning rate */
    double initial_lr;       /* torch's group['initial_lr'], set by the first scheduler */
    bool has_initial_lr;
    int first, n;
} optim_group;

struct et_optim {
    opt_kind kind;
    const char *type;
    int n;
    et_tensor **params;      /* borrowed */
    opt_opts defaults;       /* the constructor's options: a new group's, as torch's defaults */
    int ngroups;
    optim_group *groups;
    int *group_of;           /* group index of each parameter */
    /* state tensors, in creation order; slot[i * OPT_MAX_SLOTS + s] indexes
     * them (-1: parameter i has no slot s) */
    int nstate;
    et_tensor **state;
    char **state_names;
    int *slot;
    int64_t *pstep;          /* per-parameter step (torch's state["step"]) */
    bool *buf_init;          /* SGD: momentum buffer holds a value */
    int64_t steps;
};

/* The learning rate of a group's options (every opts struct starts with lr). */
static inline double *opt_lr(optim_group *g) { return &g->o.sgd.lr; }
static inline double opt_lr_c(const optim_group *g) { return g->o.sgd.lr; }

/* One update of k elements of a parameter p with gradient grad and its
 * slots s[slot id] (NULL where absent); step is the parameter's step after
 * the increment; *init is SGD's "momentum buffer holds a value". */
typedef void (*opt_rule)(const et_optim *o, const optim_group *g, float *p, const float *grad,
                         float **s, bool *init, int64_t step, int64_t k);

/* The rule of an optimizer kind (optim_rules.c, optim_rules_more.c). */
opt_rule nn_optim_rule(opt_kind kind);
void nn_rule_sgd(const et_optim *o, const optim_group *g, float *p, const float *grad, float **s,
                 bool *init, int64_t step, int64_t k);
void nn_rule_adagrad(const et_optim *o, const optim_group *g, float *p, const float *grad,
                     float **s, bool *init, int64_t step, int64_t k);
void nn_rule_rmsprop(const et_optim *o, const optim_group *g, float *p, const float *grad,
                     float **s, bool *init, int64_t step, int64_t k);
void nn_rule_adam(const et_optim *o, const optim_group *g, float *p, const float *grad, float **s,
                  bool *init, int64_t step, int64_t k);
void nn_rule_nadam(const et_optim *o, const optim_group *g, float *p, const float *grad,
                   float **s, bool *init, int64_t step, int64_t k);
void nn_rule_radam(const et_optim *o, const optim_group *g, float *p, const float *grad,
                   float **s, bool *init, int64_t step, int64_t k);
void nn_rule_adamax(const et_optim *o, const optim_group *g, float *p, const float *grad,
                    float **s, bool *init, int64_t step, int64_t k);

/* ---- what the schedulers use (optim.c) ---- */
int nn_optim_ngroups(const et_optim *o);
double nn_optim_group_lr(const et_optim *o, int g);
void nn_optim_set_group_lr(et_optim *o, int g, double lr);
/* torch's group.setdefault('initial_lr', group['lr']); returns it */
double nn_optim_initial_lr(et_optim *o, int g);
void nn_optim_set_initial_lr(et_optim *o, int g, double lr);
/* OneCycleLR's momentum: "momentum" (SGD, RMSprop) or "beta1" (the Adam
 * family); NULL if the optimizer has neither (Adagrad). */
const char *nn_optim_momentum_key(const et_optim *o);

#endif
