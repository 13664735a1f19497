/*
 * optim.h - optimizers and learning-rate schedulers, as torch.optim.
 *
 * An optimizer keeps borrowed pointers to parameter tensors (which must
 * outlive it) and owns its state.  et_optim_step() applies PyTorch's exact
 * update rule to each parameter with a .grad (parameters without one are
 * skipped, as PyTorch).  Hyper-parameters are doubles, like Python floats.
 * Defaults: fill an options struct from ET_*_DEFAULTS and change fields.
 */
#ifndef EASYTORCH_OPTIM_H
#define EASYTORCH_OPTIM_H

#include <math.h>

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct et_optim et_optim;
typedef struct et_scheduler et_scheduler;

typedef struct { double lr, momentum, dampening, weight_decay; bool nesterov, maximize; } et_sgd_opts;
#define ET_SGD_DEFAULTS ((et_sgd_opts){.lr = 1e-3, .momentum = 0, .dampening = 0, .weight_decay = 0, .nesterov = false, .maximize = false})
/* torch.optim.SGD has no default lr; 1e-3 here is easytorch's choice. */

typedef struct { double lr, lr_decay, weight_decay, initial_accumulator_value, eps; bool maximize; } et_adagrad_opts;
#define ET_ADAGRAD_DEFAULTS ((et_adagrad_opts){.lr = 1e-2, .lr_decay = 0, .weight_decay = 0, .initial_accumulator_value = 0, .eps = 1e-10, .maximize = false})

typedef struct { double lr, alpha, eps, weight_decay, momentum; bool centered, maximize; } et_rmsprop_opts;
#define ET_RMSPROP_DEFAULTS ((et_rmsprop_opts){.lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0, .momentum = 0, .centered = false, .maximize = false})

typedef struct { double lr, beta1, beta2, eps, weight_decay; bool amsgrad, maximize; } et_adam_opts;
#define ET_ADAM_DEFAULTS ((et_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .amsgrad = false, .maximize = false})
#define ET_ADAMW_DEFAULTS ((et_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2, .amsgrad = false, .maximize = false})

typedef struct { double lr, beta1, beta2, eps, weight_decay, momentum_decay; } et_nadam_opts;
#define ET_NADAM_DEFAULTS ((et_nadam_opts){.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .momentum_decay = 4e-3})
typedef struct { double lr, beta1, beta2, eps, weight_decay; } et_radam_opts;
#define ET_RADAM_DEFAULTS ((et_radam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0})
typedef struct { double lr, beta1, beta2, eps, weight_decay; bool maximize; } et_adamax_opts;
#define ET_ADAMAX_DEFAULTS ((et_adamax_opts){.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .maximize = false})

/* Constructors copy the params array (not the tensors).  NULL + error on
 * invalid hyper-parameters (negative lr, nesterov without momentum, ...),
 * NULL or repeated parameters, and non-leaf tensors (torch's "can't
 * optimize a non-leaf Tensor").  The params and options form parameter
 * group 0. */
et_optim *et_sgd_new(et_tensor *const *params, int n, et_sgd_opts o);
et_optim *et_adagrad_new(et_tensor *const *params, int n, et_adagrad_opts o);
et_optim *et_rmsprop_new(et_tensor *const *params, int n, et_rmsprop_opts o);
et_optim *et_adam_new(et_tensor *const *params, int n, et_adam_opts o);
et_optim *et_adamw_new(et_tensor *const *params, int n, et_adam_opts o);
/* torch 1.13's NAdam (momentum_decay), RAdam (variance rectification once
 * rho_t > 5) and Adamax (infinity norm). */
et_optim *et_nadam_new(et_tensor *const *params, int n, et_nadam_opts o);
et_optim *et_radam_new(et_tensor *const *params, int n, et_radam_opts o);
et_optim *et_adamax_new(et_tensor *const *params, int n, et_adamax_opts o);
/* Frees the optimizer and its state (not the parameters); NULL is a no-op. */
void et_optim_free(et_optim *o);

/* One update of every parameter that has a .grad.  ET_ERR_SHAPE (nothing
 * changed) if a gradient does not match its parameter. */
et_status et_optim_step(et_optim *o);
/* Zero every parameter's .grad (set_to_none=false semantics). */
void et_optim_zero_grad(et_optim *o);
const char *et_optim_type(const et_optim *o);   /* "SGD", "Adam", ... */
/* Current learning rate of group 0 (schedulers change it); NAN for NULL. */
double et_optim_get_lr(const et_optim *o);
/* Sets every group's learning rate. */
void et_optim_set_lr(et_optim *o, double lr);

/* ---- parameter groups (torch's optimizer.param_groups) ----
 * Group 0 is made by the constructor.  add_param_group appends a group of
 * further parameters whose hyper-parameters start as the constructor's
 * options (torch fills a group's missing keys from the defaults, not from
 * other groups); change any of them by torch's
 * key name: "lr", "momentum", "dampening", "weight_decay", "nesterov",
 * "maximize" (SGD), "lr_decay", "initial_accumulator_value", "eps"
 * (Adagrad), "alpha", "centered" (RMSprop), "beta1", "beta2" (torch's betas),
 * "amsgrad" (Adam, AdamW), "momentum_decay" (NAdam); flags are 0 or 1.
 * Values are checked as the constructor checks them (ET_ERR_ARG, nothing
 * changed); a key that needs state (momentum > 0, amsgrad, centered)
 * creates it for the group's parameters.  Adagrad's sums start at the
 * constructor's initial_accumulator_value in every group, as torch 1.13.  Parameters are numbered across
 * groups in order (the "<i>." of the state names), as torch's state_dict. */
int et_optim_add_param_group(et_optim *o, et_tensor *const *params, int n); /* index or -1 */
int et_optim_num_groups(const et_optim *o);
int et_optim_group_num_params(const et_optim *o, int group);
et_tensor *et_optim_group_param(const et_optim *o, int group, int i);   /* borrowed */
et_status et_optim_group_set(et_optim *o, int group, const char *key, double value);
double et_optim_group_get(const et_optim *o, int group, const char *key); /* NAN + error */
/* The optimizer's hyper-parameter keys, for listing (static strings). */
int et_optim_num_hparams(const et_optim *o);
const char *et_optim_hparam_name(const et_optim *o, int k);
int64_t et_optim_steps(const et_optim *o);      /* step() calls so far */

/* State for checkpoints: a set of named tensors ("0.momentum_buffer",
 * "1.exp_avg", ... keyed by parameter index) plus scalars. */
int et_optim_state_count(const et_optim *o);
/* i-th state tensor; name and tensor borrowed. */
const char *et_optim_state_name(const et_optim *o, int i);
et_tensor *et_optim_state_tensor(const et_optim *o, int i);
/* Restore: every name produced by state_name must be given with a matching
 * shape; all-or-nothing.  step_count restores et_optim_steps(). */
et_status et_optim_load_state(et_optim *o, const char *const *names,
                              et_tensor *const *tensors, int n, int64_t step_count);

/* ---- schedulers: step once per optimizer step; they set the optimizer's lr ----
 * A scheduler borrows its optimizer (which must outlive it); constructors
 * perform torch's initial step (last_epoch 0) and return NULL + error on bad
 * arguments; free with et_scheduler_free (NULL-safe). */
et_scheduler *et_steplr_new(et_optim *o, int64_t step_size, double gamma);            /* gamma 0.1 */
et_scheduler *et_multisteplr_new(et_optim *o, const int64_t *milestones, int n, double gamma);
et_scheduler *et_exponentiallr_new(et_optim *o, double gamma);
et_scheduler *et_cosineannealinglr_new(et_optim *o, int64_t T_max, double eta_min);  /* eta_min 0 */
et_scheduler *et_linearlr_new(et_optim *o, double start_factor, double end_factor,
                              int64_t total_iters);                                   /* 1/3, 1.0, 5 */
et_scheduler *et_constantlr_new(et_optim *o, double factor, int64_t total_iters);      /* 1/3, 5 */
/* Cosine annealing restarted every T_i steps, T_0 then T_i *= T_mult. */
et_scheduler *et_cosineannealingwarmrestarts_new(et_optim *o, int64_t T_0, int64_t T_mult,
                                                 double eta_min);                     /* -, 1, 0 */
/* OneCycleLR: max_lr and total_steps required (torch's total_steps, or
 * epochs * steps_per_epoch); cycles each group's momentum ("momentum", or
 * "beta1" of the Adam family) between base and max, as torch (ET_ERR_ARG for
 * an optimizer with neither, e.g. Adagrad, unless cycle_momentum is false).
 * Stepping past total_steps is ET_ERR_STATE, as torch's ValueError. */
typedef struct {
    double max_lr;
    int64_t total_steps;
    double pct_start;
    bool anneal_linear;          /* torch's anneal_strategy 'linear' (else 'cos') */
    bool cycle_momentum;
    double base_momentum, max_momentum, div_factor, final_div_factor;
    bool three_phase;
} et_onecycle_opts;
#define ET_ONECYCLE_DEFAULTS ((et_onecycle_opts){.max_lr = NAN, .total_steps = 0, .pct_start = 0.3, .anneal_linear = false, .cycle_momentum = true, .base_momentum = 0.85, .max_momentum = 0.95, .div_factor = 25.0, .final_div_factor = 1e4, .three_phase = false})
et_scheduler *et_onecyclelr_new(et_optim *o, et_onecycle_opts c);
/* ReduceLROnPlateau: steps with a metric (et_scheduler_step_metric); lr *= factor
 * (not below min_lr, only if it changes by more than eps) after more than
 * `patience` epochs without improvement, then `cooldown` epochs of rest. */
typedef struct {
    bool mode_max;               /* torch's mode 'max' (else 'min') */
    double factor;
    int64_t patience;
    double threshold;
    bool threshold_abs;          /* threshold_mode 'abs' (else 'rel') */
    int64_t cooldown;
    double min_lr, eps;
} et_plateau_opts;
#define ET_PLATEAU_DEFAULTS ((et_plateau_opts){.mode_max = false, .factor = 0.1, .patience = 10, .threshold = 1e-4, .threshold_abs = false, .cooldown = 0, .min_lr = 0, .eps = 1e-8})
et_scheduler *et_reducelronplateau_new(et_optim *o, et_plateau_opts p);
/* SequentialLR: schedulers[i] runs from milestones[i-1] (n - 1 increasing
 * milestones); ChainedScheduler steps all of them each step.  Both take
 * ownership of the schedulers (freed with them, or on failure), which must
 * share one optimizer; ReduceLROnPlateau cannot be a child. */
et_scheduler *et_sequentiallr_new(et_optim *o, et_scheduler **schedulers, int n,
                                  const int64_t *milestones);
et_scheduler *et_chainedscheduler_new(et_scheduler **schedulers, int n);
void et_scheduler_free(et_scheduler *s);
/* Advance one epoch and write the new lr of every group into the optimizer.
 * ReduceLROnPlateau: ET_ERR_STATE (it needs the metric). */
et_status et_scheduler_step(et_scheduler *s);
/* ReduceLROnPlateau's step with the monitored value (other schedulers: a
 * plain step, the metric unused). */
et_status et_scheduler_step_metric(et_scheduler *s, double metric);
bool et_scheduler_needs_metric(const et_scheduler *s);
/* Would the next step be refused (a OneCycleLR, or one inside a Sequential /
 * Chained scheduler, at its total_steps)?  Lets a caller refuse before it
 * steps the optimizer. */
bool et_scheduler_exhausted(const et_scheduler *s);
/* The lr set by the last step (torch's get_last_lr()[0], or [group]). */
double et_scheduler_get_last_lr(const et_scheduler *s);
double et_scheduler_get_last_lr_group(const et_scheduler *s, int group);
const char *et_scheduler_type(const et_scheduler *s);  /* "StepLR", ... */
/* State: last_epoch and the current lr (chainable forms depend on it). */
int64_t et_scheduler_last_epoch(const et_scheduler *s);
/* Sets last_epoch, and every group's last lr and optimizer lr to last_lr. */
et_status et_scheduler_load_state(et_scheduler *s, int64_t last_epoch, double last_lr);
/* The whole state as named numbers, for checkpoints: "last_epoch",
 * "last_lr" / "last_lr.<g>", ReduceLROnPlateau's "best", "num_bad_epochs",
 * "cooldown_counter", the warm restarts' "T_cur", "T_i", and a Sequential /
 * Chained scheduler's children's as "<k>.<name>".  Names borrowed. */
int et_scheduler_state_count(const et_scheduler *s);
const char *et_scheduler_state_name(const et_scheduler *s, int i);
double et_scheduler_state_get(const et_scheduler *s, int i);
et_status et_scheduler_state_set(et_scheduler *s, const char *name, double value);
/* Would state_set accept it?  (integers >= 0, a child's last_epoch >= -1,
 * lrs finite >= 0, best any number) */
et_status et_scheduler_state_check(const et_scheduler *s, const char *name, double value);

#ifdef __cplusplus
}
#endif
#endif
