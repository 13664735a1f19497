/*
 * core_runner_ops.c - core_runner entries for the op families added after
 * the first release (ops_unary.c, reduce.c, shape_more.c, ...); the cases are in
 * tests/torch/cases_*.py.  Parameters as in core_runner.c ("p" of a node).
 */
#include <math.h>
#include <stdio.h>
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

/* ---- sort.c ---- */
static et_tensor *with_indices(call *c, et_tensor *r, et_tensor *idx) {
    if (r && env_put_derived(c->e, c->out, ".indices", idx) != 0) {
        et_tensor_free(r);
        return NULL;
    }
    return r;
}
static et_tensor *op_sort(call *c) {
    et_tensor *idx = NULL;
    et_tensor *r = et_sort(c->in[0], (int)num_or(c->p, "dim", -1), bool_or(c->p, "descending", false),
                           &idx);
    return with_indices(c, r, idx);
}
static et_tensor *op_argsort(call *c) {
    return et_argsort(c->in[0], (int)num_or(c->p, "dim", -1), bool_or(c->p, "descending", false));
}
static et_tensor *op_topk(call *c) {
    et_tensor *idx = NULL;
    et_tensor *r = et_topk(c->in[0], (int64_t)num_or(c->p, "k", 1), (int)num_or(c->p, "dim", -1),
                           bool_or(c->p, "largest", true), bool_or(c->p, "sorted", true), &idx);
    return with_indices(c, r, idx);
}

/* ---- shape_more.c ---- */
/* Pieces: the node's own name is piece 0, then "<out>.1", ... and "<out>.n" (count, int64). */
static et_tensor *pieces_out(call *c, et_tensor **pieces, int n) {
    if (n < 0)
        return NULL;
    if (n == 0) {
        et_set_error(ET_ERR_ARG, "runner: no pieces");
        return NULL;
    }
    for (int i = 1; i < n; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, ".%d", i);
        if (env_put_derived(c->e, c->out, suffix, pieces[i]) != 0)
            return NULL;
    }
    int64_t count = n;
    if (env_put_derived(c->e, c->out, ".n", et_tensor_new_int64(&count, NULL, 0)) != 0)
        return NULL;
    return pieces[0];
}
#define MAX_PIECES 64
static et_tensor *op_split(call *c) {
    et_tensor *p[MAX_PIECES];
    int64_t sizes[MAX_PIECES];
    int ns = ints_of(c->p, "sizes", sizes, MAX_PIECES);
    int dim = (int)num_or(c->p, "dim", 0);
    int n = ns >= 0 ? et_split_sizes(c->in[0], sizes, ns, dim, p, MAX_PIECES)
                    : et_split(c->in[0], (int64_t)num_or(c->p, "split_size", 1), dim, p, MAX_PIECES);
    return pieces_out(c, p, n);
}
static et_tensor *op_chunk(call *c) {
    et_tensor *p[MAX_PIECES];
    int n = et_chunk(c->in[0], (int)num_or(c->p, "chunks", 1), (int)num_or(c->p, "dim", 0), p,
                     MAX_PIECES);
    return pieces_out(c, p, n);
}
static et_tensor *op_unbind(call *c) {
    et_tensor *p[MAX_PIECES];
    int n = et_unbind(c->in[0], (int)num_or(c->p, "dim", 0), p, MAX_PIECES);
    return pieces_out(c, p, n);
}
static et_tensor *op_diagonal(call *c) {
    return et_diagonal(c->in[0], (int64_t)num_or(c->p, "offset", 0), (int)num_or(c->p, "dim1", 0),
                       (int)num_or(c->p, "dim2", 1));
}
static et_tensor *op_expand_as(call *c) { return et_expand_as(c->in[0], c->in[1]); }
static et_tensor *op_repeat(call *c) {
    int64_t r[ET_MAX_DIMS + 1];
    int n = ints_of(c->p, "repeats", r, ET_MAX_DIMS + 1);
    return et_repeat(c->in[0], r, n < 0 ? 0 : n);
}
static et_tensor *op_flip(call *c) {
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    return et_flip(c->in[0], dims, n);
}
static et_tensor *op_roll(call *c) {
    int64_t s[ET_MAX_DIMS + 1];
    int ns = ints_of(c->p, "shifts", s, ET_MAX_DIMS + 1);
    int dims[ET_MAX_DIMS * 2];
    int n = dims_of(c, dims, ET_MAX_DIMS * 2);
    if (ns != (n ? n : 1)) {   /* torch's message */
        et_set_error(ET_ERR_ARG, "roll: shifts and dimensions must align (%d shifts, %d dims)", ns, n);
        return NULL;
    }
    return et_roll(c->in[0], s, dims, n);
}
static et_tensor *op_tril(call *c) { return et_tril(c->in[0], (int64_t)num_or(c->p, "diagonal", 0)); }
static et_tensor *op_triu(call *c) { return et_triu(c->in[0], (int64_t)num_or(c->p, "diagonal", 0)); }

/* ---- index.c, einsum.c ---- */
static et_tensor *op_scatter(call *c) {
    return et_scatter(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1], c->in[2]);
}
static et_tensor *op_scatter_value(call *c) {
    return et_scatter_value(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1],
                            (float)num_or(c->p, "value", 0));
}
static et_tensor *op_scatter_add(call *c) {
    return et_scatter_add(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1], c->in[2]);
}
static et_tensor *op_index_add(call *c) {
    return et_index_add(c->in[0], (int)num_or(c->p, "dim", 0), c->in[1], c->in[2],
                        (float)num_or(c->p, "alpha", 1));
}
static et_tensor *op_einsum(call *c) {
    const cJSON *eq = cJSON_GetObjectItemCaseSensitive(c->p, "eq");
    return et_einsum(cJSON_IsString(eq) ? eq->valuestring : NULL, c->in, c->nin);
}

const op_entry core_runner_ops_more[] = {
    {"scatter", 3, op_scatter, false}, {"scatter_value", 2, op_scatter_value, false},
    {"scatter_add", 3, op_scatter_add, false}, {"index_add", 3, op_index_add, false},
    {"einsum", -1, op_einsum, false},
    {"sort", 1, op_sort, false}, {"argsort", 1, op_argsort, false}, {"topk", 1, op_topk, false},
    {"split", 1, op_split, false}, {"chunk", 1, op_chunk, false}, {"unbind", 1, op_unbind, false},
    {"diagonal", 1, op_diagonal, false}, {"expand_as", 2, op_expand_as, false},
    {"repeat", 1, op_repeat, false}, {"flip", 1, op_flip, false}, {"roll", 1, op_roll, false},
    {"tril", 1, op_tril, false}, {"triu", 1, op_triu, false},
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
