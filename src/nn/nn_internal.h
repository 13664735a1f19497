/*
 * nn_internal.h - shared helpers of the nn layer (never installed).
 *
 * Pools and composite functions: nn code (modules, losses) composes core ops
 * and must free its intermediates whether or not the caller has a pool open.
 * It therefore runs its work inside an inner pool (nn_scope_begin) and hands
 * the result back as a reference owned like any core op result
 * (nn_scope_end): a new reference, or the caller's pool's if one is open
 * (core's etc_pooled does the hand-over).
 * Tensors the nn layer keeps (parameters, optimizer state, dict entries) are
 * created with nn_keep so that exactly one reference belongs to the owner,
 * even if the caller happens to have a pool open.
 */
#ifndef EASYTORCH_NN_INTERNAL_H
#define EASYTORCH_NN_INTERNAL_H

#include "easytorch/easytorch.h"

/* Open the inner pool of a composite function. */
void nn_scope_begin(void);
/* Close it; returns `res` re-created in the caller's context (new reference)
 * or NULL if res is NULL (the error message is kept). */
et_tensor *nn_scope_end(et_tensor *res);

/* Creation helpers for owned tensors: the result has one reference that
 * belongs to the caller, never to an open pool.  NULL + error on failure. */
et_tensor *nn_keep_new(const float *data, const int64_t *shape, int ndim);
et_tensor *nn_keep_ones(const int64_t *shape, int ndim);
et_tensor *nn_keep_new_int64(const int64_t *data, const int64_t *shape, int ndim);
et_tensor *nn_keep_clone(const et_tensor *t);
et_tensor *nn_keep_detach(et_tensor *t);
/* U(-bound, bound) drawn from g in row-major order (torch's init.uniform_),
 * owned like the nn_keep_* results. */
et_tensor *nn_keep_uniform(et_generator *g, const int64_t *shape, int ndim, double bound);

/* Prefix the current error message with the formatted text (e.g. the layer:
 * "Conv2d(3, 8, ...): "); the status code is kept.  Returns that code. */
et_status nn_error_prefix(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Contiguous float access to any tensor: direct pointer when contiguous,
 * else a malloc'ed copy written back by nn_buf_release(.., true), which
 * also counts as an in-place write (storage version, see autograd.h). */
typedef struct nn_buf {
    et_tensor *t;
    float *p;
    float *tmp;
} nn_buf;
et_status nn_buf_acquire(nn_buf *b, et_tensor *t);
void nn_buf_release(nn_buf *b, bool write_back);

/* zero_grad's zeroing of one gradient: only the rows an Embedding's
 * backward wrote when core knows the rest is zero (core's zero_rows.c),
 * else fill_(0). */
void nn_zero_grad_(et_tensor *g);

/* "[2, 3]" for messages (static per-call buffer owned by the caller). */
#define NN_SHAPE_STR(t, buf) et_shape_str(et_shape(t), et_ndim(t), (buf), sizeof(buf))

#endif
