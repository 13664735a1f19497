/*
 * two_tower.c - a two-tower recommender as a graph module (nn_graph.h):
 * a user tower and an item tower (Embedding -> Linear -> ReLU -> Linear
 * each), their dot product as the click logit, BCEWithLogits, Adam.
 *
 * The data are synthetic and hidden from the model: every user and item
 * has one of 4 tastes, and a user clicks an item of its own taste.  The
 * model sees only (user id, item id, clicked) pairs; the test pairs are
 * pairs it never saw, so a high test accuracy means the towers learned the
 * tastes from the ids.  Prints `train_loss=` and `test_accuracy=` (tested
 * by examples/meson.build: test_accuracy >= 0.95).
 *
 *     two_tower [steps]        (default 600)
 */
#include <stdio.h>
#include <stdlib.h>

#include <easytorch/easytorch.h>

enum { USERS = 1000, ITEMS = 500, DIM = 32, TASTES = 4, BATCH = 256, TEST = 4096 };

static int taste_of_user(int u) { return (u * 7 + 3) % TASTES; }
static int taste_of_item(int i) { return (i * 5 + 1) % TASTES; }

static et_module *tower(int64_t n, et_generator *g)
{
    et_module *t = et_sequential_new();
    et_sequential_append(t, et_embedding_new(n, DIM, ET_EMBEDDING_DEFAULTS, g));
    et_sequential_append(t, et_linear_new(DIM, 64, true, g));
    et_sequential_append(t, et_relu_new());
    et_sequential_append(t, et_linear_new(64, DIM, true, g));
    return t;
}

/* The graph: inputs user, item; score = sum(user_tower(user) * item_tower(item), 1). */
static et_module *build(et_generator *g)
{
    et_module *net = et_graph_new();
    const char *u[] = {"user"}, *i[] = {"item"}, *ui[] = {"u", "i"}, *p[] = {"p"};
    et_graph_op_args sum = ET_GRAPH_OP_ARGS_DEFAULTS;
    sum.ints[0] = 1;
    sum.nints = 1;
    if (et_graph_add_input(net, "user") != ET_OK || et_graph_add_input(net, "item") != ET_OK ||
        et_graph_add_module(net, "user_tower", tower(USERS, g)) != ET_OK ||
        et_graph_add_module(net, "item_tower", tower(ITEMS, g)) != ET_OK ||
        et_graph_call_module(net, "u", "user_tower", u, 1) != ET_OK ||
        et_graph_call_module(net, "i", "item_tower", i, 1) != ET_OK ||
        et_graph_call_op(net, "p", ET_GOP_MUL, ui, 2, NULL) != ET_OK ||
        et_graph_call_op(net, "score", ET_GOP_SUM, p, 1, &sum) != ET_OK ||
        et_graph_add_output(net, "score", "score") != ET_OK) {
        fprintf(stderr, "two_tower: %s\n", et_errmsg());
        et_module_free(net);
        return NULL;
    }
    return net;
}

/* n random pairs: ids and labels (1 when the tastes match; half the pairs do) */
static void pairs(et_generator *g, int n, int64_t *users, int64_t *items, float *labels)
{
    for (int k = 0; k < n; k++) {
        int u = (int)(et_generator_next(g) % USERS);
        bool match = et_generator_next(g) & 1;
        int it;
        do
            it = (int)(et_generator_next(g) % ITEMS);
        while ((taste_of_item(it) == taste_of_user(u)) != match);
        users[k] = u;
        items[k] = it;
        labels[k] = match ? 1.0f : 0.0f;
    }
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 600;
    if (steps <= 0) {
        fprintf(stderr, "usage: two_tower [steps > 0]\n");
        return 2;
    }
    et_generator *g = et_generator_new(0), *data = et_generator_new(1);
    et_module *net = build(g);
    if (!net)
        return 1;
    int n = et_module_num_params(net);
    et_tensor **params = malloc((size_t)n * sizeof *params);
    for (int k = 0; k < n; k++)
        params[k] = et_module_param(net, k);
    et_adam_opts ao = ET_ADAM_DEFAULTS;
    ao.lr = 3e-3;
    et_optim *opt = et_adam_new(params, n, ao);
    free(params);
    /* the test pairs first, so the training stream never repeats them by construction
     * of the seed (a repeat would be chance: 1 in 500 000 pairs) */
    static int64_t tu[TEST], ti[TEST], bu[BATCH], bi[BATCH];
    static float tl[TEST], bl[BATCH];
    pairs(data, TEST, tu, ti, tl);
    et_module_train(net, true);
    double loss = 0;
    for (int s = 0; s < steps; s++) {
        pairs(data, BATCH, bu, bi, bl);
        et_pool_begin();
        et_tensor *in[2] = {et_tensor_new_int64(bu, ET_SHAPE(BATCH)),
                            et_tensor_new_int64(bi, ET_SHAPE(BATCH))};
        et_tensor *y = et_tensor_new(bl, ET_SHAPE(BATCH)), *score = NULL;
        et_optim_zero_grad(opt);
        et_tensor *l = et_graph_forward(net, in, 2, &score, 1) == ET_OK
                           ? et_bce_with_logits(score, y, ET_REDUCTION_MEAN) : NULL;
        if (!l || et_backward(l, NULL) != ET_OK || et_optim_step(opt) != ET_OK) {
            fprintf(stderr, "two_tower: step %d: %s\n", s, et_errmsg());
            return 1;
        }
        loss = et_item(l);
        if (s % 100 == 0)
            printf("step %4d  loss %.4f\n", s, loss);
        et_pool_end();
    }
    et_module_train(net, false);
    int correct = 0;
    et_pool_begin();
    ET_NO_GRAD {
        et_tensor *in[2] = {et_tensor_new_int64(tu, ET_SHAPE(TEST)),
                            et_tensor_new_int64(ti, ET_SHAPE(TEST))};
        et_tensor *score = NULL;
        if (et_graph_forward(net, in, 2, &score, 1) != ET_OK) {
            fprintf(stderr, "two_tower: test: %s\n", et_errmsg());
            return 1;
        }
        const float *sc = et_data_const(score);
        for (int k = 0; k < TEST; k++)
            correct += (sc[k] > 0) == (tl[k] > 0.5f);
    }
    et_pool_end();
    printf("train_loss=%.4f\n", loss);
    printf("test_accuracy=%.4f\n", (double)correct / TEST);
    et_optim_free(opt);
    et_module_free(net);
    et_generator_free(g);
    et_generator_free(data);
    return 0;
}
