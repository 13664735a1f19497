/* check_json_float.c - etd_json_read_float (json_lex.h), the number parser of the
 * body's fast tensor path: for every text, the float the general path
 * stores (cJSON's strtod, then (float)) bit for bit, the same texts
 * accepted, and the same end -- over hard cases, every form the eight-byte
 * reader takes or hands on, and random values printed every way clients
 * print them; then whole bodies through the fast and the general path. */
#include "check_server.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_lex.h"
#include "server/formats/tensor_json.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The oracle: the strict grammar (etd_json_number's end), then what the
 * general path stores: (float)strtod of the text, refused beyond float32. */
static const char *oracle(const char *p, const char *end, float *out)
{
    const char *e = etd_json_number(p, end, NULL);
    if (!e)
        return NULL;
    char tmp[512];
    size_t n = (size_t)(e - p);
    ck_assert(n < sizeof tmp);
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    double v = strtod(tmp, NULL);
    if (!etd_number_ok(v))
        return NULL;
    *out = (float)v;
    return e;
}

static long checked;

/* text followed by tail in a buffer of exactly those bytes (nothing past
 * the end may be read): the same verdict, end and bits as the oracle. */
static void same_with(const char *text, const char *tail)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%s%s", text, tail);
    ck_assert(n >= 0 && (size_t)n < sizeof buf);
    char *exact = malloc((size_t)n + 1);
    memcpy(exact, buf, (size_t)n);
    float want = -1234.5f, got = -1234.5f;
    const char *we = oracle(exact, exact + n, &want);
    const char *ge = etd_json_read_float(exact, exact + n, &got);
    ck_assert_msg(we == ge, "\"%s\": end %td, expected %td", buf, ge ? ge - exact : -1,
                  we ? we - exact : -1);
    if (we)
        ck_assert_msg(bits(got) == bits(want), "\"%s\": %.9g (0x%08x), expected %.9g (0x%08x)",
                      buf, (double)got, bits(got), (double)want, bits(want));
    free(exact);
    checked++;
}

/* A long tail (the eight-byte reader needs 32 bytes before the end), and
 * each of the short ones (the general way). */
#define LONG_TAIL ",0.25,0.5,0.75,1.25,1.5,1.75,2.25,2.5]]}"
static void same(const char *text)
{
    static const char *const tails[] = {
        "", ",", "]", "]]}", ", 1.5]", " ,", "x", "e5", LONG_TAIL, "]" LONG_TAIL,
        " " LONG_TAIL, "x" LONG_TAIL, "e5" LONG_TAIL, "e-5" LONG_TAIL, "." LONG_TAIL,
        "-" LONG_TAIL, "+" LONG_TAIL, "0000000000000000" LONG_TAIL, "}" LONG_TAIL};
    for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++)
        same_with(text, tails[t]);
}

START_TEST(test_hard_cases)
{
    static const char *const cases[] = {
        "0", "-0", "0.0", "-0.0", "1", "-1", "9", "0.5", "-0.70345", "2.02845", "0.028",
        "1234567", "-1234567", "12345678", "123456789", "0.1", "0.2", "0.3",
        /* float midpoints and their neighbours (round-half-even in the double) */
        "16777217", "16777216.5", "16777217.0000001", "0.100000001490116119384765625",
        "1.00000005960464477539062", "1.0000000596046448", "1.0000000596046447",
        "1.00000017881393432617187", "3.4028234663852886e38", "3.4028235677973366e38",
        "340282346638528859811704183484516925440", "1e-45", "1.4e-45", "7e-46", "1.17549435e-38",
        "1.1754942e-38", "0.30000001192092896", "0.30000001192092895", "0.30000001192092897",
        /* digit counts around the reader's limits: 7 integer digits, 16
         * fraction digits, 19 in all, 2^53 */
        "9999999.9999999999", "1234567.123456789012", "0.1234567890123456",
        "0.12345678901234567", "0.123456789012345678", "9007199254740993", "9007199254740992",
        "900719925474099.3", "9007199.254740993", "9007199.254740992", "1.000000000000000001",
        "0.0000000000000001", "0.00000000000000001", "0.000000000000000000000001",
        "1234567.0", "1234567.00000000", "7.12345678", "7.1234567", "-7.123456789",
        /* the strict grammar: refused by both */
        "01", "-01", "00", "1.", "-", "-.5", ".5", "1.5.3", "1e", "1e+", "+1", "--1", "1..2",
        "0x10", "1.0e", "", " 1", "-a", "1.2.3.4.5.6.7.8",
        /* exponents, and the range of float32 */
        "1e5", "1E5", "1e-5", "2.5e-3", "3e2", "1e38", "3.4e38", "3.5e38", "1e39", "1e999",
        "-1e999", "1e-999", "4.9e-324", "123456789e-5", "0e0", "-0e-0"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same(cases[i]);
}
END_TEST

/* xorshift: a reproducible stream */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

START_TEST(test_random_values_every_way_printed)
{
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        uint64_t r = next();
        /* a gaussian-ish value of a few magnitudes, a uniform float's bits,
         * and a float midpoint */
        double u = (double)(r >> 11) / 9007199254740992.0;
        double g = (u - 0.5) * pow(10.0, (double)((int)(next() % 12) - 5));
        uint32_t fb = (uint32_t)next();
        float f;
        memcpy(&f, &fb, sizeof f);
        if (!isfinite(f))
            f = 1.5f;
        double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
        const double vals[] = {g, (double)f, mid, round(g * 1e5) / 1e5, (double)(float)g};
        for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
            static const char *const fmts[] = {"%.17g", "%.9g", "%.6g", "%.5f", "%.8f",
                                               "%.16f", "%.3f", "%.0f", "%.12g"};
            for (size_t j = 0; j < sizeof fmts / sizeof fmts[0]; j++) {
                snprintf(buf, sizeof buf, fmts[j], vals[k]);
                same_with(buf, LONG_TAIL);
                same_with(buf, "");
            }
        }
        if (i % 2000 == 0) { /* and each with every tail (the bytes after it) */
            snprintf(buf, sizeof buf, "%.17g", g);
            same(buf);
            snprintf(buf, sizeof buf, "%.5f", g);
            same(buf);
        }
    }
    ck_assert(checked > 1000000);
}
END_TEST

/* Digit strings of every length and position of the point, each digit
 * every value in turn: every form of the eight-byte reader's inputs. */
START_TEST(test_every_digit_layout)
{
    char buf[64];
    for (int len = 1; len <= 24; len++)
        for (int point = 0; point <= len; point++)
            for (int d = 0; d < 10; d++) {
                int n = 0;
                if (d & 1)
                    buf[n++] = '-';
                for (int i = 0; i < len; i++) {
                    if (i == point && i > 0)
                        buf[n++] = '.';
                    buf[n++] = (char)('0' + (i == 0 && len > 1 && point != 1 ? 1 + (d + i) % 9
                                                                              : (d * 7 + i * 3) % 10));
                }
                buf[n] = '\0';
                same(buf);
            }
}
END_TEST

/* Appends to the test's text buffer (vsnprintf: gcc's format-overflow check
 * under UBSan takes text + n for a possibly NULL sprintf destination). */
static char text[1 << 20];
static int put(char *buf, int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + n, sizeof text - (size_t)n, fmt, ap);
    va_end(ap);
    ck_assert(w >= 0 && (size_t)w < sizeof text - (size_t)n);
    return w;
}

/* Whole bodies' arrays: the fast path (every number through etd_json_read_float)
 * gives the general path's floats and shape. */
START_TEST(test_arrays_through_fast_and_general_paths)
{
    for (int round = 0; round < 40; round++) {
        int rows = 1 + (int)(next() % 40), cols = 1 + (int)(next() % 20), n = 0;
        n += put(text, n, "[");
        for (int r = 0; r < rows; r++) {
            n += put(text, n, "%s[", r ? (round & 1 ? ", " : ",") : "");
            for (int c = 0; c < cols; c++) {
                double u = (double)(next() >> 11) / 9007199254740992.0 - 0.5;
                const char *fmt = round % 3 == 0 ? "%.5f" : round % 3 == 1 ? "%.17g" : "%.9g";
                n += put(text, n, "%s", c ? (round & 2 ? " , " : ",") : "");
                n += put(text, n, fmt, u * pow(10.0, (double)(round % 7) - 2));
            }
            n += put(text, n, "]");
        }
        n += put(text, n, "]");
        cJSON *j = cJSON_ParseWithLength(text, (size_t)n);
        ck_assert_ptr_nonnull(j);
        etd_array slow, fast;
        char err[256];
        ck_assert(etd_array_from_json(j, "inputs", 1 << 20, &slow, err, sizeof err));
        const char *e = etd_fast_array(text, text + n, 1 << 20, &fast);
        ck_assert_ptr_eq(e, text + n);
        ck_assert_int_eq(fast.ndim, 2);
        ck_assert_int_eq(fast.shape[0], rows);
        ck_assert_int_eq(fast.shape[1], cols);
        ck_assert_int_eq(fast.numel, slow.numel);
        ck_assert(memcmp(fast.data, slow.data, (size_t)slow.numel * sizeof(float)) == 0);
        etd_array_free(&slow);
        etd_array_free(&fast);
        cJSON_Delete(j);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("json_float");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 3600); /* a bound on hangs, not a time limit: meson's guards too */
    tcase_add_test(tc, test_hard_cases);
    tcase_add_test(tc, test_random_values_every_way_printed);
    tcase_add_test(tc, test_every_digit_layout);
    tcase_add_test(tc, test_arrays_through_fast_and_general_paths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
