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

typedef enum et_reduction { ET_REDUCTION_MEAN = 0, ET_REDUCTION_SUM, ET_REDUCTION_NONE } et_reduction;

/* "mean" | "sum" | "none" -> enum; ET_ERR_ARG for anything else. */
et_status et_reduction_parse(const char *s, et_reduction *out);
const char *et_reduction_name(et_reduction r);

et_tensor *et_mse_loss(et_tensor *input, et_tensor *target, et_reduction r);
et_tensor *et_l1_loss(et_tensor *input, et_tensor *target, et_reduction r);
/* input [N, C] (or [C]) logits, target [N] class indices (-100 = ignored,
 * as torch's default ignore_index). */
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
et_tensor *et_huber_loss(et_tensor *input, et_tensor *target, et_reduction r, float delta);
et_tensor *et_smooth_l1_loss(et_tensor *input, et_tensor *target, et_reduction r, float beta);

#ifdef __cplusplus
}
#endif
#endif
