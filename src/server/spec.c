/* spec.c - parse, validate and build model specifications for easytorchd. */
#include "server/spec.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- field helpers: each returns false with a message naming path.key ---- */

static bool fail(char *err, size_t cap, const char *path, const char *key, const char *msg)
{
    if (key)
        snprintf(err, cap, "%s.%s: %s", path, key, msg);
    else
        snprintf(err, cap, "%s: %s", path, msg);
    return false;
}

const cJSON *etd_bad_key(const cJSON *obj, const char *const *allowed, const char *also,
                         bool *repeated)
{
    for (const cJSON *e = obj->child; e; e = e->next) {
        for (const cJSON *p = obj->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0) {
                *repeated = true;
                return e;
            }
        bool ok = also && strcmp(e->string, also) == 0;
        for (int i = 0; !ok && allowed[i]; i++)
            ok = strcmp(allowed[i], e->string) == 0;
        if (!ok) {
            *repeated = false;
            return e;
        }
    }
    return NULL;
}

void etd_join_names(const char *const *allowed, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; allowed[i] && n < cap; i++) /* snprintf truncates; n may pass cap */
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", allowed[i]);
}

/* Every key of obj must be "type" or in allowed[], and appear once. */
static bool check_fields(const cJSON *obj, const char *path, const char *type,
                         const char *const *allowed, char *err, size_t cap)
{
    bool repeated;
    const cJSON *e = etd_bad_key(obj, allowed, "type", &repeated);
    if (!e)
        return true;
    if (repeated)
        return fail(err, cap, path, e->string, "repeated field");
    char list[256], msg[400];
    etd_join_names(allowed, list, sizeof list);
    snprintf(msg, sizeof msg, "unknown field for %s (%s%s)", type,
             allowed[0] ? "accepted: " : "it takes no fields", list);
    return fail(err, cap, path, e->string, msg);
}

static bool get_int(const cJSON *o, const char *key, const char *path, bool required,
                    int64_t def, int64_t min, int64_t *out, char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required)
            return fail(err, cap, path, key, "required field is missing");
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < (double)min || fabs(d) > 9007199254740992.0) {
        char msg[80];
        if (min == 1)
            snprintf(msg, sizeof msg, "expected a positive integer");
        else if (min == 0)
            snprintf(msg, sizeof msg, "expected a non-negative integer");
        else
            snprintf(msg, sizeof msg, "expected an integer");
        return fail(err, cap, path, key, msg);
    }
    *out = (int64_t)d;
    return true;
}

/* Number in [lo, hi] (hi_open: [lo, hi)). */
static bool get_num(const cJSON *o, const char *key, const char *path, bool required,
                    double def, double lo, double hi, bool hi_open, double *out, char *err,
                    size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required)
            return fail(err, cap, path, key, "required field is missing");
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d < lo || d > hi || (hi_open && d == hi)) {
        char msg[120];
        if (isinf(lo) && isinf(hi))
            snprintf(msg, sizeof msg, "expected a number");
        else if (isinf(hi))
            snprintf(msg, sizeof msg, "expected a number >= %g", lo);
        else
            snprintf(msg, sizeof msg, "expected a number in [%g, %g%c", lo, hi, hi_open ? ')' : ']');
        return fail(err, cap, path, key, msg);
    }
    *out = d;
    return true;
}

static bool get_bool(const cJSON *o, const char *key, const char *path, bool def, bool *out,
                     char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!cJSON_IsBool(v))
        return fail(err, cap, path, key, "expected true or false");
    *out = cJSON_IsTrue(v);
    return true;
}

static bool get_type(const cJSON *o, const char *path, const char **out, char *err, size_t cap)
{
    if (!cJSON_IsObject(o))
        return fail(err, cap, path, NULL, "expected an object with a \"type\"");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!t)
        return fail(err, cap, path, "type", "required field is missing");
    if (!cJSON_IsString(t))
        return fail(err, cap, path, "type", "expected a string");
    *out = t->valuestring;
    return true;
}

#define NUM(key, def, lo, hi, dst) \
    do { double v_; if (!get_num(o, key, path, false, def, lo, hi, false, &v_, err, cap)) return false; dst = v_; } while (0)
#define BOOL(key, def, dst) \
    do { if (!get_bool(o, key, path, def, &dst, err, cap)) return false; } while (0)

/* ---- layers ---- */

static const char *const NOFIELDS[] = {NULL};

static bool parse_layer(const cJSON *o, const char *path, etd_layer *l, char *err, size_t cap)
{
    const char *type;
    if (!get_type(o, path, &type, err, cap))
        return false;
    memset(l, 0, sizeof *l);
    bool inplace = false; /* accepted for torch compatibility, no effect */
    if (strcmp(type, "Linear") == 0) {
        static const char *const f[] = {"in_features", "out_features", "bias", NULL};
        l->kind = ETD_L_LINEAR;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_int(o, "in_features", path, true, 0, 1, &l->in_features, err, cap) ||
            !get_int(o, "out_features", path, true, 0, 1, &l->out_features, err, cap))
            return false;
        BOOL("bias", true, l->bias);
    } else if (strcmp(type, "ReLU") == 0) {
        static const char *const f[] = {"inplace", NULL};
        l->kind = ETD_L_RELU;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        BOOL("inplace", false, inplace);
    } else if (strcmp(type, "Tanh") == 0 || strcmp(type, "Sigmoid") == 0 ||
               strcmp(type, "Identity") == 0) {
        l->kind = type[0] == 'T' ? ETD_L_TANH : type[0] == 'S' ? ETD_L_SIGMOID : ETD_L_IDENTITY;
        if (!check_fields(o, path, type, NOFIELDS, err, cap))
            return false;
    } else if (strcmp(type, "GELU") == 0) {
        static const char *const f[] = {"approximate", NULL};
        l->kind = ETD_L_GELU;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "approximate");
        if (a) {
            if (!cJSON_IsString(a) ||
                (strcmp(a->valuestring, "none") != 0 && strcmp(a->valuestring, "tanh") != 0))
                return fail(err, cap, path, "approximate", "expected \"none\" or \"tanh\"");
            l->gelu_tanh = strcmp(a->valuestring, "tanh") == 0;
        }
    } else if (strcmp(type, "Softmax") == 0 || strcmp(type, "LogSoftmax") == 0) {
        static const char *const f[] = {"dim", NULL};
        l->kind = type[0] == 'S' ? ETD_L_SOFTMAX : ETD_L_LOGSOFTMAX;
        int64_t dim;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_int(o, "dim", path, false, -1, -ET_MAX_DIMS, &dim, err, cap))
            return false;
        if (dim >= ET_MAX_DIMS)
            return fail(err, cap, path, "dim", "out of range");
        l->dim = (int)dim;
    } else if (strcmp(type, "LeakyReLU") == 0) {
        static const char *const f[] = {"negative_slope", "inplace", NULL};
        l->kind = ETD_L_LEAKYRELU;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("negative_slope", 0.01, -FLT_MAX, FLT_MAX, l->negative_slope); /* a float in nn */
        BOOL("inplace", false, inplace);
    } else if (strcmp(type, "Dropout") == 0) {
        static const char *const f[] = {"p", "inplace", NULL};
        l->kind = ETD_L_DROPOUT;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("p", 0.5, 0.0, 1.0, l->p);
        BOOL("inplace", false, inplace);
    } else if (strcmp(type, "Flatten") == 0) {
        static const char *const f[] = {"start_dim", "end_dim", NULL};
        l->kind = ETD_L_FLATTEN;
        int64_t s, e;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_int(o, "start_dim", path, false, 1, -ET_MAX_DIMS, &s, err, cap) ||
            !get_int(o, "end_dim", path, false, -1, -ET_MAX_DIMS, &e, err, cap))
            return false;
        if (s >= ET_MAX_DIMS)
            return fail(err, cap, path, "start_dim", "out of range");
        if (e >= ET_MAX_DIMS)
            return fail(err, cap, path, "end_dim", "out of range");
        l->start_dim = (int)s;
        l->end_dim = (int)e;
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown layer type \"%.60s\" (known: Linear, ReLU, Tanh, "
                 "Sigmoid, GELU, Softmax, LogSoftmax, LeakyReLU, Dropout, Flatten, Identity)", type);
        return fail(err, cap, path, "type", msg);
    }
    (void)inplace;
    return true;
}

/* ---- loss ---- */

static bool parse_loss(const cJSON *o, etd_spec *s, char *err, size_t cap)
{
    const char *path = "loss";
    const char *type;
    cJSON *tmp = NULL;
    if (!o)
        return fail(err, cap, path, NULL, "required field is missing");
    if (cJSON_IsString(o)) {
        tmp = cJSON_CreateObject();
        if (!tmp || !cJSON_AddStringToObject(tmp, "type", o->valuestring)) {
            cJSON_Delete(tmp);
            return fail(err, cap, path, NULL, "out of memory");
        }
        o = tmp;
    }
    bool ok = false;
    if (!get_type(o, path, &type, err, cap))
        goto out;
    static const char *const f_plain[] = {"reduction", NULL};
    static const char *const f_ce[] = {"reduction", "label_smoothing", NULL};
    static const char *const f_huber[] = {"reduction", "delta", NULL};
    static const char *const f_sl1[] = {"reduction", "beta", NULL};
    const char *const *fields = f_plain;
    s->loss_arg = 0;
    if (strcmp(type, "MSELoss") == 0) s->loss = ETD_LOSS_MSE;
    else if (strcmp(type, "L1Loss") == 0) s->loss = ETD_LOSS_L1;
    else if (strcmp(type, "CrossEntropyLoss") == 0) { s->loss = ETD_LOSS_CE; fields = f_ce; }
    else if (strcmp(type, "NLLLoss") == 0) s->loss = ETD_LOSS_NLL;
    else if (strcmp(type, "BCELoss") == 0) s->loss = ETD_LOSS_BCE;
    else if (strcmp(type, "BCEWithLogitsLoss") == 0) s->loss = ETD_LOSS_BCELOGITS;
    else if (strcmp(type, "HuberLoss") == 0) { s->loss = ETD_LOSS_HUBER; fields = f_huber; }
    else if (strcmp(type, "SmoothL1Loss") == 0) { s->loss = ETD_LOSS_SMOOTHL1; fields = f_sl1; }
    else {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown loss type \"%.60s\" (known: MSELoss, L1Loss, "
                 "CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss, HuberLoss, SmoothL1Loss)",
                 type);
        fail(err, cap, path, "type", msg);
        goto out;
    }
    if (!check_fields(o, path, type, fields, err, cap))
        goto out;
    s->reduction = ET_REDUCTION_MEAN;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reduction");
    if (r) {
        if (!cJSON_IsString(r) ||
            (strcmp(r->valuestring, "mean") != 0 && strcmp(r->valuestring, "sum") != 0)) {
            fail(err, cap, path, "reduction", "expected \"mean\" or \"sum\"");
            goto out;
        }
        s->reduction = strcmp(r->valuestring, "sum") == 0 ? ET_REDUCTION_SUM : ET_REDUCTION_MEAN;
    }
    if (s->loss == ETD_LOSS_CE &&
        !get_num(o, "label_smoothing", path, false, 0.0, 0.0, 1.0, false, &s->loss_arg, err, cap))
        goto out;
    if (s->loss == ETD_LOSS_HUBER &&
        !get_num(o, "delta", path, false, 1.0, 0.0, FLT_MAX, false, &s->loss_arg, err, cap))
        goto out;
    if (s->loss == ETD_LOSS_HUBER && s->loss_arg <= 0) {
        fail(err, cap, path, "delta", "expected a positive number");
        goto out;
    }
    if (s->loss == ETD_LOSS_SMOOTHL1 &&
        !get_num(o, "beta", path, false, 1.0, 0.0, FLT_MAX, false, &s->loss_arg, err, cap))
        goto out;
    ok = true;
out:
    cJSON_Delete(tmp);
    return ok;
}

/* ---- optimizer ---- */

static bool parse_optim(const cJSON *o, etd_spec *s, char *err, size_t cap)
{
    const char *path = "optimizer";
    const char *type;
    if (!o)
        return fail(err, cap, path, NULL, "required field is missing");
    if (!get_type(o, path, &type, err, cap))
        return false;
    if (strcmp(type, "SGD") == 0) {
        static const char *const f[] = {"lr", "momentum", "dampening", "weight_decay",
                                        "nesterov", "maximize", NULL};
        et_sgd_opts *p = &s->sgd;
        *p = ET_SGD_DEFAULTS;
        s->opt = ETD_OPT_SGD;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        /* torch.optim.SGD has no default lr: required here too */
        if (!get_num(o, "lr", path, true, 0, 0, INFINITY, false, &p->lr, err, cap))
            return false;
        NUM("momentum", 0.0, 0.0, INFINITY, p->momentum);
        NUM("dampening", 0.0, -INFINITY, INFINITY, p->dampening);
        NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
        BOOL("nesterov", false, p->nesterov);
        BOOL("maximize", false, p->maximize);
        if (p->nesterov && (p->momentum <= 0 || p->dampening != 0))
            return fail(err, cap, path, "nesterov",
                        "Nesterov momentum requires a momentum and zero dampening");
    } else if (strcmp(type, "Adagrad") == 0) {
        static const char *const f[] = {"lr", "lr_decay", "weight_decay",
                                        "initial_accumulator_value", "eps", "maximize", NULL};
        et_adagrad_opts *p = &s->adagrad;
        *p = ET_ADAGRAD_DEFAULTS;
        s->opt = ETD_OPT_ADAGRAD;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("lr", 1e-2, 0.0, INFINITY, p->lr);
        NUM("lr_decay", 0.0, 0.0, INFINITY, p->lr_decay);
        NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
        NUM("initial_accumulator_value", 0.0, 0.0, INFINITY, p->initial_accumulator_value);
        NUM("eps", 1e-10, 0.0, INFINITY, p->eps);
        BOOL("maximize", false, p->maximize);
    } else if (strcmp(type, "RMSprop") == 0) {
        static const char *const f[] = {"lr", "alpha", "eps", "weight_decay", "momentum",
                                        "centered", "maximize", NULL};
        et_rmsprop_opts *p = &s->rmsprop;
        *p = ET_RMSPROP_DEFAULTS;
        s->opt = ETD_OPT_RMSPROP;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("lr", 1e-2, 0.0, INFINITY, p->lr);
        NUM("alpha", 0.99, 0.0, INFINITY, p->alpha);
        NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
        NUM("weight_decay", 0.0, 0.0, INFINITY, p->weight_decay);
        NUM("momentum", 0.0, 0.0, INFINITY, p->momentum);
        BOOL("centered", false, p->centered);
        BOOL("maximize", false, p->maximize);
    } else if (strcmp(type, "Adam") == 0 || strcmp(type, "AdamW") == 0) {
        static const char *const f[] = {"lr", "betas", "eps", "weight_decay", "amsgrad",
                                        "maximize", NULL};
        bool w = strcmp(type, "AdamW") == 0;
        et_adam_opts *p = &s->adam;
        *p = w ? ET_ADAMW_DEFAULTS : ET_ADAM_DEFAULTS;
        s->opt = w ? ETD_OPT_ADAMW : ETD_OPT_ADAM;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("lr", 1e-3, 0.0, INFINITY, p->lr);
        NUM("eps", 1e-8, 0.0, INFINITY, p->eps);
        NUM("weight_decay", w ? 1e-2 : 0.0, 0.0, INFINITY, p->weight_decay);
        BOOL("amsgrad", false, p->amsgrad);
        BOOL("maximize", false, p->maximize);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "betas");
        if (b) {
            if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2)
                return fail(err, cap, path, "betas", "expected a list of two numbers in [0, 1)");
            for (int i = 0; i < 2; i++) {
                const cJSON *x = cJSON_GetArrayItem(b, i);
                double v = x ? x->valuedouble : -1;
                if (!cJSON_IsNumber(x) || !(v >= 0 && v < 1)) {
                    char k[16];
                    snprintf(k, sizeof k, "betas[%d]", i);
                    return fail(err, cap, path, k, "expected a number in [0, 1)");
                }
                if (i == 0)
                    p->beta1 = v;
                else
                    p->beta2 = v;
            }
        }
    } else {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "unknown optimizer type \"%.60s\" (known: SGD, Adagrad, RMSprop, Adam, AdamW)", type);
        return fail(err, cap, path, "type", msg);
    }
    return true;
}

/* ---- scheduler ---- */

static bool parse_sched(const cJSON *o, etd_spec *s, char *err, size_t cap)
{
    const char *path = "scheduler";
    const char *type;
    s->sched = ETD_SCHED_NONE;
    if (!o || cJSON_IsNull(o))
        return true;
    if (!get_type(o, path, &type, err, cap))
        return false;
    if (strcmp(type, "StepLR") == 0) {
        static const char *const f[] = {"step_size", "gamma", NULL};
        s->sched = ETD_SCHED_STEP;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_int(o, "step_size", path, true, 0, 1, &s->step_size, err, cap))
            return false;
        NUM("gamma", 0.1, 0.0, INFINITY, s->gamma);
    } else if (strcmp(type, "MultiStepLR") == 0) {
        static const char *const f[] = {"milestones", "gamma", NULL};
        s->sched = ETD_SCHED_MULTISTEP;
        if (!check_fields(o, path, type, f, err, cap))
            return false;
        NUM("gamma", 0.1, 0.0, INFINITY, s->gamma);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "milestones");
        if (!m)
            return fail(err, cap, path, "milestones", "required field is missing");
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) > 10000)
            return fail(err, cap, path, "milestones", "expected a list of non-negative integers");
        int n = cJSON_GetArraySize(m);
        s->milestones = calloc((size_t)(n ? n : 1), sizeof(int64_t));
        if (!s->milestones)
            return fail(err, cap, path, "milestones", "out of memory");
        s->nmilestones = n;
        int i = 0;
        for (const cJSON *x = m->child; x; x = x->next, i++) {
            double v = x->valuedouble;
            if (!cJSON_IsNumber(x) || v < 0 || v != floor(v) || v > 9007199254740992.0) {
                char k[32];
                snprintf(k, sizeof k, "milestones[%d]", i);
                return fail(err, cap, path, k, "expected a non-negative integer");
            }
            s->milestones[i] = (int64_t)v;
        }
    } else if (strcmp(type, "ExponentialLR") == 0) {
        static const char *const f[] = {"gamma", NULL};
        s->sched = ETD_SCHED_EXP;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_num(o, "gamma", path, true, 0, 0, INFINITY, false, &s->gamma, err, cap))
            return false;
    } else if (strcmp(type, "CosineAnnealingLR") == 0) {
        static const char *const f[] = {"T_max", "eta_min", NULL};
        s->sched = ETD_SCHED_COSINE;
        if (!check_fields(o, path, type, f, err, cap) ||
            !get_int(o, "T_max", path, true, 0, 1, &s->T_max, err, cap))
            return false;
        NUM("eta_min", 0.0, 0.0, INFINITY, s->eta_min);
    } else if (strcmp(type, "LinearLR") == 0) {
        static const char *const f[] = {"start_factor", "end_factor", "total_iters", NULL};
        s->sched = ETD_SCHED_LINEAR;
        if (!check_fields(o, path, type, f, err, cap) ||
            /* torch takes 0 (the lr then stays at start_factor x lr for ever);
             * et_linearlr_new needs at least 1 */
            !get_int(o, "total_iters", path, false, 5, 1, &s->total_iters, err, cap))
            return false;
        NUM("end_factor", 1.0, 0.0, 1.0, s->end_factor);
        if (!get_num(o, "start_factor", path, false, 1.0 / 3.0, 0.0, 1.0, false,
                     &s->start_factor, err, cap))
            return false;
        if (s->start_factor <= 0)
            return fail(err, cap, path, "start_factor", "expected a number in (0, 1]");
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown scheduler type \"%.60s\" (known: StepLR, MultiStepLR, "
                 "ExponentialLR, CosineAnnealingLR, LinearLR)", type);
        return fail(err, cap, path, "type", msg);
    }
    return true;
}

/* ---- whole spec ---- */

bool etd_spec_parse(const cJSON *root, int64_t max_params, etd_spec *s, char *err, size_t cap)
{
    static const char *const top[] = {"name", "layers", "loss", "optimizer", "scheduler", "seed",
                                      NULL};
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(root))
        return fail(err, cap, "body", NULL, "expected a JSON object");
    bool repeated;
    const cJSON *bad = etd_bad_key(root, top, NULL, &repeated);
    if (bad) {
        if (repeated)
            return fail(err, cap, bad->string, NULL, "repeated field");
        char list[128];
        etd_join_names(top, list, sizeof list);
        snprintf(err, cap, "%s: unknown field (accepted: %s)", bad->string, list);
        return false;
    }
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!layers)
        return fail(err, cap, "layers", NULL, "required field is missing");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
        return fail(err, cap, "layers", NULL, "expected a non-empty list of layers");
    int n = cJSON_GetArraySize(layers);
    if (n > 1000)
        return fail(err, cap, "layers", NULL, "more than 1000 layers");
    s->layers = calloc((size_t)n, sizeof *s->layers);
    if (!s->layers)
        return fail(err, cap, "layers", NULL, "out of memory");
    s->nlayers = n;
    int64_t features = -1; /* feature size flowing into the next layer, -1 unknown */
    s->in_features = -1;
    bool seen_shape_change = false;
    int i = 0;
    for (const cJSON *l = layers->child; l; l = l->next, i++) {
        char path[32];
        snprintf(path, sizeof path, "layers[%d]", i);
        etd_layer *L = &s->layers[i];
        if (!parse_layer(l, path, L, err, cap))
            goto bad;
        if (L->kind == ETD_L_LINEAR) {
            if (features >= 0 && L->in_features != features) {
                snprintf(err, cap, "%s.in_features: expected %lld (the out_features of the "
                         "previous Linear), got %lld", path, (long long)features,
                         (long long)L->in_features);
                goto bad;
            }
            if (!seen_shape_change && s->in_features < 0 && features < 0)
                s->in_features = L->in_features;
            /* overflow-free: in * out <= max_params is checked by division first */
            if (L->in_features > max_params / L->out_features ||
                L->in_features * L->out_features + (L->bias ? L->out_features : 0) >
                    max_params - s->param_count) {
                snprintf(err, cap, "%s: the model would have more than %lld parameters", path,
                         (long long)max_params);
                goto bad;
            }
            s->param_count += L->in_features * L->out_features + (L->bias ? L->out_features : 0);
            features = L->out_features;
        } else if (L->kind == ETD_L_FLATTEN) {
            features = -1;
            seen_shape_change = true;
        }
    }
    s->out_features = features;
    if (s->param_count == 0) { /* torch.optim: "optimizer got an empty parameter list" */
        fail(err, cap, "layers", NULL, "the model has no parameters to optimize (add a Linear)");
        goto bad;
    }
    if (!parse_loss(cJSON_GetObjectItemCaseSensitive(root, "loss"), s, err, cap) ||
        !parse_optim(cJSON_GetObjectItemCaseSensitive(root, "optimizer"), s, err, cap) ||
        !parse_sched(cJSON_GetObjectItemCaseSensitive(root, "scheduler"), s, err, cap))
        goto bad;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        double v = seed->valuedouble;
        if (!cJSON_IsNumber(seed) || v < 0 || v != floor(v) || v > 9007199254740992.0) {
            fail(err, cap, "seed", NULL, "expected a non-negative integer (at most 2^53)");
            goto bad;
        }
        s->has_seed = true;
        s->seed = (uint64_t)v;
    }
    return true;
bad:
    etd_spec_free(s);
    return false;
}

void etd_spec_free(etd_spec *s)
{
    free(s->layers);
    free(s->milestones);
    s->layers = NULL;
    s->milestones = NULL;
    s->nlayers = s->nmilestones = 0;
}

et_module *etd_spec_build_net(const etd_spec *s, et_generator *g, char *err, size_t cap)
{
    et_module *seq = et_sequential_new();
    if (!seq) {
        snprintf(err, cap, "model: %s", et_errmsg());
        return NULL;
    }
    for (int i = 0; i < s->nlayers; i++) {
        const etd_layer *l = &s->layers[i];
        et_module *m = NULL;
        switch (l->kind) {
        case ETD_L_LINEAR: m = et_linear_new(l->in_features, l->out_features, l->bias, g); break;
        case ETD_L_RELU: m = et_relu_new(); break;
        case ETD_L_TANH: m = et_tanh_new(); break;
        case ETD_L_SIGMOID: m = et_sigmoid_new(); break;
        case ETD_L_GELU: m = et_gelu_new(l->gelu_tanh); break;
        case ETD_L_SOFTMAX: m = et_softmax_new(l->dim); break;
        case ETD_L_LOGSOFTMAX: m = et_log_softmax_new(l->dim); break;
        case ETD_L_LEAKYRELU: m = et_leaky_relu_new((float)l->negative_slope); break;
        case ETD_L_DROPOUT: m = et_dropout_new((float)l->p, g); break;
        case ETD_L_FLATTEN: m = et_flatten_new(l->start_dim, l->end_dim); break;
        case ETD_L_IDENTITY: m = et_identity_new(); break;
        }
        if (!m || et_sequential_append(seq, m) != ET_OK) {
            snprintf(err, cap, "layers[%d]: %s", i, et_errmsg());
            et_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

et_optim *etd_spec_build_optim(const etd_spec *s, et_tensor *const *params, int n, char *err,
                               size_t cap)
{
    et_optim *o = NULL;
    switch (s->opt) {
    case ETD_OPT_SGD: o = et_sgd_new(params, n, s->sgd); break;
    case ETD_OPT_ADAGRAD: o = et_adagrad_new(params, n, s->adagrad); break;
    case ETD_OPT_RMSPROP: o = et_rmsprop_new(params, n, s->rmsprop); break;
    case ETD_OPT_ADAM: o = et_adam_new(params, n, s->adam); break;
    case ETD_OPT_ADAMW: o = et_adamw_new(params, n, s->adam); break;
    }
    if (!o)
        snprintf(err, cap, "optimizer: %s", et_errmsg());
    return o;
}

et_scheduler *etd_spec_build_sched(const etd_spec *s, et_optim *o, char *err, size_t cap)
{
    et_scheduler *r = NULL;
    switch (s->sched) {
    case ETD_SCHED_NONE: return NULL;
    case ETD_SCHED_STEP: r = et_steplr_new(o, s->step_size, s->gamma); break;
    case ETD_SCHED_MULTISTEP: r = et_multisteplr_new(o, s->milestones, s->nmilestones, s->gamma); break;
    case ETD_SCHED_EXP: r = et_exponentiallr_new(o, s->gamma); break;
    case ETD_SCHED_COSINE: r = et_cosineannealinglr_new(o, s->T_max, s->eta_min); break;
    case ETD_SCHED_LINEAR:
        r = et_linearlr_new(o, s->start_factor, s->end_factor, s->total_iters);
        break;
    }
    if (!r)
        snprintf(err, cap, "scheduler: %s", et_errmsg());
    return r;
}

et_tensor *etd_spec_loss(const etd_spec *s, et_tensor *out, et_tensor *target)
{
    switch (s->loss) {
    case ETD_LOSS_MSE: return et_mse_loss(out, target, s->reduction);
    case ETD_LOSS_L1: return et_l1_loss(out, target, s->reduction);
    case ETD_LOSS_CE: return et_cross_entropy(out, target, s->reduction, (float)s->loss_arg);
    case ETD_LOSS_NLL: return et_nll_loss(out, target, s->reduction);
    case ETD_LOSS_BCE: return et_bce_loss(out, target, s->reduction);
    case ETD_LOSS_BCELOGITS: return et_bce_with_logits(out, target, s->reduction);
    case ETD_LOSS_HUBER: return et_huber_loss(out, target, s->reduction, (float)s->loss_arg);
    case ETD_LOSS_SMOOTHL1: return et_smooth_l1_loss(out, target, s->reduction, (float)s->loss_arg);
    }
    et_set_error(ET_ERR_ARG, "unknown loss");
    return NULL;
}

const char *etd_loss_name(etd_loss_kind k)
{
    static const char *const n[] = {"MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss",
                                    "BCELoss", "BCEWithLogitsLoss", "HuberLoss", "SmoothL1Loss"};
    return n[k];
}

const char *etd_opt_name(etd_opt_kind k)
{
    static const char *const n[] = {"SGD", "Adagrad", "RMSprop", "Adam", "AdamW"};
    return n[k];
}
