/* versions.c - a model's versions (versions.h): freeze, list, serve,
 * delete, retention, rollback, fork.  The files are versions_file.c's. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/formats/json_in.h"
#include "server/formats/json_out.h"
#include "server/formats/modelfile.h"
#include "server/models/versions_internal.h"

/* ---------------------------------------------------------------- retention */

/* Drop version at index i: list entry, then its file (vs->change held,
 * vs->mu not). */
static void drop_at(etd_model *m, struct etd_versions *vs, int64_t n)
{
    pthread_mutex_lock(&vs->mu);
    int i = etd_vers_find(vs, n);
    etd_model *s = NULL;
    if (i >= 0) {
        s = vs->v[i].serve;
        memmove(vs->v + i, vs->v + i + 1, (size_t)(vs->n - i - 1) * sizeof *vs->v);
        vs->n--;
    }
    pthread_mutex_unlock(&vs->mu);
    etd_model_unref(s); /* predictions holding it finish first: they hold a reference */
    char name[32];
    snprintf(name, sizeof name, "%lld", (long long)n);
    etd_err fe;
    if (etd_modelfile_remove(vs->dir, name, &fe) != ETD_OK)
        fprintf(stderr, "easytorchd: model %s: removing version %lld: %s\n", m->name,
                (long long)n, fe.msg);
}

/* A "version" event (and, for freezes and rollbacks, a marker on the loss
 * chart): {"action": "frozen" | "deleted" | "removed" | "rolled_back" |
 * "serving", "version": N, "step": the model's step count, ...extra}. */
static void version_event(etd_model *m, const char *action, int64_t n, const char *extra,
                          bool marker)
{
    etd_model_info in;
    etd_model_info_get(m, &in);
    char what[256], data[320];
    snprintf(what, sizeof what, "\"action\":\"%s\",\"version\":%lld%s%s", action, (long long)n,
             extra ? "," : "", extra ? extra : "");
    snprintf(data, sizeof data, "%s,\"step\":%lld", what, (long long)in.sum.step);
    etd_events_flush(m); /* after the steps before it */
    etd_events_publish(m, ETD_EV_VERSION, data);
    if (marker) /* a marker has its own step member */
        etd_model_marker_add(m, in.sum.step, ETD_MK_VERSION, what);
}

/* keep_versions: while there are more, the oldest unlabelled version goes,
 * then the oldest labelled one; never the serving one nor the newest
 * (vs->change held). */
static int apply_retention(etd_model *m, struct etd_versions *vs, int64_t *removed, int max)
{
    int nr = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (;;) {
            int64_t victim = 0;
            pthread_mutex_lock(&vs->mu);
            if (vs->keep > 0 && vs->n > vs->keep)
                for (int i = 0; i + 1 < vs->n && !victim; i++) {
                    const etd_version_info *vi = &vs->v[i].info;
                    if (vi->version != vs->serving && (pass == 1 || !vi->label[0]))
                        victim = vi->version;
                }
            pthread_mutex_unlock(&vs->mu);
            if (!victim)
                break;
            drop_at(m, vs, victim);
            version_event(m, "removed", victim, "\"reason\":\"keep_versions\"", false);
            if (removed && nr < max)
                removed[nr] = victim;
            nr++;
        }
    }
    return nr;
}

/* ---------------------------------------------------------------- the calls */

etd_rc etd_model_version_payload(etd_model *m, int64_t version, uint8_t **buf, size_t *len,
                                 etd_err *e)
{
    *buf = NULL;
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ESTATE, "model \"%s\" has no versions", m->name);
    if (version == 0) {
        if (etd_model_lock(m, false, e) != ETD_OK)
            return e->rc;
        etd_rc rc = etd_ts_encode(m, buf, len, e);
        etd_model_unlock(m);
        return rc;
    }
    pthread_mutex_lock(&vs->change);
    pthread_mutex_lock(&vs->mu);
    bool have = etd_vers_find(vs, version) >= 0;
    pthread_mutex_unlock(&vs->mu);
    etd_rc rc = have ? etd_vers_read_file(vs, version, buf, len, e)
                     : etd_vers_not_found(m, version, e);
    pthread_mutex_unlock(&vs->change);
    if (rc != ETD_OK && have)
        etd_err_append(e, " (version %lld of model \"%s\")", (long long)version, m->name);
    return rc;
}

etd_rc etd_model_freeze(etd_model *m, const char *label, bool serve, etd_version_info *out,
                        int64_t *removed, int max_removed, int *nremoved, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (nremoved)
        *nremoved = 0;
    if (!vs)
        return etd_fail(e, ETD_ESTATE, "model \"%s\" cannot have versions", m->name);
    if (label && strlen(label) >= sizeof out->label)
        return etd_fail(e, ETD_EINVAL, "label: longer than %d bytes", (int)sizeof out->label - 1);
    uint8_t *live = NULL, *vbuf = NULL;
    size_t live_len = 0, vlen = 0;
    /* the state under the model's lock, shared: training waits, predictions go on */
    if (etd_model_lock(m, false, e) != ETD_OK)
        return e->rc;
    etd_rc rc = etd_ts_encode(m, &live, &live_len, e);
    etd_version_info vi = {0};
    /* a job's evaluation at this very step measured these weights: the
     * version keeps it as its metrics (the newest, if there are several) */
    pthread_mutex_lock(&m->pub_mu);
    for (size_t i = m->v_len; i-- > 0 && m->v[i].step >= m->ts.step;)
        if (m->v[i].step == m->ts.step && !m->v[i].stale && m->v[i].wgen == m->wgen) {
            vi.has_val = true;
            vi.val = m->v[i];
            break;
        }
    pthread_mutex_unlock(&m->pub_mu);
    etd_model_unlock(m);
    if (rc != ETD_OK)
        return rc;
    pthread_mutex_lock(&vs->change);
    vi.version = vs->next;
    vi.created = etd_vers_now();
    snprintf(vi.label, sizeof vi.label, "%s", label ? label : "");
    etd_model *s = NULL;
    char name[32];
    snprintf(name, sizeof name, "%lld", (long long)vi.version);
    etd_err fe;
    if ((rc = etd_vers_payload(live, live_len, &vi, &vbuf, &vlen, e)) != ETD_OK)
        goto done;
    if (!(s = etd_vers_serve_model(m, vbuf, vlen, &vi, e))) {
        rc = e->rc;
        goto done;
    }
    if (etd_modelfile_mkdir(vs->dir, &fe) != ETD_OK ||
        etd_modelfile_write(vs->dir, name, vbuf, vlen, NULL, &fe) != ETD_OK) {
        rc = etd_fail(e, fe.rc, "saving version %lld of model \"%s\" failed: %s",
                      (long long)vi.version, m->name, fe.msg);
        goto done;
    }
    pthread_mutex_lock(&vs->mu);
    if (vs->n == vs->cap) {
        int nc = vs->cap ? vs->cap * 2 : 8;
        etd_version *nv = realloc(vs->v, (size_t)nc * sizeof *nv);
        if (nv) {
            vs->v = nv;
            vs->cap = nc;
        }
    }
    bool room = vs->n < vs->cap;
    int64_t old_serving = vs->serving;
    if (room) {
        vs->v[vs->n++] = (etd_version){vi, s};
        vs->next = vi.version + 1;
        if (serve)
            vs->serving = vi.version;
    }
    pthread_mutex_unlock(&vs->mu);
    if (!room) {
        etd_modelfile_remove(vs->dir, name, &fe);
        rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        goto done;
    }
    s = NULL;
    if ((rc = etd_vers_write_index(vs, e)) != ETD_OK) {
        /* not durable as a version without the index: undo */
        pthread_mutex_lock(&vs->mu);
        vs->serving = old_serving;
        vs->next = vi.version; /* the number was never acknowledged */
        pthread_mutex_unlock(&vs->mu);
        drop_at(m, vs, vi.version);
        goto done;
    }
    int nr = apply_retention(m, vs, removed, max_removed);
    if (nr)
        etd_vers_write_index(vs, &fe); /* the files are gone either way; next stays ahead */
    if (nremoved)
        *nremoved = nr;
    vi.serving = serve;
    *out = vi;
    version_event(m, "frozen", vi.version, serve ? "\"serving\":true" : NULL, true);
done:
    pthread_mutex_unlock(&vs->change);
    etd_model_unref(s);
    free(live);
    free(vbuf);
    return rc;
}

etd_rc etd_model_version_evaluate(etd_model *m, int64_t n, const etd_array *x,
                                  const etd_array *y, const etd_eval_opts *o,
                                  etd_eval_result *r, etd_version_info *vi, etd_err *e)
{
    etd_model *vm = NULL;
    if (etd_model_version_model(m, n, &vm, e) != ETD_OK)
        return e->rc;
    etd_rc rc = etd_model_evaluate(vm, x, y, o, r, e);
    etd_model_unref(vm);
    if (rc != ETD_OK)
        return rc;
    struct etd_versions *vs = etd_vers_of(m);
    uint8_t *buf = NULL, *nbuf = NULL;
    size_t len = 0, nlen = 0;
    pthread_mutex_lock(&vs->change);
    pthread_mutex_lock(&vs->mu);
    int i = etd_vers_find(vs, n);
    if (i >= 0)
        *vi = vs->v[i].info;
    pthread_mutex_unlock(&vs->mu);
    if (i < 0) {
        rc = etd_vers_not_found(m, n, e);
        goto done;
    }
    vi->has_val = true;
    memset(&vi->val, 0, sizeof vi->val);
    vi->val.step = r->step;
    vi->val.job = 0;
    vi->val.metrics = r->metrics;
    vi->val.k = r->k;
    memcpy(vi->val.value, r->value, sizeof vi->val.value);
    if (r->metrics & 1u << ETD_M_LOSS) {
        vi->val.nlosses = r->nlosses;
        memcpy(vi->val.losses, r->losses, sizeof vi->val.losses);
    }
    vi->val_rows = r->rows;
    vi->val_time = etd_vers_now();
    char name[32];
    snprintf(name, sizeof name, "%lld", (long long)n);
    etd_err fe;
    if ((rc = etd_vers_read_file(vs, n, &buf, &len, e)) != ETD_OK ||
        (rc = etd_vers_repack(buf, len, vi, &nbuf, &nlen, e)) != ETD_OK)
        goto done;
    if (etd_modelfile_write(vs->dir, name, nbuf, nlen, NULL, &fe) != ETD_OK) {
        rc = etd_fail(e, fe.rc, "saving the metrics of version %lld of model \"%s\" failed: %s",
                      (long long)n, m->name, fe.msg);
        goto done;
    }
    vi->size = (int64_t)nlen + ETD_FILE_HEADER;
    pthread_mutex_lock(&vs->mu);
    if ((i = etd_vers_find(vs, n)) >= 0) { /* deletes take vs->change: it is there */
        vs->v[i].info = *vi;
        vi->serving = n == vs->serving;
    }
    pthread_mutex_unlock(&vs->mu);
done:
    pthread_mutex_unlock(&vs->change);
    free(buf);
    free(nbuf);
    return rc;
}

etd_rc etd_model_version_list(etd_model *m, etd_version_list *l, etd_err *e)
{
    memset(l, 0, sizeof *l);
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return ETD_OK;
    pthread_mutex_lock(&vs->mu);
    l->serving = vs->serving;
    l->keep = vs->keep;
    l->v = calloc((size_t)vs->n + 1, sizeof *l->v);
    if (l->v) {
        l->n = vs->n;
        for (int i = 0; i < vs->n; i++) {
            l->v[i] = vs->v[i].info;
            l->v[i].serving = vs->v[i].info.version == vs->serving;
        }
    }
    pthread_mutex_unlock(&vs->mu);
    if (!l->v)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    return ETD_OK;
}

void etd_version_list_free(etd_version_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

etd_rc etd_model_version_info(etd_model *m, int64_t n, etd_version_info *out, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no versions", m->name);
    pthread_mutex_lock(&vs->mu);
    int i = etd_vers_find(vs, n);
    if (i >= 0) {
        *out = vs->v[i].info;
        out->serving = n == vs->serving;
    }
    pthread_mutex_unlock(&vs->mu);
    return i >= 0 ? ETD_OK : etd_vers_not_found(m, n, e);
}

etd_rc etd_model_version_delete(etd_model *m, int64_t n, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no versions", m->name);
    pthread_mutex_lock(&vs->change);
    pthread_mutex_lock(&vs->mu);
    int i = etd_vers_find(vs, n);
    bool serving = n == vs->serving;
    pthread_mutex_unlock(&vs->mu);
    etd_rc rc = ETD_OK;
    if (i < 0)
        rc = etd_vers_not_found(m, n, e);
    else if (serving)
        rc = etd_fail(e, ETD_ESTATE, "version %lld of model \"%s\" is serving: serve another "
                      "first (PATCH /v1/models/%s {\"serving\": \"live\"})", (long long)n,
                      m->name, m->name);
    else
        drop_at(m, vs, n);
    pthread_mutex_unlock(&vs->change);
    if (rc == ETD_OK)
        version_event(m, "deleted", n, NULL, false);
    return rc;
}

etd_rc etd_model_version_model(etd_model *m, int64_t n, etd_model **out, etd_err *e)
{
    *out = NULL;
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no versions", m->name);
    pthread_mutex_lock(&vs->mu);
    int i = etd_vers_find(vs, n);
    if (i >= 0) {
        *out = vs->v[i].serve;
        atomic_fetch_add(&(*out)->refs, 1);
    }
    pthread_mutex_unlock(&vs->mu);
    return i >= 0 ? ETD_OK : etd_vers_not_found(m, n, e);
}

etd_rc etd_model_serving_model(etd_model *m, etd_model **out, int64_t *version, etd_err *e)
{
    (void)e;
    struct etd_versions *vs = etd_vers_of(m);
    *out = m;
    *version = 0;
    if (vs) {
        pthread_mutex_lock(&vs->mu);
        int i = vs->serving ? etd_vers_find(vs, vs->serving) : -1;
        if (i >= 0) {
            *out = vs->v[i].serve;
            *version = vs->serving;
        }
        pthread_mutex_unlock(&vs->mu);
    }
    atomic_fetch_add(&(*out)->refs, 1);
    return ETD_OK;
}

void etd_model_lifecycle(etd_model *m, int64_t *serving, int64_t *keep, int *n)
{
    struct etd_versions *vs = etd_vers_of(m);
    *serving = *keep = 0;
    *n = 0;
    if (!vs)
        return;
    pthread_mutex_lock(&vs->mu);
    *serving = vs->serving;
    *keep = vs->keep;
    *n = vs->n;
    pthread_mutex_unlock(&vs->mu);
}

etd_rc etd_model_set_lifecycle(etd_model *m, int64_t serving, int64_t keep, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ESTATE, "model \"%s\" cannot have versions", m->name);
    pthread_mutex_lock(&vs->change);
    pthread_mutex_lock(&vs->mu);
    int64_t old_s = vs->serving, old_k = vs->keep;
    if ((serving < 0 || serving == old_s) && (keep < 0 || keep == old_k) &&
        (serving <= 0 || etd_vers_find(vs, serving) >= 0)) { /* nothing to change or write */
        pthread_mutex_unlock(&vs->mu);
        pthread_mutex_unlock(&vs->change);
        return ETD_OK;
    }
    bool ok = serving <= 0 || etd_vers_find(vs, serving) >= 0;
    if (ok) {
        if (serving >= 0)
            vs->serving = serving;
        if (keep >= 0)
            vs->keep = keep;
    }
    pthread_mutex_unlock(&vs->mu);
    etd_rc rc;
    if (!ok) {
        rc = etd_vers_not_found(m, serving, e);
        etd_err_append(e, " (serving)");
    } else if ((rc = etd_vers_write_index(vs, e)) != ETD_OK) {
        pthread_mutex_lock(&vs->mu);
        vs->serving = old_s;
        vs->keep = old_k;
        pthread_mutex_unlock(&vs->mu);
        etd_err_append(e, "; nothing changed");
    } else {
        if (serving >= 0 && serving != old_s) {
            char ex[64];
            if (serving)
                snprintf(ex, sizeof ex, "\"serving\":%lld", (long long)serving);
            else
                snprintf(ex, sizeof ex, "\"serving\":\"live\"");
            version_event(m, "serving", serving, ex, false);
        }
        if (apply_retention(m, vs, NULL, 0)) {
            etd_err fe;
            etd_vers_write_index(vs, &fe);
        }
    }
    pthread_mutex_unlock(&vs->change);
    return rc;
}

etd_rc etd_model_rollback(etd_model *m, int64_t n, etd_rollback_result *r, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no versions", m->name);
    uint8_t *buf = NULL;
    size_t len = 0;
    /* the file first (verified), outside the model's lock */
    if (etd_model_version_payload(m, n, &buf, &len, e) != ETD_OK)
        return e->rc;
    et_tensor_dict *d = NULL;
    cJSON *meta = NULL;
    const char *fname;
    const cJSON *spec_j;
    uint64_t seed;
    etd_train_state st = {0}, snap = {0};
    etd_rc rc = etd_ts_decode(buf, len, &d, &meta, &fname, &spec_j, &seed, e);
    if (rc != ETD_OK)
        goto out;
    if ((rc = etd_model_lock_train(m, e)) != ETD_OK) /* 409 while a job trains it */
        goto out;
    char *sj = cJSON_PrintUnformatted(spec_j);
    bool same = sj && strcmp(sj, m->spec_json) == 0;
    free(sj);
    /* Frozen before a PATCH: the version's optimizer hyperparameters (they are
     * in its state), scheduler and policy come back with it -- the scheduler
     * object is the version's own type (or none), built before its state is
     * applied; the spec follows.  All or nothing like the rest. */
    etd_hp_swap hs = {0};
    bool swapped = false;
    /* the image to go back to first (of the model's own scheduler); then the
     * version's scheduler in place, since what the file holds is read by the
     * model's scheduler */
    if ((rc = etd_ts_capture(m, ETD_TS_ALL, true, &snap, e)) == ETD_OK &&
        (same || (rc = etd_hp_swap_prepare(m, spec_j, n, &hs, e)) == ETD_OK)) {
        if (!same) {
            etd_hp_swap_exchange(m, &hs);
            swapped = true;
        }
        if ((rc = etd_ts_from_file(m, d, meta, &st, e)) != ETD_OK) {
            if (swapped) {
                etd_hp_swap_exchange(m, &hs);
                swapped = false;
                etd_err re; /* building the scheduler moved the lrs */
                if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                    fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name,
                            re.msg);
            }
            goto unlock;
        }
        st.parts &= ~(unsigned)ETD_TS_JOBS; /* the job records are the model's history */
        r->from_step = m->ts.step;
        r->discarded = m->ts.pending;
        if ((rc = etd_ts_apply(m, &st, e)) != ETD_OK) {
            if (swapped)
                etd_hp_swap_exchange(m, &hs);
            swapped = false;
            etd_err re;
            if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
        } else {
            etd_guard_recheck(m);
            etd_model_weights_changed(m);
            /* a failed synchronous save: the model's scheduler and spec back
             * before the state (snap is of them) */
            rc = etd_model_commit(m, swapped ? NULL : &snap, e);
            if (rc != ETD_OK && swapped) {
                etd_hp_swap_exchange(m, &hs);
                swapped = false;
                etd_err re;
                if (etd_ts_apply(m, &snap, &re) != ETD_OK)
                    fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name,
                            re.msg);
                else
                    etd_err_append(e, "; the request changed nothing");
                etd_model_publish(m);
            }
            etd_err ge;
            if (rc == ETD_OK && etd_guard_keep(m, &ge) != ETD_OK)
                fprintf(stderr, "easytorchd: model %s: %s\n", m->name, ge.msg);
        }
        r->hyperparameters = swapped;
        r->version = n;
        r->step = m->ts.step;
        if (rc == ETD_OK) {
            char ex[64];
            snprintf(ex, sizeof ex, "\"from_step\":%lld", (long long)r->from_step);
            etd_model_publish(m);
            version_event(m, "rolled_back", n, ex, true);
        }
        r->scheduler = m->sched != NULL;
        r->buffers = et_module_num_buffers(m->net) > 0;
    }
unlock:
    etd_hp_swap_free(&hs); /* the side the model no longer uses */
    etd_model_unlock(m);
out:
    etd_ts_free(&snap);
    etd_ts_free(&st);
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- fork */

etd_rc etd_versions_fork(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e)
{
    *out = NULL;
    static const char *const top[] = {"name", "from", "keep_versions", NULL};
    static const char *const from_keys[] = {"model", "version", NULL};
    if (!etd_check_keys(body, "", " for a fork (the spec comes from the version)", top, NULL, e))
        return e->rc;
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(body, "from");
    if (!cJSON_IsObject(from))
        return etd_fail(e, ETD_EINVAL, "from: expected {\"model\": name, \"version\": N}");
    if (!etd_check_keys(from, "from", NULL, from_keys, NULL, e))
        return e->rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (!cJSON_IsString(name) || !etd_name_ok(name->valuestring))
        return etd_fail(e, ETD_EINVAL, "name: expected a string matching "
                        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ without \"..\"");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(from, "model");
    if (!cJSON_IsString(src))
        return etd_fail(e, ETD_EINVAL, "from.model: expected the name of a model");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(from, "version");
    int64_t n = 0;
    if (ver && !cJSON_IsNull(ver) &&
        !(cJSON_IsString(ver) && strcmp(ver->valuestring, "live") == 0) &&
        !etd_vers_json_i64(ver, 1, &n))
        return etd_fail(e, ETD_EINVAL, "from.version: expected a version number or \"live\"");
    int64_t keep = 0;
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(body, "keep_versions");
    if (kj && !cJSON_IsNull(kj) && !etd_vers_json_i64(kj, 0, &keep))
        return etd_fail(e, ETD_EINVAL, "keep_versions: expected a whole number >= 0");
    etd_model *sm, *m = NULL;
    if (etd_registry_get(r, src->valuestring, &sm, e) != ETD_OK) {
        etd_err_append(e, " (from.model)");
        return ETD_ENOTFOUND;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    etd_rc rc = etd_model_version_payload(sm, n, &buf, &len, e);
    etd_model_unref(sm);
    if (rc != ETD_OK)
        return rc;
    if (n == 0) { /* the live state, as a freeze would take it: no pending batches */
        uint8_t *clean = NULL;
        size_t clen = 0;
        etd_version_info vi = {.version = 1};
        rc = etd_vers_payload(buf, len, &vi, &clean, &clen, e);
        free(buf);
        if (rc != ETD_OK)
            return rc;
        buf = clean;
        len = clen;
    }
    if (!(m = etd_vers_model_from_payload(r, name->valuestring, buf, len, NULL, e))) {
        free(buf);
        return e->rc;
    }
    free(buf);
    /* a fork starts with the version's state but is a model of its own:
     * no versions yet */
    return etd_registry_add(r, m, keep, out, e);
}

/* ---------------------------------------------------------------- the OIP's names */

int etd_model_versions(etd_model *m, char (*out)[ETD_VERSION_STR], int max)
{
    struct etd_versions *vs = etd_vers_of(m);
    int n = 0;
    if (vs)
        pthread_mutex_lock(&vs->mu);
    if (!vs || vs->n == 0) {
        if (max > 0)
            snprintf(out[0], ETD_VERSION_STR, "1");
        n = 1;
    } else {
        for (int i = 0; i < vs->n; i++, n++)
            if (n < max)
                snprintf(out[n], ETD_VERSION_STR, "%lld", (long long)vs->v[i].info.version);
        if (n < max)
            snprintf(out[n], ETD_VERSION_STR, "live");
        n++;
    }
    if (vs)
        pthread_mutex_unlock(&vs->mu);
    return n;
}

etd_rc etd_model_version(etd_model *m, const char *version, etd_model **out, etd_err *e)
{
    *out = NULL;
    struct etd_versions *vs = etd_vers_of(m);
    int nv = 0;
    if (vs) {
        pthread_mutex_lock(&vs->mu);
        nv = vs->n;
        pthread_mutex_unlock(&vs->mu);
    }
    int64_t n;
    etd_err ignored;
    if (strcmp(version, "live") == 0 || (nv == 0 && strcmp(version, "1") == 0)) {
        atomic_fetch_add(&m->refs, 1);
        *out = m;
        return ETD_OK;
    }
    if (nv > 0 && etd_version_parse(version, &n, &ignored) == ETD_OK &&
        etd_model_version_model(m, n, out, &ignored) == ETD_OK)
        return ETD_OK;
    char v[8][ETD_VERSION_STR];
    int k = etd_model_versions(m, v, 8);
    etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no version \"%.40s\" (versions:", m->name,
             version);
    for (int i = 0; i < k && i < 8; i++)
        etd_err_append(e, "%s %s", i ? "," : "", v[i]);
    etd_err_append(e, "%s)", k > 8 ? ", ..." : "");
    return ETD_ENOTFOUND;
}

void etd_model_current_version(etd_model *m, etd_model **out, char ver[ETD_VERSION_STR])
{
    int64_t n;
    int64_t serving, keep;
    int nv;
    etd_err ignored;
    etd_model_serving_model(m, out, &n, &ignored);
    etd_model_lifecycle(m, &serving, &keep, &nv);
    if (n)
        snprintf(ver, ETD_VERSION_STR, "%lld", (long long)n);
    else
        snprintf(ver, ETD_VERSION_STR, "%s", nv ? "live" : "1");
}
