/*
 * core_runner_basic.c - core_runner's entries for the ops of the first
 * release: elementwise, reductions, shapes, indexing, factories and the
 * in-place and grad-mode ops.  Parameters as in core_runner.c ("p" of a
 * node); the cases are test_core_ops.py's own.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_runner.h"

#define BIN(name)                                                        \
    static et_tensor *op_##name(call *c) { return et_##name(c->in[0], c->in[1]); }
#define UN(name)                                                         \
    static et_tensor *op_##name(call *c) { return et_##name(c->in[0]); }
#define SCAL(name)                                                       \
    static et_tensor *op_##name(call *c) {                               \
        return et_##name(c->in[0], (float)num_or(c->p, "s", NAN));       \
    }
#define RSCAL(name)                                                      \
    static et_tensor *op_##name(call *c) {                               \
        return et_##name((float)num_or(c->p, "s", NAN), c->in[0]);       \
    }

BIN(add) BIN(sub) BIN(mul) BIN(div) BIN(pow) BIN(maximum) BIN(minimum)
BIN(eq) BIN(ne) BIN(lt) BIN(le) BIN(gt) BIN(ge) BIN(matmul)
SCAL(add_scalar) SCAL(sub_scalar) SCAL(mul_scalar) SCAL(div_scalar)
SCAL(pow_scalar) SCAL(gt_scalar) SCAL(lt_scalar)
RSCAL(rsub_scalar) RSCAL(rdiv_scalar) RSCAL(rpow_scalar)
UN(neg) UN(exp) UN(log) UN(sqrt) UN(abs) UN(tanh) UN(sigmoid) UN(relu)
UN(sum_all) UN(mean_all) UN(max_all) UN(min_all) UN(t) UN(squeeze_all)

static et_tensor *op_leaky_relu(call *c) {
    return et_leaky_relu(c->in[0], (float)num_or(c->p, "slope", 0.01));
}
static et_tensor *op_gelu(call *c) {
    return et_gelu(c->in[0], bool_or(c->p, "approx", false));
}
static et_tensor *op_clamp(call *c) {
    return et_clamp(c->in[0], (float)num_or(c->p, "min", -INFINITY),
                    (float)num_or(c->p, "max", INFINITY));
}

int dims_of(call *c, int *dims, int cap) {
    int64_t d64[ET_MAX_DIMS * 2];
    int n = ints_of(c->p, "dims", d64, ET_MAX_DIMS * 2);
    if (n < 0)
        n = 0;
    if (n > cap)
        n = cap;
    for (int i = 0; i < n; i++)
        dims[i] = (int)d64[i];
    return n;
}

static et_tensor *op_sum(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_sum(c->in[0], dims, n, bool_or(c->p, "keepdim", false));
}
static et_tensor *op_mean(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_mean(c->in[0], dims, n, bool_or(c->p, "keepdim", false));
}

/* max/min over a dim also store "<out>.indices". */
static et_tensor *minmax(call *c, bool is_max) {
    et_tensor *idx = NULL;
    int dim = (int)num_or(c->p, "dim", 0);
    bool keep = bool_or(c->p, "keepdim", false);
    et_tensor *r = is_max ? et_max(c->in[0], dim, keep, &idx) : et_min(c->in[0], dim, keep, &idx);
    if (r) {
        if (!idx) {
            et_tensor_free(r);
            et_set_error(ET_ERR_ARG, "runner: %s returned no indices", is_max ? "max" : "min");
            return NULL;
        }
        if (env_put_derived(c->e, c->out, ".indices", idx) != 0) {
            et_tensor_free(r);
            return NULL;
        }
    }
    return r;
}
static et_tensor *op_max(call *c) { return minmax(c, true); }
static et_tensor *op_min(call *c) { return minmax(c, false); }
static et_tensor *op_argmax(call *c) {
    return et_argmax(c->in[0], (int)num_or(c->p, "dim", 0), bool_or(c->p, "keepdim", false));
}
static et_tensor *op_softmax(call *c) { return et_softmax(c->in[0], (int)num_or(c->p, "dim", -1)); }
static et_tensor *op_log_softmax(call *c) {
    return et_log_softmax(c->in[0], (int)num_or(c->p, "dim", -1));
}

static et_tensor *op_reshape(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_reshape(c->in[0], s, n < 0 ? 0 : n);
}
static et_tensor *op_view(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_view(c->in[0], s, n < 0 ? 0 : n);
}
static et_tensor *op_expand(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_expand(c->in[0], s, n < 0 ? 0 : n);
}
static et_tensor *op_transpose(call *c) {
    return et_transpose(c->in[0], (int)num_or(c->p, "dim0", 0), (int)num_or(c->p, "dim1", 1));
}
static et_tensor *op_permute(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_permute(c->in[0], dims, n);
}
static et_tensor *op_squeeze(call *c) { return et_squeeze(c->in[0], (int)num_or(c->p, "dim", 0)); }
static et_tensor *op_unsqueeze(call *c) {
    return et_unsqueeze(c->in[0], (int)num_or(c->p, "dim", 0));
}
static et_tensor *op_flatten(call *c) {
    return et_flatten(c->in[0], (int)num_or(c->p, "start_dim", 0),
                      (int)num_or(c->p, "end_dim", -1));
}
static et_tensor *op_select(call *c) {
    return et_select(c->in[0], (int)num_or(c->p, "dim", 0), (int64_t)num_or(c->p, "index", 0));
}
static et_tensor *op_slice(call *c) {
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(c->p, "end");
    int64_t e = cJSON_IsNumber(end) ? (int64_t)end->valuedouble : ET_END;
    return et_slice(c->in[0], (int)num_or(c->p, "dim", 0), (int64_t)num_or(c->p, "start", 0), e,
                    (int64_t)num_or(c->p, "step", 1));
}
static et_tensor *op_cat(call *c) { return et_cat(c->in, c->nin, (int)num_or(c->p, "dim", 0)); }
static et_tensor *op_stack(call *c) { return et_stack(c->in, c->nin, (int)num_or(c->p, "dim", 0)); }
static et_tensor *op_index_select(call *c) {
    return et_index_select(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1]);
}
static et_tensor *op_gather(call *c) {
    return et_gather(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1]);
}
static et_tensor *op_where(call *c) { return et_where(c->in[0], c->in[1], c->in[2]); }
static et_tensor *op_contiguous(call *c) { return et_contiguous(c->in[0]); }
static et_tensor *op_clone(call *c) { return et_clone(c->in[0]); }
static et_tensor *op_detach(call *c) { return et_detach(c->in[0]); }

/* Creation functions of tensor.h (no inputs). */
static et_tensor *op_arange(call *c) {
    return et_arange(num_or(c->p, "start", 0), num_or(c->p, "end", 0), num_or(c->p, "step", 1));
}
static et_tensor *op_linspace(call *c) {
    return et_linspace(num_or(c->p, "start", 0), num_or(c->p, "end", 0),
                       (int64_t)num_or(c->p, "steps", 0));
}
static et_tensor *op_eye(call *c) {
    return et_eye((int64_t)num_or(c->p, "n", 0), (int64_t)num_or(c->p, "m", 0));
}
static et_tensor *op_full(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_full(s, n < 0 ? 0 : n, (float)num_or(c->p, "value", 0));
}
static et_tensor *op_zeros(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_zeros(s, n < 0 ? 0 : n);
}
static et_tensor *op_ones(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "shape", s, ET_MAX_DIMS + 1);
    return et_ones(s, n < 0 ? 0 : n);
}
static et_tensor *op_zeros_like(call *c) { return et_zeros_like(c->in[0]); }
static et_tensor *op_ones_like(call *c) { return et_ones_like(c->in[0]); }

/* Element access of tensor.h, returned as 0-d tensors. */
static et_tensor *op_get(call *c) {
    int64_t idx[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "index", idx, ET_MAX_DIMS + 1);
    if (n != et_ndim(c->in[0])) {
        et_set_error(ET_ERR_ARG, "runner: get needs %d indices", et_ndim(c->in[0]));
        return NULL;
    }
    float v = et_get(c->in[0], idx);
    if (isnan(v) && et_errcode() != ET_OK)
        return NULL;
    return et_scalar(v);
}
static et_tensor *op_item(call *c) {
    float v = et_item(c->in[0]);
    if (isnan(v) && et_errcode() != ET_OK)
        return NULL;
    return et_scalar(v);
}

/* In-place ops and graph marks return a new reference to their target so
 * every node yields a tensor. */
static et_tensor *op_fill_(call *c) {
    if (et_fill_(c->in[0], (float)num_or(c->p, "value", NAN)) != ET_OK)
        return NULL;
    return et_tensor_ref(c->in[0]);
}
static et_tensor *op_copy_from(call *c) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c->p, "data");
    int n = cJSON_GetArraySize(d);
    if (n != et_numel(c->in[0])) {
        et_set_error(ET_ERR_ARG, "runner: copy_from needs %lld values", (long long)et_numel(c->in[0]));
        return NULL;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!buf)
        return NULL;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, d) buf[i++] = (float)it->valuedouble;
    et_status st = et_copy_from(c->in[0], buf);
    free(buf);
    return st == ET_OK ? et_tensor_ref(c->in[0]) : NULL;
}
static et_tensor *op_copy_(call *c) {
    if (et_copy_(c->in[0], c->in[1]) != ET_OK)
        return NULL;
    return et_tensor_ref(c->in[0]);
}
static et_tensor *op_requires_grad_(call *c) {
    if (et_set_requires_grad(c->in[0], bool_or(c->p, "on", true)) != ET_OK)
        return NULL;
    return et_tensor_ref(c->in[0]);
}
static et_tensor *op_retain_grad(call *c) {
    et_retain_grad(c->in[0]);
    return et_tensor_ref(c->in[0]);
}


const op_entry core_runner_ops_basic[] = {
    {"add", 2, op_add, false}, {"sub", 2, op_sub, false}, {"mul", 2, op_mul, false}, {"div", 2, op_div, false},
    {"pow", 2, op_pow, false}, {"maximum", 2, op_maximum, false}, {"minimum", 2, op_minimum, false},
    {"add_scalar", 1, op_add_scalar, false}, {"sub_scalar", 1, op_sub_scalar, false},
    {"rsub_scalar", 1, op_rsub_scalar, false}, {"mul_scalar", 1, op_mul_scalar, false},
    {"div_scalar", 1, op_div_scalar, false}, {"rdiv_scalar", 1, op_rdiv_scalar, false},
    {"pow_scalar", 1, op_pow_scalar, false}, {"rpow_scalar", 1, op_rpow_scalar, false},
    {"neg", 1, op_neg, false}, {"exp", 1, op_exp, false}, {"log", 1, op_log, false}, {"sqrt", 1, op_sqrt, false},
    {"abs", 1, op_abs, false}, {"tanh", 1, op_tanh, false}, {"sigmoid", 1, op_sigmoid, false},
    {"relu", 1, op_relu, false}, {"leaky_relu", 1, op_leaky_relu, false}, {"gelu", 1, op_gelu, false},
    {"clamp", 1, op_clamp, false},
    {"sum_all", 1, op_sum_all, false}, {"mean_all", 1, op_mean_all, false}, {"sum", 1, op_sum, false},
    {"mean", 1, op_mean, false}, {"max", 1, op_max, false}, {"min", 1, op_min, false}, {"argmax", 1, op_argmax, false},
    {"max_all", 1, op_max_all, false}, {"min_all", 1, op_min_all, false},
    {"softmax", 1, op_softmax, false}, {"log_softmax", 1, op_log_softmax, false},
    {"matmul", 2, op_matmul, false},
    {"reshape", 1, op_reshape, false}, {"view", 1, op_view, false}, {"transpose", 1, op_transpose, false},
    {"t", 1, op_t, false}, {"permute", 1, op_permute, false}, {"squeeze", 1, op_squeeze, false},
    {"squeeze_all", 1, op_squeeze_all, false}, {"unsqueeze", 1, op_unsqueeze, false},
    {"flatten", 1, op_flatten, false}, {"expand", 1, op_expand, false}, {"select", 1, op_select, false},
    {"slice", 1, op_slice, false},
    {"cat", -1, op_cat, false}, {"stack", -1, op_stack, false},
    {"index_select", 2, op_index_select, false}, {"gather", 2, op_gather, false},
    {"eq", 2, op_eq, false}, {"ne", 2, op_ne, false}, {"lt", 2, op_lt, false}, {"le", 2, op_le, false},
    {"gt", 2, op_gt, false}, {"ge", 2, op_ge, false}, {"gt_scalar", 1, op_gt_scalar, false},
    {"lt_scalar", 1, op_lt_scalar, false}, {"where", 3, op_where, false},
    {"fill_", 1, op_fill_, true}, {"copy_", 2, op_copy_, true},
    {"contiguous", 1, op_contiguous, false}, {"clone", 1, op_clone, false}, {"detach", 1, op_detach, false},
    {"retain_grad", 1, op_retain_grad, true}, {"requires_grad_", 1, op_requires_grad_, true},
    {"arange", 0, op_arange, false}, {"linspace", 0, op_linspace, false}, {"eye", 0, op_eye, false},
    {"full", 0, op_full, false}, {"zeros", 0, op_zeros, false}, {"ones", 0, op_ones, false},
    {"zeros_like", 1, op_zeros_like, false}, {"ones_like", 1, op_ones_like, false},
    {"get", 1, op_get, false}, {"item", 1, op_item, false}, {"copy_from", 1, op_copy_from, true},
};
const size_t core_runner_ops_basic_n = sizeof core_runner_ops_basic / sizeof core_runner_ops_basic[0];
