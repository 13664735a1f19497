/*
 * optim_rules.c - the update rules of SGD, Adagrad, RMSprop, Adam and AdamW:
 * torch 1.13's single-tensor implementations, written as one pass over each
 * parameter in float32 with the same operation order (python floats become
 * float32 scalars of the tensor ops).  optim.c calls them once per
 * parameter with the hyper-parameters of the parameter's group.
 */
#include "nn/optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>   /* _mm_sqrt_ps: GCC does not vectorise sqrtf under math-errno */
#endif

/* The wide-vector loops (AVX-512, AVX; same bits) are in optim_simd.c. */
#include "nn/optim_simd.h"

/* ------------------------------------------------------------ update rules */

/* Each rule updates k elements of one parameter p from its gradient g and
 * its state slots s[]; `step` is the parameter's step after increment. */

void nn_rule_sgd(const et_optim *o, const optim_group *grp, float *p, const float *g, float **s,
                 bool *init, int64_t step, int64_t k)
{
    const et_sgd_opts *so = &grp->o.sgd;
    const float wd = (float)so->weight_decay, mom = (float)so->momentum;
    const float damp = (float)(1.0 - so->dampening), nlr = (float)(-so->lr);
    const bool has_mom = so->momentum != 0, first = !*init;
    float *buf = has_mom ? s[0] : NULL;
    const nn_sgd_consts sc = {wd, mom, damp, nlr, so->maximize, wd != 0.0f, has_mom, first,
                              so->nesterov};
    for (int64_t j = nn_sgd_simd(p, g, buf, k, &sc); j < k; j++) {
        float d = so->maximize ? -g[j] : g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        if (has_mom) {
            buf[j] = first ? d : buf[j] * mom + damp * d;
            d = so->nesterov ? d + mom * buf[j] : buf[j];
        }
        p[j] = p[j] + nlr * d;
    }
    if (has_mom)
        *init = true;
}

void nn_rule_adagrad(const et_optim *o, const optim_group *grp, float *p, const float *g,
                     float **s, bool *init, int64_t step, int64_t k)
{
    const et_adagrad_opts *ao = &grp->o.ada;
    const double clr = ao->lr / (1.0 + (double)(step - 1) * ao->lr_decay);
    const float nclr = (float)(-clr), wd = (float)ao->weight_decay, eps = (float)ao->eps;
    float *sum = s[0];
    for (int64_t j = 0; j < k; j++) {
        float d = ao->maximize ? -g[j] : g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        sum[j] = sum[j] + d * d;
        float std = sqrtf(sum[j]) + eps;
        p[j] = p[j] + nclr * (d / std);
    }
}

void nn_rule_rmsprop(const et_optim *o, const optim_group *grp, float *p, const float *g,
                     float **s, bool *init, int64_t step, int64_t k)
{
    const et_rmsprop_opts *ro = &grp->o.rms;
    const float alpha = (float)ro->alpha, one_m = (float)(1.0 - ro->alpha);
    const float wd = (float)ro->weight_decay, eps = (float)ro->eps, mom = (float)ro->momentum;
    const float nlr = (float)(-ro->lr);
    const bool has_mom = ro->momentum > 0;
    float *sq = s[0];
    float *buf = has_mom ? s[1] : NULL;   /* slot ids: square_avg, momentum_buffer, grad_avg */
    float *gavg = ro->centered ? s[2] : NULL;
    for (int64_t j = 0; j < k; j++) {
        float d = ro->maximize ? -g[j] : g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        sq[j] = sq[j] * alpha + one_m * (d * d);
        float avg;
        if (gavg) {
            gavg[j] = gavg[j] * alpha + one_m * d;
            avg = sqrtf(sq[j] - gavg[j] * gavg[j]);
        } else {
            avg = sqrtf(sq[j]);
        }
        avg = avg + eps;
        if (has_mom) {
            buf[j] = buf[j] * mom + d / avg;
            p[j] = p[j] + nlr * buf[j];
        } else {
            p[j] = p[j] + nlr * (d / avg);
        }
    }
}

/* Adam's element loop.  Called with constant flags so that the compiler
 * emits one branch-free (vectorisable) copy per combination. */
static inline void adam_loop(float *restrict p, const float *restrict g, float *restrict m,
                             float *restrict v, float *restrict vmax, int64_t k,
                             const bool coupled_wd, const bool decoupled, const bool ams,
                             const float *c)
{
    const float sign = c[0], wd = c[1], decay = c[2], b1 = c[3], omb1 = c[4], b2 = c[5];
    const float omb2 = c[6], bc2s = c[7], eps = c[8], nstep = c[9];
    int64_t j = 0;
    /* 16 or 8 lanes where the CPU has them, then 4, then the scalar tail */
    j = nn_adam_simd(p, g, m, v, vmax, k, coupled_wd, decoupled, ams, c);
    p += j, g += j, m += j, v += j, k -= j;
    if (vmax)
        vmax += j;
    j = 0;
#if defined(__SSE2__)
    /* four lanes of exactly the scalar operations below (IEEE mul, add,
     * div and sqrt are lane-wise identical), then the scalar tail */
    const __m128 vsign = _mm_set1_ps(sign), vwd = _mm_set1_ps(wd), vdecay = _mm_set1_ps(decay);
    const __m128 vb1 = _mm_set1_ps(b1), vomb1 = _mm_set1_ps(omb1), vb2 = _mm_set1_ps(b2);
    const __m128 vomb2 = _mm_set1_ps(omb2), vbc2s = _mm_set1_ps(bc2s), veps = _mm_set1_ps(eps);
    const __m128 vnstep = _mm_set1_ps(nstep);
    for (; j + 4 <= k; j += 4) {
        __m128 pj = _mm_loadu_ps(p + j);
        __m128 d = _mm_mul_ps(vsign, _mm_loadu_ps(g + j));
        if (decoupled)
            pj = _mm_mul_ps(pj, vdecay);
        if (coupled_wd)
            d = _mm_add_ps(d, _mm_mul_ps(vwd, pj));
        __m128 mj = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + j), vb1), _mm_mul_ps(vomb1, d));
        __m128 vj = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + j), vb2),
                               _mm_mul_ps(vomb2, _mm_mul_ps(d, d)));
        _mm_storeu_ps(m + j, mj);
        _mm_storeu_ps(v + j, vj);
        if (ams) {
            vj = _mm_max_ps(_mm_loadu_ps(vmax + j), vj);  /* vmax > vj ? vmax : vj */
            _mm_storeu_ps(vmax + j, vj);
        }
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vj), vbc2s), veps);
        _mm_storeu_ps(p + j, _mm_add_ps(pj, _mm_mul_ps(vnstep, _mm_div_ps(mj, denom))));
    }
#endif
    for (; j < k; j++) {
        float pj = p[j];
        float d = sign * g[j];
        if (decoupled)
            pj = pj * decay;
        if (coupled_wd)
            d = d + wd * pj;
        float mj = m[j] * b1 + omb1 * d;
        float vj = v[j] * b2 + omb2 * (d * d);
        m[j] = mj;
        v[j] = vj;
        if (ams) {
            vj = vmax[j] > vj ? vmax[j] : vj;
            vmax[j] = vj;
        }
        p[j] = pj + nstep * (mj / (sqrtf(vj) / bc2s + eps));
    }
}

void nn_rule_adam(const et_optim *o, const optim_group *grp, float *p, const float *g, float **s,
                  bool *init, int64_t step, int64_t k)
{
    const et_adam_opts *ao = &grp->o.adam;
    const bool decoupled = o->kind == OPT_ADAMW;
    const bool coupled = !decoupled && ao->weight_decay != 0;
    /* the bias corrections, once per step rather than per parameter (two
     * pow() calls were ~1 µs of a 13-64-64-1 step) */
    static _Thread_local struct { double b1, b2, bc1, bc2; int64_t step; } bc = {0, 0, 0, 0, -1};
    if (bc.step != step || bc.b1 != ao->beta1 || bc.b2 != ao->beta2) {
        bc.b1 = ao->beta1;
        bc.b2 = ao->beta2;
        bc.step = step;
        bc.bc1 = 1.0 - pow(ao->beta1, (double)step);
        bc.bc2 = 1.0 - pow(ao->beta2, (double)step);
    }
    const double bc1 = bc.bc1, bc2 = bc.bc2;
    /* torch: python floats become float32 scalars of the tensor ops */
    const float c[10] = {
        ao->maximize ? -1.0f : 1.0f,
        (float)ao->weight_decay,
        (float)(1.0 - ao->lr * ao->weight_decay),
        (float)ao->beta1,
        (float)(1.0 - ao->beta1),
        (float)ao->beta2,
        (float)(1.0 - ao->beta2),
        (float)sqrt(bc2),
        (float)ao->eps,
        (float)(-(ao->lr / bc1)),
    };
    float *m = s[0], *v = s[1], *vmax = s[2];
    /* et_optim_step runs this with denormals flushed to zero (FTZ, DAZ) */
    if (ao->amsgrad) {
        if (decoupled)
            adam_loop(p, g, m, v, vmax, k, false, true, true, c);
        else if (coupled)
            adam_loop(p, g, m, v, vmax, k, true, false, true, c);
        else
            adam_loop(p, g, m, v, vmax, k, false, false, true, c);
    } else {
        if (decoupled)
            adam_loop(p, g, m, v, NULL, k, false, true, false, c);
        else if (coupled)
            adam_loop(p, g, m, v, NULL, k, true, false, false, c);
        else
            adam_loop(p, g, m, v, NULL, k, false, false, false, c);
    }
}

opt_rule nn_optim_rule(opt_kind kind)
{
    switch (kind) {
    case OPT_SGD: return nn_rule_sgd;
    case OPT_ADAGRAD: return nn_rule_adagrad;
    case OPT_RMSPROP: return nn_rule_rmsprop;
    case OPT_ADAM:
    case OPT_ADAMW: return nn_rule_adam;
    case OPT_NADAM: return nn_rule_nadam;
    case OPT_RADAM: return nn_rule_radam;
    case OPT_ADAMAX: return nn_rule_adamax;
    }
    return NULL;
}
