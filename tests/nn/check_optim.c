/*
 * check_optim.c - unit tests of optim.h.  Expected values are the update
 * rules of torch.optim written out for one element with a constant gradient
 * (in double); schedulers are checked against torch's closed forms.  The
 * step-by-step PyTorch comparison is tests/torch/test_nn.py.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "nn_check.h"
#include "nn/optim_simd.h"

/* One parameter [2] = {p0, p1} whose .grad is {g0, g1}. */
static et_tensor *param_with_grad(float p0, float p1, float g0, float g1)
{
    et_tensor *p = et_tensor_new((float[]){p0, p1}, ET_SHAPE(2));
    et_set_requires_grad(p, true);
    et_tensor *g = et_tensor_new((float[]){g0, g1}, ET_SHAPE(2));
    et_set_grad(p, g);
    et_tensor_free(g);
    return p;
}

START_TEST(sgd_plain_momentum_dampening_nesterov)
{
    /* case 0 plain, 1 momentum, 2 momentum+dampening, 3 nesterov, 4 weight decay + maximize */
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = 0.1;
    if (_i >= 1)
        o.momentum = 0.9;
    if (_i == 2)
        o.dampening = 0.3;
    if (_i == 3)
        o.nesterov = true;
    if (_i == 4) {
        o.momentum = 0;
        o.weight_decay = 0.5;
        o.maximize = true;
    }
    et_tensor *p = param_with_grad(1.0f, -2.0f, 0.5f, 0.25f);
    et_optim *opt = et_sgd_new(&p, 1, o);
    ck_assert_ptr_nonnull(opt);
    ck_assert_str_eq(et_optim_type(opt), "SGD");
    double pv[2] = {1.0, -2.0}, g[2] = {0.5, 0.25}, buf[2] = {0, 0};
    for (int step = 1; step <= 3; step++) {
        ck_assert_int_eq(et_optim_step(opt), ET_OK);
        for (int j = 0; j < 2; j++) {
            double d = o.maximize ? -g[j] : g[j];
            d += o.weight_decay * pv[j];
            if (o.momentum != 0) {
                buf[j] = step == 1 ? d : o.momentum * buf[j] + (1 - o.dampening) * d;
                d = o.nesterov ? d + o.momentum * buf[j] : buf[j];
            }
            pv[j] -= o.lr * d;
            ck_close(et_data(p)[j], pv[j]);
        }
    }
    ck_assert_int_eq(et_optim_steps(opt), 3);
    et_optim_free(opt);
    et_tensor_free(p);
}
END_TEST

START_TEST(adam_and_adamw_first_steps)
{
    /* case 0 Adam, 1 Adam+amsgrad+weight decay, 2 AdamW, 3 Adam maximize */
    et_adam_opts o = _i == 2 ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
    o.lr = 0.01;
    if (_i == 1) {
        o.amsgrad = true;
        o.weight_decay = 0.1;
    }
    if (_i == 3)
        o.maximize = true;
    et_tensor *p = param_with_grad(1.0f, -2.0f, 0.5f, -0.25f);
    et_optim *opt = _i == 2 ? et_adamw_new(&p, 1, o) : et_adam_new(&p, 1, o);
    ck_assert_ptr_nonnull(opt);
    ck_assert_str_eq(et_optim_type(opt), _i == 2 ? "AdamW" : "Adam");
    double pv[2] = {1.0, -2.0}, g[2] = {0.5, -0.25}, m[2] = {0}, v[2] = {0}, vmax[2] = {0};
    for (int t = 1; t <= 4; t++) {
        ck_assert_int_eq(et_optim_step(opt), ET_OK);
        for (int j = 0; j < 2; j++) {
            double d = o.maximize ? -g[j] : g[j];
            if (_i == 2)
                pv[j] *= 1 - o.lr * o.weight_decay;
            else
                d += o.weight_decay * pv[j];
            m[j] = o.beta1 * m[j] + (1 - o.beta1) * d;
            v[j] = o.beta2 * v[j] + (1 - o.beta2) * d * d;
            vmax[j] = fmax(vmax[j], v[j]);
            double bc1 = 1 - pow(o.beta1, t), bc2 = 1 - pow(o.beta2, t);
            double denom = sqrt(o.amsgrad ? vmax[j] : v[j]) / sqrt(bc2) + o.eps;
            pv[j] -= o.lr / bc1 * m[j] / denom;
            ck_close(et_data(p)[j], pv[j]);
        }
    }
    ck_assert_int_eq(et_optim_state_count(opt), o.amsgrad ? 3 : 2);
    ck_assert_str_eq(et_optim_state_name(opt, 0), "0.exp_avg");
    ck_assert_str_eq(et_optim_state_name(opt, 1), "0.exp_avg_sq");
    et_optim_free(opt);
    et_tensor_free(p);
}
END_TEST

/* 11 elements: the 4-lane loop and the scalar tail of the update. */
START_TEST(adam_long_parameters_match_definition)
{
    enum { K = 11 };
    et_adam_opts o = _i & 2 ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
    o.lr = 0.05;
    o.amsgrad = _i & 1;
    if (!(_i & 2))
        o.weight_decay = 0.1;
    et_generator *gen = et_generator_new(31 + (uint64_t)_i);
    float p0[K], g0[K];
    nn_fill_uniform(gen, p0, K, -1, 1);
    double pv[K], m[K] = {0}, v[K] = {0}, vmax[K] = {0};
    et_tensor *p = et_tensor_new(p0, ET_SHAPE(K));
    et_set_requires_grad(p, true);
    et_optim *opt = _i & 2 ? et_adamw_new(&p, 1, o) : et_adam_new(&p, 1, o);
    for (int j = 0; j < K; j++)
        pv[j] = p0[j];
    for (int t = 1; t <= 5; t++) {
        nn_fill_uniform(gen, g0, K, -1, 1);   /* a new gradient every step */
        et_tensor *g = et_tensor_new(g0, ET_SHAPE(K));
        et_set_grad(p, g);
        et_tensor_free(g);
        ck_assert_int_eq(et_optim_step(opt), ET_OK);
        double bc1 = 1 - pow(o.beta1, t), bc2 = 1 - pow(o.beta2, t);
        for (int j = 0; j < K; j++) {
            double d = g0[j];
            if (_i & 2)
                pv[j] *= 1 - o.lr * o.weight_decay;
            else
                d += o.weight_decay * pv[j];
            m[j] = o.beta1 * m[j] + (1 - o.beta1) * d;
            v[j] = o.beta2 * v[j] + (1 - o.beta2) * d * d;
            vmax[j] = fmax(vmax[j], v[j]);
            pv[j] -= o.lr / bc1 * m[j] / (sqrt(o.amsgrad ? vmax[j] : v[j]) / sqrt(bc2) + o.eps);
            ck_close(et_data(p)[j], pv[j]);
        }
    }
    et_optim_free(opt);
    et_tensor_free(p);
    et_generator_free(gen);
}
END_TEST

/* Every lane gives the same bits: the wide loops (AVX-512 16, AVX 8, SSE 4
 * elements) and the scalar tail run the same operations.  A parameter of 31
 * elements whose element 0 (always in the widest loop) and 30 (always in the
 * scalar tail) see the same value and gradient stays equal bit for bit;
 * loop over SGD (momentum, Nesterov, weight decay, maximize), Adam (wd,
 * amsgrad) and AdamW. */
START_TEST(optimizer_lanes_give_the_same_bits)
{
    enum { K = 31 };
    et_generator *gen = et_generator_new(77 + (uint64_t)_i);
    float p0[K], g0[K];
    nn_fill_uniform(gen, p0, K, -1, 1);
    p0[K - 1] = p0[0];
    et_tensor *p = et_tensor_new(p0, ET_SHAPE(K));
    et_set_requires_grad(p, true);
    et_optim *opt;
    if (_i < 2) {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        o.lr = 0.1, o.momentum = 0.9, o.weight_decay = 0.01, o.nesterov = _i == 1;
        o.maximize = _i == 1, o.dampening = _i == 0 ? 0.1 : 0;
        opt = et_sgd_new(&p, 1, o);
    } else {
        et_adam_opts o = _i == 4 ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
        o.lr = 0.05, o.amsgrad = _i == 3;
        if (_i != 4)
            o.weight_decay = 0.1;
        opt = _i == 4 ? et_adamw_new(&p, 1, o) : et_adam_new(&p, 1, o);
    }
    ck_assert_ptr_nonnull(opt);
    for (int t = 0; t < 6; t++) {
        nn_fill_uniform(gen, g0, K, -1, 1);
        g0[K - 1] = g0[0];
        et_tensor *g = et_tensor_new(g0, ET_SHAPE(K));
        et_set_grad(p, g);
        et_tensor_free(g);
        ck_assert_int_eq(et_optim_step(opt), ET_OK);
        ck_assert_msg(memcmp(&et_data(p)[0], &et_data(p)[K - 1], sizeof(float)) == 0,
                      "step %d: lane %.9g, tail %.9g", t, et_data(p)[0], et_data(p)[K - 1]);
        ck_assert(et_data(p)[0] != p0[0]);
    }
    et_optim_free(opt);
    et_tensor_free(p);
    et_generator_free(gen);
}
END_TEST

/* The AVX-512 Adam loop divides sqrt(v) by the bias correction with FMAs
 * (optim_simd.c, div_bc512): the same bits as the division, for every s of
 * whole binades (the smallest sqrt of a float, around 1, the largest) and
 * for 0, -0, inf, NaN, against the bias corrections of Adam's first steps
 * for three betas and the ends of the range. */
START_TEST(adam_bias_correction_division_is_exact)
{
    enum { BIN = 1 << 23 };
    float *s = malloc((size_t)BIN * sizeof(float)), *q = malloc((size_t)BIN * sizeof(float));
    ck_assert(s != NULL && q != NULL);
    float cs[64];
    int nc = 0;
    const double betas[] = {0.999, 0.99, 0.9};
    for (int b = 0; b < 3; b++)
        for (int t = 1; t <= 9; t++)
            cs[nc++] = (float)sqrt(1.0 - pow(betas[b], t + (t > 6 ? 100 * t : 0)));
    const float ends[] = {1.0f, 0x1.fffffep-1f, 0x1p-60f, 0x1.000002p-60f, 0x1.fffffep-31f,
                          0.5f, 0x1.6a09e6p-1f, 0x1.0p-1f + 0x1p-24f};
    for (int i = 0; i < 8; i++)
        cs[nc++] = ends[i];
    const uint32_t binades[] = {0x1a000000u, 0x3f800000u, 0x5f000000u}; /* 2^-75, 1, 2^63 */
    int64_t compared = 0;
    for (int ci = 0; ci < nc; ci++) {
        float c = cs[ci];
        for (int bi = 0; bi < 3; bi++) {
            for (uint32_t i = 0; i < BIN; i++) {
                uint32_t bits = binades[bi] + i;
                memcpy(&s[i], &bits, sizeof bits);
            }
            if (bi == 0) {
                s[0] = 0.0f, s[1] = -0.0f, s[2] = INFINITY, s[3] = NAN, s[4] = sqrtf(FLT_MAX);
            }
            int64_t done = nn_div_bc_simd(s, q, BIN, c);
            if (done == 0) {
                free(s);
                free(q);
                fprintf(stderr, "NOT RUN on this CPU: adam_bias_correction_division_is_exact: avx512f\n");
                return;
            }
            ck_assert_int_eq(done, BIN);
            for (uint32_t i = 0; i < BIN; i++) {
                float d = s[i] / c;
                uint32_t db, qb;
                memcpy(&db, &d, sizeof db);
                memcpy(&qb, &q[i], sizeof qb);
                if (db == qb || (isnan(d) && isnan(q[i])))
                    continue;
                ck_assert_msg(0,
                              "%a / %a: division %a, FMAs %a", (double)s[i], (double)c,
                              (double)d, (double)q[i]);
            }
            compared += BIN;
        }
    }
    ck_assert_int_eq(nn_div_bc_simd(s, q, 16, 0x1p-61f), 0);   /* outside: the division */
    ck_assert_int_eq(nn_div_bc_simd(s, q, 16, 1.5f), 0);
    ck_assert_int_gt(compared, 0);
    free(s);
    free(q);
}
END_TEST

/* Adam flushes denormals inside its loop (optim_rules.c): with gradients of
 * 1e-20, v = (1 - b2) g² is below float's normal range, and the update
 * still equals the definition (eps dominates the denominator); the
 * thread's floating-point control word is restored afterwards. */
START_TEST(adam_denormal_state_matches_definition)
{
    enum { K = 33 };
    float p0[K], g0[K];
    for (int j = 0; j < K; j++)
        p0[j] = 0.5f + 0.01f * (float)j, g0[j] = (j % 2 ? -1e-20f : 1e-20f) * (float)(j + 1);
    et_tensor *p = et_tensor_new(p0, ET_SHAPE(K));
    et_set_requires_grad(p, true);
    et_adam_opts o = ET_ADAM_DEFAULTS;
    et_optim *opt = et_adam_new(&p, 1, o);
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr();
#endif
    double m[K] = {0}, v[K] = {0}, pv[K];
    for (int j = 0; j < K; j++)
        pv[j] = p0[j];
    for (int t = 1; t <= 3; t++) {
        et_tensor *g = et_tensor_new(g0, ET_SHAPE(K));
        et_set_grad(p, g);
        et_tensor_free(g);
        ck_assert_int_eq(et_optim_step(opt), ET_OK);
        double bc1 = 1 - pow(o.beta1, t), bc2 = 1 - pow(o.beta2, t);
        for (int j = 0; j < K; j++) {
            m[j] = o.beta1 * m[j] + (1 - o.beta1) * g0[j];
            v[j] = o.beta2 * v[j] + (1 - o.beta2) * (double)g0[j] * g0[j];
            pv[j] -= o.lr / bc1 * m[j] / (sqrt(v[j]) / sqrt(bc2) + o.eps);
            ck_close(et_data(p)[j], pv[j]);
        }
    }
#if defined(__SSE2__)
    ck_assert_uint_eq(_mm_getcsr() & ~0x3Fu, csr & ~0x3Fu);   /* control bits; the low six are sticky exception flags */
#endif
    et_optim_free(opt);
    et_tensor_free(p);
}
END_TEST

START_TEST(adagrad_lr_decay_and_initial_accumulator)
{
    et_adagrad_opts o = ET_ADAGRAD_DEFAULTS;
    o.lr = 0.1;
    o.lr_decay = 0.05;
    o.initial_accumulator_value = 0.2;
    o.weight_decay = 0.01;
    et_tensor *p = param_with_grad(1.0f, -2.0f, 0.5f, -0.25f);
    et_optim *opt = et_adagrad_new(&p, 1, o);
    double pv[2] = {1.0, -2.0}, g[2] = {0.5, -0.25}, sum[2] = {0.2, 0.2};
    for (int t = 1; t <= 4; t++) {
        et_optim_step(opt);
        double clr = o.lr / (1 + (t - 1) * o.lr_decay);
        for (int j = 0; j < 2; j++) {
            double d = g[j] + o.weight_decay * pv[j];
            sum[j] += d * d;
            pv[j] -= clr * d / (sqrt(sum[j]) + o.eps);
            ck_close(et_data(p)[j], pv[j]);
        }
    }
    ck_assert_str_eq(et_optim_state_name(opt, 0), "0.sum");
    et_optim_free(opt);
    et_tensor_free(p);
}
END_TEST

START_TEST(rmsprop_plain_centered_momentum)
{
    et_rmsprop_opts o = ET_RMSPROP_DEFAULTS;
    o.centered = _i & 1;
    o.momentum = (_i & 2) ? 0.8 : 0;
    et_tensor *p = param_with_grad(1.0f, -2.0f, 0.5f, -0.25f);
    et_optim *opt = et_rmsprop_new(&p, 1, o);
    double pv[2] = {1.0, -2.0}, g[2] = {0.5, -0.25}, sq[2] = {0}, ga[2] = {0}, buf[2] = {0};
    for (int t = 1; t <= 4; t++) {
        et_optim_step(opt);
        for (int j = 0; j < 2; j++) {
            sq[j] = o.alpha * sq[j] + (1 - o.alpha) * g[j] * g[j];
            double avg;
            if (o.centered) {
                ga[j] = o.alpha * ga[j] + (1 - o.alpha) * g[j];
                avg = sqrt(sq[j] - ga[j] * ga[j]) + o.eps;
            } else {
                avg = sqrt(sq[j]) + o.eps;
            }
            if (o.momentum > 0) {
                buf[j] = o.momentum * buf[j] + g[j] / avg;
                pv[j] -= o.lr * buf[j];
            } else {
                pv[j] -= o.lr * g[j] / avg;
            }
            ck_close_tol(et_data(p)[j], pv[j], 1e-4, 1e-4);
        }
    }
    ck_assert_int_eq(et_optim_state_count(opt), 1 + o.centered + (o.momentum > 0));
    et_optim_free(opt);
    et_tensor_free(p);
}
END_TEST

START_TEST(invalid_hyper_parameters_are_rejected)
{
    et_tensor *p = param_with_grad(0, 0, 0, 0);
    et_sgd_opts s = ET_SGD_DEFAULTS;
    s.lr = -1;
    ck_assert_ptr_null(et_sgd_new(&p, 1, s));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    s = ET_SGD_DEFAULTS;
    s.nesterov = true;
    ck_assert_ptr_null(et_sgd_new(&p, 1, s));
    ck_assert_ptr_null(et_sgd_new(&p, 0, ET_SGD_DEFAULTS));
    et_adam_opts a = ET_ADAM_DEFAULTS;
    a.beta1 = 1.0;
    ck_assert_ptr_null(et_adam_new(&p, 1, a));
    a = ET_ADAM_DEFAULTS;
    a.eps = NAN;
    ck_assert_ptr_null(et_adamw_new(&p, 1, a));
    et_rmsprop_opts r = ET_RMSPROP_DEFAULTS;
    r.alpha = -0.5;
    ck_assert_ptr_null(et_rmsprop_new(&p, 1, r));
    et_adagrad_opts g = ET_ADAGRAD_DEFAULTS;
    g.lr_decay = -1;
    ck_assert_ptr_null(et_adagrad_new(&p, 1, g));
    et_tensor *none[1] = {NULL};
    ck_assert_ptr_null(et_adam_new(none, 1, ET_ADAM_DEFAULTS));
    et_tensor *twice[2] = {p, p};
    ck_assert_ptr_null(et_sgd_new(twice, 2, ET_SGD_DEFAULTS));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    et_tensor_free(p);
}
END_TEST

START_TEST(parameters_without_grad_are_skipped_and_zero_grad_zeroes)
{
    et_tensor *ps[2];
    ps[0] = param_with_grad(1, 1, 1, 1);
    ps[1] = et_ones(ET_SHAPE(3));
    et_set_requires_grad(ps[1], true);
    et_optim *opt = et_adam_new(ps, 2, ET_ADAM_DEFAULTS);
    ck_assert_int_eq(et_optim_step(opt), ET_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq(et_data(ps[1])[i], 1.0f);
    ck_assert(et_data(ps[0])[0] < 1.0f);
    et_optim_zero_grad(opt);
    ck_assert_float_eq(et_data(et_grad(ps[0]))[1], 0.0f);
    ck_assert_ptr_null(et_grad(ps[1]));
    et_optim_set_lr(opt, 0.5);
    ck_assert_double_eq(et_optim_get_lr(opt), 0.5);
    et_optim_free(opt);
    et_optim_free(NULL);
    et_tensor_free(ps[0]);
    et_tensor_free(ps[1]);
}
END_TEST

START_TEST(wrong_gradient_shape_changes_nothing)
{
    et_tensor *p = et_ones(ET_SHAPE(2));
    et_set_requires_grad(p, true);
    et_tensor *g = et_ones(ET_SHAPE(3));
    et_set_grad(p, g);
    et_tensor_free(g);
    if (et_grad(p)) { /* core may refuse the mismatched grad itself */
        et_optim *opt = et_sgd_new(&p, 1, ET_SGD_DEFAULTS);
        ck_assert_int_eq(et_optim_step(opt), ET_ERR_SHAPE);
        ck_assert_float_eq(et_data(p)[0], 1.0f);
        et_optim_free(opt);
    }
    et_tensor_free(p);
}
END_TEST

/* State copied into a fresh optimizer continues exactly like the original. */
START_TEST(state_save_and_load_continues_identically)
{
    et_tensor *a = param_with_grad(1.0f, -2.0f, 0.5f, -0.25f);
    et_tensor *b = param_with_grad(1.0f, -2.0f, 0.5f, -0.25f);
    et_adam_opts o = ET_ADAM_DEFAULTS;
    o.amsgrad = true;
    et_optim *oa = et_adam_new(&a, 1, o), *ob = et_adam_new(&b, 1, o);
    for (int i = 0; i < 3; i++)
        et_optim_step(oa);
    et_copy_(b, a);
    int n = et_optim_state_count(oa);
    const char *names[8];
    et_tensor *ts[8];
    for (int i = 0; i < n; i++) {
        names[i] = et_optim_state_name(oa, i);
        ts[i] = et_optim_state_tensor(oa, i);
    }
    /* missing entry / wrong shape -> error, nothing loaded */
    ck_assert_int_eq(et_optim_load_state(ob, names, ts, n - 1, 3), ET_ERR_FORMAT);
    et_tensor *wrong = et_zeros(ET_SHAPE(5));
    et_tensor *ts2[8];
    memcpy(ts2, ts, sizeof ts);
    ts2[1] = wrong;
    ck_assert_int_eq(et_optim_load_state(ob, names, ts2, n, 3), ET_ERR_SHAPE);
    ck_assert_int_eq(et_optim_steps(ob), 0);
    /* a name given twice (one copy zeros): refused, not "last one wins" */
    const char *dup_names[9];
    et_tensor *dup_ts[9];
    memcpy(dup_names, names, sizeof(char *) * (size_t)n);
    memcpy(dup_ts, ts, sizeof(et_tensor *) * (size_t)n);
    dup_names[n] = names[0];
    dup_ts[n] = wrong;
    ck_assert_int_eq(et_optim_load_state(ob, dup_names, dup_ts, n + 1, 3), ET_ERR_FORMAT);
    ck_assert_int_eq(et_optim_steps(ob), 0);
    et_tensor_free(wrong);
    ck_assert_int_eq(et_optim_load_state(ob, names, ts, n, 3), ET_OK);
    ck_assert_int_eq(et_optim_steps(ob), 3);
    for (int i = 0; i < 2; i++) {
        et_optim_step(oa);
        et_optim_step(ob);
    }
    for (int j = 0; j < 2; j++)
        ck_assert_float_eq(et_data(a)[j], et_data(b)[j]);
    et_optim_free(oa);
    et_optim_free(ob);
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

static et_optim *sgd_lr(et_tensor **p, double lr)
{
    *p = param_with_grad(0, 0, 0, 0);
    et_sgd_opts o = ET_SGD_DEFAULTS;
    o.lr = lr;
    return et_sgd_new(p, 1, o);
}

START_TEST(schedulers_follow_torch_closed_forms)
{
    et_tensor *p;
    et_optim *o = sgd_lr(&p, 0.1);
    const int64_t ms[] = {10, 25, 25, 60};
    et_scheduler *s[5] = {
        et_steplr_new(o, 7, 0.5), et_multisteplr_new(o, ms, 4, 0.3),
        et_exponentiallr_new(o, 0.97), et_cosineannealinglr_new(o, 30, 0.001),
        et_linearlr_new(o, 1.0 / 3, 1.0, 5),
    };
    const char *types[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                           "LinearLR"};
    for (int k = 0; k < 5; k++) {
        ck_assert_ptr_nonnull(s[k]);
        ck_assert_str_eq(et_scheduler_type(s[k]), types[k]);
        et_scheduler_free(s[k]);
    }
    for (int k = 0; k < 5; k++) {
        et_optim_set_lr(o, 0.1);
        et_scheduler *sc = k == 0 ? et_steplr_new(o, 7, 0.5)
                           : k == 1 ? et_multisteplr_new(o, ms, 4, 0.3)
                           : k == 2 ? et_exponentiallr_new(o, 0.97)
                           : k == 3 ? et_cosineannealinglr_new(o, 30, 0.001)
                                    : et_linearlr_new(o, 1.0 / 3, 1.0, 5);
        for (int e = 0; e <= 100; e++) {
            double want;
            if (k == 0) {
                want = 0.1 * pow(0.5, e / 7);
            } else if (k == 1) {
                int c = (e >= 10) + 2 * (e >= 25) + (e >= 60);
                want = 0.1 * pow(0.3, c);
            } else if (k == 2) {
                want = 0.1 * pow(0.97, e);
            } else if (k == 3) {
                want = 0.001 + (0.1 - 0.001) * (1 + cos(M_PI * e / 30)) / 2;
            } else {
                double f = e >= 5 ? 1.0 : 1.0 / 3 + (1 - 1.0 / 3) * e / 5;
                want = 0.1 * f;
            }
            ck_assert_int_eq(et_scheduler_last_epoch(sc), e);
            ck_close_tol(et_scheduler_get_last_lr(sc), want, 1e-6, 1e-9);
            ck_assert_double_eq(et_optim_get_lr(o), et_scheduler_get_last_lr(sc));
            et_scheduler_step(sc);
        }
        et_scheduler_free(sc);
    }
    et_optim_free(o);
    et_tensor_free(p);
}
END_TEST

START_TEST(scheduler_bad_args_and_state_restore)
{
    et_tensor *p;
    et_optim *o = sgd_lr(&p, 0.1);
    ck_assert_ptr_null(et_steplr_new(o, 0, 0.1));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_cosineannealinglr_new(o, 0, 0));
    /* its period 2 * T_max used to overflow (undefined behaviour) on step */
    ck_assert_ptr_null(et_cosineannealinglr_new(o, INT64_MAX, 0));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_linearlr_new(o, 0, 1, 5));
    ck_assert_ptr_null(et_exponentiallr_new(NULL, 0.5));
    /* restoring (last_epoch, lr) continues the chainable form */
    et_scheduler *a = et_exponentiallr_new(o, 0.5);
    for (int i = 0; i < 3; i++)
        et_scheduler_step(a);
    double lr = et_scheduler_get_last_lr(a);
    et_scheduler_free(a);
    et_optim_set_lr(o, 0.1);
    et_scheduler *b = et_exponentiallr_new(o, 0.5);
    ck_assert_int_eq(et_scheduler_load_state(b, 3, lr), ET_OK);
    et_scheduler_step(b);
    ck_close(et_optim_get_lr(o), 0.1 * pow(0.5, 4));
    ck_assert_int_eq(et_scheduler_last_epoch(b), 4);
    ck_assert_int_eq(et_scheduler_load_state(b, -2, lr), ET_ERR_ARG);
    et_scheduler_free(b);
    et_optim_free(o);
    et_tensor_free(p);
}
END_TEST

/* torch: loss.backward(retain_graph=True); opt.step(); loss.backward() raises
 * "modified by an inplace operation": the step changed W, which the
 * graph's backward reads.  The step used to write through a raw pointer
 * without counting it, so the second backward silently used the new W. */
START_TEST(step_invalidates_graphs_that_read_the_parameters)
{
    et_generator *g = et_generator_new(4);
    et_module *lin = et_linear_new(3, 2, true, g);
    et_tensor *params[2] = {et_module_param(lin, 0), et_module_param(lin, 1)};
    et_optim *o = et_sgd_new(params, 2, ET_SGD_DEFAULTS);
    et_pool_begin();
    et_tensor *x = et_randn(g, ET_SHAPE(4, 3));
    et_set_requires_grad(x, true);
    et_tensor *loss = et_sum_all(et_module_forward(lin, x));
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    ck_assert_int_eq(et_optim_step(o), ET_OK);
    ck_assert_int_eq(et_backward(loss, NULL), ET_ERR_GRAD);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "in-place"));
    /* a fresh forward after the step differentiates normally */
    ck_assert_int_eq(et_backward(et_sum_all(et_module_forward(lin, x)), NULL), ET_OK);
    et_pool_end();
    et_optim_free(o);
    et_module_free(lin);
    et_generator_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_optim");
    TCase *tc = tcase_create("rules");
    tcase_add_loop_test(tc, sgd_plain_momentum_dampening_nesterov, 0, 5);
    tcase_add_loop_test(tc, adam_and_adamw_first_steps, 0, 4);
    tcase_add_loop_test(tc, adam_long_parameters_match_definition, 0, 4);
    tcase_add_loop_test(tc, optimizer_lanes_give_the_same_bits, 0, 5);
    tcase_add_test(tc, adam_denormal_state_matches_definition);
    tcase_add_test(tc, adagrad_lr_decay_and_initial_accumulator);
    tcase_add_loop_test(tc, rmsprop_plain_centered_momentum, 0, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("exact_division");   /* 130 M quotients: seconds under sanitizers */
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, adam_bias_correction_division_is_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, invalid_hyper_parameters_are_rejected);
    tcase_add_test(tc, parameters_without_grad_are_skipped_and_zero_grad_zeroes);
    tcase_add_test(tc, wrong_gradient_shape_changes_nothing);
    tcase_add_test(tc, state_save_and_load_continues_identically);
    tcase_add_test(tc, step_invalidates_graphs_that_read_the_parameters);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedulers");
    tcase_add_test(tc, schedulers_follow_torch_closed_forms);
    tcase_add_test(tc, scheduler_bad_args_and_state_restore);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
