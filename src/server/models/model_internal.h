/*
 * model_internal.h - what the files of the models layer share (internal):
 * the structs behind the opaque etd_registry and etd_model, the scalar
 * training state, and the helpers registry.c, model.c and train_state.c
 * call on each other.  Nothing outside src/server/models includes this.
 */
#ifndef EASYTORCHD_MODEL_INTERNAL_H
#define EASYTORCHD_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/models/models.h"
#include "server/models/spec.h"

typedef struct etd_train_state etd_train_state;

/* The per-model lock (model_lock.c): a read/write lock that is not tied to
 * a thread, so the transport's pool can take it for a job without waiting. */
typedef struct etd_mlock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int readers;                /* shared holders */
    bool writer;                /* held exclusively */
    int writers_waiting;        /* threads blocked in etd_model_lock(write) */
    int reserved;               /* pool jobs waiting for an exclusive hold */
} etd_mlock;

/* The scalar training state (train_state.c lists it once for the rollback
 * snapshot and the file).  The counters are the model's own: they live here
 * in m->ts and are the live values.  The mirrors copy state the library
 * objects hold (generator, optimizer, scheduler); they are filled by
 * etd_ts_capture and pushed back by etd_ts_apply, never read live. */
typedef struct etd_ts_scalars {
    /* counters */
    int64_t step;               /* optimizer steps taken */
    int64_t pending;            /* batches accumulated since the last step */
    double pending_loss_sum;    /* their loss sum (the step's loss is the mean) */
    bool has_loss;
    float last_loss;
    /* mirrors */
    uint64_t gen[4];            /* the model's generator */
    double lr;                  /* the learning rate the next step uses */
    int64_t optim_steps;        /* et_optim_steps */
    int64_t sched_epoch;        /* scheduler last_epoch (with a scheduler) */
    double sched_lr;            /* scheduler last lr */
} etd_ts_scalars;

struct etd_model {
    char name[72];
    etd_registry *reg;
    atomic_int refs;
    etd_mlock lock;              /* network, gradients, optimizer, training state */
    pthread_mutex_t pub_mu;      /* pub and the loss history */
    bool deleted;                /* set under the write lock */
    atomic_bool dirty;           /* changed since the last save */

    char *spec_json;             /* the spec as submitted, without "name" */
    etd_spec spec;
    uint64_t seed;
    et_generator *gen;           /* init, dropout masks, shuffling */
    et_module *net;
    et_optim *opt;
    et_scheduler *sched;
    int nparams;
    et_tensor **params;          /* borrowed from net */

    etd_ts_scalars ts;           /* counters live; mirrors unused here */

    etd_model_summary pub;       /* published copy for readers that must not wait */
    int64_t *h_step;             /* loss history, under pub_mu */
    float *h_loss;
    size_t h_len, h_cap;
};

typedef struct etd_slot {
    etd_model *m;
    bool deleting;               /* tombstone while the file is removed */
} etd_slot;

struct etd_registry {
    etd_registry_opts o;
    char *data_dir;
    pthread_mutex_t mu;          /* the name table */
    etd_slot *slots;
    int n, cap;
    pthread_t saver;
    bool saver_started;
    pthread_mutex_t saver_mu;
    pthread_cond_t saver_cv;
    bool stopping;
    int lock_fd;                 /* the data dir's lock file (flock'ed), or -1 */
    _Atomic(const etd_release_hook *) on_release; /* a model lock became free */
    atomic_int hook_calls;       /* calls of on_release running */
};

/* ---- model.c ---- */

/* Build a model from a parsed spec (taken over, also on failure). */
etd_model *etd_model_build(etd_registry *r, const char *name, etd_spec *spec, char *spec_json,
                           uint64_t seed, etd_err *e);
/* Free a model nobody refers to. */
void etd_model_destroy(etd_model *m);
/* Copy the summary where readers that must not wait see it. */
void etd_model_publish(etd_model *m);
/* Append one [step, loss] entry (the oldest half goes past --max-history). */
void etd_model_history_add(etd_model *m, int64_t step, float loss);
/* Write the model's file now; the caller holds its lock (shared is enough).
 * On failure the previous file is left as it was, unless *replaced (may be
 * NULL) says the new one took its place but the directory's fsync failed. */
etd_rc etd_model_save_locked(etd_model *m, bool *replaced, etd_err *e);
/* ---- model_lock.c ---- */

void etd_mlock_init(etd_mlock *l);
void etd_mlock_destroy(etd_mlock *l);
/* Take m's lock (write: exclusive), waiting if needed; ETD_ENOTFOUND if it
 * was deleted while we waited.  A no-op (but for the deleted check) when the
 * job running on this thread already holds it (etd_model_adopt). */
etd_rc etd_model_lock(etd_model *m, bool write, etd_err *e);
/* The same without the deleted check (saves, delete itself). */
void etd_model_lock_any(etd_model *m, bool write);
void etd_model_unlock(etd_model *m);
/* After a change under the write lock: persist it now (--sync always) or
 * mark the model for the saver.  A failed synchronous save puts the model
 * back to snap (may be NULL) -- the state its file still holds -- so the
 * failed call changes nothing, and fails the call. */
etd_rc etd_model_commit(etd_model *m, const etd_train_state *snap, etd_err *e);
/* Copies of the parameters, or (grad) of their gradients with zeros where
 * none; call outside any tensor pool. */
etd_rc etd_model_copy_tensors(etd_model *m, bool grad, etd_tensors *out, etd_err *e);

/* ---- train_state.c: the training state, listed once ---- */

enum {
    ETD_TS_PARAMS = 1,          /* parameter values */
    ETD_TS_GRADS = 2,           /* accumulated gradients (while batches are pending) */
    ETD_TS_OPTIM = 4,           /* optimizer state tensors */
    ETD_TS_SCALARS = 8,         /* etd_ts_scalars: counters, generator, lr, scheduler */
    ETD_TS_HISTORY = 16,        /* the loss history (a snapshot keeps its length) */
    ETD_TS_BUFFERS = 32,        /* module buffers: BatchNorm's running statistics, which a
                                   training-mode forward changes */
    ETD_TS_ALL = 63
};

/* An image of (parts of) a model's training state. */
struct etd_train_state {
    unsigned parts;
    etd_ts_scalars s;
    et_tensor_dict *tensors;     /* "param.<name>", "grad.<name>", "optim.<slot>",
                                    "buffer.<name>" */
    size_t hlen;                 /* history entries at capture */
    int64_t *h_step;             /* the entries (from a file) */
    float *h_loss;
    size_t h_n;
};

/* Capture `parts` of m's state (the caller holds m's lock).  copy: the
 * tensors are copies (a snapshot to roll back to); otherwise references to
 * the live ones (to encode at once).  ETD_ENOMEM on failure. */
etd_rc etd_ts_capture(etd_model *m, unsigned parts, bool copy, etd_train_state *st,
                      etd_err *e);
/* Put st's parts back into m (the caller holds m's write lock): every
 * tensor's name and shape is checked before anything changes. */
etd_rc etd_ts_apply(etd_model *m, const etd_train_state *st, etd_err *e);
void etd_ts_free(etd_train_state *st);

/* The model file's payload: a safetensors file of the whole state plus
 * the identity (name, spec, seed) in its "easytorch" metadata.  *buf is
 * malloc'ed. */
etd_rc etd_ts_encode(etd_model *m, uint8_t **buf, size_t *len, etd_err *e);
/* Read a payload: its identity (*meta: the parsed metadata, cJSON_Delete
 * it; *dict: the tensors, et_tensor_dict_free it) -- the caller builds the
 * model from the spec and seed, then etd_ts_from_file + etd_ts_apply. */
etd_rc etd_ts_decode(const uint8_t *buf, size_t len, et_tensor_dict **dict, cJSON **meta,
                     const char **name, const cJSON **spec, uint64_t *seed, etd_err *e);
/* The state in a decoded file (tensors borrowed from dict). */
etd_rc etd_ts_from_file(etd_model *m, const et_tensor_dict *dict, const cJSON *meta,
                        etd_train_state *st, etd_err *e);

/* For tests, which so cover every row of the scalars table without listing
 * it again: the key of row i (NULL past the end), and the key of the first
 * scalar whose value differs between a and b as the file writes it
 * (scheduler rows only when m has a scheduler), or NULL. */
const char *etd_ts_field_key(int i);
const char *etd_ts_scalars_diff(const etd_model *m, const etd_ts_scalars *a,
                                const etd_ts_scalars *b);

#endif
