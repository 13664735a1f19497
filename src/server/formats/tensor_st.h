/*
 * tensor_st.h - tensors in safetensors bodies (internal to easytorchd).
 *
 * Wherever a request takes tensors it also takes a safetensors file
 * (Content-Type: application/octet-stream): the tensors by name ("inputs",
 * "targets") and the body's other fields in "__metadata__", each value the
 * field's JSON text ("epochs": "2", "shuffle": "true"; a value that is not
 * JSON is the string itself).  Answers with tensors are safetensors files of
 * the same shape ("outputs", ...; the answer's other fields in the metadata).
 *
 * The bytes are parsed by the library (serialize.h: et_safetensors_parse),
 * which trusts nothing in them: the header length against the buffer, the
 * header as strict JSON without NUL bytes, every dtype, shape and
 * data_offsets pair, and that the tensors cover the data region exactly
 * (no gap, no overlap, nothing past the end) -- before any tensor is made.
 * F32 and I64 tensors are taken (other dtypes: a clear error); values are
 * taken as they are, NaN and infinities included (JSON cannot carry them).
 */
#ifndef EASYTORCHD_TENSOR_ST_H
#define EASYTORCHD_TENSOR_ST_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/result.h"
#include "server/formats/tensor_json.h"

/* Does the body start like a safetensors file (a little-endian u64 header
 * length below 2^56 that fits the body, then a header starting with '{')?
 * JSON never holds the NUL bytes this needs, so a sniffed body cannot be
 * JSON. */
bool etd_st_sniff(const void *body, size_t len);

/* A parsed safetensors body. */
typedef struct etd_st_body {
    et_tensor_dict *d;        /* the tensors (and the raw metadata) */
    cJSON *fields;            /* an object: the metadata, each value parsed */
} etd_st_body;

/* Parse body[0..len); false + ETD_EINVAL "body: safetensors: <what is
 * wrong>" (nn's message, or ETD_ENOMEM).  Free with etd_st_free (also after a
 * failure).  shared: NULL, or the shared_buf.h buffer that holds body -- then
 * every tensor whose bytes are aligned aliases them (holding a reference of
 * shared) instead of a copy. */
bool etd_st_parse(const void *body, size_t len, void *shared, etd_st_body *b, etd_err *e);
void etd_st_free(etd_st_body *b);

/* The tensor called name, or NULL. */
const et_tensor *etd_st_tensor(const etd_st_body *b, const char *name);

/* Encode n named tensors and the metadata meta (NULL-terminated key, value
 * pairs; may be NULL) as a safetensors file: *out malloc'ed (free()). */
etd_rc etd_st_encode(const char *const *names, et_tensor *const *t, int n,
                     const char *const *meta, void **out, size_t *len, etd_err *e);

#endif
