/*
 * nn_runner_conv.c - nn_runner commands for the image layers of nn_conv.h
 * (tests/torch/nn_conv.py drives them):
 *
 *   nn_runner layer '<json spec>' <in> <out>
 *       spec: {"type": "Conv2d", "in_channels": 3, ..., "train": true}, torch's
 *             keyword names (tuples as lists, padding "same"/"valid")
 *       in:  x, gout, p.<state name>...       (gout absent: forward only)
 *       out: y, x_grad, grad.<param name>..., init.<state name> (the state
 *            right after construction, before p.* is loaded)
 *       A construction or forward error is printed as "error: <code> <message>"
 *       on stdout (exit 0), so the suite can compare it with torch's.
 *   nn_runner cnn <in> <out>     a small CNN Sequential (see cmd_cnn), as `module`
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_runner.h"

static const cJSON *key(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

static double num(const cJSON *s, const char *k, double d)
{
    const cJSON *v = key(s, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}

static bool flag(const cJSON *s, const char *k, bool d)
{
    const cJSON *v = key(s, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : d;
}

/* An int or a list of up to n ints into out (an int fills every entry);
 * false if absent. */
static bool ints(const cJSON *s, const char *k, int64_t *out, int n)
{
    const cJSON *v = key(s, k);
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < n; i++)
            out[i] = (int64_t)v->valuedouble;
        return true;
    }
    if (!cJSON_IsArray(v))
        return false;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) if (i < n) out[i++] = cJSON_IsNull(it) ? -1 : (int64_t)it->valuedouble;
    return true;
}

static et_pad_mode pad_mode(const cJSON *s)
{
    const cJSON *v = key(s, "padding_mode");
    const char *m = cJSON_IsString(v) ? v->valuestring : "zeros";
    return !strcmp(m, "reflect") ? ET_PAD_REFLECT : !strcmp(m, "replicate") ? ET_PAD_REPLICATE
           : !strcmp(m, "circular") ? ET_PAD_CIRCULAR : ET_PAD_CONSTANT;
}

static et_module *build(const cJSON *s, et_generator *g)
{
    const cJSON *t = key(s, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    int sd = strstr(type, "1d") ? 1 : 2;
    if (!strcmp(type, "Conv1d") || !strcmp(type, "Conv2d") || !strcmp(type, "ConvTranspose2d")) {
        et_conv_opts o = ET_CONV_DEFAULTS;
        int64_t k[2] = {1, 1};
        ints(s, "kernel_size", k, sd);
        ints(s, "stride", o.stride, sd);
        ints(s, "dilation", o.dilation, sd);
        ints(s, "output_padding", o.output_padding, sd);
        const cJSON *p = key(s, "padding");
        if (cJSON_IsString(p))
            o.padding_same = !strcmp(p->valuestring, "same");
        else
            ints(s, "padding", o.padding, sd);
        o.groups = (int64_t)num(s, "groups", 1);
        o.bias = flag(s, "bias", true);
        o.padding_mode = pad_mode(s);
        int64_t in = (int64_t)num(s, "in_channels", 0), out = (int64_t)num(s, "out_channels", 0);
        if (sd == 1)
            return et_conv1d_new(in, out, k[0], &o, g);
        return type[4] == 'T' ? et_conv_transpose2d_new(in, out, k, &o, g)
                              : et_conv2d_new(in, out, k, &o, g);
    }
    if (strstr(type, "Pool")) {
        et_pool_opts o = ET_POOL_DEFAULTS;
        int64_t k[2] = {0, 0};
        if (!strncmp(type, "Adaptive", 8)) {
            ints(s, "output_size", k, sd);
            bool avg = strstr(type, "Avg") != NULL;
            if (sd == 1)
                return avg ? et_adaptive_avg_pool1d_new(k[0]) : et_adaptive_max_pool1d_new(k[0]);
            return avg ? et_adaptive_avg_pool2d_new(k) : et_adaptive_max_pool2d_new(k);
        }
        ints(s, "kernel_size", k, sd);
        if (!ints(s, "stride", o.stride, sd) || cJSON_IsNull(key(s, "stride")))
            o.stride[0] = o.stride[1] = 0;
        ints(s, "padding", o.padding, sd);
        ints(s, "dilation", o.dilation, sd);
        o.ceil_mode = flag(s, "ceil_mode", false);
        o.count_include_pad = flag(s, "count_include_pad", true);
        o.divisor_override = (int64_t)num(s, "divisor_override", 0);
        bool mx = !strncmp(type, "Max", 3);
        if (sd == 1)
            return mx ? et_max_pool1d_new(k[0], &o) : et_avg_pool1d_new(k[0], &o);
        return mx ? et_max_pool2d_new(k, &o) : et_avg_pool2d_new(k, &o);
    }
    if (strstr(type, "Pad")) {
        int64_t p[4] = {0, 0, 0, 0};
        int n = strstr(type, "1d") ? 2 : 4;
        ints(s, "padding", p, n);
        float v = (float)num(s, "value", 0);
        if (!strcmp(type, "ZeroPad2d"))
            return et_zero_pad2d_new(p);
        if (!strncmp(type, "Constant", 8))
            return n == 2 ? et_constant_pad1d_new(p, v) : et_constant_pad2d_new(p, v);
        if (!strncmp(type, "Reflection", 10))
            return n == 2 ? et_reflection_pad1d_new(p) : et_reflection_pad2d_new(p);
        return n == 2 ? et_replication_pad1d_new(p) : et_replication_pad2d_new(p);
    }
    if (!strcmp(type, "Unflatten")) {
        int64_t sz[ET_MAX_DIMS];
        int n = cJSON_GetArraySize(key(s, "unflattened_size"));
        ints(s, "unflattened_size", sz, ET_MAX_DIMS);
        return et_unflatten_new((int)num(s, "dim", 0), sz, n);
    }
    if (!strcmp(type, "Dropout2d"))
        return et_dropout2d_new((float)num(s, "p", 0.5), g);
    et_set_error(ET_ERR_ARG, "runner: unknown layer type '%s'", type);
    return NULL;
}

static int report_error(void)
{
    printf("error: %d %s\n", (int)et_errcode(), et_errmsg());
    return 0;
}

static int cmd_layer(const char *spec, const char *inp, const char *outp)
{
    cJSON *s = cJSON_Parse(spec);
    if (!s)
        return fail("layer: spec is not JSON");
    et_generator *g = et_generator_new((uint64_t)num(s, "seed", 0));
    et_module *m = build(s, g);
    bool train = flag(s, "train", true);
    cJSON_Delete(s);
    if (!m) {
        et_generator_free(g);
        return report_error();
    }
    et_module_train(m, train);
    et_tensor_dict *out = et_tensor_dict_new();
    for (int i = 0; i < et_module_num_state(m); i++) {
        char name[160];
        snprintf(name, sizeof name, "init.%s", et_module_state_name(m, i));
        et_tensor_dict_set(out, name, et_module_state_tensor(m, i));
    }
    et_tensor_dict *in = load(inp);
    if (!in || load_params(m, in))
        return 1;
    et_tensor *x = get(in, "x", true);
    et_tensor *gout = et_tensor_dict_get(in, "gout") ? get(in, "gout", false) : NULL;
    if (!x)
        return 1;
    et_tensor *y = et_module_forward(m, x);
    int rc = 0;
    if (!y) {
        rc = report_error();
    } else {
        if (gout && et_requires_grad(y) && et_backward(y, gout) != ET_OK)
            return fail("backward");
        et_tensor_dict_set(out, "y", y);
        if (et_grad(x))
            et_tensor_dict_set(out, "x_grad", et_grad(x));
        for (int i = 0; i < et_module_num_params(m); i++) {
            char name[160];
            snprintf(name, sizeof name, "grad.%s", et_module_param_name(m, i));
            if (et_grad(et_module_param(m, i)))
                et_tensor_dict_set(out, name, et_grad(et_module_param(m, i)));
        }
        rc = save(out, outp);
        out = NULL;
    }
    et_tensor_dict_free(out);
    et_tensor_free(y);
    et_tensor_free(x);
    et_tensor_free(gout);
    et_tensor_dict_free(in);
    et_module_free(m);
    et_generator_free(g);
    return rc;
}

/* Conv2d(1,4,3,p1) ReLU MaxPool2d(2) Conv2d(4,6,3) ReLU Flatten Linear(24,5) */
static int cmd_cnn(const char *inp, const char *outp)
{
    et_module *net = et_sequential_new();
    et_conv_opts pad1 = ET_CONV_DEFAULTS;
    pad1.padding[0] = pad1.padding[1] = 1;
    et_module *layers[] = {
        et_conv2d_new(1, 4, (int64_t[]){3, 3}, &pad1, NULL), et_relu_new(),
        et_max_pool2d_new((int64_t[]){2, 2}, NULL), et_conv2d_new(4, 6, (int64_t[]){3, 3}, NULL, NULL),
        et_relu_new(), et_flatten_new(1, -1), et_linear_new(24, 5, true, NULL)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (et_sequential_append(net, layers[i]) != ET_OK)
            return fail("cnn: append");
    et_tensor_dict *in = load(inp);
    if (!in || load_params(net, in))
        return 1;
    et_tensor *x = get(in, "x", true), *gout = get(in, "gout", false);
    if (!x || !gout)
        return 1;
    et_tensor *y = et_module_forward(net, x);
    if (!y || et_backward(y, gout) != ET_OK)
        return fail("cnn: forward/backward");
    et_tensor_dict *out = et_tensor_dict_new();
    et_tensor_dict_set(out, "y", y);
    et_tensor_dict_set(out, "x_grad", et_grad(x));
    for (int i = 0; i < et_module_num_params(net); i++) {
        char name[160];
        snprintf(name, sizeof name, "grad.%s", et_module_param_name(net, i));
        et_tensor_dict_set(out, name, et_grad(et_module_param(net, i)));
    }
    int rc = save(out, outp);
    et_tensor_free(y);
    et_tensor_free(x);
    et_tensor_free(gout);
    et_tensor_dict_free(in);
    et_module_free(net);
    return rc;
}

int nn_runner_conv(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "layer"))
        return cmd_layer(argv[2], argv[3], argv[4]);
    if (argc >= 4 && !strcmp(argv[1], "cnn"))
        return cmd_cnn(argv[2], argv[3]);
    return -1;
}
