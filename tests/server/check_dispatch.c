/* check_dispatch.c - requests through etd_dispatch (transport/transport.h), the
 * same routing, auth, limits and handlers as the libmicrohttpd path, without
 * a socket: routes, 404/405, 401, 413, 400 for hostile headers, 503. */
#include "check_server.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

#define TOKEN "s3cret"

static char dir[256];
static etd_registry *reg;
static etd_server *srv;
static etd_app app;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_dispatch_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    etd_config c = {
        .http = {.token = TOKEN, .max_body = 4096, .quiet = true},
        .json = {.max_depth = 32, .max_values = 100000, .max_elems = 100000},
        .models = {.data_dir = dir, .sync_always = false, .save_interval = 3600, .max_models = 8,
                   .max_params = 100000, .max_steps = 100, .max_history = 1000},
    };
    etd_err err;
    reg = etd_registry_new(&c.models, &err);
    ck_assert_msg(reg != NULL, "%s", err.msg);
    app = (etd_app){.reg = reg, .json = c.json};
    srv = etd_server_new_detached(&c.http, etd_routes, etd_nroutes, &app);
    ck_assert_ptr_nonnull(srv);
}

static void teardown(void)
{
    etd_server_shutdown(srv);
    etd_registry_free(reg);
    remove_scratch_dir(dir);
}

typedef struct reply {
    int status;
    char *body;
    size_t len;
    const char *type;
    cJSON *json; /* parsed body, if JSON */
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    cJSON_Delete(r->json);
}

/* One request; with_token adds the right Authorization header.  extra is a
 * "Name: value" header or NULL. */
static reply req(const char *method, const char *url, const char *body, bool with_token,
                 const char *extra_name, const char *extra_value)
{
    const char *names[4], *values[4];
    int n = 0;
    char cl[32];
    if (with_token) {
        names[n] = "Authorization";
        values[n++] = "Bearer " TOKEN;
    }
    if (body) {
        snprintf(cl, sizeof cl, "%zu", strlen(body));
        names[n] = "Content-Length";
        values[n++] = cl;
        names[n] = "Content-Type";
        values[n++] = "application/json";
    }
    if (extra_name) {
        names[n] = extra_name;
        values[n++] = extra_value;
    }
    reply r = {0};
    r.status = etd_dispatch(srv, method, url, names, values, NULL, n, body,
                            body ? strlen(body) : 0, &r.body, &r.len, &r.type);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_int_eq(r.body[r.len], '\0');
    if (strcmp(r.type, "application/json") == 0 && r.len) {
        ck_assert_uint_eq(strlen(r.body), r.len);
        r.json = cJSON_Parse(r.body);
    }
    return r;
}

/* status must be want; for errors the body is {"error": "...want_msg..."}. */
static void expect(reply *r, int want, const char *want_msg)
{
    ck_assert_msg(r->status == want, "status %d, want %d: %.300s", r->status, want, r->body);
    if (want >= 400) {
        ck_assert_msg(r->json != NULL, "error body is not JSON: %.300s", r->body);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
        ck_assert_msg(cJSON_IsString(e) && e->valuestring[0], "no error message: %.300s", r->body);
        if (want_msg)
            ck_assert_msg(strstr(e->valuestring, want_msg), "\"%s\" lacks \"%s\"", e->valuestring,
                          want_msg);
    }
    reply_free(r);
}

#define SPEC "{\"name\":\"m\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,\"out_features\":1}]," \
             "\"loss\":\"MSELoss\",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1},\"seed\":0}"

static void define_model(void)
{
    reply r = req("POST", "/v1/models", SPEC, true, NULL, NULL);
    expect(&r, 201, NULL);
}

/* ---- routes ---- */

START_TEST(test_public_probes_need_no_token)
{
    reply r = req("GET", "/healthz", NULL, false, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/readyz", NULL, false, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v2/health/live", NULL, false, NULL, NULL);
    expect(&r, 200, NULL);
}
END_TEST

START_TEST(test_model_lifecycle_through_routes)
{
    define_model();
    reply r = req("GET", "/v1/models", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "\"m\""), "%.300s", r.body);
    reply_free(&r);
    r = req("GET", "/v1/models/m", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "parameter_names"));
    reply_free(&r);
    r = req("POST", "/v1/models/m/predict", "{\"inputs\":[[1,2],[3,4]]}", true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(r.json, "outputs");
    ck_assert_int_eq(cJSON_GetArraySize(out), 2);
    reply_free(&r);
    r = req("POST", "/v1/models/m/train", "{\"inputs\":[[1,2]],\"targets\":[[1]],\"epochs\":2}",
            true, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/m/loss?since=0", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/m/parameters?format=safetensors", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.type, "application/octet-stream");
    reply_free(&r);
    r = req("HEAD", "/v1/models/m", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, 0);
    reply_free(&r);
    r = req("DELETE", "/v1/models/m", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/m", NULL, true, NULL, NULL);
    expect(&r, 404, NULL);
}
END_TEST

START_TEST(test_query_arguments_are_decoded_and_checked)
{
    define_model();
    reply r = req("GET", "/v1/models/m/loss?since=abc", NULL, true, NULL, NULL);
    expect(&r, 400, "since");
    r = req("GET", "/v1/models/m/loss?x=1&since=%00", NULL, true, NULL, NULL);
    expect(&r, 400, "since");
    r = req("GET", "/v1/models/m/loss?since=%31", NULL, true, NULL, NULL); /* "1" */
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/m/parameters?format=xml", NULL, true, NULL, NULL);
    expect(&r, 400, "format");
}
END_TEST

/* ---- 404 / 405 ---- */

START_TEST(test_unknown_path_is_404_and_wrong_method_405)
{
    reply r = req("GET", "/v1/nothing", NULL, true, NULL, NULL);
    expect(&r, 404, "no route");
    r = req("GET", "/v1/models/m/predict/x", NULL, true, NULL, NULL);
    expect(&r, 404, NULL);
    r = req("DELETE", "/healthz", NULL, true, NULL, NULL);
    expect(&r, 405, "allowed: GET");
    r = req("PATCH", "/v1/models", NULL, true, NULL, NULL);
    expect(&r, 405, "GET, POST");
    r = req("GET", "/v1/models/nope", NULL, true, NULL, NULL);
    expect(&r, 404, NULL);
}
END_TEST

START_TEST(test_escaped_nul_in_name_does_not_reach_the_model)
{
    define_model();
    reply r = req("DELETE", "/v1/models/m%00junk", NULL, true, NULL, NULL);
    ck_assert_int_ne(r.status, 200);
    reply_free(&r);
    r = req("GET", "/v1/models/m", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/%6d", NULL, true, NULL, NULL); /* %6d is "m" */
    expect(&r, 200, NULL);
}
END_TEST

/* ---- auth ---- */

START_TEST(test_api_routes_need_the_token)
{
    reply r = req("GET", "/v1/models", NULL, false, NULL, NULL);
    expect(&r, 401, "bearer token");
    r = req("GET", "/metrics", NULL, false, NULL, NULL);
    expect(&r, 401, NULL);
    const char *wrong[] = {"Bearer s3cre", "Bearer s3cretX", "Basic s3cret", "s3cret", ""};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = req("GET", "/v1/models", NULL, false, "Authorization", wrong[i]);
        expect(&r, 401, NULL);
    }
    r = req("GET", "/v1/models", NULL, false, "authorization", "bearer " TOKEN);
    expect(&r, 200, NULL);
    r = req("POST", "/v1/models", SPEC, false, NULL, NULL);
    expect(&r, 401, NULL);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_body_over_max_body_is_413)
{
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[0] = '{';
    big[4998] = '}';
    big[4999] = '\0';
    reply r = req("POST", "/v1/models", big, true, NULL, NULL); /* declared Content-Length */
    expect(&r, 413, "--max-body");
    /* no Content-Length (chunked): counted as it arrives */
    const char *names[] = {"Authorization"}, *values[] = {"Bearer " TOKEN};
    reply r2 = {0};
    r2.status = etd_dispatch(srv, "POST", "/v1/models", names, values, NULL, 1, big, 4999,
                             &r2.body, &r2.len, &r2.type);
    r2.json = cJSON_Parse(r2.body);
    expect(&r2, 413, "--max-body");
    free(big);
    define_model();
    r = req("POST", "/v1/models/m/predict", "{\"inputs\":[[1,2],[3,4]]}", true, NULL, NULL);
    expect(&r, 200, NULL);
}
END_TEST

START_TEST(test_hostile_headers_are_400)
{
    define_model();
    /* a NUL inside a header value */
    const char *names[] = {"Authorization", "X-A"}, *values[] = {"Bearer " TOKEN, "b\0c"};
    const size_t lens[] = {strlen(values[0]), 3};
    reply r = {0};
    r.status = etd_dispatch(srv, "GET", "/v1/models/m", names, values, lens, 2, NULL, 0, &r.body,
                            &r.len, &r.type);
    r.json = cJSON_Parse(r.body);
    expect(&r, 400, "NUL");
    /* two different Content-Length headers */
    const char *n2[] = {"Authorization", "Content-Length", "Content-Length"};
    const char *v2[] = {"Bearer " TOKEN, "2", "7"};
    r.status = etd_dispatch(srv, "POST", "/v1/models/m/step", n2, v2, NULL, 3, "{}", 2, &r.body,
                            &r.len, &r.type);
    r.json = cJSON_Parse(r.body);
    expect(&r, 400, "Content-Length");
    /* malformed JSON and unknown keys */
    r = req("POST", "/v1/models/m/predict", "{\"inputs\":[[1,2]", true, NULL, NULL);
    expect(&r, 400, NULL);
    r = req("POST", "/v1/models/m/predict", "{\"inputs\":[[1,2]],\"bogus\":1}", true, NULL, NULL);
    expect(&r, 400, "bogus");
}
END_TEST

/* ---- readiness and draining ---- */

START_TEST(test_not_ready_is_503_but_health_is_200)
{
    etd_server_set_ready(srv, false);
    reply r = req("GET", "/v1/models", NULL, true, NULL, NULL);
    expect(&r, 503, "not ready");
    r = req("GET", "/readyz", NULL, false, NULL, NULL);
    expect(&r, 503, NULL);
    r = req("GET", "/healthz", NULL, false, NULL, NULL);
    expect(&r, 200, NULL);
    etd_server_set_ready(srv, true);
    r = req("GET", "/v1/models", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
}
END_TEST

START_TEST(test_metrics_count_dispatched_requests)
{
    reply r = req("GET", "/healthz", NULL, false, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/metrics", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "easytorch_http_requests_total{method=\"GET\",route=\"/healthz\","
                                 "status=\"200\"}"), "%.300s", r.body);
    reply_free(&r);
}
END_TEST

/* A request refused before routing (here: a NUL in a header) is counted as
 * unmatched, not under the first route of the table (/healthz). */
START_TEST(test_metrics_put_unrouted_requests_under_unmatched)
{
    const char *names[] = {"X-A"}, *values[] = {"b\0c"};
    const size_t lens[] = {3};
    reply r = {0};
    r.status = etd_dispatch(srv, "GET", "/v1/models", names, values, lens, 1, NULL, 0, &r.body,
                            &r.len, &r.type);
    r.json = cJSON_Parse(r.body);
    expect(&r, 400, "NUL");
    r = req("GET", "/metrics", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(!strstr(r.body, "route=\"/healthz\",status=\"400\""), "%.300s", r.body);
    ck_assert_msg(strstr(r.body, "route=\"unmatched\",status=\"400\"}"), "%.300s", r.body);
    reply_free(&r);
}
END_TEST

START_TEST(test_plus_in_query_is_a_space)
{
    define_model();
    /* %2B is a literal '+' ("+1" is a step); a bare '+' decodes to a space ("1 " is not) */
    reply r = req("GET", "/v1/models/m/loss?since=%2B1", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
    r = req("GET", "/v1/models/m/loss?since=1+", NULL, true, NULL, NULL);
    expect(&r, 400, "since");
}
END_TEST

START_TEST(test_unknown_query_arguments_are_400)
{
    define_model();
    reply r = req("GET", "/v1/models/m/loss?sinse=3", NULL, true, NULL, NULL);
    expect(&r, 400, "sinse: unknown query parameter (accepted: since, series); did you mean \"since\"?");
    r = req("GET", "/v1/models?limit=3", NULL, true, NULL, NULL);
    expect(&r, 400, "limit: unknown query parameter (this route takes none)");
    r = req("GET", "/v1/models/m/parameters?format=json&Format=json", NULL, true, NULL, NULL);
    expect(&r, 400, "did you mean \"format\"?");
    r = req("GET", "/v1/models/m/loss?since=0", NULL, true, NULL, NULL);
    expect(&r, 200, NULL);
    /* static files take any (cache busters) */
    r = req("GET", "/?v=12", NULL, false, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
}
END_TEST

START_TEST(test_405_is_counted_under_its_route)
{
    reply r = req("DELETE", "/metrics", NULL, true, NULL, NULL);
    expect(&r, 405, "allowed: GET");
    r = req("GET", "/metrics", NULL, true, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "easytorch_http_requests_total{method=\"DELETE\",route=\"/metrics\","
                                 "status=\"405\"} 1"), "%.2000s", r.body);
    ck_assert_msg(!strstr(r.body, "route=\"unmatched\",status=\"405\""), "%.2000s", r.body);
    reply_free(&r);
}
END_TEST

START_TEST(test_a_body_that_is_not_json_says_so)
{
    define_model();
    reply r = req("POST", "/v1/models/m/predict", "x,y\n1,2\n", true, NULL, NULL);
    expect(&r, 400, "CSV and form data are not accepted");
    r = req("POST", "/v1/models/m/predict", "inputs=1&x=2", true, NULL, NULL);
    expect(&r, 400, "starts with \"inputs=1&x=2\"");
    /* a broken JSON object keeps the plain message */
    r = req("POST", "/v1/models/m/predict", "{\"inputs\": [[1,2]", true, NULL, NULL);
    expect(&r, 400, "body: invalid JSON near byte");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_public_probes_need_no_token);
    tcase_add_test(tc, test_model_lifecycle_through_routes);
    tcase_add_test(tc, test_query_arguments_are_decoded_and_checked);
    tcase_add_test(tc, test_plus_in_query_is_a_space);
    tcase_add_test(tc, test_unknown_query_arguments_are_400);
    tcase_add_test(tc, test_a_body_that_is_not_json_says_so);
    suite_add_tcase(s, tc);
    tc = tcase_create("not_found_and_method");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unknown_path_is_404_and_wrong_method_405);
    tcase_add_test(tc, test_escaped_nul_in_name_does_not_reach_the_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_api_routes_need_the_token);
    suite_add_tcase(s, tc);
    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_body_over_max_body_is_413);
    tcase_add_test(tc, test_hostile_headers_are_400);
    suite_add_tcase(s, tc);
    tc = tcase_create("readiness_and_metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_not_ready_is_503_but_health_is_200);
    tcase_add_test(tc, test_metrics_count_dispatched_requests);
    tcase_add_test(tc, test_metrics_put_unrouted_requests_under_unmatched);
    tcase_add_test(tc, test_405_is_counted_under_its_route);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
