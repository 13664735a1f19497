/*
 * fuzz_dispatch.c - libFuzzer harness: HTTP requests into easytorchd's router
 * and handlers without sockets, through etd_dispatch() (transport/transport.h): the
 * same admission (header checks, routing, draining, auth, readiness,
 * Content-Length), upload, handler and completion code as the libmicrohttpd
 * access handler, including the daemon's own URL unescaping.
 *
 * Input: one or more requests separated by a line "%%":
 *     METHOD URL[?k=v&...]\n  Name: value\n ... \n  body
 * Header values may contain NUL bytes (passed with their lengths; the daemon
 * must refuse them).  A fresh registry (in a scratch directory) with two
 * models, "m" (MSE, SGD), "c" (CrossEntropy, Adam), "e" (Embedding + BatchNorm1d:
 * int64 inputs, buffers) and "k" (Conv2d + MaxPool2d: rank-4 inputs), serves each input; the
 * daemon token is "fuzz-token".
 *
 * Oracles besides the sanitizers: a response for every request (status 0
 * only on out-of-memory, which ASan's allocator does not produce here); the
 * status is one the contract allows (never 500 or an unknown code); every
 * JSON body parses as strict JSON; every error body is exactly
 * {"error": "<non-empty message>"}; no request stays in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "server/config.h"
#include "server/transport/transport_internal.h" /* inflight */

#include "fuzz_common.h"

#define FZ_MAX_HDR 32

static const char *const model_specs[] = {
    "{\"name\":\"m\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,\"out_features\":3},"
    "{\"type\":\"ReLU\"},{\"type\":\"Linear\",\"in_features\":3,\"out_features\":1}],"
    "\"loss\":\"MSELoss\",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,\"momentum\":0.9},"
    "\"scheduler\":{\"type\":\"StepLR\",\"step_size\":2},\"seed\":0}",
    "{\"name\":\"c\",\"layers\":[{\"type\":\"Linear\",\"in_features\":4,\"out_features\":3}],"
    "\"loss\":{\"type\":\"CrossEntropyLoss\"},\"optimizer\":{\"type\":\"Adam\",\"lr\":0.01},"
    "\"seed\":1}",
    /* int64 inputs, BatchNorm buffers */
    "{\"name\":\"e\",\"layers\":[{\"type\":\"Embedding\",\"num_embeddings\":6,"
    "\"embedding_dim\":2},{\"type\":\"Flatten\"},{\"type\":\"Linear\",\"in_features\":4,"
    "\"out_features\":3},{\"type\":\"BatchNorm1d\",\"num_features\":3}],"
    "\"loss\":\"CrossEntropyLoss\",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1},\"seed\":2}",
    /* rank-4 inputs, layer-named shape errors */
    "{\"name\":\"k\",\"layers\":[{\"type\":\"Conv2d\",\"in_channels\":1,\"out_channels\":2,"
    "\"kernel_size\":3,\"padding\":1},{\"type\":\"MaxPool2d\",\"kernel_size\":2},"
    "{\"type\":\"Flatten\"},{\"type\":\"Linear\",\"in_features\":8,\"out_features\":2}],"
    "\"loss\":\"MSELoss\",\"optimizer\":{\"type\":\"Adam\"},\"seed\":3}",
};

/* An answer compressed for Accept-Encoding (gzip or zlib), inflated; NULL if it is not. */
static char *inflated(const char *body, size_t len, size_t *outlen)
{
    const unsigned char *u = (const unsigned char *)body;
    if (len < 2 || !((u[0] == 0x1f && u[1] == 0x8b) || (u[0] == 0x78)))
        return NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        abort();
    size_t cap = 1 << 22;
    char *out = malloc(cap + 1);
    if (!out)
        abort();
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int r = inflate(&z, Z_FINISH);
    *outlen = cap - z.avail_out;
    inflateEnd(&z);
    if (r != Z_STREAM_END) {
        fprintf(stderr, "fuzz_dispatch: a compressed answer does not inflate (%d)\n", r);
        abort();
    }
    out[*outlen] = '\0';
    return out;
}

static void check_response(int status, const char *body, size_t len, const char *ctype)
{
    static const int allowed[] = {200, 201, 202, 204, 400, 401, 404, 405, 406, 409, 413, 415,
                                  503};
    bool ok = false;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        ok |= allowed[i] == status;
    if (!ok) {
        fprintf(stderr, "fuzz_dispatch: status %d is not one the contract allows: %.*s\n", status,
                (int)(len < 500 ? len : 500), body ? body : "");
        abort();
    }
    if (!ctype || strncmp(ctype, "application/json", 16) != 0 || status == 204 || len == 0)
        return;
    size_t ilen;
    char *plain = inflated(body, len, &ilen);
    if (plain) {
        check_response(status, plain, ilen, ctype);
        free(plain);
        return;
    }
    cJSON *j = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1); /* body is NUL-terminated */
    if (!j) {
        fprintf(stderr, "fuzz_dispatch: status %d body is not JSON: %.300s\n", status, body);
        abort();
    }
    if (status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(e) || !e->valuestring[0] || cJSON_GetArraySize(j) != 1) {
            fprintf(stderr, "fuzz_dispatch: error body is not {\"error\": msg}: %.300s\n", body);
            abort();
        }
    }
    cJSON_Delete(j);
}

/* One request from data[0..size): head up to the first empty line, body after it. */
static void one_request(etd_server *s, const uint8_t *data, size_t size)
{
    const uint8_t *split = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '\n' && data[i + 1] == '\n') {
            split = data + i;
            break;
        }
    size_t hlen = split ? (size_t)(split - data) : size;
    const char *body = split ? (const char *)split + 2 : (const char *)data + size;
    size_t blen = (size_t)((const char *)data + size - body);
    char *head = malloc(hlen + 1); /* lines are cut in place; values keep their NULs */
    if (!head)
        return;
    memcpy(head, data, hlen);
    head[hlen] = '\0';
    char *end = head + hlen;
    char *nl = memchr(head, '\n', hlen);
    char *line_end = nl ? nl : end;
    *line_end = '\0';
    char *sp = memchr(head, ' ', (size_t)(line_end - head));
    if (!sp || memchr(head, '\0', (size_t)(line_end - head)) != NULL) {
        free(head); /* no method/URL, or a NUL in the request line: MHD refuses those */
        return;
    }
    *sp = '\0';
    const char *method = head, *url = sp + 1;
    const char *names[FZ_MAX_HDR], *values[FZ_MAX_HDR];
    size_t lens[FZ_MAX_HDR];
    int n = 0;
    for (char *line = nl ? nl + 1 : end; line < end && n < FZ_MAX_HDR;) {
        char *e = memchr(line, '\n', (size_t)(end - line));
        if (!e)
            e = end;
        *e = '\0';
        char *colon = memchr(line, ':', (size_t)(e - line));
        if (colon && memchr(line, '\0', (size_t)(colon - line)) == NULL) {
            *colon = '\0';
            char *v = colon + 1;
            while (v < e && *v == ' ')
                v++;
            names[n] = line;
            values[n] = v;
            lens[n++] = (size_t)(e - v);
        }
        line = e + 1;
    }
    char *resp = NULL;
    size_t rlen = 0;
    const char *ctype = NULL;
    int status = etd_dispatch(s, method, url, names, values, lens, n, blen ? body : NULL, blen,
                              &resp, &rlen, &ctype);
    if (status == 0 || !resp) {
        fprintf(stderr, "fuzz_dispatch: no response (status %d) for %s %s\n", status, method, url);
        abort();
    }
    check_response(status, resp, rlen, ctype);
    free(resp);
    free(head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    etd_err err;
    etd_config cfg = {
        .http = {.host = "127.0.0.1", .token = "fuzz-token", .max_body = 1 << 20, .quiet = true},
        .json = {.max_depth = 32, .max_values = 100000, .max_elems = 100000},
        .models = {.data_dir = fz_scratch(), .sync_always = false, .save_interval = 3600,
                   .max_models = 8, .max_params = 100000, .max_steps = 200, .max_history = 1000},
    };
    etd_registry *reg = etd_registry_new(&cfg.models, &err);
    if (!reg)
        abort();
    for (size_t i = 0; i < sizeof model_specs / sizeof model_specs[0]; i++) {
        cJSON *j = cJSON_Parse(model_specs[i]);
        etd_model *m;
        if (etd_registry_define(reg, j, &m, &err) != ETD_OK) {
            fprintf(stderr, "fuzz_dispatch: cannot define seed model: %s\n", err.msg);
            abort();
        }
        etd_model_unref(m);
        cJSON_Delete(j);
    }
    etd_app app = {.reg = reg, .json = cfg.json, .max_decoded_body = 1 << 20,
                   .cors = {1, {"http://fuzz.example"}}};
    etd_server *s = etd_server_new_detached(&cfg.http, etd_routes, etd_nroutes, &app);
    if (!s)
        abort();

    /* requests separated by "\n%%\n"; at most 8 per input */
    const uint8_t *p = data, *end = data + size;
    for (int k = 0; k < 8 && p <= end; k++) {
        const uint8_t *sep = NULL;
        for (const uint8_t *q = p; q + 4 <= end; q++)
            if (q[0] == '\n' && q[1] == '%' && q[2] == '%' && q[3] == '\n') {
                sep = q;
                break;
            }
        const uint8_t *stop = sep ? sep : end;
        one_request(s, p, (size_t)(stop - p));
        if (!sep)
            break;
        p = sep + 4;
    }
    if (atomic_load(&s->inflight) != 0) {
        fprintf(stderr, "fuzz_dispatch: %d request(s) never completed\n", atomic_load(&s->inflight));
        abort();
    }
    etd_server_shutdown(s);
    etd_registry_free(reg);
    fz_empty_dir();
    return 0;
}
