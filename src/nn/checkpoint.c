/*
 * checkpoint.c - full training checkpoints (module parameters, optimizer
 * state, scheduler state, generator state, step) in one safetensors file.
 *
 * Everything goes through the public state APIs (et_module_state_dict,
 * et_optim_state_*, et_scheduler_*, et_generator_*_state).  Tensors are
 * raw float32 and doubles are written with 17 significant digits (which
 * strtod reads back to the same bits), so a restored run continues
 * bit-identically.  Restoring validates everything before changing
 * anything.
 */
#include "nn/nn_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "easytorch-checkpoint-1"
#define MODEL_PREFIX "model."
#define OPTIM_PREFIX "optim."

static et_status set_meta_i64(et_tensor_dict *d, const char *key, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    return et_tensor_dict_set_meta(d, key, b);
}

static et_status set_meta_dbl(et_tensor_dict *d, const char *key, double v)
{
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    return et_tensor_dict_set_meta(d, key, b);
}

/* Adds `t` under prefix+name. */
static et_status set_prefixed(et_tensor_dict *d, const char *prefix, const char *name,
                              et_tensor *t)
{
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *key = malloc(len);
    if (!key)
        return et_set_error(ET_ERR_NOMEM, "checkpoint: out of memory");
    snprintf(key, len, "%s%s", prefix, name);
    et_status st = et_tensor_dict_set(d, key, t);
    free(key);
    return st;
}

et_tensor_dict *et_checkpoint_state(const et_module *m, const et_optim *o, const et_scheduler *s,
                                    const et_generator *g, int64_t step)
{
    if (!m || step < 0) {
        et_set_error(ET_ERR_ARG, "checkpoint_state: %s",
                     m ? "step must be non-negative" : "NULL module");
        return NULL;
    }
    if (s && !o) {
        et_set_error(ET_ERR_ARG, "checkpoint_state: a scheduler needs its optimizer");
        return NULL;
    }
    et_tensor_dict *d = et_tensor_dict_new();
    if (!d)
        return NULL;
    et_status st = et_tensor_dict_set_meta(d, "format", CKPT_FORMAT);
    if (st == ET_OK)
        st = set_meta_i64(d, "step", step);
    for (int i = 0; st == ET_OK && i < et_module_num_state(m); i++)
        st = set_prefixed(d, MODEL_PREFIX, et_module_state_name(m, i),
                          et_module_state_tensor(m, i));
    if (o && st == ET_OK) {
        st = et_tensor_dict_set_meta(d, "optim.type", et_optim_type(o));
        if (st == ET_OK)
            st = set_meta_i64(d, "optim.steps", et_optim_steps(o));
        if (st == ET_OK)
            st = set_meta_dbl(d, "optim.lr", et_optim_get_lr(o));
        for (int i = 0; st == ET_OK && i < et_optim_state_count(o); i++)
            st = set_prefixed(d, OPTIM_PREFIX, et_optim_state_name(o, i),
                              et_optim_state_tensor(o, i));
        /* every group's hyper-parameters (schedulers change lr and momentum) */
        if (st == ET_OK)
            st = set_meta_i64(d, "optim.groups", et_optim_num_groups(o));
        for (int gi = 0; st == ET_OK && gi < et_optim_num_groups(o); gi++)
            for (int k = 0; st == ET_OK && k < et_optim_num_hparams(o); k++) {
                char key[96];
                const char *h = et_optim_hparam_name(o, k);
                snprintf(key, sizeof key, "optim.group.%d.%s", gi, h);
                st = set_meta_dbl(d, key, et_optim_group_get(o, gi, h));
            }
    }
    if (s && st == ET_OK) {
        st = et_tensor_dict_set_meta(d, "scheduler.type", et_scheduler_type(s));
        /* last_epoch, last_lr[.g], and what the scheduler keeps besides */
        for (int i = 0; st == ET_OK && i < et_scheduler_state_count(s); i++) {
            char key[160];
            snprintf(key, sizeof key, "scheduler.%s", et_scheduler_state_name(s, i));
            st = set_meta_dbl(d, key, et_scheduler_state_get(s, i));
        }
    }
    if (g && st == ET_OK) {
        uint64_t gs[4];
        et_generator_get_state(g, gs);
        char b[96];
        snprintf(b, sizeof b, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, gs[0], gs[1],
                 gs[2], gs[3]);
        st = et_tensor_dict_set_meta(d, "generator.state", b);
    }
    if (st != ET_OK) {
        et_tensor_dict_free(d);
        return NULL;
    }
    return d;
}

/* ---------------------------------------------------------------- restore */

static const char *need_meta(const et_tensor_dict *d, const char *key, et_status *st)
{
    const char *v = et_tensor_dict_get_meta(d, key);
    if (!v && *st == ET_OK)
        *st = et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"%s\" is missing", key);
    return v;
}

static et_status parse_i64(const char *key, const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0)
        return et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"%s\" = \"%s\" is not a "
                            "non-negative integer", key, v);
    *out = (int64_t)x;
    return ET_OK;
}

static et_status parse_dbl(const char *key, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < 0)
        return et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"%s\" = \"%s\" is not a "
                            "finite non-negative number", key, v);
    *out = x;
    return ET_OK;
}

/* any number but NaN (a plateau's best starts at +-inf) */
static et_status parse_num(const char *key, const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || isnan(x))
        return et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"%s\" = \"%s\" is not a "
                            "number", key, v);
    *out = x;
    return ET_OK;
}

static et_status parse_gen(const char *v, uint64_t gs[4])
{
    const char *p = v;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9')
            goto bad;
        unsigned long long x = strtoull(p, &end, 10);
        if (errno || end == p || (i < 3 ? *end != ' ' : *end != '\0'))
            goto bad;
        gs[i] = (uint64_t)x;
        p = end + (i < 3);
    }
    if ((gs[0] | gs[1] | gs[2] | gs[3]) == 0)   /* xoshiro's one invalid state */
        goto bad;
    return ET_OK;
bad:
    return et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"generator.state\" = \"%s\" is "
                        "not four unsigned 64-bit integers (not all zero)", v);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

et_status et_checkpoint_restore(const et_tensor_dict *d, et_module *m, et_optim *o,
                                et_scheduler *s, et_generator *g, int64_t *step)
{
    if (!d || !m)
        return et_set_error(ET_ERR_ARG, "checkpoint_restore: NULL %s", d ? "module" : "dict");
    if (s && !o)
        return et_set_error(ET_ERR_ARG, "checkpoint_restore: a scheduler needs its optimizer");
    et_status st = ET_OK;
    const char *fmt = need_meta(d, "format", &st);
    if (st != ET_OK)
        return st;
    if (strcmp(fmt, CKPT_FORMAT) != 0)
        return et_set_error(ET_ERR_FORMAT, "checkpoint: format \"%s\", expected \"%s\"", fmt,
                            CKPT_FORMAT);

    /* 1. metadata, all parsed before anything is changed */
    int64_t step_v = 0, osteps = 0;
    double olr = 0;
    uint64_t gs[4];
    int ngroups = o ? et_optim_num_groups(o) : 0, nhp = o ? et_optim_num_hparams(o) : 0;
    int nsv = s ? et_scheduler_state_count(s) : 0;
    bool have_groups = false;
    double *hp = calloc((size_t)(ngroups * nhp + nsv + 1), sizeof *hp), *sv = hp + ngroups * nhp;
    if (!hp)
        return et_set_error(ET_ERR_NOMEM, "checkpoint: out of memory");
    const char *v = need_meta(d, "step", &st);
    if (st == ET_OK)
        st = parse_i64("step", v, &step_v);
    if (o && st == ET_OK) {
        const char *type = need_meta(d, "optim.type", &st);
        if (st == ET_OK && strcmp(type, et_optim_type(o)) != 0)
            st = et_set_error(ET_ERR_FORMAT, "checkpoint: optimizer is %s, the checkpoint "
                              "holds %s", et_optim_type(o), type);
        if (st == ET_OK && (v = need_meta(d, "optim.steps", &st)))
            st = parse_i64("optim.steps", v, &osteps);
        if (st == ET_OK && (v = need_meta(d, "optim.lr", &st)))
            st = parse_dbl("optim.lr", v, &olr);
        /* files before parameter groups have only optim.lr */
        const char *gv = et_tensor_dict_get_meta(d, "optim.groups");
        int64_t ng = 0;
        if (st == ET_OK && gv && (st = parse_i64("optim.groups", gv, &ng)) == ET_OK &&
            ng != ngroups)
            st = et_set_error(ET_ERR_FORMAT, "checkpoint: %lld parameter groups, the optimizer "
                              "has %d", (long long)ng, ngroups);
        have_groups = gv != NULL;
        for (int gi = 0; have_groups && st == ET_OK && gi < ngroups; gi++)
            for (int k = 0; st == ET_OK && k < nhp; k++) {
                char key[96];
                snprintf(key, sizeof key, "optim.group.%d.%s", gi, et_optim_hparam_name(o, k));
                if ((v = need_meta(d, key, &st)))
                    st = parse_num(key, v, &hp[gi * nhp + k]);
            }
    }
    if (s && st == ET_OK) {
        const char *type = need_meta(d, "scheduler.type", &st);
        if (st == ET_OK && strcmp(type, et_scheduler_type(s)) != 0)
            st = et_set_error(ET_ERR_FORMAT, "checkpoint: scheduler is %s, the checkpoint "
                              "holds %s", et_scheduler_type(s), type);
        for (int i = 0; st == ET_OK && i < nsv; i++) {
            char key[160];
            snprintf(key, sizeof key, "scheduler.%s", et_scheduler_state_name(s, i));
            if ((v = need_meta(d, key, &st)) && (st = parse_num(key, v, &sv[i])) == ET_OK &&
                et_scheduler_state_check(s, et_scheduler_state_name(s, i), sv[i]) != ET_OK)
                st = et_set_error(ET_ERR_FORMAT, "checkpoint: metadata \"%s\" = \"%s\" is "
                                  "out of range", key, v);
        }
    }
    if (g && st == ET_OK && (v = need_meta(d, "generator.state", &st)))
        st = parse_gen(v, gs);
    /* the hyper-parameters go in first (a key such as momentum may create the
     * state the tensors below fill); back to the old values if one is refused */
    for (int gi = 0; have_groups && st == ET_OK && gi < ngroups; gi++)
        for (int k = 0; st == ET_OK && k < nhp; k++) {
            const char *h = et_optim_hparam_name(o, k);
            double old = et_optim_group_get(o, gi, h);
            st = et_optim_group_set(o, gi, h, hp[gi * nhp + k]);
            hp[gi * nhp + k] = old;   /* what to put back */
            if (st != ET_OK) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", et_errmsg());
                for (int r = gi * nhp + k - 1; r >= 0; r--)
                    et_optim_group_set(o, r / nhp, et_optim_hparam_name(o, r % nhp), hp[r]);
                st = et_set_error(ET_ERR_FORMAT, "checkpoint: optim.group.%d.%s: %s", gi, h, msg);
            }
        }
    if (st != ET_OK) {
        free(hp);
        return st;
    }

    /* 2. split the tensors into the module's and the optimizer's */
    int n = et_tensor_dict_len(d);
    et_tensor_dict *md = et_tensor_dict_new();
    const char **onames = calloc((size_t)n + 1, sizeof *onames);
    et_tensor **otensors = calloc((size_t)n + 1, sizeof *otensors);
    int on = 0;
    if (!md || !onames || !otensors) {
        st = et_set_error(ET_ERR_NOMEM, "checkpoint: out of memory");
        goto out;
    }
    for (int i = 0; i < n && st == ET_OK; i++) {
        const char *name = et_tensor_dict_name(d, i);
        if (has_prefix(name, MODEL_PREFIX)) {
            st = et_tensor_dict_set(md, name + strlen(MODEL_PREFIX), et_tensor_dict_tensor(d, i));
        } else if (has_prefix(name, OPTIM_PREFIX)) {
            if (o) {
                onames[on] = name + strlen(OPTIM_PREFIX);
                otensors[on++] = et_tensor_dict_tensor(d, i);
            }
        } else {
            st = et_set_error(ET_ERR_FORMAT, "checkpoint: unexpected tensor \"%s\"", name);
        }
    }
    /* The optimizer's own load is all-or-nothing, but the module is loaded
     * first: check the optimizer entries here so that a bad one leaves the
     * module unchanged too. */
    for (int i = 0; o && st == ET_OK && i < et_optim_state_count(o); i++) {
        const char *want = et_optim_state_name(o, i);
        int k = 0;
        while (k < on && strcmp(onames[k], want) != 0)
            k++;
        if (k == on)
            st = et_set_error(ET_ERR_FORMAT, "checkpoint: optimizer state \"%s\" is missing",
                              want);
        else if (!et_same_shape(otensors[k], et_optim_state_tensor(o, i)))
            st = et_set_error(ET_ERR_SHAPE, "checkpoint: optimizer state \"%s\" has the wrong "
                              "shape", want);
    }
    if (o && st == ET_OK && on != et_optim_state_count(o))
        st = et_set_error(ET_ERR_FORMAT, "checkpoint: %d optimizer state tensors, %s expects %d",
                          on, et_optim_type(o), et_optim_state_count(o));

    /* 3. apply: only out-of-memory can fail from here on */
    if (st == ET_OK)
        st = et_module_load_state_dict(m, md);
    if (o && st == ET_OK)
        st = et_optim_load_state(o, onames, otensors, on, osteps);
    if (st == ET_OK) {
        for (int i = 0; i < nsv; i++)   /* values of our own format: cannot fail */
            et_scheduler_state_set(s, et_scheduler_state_name(s, i), sv[i]);
        if (o && !have_groups)
            et_optim_set_lr(o, olr);
        if (g)
            et_generator_set_state(g, gs);
        if (step)
            *step = step_v;
    }
out:
    if (st != ET_OK && have_groups)   /* put the hyper-parameters back */
        for (int r = ngroups * nhp - 1; r >= 0; r--)
            et_optim_group_set(o, r / nhp, et_optim_hparam_name(o, r % nhp), hp[r]);
    free(hp);
    et_tensor_dict_free(md);
    free(onames);
    free(otensors);
    return st;
}

et_status et_checkpoint_save(const char *path, const et_module *m, const et_optim *o,
                             const et_scheduler *s, const et_generator *g, int64_t step)
{
    if (!path)
        return et_set_error(ET_ERR_ARG, "checkpoint_save: NULL path");
    et_tensor_dict *d = et_checkpoint_state(m, o, s, g, step);
    if (!d)
        return et_errcode();
    et_status st = et_safetensors_save(d, path);
    et_tensor_dict_free(d);
    return st;
}

et_status et_checkpoint_load(const char *path, et_module *m, et_optim *o, et_scheduler *s,
                             et_generator *g, int64_t *step)
{
    if (!path)
        return et_set_error(ET_ERR_ARG, "checkpoint_load: NULL path");
    et_tensor_dict *d = NULL;
    et_status st = et_safetensors_load(path, &d);
    if (st == ET_OK)
        st = et_checkpoint_restore(d, m, o, s, g, step);
    et_tensor_dict_free(d);
    return st;
}
