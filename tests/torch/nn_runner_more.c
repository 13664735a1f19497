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
 *   nn_runner sched2 <spec.json> <base_lr> <groups> <steps>
 *       prints, for epochs 0..steps, each group's lr then its momentum / beta1
 *       (OneCycleLR cycles it); spec: {"type": "SequentialLR", "schedulers":
 *       [...], "milestones": [...]} / {"type": "OneCycleLR", "max_lr": ...} ...
 *       ReduceLROnPlateau: "metrics": [one per step]
 *   nn_runner optim2 <spec.json> <in> <out>
 *       the Linear-Tanh-Linear of `nn_runner optim` (same files), with
 *       spec {"name": "nadam", "lr": ..., "groups": [{"params": ["0."], "lr": ...}],
 *       "sched": {...}, "steps": 50, "replay": 0|1}: groups by parameter-name
 *       prefix (the first group whose prefix matches; unmatched parameters
 *       form group 0 with the base options), a scheduler stepped after each step
 */
#include <cjson/cJSON.h>
#include <math.h>
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

/* ---- JSON helpers ---- */
static double jnum(const cJSON *o, const char *k, double d)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : d;
}

static const char *jstr(const cJSON *o, const char *k, const char *d)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : d;
}

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

/* A scheduler from its JSON spec (torch's constructor arguments by name). */
static et_scheduler *sched_of(const cJSON *j, et_optim *o)
{
    const char *t = jstr(j, "type", "");
    if (!strcmp(t, "StepLR"))
        return et_steplr_new(o, (int64_t)jnum(j, "step_size", 1), jnum(j, "gamma", 0.1));
    if (!strcmp(t, "MultiStepLR")) {
        int64_t ms[16];
        int n = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "milestones")) if (n < 16)
            ms[n++] = (int64_t)m->valuedouble;
        return et_multisteplr_new(o, ms, n, jnum(j, "gamma", 0.1));
    }
    if (!strcmp(t, "ExponentialLR"))
        return et_exponentiallr_new(o, jnum(j, "gamma", 0.9));
    if (!strcmp(t, "CosineAnnealingLR"))
        return et_cosineannealinglr_new(o, (int64_t)jnum(j, "T_max", 10), jnum(j, "eta_min", 0));
    if (!strcmp(t, "LinearLR"))
        return et_linearlr_new(o, jnum(j, "start_factor", 1.0 / 3), jnum(j, "end_factor", 1.0),
                               (int64_t)jnum(j, "total_iters", 5));
    if (!strcmp(t, "ConstantLR"))
        return et_constantlr_new(o, jnum(j, "factor", 1.0 / 3), (int64_t)jnum(j, "total_iters", 5));
    if (!strcmp(t, "CosineAnnealingWarmRestarts"))
        return et_cosineannealingwarmrestarts_new(o, (int64_t)jnum(j, "T_0", 10),
                                                  (int64_t)jnum(j, "T_mult", 1),
                                                  jnum(j, "eta_min", 0));
    if (!strcmp(t, "OneCycleLR")) {
        et_onecycle_opts c = ET_ONECYCLE_DEFAULTS;
        c.max_lr = jnum(j, "max_lr", NAN);
        c.total_steps = (int64_t)jnum(j, "total_steps", 0);
        c.pct_start = jnum(j, "pct_start", c.pct_start);
        c.anneal_linear = !strcmp(jstr(j, "anneal_strategy", "cos"), "linear");
        c.cycle_momentum = jnum(j, "cycle_momentum", 1) != 0;
        c.base_momentum = jnum(j, "base_momentum", c.base_momentum);
        c.max_momentum = jnum(j, "max_momentum", c.max_momentum);
        c.div_factor = jnum(j, "div_factor", c.div_factor);
        c.final_div_factor = jnum(j, "final_div_factor", c.final_div_factor);
        c.three_phase = jnum(j, "three_phase", 0) != 0;
        return et_onecyclelr_new(o, c);
    }
    if (!strcmp(t, "ReduceLROnPlateau")) {
        et_plateau_opts p = ET_PLATEAU_DEFAULTS;
        p.mode_max = !strcmp(jstr(j, "mode", "min"), "max");
        p.factor = jnum(j, "factor", p.factor);
        p.patience = (int64_t)jnum(j, "patience", (double)p.patience);
        p.threshold = jnum(j, "threshold", p.threshold);
        p.threshold_abs = !strcmp(jstr(j, "threshold_mode", "rel"), "abs");
        p.cooldown = (int64_t)jnum(j, "cooldown", 0);
        p.min_lr = jnum(j, "min_lr", 0);
        p.eps = jnum(j, "eps", p.eps);
        return et_reducelronplateau_new(o, p);
    }
    if (!strcmp(t, "SequentialLR") || !strcmp(t, "ChainedScheduler")) {
        et_scheduler *kids[16];
        int64_t ms[16];
        int n = 0, nm = 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(j, "schedulers")) if (n < 16)
            kids[n++] = sched_of(k, o);
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(j, "milestones")) if (nm < 16)
            ms[nm++] = (int64_t)k->valuedouble;
        return !strcmp(t, "SequentialLR") ? et_sequentiallr_new(o, kids, n, ms)
                                          : et_chainedscheduler_new(kids, n);
    }
    et_set_error(ET_ERR_ARG, "unknown scheduler %s", t);
    return NULL;
}

static int sched_step_with(et_scheduler *s, const cJSON *metrics, int e)
{
    if (et_scheduler_needs_metric(s))
        return et_scheduler_step_metric(s, cJSON_GetArrayItem(metrics, e)->valuedouble) != ET_OK;
    return et_scheduler_step(s) != ET_OK;
}

static int cmd_sched2(const char *spec_path, double base_lr, int groups, int steps)
{
    cJSON *spec = read_json(spec_path);
    if (!spec)
        return fail("sched2: spec");
    const char *opt = jstr(spec, "optimizer", "sgd");
    et_tensor *ps[8];
    for (int g = 0; g < groups && g < 8; g++) {
        ps[g] = et_zeros(ET_SHAPE(1));
        et_set_requires_grad(ps[g], true);
    }
    et_optim *o = NULL;
    if (!strcmp(opt, "adam")) {
        et_adam_opts ao = ET_ADAM_DEFAULTS;
        ao.lr = base_lr;
        o = et_adam_new(ps, 1, ao);
    } else {
        et_sgd_opts so = ET_SGD_DEFAULTS;
        so.lr = base_lr;
        so.momentum = jnum(spec, "momentum", 0);
        o = et_sgd_new(ps, 1, so);
    }
    for (int g = 1; o && g < groups; g++) {   /* group g: lr base_lr * (g + 1) */
        et_optim_add_param_group(o, &ps[g], 1);
        et_optim_group_set(o, g, "lr", base_lr * (g + 1));
    }
    et_scheduler *s = o ? sched_of(spec, o) : NULL;
    if (!s)
        return fail("sched2");
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(spec, "metrics");
    const char *mk = !strcmp(opt, "adam") ? "beta1" : "momentum";
    for (int e = 0; e <= steps; e++) {
        for (int g = 0; g < groups; g++)
            printf("%.17g ", et_optim_group_get(o, g, "lr"));
        for (int g = 0; g < groups; g++)
            printf("%.17g ", et_optim_group_get(o, g, mk));
        printf("%.17g\n", et_scheduler_get_last_lr(s));
        if (e < steps && sched_step_with(s, metrics, e) != 0)
            return fail("sched2 step");
    }
    et_scheduler_free(s);
    et_optim_free(o);
    for (int g = 0; g < groups; g++)
        et_tensor_free(ps[g]);
    cJSON_Delete(spec);
    return 0;
}

/* An optimizer of `name` with group-0 options from the spec. */
static et_optim *optim_of(const cJSON *j, et_tensor **ps, int n)
{
    const char *name = jstr(j, "name", "");
#define F(field, key) o.field = jnum(j, key, o.field)
#define FB(field, key) o.field = jnum(j, key, o.field) != 0
    if (!strcmp(name, "sgd")) {
        et_sgd_opts o = ET_SGD_DEFAULTS;
        F(lr, "lr"); F(momentum, "momentum"); F(dampening, "dampening");
        F(weight_decay, "weight_decay"); FB(nesterov, "nesterov"); FB(maximize, "maximize");
        return et_sgd_new(ps, n, o);
    }
    if (!strcmp(name, "adagrad")) {
        et_adagrad_opts o = ET_ADAGRAD_DEFAULTS;
        F(lr, "lr"); F(lr_decay, "lr_decay"); F(weight_decay, "weight_decay");
        F(initial_accumulator_value, "initial_accumulator_value"); F(eps, "eps");
        FB(maximize, "maximize");
        return et_adagrad_new(ps, n, o);
    }
    if (!strcmp(name, "rmsprop")) {
        et_rmsprop_opts o = ET_RMSPROP_DEFAULTS;
        F(lr, "lr"); F(alpha, "alpha"); F(eps, "eps"); F(weight_decay, "weight_decay");
        F(momentum, "momentum"); FB(centered, "centered"); FB(maximize, "maximize");
        return et_rmsprop_new(ps, n, o);
    }
    if (!strcmp(name, "adam") || !strcmp(name, "adamw")) {
        bool w = !strcmp(name, "adamw");
        et_adam_opts o = w ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
        F(lr, "lr"); F(beta1, "beta1"); F(beta2, "beta2"); F(eps, "eps");
        F(weight_decay, "weight_decay"); FB(amsgrad, "amsgrad"); FB(maximize, "maximize");
        return w ? et_adamw_new(ps, n, o) : et_adam_new(ps, n, o);
    }
    if (!strcmp(name, "nadam")) {
        et_nadam_opts o = ET_NADAM_DEFAULTS;
        F(lr, "lr"); F(beta1, "beta1"); F(beta2, "beta2"); F(eps, "eps");
        F(weight_decay, "weight_decay"); F(momentum_decay, "momentum_decay");
        return et_nadam_new(ps, n, o);
    }
    if (!strcmp(name, "radam")) {
        et_radam_opts o = ET_RADAM_DEFAULTS;
        F(lr, "lr"); F(beta1, "beta1"); F(beta2, "beta2"); F(eps, "eps");
        F(weight_decay, "weight_decay");
        return et_radam_new(ps, n, o);
    }
    if (!strcmp(name, "adamax")) {
        et_adamax_opts o = ET_ADAMAX_DEFAULTS;
        F(lr, "lr"); F(beta1, "beta1"); F(beta2, "beta2"); F(eps, "eps");
        F(weight_decay, "weight_decay"); FB(maximize, "maximize");
        return et_adamax_new(ps, n, o);
    }
#undef F
#undef FB
    et_set_error(ET_ERR_ARG, "unknown optimizer %s", name);
    return NULL;
}

static int cmd_optim2(const char *spec_path, const char *inp, const char *outp)
{
    cJSON *spec = read_json(spec_path);
    et_tensor_dict *in = spec ? load(inp) : NULL;
    if (!in)
        return fail("optim2: inputs");
    et_tensor *X = et_tensor_dict_get(in, "X"), *Y = et_tensor_dict_get(in, "Y");
    et_module *net = et_sequential_new();
    et_sequential_append(net, et_linear_new(et_size(X, 1), et_size(et_tensor_dict_get(in, "p.0.weight"), 0), true, NULL));
    et_sequential_append(net, et_tanh_new());
    et_sequential_append(net, et_linear_new(et_size(et_tensor_dict_get(in, "p.2.weight"), 1),
                                            et_size(Y, 1), true, NULL));
    if (load_params(net, in))
        return 1;
    /* groups by name prefix: spec group k -> optimizer group (k + 1 if some
     * parameter matches no group, else k) */
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(spec, "groups");
    int ng = cJSON_GetArraySize(groups), np = et_module_num_params(net);
    int of[16];
    for (int i = 0; i < np; i++) {
        of[i] = -1;
        for (int k = 0; k < ng && of[i] < 0; k++) {
            const cJSON *pre;
            cJSON_ArrayForEach(pre, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(groups, k),
                                                                     "params"))
                if (!strncmp(et_module_param_name(net, i), pre->valuestring, strlen(pre->valuestring)))
                    of[i] = k;
        }
    }
    bool rest = false;
    for (int i = 0; i < np; i++)
        rest |= of[i] < 0;
    et_optim *opt = NULL;
    for (int k = rest ? -1 : 0; k < ng; k++) {
        et_tensor *ps[16];
        int n = 0;
        for (int i = 0; i < np; i++)
            if (of[i] == k)
                ps[n++] = et_module_param(net, i);
        if (!opt)
            opt = optim_of(spec, ps, n);
        else if (et_optim_add_param_group(opt, ps, n) < 0)
            return fail("add_param_group");
        if (!opt)
            return fail("optimizer");
        const cJSON *gj = k >= 0 ? cJSON_GetArrayItem(groups, k) : NULL, *kv_;
        int gi = et_optim_num_groups(opt) - 1;
        cJSON_ArrayForEach(kv_, (cJSON *)gj) {
            if (cJSON_IsNumber(kv_) || cJSON_IsBool(kv_))
                if (et_optim_group_set(opt, gi, kv_->string,
                                       cJSON_IsBool(kv_) ? cJSON_IsTrue(kv_) : kv_->valuedouble) != ET_OK)
                    return fail("group_set");
        }
    }
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(spec, "sched");
    et_scheduler *sch = sj ? sched_of(sj, opt) : NULL;
    if (sj && !sch)
        return fail("scheduler");
    int steps = (int)jnum(spec, "steps", 50);
    bool replay = jnum(spec, "replay", 0) != 0;
    et_tensor_dict *out = et_tensor_dict_new();
    for (int step = 1; step <= steps; step++) {
        char name[96];
        et_pool_begin();
        et_optim_zero_grad(opt);
        et_tensor *loss = NULL;
        if (replay) {
            for (int i = 0; i < np; i++) {
                snprintf(name, sizeof name, "g%d.%s", step, et_module_param_name(net, i));
                et_tensor *g = et_tensor_dict_get(in, name);
                if (!g || et_set_grad(et_module_param(net, i), g) != ET_OK)
                    return fail(name);
            }
        } else {
            loss = et_mse_loss(et_module_forward(net, X), Y, ET_REDUCTION_MEAN);
            if (loss && jnum(spec, "maximize", 0) != 0)
                loss = et_neg(loss);
            if (!loss || et_backward(loss, NULL) != ET_OK)
                return fail("loss");
        }
        if (et_optim_step(opt) != ET_OK)
            return fail("step");
        if (sch && sched_step_with(sch, cJSON_GetObjectItemCaseSensitive(sj, "metrics"), step - 1))
            return fail("scheduler step");
        for (int i = 0; i < np; i++) {
            snprintf(name, sizeof name, "step%d.%s", step, et_module_param_name(net, i));
            et_tensor_dict_set(out, name, et_clone(et_module_param(net, i)));
        }
        et_pool_end();
    }
    int rc = save(out, outp);
    et_scheduler_free(sch);
    et_optim_free(opt);
    et_module_free(net);
    et_tensor_dict_free(in);
    cJSON_Delete(spec);
    return rc;
}

int nn_runner_more(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "sched2"))
        return cmd_sched2(argv[2], atof(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc >= 5 && !strcmp(argv[1], "optim2"))
        return cmd_optim2(argv[2], argv[3], argv[4]);
    if (argc >= 6 && !strcmp(argv[1], "loss2"))
        return cmd_loss2(argv[2], argv[3], argv[4], argv[5], argc - 6, argv + 6);
    if (argc >= 3 && !strcmp(argv[1], "nonleaf"))
        return cmd_nonleaf(argv[2]);
    return -1;
}
