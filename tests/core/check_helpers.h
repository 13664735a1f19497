/* check_helpers.h - small helpers shared by the core Check tests. */
#ifndef CHECK_HELPERS_H
#define CHECK_HELPERS_H

#include <check.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "easytorch/autograd.h"
#include "easytorch/ops.h"
#include "easytorch/tensor.h"

/* Tensor from a float literal list: TV(ET_SHAPE(2, 2), 1, 2, 3, 4) */
#define TV(shape_and_ndim, ...) \
    et_tensor_new((const float[]){__VA_ARGS__}, shape_and_ndim)

/* Default tolerances of the project (TEAM.md). */
#define RTOL 1e-4
#define ATOL 1e-5

static inline void assert_close_tol(const et_tensor *t, const float *expect, int64_t n,
                                    double rtol, double atol, const char *what)
{
    ck_assert_msg(t != NULL, "%s: tensor is NULL (%s)", what, et_errmsg());
    ck_assert_msg(et_numel(t) == n, "%s: numel %lld != %lld", what, (long long)et_numel(t),
                  (long long)n);
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    et_copy_to(t, v);
    for (int64_t i = 0; i < n; i++) {
        double e = expect[i], g = v[i];
        bool ok = (isnan(e) && isnan(g)) || (e == g) || fabs(g - e) <= atol + rtol * fabs(e);
        ck_assert_msg(ok, "%s: element %lld is %.9g, expected %.9g", what, (long long)i, g, e);
    }
    free(v);
}

#define ASSERT_VALUES(t, ...)                                                               \
    do {                                                                                    \
        const float ev_[] = {__VA_ARGS__};                                                  \
        assert_close_tol((t), ev_, (int64_t)(sizeof ev_ / sizeof ev_[0]), RTOL, ATOL, #t); \
    } while (0)

#define ASSERT_SHAPE(t, ...)                                                                 \
    do {                                                                                     \
        const int64_t es_[] = {__VA_ARGS__};                                                 \
        int n_ = (int)(sizeof es_ / sizeof es_[0]);                                          \
        ck_assert_ptr_nonnull(t);                                                            \
        ck_assert_int_eq(et_ndim(t), n_);                                                    \
        for (int i_ = 0; i_ < n_; i_++)                                                      \
            ck_assert_int_eq(et_shape(t)[i_], es_[i_]);                                      \
    } while (0)

#define ASSERT_ERROR(expr, code, substr)                                                     \
    do {                                                                                     \
        et_clear_error();                                                                    \
        ck_assert_ptr_null((void *)(expr));                                                  \
        ck_assert_int_eq(et_errcode(), (code));                                              \
        ck_assert_msg(strstr(et_errmsg(), (substr)) != NULL, "message '%s' lacks '%s'",      \
                      et_errmsg(), (substr));                                                \
    } while (0)

/* A part of a test this CPU cannot run (an ISA it lacks): said on stderr, so a
 * log from a machine without it shows what was not compared rather than a silent pass. */
static inline void note_not_run(const char *test, const char *what)
{
    fprintf(stderr, "NOT RUN on this CPU: %s: %s\n", test, what);
}

/* Runs every test of `s`, returns the process exit status. */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
