/*
 * versions.h - a model's versions (internal; the models layer's API for
 * issue 18, beside models.h): immutable frozen states that can be served
 * while the live model keeps training, rolled back to and forked from.
 *
 * A version N (1, 2, ... never reused) is the model's whole state at the
 * moment of the freeze -- parameters, buffers, optimizer and scheduler
 * state, generator, counters, loss history, spec -- without pending
 * gradients.  It is written as DATA_DIR/<name>.versions/<N>.etm, a model
 * file (modelfile.h container: CRC-32s, atomic write) whose payload is the
 * model file's own payload (train_state.c encodes it: one codec), plus a
 * "easytorch_version" metadata key {label, created}.  So a fork loads that
 * file under another name and a rollback applies it with etd_ts_apply.
 * DATA_DIR/<name>.versions/index.etm holds what is not a version: the
 * version served by plain predict/infer, keep_versions, the next number.
 *
 * Each version serves through a model of its own (built from the file,
 * never registered, never saved, eval mode), so predictions on it run in
 * parallel with training of the live model and need no lock of it.
 *
 * Locks: m's lock (when a call takes it) -> the versions' change mutex
 * (file writes, the index) -> their list mutex (lookups; never held
 * across I/O or a forward).
 */
#ifndef EASYTORCHD_VERSIONS_H
#define EASYTORCHD_VERSIONS_H

#include "server/models/models.h"

typedef struct etd_version_info {
    int64_t version;
    int64_t step;              /* the model's step count when frozen */
    bool has_loss;
    float loss;                /* its last training loss then */
    double created;            /* Unix time, seconds */
    char label[129];           /* "" : none */
    int64_t size;              /* bytes of its file */
    bool serving;              /* plain predict/infer use it */
    /* Its validation metrics, measured on exactly these weights: at the
     * freeze, a job's evaluation at the step frozen (val.job: that job);
     * later, the last POST .../versions/N/evaluate (val.job 0), which
     * replaces it.  Kept in the version's file. */
    bool has_val;
    etd_val_entry val;
    int64_t val_rows;          /* rows an evaluate measured (0: a job's, not recorded) */
    double val_time;           /* when an evaluate measured them (Unix s; 0: a job's) */
} etd_version_info;

typedef struct etd_version_list {
    int64_t serving;           /* 0: the live model */
    int64_t keep;              /* keep_versions, 0: no limit */
    int n;
    etd_version_info *v;       /* oldest first; free with etd_version_list_free */
} etd_version_list;

/* Freeze the current state as a new version.  label may be NULL;
 * serve: plain predict/infer use it from now on.  *removed (may be NULL)
 * gets the versions keep_versions dropped (up to max_removed). */
etd_rc etd_model_freeze(etd_model *m, const char *label, bool serve, etd_version_info *out,
                        int64_t *removed, int max_removed, int *nremoved, etd_err *e);
etd_rc etd_model_version_list(etd_model *m, etd_version_list *out, etd_err *e);
void etd_version_list_free(etd_version_list *l);
/* One version; ETD_ENOTFOUND "model \"a\" has no version 3 (versions: 1, 2)". */
etd_rc etd_model_version_info(etd_model *m, int64_t version, etd_version_info *out, etd_err *e);
/* Evaluate version N on (x, y) as etd_model_evaluate does (its serving
 * model: the live one keeps training meanwhile) and record the result as
 * the version's validation metrics, in its file too (only the metadata of
 * the file changes: the weights are the same bits).  *vi: the version
 * after it.  A version deleted meanwhile: ETD_ENOTFOUND. */
etd_rc etd_model_version_evaluate(etd_model *m, int64_t version, const etd_array *x,
                                  const etd_array *y, const etd_eval_opts *o,
                                  etd_eval_result *r, etd_version_info *vi, etd_err *e);
/* Remove a version and its file; ETD_ESTATE while it is the serving one. */
etd_rc etd_model_version_delete(etd_model *m, int64_t version, etd_err *e);
/* The model that serves `version` (a new reference): predictions only. */
etd_rc etd_model_version_model(etd_model *m, int64_t version, etd_model **out, etd_err *e);
/* What plain predict/infer use: the serving version's model or m itself
 * (a new reference); *version: its number, 0 for live. */
etd_rc etd_model_serving_model(etd_model *m, etd_model **out, int64_t *version, etd_err *e);
/* Change what plain predictions use (serving < 0: unchanged, 0: live, N)
 * and the retention (keep < 0: unchanged, 0: no limit, K). */
etd_rc etd_model_set_lifecycle(etd_model *m, int64_t serving, int64_t keep, etd_err *e);
/* serving and keep_versions now (no waiting on I/O). */
void etd_model_lifecycle(etd_model *m, int64_t *serving, int64_t *keep, int *nversions);

/* Put the live model back to version N: parameters, buffers, optimizer
 * and scheduler state, generator, step count, last loss and loss history;
 * pending batches are discarded.  All-or-nothing. */
typedef struct etd_rollback_result {
    int64_t version;
    int64_t step;              /* the live model's step count after it */
    int64_t from_step;         /* ... and before */
    int64_t discarded;         /* pending batches dropped */
    bool scheduler, buffers;   /* the model has a scheduler / buffers (restored too) */
    bool hyperparameters;      /* the version's optimizer hyperparameters, scheduler and
                                * nonfinite policy replaced the model's (changed by a
                                * PATCH since the freeze) */
} etd_rollback_result;
etd_rc etd_model_rollback(etd_model *m, int64_t version, etd_rollback_result *r, etd_err *e);

/* The bytes of version N's file payload (what etd_ts_decode reads), or with
 * version 0 the live model's; *buf malloc'ed.  For fork and export. */
etd_rc etd_model_version_payload(etd_model *m, int64_t version, uint8_t **buf, size_t *len,
                                 etd_err *e);

/* "3" -> 3: a version number from a path or a body ("version: ..." on bad). */
etd_rc etd_version_parse(const char *s, int64_t *out, etd_err *e);

#endif
