/*
 * nn_check.h - small helpers shared by the nn Check tests.
 */
#ifndef NN_CHECK_H
#define NN_CHECK_H

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include <easytorch/easytorch.h>

/* |a - b| <= atol + rtol * |b|, the suite's standard tolerance. */
static inline int nn_close(double a, double b, double rtol, double atol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return fabs(a - b) <= atol + rtol * fabs(b);
}

#define ck_close(a, b) \
    ck_assert_msg(nn_close((a), (b), 1e-4, 1e-5), "%s = %.9g, expected %.9g", #a, \
                  (double)(a), (double)(b))
#define ck_close_tol(a, b, rtol, atol) \
    ck_assert_msg(nn_close((a), (b), (rtol), (atol)), "%s = %.9g, expected %.9g", #a, \
                  (double)(a), (double)(b))

/* Fill n floats uniformly in [lo, hi) from g. */
static inline void nn_fill_uniform(et_generator *g, float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * et_generator_uniform(g));
}

/* y = x W^T + b computed from the definition. */
static inline void ref_linear(const float *x, const float *w, const float *b, float *y, int n,
                              int in, int out)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++)
                s += (double)x[i * in + k] * w[o * in + k];
            y[i * out + o] = (float)s;
        }
}

/* Run a suite with the usual runner; returns the process exit status. */
static inline int nn_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
