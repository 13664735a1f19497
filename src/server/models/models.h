/*
 * models.h - the models layer of easytorchd: the named models it hosts and
 * what can be done with them (internal).  No HTTP here: calls return an
 * etd_rc (formats/result.h) with a message in an etd_err, and plain result
 * structs; the endpoints write the responses.
 *
 * Locking (the reason the registry is a module of its own):
 *   - the registry mutex guards the name table only;
 *   - each model has a read/write lock: predictions, parameter and gradient
 *     reads and saves take it shared, training calls (batches, step, train,
 *     gradient probes, parameter writes) take it exclusive, so a prediction
 *     never sees half-updated parameters.  Modules stay in eval mode except
 *     while a training call holds the write lock;
 *   - a small per-model mutex guards the published summary and the loss
 *     history, so listings, /metrics and dashboards never wait for a long
 *     training call.
 * Lookups return a counted reference (etd_model_unref when done), so a model
 * deleted meanwhile stays valid until its last user is gone.
 *
 * The model lock is not tied to a thread (model_lock.c): the transport's
 * worker pool takes it without waiting for a request (etd_model_try_hold)
 * before a worker runs that request, so a request waiting for a model waits
 * in a queue, not in a thread.
 *
 * Every call validates fully before changing anything; a call that fails
 * half-way (a bad minibatch in train, a failed save with --sync always)
 * rolls the model back to the state before it (train_state.c), so a failed
 * call never changes a model.  Results hold copies, so the endpoints write
 * responses without holding any lock.
 */
#ifndef EASYTORCHD_MODELS_H
#define EASYTORCHD_MODELS_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/json_out.h"
#include "server/formats/result.h"
#include "server/formats/tensor_json.h"

typedef struct etd_registry etd_registry;
typedef struct etd_model etd_model;

typedef struct etd_registry_opts {
    const char *data_dir;
    bool sync_always;         /* persist before acknowledging every change */
    double save_interval;     /* seconds between background saves of changed models */
    int max_models;
    int64_t max_params;       /* scalar parameters per model */
    int64_t max_steps;        /* optimizer steps per train call */
    size_t max_history;       /* loss-history entries kept per model */
    double max_train_seconds; /* a train call stops between two steps after this; <= 0: none */
    int job_threads;          /* threads running training jobs (--job-threads) */
    int job_nice;             /* added to the job threads' nice value (--job-nice) */
    size_t event_buffer;      /* events kept for /v1/events (--event-buffer; per model: 1/4) */
    double event_interval;    /* seconds between a model's coalesced step events */
    int max_jobs;             /* jobs queued or running at once, all models (--max-jobs) */
} etd_registry_opts;

/* ---- the registry ---- */

/* NULL + e if the data directory cannot be created, or is in use: its lock
 * file (DATA_DIR/.easytorchd.lock, flock'ed for the registry's lifetime,
 * holding the owner's PID) is held by another process -- the message names
 * that PID.  o is copied. */
etd_registry *etd_registry_new(const etd_registry_opts *o, etd_err *e);
/* Stops the saver thread, saves every changed model and frees everything. */
void etd_registry_free(etd_registry *r);
/* Load every model file of the data dir (corrupt ones are reported on
 * stderr and skipped), then start the background saver. */
void etd_registry_load_all(etd_registry *r);
/* Save every changed model now; returns the number of failures. */
int etd_registry_save_all(etd_registry *r);
/* Stop every training job between two steps, as "interrupted" (shutdown;
 * also done by etd_registry_free).  No job is accepted afterwards. */
void etd_registry_stop_jobs(etd_registry *r);
/* Number of live models (deleted ones excluded). */
int etd_registry_count(etd_registry *r);
/* h->fn(h->arg) is called whenever a model's lock becomes free (from the
 * thread that released it, holding no lock of the models layer).  h must
 * stay valid until it is replaced; replacing it (NULL: none) returns once no
 * call of the old one is running. */
typedef struct etd_release_hook {
    void (*fn)(void *arg);
    void *arg;
} etd_release_hook;
void etd_registry_on_release(etd_registry *r, const etd_release_hook *h);

/* Valid model name?  (^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, no "..") */
bool etd_name_ok(const char *name);
/* Counted reference to the model called name; ETD_ENOTFOUND ("no model
 * named \"x\"") for unknown or invalid names. */
etd_rc etd_registry_get(etd_registry *r, const char *name, etd_model **m, etd_err *e);
/* Drop a reference (NULL-safe); the last one frees. */
void etd_model_unref(etd_model *m);

/* Define a model from its spec (the whole JSON body, "name" included):
 * parse, build, write its file, then publish it.  *m: a new reference.
 * ETD_EINVAL bad spec or name, ETD_EEXIST name taken, ETD_ELIMIT
 * --max-models reached, ETD_ENOSPC/ETD_EIO its file could not be written
 * (the model is not created). */
etd_rc etd_registry_define(etd_registry *r, const cJSON *spec, etd_model **m, etd_err *e);
/* Forget the model and remove its file; ETD_ENOTFOUND. */
etd_rc etd_registry_delete(etd_registry *r, const char *name, etd_err *e);

/* ---- the vocabulary of specs (GET /v1/types) ---- */

typedef enum etd_type_family {
    ETD_TYPES_LAYER,
    ETD_TYPES_LOSS,
    ETD_TYPES_OPTIMIZER,
    ETD_TYPES_SCHEDULER,
    ETD_TYPES_COUNT
} etd_type_family;

/* Number of types of family f. */
int etd_spec_type_count(etd_type_family f);
/* The i-th type's name (the torch class name) and its fields in constructor
 * order (*fields NULL-terminated, or NULL for none); NULL past the end. */
const char *etd_spec_type(etd_type_family f, int i, const char *const **fields);
/* ---- the divergence guard ----
 * A batch whose loss, gradients or running statistics (buffers) are not
 * finite, under the model's policy:
 *   skip      (default, as torch's GradScaler) it is not applied: a pushed
 *             batch adds no gradient, a train minibatch or a step takes no
 *             optimizer/scheduler step (the forward ran: dropout draws stay
 *             drawn);
 *   rollback  the model goes back to its image of the last finite state
 *             (refreshed after every finite step, and when the state is set
 *             by define, load, PATCH or PUT parameters): parameters,
 *             optimizer and scheduler state, generator, counters, history;
 *             batches pushed since are discarded.  A step that leaves a
 *             parameter non-finite (finite gradients, too large an lr) is
 *             undone the same way;
 *   allow     everything is applied; a model whose parameters went
 *             non-finite reads "status": "diverged".
 * Every such event is counted, the last one kept, under every policy. */
typedef enum etd_nf_policy { ETD_NF_SKIP, ETD_NF_ROLLBACK, ETD_NF_ALLOW } etd_nf_policy;
/* "skip", "rollback", "allow" (NULL-terminated, by etd_nf_policy) */
extern const char *const etd_nf_policy_names[];
typedef enum etd_nf_action { ETD_NF_SKIPPED, ETD_NF_ROLLED_BACK, ETD_NF_APPLIED } etd_nf_action;
/* "skipped", "rolled_back", "applied" */
extern const char *const etd_nf_action_names[];
#define ETD_NF_SOURCE 24
#define ETD_NF_REASON 160

typedef struct etd_nf_summary {
    int policy;               /* etd_nf_policy */
    bool diverged;            /* a parameter is not finite */
    int64_t count;            /* events so far */
    int64_t step;             /* the last one: the model's step then, */
    double time;              /* its Unix time, */
    int action;               /* etd_nf_action, */
    char source[ETD_NF_SOURCE];   /* "batches", "step", "train", "job 3", */
    char reason[ETD_NF_REASON];   /* "loss is NaN" */
} etd_nf_summary;

/* ---- holding a model's lock for a job (the transport's worker pool) ---- */

/* Take m's lock now if that needs no waiting (write: exclusive); false if
 * it is busy.  reserved (may be NULL) is the job's reservation flag, false
 * at first: a failed exclusive try sets it and keeps new shared holders out
 * until the job had its turn; a successful try (or etd_model_unreserve, for
 * a job given up) clears it.  Without reserved, an exclusive try also fails
 * while any job holds a reservation. */
bool etd_model_try_hold(etd_model *m, bool write, bool *reserved);
void etd_model_unreserve(etd_model *m, bool *reserved);
/* The job running on this thread holds m's lock (m NULL: none): the
 * etd_model_* calls on m then do not lock it again. */
void etd_model_adopt(etd_model *m, bool write);
/* Give back a hold taken with etd_model_try_hold (from any thread). */
void etd_model_release(etd_model *m);

/* ---- what readers see without waiting (the published summary) ---- */

typedef struct etd_model_summary {
    int64_t step, pending;
    bool has_loss;
    float loss;
    double lr;                /* the next step's */
    etd_nf_summary nf;
} etd_model_summary;

/* References to every live model with its summary, in definition order;
 * free with etd_model_list_free. */
typedef struct etd_model_list {
    int n;
    etd_model **models;
    etd_model_summary *sum;
} etd_model_list;
etd_rc etd_registry_list(etd_registry *r, etd_model_list *out, etd_err *e);
void etd_model_list_free(etd_model_list *l);

/* What a model is (immutable parts borrowed from m, valid while the
 * reference is held) and its summary. */
typedef struct etd_model_info {
    const char *name;
    uint64_t seed;
    int64_t param_count;      /* scalar parameters */
    int nparams;              /* parameter tensors: etd_model_param_name(m, 0..n-1) */
    int nbuffers;             /* buffers (running statistics): etd_model_buffer_name */
    int64_t in_features;      /* the input's last dimension if the layers fix it, else -1 */
    int64_t out_features;     /* the output's, else -1 */
    etd_model_summary sum;
} etd_model_info;
void etd_model_info_get(etd_model *m, etd_model_info *info);
/* The spec as submitted (without "name"), as it is now: PATCH changes its
 * optimizer, scheduler and nonfinite (copied: readers that must not wait). */
void etd_model_write_spec(etd_model *m, etd_buf *out);
const char *etd_model_name(const etd_model *m);
/* Does the model batch concurrent predictions (its spec's "batching")? */
bool etd_model_batching(const etd_model *m);
/* Is every change persisted before it is acknowledged (--sync always: a
 * file write and fsync per train call)? */
bool etd_model_saves_each_change(const etd_model *m);
/* One more reference (drop it with etd_model_unref). */
etd_model *etd_model_ref(etd_model *m);
/* state_dict() name of the i-th parameter ("0.weight"); borrowed. */
const char *etd_model_param_name(const etd_model *m, int i);
/* state_dict() name of the i-th buffer ("3.running_mean"); borrowed. */
const char *etd_model_buffer_name(const etd_model *m, int i);
/* Is state_dict entry `name` an int64 tensor ("3.num_batches_tracked")? */
bool etd_model_state_is_int64(const etd_model *m, const char *name);
/* The dtypes the model takes (immutable, no lock): inputs int64 when its
 * first layer is an Embedding/EmbeddingBag, targets int64 for class-index
 * losses; float32 otherwise.  Endpoints parse those as whole numbers. */
void etd_model_dtypes(const etd_model *m, et_dtype *inputs, et_dtype *targets);
/* May int64 targets also come as float32 (CrossEntropyLoss's class
 * probabilities)?  Then targets that are not whole numbers are read as floats. */
bool etd_model_targets_float_ok(const etd_model *m);

/* ---- versions as the OIP names them (/v2/models/{name}/versions/{version}) ----
 * A model never frozen is served as one version, "1": its live state.  Once
 * it has frozen versions (versions.h) those are its versions "1", "2", ...
 * and "live" names the live model. */

#define ETD_VERSION_STR 24
/* The versions m serves, oldest first, into out[0..max); returns how many
 * there are (may be more than max). */
int etd_model_versions(etd_model *m, char (*out)[ETD_VERSION_STR], int max);
/* The model that serves version `version` of m: a new reference in *out
 * (m itself for its live state); ETD_ENOTFOUND "model \"x\" has no
 * version \"2\" (versions: 1)". */
etd_rc etd_model_version(etd_model *m, const char *version, etd_model **out, etd_err *e);
/* What plain infer serves ("serving": a version, or live) as a new
 * reference in *out, and its version string. */
void etd_model_current_version(etd_model *m, etd_model **out, char ver[ETD_VERSION_STR]);

/* ---- operations ---- */

/* Named tensors: names borrowed from the model, tensors owned (free with
 * etd_tensors_free). */
typedef struct etd_tensors {
    int n;
    const char **names;
    et_tensor **t;
} etd_tensors;
void etd_tensors_free(etd_tensors *t);

/* Forward in eval mode without gradients; *y is a new reference.  For a
 * batching model the forward is batch-invariant (et_set_batch_invariant),
 * so its rows are the bits a dynamic batch gives them. */
etd_rc etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, etd_err *e);
/* The inputs' shape against the layers (400 "inputs: expected shape ..."). */
etd_rc etd_model_check_inputs(const etd_model *m, const etd_array *x, etd_err *e);

/* A graph model's named inputs, outputs and targets (names borrowed from
 * the model, valid while a reference is held).  named: bodies name them
 * ("inputs": {"user": ..., "item": ...}) -- a graph with several inputs or
 * outputs, or a loss list; then x and y are etd_arrays of parts in these
 * orders.  Otherwise the model takes one input and one target array. */
#define ETD_MAX_IO 16
typedef struct etd_model_io {
    bool graph, named;
    int ninputs, noutputs, ntargets;
    const char *inputs[ETD_MAX_IO], *outputs[ETD_MAX_IO], *targets[ETD_MAX_IO];
    et_dtype in_dtype[ETD_MAX_IO], target_dtype[ETD_MAX_IO];
    int64_t in_features[ETD_MAX_IO], out_features[ETD_MAX_IO];   /* last dims; -1: unknown */
    bool target_float_ok[ETD_MAX_IO];
} etd_model_io;
void etd_model_io_get(const etd_model *m, etd_model_io *io);
/* Forward of a model with several outputs: ys[0..*ny) new references in
 * etd_model_io's output order (*ny <= ETD_MAX_IO). */
etd_rc etd_model_forward_all(etd_model *m, const etd_array *x, et_tensor **ys, int *ny,
                             etd_err *e);

/* ---- dynamic batching (batcher.c) ---- */

/* The answer of a batched forward: rc ETD_OK with ys[0..ny) (new references,
 * taken over by the callee: the request's own rows of each output, in
 * etd_model_io's output order; the array itself is the caller's), or an
 * error with its message (ys NULL, ny 0). */
typedef void (*etd_forward_done)(void *arg, etd_rc rc, et_tensor **ys, int ny, const char *msg);
/* Queue x (taken over: x is zeroed) for the model's next dynamic batch;
 * done(arg, ...) is called exactly once, on the thread that runs the batch
 * (maybe before this returns).  Without batching, or without an executor,
 * the request runs alone at once (the same bits).  A bad shape is refused
 * here (the error is returned, done is not called). */
etd_rc etd_model_forward_batched(etd_model *m, etd_array *x, etd_forward_done done, void *arg,
                                 etd_err *e);
/* Where batches run: submit(self, m, fn, arg) runs fn(arg) on a worker
 * holding m's lock shared (taking its own reference to m), or returns
 * false.  Set by the transport while it serves (NULL: none). */
typedef struct etd_executor {
    bool (*submit)(void *self, etd_model *m, void (*fn)(void *arg), void *arg);
    void *self;
    int slots;                  /* jobs it runs at once (its workers); <= 0: 1 */
} etd_executor;
void etd_registry_set_executor(etd_registry *r, const etd_executor *ex);

#define ETD_BATCH_BUCKETS 11
/* Upper bounds (rows) of the batch-size histogram's buckets; the last is
 * INT64_MAX (+Inf). */
extern const int64_t etd_batch_bucket_le[ETD_BATCH_BUCKETS];
typedef struct etd_batch_stats {
    bool enabled;
    int64_t queued_requests, queued_rows;
    uint64_t batches, rows, requests;
    uint64_t hist[ETD_BATCH_BUCKETS]; /* batches by rows, per bucket (not cumulative) */
} etd_batch_stats;
void etd_model_batch_stats(etd_model *m, etd_batch_stats *st);

/* Forward in training mode, loss, backward: the gradients accumulate. */
typedef struct etd_batch_result {
    float loss;
    int64_t pending;          /* batches pending after this one */
    bool skipped;             /* the divergence guard did not apply it */
    char why[ETD_NF_REASON];  /* ... because (the guard's reason) */
} etd_batch_result;
etd_rc etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y,
                            etd_batch_result *r, etd_err *e);

/* One optimizer (and scheduler) step over the accumulated batches;
 * ETD_ESTATE when none is pending. */
typedef struct etd_step_result {
    int64_t step;             /* after this one */
    double lr, next_lr;       /* used by this step; after the scheduler stepped */
    float loss;               /* the mean loss of the batches it consumed */
    bool skipped;             /* the divergence guard took no step (or undid it) */
    char why[ETD_NF_REASON];
} etd_step_result;
etd_rc etd_model_step(etd_model *m, etd_step_result *r, etd_err *e);

/* Called before each optimizer step of a long call with the steps done
 * and the total; returning false stops the call there: the steps done are
 * kept (the model is as if the call had asked for that many), committed and
 * saved as usual, and the result says `stopped`.  It runs under the model's
 * write lock: keep it short. */
typedef bool (*etd_progress_fn)(void *arg, int64_t done, int64_t total);

typedef struct etd_train_opts {
    int64_t epochs;           /* >= 1 */
    int64_t batch_size;       /* <= 0 or more than the rows: all rows */
    bool shuffle;             /* a permutation per epoch from the model's generator */
    etd_progress_fn progress; /* may be NULL */
    void *progress_arg;
} etd_train_opts;

typedef enum etd_train_stop {
    ETD_TRAIN_DONE = 0,       /* every step asked for */
    ETD_TRAIN_CANCELLED,      /* the progress hook said stop (the client went away) */
    ETD_TRAIN_TIME_LIMIT      /* --max-train-seconds */
} etd_train_stop;

typedef struct etd_train_result {
    int64_t step;             /* after the call */
    double lr;                /* of the last step */
    int64_t n;                /* minibatches run */
    int64_t total;            /* minibatches asked for */
    etd_train_stop stopped;
    float *losses;            /* one per minibatch, NaN where not finite (malloc'ed:
                                 etd_train_result_free) */
    int64_t skipped;          /* minibatches the divergence guard did not apply */
    char why[ETD_NF_REASON];  /* the last one's reason */
} etd_train_result;
/* epochs x minibatches of (x, y), zero grad, forward, loss, backward and
 * one optimizer step each.  A failing minibatch rolls everything back; a
 * stop (progress hook, time limit) between two steps keeps the steps done
 * and returns ETD_OK with r->stopped set (logged as "cancelled after N
 * steps"). */
etd_rc etd_model_train(etd_model *m, const etd_array *x, const etd_array *y,
                       const etd_train_opts *o, etd_train_result *r, etd_err *e);
void etd_train_result_free(etd_train_result *r);

/* The accumulated gradients (zeros where none) and the pending count. */
etd_rc etd_model_gradients(etd_model *m, etd_tensors *g, int64_t *pending, etd_err *e);

/* Gradients of the loss on (x, y) alone, of the parameters and of the
 * inputs; nothing of the model changes. */
typedef struct etd_probe_result {
    float loss;
    etd_tensors grads;
    et_tensor *input_grad;
} etd_probe_result;
etd_rc etd_model_probe(etd_model *m, const etd_array *x, const etd_array *y,
                       etd_probe_result *r, etd_err *e);
void etd_probe_result_free(etd_probe_result *r);

/* Copies of the state_dict by name and in its order: parameters and
 * buffers (BatchNorm's running_mean, running_var, int64 num_batches_tracked)
 * with torch's flat names ("3.running_mean"). */
etd_rc etd_model_parameters(etd_model *m, etd_tensors *p, etd_err *e);
/* Replace the whole state_dict: every parameter and buffer, each name,
 * shape (and an int64 buffer's whole-number values) checked first. */
etd_rc etd_model_put_parameters(etd_model *m, const et_tensor_dict *d, etd_err *e);

/* ---- live hyperparameters (hparams.c) ---- */

/* PATCH: body {"optimizer": {hyperparameters..., "param_groups": [{...}]},
 * "scheduler": {...} | null, "nonfinite": "skip"|"rollback"|"allow"},
 * validated whole (ETD_EINVAL naming the field, nothing changed), applied
 * between two steps (a running job goes on), recorded as a marker, saved.
 * r->changes: the JSON member "changes":{"lr":{"from","to"},...}. */
typedef struct etd_patch_result {
    int nchanges;             /* values that differ from before */
    int64_t step;             /* the model's step count when applied */
    char *changes;            /* malloc'ed: etd_patch_result_free */
} etd_patch_result;
etd_rc etd_model_patch(etd_model *m, const cJSON *body, etd_patch_result *r, etd_err *e);
/* The body's keys and their kinds (the whole PATCH body: these and "serving",
 * "keep_versions", which versions.h applies); ETD_EINVAL naming the field. */
etd_rc etd_model_patch_check(const cJSON *body, etd_err *e);
/* Does the body change anything etd_model_patch applies? */
bool etd_model_patch_wants(const cJSON *body);
void etd_patch_result_free(etd_patch_result *r);
/* [{"lr":..,"momentum":..,...}, ...]: every parameter group's current
 * hyperparameters, spelled as the spec's optimizer fields. */
etd_rc etd_model_param_groups(etd_model *m, etd_buf *out, etd_err *e);

/* The loss history after step `since` (since < 0: all kept entries). */
/* Markers: what the dashboard draws on a loss chart.  Kept per model (the
 * newest ETD_MARKERS), persisted, listed by GET .../loss. */
typedef enum etd_marker_kind {
    ETD_MK_NONFINITE,         /* the divergence guard saw a non-finite batch/step */
    ETD_MK_HPARAMS,           /* PATCH changed hyperparameters, the scheduler, the policy */
    ETD_MK_TRUNCATED,         /* the loss history's oldest entries were dropped */
    ETD_MK_VERSION            /* a version was frozen, or the model rolled back to one */
} etd_marker_kind;
/* "nonfinite", "hyperparameters", "truncated", "version" */
extern const char *const etd_marker_kinds[];
#define ETD_MARKERS 1000
typedef struct etd_marker {
    int64_t step;             /* the model's step count when it happened */
    double time;              /* Unix seconds */
    etd_marker_kind kind;
    char *json;               /* the kind's members, JSON without braces ("" for none) */
} etd_marker;
/* Wall-clock time in Unix seconds. */
double etd_wall_time(void);

typedef struct etd_history {
    int64_t step;             /* the model's step count */
    size_t n;
    int64_t *steps;           /* malloc'ed: etd_history_free */
    float *losses;
    double *lrs;              /* the lr each step used (NaN: not known, older files) */
    double *times;            /* its wall time, Unix seconds (NaN: not known, older files) */
    size_t nmarkers;          /* the markers after since, oldest first */
    etd_marker *markers;
} etd_history;
etd_rc etd_model_loss_history(etd_model *m, int64_t since, etd_history *h, etd_err *e);
void etd_history_free(etd_history *h);

/* ---- evaluation (evaluate.c) ---- */

typedef enum etd_metric {
    ETD_M_LOSS, ETD_M_ACCURACY, ETD_M_TOPK, ETD_M_MAE, ETD_M_MSE, ETD_M_RMSE, ETD_M_R2,
    ETD_M_COUNT
} etd_metric;
/* "loss", "accuracy", "top_k_accuracy", "mae", "mse", "rmse", "r2" (NULL-terminated) */
extern const char *const etd_metric_names[];

typedef struct etd_eval_opts {
    unsigned metrics;         /* a bit per etd_metric; 0: the defaults of the model's loss */
    int64_t k;                /* top_k_accuracy's k (<= 0: 2, as sklearn) */
} etd_eval_opts;

typedef struct etd_eval_result {
    int64_t step;             /* the model's step when measured */
    int64_t rows;
    unsigned metrics;         /* the ones computed */
    int64_t k;
    double value[ETD_M_COUNT];/* NaN where undefined or not finite (JSON null) */
    uint64_t wgen;            /* the weights generation measured (etd_model.wgen) */
    /* A graph with a loss list: value[ETD_M_LOSS] is the weighted total
     * train minimises; losses[i] each entry's own (unweighted) loss, in the
     * list's order; outputs[] the metrics of each output a one-output loss
     * entry with a target takes (against that target, by that loss's kind). */
    int nlosses;
    float losses[8];
    int noutputs;
    struct {
        const char *name;     /* borrowed from the model */
        unsigned metrics;
        double value[ETD_M_COUNT];
    } outputs[ETD_MAX_IO];
} etd_eval_result;

/* The metrics the model's loss implies: loss, plus accuracy for
 * classification losses, mae/mse/rmse/r2 for regression losses. */
unsigned etd_model_default_metrics(const etd_model *m);
/* Forward (x) in eval mode without gradients, the loss and metrics against
 * y; nothing of the model changes.  A graph with several outputs and one
 * loss measures output 0 (the one train's loss takes); with a loss list see
 * etd_eval_result (o->metrics: "loss" the losses, each other metric on the
 * outputs whose loss it fits -- 400 when it fits none).  ETD_EINVAL naming the field for
 * targets a metric cannot take. */
etd_rc etd_model_evaluate(etd_model *m, const etd_array *x, const etd_array *y,
                          const etd_eval_opts *o, etd_eval_result *r, etd_err *e);

/* The validation history: evaluations recorded by jobs, next to the loss
 * history (persisted with it, bounded by --max-history the same way). */
typedef struct etd_val_entry {
    int64_t step;
    int64_t job;              /* the job that measured it */
    unsigned metrics;
    int64_t k;
    double value[ETD_M_COUNT];
    uint64_t wgen;            /* the model's weights generation when measured */
    bool stale;               /* the weights changed since at this step (PUT parameters,
                               * rollback): no version takes it as its metrics */
    /* a graph with a loss list: each entry's own (unweighted) loss, in the
     * list's order, beside the weighted total in value[ETD_M_LOSS] */
    int nlosses;
    float losses[8];
} etd_val_entry;
typedef struct etd_val_history {
    size_t n;
    etd_val_entry *v;         /* malloc'ed: etd_val_history_free */
} etd_val_history;
/* Entries after step `since` (< 0: all), of one job (job <= 0: all). */
etd_rc etd_model_validation_history(etd_model *m, int64_t since, int64_t job,
                                    etd_val_history *h, etd_err *e);
void etd_val_history_free(etd_val_history *h);

/* ---- training jobs (jobs.c) ----
 * A job is a train call run by the registry's worker threads: the request
 * is answered at once (202) and the job is polled, listed and cancelled.
 * A model has at most one job queued or running; while it has one, the
 * other training calls (batches, step, train, PUT parameters) answer
 * ETD_ESTATE.  A job takes the model's write lock once per minibatch, so
 * predictions and evaluations run between its steps and always see the
 * parameters of a whole step.  Unlike train, a job is not all-or-nothing:
 * a cancel, a failure or a shutdown keeps the steps done (each committed as
 * it was taken).  Job records are part of the model file; a job that was
 * queued or running when the daemon stopped reads "interrupted". */
typedef enum etd_job_state {
    ETD_JOB_QUEUED, ETD_JOB_RUNNING, ETD_JOB_DONE, ETD_JOB_FAILED, ETD_JOB_CANCELLED,
    ETD_JOB_INTERRUPTED
} etd_job_state;
/* "queued", "running", "done", "failed", "cancelled", "interrupted" */
extern const char *const etd_job_state_names[];

/* What a job is asked to do; the arrays are taken over by etd_job_submit
 * (also on failure: they are freed and zeroed). */
typedef struct etd_job_spec {
    etd_array x, y;
    int64_t epochs, batch_size;
    bool shuffle;
    bool validate;            /* vx, vy and metrics given */
    etd_array vx, vy;
    etd_eval_opts metrics;
    int64_t eval_every;       /* steps between evaluations; <= 0: once per epoch */
} etd_job_spec;

#define ETD_JOB_ERRCAP 512

typedef struct etd_job_info {
    int64_t id;               /* per model, from 1, never reused */
    int state;                /* etd_job_state */
    int64_t steps_done, steps_total;
    int64_t epoch, epochs;    /* the epoch running (1-based) */
    int64_t batch_size, rows;
    bool shuffle;
    bool has_loss;
    float loss;               /* the last minibatch's */
    double lr;                /* the lr of the last step */
    int64_t skipped;          /* minibatches the divergence guard did not apply */
    int64_t start_step;       /* the model's step when the job started */
    double created, started, finished;  /* Unix seconds; 0: not yet */
    bool validate;
    int64_t val_rows, eval_every, evaluations;
    unsigned metrics;         /* what the evaluations measure */
    int64_t k;
    char error[ETD_JOB_ERRCAP];
} etd_job_info;

/* Queue a job (202): *info is its record.  ETD_EINVAL (data, named like
 * train's fields; "validation.inputs: ..."), ETD_ESTATE (the model has a job
 * already), ETD_EFULL (--max-jobs reached). */
etd_rc etd_job_submit(etd_model *m, etd_job_spec *s, etd_job_info *info, etd_err *e);
/* A job's record; ETD_ENOTFOUND. */
etd_rc etd_job_get(etd_model *m, int64_t id, etd_job_info *info, etd_err *e);
/* Every record of the model, oldest first (*list malloc'ed: free it). */
etd_rc etd_job_list(etd_model *m, etd_job_info **list, int *n, etd_err *e);
/* Cancel a job: a queued one at once, a running one between two steps
 * (waits for it to stop).  A job already over is left as it is (its record
 * returned: cancelling is idempotent).  ETD_ENOTFOUND. */
etd_rc etd_job_cancel(etd_model *m, int64_t id, etd_job_info *info, etd_err *e);

/* ---- event streams (events.c) ----
 * What happens to the models as typed events with JSON data, for stream readers:
 * bounded rings (one for all models, one per model) that producers append
 * to without waiting, readers with cursors, resume after an event id. */
typedef enum etd_event_type {
    ETD_EV_STEP, ETD_EV_BATCH, ETD_EV_EVALUATION, ETD_EV_JOB, ETD_EV_NONFINITE, ETD_EV_HPARAMS,
    ETD_EV_VERSION, ETD_EV_CREATED, ETD_EV_DELETED, ETD_EV_COUNT
} etd_event_type;
/* "step", "batch", "evaluation", "job", "nonfinite", "hyperparameters", "version",
 * "created", "deleted" */
extern const char *const etd_event_type_names[];

typedef struct etd_event_sub etd_event_sub;
typedef struct etd_sub_opts {
    unsigned types;           /* a bit per etd_event_type; 0: all */
    bool resume;              /* continue after last_id (Last-Event-ID) */
    uint64_t last_id;
    /* called (any thread, no lock of the models layer held, must not block)
     * when an event arrives for a reader whose last read found none */
    void (*wake)(void *arg);
    void *wake_arg;
    /* called once when the subscription is freed -- after unsubscribe and
     * after the last wake that was under way (NULL: none); frees wake_arg */
    void (*wake_free)(void *arg);
} etd_sub_opts;
/* A reader of model m's events (m NULL: every model's).  Without resume it
 * gets what happens from now on; with it, every event after last_id still
 * buffered -- and a "reset" event first when some are not (older than the
 * buffer, or from an earlier run). */
etd_rc etd_events_subscribe(etd_registry *r, etd_model *m, const etd_sub_opts *o,
                            etd_event_sub **s, etd_err *e);
typedef enum etd_ev_read { ETD_EV_MORE, ETD_EV_WAIT, ETD_EV_END } etd_ev_read;
/* One event as a reader gets it: its id (0: none -- "reset", "dropped"), its
 * type's name and its data, a JSON object ({"model":...} for a model's).
 * How it goes on the wire (text/event-stream) is the endpoint's business. */
typedef void (*etd_event_fn)(void *arg, uint64_t id, const char *type, const char *json,
                             size_t len);
/* Hand the next events (about max bytes of data) to fn(arg, ...), no lock
 * held: MORE (some given), WAIT (none yet: wake() comes), END (the last ones
 * were given: the model was deleted, or this reader fell a whole buffer
 * behind and was dropped -- a "dropped" event says so).  A "reset" event
 * comes first when the resume point is no longer buffered. */
etd_ev_read etd_events_read(etd_event_sub *s, etd_event_fn fn, void *arg, size_t max);
void etd_events_unsubscribe(etd_event_sub *s);
/* Readers subscribed now, and readers dropped so far for falling behind. */
void etd_events_stats(etd_registry *r, long *readers, long long *dropped);
/* The id of the newest event (0: none yet). */
uint64_t etd_events_last_id(etd_registry *r);

/* Write the model's file now (fsynced); *step: the step it holds. */
etd_rc etd_model_checkpoint(etd_model *m, int64_t *step, etd_err *e);


/* ---- data-parallel replicas (easytorchd --mpi: src/server/cluster, docs/distributed.md) ----
 * With an etd_dp on the registry, the training calls (batches, train) compute
 * only this replica's share of each minibatch's rows (contiguous, sizes
 * differing by at most one) and combine the gradients through it, weighted by
 * the loss's normaliser, so that every replica holds the gradient of the
 * whole minibatch and takes the same optimizer step.  The models layer never
 * knows how the sums travel.  Every replica must make the same calls in the
 * same order from one thread (the cluster applies them in its order). */
typedef struct etd_dp {
    int rank, size;
    /* buf[0..n) summed over the replicas, in place: every replica gets the
     * same bits.  false + e when a replica is lost. */
    bool (*allreduce)(void *ctx, float *buf, size_t n, etd_err *e);
    /* the same for doubles (small: SyncBatchNorm's statistics, normalisers) */
    bool (*allreduce_f64)(void *ctx, double *buf, size_t n, etd_err *e);
    /* replica root's bytes buf[0..n) to every replica */
    bool (*bcast)(void *ctx, int root, void *buf, size_t n, etd_err *e);
    /* every check_every steps (0: never): a checksum of the model's
     * parameters and buffers, compared across the replicas by ctx */
    void (*verify)(void *ctx, const char *model, int64_t step, uint64_t sum);
    int64_t check_every;
    /* Gradient buckets (bucket_bytes > 0; 0: one allreduce after the
     * backward): istart begins summing buf[0..n) in place without waiting
     * (buf untouched until iwait), iprogress lets the started sums advance,
     * iwait returns when every started sum is done.  Every replica starts
     * the same sums in the same order.  false + e when a replica is lost. */
    bool (*istart)(void *ctx, float *buf, size_t n, etd_err *e);
    void (*iprogress)(void *ctx);
    bool (*iwait)(void *ctx, etd_err *e);
    size_t bucket_bytes;
    void *ctx;
} etd_dp;
/* Jobs under an etd_dp: a job's worker takes a step only when granted one,
 * and every replica grants the same steps at the same place in its order.
 * etd_jobs_next: the job to step next (the oldest running or queued one:
 * jobs step one at a time, in submission order), false when none.
 * etd_jobs_tick: grant job id of model one step and wait until it is taken
 * (when the job ends with it: until its record is final); nothing when the
 * job is over or gone.  Both from the thread that applies the order. */
bool etd_jobs_next(etd_registry *r, char *model, size_t cap, int64_t *id);
void etd_jobs_tick(etd_registry *r, const char *model, int64_t id);
/* Test fault injection (EASYTORCHD_TEST_DP_FAIL="POINT@RANK,..."): true +
 * e (ETD_ENOMEM) the first time this replica reaches POINT when asked to fail
 * there ("batch", "minibatch", "train", "backward", "step", "sync", "job", "save";
 * the cluster's "apply_train", "apply_patch": applying the first ordered
 * .../train or PATCH, before its handler). */
bool etd_dp_fault(const etd_dp *dp, const char *point, etd_err *e);
/* Install dp (NULL: none) before the models are used; dp must outlive r. */
void etd_registry_set_dp(etd_registry *r, const etd_dp *dp);
/* FNV-1a of the model's parameters, buffers and generator state (what the
 * replicas compare). */
uint64_t etd_model_checksum(etd_model *m);

#endif
