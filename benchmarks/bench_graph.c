/*
 * bench_graph.c - et_bench's two-tower workload (issue 14's target: a
 * two-tower recommender training step, two Embedding(10000, 32) + MLPs,
 * batch 256, >= 5x PyTorch; benchmarks/torch_bench.py has the same model):
 *
 *   train_two_tower   a GraphModule (nn_graph.h) of user_emb, item_emb
 *       (Embedding(10000, 32)), user_mlp, item_mlp (Linear 32-64, ReLU,
 *       Linear 64-32), score = sum(u * i, dim 1); BCEWithLogits against 0/1
 *       labels; Adam lr 1e-3; one fixed batch of 256 (user, item, label).
 */
#include <stdlib.h>

#include <easytorch/nn_graph.h>

#include "bench_graph.h"
#include "bench_train.h"

typedef struct two_tower {
    et_module *net;
    et_optim *opt;
    et_tensor *user, *item, *label;
    et_generator *g;
} two_tower;

void two_tower_free(void *p)
{
    two_tower *s = p;
    if (!s)
        return;
    et_optim_free(s->opt);
    et_module_free(s->net);
    et_tensor_free(s->user);
    et_tensor_free(s->item);
    et_tensor_free(s->label);
    et_generator_free(s->g);
    free(s);
}

static et_module *tower(et_generator *g)
{
    et_module *m = et_sequential_new();
    et_sequential_append(m, et_linear_new(32, 64, true, g));
    et_sequential_append(m, et_relu_new());
    et_sequential_append(m, et_linear_new(64, 32, true, g));
    return m;
}

/* integer ids in [0, n) drawn from g, as int64 [256] */
static et_tensor *ids(et_generator *g, int64_t n)
{
    int64_t v[256];
    for (int i = 0; i < 256; i++)
        v[i] = (int64_t)(et_generator_next(g) % (uint64_t)n);
    return et_tensor_new_int64(v, ET_SHAPE(256));
}

void *two_tower_setup(void)
{
    two_tower *s = calloc(1, sizeof *s);
    if (!s || !(s->g = et_generator_new(0)))
        goto fail;
    s->net = et_graph_new();
    const char *u[] = {"user"}, *it[] = {"item"}, *ue[] = {"ue"}, *ie[] = {"ie"},
               *ui[] = {"u", "i"}, *p[] = {"p"};
    et_graph_op_args sum = ET_GRAPH_OP_ARGS_DEFAULTS;
    sum.ints[0] = 1;
    sum.nints = 1;
    if (et_graph_add_input(s->net, "user") != ET_OK || et_graph_add_input(s->net, "item") != ET_OK ||
        et_graph_add_module(s->net, "user_emb", et_embedding_new(10000, 32, ET_EMBEDDING_DEFAULTS,
                                                                  s->g)) != ET_OK ||
        et_graph_add_module(s->net, "item_emb", et_embedding_new(10000, 32, ET_EMBEDDING_DEFAULTS,
                                                                  s->g)) != ET_OK ||
        et_graph_add_module(s->net, "user_mlp", tower(s->g)) != ET_OK ||
        et_graph_add_module(s->net, "item_mlp", tower(s->g)) != ET_OK ||
        et_graph_call_module(s->net, "ue", "user_emb", u, 1) != ET_OK ||
        et_graph_call_module(s->net, "ie", "item_emb", it, 1) != ET_OK ||
        et_graph_call_module(s->net, "u", "user_mlp", ue, 1) != ET_OK ||
        et_graph_call_module(s->net, "i", "item_mlp", ie, 1) != ET_OK ||
        et_graph_call_op(s->net, "p", ET_GOP_MUL, ui, 2, NULL) != ET_OK ||
        et_graph_call_op(s->net, "score", ET_GOP_SUM, p, 1, &sum) != ET_OK ||
        et_graph_add_output(s->net, "score", "score") != ET_OK)
        goto fail;
    int n;
    et_tensor **params = bench_params(s->net, &n);
    if (!params)
        goto fail;
    s->opt = et_adam_new(params, n, ET_ADAM_DEFAULTS);
    free(params);
    s->user = ids(s->g, 10000);
    s->item = ids(s->g, 10000);
    float lab[256];
    for (int i = 0; i < 256; i++)
        lab[i] = (float)(et_generator_next(s->g) & 1);
    s->label = et_tensor_new(lab, ET_SHAPE(256));
    if (!s->opt || !s->user || !s->item || !s->label)
        goto fail;
    return s;
fail:
    two_tower_free(s);
    return NULL;
}

et_status two_tower_run(void *state, long iters, double *value)
{
    two_tower *s = state;
    et_tensor *in[2] = {s->user, s->item};
    for (long k = 0; k < iters; k++) {
        et_pool_begin();
        et_optim_zero_grad(s->opt);
        et_tensor *score = NULL;
        et_status st = et_graph_forward(s->net, in, 2, &score, 1);
        et_tensor *loss = st == ET_OK ? et_bce_with_logits(score, s->label, ET_REDUCTION_MEAN)
                                      : NULL;
        if (!loss || et_backward(loss, NULL) != ET_OK || et_optim_step(s->opt) != ET_OK) {
            et_pool_end();
            return ET_ERR_ARG;
        }
        *value = et_item(loss);
        et_pool_end();
    }
    return ET_OK;
}
