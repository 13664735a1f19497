/*
 * nn_runner.c - the easytorch side of the nn differential suite
 * (tests/torch/test_nn.py).  Tensors travel in safetensors files, so the
 * suite also exercises our reader/writer against the Python one.
 *
 *   nn_runner module <spec> <in> <out>
 *       in: x, gout, p.<param name>...   out: y, x_grad, grad.<param name>...
 *   nn_runner loss <name> <reduction> <param> <in> <out>
 *       in: input, target, gout           out: loss, input_grad
 *   nn_runner optim <in> <out> key=value...
 *       in: X, Y, p.0.weight, p.0.bias, p.2.weight, p.2.bias (Linear-Tanh-Linear)
 *       out: step<k>.<name> after every step, loss<k>
 *       replay=1: no forward/backward; step k uses the gradients g<k>.<name> of `in`
 *   nn_runner sched <name> <base_lr> <args...>     prints 101 lrs (epochs 0..100)
 *   nn_runner st_write <model> <io>    model: seeded MLP state_dict; io: x, y
 *   nn_runner st_read <model> <in> <out>   load model, y = net(x)
 *   nn_runner st_echo <in> <out>       parse and dump again
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/easytorch.h>

#include "nn_runner.h"

int fail(const char *what)
{
    fprintf(stderr, "nn_runner: %s: %s\n", what, et_errmsg());
    return 1;
}

et_tensor_dict *load(const char *path)
{
    et_tensor_dict *d = NULL;
    if (et_safetensors_load(path, &d) != ET_OK)
        fail(path);
    return d;
}

/* Fresh leaf copy of a dict entry (NULL + message if missing). */
et_tensor *get(const et_tensor_dict *d, const char *name, bool grad)
{
    et_tensor *t = et_tensor_dict_get(d, name);
    if (!t) {
        fprintf(stderr, "nn_runner: input lacks \"%s\"\n", name);
        return NULL;
    }
    et_tensor *c = et_clone(t);
    if (grad)
        et_set_requires_grad(c, true);
    return c;
}

/* Loads every "p.<name>" entry of `in` into m's parameters. */
int load_params(et_module *m, const et_tensor_dict *in)
{
    et_tensor_dict *sd = et_tensor_dict_new();
    for (int i = 0; i < et_tensor_dict_len(in); i++) {
        const char *n = et_tensor_dict_name(in, i);
        if (strncmp(n, "p.", 2) == 0)
            et_tensor_dict_set(sd, n + 2, et_tensor_dict_tensor(in, i));
    }
    et_status st = et_module_load_state_dict(m, sd);
    et_tensor_dict_free(sd);
    return st == ET_OK ? 0 : fail("load_state_dict");
}

static et_module *mlp(int64_t in, int64_t hidden, int64_t out, bool tanh_act, et_generator *g)
{
    et_module *s = et_sequential_new();
    et_sequential_append(s, et_linear_new(in, hidden, true, g));
    et_sequential_append(s, tanh_act ? et_tanh_new() : et_relu_new());
    et_sequential_append(s, et_linear_new(hidden, out, true, g));
    return s;
}

static et_module *module_from_spec(const char *spec)
{
    char name[32] = {0};
    double a = 0, b = 0, c = 0;
    int n = sscanf(spec, "%31[a-z_0-9]:%lf:%lf:%lf", name, &a, &b, &c);
    if (n < 1)
        return NULL;
    if (!strcmp(name, "linear"))
        return et_linear_new((int64_t)a, (int64_t)b, c != 0, NULL);
    if (!strcmp(name, "relu"))
        return et_relu_new();
    if (!strcmp(name, "tanh"))
        return et_tanh_new();
    if (!strcmp(name, "sigmoid"))
        return et_sigmoid_new();
    if (!strcmp(name, "gelu"))
        return et_gelu_new(false);
    if (!strcmp(name, "gelu_tanh"))
        return et_gelu_new(true);
    if (!strcmp(name, "softmax"))
        return et_softmax_new((int)a);
    if (!strcmp(name, "log_softmax"))
        return et_log_softmax_new((int)a);
    if (!strcmp(name, "leaky_relu"))
        return et_leaky_relu_new((float)a);
    if (!strcmp(name, "flatten"))
        return et_flatten_new((int)a, (int)b);
    if (!strcmp(name, "identity"))
        return et_identity_new();
    if (!strcmp(name, "dropout_eval")) {
        et_module *m = et_dropout_new((float)a, NULL);
        et_module_train(m, false);
        return m;
    }
    if (!strcmp(name, "dropout"))   /* training mode: only p 0 and 1 are deterministic */
        return et_dropout_new((float)a, NULL);
    if (!strcmp(name, "mlp"))
        return mlp((int64_t)a, (int64_t)b, (int64_t)c, false, NULL);
    return module_from_spec_more(name, n - 1, a, b, c);   /* nn_runner_more.c */
}

int save(et_tensor_dict *d, const char *path)
{
    et_status st = et_safetensors_save(d, path);
    et_tensor_dict_free(d);
    return st == ET_OK ? 0 : fail(path);
}

static int cmd_module(const char *spec, const char *inp, const char *outp)
{
    et_module *m = module_from_spec(spec);
    et_tensor_dict *in = load(inp);
    if (!m || !in)
        return fail(spec);
    if (load_params(m, in))
        return 1;
    et_tensor *x = get(in, "x", true), *gout = get(in, "gout", false);
    if (!x || !gout)
        return 1;
    et_tensor *y = et_module_forward(m, x);
    if (!y)
        return fail("forward");
    if (et_requires_grad(y) && et_backward(y, gout) != ET_OK)
        return fail("backward");
    et_tensor_dict *out = et_tensor_dict_new();
    et_tensor_dict_set(out, "y", y);
    if (et_grad(x))
        et_tensor_dict_set(out, "x_grad", et_grad(x));
    for (int i = 0; i < et_module_num_params(m); i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", et_module_param_name(m, i));
        if (et_grad(et_module_param(m, i)))
            et_tensor_dict_set(out, name, et_grad(et_module_param(m, i)));
    }
    int rc = save(out, outp);
    et_tensor_free(y);
    et_tensor_free(x);
    et_tensor_free(gout);
    et_tensor_dict_free(in);
    et_module_free(m);
    return rc;
}

static int cmd_loss(const char *name, const char *red, const char *param, const char *inp,
                    const char *outp)
{
    et_reduction r;
    if (et_reduction_parse(red, &r) != ET_OK)
        return fail(red);
    float p = (float)atof(param);
    et_tensor_dict *in = load(inp);
    if (!in)
        return 1;
    et_tensor *x = get(in, "input", true), *t = get(in, "target", false);
    et_tensor *gout = get(in, "gout", false);
    if (!x || !t || !gout)
        return 1;
    /* "_ex" forms: class weights ("weight", optional) and ignore_index (0-d
     * "ignore_index", default -100) from the input file; param = smoothing */
    et_class_loss_opts co = ET_CLASS_LOSS_DEFAULTS;
    co.label_smoothing = !strcmp(name, "cross_entropy_ex") ? p : 0.0f;
    co.weight = et_tensor_dict_get(in, "weight");
    if (et_tensor_dict_get(in, "ignore_index"))
        co.ignore_index = (int64_t)et_item(et_tensor_dict_get(in, "ignore_index"));
    et_tensor *l = !strcmp(name, "mse")          ? et_mse_loss(x, t, r)
                   : !strcmp(name, "cross_entropy_ex") ? et_cross_entropy_ex(x, t, r, co)
                   : !strcmp(name, "nll_ex")     ? et_nll_loss_ex(x, t, r, co)
                   : !strcmp(name, "l1")         ? et_l1_loss(x, t, r)
                   : !strcmp(name, "cross_entropy") ? et_cross_entropy(x, t, r, p)
                   : !strcmp(name, "nll")        ? et_nll_loss(x, t, r)
                   : !strcmp(name, "bce")        ? et_bce_loss(x, t, r)
                   : !strcmp(name, "bce_logits") ? et_bce_with_logits(x, t, r)
                   : !strcmp(name, "huber")      ? et_huber_loss(x, t, r, p)
                   : !strcmp(name, "smooth_l1")  ? et_smooth_l1_loss(x, t, r, p)
                                                 : NULL;
    if (!l)
        return fail(name);
    if (et_backward(l, gout) != ET_OK)
        return fail("backward");
    et_tensor_dict *out = et_tensor_dict_new();
    et_tensor_dict_set(out, "loss", l);
    et_tensor_dict_set(out, "input_grad", et_grad(x));
    int rc = save(out, outp);
    et_tensor_free(l);
    et_tensor_free(x);
    et_tensor_free(t);
    et_tensor_free(gout);
    et_tensor_dict_free(in);
    return rc;
}

/* key=value options of the optim command */
typedef struct {
    char name[64];
    double lr, momentum, dampening, weight_decay, lr_decay, init_acc, eps, alpha, beta1, beta2;
    double clip;
    int nesterov, maximize, centered, amsgrad, steps, replay;
} optim_args;

static int parse_optim_args(int argc, char **argv, optim_args *a)
{
    memset(a, 0, sizeof *a);
    a->steps = 50;
    a->lr = NAN;
    a->eps = NAN;
    a->alpha = NAN;
    a->beta1 = NAN;
    a->beta2 = NAN;
    a->weight_decay = NAN;
    for (int i = 0; i < argc; i++) {
        char key[32];
        char val[64];
        if (sscanf(argv[i], "%31[^=]=%63s", key, val) != 2)
            return -1;
        double v = atof(val);
        if (!strcmp(key, "name"))
            snprintf(a->name, sizeof a->name, "%s", val);
#define OPT(k, field) else if (!strcmp(key, k)) a->field = v;
#define IOPT(k, field) else if (!strcmp(key, k)) a->field = (int)v;
        OPT("lr", lr) OPT("momentum", momentum) OPT("dampening", dampening)
        OPT("weight_decay", weight_decay) OPT("lr_decay", lr_decay)
        OPT("initial_accumulator_value", init_acc) OPT("eps", eps) OPT("alpha", alpha)
        OPT("beta1", beta1) OPT("beta2", beta2) OPT("clip", clip)
        IOPT("nesterov", nesterov) IOPT("maximize", maximize) IOPT("centered", centered)
        IOPT("amsgrad", amsgrad) IOPT("steps", steps) IOPT("replay", replay)
        else return -1;
#undef OPT
#undef IOPT
    }
    return 0;
}

#define SET_IF(dst, v) \
    do {               \
        if (!isnan(v)) \
            (dst) = (v); \
    } while (0)

static et_optim *make_optim(const optim_args *a, et_tensor **ps, int n)
{
    if (!strcmp(a->name, "sgd")) {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        SET_IF(o.lr, a->lr);
        SET_IF(o.weight_decay, a->weight_decay);
        o.momentum = a->momentum;
        o.dampening = a->dampening;
        o.nesterov = a->nesterov;
        o.maximize = a->maximize;
        return et_sgd_new(ps, n, o);
    }
    if (!strcmp(a->name, "adagrad")) {
        et_adagrad_opts o = ET_ADAGRAD_DEFAULTS;
        SET_IF(o.lr, a->lr);
        SET_IF(o.weight_decay, a->weight_decay);
        SET_IF(o.eps, a->eps);
        o.lr_decay = a->lr_decay;
        o.initial_accumulator_value = a->init_acc;
        o.maximize = a->maximize;
        return et_adagrad_new(ps, n, o);
    }
    if (!strcmp(a->name, "rmsprop")) {
        et_rmsprop_opts o = ET_RMSPROP_DEFAULTS;
        SET_IF(o.lr, a->lr);
        SET_IF(o.weight_decay, a->weight_decay);
        SET_IF(o.eps, a->eps);
        SET_IF(o.alpha, a->alpha);
        o.momentum = a->momentum;
        o.centered = a->centered;
        o.maximize = a->maximize;
        return et_rmsprop_new(ps, n, o);
    }
    bool w = !strcmp(a->name, "adamw");
    if (w || !strcmp(a->name, "adam")) {
        et_adam_opts o = w ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
        SET_IF(o.lr, a->lr);
        SET_IF(o.weight_decay, a->weight_decay);
        SET_IF(o.eps, a->eps);
        SET_IF(o.beta1, a->beta1);
        SET_IF(o.beta2, a->beta2);
        o.amsgrad = a->amsgrad;
        o.maximize = a->maximize;
        return w ? et_adamw_new(ps, n, o) : et_adam_new(ps, n, o);
    }
    et_set_error(ET_ERR_ARG, "unknown optimizer %s", a->name);
    return NULL;
}

static int cmd_optim(const char *inp, const char *outp, int argc, char **argv)
{
    optim_args a;
    if (parse_optim_args(argc, argv, &a) != 0) {
        fprintf(stderr, "nn_runner: bad optim arguments\n");
        return 2;
    }
    et_tensor_dict *in = load(inp);
    if (!in)
        return 1;
    et_tensor *X = et_tensor_dict_get(in, "X"), *Y = et_tensor_dict_get(in, "Y");
    if (!X || !Y)
        return fail("X/Y");
    et_module *net = mlp(et_size(X, 1), et_size(et_tensor_dict_get(in, "p.0.weight"), 0),
                         et_size(Y, 1), true, NULL);
    if (load_params(net, in))
        return 1;
    et_tensor *ps[4];
    for (int i = 0; i < 4; i++)
        ps[i] = et_module_param(net, i);
    et_optim *opt = make_optim(&a, ps, 4);
    if (!opt)
        return fail("optimizer");
    et_tensor_dict *out = et_tensor_dict_new();
    for (int step = 1; step <= a.steps; step++) {
        char name[64];
        et_pool_begin();
        et_optim_zero_grad(opt);
        et_tensor *loss = NULL;
        if (a.replay) { /* torch's gradients of this step: the update rule alone */
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "g%d.%s", step, et_module_param_name(net, i));
                et_tensor *g = et_tensor_dict_get(in, name);
                if (!g || et_set_grad(ps[i], g) != ET_OK)
                    return fail(name);
            }
        } else {
            loss = et_mse_loss(et_module_forward(net, X), Y, ET_REDUCTION_MEAN);
            if (loss && a.maximize) /* maximize -MSE: the same well-behaved descent */
                loss = et_neg(loss);
            if (!loss || et_backward(loss, NULL) != ET_OK)
                return fail("loss");
        }
        if (a.clip > 0)
            et_clip_grad_norm(ps, 4, a.clip, 2.0);
        if (et_optim_step(opt) != ET_OK)
            return fail("step");
        snprintf(name, sizeof name, "loss%d", step);
        if (loss)
            et_tensor_dict_set(out, name, loss);
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "step%d.%s", step, et_module_param_name(net, i));
            et_tensor *c = et_clone(ps[i]);
            et_tensor_dict_set(out, name, c);
        }
        et_pool_end();
    }
    int rc = save(out, outp);
    et_optim_free(opt);
    et_module_free(net);
    et_tensor_dict_free(in);
    return rc;
}

static int cmd_sched(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *name = argv[0];
    et_tensor *p = et_zeros(ET_SHAPE(1));
    et_sgd_opts so = ET_SGD_DEFAULTS;
    so.lr = atof(argv[1]);
    et_optim *o = et_sgd_new(&p, 1, so);
    double v[8] = {0};
    int nv = argc - 2 < 8 ? argc - 2 : 8;
    for (int i = 0; i < nv; i++)
        v[i] = atof(argv[2 + i]);
    et_scheduler *s = NULL;
    if (!strcmp(name, "StepLR"))
        s = et_steplr_new(o, (int64_t)v[0], v[1]);
    else if (!strcmp(name, "MultiStepLR")) {
        int64_t ms[6];
        int n = nv - 1;
        for (int i = 0; i < n && i < 6; i++)
            ms[i] = (int64_t)v[1 + i];
        s = et_multisteplr_new(o, ms, n < 6 ? n : 6, v[0]);
    } else if (!strcmp(name, "ExponentialLR"))
        s = et_exponentiallr_new(o, v[0]);
    else if (!strcmp(name, "CosineAnnealingLR"))
        s = et_cosineannealinglr_new(o, (int64_t)v[0], v[1]);
    else if (!strcmp(name, "LinearLR"))
        s = et_linearlr_new(o, v[0], v[1], (int64_t)v[2]);
    if (!s)
        return fail(name);
    for (int e = 0; e <= 100; e++) {
        printf("%.17g\n", et_scheduler_get_last_lr(s));
        et_scheduler_step(s);
    }
    et_scheduler_free(s);
    et_optim_free(o);
    et_tensor_free(p);
    return 0;
}

static int cmd_st_write(const char *model_path, const char *io_path)
{
    et_generator *g = et_generator_new(123);
    et_module *net = mlp(5, 7, 2, false, g);
    et_tensor *x = et_randn(g, ET_SHAPE(4, 5));
    et_tensor *y = et_module_forward(net, x);
    et_tensor_dict *sd = et_module_state_dict(net);
    et_tensor_dict_set_meta(sd, "framework", "easytorch");
    et_tensor_dict *io = et_tensor_dict_new();
    et_tensor_dict_set(io, "x", x);
    et_tensor_dict_set(io, "y", y);
    int rc = save(sd, model_path) || save(io, io_path);
    et_tensor_free(x);
    et_tensor_free(y);
    et_module_free(net);
    et_generator_free(g);
    return rc;
}

static int cmd_st_read(const char *model_path, const char *inp, const char *outp)
{
    et_module *net = mlp(5, 7, 2, false, NULL);
    et_tensor_dict *sd = load(model_path), *in = load(inp);
    if (!sd || !in)
        return 1;
    if (et_module_load_state_dict(net, sd) != ET_OK)
        return fail("load_state_dict");
    et_tensor *y = et_module_forward(net, et_tensor_dict_get(in, "x"));
    if (!y)
        return fail("forward");
    et_tensor_dict *out = et_tensor_dict_new();
    et_tensor_dict_set(out, "y", y);
    if (et_tensor_dict_get_meta(sd, "source"))
        et_tensor_dict_set_meta(out, "source", et_tensor_dict_get_meta(sd, "source"));
    int rc = save(out, outp);
    et_tensor_free(y);
    et_tensor_dict_free(sd);
    et_tensor_dict_free(in);
    et_module_free(net);
    return rc;
}

static int cmd_st_echo(const char *inp, const char *outp)
{
    et_tensor_dict *in = load(inp);
    return in ? save(in, outp) : 1;
}

int main(int argc, char **argv)
{
    int more = nn_runner_more(argc, argv);   /* nn_runner_more.c's commands */
    if (more >= 0)
        return more;
    more = nn_runner_conv(argc, argv);       /* nn_runner_conv.c's commands */
    if (more >= 0)
        return more;
    more = nn_runner_attention(argc, argv);  /* nn_runner_attention.c's command */
    if (more >= 0)
        return more;
    more = nn_runner_graph(argc, argv);      /* nn_runner_graph.c's command */
    if (more >= 0)
        return more;
    more = nn_runner_embed(argc, argv);      /* nn_runner_embed.c's command */
    if (more >= 0)
        return more;
    if (argc >= 5 && !strcmp(argv[1], "module"))
        return cmd_module(argv[2], argv[3], argv[4]);
    if (argc >= 7 && !strcmp(argv[1], "loss"))
        return cmd_loss(argv[2], argv[3], argv[4], argv[5], argv[6]);
    if (argc >= 4 && !strcmp(argv[1], "optim"))
        return cmd_optim(argv[2], argv[3], argc - 4, argv + 4);
    if (argc >= 3 && !strcmp(argv[1], "sched"))
        return cmd_sched(argc - 2, argv + 2);
    if (argc >= 4 && !strcmp(argv[1], "st_write"))
        return cmd_st_write(argv[2], argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "st_read"))
        return cmd_st_read(argv[2], argv[3], argv[4]);
    if (argc >= 4 && !strcmp(argv[1], "st_echo"))
        return cmd_st_echo(argv[2], argv[3]);
    fprintf(stderr, "usage: see the comment at the top of nn_runner.c\n");
    return 2;
}
