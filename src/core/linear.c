/*
 * linear.c - torch.nn.functional.linear (addmm) and its fusion with the
 * activation that follows it: y = act(x @ wᵀ + b), act in {none, ReLU,
 * Tanh, Sigmoid}, one node in the graph instead of two.
 *
 * Forward: one etc_gemm with the bias (and ReLU) in its epilogue; Tanh and
 * Sigmoid run over the rows just written, while they are in cache.  The
 * pre-activation is not kept: the three activations' derivatives are
 * functions of their output (ReLU: y > 0, Tanh: 1 - y², Sigmoid: y(1 - y)),
 * the same formulas the unfused ops' backward uses, so the gradients are the
 * same bits as Linear followed by the activation module.
 *
 * Backward: g_pre = g ⊙ act'(y); dx = g_pre·w, dw = g_preᵀ·x, db = column
 * sums of g_pre, each written straight into the input's .grad when autograd
 * offers it as a sink (a leaf whose .grad exists and that has no other
 * consumer in this graph: etc_grad_sink), so the first accumulation after
 * zero_grad copies nothing and allocates nothing.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/gemm_inv.h"

/* The activation of a LINEAR_* op, as the elementwise forward and backward
 * kernels that the unfused op would run. */
static int act_of(int op)
{
    switch (op) {
    case ETC_OP_LINEAR_RELU: return ETC_ACT_RELU;
    case ETC_OP_LINEAR_TANH: return ETC_ACT_TANH;
    case ETC_OP_LINEAR_SIGMOID: return ETC_ACT_SIGMOID;
    default: return ETC_ACT_NONE;
    }
}

static const int act_op[] = {ETC_OP_LINEAR, ETC_OP_LINEAR_RELU, ETC_OP_LINEAR_TANH,
                             ETC_OP_LINEAR_SIGMOID};
static const int act_ew_b[] = {-1, EW_RELU_B, EW_TANH_B, EW_SIGMOID_B};
static const char *const act_name[] = {"linear", "relu", "tanh", "sigmoid"};

et_tensor *etc_linear_act(et_tensor *x, et_tensor *w, et_tensor *b, int act)
{
    if (!etc_null_check(x, "linear") || !etc_null_check(w, "linear"))
        return NULL;
    if (b && !etc_null_check(b, "linear"))
        return NULL;
    char b1[128], b2[128], b3[128];
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) {
        et_set_error(ET_ERR_SHAPE, "linear: input shape %s and weight shape %s do not align",
                     etc_shape_fmt(x->shape, x->ndim, b1, sizeof b1),
                     etc_shape_fmt(w->shape, w->ndim, b2, sizeof b2));
        return NULL;
    }
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    if (b && (b->ndim != 1 || b->shape[0] != out_f)) {
        et_set_error(ET_ERR_SHAPE, "linear: bias shape %s does not match weight shape %s "
                     "(input %s)", etc_shape_fmt(b->shape, b->ndim, b1, sizeof b1),
                     etc_shape_fmt(w->shape, w->ndim, b2, sizeof b2),
                     etc_shape_fmt(x->shape, x->ndim, b3, sizeof b3));
        return NULL;
    }
    /* y has x's leading dims and out_f columns */
    int64_t ysh[ET_MAX_DIMS];
    int64_t rows = 1;
    for (int d = 0; d < x->ndim - 1; d++)
        rows *= (ysh[d] = x->shape[d]);
    ysh[x->ndim - 1] = out_f;
    if (rows > INT_MAX / 2 || out_f > INT_MAX / 2 || in_f > INT_MAX / 2) {
        et_set_error(ET_ERR_ARG, "linear: input shape %s and weight shape %s are too large",
                     etc_shape_fmt(x->shape, x->ndim, b1, sizeof b1),
                     etc_shape_fmt(w->shape, w->ndim, b2, sizeof b2));
        return NULL;
    }
    if (!etc_check_shape(ysh, x->ndim, "linear"))
        return NULL;
    /* etc_gemm reads w through any strides; x and the bias must be contiguous */
    et_tensor *bc = b && !b->contiguous ? etc_clone(b) : etc_ref(b);
    et_tensor *xc = (bc || !b) ? etc_contig(x) : NULL;
    et_tensor *y = xc ? etc_alloc(ysh, x->ndim) : NULL;
    if (y && y->numel > 0) {
        /* B(p, j) = w[j, p] (wᵀ), bias and ReLU in the epilogue */
        etc_gemm_t g = {.m = rows, .n = out_f, .k = in_f, .a = xc->data, .ars = in_f, .acs = 1,
                        .b = w->data, .brs = w->strides[1], .bcs = w->strides[0],
                        .c = y->data, .ldc = out_f, .bias = bc ? bc->data : NULL,
                        .act = act == ETC_ACT_RELU ? ETC_GEMM_RELU : ETC_GEMM_NONE};
        g.bpack = etc_inv_pack_get(&g, w);   /* a batching server's cached Wᵀ, or NULL */
        etc_gemm(&g, etc_gemm_mode());
        if (act == ETC_ACT_TANH)
            etc_ew_row(EW_TANH, y->data, y->data, y->numel);
        else if (act == ETC_ACT_SIGMOID)
            etc_ew_row(EW_SIGMOID, y->data, y->data, y->numel);
    }
    etc_release(bc);
    etc_release(xc);
    if (!y)
        return NULL;
    et_tensor *ins[3] = {x, w, b};
    return etc_finish(y, act_op[act], ins, b ? 3 : 2);
}

et_tensor *etc_linear(et_tensor *x, et_tensor *w, et_tensor *b)
{
    return etc_linear_act(x, w, b, ETC_ACT_NONE);
}

/* Column sums of a contiguous [rows, cols] (a bias gradient), cols >= 2,
 * in float with short partial sums (error of order tens of ulp, well inside
 * torch's own float sum), instead of etc_sum_to's general double loop (5% of
 * a 13-64-64-1 step).  Few columns: whole blocks of rows are added flat (a
 * long, vectorised loop instead of rows of `cols`), each slot collecting
 * about rows / reps values, and the reps slots of a column are folded in
 * double.  Many columns: blocks of 16 rows summed per column, then added.
 * Written to out[cols] (+= when accumulate).  Cloned per ISA as kernels.c's
 * row(): the loops run 16 floats wide with AVX-512 instead of the baseline's
 * 4, every column's additions in the same order (the same bits). */
ETC_ISA_CLONES("default", "avx2", "avx512f")
static void col_sums(const float *g, int64_t rows, int64_t cols, float *out, bool accumulate)
{
    if (cols < 64) {
        int64_t reps = 128 / cols < rows ? 128 / cols : rows;
        int64_t L = reps * cols, total = rows * cols;
        float blk[128] = {0};
        for (int64_t off = 0; off < total; off += L) {
            int64_t n = total - off < L ? total - off : L;
            const float *p = g + off;
            for (int64_t k = 0; k < n; k++)
                blk[k] += p[k];
        }
        for (int64_t j = 0; j < cols; j++) {
            double s = 0;
            for (int64_t k = j; k < L; k += cols)
                s += blk[k];
            out[j] = accumulate ? out[j] + (float)s : (float)s;
        }
        return;
    }
    /* blocks of 16 and then 8 columns held in vector registers over the
     * rows (etc_vf16, etc_vf8; the rows' loop reloaded and stored every
     * partial sum), then single columns: each column's order unchanged */
#define CS_BLOCK(VT, W)                                                  \
    for (; j0 + (W) <= cols; j0 += (W)) {                                \
        VT tot = {0}, part, v;                                           \
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {                      \
            int64_t r1 = rows - r0 < 16 ? rows : r0 + 16;                \
            ETC_VLD(part, g + r0 * cols + j0);                           \
            for (int64_t r = r0 + 1; r < r1; r++) {                      \
                ETC_VLD(v, g + r * cols + j0);                           \
                part += v;                                               \
            }                                                            \
            tot += part;                                                 \
        }                                                                \
        if (accumulate) {                                                \
            ETC_VLD(v, out + j0);                                        \
            tot = v + tot;                                               \
        }                                                                \
        ETC_VST(out + j0, tot);                                          \
    }
    int64_t j0 = 0;
    CS_BLOCK(etc_vf16, 16)
    CS_BLOCK(etc_vf8, 8)
#undef CS_BLOCK
    for (; j0 < cols; j0++) {
        float tot = 0;
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {
            int64_t r1 = rows - r0 < 16 ? rows : r0 + 16;
            float part = g[r0 * cols + j0];
            for (int64_t r = r0 + 1; r < r1; r++)
                part += g[r * cols + j0];
            tot += part;
        }
        out[j0] = accumulate ? out[j0] + tot : tot;
    }
}

/* ReLU's backward and the bias gradient in one pass: gp = y <= 0 ? 0 : g
 * (EW_RELU_B: NaN passes, as torch) written to gp, and col_sums(gp) into
 * out[cols] (+= when accumulate) with col_sums's many-column order (per
 * column: blocks of 16 rows summed, the blocks then added), so the same bits
 * as the two passes it replaces (the 784-1024-1024-10 step read gp once more
 * for the sums: 1 MB per hidden layer).  Rows are walked whole, in order
 * (a first version walked col_sums's 256-column strips down the rows and was
 * slower than the two passes: perf, 272 samples against 214).  64 <= cols
 * <= RELU_BIAS_MAX_COLS only. */
enum { RELU_BIAS_MAX_COLS = 2048, RELU_STRIP_MAX_COLS = 512 };

/* One 16-row block's strip of RELU_STRIP columns: part[] stays in registers
 * (4 zmm / 8 ymm) down the rows.  With the partial sums in a stack array
 * instead, each row's += waited on the previous row's store of the same
 * vectors (store-to-load forwarding on the critical path): 64 columns, 32
 * rows took ~1,200 cycles, the 13-64-64-1 step's two calls ~0.6 us. */
enum { RELU_STRIP = 64 };

/* 16 floats as one vector (GCC's vector extension: one zmm in the avx512f
 * clone, two ymm in the avx2 one), loaded and stored unaligned by memcpy */
typedef int32_t relu_i16 __attribute__((vector_size(64)));

/* v = y <= 0 ? +0 : g (a NaN y keeps g), stored to gp; *acc = v or += v.
 * Inlined into each ISA clone (a vector argument or result of a non-inlined
 * function would change the ABI). */
__attribute__((always_inline)) static inline void relu_b16(const float *g, const float *y,
                                                           float *gp, etc_vf16 *acc,
                                                           bool first)
{
    etc_vf16 gv, yv;
    memcpy(&gv, g, sizeof gv);
    memcpy(&yv, y, sizeof yv);
    relu_i16 keep = ~(yv <= 0.0f);
    etc_vf16 v = (etc_vf16)((relu_i16)gv & keep);
    memcpy(gp, &v, sizeof v);
    *acc = first ? v : *acc + v;
}

__attribute__((always_inline)) static inline void relu_back_strip(const float *g,
                                                                  const float *y, int64_t nr,
                                                                  int64_t cols, float *gp,
                                                                  float *tot)
{
    etc_vf16 p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
    for (int64_t r = 0; r < nr; r++) {
        const float *gr = g + r * cols, *yr = y + r * cols;
        float *pr = gp + r * cols;
        relu_b16(gr, yr, pr, &p0, r == 0);
        relu_b16(gr + 16, yr + 16, pr + 16, &p1, r == 0);
        relu_b16(gr + 32, yr + 32, pr + 32, &p2, r == 0);
        relu_b16(gr + 48, yr + 48, pr + 48, &p3, r == 0);
    }
    etc_vf16 t[4];
    memcpy(t, tot, sizeof t);
    t[0] += p0, t[1] += p1, t[2] += p2, t[3] += p3;
    memcpy(tot, t, sizeof t);
}

ETC_ISA_CLONES("default", "avx2", "avx512f")
static void relu_back_col_sums(const float *g, const float *y, int64_t rows, int64_t cols,
                               float *gp, float *out, bool accumulate)
{
    float tot[RELU_BIAS_MAX_COLS], part[RELU_BIAS_MAX_COLS];
    for (int64_t j = 0; j < cols; j++)
        tot[j] = 0.0f;
    /* narrow layers (the small models'): 64-column strips down each block
     * with the sums in registers, the tail columns as below.  Wide ones keep
     * whole rows (the 784 step's 1024 columns: see above). */
    int64_t jw = cols <= RELU_STRIP_MAX_COLS ? cols - cols % RELU_STRIP : 0;
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        int64_t r1 = rows - r0 < 16 ? rows : r0 + 16;
        for (int64_t j0 = 0; j0 < jw; j0 += RELU_STRIP)
            relu_back_strip(g + r0 * cols + j0, y + r0 * cols + j0, r1 - r0, cols,
                            gp + r0 * cols + j0, tot + j0);
        if (jw == cols)
            continue;
        const float *gr = g + r0 * cols, *yr = y + r0 * cols;
        float *pr = gp + r0 * cols;
        for (int64_t j = jw; j < cols; j++) {
            float v = yr[j] <= 0.0f ? 0.0f : gr[j];
            pr[j] = v;
            part[j] = v;
        }
        for (int64_t r = r0 + 1; r < r1; r++) {
            gr = g + r * cols, yr = y + r * cols, pr = gp + r * cols;
            for (int64_t j = jw; j < cols; j++) {
                float v = yr[j] <= 0.0f ? 0.0f : gr[j];
                pr[j] = v;
                part[j] += v;
            }
        }
        for (int64_t j = jw; j < cols; j++)
            tot[j] += part[j];
    }
    if (accumulate)
        for (int64_t j = 0; j < cols; j++)
            out[j] += tot[j];
    else
        memcpy(out, tot, (size_t)cols * sizeof(float));
}

/* The gradient of input i, shaped like `like` (contiguous): into the
 * input's .grad when autograd offers it (etc_grad_sink), else a new tensor
 * in gin[i].  Returns the buffer to write and whether to add to it. */
static float *grad_dest(et_tensor *out, int i, et_tensor **gin, const et_tensor *like,
                        bool *accumulate)
{
    et_tensor *sink = etc_grad_sink(out, i);
    if (sink) {
        *accumulate = true;
        return sink->data;
    }
    *accumulate = false;
    gin[i] = etc_alloc(like->shape, like->ndim);
    return gin[i] ? gin[i]->data : NULL;
}

/* dx = G·w, dw = Gᵀ·x, db = column sums of G (unless bias_done), for G the
 * gradient of the product (x @ wᵀ + b), a contiguous [rows, out_f]. */
static bool linear_backward(et_tensor *out, const float *G, int64_t rows, et_tensor **gin,
                            bool bias_done)
{
    et_tensor *x = out->in[0], *w = out->in[1];
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    unsigned mode = 0;   /* backward products need no batch invariance */
    bool acc;
    if (x->requires_grad) {
        float *dx = grad_dest(out, 0, gin, x, &acc);
        if (!dx)
            return false;
        /* B(p, j) = w[p, j] */
        etc_gemm_t g = {.m = rows, .n = in_f, .k = out_f, .a = G, .ars = out_f, .acs = 1,
                        .b = w->data, .brs = w->strides[0], .bcs = w->strides[1], .c = dx,
                        .ldc = in_f, .accumulate = acc};
        etc_gemm(&g, mode);
    }
    if (w->requires_grad) {
        et_tensor *xc = etc_contig(x);
        float *dw = xc ? grad_dest(out, 1, gin, w, &acc) : NULL;
        if (dw) {
            /* A(i, p) = G[p, i], B(p, j) = x[p, j] */
            etc_gemm_t g = {.m = out_f, .n = in_f, .k = rows, .a = G, .ars = 1, .acs = out_f,
                            .b = xc->data, .brs = in_f, .bcs = 1, .c = dw, .ldc = in_f,
                            .accumulate = acc};
            etc_gemm(&g, mode);
        }
        etc_release(xc);
        if (!dw)
            return false;
    }
    if (!bias_done && out->nin > 2 && out->in[2]->requires_grad) {
        et_tensor *b = out->in[2];
        float *db = grad_dest(out, 2, gin, b, &acc);
        if (!db)
            return false;
        if (out_f >= 2 && rows > 0) {
            col_sums(G, rows, out_f, db, acc);
        } else {
            double s = 0;   /* one column: a plain sum, in double as etc_sum_to */
            for (int64_t r = 0; r < rows; r++)
                s += G[r * out_f];
            db[0] = acc ? db[0] + (float)s : (float)s;
        }
    }
    return true;
}

ETC_BW(linear)
{
    et_tensor *gc = etc_contig(g);
    if (!gc)
        return false;
    int64_t out_f = out->in[1]->shape[0];
    int64_t rows = out_f > 0 ? gc->numel / out_f : 0;
    if (out_f == 0) {   /* rows from the shape when there are no columns */
        rows = 1;
        for (int d = 0; d < out->ndim - 1; d++)
            rows *= out->shape[d];
    }
    bool ok = linear_backward(out, gc->data, rows, gin, false);
    etc_release(gc);
    return ok;
}

/* ReLU with a bias to differentiate and many columns: g_pre and the bias
 * gradient in one pass (relu_back_col_sums).  NULL (nothing done) when g is
 * not laid out as out or the shape is not one col_sums sums by blocks. */
static et_tensor *relu_back_bias(et_tensor *out, et_tensor *g, int64_t rows, et_tensor **gin,
                                 bool *failed)
{
    int64_t out_f = out->in[1]->shape[0];
    *failed = false;
    if (out->op != ETC_OP_LINEAR_RELU || out->nin < 3 || !out->in[2]->requires_grad ||
        out_f < 64 || out_f > RELU_BIAS_MAX_COLS || rows <= 0 || !g->contiguous || g->dtype != ET_FLOAT32 ||
        g->numel != out->numel || !etc_same_shape(g, out))
        return NULL;
    et_tensor *gp = etc_alloc(out->shape, out->ndim);
    bool acc;
    float *db = gp ? grad_dest(out, 2, gin, out->in[2], &acc) : NULL;
    if (!db) {
        etc_release(gp);
        *failed = true;
        return NULL;
    }
    relu_back_col_sums(g->data, out->data, rows, out_f, gp->data, db, acc);
    return gp;
}

/* g_pre = g ⊙ act'(y) with the unfused activation's backward kernel, then
 * the linear backward. */
ETC_BW(linear_act)
{
    int act = act_of(out->op);
    int64_t rows = 1;
    for (int d = 0; d < out->ndim - 1; d++)
        rows *= out->shape[d];
    bool failed;
    et_tensor *gp = relu_back_bias(out, g, rows, gin, &failed);
    bool bias_done = gp != NULL;
    if (failed)
        return false;
    if (!gp)
        gp = etc_ew2(act_ew_b[act], act_name[act], g, out, 0);
    if (!gp)
        return false;
    bool ok = linear_backward(out, gp->data, rows, gin, bias_done);
    etc_release(gp);
    return ok;
}

et_tensor *et_linear(et_tensor *x, et_tensor *w, et_tensor *b)
{
    if (b && !etc_null_check(b, "linear"))
        return NULL;
    return etc_pooled(etc_linear(x, w, b));
}
