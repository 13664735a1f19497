/*
 * bench_attention.c - et_bench's Transformer workload (issue 14's target:
 * a training step of a 2-layer encoder, d_model 64, 4 heads, seq 32, batch
 * 16, >= 3x PyTorch; benchmarks/torch_bench.py has the same model):
 *
 *   train_transformer_enc2   TransformerEncoder(TransformerEncoderLayer(64, 4,
 *       dim_feedforward 256, dropout 0.1, batch_first), 2 layers) on x [16, 32,
 *       64], MSE against a fixed target, Adam lr 1e-3.
 */
#include <stdlib.h>

#include "bench_attention.h"

typedef struct {
    et_module *net;
    et_optim *opt;
    et_tensor *x, *y;
    et_generator *g;
} encoder_state;

void encoder_teardown(void *p)
{
    encoder_state *s = p;
    if (!s)
        return;
    et_optim_free(s->opt);
    et_module_free(s->net);
    et_tensor_free(s->x);
    et_tensor_free(s->y);
    et_generator_free(s->g);
    free(s);
}

void *encoder_setup(void)
{
    encoder_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->g = et_generator_new(0);
    et_encoder_layer_opts o = ET_ENCODER_LAYER_DEFAULTS;
    o.dim_feedforward = 256;
    o.batch_first = true;
    s->net = et_transformer_encoder_new(et_transformer_encoder_layer_new(64, 4, o, s->g), 2, NULL);
    if (!s->g || !s->net)
        goto fail;
    int n = et_module_num_params(s->net);
    et_tensor **params = malloc((size_t)n * sizeof *params);
    if (!params)
        goto fail;
    for (int i = 0; i < n; i++)
        params[i] = et_module_param(s->net, i);
    s->opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    free(params);
    s->x = et_randn(s->g, ET_SHAPE(16, 32, 64));
    s->y = et_randn(s->g, ET_SHAPE(16, 32, 64));
    if (!s->opt || !s->x || !s->y)
        goto fail;
    return s;
fail:
    encoder_teardown(s);
    return NULL;
}

et_status encoder_run(void *p, long iters, double *value)
{
    encoder_state *s = p;
    for (long i = 0; i < iters; i++) {
        et_pool_begin();
        et_optim_zero_grad(s->opt);
        et_tensor *out = et_module_forward(s->net, s->x);
        et_tensor *loss = out ? et_mse_loss(out, s->y, ET_REDUCTION_MEAN) : NULL;
        et_status st = loss ? et_backward(loss, NULL) : et_errcode();
        if (st == ET_OK)
            st = et_optim_step(s->opt);
        if (st == ET_OK && i == iters - 1)
            *value = et_item(loss);
        et_pool_end();
        if (st != ET_OK)
            return st;
    }
    return ET_OK;
}
