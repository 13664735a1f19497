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

/* ---- holding a model's lock for a job (the transport's worker pool) ---- */

/* Take m's lock now if that needs no waiting (write: exclusive); false if
 * it is busy.  reserved (may be NULL) is the job's reservation flag, false
 * at first: a failed exclusive try sets it and keeps new shared holders out
 * until the job had its turn; a successful try (or etd_model_unreserve, for
 * a job given up) clears it. */
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
    const char *spec_json;    /* the spec as submitted, without "name" */
    uint64_t seed;
    int64_t param_count;      /* scalar parameters */
    int nparams;              /* parameter tensors: etd_model_param_name(m, 0..n-1) */
    int nbuffers;             /* buffers (running statistics): etd_model_buffer_name */
    int64_t in_features;      /* the input's last dimension if the layers fix it, else -1 */
    int64_t out_features;     /* the output's, else -1 */
    etd_model_summary sum;
} etd_model_info;
void etd_model_info_get(etd_model *m, etd_model_info *info);
const char *etd_model_name(const etd_model *m);
/* Does the model batch concurrent predictions (its spec's "batching")? */
bool etd_model_batching(const etd_model *m);
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

/* ---- versions (the OIP's /v2/models/{name}/versions/{version}) ----
 * Today a model is served as one version, "1": its current state.  These
 * two functions are the only place versions are known, so stored versions
 * (model lifecycle) extend them and every versioned route follows. */

/* The versions m serves, oldest first, into out[0..max) (borrowed
 * strings); returns how many there are. */
int etd_model_versions(const etd_model *m, const char **out, int max);
/* The model that serves version `version` of m: a new reference in *out
 * (today m itself, for "1"); ETD_ENOTFOUND "model \"x\" has no version
 * \"2\" (versions: 1)". */
etd_rc etd_model_version(etd_model *m, const char *version, etd_model **out, etd_err *e);
/* The version the current state of m is served as ("1"). */
const char *etd_model_current_version(const etd_model *m);

/* ---- operations ---- */

/* Named tensors: names borrowed from the model, tensors owned (free with
 * etd_tensors_free). */
typedef struct etd_tensors {
    int n;
    const char **names;
    et_tensor **t;
} etd_tensors;
void etd_tensors_free(etd_tensors *t);

/* Forward in eval mode without gradients; *y is a new reference. */
etd_rc etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, etd_err *e);

/* Forward in training mode, loss, backward: the gradients accumulate. */
typedef struct etd_batch_result {
    float loss;
    int64_t pending;          /* batches pending after this one */
} etd_batch_result;
etd_rc etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y,
                            etd_batch_result *r, etd_err *e);

/* One optimizer (and scheduler) step over the accumulated batches;
 * ETD_ESTATE when none is pending. */
typedef struct etd_step_result {
    int64_t step;             /* after this one */
    double lr, next_lr;       /* used by this step; after the scheduler stepped */
    float loss;               /* the mean loss of the batches it consumed */
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
    int64_t n;                /* steps taken */
    int64_t total;            /* steps asked for */
    etd_train_stop stopped;
    float *losses;            /* one per step (malloc'ed: etd_train_result_free) */
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

/* The loss history after step `since` (since < 0: all kept entries). */
typedef struct etd_history {
    int64_t step;             /* the model's step count */
    size_t n;
    int64_t *steps;           /* malloc'ed: etd_history_free */
    float *losses;
} etd_history;
etd_rc etd_model_loss_history(etd_model *m, int64_t since, etd_history *h, etd_err *e);
void etd_history_free(etd_history *h);

/* Write the model's file now (fsynced); *step: the step it holds. */
etd_rc etd_model_checkpoint(etd_model *m, int64_t *step, etd_err *e);

#endif
