/* check_openapi.c - the route table and the API document agree: every route of
 * src/server/endpoints/routes.c is an operation of docs/openapi.json (the copy
 * embedded in the daemon, served at /openapi.json) and every operation there is a
 * route, with the same path template and method.  What the operations answer is
 * checked by the contract check of the integration tests (openapi_contract.py). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <string.h>

#include "check_server.h"
#include "server/endpoints/assets.h"
#include "server/endpoints/endpoint.h"

static cJSON *load_doc(void)
{
    const etd_asset *a = etd_asset_find(etd_api_assets, "openapi.json");
    ck_assert_msg(a != NULL, "openapi.json is not embedded");
    cJSON *doc = cJSON_ParseWithLength((const char *)a->data, a->len);
    ck_assert_msg(doc != NULL, "the embedded openapi.json is not JSON");
    return doc;
}

static void lower(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

START_TEST(every_route_is_documented)
{
    cJSON *doc = load_doc();
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    ck_assert(cJSON_IsObject(paths));
    for (int i = 0; i < etd_nroutes; i++) {
        const etd_route *r = &etd_routes[i];
        char m[16];
        lower(r->method, m, sizeof m);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, r->pattern);
        ck_assert_msg(item != NULL, "route %s %s has no path in docs/openapi.json", r->method,
                      r->pattern);
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(item, m);
        ck_assert_msg(op != NULL, "route %s %s has no operation in docs/openapi.json",
                      r->method, r->pattern);
        /* a route that reads a body documents it; one that does not, does not */
        const cJSON *rb = cJSON_GetObjectItemCaseSensitive(op, "requestBody");
        if (r->flags & ETD_R_BODY)
            ck_assert_msg(rb != NULL, "%s %s reads a body: document its requestBody",
                          r->method, r->pattern);
        /* public routes need no token: security [] */
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
        bool open = sec && cJSON_IsArray(sec) && cJSON_GetArraySize(sec) == 0;
        ck_assert_msg(open == ((r->flags & ETD_R_PUBLIC) != 0),
                      "%s %s: \"security\": [] must be given exactly for public routes",
                      r->method, r->pattern);
        /* the query arguments it takes are its query parameters */
        int nq = 0;
        for (int k = 0; r->query && r->query[k]; k++)
            nq++;
        int documented = 0;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(op, "parameters");
        const cJSON *p;
        cJSON_ArrayForEach(p, params) {
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(p, "in");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
            if (!cJSON_IsString(in) || strcmp(in->valuestring, "query") != 0)
                continue;
            documented++;
            bool known = false;
            for (int k = 0; r->query && r->query[k]; k++)
                known |= cJSON_IsString(name) && strcmp(r->query[k], name->valuestring) == 0;
            ck_assert_msg(known, "%s %s documents query parameter %s that the route does not "
                          "take", r->method, r->pattern, cJSON_IsString(name) ? name->valuestring : "?");
        }
        if (!(r->flags & ETD_R_ANY_QUERY))
            ck_assert_msg(documented == nq, "%s %s takes %d query arguments, documents %d",
                          r->method, r->pattern, nq, documented);
    }
    cJSON_Delete(doc);
}
END_TEST

START_TEST(every_operation_is_a_route)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head",
                                          "options", "trace"};
    cJSON *doc = load_doc();
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "paths")) {
        for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
            if (!cJSON_GetObjectItemCaseSensitive(item, methods[k]))
                continue;
            bool found = false;
            for (int i = 0; i < etd_nroutes && !found; i++) {
                char m[16];
                lower(etd_routes[i].method, m, sizeof m);
                found = strcmp(m, methods[k]) == 0 && strcmp(etd_routes[i].pattern, item->string) == 0;
            }
            ck_assert_msg(found, "docs/openapi.json has %s %s, which is no route", methods[k],
                          item->string);
        }
    }
    cJSON_Delete(doc);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("openapi");
    TCase *t = tcase_create("routes");
    tcase_add_test(t, every_route_is_documented);
    tcase_add_test(t, every_operation_is_a_route);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return run_suite(suite()); }
