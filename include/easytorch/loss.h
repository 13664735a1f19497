/*
 * loss.h - loss functions, as torch.nn.functional / torch.nn losses.
 *
 * Each returns a new reference (0-d for "mean"/"sum", input-shaped for
 * "none") or NULL + et_errmsg() on mismatched shapes or bad targets.
 * Class-index targets are int64 tensors (or float32 tensors holding
 * integers, exact to 2^24).
 */
#ifndef EASYTORCH_LOSS_H
#define EASYTORCH_LOSS_H

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* batchmean (sum / batch size) is kl_div's only (ET_ERR_ARG elsewhere, as torch). */
typedef enum et_reduction {
    ET_REDUCTION_MEAN = 0, ET_REDUCTION_SUM, ET_REDUCTION_NONE, ET_REDUCTION_BATCHMEAN
} et_reduction;

/* "mean" | "sum" | "none" | "batchmean" -> enum; ET_ERR_ARG for anything else. */
et_status et_reduction_parse(const char *s, et_reduction *out);
const char *et_reduction_name(et_reduction r);

et_tensor *et_mse_loss(et_tensor *input, et_tensor *target, et_reduction r);
et_tensor *et_l1_loss(et_tensor *input, et_tensor *target, et_reduction r);
/* input [N, C] (or [C], or [N, C, d1, ...] with classes on dim 1) logits,
 * target [N] (or [], [N, d1, ...]) class indices (-100 = ignored, as torch's
 * default ignore_index), or class probabilities of the input's shape. */
et_tensor *et_cross_entropy(et_tensor *input, et_tensor *target, et_reduction r,
                            float label_smoothing);
/* input [N, C] log-probabilities, target [N] class indices. */
et_tensor *et_nll_loss(et_tensor *input, et_tensor *target, et_reduction r);
/* The full options of torch's cross_entropy / nll_loss:
 *   weight           [C] class weights or NULL (borrowed; no gradient flows to it
 *                    through the picked terms, as torch)
 *   ignore_index     targets equal to it contribute 0 and are left out of the
 *                    "mean" denominator (torch default -100)
 *   label_smoothing  in [0, 1]; cross_entropy only (nll_loss: ET_ERR_ARG if set)
 * "mean" divides by the summed weight of the non-ignored targets, as torch
 * (NaN if every target is ignored). */
typedef struct {
    et_tensor *weight;
    int64_t ignore_index;
    float label_smoothing;
} et_class_loss_opts;
#define ET_CLASS_LOSS_DEFAULTS \
    ((et_class_loss_opts){.weight = NULL, .ignore_index = -100, .label_smoothing = 0.0f})
/* et_cross_entropy / et_nll_loss with every option (they are these with
 * ET_CLASS_LOSS_DEFAULTS).  New reference or NULL + error. */
et_tensor *et_cross_entropy_ex(et_tensor *input, et_tensor *target, et_reduction r,
                               et_class_loss_opts o);
et_tensor *et_nll_loss_ex(et_tensor *input, et_tensor *target, et_reduction r,
                          et_class_loss_opts o);
/* input probabilities in [0,1]; log clamped at -100 as PyTorch. */
et_tensor *et_bce_loss(et_tensor *input, et_tensor *target, et_reduction r);
et_tensor *et_bce_with_logits(et_tensor *input, et_tensor *target, et_reduction r);
/* With torch's weight (broadcast over the loss, e.g. [N, 1] or [C]) and
 * pos_weight (the weight of the positive term, broadcast along the last dim:
 * [C]); either may be NULL.  Gradients reach them too. */
et_tensor *et_bce_with_logits_ex(et_tensor *input, et_tensor *target, et_reduction r,
                                 et_tensor *weight, et_tensor *pos_weight);
/* KL divergence as torch.nn.functional.kl_div: input log-probabilities,
 * target probabilities (or log-probabilities when log_target); pointwise
 * t (log t - x) with 0 log 0 = 0.  reduction "mean" averages over every
 * element, "batchmean" (the mathematical KL) divides the sum by dim 0. */
et_tensor *et_kl_div(et_tensor *input, et_tensor *target, et_reduction r, bool log_target);
/* max(0, -y (x1 - x2) + margin) (torch.nn.MarginRankingLoss); broadcasting. */
et_tensor *et_margin_ranking_loss(et_tensor *x1, et_tensor *x2, et_tensor *y, float margin,
                                  et_reduction r);
/* 1 - cos(x1, x2) for y = 1, max(0, cos(x1, x2) - margin) for y = -1
 * (torch.nn.CosineEmbeddingLoss): x [N, D] with y [N], or x [D] with 0-d y. */
et_tensor *et_cosine_embedding_loss(et_tensor *x1, et_tensor *x2, et_tensor *y, float margin,
                                    et_reduction r);
/* max(0, margin + d(a, p) - d(a, n)) with d = ||x1 - x2 + eps||_p over the
 * last dim; swap uses min(d(a, n), d(p, n)) (torch.nn.TripletMarginLoss). */
typedef struct { float margin, p, eps; bool swap; } et_triplet_opts;
#define ET_TRIPLET_DEFAULTS ((et_triplet_opts){.margin = 1.0f, .p = 2.0f, .eps = 1e-6f, .swap = false})
et_tensor *et_triplet_margin_loss(et_tensor *anchor, et_tensor *positive, et_tensor *negative,
                                  et_triplet_opts o, et_reduction r);
et_tensor *et_huber_loss(et_tensor *input, et_tensor *target, et_reduction r, float delta);
et_tensor *et_smooth_l1_loss(et_tensor *input, et_tensor *target, et_reduction r, float beta);

#ifdef __cplusplus
}
#endif
#endif
