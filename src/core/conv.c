/* conv.c - conv1d, conv2d and conv_transpose2d: argument checks, output
 * shapes, the graph node, backward, and the choice between oneDNN and
 * im2col + sgemm for each pass (see docs/design.md "Convolution").
 *
 * All three ops reduce to one forward-convolution geometry
 * (conv_internal.h).  A transposed convolution is the adjoint of the
 * convolution that maps its output back to its input, so its forward is
 * that convolution's bwd_data, its input gradient that convolution's
 * forward, and its weight gradient that convolution's bwd_weight with the
 * roles of input and output swapped.  1-d and unbatched inputs are the
 * same memory as [N, C, 1, L] / [1, C, H, W], so only the geometry differs.
 */
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "core/conv_internal.h"
#include "easytorch/conv.h"

const int64_t et_padding_same[2] = {0, 0};

static atomic_int conv_algo = ET_CONV_AUTO;

et_status et_set_conv_algo(et_conv_algo algo)
{
    if (algo != ET_CONV_AUTO && algo != ET_CONV_IM2COL && algo != ET_CONV_ONEDNN)
        return et_set_error(ET_ERR_ARG, "set_conv_algo: unknown algorithm %d", (int)algo);
    if (algo == ET_CONV_ONEDNN && !etc_onednn_available())
        return et_set_error(ET_ERR_ARG, "set_conv_algo: this build has no oneDNN");
    atomic_store(&conv_algo, (int)algo);
    return ET_OK;
}

et_conv_algo et_get_conv_algo(void) { return (et_conv_algo)atomic_load(&conv_algo); }

bool et_have_onednn(void) { return etc_onednn_available(); }

/* ------------------------------------------------------------ dispatch */

/* The rule measured in docs/design.md ("Convolution: oneDNN or im2col",
 * benchmarks/conv_algos).  oneDNN's JIT kernels win almost everywhere (1.2-3x
 * against OpenBLAS's AVX-512 sgemm, 2-18x against the Prescott kernels
 * Debian's OpenBLAS picks on this CPU), except:
 *  - tiny problems, where its fixed cost per call (primitive descriptor,
 *    reorders into and out of its blocked layouts: ~15-25 us) dominates;
 *  - backward-data with one to three input channels and no groups (a
 *    network's first layer), where its kernel is 2-20x slower than col2im. */
bool etc_conv_use_onednn(const etc_conv_geom *g, int pass)
{
    int algo = atomic_load_explicit(&conv_algo, memory_order_relaxed);
    if (algo == ET_CONV_IM2COL || !etc_onednn_available())
        return false;
    if (algo == ET_CONV_ONEDNN)
        return true;
    double macs = (double)g->n * (double)g->o * (double)(g->oh * g->ow) *
                  (double)(g->c / g->groups) * (double)(g->kh * g->kw);
    if (macs < 3e5)
        return false;
    if (pass == ETC_CONV_BWD_DATA && g->groups == 1 && g->c <= 3)
        return false;
    return true;
}

bool etc_conv_fwd(const etc_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y)
{
    if (etc_conv_use_onednn(g, ETC_CONV_FWD) && etc_conv_fwd_onednn(g, x, w, b, y))
        return true;
    return etc_conv_fwd_im2col(g, x, w, b, y);
}

bool etc_conv_bwd_data(const etc_conv_geom *g, const float *dy, const float *w, float *dx)
{
    if (etc_conv_use_onednn(g, ETC_CONV_BWD_DATA) && etc_conv_bwd_data_onednn(g, dy, w, dx))
        return true;
    return etc_conv_bwd_data_im2col(g, dy, w, dx);
}

bool etc_conv_bwd_weight(const etc_conv_geom *g, const float *x, const float *dy, float *dw)
{
    if (etc_conv_use_onednn(g, ETC_CONV_BWD_WEIGHT) && etc_conv_bwd_weight_onednn(g, x, dy, dw))
        return true;
    return etc_conv_bwd_weight_im2col(g, x, dy, dw);
}

/* ------------------------------------------------------ argument checks */

/* What one call asked for, in 2-d terms (a 1-d op has h = kh = 1). */
typedef struct {
    const char *op;
    int sd;                  /* spatial dims of the op: 1 or 2 */
    bool transposed;
    bool batched;
    int64_t stride[2], pad[2], dil[2], outpad[2];
    bool same;
    int64_t groups;
} conv_args;

static char *fmt(const et_tensor *t, char *buf, size_t cap)
{
    return etc_shape_fmt(t->shape, t->ndim, buf, cap);
}

/* The user's per-dim array (sd entries) into a 2-d pair; 1-d ops fill the
 * H entry with the identity value. */
static bool read_pair(const conv_args *a, const int64_t *v, int64_t dflt, int64_t h_value,
                      int64_t min, const char *what, int64_t out[2])
{
    for (int i = 0; i < 2; i++)
        out[i] = dflt;
    if (a->sd == 1)
        out[0] = h_value;
    for (int i = 0; v && i < a->sd; i++) {
        int64_t x = v[i];
        if (x < min || x > INT_MAX) {
            et_set_error(ET_ERR_ARG, "%s: %s %lld is not supported (expected %s)", a->op, what,
                         (long long)x, min > 0 ? "a positive value" : "a value >= 0");
            return false;
        }
        out[2 - a->sd + i] = x;
    }
    return true;
}

static bool parse_args(conv_args *a, const int64_t *stride, const int64_t *padding,
                       const int64_t *dilation, const int64_t *output_padding, int64_t groups)
{
    if (groups <= 0 || groups > INT_MAX) {
        et_set_error(ET_ERR_ARG, "%s: non-positive groups is not supported (groups=%lld)", a->op,
                     (long long)groups);
        return false;
    }
    a->groups = groups;
    a->same = padding == et_padding_same;
    if (a->same && a->transposed) {
        et_set_error(ET_ERR_ARG, "%s: padding=\"same\" is not supported", a->op);
        return false;
    }
    if (!read_pair(a, stride, 1, 1, 1, "stride", a->stride) ||
        !read_pair(a, a->same ? NULL : padding, 0, 0, 0, "padding", a->pad) ||
        !read_pair(a, dilation, 1, 1, 1, "dilation", a->dil) ||
        !read_pair(a, output_padding, 0, 0, 0, "output_padding", a->outpad))
        return false;
    if (a->same && (a->stride[0] != 1 || a->stride[1] != 1)) {
        et_set_error(ET_ERR_ARG, "%s: padding=\"same\" is not supported for strided "
                     "convolutions", a->op);
        return false;
    }
    for (int i = 0; i < 2; i++)
        if (a->outpad[i] >= a->stride[i] && a->outpad[i] >= a->dil[i]) {
            et_set_error(ET_ERR_ARG, "%s: output padding must be smaller than either stride or "
                         "dilation, but got output_padding %lld, stride %lld, dilation %lld",
                         a->op, (long long)a->outpad[i], (long long)a->stride[i],
                         (long long)a->dil[i]);
            return false;
        }
    return true;
}

/* Checks x, w, b against each other and fills the geometry and the output
 * shape.  Messages follow PyTorch's wording and name the shapes. */
static bool conv_setup(conv_args *a, et_tensor *x, et_tensor *w, et_tensor *b,
                       etc_conv_geom *g, int64_t *oshape, int *ondim)
{
    char bx[128], bw[128], bb[128];
    if (!etc_null_check(x, a->op) || !etc_null_check(w, a->op) ||
        (b && !etc_null_check(b, a->op)))   /* also refuses int64 tensors */
        return false;
    if (x->ndim != a->sd + 1 && x->ndim != a->sd + 2) {
        et_set_error(ET_ERR_SHAPE, "%s: expected %dD (unbatched) or %dD (batched) input, but got "
                     "input of size %s", a->op, a->sd + 1, a->sd + 2, fmt(x, bx, sizeof bx));
        return false;
    }
    if (w->ndim != a->sd + 2) {
        et_set_error(ET_ERR_SHAPE, "%s: expected %d-dimensional weight, but got weight of size %s",
                     a->op, a->sd + 2, fmt(w, bw, sizeof bw));
        return false;
    }
    a->batched = x->ndim == a->sd + 2;
    int off = a->batched ? 0 : -1;  /* dim of x holding C is 1 + off */
    int64_t n = a->batched ? x->shape[0] : 1, c = x->shape[1 + off];
    int64_t h = a->sd == 2 ? x->shape[2 + off] : 1, wd = x->shape[x->ndim - 1];
    int64_t kh = a->sd == 2 ? w->shape[2] : 1, kw = w->shape[w->ndim - 1];
    int64_t G = a->groups;
    int64_t o;                       /* output channels of the op */
    if (!a->transposed) {
        if (w->shape[0] % G != 0) {
            et_set_error(ET_ERR_SHAPE, "%s: given groups=%lld, expected weight to be divisible by "
                         "%lld at dimension 0, but got weight of size %s instead", a->op,
                         (long long)G, (long long)G, fmt(w, bw, sizeof bw));
            return false;
        }
        if (c != w->shape[1] * G) {
            et_set_error(ET_ERR_SHAPE, "%s: given groups=%lld, weight of size %s, expected input%s "
                         "to have %lld channels, but got %lld channels instead", a->op,
                         (long long)G, fmt(w, bw, sizeof bw), fmt(x, bx, sizeof bx),
                         (long long)(w->shape[1] * G), (long long)c);
            return false;
        }
        o = w->shape[0];
    } else {
        if (w->shape[0] % G != 0) {
            et_set_error(ET_ERR_SHAPE, "%s: given groups=%lld, expected weight to be divisible by "
                         "%lld at dimension 0, but got weight of size %s instead", a->op,
                         (long long)G, (long long)G, fmt(w, bw, sizeof bw));
            return false;
        }
        if (c != w->shape[0]) {
            et_set_error(ET_ERR_SHAPE, "%s: given transposed=1, groups=%lld, weight of size %s, "
                         "expected input%s to have %lld channels, but got %lld channels instead",
                         a->op, (long long)G, fmt(w, bw, sizeof bw), fmt(x, bx, sizeof bx),
                         (long long)w->shape[0], (long long)c);
            return false;
        }
        o = w->shape[1] * G;
    }
    if (b && (b->ndim != 1 || b->shape[0] != o)) {
        et_set_error(ET_ERR_SHAPE, "%s: given weight of size %s, expected bias to be 1-dimensional "
                     "with %lld elements, but got bias of size %s instead", a->op,
                     fmt(w, bw, sizeof bw), (long long)o, fmt(b, bb, sizeof bb));
        return false;
    }
    if (kh == 0 || kw == 0 || o == 0 || c == 0) {
        et_set_error(ET_ERR_SHAPE, "%s: weight of size %s and input %s: empty kernels and "
                     "channels are not supported", a->op, fmt(w, bw, sizeof bw),
                     fmt(x, bx, sizeof bx));
        return false;
    }
    int64_t ext_h = a->dil[0] * (kh - 1) + 1, ext_w = a->dil[1] * (kw - 1) + 1;
    if (ext_h > INT_MAX || ext_w > INT_MAX) {
        et_set_error(ET_ERR_ARG, "%s: dilated kernel is too large", a->op);
        return false;
    }
    memset(g, 0, sizeof *g);
    g->n = n;
    g->kh = kh;
    g->kw = kw;
    g->sh = a->stride[0];
    g->sw = a->stride[1];
    g->dh = a->dil[0];
    g->dw = a->dil[1];
    g->groups = G;
    int64_t sp_out[2];
    if (!a->transposed) {
        g->c = c;
        g->h = h;
        g->w = wd;
        g->o = o;
        if (a->same) {
            g->pt = (ext_h - 1) / 2;
            g->pb = ext_h - 1 - g->pt;
            g->pl = (ext_w - 1) / 2;
            g->pr = ext_w - 1 - g->pl;
        } else {
            g->pt = g->pb = a->pad[0];
            g->pl = g->pr = a->pad[1];
        }
        int64_t ph = h + g->pt + g->pb, pw = wd + g->pl + g->pr;
        if (ph < ext_h || pw < ext_w) {
            et_set_error(ET_ERR_SHAPE, "%s: calculated padded input size per channel: (%lld x "
                         "%lld). Kernel size: (%lld x %lld). Kernel size can't be greater than "
                         "actual input size (input %s, weight %s)", a->op, (long long)ph,
                         (long long)pw, (long long)ext_h, (long long)ext_w,
                         fmt(x, bx, sizeof bx), fmt(w, bw, sizeof bw));
            return false;
        }
        g->oh = (ph - ext_h) / g->sh + 1;
        g->ow = (pw - ext_w) / g->sw + 1;
        sp_out[0] = g->oh;
        sp_out[1] = g->ow;
    } else {
        /* the convolution from this op's output [n, o, OH, OW] back to its input */
        int64_t OH = (h - 1) * g->sh - 2 * a->pad[0] + ext_h + a->outpad[0];
        int64_t OW = (wd - 1) * g->sw - 2 * a->pad[1] + ext_w + a->outpad[1];
        if (OH <= 0 || OW <= 0) {
            et_set_error(ET_ERR_SHAPE, "%s: given input size per channel: (%lld x %lld), "
                         "calculated output size per channel: (%lld x %lld); output size is too "
                         "small (input %s, weight %s)", a->op, (long long)h, (long long)wd,
                         (long long)OH, (long long)OW, fmt(x, bx, sizeof bx),
                         fmt(w, bw, sizeof bw));
            return false;
        }
        g->c = o;
        g->h = OH;
        g->w = OW;
        g->o = c;
        g->oh = h;
        g->ow = wd;
        g->pt = a->pad[0];
        g->pl = a->pad[1];
        sp_out[0] = OH;
        sp_out[1] = OW;
    }
    /* the padding at the far end, exactly as the output size uses it */
    g->pb = (g->oh - 1) * g->sh + ext_h - g->h - g->pt;
    g->pr = (g->ow - 1) * g->sw + ext_w - g->w - g->pl;
    /* sgemm takes int dimensions */
    if (g->oh * g->ow > INT_MAX / 2 || g->c * g->kh * g->kw > INT_MAX / 2 ||
        g->h * g->w > INT_MAX / 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input %s with weight %s is too large", a->op,
                     fmt(x, bx, sizeof bx), fmt(w, bw, sizeof bw));
        return false;
    }
    int nd = 0;
    if (a->batched)
        oshape[nd++] = n;
    oshape[nd++] = o;
    if (a->sd == 2)
        oshape[nd++] = sp_out[0];
    oshape[nd++] = sp_out[1];
    *ondim = nd;
    return etc_check_shape(oshape, nd, a->op);
}

/* Node parameters: aux.i = {sh, sw, dh, dw, pt, pl, pb, pr, groups, sd, batched}. */
static void save_geom(et_tensor *out, const etc_conv_geom *g, const conv_args *a)
{
    int *p = out->aux.i;
    p[0] = (int)g->sh;
    p[1] = (int)g->sw;
    p[2] = (int)g->dh;
    p[3] = (int)g->dw;
    p[4] = (int)g->pt;
    p[5] = (int)g->pl;
    p[6] = (int)g->pb;
    p[7] = (int)g->pr;
    p[8] = (int)g->groups;
    p[9] = a->sd;
    p[10] = a->batched;
}

/* The geometry again, from a node's input and output shapes. */
static void load_geom(const et_tensor *out, bool transposed, etc_conv_geom *g)
{
    const int *p = out->aux.i;
    const et_tensor *x = out->in[0], *w = out->in[1];
    int sd = p[9];
    bool batched = p[10];
    /* [n, c, h, w] of the op's input and output */
    int64_t xin[4], yout[4];
    const et_tensor *ts[2] = {x, out};
    int64_t *dst[2] = {xin, yout};
    for (int k = 0; k < 2; k++) {
        const et_tensor *t = ts[k];
        int off = batched ? 0 : -1;
        dst[k][0] = batched ? t->shape[0] : 1;
        dst[k][1] = t->shape[1 + off];
        dst[k][2] = sd == 2 ? t->shape[2 + off] : 1;
        dst[k][3] = t->shape[t->ndim - 1];
    }
    const int64_t *cin = transposed ? yout : xin, *cout = transposed ? xin : yout;
    g->n = xin[0];
    g->c = cin[1];
    g->h = cin[2];
    g->w = cin[3];
    g->o = cout[1];
    g->oh = cout[2];
    g->ow = cout[3];
    g->kh = sd == 2 ? w->shape[2] : 1;
    g->kw = w->shape[w->ndim - 1];
    g->sh = p[0];
    g->sw = p[1];
    g->dh = p[2];
    g->dw = p[3];
    g->pt = p[4];
    g->pl = p[5];
    g->pb = p[6];
    g->pr = p[7];
    g->groups = p[8];
}

/* ------------------------------------------------------------------ ops */

static et_tensor *conv_op(conv_args *a, et_tensor *x, et_tensor *w, et_tensor *b,
                          const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                          const int64_t *output_padding, int64_t groups)
{
    etc_conv_geom g;
    int64_t oshape[4];
    int ond;
    if (!parse_args(a, stride, padding, dilation, output_padding, groups) ||
        !conv_setup(a, x, w, b, &g, oshape, &ond))
        return NULL;
    et_tensor *xc = etc_contig(x), *wc = etc_contig(w), *bc = b ? etc_contig(b) : NULL;
    et_tensor *out = xc && wc && (bc || !b) ? etc_alloc(oshape, ond) : NULL;
    bool ok = out != NULL;
    if (ok && !a->transposed)
        ok = etc_conv_fwd(&g, xc->data, wc->data, bc ? bc->data : NULL, out->data);
    else if (ok) {
        ok = etc_conv_bwd_data(&g, xc->data, wc->data, out->data);
        if (ok && bc) {
            int64_t plane = g.h * g.w;
            for (int64_t i = 0; i < g.n; i++)
                for (int64_t c = 0; c < g.c; c++) {
                    float *p = out->data + (i * g.c + c) * plane, v = bc->data[c];
                    for (int64_t j = 0; j < plane; j++)
                        p[j] += v;
                }
        }
    }
    etc_release(xc);
    etc_release(wc);
    etc_release(bc);
    if (!ok) {                   /* etc_alloc / scratch set the error */
        etc_release(out);
        return NULL;
    }
    save_geom(out, &g, a);
    et_tensor *ins[3] = {x, w, b};
    return etc_finish(out, a->transposed ? ETC_OP_CONV_TRANSPOSE : ETC_OP_CONV, ins, b ? 3 : 2);
}

et_tensor *et_conv2d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                     const int64_t stride[2], const int64_t padding[2],
                     const int64_t dilation[2], int64_t groups)
{
    conv_args a = {.op = "conv2d", .sd = 2};
    return etc_pooled(conv_op(&a, input, weight, bias, stride, padding, dilation, NULL, groups));
}

et_tensor *et_conv1d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                     const int64_t stride[1], const int64_t padding[1],
                     const int64_t dilation[1], int64_t groups)
{
    conv_args a = {.op = "conv1d", .sd = 1};
    return etc_pooled(conv_op(&a, input, weight, bias, stride, padding, dilation, NULL, groups));
}

et_tensor *et_conv_transpose2d(et_tensor *input, et_tensor *weight, et_tensor *bias,
                               const int64_t stride[2], const int64_t padding[2],
                               const int64_t output_padding[2], int64_t groups,
                               const int64_t dilation[2])
{
    conv_args a = {.op = "conv_transpose2d", .sd = 2, .transposed = true};
    return etc_pooled(conv_op(&a, input, weight, bias, stride, padding, dilation, output_padding,
                              groups));
}

/* ------------------------------------------------------------- backward */

/* Sum of one plane: 16 float lanes (so it vectorises without reassociating
 * a single sum), added up in double. */
ETC_ISA_CLONES("default", "avx2")
static double plane_sum(const float *restrict p, int64_t n)
{
    float acc[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += p[j + l];
    double s = 0.0;
    for (int l = 0; l < 16; l++)
        s += acc[l];
    for (; j < n; j++)
        s += p[j];
    return s;
}

/* Sum of g over every dim but the channel dim (bias gradients). */
static et_tensor *channel_sums(const float *g, int64_t n, int64_t c, int64_t plane,
                               const et_tensor *like)
{
    et_tensor *r = etc_alloc(like->shape, like->ndim);
    if (!r)
        return NULL;
    for (int64_t k = 0; k < c; k++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += plane_sum(g + (i * c + k) * plane, plane);
        r->data[k] = (float)s;
    }
    return r;
}

static bool conv_backward(et_tensor *out, et_tensor *g, et_tensor **gin, bool transposed)
{
    etc_conv_geom geo;
    load_geom(out, transposed, &geo);
    et_tensor *x = out->in[0], *w = out->in[1], *b = out->nin > 2 ? out->in[2] : NULL;
    bool need_x = x->requires_grad, need_w = w->requires_grad, need_b = b && b->requires_grad;
    et_tensor *gc = etc_contig(g);
    et_tensor *wc = need_x ? etc_contig(w) : NULL;
    et_tensor *xc = need_w ? etc_contig(x) : NULL;
    bool ok = gc && (!need_x || wc) && (!need_w || xc);
    if (ok && need_x) {
        gin[0] = etc_alloc(x->shape, x->ndim);
        ok = gin[0] && (transposed ? etc_conv_fwd(&geo, gc->data, wc->data, NULL, gin[0]->data)
                                   : etc_conv_bwd_data(&geo, gc->data, wc->data, gin[0]->data));
    }
    if (ok && need_w) {
        gin[1] = etc_alloc(w->shape, w->ndim);
        /* the forward convolution's input is g for a transposed op */
        ok = gin[1] && (transposed ? etc_conv_bwd_weight(&geo, gc->data, xc->data, gin[1]->data)
                                   : etc_conv_bwd_weight(&geo, xc->data, gc->data, gin[1]->data));
    }
    if (ok && need_b) {
        int64_t ch = transposed ? geo.c : geo.o;
        int64_t plane = transposed ? geo.h * geo.w : geo.oh * geo.ow;
        gin[2] = channel_sums(gc->data, geo.n, ch, plane, b);
        ok = gin[2] != NULL;
    }
    etc_release(gc);
    etc_release(wc);
    etc_release(xc);
    return ok;                   /* on failure the allocation set the error */
}

ETC_BW(conv) { return conv_backward(out, g, gin, false); }
ETC_BW(conv_transpose) { return conv_backward(out, g, gin, true); }
