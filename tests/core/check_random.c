/*
 * check_random.c - etc_dropout_mask (src/core/random.c, random_avx2.c): the
 * mask and the masked product against a scalar reference of its documented
 * draws (16 xoshiro128++ lanes seeded by splitmix64 from two draws of the
 * generator; element i from lane i % 16's (i / 16)-th output, kept when it
 * is below ceil(keep * 2^32)), bit for bit, for every length's tail, with
 * and without the product, on every instruction set the CPU has (the AVX2
 * intrinsics where the GEMM kernels are AVX2, the loop's clones elsewhere).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_helpers.h"
#include "core/core_internal.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The mask and product etc_dropout_mask documents, one lane at a time. */
static void reference(uint64_t d0, uint64_t d1, int64_t n, float keep, float scale,
                      const float *x, float *mask, float *y)
{
    uint64_t seed = d0 ^ ((d1 << 32) | (d1 >> 32)) * UINT64_C(0x9e3779b97f4a7c15);
    uint32_t s[16][4];
    for (int l = 0; l < 16; l++)
        for (int w = 0; w < 4; w += 2) {
            uint64_t z = splitmix(&seed);
            s[l][w] = (uint32_t)(z >> 32);
            s[l][w + 1] = (uint32_t)z | (w == 0);
        }
    double thr = ceil((double)keep * 0x1.0p32);
    for (int64_t i = 0; i < n; i++) {
        uint32_t *q = s[i % 16];
        uint32_t a = q[0] + q[3], r = ((a << 7) | (a >> 25)) + q[0], t = q[1] << 9;
        q[2] ^= q[0];
        q[3] ^= q[1];
        q[1] ^= q[2];
        q[0] ^= q[3];
        q[2] ^= t;
        q[3] = (q[3] << 11) | (q[3] >> 21);
        mask[i] = (double)r < thr ? scale : 0.0f;
        if (x)
            y[i] = x[i] * mask[i];
    }
}

static void check_isa(const char *isa)
{
    static const float keeps[] = {0.9f, 0.5f, 0.1f, 0.999f};
    static const int64_t lens[] = {1, 7, 15, 16, 17, 31, 32, 33, 48, 100, 4096, 4099};
    enum { NMAX = 4099 };
    float *x = malloc(NMAX * sizeof(float)), *m = malloc((NMAX + 1) * sizeof(float));
    float *y = malloc((NMAX + 1) * sizeof(float)), *em = malloc(NMAX * sizeof(float));
    float *ey = malloc(NMAX * sizeof(float));
    ck_assert(x && m && y && em && ey);
    for (int i = 0; i < NMAX; i++)   /* signs, zeros, a NaN and infinities in the product */
        x[i] = i % 97 == 5 ? NAN : i % 89 == 3 ? -INFINITY : (float)((i * 37) % 23) - 11.5f;
    for (size_t ki = 0; ki < sizeof keeps / sizeof keeps[0]; ki++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int prod = 0; prod < 2; prod++) {
                int64_t n = lens[li];
                float keep = keeps[ki], scale = 1.0f / keep;
                uint64_t seed = 1000 + 31 * ki + li;
                et_generator *g = et_generator_new(seed), *g2 = et_generator_new(seed);
                ck_assert(g && g2);
                uint64_t d0 = et_generator_next(g2), d1 = et_generator_next(g2);
                reference(d0, d1, n, keep, scale, prod ? x : NULL, em, ey);
                /* one past n: left as it was */
                m[n] = y[n] = 42.0f;
                etc_dropout_mask(g, m, n, keep, scale, prod ? x : NULL, prod ? y : NULL);
                ck_assert_msg(memcmp(m, em, (size_t)n * sizeof(float)) == 0,
                              "%s: mask of %lld, keep %g: not the reference's bits", isa,
                              (long long)n, keep);
                if (prod)
                    ck_assert_msg(memcmp(y, ey, (size_t)n * sizeof(float)) == 0,
                                  "%s: product of %lld, keep %g: not the reference's bits", isa,
                                  (long long)n, keep);
                ck_assert_msg(m[n] == 42.0f && y[n] == 42.0f, "%s: wrote past %lld", isa,
                              (long long)n);
                /* the generator moved by exactly two draws */
                ck_assert(et_generator_next(g) == et_generator_next(g2));
                et_generator_free(g);
                et_generator_free(g2);
            }
    free(x);
    free(m);
    free(y);
    free(em);
    free(ey);
}

START_TEST(test_dropout_mask_every_isa)
{
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    const char *saved = etc_gemm_isa();
    int ran = 0;
    for (int a = 0; a < 3; a++) {
        if (etc_gemm_set_isa(isas[a]) != 0) {
            note_not_run(__func__, isas[a]);
            continue;
        }
        check_isa(isas[a]);
        ran++;
    }
    ck_assert_int_eq(etc_gemm_set_isa(saved), 0);
    ck_assert_int_ge(ran, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("random");
    TCase *tc = tcase_create("random");
    tcase_add_test(tc, test_dropout_mask_every_isa);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
