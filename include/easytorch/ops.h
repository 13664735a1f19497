/*
 * ops.h - differentiable tensor operations.
 *
 * Every op returns a NEW reference (see tensor.h OWNERSHIP) or NULL with the
 * reason in et_errmsg().  When grad mode is on and an input requires grad,
 * the result records the op so et_backward() can differentiate it.
 * Binary ops broadcast as NumPy/PyTorch do.  Inputs may be non-contiguous.
 * `dim` arguments accept negative values (counted from the end).
 */
#ifndef EASYTORCH_OPS_H
#define EASYTORCH_OPS_H

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise binary, broadcasting ---- */
et_tensor *et_add(et_tensor *a, et_tensor *b);
et_tensor *et_sub(et_tensor *a, et_tensor *b);
et_tensor *et_mul(et_tensor *a, et_tensor *b);
et_tensor *et_div(et_tensor *a, et_tensor *b);
et_tensor *et_pow(et_tensor *a, et_tensor *exponent);   /* tensor ^ tensor */
et_tensor *et_maximum(et_tensor *a, et_tensor *b);      /* grad split evenly on ties, as PyTorch */
et_tensor *et_minimum(et_tensor *a, et_tensor *b);

/* ---- with a scalar on either side ---- */
et_tensor *et_add_scalar(et_tensor *a, float s);        /* a + s */
et_tensor *et_sub_scalar(et_tensor *a, float s);        /* a - s */
et_tensor *et_rsub_scalar(float s, et_tensor *a);       /* s - a */
et_tensor *et_mul_scalar(et_tensor *a, float s);        /* a * s */
et_tensor *et_div_scalar(et_tensor *a, float s);        /* a / s */
et_tensor *et_rdiv_scalar(float s, et_tensor *a);       /* s / a */
et_tensor *et_pow_scalar(et_tensor *a, float exponent); /* a ^ e */
et_tensor *et_rpow_scalar(float base, et_tensor *a);    /* base ^ a */

/* ---- elementwise unary ---- */
et_tensor *et_neg(et_tensor *a);
et_tensor *et_exp(et_tensor *a);
et_tensor *et_log(et_tensor *a);
et_tensor *et_sqrt(et_tensor *a);
et_tensor *et_abs(et_tensor *a);         /* subgradient 0 at 0 */
et_tensor *et_tanh(et_tensor *a);
et_tensor *et_sigmoid(et_tensor *a);
et_tensor *et_relu(et_tensor *a);        /* gradient 0 at 0 */
et_tensor *et_leaky_relu(et_tensor *a, float negative_slope);
et_tensor *et_gelu(et_tensor *a, bool tanh_approximation); /* false: exact erf form */
/* Clamp to [min, max]; pass -INFINITY / INFINITY for no bound. Gradient
 * passes where min <= x <= max, as PyTorch.  A NaN bound gives NaN
 * everywhere when the other bound is given, and leaves the values when it
 * is the only bound (torch 1.13's clamp vs clamp_min/clamp_max); the
 * gradient is 0 then. */
et_tensor *et_clamp(et_tensor *a, float min, float max);

/* More elementwise math (ops_unary.c).  sign is 0 at 0 and at NaN, as torch;
 * sign, floor, ceil and round (half to even) have gradient 0. */
et_tensor *et_sign(et_tensor *a);
et_tensor *et_floor(et_tensor *a);
et_tensor *et_ceil(et_tensor *a);
et_tensor *et_round(et_tensor *a);
et_tensor *et_reciprocal(et_tensor *a);
et_tensor *et_rsqrt(et_tensor *a);
et_tensor *et_log1p(et_tensor *a);
et_tensor *et_expm1(et_tensor *a);
et_tensor *et_sin(et_tensor *a);
et_tensor *et_cos(et_tensor *a);
et_tensor *et_erf(et_tensor *a);
/* Activations of torch.nn.functional (torch's defaults in brackets):
 * softplus(beta [1], threshold [20]) = x where x*beta > threshold, else
 * log1p(exp(beta x)) / beta; elu(alpha [1]); silu = x sigmoid(x);
 * mish = x tanh(softplus(x)); hardtanh(min_val [-1], max_val [1]) clamps, with
 * gradient 0 at and beyond the bounds (min_val > max_val is ET_ERR_ARG). */
et_tensor *et_softplus(et_tensor *a, float beta, float threshold);
et_tensor *et_elu(et_tensor *a, float alpha);
et_tensor *et_silu(et_tensor *a);
et_tensor *et_mish(et_tensor *a);
et_tensor *et_hardtanh(et_tensor *a, float min_val, float max_val);
/* Elementwise binary cross entropy, torch.nn.functional.binary_cross_entropy
 * with reduction "none": -(y log x + (1 - y) log(1 - x)) with each log
 * clamped at -100; the input gradient divides by max(x (1 - x), 1e-12) and
 * the target gets (log(1 - x) - log(x)), as torch.  input in [0, 1]
 * (ET_ERR_ARG otherwise), same shape as target. */
et_tensor *et_binary_cross_entropy(et_tensor *input, et_tensor *target);

/* ---- reductions (reduce_basic.c) ---- */
et_tensor *et_sum_all(et_tensor *a);                    /* 0-d */
et_tensor *et_mean_all(et_tensor *a);                   /* 0-d */
/* Over `ndims` dims listed in `dims` (ndims 0 = all dims). */
et_tensor *et_sum(et_tensor *a, const int *dims, int ndims, bool keepdim);
et_tensor *et_mean(et_tensor *a, const int *dims, int ndims, bool keepdim);
/* Max/min over one dim.  *indices (may be NULL) receives a new reference to
 * the int64 index tensor (no grad).  Gradient goes to the selected element
 * (first occurrence on ties, as PyTorch's CPU kernel; NaN wins). */
et_tensor *et_max(et_tensor *a, int dim, bool keepdim, et_tensor **indices);
et_tensor *et_min(et_tensor *a, int dim, bool keepdim, et_tensor **indices);
/* int64 indices of the max / min along dim (first occurrence on ties). */
et_tensor *et_argmax(et_tensor *a, int dim, bool keepdim);
et_tensor *et_argmin(et_tensor *a, int dim, bool keepdim);
et_tensor *et_max_all(et_tensor *a);
et_tensor *et_min_all(et_tensor *a);

/* More reductions (reduce.c).  `dims`/`ndims` as et_sum (ndims 0 = every dim). */
/* log(sum(exp(a))) over dims, max-subtracted; gradient g * exp(a - result). */
et_tensor *et_logsumexp(et_tensor *a, const int *dims, int ndims, bool keepdim);
/* Variance / standard deviation dividing by max(0, N - correction):
 * correction 1 is torch's unbiased=True, 0 the population variance. */
et_tensor *et_var(et_tensor *a, const int *dims, int ndims, double correction, bool keepdim);
et_tensor *et_std(et_tensor *a, const int *dims, int ndims, double correction, bool keepdim);
/* Product over one dim / over everything (0-d); exact gradients with zeros. */
et_tensor *et_prod(et_tensor *a, int dim, bool keepdim);
et_tensor *et_prod_all(et_tensor *a);
/* Cumulative sum along dim (same shape). */
et_tensor *et_cumsum(et_tensor *a, int dim);
/* Vector p-norm over dims (torch.norm / linalg.vector_norm): p = 2, 1,
 * INFINITY (max |x|), -INFINITY (min |x|), 0 (count of non-zeros; no
 * gradient, as torch) or any other p (sum |x|^p)^(1/p).  The gradient is 0
 * where the norm is 0; for +-inf it is shared by tied elements. */
et_tensor *et_norm(et_tensor *a, double p, const int *dims, int ndims, bool keepdim);
/* Max / min over several dims (values only); the gradient is shared evenly
 * by the elements equal to the result, as torch.amax. */
et_tensor *et_amax(et_tensor *a, const int *dims, int ndims, bool keepdim);
et_tensor *et_amin(et_tensor *a, const int *dims, int ndims, bool keepdim);

/* ---- softmax family (max-subtracted, stable; reduce_basic.c) ---- */
et_tensor *et_softmax(et_tensor *a, int dim);
et_tensor *et_log_softmax(et_tensor *a, int dim);

/* ---- linear algebra (own small-matrix kernels, OpenBLAS sgemm for large) ---- */
/* All of torch.matmul's forms: 1-D.1-D -> 0-d, 1-D.2-D, 2-D.1-D, 2-D.2-D,
 * and batched N-D with broadcast batch dims. */
et_tensor *et_matmul(et_tensor *a, et_tensor *b);
/* Batch-invariant mode, per thread, off by default.  While on, et_matmul
 * and the Linear layers compute every element of a product in an order
 * that depends on the inner dimension only (one sequential fused
 * multiply-add chain, or for x·Wᵀ as in Linear 16 such chains over every
 * 16th term added in a fixed tree -- the order of the default mode's
 * one-row kernel), so each row of a result has the same bits whatever batch
 * it is computed in, and on every CPU: a server may concatenate requests
 * row-wise and split the result.  Off, each shape runs on the fastest kernel (OpenBLAS for large
 * ones), whose blocking may depend on the batch size.  Costs nothing for
 * small layers, ~10% for a 64 x 1024 x 784 product on one thread (see
 * docs/performance.md).  Returns the previous setting. */
bool et_set_batch_invariant(bool on);
bool et_is_batch_invariant(void);

/* Linear weights packed for the batch-invariant many-row x·Wᵀ kernel (W
 * transposed into 16-column panels), kept between calls: a server batching
 * requests through a fixed model need not transpose its weights per batch.
 * While a cache is set on the thread (et_set_pack_cache) and batch-invariant
 * mode is on, et_linear (and the Linear modules) with 16 rows or more take
 * their weight's panels from it, packing them at first use: the same bits
 * as without it.  An entry is keyed by the weight's storage, data, shape and
 * storage version (bumped by in-place ops, et_copy_from and optimizer
 * steps), but not by writes through et_data(): the owner must pass a new
 * generation to et_pack_cache_sync whenever the weights may have been
 * written that way, before the next forward, and never write them while a
 * forward with the cache runs.
 * Costs about the packed weights' size in memory (up to max_bytes, 0: no
 * limit; beyond it weights are packed per call as without a cache).
 * Thread-safe: several threads may share a cache. */
typedef struct et_pack_cache et_pack_cache;
et_pack_cache *et_pack_cache_new(size_t max_bytes);
void et_pack_cache_free(et_pack_cache *c);
/* Drop every entry when `generation` differs from the last one given. */
void et_pack_cache_sync(et_pack_cache *c, uint64_t generation);
/* Bytes of packed weights held. */
size_t et_pack_cache_bytes(et_pack_cache *c);
/* This thread's cache (NULL: none, the default); returns the previous one. */
et_pack_cache *et_set_pack_cache(et_pack_cache *c);

/* F.linear: x [..., in] @ w[out, in]^T + b[out] (b may be NULL), one GEMM. */
et_tensor *et_linear(et_tensor *x, et_tensor *w, et_tensor *b);

/* ---- attention and dropout (attention.c) ---- */
/* F.dropout(a, p, training): in training, each element zeroed with
 * probability p (drawn from g; the default generator if NULL) and the rest
 * scaled by 1 / (1 - p); a new reference to a itself when not training or
 * p == 0.  p outside [0, 1] is ET_ERR_ARG. */
et_tensor *et_dropout(et_tensor *a, float p, bool training, et_generator *g);
/* Scaled dot-product attention over the last two dims, as torch 1.13's
 * F._scaled_dot_product_attention (torch 2's F.scaled_dot_product_attention):
 * softmax(q k^T / sqrt(E) + mask) v, then dropout on the weights.
 * q [..., L, E], k [..., S, E], v [..., S, Ev] -> [..., L, Ev]; the leading
 * dims broadcast.  attn_mask (NULL, or broadcastable to [..., L, S]):
 * float32 is added to the scores (it may require grad); int64 is torch's
 * bool mask of this function, nonzero = takes part, zero = -inf.  is_causal:
 * key j > query i masked (attn_mask must be NULL).  dropout_p: on the
 * weights, drawn from g (default generator if NULL); pass 0 in eval.  A
 * query row with every key masked gives NaN, as torch.  *attn_weights (may
 * be NULL) receives the weights [..., L, S] (after dropout), a new
 * reference that carries gradient. */
et_tensor *et_scaled_dot_product_attention(et_tensor *q, et_tensor *k, et_tensor *v,
                                           et_tensor *attn_mask, float dropout_p,
                                           bool is_causal, et_generator *g,
                                           et_tensor **attn_weights);

/* ---- shape and views (results share storage with the input) ---- */
et_tensor *et_reshape(et_tensor *a, const int64_t *shape, int ndim); /* one -1 allowed; copies if it must */
et_tensor *et_view(et_tensor *a, const int64_t *shape, int ndim);    /* error if not viewable */
et_tensor *et_transpose(et_tensor *a, int dim0, int dim1);
et_tensor *et_t(et_tensor *a);                                       /* 2-D transpose */
et_tensor *et_permute(et_tensor *a, const int *dims, int ndims);
et_tensor *et_squeeze(et_tensor *a, int dim);       /* no-op if size != 1 */
et_tensor *et_squeeze_all(et_tensor *a);
et_tensor *et_unsqueeze(et_tensor *a, int dim);
et_tensor *et_flatten(et_tensor *a, int start_dim, int end_dim);
et_tensor *et_expand(et_tensor *a, const int64_t *shape, int ndim);  /* -1 keeps a size */
/* a.select(dim, index): removes `dim`; negative index counts from the end. */
et_tensor *et_select(et_tensor *a, int dim, int64_t index);
/* a[start:end:step] along dim (Python slice semantics, clamped; step > 0). */
et_tensor *et_slice(et_tensor *a, int dim, int64_t start, int64_t end, int64_t step);
#define ET_END INT64_MAX

/* Pieces along dim as views (torch.split / split with sizes / chunk /
 * unbind): new references in out[0..count-1], returns count, or -1 + error
 * with nothing written (also when count > max_out).  out NULL: returns the
 * count only.  split: pieces of split_size, the last shorter; chunk:
 * ceil(size / chunks) each, so possibly fewer than `chunks`; unbind removes
 * dim.  Gradients flow back into the slices. */
int et_split(et_tensor *a, int64_t split_size, int dim, et_tensor **out, int max_out);
int et_split_sizes(et_tensor *a, const int64_t *sizes, int n, int dim, et_tensor **out,
                   int max_out);
int et_chunk(et_tensor *a, int chunks, int dim, et_tensor **out, int max_out);
int et_unbind(et_tensor *a, int dim, et_tensor **out, int max_out);
/* View of the diagonal of dims dim1, dim2 (offset > 0 above the main
 * diagonal), appended as the last dim, as torch.diagonal. */
et_tensor *et_diagonal(et_tensor *a, int64_t offset, int dim1, int dim2);
/* a.expand(other's shape) */
et_tensor *et_expand_as(et_tensor *a, et_tensor *other);

/* ---- copies along dims ---- */
/* Tile a (torch.repeat): n >= ndim(a) repeat counts, leading ones new dims. */
et_tensor *et_repeat(et_tensor *a, const int64_t *repeats, int n);
/* Reverse the order along each listed dim. */
et_tensor *et_flip(et_tensor *a, const int *dims, int n);
/* Shift by shifts[i] along dims[i] with wrap-around (torch.roll); with
 * n == 0 the flattened tensor is rolled by shifts[0]. */
et_tensor *et_roll(et_tensor *a, const int64_t *shifts, const int *dims, int n);
/* Lower / upper triangle of the last two dims (elements with j - i <=
 * diagonal / >= diagonal kept, the rest 0), batched over leading dims. */
et_tensor *et_tril(et_tensor *a, int64_t diagonal);
et_tensor *et_triu(et_tensor *a, int64_t diagonal);
/* Sorted along dim (ascending unless descending), always stable (equal
 * elements keep their order: torch's stable=True); NaN sorts as the largest
 * value.  *indices (may be NULL) gets the int64 positions; the gradient
 * goes back to them. */
et_tensor *et_sort(et_tensor *a, int dim, bool descending, et_tensor **indices);
et_tensor *et_argsort(et_tensor *a, int dim, bool descending);     /* int64 */
/* The k largest (or smallest) along dim, sorted, with int64 *indices. */
et_tensor *et_topk(et_tensor *a, int64_t k, int dim, bool largest, bool sorted,
                   et_tensor **indices);

et_tensor *et_cat(et_tensor *const *ts, int n, int dim);
et_tensor *et_stack(et_tensor *const *ts, int n, int dim);
/* Rows/slices picked by a 1-D index tensor (integral float values). */
et_tensor *et_index_select(et_tensor *a, int dim, et_tensor *index);
/* torch.gather: out[i][j] = a[i][index[i][j]] for dim 1, etc. */
et_tensor *et_gather(et_tensor *a, int dim, et_tensor *index);

/* Out-of-place scatters with an int64 index of a's number of dims (torch
 * 1.13's rules: index no larger than src, nor than a outside dim):
 * scatter writes src[i][j] at out[i][index[i][j]] (dim 1; duplicate targets:
 * one of the values), scatter_value writes `value`, scatter_add adds.
 * index_add adds alpha * source[.., i, ..] at out[.., index[i], ..] for a
 * 1-D index along dim.  Gradients: a gets g (zeroed where scatter
 * overwrote), src/source the gathered g (times alpha). */
et_tensor *et_scatter(et_tensor *a, int dim, et_tensor *index, et_tensor *src);
et_tensor *et_scatter_value(et_tensor *a, int dim, et_tensor *index, float value);
et_tensor *et_scatter_add(et_tensor *a, int dim, et_tensor *index, et_tensor *src);
et_tensor *et_index_add(et_tensor *a, int dim, et_tensor *index, et_tensor *source, float alpha);

/* ---- linear algebra in index notation ---- */
/* torch.einsum: "ij,jk->ik" (matmul), "bij,bjk->bik", "i,j->ij" (outer),
 * "i,i->" (dot), "ij->ji", "ij->j", "ii->i" (diagonal), "ii" (trace),
 * "...ij,...jk->...ik", implicit outputs ("ij,jk"), any number of operands
 * (contracted left to right).  Size-1 dims broadcast.  The result is
 * differentiable through the ops it is made of. */
et_tensor *et_einsum(const char *equation, et_tensor *const *operands, int n);

/* ---- comparisons and selection (results carry no gradient) ---- */
et_tensor *et_eq(et_tensor *a, et_tensor *b);   /* 1.0 where true, else 0.0 */
et_tensor *et_ne(et_tensor *a, et_tensor *b);
et_tensor *et_lt(et_tensor *a, et_tensor *b);
et_tensor *et_le(et_tensor *a, et_tensor *b);
et_tensor *et_gt(et_tensor *a, et_tensor *b);
et_tensor *et_ge(et_tensor *a, et_tensor *b);
et_tensor *et_gt_scalar(et_tensor *a, float s);
et_tensor *et_lt_scalar(et_tensor *a, float s);
/* cond != 0 ? a : b, broadcasting all three; gradient flows to a and b only. */
et_tensor *et_where(et_tensor *cond, et_tensor *a, et_tensor *b);
/* Predicates and logic (1.0 / 0.0, nonzero is true; broadcasting; no gradient). */
et_tensor *et_isnan(et_tensor *a);
et_tensor *et_isfinite(et_tensor *a);
et_tensor *et_logical_and(et_tensor *a, et_tensor *b);
et_tensor *et_logical_or(et_tensor *a, et_tensor *b);
et_tensor *et_logical_not(et_tensor *a);
/* mask != 0 ? value : a.  a and mask broadcast (the result has their
 * broadcast shape, as torch.masked_fill); the gradient reaches a where the
 * mask is 0. */
et_tensor *et_masked_fill(et_tensor *a, et_tensor *mask, float value);

/* ---- in place, never recorded (for optimizers; error if t is a non-leaf
 * requiring grad while grad mode is on) ---- */
et_status et_fill_(et_tensor *t, float value);
et_status et_copy_(et_tensor *dst, et_tensor *src);  /* src broadcasts to dst */
/* In-place arithmetic through any strides (torch's add_, mul_, clamp_); the
 * operand broadcasts to t's shape (ET_ERR_SHAPE otherwise, t unchanged).  With
 * grad mode on, t must not require grad (a leaf that does is torch's error)
 * and neither may the operand: in-place ops are never recorded. */
et_status et_add_(et_tensor *t, et_tensor *other, float alpha);   /* t += alpha * other */
et_status et_mul_(et_tensor *t, et_tensor *other);
et_status et_add_scalar_(et_tensor *t, float s);
et_status et_mul_scalar_(et_tensor *t, float s);
et_status et_clamp_(et_tensor *t, float min, float max);          /* as et_clamp */

#ifdef __cplusplus
}
#endif
#endif
