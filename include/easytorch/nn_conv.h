/*
 * nn_conv.h - the image layers of torch.nn: convolution, pooling, padding,
 * Unflatten and Dropout2d (included by nn.h; ownership and naming as there).
 *
 * Options come in a struct with torch's defaults (ET_CONV_DEFAULTS,
 * ET_POOL_DEFAULTS); NULL means the defaults.  Size arrays are {H, W} for
 * the 2-d layers; the 1-d layers read entry 0.  Inputs may be batched or
 * not ([N, C, H, W] / [C, H, W]); a shape error names the layer and the
 * input's shape ("MaxPool2d: input [32, 8, 1, 1] is smaller than kernel 2").
 */
#ifndef EASYTORCH_NN_CONV_H
#define EASYTORCH_NN_CONV_H

#include "easytorch/conv.h"
#include "easytorch/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conv1d / Conv2d / ConvTranspose2d options (torch.nn's keyword arguments). */
typedef struct et_conv_opts {
    int64_t stride[2];
    int64_t padding[2];          /* ignored with padding_same */
    int64_t dilation[2];
    int64_t output_padding[2];   /* ConvTranspose2d only */
    int64_t groups;
    bool bias;
    bool padding_same;           /* padding="same" (stride 1; not for ConvTranspose2d) */
    et_pad_mode padding_mode;    /* "zeros" (ET_PAD_CONSTANT), reflect, replicate, circular */
} et_conv_opts;
#define ET_CONV_DEFAULTS \
    ((et_conv_opts){{1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, true, false, ET_PAD_CONSTANT})

/* Weight [out, in/groups, kH, kW] (ConvTranspose2d: [in, out/groups, kH, kW])
 * and bias [out], as torch's reset_parameters: U(-b, b) with
 * b = 1/sqrt(fan_in), fan_in = weight.size(1) kH kW, weight drawn first,
 * row-major, from g (NULL: the default generator).  state_dict: "weight",
 * "bias". */
et_module *et_conv2d_new(int64_t in_channels, int64_t out_channels, const int64_t kernel_size[2],
                         const et_conv_opts *opts, et_generator *g);
et_module *et_conv1d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                         const et_conv_opts *opts, et_generator *g);
et_module *et_conv_transpose2d_new(int64_t in_channels, int64_t out_channels,
                                   const int64_t kernel_size[2], const et_conv_opts *opts,
                                   et_generator *g);

/* Pooling options.  stride all 0 = kernel_size (torch's stride=None). */
typedef struct et_pool_opts {
    int64_t stride[2];
    int64_t padding[2];
    int64_t dilation[2];         /* max pools */
    bool ceil_mode;
    bool count_include_pad;      /* avg pools */
    int64_t divisor_override;    /* AvgPool2d; 0 = None */
} et_pool_opts;
#define ET_POOL_DEFAULTS ((et_pool_opts){{0, 0}, {0, 0}, {1, 1}, false, true, 0})

et_module *et_max_pool2d_new(const int64_t kernel_size[2], const et_pool_opts *opts);
et_module *et_max_pool1d_new(int64_t kernel_size, const et_pool_opts *opts);
et_module *et_avg_pool2d_new(const int64_t kernel_size[2], const et_pool_opts *opts);
et_module *et_avg_pool1d_new(int64_t kernel_size, const et_pool_opts *opts);
/* output_size entries >= 0, or -1 to keep the input's size (torch's None). */
et_module *et_adaptive_avg_pool2d_new(const int64_t output_size[2]);
et_module *et_adaptive_avg_pool1d_new(int64_t output_size);
et_module *et_adaptive_max_pool2d_new(const int64_t output_size[2]);
et_module *et_adaptive_max_pool1d_new(int64_t output_size);

/* Padding layers: padding (left, right[, top, bottom]) as F.pad. */
et_module *et_zero_pad2d_new(const int64_t padding[4]);
et_module *et_constant_pad1d_new(const int64_t padding[2], float value);
et_module *et_constant_pad2d_new(const int64_t padding[4], float value);
et_module *et_reflection_pad1d_new(const int64_t padding[2]);
et_module *et_reflection_pad2d_new(const int64_t padding[4]);
et_module *et_replication_pad1d_new(const int64_t padding[2]);
et_module *et_replication_pad2d_new(const int64_t padding[4]);

/* Unflatten(dim, unflattened_size): dim of the input split into `sizes`
 * (one entry may be -1, inferred). */
et_module *et_unflatten_new(int dim, const int64_t *sizes, int nsizes);
/* Dropout2d: in training mode zeroes whole channels (one draw from g per
 * [n, c] of a 4-d input, per dim-0 slice of a 3-d one, as torch 1.13) and
 * scales the rest by 1/(1-p); identity in eval mode.  g is borrowed (NULL:
 * the default generator). */
et_module *et_dropout2d_new(float p, et_generator *g);

#ifdef __cplusplus
}
#endif
#endif
