/*
 * registry.h - the named models hosted by easytorchd (internal).
 *
 * An etd_registry maps names to etd_model objects; both are opaque.
 * Locking (the reason this is a module of its own):
 *   - the registry mutex guards the name table only;
 *   - each model has a read/write lock: predictions, parameter and gradient
 *     reads take it shared, training calls (batches, step, train, gradient
 *     probes, parameter writes) take it exclusive, so a prediction never sees
 *     half-updated parameters.  Modules stay in eval mode except while a
 *     training call holds the write lock;
 *   - a small per-model mutex guards the published summary and the loss
 *     history, so listings, /metrics and dashboards never wait for a long
 *     training call.
 * Lookups return a counted reference (etd_model_unref when done), so a model
 * deleted meanwhile stays valid until its last user is gone.
 *
 * Operations write their JSON result into `out` and return an HTTP status;
 * on failure (status >= 400) the message naming the problem is in err.
 * Every operation validates fully before changing anything.
 */
#ifndef EASYTORCHD_REGISTRY_H
#define EASYTORCHD_REGISTRY_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/jsonout.h"
#include "server/tensor_json.h"

typedef struct etd_registry etd_registry;
typedef struct etd_model etd_model;

typedef struct etd_registry_opts {
    const char *data_dir;
    bool sync_always;         /* persist before acknowledging every change */
    double save_interval;     /* seconds between background saves of dirty models */
    int max_models;
    int64_t max_params;       /* scalar parameters per model */
    int64_t max_elems;        /* elements per tensor in a request */
    int64_t max_steps;        /* optimizer steps per train call */
    size_t max_history;       /* loss-history entries kept per model */
} etd_registry_opts;

/* NULL + err if the data directory cannot be created. */
etd_registry *etd_registry_new(const etd_registry_opts *o, char *err, size_t errcap);
/* Stops the saver thread, saves every dirty model and frees everything. */
void etd_registry_free(etd_registry *r);
/* Load every model file of the data dir (corrupt ones are reported on
 * stderr and skipped), then start the background saver. */
void etd_registry_load_all(etd_registry *r);
/* Save every dirty model now; returns the number of failures. */
int etd_registry_save_all(etd_registry *r);
/* Number of live models (deleted ones excluded). */
int etd_registry_count(etd_registry *r);

/* Valid model name?  (^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, no "..") */
bool etd_name_ok(const char *name);

/* Counted reference to a model, or NULL if unknown. */
etd_model *etd_registry_get(etd_registry *r, const char *name);
/* Drop a reference from etd_registry_get (NULL-safe); the last one frees. */
void etd_model_unref(etd_model *m);
/* The model's name (owned by m). */
const char *etd_model_name(const etd_model *m);

/* POST /v1/models: parse the spec in body, build and persist the model;
 * 201; 400 bad spec or name, 409 name taken or --max-models reached. */
int etd_registry_define(etd_registry *r, const cJSON *body, etd_buf *out, char *err, size_t cap);
/* {"models":[{name, step, loss}, ...]}; always 200. */
int etd_registry_list(etd_registry *r, etd_buf *out);
/* Forget the model and remove its file; 200, or 404. */
int etd_registry_delete(etd_registry *r, const char *name, char *err, size_t cap);
/* Prometheus lines for the per-model gauges and counters. */
void etd_registry_metrics(etd_registry *r, etd_buf *out);

/* GET /v1/models/{name}: spec, step, loss, lr, seed, parameter names. */
int etd_model_describe(etd_model *m, etd_buf *out);
/* Forward in eval mode without gradients; *y is a new reference (free it). */
int etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, char *err, size_t cap);
/* Accumulate the gradients of one batch (no optimizer step). */
int etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y, etd_buf *out,
                         char *err, size_t cap);
/* One optimizer (and scheduler) step over the accumulated batches. */
int etd_model_step(etd_model *m, etd_buf *out, char *err, size_t cap);
/* epochs x minibatches of (x, y), one optimizer step each; losses in out. */
int etd_model_train(etd_model *m, const etd_array *x, const etd_array *y, int64_t epochs,
                    int64_t batch_size, bool shuffle, etd_buf *out, char *err, size_t cap);
/* The accumulated gradients (of pushed batches) and their count. */
int etd_model_get_gradients(etd_model *m, etd_buf *out);
/* Gradients of the loss on (x, y) at the current parameters, without
 * touching the accumulated ones. */
int etd_model_probe_gradients(etd_model *m, const etd_array *x, const etd_array *y,
                              etd_buf *out, char *err, size_t cap);
/* All parameters as JSON tensors by name. */
int etd_model_get_parameters(etd_model *m, etd_buf *out);
/* safetensors bytes (malloc'ed, caller frees). */
int etd_model_get_parameters_st(etd_model *m, uint8_t **buf, size_t *len, char *err, size_t cap);
/* Replace all parameters (every name and shape checked first). */
int etd_model_put_parameters(etd_model *m, const et_tensor_dict *d, char *err, size_t cap);
/* [[step, loss], ...] with step >= since (since < 0: all kept entries). */
int etd_model_loss_history(etd_model *m, int64_t since, etd_buf *out);
/* Persist the model now (fsynced); {"saved":true,"step":n}. */
int etd_model_checkpoint(etd_model *m, etd_buf *out, char *err, size_t cap);
/* KServe v2 model metadata. */
int etd_model_kserve_meta(etd_model *m, etd_buf *out);
/* Number of parameter tensors. */
int etd_model_num_params(const etd_model *m);

#endif
