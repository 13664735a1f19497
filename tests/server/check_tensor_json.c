/* check_tensor_json.c - JSON tensors in easytorchd (tensor_json.h): the
 * general cJSON parser, the fast byte-level parsers, number validation and
 * the number/tensor writers (jsonout.h). */
#include "check_server.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_out.h"
#include "server/formats/tensor_json.h"

/* Parse text with cJSON, then etd_array_from_json; returns the verdict. */
static bool parse(const char *text, int64_t max_elems, etd_array *a, char *err, size_t cap)
{
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "test JSON does not parse: %s", text);
    memset(a, 0, sizeof *a);
    bool ok = etd_array_from_json(j, "inputs", max_elems, a, err, cap);
    cJSON_Delete(j);
    return ok;
}

/* text must be rejected with a message containing want. */
static void expect_reject(const char *text, int64_t max_elems, const char *want)
{
    etd_array a;
    char err[512] = "";
    bool ok = parse(text, max_elems, &a, err, sizeof err);
    ck_assert_msg(!ok, "accepted: %s", text);
    ck_assert_msg(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", text, err, want);
    ck_assert_ptr_null(a.data);
}

/* ---- etd_array_from_json ---- */

START_TEST(test_nested_lists_give_shape_and_row_major_data)
{
    etd_array a;
    char err[256];
    ck_assert(parse("[[1, 2, 3], [4, 5, 6.5]]", 100, &a, err, sizeof err));
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_int_eq(a.numel, 6);
    const float want[] = {1, 2, 3, 4, 5, 6.5f};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(a.data[i], want[i]);
    etd_array_free(&a);
}
END_TEST

START_TEST(test_bare_number_is_0d_and_empty_list_is_shape_0)
{
    etd_array a;
    char err[256];
    ck_assert(parse("2.5", 100, &a, err, sizeof err));
    ck_assert_int_eq(a.ndim, 0);
    ck_assert_int_eq(a.numel, 1);
    ck_assert_float_eq(a.data[0], 2.5f);
    etd_array_free(&a);
    /* torch.tensor([]).shape == (0,) */
    ck_assert(parse("[]", 100, &a, err, sizeof err));
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_int_eq(a.shape[0], 0);
    ck_assert_int_eq(a.numel, 0);
    etd_array_free(&a);
}
END_TEST

START_TEST(test_shape_data_form)
{
    etd_array a;
    char err[256];
    ck_assert(parse("{\"shape\": [3, 1, 2], \"data\": [1, 2, 3, 4, 5, 6]}", 100, &a, err,
                    sizeof err));
    ck_assert_int_eq(a.ndim, 3);
    ck_assert_int_eq(a.shape[0], 3);
    ck_assert_int_eq(a.shape[1], 1);
    ck_assert_int_eq(a.shape[2], 2);
    ck_assert_float_eq(a.data[5], 6);
    etd_array_free(&a);
    expect_reject("{\"shape\": [2, 2], \"data\": [1, 2, 3]}", 100, "inputs");
    expect_reject("{\"shape\": [2, -2], \"data\": []}", 100, "inputs");
    expect_reject("{\"shape\": [2], \"data\": [1, \"x\"]}", 100, "inputs");
}
END_TEST

START_TEST(test_ragged_and_mixed_lists_rejected)
{
    expect_reject("[[1, 2], [3]]", 100, "inputs");
    expect_reject("[[1, 2], 3]", 100, "inputs");
    expect_reject("[1, [2]]", 100, "inputs");
    expect_reject("[1, \"2\"]", 100, "inputs");
    expect_reject("[1, null]", 100, "inputs");
    expect_reject("[true]", 100, "inputs");
    expect_reject("\"1\"", 100, "inputs");
}
END_TEST

START_TEST(test_non_finite_and_float32_overflow_rejected)
{
    /* cJSON reads 1e999 as +inf; 3.5e38 is finite as a double but not a float32 */
    expect_reject("[1e999]", 100, "inputs");
    expect_reject("[-1e999]", 100, "inputs");
    expect_reject("[[1, 2], [3.5e38, 0]]", 100, "inputs");
    expect_reject("{\"shape\": [1], \"data\": [-3.5e38]}", 100, "inputs");
    /* the largest float32 itself is fine */
    etd_array a;
    char err[256];
    ck_assert(parse("[3.4028234663852886e38]", 100, &a, err, sizeof err));
    ck_assert_float_eq(a.data[0], FLT_MAX);
    etd_array_free(&a);
}
END_TEST

START_TEST(test_rank_and_size_limits)
{
    /* ET_MAX_DIMS nested levels pass, one more is refused */
    char deep[64] = "", deeper[64] = "";
    for (int i = 0; i < ET_MAX_DIMS; i++)
        strcat(deep, "[");
    strcat(deep, "1");
    for (int i = 0; i < ET_MAX_DIMS; i++)
        strcat(deep, "]");
    snprintf(deeper, sizeof deeper, "[%s]", deep);
    etd_array a;
    char err[256];
    ck_assert(parse(deep, 100, &a, err, sizeof err));
    ck_assert_int_eq(a.ndim, ET_MAX_DIMS);
    etd_array_free(&a);
    expect_reject(deeper, 100, "inputs");
    /* max_elems */
    ck_assert(parse("[1, 2, 3, 4]", 4, &a, err, sizeof err));
    etd_array_free(&a);
    expect_reject("[1, 2, 3, 4, 5]", 4, "inputs");
    expect_reject("{\"shape\": [1000000, 1000000, 1000000], \"data\": [1]}", 4, "inputs");
}
END_TEST

/* ---- etd_fast_array / etd_fast_shape_data ---- */

/* The fast path agrees with the general one wherever it accepts. */
static void fast_agrees(const char *text)
{
    etd_array slow, fast;
    char err[256];
    memset(&fast, 0, sizeof fast);
    ck_assert(parse(text, 1000, &slow, err, sizeof err));
    const char *end = text + strlen(text);
    const char *stop = text[0] == '{' ? etd_fast_shape_data(text, end, 1000, &fast)
                                      : etd_fast_array(text, end, 1000, &fast);
    ck_assert_msg(stop != NULL, "fast path refused %s", text);
    ck_assert_int_eq(fast.ndim, slow.ndim);
    ck_assert_int_eq(fast.numel, slow.numel);
    for (int d = 0; d < slow.ndim; d++)
        ck_assert_int_eq(fast.shape[d], slow.shape[d]);
    for (int64_t i = 0; i < slow.numel; i++)
        ck_assert_msg(fast.data[i] == slow.data[i], "%s: element %lld", text, (long long)i);
    etd_array_free(&slow);
    etd_array_free(&fast);
}

static void fast_refuses(const char *text)
{
    etd_array a;
    memset(&a, 0, sizeof a);
    const char *end = text + strlen(text);
    const char *stop = text[0] == '{' ? etd_fast_shape_data(text, end, 4, &a)
                                      : etd_fast_array(text, end, 4, &a);
    ck_assert_msg(stop == NULL, "fast path accepted %s", text);
    ck_assert_ptr_null(a.data);
}

START_TEST(test_fast_path_matches_general_parser)
{
    fast_agrees("[[1, -2.5e-3], [3e2, 0.1]]");
    fast_agrees("[0.30000001192092896, 1.17549435e-38, -0]");
    fast_agrees("[[[1], [2]], [[3], [4]]]");
    fast_agrees("{\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}");
}
END_TEST

START_TEST(test_fast_path_refuses_what_it_cannot_parse_exactly)
{
    fast_refuses("[[1, 2], [3]]");
    fast_refuses("[1e999]");
    fast_refuses("[3.5e38]");
    fast_refuses("[1, \"a\"]");
    fast_refuses("[1, 2, 3, 4, 5]"); /* over max_elems 4 */
    fast_refuses("[01]");
    fast_refuses("[1.]");
    fast_refuses("{\"shape\": [3], \"data\": [1, 2]}");
}
END_TEST

/* ---- etd_number_ok ---- */

START_TEST(test_number_ok_is_finite_float32)
{
    ck_assert(etd_number_ok(0));
    ck_assert(etd_number_ok(-FLT_MAX));
    ck_assert(etd_number_ok(FLT_MAX));
    ck_assert(etd_number_ok(1e-45)); /* rounds to the smallest subnormal */
    ck_assert(!etd_number_ok(3.5e38));
    ck_assert(!etd_number_ok(-3.5e38));
    ck_assert(!etd_number_ok(NAN));
    ck_assert(!etd_number_ok(INFINITY));
    ck_assert(!etd_number_ok(-INFINITY));
}
END_TEST

/* ---- number printing (jsonout.h) ---- */

/* Significant digits of a decimal ("-3.30e+13" -> 2, "0.0012" -> 2). */
static int sig_digits(const char *s)
{
    char d[64];
    int n = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && n < 63)
            d[n++] = *s;
    int a = 0;
    while (a < n && d[a] == '0')
        a++;
    while (n > a && d[n - 1] == '0')
        n--;
    return n - a;
}

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 32);
}

START_TEST(test_float_printing_round_trips_and_is_shortest)
{
    uint64_t seed = 12345;
    char buf[32], ref[40];
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = lcg(&seed);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f))
            continue;
        size_t n = etd_fmt_float(buf, f);
        ck_assert_uint_eq(n, strlen(buf));
        float back = strtof(buf, NULL);
        ck_assert_msg(memcmp(&back, &f, sizeof f) == 0 || (f == 0 && back == 0),
                      "%a printed as %s reads back as %a", (double)f, buf, (double)back);
        /* no more significant digits than the shortest %.{1..9}g that round-trips
         * (the notation may differ: Python's repr style, 33382117000000.0) */
        for (int p = 1; p <= 9; p++) {
            snprintf(ref, sizeof ref, "%.*g", p, (double)f);
            if (strtof(ref, NULL) == f) {
                ck_assert_msg(sig_digits(buf) <= sig_digits(ref), "%s has more digits than %s",
                              buf, ref);
                break;
            }
        }
    }
    ck_assert_uint_eq(etd_fmt_float(buf, NAN), 4);
    ck_assert_str_eq(buf, "null");
    etd_fmt_float(buf, -INFINITY);
    ck_assert_str_eq(buf, "null");
}
END_TEST

START_TEST(test_double_printing_round_trips)
{
    uint64_t seed = 777;
    char buf[32];
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = ((uint64_t)lcg(&seed) << 32) | lcg(&seed);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        etd_fmt_double(buf, d);
        ck_assert_msg(strtod(buf, NULL) == d, "%a printed as %s", d, buf);
    }
    etd_fmt_double(buf, 0.1);
    ck_assert_str_eq(buf, "0.1");
    etd_fmt_double(buf, NAN);
    ck_assert_str_eq(buf, "null");
}
END_TEST

/* What etd_fmt_double printed before its millisecond path (printf's shortest
 * of 15..17 digits that reads back, ".0" on a bare integer). */
static void printf_double(char *out, double d)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eEn")) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
}

/* The history's wall times (k / 1000.0) are written without printf: the
 * same bytes as printf's, for every size the fast path takes and around it. */
START_TEST(test_millisecond_times_print_as_printf)
{
    uint64_t seed = 4242;
    char got[32], want[32];
    double edges[] = {1e6, 1e6 - 0.001, 1e6 + 0.001, 999999999999.999, 1e12, 1e12 + 0.001,
                      1764772345.0, 1764772345.1, 1764772345.12, 1764772345.123,
                      1764772345.005, 1764772345.05, 1764772345.5, -1764772345.123,
                      1764772345.1234, 0.001, 123456.789};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        size_t n = etd_fmt_double(got, edges[i]);
        printf_double(want, edges[i]);
        ck_assert_msg(strcmp(got, want) == 0 && n == strlen(want), "%a: %s, printf %s",
                      edges[i], got, want);
    }
    for (int i = 0; i < 200000; i++) {
        /* k ms for k from 10^8 to ~10^15.6: 5 to 13 integer digits */
        uint64_t k = ((((uint64_t)lcg(&seed) << 32) | lcg(&seed)) % 4000000000000000ULL) +
                     100000000ULL;
        double d = (double)k / 1000.0;
        if (i % 4 == 1) /* and values near them that are not whole milliseconds */
            d = nextafter(d, INFINITY);
        etd_fmt_double(got, d);
        printf_double(want, d);
        ck_assert_msg(strcmp(got, want) == 0, "%a: %s, printf %s", d, got, want);
    }
}
END_TEST

START_TEST(test_i64_prints_as_printf)
{
    int64_t v[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    uint64_t seed = 99;
    for (int i = 0; i < 10000 + (int)(sizeof v / sizeof v[0]); i++) {
        int64_t x = i < (int)(sizeof v / sizeof v[0])
                        ? v[i]
                        : (int64_t)(((uint64_t)lcg(&seed) << 32) | lcg(&seed)) >> (i % 60);
        etd_buf b;
        etd_buf_init(&b);
        etd_json_i64(&b, x);
        etd_buf_putc(&b, '\0');
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)x);
        ck_assert_str_eq(b.data, want);
        etd_buf_free(&b);
    }
}
END_TEST

START_TEST(test_nested_writer_round_trips_through_parser)
{
    /* torch.tensor([[1., 2., 3.], [4., 5., 6.]]).tolist() nests as [[..],[..]] */
    const float v[] = {1, 2, 3, 4, 5, 6.25f};
    const int64_t shape[] = {2, 3};
    etd_buf b;
    etd_buf_init(&b);
    etd_json_nested(&b, v, shape, 2);
    etd_buf_putc(&b, '\0');
    ck_assert(!b.oom);
    etd_array a;
    char err[256];
    ck_assert_msg(parse(b.data, 100, &a, err, sizeof err), "%s: %s", b.data, err);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(a.data[i], v[i]);
    etd_array_free(&a);
    etd_buf_free(&b);
    /* 0-d: a bare number */
    etd_buf_init(&b);
    etd_json_nested(&b, v + 5, NULL, 0);
    etd_buf_putc(&b, '\0');
    ck_assert_str_eq(b.data, "6.25");
    etd_buf_free(&b);
}
END_TEST

START_TEST(test_string_writer_escapes)
{
    etd_buf b;
    etd_buf_init(&b);
    etd_json_str(&b, "a\"b\\c\n\x01");
    etd_buf_putc(&b, '\0');
    cJSON *j = cJSON_Parse(b.data);
    ck_assert_msg(j && cJSON_IsString(j), "not a JSON string: %s", b.data);
    ck_assert_str_eq(j->valuestring, "a\"b\\c\n\x01");
    cJSON_Delete(j);
    etd_buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tensor_json");
    TCase *tc = tcase_create("array_from_json");
    tcase_add_test(tc, test_nested_lists_give_shape_and_row_major_data);
    tcase_add_test(tc, test_bare_number_is_0d_and_empty_list_is_shape_0);
    tcase_add_test(tc, test_shape_data_form);
    tcase_add_test(tc, test_ragged_and_mixed_lists_rejected);
    tcase_add_test(tc, test_non_finite_and_float32_overflow_rejected);
    tcase_add_test(tc, test_rank_and_size_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("fast_array");
    tcase_add_test(tc, test_fast_path_matches_general_parser);
    tcase_add_test(tc, test_fast_path_refuses_what_it_cannot_parse_exactly);
    suite_add_tcase(s, tc);
    tc = tcase_create("number_ok");
    tcase_add_test(tc, test_number_ok_is_finite_float32);
    suite_add_tcase(s, tc);
    tc = tcase_create("number_printing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_float_printing_round_trips_and_is_shortest);
    tcase_add_test(tc, test_double_printing_round_trips);
    tcase_add_test(tc, test_millisecond_times_print_as_printf);
    tcase_add_test(tc, test_i64_prints_as_printf);
    suite_add_tcase(s, tc);
    tc = tcase_create("json_writers");
    tcase_add_test(tc, test_nested_writer_round_trips_through_parser);
    tcase_add_test(tc, test_string_writer_escapes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
