/*
 * core_internal.h - tensor layout, graph nodes and kernels shared by the
 * files of src/core.  Never installed.
 *
 * Conventions inside the core:
 *  - etc_* functions return a NEW reference that is NOT registered with the
 *    caller's pool; public et_* wrappers pass it through etc_pooled().
 *  - etc_* ops record a graph node when grad mode is on, exactly like the
 *    public ones.  Backward functions run with grad mode off, so calling
 *    etc_* ops from them never records anything.
 */
#ifndef EASYTORCH_CORE_INTERNAL_H
#define EASYTORCH_CORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "easytorch/autograd.h"
#include "easytorch/error.h"
#include "easytorch/ops.h"
#include "easytorch/functional.h"
#include "easytorch/tensor.h"

/* ---- op enum (one entry per differentiable op; see the table in autograd.c) ---- */
typedef enum etc_op {
    ETC_OP_NONE = 0,
    ETC_OP_ADD, ETC_OP_SUB, ETC_OP_MUL, ETC_OP_DIV, ETC_OP_POW,
    ETC_OP_MAXIMUM, ETC_OP_MINIMUM,
    ETC_OP_ADD_SCALAR, ETC_OP_SUB_SCALAR, ETC_OP_RSUB_SCALAR, ETC_OP_MUL_SCALAR,
    ETC_OP_DIV_SCALAR, ETC_OP_RDIV_SCALAR, ETC_OP_POW_SCALAR, ETC_OP_RPOW_SCALAR,
    ETC_OP_NEG, ETC_OP_EXP, ETC_OP_LOG, ETC_OP_SQRT, ETC_OP_ABS, ETC_OP_TANH,
    ETC_OP_SIGMOID, ETC_OP_RELU, ETC_OP_LEAKY_RELU, ETC_OP_GELU, ETC_OP_CLAMP,
    ETC_OP_SUM_ALL, ETC_OP_SUM, ETC_OP_MEAN_ALL, ETC_OP_MEAN,
    ETC_OP_MAX, ETC_OP_MIN, ETC_OP_MAX_ALL, ETC_OP_MIN_ALL,
    ETC_OP_SOFTMAX, ETC_OP_LOG_SOFTMAX,
    ETC_OP_DOT, ETC_OP_MV, ETC_OP_MM, ETC_OP_MATMUL,
    ETC_OP_VIEW, ETC_OP_RESHAPE, ETC_OP_TRANSPOSE, ETC_OP_T, ETC_OP_PERMUTE,
    ETC_OP_SQUEEZE, ETC_OP_SQUEEZE_ALL, ETC_OP_UNSQUEEZE, ETC_OP_EXPAND,
    ETC_OP_SELECT, ETC_OP_SLICE, ETC_OP_CAT, ETC_OP_STACK,
    ETC_OP_INDEX_SELECT, ETC_OP_GATHER, ETC_OP_WHERE, ETC_OP_CLONE, ETC_OP_LINEAR,
    /* ops_unary.c */
    ETC_OP_SIGN, ETC_OP_FLOOR, ETC_OP_CEIL, ETC_OP_ROUND, ETC_OP_RECIPROCAL, ETC_OP_RSQRT,
    ETC_OP_LOG1P, ETC_OP_EXPM1, ETC_OP_SIN, ETC_OP_COS, ETC_OP_ERF, ETC_OP_SOFTPLUS,
    ETC_OP_ELU, ETC_OP_SILU, ETC_OP_MISH, ETC_OP_HARDTANH, ETC_OP_MASKED_FILL, ETC_OP_BCE,
    ETC_OP_CONV, ETC_OP_CONV_TRANSPOSE,                 /* conv.c */
    /* layer ops (norm.c, embedding.c) */
    ETC_OP_BATCH_NORM, ETC_OP_LAYER_NORM, ETC_OP_GROUP_NORM, ETC_OP_EMBEDDING,
    ETC_OP_EMBEDDING_BAG,
    ETC_OP_MAX_POOL, ETC_OP_AVG_POOL, ETC_OP_ADAPTIVE_AVG_POOL, ETC_OP_ADAPTIVE_MAX_POOL, /* pool.c */
    ETC_OP_PAD,                                         /* pad.c */
    ETC_OP_UNFOLD, ETC_OP_FOLD,                         /* conv_im2col.c */
    /* reduce.c */
    ETC_OP_LOGSUMEXP, ETC_OP_VAR, ETC_OP_STD, ETC_OP_PROD_ALL, ETC_OP_PROD, ETC_OP_CUMSUM,
    ETC_OP_NORM, ETC_OP_AMAX, ETC_OP_AMIN,
    /* sort.c */
    ETC_OP_SORT, ETC_OP_TOPK,
    /* shape_more.c */
    ETC_OP_SPLIT, ETC_OP_SPLIT_WITH_SIZES, ETC_OP_UNBIND, ETC_OP_DIAGONAL, ETC_OP_REPEAT,
    ETC_OP_ROLL, ETC_OP_FLIP, ETC_OP_TRIL, ETC_OP_TRIU,
    /* index.c */
    ETC_OP_SCATTER, ETC_OP_SCATTER_VALUE, ETC_OP_SCATTER_ADD, ETC_OP_INDEX_ADD,
    /* linear.c: Linear fused with the activation after it */
    ETC_OP_LINEAR_RELU, ETC_OP_LINEAR_TANH, ETC_OP_LINEAR_SIGMOID,
    ETC_OP_SDPA,                                        /* sdpa.c */
    ETC_OP_CROSS_ENTROPY,                               /* cross_entropy.c */
    ETC_OP_COUNT
} etc_op;

typedef struct et_storage {
    atomic_long refcount;
    int64_t size;            /* capacity in floats */
    float *data;             /* points into `inline_data`, or external memory */
    uint32_t version;        /* bumped by every in-place write (fill_, copy_) */
    void *block;             /* small tensors: the one malloc'ed block holding
                                the creating tensor and this storage (freed
                                with the storage), else NULL */
    struct etc_zrec *zrec;   /* which rows may be nonzero (zero_rows.c), or NULL */
    et_release_fn release;   /* external storage (et_tensor_from_external): `data`
                                is the caller's memory, release(release_arg) runs
                                when the last reference goes; NULL otherwise */
    void *release_arg;
    float inline_data[];
} et_storage;

/* Computes the gradient of each input of `out` from `g` (the gradient of
 * out).  gin[i] is NULL on entry; the function stores a new reference for
 * every input that requires grad.  Runs with grad mode off.  Returns false
 * (error set) on failure. */
typedef bool (*etc_backward_fn)(et_tensor *out, et_tensor *g, et_tensor **gin);

/* Which saved values an op's backward reads (checked against in-place
 * modification, like PyTorch's version counters). */
enum { R_IN0 = 1, R_IN1 = 2, R_OUT = 8 };

typedef struct etc_op_info {
    const char *name;        /* PyTorch's grad_fn name */
    etc_backward_fn backward;
    unsigned reads;          /* R_IN0 | R_IN1 | R_OUT */
} etc_op_info;

extern const etc_op_info etc_ops[ETC_OP_COUNT];

#define ETC_INLINE_INPUTS 3

/* ETC_ISA_CLONES("default", "avx2"): build a function once per ISA, picked at
 * load time (gcc's target_clones, an ifunc).  Not under clang or the
 * sanitizers: the ifunc resolver runs during relocation, before the
 * ASan/TSan runtime is up, and crashes when it is instrumented (the TSan
 * daemon died with SIGSEGV in max2x2_row's resolver before main). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define ETC_ISA_CLONES(...) __attribute__((target_clones(__VA_ARGS__)))
#else
#define ETC_ISA_CLONES(...)
#endif

/* GNU vector types for the cloned loops: 16 and 8 floats, one zmm, two ymm
 * or four xmm in each clone, loaded and stored unaligned through memcpy.
 * Locals only, never the argument or result of a function that is not
 * inlined (the ABI would differ between clones). */
typedef float etc_vf16 __attribute__((vector_size(16 * sizeof(float))));
typedef float etc_vf8 __attribute__((vector_size(8 * sizeof(float))));
#define ETC_VLD(v, p) memcpy(&(v), (p), sizeof(v))
#define ETC_VST(p, v) memcpy((p), &(v), sizeof(v))

struct et_tensor {
    atomic_long refcount;
    int ndim;
    int op;                  /* etc_op; ETC_OP_NONE for leaves */
    bool requires_grad;
    bool retain_grad;
    bool contiguous;
    uint8_t dtype;           /* et_dtype; ET_FLOAT32 unless made int64 */
    int64_t numel;
    float *data;             /* storage->data + offset elements of dtype;
                                an int64 tensor's data is int64_t (etc_idata) */
    et_storage *storage;
    int64_t offset;
    int64_t shape[ET_MAX_DIMS];
    int64_t strides[ET_MAX_DIMS];
    et_tensor *grad;
    /* graph node (non-leaves) */
    int nin;
    et_tensor **in;          /* in_inline or malloc'ed when nin > 3 */
    et_tensor *in_inline[ETC_INLINE_INPUTS];
    et_tensor *saved;        /* op specific (max indices, gather index...) */
    union {
        float f[4];
        int i[ET_MAX_DIMS + 4];
        int64_t l[4];
    } aux;
    uint32_t in_version[2];  /* storage versions of in[0], in[1] when recorded */
    uint32_t self_version;
    /* backward scratch */
    uint64_t mark;
    et_tensor *pgrad;
    uint32_t nuse;           /* edges into this node in the current backward */
};

/* ---- allocation, refcounts, pools (tensor_alloc.c) and helpers (tensor.c) ---- */
et_tensor *etc_alloc(const int64_t *shape, int ndim);          /* contiguous, uninitialised */
/* etc_alloc of any dtype (storage sized in floats: 2 per int64). */
et_tensor *etc_alloc_dtype(const int64_t *shape, int ndim, int dtype);
/* An int64 tensor's elements. */
static inline int64_t *etc_idata(const et_tensor *t) { return (int64_t *)(void *)t->data; }
/* Bytes per element of a dtype. */
static inline int etc_elsize(int dtype) { return dtype == ET_INT64 ? 8 : 4; }
/* Index `ix` at element offset `off` (float32 holding an integer, or int64)
 * checked to lie in [0, size); false + ET_ERR_INDEX naming op, dim and the
 * value otherwise ("embedding: index 7 is out of range for dim 0 of size 5"). */
bool etc_index_read(const et_tensor *ix, int64_t off, int64_t size, const char *op, int dim,
                    int64_t *out);
/* Every index of `index` (any dtype, any strides) checked by
 * etc_index_read, as a new contiguous int64 tensor of the same shape. */
et_tensor *etc_indices(const et_tensor *index, int64_t size, const char *op, int dim);
et_tensor *etc_zeros(const int64_t *shape, int ndim);
et_tensor *etc_full(const int64_t *shape, int ndim, float v);
/* New tensor sharing base's storage (a leaf with no grad). */
et_tensor *etc_view_of(et_tensor *base, const int64_t *shape, const int64_t *strides,
                       int ndim, int64_t offset);
/* With no pool open returns t unchanged; else hands t's reference to the
 * innermost pool (returns t, or NULL + releases t if the pool cannot grow). */
et_tensor *etc_pooled(et_tensor *t);
/* mask[i] = scale where a uniform draw of g (default generator if NULL) is
 * below keep, else 0, and (x non-NULL) y[i] = x[i] * mask[i] in the same
 * pass.  The draws: 16 xoshiro128++ lanes seeded by splitmix64 from two
 * 64-bit draws of g (seed = d0 ^ rotl(d1, 32) * 0x9e3779b97f4a7c15, lane l's
 * words 0..3 from splitmix outputs 2l and 2l+1, high then low halves, word 1
 * ORed with 1); element i is kept when lane i % 16's (i / 16)-th output is
 * below ceil(keep * 2^32) (random.c).  A call advances g by two draws. */
void etc_dropout_mask(et_generator *g, float *mask, int64_t n, float keep, float scale,
                      const float *x, float *y);
/* Its 16 lanes in AVX2 intrinsics (random_avx2.c; false: not built here).
 * Used where etc_gemm_isa() is "avx2"; the same bits as the loop clones. */
bool etc_dropout_lanes_avx2(uint32_t (*st)[16], float *mask, int64_t n, uint32_t thr,
                            uint32_t sc, const float *x, float *y);
/* Is a pool open on this thread? */
bool etc_pool_active(void);
/* +1 reference (t may be NULL). Inline: a graph node takes one per input. */
static inline et_tensor *etc_ref(et_tensor *t)
{
    if (t)
        atomic_fetch_add_explicit(&t->refcount, 1, memory_order_relaxed);
    return t;
}
/* A new reference to this thread's shared 0-d tensor 1.0 (backward's seed
 * of a scalar root): never exclusive, so autograd copies before writing. */
et_tensor *etc_scalar_one(void);
/* Frees a tensor whose last reference was just dropped (tensor_alloc.c). */
void etc_free_dead(et_tensor *t);
/* -1 reference (t may be NULL), freeing t and what dies with it at the last.
 * A holder of the only reference needs no atomic write: no other thread can
 * reach the object to add one (the acquire load still orders its earlier
 * writes). */
static inline void etc_release(et_tensor *t)
{
    if (t && (atomic_load_explicit(&t->refcount, memory_order_acquire) == 1 ||
              atomic_fetch_sub_explicit(&t->refcount, 1, memory_order_acq_rel) == 1))
        etc_free_dead(t);
}
bool etc_compute_contiguous(const et_tensor *t);
/* Contiguous copy, no graph. */
et_tensor *etc_clone(const et_tensor *t);
/* Contiguous tensor with t's values: t itself (+1) when already contiguous. */
et_tensor *etc_contig(et_tensor *t);
/* Start of a backward that scatters g into the input's shape (gather,
 * index_select, max/min over a dim): *zeros = zeros shaped like `in`,
 * *gc = g made contiguous.  On NOMEM returns false with both released. */
bool etc_scatter_begin(const et_tensor *in, et_tensor *g, et_tensor **zeros, et_tensor **gc);
/* dst[...] = src broadcast to dst's shape, through any strides (same dtype). */
void etc_strided_copy(et_tensor *dst, const et_tensor *src);
/* Store the node of `out` (op, inputs) if grad mode is on and any input
 * requires grad.  Returns false only on NOMEM (error set; out unchanged). */
bool etc_record(et_tensor *out, int op, et_tensor *const *ins, int nin);
/* etc_record, releasing `out` and returning NULL on failure. */
et_tensor *etc_finish(et_tensor *out, int op, et_tensor *const *ins, int nin);
/* no_grad on this thread (tensor.c; et_set_grad_enabled) */
extern _Thread_local bool etc_grad_off;
/* Grad mode on and any of the inputs requires grad: record a node. */
static inline bool etc_needs_grad(et_tensor *const *ins, int nin)
{
    if (etc_grad_off)
        return false;
    for (int i = 0; i < nin; i++)
        if (ins[i] && ins[i]->requires_grad)
            return true;
    return false;
}
bool etc_grad_mode(void);
int etc_wrap_dim(int dim, int ndim, const char *op);   /* -1 + error if bad */
/* "[3,4]" (no spaces; for error messages) */
char *etc_shape_fmt(const int64_t *shape, int ndim, char *buf, size_t cap);
int64_t etc_numel(const int64_t *shape, int ndim);
bool etc_check_shape(const int64_t *shape, int ndim, const char *op);
/* Argument check of float ops: non-NULL and float32 (ET_ERR_ARG naming
 * op otherwise: "exp: expected a float32 tensor, got int64"). */
bool etc_null_check_slow(const et_tensor *p, const char *op);
static inline bool etc_null_check(const et_tensor *p, const char *op)
{
    return (p && p->dtype == ET_FLOAT32) || etc_null_check_slow(p, op);
}
/* et_same_shape inlined: the elementwise ops and autograd ask it several
 * times per op (tiny graphs are bound by such per-op bookkeeping). */
static inline bool etc_same_shape(const et_tensor *a, const et_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}
/* Tensors created on this thread so far: a failure recorded with nothing
 * made since is the cause of a NULL argument that follows it
 * (et_set_error_after, error.c). */
extern _Thread_local unsigned long etc_made;
/* Non-NULL, any dtype (views, copies, index arguments). */
bool etc_any_check(const et_tensor *p, const char *op);

/* ---- branch-free float exp / tanh (Cephes polynomials, ~1-2 ulp) ----
 * glibc's expf/tanhf are scalar calls (tanhf ~50 ns); these inline forms
 * let the compiler vectorise the elementwise loops.  Below -87 the result
 * is computed as exp(x + 87) * exp(-87) to reach the subnormal range. */
/* Branch-free select.  With the default -ftrapping-math GCC will not
 * if-convert (so not vectorise) `c ? a : b` once it sinks float arithmetic
 * into an arm; a bit-mask select keeps every lane's work unconditional. */
static inline float etc_sel(bool c, float a, float b)
{
    union { float f; uint32_t u; } ua = {a}, ub = {b}, r;
    uint32_t m = 0u - (uint32_t)c;
    r.u = (ua.u & m) | (ub.u & ~m);
    return r.f;
}

/* exp(r) for r = x - fn ln2 (fn a whole number, |r| <= ln2 / 2): Cephes'
 * degree-5 polynomial, ln2 in two parts.  Shared by etc_expf_core and
 * etc_expf_0_40, which differ only in how they round to fn and scale by 2^n. */
static inline float etc_expf_reduced(float x, float fn)
{
    float r = x - fn * 0.693359375f - fn * -2.12194440e-4f;
    float z = r * r;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    return p * z + r + 1.0f;
}

static inline float etc_expf_core(float x) /* x in [-87.5, 88.8] */
{
    float t = x * 1.44269504088896341f;
    int n = (int)(t + etc_sel(t >= 0.0f, 0.5f, -0.5f));
    float p = etc_expf_reduced(x, (float)n);
    int n1 = n / 2, n2 = n - n1; /* 2^n as two normal factors */
    union { uint32_t u; float f; } s1, s2;
    s1.u = (uint32_t)(n1 + 127) << 23;
    s2.u = (uint32_t)(n2 + 127) << 23;
    return p * s1.f * s2.f;
}

static inline float etc_expf(float x)
{
    const float hi = 88.72283f, lo = -104.0f;
    bool tail = x < -87.0f;
    /* NaN lanes compute on 0 (float->int of NaN is undefined) and are put back at the end */
    float xl = etc_sel(x < lo, lo, etc_sel(x != x, 0.0f, x));
    float xh = etc_sel(xl > hi, hi, xl);
    float xs = xh + etc_sel(tail, 87.0f, 0.0f);
    /* scale by exp(-87) only in the tail: a subnormal product in every
     * lane would cost ~100 cycles each */
    float y = etc_expf_core(xs) * etc_sel(tail, 1.6458115e-38f, 1.0f);
    y = etc_sel(x > hi, INFINITY, y);
    y = etc_sel(x < lo, 0.0f, y);
    return etc_sel(x != x, x, y);
}

/* etc_expf(x) for x in [0, 40] (tanh's argument): no tail, overflow or NaN
 * lanes to handle and 2^n as one normal factor -- the same bits as
 * etc_expf there (its two power-of-two factors multiply exactly), a
 * third fewer operations in tanh's vector loop. */
static inline float etc_expf_0_40(float x)
{
    float t = x * 1.44269504088896341f;
    int n = (int)(t + 0.5f);
    float p = etc_expf_reduced(x, (float)n);
    union { uint32_t u; float f; } s;
    s.u = (uint32_t)(n + 127) << 23;
    return p * s.f;
}

/* tanh(x) = sign(x) * em / (em + 2), em = expm1(2|x|) from exp's reduced
 * polynomial: 2^n (r + r^2 q(r)) + (2^n - 1), which keeps its relative
 * accuracy near 0 (n = 0: em = r + r^2 q(r)), so one path serves every
 * argument -- no separate small-argument polynomial and select, a quarter
 * fewer operations per lane than exp-based 1 - 2 / (e + 1) beside one.
 * Within 2.4 ulp of PyTorch's tanhf (SLEEF) over a dense sweep of [0, 9]
 * (docs/performance.md, the char model). */
static inline float etc_tanhf(float x)
{
    float ax = fabsf(x);
    /* keeps the exponent in range (saturated below anyway) and NaN out (put back below) */
    float ac = etc_sel(ax > 9.0f, 9.0f, etc_sel(ax != ax, 0.0f, ax));
    float y2 = 2.0f * ac;
    int n = (int)(y2 * 1.44269504088896341f + 0.5f);
    float fn = (float)n;
    float r = y2 - fn * 0.693359375f - fn * -2.12194440e-4f;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    union { uint32_t u; float f; } s;
    s.u = (uint32_t)(n + 127) << 23;
    float em = (p * (r * r) + r) * s.f + (s.f - 1.0f);
    float y = copysignf(em / (em + 2.0f), x);
    /* saturate where PyTorch's (SLEEF) tanhf does, so 1 - y*y is exactly 0 there */
    y = etc_sel(ax > 8.664339742f, copysignf(1.0f, x), y);
    return etc_sel(x != x, x, y);
}

/* Built for baseline x86-64, AVX2 and AVX-512, picked at load time, as
 * kernels.c's row(): gcc only, and not under sanitizers (the ifunc resolver
 * runs during relocation, before their runtimes are up).  No FMA in the
 * clones (ISO C: no contraction): every clone gives the same bits. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define ETC_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define ETC_CLONES
#endif

/* ---- elementwise kernels (kernels.c) ---- */
typedef enum etc_ew_op {
    EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_POW, EW_MAXIMUM, EW_MINIMUM,
    EW_EQ, EW_NE, EW_LT, EW_LE, EW_GT, EW_GE,
    EW_ADDS, EW_MULS, EW_DIVS, EW_RSUBS, EW_RDIVS, EW_POWS, EW_RPOWS, EW_GTS, EW_LTS,
    EW_NEG, EW_EXP, EW_LOG, EW_SQRT, EW_ABS, EW_TANH, EW_SIGMOID, EW_RELU,
    EW_LEAKY, EW_GELU, EW_GELU_TANH, EW_CLAMP, EW_COPY,
    /* backward helpers: a = upstream gradient, b (and c) = saved values */
    EW_TANH_B, EW_SIGMOID_B, EW_RELU_B, EW_LEAKY_B, EW_ABS_B, EW_SQRT_B,
    EW_GELU_B, EW_GELU_TANH_B, EW_CLAMP_B, EW_POWS_B, EW_RPOWS_B,
    EW_POW_BA, EW_POW_BB, EW_DIV_BB, EW_MAX_B, EW_MIN_B, EW_RDIVS_B,
    EW_WHERE, EW_MASK, EW_MASKN,
    /* ops_unary.c */
    EW_SIGN, EW_FLOOR, EW_CEIL, EW_ROUND, EW_RECIP, EW_RSQRT, EW_LOG1P, EW_EXPM1, EW_SIN,
    EW_COS, EW_ERF, EW_SOFTPLUS, EW_ELU, EW_SILU, EW_MISH, EW_HARDTANH, EW_ISNAN, EW_ISFINITE,
    EW_LAND, EW_LOR, EW_LNOT, EW_MASKED_FILL, EW_BCE,
    EW_RECIP_B, EW_RSQRT_B, EW_LOG1P_B, EW_EXPM1_B, EW_SIN_B, EW_COS_B, EW_ERF_B,
    EW_SOFTPLUS_B, EW_ELU_B, EW_SILU_B, EW_MISH_B, EW_HARDTANH_B, EW_BCE_BX, EW_BCE_BY,
    /* reduce.c */
    EW_NORM_B, EW_NORM_INF_B,
    EW_COUNT
} etc_ew_op;

/* Elementwise op over 1..3 broadcast inputs into a new contiguous tensor
 * (no graph).  `name` is used in the broadcast error message. */
et_tensor *etc_ew(int op, const char *name, et_tensor *const *in, int nin, float p0, float p1);
et_tensor *etc_ew1(int op, et_tensor *a, float p0, float p1);
et_tensor *etc_ew2(int op, const char *name, et_tensor *a, et_tensor *b, float p0);
int etc_broadcast_shape(const int64_t *a, int na, const int64_t *b, int nb, int64_t *out);
/* Sum x down to `shape` (which broadcasts to x's shape), times `scale`;
 * accumulates in double.  New contiguous tensor of that shape. */
et_tensor *etc_sum_to(const et_tensor *x, const int64_t *shape, int ndim, double scale);
/* The sum of x[0..n) in double as etc_sum_to adds a contiguous tensor to
 * one value (four interleaved partial sums). */
double etc_sum_contig(const float *x, int64_t n);
/* Gradient g summed back to the shape of `like` (ref of g if same shape). */
et_tensor *etc_unbroadcast(et_tensor *g, const et_tensor *like);
/* dst += src (src broadcasts to dst), in place through strides. */
void etc_add_into(et_tensor *dst, const et_tensor *src);
/* o[i] = op(x[i]) for i < n, for one-input ops; o may equal x (in place). */
void etc_ew_row(int op, float *o, const float *x, int64_t n);

/* ---- autograd (autograd.c) ---- */
/* In a backward function: the .grad of out->in[i] when the function may
 * add input i's gradient into it directly instead of returning it in
 * gin[i] (then it leaves gin[i] NULL).  Offered for a leaf that requires
 * grad, already has a contiguous float .grad of its shape, and is used
 * once in the graph being differentiated, so the result is autograd's own
 * accumulation (.grad + g): the same bits through our kernels (c + dot),
 * OpenBLAS's beta = 1 rounding for its large products; NULL otherwise. */
et_tensor *etc_grad_sink(const et_tensor *out, int i);

/* ---- zero records of gradients (zero_rows.c) ----
 * A storage may remember that a tensor over it is zero except some rows,
 * while its version is unchanged; zero_grad then clears only those rows. */
/* Frees the record (storage_free). */
void etc_zrec_free(et_storage *s);
/* t's elements are all zero now (just zeroed or made by etc_zeros). */
void etc_zrec_set_zero(et_tensor *t);
/* Whether t is known to be all zero. */
bool etc_zrec_is_zero(const et_tensor *t);
/* Only rows[n] (row_len elements each) of t were written since it was known
 * zero; drops the record when it cannot keep them. */
void etc_zrec_add_rows(et_tensor *t, const int64_t *rows, int64_t n, int64_t row_len);
/* The record no longer holds: t is written in a way it does not follow. */
void etc_zrec_forget(et_tensor *t);
/* zero_grad's zero_ of a gradient: only the rows the record lists when it
 * holds, else fill_(0); either way t is then known zero. */
et_status etc_zero_grad_(et_tensor *g);

/* ---- internal ops (ops.c, reduce_basic.c, shape*.c, matmul.c): graph recorded, unpooled ---- */
et_tensor *etc_add(et_tensor *a, et_tensor *b);
et_tensor *etc_sub(et_tensor *a, et_tensor *b);
et_tensor *etc_mul(et_tensor *a, et_tensor *b);
et_tensor *etc_div(et_tensor *a, et_tensor *b);
et_tensor *etc_mul_scalar(et_tensor *a, float s);
et_tensor *etc_sum(et_tensor *a, const int *dims, int ndims, bool keepdim);
et_tensor *etc_matmul(et_tensor *a, et_tensor *b);
et_tensor *etc_reshape(et_tensor *a, const int64_t *shape, int ndim);
et_tensor *etc_view(et_tensor *a, const int64_t *shape, int ndim);
et_tensor *etc_transpose(et_tensor *a, int d0, int d1);
et_tensor *etc_permute(et_tensor *a, const int *dims, int ndims);
et_tensor *etc_unsqueeze(et_tensor *a, int dim);
et_tensor *etc_squeeze(et_tensor *a, int dim);
et_tensor *etc_expand(et_tensor *a, const int64_t *shape, int ndim);
et_tensor *etc_select(et_tensor *a, int dim, int64_t index);
et_tensor *etc_slice(et_tensor *a, int dim, int64_t start, int64_t end, int64_t step);
et_tensor *etc_cat(et_tensor *const *ts, int n, int dim, int op);
et_tensor *etc_diagonal(et_tensor *a, int64_t offset, int dim1, int dim2);
/* Fused affine map y = x @ w^T + b (torch.nn.functional.linear / addmm):
 * x [..., in], w [out, in], b [out] or NULL -> y [..., out], and the same
 * followed by an activation (linear.c): one etc_gemm with the bias (and
 * ReLU) in its epilogue; backward: dx = g w, dw = g^T x, db = column sums
 * of g, written into the inputs' .grad directly when autograd offers it
 * (etc_grad_sink).  Returns a new reference NOT handed to the pool (wrap it
 * in etc_pooled()), or NULL with the shapes named in et_errmsg(). */
enum { ETC_ACT_NONE, ETC_ACT_RELU, ETC_ACT_TANH, ETC_ACT_SIGMOID };
et_tensor *etc_linear(et_tensor *x, et_tensor *w, et_tensor *b);
et_tensor *etc_linear_act(et_tensor *x, et_tensor *w, et_tensor *b, int act);
/* Scaled dot-product attention as one op (sdpa.c): softmax(q kᵀ / sqrt(E)
 * + mask), dropout p (0 <= p < 1) with g, times v; no per-head tensors,
 * one GEMM per (batch, head) product through etc_gemm, the probabilities
 * (and the dropout mask) kept for the backward.  heads == 0: q [..., L, E],
 * k [..., S, E], v [..., S, Ev] (batch dims broadcast), mask (float,
 * additive) broadcasting to [batch..., L, S] or NULL; result [batch..., L,
 * Ev] contiguous.  heads == H > 0: q [N, L, H*hd], k [N, S, H*hd], v [N, S,
 * H*hdv], any strides, head h the columns h*hd.. of each row (torch's
 * view(.., H, hd)), mask broadcasting to [N*H, L, S]; result [N, L, H*hdv]
 * contiguous (the heads merged back).  Shapes are the caller's to check;
 * NULL + error only on NOMEM or sizes that do not fit int. */
et_tensor *etc_sdpa(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *mask, int heads,
                    float dropout_p, et_generator *g);
/* One contiguous row of softmax / log_softmax, and its backward
 * (reduce_basic.c; p != q, r distinct from y and dy). */
void etc_softmax_row(const float *restrict p, float *restrict q, int64_t D, bool logsm);
void etc_softmax_back_row(const float *restrict y, const float *restrict dy, float *restrict r,
                          int64_t D, bool logsm);
/* Raw batched matmul of >=2-D operands (no graph). */
et_tensor *etc_mm_raw(et_tensor *a, et_tensor *b);

/* Elementwise op `ew` of a (parameters p0, p1, kept in aux.f[0..1] for the
 * backward), recorded as `op` (ops.c). */
et_tensor *etc_unary(int ew, int op, const char *name, et_tensor *a, float p0, float p1);
/* Parse a reduction's dims list into a bit mask over a's dims (all dims when
 * ndims is 0); false + error on a bad or repeated dim (reduce_basic.c). */
bool etc_reduce_mask(const et_tensor *a, const int *dims, int ndims, const char *op,
                     unsigned *mask);
/* View of g (the result of reducing `in` over `mask`, keepdim as given)
 * broadcast back to in's shape with stride 0 on the reduced dims (reduce_basic.c). */
et_tensor *etc_expand_back(et_tensor *g, const et_tensor *in, unsigned mask, bool keepdim);
/* gin[i] = `full` summed back to input i's shape; takes ownership of full (ops.c). */
bool etc_put_grad(et_tensor *out, int i, et_tensor **gin, et_tensor *full);

/* ---- GEMM (gemm.c): C = A·B with an epilogue, our kernels or OpenBLAS ---- */
enum { ETC_GEMM_NONE = 0, ETC_GEMM_RELU = 1 };
typedef struct etc_gemm_t {
    int64_t m, n, k;
    const float *a;            /* A(i,p) = a[i*ars + p*acs] */
    int64_t ars, acs;
    const float *b;            /* B(p,j) = b[p*brs + j*bcs] */
    int64_t brs, bcs;
    float *c;                  /* C(i,j) = c[i*ldc + j] */
    int64_t ldc;
    bool accumulate;           /* C(i,j) = C(i,j) + A·B, else C = A·B */
    const float *bias;         /* then + bias[j] (contiguous), or NULL */
    int act;                   /* then ETC_GEMM_RELU, or ETC_GEMM_NONE */
    const float *bpack;        /* invariant x·Wᵀ only: all of B already packed
                                  for gemm_inv_many.c (gemm_inv_pack.c's cache),
                                  or NULL */
} etc_gemm_t;

/* C[i, j] (+)= v, + bias[j], ReLU (NaN kept): one element's epilogue, in the
 * order every kernel applies it (the scalar stores of gemm.c, gemm_kernel.h
 * and gemm_n1_ks.c) */
static inline void etc_gemm_store1(const etc_gemm_t *g, int64_t i, int64_t j, float v)
{
    float *cp = g->c + i * g->ldc + j;
    if (g->accumulate)
        v = *cp + v;
    if (g->bias)
        v = v + g->bias[j];
    if (g->act == ETC_GEMM_RELU)
        v = v > 0.0f ? v : (v != v ? v : 0.0f);
    *cp = v;
}
/* Batch-invariant: each element of C is summed in an order that depends on
 * k only (a sequential fused multiply-add chain; for x·Wᵀ, acs == brs == 1
 * and k >= 16, the dot kernel's 16 chains and tree: gemm_inv.h), so a row's
 * bits do not depend on m (nor on the CPU). */
#define ETC_GEMM_INVARIANT 1u
/* Our kernels even where OpenBLAS would be chosen (measurements, tests). */
#define ETC_GEMM_NO_BLAS 2u
/* OpenBLAS whenever the layout allows (measurements, tests). */
#define ETC_GEMM_BLAS 4u
/* The tile kernel even where the dot kernel would be chosen (measurements). */
#define ETC_GEMM_TILE 8u
/* x·Wᵀ of 1-4 rows, or invariant of any m, on AVX2 or AVX-512: the ISA's
 * dot kernel (gemm_kernel.h, its 4x4 tile) where gemm_inv_few.c /
 * gemm_inv_many.c would run, which compute the same bits (tests,
 * measurements). */
#define ETC_GEMM_DOT4 16u
/* m, n, k must fit in int (callers check); any strides. */
void etc_gemm(const etc_gemm_t *g, unsigned flags);
/* The flags of this thread's mode (ETC_GEMM_INVARIANT under
 * et_set_batch_invariant(true)): what ops pass to etc_gemm. */
unsigned etc_gemm_mode(void);
/* Would etc_gemm(g, flags) hand this call to OpenBLAS? */
bool etc_gemm_uses_blas(const etc_gemm_t *g, unsigned flags);
/* "avx512", "avx2" or "portable": the kernels this process uses. */
const char *etc_gemm_isa(void);
/* the CPU has AVX-512F (false where the x86 kernels are not built; gemm.c) */
bool etc_cpu_avx512f(void);
/* Use the kernels of that instruction set from now on (tests); -1 when the
 * name is unknown or the CPU lacks it. */
int etc_gemm_set_isa(const char *name);

/* ---- backward functions (one per op) ---- */
#define ETC_BW(name) bool etc_bw_##name(et_tensor *out, et_tensor *g, et_tensor **gin)
ETC_BW(add); ETC_BW(sub); ETC_BW(mul); ETC_BW(div); ETC_BW(pow);
ETC_BW(maximum); ETC_BW(minimum);
ETC_BW(pass); ETC_BW(neg_pass); ETC_BW(mul_scalar); ETC_BW(rdiv_scalar);
ETC_BW(pow_scalar); ETC_BW(rpow_scalar);
ETC_BW(exp); ETC_BW(log); ETC_BW(sqrt); ETC_BW(abs); ETC_BW(tanh);
ETC_BW(sigmoid); ETC_BW(relu); ETC_BW(leaky_relu); ETC_BW(gelu); ETC_BW(clamp);
ETC_BW(sum_all); ETC_BW(sum); ETC_BW(mean_all); ETC_BW(mean);
ETC_BW(max_dim); ETC_BW(max_all);
ETC_BW(softmax); ETC_BW(log_softmax);
ETC_BW(matmul);
ETC_BW(reshape); ETC_BW(transpose); ETC_BW(permute); ETC_BW(expand);
ETC_BW(select); ETC_BW(slice); ETC_BW(cat); ETC_BW(stack);
ETC_BW(index_select); ETC_BW(gather); ETC_BW(where); ETC_BW(clone); ETC_BW(linear);
ETC_BW(linear_act); ETC_BW(sdpa); ETC_BW(cross_entropy);
/* ops_unary.c */
ETC_BW(zero); ETC_BW(reciprocal); ETC_BW(rsqrt); ETC_BW(log1p); ETC_BW(expm1); ETC_BW(sin);
ETC_BW(cos); ETC_BW(erf); ETC_BW(softplus); ETC_BW(elu); ETC_BW(silu); ETC_BW(mish);
ETC_BW(hardtanh); ETC_BW(masked_fill); ETC_BW(bce);
ETC_BW(conv); ETC_BW(conv_transpose);
ETC_BW(batch_norm); ETC_BW(layer_norm); ETC_BW(group_norm); ETC_BW(embedding);
ETC_BW(embedding_bag);
ETC_BW(max_pool); ETC_BW(avg_pool); ETC_BW(adaptive_avg_pool); ETC_BW(pad);
ETC_BW(unfold); ETC_BW(fold);
/* reduce.c */
ETC_BW(logsumexp); ETC_BW(var); ETC_BW(std); ETC_BW(prod); ETC_BW(cumsum); ETC_BW(norm);
ETC_BW(amax);
/* sort.c */
ETC_BW(sort);
/* shape_more.c */
ETC_BW(diagonal); ETC_BW(repeat); ETC_BW(roll); ETC_BW(flip); ETC_BW(tri);
/* index.c */
ETC_BW(scatter); ETC_BW(index_add);

#endif
