/*
 * core_runner_conv.c - core_runner entries for conv.h (convolution,
 * pooling, padding, unfold/fold); the cases are in cases_conv.py.
 *
 * Size arguments are int lists ("stride": [2, 1]); an absent key passes
 * NULL (the op's default).  "padding" may also be "same" or "valid".
 * "algo" ("im2col" / "onednn") calls et_set_conv_algo for the rest of the
 * case (core_runner resets it to auto before each case).
 */
#include <string.h>

#include "core_runner.h"

/* Size list p[key] (at most 2 entries), or NULL when absent. */
static const int64_t *sizes_of(call *c, const char *key, int64_t *buf) {
    return ints_of(c->p, key, buf, 2) < 0 ? NULL : buf;
}

static const int64_t *padding_of(call *c, int64_t *buf) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->p, "padding");
    if (cJSON_IsString(v))
        return strcmp(v->valuestring, "same") == 0 ? ET_PADDING_SAME : NULL;
    return sizes_of(c, "padding", buf);
}

static bool conv_algo_of(call *c) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->p, "algo");
    if (!cJSON_IsString(v))
        return true;
    et_conv_algo a = strcmp(v->valuestring, "im2col") == 0   ? ET_CONV_IM2COL
                     : strcmp(v->valuestring, "onednn") == 0 ? ET_CONV_ONEDNN
                                                             : ET_CONV_AUTO;
    return et_set_conv_algo(a) == ET_OK;
}

static et_tensor *conv_common(call *c, int sd, bool transposed) {
    int64_t s[2], p[2], d[2], op[2];
    if (c->nin < 2 || c->nin > 3) {
        et_set_error(ET_ERR_ARG, "runner: convolutions take 2 or 3 inputs");
        return NULL;
    }
    if (!conv_algo_of(c))
        return NULL;
    et_tensor *b = c->nin > 2 ? c->in[2] : NULL;
    int64_t groups = (int64_t)num_or(c->p, "groups", 1);
    if (transposed)
        return et_conv_transpose2d(c->in[0], c->in[1], b, sizes_of(c, "stride", s),
                                   padding_of(c, p), sizes_of(c, "output_padding", op), groups,
                                   sizes_of(c, "dilation", d));
    if (sd == 1)
        return et_conv1d(c->in[0], c->in[1], b, sizes_of(c, "stride", s), padding_of(c, p),
                         sizes_of(c, "dilation", d), groups);
    return et_conv2d(c->in[0], c->in[1], b, sizes_of(c, "stride", s), padding_of(c, p),
                     sizes_of(c, "dilation", d), groups);
}

static et_tensor *op_conv1d(call *c) { return conv_common(c, 1, false); }
static et_tensor *op_conv2d(call *c) { return conv_common(c, 2, false); }
static et_tensor *op_conv_transpose2d(call *c) { return conv_common(c, 2, true); }

/* Pools that return indices store them as "<out>.indices" too. */
static et_tensor *with_indices(call *c, et_tensor *r, et_tensor *idx) {
    if (r && idx && env_put_derived(c->e, c->out, ".indices", idx) != 0) {
        et_tensor_free(r);
        return NULL;
    }
    return r;
}

static et_tensor *max_pool_common(call *c, int sd) {
    int64_t k[2], s[2], p[2], d[2];
    et_tensor *idx = NULL;
    const int64_t *ks = sizes_of(c, "kernel_size", k), *st = sizes_of(c, "stride", s);
    const int64_t *pd = sizes_of(c, "padding", p), *dl = sizes_of(c, "dilation", d);
    bool ceil = bool_or(c->p, "ceil_mode", false);
    et_tensor *r = sd == 2 ? et_max_pool2d(c->in[0], ks, st, pd, dl, ceil, &idx)
                           : et_max_pool1d(c->in[0], ks, st, pd, dl, ceil, &idx);
    return with_indices(c, r, idx);
}
static et_tensor *op_max_pool2d(call *c) { return max_pool_common(c, 2); }
static et_tensor *op_max_pool1d(call *c) { return max_pool_common(c, 1); }

static et_tensor *op_avg_pool2d(call *c) {
    int64_t k[2], s[2], p[2];
    return et_avg_pool2d(c->in[0], sizes_of(c, "kernel_size", k), sizes_of(c, "stride", s),
                         sizes_of(c, "padding", p), bool_or(c->p, "ceil_mode", false),
                         bool_or(c->p, "count_include_pad", true),
                         (int64_t)num_or(c->p, "divisor_override", 0));
}
static et_tensor *op_avg_pool1d(call *c) {
    int64_t k[2], s[2], p[2];
    return et_avg_pool1d(c->in[0], sizes_of(c, "kernel_size", k), sizes_of(c, "stride", s),
                         sizes_of(c, "padding", p), bool_or(c->p, "ceil_mode", false),
                         bool_or(c->p, "count_include_pad", true));
}

/* "output_size" entries: -1 stands for torch's None */
static et_tensor *op_adaptive_avg_pool2d(call *c) {
    int64_t o[2];
    return et_adaptive_avg_pool2d(c->in[0], sizes_of(c, "output_size", o));
}
static et_tensor *op_adaptive_avg_pool1d(call *c) {
    int64_t o[2];
    return et_adaptive_avg_pool1d(c->in[0], sizes_of(c, "output_size", o));
}
static et_tensor *op_adaptive_max_pool2d(call *c) {
    int64_t o[2];
    et_tensor *idx = NULL;
    et_tensor *r = et_adaptive_max_pool2d(c->in[0], sizes_of(c, "output_size", o), &idx);
    return with_indices(c, r, idx);
}
static et_tensor *op_adaptive_max_pool1d(call *c) {
    int64_t o[2];
    et_tensor *idx = NULL;
    et_tensor *r = et_adaptive_max_pool1d(c->in[0], sizes_of(c, "output_size", o), &idx);
    return with_indices(c, r, idx);
}

static et_tensor *op_pad(call *c) {
    int64_t pad[2 * ET_MAX_DIMS + 2];
    int n = ints_of(c->p, "pad", pad, 2 * ET_MAX_DIMS + 2);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->p, "mode");
    const char *ms = cJSON_IsString(m) ? m->valuestring : "constant";
    et_pad_mode mode = strcmp(ms, "reflect") == 0     ? ET_PAD_REFLECT
                       : strcmp(ms, "replicate") == 0 ? ET_PAD_REPLICATE
                       : strcmp(ms, "circular") == 0  ? ET_PAD_CIRCULAR
                                                      : ET_PAD_CONSTANT;
    return et_pad(c->in[0], pad, n < 0 ? 0 : n, mode, (float)num_or(c->p, "value", 0));
}

static et_tensor *op_unfold(call *c) {
    int64_t k[2], d[2], p[2], s[2];
    return et_unfold(c->in[0], sizes_of(c, "kernel_size", k), sizes_of(c, "dilation", d),
                     sizes_of(c, "padding", p), sizes_of(c, "stride", s));
}
static et_tensor *op_fold(call *c) {
    int64_t o[2], k[2], d[2], p[2], s[2];
    return et_fold(c->in[0], sizes_of(c, "output_size", o), sizes_of(c, "kernel_size", k),
                   sizes_of(c, "dilation", d), sizes_of(c, "padding", p), sizes_of(c, "stride", s));
}

const op_entry core_runner_conv[] = {
    {"unfold", 1, op_unfold, false},
    {"fold", 1, op_fold, false},
    {"conv1d", -1, op_conv1d, false},
    {"conv2d", -1, op_conv2d, false},
    {"conv_transpose2d", -1, op_conv_transpose2d, false},
    {"max_pool1d", 1, op_max_pool1d, false},
    {"max_pool2d", 1, op_max_pool2d, false},
    {"avg_pool1d", 1, op_avg_pool1d, false},
    {"avg_pool2d", 1, op_avg_pool2d, false},
    {"adaptive_avg_pool1d", 1, op_adaptive_avg_pool1d, false},
    {"adaptive_avg_pool2d", 1, op_adaptive_avg_pool2d, false},
    {"adaptive_max_pool1d", 1, op_adaptive_max_pool1d, false},
    {"adaptive_max_pool2d", 1, op_adaptive_max_pool2d, false},
    {"pad", 1, op_pad, false},
};
const size_t core_runner_conv_n = sizeof core_runner_conv / sizeof core_runner_conv[0];
