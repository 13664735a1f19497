/*
 * conv_internal.h - the geometry of one 2-d convolution and the two ways
 * the core computes it (im2col + sgemm in conv_im2col.c, oneDNN in
 * conv_onednn.c).  Never installed.
 *
 * Every convolution-like op is reduced to three raw passes of ONE forward
 * convolution x [n, c, h, w] (*) w [o, c/groups, kh, kw] -> y [n, o, oh, ow]
 * on contiguous float buffers (no graph):
 *   fwd          y = conv(x, w) (+ b)
 *   bwd_data     dx = conv^T(dy, w)          (also: conv_transpose2d forward)
 *   bwd_weight   dw = dy (*) x               (also: conv_transpose2d dW)
 * conv1d is the case h = kh = 1.  Padding may be asymmetric (padding="same"
 * with an even kernel); the bottom/right padding is stored exactly as the
 * output size needs it: (oh - 1) sh + dh (kh - 1) + 1 = h + pt + pb.
 */
#ifndef EASYTORCH_CONV_INTERNAL_H
#define EASYTORCH_CONV_INTERNAL_H

#include "core/core_internal.h"

typedef struct etc_conv_geom {
    int64_t n, c, h, w;         /* input of the forward convolution */
    int64_t o, kh, kw;          /* weight [o, c / groups, kh, kw] */
    int64_t oh, ow;             /* output */
    int64_t sh, sw, dh, dw;     /* stride, dilation */
    int64_t pt, pb, pl, pr;     /* padding top/bottom/left/right (pb, pr may be < 0) */
    int64_t groups;
} etc_conv_geom;

/* im2col + sgemm: always available.  Return false only on NOMEM (error set). */
bool etc_conv_fwd_im2col(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y);
bool etc_conv_bwd_data_im2col(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx);
bool etc_conv_bwd_weight_im2col(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw);

/* im2col of a chunk of nb images: col[(c kh kw), nb, oh ow] from
 * x[nb, c, h, w] (zeros where a tap falls into the padding), and its
 * adjoint: col2im ADDS into dx[nb, c, h, w] (the caller zeroes it). */
void etc_im2col(const etc_conv_geom *g, const float *x, int64_t nb, float *col);
void etc_col2im(const etc_conv_geom *g, const float *col, int64_t nb, float *dx);

/* oneDNN: false when the library was built without it, when oneDNN cannot
 * take this geometry, or on failure; no error is left set then and the
 * caller falls back to im2col. */
bool etc_conv_fwd_onednn(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y);
bool etc_conv_bwd_data_onednn(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx);
bool etc_conv_bwd_weight_onednn(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw);
bool etc_onednn_available(void);

/* Which pass is being chosen (etc_conv_use_onednn). */
enum { ETC_CONV_FWD, ETC_CONV_BWD_DATA, ETC_CONV_BWD_WEIGHT };
/* The dispatch rule of docs/design.md (and et_set_conv_algo's override). */
bool etc_conv_use_onednn(const etc_conv_geom *g, int pass);

/* The three passes with the dispatch applied (conv.c). */
bool etc_conv_fwd(const etc_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y);
bool etc_conv_bwd_data(const etc_conv_geom *g, const float *dy, const float *w, float *dx);
bool etc_conv_bwd_weight(const etc_conv_geom *g, const float *x, const float *dy, float *dw);

#endif
