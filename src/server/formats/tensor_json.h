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

/* Parsed, still-unowned tensor data: malloc'ed elements + shape.  A
 * zeroed etd_array is float32; an int64 one (indices: Embedding inputs,
 * class targets) holds its elements in idata instead of data. */
typedef struct etd_array {
    float *data;            /* numel floats (float32), caller frees with free() */
    int64_t shape[ET_MAX_DIMS];
    int ndim;
    int64_t numel;
    et_dtype dtype;         /* ET_FLOAT32 (data) or ET_INT64 (idata) */
    int64_t *idata;         /* numel int64 (ET_INT64), freed by etd_array_free */
    /* A graph model's named inputs or targets: nparts arrays in the model's
     * order (malloc'ed, freed by etd_array_free); then shape[0] is their
     * common number of rows, ndim 1 and there is no data of its own. */
    struct etd_array *parts;
    int nparts;
    /* A contiguous tensor whose storage data / idata point into (a
     * safetensors body's tensor taken without a copy), or NULL: then
     * etd_array_free drops this reference instead of free()ing the
     * elements, and etd_array_tensor hands out a view of it.  A copy of the
     * struct that changes shape or numel borrows the elements only. */
    et_tensor *owner;
} etd_array;

/* Parse j into a; false + message in err (e.g. "inputs[3]: expected 4
 * elements, got 3") on bad input. */
bool etd_array_from_json(const cJSON *j, const char *what, int64_t max_elems,
                         etd_array *a, char *err, size_t errcap);
/* The same, int64: every number must be a whole number of magnitude at
 * most 2^53 (exact in JSON's doubles) -- "inputs[0][2]: 2.5 is not an
 * integer".  Indices above 2^24 stay exact (a float32 parse rounds them). */
bool etd_array_from_json_ints(const cJSON *j, const char *what, int64_t max_elems,
                              etd_array *a, char *err, size_t errcap);
/* Free a->data / a->idata (and the parts) and set them to NULL (so a second
 * call is harmless). */
void etd_array_free(etd_array *a);
/* A new tensor (in the current pool, if one is open) of a's dtype and
 * shape holding a copy of its elements; NULL + et_errmsg(). */
et_tensor *etd_array_tensor(const etd_array *a);
/* a converted in place to int64 (false + err naming `what` and the element
 * when a float is not a whole number) or to float32 (rounding above 2^24,
 * as torch's .float()); no-op when it has that dtype. */
bool etd_array_to_dtype(etd_array *a, et_dtype dt, const char *what, char *err, size_t errcap);
/* a = a copy of t's elements (float32 or int64, any layout; a safetensors
 * body's tensors); false + "<what>: ..." in err when t has more than
 * max_elems elements or memory runs out. */
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
