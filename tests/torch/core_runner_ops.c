/*
 * core_runner_ops.c - core_runner entries for the op families added after
 * the first release (ops_unary.c, reduce.c, shape_more.c, ...); the cases are in
 * tests/torch/cases_*.py.  Parameters as in core_runner.c ("p" of a node).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_runner.h"

#define UN(name)                                                         \
    static et_tensor *op_##name(call *c) { return et_##name(c->in[0]); }
#define BIN(name)                                                        \
    static et_tensor *op_##name(call *c) { return et_##name(c->in[0], c->in[1]); }

/* ---- ops_unary.c ---- */
UN(sign) UN(floor) UN(ceil) UN(round) UN(reciprocal) UN(rsqrt) UN(log1p) UN(expm1)
UN(sin) UN(cos) UN(erf) UN(silu) UN(mish) UN(isnan) UN(isfinite) UN(logical_not)
BIN(logical_and) BIN(logical_or) BIN(binary_cross_entropy)

static et_tensor *op_softplus(call *c) {
    return et_softplus(c->in[0], (float)num_or(c->p, "beta", 1), (float)num_or(c->p, "threshold", 20));
}
static et_tensor *op_elu(call *c) { return et_elu(c->in[0], (float)num_or(c->p, "alpha", 1)); }
static et_tensor *op_hardtanh(call *c) {
    return et_hardtanh(c->in[0], (float)num_or(c->p, "min_val", -1), (float)num_or(c->p, "max_val", 1));
}
static et_tensor *op_masked_fill(call *c) {
    return et_masked_fill(c->in[0], c->in[1], (float)num_or(c->p, "value", 0));
}

/* in place: return a new reference to the target */
static et_tensor *ret_target(call *c, et_status st) {
    return st == ET_OK ? et_tensor_ref(c->in[0]) : NULL;
}
static et_tensor *op_add_(call *c) {
    return ret_target(c, et_add_(c->in[0], c->in[1], (float)num_or(c->p, "alpha", 1)));
}
static et_tensor *op_mul_(call *c) { return ret_target(c, et_mul_(c->in[0], c->in[1])); }
static et_tensor *op_add_scalar_(call *c) {
    return ret_target(c, et_add_scalar_(c->in[0], (float)num_or(c->p, "s", NAN)));
}
static et_tensor *op_mul_scalar_(call *c) {
    return ret_target(c, et_mul_scalar_(c->in[0], (float)num_or(c->p, "s", NAN)));
}
static et_tensor *op_clamp_(call *c) {
    return ret_target(c, et_clamp_(c->in[0], (float)num_or(c->p, "min", -INFINITY),
                                   (float)num_or(c->p, "max", INFINITY)));
}
/* et_permute with a NULL dims list (the error case of the edge-case sweep) */
static et_tensor *op_permute_null(call *c) {
    return et_permute(c->in[0], NULL, (int)num_or(c->p, "ndims", 0));
}

/* ---- reduce.c ---- */
static et_tensor *op_logsumexp(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_logsumexp(c->in[0], dims, n, bool_or(c->p, "keepdim", false));
}
static et_tensor *var_std(call *c, bool is_std) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    double corr = num_or(c->p, "correction", 1);
    bool keep = bool_or(c->p, "keepdim", false);
    return is_std ? et_std(c->in[0], dims, n, corr, keep) : et_var(c->in[0], dims, n, corr, keep);
}
static et_tensor *op_var(call *c) { return var_std(c, false); }
static et_tensor *op_std(call *c) { return var_std(c, true); }
static et_tensor *op_prod(call *c) {
    return et_prod(c->in[0], (int)num_or(c->p, "dim", 0), bool_or(c->p, "keepdim", false));
}
static et_tensor *op_prod_all(call *c) { return et_prod_all(c->in[0]); }
static et_tensor *op_cumsum(call *c) { return et_cumsum(c->in[0], (int)num_or(c->p, "dim", 0)); }
static et_tensor *op_norm(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_norm(c->in[0], num_or(c->p, "p", 2), dims, n, bool_or(c->p, "keepdim", false));
}
static et_tensor *op_amax(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_amax(c->in[0], dims, n, bool_or(c->p, "keepdim", false));
}
static et_tensor *op_amin(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_amin(c->in[0], dims, n, bool_or(c->p, "keepdim", false));
}
static et_tensor *op_argmin(call *c) {
    return et_argmin(c->in[0], (int)num_or(c->p, "dim", 0), bool_or(c->p, "keepdim", false));
}

const op_entry core_runner_ops_more[] = {
    {"logsumexp", 1, op_logsumexp, false}, {"var", 1, op_var, false}, {"std", 1, op_std, false},
    {"prod", 1, op_prod, false}, {"prod_all", 1, op_prod_all, false},
    {"cumsum", 1, op_cumsum, false}, {"norm", 1, op_norm, false}, {"amax", 1, op_amax, false},
    {"amin", 1, op_amin, false}, {"argmin", 1, op_argmin, false},
    {"sign", 1, op_sign, false}, {"floor", 1, op_floor, false}, {"ceil", 1, op_ceil, false},
    {"round", 1, op_round, false}, {"reciprocal", 1, op_reciprocal, false},
    {"rsqrt", 1, op_rsqrt, false}, {"log1p", 1, op_log1p, false}, {"expm1", 1, op_expm1, false},
    {"sin", 1, op_sin, false}, {"cos", 1, op_cos, false}, {"erf", 1, op_erf, false},
    {"softplus", 1, op_softplus, false}, {"elu", 1, op_elu, false}, {"silu", 1, op_silu, false},
    {"mish", 1, op_mish, false}, {"hardtanh", 1, op_hardtanh, false},
    {"isnan", 1, op_isnan, false}, {"isfinite", 1, op_isfinite, false},
    {"logical_and", 2, op_logical_and, false}, {"logical_or", 2, op_logical_or, false},
    {"logical_not", 1, op_logical_not, false}, {"masked_fill", 2, op_masked_fill, false},
    {"binary_cross_entropy", 2, op_binary_cross_entropy, false},
    {"add_", 2, op_add_, true}, {"mul_", 2, op_mul_, true},
    {"add_scalar_", 1, op_add_scalar_, true}, {"mul_scalar_", 1, op_mul_scalar_, true},
    {"clamp_", 1, op_clamp_, true}, {"permute_null", 1, op_permute_null, false},
};
const size_t core_runner_ops_more_n = sizeof core_runner_ops_more / sizeof core_runner_ops_more[0];
