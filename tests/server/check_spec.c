/* check_spec.c - model specifications (spec.h): every layer, loss,
 * optimizer and scheduler type parses; omitted fields take torch's
 * defaults, read from torch's own signatures (inspect.signature via
 * /usr/bin/python3); bad fields are refused with a message naming them. */
#include "check_server.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/spec.h"

/* ---- torch's defaults: "Class.param=<json>" lines from inspect.signature ---- */

static cJSON *torch_defaults; /* object "Class.param" -> value */

static void load_torch_defaults(void)
{
    static const char *script =
        "import inspect, json, torch\n"
        "mods = {torch.nn: ['Linear','ReLU','GELU','Softmax','LogSoftmax','LeakyReLU','Dropout',"
        "'Flatten','MSELoss','L1Loss','CrossEntropyLoss','NLLLoss','BCELoss','BCEWithLogitsLoss',"
        "'HuberLoss','SmoothL1Loss'],"
        " torch.optim: ['SGD','Adagrad','RMSprop','Adam','AdamW'],"
        " torch.optim.lr_scheduler: ['StepLR','MultiStepLR','ExponentialLR','CosineAnnealingLR',"
        "'LinearLR']}\n"
        "out = {}\n"
        "for m, names in mods.items():\n"
        "    for n in names:\n"
        "        for p in inspect.signature(getattr(m, n).__init__).parameters.values():\n"
        "            d = p.default\n"
        "            if isinstance(d, (bool, int, float, str, tuple)):\n"
        "                out[n + '.' + p.name] = list(d) if isinstance(d, tuple) else d\n"
        "print(json.dumps(out))\n";
    char path[] = "/tmp/check_spec_XXXXXX.py";
    int fd = mkstemps(path, 3);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return; /* tdef() then fails the test that needs a default */
    fputs(script, f);
    fclose(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", path);
    FILE *p = popen(cmd, "r");
    static char buf[65536];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    int rc = p ? pclose(p) : -1;
    remove(path);
    if (rc == 0)
        torch_defaults = cJSON_Parse(buf);
}

/* torch's default for key ("Adam.eps"), which must exist. */
static const cJSON *tdef(const char *key)
{
    ck_assert_msg(torch_defaults != NULL,
                  "cannot read torch's signatures (is torch importable by /usr/bin/python3?)");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(torch_defaults, key);
    ck_assert_msg(v != NULL, "torch has no default for %s", key);
    return v;
}

static void eq_num(const char *key, double got)
{
    const cJSON *v = tdef(key);
    double want = cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : v->valuedouble;
    ck_assert_msg(cJSON_IsNumber(v) || cJSON_IsBool(v), "%s is not a number in torch", key);
    ck_assert_msg(got == want, "%s: default %.17g, torch's is %.17g", key, got, want);
}

static void eq_str(const char *key, const char *got)
{
    const cJSON *v = tdef(key);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string in torch", key);
    ck_assert_msg(strcmp(got, v->valuestring) == 0, "%s: default %s, torch's is %s", key, got,
                  v->valuestring);
}

/* ---- helpers ---- */

#define BASE_LAYERS "\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2}]"
#define BASE_LOSS "\"loss\":\"MSELoss\""
#define BASE_OPT "\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1}"

static bool parse_spec(const char *text, etd_spec *s, char *err, size_t cap)
{
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "test JSON does not parse: %s", text);
    memset(s, 0, sizeof *s);
    bool ok = etd_spec_parse(j, 1000000, s, err, cap);
    cJSON_Delete(j);
    return ok;
}

static void must_parse(const char *text, etd_spec *s)
{
    char err[512];
    ck_assert_msg(parse_spec(text, s, err, sizeof err), "%s: %s", text, err);
}

/* Refused with a message containing every string in want (NULL-terminated). */
static void must_fail(const char *text, const char *want1, const char *want2)
{
    etd_spec s;
    char err[512] = "";
    ck_assert_msg(!parse_spec(text, &s, err, sizeof err), "accepted: %s", text);
    ck_assert_msg(strstr(err, want1), "%s: \"%s\" lacks \"%s\"", text, err, want1);
    if (want2)
        ck_assert_msg(strstr(err, want2), "%s: \"%s\" lacks \"%s\"", text, err, want2);
}

static void layer_spec(const char *layer_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},%s],"
             BASE_LOSS "," BASE_OPT "}", layer_json);
    must_parse(text, s);
    ck_assert_int_eq(s->nlayers, 2);
}

/* ---- layers ---- */

START_TEST(test_every_layer_type_parses_with_torch_defaults)
{
    etd_spec s;
    layer_spec("{\"type\":\"Linear\",\"in_features\":2,\"out_features\":4}", &s);
    ck_assert_int_eq(s.layers[1].kind, ETD_L_LINEAR);
    ck_assert_int_eq(s.layers[1].out_features, 4);
    eq_num("Linear.bias", s.layers[1].bias);
    ck_assert_int_eq(s.param_count, 3 * 2 + 2 + 2 * 4 + 4);
    etd_spec_free(&s);

    const struct { const char *type; etd_layer_kind kind; } plain[] = {
        {"ReLU", ETD_L_RELU}, {"Tanh", ETD_L_TANH}, {"Sigmoid", ETD_L_SIGMOID},
        {"Identity", ETD_L_IDENTITY}, {"GELU", ETD_L_GELU}, {"Softmax", ETD_L_SOFTMAX},
        {"LogSoftmax", ETD_L_LOGSOFTMAX}, {"LeakyReLU", ETD_L_LEAKYRELU},
        {"Dropout", ETD_L_DROPOUT}, {"Flatten", ETD_L_FLATTEN},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char l[128];
        snprintf(l, sizeof l, "{\"type\":\"%s\"}", plain[i].type);
        layer_spec(l, &s);
        const etd_layer *x = &s.layers[1];
        ck_assert_int_eq(x->kind, plain[i].kind);
        switch (x->kind) {
        case ETD_L_GELU: eq_str("GELU.approximate", x->gelu_tanh ? "tanh" : "none"); break;
        case ETD_L_LEAKYRELU: eq_num("LeakyReLU.negative_slope", x->negative_slope); break;
        case ETD_L_DROPOUT: eq_num("Dropout.p", x->p); break;
        case ETD_L_FLATTEN:
            eq_num("Flatten.start_dim", x->start_dim);
            eq_num("Flatten.end_dim", x->end_dim);
            break;
        case ETD_L_SOFTMAX:
        case ETD_L_LOGSOFTMAX:
            /* torch's dim=None picks a dim implicitly (deprecated); the daemon uses the
             * last dim, which is what that picks for the 2-D batches it serves (docs/API.md) */
            ck_assert_int_eq(x->dim, -1);
            break;
        default: break;
        }
        etd_spec_free(&s);
    }
}
END_TEST

START_TEST(test_layer_fields_are_read)
{
    etd_spec s;
    layer_spec("{\"type\":\"LeakyReLU\",\"negative_slope\":0.2,\"inplace\":true}", &s);
    ck_assert(s.layers[1].negative_slope == 0.2);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"GELU\",\"approximate\":\"tanh\"}", &s);
    ck_assert(s.layers[1].gelu_tanh);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"Flatten\",\"start_dim\":0,\"end_dim\":1}", &s);
    ck_assert_int_eq(s.layers[1].start_dim, 0);
    ck_assert_int_eq(s.layers[1].end_dim, 1);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"Dropout\",\"p\":0.25}", &s);
    ck_assert(s.layers[1].p == 0.25);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_layer_errors_name_the_field)
{
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2,\"bogus\":1}],"
              BASE_LOSS "," BASE_OPT "}", "layers[0].bogus", "unknown field");
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3}]," BASE_LOSS "," BASE_OPT "}",
              "out_features", "missing");
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":0,\"out_features\":2}],"
              BASE_LOSS "," BASE_OPT "}", "in_features", "positive");
    must_fail("{\"layers\":[{\"type\":\"Conv2d\"}]," BASE_LOSS "," BASE_OPT "}", "Conv2d", NULL);
    must_fail("{\"layers\":[{\"type\":\"Dropout\",\"p\":1.5}]," BASE_LOSS "," BASE_OPT "}",
              "p", NULL);
    must_fail("{\"layers\":[{\"type\":\"GELU\",\"approximate\":\"fast\"}]," BASE_LOSS "," BASE_OPT "}",
              "approximate", NULL);
    must_fail("{\"layers\":[{\"type\":\"ReLU\",\"inplace\":1}]," BASE_LOSS "," BASE_OPT "}",
              "inplace", NULL);
    must_fail("{\"layers\":[{\"type\":\"Tanh\",\"x\":1}]," BASE_LOSS "," BASE_OPT "}", "x",
              "unknown field");
    /* float-typed fields: a double that overflows float32 is refused by the parser (H8) */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},"
              "{\"type\":\"LeakyReLU\",\"negative_slope\":1e100}]," BASE_LOSS "," BASE_OPT "}",
              "layers[1].negative_slope", NULL);
    /* Linear feature chaining */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},"
              "{\"type\":\"Linear\",\"in_features\":5,\"out_features\":1}]," BASE_LOSS "," BASE_OPT "}",
              "in_features", NULL);
}
END_TEST

/* ---- losses ---- */

START_TEST(test_every_loss_type_parses_with_torch_defaults)
{
    const struct { const char *type; etd_loss_kind kind; const char *arg; } losses[] = {
        {"MSELoss", ETD_LOSS_MSE, NULL}, {"L1Loss", ETD_LOSS_L1, NULL},
        {"CrossEntropyLoss", ETD_LOSS_CE, "label_smoothing"}, {"NLLLoss", ETD_LOSS_NLL, NULL},
        {"BCELoss", ETD_LOSS_BCE, NULL}, {"BCEWithLogitsLoss", ETD_LOSS_BCELOGITS, NULL},
        {"HuberLoss", ETD_LOSS_HUBER, "delta"}, {"SmoothL1Loss", ETD_LOSS_SMOOTHL1, "beta"},
    };
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        char text[512], key[64];
        /* both the string shorthand and the object form */
        for (int form = 0; form < 2; form++) {
            if (form == 0)
                snprintf(text, sizeof text, "{" BASE_LAYERS ",\"loss\":\"%s\"," BASE_OPT "}",
                         losses[i].type);
            else
                snprintf(text, sizeof text, "{" BASE_LAYERS ",\"loss\":{\"type\":\"%s\"}," BASE_OPT "}",
                         losses[i].type);
            etd_spec s;
            must_parse(text, &s);
            ck_assert_int_eq(s.loss, losses[i].kind);
            ck_assert_str_eq(etd_loss_name(s.loss), losses[i].type);
            snprintf(key, sizeof key, "%s.reduction", losses[i].type);
            eq_str(key, s.reduction == ET_REDUCTION_SUM ? "sum" : "mean");
            if (losses[i].arg) {
                snprintf(key, sizeof key, "%s.%s", losses[i].type, losses[i].arg);
                eq_num(key, s.loss_arg);
            }
            etd_spec_free(&s);
        }
    }
}
END_TEST

START_TEST(test_loss_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"delta\":1}," BASE_OPT "}",
              "loss.delta", "unknown field");
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"reduction\":\"none\"}," BASE_OPT "}",
              "loss.reduction", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":\"KLDivLoss\"," BASE_OPT "}", "KLDivLoss", NULL);
    must_fail("{" BASE_LAYERS "," BASE_OPT "}", "loss", "missing");
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"HuberLoss\",\"delta\":0}," BASE_OPT "}",
              "loss.delta", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"HuberLoss\",\"delta\":1e300}," BASE_OPT "}",
              "loss.delta", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"SmoothL1Loss\",\"beta\":1e300}," BASE_OPT "}",
              "loss.beta", NULL);
}
END_TEST

/* ---- optimizers ---- */

static void opt_spec(const char *opt_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text, "{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":%s}", opt_json);
    must_parse(text, s);
}

START_TEST(test_every_optimizer_type_parses_with_torch_defaults)
{
    etd_spec s;
    opt_spec("{\"type\":\"SGD\",\"lr\":0.5}", &s);
    ck_assert_int_eq(s.opt, ETD_OPT_SGD);
    ck_assert(s.sgd.lr == 0.5);
    eq_num("SGD.momentum", s.sgd.momentum);
    eq_num("SGD.dampening", s.sgd.dampening);
    eq_num("SGD.weight_decay", s.sgd.weight_decay);
    eq_num("SGD.nesterov", s.sgd.nesterov);
    eq_num("SGD.maximize", s.sgd.maximize);
    etd_spec_free(&s);

    opt_spec("{\"type\":\"Adagrad\"}", &s);
    ck_assert_int_eq(s.opt, ETD_OPT_ADAGRAD);
    eq_num("Adagrad.lr", s.adagrad.lr);
    eq_num("Adagrad.lr_decay", s.adagrad.lr_decay);
    eq_num("Adagrad.weight_decay", s.adagrad.weight_decay);
    eq_num("Adagrad.initial_accumulator_value", s.adagrad.initial_accumulator_value);
    eq_num("Adagrad.eps", s.adagrad.eps);
    eq_num("Adagrad.maximize", s.adagrad.maximize);
    etd_spec_free(&s);

    opt_spec("{\"type\":\"RMSprop\"}", &s);
    ck_assert_int_eq(s.opt, ETD_OPT_RMSPROP);
    eq_num("RMSprop.lr", s.rmsprop.lr);
    eq_num("RMSprop.alpha", s.rmsprop.alpha);
    eq_num("RMSprop.eps", s.rmsprop.eps);
    eq_num("RMSprop.weight_decay", s.rmsprop.weight_decay);
    eq_num("RMSprop.momentum", s.rmsprop.momentum);
    eq_num("RMSprop.centered", s.rmsprop.centered);
    eq_num("RMSprop.maximize", s.rmsprop.maximize);
    etd_spec_free(&s);

    const char *adams[] = {"Adam", "AdamW"};
    for (int i = 0; i < 2; i++) {
        char j[64], key[64];
        snprintf(j, sizeof j, "{\"type\":\"%s\"}", adams[i]);
        opt_spec(j, &s);
        ck_assert_int_eq(s.opt, i ? ETD_OPT_ADAMW : ETD_OPT_ADAM);
        ck_assert_str_eq(etd_opt_name(s.opt), adams[i]);
#define A(field, val) (snprintf(key, sizeof key, "%s.%s", adams[i], field), eq_num(key, val))
        A("lr", s.adam.lr);
        A("eps", s.adam.eps);
        A("weight_decay", s.adam.weight_decay);
        A("amsgrad", s.adam.amsgrad);
        A("maximize", s.adam.maximize);
#undef A
        snprintf(key, sizeof key, "%s.betas", adams[i]);
        const cJSON *b = tdef(key);
        ck_assert(s.adam.beta1 == cJSON_GetArrayItem(b, 0)->valuedouble);
        ck_assert(s.adam.beta2 == cJSON_GetArrayItem(b, 1)->valuedouble);
        etd_spec_free(&s);
    }
    opt_spec("{\"type\":\"Adam\",\"betas\":[0.5,0.75],\"lr\":0.02,\"amsgrad\":true}", &s);
    ck_assert(s.adam.beta1 == 0.5 && s.adam.beta2 == 0.75 && s.adam.lr == 0.02 && s.adam.amsgrad);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_optimizer_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\"}}", "optimizer.lr",
              "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,\"beta\":1}}",
              "optimizer.beta", "unknown field");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"betas\":[0.9,1]}}",
              "optimizer.betas[1]", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"lr\":-1}}",
              "optimizer.lr", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1,"
              "\"nesterov\":true}}", "optimizer.nesterov", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"LBFGS\"}}", "LBFGS", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"Adam\",\"lr\":0.1,\"lr\":0.2}}",
              "optimizer.lr", "repeated");
}
END_TEST

/* ---- schedulers ---- */

static void sched_spec(const char *sched_json, etd_spec *s)
{
    char text[1024];
    snprintf(text, sizeof text, "{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":%s}",
             sched_json);
    must_parse(text, s);
}

START_TEST(test_every_scheduler_type_parses_with_torch_defaults)
{
    etd_spec s;
    must_parse("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_NONE);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"StepLR\",\"step_size\":3}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_STEP);
    ck_assert_int_eq(s.step_size, 3);
    eq_num("StepLR.gamma", s.gamma);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"MultiStepLR\",\"milestones\":[2,5]}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_MULTISTEP);
    ck_assert_int_eq(s.nmilestones, 2);
    ck_assert_int_eq(s.milestones[1], 5);
    eq_num("MultiStepLR.gamma", s.gamma);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"ExponentialLR\",\"gamma\":0.9}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_EXP);
    ck_assert(s.gamma == 0.9);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"CosineAnnealingLR\",\"T_max\":10}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_COSINE);
    ck_assert_int_eq(s.T_max, 10);
    eq_num("CosineAnnealingLR.eta_min", s.eta_min);
    etd_spec_free(&s);

    sched_spec("{\"type\":\"LinearLR\"}", &s);
    ck_assert_int_eq(s.sched, ETD_SCHED_LINEAR);
    eq_num("LinearLR.start_factor", s.start_factor);
    eq_num("LinearLR.end_factor", s.end_factor);
    eq_num("LinearLR.total_iters", (double)s.total_iters);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_scheduler_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"StepLR\"}}",
              "scheduler.step_size", "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"StepLR\",\"step_size\":1,\"T_max\":2}}",
              "scheduler.T_max", "unknown field");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"MultiStepLR\",\"milestones\":[1,-2]}}",
              "scheduler.milestones[1]", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"ExponentialLR\"}}",
              "scheduler.gamma", "missing");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"LinearLR\",\"start_factor\":0}}",
              "scheduler.start_factor", NULL);
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"OneCycleLR\"}}",
              "OneCycleLR", NULL);
    /* the spec promises that a parsed spec builds: et_linearlr_new refuses total_iters 0 */
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT
              ",\"scheduler\":{\"type\":\"LinearLR\",\"total_iters\":0}}",
              "scheduler.total_iters", NULL);
}
END_TEST

/* ---- the whole spec ---- */

START_TEST(test_top_level_fields_and_limits)
{
    etd_spec s;
    must_parse("{\"name\":\"ignored\",\"seed\":7," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert(s.has_seed);
    ck_assert_uint_eq(s.seed, 7);
    ck_assert_int_eq(s.in_features, 3);
    ck_assert_int_eq(s.out_features, 2);
    ck_assert_int_eq(s.param_count, 8);
    etd_spec_free(&s);
    must_fail("{\"extra\":1," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", "extra",
              "unknown field (accepted: name, layers, loss, optimizer, scheduler, seed)");
    must_fail("{\"seed\":1,\"seed\":2," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", "seed",
              "repeated field");
    must_fail("{\"layers\":[]," BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    must_fail("{" BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    /* no parameters: torch's optimizers refuse an empty parameter list */
    must_fail("{\"layers\":[{\"type\":\"Identity\"}]," BASE_LOSS "," BASE_OPT "}", "layers",
              "no parameters");
    /* parameter count over max_params (1e6 here), without overflow for huge sizes */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":1099511627776,"
              "\"out_features\":1099511627776}]," BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":1000,\"out_features\":1001}],"
              BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    etd_spec zero = {0};
    etd_spec_free(&zero); /* freeing a zeroed spec is harmless */
}
END_TEST

START_TEST(test_parsed_spec_builds)
{
    etd_spec s;
    must_parse("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":4},"
               "{\"type\":\"ReLU\"},{\"type\":\"Linear\",\"in_features\":4,\"out_features\":2}],"
               "\"loss\":\"CrossEntropyLoss\",\"optimizer\":{\"type\":\"Adam\"},"
               "\"scheduler\":{\"type\":\"StepLR\",\"step_size\":2},\"seed\":1}", &s);
    char err[256];
    et_generator *g = et_generator_new(1);
    et_module *net = etd_spec_build_net(&s, g, err, sizeof err);
    ck_assert_msg(net != NULL, "%s", err);
    int n = et_module_num_params(net);
    ck_assert_int_eq(n, 4);
    et_tensor *params[4];
    for (int i = 0; i < n; i++)
        params[i] = et_module_param(net, i);
    et_optim *o = etd_spec_build_optim(&s, params, n, err, sizeof err);
    ck_assert_msg(o != NULL, "%s", err);
    et_scheduler *sc = etd_spec_build_sched(&s, o, err, sizeof err);
    ck_assert_msg(sc != NULL, "%s", err);
    et_scheduler_free(sc);
    et_optim_free(o);
    et_module_free(net);
    et_generator_free(g);
    etd_spec_free(&s);
}
END_TEST

/* ---- etd_bad_key / etd_join_names ---- */

START_TEST(test_bad_key_finds_unknown_and_repeated_keys)
{
    static const char *const allowed[] = {"a", "b", NULL};
    bool rep = true;
    cJSON *j = cJSON_Parse("{\"a\":1,\"type\":2,\"b\":3}");
    ck_assert_ptr_null(etd_bad_key(j, allowed, "type", &rep));
    const cJSON *e = etd_bad_key(j, allowed, NULL, &rep);
    ck_assert_str_eq(e->string, "type");
    ck_assert(!rep);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"a\":1,\"b\":2,\"a\":3}");
    e = etd_bad_key(j, allowed, NULL, &rep);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->string, "a");
    ck_assert(rep);
    ck_assert_ptr_eq(e, cJSON_GetArrayItem(j, 2)); /* the repeat, not the first */
    cJSON_Delete(j);
    j = cJSON_Parse("{}");
    ck_assert_ptr_null(etd_bad_key(j, allowed, NULL, &rep));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_join_names_truncates_safely)
{
    static const char *const names[] = {"alpha", "beta", "gamma", "delta", NULL};
    static const char *const none[] = {NULL};
    char buf[64];
    etd_join_names(names, buf, sizeof buf);
    ck_assert_str_eq(buf, "alpha, beta, gamma, delta");
    etd_join_names(none, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    char small[9];
    memset(small, 'x', sizeof small);
    etd_join_names(names, small, 8); /* one byte of slack: nothing written past cap */
    ck_assert_str_eq(small, "alpha, ");
    ck_assert_int_eq(small[8], 'x');
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, test_every_layer_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_layer_fields_are_read);
    tcase_add_test(tc, test_layer_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("losses");
    tcase_add_test(tc, test_every_loss_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_loss_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("optimizers");
    tcase_add_test(tc, test_every_optimizer_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_optimizer_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedulers");
    tcase_add_test(tc, test_every_scheduler_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_scheduler_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("spec");
    tcase_add_test(tc, test_top_level_fields_and_limits);
    tcase_add_test(tc, test_parsed_spec_builds);
    suite_add_tcase(s, tc);
    tc = tcase_create("key_checks");
    tcase_add_test(tc, test_bad_key_finds_unknown_and_repeated_keys);
    tcase_add_test(tc, test_join_names_truncates_safely);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    load_torch_defaults(); /* once: the forked tests inherit it */
    int rc = run_suite(suite());
    cJSON_Delete(torch_defaults);
    return rc;
}
