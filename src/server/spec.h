/*
 * spec.h - model specifications (internal to easytorchd).
 *
 * A spec is the JSON body of POST /v1/models: layers, loss, optimizer,
 * optional scheduler and seed.  Type names are torch class names, fields
 * are constructor argument names and defaults are PyTorch's.  Parsing
 * validates everything (unknown types/fields, wrong JSON types, value
 * ranges, Linear feature chaining) before anything is built, so building
 * from a parsed spec only fails on allocation.
 */
#ifndef EASYTORCHD_SPEC_H
#define EASYTORCHD_SPEC_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

typedef enum {
    ETD_L_LINEAR, ETD_L_RELU, ETD_L_TANH, ETD_L_SIGMOID, ETD_L_GELU, ETD_L_SOFTMAX,
    ETD_L_LOGSOFTMAX, ETD_L_LEAKYRELU, ETD_L_DROPOUT, ETD_L_FLATTEN, ETD_L_IDENTITY
} etd_layer_kind;

typedef struct etd_layer {
    etd_layer_kind kind;
    int64_t in_features, out_features;
    bool bias, gelu_tanh;
    int dim, start_dim, end_dim;
    double negative_slope, p;
} etd_layer;

typedef enum {
    ETD_LOSS_MSE, ETD_LOSS_L1, ETD_LOSS_CE, ETD_LOSS_NLL, ETD_LOSS_BCE, ETD_LOSS_BCELOGITS,
    ETD_LOSS_HUBER, ETD_LOSS_SMOOTHL1
} etd_loss_kind;

typedef enum { ETD_OPT_SGD, ETD_OPT_ADAGRAD, ETD_OPT_RMSPROP, ETD_OPT_ADAM, ETD_OPT_ADAMW } etd_opt_kind;

typedef enum {
    ETD_SCHED_NONE, ETD_SCHED_STEP, ETD_SCHED_MULTISTEP, ETD_SCHED_EXP, ETD_SCHED_COSINE,
    ETD_SCHED_LINEAR
} etd_sched_kind;

typedef struct etd_spec {
    int nlayers;
    etd_layer *layers;
    etd_loss_kind loss;
    et_reduction reduction;
    double loss_arg;          /* label_smoothing, delta or beta */
    etd_opt_kind opt;
    et_sgd_opts sgd;
    et_adagrad_opts adagrad;
    et_rmsprop_opts rmsprop;
    et_adam_opts adam;        /* Adam and AdamW */
    etd_sched_kind sched;
    int64_t step_size, T_max, total_iters;
    double gamma, eta_min, start_factor, end_factor;
    int64_t *milestones;
    int nmilestones;
    bool has_seed;
    uint64_t seed;
    int64_t in_features;      /* of the first layer if known, else -1 */
    int64_t out_features;     /* of the last Linear if nothing reshapes after it, else -1 */
    int64_t param_count;
} etd_spec;

/* Parse and validate a spec (the "name" key is allowed and ignored here).
 * max_params bounds the total number of scalar parameters.  false + a
 * message naming the field in err on bad input.  Free with etd_spec_free. */
bool etd_spec_parse(const cJSON *root, int64_t max_params, etd_spec *out, char *err,
                    size_t errcap);
/* Free what etd_spec_parse allocated; s may be zeroed or freed before. */
void etd_spec_free(etd_spec *s);

/* Build the network, drawing initial parameters (and later dropout masks)
 * from g.  NULL + err on failure. */
et_module *etd_spec_build_net(const etd_spec *s, et_generator *g, char *err, size_t errcap);
/* Optimizer over params[n] and, if the spec has one, a scheduler. */
et_optim *etd_spec_build_optim(const etd_spec *s, et_tensor *const *params, int n,
                               char *err, size_t errcap);
/* The spec's scheduler over o; NULL when it has none (ETD_SCHED_NONE), or
 * NULL + err on failure. */
et_scheduler *etd_spec_build_sched(const etd_spec *s, et_optim *o, char *err, size_t errcap);
/* The loss of the spec on (output, target); new reference or NULL + et_errmsg(). */
et_tensor *etd_spec_loss(const etd_spec *s, et_tensor *out, et_tensor *target);

/* torch class names ("MSELoss", "Adam"); static strings. */
/* Key checks for JSON objects (specs here, request bodies in handlers.c):
 * the first member of obj whose key repeats an earlier one (*repeated set)
 * or is neither in allowed[] (NULL-terminated) nor equal to `also` (may be
 * NULL), or NULL when every key is fine. */
const cJSON *etd_bad_key(const cJSON *obj, const char *const *allowed, const char *also,
                         bool *repeated);
/* allowed[] joined by ", " into buf (truncated to cap), for messages. */
void etd_join_names(const char *const *allowed, char *buf, size_t cap);

const char *etd_loss_name(etd_loss_kind k);
const char *etd_opt_name(etd_opt_kind k);

#endif
