/* norm_kernels.c - batch_norm's loops over [N, C] values (BatchNorm1d on
 * features, the common case) and over its channels, built per ISA
 * (norm_internal.h).  norm.c has the op, its checks, graph node and the
 * [N, C, L] loops. */
#include <math.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/norm_internal.h"

/* The [N, C] loops (BatchNorm1d on features, the common case): rows outer,
 * channels inner, 4 doubles wide with AVX2, 8 with AVX-512 (no FMA: same bits as the
 * baseline clone).  Not cloned under sanitizers, as kernels.c's row(). */
#define BN_CLONES ETC_ISA_CLONES("default", "avx2", "avx512f")

/* Blocks of 16 channels, their per-channel terms and sums held in vector
 * registers (core_internal.h's etc_vf16 and etc_vf8) over
 * the rows, each channel's values still taken row after row: the same
 * operations in the same order as the row-major loops they replace, which
 * reloaded every term and sum for each row (3 of the 4-9 memory operations
 * a value; ~8 cycles a vector where 2-3 suffice).  Then a block of 8, then
 * the scalar loop of each function for the last < 8 channels (a scalar
 * tail of 8, as C = 200 left, cost as much as the 12 blocks before it).
 * The double sums (etc_bn_rows_sum, _ss) keep their row-major loops: 8 or 16
 * channels in double vectors compiled to slower code (0.40 vs 0.27 µs for
 * [32, 200]). */
/* BLOCKS(BODY): BODY(VT, W) over the blocks of W = 16 channels from c0, then
 * one of 8; c0 is left at the first channel of the scalar tail (< 8) */
#define BN_BLOCKS(BODY)                   \
    int64_t c0 = 0;                       \
    for (; c0 + 16 <= C; c0 += 16) {      \
        BODY(etc_vf16, 16)                  \
    }                                     \
    if (c0 + 8 <= C) {                    \
        BODY(etc_vf8, 8)                    \
        c0 += 8;                          \
    }

/* sum[c] = the sum over rows of channel c */
BN_CLONES void etc_bn_rows_sum(const float *restrict x, int64_t N, int64_t C,
                               double *restrict sum)
{
    for (int64_t c = 0; c < C; c++)
        sum[c] = 0;
    /* four rows per pass over the channels, each channel's sum still taken
     * row after row (the same bits): a quarter of the loads and stores of
     * the sums */
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const float *x0 = x + n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        for (int64_t c = 0; c < C; c++)
            sum[c] = (((sum[c] + x0[c]) + x1[c]) + x2[c]) + x3[c];
    }
    for (; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            sum[c] += x[n * C + c];
}

/* ss[c] = sum of (x - mean[c])^2 */
BN_CLONES void etc_bn_rows_ss(const float *restrict x, int64_t N, int64_t C,
                              const double *restrict mean, double *restrict ss)
{
    for (int64_t c = 0; c < C; c++)
        ss[c] = 0;
    int64_t n = 0;   /* four rows at a time, as etc_bn_rows_sum */
    for (; n + 4 <= N; n += 4) {
        const float *x0 = x + n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        for (int64_t c = 0; c < C; c++) {
            double m = mean[c], d0 = x0[c] - m, d1 = x1[c] - m, d2 = x2[c] - m,
                   d3 = x3[c] - m;
            ss[c] = (((ss[c] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3;
        }
    }
    for (; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            double d = x[n * C + c] - mean[c];
            ss[c] += d * d;
        }
}

/* The per-channel terms of the forward, in channel loops the clones
 * vectorise (a division and a square root per channel were a scalar loop
 * as long as a pass over the values; sqrt and / round correctly in every
 * lane, so the bits are the scalar loop's): the inverse std from the sum
 * of squared deviations ss[c] over `div` values (eval: the running
 * variance over 1), the stats rows (stat_put) and the affine terms. */
BN_CLONES void etc_bn_channels(int64_t C, const double *restrict mean,
                               const double *restrict ss, double div, double eps,
                               const float *restrict w, const float *restrict b,
                               float *restrict st, float *restrict fm,
                               float *restrict alpha, float *restrict beta)
{
    float *restrict mh = st, *restrict ml = st + C, *restrict ih = st + 2 * C,
          *restrict il = st + 3 * C;
    for (int64_t c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt(ss[c] / div + eps);
        mh[c] = (float)mean[c];
        ml[c] = (float)(mean[c] - (double)mh[c]);
        ih[c] = (float)invstd;
        il[c] = (float)(invstd - (double)ih[c]);
        fm[c] = mh[c];
        alpha[c] = ih[c];
    }
    if (w)
        for (int64_t c = 0; c < C; c++)
            alpha[c] *= w[c];
    for (int64_t c = 0; c < C; c++)
        beta[c] = b ? b[c] : 0.0f;
}

/* torch's running update r = momentum * stat + (1 - momentum) * r with the
 * unbiased variance ss / (Mt - 1), for contiguous buffers (else the caller
 * loops over their strides) */
BN_CLONES void etc_bn_running(int64_t C, const double *restrict mean,
                              const double *restrict ss, double Mt, double momentum,
                              float *restrict rm, float *restrict rv)
{
    for (int64_t c = 0; c < C; c++) {
        double unb = ss[c] / (Mt - 1);
        rm[c] = (float)(momentum * mean[c] + (1 - momentum) * rm[c]);
        rv[c] = (float)(momentum * unb + (1 - momentum) * rv[c]);
    }
}

/* (x - fm) - ml: the deviation from the double-length mean (x - fm is exact
 * near it), where x - fm alone cost 1.2e-3 relative in y for 32 rows of
 * 1000 +- 0.01 (float32 torch, which folds the mean into beta: 6e-3) */
BN_CLONES void etc_bn_rows_apply(const float *restrict x, float *restrict y, int64_t N,
                                 int64_t C, const float *restrict fm,
                                 const float *restrict ml, const float *restrict alpha,
                                 const float *restrict beta)
{
#define APPLY(VT, W)                                       \
    VT f, l, a, b;                                         \
    ETC_VLD(f, fm + c0);                                     \
    ETC_VLD(l, ml + c0);                                     \
    ETC_VLD(a, alpha + c0);                                  \
    ETC_VLD(b, beta + c0);                                   \
    for (int64_t n = 0; n < N; n++) {                      \
        VT v;                                              \
        ETC_VLD(v, x + n * C + c0);                          \
        v = ((v - f) - l) * a + b;                         \
        ETC_VST(y + n * C + c0, v);                          \
    }
    BN_BLOCKS(APPLY)
#undef APPLY
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = c0; c < C; c++)
            y[n * C + c] = ((x[n * C + c] - fm[c]) - ml[c]) * alpha[c] + beta[c];
}

/* The per-channel loops of the backward, cloned to vectorise as
 * etc_bn_channels (same bits as scalar loops).  mean[c] from the stats rows: */
BN_CLONES void etc_bn_stat_means(int64_t C, const float *restrict st, double *restrict mean)
{
    for (int64_t c = 0; c < C; c++)
        mean[c] = (double)st[c] + (double)st[C + c];
}

/* grad weight = dotp * invstd (st given), grad bias = sum (st NULL) */
BN_CLONES void etc_bn_grad_wb(int64_t C, const float *restrict st, const double *restrict v,
                              float *restrict out)
{
    if (st)
        for (int64_t c = 0; c < C; c++)
            out[c] = (float)(v[c] * ((double)st[2 * C + c] + (double)st[3 * C + c]));
    else
        for (int64_t c = 0; c < C; c++)
            out[c] = (float)v[c];
}

/* dx = (g - mean(g) - (x - mean) * k) * invstd * w (train), g * invstd * w
 * (eval): gm = sum / M, k = dotp invstd^2 / M, sc = invstd w */
BN_CLONES void etc_bn_dx_terms(int64_t C, const float *restrict st,
                               const double *restrict sum, const double *restrict dotp,
                               const float *restrict w, bool training, double M,
                               double *restrict gm, double *restrict kc,
                               double *restrict sc)
{
    for (int64_t c = 0; c < C; c++) {
        double is = (double)st[2 * C + c] + (double)st[3 * C + c];
        gm[c] = training ? sum[c] / M : 0.0;
        kc[c] = training ? dotp[c] * is * is / M : 0.0;
        sc[c] = is;
    }
    if (w)
        for (int64_t c = 0; c < C; c++)
            sc[c] *= (double)w[c];
}

/* sum[c] += g, dotp[c] += (x - mean) g */
BN_CLONES void etc_bn_rows_grad_sums(const float *restrict x, const float *restrict g,
                                     int64_t N, int64_t C, const double *restrict mean,
                                     double *restrict sum, double *restrict dotp)
{
    int64_t n = 0;   /* four rows per pass over the channels: a quarter of the sums' loads */
    for (; n + 4 <= N; n += 4) {
        const float *x0 = x + n * C, *g0 = g + n * C;
        for (int64_t c = 0; c < C; c++) {
            double m = mean[c], s = sum[c], d = dotp[c];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                double q = g0[r * C + c];
                s += q;
                d += (x0[r * C + c] - m) * q;
            }
            sum[c] = s;
            dotp[c] = d;
        }
    }
    for (; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            double q = g[n * C + c];
            sum[c] += q;
            dotp[c] += (x[n * C + c] - mean[c]) * q;
        }
}

BN_CLONES void etc_bn_rows_dx(const float *restrict x, const float *restrict g,
                              float *restrict dx, int64_t N, int64_t C,
                              const double *restrict mean, const double *restrict gm,
                              const double *restrict kc, const double *restrict sc)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            dx[n * C + c] = (float)((g[n * C + c] - gm[c] - (x[n * C + c] - mean[c]) * kc[c]) *
                                    sc[c]);
}

/* The float path of the [N, C] backward without a reducer: torch's for
 * BatchNorm1d over features (its channels-last kernel,
 * batch_norm_cpu_backward_channels_last_impl: float sums row after row,
 * and dx in float; torch 1.13's grad bias equals these sums bit for bit),
 * each deviation from the double-length mean as (x - mh) - ml.  The
 * double loops above, three times the work a value, were ~8% of the char
 * model's training step. */
BN_CLONES void etc_bn_rows_grad_sums_f(const float *restrict x, const float *restrict g,
                                       int64_t N, int64_t C, const float *restrict mh,
                                       const float *restrict ml, float *restrict sum,
                                       float *restrict dotp)
{
#define SUMS(VT, W)                                        \
    VT h, l, su = {0}, dp = {0};                           \
    ETC_VLD(h, mh + c0);                                     \
    ETC_VLD(l, ml + c0);                                     \
    for (int64_t n = 0; n < N; n++) {                      \
        VT xv, q;                                          \
        ETC_VLD(xv, x + n * C + c0);                         \
        ETC_VLD(q, g + n * C + c0);                          \
        su += q;                                           \
        dp += ((xv - h) - l) * q;                          \
    }                                                      \
    ETC_VST(sum + c0, su);                                   \
    ETC_VST(dotp + c0, dp);
    BN_BLOCKS(SUMS)
#undef SUMS
    for (int64_t c = c0; c < C; c++) {
        float s = 0, d = 0;
        for (int64_t n = 0; n < N; n++) {
            float q = g[n * C + c];
            s += q;
            d += ((x[n * C + c] - mh[c]) - ml[c]) * q;
        }
        sum[c] = s;
        dotp[c] = d;
    }
}

/* training: dx = ((g - gm) - ((x - mh) - ml) k) invstd w, eval: g invstd w
 * (w NULL: 1), torch's order */
BN_CLONES void etc_bn_rows_dx_f(const float *restrict x, const float *restrict g,
                                float *restrict dx, int64_t N, int64_t C, bool training,
                                const float *restrict mh, const float *restrict ml,
                                const float *restrict gm, const float *restrict k,
                                const float *restrict invstd, const float *restrict w)
{
#define DX(VT, W)                                          \
    VT h = {0}, l = {0}, m = {0}, kk = {0}, iv, wv = {0};  \
    if (training) {                                        \
        ETC_VLD(h, mh + c0);                                 \
        ETC_VLD(l, ml + c0);                                 \
        ETC_VLD(m, gm + c0);                                 \
        ETC_VLD(kk, k + c0);                                 \
    }                                                      \
    ETC_VLD(iv, invstd + c0);                                \
    if (w)                                                 \
        ETC_VLD(wv, w + c0);                                 \
    for (int64_t n = 0; n < N; n++) {                      \
        VT q, v;                                           \
        ETC_VLD(q, g + n * C + c0);                          \
        if (training) {                                    \
            VT xv;                                         \
            ETC_VLD(xv, x + n * C + c0);                     \
            v = ((q - m) - ((xv - h) - l) * kk) * iv;      \
        } else {                                           \
            v = q * iv;                                    \
        }                                                  \
        if (w)                                             \
            v = v * wv;                                    \
        ETC_VST(dx + n * C + c0, v);                         \
    }
    BN_BLOCKS(DX)
#undef DX
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *gr = g + n * C;
        float *o = dx + n * C;
        for (int64_t c = c0; c < C; c++) {
            float v = training ? ((gr[c] - gm[c]) - ((xr[c] - mh[c]) - ml[c]) * k[c]) * invstd[c]
                               : gr[c] * invstd[c];
            o[c] = w ? v * w[c] : v;
        }
    }
}
