/*
 * easytorch.h - the whole public API.
 *
 * A tour:
 *
 *     #include <easytorch/easytorch.h>
 *
 *     et_generator *g = et_generator_new(0);
 *     et_module *net = et_sequential_new();
 *     et_sequential_append(net, et_linear_new(1, 16, true, g));
 *     et_sequential_append(net, et_tanh_new());
 *     et_sequential_append(net, et_linear_new(16, 1, true, g));
 *
 *     et_tensor *params[8]; int n = et_module_num_params(net);
 *     for (int i = 0; i < n; i++) params[i] = et_module_param(net, i);
 *     et_sgd_opts so = ET_SGD_DEFAULTS; so.lr = 0.01; so.momentum = 0.9;
 *     et_optim *opt = et_sgd_new(params, n, so);
 *
 *     for (int step = 0; step < 1000; step++) {
 *         et_pool_begin();                       // every tensor made below...
 *         et_optim_zero_grad(opt);
 *         et_tensor *y = et_module_forward(net, x);
 *         et_tensor *loss = et_mse_loss(y, target, ET_REDUCTION_MEAN);
 *         et_backward(loss, NULL);
 *         et_optim_step(opt);
 *         et_pool_end();                         // ...is released here
 *     }
 *
 * Modules: tensor.h (tensors, ownership, pools, generator), ops.h
 * (differentiable ops), conv.h (convolution, pooling, padding),
 * functional.h (layer ops: normalisation, embeddings), autograd.h
 * (backward), nn.h (layers), loss.h, optim.h (optimizers, schedulers),
 * serialize.h (safetensors, state dicts, training checkpoints), error.h.  Design notes: docs/design.md.
 */
#ifndef EASYTORCH_H
#define EASYTORCH_H

#include "easytorch/error.h"
#include "easytorch/tensor.h"
#include "easytorch/ops.h"
#include "easytorch/conv.h"
#include "easytorch/functional.h"
#include "easytorch/autograd.h"
#include "easytorch/nn.h"
#include "easytorch/nn_attention.h"
#include "easytorch/nn_graph.h"
#include "easytorch/loss.h"
#include "easytorch/optim.h"
#include "easytorch/serialize.h"

#define EASYTORCH_VERSION "0.1.0"

#endif
