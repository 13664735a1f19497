/*
 * bench_conv.c - et_bench workloads of the convolution rows (scripts/bench):
 *
 *   conv2d_56          et_conv2d forward, x [64, 64, 56, 56], w [64, 64, 3, 3],
 *                      bias, padding 1 (the algorithm et_conv2d picks)
 *   conv2d_56_onednn   the same convolution on bare oneDNN: NCHW in, NCHW out,
 *                      done the fastest way it offers (primitive and buffers
 *                      made once; per call: reorders of input and weights into
 *                      its blocked layouts, the brgconv kernel, the reorder back)
 *   conv2d_56_im2col   the same on bare im2col + cblas_sgemm (one image at a
 *                      time, column buffer made once)
 *   train_lenet5_b64   a LeNet-5 training step on the C API: Conv2d(1,6,5,p2)
 *                      ReLU MaxPool2d(2) Conv2d(6,16,5) ReLU MaxPool2d(2) Flatten
 *                      Linear(400,120) ReLU Linear(120,84) ReLU Linear(84,10),
 *                      cross-entropy, SGD lr 0.01 momentum 0.9, batch 64 of
 *                      1x28x28 (torch_bench.py runs the same in PyTorch)
 *
 * The anchors are checked against et_conv2d once at setup, so a fast wrong
 * anchor (or a wrong et_conv2d) fails the row instead of scoring.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/easytorch.h>

#include "bench_conv.h"
#include "bench_train.h"

#ifdef ET_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

enum { CN = 64, CC = 64, CH = 56, CW = 56, CO = 64, CK = 3 };

typedef struct {
    et_tensor *x, *w, *b;
    float *ref;       /* et_conv2d's output, for the anchors' check */
    float *y, *col;   /* the anchors' output and im2col buffer */
#ifdef ET_HAVE_ONEDNN
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t conv, rsrc, rwei, rdst;
    dnnl_memory_t usrc, uwei, ubias, udst, isrc, iwei, idst;
#endif
} conv_state;

/* The three conv workloads share one state (150 MB of tensors). */
static conv_state *shared;
static int shared_refs;

void conv_teardown(void *p)
{
    conv_state *s = p;
    if (!s || (s == shared && --shared_refs > 0))
        return;
    if (s == shared)
        shared = NULL;
#ifdef ET_HAVE_ONEDNN
    dnnl_primitive_t prims[] = {s->conv, s->rsrc, s->rwei, s->rdst};
    for (size_t i = 0; i < 4; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    dnnl_memory_t mems[] = {s->usrc, s->uwei, s->ubias, s->udst, s->isrc, s->iwei, s->idst};
    for (size_t i = 0; i < 7; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    if (s->st)
        dnnl_stream_destroy(s->st);
    if (s->eng)
        dnnl_engine_destroy(s->eng);
#endif
    et_tensor_free(s->x);
    et_tensor_free(s->w);
    et_tensor_free(s->b);
    free(s->ref);
    free(s->y);
    free(s->col);
    free(s);
}

static const int64_t PAD1[2] = {1, 1};

/* y (first n floats) against et_conv2d's output */
static bool matches(const conv_state *s, const float *y, const char *who)
{
    size_t n = (size_t)CN * CO * CH * CW;
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(y[i] - s->ref[i]) <= 1e-3f * (1.0f + fabsf(s->ref[i])))) {
            et_set_error(ET_ERR_STATE, "%s differs from et_conv2d at %zu: %g vs %g", who, i,
                         (double)y[i], (double)s->ref[i]);
            return false;
        }
    return true;
}

void *conv_setup(void)
{
    if (shared) {
        shared_refs++;
        return shared;
    }
    conv_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    et_generator *g = et_generator_new(5);
    s->x = et_randn(g, ET_SHAPE(CN, CC, CH, CW));
    s->w = et_uniform(g, ET_SHAPE(CO, CC, CK, CK), -0.05, 0.05);
    s->b = et_randn(g, ET_SHAPE(CO));
    et_generator_free(g);
    size_t ny = (size_t)CN * CO * CH * CW;
    s->ref = malloc(ny * sizeof(float));
    s->y = malloc(ny * sizeof(float));
    s->col = malloc((size_t)CC * CK * CK * CH * CW * sizeof(float));
    if (!s->x || !s->w || !s->b || !s->ref || !s->y || !s->col) {
        conv_teardown(s);
        return NULL;
    }
    et_pool_begin();
    et_tensor *y = et_conv2d(s->x, s->w, s->b, NULL, PAD1, NULL, 1);
    if (y)
        et_copy_to(y, s->ref);
    et_pool_end();
    if (!y) {
        conv_teardown(s);
        return NULL;
    }
    shared = s;
    shared_refs = 1;
    return s;
}

et_status conv_et_run(void *p, long iters, double *value)
{
    conv_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_tensor *y = et_conv2d(s->x, s->w, s->b, NULL, PAD1, NULL, 1);
        if (!y) {
            et_pool_end();
            return et_errcode();
        }
        *value = et_data(y)[12345];
        et_pool_end();
    }
    return ET_OK;
}

/* ---- bare im2col + sgemm: stride 1, padding 1, 3x3 ---- */

static void im2col_3x3(const float *x, float *col)
{
    for (int c = 0; c < CC; c++)
        for (int ki = 0; ki < CK; ki++)
            for (int kj = 0; kj < CK; kj++) {
                float *row = col + ((size_t)(c * CK + ki) * CK + kj) * CH * CW;
                for (int oh = 0; oh < CH; oh++) {
                    int ih = oh - 1 + ki;
                    float *d = row + oh * CW;
                    if (ih < 0 || ih >= CH) {
                        memset(d, 0, CW * sizeof *d);
                        continue;
                    }
                    const float *src = x + ((size_t)c * CH + ih) * CW;
                    int lo = kj == 0 ? 1 : 0, hi = kj == 2 ? CW - 1 : CW;
                    if (kj == 0)
                        d[0] = 0.0f;
                    memcpy(d + lo, src + lo - 1 + kj, (size_t)(hi - lo) * sizeof *d);
                    if (kj == 2)
                        d[CW - 1] = 0.0f;
                }
            }
}

static void im2col_conv(conv_state *s)
{
    const float *x = et_data(s->x), *w = et_data(s->w), *b = et_data(s->b);
    const int ohw = CH * CW, k = CC * CK * CK;
    for (int n = 0; n < CN; n++) {
        im2col_3x3(x + (size_t)n * CC * CH * CW, s->col);
        float *yn = s->y + (size_t)n * CO * ohw;
        for (int o = 0; o < CO; o++)
            for (int j = 0; j < ohw; j++)
                yn[o * ohw + j] = b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CO, ohw, k, 1.0f, w, k, s->col,
                    ohw, 1.0f, yn, ohw);
    }
}

et_status conv_im2col_run(void *p, long iters, double *value)
{
    conv_state *s = p;
    static bool checked;
    for (long i = 0; i < iters; i++)
        im2col_conv(s);
    if (!checked && !matches(s, s->y, "im2col + sgemm"))
        return ET_ERR_STATE;
    checked = true;
    *value = s->y[12345];
    return ET_OK;
}

/* ---- bare oneDNN ---- */

#ifdef ET_HAVE_ONEDNN
#define DN(x)                                                                \
    do {                                                                     \
        if ((x) != dnnl_success)                                             \
            return et_set_error(ET_ERR_STATE, "oneDNN: %s failed", #x);      \
    } while (0)

static et_status onednn_init(conv_state *s)
{
    omp_set_num_threads(openblas_get_num_threads());   /* the same threads as ours */
    dnnl_memory_desc_t xm, wm, bm, ym, xa, wa, ya;
    dnnl_dims_t xd = {CN, CC, CH, CW}, wd = {CO, CC, CK, CK}, bd = {CO}, yd = {CN, CO, CH, CW};
    dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    DN(dnnl_engine_create(&s->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&s->st, s->eng, dnnl_stream_default_flags));
    DN(dnnl_memory_desc_init_by_tag(&xm, 4, xd, dnnl_f32, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&wm, 4, wd, dnnl_f32, dnnl_oihw));
    DN(dnnl_memory_desc_init_by_tag(&bm, 1, bd, dnnl_f32, dnnl_x));
    DN(dnnl_memory_desc_init_by_tag(&ym, 4, yd, dnnl_f32, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd, r1, r2, r3;
    DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                          &xa, &wa, &bm, &ya, strides, pad, pad));
    DN(dnnl_primitive_desc_create(&pd, &cd, NULL, s->eng, NULL));
    const dnnl_memory_desc_t *sx = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *sw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *sy = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    DN(dnnl_primitive_create(&s->conv, pd));
    DN(dnnl_memory_create(&s->usrc, &xm, s->eng, et_data(s->x)));
    DN(dnnl_memory_create(&s->uwei, &wm, s->eng, et_data(s->w)));
    DN(dnnl_memory_create(&s->ubias, &bm, s->eng, et_data(s->b)));
    DN(dnnl_memory_create(&s->udst, &ym, s->eng, s->y));
    DN(dnnl_memory_create(&s->isrc, sx, s->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&s->iwei, sw, s->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&s->idst, sy, s->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_reorder_primitive_desc_create(&r1, &xm, s->eng, sx, s->eng, NULL));
    DN(dnnl_reorder_primitive_desc_create(&r2, &wm, s->eng, sw, s->eng, NULL));
    DN(dnnl_reorder_primitive_desc_create(&r3, sy, s->eng, &ym, s->eng, NULL));
    DN(dnnl_primitive_create(&s->rsrc, r1));
    DN(dnnl_primitive_create(&s->rwei, r2));
    DN(dnnl_primitive_create(&s->rdst, r3));
    dnnl_primitive_desc_destroy(r1);
    dnnl_primitive_desc_destroy(r2);
    dnnl_primitive_desc_destroy(r3);
    dnnl_primitive_desc_destroy(pd);
    return ET_OK;
}

static et_status onednn_conv(conv_state *s)
{
    dnnl_exec_arg_t a1[2] = {{DNNL_ARG_FROM, s->usrc}, {DNNL_ARG_TO, s->isrc}};
    dnnl_exec_arg_t a2[2] = {{DNNL_ARG_FROM, s->uwei}, {DNNL_ARG_TO, s->iwei}};
    dnnl_exec_arg_t ac[4] = {{DNNL_ARG_SRC, s->isrc}, {DNNL_ARG_WEIGHTS, s->iwei},
                             {DNNL_ARG_BIAS, s->ubias}, {DNNL_ARG_DST, s->idst}};
    dnnl_exec_arg_t a3[2] = {{DNNL_ARG_FROM, s->idst}, {DNNL_ARG_TO, s->udst}};
    DN(dnnl_primitive_execute(s->rsrc, s->st, 2, a1));
    DN(dnnl_primitive_execute(s->rwei, s->st, 2, a2));
    DN(dnnl_primitive_execute(s->conv, s->st, 4, ac));
    DN(dnnl_primitive_execute(s->rdst, s->st, 2, a3));
    DN(dnnl_stream_wait(s->st));
    return ET_OK;
}
#endif

et_status conv_onednn_run(void *p, long iters, double *value)
{
#ifdef ET_HAVE_ONEDNN
    conv_state *s = p;
    static bool checked;
    et_status st = s->conv ? ET_OK : onednn_init(s);
    for (long i = 0; i < iters && st == ET_OK; i++)
        st = onednn_conv(s);
    if (st != ET_OK)
        return st;
    if (!checked && !matches(s, s->y, "oneDNN"))
        return ET_ERR_STATE;
    checked = true;
    *value = s->y[12345];
    return ET_OK;
#else
    (void)p, (void)iters, (void)value;
    return et_set_error(ET_ERR_STATE, "this build has no oneDNN (meson option onednn)");
#endif
}

/* ---- LeNet-5 training step ---- */

enum { LN_BATCH = 64 };

static et_tensor *cross_entropy(et_tensor *out, et_tensor *y)
{
    return et_cross_entropy(out, y, ET_REDUCTION_MEAN, 0.0f);
}

void *lenet_setup(void)
{
    bench_train *s = bench_train_new(cross_entropy);
    if (!s)
        return NULL;
    s->net = et_sequential_new();
    if (!s->net)
        goto fail;
    et_conv_opts pad2 = ET_CONV_DEFAULTS;
    pad2.padding[0] = pad2.padding[1] = 2;
    const int64_t k5[2] = {5, 5}, k2[2] = {2, 2};
    et_module *layers[] = {
        et_conv2d_new(1, 6, k5, &pad2, s->g), et_relu_new(), et_max_pool2d_new(k2, NULL),
        et_conv2d_new(6, 16, k5, NULL, s->g), et_relu_new(), et_max_pool2d_new(k2, NULL),
        et_flatten_new(1, -1), et_linear_new(400, 120, true, s->g), et_relu_new(),
        et_linear_new(120, 84, true, s->g), et_relu_new(), et_linear_new(84, 10, true, s->g)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (et_sequential_append(s->net, layers[i]) != ET_OK)
            goto fail;
    int n;
    et_tensor **params = bench_params(s->net, &n);
    if (!params)
        goto fail;
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = 0.01;
    o.momentum = 0.9;
    s->opt = et_sgd_new(params, n, o);
    free(params);
    s->x = et_randn(s->g, ET_SHAPE(LN_BATCH, 1, 28, 28));
    int64_t t[LN_BATCH];
    for (int i = 0; i < LN_BATCH; i++)
        t[i] = (int64_t)(et_generator_next(s->g) % 10);
    s->y = et_tensor_new_int64(t, ET_SHAPE(LN_BATCH));
    if (!s->opt || !s->x || !s->y)
        goto fail;
    return s;
fail:
    bench_train_free(s);
    return NULL;
}
