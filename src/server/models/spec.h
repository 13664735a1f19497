/*
 * spec.h - model specifications (internal to easytorchd's models layer).
 *
 * A spec is the JSON body of POST /v1/models: layers, loss, optimizer,
 * optional scheduler and seed.  Type names are torch class names, fields
 * are constructor argument names and defaults are PyTorch's.  Parsing
 * validates everything (unknown types/fields, wrong JSON types, value
 * ranges, feature sizes from layer to layer) before anything is built, so
 * building from a parsed spec only fails on allocation.
 *
 * Every type is one row of a table: layers in spec_layers.c, losses,
 * optimizers and schedulers in spec_train.c.  A row names the type, lists
 * its fields and points at a small parse function (fields -> the type's
 * struct in the unions below) and a build function.  Adding a type:
 *   1. a struct for its arguments in the union of etd_layer (etd_optim_spec,
 *      etd_sched_spec; losses share etd_loss_spec);
 *   2. a parse function reading them with the etd_field_* helpers (which
 *      name the field in every message) -- layers also tell the feature
 *      flow what they need and produce (etd_flow_*), and count parameters;
 *   3. a build function and the row in the table.
 * The error messages, the "known: ..." lists and the "did you mean"
 * suggestions come from the tables.
 */
#ifndef EASYTORCHD_SPEC_H
#define EASYTORCHD_SPEC_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/result.h"

/* ---- reading fields ---- */

/* One JSON object of a spec being read: the object, where it is in the spec
 * ("layers[2]", "optimizer") for messages, and where errors go. */
typedef struct etd_obj {
    const cJSON *o;
    const char *path;
    etd_err *e;
} etd_obj;

/* Field readers: absent -> *out = def (or "required field is missing"
 * when required); wrong type or out of range -> false + ETD_EINVAL with
 * "<path>.<key>: <what was expected>". */
bool etd_field_int(const etd_obj *o, const char *key, bool required, int64_t def, int64_t min,
                   int64_t max, int64_t *out);
/* A number in [lo, hi] (finite). */
bool etd_field_num(const etd_obj *o, const char *key, bool required, double def, double lo,
                   double hi, double *out);
bool etd_field_bool(const etd_obj *o, const char *key, bool def, bool *out);
/* One of the strings choices[] (NULL-terminated); *out is its index. */
bool etd_field_choice(const etd_obj *o, const char *key, const char *const *choices, int def,
                      int *out);
/* A list of at most max_n integers >= min (absent: *n = 0 unless required);
 * *out is malloc'ed (free it; also on failure it is NULL). */
bool etd_field_ints(const etd_obj *o, const char *key, bool required, int max_n, int64_t min,
                    int64_t **out, int *n);
/* false + ETD_EINVAL "<path>.<key>: <msg>" (key may be NULL: "<path>: <msg>"). */
bool etd_field_fail(const etd_obj *o, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- feature flow: what is known of the shape between layers ----
 * Layers are checked in order; each sees what the previous ones produce.
 * Only the size of the last dimension is tracked (what Linear needs); a
 * layer that reshapes in ways this cannot follow makes it unknown. */
typedef struct etd_flow {
    int64_t features;       /* last dimension flowing into the next layer, -1 unknown */
    const char *features_by;/* for messages: "the out_features of the previous Linear" */
    bool reshaped;          /* an earlier layer changed the shape (Flatten, ...) */
    int64_t in_features;    /* the model input's last dimension if a layer fixed it, else -1 */
    char in_field[48];      /* the field that fixed it: "layers[0].in_features" */
    int64_t params;         /* scalar parameters so far */
    int64_t max_params;
} etd_flow;

/* The layer at o needs `n` as the last dimension of its input (key names
 * its field, e.g. "in_features"): an error if the previous layers produce
 * another size; fixes the model's input size when nothing came before. */
bool etd_flow_need(etd_flow *f, const etd_obj *o, const char *key, int64_t n);
/* The layer produces last dimension n (-1: unknown from here on), `by`
 * describes it for later messages. */
void etd_flow_give(etd_flow *f, int64_t n, const char *by);
/* The layer reshapes: the size of the last dimension is unknown from here. */
void etd_flow_reshape(etd_flow *f);
/* The layer has n scalar parameters: false + error over max_params. */
bool etd_flow_params(etd_flow *f, const etd_obj *o, int64_t n);

/* ---- layers ---- */

typedef struct etd_layer_type etd_layer_type;

typedef struct etd_layer {
    const etd_layer_type *type;
    union {
        struct { int64_t in_features, out_features; bool bias; } linear;
        struct { bool tanh; } gelu;
        struct { int dim; } softmax;                /* Softmax, LogSoftmax */
        struct { double negative_slope; } leaky_relu;
        struct { double p; } dropout;
        struct { int start_dim, end_dim; } flatten;
    } u;
} etd_layer;

struct etd_layer_type {
    const char *name;                   /* torch.nn class name */
    const char *const *fields;          /* accepted fields besides "type" (NULL-terminated) */
    /* fields of o -> l->u (l->type is set); NULL: no fields, shape kept */
    bool (*parse)(etd_layer *l, const etd_obj *o, etd_flow *f);
    et_module *(*build)(const etd_layer *l, et_generator *g);   /* NULL + et_errmsg() */
};

extern const etd_layer_type etd_layer_types[];
extern const int etd_nlayer_types;

/* ---- loss, optimizer, scheduler ---- */

typedef struct etd_loss_type etd_loss_type;
typedef struct etd_optim_type etd_optim_type;
typedef struct etd_sched_type etd_sched_type;

typedef struct etd_loss_spec {
    const etd_loss_type *type;
    et_reduction reduction;
    double arg;                 /* label_smoothing, delta or beta */
} etd_loss_spec;

struct etd_loss_type {
    const char *name;
    const char *const *fields;
    bool (*parse)(etd_loss_spec *l, const etd_obj *o);      /* NULL: reduction only */
    /* "targets: ..." for targets this loss cannot take, naming the element
     * or the shape (before the library's own messages, which speak of
     * "input" for the model's output); NULL: the library checks */
    bool (*check)(const etd_loss_spec *l, const et_tensor *out, const et_tensor *target,
                  etd_err *e);
    et_tensor *(*fn)(const etd_loss_spec *l, et_tensor *out, et_tensor *target);
};

typedef struct etd_optim_spec {
    const etd_optim_type *type;
    union {
        et_sgd_opts sgd;
        et_adagrad_opts adagrad;
        et_rmsprop_opts rmsprop;
        et_adam_opts adam;      /* Adam and AdamW */
    } u;
} etd_optim_spec;

struct etd_optim_type {
    const char *name;
    const char *const *fields;
    bool (*parse)(etd_optim_spec *s, const etd_obj *o);
    et_optim *(*build)(const etd_optim_spec *s, et_tensor *const *params, int n);
};

typedef struct etd_sched_spec {
    const etd_sched_type *type;     /* NULL: no scheduler */
    union {
        struct { int64_t step_size; double gamma; } step;
        struct { int64_t *milestones; int n; double gamma; } multistep;
        struct { double gamma; } exp;
        struct { int64_t T_max; double eta_min; } cosine;
        struct { double start_factor, end_factor; int64_t total_iters; } linear;
    } u;
} etd_sched_spec;

struct etd_sched_type {
    const char *name;
    const char *const *fields;
    bool (*parse)(etd_sched_spec *s, const etd_obj *o);
    et_scheduler *(*build)(const etd_sched_spec *s, et_optim *o);
    void (*free)(etd_sched_spec *s);    /* NULL: nothing allocated */
};

extern const etd_loss_type etd_loss_types[];
extern const int etd_nloss_types;
extern const etd_optim_type etd_optim_types[];
extern const int etd_noptim_types;
extern const etd_sched_type etd_sched_types[];
extern const int etd_nsched_types;

/* ---- the whole spec ---- */

typedef struct etd_spec {
    int nlayers;
    etd_layer *layers;
    etd_loss_spec loss;
    etd_optim_spec optim;
    etd_sched_spec sched;
    bool has_seed;
    uint64_t seed;
    int64_t in_features;      /* the input's last dimension if the layers fix it, else -1 */
    char in_field[48];        /* the field that fixes it, for messages */
    int64_t out_features;     /* the output's last dimension if known, else -1 */
    et_dtype in_dtype;        /* ET_INT64 when the first layer takes indices (Embedding sets
                                 it in its parse function), else ET_FLOAT32 (the zero value) */
    int64_t param_count;
} etd_spec;

/* Parse and validate a spec (the "name" key is allowed and ignored here).
 * max_params bounds the total number of scalar parameters.  false + a
 * message naming the field in e (ETD_EINVAL) on bad input.  Free with
 * etd_spec_free (also after a failure: harmless). */
bool etd_spec_parse(const cJSON *root, int64_t max_params, etd_spec *out, etd_err *e);
/* Free what etd_spec_parse allocated; s may be zeroed or freed before. */
void etd_spec_free(etd_spec *s);

/* Build the network, drawing initial parameters (and later dropout masks)
 * from g.  NULL + e on failure. */
et_module *etd_spec_build_net(const etd_spec *s, et_generator *g, etd_err *e);
/* The optimizer over params[n].  NULL + e on failure. */
et_optim *etd_spec_build_optim(const etd_spec *s, et_tensor *const *params, int n, etd_err *e);
/* The spec's scheduler over o; NULL when it has none (check s->sched.type),
 * or NULL + e on failure. */
et_scheduler *etd_spec_build_sched(const etd_spec *s, et_optim *o, etd_err *e);
/* Does the loss take class indices as targets (CrossEntropyLoss, NLLLoss)? */
bool etd_loss_takes_indices(const etd_loss_spec *l);
/* The spec's loss on (output, target): a new reference, or NULL + e
 * (ETD_EINVAL "targets: ..." for targets the loss cannot take).  int64
 * targets (from a binary body) are class indices for a loss that takes
 * them, and numbers (converted as torch's .float()) for the others, as the
 * same numbers in JSON would be. */
et_tensor *etd_spec_loss(const etd_spec *s, et_tensor *out, et_tensor *target, etd_err *e);

/* A row of one of the tables by its exact name, or NULL.  rows is an array
 * of n structs of `size` bytes whose first member is the name. */
const void *etd_spec_find(const void *rows, int n, size_t size, const char *name);

#endif
