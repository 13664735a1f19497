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
#include "bench_train.h"

static et_tensor *mse(et_tensor *out, et_tensor *y) { return et_mse_loss(out, y, ET_REDUCTION_MEAN); }

void *encoder_setup(void)
{
    bench_train *s = bench_train_new(mse);
    if (!s)
        return NULL;
    et_encoder_layer_opts o = ET_ENCODER_LAYER_DEFAULTS;
    o.dim_feedforward = 256;
    o.batch_first = true;
    s->net = et_transformer_encoder_new(et_transformer_encoder_layer_new(64, 4, o, s->g), 2, NULL);
    if (!s->net)
        goto fail;
    int n;
    et_tensor **params = bench_params(s->net, &n);
    if (!params)
        goto fail;
    s->opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    free(params);
    s->x = et_randn(s->g, ET_SHAPE(16, 32, 64));
    s->y = et_randn(s->g, ET_SHAPE(16, 32, 64));
    if (!s->opt || !s->x || !s->y)
        goto fail;
    return s;
fail:
    bench_train_free(s);
    return NULL;
}
