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
typedef struct etd_events etd_events;
typedef struct etd_ring etd_ring;
typedef struct etd_batcher etd_batcher;

/* The per-model lock (model_lock.c): a read/write lock that is not tied to
 * a thread, so the transport's pool can take it for a job without waiting. */
typedef struct etd_mlock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int readers;                /* shared holders */
    bool writer;                /* held exclusively */
    int writers_waiting;        /* threads blocked in etd_model_lock(write) */
    int reserved;               /* pool jobs waiting for an exclusive hold */
    int readers_waiting;        /* threads blocked in etd_model_lock(read) */
    bool readers_turn;          /* a writer left with readers waiting: they go first */
    /* +1 when an exclusive hold starts and when it ends (so odd while held
     * exclusive): every write of a model's parameters holds the lock
     * exclusive, so a reader that sees the same even value as before sees the
     * same weights (the batching forward's pack cache, train.c) */
    _Atomic uint64_t write_gen;
} etd_mlock;

/* Bounds of the mirrored optimizer / scheduler state (a spec has at most 16
 * param_groups of at most 8 keys, schedulers 8 children nested 3 deep);
 * model creation refuses more. */
#define ETD_TS_MAX_HP 160
#define ETD_TS_MAX_SCHED 2048

/* A batching model's pack cache holds at most this much (beyond it, weights
 * are packed per batch as without a cache). */
#define ETD_PACK_CACHE_BYTES ((size_t)256 << 20)

/* The scalar training state (train_state_file.c lists it once, in fields[],
 * for the file; the rollback snapshot copies it whole).  The counters are the model's own: they live here
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
    /* the divergence guard (guard.c): counters of the model's own */
    int nonfinite;              /* etd_nf_policy */
    bool diverged;              /* a parameter is not finite */
    int64_t nf_count;           /* non-finite batches and steps seen */
    int64_t nf_step;            /* the model's step at the last one */
    double nf_time;             /* its time (Unix seconds) */
    int nf_action;              /* etd_nf_action: what was done about it */
    char nf_source[ETD_NF_SOURCE];
    char nf_reason[ETD_NF_REASON];
    /* every parameter group's hyper-parameters, group-major in
     * et_optim_hparam_name order (schedulers change lr and momentum) */
    int nhp;
    double hp[ETD_TS_MAX_HP];
    /* the scheduler's named state (et_scheduler_state_*), in its order */
    int nsched;
    double sched[ETD_TS_MAX_SCHED];
    /* live hyperparameters (hparams.c) */
    bool lr_base;               /* a scheduler has taken spec.optimizer.lr as its base lr
                                   (torch's initial_lr): PATCH leaves that field as it is */
} etd_ts_scalars;

struct etd_model {
    char name[72];
    etd_registry *reg;
    atomic_int refs;
    etd_mlock lock;              /* network, gradients, optimizer, training state */
    pthread_mutex_t pub_mu;      /* pub and the loss history */
    bool deleted;                /* set under the write lock */
    atomic_bool dirty;           /* changed since the last save */

    char *spec_json;             /* the spec as submitted, without "name"; PATCH replaces
                                    it under the write lock AND pub_mu (readers that must
                                    not wait copy it under pub_mu: etd_model_write_spec) */
    etd_spec spec;
    uint64_t seed;
    et_generator *gen;           /* init, dropout masks, shuffling */
    et_module *net;
    et_optim *opt;
    et_scheduler *sched;
    int nparams;
    et_tensor **params;          /* borrowed from net */

    etd_ts_scalars ts;           /* counters live; mirrors unused here */
    /* the rollback policy's image of the last finite state (guard.c) */
    etd_train_state *guard_img;
    /* train's rollback snapshot, kept between calls and refreshed in place
     * (etd_ts_keep: small models only), NULL until the first train */
    etd_train_state *train_snap;
    etd_batcher *batcher;        /* dynamic batching (batcher.c), NULL without */
    et_pack_cache *pack;         /* a batching model's Linear weights packed for
                                    the invariant kernel (ops.h), with batcher */

    struct etd_versions *vers;   /* versions.c (NULL for the model serving a version) */
    bool frozen;                 /* serves a version: never saved, never trained */

    etd_model_summary pub;       /* published copy for readers that must not wait */
    /* published with the step an etd_train_minibatch takes (pub_mu held):
     * set by its caller under the write lock (jobs.c: the job's record), or NULL */
    void (*step_pub)(etd_model *m, void *arg);
    void *step_pub_arg;
    /* every group's hyper-parameters as published (param_groups in GET), under
     * pub_mu: re-read at each publish while a scheduler moves them, else only
     * after hp_stale (build, PATCH, a state applied) */
    int pub_ng;
    double pub_hp[ETD_TS_MAX_HP];
    bool hp_stale;               /* under the model's write lock */
    int64_t *h_step;             /* loss history, under pub_mu */
    float *h_loss;
    double *h_lr;                /* the lr of each entry's step */
    double *h_time;              /* its wall time (Unix seconds, ms resolution; NaN: not known) */
    size_t h_len, h_cap;
    etd_marker *mk;              /* markers, oldest first, under pub_mu */
    size_t mk_len, mk_cap;
    etd_val_entry *v;            /* validation history, under pub_mu */
    size_t v_len, v_cap;
    /* the weights generation, under pub_mu: +1 whenever parameters or
     * buffers change other than by a training step (PUT parameters, a
     * rollback), so an evaluation is matched to a version by step AND
     * generation (etd_model_weights_changed) */
    uint64_t wgen;

    /* jobs (jobs.c), under pub_mu */
    etd_job_info *jobs;          /* records, oldest first (at most ETD_JOB_RECORDS) */
    int njobs, jobs_cap;
    int64_t next_job;            /* the next job's id (persisted: ids are never reused) */
    struct etd_job *active;      /* the queued or running job, or NULL */
    pthread_cond_t job_cv;       /* a record reached a final state */

    /* events (events.c) */
    etd_ring *ev_ring;           /* this model's events (hub mutex) */
    struct { int64_t step; float loss; double time; } *ev_steps; /* steps not yet published (pub_mu) */
    int ev_nsteps;
    double ev_last, ev_lr;       /* time of the last step event; the last lr */
    int64_t ev_job;              /* the job the buffered steps are from (0: none) */
};

#define ETD_JOB_RECORDS 100

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
    _Atomic(const etd_executor *) executor;       /* where dynamic batches run */
    atomic_int hook_calls;       /* calls of on_release running */

    etd_events *events;          /* the event hub (events.c) */
    const etd_dp *dp;            /* data-parallel replicas (train_dp.c), or NULL */

    /* the job pool (jobs.c) */
    pthread_mutex_t job_mu;      /* the queue, counts, stopping */
    pthread_cond_t job_cv;
    struct etd_job *queue_head, *queue_tail;
    int jobs_live;               /* queued + running */
    pthread_t *workers;
    int nworkers;
    bool jobs_stopping;
    atomic_uint_least64_t job_seq; /* jobs submitted (their order: etd_jobs_next) */
};

/* References to every live model (registry.c; unref each, free the array). */
etd_model **etd_registry_models(etd_registry *r, int *n);

/* ---- events.c ---- */

/* The hub: a ring of cap events for all models (cap/4, at least 64, per
 * model), step events coalesced per interval seconds (<= 0: one per step). */
etd_events *etd_events_new(etd_registry *r, size_t cap, double interval);
void etd_events_free(etd_events *h);
/* The flusher thread (steps buffered by models that stopped training). */
void etd_events_start(etd_events *h);
void etd_events_stop(etd_events *h);
etd_ring *etd_events_model_ring(etd_events *h);
void etd_events_model_ring_free(etd_ring *r);
/* Publish one event of m: data are the JSON members after "model" (no
 * braces; NULL: none).  Never waits for a reader. */
void etd_events_publish(etd_model *m, int type, const char *data);
/* A step taken at time (its history entry's wall time; job: its job, 0:
 * none): buffered, published as one "step" event per interval. */
void etd_events_step(etd_model *m, int64_t step, float loss, double lr, double time,
                     int64_t job);
/* Publish m's buffered steps now (before an event that must follow them). */
void etd_events_flush(etd_model *m);
/* Rate limit for progress events: true (and *last = now) once per interval. */
bool etd_events_due(etd_model *m, double *last);

/* ---- jobs.c ---- */

/* Start the worker threads (after loading) / interrupt every job and join
 * them (before the last saves). */
void etd_jobs_start(etd_registry *r);
void etd_jobs_stop(etd_registry *r);
/* ETD_ESTATE if the model has a job queued or running (for the training
 * calls, under the model's write lock). */
etd_rc etd_model_job_busy(etd_model *m, etd_err *e);
/* The model is being deleted: its job stops as cancelled. */
void etd_model_jobs_abandon(etd_model *m);

/* ---- net_io.c: a call's data through the network ---- */

/* A call's tensors: the model's inputs (or targets), one per part of a
 * named body, else one. */
typedef struct etd_tlist {
    et_tensor *t[ETD_MAX_IO];
    int n;
} etd_tlist;
/* x against what the spec fixes (400 "inputs: expected shape ..."; named
 * parts: each, one number of rows). */
etd_rc etd_check_inputs(const etd_model *m, const etd_array *x, etd_err *e);
/* a as a tensor of dt in the current pool (int64 -> float32 for a float model). */
et_tensor *etd_array_as(const etd_array *a, et_dtype dt);
/* ETD_EINVAL (or ETD_ENOMEM) "<what>: <et_errmsg()>". */
etd_rc etd_lib_fail(etd_err *e, const char *what);
/* The inputs / targets of a call as tensors (rows idx[0..n) when idx is
 * given, else all), pool-owned; false on allocation failure. */
bool etd_inputs_of(const etd_model *m, const etd_array *x, const int64_t *idx, int64_t n,
                   etd_tlist *out);
bool etd_targets_of(const etd_model *m, const etd_array *y, const int64_t *idx, int64_t n,
                    etd_tlist *out);
/* Every output of the network on x (pool-owned), false + e naming the
 * layer or node. */
bool etd_run_net_all(etd_model *m, const etd_tlist *x, etd_tlist *out, etd_err *e);
/* Forward + loss (the caller sets the mode): the scalar loss, pool-owned, or NULL + e. */
et_tensor *etd_train_loss(etd_model *m, const etd_tlist *xt, const etd_tlist *yt, etd_err *e);

/* ---- model.c ---- */

/* Build a model from a parsed spec (taken over, also on failure). */
etd_model *etd_model_build(etd_registry *r, const char *name, etd_spec *spec, char *spec_json,
                           uint64_t seed, etd_err *e);
/* Free a model nobody refers to. */
void etd_model_destroy(etd_model *m);
/* Copy the summary where readers that must not wait see it. */
void etd_model_publish(etd_model *m);
/* etd_model_publish, and fn(m, arg) in the same critical section (pub_mu
 * held; fn NULL: nothing): what must change together with the step readers
 * see (a job's record, jobs.c). */
void etd_model_publish_with(etd_model *m, void (*fn)(etd_model *m, void *arg), void *arg);
/* Append one [step, loss] entry with the lr its step used and its wall time
 * (Unix seconds; NaN: not known), rounded to milliseconds and never before
 * the previous entry's (a clock stepped back draws flat, not backwards);
 * returns the time kept.  The oldest half goes past --max-history. */
double etd_model_history_add(etd_model *m, int64_t step, float loss, double lr, double time);
/* A marker (data: the kind's JSON members without braces, or NULL); _locked
 * with pub_mu held. */
void etd_model_marker_add(etd_model *m, int64_t step, etd_marker_kind kind, const char *data);
void etd_model_marker_add_locked(etd_model *m, int64_t step, etd_marker_kind kind,
                                 const char *data);
/* Append one validation entry (evaluate.c; the same bound). */
void etd_model_validation_add(etd_model *m, const etd_val_entry *v);
/* The weights changed at the current step without a training step (PUT
 * parameters, rollback; the write lock held): wgen + 1, and the validation
 * entries from this step on are stale -- they measured other weights. */
void etd_model_weights_changed(etd_model *m);
/* Write the model's file now; the caller holds its lock (shared is enough).
 * On failure the previous file is left as it was, unless *replaced (may be
 * NULL) says the new one took its place but the directory's fsync failed. */
etd_rc etd_model_save_locked(etd_model *m, bool *replaced, etd_err *e);
/* ---- batcher.c ---- */

etd_batcher *etd_batcher_new(int64_t max_rows, int64_t max_delay_us);
void etd_batcher_free(etd_batcher *b);

/* ---- model_lock.c ---- */

void etd_mlock_init(etd_mlock *l);
void etd_mlock_destroy(etd_mlock *l);
/* l's write_gen (see etd_mlock). */
uint64_t etd_mlock_write_gen(etd_mlock *l);
/* Take m's lock (write: exclusive), waiting if needed; ETD_ENOTFOUND if it
 * was deleted while we waited.  A no-op (but for the deleted check) when the
 * job running on this thread already holds it (etd_model_adopt). */
etd_rc etd_model_lock(etd_model *m, bool write, etd_err *e);
/* The same without the deleted check (saves, delete itself). */
void etd_model_lock_any(etd_model *m, bool write);
void etd_model_unlock(etd_model *m);
/* The write lock for a training call: also ETD_ESTATE while the model has a
 * job queued or running (the job's own steps take the plain write lock). */
etd_rc etd_model_lock_train(etd_model *m, etd_err *e);
/* After a change under the write lock: persist it now (--sync always) or
 * mark the model for the saver.  A failed synchronous save puts the model
 * back to snap (may be NULL) -- the state its file still holds -- so the
 * failed call changes nothing, and fails the call. */
etd_rc etd_model_commit(etd_model *m, const etd_train_state *snap, etd_err *e);
/* Copies of the parameters, or (grad) of their gradients with zeros where
 * none; call outside any tensor pool. */
etd_rc etd_model_copy_tensors(etd_model *m, bool grad, etd_tensors *out, etd_err *e);

/* ---- hparams.c: a version's hyperparameters back (rollback across a PATCH) ---- */

/* What a rollback swaps besides the training state: the spec's optimizer,
 * scheduler and nonfinite parts, the spec's JSON and the scheduler object
 * (the version's may be another one, or none).  etd_hp_swap_prepare, under
 * the write lock: the version's spec vspec parsed and checked to differ from
 * the model's only in those parts (ETD_ESTATE naming what else differs), its
 * scheduler built on the model's optimizer (which moves the lrs: the state
 * applied next sets them).  etd_hp_swap_exchange swaps both sides (call it
 * again to undo); etd_hp_swap_free frees the side the model does not use. */
typedef struct etd_hp_swap {
    etd_spec spec;
    char *json;
    et_scheduler *sched;
} etd_hp_swap;
etd_rc etd_hp_swap_prepare(etd_model *m, const cJSON *vspec, int64_t version, etd_hp_swap *s,
                           etd_err *e);
void etd_hp_swap_exchange(etd_model *m, etd_hp_swap *s);
void etd_hp_swap_free(etd_hp_swap *s);

/* ---- train.c: what train calls and jobs share ---- */

/* Check a train call's data and plan: total steps of `epochs` over x's rows
 * in minibatches of batch_size (<= 0: all rows); ETD_EINVAL naming the field. */
etd_rc etd_train_plan(const etd_model *m, const etd_array *x, const etd_array *y,
                      int64_t epochs, int64_t batch_size, int64_t *total, etd_err *e);
/* Targets the loss cannot take (a class index out of range in any row),
 * found before anything runs: the output's shape from a forward of the
 * first row, then the loss's own check over every target. */
etd_rc etd_model_check_targets(etd_model *m, const etd_array *x, const etd_array *y,
                               etd_err *e);
/* An epoch's order of the n rows: 0..n-1, shuffled from the model's
 * generator when asked (under the write lock). */
void etd_train_permutation(etd_model *m, int64_t *perm, int64_t n, bool shuffle);

typedef struct etd_minibatch_result {
    float loss;               /* NaN when there was none */
    double lr;                /* the lr the step used */
    double time;              /* its history entry's wall time (when not skipped) */
    bool skipped;             /* the divergence guard applied nothing (or undid the step) */
    char why[ETD_NF_REASON];
} etd_minibatch_result;
/* One minibatch under the write lock (rows idx[0..n) of x and y): zero the
 * gradients, forward in training mode, loss, backward, the divergence guard
 * (source names the caller in its events), optimizer and scheduler step,
 * history, publish.  On an error the parameters, optimizer and counters
 * are as before (the caller restores gradients and generator if it must). */
etd_rc etd_train_minibatch(etd_model *m, const etd_array *x, const etd_array *y,
                           const int64_t *idx, int64_t n, const char *source,
                           etd_minibatch_result *r, etd_err *e);

/* ---- guard.c: the divergence guard ---- */

/* A non-finite loss: true + why ("loss is NaN", "loss is inf"). */
bool etd_guard_loss_bad(float loss, char *why, size_t cap);
/* Every parameter's .grad finite?  false + why naming the first that is
 * not ("gradient of 0.weight is not finite (NaN)"). */
bool etd_guard_grads_ok(const etd_model *m, char *why, size_t cap);
/* Every parameter finite?  false + why naming the first that is not. */
bool etd_guard_params_ok(const etd_model *m, char *why, size_t cap);
/* Every float buffer (BatchNorm's running statistics, which a training-mode
 * forward updates) finite?  false + why naming the first that is not. */
bool etd_guard_buffers_ok(const etd_model *m, char *why, size_t cap);
/* Count one non-finite event (source "batches", "step", "train", "job 3"),
 * remember it as the last one and publish. */
void etd_guard_note(etd_model *m, const char *source, const char *why, etd_nf_action a);
/* The rollback policy's image: etd_guard_keep captures (or refreshes in
 * place) the image of the model's state as it is now -- called after every
 * finite step and whenever the state is set from outside; a no-op under
 * the other policies.  etd_guard_restore puts the image back (the guard's
 * own counters and the policy stay as they are); ETD_ESTATE without one.
 * Both under the write lock, outside tensor pools. */
etd_rc etd_guard_keep(etd_model *m, etd_err *e);
etd_rc etd_guard_restore(etd_model *m, etd_err *e);
/* Drop the image (policy changed, model freed). */
void etd_guard_drop(etd_model *m);
/* Recompute ts.diverged from the parameters (after they were set). */
void etd_guard_recheck(etd_model *m);

/* ---- registry.c ---- */

/* Publish a built model (reference taken over): insert it hidden, write its
 * file, give it a fresh versions store (keep_versions = keep), show it.
 * *out: a new reference.  On failure nothing of it remains. */
etd_rc etd_registry_add(etd_registry *r, etd_model *m, int64_t keep, etd_model **out, etd_err *e);
/* etd_registry_define with the model's parameters and buffers set from
 * state (may be NULL: the spec's initialisation) before it is published. */
etd_rc etd_registry_define_state(etd_registry *r, const cJSON *body, const et_tensor_dict *state,
                                 etd_model **out, etd_err *e);

/* ---- versions.c ---- */

/* Give m its versions store: fresh (a new model: stale files of that name
 * removed) or loaded from DATA_DIR/<name>.versions (bad files reported on
 * stderr and skipped). */
etd_rc etd_versions_attach(etd_model *m, bool fresh, etd_err *e);
void etd_versions_free(struct etd_versions *vs);
/* Remove every version file of m and its directory (a deleted model). */
void etd_versions_remove_files(etd_model *m);
/* POST /v1/models {"name", "from": {"model", "version"}, "keep_versions"}. */
etd_rc etd_versions_fork(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e);

/* ---- train_state.c (what the state is, the snapshot) and train_state_file.c
 * (its encoding in the model file): the training state, listed once ---- */

enum {
    ETD_TS_PARAMS = 1,          /* parameter values */
    ETD_TS_GRADS = 2,           /* accumulated gradients (while batches are pending) */
    ETD_TS_OPTIM = 4,           /* optimizer state tensors */
    ETD_TS_SCALARS = 8,         /* etd_ts_scalars: counters, generator, lr, scheduler */
    ETD_TS_HISTORY = 16,        /* the loss and validation history (a snapshot keeps lengths) */
    ETD_TS_BUFFERS = 32,        /* module buffers: BatchNorm's running statistics, which a
                                   training-mode forward changes */
    ETD_TS_ALL = 63,
    ETD_TS_JOBS = 64            /* the job records: in the file only, never rolled back */
};

/* An image of (parts of) a model's training state. */
struct etd_train_state {
    unsigned parts;
    etd_ts_scalars s;
    et_tensor_dict *tensors;     /* "param.<name>", "grad.<name>", "optim.<slot>",
                                    "buffer.<name>" */
    size_t hlen, vlen;           /* loss and validation history entries at capture */
    int64_t *h_step;             /* the entries (from a file) */
    float *h_loss;
    double *h_lr;
    double *h_time;
    etd_marker *mk;              /* the markers (from a file) */
    size_t mk_n;
    size_t h_n;
    etd_val_entry *v;            /* the validation entries (from a file) */
    size_t v_n;
    etd_job_info *jobs;          /* the job records (from a file) */
    int njobs;
    int64_t next_job;
};

/* Capture `parts` of m's state (the caller holds m's lock).  copy: the
 * tensors are copies (a snapshot to roll back to); otherwise references to
 * the live ones (to encode at once).  ETD_ENOMEM on failure. */
etd_rc etd_ts_capture(etd_model *m, unsigned parts, bool copy, etd_train_state *st,
                      etd_err *e);
/* Refresh a copy snapshot st in place from m's state as it is now: the
 * tensors are copied into st's own (no allocation).  false (st partly
 * refreshed: recapture it) when m's set of tensors is not st's any more. */
bool etd_ts_refresh(etd_model *m, etd_train_state *st);
/* Put st's parts back into m (the caller holds m's write lock): every
 * tensor's name and shape is checked before anything changes. */
etd_rc etd_ts_apply(etd_model *m, const etd_train_state *st, etd_err *e);
void etd_ts_free(etd_train_state *st);
/* st as a fresh `= {0}` would be, except the arrays hp and sched (empty by
 * their counts): what etd_ts_capture and etd_ts_free leave; cheaper than
 * zeroing the 19 KB struct. */
void etd_ts_clear(etd_train_state *st);
/* A copy snapshot of all of m's state (ETD_TS_ALL) in *slot, refreshed in
 * place when *slot already holds one of the same tensors: no allocation, so
 * a small model's train call does not clone its state every time.  Models
 * of more than ETD_TS_KEEP_PARAMS parameters keep none (*slot stays NULL,
 * the snapshot goes into *own: the caller frees it with etd_ts_free); the
 * result is the snapshot to use, NULL + e (ETD_ENOMEM) on failure. */
#define ETD_TS_KEEP_PARAMS 65536
etd_train_state *etd_ts_keep(etd_model *m, etd_train_state **slot, etd_train_state *own,
                             etd_err *e);

/* The model file's payload: a safetensors file of the whole state plus
 * the identity (name, spec, seed) in its "easytorch" metadata.  *buf is
 * malloc'ed. */
/* train_state_file.c */
etd_rc etd_ts_encode(etd_model *m, uint8_t **buf, size_t *len, etd_err *e);
/* Read a payload: its identity (*meta: the parsed metadata, cJSON_Delete
 * it; *dict: the tensors, et_tensor_dict_free it) -- the caller builds the
 * model from the spec and seed, then etd_ts_from_file + etd_ts_apply. */
etd_rc etd_ts_decode(const uint8_t *buf, size_t len, et_tensor_dict **dict, cJSON **meta,
                     const char **name, const cJSON **spec, uint64_t *seed, etd_err *e);
/* The state in a decoded file (tensors borrowed from dict). */
etd_rc etd_ts_from_file(etd_model *m, const et_tensor_dict *dict, const cJSON *meta,
                        etd_train_state *st, etd_err *e);
/* The scalars table as the file's metadata members (",\"key\":value" each;
 * train_state.c, for train_state_file.c), and back (false + e naming the key). */
void etd_ts_write_scalars(etd_buf *b, const etd_model *m, const etd_ts_scalars *s);
bool etd_ts_read_scalars(const cJSON *meta, const etd_model *m, etd_ts_scalars *s, etd_err *e);
/* A u64 as a 16-digit hex string (JSON numbers cannot hold 64 bits), and back. */
void etd_ts_put_u64_hex(etd_buf *b, uint64_t v);
bool etd_ts_get_u64_hex(const cJSON *j, uint64_t *out);

/* One validation entry as the model file writes it ({"step", "job", "k",
 * and the metrics measured by name, NaN as null}; versions_file.c writes a
 * version's metrics with it too) and read back (false: malformed).  b is a
 * formats/json_out.h etd_buf. */
struct etd_buf;
void etd_ts_write_validation(struct etd_buf *b, const etd_val_entry *v, bool comma);
bool etd_ts_read_validation(const cJSON *j, etd_val_entry *v);

/* For tests, which so cover every row of the scalars table without listing
 * it again: the key of row i (NULL past the end), and the key of the first
 * scalar whose value differs between a and b as the file writes it
 * (scheduler rows only when m has a scheduler; then "optim_groups" and
 * "sched_state" for the groups' hyper-parameters and the scheduler state), or NULL. */
const char *etd_ts_field_key(int i);
const char *etd_ts_scalars_diff(const etd_model *m, const etd_ts_scalars *a,
                                const etd_ts_scalars *b);

/* ---- train_dp.c ---- */

/* Data-parallel forward and backward of rows idx[0..n) (train.c, inside its
 * pool, in training mode): this replica's share, the gradients summed over
 * the replicas with weights so that .grad += the gradient of the whole rows'
 * loss (the .grad before the call is kept, as a backward would add to it).
 * backprop_bad: backpropagate a non-finite share too (policy allow).  The
 * whole rows' loss as a pool-owned scalar without a graph, or NULL + e on
 * every replica alike (gradients then as before the call is up to the
 * caller's rollback). */
et_tensor *etd_dp_backward(etd_model *m, const etd_array *x, const etd_array *y,
                           const int64_t *idx, int64_t n, bool backprop_bad, etd_err *e);

/* ---- train_dp_buckets.c: the gradients summed while the backward runs ---- */

typedef struct etd_dp_buckets {
    etd_model *m;
    const etd_dp *dp;
    float *buf;                 /* etd_dp_backward's: [gradients..., the rest] */
    size_t total;               /* gradients in it */
    size_t *off;                /* per parameter (+1): its offset in buf */
    int *of, *left, *first;     /* per parameter its bucket; per bucket: parameters
                                   not there yet, its first (lowest) parameter */
    bool *done;                 /* per parameter */
    int nb, next;               /* buckets; the next to start */
    double w;                   /* the weight of this replica's gradients */
    bool on, ok, local_fail;    /* ok false: a start failed (e) */
    etd_err e;
} etd_dp_buckets;
/* The buckets of m's parameters over buf when dp->bucket_bytes asks for
 * them (b->on), else off.  false: out of memory. */
bool etd_dp_buckets_init(etd_dp_buckets *b, etd_model *m, float *buf);
void etd_dp_buckets_free(etd_dp_buckets *b);
/* et_backward of loss; when on, every finished gradient is copied into buf
 * times w (and its has-grad flag set) and the complete buckets start. */
et_status etd_dp_buckets_backward(etd_dp_buckets *b, et_tensor *loss, double w);
/* After the backward (or none): the buckets not started yet, the rest of
 * buf[0..nbuf) in one allreduce, then every bucket waited for.  false + e:
 * a collective failed. */
bool etd_dp_buckets_finish(etd_dp_buckets *b, size_t nbuf, etd_err *e);

/* ---- train_dp_bn.c: SyncBatchNorm over the replicas ---- */

typedef struct etd_dp_bn {
    const etd_dp *dp;
    et_module *net;
    int64_t width;              /* every sum: [failed, ended, vector, zeros] */
    double *buf;
    bool remote;                /* a layer here failed because another replica had */
    bool on;
    et_reducer r;
} etd_dp_bn;
/* The reducer onto m's BatchNorm layers when the spec asks for
 * sync_batchnorm, there are several replicas and the model has BatchNorm
 * layers (the same on every replica): true.  false: off (e untouched), or
 * out of memory (e says so). */
bool etd_dp_bn_begin(etd_dp_bn *b, etd_model *m, etd_err *e);
/* The layers' own statistics again; frees what begin took.  Harmless when off. */
void etd_dp_bn_end(etd_dp_bn *b);
/* The end of a phase (forward or backward) on this replica: meets the
 * others' layers until every replica has ended it.  true: some replica
 * failed in it (every replica gets the same answer). */
bool etd_dp_bn_drain(etd_dp_bn *b, bool failed);
/* A one-loss model's share under SyncBatchNorm: forward, loss, drain, then
 * the whole minibatch's normaliser (one allreduce), and *loss the share's
 * loss scaled to it (S_r / D; a share whose targets are all ignored: a zero
 * loss over its outputs; NULL when it has no rows).  *anyfail: some replica
 * failed (every replica alike), le: this one's error.  false + e: the
 * collective failed. */
bool etd_dp_bn_loss(etd_model *m, etd_dp_bn *b, const etd_array *x, const etd_array *y,
                    const int64_t *idx, int64_t n, et_tensor **loss, bool *anyfail, etd_err *le,
                    etd_err *e);
/* 0 x the sum of every output that requires grad (pool-owned): its
 * gradient is zero everywhere; NULL when none does, NULL + e on failure. */
et_tensor *etd_dp_bn_zero_loss(const etd_tlist *outs, etd_err *e);

/* After a data-parallel call's step (or skip): rank 0's generator state and
 * buffers to every replica (DDP's broadcast_buffers), then the checksum
 * every dp->check_every steps.  ok: this replica got there without an error
 * (false: e says what failed); first every replica's ok is agreed
 * (etd_dp_agree): one that failed fails the call everywhere. */
etd_rc etd_dp_sync(etd_model *m, bool ok, etd_err *e);
/* etd_model_commit under replicas with --sync always: the save's outcome is
 * agreed (etd_dp_agree), so that a save failing on one replica fails the
 * call on every one -- and those that saved take it back to snap, in memory
 * and in their file -- instead of some keeping what others refused.  Without
 * replicas, or without --sync always (nothing to fail): etd_model_commit.
 * The same call on every replica (its ok agreed before). */
etd_rc etd_dp_commit(etd_model *m, const etd_train_state *snap, etd_err *e);
/* Every replica's ok (one small allreduce): true when all are.  A replica
 * that failed keeps its e; the others get "another replica failed WHERE"
 * (ETD_ENOMEM when one ran out of memory, else ETD_EINTERNAL).  The first
 * collective of etd_dp_backward, and of etd_dp_sync: a replica that fails
 * before reaching one calls this with ok false in its place, so the others
 * never wait for it. */
bool etd_dp_agree(etd_model *m, bool ok, const char *where, etd_err *e);

#endif
