/* hparams.c - live hyperparameters (PATCH /v1/models/{name}, docs/API.md):
 * a running model's optimizer hyperparameters (every parameter group, or
 * one), its scheduler and its divergence-guard policy change as torch code
 * changes them -- `group[key] = v` for each of optimizer.param_groups, a new
 * scheduler constructed on the optimizer -- between two steps (a job keeps
 * running).  The whole change is validated as a definition would be before
 * anything changes, recorded as a marker in the history, and persisted with
 * the spec.
 *
 * The spec stays a definition that recreates the model: PATCH writes the
 * new values into spec.optimizer (its top level and its "param_groups"
 * entries, so that every group the spec builds has the value the library
 * group has) and spec.scheduler -- except lr once a scheduler has taken the
 * spec's lrs as its base (torch's initial_lr, which no later change of the
 * lr moves): those fields keep the base, and the current lrs (the model's
 * state, GET's "lr" and param_groups) survive restarts as the scalar state
 * they always were.
 *
 * Library group g and the spec: group 0 holds the parameters no
 * param_groups entry selects (with the top-level options) when there are
 * such parameters, then one group per entry, in order (spec.c,
 * etd_spec_build_optim). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"
#include "server/formats/json_out.h"
#include "server/models/model_internal.h"

/* the optimizer flags (0/1 in the library, true/false in a spec) */
static const char *const bool_keys[] = {"nesterov", "maximize", "centered", "amsgrad", NULL};

static bool is_bool_key(const char *k)
{
    for (int i = 0; bool_keys[i]; i++)
        if (strcmp(bool_keys[i], k) == 0)
            return true;
    return false;
}

/* A spec field's library keys: "betas" is torch's (beta1, beta2). */
static int lib_keys(const char *field, const char *out[2])
{
    if (strcmp(field, "betas") == 0) {
        out[0] = "beta1";
        out[1] = "beta2";
        return 2;
    }
    out[0] = field;
    return 1;
}

/* The fields of the model's optimizer type (spec spelling). */
static const char *const *optim_fields(const etd_model *m) { return m->spec.optim.type->fields; }

/* The library index of key k, or -1. */
static int hp_index(const etd_model *m, const char *k)
{
    for (int i = 0; i < et_optim_num_hparams(m->opt); i++)
        if (strcmp(et_optim_hparam_name(m->opt, i), k) == 0)
            return i;
    return -1;
}

/* {"lr":0.1,"momentum":0.9,...} for group g from the values v (group-major,
 * et_optim_hparam_name order), spec spelling. */
static void write_group(etd_buf *b, const etd_model *m, const double *v, int g)
{
    const char *const *f = optim_fields(m);
    int nk = et_optim_num_hparams(m->opt);
    etd_buf_putc(b, '{');
    for (int i = 0; f[i]; i++) {
        const char *k[2];
        int n = lib_keys(f[i], k);
        etd_buf_puts(b, i ? ",\"" : "\"");
        etd_buf_puts(b, f[i]);
        etd_buf_puts(b, "\":");
        if (n == 2)
            etd_buf_putc(b, '[');
        for (int j = 0; j < n; j++) {
            int x = hp_index(m, k[j]);
            double d = x >= 0 && (g + 1) * nk <= ETD_TS_MAX_HP ? v[g * nk + x] : NAN;
            if (j)
                etd_buf_putc(b, ',');
            if (is_bool_key(k[j]))
                etd_buf_puts(b, d != 0 ? "true" : "false");
            else
                etd_json_double(b, d);
        }
        if (n == 2)
            etd_buf_putc(b, ']');
    }
    etd_buf_putc(b, '}');
}

etd_rc etd_model_param_groups(etd_model *m, etd_buf *out, etd_err *e)
{
    (void)e; /* the published copy: no lock to wait for (GET runs on the I/O thread) */
    pthread_mutex_lock(&m->pub_mu);
    etd_buf_putc(out, '[');
    for (int g = 0; g < m->pub_ng; g++) {
        if (g)
            etd_buf_putc(out, ',');
        write_group(out, m, m->pub_hp, g);
    }
    etd_buf_putc(out, ']');
    pthread_mutex_unlock(&m->pub_mu);
    return ETD_OK;
}

/* ---------------------------------------------------------------- PATCH */

#define MAX_SETS 64

typedef struct {
    int group;                  /* -1: every group */
    const char *key;            /* the library's key */
    const char *field;          /* the spec's (betas for beta1, beta2) */
    double value;
    double old[8];              /* per group, to undo (at most 8 groups tracked) */
} hp_set;

typedef struct {
    hp_set set[MAX_SETS];
    int n;
} hp_plan;

/* The members of one optimizer object of the patch (top level or
 * param_groups[g]) as library settings. */
static bool plan_object(const etd_model *m, const cJSON *o, const char *path, int group,
                        hp_plan *p, etd_err *e)
{
    const char *const *f = optim_fields(m);
    if (!etd_check_keys(o, path, NULL, f, group < 0 ? "param_groups" : NULL, e))
        return false;
    for (const cJSON *x = o->child; x; x = x->next) {
        if (strcmp(x->string, "param_groups") == 0)
            continue;
        /* the static spelling (x belongs to a copy the caller frees) */
        const char *field = NULL;
        for (int i = 0; f[i] && !field; i++)
            if (strcmp(f[i], x->string) == 0)
                field = f[i];
        if (!field)
            return etd_fail(e, ETD_EINVAL, "%s.%s: unknown field", path, x->string), false;
        const char *k[2];
        int n = lib_keys(field, k);
        for (int j = 0; j < n; j++) {
            const cJSON *v = n == 2 ? cJSON_GetArrayItem(x, j) : x;
            double d = cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1.0 : 0.0)
                       : cJSON_IsNumber(v) ? v->valuedouble : NAN;
            if (p->n == MAX_SETS)
                return etd_fail(e, ETD_EINVAL, "%s: too many changes", path), false;
            p->set[p->n++] = (hp_set){group, k[j], field, d, {0}};
        }
    }
    return true;
}

/* Every setting of the plan back to the value it had (reverse order: a key
 * set twice gets its first old value). */
static void undo(etd_model *m, const hp_plan *p, int ng)
{
    for (int i = p->n - 1; i >= 0; i--)
        for (int g = 0; g < ng && g < 8; g++)
            if (p->set[i].group < 0 || p->set[i].group == g)
                et_optim_group_set(m->opt, g, p->set[i].key, p->set[i].old[g]);
}

/* obj[key] = a copy of v (replaced or added); false: out of memory. */
static bool set_member(cJSON *obj, const char *key, const cJSON *v)
{
    cJSON *c = cJSON_Duplicate(v, true);
    if (!c)
        return false;
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, c);
    if (!cJSON_AddItemToObject(obj, key, c)) {
        cJSON_Delete(c);
        return false;
    }
    return true;
}

/* Library group g's current value of spec field f as JSON (betas: a pair;
 * flags: booleans); NULL: out of memory. */
static cJSON *group_value(const etd_model *m, int g, const char *f)
{
    const char *k[2];
    int n = lib_keys(f, k);
    if (n == 2) {
        double d[2] = {et_optim_group_get(m->opt, g, k[0]), et_optim_group_get(m->opt, g, k[1])};
        return cJSON_CreateDoubleArray(d, 2);
    }
    double d = et_optim_group_get(m->opt, g, k[0]);
    return is_bool_key(k[0]) ? cJSON_CreateBool(d != 0) : cJSON_CreateNumber(d);
}

/* The patch's top-level optimizer object o into the candidate spec: every
 * group gets the values (torch: `for g in opt.param_groups: g[k] = v`), so
 * the top level and every param_groups entry that sets the key. */
static bool merge_all(cJSON *copt, const cJSON *o)
{
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(copt, "param_groups");
    for (const cJSON *x = o->child; x; x = x->next) {
        if (strcmp(x->string, "param_groups") == 0 || strcmp(x->string, "type") == 0)
            continue;
        if (!set_member(copt, x->string, x))
            return false;
        for (cJSON *en = cJSON_IsArray(entries) ? entries->child : NULL; en; en = en->next)
            if (cJSON_GetObjectItemCaseSensitive(en, x->string) && !set_member(en, x->string, x))
                return false;
    }
    return true;
}

/* The patch's param_groups[g] object o into the candidate spec: the entry
 * that builds library group g, or the top level for the group of the
 * parameters no entry selects -- whose values the entries that do not set
 * a key inherit: they get their current value first, so they keep it. */
static bool merge_group(const etd_model *m, cJSON *copt, int g, bool rest, const cJSON *o)
{
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(copt, "param_groups");
    int ne = cJSON_IsArray(entries) ? cJSON_GetArraySize(entries) : 0;
    for (const cJSON *x = o->child; x; x = x->next) {
        if (rest && g == 0) {
            int i = 0;
            for (cJSON *en = ne ? entries->child : NULL; en; en = en->next, i++) {
                if (cJSON_GetObjectItemCaseSensitive(en, x->string))
                    continue;
                cJSON *cur = group_value(m, i + 1, x->string);
                if (!cur || !cJSON_AddItemToObject(en, x->string, cur)) {
                    cJSON_Delete(cur);
                    return false;
                }
            }
            if (!set_member(copt, x->string, x))
                return false;
        } else {
            cJSON *en = cJSON_GetArrayItem(entries, g - (rest ? 1 : 0));
            if (!en || !set_member(en, x->string, x))
                return false;
        }
    }
    return true;
}

/* Once a scheduler took the spec's lrs as its base: the candidate's lr
 * fields (top level and each entry) as they were in the old spec. */
static bool keep_base_lrs(cJSON *copt, const cJSON *old_opt)
{
    cJSON *ne = cJSON_GetObjectItemCaseSensitive(copt, "param_groups");
    const cJSON *oe = cJSON_GetObjectItemCaseSensitive(old_opt, "param_groups");
    int n = cJSON_IsArray(ne) ? cJSON_GetArraySize(ne) : 0;
    for (int i = -1; i < n; i++) {
        cJSON *dst = i < 0 ? copt : cJSON_GetArrayItem(ne, i);
        const cJSON *src = i < 0 ? old_opt : cJSON_GetArrayItem(oe, i);
        const cJSON *lr = cJSON_GetObjectItemCaseSensitive(src, "lr");
        if (lr) {
            if (!set_member(dst, "lr", lr))
                return false;
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(dst, "lr");
        }
    }
    return true;
}

static void json_or_null(etd_buf *b, const cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    etd_buf_puts(b, s ? s : "null");
    free(s);
}

/* The plan and the candidate spec from the patch's optimizer object po;
 * false + e (the field named). */
static bool plan_optimizer(const etd_model *m, const cJSON *po, cJSON *copt, int ng, bool rest,
                           hp_plan *plan, etd_err *e)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(po, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, m->spec.optim.type->name)))
        return etd_fail(e, ETD_EINVAL, "optimizer.type: the optimizer's type cannot be "
                        "changed (it is %s; define a new model for another)",
                        m->spec.optim.type->name), false;
    cJSON *copy = cJSON_Duplicate(po, true);
    if (!copy)
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "type");
    bool ok = plan_object(m, copy, "optimizer", -1, plan, e);
    if (ok && !merge_all(copt, copy)) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        ok = false;
    }
    cJSON_Delete(copy);
    if (!ok)
        return false;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(po, "param_groups");
    if (!groups)
        return true;
    if (!cJSON_IsArray(groups) || cJSON_GetArraySize(groups) != ng)
        return etd_fail(e, ETD_EINVAL, "optimizer.param_groups: expected a list of %d "
                        "object%s (one per parameter group, in the order of GET's "
                        "param_groups)", ng, ng == 1 ? "" : "s"), false;
    int g = 0;
    for (const cJSON *x = groups->child; x; x = x->next, g++) {
        char path[64];
        snprintf(path, sizeof path, "optimizer.param_groups[%d]", g);
        if (!cJSON_IsObject(x))
            return etd_fail(e, ETD_EINVAL, "%s: expected an object of hyperparameters", path),
                   false;
        if (cJSON_GetObjectItemCaseSensitive(x, "param_groups"))
            return etd_fail(e, ETD_EINVAL, "%s.param_groups: unknown field", path), false;
        if (!plan_object(m, x, path, g, plan, e))
            return false;
        if (!merge_group(m, copt, g, rest, x))
            return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    }
    return true;
}

/* The candidate spec's scheduler / nonfinite from the patch. */
static bool plan_rest(cJSON *cand, const cJSON *ps, const cJSON *pn)
{
    if (ps && cJSON_IsNull(ps))
        cJSON_DeleteItemFromObjectCaseSensitive(cand, "scheduler");
    else if (ps && !set_member(cand, "scheduler", ps))
        return false;
    return !pn || set_member(cand, "nonfinite", pn);
}

bool etd_model_patch_wants(const cJSON *body)
{
    static const char *const keys[] = {"optimizer", "scheduler", "nonfinite", NULL};
    for (int i = 0; keys[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(body, keys[i]))
            return true;
    return false;
}

etd_rc etd_model_patch_check(const cJSON *body, etd_err *e)
{
    static const char *const allowed[] = {"optimizer", "scheduler", "nonfinite", "serving",
                                          "keep_versions", NULL};
    static const char *const fixed[] = {"name", "layers", "loss", "seed", "batching", NULL};
    if (!cJSON_IsObject(body))
        return etd_fail(e, ETD_EINVAL, "body: expected a JSON object");
    for (int i = 0; fixed[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(body, fixed[i]))
            return etd_fail(e, ETD_EINVAL, "%s: cannot be changed on a model (PATCH changes "
                            "optimizer hyperparameters, the scheduler, nonfinite, serving and "
                            "keep_versions; define a new model for another %s)", fixed[i],
                            fixed[i]);
    if (!etd_check_keys(body, "", NULL, allowed, NULL, e))
        return e->rc;
    if (!body->child)
        return etd_fail(e, ETD_EINVAL, "body: nothing to change (expected optimizer, scheduler, "
                        "nonfinite, serving or keep_versions)");
    const cJSON *po = cJSON_GetObjectItemCaseSensitive(body, "optimizer");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(body, "scheduler");
    if (po && !cJSON_IsObject(po))
        return etd_fail(e, ETD_EINVAL, "optimizer: expected an object of hyperparameters "
                        "({\"lr\": 0.01, ...})");
    if (ps && !cJSON_IsObject(ps) && !cJSON_IsNull(ps))
        return etd_fail(e, ETD_EINVAL, "scheduler: expected a scheduler ({\"type\": ...}) or "
                        "null to remove it");
    return ETD_OK;
}

/* The {"changes": ...} member: every value that moved. */
static void write_changes(etd_buf *ch, const etd_model *m, const hp_plan *plan, int ng,
                          const cJSON *old_spec, const cJSON *ps, int nf_before, int nf_after,
                          int *nch)
{
    etd_buf_puts(ch, "\"changes\":{");
    for (int i = 0; i < plan->n; i++) {
        const hp_set *s = &plan->set[i];
        bool all = true; /* every group moved to the same value: one entry */
        for (int g = 0; g < ng; g++)
            all &= (s->group < 0) && et_optim_group_get(m->opt, g, s->key) != s->old[g];
        for (int g = 0; g < ng && g < 8; g++) {
            if (s->group >= 0 && g != s->group)
                continue;
            double now = et_optim_group_get(m->opt, g, s->key);
            if (now == s->old[g])
                continue;
            etd_buf_puts(ch, (*nch)++ ? "," : "");
            if (ng > 1 && !all)
                etd_buf_printf(ch, "\"param_groups[%d].%s\":{\"from\":", g, s->key);
            else
                etd_buf_printf(ch, "\"%s\":{\"from\":", s->key);
            etd_json_double(ch, s->old[g]);
            etd_buf_puts(ch, ",\"to\":");
            etd_json_double(ch, now);
            etd_buf_putc(ch, '}');
            if (all)
                break;
        }
    }
    if (ps) {
        etd_buf_puts(ch, (*nch)++ ? ",\"scheduler\":{\"from\":" : "\"scheduler\":{\"from\":");
        json_or_null(ch, cJSON_GetObjectItemCaseSensitive(old_spec, "scheduler"));
        etd_buf_puts(ch, ",\"to\":");
        json_or_null(ch, cJSON_IsNull(ps) ? NULL : ps);
        etd_buf_putc(ch, '}');
    }
    if (nf_after != nf_before)
        etd_buf_printf(ch, "%s\"nonfinite\":{\"from\":\"%s\",\"to\":\"%s\"}", (*nch)++ ? "," : "",
                       etd_nf_policy_names[nf_before], etd_nf_policy_names[nf_after]);
    etd_buf_putc(ch, '}');
}

/* Swap the optimizer, scheduler and policy parts of two parsed specs (the
 * layers stay: readers that do not take the model's lock use them). */
static void swap_parts(etd_spec *a, etd_spec *b)
{
    etd_optim_spec o = a->optim;
    a->optim = b->optim;
    b->optim = o;
    etd_sched_spec s = a->sched;
    a->sched = b->sched;
    b->sched = s;
    int nf = a->nonfinite;
    a->nonfinite = b->nonfinite;
    b->nonfinite = nf;
}

etd_rc etd_model_patch(etd_model *m, const cJSON *body, etd_patch_result *res, etd_err *e)
{
    memset(res, 0, sizeof *res);
    if (etd_model_patch_check(body, e) != ETD_OK)
        return e->rc;
    const cJSON *po = cJSON_GetObjectItemCaseSensitive(body, "optimizer");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(body, "scheduler");
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(body, "nonfinite");

    if (etd_model_lock(m, true, e) != ETD_OK) /* not lock_train: a job goes on */
        return e->rc;
    etd_rc rc = ETD_OK;
    etd_spec ns;
    memset(&ns, 0, sizeof ns);
    hp_plan plan = {.n = 0};
    etd_buf ch;
    etd_buf_init(&ch);
    int ng = et_optim_num_groups(m->opt);
    bool rest = ng == m->spec.optim.ngroups + 1; /* group 0: what no entry selects */
    cJSON *old_spec = cJSON_Parse(m->spec_json);
    cJSON *cand = cJSON_Parse(m->spec_json);
    cJSON *copt = cJSON_GetObjectItemCaseSensitive(cand, "optimizer");
    const cJSON *old_opt = cJSON_GetObjectItemCaseSensitive(old_spec, "optimizer");
    char *new_json = NULL;
    et_scheduler *old_sched = m->sched, *new_sched = NULL;
    double lr_before[8];
    if (!old_spec || !cand || !cJSON_IsObject(copt)) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto out;
    }
    if (ng > 8) { /* spec.c allows 16 entries; what undo tracks is bounded */
        rc = etd_fail(e, ETD_EINVAL, "optimizer: PATCH changes models of at most 8 parameter "
                      "groups (this one has %d)", ng);
        goto out;
    }
    /* 1. the plan and the candidate spec */
    if ((po && !plan_optimizer(m, po, copt, ng, rest, &plan, e)) || !plan_rest(cand, ps, pn)) {
        rc = e->rc ? e->rc : etd_fail(e, ETD_ENOMEM, "out of memory");
        goto out;
    }
    if (m->ts.lr_base && !keep_base_lrs(copt, old_opt)) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto out;
    }
    /* 2. the candidate is checked as a definition is (ranges, nesterov's
     * conditions, every group, the scheduler's fields; errors name the field) */
    if (!etd_spec_parse(cand, m->reg->o.max_params, &ns, e)) {
        rc = e->rc;
        goto out;
    }
    for (int i = 0; i < plan.n; i++)
        if (isnan(plan.set[i].value)) {
            if (plan.set[i].group < 0)
                rc = etd_fail(e, ETD_EINVAL, "optimizer.%s: expected a number",
                              plan.set[i].field);
            else
                rc = etd_fail(e, ETD_EINVAL, "optimizer.param_groups[%d].%s: expected a number",
                              plan.set[i].group, plan.set[i].field);
            goto out;
        }
    if (!(new_json = cJSON_PrintUnformatted(cand))) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto out;
    }

    /* 3. apply: hyperparameters (undone if the library refuses one) */
    for (int g = 0; g < ng; g++)
        lr_before[g] = et_optim_group_get(m->opt, g, "lr");
    for (int i = 0; i < plan.n; i++)
        for (int g = 0; g < ng; g++)
            plan.set[i].old[g] = et_optim_group_get(m->opt, g, plan.set[i].key);
    for (int i = 0; i < plan.n && rc == ETD_OK; i++) {
        const hp_set *s = &plan.set[i];
        for (int g = 0; g < ng && rc == ETD_OK; g++)
            if ((s->group < 0 || g == s->group) &&
                et_optim_group_set(m->opt, g, s->key, s->value) != ET_OK)
                rc = etd_fail(e, ETD_EINVAL, "optimizer.%s: %s", s->key, et_errmsg());
    }
    if (rc != ETD_OK)
        goto undo;
    /* the scheduler: a new one on the optimizer, from its current lr (torch:
     * a scheduler constructed mid-training; its initial step runs) */
    if (ps && !cJSON_IsNull(ps) && !(new_sched = etd_spec_build_sched(&ns, m->opt, e))) {
        rc = e->rc;
        goto undo;
    }
    if (ps)
        m->sched = new_sched;
    if (m->sched && et_scheduler_state_count(m->sched) > ETD_TS_MAX_SCHED) {
        rc = etd_fail(e, ETD_EINVAL, "scheduler: too much state to keep (at most %d values)",
                      ETD_TS_MAX_SCHED);
        goto undo;
    }
    /* 4. the record of what changed */
    write_changes(&ch, m, &plan, ng, old_spec, ps, m->ts.nonfinite, ns.nonfinite, &res->nchanges);
    if (ch.oom) {
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto undo;
    }
    /* the new spec in place (readers copy spec_json under pub_mu) */
    char *old_json = m->spec_json;
    pthread_mutex_lock(&m->pub_mu);
    m->spec_json = new_json;
    pthread_mutex_unlock(&m->pub_mu);
    swap_parts(&m->spec, &ns);
    int nf_before = m->ts.nonfinite;
    bool lr_base_before = m->ts.lr_base;
    m->ts.nonfinite = m->spec.nonfinite;
    m->ts.lr_base = lr_base_before || m->sched;
    m->hp_stale = true;
    /* 5. persist (and undo everything if a synchronous save fails) */
    if (etd_model_commit(m, NULL, e) != ETD_OK) {
        rc = e->rc;
        pthread_mutex_lock(&m->pub_mu);
        m->spec_json = old_json;
        pthread_mutex_unlock(&m->pub_mu);
        swap_parts(&m->spec, &ns);
        m->ts.nonfinite = nf_before;
        m->ts.lr_base = lr_base_before;
        goto undo;
    }
    free(old_json);
    new_json = NULL;
    if (ps)
        et_scheduler_free(old_sched);
    /* the rollback image is of the state before: take it again */
    etd_err ge;
    if (etd_guard_keep(m, &ge) != ETD_OK)
        fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
    etd_model_publish(m);
    res->step = m->ts.step;
    if (res->nchanges) {
        etd_model_marker_add(m, m->ts.step, ETD_MK_HPARAMS, ch.data);
        etd_buf ev;
        etd_buf_init(&ev);
        etd_buf_puts(&ev, "\"step\":");
        etd_json_i64(&ev, m->ts.step);
        etd_buf_puts(&ev, ",\"lr\":");
        etd_json_double(&ev, et_optim_get_lr(m->opt));
        etd_buf_putc(&ev, ',');
        etd_buf_puts(&ev, ch.data);
        etd_events_flush(m); /* after the steps before it */
        if (!ev.oom)
            etd_events_publish(m, ETD_EV_HPARAMS, ev.data);
        etd_buf_free(&ev);
    }
    res->changes = ch.data; /* the caller frees it */
    ch.data = NULL;
    goto out;
undo:
    if (ps) {
        et_scheduler_free(new_sched);
        m->sched = old_sched;
    }
    undo(m, &plan, ng);
    for (int g = 0; g < ng; g++) /* a new scheduler's initial step moved them */
        et_optim_group_set(m->opt, g, "lr", lr_before[g]);
    m->hp_stale = true;
    etd_model_publish(m);
out:
    free(new_json);
    etd_buf_free(&ch);
    etd_spec_free(&ns);
    cJSON_Delete(cand);
    cJSON_Delete(old_spec);
    etd_model_unlock(m);
    return rc;
}

/* ---------------------------------------------------------------- rollback */

/* A copy of spec j without the parts PATCH changes (what must be equal). */
static char *fixed_parts(const cJSON *j)
{
    cJSON *c = cJSON_Duplicate(j, true);
    if (!c)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(c, "optimizer");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "scheduler");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "nonfinite");
    char *out = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return out;
}

etd_rc etd_hp_swap_prepare(etd_model *m, const cJSON *vspec, int64_t version, etd_hp_swap *s,
                           etd_err *e)
{
    memset(s, 0, sizeof *s);
    cJSON *cur = cJSON_Parse(m->spec_json);
    const cJSON *vo = cJSON_GetObjectItemCaseSensitive(vspec, "optimizer");
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(cur, "optimizer");
    const cJSON *vt = cJSON_GetObjectItemCaseSensitive(vo, "type");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(co, "type");
    char *a = fixed_parts(vspec), *b = cur ? fixed_parts(cur) : NULL;
    etd_rc rc = ETD_OK;
    if (!a || !b || !(s->json = cJSON_PrintUnformatted(vspec)))
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
    else if (strcmp(a, b) != 0 || !cJSON_IsString(vt) || !cJSON_IsString(ct) ||
             strcmp(vt->valuestring, ct->valuestring) != 0)
        rc = etd_fail(e, ETD_ESTATE, "version %lld of model \"%s\" was frozen with another "
                      "definition than the model's (only the optimizer's hyperparameters, the "
                      "scheduler and the nonfinite policy can differ)", (long long)version,
                      m->name);
    else if (!etd_spec_parse(vspec, m->reg->o.max_params, &s->spec, e))
        rc = e->rc;
    else if (s->spec.optim.ngroups != m->spec.optim.ngroups)
        rc = etd_fail(e, ETD_ESTATE, "version %lld of model \"%s\": %d parameter groups, the "
                      "model has %d", (long long)version, m->name, s->spec.optim.ngroups,
                      m->spec.optim.ngroups);
    else if (s->spec.sched.type && !(s->sched = etd_spec_build_sched(&s->spec, m->opt, e)))
        rc = e->rc;
    free(a);
    free(b);
    cJSON_Delete(cur);
    if (rc != ETD_OK)
        etd_hp_swap_free(s);
    return rc;
}

void etd_hp_swap_exchange(etd_model *m, etd_hp_swap *s)
{
    et_scheduler *sc = m->sched;
    m->sched = s->sched;
    s->sched = sc;
    pthread_mutex_lock(&m->pub_mu); /* readers copy spec_json under pub_mu */
    char *j = m->spec_json;
    m->spec_json = s->json;
    pthread_mutex_unlock(&m->pub_mu);
    s->json = j;
    swap_parts(&m->spec, &s->spec);
    m->hp_stale = true;
}

void etd_hp_swap_free(etd_hp_swap *s)
{
    et_scheduler_free(s->sched);
    free(s->json);
    etd_spec_free(&s->spec);
    memset(s, 0, sizeof *s);
}

void etd_patch_result_free(etd_patch_result *r)
{
    free(r->changes);
    memset(r, 0, sizeof *r);
}
