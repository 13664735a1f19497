/*
 * loss_internal.h - helpers shared by the loss files (loss.c, loss_class.c,
 * loss_embed.c).  Never installed.
 */
#ifndef EASYTORCH_LOSS_INTERNAL_H
#define EASYTORCH_LOSS_INTERNAL_H

#include "nn/nn_internal.h"

/* t reduced as r says (mean, sum, none = t itself, batchmean = sum / size of
 * dim 0); NULL in, NULL out. */
et_tensor *nn_loss_reduce(et_tensor *t, et_reduction r);

/* Common argument checks: non-NULL, a valid reduction (batchmean for kl_div
 * only) and, when `same_shape`, equal shapes.  False + error. */
bool nn_loss_check(const char *name, et_tensor *input, et_tensor *target, et_reduction r,
                   bool same_shape);

/* Run `expr` inside the loss's inner pool and return its result to the caller. */
#define LOSS_SCOPE(expr)                 \
    do {                                 \
        nn_scope_begin();                \
        return nn_scope_end((expr));     \
    } while (0)

#endif
