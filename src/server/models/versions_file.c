/* versions_file.c - the files of a model's versions (versions.h): the
 * version payload (the model file's own, from train_state.c, without pending
 * gradients, plus "easytorch_version"), the index, loading them at startup
 * and removing them with the model. */
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

/* ---------------------------------------------------------------- helpers */

etd_rc etd_version_parse(const char *s, int64_t *out, etd_err *e)
{
    char *end;
    errno = 0;
    long long v = (s && *s >= '0' && *s <= '9') ? strtoll(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || errno || *end || v < 1 || v > MAX_VERSION)
        return etd_fail(e, ETD_EINVAL, "version: expected a version number (1, 2, ...), got "
                        "\"%.40s\"", s ? s : "");
    *out = v;
    return ETD_OK;
}

int etd_vers_find(const struct etd_versions *vs, int64_t n)
{
    for (int i = 0; i < vs->n; i++)
        if (vs->v[i].info.version == n)
            return i;
    return -1;
}

etd_rc etd_vers_not_found(etd_model *m, int64_t n, etd_err *e)
{
    struct etd_versions *vs = etd_vers_of(m);
    etd_fail(e, ETD_ENOTFOUND, "model \"%s\" has no version %lld (versions:", m->name,
             (long long)n);
    pthread_mutex_lock(&vs->mu);
    for (int i = 0; i < vs->n && i < 20; i++)
        etd_err_append(e, "%s %lld", i ? "," : "", (long long)vs->v[i].info.version);
    if (vs->n > 20)
        etd_err_append(e, ", ...");
    if (!vs->n)
        etd_err_append(e, " none; POST /v1/models/%s/versions freezes one", m->name);
    pthread_mutex_unlock(&vs->mu);
    etd_err_append(e, ")");
    return ETD_ENOTFOUND;
}

double etd_vers_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- the index */

/* Write the index (vs->change held). */
etd_rc etd_vers_write_index(struct etd_versions *vs, etd_err *e)
{
    pthread_mutex_lock(&vs->mu);
    char buf[256];
    int len = snprintf(buf, sizeof buf,
                       "{\"format\":1,\"next\":%lld,\"serving\":%lld,\"keep_versions\":%lld}",
                       (long long)vs->next, (long long)vs->serving, (long long)vs->keep);
    pthread_mutex_unlock(&vs->mu);
    etd_err fe;
    if (etd_modelfile_mkdir(vs->dir, &fe) != ETD_OK ||
        etd_modelfile_write(vs->dir, INDEX_NAME, (const uint8_t *)buf, (size_t)len, NULL, &fe) !=
            ETD_OK)
        return etd_fail(e, fe.rc, "saving the versions index failed: %s", fe.msg);
    return ETD_OK;
}

bool etd_vers_json_i64(const cJSON *j, int64_t lo, int64_t *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo ||
        j->valuedouble > (double)MAX_VERSION)
        return false;
    *out = (int64_t)j->valuedouble;
    return true;
}

/* ---------------------------------------------------------------- payloads */

/* "easytorch_version": {"version", "label", "created"} and, when it has
 * them, "validation" (train_state_file.c's entry), "validation_rows",
 * "validation_time". */
static void write_meta(etd_buf *b, const etd_version_info *vi)
{
    etd_buf_printf(b, "{\"version\":%lld,\"label\":", (long long)vi->version);
    etd_json_str(b, vi->label);
    etd_buf_printf(b, ",\"created\":%.3f", vi->created);
    if (vi->has_val) {
        etd_buf_puts(b, ",\"validation\":");
        etd_ts_write_validation(b, &vi->val, false);
        etd_buf_puts(b, ",\"validation_rows\":");
        etd_json_i64(b, vi->val_rows);
        etd_buf_printf(b, ",\"validation_time\":%.3f", vi->val_time);
    }
    etd_buf_putc(b, '}');
}

/* write_meta's object back into vi (false: malformed). */
static bool read_meta(const char *s, etd_version_info *vi)
{
    cJSON *vj = s ? cJSON_Parse(s) : NULL;
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(vj, "label");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(vj, "created");
    const cJSON *vn = cJSON_GetObjectItemCaseSensitive(vj, "version");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(vj, "validation");
    bool ok = etd_vers_json_i64(vn, 1, &vi->version) && cJSON_IsString(lab) &&
              strlen(lab->valuestring) < sizeof vi->label && cJSON_IsNumber(cr);
    if (ok) {
        snprintf(vi->label, sizeof vi->label, "%s", lab->valuestring);
        vi->created = cr->valuedouble;
    }
    vi->has_val = false;
    if (ok && val) { /* files frozen before versions had metrics have none */
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(vj, "validation_rows");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(vj, "validation_time");
        ok = cJSON_IsObject(val) && etd_ts_read_validation(val, &vi->val) &&
             etd_vers_json_i64(rows, 0, &vi->val_rows) && cJSON_IsNumber(t);
        if (ok) {
            vi->has_val = true;
            vi->val_time = t->valuedouble;
        }
    }
    cJSON_Delete(vj);
    return ok;
}

etd_rc etd_vers_repack(const uint8_t *buf, size_t len, const etd_version_info *vi,
                       uint8_t **out, size_t *out_len, etd_err *e)
{
    et_tensor_dict *d = NULL;
    if (et_safetensors_parse(buf, len, &d) != ET_OK)
        return etd_fail(e, ETD_EINTERNAL, "re-reading version %lld: %s", (long long)vi->version,
                        et_errmsg());
    etd_buf vm;
    etd_buf_init(&vm);
    write_meta(&vm, vi);
    etd_rc rc = ETD_OK;
    if (vm.oom || et_tensor_dict_set_meta(d, "easytorch_version", vm.data) != ET_OK ||
        et_safetensors_dump(d, out, out_len) != ET_OK)
        rc = etd_fail(e, ETD_ENOMEM, "out of memory recording the metrics of version %lld",
                      (long long)vi->version);
    etd_buf_free(&vm);
    et_tensor_dict_free(d);
    return rc;
}

/* The version file's payload from the live model's (train_state.c's
 * encoding): pending gradients dropped and the pending counters zeroed (a
 * version is a state between steps), plus the version's own metadata. */
etd_rc etd_vers_payload(const uint8_t *live, size_t len, const etd_version_info *vi,
                              uint8_t **out, size_t *out_len, etd_err *e)
{
    et_tensor_dict *d = NULL, *keep = et_tensor_dict_new();
    cJSON *meta = NULL;
    char *meta_s = NULL;
    etd_rc rc = ETD_OK;
    if (!keep || et_safetensors_parse(live, len, &d) != ET_OK) {
        rc = etd_fail(e, ETD_EINTERNAL, "freezing: %s", keep ? et_errmsg() : "out of memory");
        goto done;
    }
    for (int i = 0; i < et_tensor_dict_len(d); i++) {
        const char *k = et_tensor_dict_name(d, i);
        if (strncmp(k, "grad.", 5) != 0 &&
            et_tensor_dict_set(keep, k, et_tensor_dict_tensor(d, i)) != ET_OK) {
            rc = etd_fail(e, ETD_ENOMEM, "out of memory freezing the model");
            goto done;
        }
    }
    const char *ms = et_tensor_dict_get_meta(d, "easytorch");
    meta = ms ? cJSON_Parse(ms) : NULL;
    if (!meta) {
        rc = etd_fail(e, ETD_EINTERNAL, "freezing: the model's metadata did not parse");
        goto done;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "pending_batches", cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "pending_loss_sum", cJSON_CreateNumber(0));
    meta_s = cJSON_PrintUnformatted(meta);
    etd_buf vm;
    etd_buf_init(&vm);
    write_meta(&vm, vi);
    if (!meta_s || vm.oom || et_tensor_dict_set_meta(keep, "easytorch", meta_s) != ET_OK ||
        et_tensor_dict_set_meta(keep, "easytorch_version", vm.data) != ET_OK ||
        et_safetensors_dump(keep, out, out_len) != ET_OK)
        rc = etd_fail(e, ETD_ENOMEM, "out of memory freezing the model");
    etd_buf_free(&vm);
done:
    free(meta_s);
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    et_tensor_dict_free(keep);
    return rc;
}

/* A model named `name` holding the state of payload (a model file's or a
 * version file's), built from the spec in it: the model a version serves
 * through or a fork.  vi (may be NULL) gets the version metadata.  NULL + e. */
etd_model *etd_vers_model_from_payload(etd_registry *r, const char *name, const uint8_t *buf,
                                     size_t len, etd_version_info *vi, etd_err *e)
{
    et_tensor_dict *d = NULL;
    cJSON *meta = NULL;
    etd_model *m = NULL;
    etd_train_state st = {0};
    const char *fname;
    const cJSON *spec_j;
    uint64_t seed;
    if (etd_ts_decode(buf, len, &d, &meta, &fname, &spec_j, &seed, e) != ETD_OK)
        goto done;
    if (vi) {
        if (!read_meta(et_tensor_dict_get_meta(d, "easytorch_version"), vi)) {
            etd_fail(e, ETD_EINVAL, "missing or malformed version metadata");
            goto done;
        }
    }
    etd_spec spec;
    if (!etd_spec_parse(spec_j, r->o.max_params, &spec, e))
        goto done;
    char *spec_json = cJSON_PrintUnformatted(spec_j);
    if (!spec_json) {
        etd_spec_free(&spec);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        goto done;
    }
    m = etd_model_build(r, name, &spec, spec_json, seed, e);
    etd_rc frc = m ? etd_ts_from_file(m, d, meta, &st, e) : ETD_OK;
    if (frc == ETD_OK)
        st.parts &= ~(unsigned)ETD_TS_JOBS; /* job records stay with the model that ran them */
    if (m && (frc != ETD_OK || etd_ts_apply(m, &st, e) != ETD_OK)) {
        etd_model_unref(m);
        m = NULL;
    }
    if (m) { /* the divergence guard's view of the state it now holds */
        etd_guard_recheck(m);
        if (etd_guard_keep(m, e) != ETD_OK) {
            etd_model_unref(m);
            m = NULL;
        }
    }
    if (m && vi) {
        vi->step = m->ts.step;
        vi->has_loss = m->ts.has_loss;
        vi->loss = m->ts.last_loss;
        vi->size = (int64_t)len + ETD_FILE_HEADER;
    }
done:
    etd_ts_free(&st);
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    return m;
}

/* The serving model of a version: never registered, never saved. */
etd_model *etd_vers_serve_model(etd_model *m, const uint8_t *buf, size_t len, etd_version_info *vi,
                              etd_err *e)
{
    etd_model *s = etd_vers_model_from_payload(m->reg, m->name, buf, len, vi, e);
    if (s)
        s->frozen = true;
    return s;
}

etd_rc etd_vers_read_file(struct etd_versions *vs, int64_t n, uint8_t **buf, size_t *len,
                                etd_err *e)
{
    char file[64];
    snprintf(file, sizeof file, "%lld%s", (long long)n, ETD_FILE_EXT);
    return etd_modelfile_read(vs->dir, file, buf, len, e);
}

/* ---------------------------------------------------------------- lifetime */

etd_rc etd_versions_attach(etd_model *m, bool fresh, etd_err *e)
{
    struct etd_versions *vs = calloc(1, sizeof *vs);
    if (!vs)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    pthread_mutex_init(&vs->change, NULL);
    pthread_mutex_init(&vs->mu, NULL);
    vs->next = 1;
    snprintf(vs->dir, sizeof vs->dir, "%s/%s.versions", m->reg->data_dir, m->name);
    m->vers = vs;
    if (fresh) { /* files of an earlier model of this name (a delete cut short) */
        etd_versions_remove_files(m);
        return ETD_OK;
    }
    /* loading: the index, then every version file (bad ones reported, skipped) */
    uint8_t *buf = NULL;
    size_t len = 0;
    etd_err ie;
    if (etd_modelfile_read(vs->dir, INDEX_NAME ETD_FILE_EXT, &buf, &len, &ie) == ETD_OK) {
        char *txt = malloc(len + 1);
        cJSON *j = NULL;
        if (txt) {
            memcpy(txt, buf, len);
            txt[len] = 0;
            j = cJSON_Parse(txt);
        }
        int64_t next = 1, serving = 0, keep = 0;
        if (!etd_vers_json_i64(cJSON_GetObjectItemCaseSensitive(j, "next"), 1, &next) ||
            !etd_vers_json_i64(cJSON_GetObjectItemCaseSensitive(j, "serving"), 0, &serving) ||
            !etd_vers_json_i64(cJSON_GetObjectItemCaseSensitive(j, "keep_versions"), 0, &keep))
            fprintf(stderr, "easytorchd: model %s: versions index is malformed; serving live\n",
                    m->name);
        else
            vs->next = next, vs->serving = serving, vs->keep = keep;
        cJSON_Delete(j);
        free(txt);
        free(buf);
    } else if (access(vs->dir, F_OK) == 0 && errno != ENOENT) {
        fprintf(stderr, "easytorchd: model %s: %s; serving live\n", m->name, ie.msg);
    }
    DIR *dir = opendir(vs->dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        const char *f = de->d_name;
        if (f[0] == '.') {
            if (strstr(f, ".tmp.")) { /* a write that never finished */
                char p[8192];
                snprintf(p, sizeof p, "%s/%s", vs->dir, f);
                unlink(p);
            }
            continue;
        }
        char *end;
        long long n = strtoll(f, &end, 10);
        if (f[0] < '1' || f[0] > '9' || strcmp(end, ETD_FILE_EXT) != 0 || n < 1)
            continue;
        etd_err ve = {0};
        buf = NULL;
        etd_version_info vi = {0};
        etd_model *s = NULL;
        if (etd_vers_read_file(vs, n, &buf, &len, &ve) == ETD_OK &&
            (s = etd_vers_serve_model(m, buf, len, &vi, &ve)) && vi.version != n) {
            etd_fail(&ve, ETD_EINVAL, "file name does not match the version number in it");
            etd_model_unref(s);
            s = NULL;
        }
        free(buf);
        if (!s) {
            fprintf(stderr, "easytorchd: model %s: skipping version file %s/%s: %s\n", m->name,
                    vs->dir, f, ve.msg);
            continue;
        }
        if (vs->n == vs->cap) {
            int nc = vs->cap ? vs->cap * 2 : 8;
            etd_version *nv = realloc(vs->v, (size_t)nc * sizeof *nv);
            if (!nv) {
                etd_model_unref(s);
                break;
            }
            vs->v = nv;
            vs->cap = nc;
        }
        int at = vs->n; /* keep them sorted */
        while (at > 0 && vs->v[at - 1].info.version > n)
            at--;
        memmove(vs->v + at + 1, vs->v + at, (size_t)(vs->n - at) * sizeof *vs->v);
        vs->v[at] = (etd_version){vi, s};
        vs->n++;
        if (n >= vs->next)
            vs->next = n + 1;
    }
    if (dir)
        closedir(dir);
    if (vs->serving && etd_vers_find(vs, vs->serving) < 0) {
        fprintf(stderr, "easytorchd: model %s: serving version %lld is missing; serving live\n",
                m->name, (long long)vs->serving);
        vs->serving = 0;
    }
    if (vs->n)
        fprintf(stderr, "easytorchd: model %s: %d version(s), serving %s%lld\n", m->name, vs->n,
                vs->serving ? "version " : "live", vs->serving ? (long long)vs->serving : 0LL);
    return ETD_OK;
}

void etd_versions_free(struct etd_versions *vs)
{
    if (!vs)
        return;
    for (int i = 0; i < vs->n; i++)
        etd_model_unref(vs->v[i].serve);
    free(vs->v);
    pthread_mutex_destroy(&vs->change);
    pthread_mutex_destroy(&vs->mu);
    free(vs);
}

void etd_versions_remove_files(etd_model *m)
{
    struct etd_versions *vs = etd_vers_of(m);
    if (!vs)
        return;
    pthread_mutex_lock(&vs->change);
    DIR *dir = opendir(vs->dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", vs->dir, de->d_name);
        if (unlink(p) != 0)
            fprintf(stderr, "easytorchd: removing %s: %s\n", p, strerror(errno));
    }
    if (dir) {
        closedir(dir);
        if (rmdir(vs->dir) != 0)
            fprintf(stderr, "easytorchd: removing %s: %s\n", vs->dir, strerror(errno));
    }
    pthread_mutex_unlock(&vs->change);
}
