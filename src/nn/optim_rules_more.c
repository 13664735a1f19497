/*
 * optim_rules_more.c - the update rules of NAdam, RAdam and Adamax, as torch
 * 1.13's _single_tensor_nadam / _radam / _adamax: float32 tensor arithmetic
 * in the order those functions write it (a python float meeting a float32
 * tensor becomes a float32 scalar; add_(x, alpha=a) is self + a * x,
 * addcmul_(t1, t2, value=v) is self + v * t1 * t2, addcdiv_ self + v * t1 / t2),
 * python-side scalars (bias corrections, mu, rect) in double.
 */
#include "nn/optim_internal.h"

#include <math.h>

/* slots: exp_avg, exp_avg_sq, mu_product (one float, starts at 1) */
void nn_rule_nadam(const et_optim *o, const optim_group *grp, float *p, const float *g,
                   float **s, bool *init, int64_t step, int64_t k)
{
    const et_nadam_opts *no = &grp->o.nadam;
    const double b1 = no->beta1, b2 = no->beta2, st = (double)step;
    const double bc2 = 1.0 - pow(b2, st);
    const double mu = b1 * (1.0 - 0.5 * pow(0.96, st * no->momentum_decay));
    const double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (st + 1.0) * no->momentum_decay));
    float *m = s[0], *v = s[1], *mp = s[2];
    /* mu_product *= mu; mu_product_next = mu_product * mu * mu_next (torch 1.13 multiplies
     * mu in twice: kept, this is its rule) -- float32 tensor arithmetic */
    const float mprod = mp[0] * (float)mu;
    mp[0] = mprod;
    const float mprod_next = mprod * (float)mu * (float)mu_next;
    const float c1 = (float)(-no->lr * (1.0 - mu) / (1.0 - (double)mprod));
    const float c2 = (float)(-no->lr * mu_next / (1.0 - (double)mprod_next));
    const float wd = (float)no->weight_decay, fb1 = (float)b1, fb2 = (float)b2;
    const float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    const float fbc2 = (float)bc2, eps = (float)no->eps;
    for (int64_t j = 0; j < k; j++) {
        float d = g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        m[j] = m[j] * fb1 + omb1 * d;
        v[j] = v[j] * fb2 + omb2 * d * d;
        float den = sqrtf(v[j] / fbc2) + eps;
        float pj = p[j] + c1 * d / den;
        p[j] = pj + c2 * m[j] / den;
    }
}

/* slots: exp_avg, exp_avg_sq */
void nn_rule_radam(const et_optim *o, const optim_group *grp, float *p, const float *g,
                   float **s, bool *init, int64_t step, int64_t k)
{
    const et_radam_opts *ro = &grp->o.radam;
    const double b1 = ro->beta1, b2 = ro->beta2, st = (double)step;
    const double bc1 = 1.0 - pow(b1, st), bc2 = 1.0 - pow(b2, st);
    const double rho_inf = 2.0 / (1.0 - b2) - 1.0;
    const double rho_t = rho_inf - 2.0 * st * pow(b2, st) / bc2;
    const bool rectify = rho_t > 5.0;
    const double rect = rectify ? sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                       ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                                : 0.0;
    float *m = s[0], *v = s[1];
    const float wd = (float)ro->weight_decay, fb1 = (float)b1, fb2 = (float)b2;
    const float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    const float fbc1 = (float)bc1, lr = (float)ro->lr, eps = (float)ro->eps;
    const float sbc2 = (float)sqrt(bc2), frect = (float)rect;
    for (int64_t j = 0; j < k; j++) {
        float d = g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        m[j] = m[j] * fb1 + omb1 * d;
        v[j] = v[j] * fb2 + omb2 * d * d;
        float bcm = m[j] / fbc1;
        if (rectify) {
            float adaptive = sbc2 / (sqrtf(v[j]) + eps);
            p[j] = p[j] + -1.0f * (bcm * lr * adaptive * frect);
        } else {
            p[j] = p[j] + -1.0f * (bcm * lr);
        }
    }
}

/* slots: exp_avg, exp_inf */
void nn_rule_adamax(const et_optim *o, const optim_group *grp, float *p, const float *g,
                    float **s, bool *init, int64_t step, int64_t k)
{
    const et_adamax_opts *ao = &grp->o.adamax;
    const double b1 = ao->beta1;
    const float clr = (float)(-(ao->lr / (1.0 - pow(b1, (double)step))));
    float *m = s[0], *u = s[1];
    const float wd = (float)ao->weight_decay, fb1 = (float)b1, fb2 = (float)ao->beta2;
    const float omb1 = (float)(1.0 - b1), eps = (float)ao->eps;
    for (int64_t j = 0; j < k; j++) {
        float d = ao->maximize ? -g[j] : g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        m[j] = m[j] * fb1 + omb1 * d;
        /* torch.amax(cat([exp_inf * beta2, |grad| + eps])): NaN propagates */
        float a = u[j] * fb2, b = fabsf(d) + eps;
        u[j] = (a != a || b != b) ? NAN : (a > b ? a : b);
        p[j] = p[j] + clr * m[j] / u[j];
    }
}
