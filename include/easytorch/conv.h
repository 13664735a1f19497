/*
 * conv.h - convolution, pooling, padding and unfold/fold: the image ops of
 * torch.nn.functional, differentiable, for any batch size and any strides
 * (non-contiguous inputs are copied once).
 *
 * Layout is PyTorch's: inputs [N, C, L] (1-d ops) or [N, C, H, W] (2-d
 * ops), or without the batch dim ([C, L] / [C, H, W], "unbatched", as
 * torch 1.13 accepts); weights [out, in/groups, kH, kW] for convolution and
 * [in, out/groups, kH, kW] for transposed convolution.  Every function
 * returns a NEW reference (see tensor.h OWNERSHIP) or NULL with the reason
 * in et_errmsg() naming the op and the shapes, and records the op for
 * et_backward() when an input requires grad (grad_fn names as PyTorch's:
 * ConvolutionBackward0, MaxPool2DWithIndicesBackward0, ...).
 *
 * Size arguments are arrays with one entry per spatial dim (1 for the 1-d
 * ops, 2 = {H, W} for the 2-d ops).  NULL selects PyTorch's default:
 * stride 1 (pooling: stride = kernel_size), padding 0, dilation 1,
 * output_padding 0.  Padding is symmetric (the same on both sides of a
 * dim), except ET_PADDING_SAME.
 */
#ifndef EASYTORCH_CONV_H
#define EASYTORCH_CONV_H

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pass as `padding` for torch's padding="same": the output has the input's
 * spatial size (stride must be 1; for an even dilated kernel the extra
 * row/column of zeros goes at the end, as PyTorch).  padding="valid" is
 * padding 0, i.e. NULL. */
extern const int64_t et_padding_same[2];
#define ET_PADDING_SAME et_padding_same

/* ---- convolution ---- */
/* torch.nn.functional.conv2d: input [N, C, H, W] (or [C, H, W]), weight
 * [O, C/groups, kH, kW], bias [O] or NULL; output [N, O, oH, oW] with
 * oH = (H + 2 pad - dil (kH - 1) - 1) / stride + 1.  C and O must be
 * divisible by groups (groups == C: depthwise). */
et_tensor *et_conv2d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                     const int64_t stride[2], const int64_t padding[2],
                     const int64_t dilation[2], int64_t groups);
/* torch.nn.functional.conv1d: input [N, C, L] (or [C, L]), weight
 * [O, C/groups, k]; arrays of one entry. */
et_tensor *et_conv1d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                     const int64_t stride[1], const int64_t padding[1],
                     const int64_t dilation[1], int64_t groups);
/* torch.nn.functional.conv_transpose2d (argument order as torch): input
 * [N, C, H, W], weight [C, O/groups, kH, kW], bias [O] or NULL; output
 * oH = (H - 1) stride - 2 pad + dil (kH - 1) + output_padding + 1, and
 * output_padding must be smaller than stride or dilation. */
et_tensor *et_conv_transpose2d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                               const int64_t stride[2], const int64_t padding[2],
                               const int64_t output_padding[2], int64_t groups,
                               const int64_t dilation[2]);

/* ---- pooling ---- */
/* torch.nn.functional.max_pool2d: input [N, C, H, W] or [C, H, W];
 * kernel_size required, stride NULL = kernel_size; padding (at most half the
 * kernel; padded positions are never chosen), dilation, ceil_mode as torch.
 * Ties pick the first element of a window and a NaN wins.  *indices (may be
 * NULL) receives a new reference to the int64 tensor of chosen positions,
 * flat in each input plane (h * W + w), shaped like the output. */
et_tensor *et_max_pool2d(et_tensor *input, const int64_t kernel_size[2], const int64_t stride[2],
                         const int64_t padding[2], const int64_t dilation[2], bool ceil_mode,
                         et_tensor **indices);
/* [N, C, L] or [C, L]; indices are positions in L. */
et_tensor *et_max_pool1d(et_tensor *input, const int64_t kernel_size[1], const int64_t stride[1],
                         const int64_t padding[1], const int64_t dilation[1], bool ceil_mode,
                         et_tensor **indices);
/* torch.nn.functional.avg_pool2d: the mean of each window; the divisor is
 * divisor_override when non-zero, else the window size counted with the
 * padding (count_include_pad, torch's default true) or without it. */
et_tensor *et_avg_pool2d(et_tensor *input, const int64_t kernel_size[2], const int64_t stride[2],
                         const int64_t padding[2], bool ceil_mode, bool count_include_pad,
                         int64_t divisor_override);
et_tensor *et_avg_pool1d(et_tensor *input, const int64_t kernel_size[1], const int64_t stride[1],
                         const int64_t padding[1], bool ceil_mode, bool count_include_pad);
/* torch.nn.functional.adaptive_{avg,max}_pool{1,2}d: output_size entries
 * >= 0, or -1 to keep the input's size (torch's None).  Window i of n over
 * a dim of size L is [floor(i L / n), ceil((i + 1) L / n)). */
et_tensor *et_adaptive_avg_pool2d(et_tensor *input, const int64_t output_size[2]);
et_tensor *et_adaptive_avg_pool1d(et_tensor *input, const int64_t output_size[1]);
et_tensor *et_adaptive_max_pool2d(et_tensor *input, const int64_t output_size[2],
                                  et_tensor **indices);
et_tensor *et_adaptive_max_pool1d(et_tensor *input, const int64_t output_size[1],
                                  et_tensor **indices);

/* ---- padding ---- */
typedef enum et_pad_mode {
    ET_PAD_CONSTANT = 0,
    ET_PAD_REFLECT = 1,
    ET_PAD_REPLICATE = 2,
    ET_PAD_CIRCULAR = 3,
} et_pad_mode;
/* torch.nn.functional.pad: pad[2 k], pad[2 k + 1] are the padding before
 * and after the k-th LAST dim (npad even, at most 2 ndim); negative values
 * crop.  Constant mode pads any dims with `value`; reflect, replicate and
 * circular pad the last 1-3 dims of an input with one or two leading dims
 * (circular: two), take value 0, and reflect needs each padding smaller
 * than the dim.  Gradients of the copies sum into the input. */
et_tensor *et_pad(et_tensor *input, const int64_t *pad, int npad, et_pad_mode mode, float value);

/* ---- sliding blocks ---- */
/* torch.nn.functional.unfold (im2col): input [N, C, H, W] (or [C, H, W]) ->
 * [N, C kH kW, L], L = the number of blocks (oH oW); column l holds block
 * l's values in (c, kh, kw) order, zeros where it covers padding.  NULL
 * arrays: dilation 1, padding 0, stride 1 (torch's argument order). */
et_tensor *et_unfold(et_tensor *input, const int64_t kernel_size[2], const int64_t dilation[2],
                     const int64_t padding[2], const int64_t stride[2]);
/* torch.nn.functional.fold (col2im), unfold's adjoint: input [N, C kH kW, L]
 * (or [C kH kW, L]) -> [N, C, H, W] with {H, W} = output_size; values of
 * overlapping blocks add up. */
et_tensor *et_fold(et_tensor *input, const int64_t output_size[2], const int64_t kernel_size[2],
                   const int64_t dilation[2], const int64_t padding[2], const int64_t stride[2]);

/* How convolutions are computed.  AUTO picks per call and shape between
 * oneDNN (when built in) and im2col + sgemm, by the measurements in
 * docs/design.md; the other two force one (like torch.backends.mkldnn).
 * The setting is process-wide. */
typedef enum et_conv_algo {
    ET_CONV_AUTO = 0,
    ET_CONV_IM2COL = 1,
    ET_CONV_ONEDNN = 2,
} et_conv_algo;
/* ET_ERR_ARG (setting unchanged) for ET_CONV_ONEDNN in a build without
 * oneDNN or for an unknown value. */
et_status et_set_conv_algo(et_conv_algo algo);
et_conv_algo et_get_conv_algo(void);
/* Was this library built with oneDNN? */
bool et_have_onednn(void);

#ifdef __cplusplus
}
#endif
#endif
