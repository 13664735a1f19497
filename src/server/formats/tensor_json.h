/*
 * tensor_json.h - tensors in JSON (internal to easytorchd).
 *
 * Accepted forms (api-contract.md): nested arrays of numbers exactly as
 * torch.tensor(x).tolist() gives (a bare number is a 0-d tensor), or
 * {"shape": [..], "data": [flat numbers]}.  Every number must be finite
 * and fit in float32; ragged lists, rank > ET_MAX_DIMS and more than
 * `max_elems` elements are rejected with a message naming `what`.
 */
#ifndef EASYTORCHD_TENSOR_JSON_H
#define EASYTORCHD_TENSOR_JSON_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/json_out.h"

/* Parsed, still-unowned tensor data: malloc'ed elements + shape.  float32
 * (the zero value, what JSON gives) holds its elements in `data`; int64
 * (indices from a binary body) in `idata`, with `data` NULL. */
typedef struct etd_array {
    float *data;            /* float32: numel floats (etd_array_free frees) */
    int64_t *idata;         /* int64: numel integers */
    et_dtype dtype;         /* ET_FLOAT32 unless set */
    int64_t shape[ET_MAX_DIMS];
    int ndim;
    int64_t numel;
} etd_array;

/* Parse j into a; false + message in err (e.g. "inputs[3]: expected 4
 * elements, got 3") on bad input. */
bool etd_array_from_json(const cJSON *j, const char *what, int64_t max_elems,
                         etd_array *a, char *err, size_t errcap);
/* Free the elements and set the pointers to NULL (so a second call is harmless). */
void etd_array_free(etd_array *a);
/* A tensor of a's dtype, shape and elements (a copy; in the current pool if
 * one is open, as et_tensor_new), or NULL + et_errmsg(). */
et_tensor *etd_array_tensor(const etd_array *a);
/* a = a copy of t's elements (float32 or int64, any layout); false +
 * "<what>: ..." in err when t has more than max_elems elements or memory
 * runs out. */
bool etd_array_from_tensor(const et_tensor *t, const char *what, int64_t max_elems,
                           etd_array *a, char *err, size_t errcap);

/* Tensor from JSON (new reference, or NULL + err). */
et_tensor *etd_tensor_from_json(const cJSON *j, const char *what, int64_t max_elems,
                                char *err, size_t errcap);

/* Write t as nested arrays (a bare number for 0-d). */
void etd_json_tensor(etd_buf *b, const et_tensor *t);
/* Write t's elements flat: [a,b,...]. */
void etd_json_tensor_flat(etd_buf *b, const et_tensor *t);
/* Write a JSON array of t's shape. */
void etd_json_shape(etd_buf *b, const et_tensor *t);

/* Fast path: parse the value at s (a rectangular nested list of plain
 * numbers) straight into floats; returns the end of the value, or NULL
 * (nothing allocated) for anything else -- the caller then takes the
 * general cJSON path, which reports errors precisely. */
const char *etd_fast_array(const char *s, const char *end, int64_t max_elems, etd_array *a);

/* The same for {"shape": [..], "data": [flat numbers]}. */
const char *etd_fast_shape_data(const char *s, const char *end, int64_t max_elems, etd_array *a);

/* Finite number that fits in float32? */
bool etd_number_ok(double v);

#endif
