/* conv_im2col.c - convolution as im2col + sgemm (Caffe, ggml), and the
 * unfold/fold ops built on the same two copies.
 *
 * The three passes of conv_internal.h, per group g (Og = o / groups output
 * channels, Cg = c / groups input channels, K = Cg kh kw):
 *   fwd          Y_g [Og, cols]  = W_g [Og, K] @ col_g [K, cols]
 *   bwd_data     dcol_g [K, cols] = W_g^T @ dY_g [Og, cols];  col2im
 *   bwd_weight   dW_g [Og, K]   += dY_g @ col_g^T
 * where cols = nb * oh * ow for a chunk of nb images.  One image per chunk
 * when its output plane is large (Y is then written in place); small planes
 * (LeNet's 10x10) are batched so each sgemm is wide enough to run at speed,
 * at the cost of a transposing copy between [nb, O, ohw] and [O, nb, ohw].
 * Scratch buffers come from etc_alloc, i.e. the per-thread storage cache,
 * so training steps reuse them.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "core/conv_internal.h"
#include "easytorch/conv.h"

/* Columns a chunk aims for, and the most floats its col buffer may take
 * beyond one image's. */
#define CHUNK_COLS 1024
#define CHUNK_MAX_FLOATS (4 << 20)

static et_tensor *scratch(int64_t n)
{
    int64_t shape[1] = {n > 0 ? n : 1};
    return etc_alloc(shape, 1);
}

static int64_t chunk_images(const etc_conv_geom *g)
{
    int64_t ohw = g->oh * g->ow, k = g->c * g->kh * g->kw;
    if (ohw >= CHUNK_COLS || g->n <= 1)
        return 1;
    int64_t nb = (CHUNK_COLS + ohw - 1) / ohw;
    while (nb > 1 && k * nb * ohw > CHUNK_MAX_FLOATS)
        nb--;
    return nb < g->n ? nb : g->n;
}

/* The output columns [lo, hi) whose tap at input offset `off` (+ o * s)
 * lands inside [0, size). */
static void valid_range(int64_t off, int64_t s, int64_t size, int64_t n, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = 0, b = n;
    if (off < 0)
        a = (-off + s - 1) / s;
    if (off + (b - 1) * s >= size)
        b = off >= size ? 0 : (size - off + s - 1) / s;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

void etc_im2col(const etc_conv_geom *g, const float *x, int64_t nb, float *col)
{
    const int64_t ohw = g->oh * g->ow, rs = nb * ohw, plane = g->h * g->w;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                float *row = col + ((c * g->kh + ki) * g->kw + kj) * rs;
                int64_t ih0 = ki * g->dh - g->pt, iw0 = kj * g->dw - g->pl;
                int64_t lo, hi;
                valid_range(iw0, g->sw, g->w, g->ow, &lo, &hi);
                for (int64_t i = 0; i < nb; i++) {
                    const float *xp = x + (i * g->c + c) * plane;
                    float *d = row + i * ohw;
                    for (int64_t oh = 0; oh < g->oh; oh++, d += g->ow) {
                        int64_t ih = ih0 + oh * g->sh;
                        if (ih < 0 || ih >= g->h) {
                            memset(d, 0, (size_t)g->ow * sizeof *d);
                            continue;
                        }
                        /* taps index from the row start: iw0 may be negative */
                        const float *s = xp + ih * g->w;
                        for (int64_t ow = 0; ow < lo; ow++)
                            d[ow] = 0.0f;
                        if (g->sw == 1)
                            memcpy(d + lo, s + iw0 + lo, (size_t)(hi - lo) * sizeof *d);
                        else
                            for (int64_t ow = lo; ow < hi; ow++)
                                d[ow] = s[iw0 + ow * g->sw];
                        for (int64_t ow = hi; ow < g->ow; ow++)
                            d[ow] = 0.0f;
                    }
                }
            }
}

void etc_col2im(const etc_conv_geom *g, const float *col, int64_t nb, float *dx)
{
    const int64_t ohw = g->oh * g->ow, rs = nb * ohw, plane = g->h * g->w;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const float *row = col + ((c * g->kh + ki) * g->kw + kj) * rs;
                int64_t ih0 = ki * g->dh - g->pt, iw0 = kj * g->dw - g->pl;
                int64_t lo, hi;
                valid_range(iw0, g->sw, g->w, g->ow, &lo, &hi);
                for (int64_t i = 0; i < nb; i++) {
                    float *xp = dx + (i * g->c + c) * plane;
                    const float *s = row + i * ohw;
                    for (int64_t oh = 0; oh < g->oh; oh++, s += g->ow) {
                        int64_t ih = ih0 + oh * g->sh;
                        if (ih < 0 || ih >= g->h)
                            continue;
                        float *d = xp + ih * g->w;
                        if (g->sw == 1)
                            for (int64_t ow = lo; ow < hi; ow++)
                                d[iw0 + ow] += s[ow];
                        else
                            for (int64_t ow = lo; ow < hi; ow++)
                                d[iw0 + ow * g->sw] += s[ow];
                    }
                }
            }
}

/* [nb, o, ohw] <-> [o, nb, ohw] */
static void to_channel_major(const float *src, int64_t nb, int64_t o, int64_t ohw, float *dst)
{
    for (int64_t i = 0; i < nb; i++)
        for (int64_t c = 0; c < o; c++)
            memcpy(dst + (c * nb + i) * ohw, src + (i * o + c) * ohw, (size_t)ohw * sizeof *dst);
}

/* The scratch of one pass: the column buffer of a chunk, and for batched
 * chunks the channel-major copy of the output (or output gradient). */
typedef struct {
    int64_t nb0;                /* images per chunk */
    et_tensor *col, *tmp;
} chunks;

static bool chunks_begin(const etc_conv_geom *g, chunks *c)
{
    int64_t ohw = g->oh * g->ow;
    c->nb0 = chunk_images(g);
    c->col = scratch(g->c * g->kh * g->kw * c->nb0 * ohw);
    c->tmp = c->nb0 > 1 ? scratch(g->o * c->nb0 * ohw) : NULL;
    if (c->col && (c->nb0 == 1 || c->tmp))
        return true;
    etc_release(c->col);
    return false;
}

static void chunks_end(chunks *c)
{
    etc_release(c->col);
    etc_release(c->tmp);
}

/* dy of images [n0, n0 + nb) as [o, nb ohw]: in place for one image, else
 * the copy in c->tmp. */
static const float *dy_chunk(const chunks *c, const etc_conv_geom *g, const float *dy,
                             int64_t n0, int64_t nb)
{
    const int64_t ohw = g->oh * g->ow;
    const float *d = dy + n0 * g->o * ohw;
    if (c->nb0 == 1)
        return d;
    to_channel_major(d, nb, g->o, ohw, c->tmp->data);
    return c->tmp->data;
}

bool etc_conv_fwd_im2col(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow;
    chunks ch;
    if (g->n == 0 || ohw == 0)
        return true;
    if (!chunks_begin(g, &ch))
        return false;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch.nb0) {
        int64_t nb = g->n - n0 < ch.nb0 ? g->n - n0 : ch.nb0, cols = nb * ohw;
        etc_im2col(g, x + n0 * g->c * g->h * g->w, nb, ch.col->data);
        float *out = ch.nb0 > 1 ? ch.tmp->data : y + n0 * g->o * ohw;
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)og, (int)cols, (int)k,
                        1.0f, w + gi * og * k, (int)k, ch.col->data + gi * k * cols, (int)cols,
                        0.0f, out + gi * og * cols, (int)cols);
        /* bias, and back from [o, nb, ohw] to [nb, o, ohw] for a batched chunk */
        for (int64_t i = 0; i < nb; i++)
            for (int64_t c = 0; c < g->o; c++) {
                float *dst = y + ((n0 + i) * g->o + c) * ohw;
                const float *src = out + (c * nb + i) * ohw;
                float bc = b ? b[c] : 0.0f;
                if (ch.nb0 > 1)
                    for (int64_t j = 0; j < ohw; j++)
                        dst[j] = src[j] + bc;
                else if (b)
                    for (int64_t j = 0; j < ohw; j++)
                        dst[j] += bc;
            }
    }
    chunks_end(&ch);
    return true;
}

bool etc_conv_bwd_data_im2col(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow;
    chunks ch;
    memset(dx, 0, (size_t)(g->n * g->c * g->h * g->w) * sizeof *dx);
    if (g->n == 0 || ohw == 0)
        return true;
    if (!chunks_begin(g, &ch))
        return false;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch.nb0) {
        int64_t nb = g->n - n0 < ch.nb0 ? g->n - n0 : ch.nb0, cols = nb * ohw;
        const float *d = dy_chunk(&ch, g, dy, n0, nb);
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)cols, (int)og,
                        1.0f, w + gi * og * k, (int)k, d + gi * og * cols, (int)cols, 0.0f,
                        ch.col->data + gi * k * cols, (int)cols);
        etc_col2im(g, ch.col->data, nb, dx + n0 * g->c * g->h * g->w);
    }
    chunks_end(&ch);
    return true;
}

bool etc_conv_bwd_weight_im2col(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow;
    chunks ch;
    memset(dw, 0, (size_t)(g->o * k) * sizeof *dw);
    if (g->n == 0 || ohw == 0)
        return true;
    if (!chunks_begin(g, &ch))
        return false;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch.nb0) {
        int64_t nb = g->n - n0 < ch.nb0 ? g->n - n0 : ch.nb0, cols = nb * ohw;
        const float *d = dy_chunk(&ch, g, dy, n0, nb);
        etc_im2col(g, x + n0 * g->c * g->h * g->w, nb, ch.col->data);
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)og, (int)k, (int)cols, 1.0f,
                        d + gi * og * cols, (int)cols, ch.col->data + gi * k * cols, (int)cols,
                        1.0f, dw + gi * og * k, (int)k);
    }
    chunks_end(&ch);
    return true;
}

/* ------------------------------------------------------- unfold / fold */

/* Node parameters (aux.i) of unfold and fold. */
enum { U_KH, U_KW, U_DH, U_DW, U_PH, U_PW, U_SH, U_SW, U_BATCHED };

typedef struct {
    const char *op;
    int64_t k[2], d[2], p[2], s[2];
} fold_args;

static bool fold_pair(const fold_args *a, const int64_t *v, int64_t dflt, int64_t min,
                      const char *what, int64_t out[2])
{
    out[0] = out[1] = dflt;
    for (int i = 0; v && i < 2; i++) {
        if (v[i] < min || v[i] > INT_MAX / 4) {
            et_set_error(ET_ERR_ARG, "%s: %s should be %s, but got %lld", a->op, what,
                         min > 0 ? "greater than zero" : "non-negative", (long long)v[i]);
            return false;
        }
        out[i] = v[i];
    }
    return true;
}

static bool fold_parse(fold_args *a, const int64_t *kernel, const int64_t *dilation,
                       const int64_t *padding, const int64_t *stride)
{
    if (!kernel) {
        et_set_error(ET_ERR_ARG, "%s: kernel_size is NULL", a->op);
        return false;
    }
    return fold_pair(a, kernel, 1, 1, "kernel_size", a->k) &&
           fold_pair(a, dilation, 1, 1, "dilation", a->d) &&
           fold_pair(a, padding, 0, 0, "padding", a->p) &&
           fold_pair(a, stride, 1, 1, "stride", a->s);
}

/* The geometry of one image: c channels of h x w, blocks oh x ow. */
static bool fold_geom(const fold_args *a, int64_t c, int64_t h, int64_t w, etc_conv_geom *g)
{
    memset(g, 0, sizeof *g);
    g->n = 1, g->c = c, g->h = h, g->w = w, g->o = c, g->groups = 1;
    g->kh = a->k[0], g->kw = a->k[1], g->dh = a->d[0], g->dw = a->d[1];
    g->pt = g->pb = a->p[0], g->pl = g->pr = a->p[1], g->sh = a->s[0], g->sw = a->s[1];
    int64_t eh = g->dh * (g->kh - 1) + 1, ew = g->dw * (g->kw - 1) + 1;
    int64_t nh = h + 2 * g->pt - eh, nw = w + 2 * g->pl - ew;
    g->oh = nh < 0 ? 0 : nh / g->sh + 1;
    g->ow = nw < 0 ? 0 : nw / g->sw + 1;
    if (g->oh < 1 || g->ow < 1) {
        et_set_error(ET_ERR_SHAPE, "%s: given input with spatial size (%lld, %lld), kernel_size="
                     "(%lld, %lld), dilation=(%lld, %lld), padding=(%lld, %lld), calculated shape "
                     "of the array of sliding blocks as (%lld, %lld), but its components must be "
                     "at least one", a->op, (long long)h, (long long)w, (long long)g->kh,
                     (long long)g->kw, (long long)g->dh, (long long)g->dw, (long long)g->pt,
                     (long long)g->pl, (long long)(nh < 0 ? 0 : g->oh),
                     (long long)(nw < 0 ? 0 : g->ow));
        return false;
    }
    if (g->oh * g->ow > INT_MAX / 2 || c * g->kh * g->kw > INT_MAX / 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input is too large", a->op);
        return false;
    }
    return true;
}

static void fold_save(et_tensor *out, const fold_args *a, bool batched)
{
    int *p = out->aux.i;
    p[U_KH] = (int)a->k[0], p[U_KW] = (int)a->k[1], p[U_DH] = (int)a->d[0];
    p[U_DW] = (int)a->d[1], p[U_PH] = (int)a->p[0], p[U_PW] = (int)a->p[1];
    p[U_SH] = (int)a->s[0], p[U_SW] = (int)a->s[1], p[U_BATCHED] = batched;
}

static void fold_load(const et_tensor *out, fold_args *a)
{
    const int *p = out->aux.i;
    a->k[0] = p[U_KH], a->k[1] = p[U_KW], a->d[0] = p[U_DH], a->d[1] = p[U_DW];
    a->p[0] = p[U_PH], a->p[1] = p[U_PW], a->s[0] = p[U_SH], a->s[1] = p[U_SW];
}

/* [n, c, h, w] -> [n, c kh kw, L]: one etc_im2col per image (its layout is
 * unfold's).  x contiguous. */
static void unfold_raw(const etc_conv_geom *g, int64_t n, const float *x, float *col)
{
    int64_t chw = g->c * g->h * g->w, cols = g->c * g->kh * g->kw * g->oh * g->ow;
    for (int64_t i = 0; i < n; i++)
        etc_im2col(g, x + i * chw, 1, col + i * cols);
}

static void fold_raw(const etc_conv_geom *g, int64_t n, const float *col, float *x)
{
    int64_t chw = g->c * g->h * g->w, cols = g->c * g->kh * g->kw * g->oh * g->ow;
    memset(x, 0, (size_t)(n * chw) * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        etc_col2im(g, col + i * cols, 1, x + i * chw);
}

et_tensor *et_unfold(et_tensor *input, const int64_t kernel_size[2], const int64_t dilation[2],
                     const int64_t padding[2], const int64_t stride[2])
{
    fold_args a = {.op = "unfold"};
    char bx[128];
    if (!etc_null_check(input, a.op) || !fold_parse(&a, kernel_size, dilation, padding, stride))
        return NULL;
    const et_tensor *x = input;
    bool batched = x->ndim == 4;
    bool empty = false;
    for (int d = batched ? 1 : 0; d < x->ndim; d++)
        empty = empty || x->shape[d] == 0;
    if ((x->ndim != 3 && x->ndim != 4) || empty) {
        et_set_error(ET_ERR_SHAPE, "unfold: expected 3D or 4D (batch mode) tensor with possibly 0 "
                     "batch size and other non-zero dimensions for input, but got: %s",
                     etc_shape_fmt(x->shape, x->ndim, bx, sizeof bx));
        return NULL;
    }
    int64_t n = batched ? x->shape[0] : 1;
    etc_conv_geom g;
    if (!fold_geom(&a, x->shape[x->ndim - 3], x->shape[x->ndim - 2], x->shape[x->ndim - 1], &g))
        return NULL;
    int64_t shape[3] = {n, g.c * g.kh * g.kw, g.oh * g.ow};
    et_tensor *xc = etc_contig(input);
    et_tensor *out = xc ? etc_alloc(batched ? shape : shape + 1, batched ? 3 : 2) : NULL;
    if (out)
        unfold_raw(&g, n, xc->data, out->data);
    etc_release(xc);
    if (!out)
        return NULL;
    fold_save(out, &a, batched);
    return etc_pooled(etc_finish(out, ETC_OP_UNFOLD, &input, 1));
}

et_tensor *et_fold(et_tensor *input, const int64_t output_size[2], const int64_t kernel_size[2],
                   const int64_t dilation[2], const int64_t padding[2], const int64_t stride[2])
{
    fold_args a = {.op = "fold"};
    char bx[128];
    if (!etc_null_check(input, a.op) || !fold_parse(&a, kernel_size, dilation, padding, stride))
        return NULL;
    if (!output_size || output_size[0] < 1 || output_size[1] < 1 ||
        output_size[0] > INT_MAX / 4 || output_size[1] > INT_MAX / 4) {
        et_set_error(ET_ERR_ARG, "fold: output_size should be positive");
        return NULL;
    }
    const et_tensor *x = input;
    bool batched = x->ndim == 3;
    bool empty = false;
    for (int d = batched ? 1 : 0; d < x->ndim; d++)
        empty = empty || x->shape[d] == 0;
    if ((x->ndim != 2 && x->ndim != 3) || empty) {
        et_set_error(ET_ERR_SHAPE, "fold: expected 2D or 3D (batch mode) tensor for input with "
                     "possibly 0 batch size and non-zero dimensions for input, but got: %s",
                     etc_shape_fmt(x->shape, x->ndim, bx, sizeof bx));
        return NULL;
    }
    int64_t rows = x->shape[x->ndim - 2], L = x->shape[x->ndim - 1], kk = a.k[0] * a.k[1];
    if (rows % kk != 0) {
        et_set_error(ET_ERR_SHAPE, "fold: expected size of input's dimension %d to be divisible "
                     "by the product of kernel_size, but got input.size(%d)=%lld and "
                     "kernel_size=(%lld, %lld) (input %s)", x->ndim - 2, x->ndim - 2,
                     (long long)rows, (long long)a.k[0], (long long)a.k[1],
                     etc_shape_fmt(x->shape, x->ndim, bx, sizeof bx));
        return NULL;
    }
    etc_conv_geom g;
    if (!fold_geom(&a, rows / kk, output_size[0], output_size[1], &g))
        return NULL;
    if (L != g.oh * g.ow) {
        et_set_error(ET_ERR_SHAPE, "fold: given output_size=(%lld, %lld), kernel_size=(%lld, "
                     "%lld), dilation=(%lld, %lld), padding=(%lld, %lld), stride=(%lld, %lld), "
                     "expected size of input's dimension %d to match the calculated number of "
                     "sliding blocks %lld * %lld = %lld, but got input.size(%d)=%lld",
                     (long long)output_size[0], (long long)output_size[1], (long long)a.k[0],
                     (long long)a.k[1], (long long)a.d[0], (long long)a.d[1], (long long)a.p[0],
                     (long long)a.p[1], (long long)a.s[0], (long long)a.s[1], x->ndim - 1,
                     (long long)g.oh, (long long)g.ow, (long long)(g.oh * g.ow), x->ndim - 1,
                     (long long)L);
        return NULL;
    }
    int64_t n = batched ? x->shape[0] : 1;
    int64_t shape[4] = {n, g.c, g.h, g.w};
    et_tensor *xc = etc_contig(input);
    et_tensor *out = xc ? etc_alloc(batched ? shape : shape + 1, batched ? 4 : 3) : NULL;
    if (out)
        fold_raw(&g, n, xc->data, out->data);
    etc_release(xc);
    if (!out)
        return NULL;
    fold_save(out, &a, batched);
    return etc_pooled(etc_finish(out, ETC_OP_FOLD, &input, 1));
}

/* unfold's gradient is fold(g) and fold's is unfold(g), same parameters
 * (g is the upstream gradient here; geo the image geometry). */
static bool fold_backward(et_tensor *out, et_tensor *g, et_tensor **gin, bool unfold)
{
    const et_tensor *x = out->in[0];
    const et_tensor *img = unfold ? x : out;   /* the [.., C, H, W] side */
    fold_args a = {.op = unfold ? "unfold backward" : "fold backward"};
    fold_load(out, &a);
    etc_conv_geom geo;
    int64_t kk = a.k[0] * a.k[1];
    int64_t c = unfold ? img->shape[img->ndim - 3] : x->shape[x->ndim - 2] / kk;
    if (!fold_geom(&a, c, img->shape[img->ndim - 2], img->shape[img->ndim - 1], &geo))
        return false;
    int64_t n = out->aux.i[U_BATCHED] ? x->shape[0] : 1;
    et_tensor *gc = etc_contig(g);
    gin[0] = gc ? etc_alloc(x->shape, x->ndim) : NULL;
    if (gin[0]) {
        if (unfold)
            fold_raw(&geo, n, gc->data, gin[0]->data);
        else
            unfold_raw(&geo, n, gc->data, gin[0]->data);
    }
    etc_release(gc);
    return gin[0] != NULL;
}

ETC_BW(unfold) { return fold_backward(out, g, gin, true); }
ETC_BW(fold) { return fold_backward(out, g, gin, false); }
