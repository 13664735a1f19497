/* check_head.c - the daemon's own request-head check (transport/head.h):
 * request lines, header syntax, sizes, Host / Content-Length /
 * Transfer-Encoding rules (RFC 9112), incomplete heads, absolute-form paths,
 * and random mutations of good heads (never a crash, never "complete" while
 * the blank line is missing). */
#include "check_server.h"
#include <string.h>

#include "server/transport/head.h"

static long check(const char *head, etd_verdict *v)
{
    return etd_head_check(head, strlen(head), v);
}

static void expect(const char *head, int status, const char *msg_part)
{
    etd_verdict v;
    long n = check(head, &v);
    ck_assert_msg(n >= 0, "%s: incomplete", head);
    ck_assert_msg(v.status == status, "%.80s: status %d (%s), expected %d", head, v.status, v.msg,
                  status);
    if (msg_part)
        ck_assert_msg(strstr(v.msg, msg_part), "%.80s: \"%s\" lacks \"%s\"", head, v.msg,
                      msg_part);
}

START_TEST(test_good_heads)
{
    etd_verdict v;
    const char *h = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
    ck_assert_int_eq(check(h, &v), (long)(strstr(h, "\r\n\r\n") + 4 - h));
    ck_assert_int_eq(v.status, 0);
    expect("GET /x HTTP/1.1\nHost: x\n\n", 0, NULL);           /* bare LF line ends */
    expect("\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL);   /* a leading empty line */
    expect("GET /x HTTP/1.0\r\n\r\n", 0, NULL);                  /* 1.0: no Host needed */
    expect("GET http://a.b:80/x?y=1 HTTP/1.1\r\nHost: a.b\r\n\r\n", 0, NULL);
    expect("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL);
    expect("GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, NULL);
    expect("GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", 0, NULL);
    expect("GET /x HTTP/1.1\r\nHost:\r\n\r\n", 0, NULL);         /* empty: no authority */
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0,
           NULL);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", 0, NULL);
    /* Content-Length with Transfer-Encoding: served by chunked, then closed */
    check("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
          &v);
    ck_assert(v.status == 0 && v.close && v.chunked);
}
END_TEST

START_TEST(test_incomplete_heads)
{
    etd_verdict v;
    ck_assert_int_eq(check("", &v), -1);
    ck_assert_int_eq(check("GET /x HTT", &v), -1);
    ck_assert_int_eq(check("GET /x HTTP/1.1\r\nHost: x\r\n", &v), -1);
    ck_assert_int_eq(check("GET /x HTTP/1.1\r\nHost: x\r\n\r", &v), -1);
    /* a request line that cannot end within the limits */
    char big[ETD_HEAD_MAX + 64];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    ck_assert_int_ge(check(big, &v), 0);
    ck_assert_int_eq(v.status, 414);
}
END_TEST

START_TEST(test_refusals)
{
    expect("GET /x HTTP/1.1\r\n\r\n", 400, "Host: required");
    expect("GET /x HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "given 2 times");
    expect("GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 400, "not a valid field name");
    expect("GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "not a valid host");
    expect("GET /x HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400, "not a valid host");
    expect("GET /x HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "not a valid host");
    expect("GET /x HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "given 2 times");
    expect("GET /x HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, "obsolete line folding");
    expect("GET /x HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, "no colon");
    expect("GET /x HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n", 400, "control byte");
    expect("GET /x HTTP/1.1\r\nHost: x\r\nX\x7f: a\r\n\r\n", 400, "not a valid field name");
    expect("GET /x HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0");
    expect("GET /x HTTP/0.9\r\nHost: x\r\n\r\n", 505, NULL);
    expect("GET /x HTTP/1.1x\r\nHost: x\r\n\r\n", 400, "HTTP version");
    expect("GET /x\r\nHost: x\r\n\r\n", 400, "request line");
    expect("GET  /x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line");
    expect("G(T /x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line");
    expect("GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    expect("GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, "decimal number");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400, "decimal number");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
           "different values");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
           "\"gzip\" is not implemented");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", 501, "gzip");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400,
           "final coding must be chunked");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
           "final coding");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
           "only once");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400, "list of transfer");
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: a b\r\n\r\n", 400,
           "list of transfer");
    expect("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0");
    /* refusals close the connection */
    etd_verdict v;
    check("GET /x HTTP/1.1\r\n\r\n", &v);
    ck_assert(v.close);
}
END_TEST

START_TEST(test_sizes)
{
    static char h[ETD_HEAD_MAX + 4096];
    /* a target just at the limit passes, one byte more is 414 */
    for (int extra = 0; extra <= 1; extra++) {
        int tl = ETD_URI_MAX + extra;
        int n = sprintf(h, "GET /");
        memset(h + n, 'a', (size_t)tl - 1);
        n += tl - 1;
        n += sprintf(h + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
        expect(h, extra ? 414 : 0, NULL);
    }
    /* a head over ETD_HEAD_MAX is 431 */
    int n = sprintf(h, "GET /x HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(h + n, 'b', ETD_HEAD_MAX);
    n += ETD_HEAD_MAX;
    sprintf(h + n, "\r\n\r\n");
    etd_verdict v;
    ck_assert_int_ge(check(h, &v), 0);
    ck_assert_int_eq(v.status, 431);
    /* and an unterminated one reaching the limit too */
    h[ETD_HEAD_MAX] = '\0';
    ck_assert_int_ge(etd_head_check(h, ETD_HEAD_MAX, &v), 0);
    ck_assert_int_eq(v.status, 431);
}
END_TEST

START_TEST(test_target_path)
{
    ck_assert_str_eq(etd_target_path("/a/b?c"), "/a/b?c");
    ck_assert_str_eq(etd_target_path("http://h:1/a"), "/a");
    ck_assert_str_eq(etd_target_path("HTTPS://h/a?x"), "/a?x");
    ck_assert_str_eq(etd_target_path("http://h"), "/");
    ck_assert_str_eq(etd_target_path("http://h?q"), "/");
    ck_assert_str_eq(etd_target_path("*"), "*");
}
END_TEST

START_TEST(test_random_mutations)
{
    const char *base = "POST /v1/models/m/predict HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                       "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n";
    size_t bl = strlen(base);
    char buf[512];
    unsigned s = 12345;
    for (int it = 0; it < 200000; it++) {
        memcpy(buf, base, bl);
        size_t n = bl;
        int edits = 1 + (int)((s = s * 1103515245u + 12345u) >> 16) % 4;
        for (int e = 0; e < edits && n > 1; e++) {
            s = s * 1103515245u + 12345u;
            size_t at = (s >> 8) % n;
            s = s * 1103515245u + 12345u;
            switch ((s >> 16) % 3) {
            case 0: buf[at] = (char)(s >> 24); break;        /* change a byte */
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break; /* drop one */
            default: n = at + 1; break;                       /* cut short */
            }
        }
        etd_verdict v;
        long r = etd_head_check(buf, n, &v);
        ck_assert(r >= -1 && r <= (long)n);
        if (r >= 0 && v.status == 0) /* accepted: the head really ends in a blank line */
            ck_assert(r >= 2 && buf[r - 1] == '\n' &&
                      (buf[r - 2] == '\n' || (r >= 3 && buf[r - 2] == '\r' && buf[r - 3] == '\n')));
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("head");
    TCase *tc = tcase_create("head");
    tcase_add_test(tc, test_good_heads);
    tcase_add_test(tc, test_incomplete_heads);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_target_path);
    tcase_add_test(tc, test_random_mutations);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
