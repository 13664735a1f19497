/* check_oip.c - the OIP request parser and datatype conversion (formats/oip.c) and the
 * safetensors body reader (formats/tensor_st.c) on their own: every FP16 bit pattern
 * against an independent formula, integer ranges, exactness of int64, the binary
 * extension's framing, the sniffing rule, and tensors aliasing shared request bodies. */
#include <math.h>
#include <string.h>

#include "check_server.h"
#include "server/formats/oip.h"
#include "server/formats/shared_buf.h"
#include "server/formats/tensor_st.h"

static const etd_json_limits lim = {.max_depth = 32, .max_values = 100000, .max_elems = 1 << 20};

/* IEEE half by its definition: (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 m/1024 */
static double half_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* A one-input binary request: JSON header then the bytes. */
static bool binary_input(const char *dt, const void *bytes, size_t n, int64_t numel, et_dtype to,
                         etd_array *a, etd_err *e, char *buf, size_t cap)
{
    int hl = snprintf(buf, cap, "{\"inputs\":[{\"name\":\"input\",\"shape\":[%lld],\"datatype\":"
                      "\"%s\",\"parameters\":{\"binary_data_size\":%zu}}]}", (long long)numel, dt, n);
    memcpy(buf + hl, bytes, n);
    buf[hl + n] = '\0';
    char hlen[16];
    snprintf(hlen, sizeof hlen, "%d", hl);
    etd_oip_request r;
    bool ok = etd_oip_parse(buf, (size_t)hl + n, hlen, &lim, &r, e) &&
              etd_oip_input_array(&r.inputs[0], to, "inputs[0]", a, e);
    etd_oip_request_free(&r);
    return ok;
}

START_TEST(every_fp16_pattern)
{
    static uint16_t h[65536];
    static char buf[65536 * 2 + 256];
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i; /* little-endian host assumed by the test data only */
    etd_array a;
    etd_err e;
    ck_assert_msg(binary_input("FP16", h, sizeof h, 65536, ET_FLOAT32, &a, &e, buf, sizeof buf),
                  "%s", e.msg);
    for (int i = 0; i < 65536; i++) {
        double want = half_ref((uint16_t)i);
        if (isnan(want))
            ck_assert_msg(isnan(a.data[i]), "fp16 %04x: NaN expected", i);
        else
            ck_assert_msg(a.data[i] == (float)want && !signbit(a.data[i]) == !signbit(want),
                          "fp16 %04x: %.9g, want %.9g", i, (double)a.data[i], want);
    }
    etd_array_free(&a);
}
END_TEST

START_TEST(bf16_and_integers)
{
    char buf[4096];
    etd_array a;
    etd_err e;
    uint16_t b[3] = {0x3f80, 0xc040, 0x0001}; /* 1, -3, the smallest subnormal */
    ck_assert(binary_input("BF16", b, sizeof b, 3, ET_FLOAT32, &a, &e, buf, sizeof buf));
    ck_assert(a.data[0] == 1.0f && a.data[1] == -3.0f && a.data[2] == ldexpf(1, -133));
    etd_array_free(&a);
    /* int64 exactly, beyond 2^53 */
    int64_t big[2] = {((int64_t)1 << 62) + 1, -((int64_t)1 << 62) - 3};
    ck_assert(binary_input("INT64", big, sizeof big, 2, ET_INT64, &a, &e, buf, sizeof buf));
    ck_assert(a.idata[0] == big[0] && a.idata[1] == big[1]);
    etd_array_free(&a);
    uint64_t u[1] = {(uint64_t)1 << 63};
    ck_assert(!binary_input("UINT64", u, sizeof u, 1, ET_INT64, &a, &e, buf, sizeof buf));
    ck_assert_msg(strstr(e.msg, "beyond int64"), "%s", e.msg);
    ck_assert(binary_input("UINT64", u, sizeof u, 1, ET_FLOAT32, &a, &e, buf, sizeof buf));
    ck_assert(a.data[0] == 9223372036854775808.0f);
    etd_array_free(&a);
    /* floats to indices: whole values only */
    float f[2] = {3.0f, 2.5f};
    ck_assert(!binary_input("FP32", f, sizeof f, 2, ET_INT64, &a, &e, buf, sizeof buf));
    ck_assert_msg(strstr(e.msg, "element 1") && strstr(e.msg, "2.5"), "%s", e.msg);
    double d[1] = {1e300};
    ck_assert(!binary_input("FP64", d, sizeof d, 1, ET_FLOAT32, &a, &e, buf, sizeof buf));
    ck_assert_msg(strstr(e.msg, "float32"), "%s", e.msg);
    int8_t i8[3] = {-128, 0, 127};
    ck_assert(binary_input("INT8", i8, sizeof i8, 3, ET_INT64, &a, &e, buf, sizeof buf));
    ck_assert(a.idata[0] == -128 && a.idata[2] == 127);
    etd_array_free(&a);
}
END_TEST

static bool json_input(const char *dt, const char *data, const char *shape, et_dtype to,
                       etd_array *a, etd_err *e)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"input\",\"shape\":%s,\"datatype\":\"%s\","
             "\"data\":%s}]}", shape, dt, data);
    etd_oip_request r;
    bool ok = etd_oip_parse(body, strlen(body), NULL, &lim, &r, e) &&
              etd_oip_input_array(&r.inputs[0], to, "inputs[0]", a, e);
    etd_oip_request_free(&r);
    return ok;
}

START_TEST(json_ranges)
{
    static const struct {
        const char *dt, *data;
        bool ok;
    } cases[] = {
        {"INT8", "[127, -128]", true}, {"INT8", "[128, 0]", false}, {"UINT8", "[255, 0]", true},
        {"UINT8", "[-1, 0]", false}, {"INT16", "[32767, -32768]", true},
        {"INT16", "[32768, 0]", false}, {"INT32", "[2147483647, 0]", true},
        {"INT32", "[2147483648, 0]", false}, {"INT32", "[1.5, 0]", false},
        {"UINT32", "[4294967295, 0]", true}, {"FP16", "[65504, 0]", true},
        {"FP16", "[65505, 0]", false}, {"FP32", "[3.4028234e38, 0]", true},
        {"FP32", "[3.5e38, 0]", false}, {"FP64", "[1e300, 0]", false}, {"FP64", "[1e30, 0]", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        etd_array a;
        etd_err e;
        bool ok = json_input(cases[i].dt, cases[i].data, "[2]", ET_FLOAT32, &a, &e);
        ck_assert_msg(ok == cases[i].ok, "%s %s: %s", cases[i].dt, cases[i].data, ok ? "taken" : e.msg);
        if (ok)
            etd_array_free(&a);
    }
    etd_array a;
    etd_err e;
    ck_assert(json_input("FP32", "[[1, 2], [3, 4]]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(a.data[3] == 4.0f && a.ndim == 2);
    etd_array_free(&a);
    ck_assert(!json_input("FP32", "[[1, 2], [3]]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(!json_input("FP32", "[[1, 2, 3], [4]]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(!json_input("FP32", "[[1, 2]]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(!json_input("FP32", "[[[1], [2]], [[3], [4]]]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(json_input("FP32", "[1, 2, 3, 4]", "[2, 2]", ET_FLOAT32, &a, &e)); /* flat */
    etd_array_free(&a);
    ck_assert(!json_input("FP32", "[1, 2, 3]", "[2, 2]", ET_FLOAT32, &a, &e));
    ck_assert(!json_input("BOOL", "[true, false]", "[2]", ET_FLOAT32, &a, &e));
    ck_assert_msg(strstr(e.msg, "BOOL"), "%s", e.msg);
}
END_TEST

START_TEST(binary_framing)
{
    const char *js = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP32\","
                     "\"parameters\":{\"binary_data_size\":8}}]}";
    char body[512];
    size_t hl = strlen(js);
    memcpy(body, js, hl);
    memset(body + hl, 0, 12);
    body[hl + 12] = '\0';
    etd_oip_request r;
    etd_err e;
    char h[16];
    snprintf(h, sizeof h, "%zu", hl);
    ck_assert(etd_oip_parse(body, hl + 8, h, &lim, &r, &e));
    ck_assert(r.inputs[0].bytes == (const unsigned char *)body + hl && r.inputs[0].nbytes == 8);
    etd_oip_request_free(&r);
    ck_assert(!etd_oip_parse(body, hl + 12, h, &lim, &r, &e)); /* 4 bytes too many */
    etd_oip_request_free(&r);
    ck_assert(!etd_oip_parse(body, hl + 4, h, &lim, &r, &e));  /* 4 too few */
    etd_oip_request_free(&r);
    static const char *const bad_h[] = {"", "-1", "+5", " 5", "5x", "99999"};
    for (size_t i = 0; i < sizeof bad_h / sizeof bad_h[0]; i++) {
        ck_assert_msg(!etd_oip_parse(body, hl + 8, bad_h[i], &lim, &r, &e), "%s", bad_h[i]);
        ck_assert(strstr(e.msg, "Inference-Header-Content-Length"));
        etd_oip_request_free(&r);
    }
    ck_assert(!etd_oip_parse(body, hl + 8, NULL, &lim, &r, &e)); /* binary size without header */
    etd_oip_request_free(&r);
}
END_TEST

START_TEST(sniffing)
{
    unsigned char st[64] = {14, 0, 0, 0, 0, 0, 0, 0};
    memcpy(st + 8, "  {\"a\":1}     ", 14);
    ck_assert(etd_st_sniff(st, 22));
    st[8] = 'x';
    ck_assert(!etd_st_sniff(st, 22));
    st[8] = ' ';
    st[0] = 40; /* header longer than the body */
    ck_assert(!etd_st_sniff(st, 22));
    st[0] = 14;
    st[7] = 1; /* 2^56 and up: not a header length */
    ck_assert(!etd_st_sniff(st, 22));
    ck_assert(!etd_st_sniff("{\"inputs\": [[1]]}", 17));
}
END_TEST

/* A safetensors body of inputs (F32 [2, 3]) and idx (I64 [2]) written at
 * buf + shift; returns its length.  The data start 8 bytes after an
 * 8-aligned point, as writers pad the header. */
static size_t st_body(char *buf, size_t shift)
{
    char h[160];
    int n = snprintf(h, sizeof h, "{\"inputs\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                     "\"data_offsets\":[0,24]},\"idx\":{\"dtype\":\"I64\",\"shape\":[2],"
                     "\"data_offsets\":[24,40]}}");
    while (n % 8)
        h[n++] = ' ';
    unsigned char *p = (unsigned char *)buf + shift;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(p + 8, h, (size_t)n);
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int64_t idx[2] = {7, -8};
    memcpy(p + 8 + n, x, sizeof x);
    memcpy(p + 8 + n + 24, idx, sizeof idx);
    return (size_t)(8 + n + 40);
}

/* Request bodies are shared buffers (formats/shared_buf.h): a safetensors
 * body's tensors alias its bytes where they are aligned, are copies where they
 * are not, and keep the buffer alive after the request let it go. */
START_TEST(shared_bodies)
{
    for (size_t shift = 0; shift < 8; shift++) {
        char *buf = etd_sbuf_new(200);
        ck_assert_ptr_nonnull(buf);
        size_t len = st_body(buf, shift);
        for (int shared = 0; shared < 2; shared++) {
            etd_st_body b;
            etd_err e;
            ck_assert_msg(etd_st_parse(buf + shift, len, shared ? buf : NULL, &b, &e), "%s", e.msg);
            et_tensor *x = (et_tensor *)etd_st_tensor(&b, "inputs");
            et_tensor *i = (et_tensor *)etd_st_tensor(&b, "idx");
            ck_assert(x && i);
            /* the data region starts at buf + shift + 8 + a multiple of 8 */
            bool x_alias = shared && shift % 4 == 0, i_alias = shared && shift == 0;
            ck_assert_int_eq(et_tensor_is_external(x), x_alias);
            ck_assert_int_eq(et_tensor_is_external(i), i_alias);
            char *px = (char *)et_data(x), *pi = (char *)et_data_int64(i);
            ck_assert_int_eq(px >= buf && px < buf + 200, x_alias);
            ck_assert_int_eq(pi >= buf && pi < buf + 200, i_alias);
            ck_assert_float_eq(et_data(x)[5], 6.0f);
            ck_assert_int_eq(et_data_int64(i)[1], -8);
            if (shared && shift == 0) {
                /* the request ends first: the tensors keep the bytes */
                et_tensor_ref(x);
                et_tensor_ref(i);
                etd_st_free(&b);
                etd_sbuf_unref(buf);
                buf = NULL;
                ck_assert_float_eq(et_data(x)[0], 1.0f);
                ck_assert_int_eq(et_data_int64(i)[0], 7);
                et_tensor_free(x);
                et_tensor_free(i); /* the last reference: the buffer is freed (ASan, LSan) */
                break;
            }
            etd_st_free(&b);
        }
        etd_sbuf_unref(buf);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("oip");
    TCase *t = tcase_create("formats");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, every_fp16_pattern);
    tcase_add_test(t, bf16_and_integers);
    tcase_add_test(t, json_ranges);
    tcase_add_test(t, binary_framing);
    tcase_add_test(t, sniffing);
    tcase_add_test(t, shared_bodies);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return run_suite(suite()); }
