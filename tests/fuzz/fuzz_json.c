/*
 * fuzz_json.c - libFuzzer harness: JSON tensors and model specs
 * (src/server/tensor_json.c, src/server/models/spec*.c).
 *
 * Every input is tried as
 *   1. a tensor: the general path (strict cJSON, then etd_array_from_json)
 *      and both fast paths (etd_fast_array, etd_fast_shape_data) on the raw
 *      bytes.  Differential oracle: whatever a fast path accepts, the general
 *      path must accept too, with the same shape and bit-identical floats --
 *      the daemon picks the path by the body's layout, never by meaning.
 *      The int64 parse (etd_array_from_json_ints, index inputs and class
 *      targets) must agree with the float one: the same shape, each integer
 *      rounding to the float the float parse gives, and accepting every
 *      float tensor of whole numbers up to 2^24;
 *   2. a model spec: etd_spec_parse; when it accepts, the network, optimizer
 *      and scheduler are built and one forward pass of zeros is run, because
 *      parsing promises that building only fails on allocation (spec.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/models/spec.h"
#include "server/formats/tensor_json.h"

#define MAX_ELEMS 4096
#define MAX_PARAMS 20000

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_json: %s\ninput: %.*s\n", what, (int)(size < 400 ? size : 400),
            (const char *)data);
    abort();
}

static bool same_array(const etd_array *a, const etd_array *b)
{
    if (a->ndim != b->ndim || a->numel != b->numel)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return a->numel == 0 || memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0;
}

/* Every number of a tensor's JSON (nested lists, or the "data" of the object
 * form) a whole number of magnitude <= 2^53, as read in double?  (float32
 * can make a fraction whole: 1e-46 reads as 0.) */
static bool all_whole(const cJSON *j)
{
    if (cJSON_IsObject(j))
        return all_whole(cJSON_GetObjectItemCaseSensitive(j, "data"));
    if (cJSON_IsArray(j)) {
        for (const cJSON *e = j->child; e; e = e->next)
            if (!all_whole(e))
                return false;
        return true;
    }
    return cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble) &&
           fabs(j->valuedouble) <= 9007199254740992.0;
}

static void fuzz_tensor(const uint8_t *data, size_t size, const char *text)
{
    char err[512];
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, size + 1, &end, 1);
    etd_array general = {0};
    bool general_ok = j && etd_array_from_json(j, "inputs", MAX_ELEMS, &general, err, sizeof err);
    if (j && !general_ok && !err[0])
        fail("etd_array_from_json rejected without a message", data, size);
    if (general_ok) {
        for (int64_t i = 0; i < general.numel; i++)
            if (!isfinite(general.data[i]))
                fail("general path accepted a non-finite number", data, size);
        int64_t n = 1;
        for (int i = 0; i < general.ndim; i++)
            n *= general.shape[i];
        if (n != general.numel || general.numel > MAX_ELEMS)
            fail("general path: shape and element count disagree", data, size);
    }
    etd_array ints = {0};
    bool ints_ok = j && etd_array_from_json_ints(j, "inputs", MAX_ELEMS, &ints, err, sizeof err);
    if (j && !ints_ok && !err[0])
        fail("etd_array_from_json_ints rejected without a message", data, size);
    if (ints_ok && ints.dtype != ET_INT64)
        fail("the int64 parse returned another dtype", data, size);
    if (ints_ok && general_ok) {
        if (ints.ndim != general.ndim || ints.numel != general.numel ||
            memcmp(ints.shape, general.shape, (size_t)ints.ndim * sizeof ints.shape[0]) != 0)
            fail("int64 and float parses disagree on the shape", data, size);
        for (int64_t i = 0; i < ints.numel; i++)
            if ((float)ints.idata[i] != general.data[i])
                fail("int64 and float parses disagree on a value", data, size);
    }
    if (general_ok && !ints_ok && all_whole(j))
        fail("the int64 parse refused a tensor of whole numbers", data, size);
    etd_array_free(&ints);
    for (int path = 0; path < 2; path++) {
        etd_array fast = {0};
        const char *e = path == 0 ? etd_fast_array(text, text + size, MAX_ELEMS, &fast)
                                  : etd_fast_shape_data(text, text + size, MAX_ELEMS, &fast);
        if (!e)
            continue;
        if (e < text || e > text + size)
            fail("fast path returned an end outside the input", data, size);
        /* only a whole-input value can be compared with the general path */
        const char *rest = e + strspn(e, " \t\r\n");
        if (rest == text + size) {
            if (!general_ok)
                fail(path == 0 ? "etd_fast_array accepted what the general path rejects"
                               : "etd_fast_shape_data accepted what the general path rejects",
                     data, size);
            if (!same_array(&fast, &general))
                fail("fast and general paths disagree on shape or values", data, size);
        }
        etd_array_free(&fast);
    }
    etd_array_free(&general);
    cJSON_Delete(j);
}

static void fuzz_spec(const uint8_t *data, size_t size, const char *text)
{
    etd_err err = {0};
    cJSON *j = cJSON_ParseWithLengthOpts(text, size + 1, NULL, 1);
    if (!j)
        return;
    etd_spec spec;
    if (!etd_spec_parse(j, MAX_PARAMS, &spec, &err)) {
        if (!err.msg[0] || err.rc == ETD_OK)
            fail("etd_spec_parse rejected without a message", data, size);
        cJSON_Delete(j);
        return;
    }
    if (spec.param_count > MAX_PARAMS)
        fail("etd_spec_parse accepted more parameters than allowed", data, size);
    et_generator *g = et_generator_new(spec.has_seed ? spec.seed : 0);
    et_module *net = etd_spec_build_net(&spec, g, &err);
    if (!net)
        fail("a parsed spec failed to build its network", data, size);
    int np = et_module_num_params(net);
    et_tensor **params = calloc((size_t)np + 1, sizeof *params);
    const char **names = calloc((size_t)np + 1, sizeof *names);
    for (int i = 0; i < np; i++) {
        params[i] = et_module_param(net, i);
        names[i] = et_module_param_name(net, i);
    }
    et_optim *opt = etd_spec_build_optim(&spec, params, names, np, &err);
    free(names);
    if (!opt) /* BUG H4: e.g. a model without parameters */
        fail("a parsed spec failed to build its optimizer", data, size);
    et_scheduler *sch = NULL; /* BUG H4: e.g. LinearLR total_iters 0 */
    if (spec.sched.type && !(sch = etd_spec_build_sched(&spec, opt, &err)))
        fail("a parsed spec failed to build its scheduler", data, size);
    if (spec.input_dtype == ET_INT64) { /* indices: a batch of zeros is in every vocabulary */
        et_tensor *x = et_tensor_new_int64(NULL, (int64_t[]){2, 3}, 2);
        et_tensor *y = x ? et_module_forward(net, x) : NULL;
        et_tensor_free(y);
        et_tensor_free(x);
    } else if (spec.in_features > 0 && spec.in_features <= 1024) {
        int64_t shape[2] = {2, spec.in_features};
        et_tensor *x = et_zeros(shape, 2);
        et_tensor *y = x ? et_module_forward(net, x) : NULL;
        et_tensor_free(y); /* NULL is fine: a later layer may not fit, e.g. Softmax(dim=5) */
        et_tensor_free(x);
    }
    et_scheduler_free(sch);
    et_optim_free(opt);
    free(params);
    et_module_free(net);
    et_generator_free(g);
    etd_spec_free(&spec);
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the daemon always hands its parsers a NUL-terminated copy of the body */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (strlen(text) == size) { /* bodies with NUL bytes are refused before parsing */
        fuzz_tensor(data, size, text);
        fuzz_spec(data, size, text);
    }
    free(text);
    return 0;
}
