/* norm_internal.h - batch_norm's [N, C] and per-channel loops (norm_kernels.c),
 * shared by norm.c's forward and backward.  Each is built for baseline
 * x86-64, AVX2 and AVX-512 and picked at load time, with no FMA in the
 * clones: every clone gives the same bits.  Statistics and gradient sums
 * are double (the backward's float on the _f path); each channel's sums
 * are taken row after row. */
#ifndef ET_NORM_INTERNAL_H
#define ET_NORM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/* sum[c] = the sum over the N rows of channel c of x [N, C] */
void etc_bn_rows_sum(const float *restrict x, int64_t N, int64_t C, double *restrict sum);
/* ss[c] = the sum of (x - mean[c])^2 */
void etc_bn_rows_ss(const float *restrict x, int64_t N, int64_t C, const double *restrict mean,
                    double *restrict ss);
/* The forward's per-channel terms: invstd = 1 / sqrt(ss / div + eps), the
 * [4, C] stats rows (mean and invstd as hi/lo float pairs), fm = (float)
 * mean, alpha = (float)invstd * w, beta = b (w, b may be NULL) */
void etc_bn_channels(int64_t C, const double *restrict mean, const double *restrict ss,
                     double div, double eps, const float *restrict w, const float *restrict b,
                     float *restrict st, float *restrict fm, float *restrict alpha,
                     float *restrict beta);
/* torch's running update with the unbiased variance ss / (Mt - 1),
 * contiguous rm and rv */
void etc_bn_running(int64_t C, const double *restrict mean, const double *restrict ss,
                    double Mt, double momentum, float *restrict rm, float *restrict rv);
/* y = ((x - fm[c]) - ml[c]) * alpha[c] + beta[c] (fm, ml: the mean's hi and lo) */
void etc_bn_rows_apply(const float *restrict x, float *restrict y, int64_t N, int64_t C,
                       const float *restrict fm, const float *restrict ml,
                       const float *restrict alpha, const float *restrict beta);
/* mean[c] from the stats rows */
void etc_bn_stat_means(int64_t C, const float *restrict st, double *restrict mean);
/* out = v * invstd (st given: grad weight), else (float)v (grad bias) */
void etc_bn_grad_wb(int64_t C, const float *restrict st, const double *restrict v,
                    float *restrict out);
/* dx's terms: gm = sum / M, kc = dotp invstd^2 / M (0 unless training),
 * sc = invstd * w */
void etc_bn_dx_terms(int64_t C, const float *restrict st, const double *restrict sum,
                     const double *restrict dotp, const float *restrict w, bool training,
                     double M, double *restrict gm, double *restrict kc, double *restrict sc);
/* sum[c] += g, dotp[c] += (x - mean[c]) g */
void etc_bn_rows_grad_sums(const float *restrict x, const float *restrict g, int64_t N,
                           int64_t C, const double *restrict mean, double *restrict sum,
                           double *restrict dotp);
/* dx = (g - gm - (x - mean) kc) sc */
void etc_bn_rows_dx(const float *restrict x, const float *restrict g, float *restrict dx,
                    int64_t N, int64_t C, const double *restrict mean,
                    const double *restrict gm, const double *restrict kc,
                    const double *restrict sc);

/* The float path of the [N, C] backward without a reducer (torch's
 * channels-last kernel, which BatchNorm1d over features takes), deviations
 * (x - mh) - ml from the stats' double-length mean: sums row after row in
 * float ... */
void etc_bn_rows_grad_sums_f(const float *restrict x, const float *restrict g, int64_t N,
                             int64_t C, const float *restrict mh, const float *restrict ml,
                             float *restrict sum, float *restrict dotp);
/* ... and dx = ((g - gm) - ((x - mh) - ml) k) invstd w (training), g invstd
 * w (eval); w NULL: no factor */
void etc_bn_rows_dx_f(const float *restrict x, const float *restrict g, float *restrict dx,
                      int64_t N, int64_t C, bool training, const float *restrict mh,
                      const float *restrict ml, const float *restrict gm,
                      const float *restrict k, const float *restrict invstd,
                      const float *restrict w);

#endif
