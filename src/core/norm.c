/* norm.c - batch_norm, layer_norm, group_norm: forward and backward.
 *
 * All three normalise groups of values by their mean and (biased)
 * variance and then apply a per-element affine map; they differ only in
 * which values form a group and which affine parameter each value uses:
 *   batch_norm  group = a channel over N and the trailing dims; affine per channel
 *   layer_norm  group = one row of the last dims;              affine per position in the row
 *   group_norm  group = (sample, C/G channels, trailing dims); affine per channel
 * Statistics and gradient sums are accumulated in double (PyTorch's CPU
 * kernels use double accumulators for float), but for batch_norm's [N, C]
 * backward without a reducer, in float as torch's kernel for that layout
 * (bn_backward_f).  Graph node: inputs
 * {x, weight?, bias?}, `saved` = a [4, groups] float tensor holding the
 * mean and the inverse standard deviation of each group as double-length
 * (hi, lo) float pairs, aux.i = flags.  The backward needs them to better
 * than float precision: with few values per group (layer_norm over 2) or
 * |mean| >> std, a float-rounded mean costs 1e-4 relative in dx. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/norm_internal.h"

enum { HAS_W = 1, HAS_B = 2, TRAINING = 4, SYNC = 8 };

/* stats [4, G]: row 0/1 = mean hi/lo, row 2/3 = 1/std hi/lo */
static void stat_put(float *s, int64_t G, int64_t i, double mean, double rstd)
{
    s[i] = (float)mean;
    s[G + i] = (float)(mean - (double)s[i]);
    s[2 * G + i] = (float)rstd;
    s[3 * G + i] = (float)(rstd - (double)s[2 * G + i]);
}

static double stat_mean(const float *s, int64_t G, int64_t i)
{
    return (double)s[i] + (double)s[G + i];
}

static double stat_rstd(const float *s, int64_t G, int64_t i)
{
    return (double)s[2 * G + i] + (double)s[3 * G + i];
}

/* Checks an optional per-channel / per-position parameter. */
static bool param_ok(const et_tensor *p, const int64_t *shape, int nd, const char *op,
                     const char *what)
{
    if (!p)
        return true;
    if (!etc_null_check(p, op))
        return false;
    bool ok = p->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = p->shape[i] == shape[i];
    if (!ok) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "%s: %s of shape %s, expected %s", op, what,
                     etc_shape_fmt(p->shape, p->ndim, b1, sizeof b1),
                     etc_shape_fmt(shape, nd, b2, sizeof b2));
    }
    return ok;
}

/* Contiguous float32 copy (or reference) of an optional parameter. */
static const float *param_data(et_tensor *p, et_tensor **hold)
{
    *hold = p ? etc_contig(p) : NULL;
    return *hold ? (*hold)->data : NULL;
}

/* What a normalisation computes with: its contiguous input, the output, the
 * 4 x nstats saved statistics, the affine parameters (w, b: NULL when absent)
 * and, for batch_norm in eval mode, the running statistics. */
typedef struct {
    et_tensor *x, *out, *stats, *hw, *hb, *hrm, *hrv;
    const float *w, *b;
} norm_job;

/* Releases what the job holds; out and stats too unless keep_out. */
static void norm_release(norm_job *j, bool keep_out)
{
    etc_release(j->x);
    etc_release(j->hw);
    etc_release(j->hb);
    etc_release(j->hrm);
    etc_release(j->hrv);
    if (!keep_out) {
        etc_release(j->out);
        etc_release(j->stats);
    }
}

/* Fills j for input and the optional weight / bias; false (nothing held) on NOMEM. */
static bool norm_begin(norm_job *j, et_tensor *input, et_tensor *weight, et_tensor *bias,
                       int64_t nstats)
{
    *j = (norm_job){0};
    j->x = etc_contig(input);
    j->out = j->x ? etc_alloc(input->shape, input->ndim) : NULL;
    j->stats = j->out ? etc_alloc((int64_t[]){4, nstats}, 2) : NULL;
    j->w = param_data(weight, &j->hw);
    j->b = param_data(bias, &j->hb);
    if (j->stats && (!weight || j->hw) && (!bias || j->hb))
        return true;
    norm_release(j, false);
    return false;
}

/* Records the node: inputs x, w?, b? (only those present), saved stats. */
static et_tensor *finish(et_tensor *out, int op, et_tensor *x, et_tensor *w, et_tensor *b,
                         et_tensor *stats, int flags)
{
    et_tensor *ins[3];
    int n = 0;
    ins[n++] = x;
    if (w)
        ins[n++] = w;
    if (b)
        ins[n++] = b;
    out = etc_finish(out, op, ins, n);
    if (out && out->requires_grad) {
        out->saved = etc_ref(stats);
        out->aux.i[0] = flags | (w ? HAS_W : 0) | (b ? HAS_B : 0);
    }
    etc_release(stats);
    return out;
}

/* gin slots of w and b in a node recorded by finish() (-1 when absent) */
static void param_slots(const et_tensor *out, int *wi, int *bi)
{
    int f = out->aux.i[0], k = 1;
    *wi = (f & HAS_W) ? k++ : -1;
    *bi = (f & HAS_B) ? k++ : -1;
}

/* ------------------------------------------------------------------ */
/* batch_norm                                                           */

/* The same for x [N, C, L]: per channel the sum of the values ... */
static void bn_sum(const float *x, int64_t N, int64_t C, int64_t L, double *sum)
{
    if (L == 1) {
        etc_bn_rows_sum(x, N, C, sum);
        return;
    }
    for (int64_t c = 0; c < C; c++)
        sum[c] = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *p = x + (n * C + c) * L;
            double acc = 0;
            for (int64_t l = 0; l < L; l++)
                acc += p[l];
            sum[c] += acc;
        }
}

/* ... and of the squared deviations from mean[c] */
static void bn_ss(const float *x, int64_t N, int64_t C, int64_t L, const double *mean,
                  double *ss)
{
    if (L == 1) {
        etc_bn_rows_ss(x, N, C, mean, ss);
        return;
    }
    for (int64_t c = 0; c < C; c++)
        ss[c] = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *p = x + (n * C + c) * L;
            double acc = 0, m = mean[c];
            for (int64_t l = 0; l < L; l++) {
                double d = p[l] - m;
                acc += d * d;
            }
            ss[c] += acc;
        }
}

et_tensor *et_batch_norm(et_tensor *input, et_tensor *running_mean, et_tensor *running_var,
                         et_tensor *weight, et_tensor *bias, bool training, double momentum,
                         double eps)
{
    return et_batch_norm_reduced(input, running_mean, running_var, weight, bias, training,
                                 momentum, eps, NULL);
}

/* A reducer's sum; false with its error (or ours when it set none). */
static bool reduce(const et_reducer *r, double *v, int64_t n, const char *op)
{
    et_clear_error();
    if (r->sum(r->ctx, v, n))
        return true;
    if (et_errcode() == ET_OK)
        et_set_error(ET_ERR_STATE, "%s: the statistics could not be summed over the "
                     "participants", op);
    return false;
}

et_tensor *et_batch_norm_reduced(et_tensor *input, et_tensor *running_mean,
                                 et_tensor *running_var, et_tensor *weight, et_tensor *bias,
                                 bool training, double momentum, double eps,
                                 const et_reducer *reducer)
{
    const char *op = "batch_norm";
    const et_reducer *sync = training ? reducer : NULL;
    if (!etc_null_check(input, op))
        return NULL;
    char b1[128];
    if (input->ndim < 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input of shape %s, expected at least 2 dims [N, C, *]",
                     op, etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
        return NULL;
    }
    if (!(eps >= 0) || isinf(eps) || isnan(momentum) || isinf(momentum)) {
        et_set_error(ET_ERR_ARG, "%s: eps (%g) must be >= 0 and momentum (%g) finite", op, eps,
                     momentum);
        return NULL;
    }
    int64_t N = input->shape[0], C = input->shape[1];
    int64_t L = input->numel / (N * C > 0 ? N * C : 1);
    int64_t M = N * L;   /* values per channel */
    if (!param_ok(weight, &C, 1, op, "weight") || !param_ok(bias, &C, 1, op, "bias") ||
        !param_ok(running_mean, &C, 1, op, "running_mean") ||
        !param_ok(running_var, &C, 1, op, "running_var"))
        return NULL;
    if ((running_mean == NULL) != (running_var == NULL)) {
        et_set_error(ET_ERR_ARG, "%s: running_mean and running_var must be given together", op);
        return NULL;
    }
    if (!training && !running_mean) {
        et_set_error(ET_ERR_ARG, "%s: running_mean and running_var must be defined in "
                     "evaluation mode", op);
        return NULL;
    }
    if (training && !sync && M <= 1) {
        et_set_error(ET_ERR_ARG, "%s: expected more than 1 value per channel when training, "
                     "got input of shape %s", op,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
        return NULL;
    }
    norm_job j;
    if (!norm_begin(&j, input, weight, bias, C))
        return NULL;
    if (running_mean && !training) {
        j.hrm = etc_contig(running_mean);
        j.hrv = etc_contig(running_var);
        if (!j.hrm || !j.hrv) {
            norm_release(&j, false);
            return NULL;
        }
    }
    et_tensor *x = j.x, *out = j.out, *stats = j.stats, *hrm = j.hrm, *hrv = j.hrv;
    const float *w = j.w, *bb = j.b;
    const float *xd = x->data;
    float *yd = out->data;
    float *rmd = running_mean ? running_mean->data : NULL;
    float *rvd = running_var ? running_var->data : NULL;
    /* per channel: mean, sum of squared deviations (double), then the
     * float affine terms; work[] = mean[C], ss[C], fm[C], alpha[C], beta[C] */
    double *mean = malloc((size_t)C * (2 * sizeof(double) + 3 * sizeof(float)));
    if (!mean) {
        norm_release(&j, false);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    double *ss = mean + C;
    float *fm = (float *)(ss + C), *alpha = fm + C, *beta = alpha + C;
    double Mt = (double)M; /* the values per channel of every participant */
    if (training) {
        bn_sum(xd, N, C, L, mean);
        if (sync) { /* [sums, count]: ss[0] holds the count for the call */
            ss[0] = Mt;
            if (!reduce(sync, mean, C + 1, op))
                goto fail;
            Mt = ss[0];
            if (Mt <= 1) {
                et_set_error(ET_ERR_ARG, "%s: expected more than 1 value per channel when "
                             "training, got %.0f over all the participants (input of shape %s "
                             "here)", op, Mt,
                             etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
                goto fail;
            }
        }
        for (int64_t c = 0; c < C; c++)
            mean[c] /= Mt;
        bn_ss(xd, N, C, L, mean, ss);
        if (sync && !reduce(sync, ss, C, op))
            goto fail;
    }
    if (training && running_mean) {
        if (running_mean->strides[0] == 1 && running_var->strides[0] == 1) {
            etc_bn_running(C, mean, ss, Mt, momentum, rmd, rvd);
        } else {
            for (int64_t c = 0; c < C; c++) {
                double unb = ss[c] / (Mt - 1);
                int64_t om = c * running_mean->strides[0], ov = c * running_var->strides[0];
                rmd[om] = (float)(momentum * mean[c] + (1 - momentum) * rmd[om]);
                rvd[ov] = (float)(momentum * unb + (1 - momentum) * rvd[ov]);
            }
        }
    }
    if (!training)   /* the running statistics: the variance over 1 value, exactly itself */
        for (int64_t c = 0; c < C; c++) {
            mean[c] = hrm->data[c];
            ss[c] = hrv->data[c];
        }
    etc_bn_channels(C, mean, ss, training ? Mt : 1.0, eps, w, bb, stats->data, fm, alpha, beta);
    /* y = ((x - mean hi) - mean lo) * alpha + bias: folding the mean into
     * the constant (x * alpha + beta) loses digits when |mean| >> std, and
     * so does its float rounding alone */
    if (L == 1) {
        etc_bn_rows_apply(xd, yd, N, C, fm, stats->data + C, alpha, beta);
    } else {
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                const float *p = xd + (n * C + c) * L;
                float *q = yd + (n * C + c) * L;
                float a = alpha[c], b = beta[c], m = fm[c], ml = stats->data[C + c];
                for (int64_t l = 0; l < L; l++)
                    q[l] = ((p[l] - m) - ml) * a + b;
            }
    }
    free(mean);
    if (training && running_mean) {
        running_mean->storage->version++;
        running_var->storage->version++;
    }
    norm_release(&j, true);
    out = finish(out, ETC_OP_BATCH_NORM, input, weight, bias, stats,
                 (training ? TRAINING : 0) | (sync ? SYNC : 0));
    if (out && out->requires_grad && sync) { /* the backward sums again, over Mt values */
        out->aux.l[1] = (int64_t)Mt;
        memcpy(&out->aux.l[2], &sync, sizeof sync);
    }
    return etc_pooled(out);
fail:
    free(mean);
    norm_release(&j, false);
    return NULL;
}

/* The backward of [N, C] without a reducer, in float as torch's channels-
 * last kernel (norm_kernels.c): the sums over the rows, the weight and bias
 * gradients dotp * invstd and sum, then dx -- but with each deviation
 * x - mean taken from the stats' double-length mean, (x - hi) - lo (x - hi
 * is exact near the mean), where torch's float mean costs up to 3e-3
 * relative in dx when |mean| >> std (32 rows of 1000 +- 0.01: 4.7e-8 from
 * float64 torch, float32 torch 2.7e-3).  work: 4 C floats. */
static void bn_backward_f(const float *x, const float *g, float *gx, float *gw, float *gb,
                          int64_t N, int64_t C, bool training, const float *st, const float *w,
                          float *work)
{
    float *sum = work, *dotp = sum + C, *gm = dotp + C, *k = gm + C;
    const float *mh = st, *ml = st + C, *invstd = st + 2 * C;
    etc_bn_rows_grad_sums_f(x, g, N, C, mh, ml, sum, dotp);
    if (gw)
        for (int64_t c = 0; c < C; c++)
            gw[c] = dotp[c] * invstd[c];
    if (gb)
        memcpy(gb, sum, (size_t)C * sizeof *gb);
    if (!gx)
        return;
    const float M = (float)N;
    for (int64_t c = 0; c < C; c++) {
        k[c] = dotp[c] * invstd[c] * invstd[c] / M;
        gm[c] = sum[c] / M;
    }
    etc_bn_rows_dx_f(x, g, gx, N, C, training, mh, ml, gm, k, invstd, w);
}

/* The backward in double (any L, with or without a reducer): the sums over
 * the values of each channel, the weight and bias gradients of this
 * participant's rows, the sums over every participant (sync), then dx.
 * work: 6 C doubles, zeroed.  false: the reducer failed (its error set). */
static bool bn_backward_d(const float *x, const float *g, float *gx, float *gw, float *gb,
                          int64_t N, int64_t C, int64_t L, int64_t M, bool training,
                          const et_reducer *sync, const float *st, const float *w, double *sum)
{
    double *dotp = sum + C, *mean = dotp + C, *gm = mean + C, *kc = gm + C, *sc = kc + C;
    etc_bn_stat_means(C, st, mean);
    if (L == 1) {
        etc_bn_rows_grad_sums(x, g, N, C, mean, sum, dotp);
    } else {
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                const float *p = x + (n * C + c) * L, *q = g + (n * C + c) * L;
                double s1 = 0, s2 = 0, m = mean[c];
                for (int64_t l = 0; l < L; l++) {
                    s1 += q[l];
                    s2 += (p[l] - m) * q[l];
                }
                sum[c] += s1;
                dotp[c] += s2;
            }
    }
    if (gw)   /* this participant's rows' share */
        etc_bn_grad_wb(C, st, dotp, gw);
    if (gb)
        etc_bn_grad_wb(C, NULL, sum, gb);
    if (sync && !reduce(sync, sum, 2 * C, "NativeBatchNormBackward0")) /* [sum, dotp] */
        return false;
    etc_bn_dx_terms(C, st, sum, dotp, w, training, (double)M, gm, kc, sc);
    if (gx && L == 1)
        etc_bn_rows_dx(x, g, gx, N, C, mean, gm, kc, sc);
    else if (gx)
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                const float *p = x + (n * C + c) * L, *q = g + (n * C + c) * L;
                float *r = gx + (n * C + c) * L;
                double m = mean[c], g0 = gm[c], k = kc[c], s0 = sc[c];
                for (int64_t l = 0; l < L; l++)
                    r[l] = (float)((q[l] - g0 - (p[l] - m) * k) * s0);
            }
    return true;
}

ETC_BW(batch_norm)
{
    et_tensor *in = out->in[0];
    int wi, bi;
    param_slots(out, &wi, &bi);
    bool training = out->aux.i[0] & TRAINING;
    int64_t N = in->shape[0], C = in->shape[1];
    int64_t L = in->numel / (N * C > 0 ? N * C : 1), M = N * L;
    const et_reducer *sync = NULL; /* et_batch_norm_reduced's: M counts every participant's */
    if (out->aux.i[0] & SYNC) {
        M = out->aux.l[1];
        memcpy(&sync, &out->aux.l[2], sizeof sync);
    }
    const float *st = out->saved->data;
    et_tensor *x = etc_contig(in), *gc = etc_contig(g), *hw = NULL;
    const float *w = wi >= 0 ? param_data(out->in[wi], &hw) : NULL;
    bool need_x = in->requires_grad;
    et_tensor *gx = need_x ? etc_alloc(in->shape, in->ndim) : NULL;
    et_tensor *gw = wi >= 0 && out->in[wi]->requires_grad ? etc_alloc(&C, 1) : NULL;
    et_tensor *gb = bi >= 0 && out->in[bi]->requires_grad ? etc_alloc(&C, 1) : NULL;
    if (!x || !gc || (wi >= 0 && !hw) || (need_x && !gx) ||
        (wi >= 0 && out->in[wi]->requires_grad && !gw) ||
        (bi >= 0 && out->in[bi]->requires_grad && !gb)) {
        etc_release(x);
        etc_release(gc);
        etc_release(hw);
        etc_release(gx);
        etc_release(gw);
        etc_release(gb);
        return false;
    }
    /* work: 6 C doubles (bn_backward_d), or 4 C floats (bn_backward_f) */
    double *sum = calloc((size_t)C, 6 * sizeof(double));
    bool ok = sum != NULL;
    if (!ok)
        et_set_error(ET_ERR_NOMEM, "NativeBatchNormBackward0: out of memory");
    else if (L == 1 && !sync)
        bn_backward_f(x->data, gc->data, gx ? gx->data : NULL, gw ? gw->data : NULL,
                      gb ? gb->data : NULL, N, C, training, st, w, (float *)sum);
    else
        ok = bn_backward_d(x->data, gc->data, gx ? gx->data : NULL, gw ? gw->data : NULL,
                           gb ? gb->data : NULL, N, C, L, M, training, sync, st, w, sum);
    free(sum);
    etc_release(x);
    etc_release(gc);
    etc_release(hw);
    if (!ok) {
        etc_release(gx);
        etc_release(gw);
        etc_release(gb);
        return false;
    }
    gin[0] = gx;
    if (wi >= 0)
        gin[wi] = gw;
    if (bi >= 0)
        gin[bi] = gb;
    return true;
}

/* ------------------------------------------------------------------ */
/* layer_norm and group_norm: G groups of D values each                 */

/* Mean and inverse std of each of the G contiguous groups of D values of
 * x into stats [4, G]; y = (x - mean) * rstd (not yet affine). */
static void normalise_groups(const float *x, float *y, int64_t G, int64_t D, double eps,
                             float *stats)
{
    for (int64_t gi = 0; gi < G; gi++) {
        const float *p = x + gi * D;
        double s = 0, ss = 0;
        for (int64_t k = 0; k < D; k++)
            s += p[k];
        double mean = D ? s / (double)D : 0.0;
        for (int64_t k = 0; k < D; k++) {
            double d = p[k] - mean;
            ss += d * d;
        }
        double rstd = 1.0 / sqrt((D ? ss / (double)D : 0.0) + eps);
        stat_put(stats, G, gi, mean, rstd);
        float *q = y + gi * D;
        for (int64_t k = 0; k < D; k++)
            q[k] = (float)((p[k] - mean) * rstd);
    }
}

et_tensor *et_layer_norm(et_tensor *input, const int64_t *normalized_shape, int ndims,
                         et_tensor *weight, et_tensor *bias, double eps)
{
    const char *op = "layer_norm";
    if (!etc_null_check(input, op))
        return NULL;
    char b1[128], b2[128];
    if (ndims < 1 || ndims > input->ndim || !normalized_shape) {
        et_set_error(ET_ERR_SHAPE, "%s: normalized_shape of %d dims does not fit input of "
                     "shape %s", op, ndims,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
        return NULL;
    }
    for (int i = 0; i < ndims; i++)
        if (normalized_shape[i] != input->shape[input->ndim - ndims + i]) {
            et_set_error(ET_ERR_SHAPE, "%s: input of shape %s does not end in normalized_shape "
                         "%s", op, etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1),
                         etc_shape_fmt(normalized_shape, ndims, b2, sizeof b2));
            return NULL;
        }
    if (!(eps >= 0) || isinf(eps)) {
        et_set_error(ET_ERR_ARG, "%s: eps must be >= 0 and finite, got %g", op, eps);
        return NULL;
    }
    if (!param_ok(weight, normalized_shape, ndims, op, "weight") ||
        !param_ok(bias, normalized_shape, ndims, op, "bias"))
        return NULL;
    int64_t D = etc_numel(normalized_shape, ndims);
    int64_t G = D ? input->numel / D : 0;
    norm_job j;
    if (!norm_begin(&j, input, weight, bias, G))
        return NULL;
    et_tensor *out = j.out;
    const float *w = j.w, *bb = j.b;
    normalise_groups(j.x->data, out->data, G, D, eps, j.stats->data);
    if (w || bb)
        for (int64_t gi = 0; gi < G; gi++) {
            float *q = out->data + gi * D;
            for (int64_t k = 0; k < D; k++)
                q[k] = q[k] * (w ? w[k] : 1.0f) + (bb ? bb[k] : 0.0f);
        }
    norm_release(&j, true);
    out = finish(out, ETC_OP_LAYER_NORM, input, weight, bias, j.stats, 0);
    if (out && out->requires_grad)
        out->aux.i[1] = ndims;
    return etc_pooled(out);
}

/* Backward of G groups of D values; value k of group gi uses affine
 * parameter pidx(gi, k) of P (the weight/bias gradients have shape pshape). */
typedef int64_t (*pidx_fn)(int64_t gi, int64_t k, const int64_t *geo);

static int64_t pidx_layer(int64_t gi, int64_t k, const int64_t *geo)
{
    (void)gi;
    (void)geo;
    return k;
}

/* group_norm: geo = {groups per sample, channels per group, L} */
static int64_t pidx_group(int64_t gi, int64_t k, const int64_t *geo)
{
    return (gi % geo[0]) * geo[1] + k / geo[2];
}

/* groups_backward's loops for layer_norm (parameter k for value k): the
 * same arithmetic in the same order, without a call per element, cloned
 * for AVX2 / AVX-512 (LayerNorm's backward was ~6% of a Transformer step) */
ETC_CLONES
static void layer_rows_backward(const float *x, const float *gy, const float *st, const float *w,
                                float *gx, double *acc, int64_t G, int64_t D, bool want_w,
                                bool want_b)
{
    for (int64_t gi = 0; gi < G; gi++) {
        const float *p = x + gi * D, *q = gy + gi * D;
        double m = stat_mean(st, G, gi), r = stat_rstd(st, G, gi);
        double dsc = 0, db = 0;
        for (int64_t k = 0; k < D; k++) {
            double gw = w ? q[k] * (double)w[k] : q[k];
            dsc += gw * (p[k] - m);
            db += gw;
        }
        if (want_w)
            for (int64_t k = 0; k < D; k++)
                acc[k] += q[k] * (p[k] - m) * r;
        if (want_b)
            for (int64_t k = 0; k < D; k++)
                acc[D + k] += q[k];
        if (gx) {
            double scale = 1.0 / (double)D;
            double bcoef = -dsc * r * r * r * scale, ccoef = -db * r * scale;
            float *o = gx + gi * D;
            for (int64_t k = 0; k < D; k++) {
                double gw = w ? q[k] * (double)w[k] : q[k];
                o[k] = (float)(r * gw + bcoef * (p[k] - m) + ccoef);
            }
        }
    }
}

static bool groups_backward(et_tensor *out, et_tensor *g, et_tensor **gin, int64_t G, int64_t D,
                            int64_t P, const int64_t *pshape, int pnd, pidx_fn pidx,
                            const int64_t *geo)
{
    et_tensor *in = out->in[0];
    int wi, bi;
    param_slots(out, &wi, &bi);
    const float *st = out->saved->data;
    et_tensor *x = etc_contig(in), *gc = etc_contig(g), *hw = NULL;
    const float *w = wi >= 0 ? param_data(out->in[wi], &hw) : NULL;
    bool want_w = wi >= 0 && out->in[wi]->requires_grad;
    bool want_b = bi >= 0 && out->in[bi]->requires_grad;
    et_tensor *gx = in->requires_grad ? etc_alloc(in->shape, in->ndim) : NULL;
    double *acc = calloc((size_t)(2 * P + 1), sizeof *acc);   /* dgamma, dbeta */
    if (!x || !gc || (wi >= 0 && !hw) || (in->requires_grad && !gx) || !acc) {
        etc_release(x);
        etc_release(gc);
        etc_release(hw);
        etc_release(gx);
        free(acc);
        if (!acc)
            et_set_error(ET_ERR_NOMEM, "%s: out of memory", etc_ops[out->op].name);
        return false;
    }
    if (pidx == pidx_layer)
        layer_rows_backward(x->data, gc->data, st, w, gx ? gx->data : NULL, acc, G, D, want_w,
                            want_b);
    for (int64_t gi = 0; pidx != pidx_layer && gi < G; gi++) {
        const float *p = x->data + gi * D, *q = gc->data + gi * D;
        double m = stat_mean(st, G, gi), r = stat_rstd(st, G, gi);
        double dsc = 0, db = 0;   /* sum(dy*w * (x - mean)), sum(dy*w) */
        for (int64_t k = 0; k < D; k++) {
            int64_t pi = pidx(gi, k, geo);
            double gw = w ? q[k] * (double)w[pi] : q[k];
            dsc += gw * (p[k] - m);
            db += gw;
            if (want_w)
                acc[pi] += q[k] * (p[k] - m) * r;
            if (want_b)
                acc[P + pi] += q[k];
        }
        if (gx) {
            /* dx = rstd * (dy*w - mean(dy*w)) - (x - mean) * rstd^3 * mean(dy*w * (x - mean)),
             * ATen's a*dy*w + b*x + c with the sums centred: b*x + c cancels
             * badly when |mean| >> std */
            double scale = 1.0 / (double)D;
            double bcoef = -dsc * r * r * r * scale, ccoef = -db * r * scale;
            float *o = gx->data + gi * D;
            for (int64_t k = 0; k < D; k++) {
                double gw = w ? q[k] * (double)w[pidx(gi, k, geo)] : q[k];
                o[k] = (float)(r * gw + bcoef * (p[k] - m) + ccoef);
            }
        }
    }
    bool ok = true;
    if (want_w) {
        et_tensor *t = etc_alloc(pshape, pnd);
        for (int64_t i = 0; t && i < P; i++)
            t->data[i] = (float)acc[i];
        ok = (gin[wi] = t) != NULL;
    }
    if (want_b && ok) {
        et_tensor *t = etc_alloc(pshape, pnd);
        for (int64_t i = 0; t && i < P; i++)
            t->data[i] = (float)acc[P + i];
        ok = (gin[bi] = t) != NULL;
    }
    free(acc);
    etc_release(x);
    etc_release(gc);
    etc_release(hw);
    gin[0] = gx;
    return ok;
}

ETC_BW(layer_norm)
{
    et_tensor *in = out->in[0];
    int nd = out->aux.i[1];
    const int64_t *ns = in->shape + in->ndim - nd;
    int64_t D = etc_numel(ns, nd), G = D ? in->numel / D : 0;
    return groups_backward(out, g, gin, G, D, D, ns, nd, pidx_layer, NULL);
}

et_tensor *et_group_norm(et_tensor *input, int64_t num_groups, et_tensor *weight,
                         et_tensor *bias, double eps)
{
    const char *op = "group_norm";
    if (!etc_null_check(input, op))
        return NULL;
    char b1[128];
    if (input->ndim < 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input of shape %s, expected at least 2 dims [N, C, *]",
                     op, etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
        return NULL;
    }
    int64_t N = input->shape[0], C = input->shape[1];
    if (num_groups <= 0 || C % num_groups != 0) {
        et_set_error(ET_ERR_SHAPE, "%s: expected number of channels in input to be divisible by "
                     "num_groups, but got input of shape %s and num_groups=%lld", op,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1),
                     (long long)num_groups);
        return NULL;
    }
    if (!(eps >= 0) || isinf(eps)) {
        et_set_error(ET_ERR_ARG, "%s: eps must be >= 0 and finite, got %g", op, eps);
        return NULL;
    }
    if (!param_ok(weight, &C, 1, op, "weight") || !param_ok(bias, &C, 1, op, "bias"))
        return NULL;
    int64_t L = (N * C != 0) ? input->numel / (N * C) : 0;
    int64_t G = N * num_groups, D = (C / num_groups) * L;
    norm_job j;
    if (!norm_begin(&j, input, weight, bias, G))
        return NULL;
    et_tensor *out = j.out;
    const float *w = j.w, *bb = j.b;
    normalise_groups(j.x->data, out->data, G, D, eps, j.stats->data);
    if (w || bb)
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                float *q = out->data + (n * C + c) * L;
                float a = w ? w[c] : 1.0f, b = bb ? bb[c] : 0.0f;
                for (int64_t l = 0; l < L; l++)
                    q[l] = q[l] * a + b;
            }
    norm_release(&j, true);
    out = finish(out, ETC_OP_GROUP_NORM, input, weight, bias, j.stats, 0);
    if (out && out->requires_grad)
        out->aux.i[1] = (int)num_groups;
    return etc_pooled(out);
}

ETC_BW(group_norm)
{
    et_tensor *in = out->in[0];
    int64_t groups = out->aux.i[1];
    int64_t N = in->shape[0], C = in->shape[1];
    int64_t L = (N * C != 0) ? in->numel / (N * C) : 0;
    int64_t G = N * groups, cpg = C / groups, D = cpg * L;
    int64_t geo[3] = {groups, cpg, L ? L : 1};
    return groups_backward(out, g, gin, G, D, C, &C, 1, pidx_group, geo);
}
