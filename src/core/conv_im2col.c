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
#include <string.h>

#include "core/conv_internal.h"

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

bool etc_conv_fwd_im2col(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow, nb0 = chunk_images(g);
    if (g->n == 0 || ohw == 0)
        return true;
    et_tensor *colt = scratch(g->c * g->kh * g->kw * nb0 * ohw);
    et_tensor *tmpt = nb0 > 1 ? scratch(g->o * nb0 * ohw) : NULL;
    if (!colt || (nb0 > 1 && !tmpt)) {
        etc_release(colt);
        return false;
    }
    for (int64_t n0 = 0; n0 < g->n; n0 += nb0) {
        int64_t nb = g->n - n0 < nb0 ? g->n - n0 : nb0, cols = nb * ohw;
        etc_im2col(g, x + n0 * g->c * g->h * g->w, nb, colt->data);
        float *out = nb0 > 1 ? tmpt->data : y + n0 * g->o * ohw;
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)og, (int)cols, (int)k,
                        1.0f, w + gi * og * k, (int)k, colt->data + gi * k * cols, (int)cols,
                        0.0f, out + gi * og * cols, (int)cols);
        for (int64_t i = 0; i < nb; i++)
            for (int64_t c = 0; c < g->o; c++) {
                float *dst = y + ((n0 + i) * g->o + c) * ohw;
                const float *src = out + (c * nb + i) * ohw;
                float bc = b ? b[c] : 0.0f;
                if (nb0 > 1)
                    for (int64_t j = 0; j < ohw; j++)
                        dst[j] = src[j] + bc;
                else if (b)
                    for (int64_t j = 0; j < ohw; j++)
                        dst[j] += bc;
            }
    }
    etc_release(colt);
    etc_release(tmpt);
    return true;
}

bool etc_conv_bwd_data_im2col(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow, nb0 = chunk_images(g);
    memset(dx, 0, (size_t)(g->n * g->c * g->h * g->w) * sizeof *dx);
    if (g->n == 0 || ohw == 0)
        return true;
    et_tensor *colt = scratch(g->c * g->kh * g->kw * nb0 * ohw);
    et_tensor *tmpt = nb0 > 1 ? scratch(g->o * nb0 * ohw) : NULL;
    if (!colt || (nb0 > 1 && !tmpt)) {
        etc_release(colt);
        return false;
    }
    for (int64_t n0 = 0; n0 < g->n; n0 += nb0) {
        int64_t nb = g->n - n0 < nb0 ? g->n - n0 : nb0, cols = nb * ohw;
        const float *d = dy + n0 * g->o * ohw;
        if (nb0 > 1) {
            to_channel_major(d, nb, g->o, ohw, tmpt->data);
            d = tmpt->data;
        }
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)cols, (int)og,
                        1.0f, w + gi * og * k, (int)k, d + gi * og * cols, (int)cols, 0.0f,
                        colt->data + gi * k * cols, (int)cols);
        etc_col2im(g, colt->data, nb, dx + n0 * g->c * g->h * g->w);
    }
    etc_release(colt);
    etc_release(tmpt);
    return true;
}

bool etc_conv_bwd_weight_im2col(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw, float *db)
{
    const int64_t G = g->groups, og = g->o / G, k = g->c / G * g->kh * g->kw;
    const int64_t ohw = g->oh * g->ow, nb0 = chunk_images(g);
    memset(dw, 0, (size_t)(g->o * k) * sizeof *dw);
    if (db) {
        for (int64_t c = 0; c < g->o; c++) {
            double s = 0.0;
            for (int64_t i = 0; i < g->n; i++) {
                const float *p = dy + (i * g->o + c) * ohw;
                for (int64_t j = 0; j < ohw; j++)
                    s += p[j];
            }
            db[c] = (float)s;
        }
    }
    if (g->n == 0 || ohw == 0)
        return true;
    et_tensor *colt = scratch(g->c * g->kh * g->kw * nb0 * ohw);
    et_tensor *tmpt = nb0 > 1 ? scratch(g->o * nb0 * ohw) : NULL;
    if (!colt || (nb0 > 1 && !tmpt)) {
        etc_release(colt);
        return false;
    }
    for (int64_t n0 = 0; n0 < g->n; n0 += nb0) {
        int64_t nb = g->n - n0 < nb0 ? g->n - n0 : nb0, cols = nb * ohw;
        const float *d = dy + n0 * g->o * ohw;
        if (nb0 > 1) {
            to_channel_major(d, nb, g->o, ohw, tmpt->data);
            d = tmpt->data;
        }
        etc_im2col(g, x + n0 * g->c * g->h * g->w, nb, colt->data);
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)og, (int)k, (int)cols, 1.0f,
                        d + gi * og * cols, (int)cols, colt->data + gi * k * cols, (int)cols,
                        1.0f, dw + gi * og * k, (int)k);
    }
    etc_release(colt);
    etc_release(tmpt);
    return true;
}
