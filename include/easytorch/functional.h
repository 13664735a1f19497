/*
 * functional.h - the layer ops of torch.nn.functional: normalisation and
 * embeddings (forward and backward).
 *
 * Same conventions as ops.h: every function returns a NEW reference (see
 * tensor.h OWNERSHIP) or NULL with the reason in et_errmsg(); inputs may be
 * non-contiguous; gradients flow to the float32 tensor arguments that
 * require grad (input, weight, bias, per_sample_weights), never to running
 * statistics or indices.  Statistics are accumulated in double, as
 * PyTorch's CPU kernels do.
 */
#ifndef EASYTORCH_FUNCTIONAL_H
#define EASYTORCH_FUNCTIONAL_H

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- normalisation ---- */

/* F.batch_norm: input [N, C, *] (ndim >= 2) normalised per channel.
 * training: over the batch (N and every trailing dim) with the biased
 *   variance; if running_mean / running_var ([C], float32; may be NULL) are
 *   given they are updated IN PLACE: r = (1 - momentum) r + momentum s, with
 *   the unbiased variance for running_var (for torch's momentum=None pass
 *   1 / num_batches_tracked, as nn.BatchNorm does).  A channel with a single
 *   value is an error (torch: "Expected more than 1 value per channel").
 * eval (training false): with running_mean / running_var (required).
 * weight, bias: [C] or NULL (no affine).  grad_fn NativeBatchNormBackward0. */
et_tensor *et_batch_norm(et_tensor *input, et_tensor *running_mean, et_tensor *running_var,
                         et_tensor *weight, et_tensor *bias, bool training, double momentum,
                         double eps);

/* A reducer: sums over the participants of a computation whose batch is
 * split by rows among them (data-parallel replicas, each holding some rows).
 * sum(ctx, v, n) replaces v[0..n) by the element-wise sum of every
 * participant's v[0..n); every participant calls it at the same points with
 * the same n and gets the same sums.  It returns false after et_set_error
 * when it fails (a participant lost, or failed itself); the op calling it
 * then fails.  Borrowed by the ops: it must stay valid as long as a graph
 * recorded with it may be backpropagated. */
typedef struct et_reducer {
    bool (*sum)(void *ctx, double *v, int64_t n);
    void *ctx;
} et_reducer;

/* et_batch_norm whose training-mode statistics are those of every
 * participant's rows together (torch.nn.SyncBatchNorm): the forward sums
 * each channel's values and count (one call, n = C + 1), then the squared
 * deviations from the common mean (n = C); the backward sums, per channel,
 * the gradient and the gradient times (x - mean) (n = 2C).  Each
 * participant's output and input gradient are then those of batch_norm over
 * all the rows; the weight and bias gradients are its own rows' share (the
 * caller sums them, as DDP does), and every participant updates its running
 * statistics alike (the unbiased variance counts all the rows).  A
 * participant with no rows (N = 0) takes part with zeros.  reducer NULL, or
 * training false: et_batch_norm (no calls). */
et_tensor *et_batch_norm_reduced(et_tensor *input, et_tensor *running_mean,
                                 et_tensor *running_var, et_tensor *weight, et_tensor *bias,
                                 bool training, double momentum, double eps,
                                 const et_reducer *reducer);

/* F.layer_norm: normalises over the last `ndims` dims of input, which must
 * equal normalized_shape; weight, bias of that shape or NULL (biased
 * variance).  grad_fn NativeLayerNormBackward0. */
et_tensor *et_layer_norm(et_tensor *input, const int64_t *normalized_shape, int ndims,
                         et_tensor *weight, et_tensor *bias, double eps);

/* F.group_norm: input [N, C, *], C divisible by num_groups; statistics per
 * sample and group of C / num_groups channels; weight, bias [C] or NULL.
 * grad_fn NativeGroupNormBackward0. */
et_tensor *et_group_norm(et_tensor *input, int64_t num_groups, et_tensor *weight,
                         et_tensor *bias, double eps);

/* ---- embeddings ---- */

/* "no padding index" (torch's padding_idx=None) */
#define ET_NO_INDEX INT64_MIN

typedef struct {
    int64_t padding_idx;     /* ET_NO_INDEX, or a row in [-V, V) (negative counts from
                                the end) whose lookups get no gradient */
    double max_norm;         /* > 0: rows looked up are first renormalised IN PLACE
                                (under no grad) to norm <= max_norm, as torch;
                                0: no renormalisation (torch's None) */
    double norm_type;        /* p of the max_norm norm (torch default 2) */
    bool scale_grad_by_freq; /* divide each row's gradient by its count in input */
} et_embedding_opts;
#define ET_EMBEDDING_DEFAULTS \
    ((et_embedding_opts){.padding_idx = ET_NO_INDEX, .max_norm = 0.0, .norm_type = 2.0, \
                         .scale_grad_by_freq = false})

/* F.embedding: rows of weight [V, D] picked by `input` (int64, or float32
 * holding integers; any shape) -> [*input.shape, D].  Every index must be
 * in [0, V) (ET_ERR_INDEX naming it otherwise).  The gradient of weight is
 * dense.  grad_fn EmbeddingBackward0. */
et_tensor *et_embedding(et_tensor *input, et_tensor *weight, et_embedding_opts o);

typedef enum et_bag_mode { ET_BAG_SUM = 0, ET_BAG_MEAN, ET_BAG_MAX } et_bag_mode;

typedef struct {
    et_bag_mode mode;               /* torch default "mean" */
    et_tensor *offsets;             /* 1-D input: start of each bag (int64 or integral
                                       float32; offsets[0] == 0, non-decreasing, <= len);
                                       2-D input [B, L] (each row a bag): NULL */
    et_tensor *per_sample_weights;  /* shaped like input, mode sum only; may require grad */
    bool include_last_offset;       /* offsets has B + 1 entries, the last one ends bag B-1 */
    int64_t padding_idx;            /* ET_NO_INDEX, or an index left out of every bag
                                       (not counted by "mean") */
    double max_norm, norm_type;     /* as et_embedding_opts */
    bool scale_grad_by_freq;
} et_embedding_bag_opts;
#define ET_EMBEDDING_BAG_DEFAULTS                                                          \
    ((et_embedding_bag_opts){.mode = ET_BAG_MEAN, .offsets = NULL,                          \
                             .per_sample_weights = NULL, .include_last_offset = false,      \
                             .padding_idx = ET_NO_INDEX, .max_norm = 0.0, .norm_type = 2.0, \
                             .scale_grad_by_freq = false})
/* "sum" | "mean" | "max" -> mode; ET_ERR_ARG otherwise. */
et_status et_bag_mode_parse(const char *s, et_bag_mode *out);
const char *et_bag_mode_name(et_bag_mode m);

/* F.embedding_bag: per bag the sum / mean / max of the rows of weight
 * [V, D] picked by its indices -> [B, D]; an empty bag gives zeros.
 * Gradients to weight (max: to the row that gave each maximum) and, in
 * sum mode, to per_sample_weights.  grad_fn EmbeddingBagBackward0. */
et_tensor *et_embedding_bag(et_tensor *input, et_tensor *weight, et_embedding_bag_opts o);

/* ---- classification loss ---- */

/* torch's cross_entropy (log_softmax + nll_loss) of logits input [N, C]
 * (float32, C >= 1) and class targets [N] (int64, or float32 holding
 * integers: each in [0, C) or equal to ignore_index, else ET_ERR_INDEX) as
 * one graph node (grad_fn NllLossBackward0), without label smoothing.
 * weight: [C] class weights or NULL (no gradient flows to it).  reduction
 * as et_reduction (loss.h): 0 mean (divided by the summed weight of the
 * non-ignored targets; NaN if that is 0), 1 sum, 2 none ([N]).  The same
 * bits as et_cross_entropy_ex's composition of core ops, which is what
 * et_cross_entropy_ex runs for the inputs this does not take. */
et_tensor *et_cross_entropy_rows(et_tensor *input, et_tensor *target, et_tensor *weight,
                                 int64_t ignore_index, int reduction);

#ifdef __cplusplus
}
#endif
#endif
