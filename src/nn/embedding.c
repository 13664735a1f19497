/*
 * embedding.c - Embedding and EmbeddingBag layers, as torch.nn: weight
 * [num_embeddings, embedding_dim] drawn from N(0, 1) with the padding_idx
 * row zeroed (reset_parameters), on the core ops of functional.h.
 */
#include "nn/module_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t V, D;
    et_embedding_bag_opts o;   /* Embedding uses padding_idx, max_norm, norm_type, freq */
} emb_cfg;

/* Re-prefixes the core op's message with the layer ("Embedding(27, 10): ..."). */
static et_tensor *named_error(const et_module *m, const emb_cfg *c, et_tensor *y)
{
    if (!y) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", et_errmsg());
        et_set_error(et_errcode(), "%s(%lld, %lld): %s", m->type, (long long)c->V, (long long)c->D,
                     msg);
    }
    return y;
}

static et_tensor *embedding_forward(et_module *m, et_tensor *x)
{
    const emb_cfg *c = m->impl;
    et_embedding_opts o = {.padding_idx = c->o.padding_idx, .max_norm = c->o.max_norm,
                           .norm_type = c->o.norm_type,
                           .scale_grad_by_freq = c->o.scale_grad_by_freq};
    return named_error(m, c, et_embedding(x, nn_param(m, "weight"), o));
}

static et_tensor *bag_call(et_module *m, et_tensor *x, et_tensor *offsets, et_tensor *psw)
{
    const emb_cfg *c = m->impl;
    et_embedding_bag_opts o = c->o;
    o.offsets = offsets;
    o.per_sample_weights = psw;
    return named_error(m, c, et_embedding_bag(x, nn_param(m, "weight"), o));
}

static et_tensor *bag_forward(et_module *m, et_tensor *x) { return bag_call(m, x, NULL, NULL); }

/* Shared constructor: checks, N(0, 1) weight, zeroed padding row. */
static et_module *emb_new(const char *type, nn_forward_fn fwd, int64_t V, int64_t D,
                          et_embedding_bag_opts o, et_generator *g)
{
    if (V <= 0 || D <= 0) {
        et_set_error(ET_ERR_ARG, "%s: num_embeddings (%lld) and embedding_dim (%lld) must be "
                     "positive", type, (long long)V, (long long)D);
        return NULL;
    }
    if (o.padding_idx != ET_NO_INDEX) {
        if (o.padding_idx < -V || o.padding_idx >= V) {
            et_set_error(ET_ERR_ARG, "%s: padding_idx %lld must be within num_embeddings %lld",
                         type, (long long)o.padding_idx, (long long)V);
            return NULL;
        }
        if (o.padding_idx < 0)
            o.padding_idx += V;
    }
    if (!(o.max_norm >= 0) || isinf(o.max_norm) || (o.max_norm > 0 && !(o.norm_type > 0))) {
        et_set_error(ET_ERR_ARG, "%s: max_norm (%g) must be >= 0 (0 = None) and finite, "
                     "norm_type (%g) positive", type, o.max_norm, o.norm_type);
        return NULL;
    }
    if ((unsigned)o.mode > ET_BAG_MAX || (o.mode == ET_BAG_MAX && o.scale_grad_by_freq)) {
        et_set_error(ET_ERR_ARG, "%s: %s", type, (unsigned)o.mode > ET_BAG_MAX
                     ? "invalid mode" : "max mode does not support scale_grad_by_freq");
        return NULL;
    }
    o.offsets = NULL;
    o.per_sample_weights = NULL;
    et_module *m = nn_module_alloc(type, fwd);
    emb_cfg *c = m ? malloc(sizeof *c) : NULL;
    if (!c) {
        et_module_free(m);
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    *c = (emb_cfg){.V = V, .D = D, .o = o};
    nn_module_set_impl(m, c, NULL);
    if (!g)
        g = et_default_generator();
    et_pool_begin();
    et_tensor *w = et_randn(g, ET_SHAPE(V, D));
    if (w && o.padding_idx != ET_NO_INDEX)
        memset(et_data(w) + o.padding_idx * D, 0, (size_t)D * sizeof(float));
    et_tensor_ref(w);
    et_pool_end();
    if (nn_module_add_param(m, "weight", w) != ET_OK) {
        et_module_free(m);
        return NULL;
    }
    return m;
}

et_module *et_embedding_new(int64_t num_embeddings, int64_t embedding_dim, et_embedding_opts o,
                            et_generator *g)
{
    et_embedding_bag_opts bo = ET_EMBEDDING_BAG_DEFAULTS;
    bo.mode = ET_BAG_SUM;
    bo.padding_idx = o.padding_idx;
    bo.max_norm = o.max_norm;
    bo.norm_type = o.norm_type;
    bo.scale_grad_by_freq = o.scale_grad_by_freq;
    return emb_new("Embedding", embedding_forward, num_embeddings, embedding_dim, bo, g);
}

et_module *et_embedding_bag_new(int64_t num_embeddings, int64_t embedding_dim,
                                et_embedding_bag_opts o, et_generator *g)
{
    return emb_new("EmbeddingBag", bag_forward, num_embeddings, embedding_dim, o, g);
}

et_tensor *et_embedding_bag_module_forward(et_module *m, et_tensor *input, et_tensor *offsets,
                                           et_tensor *per_sample_weights)
{
    if (!m || m->forward != bag_forward || !input) {
        et_set_error(ET_ERR_ARG, "embedding_bag_module_forward: %s",
                     !m || m->forward != bag_forward ? "not an EmbeddingBag" : "NULL input");
        return NULL;
    }
    nn_scope_begin();
    return nn_scope_end(bag_call(m, input, offsets, per_sample_weights));
}
