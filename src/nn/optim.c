/*
 * optim.c - optimizers (SGD, Adagrad, RMSprop, Adam, AdamW) with the update
 * rules of torch 1.13's single-tensor implementations, written as one pass
 * over each parameter in float32 with the same operation order, and the
 * learning-rate schedulers in torch's recursive (chainable) form.
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>   /* _mm_sqrt_ps: GCC does not vectorise sqrtf under math-errno */
#endif

/* An AVX (8-lane) copy of Adam's loop, chosen at run time.  Not under
 * sanitizers, which gain nothing from it and check the portable code. */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define OPTIM_SANITIZED 1
#endif
#endif
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(OPTIM_SANITIZED)
#define OPTIM_AVX 1
#include <immintrin.h>
#endif

typedef enum { OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW } opt_kind;

#define MAX_SLOTS 3

struct et_optim {
    opt_kind kind;
    const char *type;
    int n;
    et_tensor **params;      /* borrowed */
    double lr;
    union {
        et_sgd_opts sgd;
        et_adagrad_opts ada;
        et_rmsprop_opts rms;
        et_adam_opts adam;
    } o;
    /* State: nslots tensors per parameter, state[i * nslots + s]. */
    int nslots;
    const char *slot[MAX_SLOTS];
    et_tensor **state;
    char **state_names;
    int64_t *pstep;          /* per-parameter step (torch's state["step"]) */
    bool *buf_init;          /* SGD: momentum buffer holds a value */
    int64_t steps;
};

/* ------------------------------------------------------------ life cycle */

void et_optim_free(et_optim *o)
{
    if (!o)
        return;
    int ns = o->n * o->nslots;
    for (int i = 0; i < ns; i++) {
        if (o->state)
            et_tensor_free(o->state[i]);
        if (o->state_names)
            free(o->state_names[i]);
    }
    free(o->state);
    free(o->state_names);
    free(o->params);
    free(o->pstep);
    free(o->buf_init);
    free(o);
}

/* Allocates the optimizer, copies params and creates the state tensors
 * (filled with `init`) named "<param index>.<slot>". */
static et_optim *optim_alloc(opt_kind kind, const char *type, et_tensor *const *params, int n,
                             double lr, const char *const *slots, int nslots, float init)
{
    if (n <= 0 || !params) {
        et_set_error(ET_ERR_ARG, "%s: optimizer got an empty parameter list", type);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            et_set_error_after(ET_ERR_ARG, "%s: parameter %d is NULL", type, i);
            return NULL;
        }
        if (!et_is_leaf(params[i])) {   /* its .grad is never kept: torch refuses it too */
            et_set_error(ET_ERR_ARG, "%s: can't optimize a non-leaf Tensor (parameter %d, "
                         "made by %s)", type, i, et_grad_fn_name(params[i]));
            return NULL;
        }
        for (int j = 0; j < i; j++) {
            if (params[j] == params[i]) {
                et_set_error(ET_ERR_ARG, "%s: parameter %d is also parameter %d", type, i, j);
                return NULL;
            }
        }
    }
    et_optim *o = calloc(1, sizeof(*o));
    if (!o)
        goto oom;
    o->kind = kind;
    o->type = type;
    o->lr = lr;
    o->params = malloc((size_t)n * sizeof(*o->params));
    o->pstep = calloc((size_t)n, sizeof(*o->pstep));
    o->buf_init = calloc((size_t)n, sizeof(*o->buf_init));
    if (!o->params || !o->pstep || !o->buf_init)
        goto oom;
    memcpy(o->params, params, (size_t)n * sizeof(*o->params));
    o->n = n;
    o->nslots = nslots;
    for (int s = 0; s < nslots; s++)
        o->slot[s] = slots[s];
    if (nslots > 0) {
        o->state = calloc((size_t)(n * nslots), sizeof(*o->state));
        o->state_names = calloc((size_t)(n * nslots), sizeof(*o->state_names));
        if (!o->state || !o->state_names)
            goto oom;
        for (int i = 0; i < n; i++) {
            for (int s = 0; s < nslots; s++) {
                et_tensor *p = params[i];
                et_tensor *t = nn_keep_new(NULL, et_shape(p), et_ndim(p));
                if (!t)
                    goto oom;
                o->state[i * nslots + s] = t;
                if (init != 0.0f)
                    et_fill_(t, init);
                size_t len = strlen(slots[s]) + 16;
                char *name = malloc(len);
                if (!name)
                    goto oom;
                snprintf(name, len, "%d.%s", i, slots[s]);
                o->state_names[i * nslots + s] = name;
            }
        }
    }
    return o;
oom:
    et_optim_free(o);
    et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
    return NULL;
}

static bool bad(double v) { return !(v >= 0.0) || isinf(v); }

#define CHECK_HP(cond, type, ...)                          \
    do {                                                   \
        if (cond) {                                        \
            et_set_error(ET_ERR_ARG, type ": " __VA_ARGS__); \
            return NULL;                                   \
        }                                                  \
    } while (0)

et_optim *et_sgd_new(et_tensor *const *params, int n, et_sgd_opts so)
{
    CHECK_HP(bad(so.lr), "SGD", "invalid learning rate: %g", so.lr);
    CHECK_HP(bad(so.momentum), "SGD", "invalid momentum value: %g", so.momentum);
    CHECK_HP(bad(so.weight_decay), "SGD", "invalid weight_decay value: %g", so.weight_decay);
    CHECK_HP(isnan(so.dampening) || isinf(so.dampening), "SGD", "invalid dampening: %g",
             so.dampening);
    CHECK_HP(so.nesterov && (so.momentum <= 0 || so.dampening != 0), "SGD",
             "nesterov momentum requires a momentum and zero dampening");
    static const char *const slots[] = {"momentum_buffer"};
    et_optim *o = optim_alloc(OPT_SGD, "SGD", params, n, so.lr, slots,
                              so.momentum != 0 ? 1 : 0, 0.0f);
    if (o)
        o->o.sgd = so;
    return o;
}

et_optim *et_adagrad_new(et_tensor *const *params, int n, et_adagrad_opts ao)
{
    CHECK_HP(bad(ao.lr), "Adagrad", "invalid learning rate: %g", ao.lr);
    CHECK_HP(bad(ao.lr_decay), "Adagrad", "invalid lr_decay value: %g", ao.lr_decay);
    CHECK_HP(bad(ao.weight_decay), "Adagrad", "invalid weight_decay value: %g", ao.weight_decay);
    CHECK_HP(bad(ao.initial_accumulator_value), "Adagrad",
             "invalid initial_accumulator_value value: %g", ao.initial_accumulator_value);
    CHECK_HP(bad(ao.eps), "Adagrad", "invalid epsilon value: %g", ao.eps);
    static const char *const slots[] = {"sum"};
    et_optim *o = optim_alloc(OPT_ADAGRAD, "Adagrad", params, n, ao.lr, slots, 1,
                              (float)ao.initial_accumulator_value);
    if (o)
        o->o.ada = ao;
    return o;
}

et_optim *et_rmsprop_new(et_tensor *const *params, int n, et_rmsprop_opts ro)
{
    CHECK_HP(bad(ro.lr), "RMSprop", "invalid learning rate: %g", ro.lr);
    CHECK_HP(bad(ro.eps), "RMSprop", "invalid epsilon value: %g", ro.eps);
    CHECK_HP(bad(ro.momentum), "RMSprop", "invalid momentum value: %g", ro.momentum);
    CHECK_HP(bad(ro.weight_decay), "RMSprop", "invalid weight_decay value: %g", ro.weight_decay);
    CHECK_HP(bad(ro.alpha), "RMSprop", "invalid alpha value: %g", ro.alpha);
    const char *slots[3];
    int ns = 0;
    slots[ns++] = "square_avg";
    if (ro.momentum > 0)
        slots[ns++] = "momentum_buffer";
    if (ro.centered)
        slots[ns++] = "grad_avg";
    et_optim *o = optim_alloc(OPT_RMSPROP, "RMSprop", params, n, ro.lr, slots, ns, 0.0f);
    if (o)
        o->o.rms = ro;
    return o;
}

static et_optim *adam_common(opt_kind kind, const char *type, et_tensor *const *params, int n,
                             et_adam_opts ao)
{
    if (bad(ao.lr) || bad(ao.eps) || bad(ao.weight_decay) || !(ao.beta1 >= 0 && ao.beta1 < 1) ||
        !(ao.beta2 >= 0 && ao.beta2 < 1)) {
        et_set_error(ET_ERR_ARG, "%s: invalid hyper-parameters (lr=%g, betas=(%g, %g), eps=%g, "
                     "weight_decay=%g)", type, ao.lr, ao.beta1, ao.beta2, ao.eps, ao.weight_decay);
        return NULL;
    }
    static const char *const slots[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    et_optim *o = optim_alloc(kind, type, params, n, ao.lr, slots, ao.amsgrad ? 3 : 2, 0.0f);
    if (o)
        o->o.adam = ao;
    return o;
}

et_optim *et_adam_new(et_tensor *const *params, int n, et_adam_opts ao)
{
    return adam_common(OPT_ADAM, "Adam", params, n, ao);
}

et_optim *et_adamw_new(et_tensor *const *params, int n, et_adam_opts ao)
{
    return adam_common(OPT_ADAMW, "AdamW", params, n, ao);
}

/* ------------------------------------------------------------ update rules */

/* Each rule updates k elements of one parameter p from its gradient g and
 * its state slots s[]; `step` is the parameter's step after increment. */

static void sgd_update(const et_optim *o, float *p, const float *g, float **s, bool *init,
                       int64_t k)
{
    const et_sgd_opts *so = &o->o.sgd;
    const float wd = (float)so->weight_decay, mom = (float)so->momentum;
    const float damp = (float)(1.0 - so->dampening), nlr = (float)(-o->lr);
    const bool has_mom = so->momentum != 0, first = !*init;
    float *buf = has_mom ? s[0] : NULL;
    for (int64_t j = 0; j < k; j++) {
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

static void adagrad_update(const et_optim *o, float *p, const float *g, float **s, int64_t step,
                           int64_t k)
{
    const et_adagrad_opts *ao = &o->o.ada;
    const double clr = o->lr / (1.0 + (double)(step - 1) * ao->lr_decay);
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

static void rmsprop_update(const et_optim *o, float *p, const float *g, float **s, int64_t k)
{
    const et_rmsprop_opts *ro = &o->o.rms;
    const float alpha = (float)ro->alpha, one_m = (float)(1.0 - ro->alpha);
    const float wd = (float)ro->weight_decay, eps = (float)ro->eps, mom = (float)ro->momentum;
    const float nlr = (float)(-o->lr);
    const bool has_mom = ro->momentum > 0;
    float *sq = s[0];
    float *buf = has_mom ? s[1] : NULL;
    float *gavg = ro->centered ? s[has_mom ? 2 : 1] : NULL;
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

#ifdef OPTIM_AVX
/* Eight lanes of exactly the operations of adam_loop's four-lane and scalar
 * code (IEEE mul, add, div, sqrt and max are lane-wise identical, and no
 * FMA is used), so the results are the same bits on every CPU.  Returns how
 * many leading elements it updated (a multiple of 8).  Was 54% of a
 * 13-64-64-1 Adam training step as scalar code; 8 lanes: -12% step time. */
__attribute__((target("avx"))) static int64_t adam_avx(float *restrict p, const float *restrict g,
                                                      float *restrict m, float *restrict v,
                                                      float *restrict vmax, int64_t k,
                                                      bool coupled_wd, bool decoupled, bool ams,
                                                      const float *c)
{
    const __m256 vsign = _mm256_set1_ps(c[0]), vwd = _mm256_set1_ps(c[1]);
    const __m256 vdecay = _mm256_set1_ps(c[2]), vb1 = _mm256_set1_ps(c[3]);
    const __m256 vomb1 = _mm256_set1_ps(c[4]), vb2 = _mm256_set1_ps(c[5]);
    const __m256 vomb2 = _mm256_set1_ps(c[6]), vbc2s = _mm256_set1_ps(c[7]);
    const __m256 veps = _mm256_set1_ps(c[8]), vnstep = _mm256_set1_ps(c[9]);
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 pj = _mm256_loadu_ps(p + j);
        __m256 d = _mm256_mul_ps(vsign, _mm256_loadu_ps(g + j));
        if (decoupled)
            pj = _mm256_mul_ps(pj, vdecay);
        if (coupled_wd)
            d = _mm256_add_ps(d, _mm256_mul_ps(vwd, pj));
        __m256 mj = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + j), vb1),
                                  _mm256_mul_ps(vomb1, d));
        __m256 vj = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + j), vb2),
                                  _mm256_mul_ps(vomb2, _mm256_mul_ps(d, d)));
        _mm256_storeu_ps(m + j, mj);
        _mm256_storeu_ps(v + j, vj);
        if (ams) {
            vj = _mm256_max_ps(_mm256_loadu_ps(vmax + j), vj); /* vmax > vj ? vmax : vj */
            _mm256_storeu_ps(vmax + j, vj);
        }
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vj), vbc2s), veps);
        _mm256_storeu_ps(p + j, _mm256_add_ps(pj, _mm256_mul_ps(vnstep, _mm256_div_ps(mj, denom))));
    }
    return j;
}
#endif

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
#ifdef OPTIM_AVX
    if (__builtin_cpu_supports("avx")) {
        j = adam_avx(p, g, m, v, vmax, k, coupled_wd, decoupled, ams, c);
        p += j, g += j, m += j, v += j, k -= j;
        if (vmax)
            vmax += j;
        j = 0;
    }
#endif
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

static void adam_update(const et_optim *o, float *p, const float *g, float **s, int64_t step,
                        int64_t k)
{
    const et_adam_opts *ao = &o->o.adam;
    const bool decoupled = o->kind == OPT_ADAMW;
    const bool coupled = !decoupled && ao->weight_decay != 0;
    const double bc1 = 1.0 - pow(ao->beta1, (double)step);
    const double bc2 = 1.0 - pow(ao->beta2, (double)step);
    /* torch: python floats become float32 scalars of the tensor ops */
    const float c[10] = {
        ao->maximize ? -1.0f : 1.0f,
        (float)ao->weight_decay,
        (float)(1.0 - o->lr * ao->weight_decay),
        (float)ao->beta1,
        (float)(1.0 - ao->beta1),
        (float)ao->beta2,
        (float)(1.0 - ao->beta2),
        (float)sqrt(bc2),
        (float)ao->eps,
        (float)(-(o->lr / bc1)),
    };
    float *m = s[0], *v = s[1], *vmax = s[2];
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

et_status et_optim_step(et_optim *o)
{
    if (!o)
        return et_set_error_after(ET_ERR_ARG, "optim_step: NULL optimizer");
    /* Validate first so that a bad gradient changes nothing. */
    for (int i = 0; i < o->n; i++) {
        et_tensor *g = et_grad(o->params[i]);
        if (g && et_numel(g) != et_numel(o->params[i])) {
            char a[96], b[96];
            return et_set_error(ET_ERR_SHAPE, "%s.step: gradient of parameter %d has shape %s, "
                                "parameter has %s", o->type, i, NN_SHAPE_STR(g, a),
                                NN_SHAPE_STR(o->params[i], b));
        }
    }
    for (int i = 0; i < o->n; i++) {
        et_tensor *pt = o->params[i];
        et_tensor *gt = et_grad(pt);
        if (!gt)
            continue;
        nn_buf pb, gb, sb[MAX_SLOTS];
        float *s[MAX_SLOTS] = {NULL, NULL, NULL};
        int acquired = 0;
        et_status st = nn_buf_acquire(&pb, pt);
        if (st != ET_OK)
            return st;
        st = nn_buf_acquire(&gb, gt);
        for (; st == ET_OK && acquired < o->nslots; acquired++) {
            st = nn_buf_acquire(&sb[acquired], o->state[i * o->nslots + acquired]);
            s[acquired] = sb[acquired].p;
        }
        if (st != ET_OK) {
            nn_buf_release(&pb, false);
            return st;
        }
        int64_t k = et_numel(pt);
        int64_t step = ++o->pstep[i];
        switch (o->kind) {
        case OPT_SGD:
            sgd_update(o, pb.p, gb.p, s, &o->buf_init[i], k);
            break;
        case OPT_ADAGRAD:
            adagrad_update(o, pb.p, gb.p, s, step, k);
            break;
        case OPT_RMSPROP:
            rmsprop_update(o, pb.p, gb.p, s, k);
            break;
        case OPT_ADAM:
        case OPT_ADAMW:
            adam_update(o, pb.p, gb.p, s, step, k);
            break;
        }
        for (int j = 0; j < acquired; j++)
            nn_buf_release(&sb[j], true);
        nn_buf_release(&gb, false);
        nn_buf_release(&pb, true);
    }
    o->steps++;
    return ET_OK;
}

void et_optim_zero_grad(et_optim *o)
{
    for (int i = 0; o && i < o->n; i++) {
        et_tensor *g = et_grad(o->params[i]);
        if (g)
            et_fill_(g, 0.0f);
    }
}

const char *et_optim_type(const et_optim *o) { return o ? o->type : NULL; }
double et_optim_get_lr(const et_optim *o) { return o ? o->lr : NAN; }
int64_t et_optim_steps(const et_optim *o) { return o ? o->steps : 0; }

void et_optim_set_lr(et_optim *o, double lr)
{
    if (o)
        o->lr = lr;
}

int et_optim_state_count(const et_optim *o)
{
    return o ? o->n * o->nslots : 0;
}

const char *et_optim_state_name(const et_optim *o, int i)
{
    if (!o || i < 0 || i >= o->n * o->nslots) {
        et_set_error(ET_ERR_INDEX, "optim_state_name: index %d out of range", i);
        return NULL;
    }
    return o->state_names[i];
}

et_tensor *et_optim_state_tensor(const et_optim *o, int i)
{
    if (!o || i < 0 || i >= o->n * o->nslots) {
        et_set_error(ET_ERR_INDEX, "optim_state_tensor: index %d out of range", i);
        return NULL;
    }
    return o->state[i];
}

et_status et_optim_load_state(et_optim *o, const char *const *names, et_tensor *const *tensors,
                              int n, int64_t step_count)
{
    if (!o || n < 0 || (n > 0 && (!names || !tensors)) || step_count < 0)
        return et_set_error(ET_ERR_ARG, "optim_load_state: invalid arguments");
    int ns = o->n * o->nslots;
    /* Check everything before changing anything. */
    for (int k = 0; k < n; k++) {
        if (!names[k] || !tensors[k])
            return et_set_error(ET_ERR_ARG, "optim_load_state: entry %d is NULL", k);
        int found = -1;
        for (int i = 0; i < ns && found < 0; i++)
            if (strcmp(o->state_names[i], names[k]) == 0)
                found = i;
        if (found < 0)
            return et_set_error(ET_ERR_FORMAT, "%s.load_state: unexpected state \"%s\"",
                                o->type, names[k]);
        for (int j = 0; j < k; j++)   /* else which copy wins would be arbitrary */
            if (strcmp(names[j], names[k]) == 0)
                return et_set_error(ET_ERR_FORMAT, "%s.load_state: state \"%s\" given twice",
                                    o->type, names[k]);
    }
    for (int i = 0; i < ns; i++) {
        int found = -1;
        for (int k = 0; k < n && found < 0; k++)
            if (strcmp(o->state_names[i], names[k]) == 0)
                found = k;
        if (found < 0)
            return et_set_error(ET_ERR_FORMAT, "%s.load_state: missing state \"%s\"", o->type,
                                o->state_names[i]);
        if (!et_same_shape(o->state[i], tensors[found])) {
            char a[96], b[96];
            return et_set_error(ET_ERR_SHAPE, "%s.load_state: \"%s\" has shape %s, expected %s",
                                o->type, o->state_names[i], NN_SHAPE_STR(tensors[found], a),
                                NN_SHAPE_STR(o->state[i], b));
        }
    }
    for (int i = 0; i < ns; i++) {
        for (int k = 0; k < n; k++) {
            if (strcmp(o->state_names[i], names[k]) == 0) {
                nn_buf b;
                et_status st = nn_buf_acquire(&b, tensors[k]);
                if (st != ET_OK)
                    return st;
                et_copy_from(o->state[i], b.p);
                nn_buf_release(&b, false);
                break;
            }
        }
    }
    o->steps = step_count;
    for (int i = 0; i < o->n; i++) {
        o->pstep[i] = step_count;
        o->buf_init[i] = step_count > 0;
    }
    return ET_OK;
}

/* ------------------------------------------------------------- schedulers */

typedef enum { SCH_STEP, SCH_MULTISTEP, SCH_EXP, SCH_COSINE, SCH_LINEAR } sched_kind;

struct et_scheduler {
    sched_kind kind;
    const char *type;
    et_optim *o;           /* borrowed */
    double base_lr;
    int64_t last_epoch;
    double last_lr;
    int64_t step_size, t_max, total_iters;
    double gamma, eta_min, start_factor, end_factor;
    int64_t *milestones;
    int nmilestones;
};

/* torch's get_lr(): the chainable form, from the optimizer's current lr. */
static double sched_lr(const et_scheduler *s)
{
    double lr = s->o->lr;
    int64_t e = s->last_epoch;
    switch (s->kind) {
    case SCH_STEP:
        return (e == 0 || e % s->step_size != 0) ? lr : lr * s->gamma;
    case SCH_MULTISTEP: {
        int count = 0;
        for (int i = 0; i < s->nmilestones; i++)
            count += s->milestones[i] == e;
        return count == 0 ? lr : lr * pow(s->gamma, (double)count);
    }
    case SCH_EXP:
        return e == 0 ? lr : lr * s->gamma;
    case SCH_COSINE: {
        if (e == 0)
            return lr;
        double tm = (double)s->t_max;
        int64_t period = 2 * s->t_max;
        int64_t r = (e - 1 - s->t_max) % period;   /* Python's modulo */
        if (r < 0)
            r += period;
        if (r == 0)
            return lr + (s->base_lr - s->eta_min) * (1.0 - cos(M_PI / tm)) / 2.0;
        return (1.0 + cos(M_PI * (double)e / tm)) / (1.0 + cos(M_PI * (double)(e - 1) / tm)) *
                   (lr - s->eta_min) + s->eta_min;
    }
    case SCH_LINEAR:
        if (e == 0)
            return lr * s->start_factor;
        if (e > s->total_iters)
            return lr;
        return lr * (1.0 + (s->end_factor - s->start_factor) /
                               ((double)s->total_iters * s->start_factor +
                                (double)(e - 1) * (s->end_factor - s->start_factor)));
    }
    return lr;
}

et_status et_scheduler_step(et_scheduler *s)
{
    if (!s)
        return et_set_error_after(ET_ERR_ARG, "scheduler_step: NULL scheduler");
    s->last_epoch++;
    s->last_lr = sched_lr(s);
    s->o->lr = s->last_lr;
    return ET_OK;
}

/* Allocates and performs torch's initial step (last_epoch -1 -> 0). */
static et_scheduler *sched_new(sched_kind kind, const char *type, et_optim *o)
{
    if (!o) {
        et_set_error_after(ET_ERR_ARG, "%s: NULL optimizer", type);
        return NULL;
    }
    et_scheduler *s = calloc(1, sizeof(*s));
    if (!s) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    s->kind = kind;
    s->type = type;
    s->o = o;
    s->base_lr = o->lr;
    s->last_epoch = -1;
    return s;
}

static et_scheduler *sched_start(et_scheduler *s)
{
    if (s)
        et_scheduler_step(s);
    return s;
}

et_scheduler *et_steplr_new(et_optim *o, int64_t step_size, double gamma)
{
    if (step_size <= 0 || !isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "StepLR: step_size must be positive (got %lld) and gamma finite",
                     (long long)step_size);
        return NULL;
    }
    et_scheduler *s = sched_new(SCH_STEP, "StepLR", o);
    if (s) {
        s->step_size = step_size;
        s->gamma = gamma;
    }
    return sched_start(s);
}

et_scheduler *et_multisteplr_new(et_optim *o, const int64_t *milestones, int n, double gamma)
{
    if (n < 0 || (n > 0 && !milestones) || !isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "MultiStepLR: invalid milestones or gamma");
        return NULL;
    }
    et_scheduler *s = sched_new(SCH_MULTISTEP, "MultiStepLR", o);
    if (!s)
        return NULL;
    s->milestones = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!s->milestones) {
        free(s);
        et_set_error(ET_ERR_NOMEM, "MultiStepLR: out of memory");
        return NULL;
    }
    if (n > 0)
        memcpy(s->milestones, milestones, (size_t)n * sizeof(int64_t));
    s->nmilestones = n;
    s->gamma = gamma;
    return sched_start(s);
}

et_scheduler *et_exponentiallr_new(et_optim *o, double gamma)
{
    if (!isfinite(gamma)) {
        et_set_error(ET_ERR_ARG, "ExponentialLR: gamma must be finite");
        return NULL;
    }
    et_scheduler *s = sched_new(SCH_EXP, "ExponentialLR", o);
    if (s)
        s->gamma = gamma;
    return sched_start(s);
}

et_scheduler *et_cosineannealinglr_new(et_optim *o, int64_t T_max, double eta_min)
{
    /* the period 2 * T_max must not overflow (and T_max is used as a double) */
    if (T_max <= 0 || T_max > ((int64_t)1 << 53) || !isfinite(eta_min)) {
        et_set_error(ET_ERR_ARG, "CosineAnnealingLR: T_max must be in [1, 2^53] (got %lld) and "
                     "eta_min finite", (long long)T_max);
        return NULL;
    }
    et_scheduler *s = sched_new(SCH_COSINE, "CosineAnnealingLR", o);
    if (s) {
        s->t_max = T_max;
        s->eta_min = eta_min;
    }
    return sched_start(s);
}

et_scheduler *et_linearlr_new(et_optim *o, double start_factor, double end_factor,
                              int64_t total_iters)
{
    if (!(start_factor > 0.0 && start_factor <= 1.0) ||
        !(end_factor >= 0.0 && end_factor <= 1.0) || total_iters <= 0) {
        et_set_error(ET_ERR_ARG, "LinearLR: start_factor must be in (0, 1], end_factor in "
                     "[0, 1] and total_iters positive (got %g, %g, %lld)", start_factor,
                     end_factor, (long long)total_iters);
        return NULL;
    }
    et_scheduler *s = sched_new(SCH_LINEAR, "LinearLR", o);
    if (s) {
        s->start_factor = start_factor;
        s->end_factor = end_factor;
        s->total_iters = total_iters;
    }
    return sched_start(s);
}

void et_scheduler_free(et_scheduler *s)
{
    if (!s)
        return;
    free(s->milestones);
    free(s);
}

double et_scheduler_get_last_lr(const et_scheduler *s) { return s ? s->last_lr : NAN; }
const char *et_scheduler_type(const et_scheduler *s) { return s ? s->type : NULL; }
int64_t et_scheduler_last_epoch(const et_scheduler *s) { return s ? s->last_epoch : -1; }

et_status et_scheduler_load_state(et_scheduler *s, int64_t last_epoch, double last_lr)
{
    if (!s || last_epoch < 0 || !isfinite(last_lr))
        return et_set_error(ET_ERR_ARG, "scheduler_load_state: invalid state (last_epoch %lld)",
                            (long long)last_epoch);
    s->last_epoch = last_epoch;
    s->last_lr = last_lr;
    s->o->lr = last_lr;
    return ET_OK;
}
