/*
 * versions_internal.h - what versions.c and versions_file.c share (internal
 * to src/server/models): the versions store of a model and the file codec.
 */
#ifndef EASYTORCHD_VERSIONS_INTERNAL_H
#define EASYTORCHD_VERSIONS_INTERNAL_H

#include "server/models/model_internal.h"
#include "server/models/versions.h"

typedef struct etd_version {
    etd_version_info info;     /* info.serving unused here: vs->serving says */
    etd_model *serve;          /* the model serving it (a reference) */
} etd_version;

struct etd_versions {
    pthread_mutex_t change;    /* serialises changes: version files and the index */
    pthread_mutex_t mu;        /* the list and the settings below */
    int n, cap;
    etd_version *v;            /* ascending numbers */
    int64_t next;              /* the next version number */
    int64_t serving;           /* 0: live */
    int64_t keep;              /* 0: no limit */
    char dir[4096];            /* DATA_DIR/<name>.versions */
};

#define INDEX_NAME "index"
#define MAX_VERSION 9007199254740991LL /* 2^53 - 1: exact as a JSON number */

static inline struct etd_versions *etd_vers_of(etd_model *m) { return m->vers; }
/* Index of version n in vs->v, or -1 (vs->mu held). */
int etd_vers_find(const struct etd_versions *vs, int64_t n);
/* ETD_ENOTFOUND "model \"a\" has no version 3 (versions: 1, 2)". */
etd_rc etd_vers_not_found(etd_model *m, int64_t n, etd_err *e);
double etd_vers_now(void);
/* A JSON whole number in [lo, 2^53). */
bool etd_vers_json_i64(const cJSON *j, int64_t lo, int64_t *out);
/* Write the index: next, serving, keep_versions (vs->change held). */
etd_rc etd_vers_write_index(struct etd_versions *vs, etd_err *e);
/* A version file's payload from the live model's file payload. */
etd_rc etd_vers_payload(const uint8_t *live, size_t len, const etd_version_info *vi,
                        uint8_t **out, size_t *out_len, etd_err *e);
/* The same payload with vi as its version metadata (a version's metrics
 * recorded after the freeze); the tensors are copied unchanged. */
etd_rc etd_vers_repack(const uint8_t *buf, size_t len, const etd_version_info *vi,
                       uint8_t **out, size_t *out_len, etd_err *e);
/* A model named `name` holding the state of a (model or version) file
 * payload; vi (may be NULL) gets the version metadata.  NULL + e. */
etd_model *etd_vers_model_from_payload(etd_registry *r, const char *name, const uint8_t *buf,
                                       size_t len, etd_version_info *vi, etd_err *e);
/* The model serving a version: never registered, never saved. */
etd_model *etd_vers_serve_model(etd_model *m, const uint8_t *buf, size_t len,
                                etd_version_info *vi, etd_err *e);
etd_rc etd_vers_read_file(struct etd_versions *vs, int64_t n, uint8_t **buf, size_t *len,
                          etd_err *e);

#endif
