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

/* Constructors copy the params array (not the tensors).  NULL + error on
 * invalid hyper-parameters (negative lr, nesterov without momentum, ...). */
et_optim *et_sgd_new(et_tensor *const *params, int n, et_sgd_opts o);
et_optim *et_adagrad_new(et_tensor *const *params, int n, et_adagrad_opts o);
et_optim *et_rmsprop_new(et_tensor *const *params, int n, et_rmsprop_opts o);
et_optim *et_adam_new(et_tensor *const *params, int n, et_adam_opts o);
et_optim *et_adamw_new(et_tensor *const *params, int n, et_adam_opts o);
/* Frees the optimizer and its state (not the parameters); NULL is a no-op. */
void et_optim_free(et_optim *o);

/* One update of every parameter that has a .grad.  ET_ERR_SHAPE (nothing
 * changed) if a gradient does not match its parameter. */
et_status et_optim_step(et_optim *o);
/* Zero every parameter's .grad (set_to_none=false semantics). */
void et_optim_zero_grad(et_optim *o);
const char *et_optim_type(const et_optim *o);   /* "SGD", "Adam", ... */
/* Current learning rate (schedulers change it); NAN for NULL. */
double et_optim_get_lr(const et_optim *o);
void et_optim_set_lr(et_optim *o, double lr);
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
void et_scheduler_free(et_scheduler *s);
/* Advance one epoch and write the new lr into the optimizer. */
et_status et_scheduler_step(et_scheduler *s);
/* The lr set by the last step (torch's get_last_lr()[0]). */
double et_scheduler_get_last_lr(const et_scheduler *s);
const char *et_scheduler_type(const et_scheduler *s);  /* "StepLR", ... */
/* State: last_epoch and the current lr (chainable forms depend on it). */
int64_t et_scheduler_last_epoch(const et_scheduler *s);
et_status et_scheduler_load_state(et_scheduler *s, int64_t last_epoch, double last_lr);

#ifdef __cplusplus
}
#endif
#endif
