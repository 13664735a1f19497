/*
 * transformer.c - torch.nn.TransformerEncoderLayer and TransformerEncoder
 * (torch 1.13's regular path: post-norm or pre-norm (norm_first) blocks of
 * self-attention and a feed-forward network, each with dropout and a
 * residual connection; the encoder stacks copies of one layer and may end
 * with a norm).
 */
#include "nn/module_internal.h"
#include "core/core_internal.h"   /* etc_linear_act, etc_pooled */
#include "easytorch/nn_attention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t d_model, nhead;
    et_encoder_layer_opts o;
    et_generator *g;     /* borrowed */
} enc_layer_cfg;

/* children, in torch's registration order */
enum { C_SELF_ATTN, C_LINEAR1, C_DROPOUT, C_LINEAR2, C_NORM1, C_NORM2, C_DROPOUT1, C_DROPOUT2 };

static const char *const child_names[] = {"self_attn", "linear1", "dropout", "linear2",
                                          "norm1", "norm2", "dropout1", "dropout2"};

et_status et_transformer_activation_parse(const char *name, et_transformer_activation *out)
{
    if (name && strcmp(name, "relu") == 0)
        *out = ET_ACT_RELU;
    else if (name && strcmp(name, "gelu") == 0)
        *out = ET_ACT_GELU;
    else
        return et_set_error(ET_ERR_ARG, "activation should be relu/gelu, not %s",
                            name ? name : "NULL");
    return ET_OK;
}

static et_tensor *run(et_module *m, int child, et_tensor *x)
{
    et_module *c = m->children[child];
    return x ? c->forward(c, x) : NULL;
}

/* self-attention block: dropout1(self_attn(x, x, x)) */
static et_tensor *sa_block(et_module *m, et_tensor *x, et_tensor *mask, et_tensor *kpm)
{
    et_tensor *a = et_multihead_attention_forward(m->children[C_SELF_ATTN], x, x, x, kpm, false,
                                                  mask, true, NULL);
    return run(m, C_DROPOUT1, a);
}

/* feed-forward block: dropout2(linear2(dropout(activation(linear1(x))))) */
static et_tensor *ff_block(et_module *m, et_tensor *x)
{
    const enc_layer_cfg *c = m->impl;
    et_module *l1 = m->children[C_LINEAR1];
    et_tensor *h;
    if (c->o.activation == ET_ACT_RELU && x && et_ndim(x) >= 1 &&
        et_size(x, -1) == et_size(l1->params.t[0], 1)) {
        /* linear1 + ReLU as one op (core's etc_linear_act, as Sequential
         * fuses them): the same values and gradients, a pass and a node fewer */
        h = etc_pooled(etc_linear_act(x, l1->params.t[0], l1->params.t[1], ETC_ACT_RELU));
    } else {
        h = run(m, C_LINEAR1, x);
        if (h)
            h = c->o.activation == ET_ACT_GELU ? et_gelu(h, false) : et_relu(h);
    }
    return run(m, C_DROPOUT2, run(m, C_LINEAR2, run(m, C_DROPOUT, h)));
}

static et_tensor *enc_layer_impl(et_module *m, et_tensor *src, et_tensor *mask, et_tensor *kpm)
{
    const enc_layer_cfg *c = m->impl;
    et_tensor *x = src;
    if (c->o.norm_first) {
        et_tensor *a = sa_block(m, run(m, C_NORM1, x), mask, kpm);
        x = a ? et_add(x, a) : NULL;
        et_tensor *f = x ? ff_block(m, run(m, C_NORM2, x)) : NULL;
        return f ? et_add(x, f) : NULL;
    }
    et_tensor *a = sa_block(m, x, mask, kpm);
    x = a ? run(m, C_NORM1, et_add(x, a)) : NULL;
    et_tensor *f = x ? ff_block(m, x) : NULL;
    return f ? run(m, C_NORM2, et_add(x, f)) : NULL;
}

#define LAYER_PREFIX(c) \
    "TransformerEncoderLayer(%lld, %lld): ", (long long)(c)->d_model, (long long)(c)->nhead

static et_tensor *enc_layer_forward(et_module *m, et_tensor *x)
{
    et_tensor *y = enc_layer_impl(m, x, NULL, NULL);
    if (!y)
        nn_error_prefix(LAYER_PREFIX((const enc_layer_cfg *)m->impl));
    return y;
}

static bool is_layer(const et_module *m)
{
    return m && strcmp(m->type, "TransformerEncoderLayer") == 0;
}

et_tensor *et_transformer_encoder_layer_forward(et_module *m, et_tensor *src,
                                                et_tensor *src_mask,
                                                et_tensor *src_key_padding_mask)
{
    if (!is_layer(m) || !src) {
        et_set_error_after(ET_ERR_ARG, "transformer_encoder_layer_forward: %s",
                           !m ? "NULL module" : !is_layer(m) ? "not a TransformerEncoderLayer"
                                                             : "NULL src");
        return NULL;
    }
    nn_scope_begin();
    et_tensor *y = enc_layer_impl(m, src, src_mask, src_key_padding_mask);
    if (!y)
        nn_error_prefix(LAYER_PREFIX((const enc_layer_cfg *)m->impl));
    return nn_scope_end(y);
}

et_module *et_transformer_encoder_layer_new(int64_t d_model, int64_t nhead,
                                            et_encoder_layer_opts o, et_generator *g)
{
    if (o.activation != ET_ACT_RELU && o.activation != ET_ACT_GELU) {
        et_set_error(ET_ERR_ARG, "TransformerEncoderLayer(%lld, %lld): activation should be "
                     "relu/gelu", (long long)d_model, (long long)nhead);
        return NULL;
    }
    if (d_model <= 0 || nhead <= 0 || o.dim_feedforward <= 0 || !(o.layer_norm_eps > 0)) {
        et_set_error(ET_ERR_ARG, "TransformerEncoderLayer(%lld, %lld): d_model, nhead and "
                     "dim_feedforward (%lld) must be positive, and layer_norm_eps (%g) too", (long long)d_model, (long long)nhead,
                     (long long)o.dim_feedforward, o.layer_norm_eps);
        return NULL;
    }
    if (!g)
        g = et_default_generator();
    enc_layer_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc("TransformerEncoderLayer", enc_layer_forward) : NULL;
    if (!m) {
        free(c);
        et_set_error(ET_ERR_NOMEM, "TransformerEncoderLayer: out of memory");
        return NULL;
    }
    *c = (enc_layer_cfg){.d_model = d_model, .nhead = nhead, .o = o, .g = g};
    nn_module_set_impl(m, c, NULL);
    et_mha_opts mo = ET_MHA_DEFAULTS;
    mo.dropout = o.dropout;
    mo.batch_first = o.batch_first;
    int64_t ns[1] = {d_model};
    et_status st = ET_OK;
    for (int i = 0; i <= C_DROPOUT2 && st == ET_OK; i++) {
        et_module *ch = NULL;
        switch (i) {
        case C_SELF_ATTN: ch = et_multihead_attention_new(d_model, nhead, mo, g); break;
        case C_LINEAR1: ch = et_linear_new(d_model, o.dim_feedforward, true, g); break;
        case C_LINEAR2: ch = et_linear_new(o.dim_feedforward, d_model, true, g); break;
        case C_NORM1:
        case C_NORM2: ch = et_layer_norm_new(ns, 1, o.layer_norm_eps, true); break;
        default: ch = et_dropout_new(o.dropout, g); break;
        }
        st = nn_module_add_child(m, child_names[i], ch);
    }
    if (st != ET_OK) {
        nn_error_prefix(LAYER_PREFIX(c));
        et_module_free(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------ the encoder */

typedef struct {
    int num_layers;
    bool has_norm;
} enc_cfg;

static et_tensor *encoder_impl(et_module *m, et_tensor *src, et_tensor *mask, et_tensor *kpm)
{
    const enc_cfg *c = m->impl;
    et_module *layers = m->children[0];
    et_tensor *x = src;
    for (int i = 0; i < layers->nchildren && x; i++) {
        x = enc_layer_impl(layers->children[i], x, mask, kpm);
        if (!x) {
            nn_error_prefix(LAYER_PREFIX((const enc_layer_cfg *)layers->children[i]->impl));
            nn_error_prefix("layers.%d: ", i);
        }
    }
    if (x && c->has_norm)
        x = run(m, 1, x);
    return x;
}

static et_tensor *encoder_forward(et_module *m, et_tensor *x)
{
    et_tensor *y = encoder_impl(m, x, NULL, NULL);
    if (!y)
        nn_error_prefix("TransformerEncoder: ");
    return y;
}

et_tensor *et_transformer_encoder_forward(et_module *m, et_tensor *src, et_tensor *mask,
                                          et_tensor *src_key_padding_mask)
{
    if (!m || strcmp(m->type, "TransformerEncoder") != 0 || !src) {
        et_set_error_after(ET_ERR_ARG, "transformer_encoder_forward: %s",
                           !m ? "NULL module" : src ? "not a TransformerEncoder" : "NULL src");
        return NULL;
    }
    nn_scope_begin();
    et_tensor *y = encoder_impl(m, src, mask, src_key_padding_mask);
    if (!y)
        nn_error_prefix("TransformerEncoder: ");
    return nn_scope_end(y);
}

/* A new layer with layer's configuration and a copy of its state. */
static et_module *clone_layer(const et_module *layer)
{
    const enc_layer_cfg *c = layer->impl;
    et_module *n = et_transformer_encoder_layer_new(c->d_model, c->nhead, c->o, c->g);
    if (!n)
        return NULL;
    bool prev = et_set_grad_enabled(false);
    et_status st = ET_OK;
    for (int i = 0; i < layer->state.n && st == ET_OK; i++)
        st = et_copy_(n->state.t[i], layer->state.t[i]);
    et_set_grad_enabled(prev);
    if (st != ET_OK) {
        et_module_free(n);
        return NULL;
    }
    n->training = layer->training;
    for (int i = 0; i < n->nchildren; i++)
        et_module_train(n->children[i], layer->children[i]->training);
    return n;
}

et_module *et_transformer_encoder_new(et_module *encoder_layer, int num_layers, et_module *norm)
{
    if (!is_layer(encoder_layer) || num_layers <= 0 || encoder_layer->parent ||
        (norm && norm->parent)) {
        et_set_error_after(ET_ERR_ARG, "TransformerEncoder: %s",
                           !encoder_layer ? "NULL encoder_layer"
                           : !is_layer(encoder_layer) ? "encoder_layer is not a "
                                                        "TransformerEncoderLayer"
                           : num_layers <= 0 ? "num_layers must be positive"
                                             : "encoder_layer or norm already has a parent");
        if (encoder_layer && !encoder_layer->parent)
            et_module_free(encoder_layer);
        if (norm && !norm->parent)
            et_module_free(norm);
        return NULL;
    }
    enc_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc("TransformerEncoder", encoder_forward) : NULL;
    et_module *layers = m ? et_sequential_new() : NULL;
    if (!layers) {
        free(c);
        et_module_free(m);
        et_module_free(encoder_layer);
        et_module_free(norm);
        et_set_error(ET_ERR_NOMEM, "TransformerEncoder: out of memory");
        return NULL;
    }
    *c = (enc_cfg){.num_layers = num_layers, .has_norm = norm != NULL};
    nn_module_set_impl(m, c, NULL);
    layers->type = "ModuleList";
    et_status st = ET_OK;
    /* copies first: the original becomes the last layer once they are made */
    et_module **copies = calloc((size_t)num_layers, sizeof *copies);
    if (!copies)
        st = et_set_error(ET_ERR_NOMEM, "TransformerEncoder: out of memory");
    for (int i = 1; i < num_layers && st == ET_OK; i++) {
        copies[i - 1] = clone_layer(encoder_layer);
        if (!copies[i - 1])
            st = et_errcode();
    }
    if (copies && st == ET_OK)
        copies[num_layers - 1] = encoder_layer;
    else
        et_module_free(encoder_layer);
    for (int i = 0; i < num_layers && copies; i++) {
        if (st == ET_OK)
            st = et_sequential_append(layers, copies[i]);
        else
            et_module_free(copies[i]);
    }
    free(copies);
    if (st == ET_OK)
        st = nn_module_add_child(m, "layers", layers);
    else
        et_module_free(layers);
    if (st == ET_OK && norm)
        st = nn_module_add_child(m, "norm", norm);
    else if (norm && st != ET_OK)
        et_module_free(norm);
    if (st != ET_OK) {
        nn_error_prefix("TransformerEncoder: ");
        et_module_free(m);
        return NULL;
    }
    return m;
}
