/*
 * tensor.h - N-dimensional float32 tensors: creation, views, accessors.
 *
 * OWNERSHIP (the one rule for tensors and graphs)
 *   Tensors are reference counted.  Every function returning `et_tensor *`
 *   returns a NEW reference which the caller releases with et_tensor_free().
 *   A non-leaf tensor holds references to the inputs of the op that produced
 *   it (its graph), so freeing the loss frees the graph once nothing else
 *   refers to it.  Storage is shared (and reference counted) between a tensor
 *   and its views.
 *
 *   To avoid freeing every intermediate by hand, open a pool:
 *       et_pool_begin();
 *       ... any number of ops ...
 *       et_pool_end();   // drops the creation reference of every tensor
 *                        // created since the matching et_pool_begin()
 *   While a pool is open, the creation reference of each new tensor belongs to
 *   the pool and the caller must NOT free it; call et_tensor_ref() to keep a
 *   tensor alive past et_pool_end().  Pools nest and are per thread.  A
 *   training loop opens one pool per step: memory is flat across steps.
 *
 * DTYPES
 *   Tensors are float32 (ET_FLOAT32, the default of every creator below)
 *   or int64 (ET_INT64, torch.long): the dtype of indices — embedding and
 *   embedding_bag inputs, class targets, index_select/gather indices — so
 *   that an index above 2^24 is never rounded through float32.  int64
 *   tensors never require grad; views (reshape, view, transpose, permute,
 *   squeeze, unsqueeze, flatten, expand, select, slice), cat/stack, clone,
 *   contiguous, detach, zeros_like/ones_like, printing and safetensors
 *   ("I64") accept them; float ops reject them with ET_ERR_ARG ("exp:
 *   expected a float32 tensor, got int64").  Index arguments still accept
 *   float32 tensors holding integral values (exact to 2^24) as before.
 */
#ifndef EASYTORCH_TENSOR_H
#define EASYTORCH_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "easytorch/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ET_MAX_DIMS 8

typedef struct et_tensor et_tensor;
typedef struct et_generator et_generator;

typedef enum et_dtype { ET_FLOAT32 = 0, ET_INT64 = 1 } et_dtype;

/* Shape literal helper: ET_SHAPE(2, 3) -> (const int64_t[]){2, 3}, 2 */
#define ET_SHAPE(...) \
    (const int64_t[]){__VA_ARGS__}, \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* ---- creation (all return a new reference, NULL on error) ---- */

/* Copy `data` (row-major, numel(shape) floats; may be NULL for zeros). */
et_tensor *et_tensor_new(const float *data, const int64_t *shape, int ndim);
et_tensor *et_scalar(float value);                 /* 0-d tensor */
et_tensor *et_zeros(const int64_t *shape, int ndim);
et_tensor *et_ones(const int64_t *shape, int ndim);
et_tensor *et_full(const int64_t *shape, int ndim, float value);
et_tensor *et_zeros_like(const et_tensor *t);
et_tensor *et_ones_like(const et_tensor *t);
et_tensor *et_arange(double start, double end, double step);   /* 1-D */
et_tensor *et_linspace(double start, double end, int64_t steps); /* 1-D */
et_tensor *et_eye(int64_t n, int64_t m);                       /* 2-D */
et_tensor *et_rand(et_generator *g, const int64_t *shape, int ndim);  /* U[0,1) */
et_tensor *et_randn(et_generator *g, const int64_t *shape, int ndim); /* N(0,1) */
et_tensor *et_uniform(et_generator *g, const int64_t *shape, int ndim,
                      double low, double high);                     /* U[low,high) */
/* int64 tensor: copy `data` (numel(shape) values; NULL for zeros). */
et_tensor *et_tensor_new_int64(const int64_t *data, const int64_t *shape, int ndim);
/* A tensor over memory the library does not own (no copy): `data` holds
 * numel(shape) contiguous row-major elements of `dtype`, aligned to the
 * element size (4 or 8 bytes) -- else ET_ERR_ARG.  The storage is reference
 * counted like any other (views share it); when its last reference goes --
 * on whichever thread drops it -- release(arg) is called once (release may be
 * NULL: memory that outlives every tensor).  The library may write the
 * elements (in-place ops).  On failure (NULL) release is not called: the
 * caller still owns the memory.  Any number of tensors may alias one buffer,
 * each with its own release call (e.g. a reference count of the buffer). */
typedef void (*et_release_fn)(void *arg);
et_tensor *et_tensor_from_external(void *data, const int64_t *shape, int ndim, et_dtype dtype,
                                   et_release_fn release, void *arg);
/* Is t's storage external (et_tensor_from_external)? */
bool et_tensor_is_external(const et_tensor *t);
/* Contiguous copy that does not require grad and has no graph. */
et_tensor *et_clone(const et_tensor *t);
/* `t` itself (new reference) if contiguous, else a differentiable copy. */
et_tensor *et_contiguous(et_tensor *t);
/* Shares storage with `t`, no graph, requires_grad false. */
et_tensor *et_detach(et_tensor *t);

/* Copy of t converted to `dtype` (a new reference to t itself when it
 * already has it), no graph.  float32 -> int64 is exact or an error: a
 * NaN, infinite, non-integral or out-of-range element gives ET_ERR_ARG
 * naming it (torch's .long() truncates; this is the checked conversion
 * indices need).  int64 -> float32 rounds to nearest above 2^24. */
et_tensor *et_to_dtype(et_tensor *t, et_dtype dtype);

/* ---- references ---- */
et_tensor *et_tensor_ref(et_tensor *t);      /* +1, returns t; NULL-safe */
void et_tensor_free(et_tensor *t);           /* -1; NULL is a no-op */

/* ---- pools (see OWNERSHIP above) ---- */
void et_pool_begin(void);
void et_pool_end(void);

/* ---- accessors ---- */
int et_ndim(const et_tensor *t);
const int64_t *et_shape(const et_tensor *t);       /* ndim entries */
const int64_t *et_strides(const et_tensor *t);     /* in elements */
int64_t et_size(const et_tensor *t, int dim);      /* negative dim allowed; -1 on error */
int64_t et_numel(const et_tensor *t);
bool et_is_contiguous(const et_tensor *t);
et_dtype et_tensor_dtype(const et_tensor *t);      /* ET_FLOAT32 for NULL */
const char *et_dtype_name(et_dtype d);             /* "float32", "int64" */
/* Pointer to element [0,...,0]; elements are at data[sum(i_k * stride_k)].
 * Borrowed: valid while `t` (or its storage) lives.  float32 tensors only
 * (NULL + error for int64: use et_data_int64). */
float *et_data(et_tensor *t);
const float *et_data_const(const et_tensor *t);
/* The same for int64 tensors (NULL + error for float32). */
int64_t *et_data_int64(et_tensor *t);
const int64_t *et_data_int64_const(const et_tensor *t);
/* Value of a one-element tensor (NAN and an error otherwise); an int64
 * value is converted to float. */
float et_item(const et_tensor *t);
/* Exact integer value of a one-element tensor of either dtype (a float32
 * value must be integral); ET_ERR_* otherwise, *out unchanged. */
et_status et_item_int64(const et_tensor *t, int64_t *out);
/* Element at a full index (ndim entries, negatives allowed); NAN + error if out of range. */
float et_get(const et_tensor *t, const int64_t *index);
/* Copy all elements in row-major order into out[numel] (int64 values are
 * converted to float). */
void et_copy_to(const et_tensor *t, float *out);
/* Overwrite all elements from src[numel] (row-major); works through views.
 * float32 tensors only. */
et_status et_copy_from(et_tensor *t, const float *src);
/* int64 forms: copy out (a float32 tensor's values must all be integral,
 * else ET_ERR_ARG and `out` is left partly written) and overwrite an int64
 * tensor. */
et_status et_copy_to_int64(const et_tensor *t, int64_t *out);
et_status et_copy_from_int64(et_tensor *t, const int64_t *src);
/* Shapes equal? */
bool et_same_shape(const et_tensor *a, const et_tensor *b);
/* "[3, 4]" into buf; returns buf. */
char *et_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

/* ---- autograd flags ---- */
bool et_requires_grad(const et_tensor *t);
/* Only on float32 leaves; error (ET_ERR_GRAD) on a non-leaf, ET_ERR_ARG
 * on an int64 tensor (only floating point tensors can require grad). */
et_status et_set_requires_grad(et_tensor *t, bool on);
bool et_is_leaf(const et_tensor *t);
/* Accumulated gradient, or NULL if none yet.  Borrowed reference. */
et_tensor *et_grad(const et_tensor *t);
/* Replace the gradient (takes a new reference of g; g NULL clears it). */
et_status et_set_grad(et_tensor *t, et_tensor *g);
/* Keep .grad on a non-leaf during backward (no-op on a leaf). */
void et_retain_grad(et_tensor *t);
/* PyTorch grad_fn name of the op that produced t ("AddBackward0",
 * "MmBackward0", ...; static string) or NULL for a leaf. */
const char *et_grad_fn_name(const et_tensor *t);

/* ---- no-grad mode (per thread) ---- */
/* Set whether ops record a graph; returns the previous setting. */
bool et_set_grad_enabled(bool enabled);
bool et_is_grad_enabled(void);
/* Scoped form:  ET_NO_GRAD { ...ops record nothing... }  */
#define ET_NO_GRAD \
    for (bool et__prev = et_set_grad_enabled(false), et__once = true; et__once; \
         et__once = false, et_set_grad_enabled(et__prev))

/* ---- printing ---- */
/* Print like PyTorch: "tensor([[1.0000, 2.0000]], requires_grad=True)\n" */
void et_print(const et_tensor *t);
void et_fprint(FILE *f, const et_tensor *t);
/* Same text into a malloc'ed string the caller frees with free(). */
char *et_to_string(const et_tensor *t);

/* ---- random generator (xoshiro256**, seeded; not PyTorch's stream) ---- */
et_generator *et_generator_new(uint64_t seed);
void et_generator_free(et_generator *g);
uint64_t et_generator_next(et_generator *g);   /* raw 64 bits */
double et_generator_uniform(et_generator *g);  /* [0,1) */
/* 4 x u64 of state, for checkpoints. */
void et_generator_get_state(const et_generator *g, uint64_t state[4]);
void et_generator_set_state(et_generator *g, const uint64_t state[4]);
/* Process-wide default generator (seed 0 until et_manual_seed). */
et_generator *et_default_generator(void);
void et_manual_seed(uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
