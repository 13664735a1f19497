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
 * Run by hand:  etd_bench --body FILE [parse_train_json ITERS]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <easytorch/easytorch.h>

#include "server/formats/json_in.h"
#include "driver.h"

static char *body;
static size_t body_len;

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

static int run_one(const char *name, long iters)
{
    if (strcmp(name, "parse_train_json") != 0) {
        printf("error unknown workload '%s'\n", name);
        return 1;
    }
    if (iters < 1) {
        printf("error iterations must be >= 1\n");
        return 1;
    }
    double value = NAN;
    etd_err e = {0};
    double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
    for (long i = 0; i < iters; i++)
        if (!parse_train(&value, &e)) {
            printf("error %s: %s\n", name, e.msg);
            return 1;
        }
    double t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("ok %.0f %.9g %.0f\n", t1 - t0, value, c1 - c0);
    return 0;
}

static bool read_body(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t cap = 1 << 16;
    body = malloc(cap);
    body_len = 0;
    size_t n;
    while (body && (n = fread(body + body_len, 1, cap - body_len - 1, f)) > 0) {
        body_len += n;
        if (body_len + 1 == cap) {
            char *nb = realloc(body, cap * 2);
            if (!nb) {
                free(body);
                body = NULL;
            }
            body = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!body)
        return false;
    body[body_len] = '\0'; /* etd_json_parse needs body[len] == NUL */
    return true;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || strcmp(argv[1], "--body") != 0) {
        fprintf(stderr, "usage: etd_bench --body FILE [parse_train_json ITERATIONS]\n");
        return 2;
    }
    if (!read_body(argv[2])) {
        fprintf(stderr, "etd_bench: cannot read %s\n", argv[2]);
        return 2;
    }
    int rc = 0;
    if (argc >= 4) {
        rc = run_one(argv[3], argc >= 5 ? atol(argv[4]) : 1);
    } else {
        printf("ready easytorch=%s body_bytes=%zu\n", EASYTORCH_VERSION, body_len);
        rc = bench_serve(run_one);
    }
    free(body);
    return rc;
}
