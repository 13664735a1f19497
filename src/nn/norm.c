/*
 * norm.c - normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm,
 * GroupNorm, as torch.nn (same defaults, initialisation, state_dict keys
 * and train/eval behaviour), on the core ops of functional.h.
 */
#include "nn/module_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- BatchNorm */

typedef struct {
    int64_t C;
    int dims_lo, dims_hi;       /* accepted input ranks */
    et_batch_norm_opts o;
    const et_reducer *reducer;  /* SyncBatchNorm's participants (borrowed), or NULL */
} bn_cfg;

static et_tensor *batch_norm_forward(et_module *m, et_tensor *x)
{
    const bn_cfg *c = m->impl;
    int nd = et_ndim(x);
    if (nd < c->dims_lo || nd > c->dims_hi) {
        char b[64];
        if (c->dims_lo == c->dims_hi)
            et_set_error(ET_ERR_SHAPE, "%s: expected %dD input (got %dD input of shape %s)",
                         m->type, c->dims_lo, nd, NN_SHAPE_STR(x, b));
        else
            et_set_error(ET_ERR_SHAPE, "%s: expected %dD or %dD input (got %dD input of shape %s)",
                         m->type, c->dims_lo, c->dims_hi, nd, NN_SHAPE_STR(x, b));
        return NULL;
    }
    if (et_size(x, 1) != c->C) {
        char b[64];
        et_set_error(ET_ERR_SHAPE, "%s(%lld): input of shape %s has %lld channels (dim 1), "
                     "expected %lld", m->type, (long long)c->C, NN_SHAPE_STR(x, b),
                     (long long)et_size(x, 1), (long long)c->C);
        return NULL;
    }
    et_tensor *rm = nn_buffer(m, "running_mean"), *rv = nn_buffer(m, "running_var");
    et_tensor *nbt = nn_buffer(m, "num_batches_tracked");
    /* torch's _BatchNorm.forward: momentum None = cumulative average,
     * i.e. factor 1 / num_batches_tracked (counted before this batch) */
    double factor = isnan(c->o.momentum) ? 0.0 : c->o.momentum;
    int64_t tracked = 0;
    bool update = m->training && c->o.track_running_stats;
    if (update && nbt) {
        et_item_int64(nbt, &tracked);
        tracked++;
        if (isnan(c->o.momentum))
            factor = 1.0 / (double)tracked;
    }
    bool batch_stats = m->training || !rm;
    /* torch's SyncBatchNorm syncs in training mode only (eval without
     * running statistics uses this input's) */
    et_tensor *y = et_batch_norm_reduced(x, (!m->training || c->o.track_running_stats) ? rm
                                                                                      : NULL,
                                         (!m->training || c->o.track_running_stats) ? rv : NULL,
                                         nn_param(m, "weight"), nn_param(m, "bias"), batch_stats,
                                         factor, c->o.eps, m->training ? c->reducer : NULL);
    /* torch counts the batch before the call; here a failing call changes nothing */
    if (y && update && nbt && et_copy_from_int64(nbt, &tracked) != ET_OK)
        return NULL;
    if (!y) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", et_errmsg());
        et_set_error(et_errcode(), "%s(%lld): %s", m->type, (long long)c->C, msg);
    }
    return y;
}

static et_module *batch_norm_new(const char *type, int lo, int hi, int64_t C, et_batch_norm_opts o)
{
    if (C <= 0) {
        et_set_error(ET_ERR_ARG, "%s: num_features must be positive, got %lld", type,
                     (long long)C);
        return NULL;
    }
    if (!(o.eps >= 0) || isinf(o.eps) || isinf(o.momentum)) {
        et_set_error(ET_ERR_ARG, "%s: eps (%g) must be >= 0 and finite, momentum (%g) finite or "
                     "NAN (None)", type, o.eps, o.momentum);
        return NULL;
    }
    et_module *m = nn_module_alloc(type, batch_norm_forward);
    bn_cfg *c = m ? malloc(sizeof *c) : NULL;
    if (!c) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    *c = (bn_cfg){.C = C, .dims_lo = lo, .dims_hi = hi, .o = o};
    nn_module_set_impl(m, c, NULL);
    et_status st = ET_OK;
    /* torch's reset_parameters: weight 1, bias 0; running_mean 0, running_var 1 */
    if (o.affine) {
        st = nn_module_add_param(m, "weight", nn_keep_ones(&C, 1));
        if (st == ET_OK)
            st = nn_module_add_param(m, "bias", nn_keep_new(NULL, &C, 1));
    }
    if (st == ET_OK && o.track_running_stats) {
        st = nn_module_add_buffer(m, "running_mean", nn_keep_new(NULL, &C, 1));
        if (st == ET_OK)
            st = nn_module_add_buffer(m, "running_var", nn_keep_ones(&C, 1));
        if (st == ET_OK)
            st = nn_module_add_buffer(m, "num_batches_tracked", nn_keep_new_int64(NULL, NULL, 0));
    }
    if (st != ET_OK) {
        et_module_free(m);
        return NULL;
    }
    return m;
}

et_module *et_batch_norm1d_new(int64_t num_features, et_batch_norm_opts o)
{
    return batch_norm_new("BatchNorm1d", 2, 3, num_features, o);
}

et_module *et_batch_norm2d_new(int64_t num_features, et_batch_norm_opts o)
{
    return batch_norm_new("BatchNorm2d", 4, 4, num_features, o);
}

int et_module_set_batch_norm_reducer(et_module *m, const et_reducer *r, int64_t *max_features)
{
    int64_t most = 0;
    int n = 0;
    if (m && m->forward == batch_norm_forward) {
        bn_cfg *c = m->impl;
        c->reducer = r;
        most = c->C;
        n = 1;
    }
    for (int i = 0; m && i < m->nchildren; i++) {
        int64_t k = 0;
        n += et_module_set_batch_norm_reducer(m->children[i], r, &k);
        most = k > most ? k : most;
    }
    if (max_features)
        *max_features = most;
    return n;
}

/* ------------------------------------------------------------- LayerNorm */

typedef struct {
    int nd;
    int64_t shape[ET_MAX_DIMS];
    double eps;
} ln_cfg;

static et_tensor *layer_norm_forward(et_module *m, et_tensor *x)
{
    const ln_cfg *c = m->impl;
    et_tensor *y = et_layer_norm(x, c->shape, c->nd, nn_param(m, "weight"), nn_param(m, "bias"),
                                 c->eps);
    if (!y) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", et_errmsg());
        et_set_error(et_errcode(), "LayerNorm: %s", msg);
    }
    return y;
}

et_module *et_layer_norm_new(const int64_t *normalized_shape, int ndims, double eps,
                             bool elementwise_affine)
{
    if (ndims < 1 || ndims > ET_MAX_DIMS || !normalized_shape) {
        et_set_error(ET_ERR_ARG, "LayerNorm: normalized_shape must have 1 to %d dims, got %d",
                     ET_MAX_DIMS, ndims);
        return NULL;
    }
    for (int i = 0; i < ndims; i++)
        if (normalized_shape[i] <= 0) {
            et_set_error(ET_ERR_ARG, "LayerNorm: normalized_shape[%d] = %lld must be positive", i,
                         (long long)normalized_shape[i]);
            return NULL;
        }
    if (!(eps >= 0) || isinf(eps)) {
        et_set_error(ET_ERR_ARG, "LayerNorm: eps must be >= 0 and finite, got %g", eps);
        return NULL;
    }
    et_module *m = nn_module_alloc("LayerNorm", layer_norm_forward);
    ln_cfg *c = m ? malloc(sizeof *c) : NULL;
    if (!c) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "LayerNorm: out of memory");
        return NULL;
    }
    c->nd = ndims;
    c->eps = eps;
    memcpy(c->shape, normalized_shape, (size_t)ndims * sizeof *c->shape);
    nn_module_set_impl(m, c, NULL);
    if (elementwise_affine) {
        et_status st = nn_module_add_param(m, "weight", nn_keep_ones(normalized_shape, ndims));
        if (st == ET_OK)
            st = nn_module_add_param(m, "bias", nn_keep_new(NULL, normalized_shape, ndims));
        if (st != ET_OK) {
            et_module_free(m);
            return NULL;
        }
    }
    return m;
}

/* ------------------------------------------------------------- GroupNorm */

typedef struct {
    int64_t groups, C;
    double eps;
} gn_cfg;

static et_tensor *group_norm_forward(et_module *m, et_tensor *x)
{
    const gn_cfg *c = m->impl;
    if (et_ndim(x) < 2 || et_size(x, 1) != c->C) {
        char b[64];
        et_set_error(ET_ERR_SHAPE, "GroupNorm(%lld, %lld): input of shape %s, expected [N, %lld, *]",
                     (long long)c->groups, (long long)c->C, NN_SHAPE_STR(x, b), (long long)c->C);
        return NULL;
    }
    return et_group_norm(x, c->groups, nn_param(m, "weight"), nn_param(m, "bias"), c->eps);
}

et_module *et_group_norm_new(int64_t num_groups, int64_t num_channels, double eps, bool affine)
{
    if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups != 0) {
        et_set_error(ET_ERR_ARG, "GroupNorm: num_channels (%lld) must be divisible by num_groups "
                     "(%lld), both positive", (long long)num_channels, (long long)num_groups);
        return NULL;
    }
    if (!(eps >= 0) || isinf(eps)) {
        et_set_error(ET_ERR_ARG, "GroupNorm: eps must be >= 0 and finite, got %g", eps);
        return NULL;
    }
    et_module *m = nn_module_alloc("GroupNorm", group_norm_forward);
    gn_cfg *c = m ? malloc(sizeof *c) : NULL;
    if (!c) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "GroupNorm: out of memory");
        return NULL;
    }
    *c = (gn_cfg){.groups = num_groups, .C = num_channels, .eps = eps};
    nn_module_set_impl(m, c, NULL);
    if (affine) {
        et_status st = nn_module_add_param(m, "weight", nn_keep_ones(&num_channels, 1));
        if (st == ET_OK)
            st = nn_module_add_param(m, "bias", nn_keep_new(NULL, &num_channels, 1));
        if (st != ET_OK) {
            et_module_free(m);
            return NULL;
        }
    }
    return m;
}
