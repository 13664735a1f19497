/*
 * optim.c - the optimizer object: parameter groups (torch's param_groups),
 * hyper-parameters by torch's key names, per-parameter state, step and
 * checkpoint state.  The update rules are in optim_rules.c (SGD, Adagrad,
 * RMSprop, Adam, AdamW) and optim_rules_more.c (NAdam, RAdam, Adamax), the
 * schedulers in sched.c / sched_rules.c.
 */
#include "nn/optim_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <xmmintrin.h>   /* _mm_getcsr, _mm_setcsr: Adam flushes denormals */
#endif

/* ------------------------------------------------- kinds: slots and keys */

typedef struct {
    const char *key;
    size_t off;        /* of the double or bool in the kind's opts struct */
    bool is_bool;
    bool structural;   /* changes which state slots exist */
} hp_def;

typedef struct {
    const char *type;
    const hp_def *hp;
    int nhp;
    const char *slot[OPT_MAX_SLOTS];
} kind_info;

#define D(T, f) {#f, offsetof(T, f), false, false}
#define DS(T, f) {#f, offsetof(T, f), false, true}
#define B(T, f) {#f, offsetof(T, f), true, false}
#define BS(T, f) {#f, offsetof(T, f), true, true}
static const hp_def sgd_hp[] = {D(et_sgd_opts, lr), DS(et_sgd_opts, momentum),
                                D(et_sgd_opts, dampening), D(et_sgd_opts, weight_decay),
                                B(et_sgd_opts, nesterov), B(et_sgd_opts, maximize)};
static const hp_def ada_hp[] = {D(et_adagrad_opts, lr), D(et_adagrad_opts, lr_decay),
                                D(et_adagrad_opts, weight_decay),
                                D(et_adagrad_opts, initial_accumulator_value),
                                D(et_adagrad_opts, eps), B(et_adagrad_opts, maximize)};
static const hp_def rms_hp[] = {D(et_rmsprop_opts, lr), D(et_rmsprop_opts, alpha),
                                D(et_rmsprop_opts, eps), D(et_rmsprop_opts, weight_decay),
                                DS(et_rmsprop_opts, momentum), BS(et_rmsprop_opts, centered),
                                B(et_rmsprop_opts, maximize)};
static const hp_def adam_hp[] = {D(et_adam_opts, lr), D(et_adam_opts, beta1),
                                 D(et_adam_opts, beta2), D(et_adam_opts, eps),
                                 D(et_adam_opts, weight_decay), BS(et_adam_opts, amsgrad),
                                 B(et_adam_opts, maximize)};
static const hp_def nadam_hp[] = {D(et_nadam_opts, lr), D(et_nadam_opts, beta1),
                                  D(et_nadam_opts, beta2), D(et_nadam_opts, eps),
                                  D(et_nadam_opts, weight_decay), D(et_nadam_opts, momentum_decay)};
static const hp_def radam_hp[] = {D(et_radam_opts, lr), D(et_radam_opts, beta1),
                                  D(et_radam_opts, beta2), D(et_radam_opts, eps),
                                  D(et_radam_opts, weight_decay)};
static const hp_def adamax_hp[] = {D(et_adamax_opts, lr), D(et_adamax_opts, beta1),
                                   D(et_adamax_opts, beta2), D(et_adamax_opts, eps),
                                   D(et_adamax_opts, weight_decay), B(et_adamax_opts, maximize)};
#undef D
#undef DS
#undef B
#undef BS
#define HP(a) a, (int)(sizeof a / sizeof a[0])

/* in opt_kind order */
static const kind_info kinds[] = {
    {"SGD", HP(sgd_hp), {"momentum_buffer"}},
    {"Adagrad", HP(ada_hp), {"sum"}},
    {"RMSprop", HP(rms_hp), {"square_avg", "momentum_buffer", "grad_avg"}},
    {"Adam", HP(adam_hp), {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    {"AdamW", HP(adam_hp), {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    {"NAdam", HP(nadam_hp), {"exp_avg", "exp_avg_sq", "mu_product"}},
    {"RAdam", HP(radam_hp), {"exp_avg", "exp_avg_sq"}},
    {"Adamax", HP(adamax_hp), {"exp_avg", "exp_inf"}},
};

/* Which slots a group with options o has. */
static bool has_slot(opt_kind kind, const opt_opts *o, int s)
{
    switch (kind) {
    case OPT_SGD: return s == 0 && o->sgd.momentum != 0;
    case OPT_ADAGRAD: return s == 0;
    case OPT_RMSPROP: return s == 0 || (s == 1 && o->rms.momentum > 0) || (s == 2 && o->rms.centered);
    case OPT_ADAM:
    case OPT_ADAMW: return s < 2 || o->adam.amsgrad;
    case OPT_NADAM: return true;
    case OPT_RADAM:
    case OPT_ADAMAX: return s < 2;
    }
    return false;
}

/* The value a new slot starts with.  Adagrad's sums start at the
 * constructor's initial_accumulator_value for every group (torch 1.13's
 * __init__ reads its argument, not the group's key). */
static float slot_init(const et_optim *opt, const opt_opts *o, int s)
{
    opt_kind kind = opt->kind;
    if (kind == OPT_ADAGRAD)
        return (float)opt->defaults.ada.initial_accumulator_value;
    if (kind == OPT_NADAM && s == 2)
        return 1.0f;   /* mu_product */
    return 0.0f;
}

static bool bad(double v) { return !(v >= 0.0) || isinf(v); }

/* torch's constructor checks (messages as torch's ValueErrors); false + error. */
static bool validate(opt_kind kind, const opt_opts *o, const char *where)
{
    const char *t = kinds[kind].type;
#define FAIL(...)                                                        \
    do {                                                                 \
        char msg_[160];                                                  \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                        \
        et_set_error(ET_ERR_ARG, "%s%s: %s", t, where, msg_);            \
        return false;                                                    \
    } while (0)
    if (bad(o->sgd.lr))
        FAIL("invalid learning rate: %g", o->sgd.lr);
    switch (kind) {
    case OPT_SGD:
        if (bad(o->sgd.momentum))
            FAIL("invalid momentum value: %g", o->sgd.momentum);
        if (bad(o->sgd.weight_decay))
            FAIL("invalid weight_decay value: %g", o->sgd.weight_decay);
        if (!isfinite(o->sgd.dampening))
            FAIL("invalid dampening: %g", o->sgd.dampening);
        if (o->sgd.nesterov && (o->sgd.momentum <= 0 || o->sgd.dampening != 0))
            FAIL("nesterov momentum requires a momentum and zero dampening");
        return true;
    case OPT_ADAGRAD:
        if (bad(o->ada.lr_decay))
            FAIL("invalid lr_decay value: %g", o->ada.lr_decay);
        if (bad(o->ada.weight_decay))
            FAIL("invalid weight_decay value: %g", o->ada.weight_decay);
        if (bad(o->ada.initial_accumulator_value))
            FAIL("invalid initial_accumulator_value value: %g", o->ada.initial_accumulator_value);
        if (bad(o->ada.eps))
            FAIL("invalid epsilon value: %g", o->ada.eps);
        return true;
    case OPT_RMSPROP:
        if (bad(o->rms.eps))
            FAIL("invalid epsilon value: %g", o->rms.eps);
        if (bad(o->rms.momentum))
            FAIL("invalid momentum value: %g", o->rms.momentum);
        if (bad(o->rms.weight_decay))
            FAIL("invalid weight_decay value: %g", o->rms.weight_decay);
        if (bad(o->rms.alpha))
            FAIL("invalid alpha value: %g", o->rms.alpha);
        return true;
    default: {
        /* the Adam family: lr, beta1, beta2, eps, weight_decay lead each struct */
        double b1 = kind == OPT_NADAM ? o->nadam.beta1 : kind == OPT_RADAM ? o->radam.beta1
                    : kind == OPT_ADAMAX ? o->adamax.beta1 : o->adam.beta1;
        double b2 = kind == OPT_NADAM ? o->nadam.beta2 : kind == OPT_RADAM ? o->radam.beta2
                    : kind == OPT_ADAMAX ? o->adamax.beta2 : o->adam.beta2;
        double eps = kind == OPT_NADAM ? o->nadam.eps : kind == OPT_RADAM ? o->radam.eps
                     : kind == OPT_ADAMAX ? o->adamax.eps : o->adam.eps;
        double wd = kind == OPT_NADAM ? o->nadam.weight_decay
                    : kind == OPT_RADAM ? o->radam.weight_decay
                    : kind == OPT_ADAMAX ? o->adamax.weight_decay : o->adam.weight_decay;
        if (bad(eps))
            FAIL("invalid epsilon value: %g", eps);
        if (!(b1 >= 0 && b1 < 1))
            FAIL("invalid beta parameter at index 0: %g", b1);
        if (!(b2 >= 0 && b2 < 1))
            FAIL("invalid beta parameter at index 1: %g", b2);
        if (bad(wd))
            FAIL("invalid weight_decay value: %g", wd);
        if (kind == OPT_NADAM && bad(o->nadam.momentum_decay))
            FAIL("invalid momentum_decay value: %g", o->nadam.momentum_decay);
        return true;
    }
    }
#undef FAIL
}

/* ------------------------------------------------------------ life cycle */

void et_optim_free(et_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->nstate; i++) {
        et_tensor_free(o->state[i]);
        free(o->state_names[i]);
    }
    free(o->state);
    free(o->state_names);
    free(o->slot);
    free(o->params);
    free(o->group_of);
    free(o->groups);
    free(o->pstep);
    free(o->buf_init);
    free(o);
}

/* Make room for `add` more parameters (arrays grow together; nothing else changes). */
static bool grow_params(et_optim *o, int add)
{
    int n = o->n + add;
    et_tensor **p = realloc(o->params, (size_t)n * sizeof *p);
    if (p)
        o->params = p;
    int *go = p ? realloc(o->group_of, (size_t)n * sizeof *go) : NULL;
    if (go)
        o->group_of = go;
    int *sl = go ? realloc(o->slot, (size_t)n * OPT_MAX_SLOTS * sizeof *sl) : NULL;
    if (sl)
        o->slot = sl;
    int64_t *ps = sl ? realloc(o->pstep, (size_t)n * sizeof *ps) : NULL;
    if (ps)
        o->pstep = ps;
    bool *bi = ps ? realloc(o->buf_init, (size_t)n * sizeof *bi) : NULL;
    if (bi)
        o->buf_init = bi;
    return bi != NULL;
}

/* Creates the state slots group g's options need that its parameters lack. */
static et_status ensure_slots(et_optim *o, int g, const opt_opts *opts)
{
    const optim_group *gr = &o->groups[g];
    int need = 0;
    for (int i = gr->first; i < gr->first + gr->n; i++)
        for (int s = 0; s < OPT_MAX_SLOTS; s++)
            need += has_slot(o->kind, opts, s) && o->slot[i * OPT_MAX_SLOTS + s] < 0;
    if (need == 0)
        return ET_OK;
    et_tensor **st = realloc(o->state, (size_t)(o->nstate + need) * sizeof *st);
    if (st)
        o->state = st;
    char **nm = st ? realloc(o->state_names, (size_t)(o->nstate + need) * sizeof *nm) : NULL;
    if (!nm)
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory", o->type);
    o->state_names = nm;
    /* build them all first: a failure adds none */
    et_tensor **tmp = calloc((size_t)need, sizeof *tmp);
    char **names = tmp ? calloc((size_t)need, sizeof *names) : NULL;
    int k = 0;
    bool ok = names != NULL;
    for (int i = gr->first; ok && i < gr->first + gr->n; i++)
        for (int s = 0; ok && s < OPT_MAX_SLOTS; s++) {
            if (!has_slot(o->kind, opts, s) || o->slot[i * OPT_MAX_SLOTS + s] >= 0)
                continue;
            et_tensor *p = o->params[i];
            bool scalar = o->kind == OPT_NADAM && s == 2;   /* mu_product */
            tmp[k] = scalar ? nn_keep_new(NULL, NULL, 0) : nn_keep_new(NULL, et_shape(p), et_ndim(p));
            float init = slot_init(o, opts, s);
            if (tmp[k] && init != 0.0f)
                et_fill_(tmp[k], init);
            size_t len = strlen(kinds[o->kind].slot[s]) + 24;
            names[k] = malloc(len);
            if (names[k])
                snprintf(names[k], len, "%d.%s", i, kinds[o->kind].slot[s]);
            ok = tmp[k] && names[k];
            k++;
        }
    if (!ok) {
        for (int j = 0; j < k && names; j++) {
            et_tensor_free(tmp[j]);
            free(names[j]);
        }
        free(tmp);
        free(names);
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory for the optimizer state", o->type);
    }
    k = 0;
    for (int i = gr->first; i < gr->first + gr->n; i++)
        for (int s = 0; s < OPT_MAX_SLOTS; s++) {
            if (!has_slot(o->kind, opts, s) || o->slot[i * OPT_MAX_SLOTS + s] >= 0)
                continue;
            o->slot[i * OPT_MAX_SLOTS + s] = o->nstate;
            o->state[o->nstate] = tmp[k];
            o->state_names[o->nstate++] = names[k];
            k++;
        }
    free(tmp);
    free(names);
    return ET_OK;
}

/* Appends params[n] as a new group with options opts; the group index or -1. */
static int add_group(et_optim *o, et_tensor *const *params, int n, const opt_opts *opts)
{
    const char *t = o->type;
    if (n <= 0 || !params) {
        et_set_error(ET_ERR_ARG, "%s: optimizer got an empty parameter list", t);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            et_set_error_after(ET_ERR_ARG, "%s: parameter %d is NULL", t, o->n + i);
            return -1;
        }
        if (!et_is_leaf(params[i])) {   /* its .grad is never kept: torch refuses it too */
            et_set_error(ET_ERR_ARG, "%s: can't optimize a non-leaf Tensor (parameter %d, "
                         "made by %s)", t, o->n + i, et_grad_fn_name(params[i]));
            return -1;
        }
        for (int j = 0; j < o->n + i; j++) {
            et_tensor *q = j < o->n ? o->params[j] : params[j - o->n];
            if (q == params[i]) {
                et_set_error(ET_ERR_ARG, j < o->n ? "%s: some parameters appear in more than "
                             "one parameter group (parameter %d is also parameter %d)"
                             : "%s: parameter %d is also parameter %d", t, o->n + i, j);
                return -1;
            }
        }
    }
    optim_group *gs = realloc(o->groups, (size_t)(o->ngroups + 1) * sizeof *gs);
    if (!gs || !grow_params(o, n)) {
        if (gs)
            o->groups = gs;
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", t);
        return -1;
    }
    o->groups = gs;
    int g = o->ngroups;
    gs[g] = (optim_group){.o = *opts, .first = o->n, .n = n};
    for (int i = 0; i < n; i++) {
        int k = o->n + i;
        o->params[k] = params[i];
        o->group_of[k] = g;
        o->pstep[k] = 0;
        o->buf_init[k] = false;
        for (int s = 0; s < OPT_MAX_SLOTS; s++)
            o->slot[k * OPT_MAX_SLOTS + s] = -1;
    }
    o->n += n;
    o->ngroups++;
    if (ensure_slots(o, g, opts) != ET_OK) {
        o->n -= n;   /* undo: the arrays keep their (harmless) larger size */
        o->ngroups--;
        return -1;
    }
    return g;
}

static et_optim *optim_new(opt_kind kind, et_tensor *const *params, int n, const opt_opts *opts)
{
    if (!validate(kind, opts, ""))
        return NULL;
    et_optim *o = calloc(1, sizeof *o);
    if (!o) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", kinds[kind].type);
        return NULL;
    }
    o->kind = kind;
    o->type = kinds[kind].type;
    o->defaults = *opts;
    if (add_group(o, params, n, opts) < 0) {
        et_optim_free(o);
        return NULL;
    }
    return o;
}

et_optim *et_sgd_new(et_tensor *const *params, int n, et_sgd_opts so)
{
    return optim_new(OPT_SGD, params, n, &(opt_opts){.sgd = so});
}

et_optim *et_adagrad_new(et_tensor *const *params, int n, et_adagrad_opts ao)
{
    return optim_new(OPT_ADAGRAD, params, n, &(opt_opts){.ada = ao});
}

et_optim *et_rmsprop_new(et_tensor *const *params, int n, et_rmsprop_opts ro)
{
    return optim_new(OPT_RMSPROP, params, n, &(opt_opts){.rms = ro});
}

et_optim *et_adam_new(et_tensor *const *params, int n, et_adam_opts ao)
{
    return optim_new(OPT_ADAM, params, n, &(opt_opts){.adam = ao});
}

et_optim *et_adamw_new(et_tensor *const *params, int n, et_adam_opts ao)
{
    return optim_new(OPT_ADAMW, params, n, &(opt_opts){.adam = ao});
}

et_optim *et_nadam_new(et_tensor *const *params, int n, et_nadam_opts no)
{
    return optim_new(OPT_NADAM, params, n, &(opt_opts){.nadam = no});
}

et_optim *et_radam_new(et_tensor *const *params, int n, et_radam_opts ro)
{
    return optim_new(OPT_RADAM, params, n, &(opt_opts){.radam = ro});
}

et_optim *et_adamax_new(et_tensor *const *params, int n, et_adamax_opts ao)
{
    return optim_new(OPT_ADAMAX, params, n, &(opt_opts){.adamax = ao});
}

/* ------------------------------------------------------------ parameter groups */

int et_optim_add_param_group(et_optim *o, et_tensor *const *params, int n)
{
    if (!o) {
        et_set_error_after(ET_ERR_ARG, "add_param_group: NULL optimizer");
        return -1;
    }
    opt_opts base = o->defaults;   /* a copy: add_group moves the groups array */
    return add_group(o, params, n, &base);
}

int et_optim_num_groups(const et_optim *o) { return o ? o->ngroups : 0; }

static bool group_ok(const et_optim *o, int g, const char *what)
{
    if (!o || g < 0 || g >= o->ngroups) {
        et_set_error(ET_ERR_INDEX, "%s: param_groups[%d] is out of range (%d groups)", what, g,
                     o ? o->ngroups : 0);
        return false;
    }
    return true;
}

int et_optim_group_num_params(const et_optim *o, int g)
{
    return group_ok(o, g, "group_num_params") ? o->groups[g].n : 0;
}

et_tensor *et_optim_group_param(const et_optim *o, int g, int i)
{
    if (!group_ok(o, g, "group_param"))
        return NULL;
    if (i < 0 || i >= o->groups[g].n) {
        et_set_error(ET_ERR_INDEX, "group_param: index %d out of range (%d parameters)", i,
                     o->groups[g].n);
        return NULL;
    }
    return o->params[o->groups[g].first + i];
}

int et_optim_num_hparams(const et_optim *o) { return o ? kinds[o->kind].nhp : 0; }

const char *et_optim_hparam_name(const et_optim *o, int k)
{
    if (!o || k < 0 || k >= kinds[o->kind].nhp) {
        et_set_error(ET_ERR_INDEX, "hparam_name: index %d out of range", k);
        return NULL;
    }
    return kinds[o->kind].hp[k].key;
}

static const hp_def *find_hp(const et_optim *o, const char *key)
{
    for (int k = 0; key && k < kinds[o->kind].nhp; k++)
        if (strcmp(kinds[o->kind].hp[k].key, key) == 0)
            return &kinds[o->kind].hp[k];
    return NULL;
}

static et_status no_key(const et_optim *o, const char *key)
{
    char list[256] = "";
    for (int k = 0; k < kinds[o->kind].nhp; k++) {
        strncat(list, k ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, kinds[o->kind].hp[k].key, sizeof list - strlen(list) - 1);
    }
    return et_set_error(ET_ERR_ARG, "%s has no hyper-parameter \"%s\" (it has %s)", o->type,
                        key ? key : "(null)", list);
}

double et_optim_group_get(const et_optim *o, int g, const char *key)
{
    if (!group_ok(o, g, "group_get"))
        return NAN;
    const hp_def *h = find_hp(o, key);
    if (!h) {
        no_key(o, key);
        return NAN;
    }
    const char *base = (const char *)&o->groups[g].o;
    return h->is_bool ? (double)*(const bool *)(base + h->off) : *(const double *)(base + h->off);
}

et_status et_optim_group_set(et_optim *o, int g, const char *key, double value)
{
    if (!group_ok(o, g, "group_set"))
        return ET_ERR_INDEX;
    const hp_def *h = find_hp(o, key);
    if (!h)
        return no_key(o, key);
    if (h->is_bool && value != 0 && value != 1)
        return et_set_error(ET_ERR_ARG, "%s: param_groups[%d]: %s is a flag (0 or 1), got %g",
                            o->type, g, key, value);
    opt_opts next = o->groups[g].o;
    char *base = (char *)&next;
    if (h->is_bool)
        *(bool *)(base + h->off) = value != 0;
    else
        *(double *)(base + h->off) = value;
    char where[48];
    snprintf(where, sizeof where, ": param_groups[%d]", g);
    if (!validate(o->kind, &next, where))
        return ET_ERR_ARG;
    if (h->structural) {
        et_status st = ensure_slots(o, g, &next);
        if (st != ET_OK)
            return st;
    }
    o->groups[g].o = next;
    return ET_OK;
}

/* ---- for the schedulers ---- */
int nn_optim_ngroups(const et_optim *o) { return o->ngroups; }
double nn_optim_group_lr(const et_optim *o, int g) { return opt_lr_c(&o->groups[g]); }
void nn_optim_set_group_lr(et_optim *o, int g, double lr) { *opt_lr(&o->groups[g]) = lr; }

double nn_optim_initial_lr(et_optim *o, int g)
{
    optim_group *gr = &o->groups[g];
    if (!gr->has_initial_lr) {
        gr->initial_lr = opt_lr_c(gr);
        gr->has_initial_lr = true;
    }
    return gr->initial_lr;
}

void nn_optim_set_initial_lr(et_optim *o, int g, double lr)
{
    o->groups[g].initial_lr = lr;
    o->groups[g].has_initial_lr = true;
}

const char *nn_optim_momentum_key(const et_optim *o)
{
    switch (o->kind) {
    case OPT_SGD:
    case OPT_RMSPROP: return "momentum";
    case OPT_ADAGRAD: return NULL;
    default: return "beta1";
    }
}

/* ------------------------------------------------------------ step */

/* One parameter's update: its buffers (p, grad, state slots) held while the
 * rule runs over them. */
static et_status step_param(et_optim *o, opt_rule rule, int i)
{
    et_tensor *pt = o->params[i];
    et_tensor *gt = et_grad(pt);
    if (!gt)
        return ET_OK;
    nn_buf pb, gb, sb[OPT_MAX_SLOTS];
    float *s[OPT_MAX_SLOTS] = {NULL, NULL, NULL};
    bool held[OPT_MAX_SLOTS] = {false, false, false};
    et_status st = nn_buf_acquire(&pb, pt);
    if (st != ET_OK)
        return st;
    st = nn_buf_acquire(&gb, gt);
    if (st != ET_OK) {
        nn_buf_release(&pb, false);
        return st;
    }
    for (int k = 0; st == ET_OK && k < OPT_MAX_SLOTS; k++) {
        int si = o->slot[i * OPT_MAX_SLOTS + k];
        if (si < 0)
            continue;
        st = nn_buf_acquire(&sb[k], o->state[si]);
        held[k] = st == ET_OK;
        s[k] = held[k] ? sb[k].p : NULL;
    }
    const bool run = st == ET_OK;   /* else release unwritten: nothing changed */
    if (run) {
        int64_t step = ++o->pstep[i];
        rule(o, &o->groups[o->group_of[i]], pb.p, gb.p, s, &o->buf_init[i], step,
             et_numel(pt));
    }
    for (int k = 0; k < OPT_MAX_SLOTS; k++)
        if (held[k])
            nn_buf_release(&sb[k], run);
    nn_buf_release(&gb, false);
    nn_buf_release(&pb, run);
    return st;
}

et_status et_optim_step(et_optim *o)
{
    if (!o)
        return et_set_error_after(ET_ERR_ARG, "optim_step: NULL optimizer");
    /* Validate first so that a bad gradient changes nothing. */
    for (int i = 0; i < o->n; i++) {
        et_tensor *g = et_grad(o->params[i]);
        if (g && et_numel(g) != et_numel(o->params[i])) {
            char a[96], b[96];
            return et_set_error(ET_ERR_SHAPE, "%s.step: gradient of parameter %d has shape %s, "
                                "parameter has %s", o->type, i, NN_SHAPE_STR(g, a),
                                NN_SHAPE_STR(o->params[i], b));
        }
    }
    opt_rule rule = nn_optim_rule(o->kind);
#if defined(__SSE2__)
    /* Adam's loops run with denormals flushed to zero (FTZ, DAZ): a model
     * that fits its data drives m and v below 2^-126, where every lane's div
     * and sqrt take a microcode assist (the 13-64-64-1 step went from ~21 to
     * ~32 µs after 40k steps).  A denormal m or v changes the update by less
     * than 1e-30 (eps = 1e-8 dominates the denominator), far inside any
     * tolerance; every lane and the scalar tail flush alike.  Set once per
     * step, not per tensor: each write of the control word costs tens of
     * cycles. */
    const bool ftz = o->kind == OPT_ADAM || o->kind == OPT_ADAMW;
    const unsigned csr = _mm_getcsr();
    if (ftz)
        _mm_setcsr(csr | 0x8040u);
#endif
    et_status st = ET_OK;
    for (int i = 0; st == ET_OK && i < o->n; i++)
        st = step_param(o, rule, i);
#if defined(__SSE2__)
    if (ftz)
        _mm_setcsr(csr);
#endif
    if (st != ET_OK)
        return st;
    o->steps++;
    return ET_OK;
}

void et_optim_zero_grad(et_optim *o)
{
    for (int i = 0; o && i < o->n; i++) {
        et_tensor *g = et_grad(o->params[i]);
        if (g)
            nn_zero_grad_(g);
    }
}

const char *et_optim_type(const et_optim *o) { return o ? o->type : NULL; }
double et_optim_get_lr(const et_optim *o) { return o ? opt_lr_c(&o->groups[0]) : NAN; }
int64_t et_optim_steps(const et_optim *o) { return o ? o->steps : 0; }

void et_optim_set_lr(et_optim *o, double lr)
{
    for (int g = 0; o && g < o->ngroups; g++)
        *opt_lr(&o->groups[g]) = lr;
}

/* ------------------------------------------------------------ state */

int et_optim_state_count(const et_optim *o) { return o ? o->nstate : 0; }

const char *et_optim_state_name(const et_optim *o, int i)
{
    if (!o || i < 0 || i >= o->nstate) {
        et_set_error(ET_ERR_INDEX, "optim_state_name: index %d out of range", i);
        return NULL;
    }
    return o->state_names[i];
}

et_tensor *et_optim_state_tensor(const et_optim *o, int i)
{
    if (!o || i < 0 || i >= o->nstate) {
        et_set_error(ET_ERR_INDEX, "optim_state_tensor: index %d out of range", i);
        return NULL;
    }
    return o->state[i];
}

et_status et_optim_load_state(et_optim *o, const char *const *names, et_tensor *const *tensors,
                              int n, int64_t step_count)
{
    if (!o || n < 0 || (n > 0 && (!names || !tensors)) || step_count < 0)
        return et_set_error(ET_ERR_ARG, "optim_load_state: invalid arguments");
    int ns = o->nstate;
    /* Check everything before changing anything. */
    for (int k = 0; k < n; k++) {
        if (!names[k] || !tensors[k])
            return et_set_error(ET_ERR_ARG, "optim_load_state: entry %d is NULL", k);
        int found = -1;
        for (int i = 0; i < ns && found < 0; i++)
            if (strcmp(o->state_names[i], names[k]) == 0)
                found = i;
        if (found < 0)
            return et_set_error(ET_ERR_FORMAT, "%s.load_state: unexpected state \"%s\"",
                                o->type, names[k]);
        for (int j = 0; j < k; j++)   /* else which copy wins would be arbitrary */
            if (strcmp(names[j], names[k]) == 0)
                return et_set_error(ET_ERR_FORMAT, "%s.load_state: state \"%s\" given twice",
                                    o->type, names[k]);
    }
    for (int i = 0; i < ns; i++) {
        int found = -1;
        for (int k = 0; k < n && found < 0; k++)
            if (strcmp(o->state_names[i], names[k]) == 0)
                found = k;
        if (found < 0)
            return et_set_error(ET_ERR_FORMAT, "%s.load_state: missing state \"%s\"", o->type,
                                o->state_names[i]);
        if (!et_same_shape(o->state[i], tensors[found])) {
            char a[96], b[96];
            return et_set_error(ET_ERR_SHAPE, "%s.load_state: \"%s\" has shape %s, expected %s",
                                o->type, o->state_names[i], NN_SHAPE_STR(tensors[found], a),
                                NN_SHAPE_STR(o->state[i], b));
        }
        if (et_tensor_dtype(tensors[found]) != ET_FLOAT32)
            return et_set_error(ET_ERR_FORMAT, "%s.load_state: \"%s\" is not float32", o->type,
                                o->state_names[i]);
    }
    for (int i = 0; i < ns; i++) {
        for (int k = 0; k < n; k++) {
            if (strcmp(o->state_names[i], names[k]) == 0) {
                nn_buf b;
                et_status st = nn_buf_acquire(&b, tensors[k]);
                if (st != ET_OK)
                    return st;
                et_copy_from(o->state[i], b.p);
                nn_buf_release(&b, false);
                break;
            }
        }
    }
    o->steps = step_count;
    for (int i = 0; i < o->n; i++) {
        o->pstep[i] = step_count;
        o->buf_init[i] = step_count > 0;
    }
    return ET_OK;
}
