/*
 * nn_runner_graph.c - nn_runner's command for graph modules (nn_graph.h);
 * tests/torch/nn_graph.py drives it against torch.fx GraphModules:
 *
 *   nn_runner graph '<json spec>' <in> <out>
 *       spec: {"inputs": [names], "modules": [{"name", "type", args...}],
 *              "nodes": [{"name", "module": target | "op": name | "attr":
 *              state name, "args": [names], op arguments...}],
 *              "outputs": [[name, node]...], "train": bool}
 *              module types: Linear, ReLU, Tanh, BatchNorm1d, LayerNorm,
 *              Embedding, Dropout, MultiheadAttention (embed_dim, num_heads,
 *              batch_first), Sequential (layers), ModuleList (modules)
 *       in:  in.<input>, gout.<output> (upstream gradients), p.<state name>
 *       out: out.<output>, ingrad.<input>, grad.<param>, buf.<float buffer>
 *       stdout: the graph's state_dict names, one a line; a builder or
 *       forward error is printed as "error: <code> <message>".
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/nn_attention.h>
#include <easytorch/nn_graph.h>

#include "nn_runner.h"

static const cJSON *key(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

static double num(const cJSON *s, const char *k, double d)
{
    const cJSON *v = key(s, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}

static const char *str(const cJSON *s, const char *k)
{
    const cJSON *v = key(s, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static et_module *build_module(const cJSON *s, et_generator *g)
{
    const char *t = str(s, "type");
    if (!t)
        return NULL;
    if (!strcmp(t, "Linear"))
        return et_linear_new((int64_t)num(s, "in_features", 0), (int64_t)num(s, "out_features", 0),
                             !cJSON_IsFalse(key(s, "bias")), g);
    if (!strcmp(t, "ReLU"))
        return et_relu_new();
    if (!strcmp(t, "Tanh"))
        return et_tanh_new();
    if (!strcmp(t, "Dropout"))
        return et_dropout_new((float)num(s, "p", 0.5), g);
    if (!strcmp(t, "BatchNorm1d"))
        return et_batch_norm1d_new((int64_t)num(s, "num_features", 0), ET_BATCH_NORM_DEFAULTS);
    if (!strcmp(t, "LayerNorm")) {
        int64_t d = (int64_t)num(s, "normalized_shape", 0);
        return et_layer_norm_new(&d, 1, 1e-5, true);
    }
    if (!strcmp(t, "MultiheadAttention")) {
        et_mha_opts o = ET_MHA_DEFAULTS;
        o.batch_first = cJSON_IsTrue(key(s, "batch_first"));
        return et_multihead_attention_new((int64_t)num(s, "embed_dim", 0),
                                          (int64_t)num(s, "num_heads", 0), o, g);
    }
    if (!strcmp(t, "Embedding"))
        return et_embedding_new((int64_t)num(s, "num_embeddings", 0),
                                (int64_t)num(s, "embedding_dim", 0), ET_EMBEDDING_DEFAULTS, g);
    bool list = !strcmp(t, "ModuleList");
    if (list || !strcmp(t, "Sequential")) {
        et_module *c = list ? et_module_list_new() : et_sequential_new();
        const cJSON *kids = key(s, list ? "modules" : "layers"), *k;
        cJSON_ArrayForEach(k, kids) {
            et_module *child = build_module(k, g);
            if ((list ? et_module_list_append(c, child) : et_sequential_append(c, child)) != ET_OK) {
                et_module_free(c);
                return NULL;
            }
        }
        return c;
    }
    et_set_error(ET_ERR_ARG, "runner: unknown module type '%s'", t);
    return NULL;
}

static et_status add_node(et_module *gm, const cJSON *n)
{
    const char *name = str(n, "name");
    const cJSON *args = key(n, "args");
    int nargs = cJSON_GetArraySize(args);
    const char *av[16];
    for (int i = 0; i < nargs && i < 16; i++) {
        const cJSON *a = cJSON_GetArrayItem(args, i);
        av[i] = cJSON_IsString(a) ? a->valuestring : NULL;
    }
    if (str(n, "module"))
        return et_graph_call_module(gm, name, str(n, "module"), av, nargs);
    if (str(n, "attr"))
        return et_graph_get_attr(gm, name, str(n, "attr"));
    int op = et_graph_op_from_name(str(n, "op"));
    et_graph_op_args a = ET_GRAPH_OP_ARGS_DEFAULTS;
    a.dim = (int)num(n, "dim", op == ET_GOP_FLATTEN ? 1 : op == ET_GOP_COSINE_SIMILARITY ? 1 : 0);
    a.has_dim = key(n, "dim") != NULL;
    a.dim1 = (int)num(n, op == ET_GOP_FLATTEN ? "end_dim" : "dim1", -1);
    if (op == ET_GOP_FLATTEN)
        a.dim = (int)num(n, "start_dim", 1);
    if (op == ET_GOP_TRANSPOSE) {
        a.dim = (int)num(n, "dim0", 0);
        a.dim1 = (int)num(n, "dim1", 1);
    }
    a.keepdim = cJSON_IsTrue(key(n, "keepdim"));
    a.index = (int64_t)num(n, op == ET_GOP_CHUNK ? "chunks" : op == ET_GOP_SPLIT ? "split_size"
                              : "index", 0);
    a.eps = num(n, "eps", 1e-8);
    const cJSON *ints = key(n, op == ET_GOP_RESHAPE ? "shape" : "dims"), *v;
    if ((op == ET_GOP_SUM || op == ET_GOP_MEAN) && cJSON_IsNumber(key(n, "dim"))) {
        a.ints[a.nints++] = (int64_t)num(n, "dim", 0);
    } else {
        cJSON_ArrayForEach(v, ints) {
            if (a.nints < 8)
                a.ints[a.nints++] = (int64_t)v->valuedouble;
        }
    }
    return et_graph_call_op(gm, name, (et_graph_op)op, av, nargs, &a);
}

static int report_error(void)
{
    printf("error: %d %s\n", (int)et_errcode(), et_errmsg());
    return 0;
}

/* p.<name> entries copied into the graph's parameters and float buffers */
static int load_state(et_module *m, const et_tensor_dict *in)
{
    for (int i = 0; i < et_tensor_dict_len(in); i++) {
        const char *n = et_tensor_dict_name(in, i);
        if (strncmp(n, "p.", 2) != 0)
            continue;
        et_tensor *dst = et_module_param_by_name(m, n + 2);
        if (!dst)
            dst = et_module_buffer_by_name(m, n + 2);
        et_tensor *src = et_tensor_dict_tensor(in, i);
        if (!dst || et_numel(dst) != et_numel(src)) {
            fprintf(stderr, "nn_runner: graph: no state entry %s of that size\n", n + 2);
            return 1;
        }
        memcpy(et_data(dst), et_data(src), (size_t)et_numel(src) * sizeof(float));
    }
    return 0;
}

static int cmd_graph(const char *spec, const char *inp, const char *outp)
{
    cJSON *s = cJSON_Parse(spec);
    if (!s)
        return fail("graph: spec is not JSON");
    et_generator *g = et_generator_new(0);
    et_module *gm = et_graph_new();
    et_tensor_dict *in = load(inp);
    int rc = 0;
    const cJSON *it;
    et_tensor *xs[16] = {0}, *ys[16] = {0};
    int nin = 0, nout = 0;
    cJSON_ArrayForEach(it, key(s, "inputs")) {
        if (et_graph_add_input(gm, it->valuestring) != ET_OK)
            goto err;
    }
    cJSON_ArrayForEach(it, key(s, "modules")) {
        if (et_graph_add_module(gm, str(it, "name"), build_module(it, g)) != ET_OK)
            goto err;
    }
    cJSON_ArrayForEach(it, key(s, "nodes")) {
        if (add_node(gm, it) != ET_OK)
            goto err;
    }
    cJSON_ArrayForEach(it, key(s, "outputs")) {
        if (et_graph_add_output(gm, cJSON_GetArrayItem(it, 0)->valuestring,
                                cJSON_GetArrayItem(it, 1)->valuestring) != ET_OK)
            goto err;
    }
    for (int i = 0; i < et_module_num_state(gm); i++)
        printf("%s\n", et_module_state_name(gm, i));
    if (!in || load_state(gm, in)) {
        rc = 1;
        goto done;
    }
    et_module_train(gm, !cJSON_IsFalse(key(s, "train")));
    nin = et_graph_num_inputs(gm);
    nout = et_graph_num_outputs(gm);
    for (int i = 0; i < nin; i++) {
        char nm[96];
        snprintf(nm, sizeof nm, "in.%s", et_graph_input_name(gm, i));
        if (!(xs[i] = get(in, nm, cJSON_IsTrue(key(s, "input_grad")))))
            goto bad;
    }
    if (et_graph_forward(gm, xs, nin, ys, nout) != ET_OK)
        goto err;
    et_tensor_dict *out = et_tensor_dict_new();
    et_pool_begin();
    et_tensor *total = NULL;
    for (int i = 0; i < nout; i++) {
        char nm[96];
        snprintf(nm, sizeof nm, "out.%s", et_graph_output_name(gm, i));
        et_tensor_dict_set(out, nm, ys[i]);
        snprintf(nm, sizeof nm, "gout.%s", et_graph_output_name(gm, i));
        if (et_tensor_dict_get(in, nm) && et_requires_grad(ys[i])) {
            et_tensor *t = et_sum_all(et_mul(ys[i], et_tensor_dict_get(in, nm)));
            total = total ? et_add(total, t) : t;
        }
    }
    if (total && et_backward(total, NULL) != ET_OK)
        rc = fail("backward");
    et_pool_end();
    for (int i = 0; i < nin; i++) {
        char nm[96];
        snprintf(nm, sizeof nm, "ingrad.%s", et_graph_input_name(gm, i));
        if (et_grad(xs[i]))
            et_tensor_dict_set(out, nm, et_grad(xs[i]));
    }
    for (int i = 0; i < et_module_num_params(gm); i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "grad.%s", et_module_param_name(gm, i));
        if (et_grad(et_module_param(gm, i)))
            et_tensor_dict_set(out, nm, et_grad(et_module_param(gm, i)));
    }
    for (int i = 0; i < et_module_num_buffers(gm); i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "buf.%s", et_module_buffer_name(gm, i));
        if (et_tensor_dtype(et_module_buffer(gm, i)) == ET_FLOAT32)
            et_tensor_dict_set(out, nm, et_module_buffer(gm, i));
    }
    if (rc == 0)
        rc = save(out, outp);
    else
        et_tensor_dict_free(out);
    goto done;
err:
    rc = report_error();
    goto done;
bad:
    rc = 1;
done:
    for (int i = 0; i < 16; i++) {
        et_tensor_free(xs[i]);
        et_tensor_free(ys[i]);
    }
    cJSON_Delete(s);
    et_tensor_dict_free(in);
    et_module_free(gm);
    et_generator_free(g);
    return rc;
}

int nn_runner_graph(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "graph"))
        return cmd_graph(argv[2], argv[3], argv[4]);
    return -1;
}
