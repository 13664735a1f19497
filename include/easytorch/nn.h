/*
 * nn.h - modules (layers) in the shape of torch.nn.
 *
 * A module is an opaque object.  Constructors return a module the caller owns
 * and frees with et_module_free() (NULL-safe), or NULL + et_errmsg().
 * et_sequential_append() takes ownership of the child.
 *
 * Parameters and buffers are named as in PyTorch's state_dict(): a
 * Sequential's child i contributes "i.weight", "i.bias" (and e.g.
 * "i.running_mean"); Linear's weight is [out, in].
 * Parameter tensors are owned by their module; accessors return borrowed
 * pointers valid while the module lives.
 */
#ifndef EASYTORCH_NN_H
#define EASYTORCH_NN_H

#include "easytorch/functional.h"
#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct et_module et_module;

/* Linear: y = x W^T + b.  Weights kaiming_uniform(a=sqrt(5)) i.e.
 * U(-1/sqrt(in), 1/sqrt(in)), bias U(-1/sqrt(in), 1/sqrt(in)), drawn from g
 * (weight first, then bias, row-major), as torch.nn.Linear.reset_parameters. */
et_module *et_linear_new(int64_t in_features, int64_t out_features, bool bias,
                         et_generator *g);
et_module *et_relu_new(void);
et_module *et_tanh_new(void);
et_module *et_sigmoid_new(void);
et_module *et_gelu_new(bool tanh_approximation);
et_module *et_softmax_new(int dim);
et_module *et_log_softmax_new(int dim);
et_module *et_leaky_relu_new(float negative_slope);
/* Dropout draws its masks from g (borrowed: must outlive the module). */
et_module *et_dropout_new(float p, et_generator *g);
et_module *et_flatten_new(int start_dim, int end_dim);   /* torch defaults 1, -1 */
et_module *et_identity_new(void);
/* More activations (torch.nn.SiLU, ELU, Mish, Softplus, Hardtanh, ReLU6;
 * torch's defaults in brackets).  ET_ERR_ARG for a non-finite alpha, a zero
 * beta, or max_val <= min_val. */
et_module *et_silu_new(void);
et_module *et_elu_new(float alpha);                        /* [1.0] */
et_module *et_mish_new(void);
et_module *et_softplus_new(float beta, float threshold);   /* [1, 20] */
et_module *et_hardtanh_new(float min_val, float max_val);  /* [-1, 1] */
et_module *et_relu6_new(void);                             /* Hardtanh(0, 6) */
/* Their configuration: alpha (ELU), beta/threshold (Softplus), min/max
 * (Hardtanh, ReLU6) into *a, *b (may be NULL); false for any other module. */
bool et_activation_params(const et_module *m, float *a, float *b);

/* ---- normalisation (torch.nn.BatchNorm1d/2d, LayerNorm, GroupNorm) ---- */
typedef struct {
    double eps;                /* 1e-5 */
    double momentum;           /* 0.1; NAN = torch's None: cumulative moving average */
    bool affine;               /* weight (ones) and bias (zeros) parameters */
    bool track_running_stats;  /* buffers running_mean (zeros), running_var (ones),
                                  num_batches_tracked (int64 0) */
} et_batch_norm_opts;
#define ET_BATCH_NORM_DEFAULTS \
    ((et_batch_norm_opts){.eps = 1e-5, .momentum = 0.1, .affine = true, \
                          .track_running_stats = true})
/* BatchNorm1d takes [N, C] or [N, C, L], BatchNorm2d [N, C, H, W].  Training
 * mode: batch statistics, running statistics updated (unbiased variance)
 * and num_batches_tracked counted; eval: running statistics (batch ones
 * when track_running_stats is false).  A failing forward changes nothing. */
et_module *et_batch_norm1d_new(int64_t num_features, et_batch_norm_opts o);
et_module *et_batch_norm2d_new(int64_t num_features, et_batch_norm_opts o);
/* torch.nn.SyncBatchNorm.convert_sync_batchnorm, with the process group a
 * reducer: every BatchNorm1d / BatchNorm2d in m (m itself and its
 * descendants) computes its training-mode statistics over the rows of every
 * participant of r (et_batch_norm_reduced; in eval mode r is never called);
 * r NULL: over its own input again.  r is borrowed: it must stay valid while
 * it is set and while a graph recorded with it may be backpropagated.
 * Returns how many modules were set; *max_features (may be NULL) the largest
 * num_features among them (0 when none): r is asked to sum at most 2 x that. */
int et_module_set_batch_norm_reducer(et_module *m, const et_reducer *r, int64_t *max_features);
/* Over the last dims (normalized_shape); weight ones, bias zeros of that shape. */
et_module *et_layer_norm_new(const int64_t *normalized_shape, int ndims, double eps,
                             bool elementwise_affine);
/* num_channels divisible by num_groups; weight [C] ones, bias [C] zeros. */
et_module *et_group_norm_new(int64_t num_groups, int64_t num_channels, double eps, bool affine);

/* ---- embeddings (torch.nn.Embedding, EmbeddingBag) ----
 * weight [num_embeddings, embedding_dim] ~ N(0, 1) from g (default
 * generator if NULL), the padding_idx row zeroed.  Inputs are int64 indices
 * (or float32 holding integers).  Options as functional.h's (offsets and
 * per_sample_weights of et_embedding_bag_opts must be NULL here: they are
 * forward arguments). */
et_module *et_embedding_new(int64_t num_embeddings, int64_t embedding_dim, et_embedding_opts o,
                            et_generator *g);
/* et_module_forward of an EmbeddingBag takes a 2-D input (each row a bag);
 * et_embedding_bag_module_forward takes torch's full forward(input, offsets,
 * per_sample_weights) (NULLs allowed).  New reference or NULL. */
et_module *et_embedding_bag_new(int64_t num_embeddings, int64_t embedding_dim,
                                et_embedding_bag_opts o, et_generator *g);
et_tensor *et_embedding_bag_module_forward(et_module *m, et_tensor *input, et_tensor *offsets,
                                           et_tensor *per_sample_weights);
et_module *et_sequential_new(void);
/* Takes ownership of child (also on failure, except ET_ERR_STATE when child
 * is already in a Sequential or encloses seq: it stays where it is).  Build a nested
 * Sequential completely before appending it: appending to a Sequential that
 * already has a parent is ET_ERR_STATE (child freed). */
et_status et_sequential_append(et_module *seq, et_module *child);

/* Frees the module, its children and its parameters; NULL is a no-op. */
void et_module_free(et_module *m);

/* Forward pass; new reference or NULL. */
et_tensor *et_module_forward(et_module *m, et_tensor *x);
/* "Linear", "ReLU", ... (torch class name). */
const char *et_module_type(const et_module *m);
/* Training mode on (true) or eval (false), recursively.  It matters to
 * Dropout (identity in eval) and BatchNorm (batch statistics and running
 * updates in training, running statistics in eval), as in torch. */
void et_module_train(et_module *m, bool mode);
bool et_module_is_training(const et_module *m);

/* Number of parameter tensors, and the i-th one's name and tensor
 * (state_dict order).  Borrowed pointers. */
int et_module_num_params(const et_module *m);
const char *et_module_param_name(const et_module *m, int i);
et_tensor *et_module_param(const et_module *m, int i);
/* Parameter by state_dict name, or NULL. */
et_tensor *et_module_param_by_name(const et_module *m, const char *name);
/* Buffers: state that is saved and loaded but never optimized
 * (BatchNorm's running_mean, running_var and int64 num_batches_tracked),
 * named like parameters.  Borrowed pointers. */
int et_module_num_buffers(const et_module *m);
const char *et_module_buffer_name(const et_module *m, int i);
et_tensor *et_module_buffer(const et_module *m, int i);
et_tensor *et_module_buffer_by_name(const et_module *m, const char *name);
/* The whole state_dict in torch's order (each module's parameters, then its
 * buffers, children in order): what et_module_state_dict saves and
 * et_module_load_state_dict expects.  Borrowed pointers. */
int et_module_num_state(const et_module *m);
const char *et_module_state_name(const et_module *m, int i);
et_tensor *et_module_state_tensor(const et_module *m, int i);
bool et_module_state_is_buffer(const et_module *m, int i);
/* Total number of scalar parameters. */
int64_t et_module_param_count(const et_module *m);
/* Set every parameter's .grad to zeros (keeps the tensors). */
void et_module_zero_grad(et_module *m);

/* Sequential children: count, and the i-th child (borrowed; NULL if out of range). */
int et_sequential_len(const et_module *seq);
et_module *et_sequential_get(const et_module *seq, int i);
/* Children [from, to) of a Sequential run on x as its forward runs them: a
 * Linear followed by ReLU, Tanh or Sigmoid (both in the range) as one fused
 * op -- the same values and gradients, one pass and graph node fewer.  For
 * callers that run a Sequential a few children at a time (easytorchd names
 * the failing layer).  NULL + ET_ERR_ARG for a bad range. */
et_tensor *et_sequential_forward_range(et_module *seq, int from, int to, et_tensor *x);

/* ---- gradient clipping (in place on .grad; returns the total norm) ---- */
/* norm_type 2.0 or INFINITY; returns NAN + error on bad args. */
double et_clip_grad_norm(et_tensor *const *params, int n, double max_norm, double norm_type);
et_status et_clip_grad_value(et_tensor *const *params, int n, double clip_value);

#ifdef __cplusplus
}
#endif

/* Convolution, pooling and padding layers, Unflatten, Dropout2d. */
#include "easytorch/nn_conv.h"

#endif
