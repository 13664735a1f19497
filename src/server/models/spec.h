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

/* ---- reading fields (spec_fields.c) ---- */

#define ETD_SPEC_MAX_EXACT 9007199254740992.0 /* 2^53: integers a JSON number holds exactly */

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
/* torch's "int or tuple" arguments (kernel_size=3 or [3, 5]): a number
 * fills all n entries of out, a list must have exactly n integers; each in
 * [min, max].  Absent: def in every entry unless required. */
bool etd_field_int_tuple(const etd_obj *o, const char *key, bool required, int n, int64_t def,
                         int64_t min, int64_t max, int64_t *out);
/* A nullable field (torch's None): absent or null -> *is_null true and
 * nothing read; otherwise read as etd_field_num / etd_field_int. */
bool etd_field_num_or_null(const etd_obj *o, const char *key, double lo, double hi, double *out,
                           bool *is_null);
bool etd_field_int_or_null(const etd_obj *o, const char *key, int64_t min, int64_t max,
                           int64_t *out, bool *is_null);
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

/* A mask fixed in the spec (MultiheadAttention's attn_mask, TransformerEncoderLayer's
 * src_mask, TransformerEncoder's mask): "causal" (torch's
 * generate_square_subsequent_mask, sized to the input at each forward), or
 * a [rows, cols] matrix of numbers (added to the scores) or of booleans
 * (true = may not attend, as torch's bool masks). */
typedef enum { ETD_MASK_NONE = 0, ETD_MASK_CAUSAL, ETD_MASK_FLOAT, ETD_MASK_BOOL } etd_mask_kind;
typedef struct etd_mask {
    etd_mask_kind kind;
    int64_t rows, cols;
    float *f;                   /* ETD_MASK_FLOAT: rows * cols (malloc'ed) */
    int64_t *b;                 /* ETD_MASK_BOOL: rows * cols, 0 / 1 (malloc'ed) */
} etd_mask;

typedef struct etd_layer {
    const etd_layer_type *type;
    etd_mask mask;              /* attention layers' fixed mask (etd_layer_free frees it) */
    /* attention layers in a layer list: a key padding mask made from the model's
     * token input ({"input_equals": pad}: padding where a token is pad) */
    bool kpm;
    int64_t kpm_pad;
    struct etd_layer *kids;     /* nested layers (malloc'ed): TransformerEncoder's
                                   encoder_layer [0] and norm [1] (type NULL: none) */
    int nkids;
    union {
        struct { int64_t in_features, out_features; bool bias; } linear;
        struct { bool tanh; } gelu;
        struct { int dim; } softmax;                /* Softmax, LogSoftmax */
        struct { double negative_slope; } leaky_relu;
        struct { double p; } dropout;
        struct { int start_dim, end_dim; } flatten;
        /* spec_layers_norm.c */
        struct { int64_t num_features; et_batch_norm_opts o; } batch_norm;  /* 1d, 2d */
        struct { int nd; int64_t shape[ET_MAX_DIMS]; double eps; bool affine; } layer_norm;
        struct { int64_t groups, channels; double eps; bool affine; } group_norm;
        struct { int64_t num, dim; et_embedding_bag_opts o; } embedding;  /* and EmbeddingBag */
        /* spec_layers_conv.c */
        struct { int64_t in, out, kernel[2]; et_conv_opts o; } conv;       /* 1d, 2d, transpose */
        struct { int64_t kernel[2]; et_pool_opts o; } pool;                 /* max, avg */
        struct { int64_t size[2]; } adaptive;                               /* -1: None */
        struct { int64_t pad[4]; double value; } pad;
        struct { int dim, n; int64_t sizes[ET_MAX_DIMS]; } unflatten;
        struct { double a, b; } act;                /* ELU alpha; Softplus beta, threshold;
                                                       Hardtanh min_val, max_val */
        /* spec_layers_attn.c */
        struct { int64_t embed_dim, num_heads; et_mha_opts o; } mha;
        struct { int64_t d_model, nhead; et_encoder_layer_opts o; } enc_layer;
        struct { int num_layers; } encoder;         /* kids: encoder_layer, norm */
    } u;
} etd_layer;

struct etd_layer_type {
    const char *name;                   /* torch.nn class name */
    const char *const *fields;          /* accepted fields besides "type" (NULL-terminated) */
    /* fields of o -> l->u (l->type is set); NULL: no fields, shape kept */
    bool (*parse)(etd_layer *l, const etd_obj *o, etd_flow *f);
    et_module *(*build)(const etd_layer *l, et_generator *g);   /* NULL + et_errmsg() */
    bool index_input;                   /* as the first layer: the model's inputs are int64
                                           indices (Embedding, EmbeddingBag) */
    /* Layers whose torch forward takes more than one tensor: its argument
     * names in torch's order (at most ETD_MAX_FWD_ARGS, NULL-terminated;
     * NULL = {"input"}) and the
     * forward over in[] (in[i] is fwd_args[i], NULL = not given; in[0] is
     * always given).  NULL forward: et_module_forward(m, in[0]).  Call it
     * through etd_layer_forward. */
    const char *const *fwd_args;
    et_tensor *(*forward)(const etd_layer *l, et_module *m, et_tensor *const *in);
};

extern const etd_layer_type etd_layer_types[];
extern const int etd_nlayer_types;
#define ETD_MAX_FWD_ARGS 8

/* THE entry point for one layer object (the elements of "layers", nested
 * layers such as TransformerEncoder's encoder_layer, graph nodes' modules):
 * its "type" looked up in the table (unknown -> "known: ..." + did you
 * mean), its fields checked and parsed into *out, the flow advanced.  path
 * names it in messages ("layers[2]", "nodes[1].module").  false + e
 * (ETD_EINVAL naming the field); free *out with etd_layer_free either way. */
bool etd_spec_parse_layer(const cJSON *j, const char *path, etd_layer *out, etd_flow *f,
                          etd_err *e);
/* Free what etd_spec_parse_layer allocated in l (not l itself). */
void etd_layer_free(etd_layer *l);
/* The module of a parsed layer, its parameters drawn from g: NULL + e
 * naming `path` on failure. */
et_module *etd_spec_build_layer(const etd_layer *l, et_generator *g, const char *path,
                                etd_err *e);
/* torch's forward of the layer's module m over in[] (see fwd_args; in[0]
 * required), inside an open et_pool: a pool-owned result, or NULL +
 * et_errmsg() (the library's message, prefixed with the module's type). */
et_tensor *etd_layer_forward(const etd_layer *l, et_module *m, et_tensor *const *in);

/* ---- loss, optimizer, scheduler ---- */

typedef struct etd_loss_type etd_loss_type;
typedef struct etd_optim_type etd_optim_type;
typedef struct etd_sched_type etd_sched_type;

typedef struct etd_loss_spec {
    const etd_loss_type *type;
    et_reduction reduction;
    double arg;                 /* label_smoothing, delta or beta */
    bool flag;                  /* KLDivLoss log_target */
    int64_t ignore_index;       /* CrossEntropyLoss, NLLLoss (torch's -100) */
    float *weight;              /* class weights / BCEWithLogits weight (malloc'ed), or NULL */
    int nweight;
    float *pos_weight;          /* BCEWithLogits pos_weight, or NULL */
    int npos_weight;
    double p, eps;              /* TripletMarginLoss (margin is arg, swap is flag) */
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
    bool class_targets;         /* targets are int64 class indices (CE, NLL) */
    bool prob_targets;          /* ... or float class probabilities shaped like the output (CE) */
    /* Losses of several model outputs (MarginRankingLoss: x1, x2; TripletMarginLoss:
     * anchor, positive, negative): how many (0 = one, through fn), whether a
     * target is taken, and the function over outs[0..ninputs).  Only in a
     * graph's loss list, whose entries name the outputs (spec_losses.c). */
    int ninputs;
    bool no_target;
    et_tensor *(*fn_n)(const etd_loss_spec *l, et_tensor *const *outs, et_tensor *target);
};

/* One entry of a graph model's loss list ("loss": [{"type", "output", "target",
 * "weight"}, ...]): the loss on outputs out[0..nout) of the graph and target
 * `target` (an index into etd_spec.target_names; -1: none), times weight. */
#define ETD_MAX_LOSSES 8
typedef struct etd_loss_term {
    etd_loss_spec l;
    int nout;
    int out[3];
    int target;
    double weight;
} etd_loss_term;

/* One entry of "param_groups": the parameters whose state_dict name starts
 * with one of `prefixes`, and the hyper-parameters it sets (library keys:
 * "betas" is given as beta1 and beta2). */
typedef struct etd_param_group {
    char **prefixes;
    int nprefixes;
    int nset;
    const char *key[16];        /* static strings */
    double value[16];
} etd_param_group;

typedef struct etd_optim_spec {
    const etd_optim_type *type;
    union {
        et_sgd_opts sgd;
        et_adagrad_opts adagrad;
        et_rmsprop_opts rmsprop;
        et_adam_opts adam;      /* Adam and AdamW */
        et_nadam_opts nadam;
        et_radam_opts radam;
        et_adamax_opts adamax;
    } u;
    etd_param_group *groups;    /* malloc'ed, or NULL */
    int ngroups;
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
        struct { double factor; int64_t total_iters; } constant;
        struct { int64_t T_0, T_mult; double eta_min; } warm;
        et_onecycle_opts onecycle;
        et_plateau_opts plateau;
        /* SequentialLR / ChainedScheduler: children (malloc'ed) and milestones */
        struct { struct etd_sched_spec *kids; int n; int64_t *milestones; int nm; } seq;
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

typedef struct etd_graph etd_graph;   /* spec_graph.h */

typedef struct etd_spec {
    int nlayers;
    etd_layer *layers;
    etd_graph *graph;         /* a graph model ("nodes" instead of "layers"), or NULL */
    etd_loss_spec loss;       /* the loss (a loss list: its first entry's) */
    etd_loss_term *terms;     /* a graph's loss list (malloc'ed), or NULL: `loss` on output 0 */
    int nterms;
    char target_names[ETD_MAX_LOSSES][64];  /* the loss list's targets, first use order */
    et_dtype target_dtypes[ETD_MAX_LOSSES];
    bool target_float_oks[ETD_MAX_LOSSES];
    int ntargets;
    etd_optim_spec optim;
    etd_sched_spec sched;
    bool has_seed;
    uint64_t seed;
    int nonfinite;            /* the divergence guard's policy: etd_nf_policy (models.h) */
    bool sync_batchnorm;      /* data-parallel training: BatchNorm statistics over every
                                 replica's rows (torch's convert_sync_batchnorm) */
    int64_t in_features;      /* the input's last dimension if the layers fix it, else -1 */
    char in_field[48];        /* the field that fixes it, for messages */
    int64_t out_features;     /* the output's last dimension if known, else -1 */
    int64_t param_count;
    et_dtype input_dtype;     /* ET_INT64 when layers[0] takes indices, else ET_FLOAT32 */
    et_dtype target_dtype;    /* ET_INT64 for class-index losses, else ET_FLOAT32 */
    bool target_float_ok;     /* targets that are not whole numbers are read as float32
                                 (CrossEntropyLoss's probabilities) */
    /* dynamic batching ("batching": {"max_batch_size", "max_delay_us"}):
     * max_batch_size 0 = off */
    int64_t max_batch_size;
    int64_t max_delay_us;
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
/* The optimizer over params[n] (names[i]: params[i]'s state_dict name, which
 * "param_groups" prefixes select).  NULL + e on failure (ETD_EINVAL naming
 * the param_groups entry that matches nothing or a parameter twice). */
et_optim *etd_spec_build_optim(const etd_spec *s, et_tensor *const *params,
                               const char *const *names, int n, etd_err *e);
/* Parse the scheduler object j (at `path` for messages) into out (the
 * top-level "scheduler" and the children of SequentialLR / ChainedScheduler;
 * nested: depth of nesting so far).  Free with etd_sched_free. */
bool etd_sched_parse(const cJSON *j, const char *path, int nested, etd_sched_spec *out,
                     etd_err *e);
void etd_sched_free(etd_sched_spec *s);
/* The spec's scheduler over o; NULL when it has none (check s->sched.type),
 * or NULL + e on failure. */
et_scheduler *etd_spec_build_sched(const etd_spec *s, et_optim *o, etd_err *e);
/* The spec's loss on (output, target): a new reference, or NULL + e
 * (ETD_EINVAL "targets: ..." for targets the loss cannot take). */
et_tensor *etd_spec_loss(const etd_spec *s, et_tensor *out, et_tensor *target, etd_err *e);
/* One loss object at path ("loss", "loss[1]"; a bare string is {"type": it})
 * into *out: the type looked up, its fields checked and parsed.  false + e. */
bool etd_spec_parse_loss(const cJSON *j, const char *path, etd_loss_spec *out, etd_err *e);
/* A graph's loss list ("loss": [...], spec_losses.c) into s->terms and the
 * target names; false + e naming the entry and field. */
bool etd_spec_parse_loss_list(const cJSON *j, etd_spec *s, etd_err *e);
/* A loss list's total, sum of weight * loss over the terms, on the graph's
 * outputs outs[] and the targets targets[] (etd_spec.target_names order):
 * pool-owned or NULL + e naming the entry ("loss[1] (MSELoss): ..."). */
et_tensor *etd_spec_losses(const etd_spec *s, et_tensor *const *outs, et_tensor *const *targets,
                           etd_err *e);
/* The same with term i's loss also multiplied by scale[i] (0: the term is
 * left out, not computed); NULL + e as above, and NULL with e untouched
 * when every term is left out.  A data-parallel replica rescales its
 * share's terms to the whole minibatch's normalisers (train_dp.c). */
et_tensor *etd_spec_losses_scaled(const etd_spec *s, et_tensor *const *outs,
                                  et_tensor *const *targets, const double *scale, etd_err *e);
/* etd_spec_loss_norm of loss list term i for these outputs and targets: the
 * losses of several outputs divide by their elementwise count (margin
 * ranking) or rows (cosine embedding, triplet). */
double etd_spec_term_norm(const etd_spec *s, int i, et_tensor *const *outs,
                          et_tensor *const *targets);
/* The same, and each entry's own value (unweighted) into each[0..nterms). */
et_tensor *etd_spec_losses_each(const etd_spec *s, et_tensor *const *outs,
                                et_tensor *const *targets, float *each, etd_err *e);
/* What the loss's reduction divides by for these targets (and the output's
 * rank out_ndim): mean -- the elements, the non-ignored class targets (their
 * class weights summed), the rows for batchmean; 0 for sum.  A data-parallel
 * replica weights its share's gradient by it (train_dp.c). */
double etd_spec_loss_norm(const etd_loss_spec *l, const et_tensor *target);

/* A row of one of the tables by its exact name, or NULL.  rows is an array
 * of n structs of `size` bytes whose first member is the name. */
const void *etd_spec_find(const void *rows, int n, size_t size, const char *name);

#endif
