/* pool.c - max/avg pooling (1-d and 2-d, windowed and adaptive), with
 * PyTorch's CPU semantics exactly:
 *  - output size: floor or ceil of (L + 2 pad - dil (k - 1) - 1) / stride + 1,
 *    and with ceil_mode a last window that would start in the right
 *    padding is dropped (pooling_output_shape in ATen);
 *  - max: padding is never chosen, ties pick the first element of the
 *    window, a NaN wins (the last NaN of the window); the gradient goes to
 *    the chosen element (accumulating where windows overlap); indices are
 *    int64 flat positions in the input plane (h * W + w), as torch;
 *  - avg: the divisor is divisor_override, or the window size clipped to
 *    the padded input (count_include_pad) or to the input itself;
 *  - adaptive: window i of n over L is [floor(i L / n), ceil((i + 1) L / n)).
 * Every op works on the [planes, H, W] view of a contiguous copy of the
 * input (planes = N * C; 1-d ops have H = 1, unbatched inputs N = 1).
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/core_internal.h"
#include "easytorch/conv.h"

typedef struct {
    const char *op;
    int sd;                       /* spatial dims: 1 or 2 */
    bool batched;
    int64_t planes, h, w;         /* input viewed as [planes, h, w] */
    int64_t oh, ow;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
} pool_geom;

enum { POOL_MAX, POOL_AVG };

static char *fmt(const et_tensor *t, char *buf, size_t cap)
{
    return etc_shape_fmt(t->shape, t->ndim, buf, cap);
}

/* Input rank, sizes and the [planes, h, w] view (non-empty but for the batch). */
static bool pool_input(pool_geom *g, const et_tensor *x)
{
    char bx[128];
    if (!etc_null_check(x, g->op))
        return false;
    if (x->ndim != g->sd + 1 && x->ndim != g->sd + 2) {
        et_set_error(ET_ERR_SHAPE, "%s: expected %dD (unbatched) or %dD (batched) input, but got "
                     "input of size %s", g->op, g->sd + 1, g->sd + 2, fmt(x, bx, sizeof bx));
        return false;
    }
    g->batched = x->ndim == g->sd + 2;
    for (int d = g->batched ? 1 : 0; d < x->ndim; d++)
        if (x->shape[d] == 0) {
            et_set_error(ET_ERR_SHAPE, "%s: expected input with non-zero sizes (but for the batch "
                         "dim), but got input of size %s", g->op, fmt(x, bx, sizeof bx));
            return false;
        }
    g->planes = 1;
    for (int d = 0; d < x->ndim - g->sd; d++)
        g->planes *= x->shape[d];
    g->h = g->sd == 2 ? x->shape[x->ndim - 2] : 1;
    g->w = x->shape[x->ndim - 1];
    if (g->h * g->w > INT_MAX) {
        et_set_error(ET_ERR_SHAPE, "%s: input %s is too large", g->op, fmt(x, bx, sizeof bx));
        return false;
    }
    return true;
}

/* PyTorch's pooling_output_shape. */
static int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t dil, bool ceil)
{
    int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil ? s - 1 : 0);
    int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil && (o - 1) * s >= in + pad)
        o--;
    return o;
}

/* The user's per-dim array into the H/W pair (1-d ops: H gets `h_value`). */
static bool read_pair(const pool_geom *g, const int64_t *v, const int64_t *dflt, int64_t h_value,
                      int64_t min, const char *what, int64_t out[2])
{
    for (int i = 0; i < 2; i++)
        out[i] = dflt ? dflt[i] : 0;
    if (g->sd == 1)
        out[0] = h_value;
    for (int i = 0; v && i < g->sd; i++) {
        if (v[i] < min || v[i] > INT_MAX / 4) {
            et_set_error(ET_ERR_ARG, "%s: %s should be %s, but got %lld", g->op, what,
                         min > 0 ? "greater than zero" : "non-negative", (long long)v[i]);
            return false;
        }
        out[2 - g->sd + i] = v[i];
    }
    return true;
}

/* kernel, stride (NULL = kernel), padding, dilation, the checks of ATen's
 * pool2d_shape_check, and the output size. */
static bool pool_window(pool_geom *g, const et_tensor *x, const int64_t *kernel,
                        const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                        bool ceil_mode)
{
    int64_t k[2], s[2], p[2], d[2];
    static const int64_t ones[2] = {1, 1};
    if (!kernel) {
        et_set_error(ET_ERR_ARG, "%s: kernel_size is NULL", g->op);
        return false;
    }
    if (!read_pair(g, kernel, NULL, 1, 1, "kernel_size", k) ||
        !read_pair(g, stride ? stride : kernel, NULL, 1, 1, "stride", s) ||
        !read_pair(g, padding, NULL, 0, 0, "padding", p) ||
        !read_pair(g, dilation, ones, 1, 1, "dilation", d))
        return false;
    if (p[0] > k[0] / 2 || p[1] > k[1] / 2) {
        et_set_error(ET_ERR_ARG, "%s: pad should be smaller than or equal to half of kernel size, "
                     "but got padding %lld x %lld for kernel %lld x %lld", g->op,
                     (long long)p[0], (long long)p[1], (long long)k[0], (long long)k[1]);
        return false;
    }
    g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1];
    g->ph = p[0], g->pw = p[1], g->dh = d[0], g->dw = d[1];
    g->oh = out_size(g->h, g->kh, g->ph, g->sh, g->dh, ceil_mode);
    g->ow = out_size(g->w, g->kw, g->pw, g->sw, g->dw, ceil_mode);
    if (g->oh < 1 || g->ow < 1) {
        char bx[128];
        if (g->sd == 2)
            et_set_error(ET_ERR_SHAPE, "%s: input %s is smaller than kernel %lld x %lld (with "
                         "padding %lld x %lld, dilation %lld x %lld): calculated output size "
                         "(%lld x %lld) is too small", g->op, fmt(x, bx, sizeof bx),
                         (long long)g->kh, (long long)g->kw, (long long)g->ph, (long long)g->pw,
                         (long long)g->dh, (long long)g->dw, (long long)g->oh, (long long)g->ow);
        else
            et_set_error(ET_ERR_SHAPE, "%s: input %s is smaller than kernel %lld (with padding "
                         "%lld, dilation %lld): calculated output size %lld is too small", g->op,
                         fmt(x, bx, sizeof bx), (long long)g->kw, (long long)g->pw,
                         (long long)g->dw, (long long)g->ow);
        return false;
    }
    return true;
}

/* Output tensor: x's leading dims, then (oh,) ow. */
static et_tensor *pool_out(const pool_geom *g, const et_tensor *x, int dtype)
{
    int64_t shape[ET_MAX_DIMS];
    int nd = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)nd);
    if (g->sd == 2)
        shape[nd - 2] = g->oh;
    shape[nd - 1] = g->ow;
    return etc_alloc_dtype(shape, nd, dtype);
}

/* Node parameters of a windowed pool (aux.i). */
enum { A_KH, A_KW, A_SH, A_SW, A_PH, A_PW, A_DH, A_DW, A_SD, A_CIP, A_DIV };

static void save_window(et_tensor *out, const pool_geom *g)
{
    int *p = out->aux.i;
    p[A_KH] = (int)g->kh, p[A_KW] = (int)g->kw, p[A_SH] = (int)g->sh, p[A_SW] = (int)g->sw;
    p[A_PH] = (int)g->ph, p[A_PW] = (int)g->pw, p[A_DH] = (int)g->dh, p[A_DW] = (int)g->dw;
    p[A_SD] = g->sd;
}

static void load_geom(const et_tensor *out, pool_geom *g)
{
    const et_tensor *x = out->in[0];
    const int *p = out->aux.i;
    g->sd = p[A_SD];
    g->planes = 1;
    for (int d = 0; d < x->ndim - g->sd; d++)
        g->planes *= x->shape[d];
    g->h = g->sd == 2 ? x->shape[x->ndim - 2] : 1;
    g->w = x->shape[x->ndim - 1];
    g->oh = g->sd == 2 ? out->shape[out->ndim - 2] : 1;
    g->ow = out->shape[out->ndim - 1];
    g->kh = p[A_KH], g->kw = p[A_KW], g->sh = p[A_SH], g->sw = p[A_SW];
    g->ph = p[A_PH], g->pw = p[A_PW], g->dh = p[A_DH], g->dw = p[A_DW];
}

/* ------------------------------------------------------------------ max */

/* Max over the window rows [h0, h1) step dh, cols [w0, w1) step dw of one
 * plane: ATen's loop (first index of the clipped window, -inf, then
 * `val > max || isnan(val)`). */
static inline void window_max(const float *x, int64_t W, int64_t h0, int64_t h1, int64_t dh,
                              int64_t w0, int64_t w1, int64_t dw, float *out, int64_t *idx)
{
    int64_t best = h0 * W + w0;
    float m = -INFINITY;
    for (int64_t i = h0; i < h1; i += dh)
        for (int64_t j = w0; j < w1; j += dw) {
            float v = x[i * W + j];
            if (v > m || isnan(v)) {
                m = v;
                best = i * W + j;
            }
        }
    *out = m;
    *idx = best;
}

/* First tap at or after 0 of a window starting at `start`, step `d`. */
static inline int64_t first_tap(int64_t start, int64_t d)
{
    while (start < 0)
        start += d;
    return start;
}

/* The common window (2x2, stride 2, no padding or dilation), n windows of
 * one output row whose input rows are r0 and r1 (column 0 at base):
 * branch-free so that it vectorises (random data mispredicts a branchy max
 * half the time: 7 ns per compare, 19% of a LeNet training step).  Starting
 * from the window's first element is ATen's -inf start: a NaN or -inf
 * there ends up the same. */
ETC_ISA_CLONES("default", "avx2")
static void max2x2_row(const float *restrict r0, const float *restrict r1, int64_t n, int64_t W,
                       int64_t base, float *restrict y, int64_t *restrict ix)
{
    for (int64_t j = 0; j < n; j++) {
        float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
        float m = a;
        int64_t k = 0;
        bool s = b > m || b != b;
        m = etc_sel(s, b, m);
        k = s ? 1 : k;
        s = c > m || c != c;
        m = etc_sel(s, c, m);
        k = s ? W : k;
        s = d > m || d != d;
        m = etc_sel(s, d, m);
        k = s ? W + 1 : k;
        y[j] = m;
        ix[j] = base + 2 * j + k;
    }
}

static void max_pool_kernel(const pool_geom *g, const float *x, float *y, int64_t *ix)
{
    const int64_t HW = g->h * g->w, OHW = g->oh * g->ow;
    bool k22 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->dh == 1 &&
               g->dw == 1 && g->ph == 0 && g->pw == 0;
    int64_t full = k22 ? g->w / 2 : 0;      /* windows of a row inside the input */
    if (full > g->ow)
        full = g->ow;
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x + p * HW;
        float *yp = y + p * OHW;
        int64_t *ip = ix + p * OHW;
        for (int64_t oh = 0; oh < g->oh; oh++) {
            int64_t hs = oh * g->sh - g->ph;
            int64_t he = hs + (g->kh - 1) * g->dh + 1;
            if (he > g->h)
                he = g->h;
            int64_t h0 = first_tap(hs, g->dh), ow0 = 0;
            if (k22 && hs + 1 < g->h) {
                max2x2_row(xp + hs * g->w, xp + (hs + 1) * g->w, full, g->w, hs * g->w,
                           yp + oh * g->ow, ip + oh * g->ow);
                ow0 = full;
            }
            for (int64_t ow = ow0; ow < g->ow; ow++) {
                int64_t ws = ow * g->sw - g->pw;
                int64_t we = ws + (g->kw - 1) * g->dw + 1;
                if (we > g->w)
                    we = g->w;
                window_max(xp, g->w, h0, he, g->dh, first_tap(ws, g->dw), we, g->dw,
                           &yp[oh * g->ow + ow], &ip[oh * g->ow + ow]);
            }
        }
    }
}

/* Shared tail of the max pools: record, keep the indices for backward,
 * hand them to the caller if asked. */
static et_tensor *max_finish(et_tensor *out, et_tensor *ix, int op, et_tensor *x,
                             et_tensor **indices)
{
    if (!etc_record(out, op, &x, 1)) {
        etc_release(out);
        etc_release(ix);
        return NULL;
    }
    if (out->requires_grad)
        out->saved = etc_ref(ix);
    if (indices)
        *indices = etc_pooled(ix);
    else
        etc_release(ix);
    return etc_pooled(out);
}

static et_tensor *max_pool(pool_geom *g, et_tensor *x, const int64_t *kernel,
                           const int64_t *stride, const int64_t *padding,
                           const int64_t *dilation, bool ceil_mode, et_tensor **indices)
{
    if (indices)
        *indices = NULL;
    if (!pool_input(g, x) || !pool_window(g, x, kernel, stride, padding, dilation, ceil_mode))
        return NULL;
    et_tensor *xc = etc_contig(x);
    et_tensor *out = xc ? pool_out(g, x, ET_FLOAT32) : NULL;
    et_tensor *ix = out ? pool_out(g, x, ET_INT64) : NULL;
    if (!ix) {
        etc_release(xc);
        etc_release(out);
        return NULL;
    }
    max_pool_kernel(g, xc->data, out->data, etc_idata(ix));
    etc_release(xc);
    save_window(out, g);
    return max_finish(out, ix, ETC_OP_MAX_POOL, x, indices);
}

et_tensor *et_max_pool2d(et_tensor *input, const int64_t kernel_size[2], const int64_t stride[2],
                         const int64_t padding[2], const int64_t dilation[2], bool ceil_mode,
                         et_tensor **indices)
{
    pool_geom g = {.op = "max_pool2d", .sd = 2};
    return max_pool(&g, input, kernel_size, stride, padding, dilation, ceil_mode, indices);
}

et_tensor *et_max_pool1d(et_tensor *input, const int64_t kernel_size[1], const int64_t stride[1],
                         const int64_t padding[1], const int64_t dilation[1], bool ceil_mode,
                         et_tensor **indices)
{
    pool_geom g = {.op = "max_pool1d", .sd = 1};
    return max_pool(&g, input, kernel_size, stride, padding, dilation, ceil_mode, indices);
}

/* Max pools (windowed and adaptive): the gradient goes to the saved index. */
ETC_BW(max_pool)
{
    et_tensor *x = out->in[0], *gz, *gc;
    if (!etc_scatter_begin(x, g, &gz, &gc))
        return false;
    int64_t sd = out->op == ETC_OP_MAX_POOL ? out->aux.i[A_SD] : out->aux.i[0];
    int64_t HW = x->shape[x->ndim - 1] * (sd == 2 ? x->shape[x->ndim - 2] : 1);
    int64_t OHW = out->shape[out->ndim - 1] * (sd == 2 ? out->shape[out->ndim - 2] : 1);
    int64_t planes = OHW != 0 ? out->numel / OHW : 0;
    const int64_t *ix = etc_idata(out->saved);
    for (int64_t p = 0; p < planes; p++) {
        float *d = gz->data + p * HW;
        const float *s = gc->data + p * OHW;
        const int64_t *ip = ix + p * OHW;
        for (int64_t j = 0; j < OHW; j++)
            d[ip[j]] += s[j];
    }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

/* ------------------------------------------------------------------ avg */

/* ATen's cpu_avg_pool window: clipped to the padded input for the
 * count_include_pad size, then to the input for the sum. */
typedef struct {
    int64_t h0, h1, w0, w1;
    float div;                    /* 0: empty window (output 0) */
} avg_window;

static inline avg_window avg_win(const pool_geom *g, int64_t oh, int64_t ow, bool cip, int div)
{
    avg_window r;
    int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
    int64_t h1 = h0 + g->kh, w1 = w0 + g->kw;
    if (h1 > g->h + g->ph)
        h1 = g->h + g->ph;
    if (w1 > g->w + g->pw)
        w1 = g->w + g->pw;
    int64_t pool = (h1 - h0) * (w1 - w0);
    r.h0 = h0 < 0 ? 0 : h0;
    r.w0 = w0 < 0 ? 0 : w0;
    r.h1 = h1 > g->h ? g->h : h1;
    r.w1 = w1 > g->w ? g->w : w1;
    if (r.h0 >= r.h1 || r.w0 >= r.w1)
        r.div = 0.0f;
    else
        r.div = div ? (float)div : (float)(cip ? pool : (r.h1 - r.h0) * (r.w1 - r.w0));
    return r;
}

static et_tensor *avg_pool(pool_geom *g, et_tensor *x, const int64_t *kernel,
                           const int64_t *stride, const int64_t *padding, bool ceil_mode,
                           bool count_include_pad, int64_t divisor_override)
{
    if (!pool_input(g, x) || !pool_window(g, x, kernel, stride, padding, NULL, ceil_mode))
        return NULL;
    if (divisor_override < INT_MIN || divisor_override > INT_MAX) {
        et_set_error(ET_ERR_ARG, "%s: divisor_override %lld is out of range", g->op,
                     (long long)divisor_override);
        return NULL;
    }
    et_tensor *xc = etc_contig(x);
    et_tensor *out = xc ? pool_out(g, x, ET_FLOAT32) : NULL;
    if (!out) {
        etc_release(xc);
        return NULL;
    }
    const int64_t HW = g->h * g->w, OHW = g->oh * g->ow;
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = xc->data + p * HW;
        float *yp = out->data + p * OHW;
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                avg_window r = avg_win(g, oh, ow, count_include_pad, (int)divisor_override);
                float s = 0.0f;
                for (int64_t i = r.h0; i < r.h1; i++)
                    for (int64_t j = r.w0; j < r.w1; j++)
                        s += xp[i * g->w + j];
                yp[oh * g->ow + ow] = r.div != 0.0f ? s / r.div : 0.0f;
            }
    }
    etc_release(xc);
    save_window(out, g);
    out->aux.i[A_CIP] = count_include_pad;
    out->aux.i[A_DIV] = (int)divisor_override;
    return etc_pooled(etc_finish(out, ETC_OP_AVG_POOL, &x, 1));
}

et_tensor *et_avg_pool2d(et_tensor *input, const int64_t kernel_size[2], const int64_t stride[2],
                         const int64_t padding[2], bool ceil_mode, bool count_include_pad,
                         int64_t divisor_override)
{
    pool_geom g = {.op = "avg_pool2d", .sd = 2};
    return avg_pool(&g, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override);
}

et_tensor *et_avg_pool1d(et_tensor *input, const int64_t kernel_size[1], const int64_t stride[1],
                         const int64_t padding[1], bool ceil_mode, bool count_include_pad)
{
    pool_geom g = {.op = "avg_pool1d", .sd = 1};
    return avg_pool(&g, input, kernel_size, stride, padding, ceil_mode, count_include_pad, 0);
}

ETC_BW(avg_pool)
{
    et_tensor *x = out->in[0];
    pool_geom geo;
    load_geom(out, &geo);
    bool cip = out->aux.i[A_CIP];
    int div = out->aux.i[A_DIV];
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(x, g, &gz, &gc))
        return false;
    const int64_t HW = geo.h * geo.w, OHW = geo.oh * geo.ow;
    for (int64_t p = 0; p < geo.planes; p++) {
        float *d = gz->data + p * HW;
        const float *s = gc->data + p * OHW;
        for (int64_t oh = 0; oh < geo.oh; oh++)
            for (int64_t ow = 0; ow < geo.ow; ow++) {
                avg_window r = avg_win(&geo, oh, ow, cip, div);
                if (r.div == 0.0f)
                    continue;
                float v = s[oh * geo.ow + ow] / r.div;
                for (int64_t i = r.h0; i < r.h1; i++)
                    for (int64_t j = r.w0; j < r.w1; j++)
                        d[i * geo.w + j] += v;
            }
    }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

/* ------------------------------------------------------------- adaptive */

static inline int64_t ad_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
static inline int64_t ad_end(int64_t i, int64_t in, int64_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

/* output_size entries: >= 0, or -1 = the input's size (torch's None). */
static bool adaptive_size(pool_geom *g, const et_tensor *x, const int64_t *output_size)
{
    if (!output_size) {
        et_set_error(ET_ERR_ARG, "%s: output_size is NULL", g->op);
        return false;
    }
    int64_t o[2] = {1, 1};
    for (int i = 0; i < g->sd; i++) {
        int64_t v = output_size[i];
        if (v < -1 || v > INT_MAX) {
            et_set_error(ET_ERR_ARG, "%s: elements of output_size must be greater than or equal "
                         "to 0 (or -1 for the input size), but got %lld", g->op, (long long)v);
            return false;
        }
        o[2 - g->sd + i] = v == -1 ? (i == g->sd - 1 ? g->w : g->h) : v;
    }
    g->oh = o[0];
    g->ow = o[1];
    return true;
}

static et_tensor *adaptive_pool(pool_geom *g, et_tensor *x, const int64_t *output_size, int kind,
                                et_tensor **indices)
{
    if (indices)
        *indices = NULL;
    if (!pool_input(g, x) || !adaptive_size(g, x, output_size))
        return NULL;
    et_tensor *xc = etc_contig(x);
    et_tensor *out = xc ? pool_out(g, x, ET_FLOAT32) : NULL;
    et_tensor *ix = out && kind == POOL_MAX ? pool_out(g, x, ET_INT64) : NULL;
    if (!out || (kind == POOL_MAX && !ix)) {
        etc_release(xc);
        etc_release(out);
        return NULL;
    }
    const int64_t HW = g->h * g->w, OHW = g->oh * g->ow;
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = xc->data + p * HW;
        float *yp = out->data + p * OHW;
        for (int64_t oh = 0; oh < g->oh; oh++) {
            int64_t h0 = ad_start(oh, g->h, g->oh), h1 = ad_end(oh, g->h, g->oh);
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t w0 = ad_start(ow, g->w, g->ow), w1 = ad_end(ow, g->w, g->ow);
                if (kind == POOL_MAX) {
                    window_max(xp, g->w, h0, h1, 1, w0, w1, 1, &yp[oh * g->ow + ow],
                               &etc_idata(ix)[p * OHW + oh * g->ow + ow]);
                    continue;
                }
                float s = 0.0f;
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++)
                        s += xp[i * g->w + j];
                yp[oh * g->ow + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
    etc_release(xc);
    out->aux.i[0] = g->sd;
    if (kind == POOL_MAX)
        return max_finish(out, ix, ETC_OP_ADAPTIVE_MAX_POOL, x, indices);
    return etc_pooled(etc_finish(out, ETC_OP_ADAPTIVE_AVG_POOL, &x, 1));
}

et_tensor *et_adaptive_avg_pool2d(et_tensor *input, const int64_t output_size[2])
{
    pool_geom g = {.op = "adaptive_avg_pool2d", .sd = 2};
    return adaptive_pool(&g, input, output_size, POOL_AVG, NULL);
}

et_tensor *et_adaptive_avg_pool1d(et_tensor *input, const int64_t output_size[1])
{
    pool_geom g = {.op = "adaptive_avg_pool1d", .sd = 1};
    return adaptive_pool(&g, input, output_size, POOL_AVG, NULL);
}

et_tensor *et_adaptive_max_pool2d(et_tensor *input, const int64_t output_size[2],
                                  et_tensor **indices)
{
    pool_geom g = {.op = "adaptive_max_pool2d", .sd = 2};
    return adaptive_pool(&g, input, output_size, POOL_MAX, indices);
}

et_tensor *et_adaptive_max_pool1d(et_tensor *input, const int64_t output_size[1],
                                  et_tensor **indices)
{
    pool_geom g = {.op = "adaptive_max_pool1d", .sd = 1};
    return adaptive_pool(&g, input, output_size, POOL_MAX, indices);
}

ETC_BW(adaptive_avg_pool)
{
    et_tensor *x = out->in[0];
    int sd = out->aux.i[0];
    int64_t H = sd == 2 ? x->shape[x->ndim - 2] : 1, W = x->shape[x->ndim - 1];
    int64_t OH = sd == 2 ? out->shape[out->ndim - 2] : 1, OW = out->shape[out->ndim - 1];
    int64_t planes = OH * OW != 0 ? out->numel / (OH * OW) : 0;
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(x, g, &gz, &gc))
        return false;
    for (int64_t p = 0; p < planes; p++) {
        float *d = gz->data + p * H * W;
        const float *s = gc->data + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);
                float v = s[oh * OW + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++)
                        d[i * W + j] += v;
            }
        }
    }
    etc_release(gc);
    gin[0] = gz;
    return true;
}
