/*
 * nn_runner_more.c - nn_runner commands for what came after the first
 * release (tests/torch/nn_more.py drives them):
 *
 *   nn_runner nonleaf <optimizer>     prints "error: <message>" if the optimizer
 *                                     refuses a non-leaf parameter, else "accepted"
 *   nn_runner loss2 <name> <reduction> <in> <out> [grad=a,b] [key=value...]
 *       in: the loss's tensors by name (input, target, input2, y, weight,
 *           pos_weight, anchor, positive, negative, ignore_index 0-d) + gout;
 *       the tensors listed in grad= require grad; out: loss, grad.<name>
 *       keys: margin, p, eps, swap, log_target, label_smoothing
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_runner.h"

et_module *module_from_spec_more(const char *name, int nargs, double a, double b, double c)
{
    (void)c;
    if (!strcmp(name, "silu"))
        return et_silu_new();
    if (!strcmp(name, "mish"))
        return et_mish_new();
    if (!strcmp(name, "relu6"))
        return et_relu6_new();
    if (!strcmp(name, "elu"))
        return et_elu_new(nargs >= 1 ? (float)a : 1.0f);
    if (!strcmp(name, "softplus"))
        return et_softplus_new(nargs >= 1 ? (float)a : 1.0f, nargs >= 2 ? (float)b : 20.0f);
    if (!strcmp(name, "hardtanh"))
        return et_hardtanh_new(nargs >= 1 ? (float)a : -1.0f, nargs >= 2 ? (float)b : 1.0f);
    return NULL;
}

static int cmd_nonleaf(const char *name)
{
    et_tensor *w = et_ones(ET_SHAPE(3));
    et_set_requires_grad(w, true);
    et_tensor *y = et_mul_scalar(w, 2.0f);   /* a non-leaf */
    et_optim *o = NULL;
    if (!strcmp(name, "sgd"))
        o = et_sgd_new(&y, 1, ET_SGD_DEFAULTS);
    else if (!strcmp(name, "adam"))
        o = et_adam_new(&y, 1, ET_ADAM_DEFAULTS);
    else
        return fail("nonleaf: unknown optimizer");
    if (o)
        printf("accepted\n");
    else
        printf("error: %s\n", et_errmsg());
    et_optim_free(o);
    et_tensor_free(y);
    et_tensor_free(w);
    return 0;
}

typedef struct {
    const char *name;
    et_tensor *t;   /* own clone (NULL if absent) */
} named;

static double kv(int argc, char **argv, const char *key, double dflt)
{
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
            return atof(argv[i] + n + 1);
    return dflt;
}

static const char *kvs(int argc, char **argv, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    return "";
}

static int cmd_loss2(const char *name, const char *red, const char *inp, const char *outp,
                     int argc, char **argv)
{
    et_reduction r;
    if (et_reduction_parse(red, &r) != ET_OK)
        return fail(red);
    et_tensor_dict *in = load(inp);
    if (!in)
        return 1;
    named v[] = {{"input", NULL}, {"target", NULL}, {"input2", NULL}, {"y", NULL},
                 {"weight", NULL}, {"pos_weight", NULL}, {"anchor", NULL}, {"positive", NULL},
                 {"negative", NULL}};
    const int nv = (int)(sizeof v / sizeof v[0]);
    const char *grads = kvs(argc, argv, "grad");
    for (int i = 0; i < nv; i++) {
        et_tensor *t = et_tensor_dict_get(in, v[i].name);
        if (!t)
            continue;
        v[i].t = et_clone(t);
        char pat[64];
        snprintf(pat, sizeof pat, ",%s,", v[i].name);
        char gl[256];
        snprintf(gl, sizeof gl, ",%s,", grads);
        if (strstr(gl, pat))
            et_set_requires_grad(v[i].t, true);
    }
#define V(k) v[k].t
    et_tensor *gout = get(in, "gout", false);
    et_class_loss_opts co = ET_CLASS_LOSS_DEFAULTS;
    co.weight = V(4);
    co.label_smoothing = (float)kv(argc, argv, "label_smoothing", 0);
    if (et_tensor_dict_get(in, "ignore_index"))
        co.ignore_index = (int64_t)et_item(et_tensor_dict_get(in, "ignore_index"));
    et_triplet_opts to = ET_TRIPLET_DEFAULTS;
    to.margin = (float)kv(argc, argv, "margin", 1.0);
    to.p = (float)kv(argc, argv, "p", 2.0);
    to.eps = (float)kv(argc, argv, "eps", 1e-6);
    to.swap = kv(argc, argv, "swap", 0) != 0;
    float margin = (float)kv(argc, argv, "margin", 0.0);
    et_tensor *l = !strcmp(name, "kl_div") ? et_kl_div(V(0), V(1), r, kv(argc, argv, "log_target", 0) != 0)
                   : !strcmp(name, "bce_logits") ? et_bce_with_logits_ex(V(0), V(1), r, V(4), V(5))
                   : !strcmp(name, "cross_entropy") ? et_cross_entropy_ex(V(0), V(1), r, co)
                   : !strcmp(name, "nll") ? et_nll_loss_ex(V(0), V(1), r, co)
                   : !strcmp(name, "margin_ranking") ? et_margin_ranking_loss(V(0), V(2), V(3), margin, r)
                   : !strcmp(name, "cosine_embedding") ? et_cosine_embedding_loss(V(0), V(2), V(3), margin, r)
                   : !strcmp(name, "triplet") ? et_triplet_margin_loss(V(6), V(7), V(8), to, r)
                                              : NULL;
#undef V
    if (!l)
        return fail(name);
    if (!gout || et_backward(l, gout) != ET_OK)
        return fail("backward");
    et_tensor_dict *out = et_tensor_dict_new();
    et_tensor_dict_set(out, "loss", l);
    for (int i = 0; i < nv; i++) {
        char key[64];
        snprintf(key, sizeof key, "grad.%s", v[i].name);
        if (v[i].t && et_grad(v[i].t))
            et_tensor_dict_set(out, key, et_grad(v[i].t));
    }
    int rc = save(out, outp);
    for (int i = 0; i < nv; i++)
        et_tensor_free(v[i].t);
    et_tensor_free(l);
    et_tensor_free(gout);
    et_tensor_dict_free(in);
    return rc;
}

int nn_runner_more(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "loss2"))
        return cmd_loss2(argv[2], argv[3], argv[4], argv[5], argc - 6, argv + 6);
    if (argc >= 3 && !strcmp(argv[1], "nonleaf"))
        return cmd_nonleaf(argv[2]);
    return -1;
}
