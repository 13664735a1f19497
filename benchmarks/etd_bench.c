/*
 * etd_bench - the daemon's request parsing alone, timed in one process: the
 * "JSON parse" half of the anchor of scripts/bench's daemon_train rows (the
 * other half is et_bench's in-process training step).
 *
 * Speaks et_bench's line protocol (scripts/bench drives both the same way):
 *
 *     -> run parse_train_json <iterations>
 *     <- ok <wall nanoseconds for all iterations> <value> <CPU nanoseconds>
 *     <- error <message>
 *
 * parse_train_json is what easytorchd does with a /train body before the
 * step: etd_json_parse with the fast path for "inputs" and "targets" (the
 * daemon's own strict parser, its default limits), both arrays taken out as
 * floats, made into tensors, and everything freed again.  `value` is the sum
 * of the inputs' elements of the last iteration (so the work cannot be
 * skipped).  The body is the file given with --body: the exact bytes the
 * HTTP side sends.
 *
 * dispatch_train (with --model SPEC_FILE: a model definition, as POSTed to
 * /v1/models) is the daemon's whole handling of that body as a
 * POST /v1/models/NAME/train, without the socket: etd_dispatch -- admission,
 * routing, the parse, the training step, the loss history and events, the
 * answer's JSON -- on a registry in a scratch directory (the background
 * saver every 10 s, as the daemon's default).  `value` is the answer's
 * length.  What the daemon's request costs beyond it is HTTP and the socket
 * (libmicrohttpd, the kernel's loopback TCP): scripts/bench prints it as the
 * daemon_train rows' "in-process daemon" part.  dispatch_predict is the same
 * for POST /v1/models/NAME/predict.  A --body that is a safetensors file is
 * sent as one (Content-Type and Accept: application/octet-stream; issue
 * 15's b1024 rows), any other as JSON.
 *
 * Run by hand:  etd_bench --body FILE [--model SPEC_FILE] [WORKLOAD ITERS]
 * (callgrind: valgrind --tool=callgrind etd_bench --body B --model S dispatch_train 2000)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <easytorch/easytorch.h>

#include <cjson/cJSON.h>

#include "server/config.h"
#include "server/formats/json_in.h"
#include "server/formats/tensor_st.h"
#include "server/endpoints/endpoint.h"
#include "driver.h"

static char *body;
static size_t body_len;
static char *spec;              /* --model: the model definition (JSON) */
static size_t spec_len;

static double now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* easytorchd's defaults (main.c: --max-depth, --max-json-values, --max-elements) */
static const etd_json_limits limits = {.max_depth = 32, .max_values = 4194304,
                                       .max_elems = 16777216};

/* One /train body: parse, take inputs and targets, make the tensors, free. */
static bool parse_train(double *value, etd_err *e)
{
    static const char *const fast[] = {"inputs", "targets", NULL};
    etd_json_doc doc;
    etd_array x = {0}, y = {0};
    bool ok = etd_json_parse(body, body_len, &limits, fast, &doc, e) &&
              etd_json_take_array(&doc, "inputs", limits.max_elems, &x, e) &&
              etd_json_take_array(&doc, "targets", limits.max_elems, &y, e);
    if (ok) {
        et_pool_begin();
        et_tensor *tx = etd_array_tensor(&x), *ty = etd_array_tensor(&y);
        if (!tx || !ty) {
            etd_fail(e, ETD_ENOMEM, "tensor: %s", et_errmsg());
            ok = false;
        } else {
            double s = 0;
            const float *d = et_data(tx);
            for (int64_t i = 0; i < et_numel(tx); i++)
                s += d[i];
            *value = s;
        }
        et_pool_end();
    }
    etd_array_free(&x);
    etd_array_free(&y);
    etd_json_doc_free(&doc);
    return ok;
}

/* ---- dispatch_train: the daemon's handling of the request, no socket */

static char scratch[512];
static etd_registry *reg;
static etd_server *srv;
static etd_app app;
static char train_url[300], predict_url[300];

static void remove_scratch(void)
{
    if (srv)
        etd_server_shutdown(srv);
    if (reg)
        etd_registry_free(reg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (scratch[0] && system(cmd) != 0)
        fprintf(stderr, "etd_bench: could not remove %s\n", scratch);
}

/* easytorchd's defaults (main.c), a registry in a scratch directory, the model of --model. */
static bool dispatch_setup(etd_err *e)
{
    if (srv)
        return true;
    if (!spec) {
        etd_fail(e, ETD_EINVAL, "dispatch_train needs --model SPEC_FILE");
        return false;
    }
    const char *base = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/etd-bench-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(scratch)) {
        etd_fail(e, ETD_EIO, "mkdtemp %s failed", scratch);
        scratch[0] = '\0';
        return false;
    }
    atexit(remove_scratch);
    static etd_config cfg;
    cfg = (etd_config){
        .http = {.host = "127.0.0.1", .max_body = 64 << 20, .quiet = true},
        .json = limits,
        .models = {.data_dir = scratch, .save_interval = 10, .max_models = 1000,
                   .max_params = 100000000, .max_steps = 1000000, .max_history = 100000,
                   .event_buffer = 4096, .event_interval = 0.1},
    };
    if (!(reg = etd_registry_new(&cfg.models, e)))
        return false;
    etd_registry_load_all(reg); /* the saver, jobs and events threads start here */
    cJSON *j = cJSON_ParseWithLength(spec, spec_len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    etd_model *m = NULL;
    if (!cJSON_IsString(name) || etd_registry_define(reg, j, &m, e) != ETD_OK) {
        if (!e->msg[0])
            etd_fail(e, ETD_EINVAL, "--model: not a model definition with a name");
        cJSON_Delete(j);
        return false;
    }
    snprintf(train_url, sizeof train_url, "/v1/models/%s/train", name->valuestring);
    snprintf(predict_url, sizeof predict_url, "/v1/models/%s/predict", name->valuestring);
    etd_model_unref(m);
    cJSON_Delete(j);
    app = (etd_app){.reg = reg, .json = cfg.json, .max_decoded_body = 64 << 20};
    srv = etd_server_new_detached(&cfg.http, etd_routes, etd_nroutes, &app);
    if (!srv)
        etd_fail(e, ETD_ENOMEM, "cannot make the server");
    return srv != NULL;
}

static bool dispatch_to(const char *url, double *value, etd_err *e)
{
    static const char *const names[] = {"Content-Type", "Accept"};
    static const char *const json[] = {"application/json"};
    static const char *const st[] = {"application/octet-stream", "application/octet-stream"};
    static const size_t json_lens[] = {16}, st_lens[] = {24, 24};
    bool is_st = etd_st_sniff(body, body_len);
    char *resp = NULL;
    size_t rlen = 0;
    const char *ctype;
    int status = etd_dispatch(srv, "POST", url, names, is_st ? st : json,
                              is_st ? st_lens : json_lens, is_st ? 2 : 1, body, body_len,
                              &resp, &rlen, &ctype);
    if (status != 200)
        etd_fail(e, ETD_EINVAL, "HTTP %d: %.200s", status, resp ? resp : "");
    *value = (double)rlen;
    free(resp);
    return status == 200;
}

static bool dispatch_train(double *value, etd_err *e) { return dispatch_to(train_url, value, e); }
static bool dispatch_predict(double *value, etd_err *e)
{
    return dispatch_to(predict_url, value, e);
}

static int run_one(const char *name, long iters)
{
    bool (*fn)(double *, etd_err *) = NULL;
    etd_err e = {0};
    if (strcmp(name, "parse_train_json") == 0) {
        fn = parse_train;
    } else if (strcmp(name, "dispatch_train") == 0 || strcmp(name, "dispatch_predict") == 0) {
        if (!dispatch_setup(&e)) {
            printf("error %s: %s\n", name, e.msg);
            return 1;
        }
        fn = name[9] == 't' ? dispatch_train : dispatch_predict;
    } else {
        printf("error unknown workload '%s'\n", name);
        return 1;
    }
    if (iters < 1) {
        printf("error iterations must be >= 1\n");
        return 1;
    }
    double value = NAN;
    double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
    for (long i = 0; i < iters; i++)
        if (!fn(&value, &e)) {
            printf("error %s: %s\n", name, e.msg);
            return 1;
        }
    double t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("ok %.0f %.9g %.0f\n", t1 - t0, value, c1 - c0);
    return 0;
}

/* The whole file, NUL-terminated (etd_json_parse needs body[len] == NUL). */
static bool read_file(const char *path, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t cap = 1 << 16, len = 0, n;
    char *b = malloc(cap);
    while (b && (n = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b)
        return false;
    b[len] = '\0';
    *out = b;
    *out_len = len;
    return true;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || strcmp(argv[1], "--body") != 0) {
        fprintf(stderr, "usage: etd_bench --body FILE [--model SPEC_FILE] "
                        "[parse_train_json|dispatch_train|dispatch_predict ITERATIONS]\n");
        return 2;
    }
    if (!read_file(argv[2], &body, &body_len)) {
        fprintf(stderr, "etd_bench: cannot read %s\n", argv[2]);
        return 2;
    }
    int a = 3;
    if (argc >= 5 && strcmp(argv[3], "--model") == 0) {
        if (!read_file(argv[4], &spec, &spec_len)) {
            fprintf(stderr, "etd_bench: cannot read %s\n", argv[4]);
            return 2;
        }
        a = 5;
    }
    int rc = 0;
    if (argc > a) {
        rc = run_one(argv[a], argc > a + 1 ? atol(argv[a + 1]) : 1);
    } else {
        printf("ready easytorch=%s body_bytes=%zu\n", EASYTORCH_VERSION, body_len);
        rc = bench_serve(run_one);
    }
    free(body);
    free(spec);
    return rc;
}
