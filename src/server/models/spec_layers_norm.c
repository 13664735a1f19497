/* spec_layers_norm.c - the normalisation and embedding layer types of a
 * model spec (torch.nn names, arguments and defaults; rows in spec_layers.c). */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "server/models/spec_layers.h"

/* ---- BatchNorm1d, BatchNorm2d ---- */

const char *const etd_batch_norm1d_fields[] = {"num_features", "eps", "momentum", "affine",
                                               "track_running_stats", NULL};
const char *const etd_batch_norm2d_fields[] = {"num_features", "eps", "momentum", "affine",
                                               "track_running_stats", NULL};

static bool batch_norm_parse(etd_layer *l, const etd_obj *o, etd_flow *f, bool one_d)
{
    et_batch_norm_opts *b = &l->u.batch_norm.o;
    *b = ET_BATCH_NORM_DEFAULTS;
    int64_t c;
    bool none;
    if (!etd_field_int(o, "num_features", true, 0, 1, INT32_MAX, &c) ||
        !etd_field_num(o, "eps", false, 1e-5, 0.0, FLT_MAX, &b->eps) ||
        !etd_field_num_or_null(o, "momentum", 0.0, 1.0, &b->momentum, &none) ||
        !etd_field_bool(o, "affine", true, &b->affine) ||
        !etd_field_bool(o, "track_running_stats", true, &b->track_running_stats))
        return false;
    /* absent momentum is torch's 0.1; an explicit null is None (cumulative average) */
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o->o, "momentum");
    if (none)
        b->momentum = m ? NAN : 0.1;
    /* BatchNorm1d right after a layer of known width sees [N, features] */
    if (one_d && f->features >= 0 && !etd_flow_need(f, o, "num_features", c))
        return false;
    l->u.batch_norm.num_features = c;
    return etd_flow_params(f, o, b->affine ? 2 * c : 0);
}

bool etd_batch_norm1d_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return batch_norm_parse(l, o, f, true);
}

bool etd_batch_norm2d_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return batch_norm_parse(l, o, f, false);
}

et_module *etd_batch_norm1d_build(const etd_layer *l, et_generator *g)
{
    return et_batch_norm1d_new(l->u.batch_norm.num_features, l->u.batch_norm.o);
}

et_module *etd_batch_norm2d_build(const etd_layer *l, et_generator *g)
{
    return et_batch_norm2d_new(l->u.batch_norm.num_features, l->u.batch_norm.o);
}

/* ---- LayerNorm ---- */

const char *const etd_layer_norm_fields[] = {"normalized_shape", "eps", "elementwise_affine", NULL};

bool etd_layer_norm_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o->o, "normalized_shape");
    int n = cJSON_IsArray(ns) ? cJSON_GetArraySize(ns) : 1;
    if (n < 1 || n > ET_MAX_DIMS)
        return etd_field_fail(o, "normalized_shape", "expected a positive integer or a list of 1 "
                              "to %d of them", ET_MAX_DIMS);
    if (!etd_field_int_tuple(o, "normalized_shape", true, n, 0, 1, INT32_MAX,
                             l->u.layer_norm.shape) ||
        !etd_field_num(o, "eps", false, 1e-5, 0.0, FLT_MAX, &l->u.layer_norm.eps) ||
        !etd_field_bool(o, "elementwise_affine", true, &l->u.layer_norm.affine))
        return false;
    l->u.layer_norm.nd = n;
    int64_t numel = 1;
    for (int i = 0; i < n; i++) {
        if (l->u.layer_norm.shape[i] > f->max_params / numel)
            return etd_flow_params(f, o, -1);
        numel *= l->u.layer_norm.shape[i];
    }
    /* the input must end in normalized_shape: its last entry is the width */
    if (!etd_flow_need(f, o, "normalized_shape", l->u.layer_norm.shape[n - 1]))
        return false;
    if (l->u.layer_norm.affine && numel > f->max_params / 2)
        return etd_flow_params(f, o, -1);
    return etd_flow_params(f, o, l->u.layer_norm.affine ? 2 * numel : 0);
}

et_module *etd_layer_norm_build(const etd_layer *l, et_generator *g)
{
    return et_layer_norm_new(l->u.layer_norm.shape, l->u.layer_norm.nd, l->u.layer_norm.eps,
                             l->u.layer_norm.affine);
}

/* ---- GroupNorm ---- */

const char *const etd_group_norm_fields[] = {"num_groups", "num_channels", "eps", "affine", NULL};

bool etd_group_norm_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    int64_t g, c;
    if (!etd_field_int(o, "num_groups", true, 0, 1, INT32_MAX, &g) ||
        !etd_field_int(o, "num_channels", true, 0, 1, INT32_MAX, &c) ||
        !etd_field_num(o, "eps", false, 1e-5, 0.0, FLT_MAX, &l->u.group_norm.eps) ||
        !etd_field_bool(o, "affine", true, &l->u.group_norm.affine))
        return false;
    if (c % g != 0)
        return etd_field_fail(o, "num_channels", "%lld is not divisible by num_groups %lld",
                              (long long)c, (long long)g);
    if (f->features >= 0 && !etd_flow_need(f, o, "num_channels", c))
        return false;
    l->u.group_norm.groups = g;
    l->u.group_norm.channels = c;
    return etd_flow_params(f, o, l->u.group_norm.affine ? 2 * c : 0);
}

et_module *etd_group_norm_build(const etd_layer *l, et_generator *g)
{
    return et_group_norm_new(l->u.group_norm.groups, l->u.group_norm.channels,
                             l->u.group_norm.eps, l->u.group_norm.affine);
}

/* ---- Embedding, EmbeddingBag ---- */

const char *const etd_embedding_fields[] = {"num_embeddings", "embedding_dim", "padding_idx",
                                            "max_norm", "norm_type", "scale_grad_by_freq",
                                            "sparse", NULL};
const char *const etd_embedding_bag_fields[] = {"num_embeddings", "embedding_dim", "max_norm",
                                                "norm_type", "scale_grad_by_freq", "mode",
                                                "sparse", "include_last_offset", "padding_idx",
                                                NULL};

static bool embedding_parse(etd_layer *l, const etd_obj *o, etd_flow *f, bool bag)
{
    et_embedding_bag_opts *b = &l->u.embedding.o;
    *b = ET_EMBEDDING_BAG_DEFAULTS;
    int64_t v, d, pad;
    bool no_pad, no_max, sparse;
    if (!etd_field_int(o, "num_embeddings", true, 0, 1, INT64_MAX, &v) ||
        !etd_field_int(o, "embedding_dim", true, 0, 1, INT32_MAX, &d) ||
        !etd_field_int_or_null(o, "padding_idx", -v, v - 1, &pad, &no_pad) ||
        !etd_field_num_or_null(o, "max_norm", 0.0, FLT_MAX, &b->max_norm, &no_max) ||
        !etd_field_num(o, "norm_type", false, 2.0, 0.0, FLT_MAX, &b->norm_type) ||
        !etd_field_bool(o, "scale_grad_by_freq", false, &b->scale_grad_by_freq) ||
        !etd_field_bool(o, "sparse", false, &sparse))
        return false;
    if (sparse)
        return etd_field_fail(o, "sparse", "sparse gradients are not supported (use false)");
    if (!no_max && !(b->max_norm > 0))
        return etd_field_fail(o, "max_norm", "expected a positive number or null");
    if (!(b->norm_type > 0))
        return etd_field_fail(o, "norm_type", "expected a positive number");
    if (no_max)
        b->max_norm = 0.0;   /* et_embedding_opts: 0 = None */
    b->padding_idx = no_pad ? ET_NO_INDEX : pad;
    if (bag) {
        static const char *const modes[] = {"sum", "mean", "max", NULL};
        int mode;
        if (!etd_field_choice(o, "mode", modes, 1, &mode) ||
            !etd_field_bool(o, "include_last_offset", false, &b->include_last_offset))
            return false;
        b->mode = (et_bag_mode)mode;
        if (b->mode == ET_BAG_MAX && b->scale_grad_by_freq)
            return etd_field_fail(o, "scale_grad_by_freq",
                                  "max mode does not support scaling the gradient by frequency");
    }
    if (v > f->max_params / d)
        return etd_flow_params(f, o, -1);
    if (!etd_flow_params(f, o, v * d))
        return false;
    l->u.embedding.num = v;
    l->u.embedding.dim = d;
    /* the input is indices of any shape: no width to check; out: [..., dim] */
    etd_flow_give(f, d, bag ? "the embedding_dim of the previous EmbeddingBag"
                            : "the embedding_dim of the previous Embedding");
    return true;
}

bool etd_embedding_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return embedding_parse(l, o, f, false);
}

bool etd_embedding_bag_parse(etd_layer *l, const etd_obj *o, etd_flow *f)
{
    return embedding_parse(l, o, f, true);
}

et_module *etd_embedding_build(const etd_layer *l, et_generator *g)
{
    const et_embedding_bag_opts *b = &l->u.embedding.o;
    et_embedding_opts o = {.padding_idx = b->padding_idx, .max_norm = b->max_norm,
                           .norm_type = b->norm_type, .scale_grad_by_freq = b->scale_grad_by_freq};
    return et_embedding_new(l->u.embedding.num, l->u.embedding.dim, o, g);
}

et_module *etd_embedding_bag_build(const etd_layer *l, et_generator *g)
{
    return et_embedding_bag_new(l->u.embedding.num, l->u.embedding.dim, l->u.embedding.o, g);
}
