/* registry.c - the named models of easytorchd: the name table, define and
 * delete, listing, loading the data dir and the background saver (see
 * models.h for the locking rules). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "server/formats/modelfile.h"
#include "server/models/model_internal.h"
#include "server/models/onnx.h"
#include "server/models/versions.h"

/* ---------------------------------------------------------------- names */

bool etd_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

static int find_slot(etd_registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->slots[i].m->name, name) == 0)
            return i;
    return -1;
}

etd_rc etd_registry_get(etd_registry *r, const char *name, etd_model **out, etd_err *e)
{
    *out = NULL;
    if (etd_name_ok(name)) {
        pthread_mutex_lock(&r->mu);
        int i = find_slot(r, name);
        if (i >= 0 && !r->slots[i].deleting) {
            *out = r->slots[i].m;
            atomic_fetch_add(&(*out)->refs, 1);
        }
        pthread_mutex_unlock(&r->mu);
    }
    if (!*out)
        return etd_fail(e, ETD_ENOTFOUND, "no model named \"%s\"", name);
    return ETD_OK;
}

int etd_registry_count(etd_registry *r)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += !r->slots[i].deleting;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* References to all live models (caller unrefs each and frees the array). */
static etd_model **all_models(etd_registry *r, int *n)
{
    pthread_mutex_lock(&r->mu);
    etd_model **v = calloc((size_t)r->n + 1, sizeof *v);
    int k = 0;
    if (v)
        for (int i = 0; i < r->n; i++)
            if (!r->slots[i].deleting) {
                atomic_fetch_add(&r->slots[i].m->refs, 1);
                v[k++] = r->slots[i].m;
            }
    pthread_mutex_unlock(&r->mu);
    *n = k;
    return v;
}

etd_model **etd_registry_models(etd_registry *r, int *n) { return all_models(r, n); }

etd_rc etd_registry_list(etd_registry *r, etd_model_list *l, etd_err *e)
{
    l->models = all_models(r, &l->n);
    l->sum = calloc((size_t)l->n + 1, sizeof *l->sum);
    if (!l->models || !l->sum) {
        etd_model_list_free(l);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < l->n; i++) { /* one consistent reading per model */
        pthread_mutex_lock(&l->models[i]->pub_mu);
        l->sum[i] = l->models[i]->pub;
        pthread_mutex_unlock(&l->models[i]->pub_mu);
    }
    return ETD_OK;
}

void etd_model_list_free(etd_model_list *l)
{
    for (int i = 0; l->models && i < l->n; i++)
        etd_model_unref(l->models[i]);
    free(l->models);
    free(l->sum);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- saving */

int etd_registry_save_all(etd_registry *r)
{
    int n, fails = 0;
    etd_model **v = all_models(r, &n);
    for (int i = 0; i < n; i++) {
        etd_err e;
        if (atomic_load(&v[i]->dirty)) {
            etd_model_lock_any(v[i], false);
            if (etd_model_save_locked(v[i], NULL, &e) != ETD_OK) {
                fprintf(stderr, "easytorchd: %s\n", e.msg);
                fails++;
            }
            etd_model_unlock(v[i]);
        }
        etd_model_unref(v[i]);
    }
    free(v);
    return fails;
}

static void *saver_main(void *arg)
{
    etd_registry *r = arg;
    pthread_mutex_lock(&r->saver_mu);
    while (!r->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double iv = r->o.save_interval > 0 ? r->o.save_interval : 1;
        ts.tv_sec += (time_t)iv;
        ts.tv_nsec += (long)((iv - floor(iv)) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->saver_cv, &r->saver_mu, &ts);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->saver_mu);
        etd_registry_save_all(r);
        pthread_mutex_lock(&r->saver_mu);
    }
    pthread_mutex_unlock(&r->saver_mu);
    return NULL;
}

/* ---------------------------------------------------------------- lifetime */

/* One daemon per data dir: two writing the same files would overwrite each
 * other's models.  flock (not fcntl) so the lock belongs to this open file
 * and goes away with the process, kill -9 included; the holder's PID is
 * written into the file for the message of the next one. */
static int lock_data_dir(const char *dir, etd_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.easytorchd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        etd_fail(e, ETD_EIO, "cannot open lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        for (int tries = 0; tries < 20 && !pid[0]; tries++) { /* the holder may be writing it */
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            if (!pid[0])
                usleep(10000);
        }
        close(fd);
        if (err == EWOULDBLOCK)
            etd_fail(e, ETD_EEXIST, "%s is in use by another easytorchd (pid %s holds %s); stop "
                     "it or choose another --data-dir", dir, pid[0] ? pid : "unknown", path);
        else
            etd_fail(e, ETD_EIO, "cannot lock %s: %s", path, strerror(err));
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        fprintf(stderr, "easytorchd: warning: cannot write the PID into %s\n", path);
    return fd;
}

etd_registry *etd_registry_new(const etd_registry_opts *o, etd_err *e)
{
    if (etd_modelfile_mkdir(o->data_dir, e) != ETD_OK)
        return NULL;
    int lock_fd = lock_data_dir(o->data_dir, e);
    if (lock_fd < 0)
        return NULL;
    etd_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->data_dir = strdup(o->data_dir))) {
        free(r);
        close(lock_fd);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
    r->lock_fd = lock_fd;
    atomic_init(&r->on_release, NULL);
    atomic_init(&r->hook_calls, 0);
    atomic_init(&r->executor, NULL);
    r->o = *o;
    r->o.data_dir = r->data_dir;
    if (r->o.job_threads <= 0)
        r->o.job_threads = 1;
    if (r->o.max_jobs <= 0)
        r->o.max_jobs = 64;
    r->events = etd_events_new(r, r->o.event_buffer ? r->o.event_buffer : 4096,
                               r->o.event_interval);
    if (!r->events) {
        free(r->data_dir);
        free(r);
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->saver_mu, NULL);
    pthread_cond_init(&r->saver_cv, NULL);
    pthread_mutex_init(&r->job_mu, NULL);
    pthread_cond_init(&r->job_cv, NULL);
    return r;
}

void etd_registry_free(etd_registry *r)
{
    if (!r)
        return;
    etd_jobs_stop(r); /* running jobs stop between two steps; saved below */
    etd_events_stop(r->events);
    if (r->saver_started) {
        pthread_mutex_lock(&r->saver_mu);
        r->stopping = true;
        pthread_cond_signal(&r->saver_cv);
        pthread_mutex_unlock(&r->saver_mu);
        pthread_join(r->saver, NULL);
    }
    etd_registry_save_all(r);
    for (int i = 0; i < r->n; i++)
        etd_model_unref(r->slots[i].m);
    free(r->slots);
    etd_events_free(r->events);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->saver_mu);
    pthread_cond_destroy(&r->saver_cv);
    pthread_mutex_destroy(&r->job_mu);
    pthread_cond_destroy(&r->job_cv);
    free(r->data_dir);
    if (r->lock_fd >= 0)
        close(r->lock_fd); /* releases the flock */
    free(r);
}

/* ---------------------------------------------------------------- define, delete */

/* Insert m (reference taken over), hidden from lookups (deleting) until
 * etd_registry_define has written its file; ETD_EEXIST / ETD_ELIMIT. */
static etd_rc insert(etd_registry *r, etd_model *m, bool hidden, etd_err *e)
{
    pthread_mutex_lock(&r->mu);
    etd_rc rc = ETD_OK;
    int live = 0;
    for (int i = 0; i < r->n; i++)
        live += !r->slots[i].deleting;
    if (find_slot(r, m->name) >= 0) {
        rc = etd_fail(e, ETD_EEXIST, "name: a model named \"%s\" already exists", m->name);
    } else if (live >= r->o.max_models) {
        rc = etd_fail(e, ETD_ELIMIT, "too many models: the limit is %d (--max-models)",
                      r->o.max_models);
    } else if (r->n == r->cap) {
        int nc = r->cap ? r->cap * 2 : 16;
        etd_slot *s = realloc(r->slots, (size_t)nc * sizeof *s);
        if (!s) {
            rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        } else {
            r->slots = s;
            r->cap = nc;
        }
    }
    if (rc == ETD_OK)
        r->slots[r->n++] = (etd_slot){m, hidden};
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Take the slot of m out of the table (the reference goes to the caller). */
static void remove_slot(etd_registry *r, const etd_model *m)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        if (r->slots[i].m == m) {
            r->slots[i] = r->slots[--r->n];
            break;
        }
    pthread_mutex_unlock(&r->mu);
}

static uint64_t random_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s)
            s = 0;
        close(fd);
    }
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec * 6364136223846793005ULL ^ (uint64_t)ts.tv_sec;
    }
    return s & ((1ULL << 53) - 1); /* stays exact as a JSON number */
}

etd_rc etd_registry_add(etd_registry *r, etd_model *m, int64_t keep, etd_model **out, etd_err *e)
{
    *out = NULL;
    etd_err ignored;
    if (insert(r, m, true, e) != ETD_OK) {
        etd_model_unref(m);
        return e->rc;
    }
    /* a new model is written at once, whatever --sync says: it exists once
     * its file does, or not at all */
    atomic_store(&m->dirty, true);
    etd_model_lock_any(m, false);
    etd_rc rc = etd_model_save_locked(m, NULL, e);
    etd_model_unlock(m);
    if (rc == ETD_OK && (rc = etd_versions_attach(m, true, e)) == ETD_OK && keep > 0)
        rc = etd_model_set_lifecycle(m, -1, keep, e);
    if (rc != ETD_OK) {
        fprintf(stderr, "easytorchd: %s\n", e->msg);
        etd_err_append(e, "; the model was not created");
        etd_versions_remove_files(m);
        etd_modelfile_remove(r->data_dir, m->name, &ignored);
        remove_slot(r, m);
        etd_model_unref(m);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    int i = find_slot(r, m->name);
    if (i >= 0)
        r->slots[i].deleting = false;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&m->refs, 1);
    *out = m;
    char data[64];
    snprintf(data, sizeof data, "\"parameters\":%lld", (long long)m->spec.param_count);
    etd_events_publish(m, ETD_EV_CREATED, data);
    return ETD_OK;
}

etd_rc etd_registry_define(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e)
{
    *out = NULL;
    if (!cJSON_IsObject(body))
        return etd_fail(e, ETD_EINVAL, "body: expected a JSON object");
    if (cJSON_GetObjectItemCaseSensitive(body, "from")) /* a fork of a version */
        return etd_versions_fork(r, body, out, e);
    if (cJSON_GetObjectItemCaseSensitive(body, "onnx")) /* an ONNX model (onnx_import.c) */
        return etd_onnx_import(r, body, out, e);
    return etd_registry_define_state(r, body, NULL, out, e);
}

etd_rc etd_registry_define_state(etd_registry *r, const cJSON *body, const et_tensor_dict *state,
                                 etd_model **out, etd_err *e)
{
    *out = NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (!name)
        return etd_fail(e, ETD_EINVAL, "name: required field is missing");
    if (!cJSON_IsString(name) || !etd_name_ok(name->valuestring))
        return etd_fail(e, ETD_EINVAL, "name: expected a string matching "
                        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ without \"..\"");
    /* keep_versions belongs to the model's versions, not to its spec */
    int64_t keep = 0;
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(body, "keep_versions");
    if (kj && !cJSON_IsNull(kj) &&
        (!cJSON_IsNumber(kj) || kj->valuedouble != floor(kj->valuedouble) ||
         kj->valuedouble < 0 || kj->valuedouble > 1e15))
        return etd_fail(e, ETD_EINVAL, "keep_versions: expected a whole number >= 0 (0: keep all)");
    if (kj)
        keep = cJSON_IsNull(kj) ? 0 : (int64_t)kj->valuedouble;
    cJSON *copy = cJSON_Duplicate(body, 1);
    if (!copy)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "keep_versions");
    etd_spec spec;
    if (!etd_spec_parse(copy, r->o.max_params, &spec, e)) {
        cJSON_Delete(copy);
        return e->rc;
    }
    etd_model *old;
    etd_err ignored;
    if (etd_registry_get(r, name->valuestring, &old, &ignored) == ETD_OK) {
        etd_model_unref(old);
        etd_spec_free(&spec);
        cJSON_Delete(copy);
        return etd_fail(e, ETD_EEXIST, "name: a model named \"%s\" already exists",
                        name->valuestring);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "name");
    char *spec_json = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!spec_json) {
        etd_spec_free(&spec);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    uint64_t seed = spec.has_seed ? spec.seed : random_seed();
    etd_model *m = etd_model_build(r, name->valuestring, &spec, spec_json, seed, e);
    if (!m)
        return e->rc;
    if (state) { /* the parameters and buffers it starts from (an imported model's) */
        if (et_module_load_state_dict(m->net, state) != ET_OK) {
            etd_fail(e, ETD_EINVAL, "parameters: %s", et_errmsg());
            etd_model_unref(m);
            return e->rc;
        }
        etd_guard_recheck(m);
        if (etd_guard_keep(m, e) != ETD_OK) {
            etd_model_unref(m);
            return e->rc;
        }
    }
    return etd_registry_add(r, m, keep, out, e);
}

etd_rc etd_registry_delete(etd_registry *r, const char *name, etd_err *e)
{
    pthread_mutex_lock(&r->mu);
    int i = etd_name_ok(name) ? find_slot(r, name) : -1;
    if (i < 0 || r->slots[i].deleting) {
        pthread_mutex_unlock(&r->mu);
        return etd_fail(e, ETD_ENOTFOUND, "no model named \"%s\"", name);
    }
    etd_model *m = r->slots[i].m;
    r->slots[i].deleting = true; /* the name stays reserved until the file is gone */
    pthread_mutex_unlock(&r->mu);
    etd_model_jobs_abandon(m); /* its job stops at its next step */

    etd_model_lock_any(m, true); /* waits for running calls and saves */
    m->deleted = true;
    etd_events_flush(m);
    etd_events_publish(m, ETD_EV_DELETED, NULL);
    etd_err fe;
    if (etd_modelfile_remove(r->data_dir, m->name, &fe) != ETD_OK)
        fprintf(stderr, "easytorchd: deleting model %s: %s\n", m->name, fe.msg);
    etd_versions_remove_files(m);
    etd_model_unlock(m);

    remove_slot(r, m);
    etd_model_unref(m);
    return ETD_OK;
}

/* ---------------------------------------------------------------- loading */

static void load_file(etd_registry *r, const char *file)
{
    etd_err e = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    et_tensor_dict *d = NULL;
    cJSON *meta = NULL;
    etd_model *m = NULL;
    etd_train_state st = {0};
    const char *name;
    const cJSON *spec_j;
    uint64_t seed;
    if (etd_modelfile_read(r->data_dir, file, &buf, &len, &e) != ETD_OK ||
        etd_ts_decode(buf, len, &d, &meta, &name, &spec_j, &seed, &e) != ETD_OK)
        goto bad;
    char expect[128];
    snprintf(expect, sizeof expect, "%s%s", name, ETD_FILE_EXT);
    if (!etd_name_ok(name) || strcmp(expect, file) != 0) {
        etd_fail(&e, ETD_EINVAL, "file name does not match the model name in it");
        goto bad;
    }
    etd_spec spec;
    if (!etd_spec_parse(spec_j, r->o.max_params, &spec, &e))
        goto bad;
    char *spec_json = cJSON_PrintUnformatted(spec_j);
    if (!spec_json) {
        etd_spec_free(&spec);
        etd_fail(&e, ETD_ENOMEM, "out of memory");
        goto bad;
    }
    m = etd_model_build(r, name, &spec, spec_json, seed, &e);
    if (!m || etd_ts_from_file(m, d, meta, &st, &e) != ETD_OK ||
        etd_ts_apply(m, &st, &e) != ETD_OK || etd_versions_attach(m, false, &e) != ETD_OK)
        goto bad;
    etd_guard_recheck(m);
    if (etd_guard_keep(m, &e) != ETD_OK || insert(r, m, false, &e) != ETD_OK)
        goto bad;
    fprintf(stderr, "easytorchd: loaded model %s (step %lld)\n", m->name, (long long)m->ts.step);
    m = NULL;
    goto done;
bad:
    fprintf(stderr, "easytorchd: skipping %s/%s: %s\n", r->data_dir, file, e.msg);
    etd_model_unref(m);
done:
    etd_ts_free(&st);
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    free(buf);
}

void etd_registry_load_all(etd_registry *r)
{
    DIR *dir = opendir(r->data_dir);
    if (dir) {
        struct dirent *de;
        char **files = NULL;
        int n = 0, cap = 0;
        while ((de = readdir(dir))) {
            const char *f = de->d_name;
            size_t l = strlen(f);
            if (f[0] == '.') {
                if (strstr(f, ".tmp.")) { /* a write that never finished */
                    char p[4096];
                    snprintf(p, sizeof p, "%s/%s", r->data_dir, f);
                    unlink(p);
                }
                continue;
            }
            if (l <= strlen(ETD_FILE_EXT) || strcmp(f + l - strlen(ETD_FILE_EXT), ETD_FILE_EXT))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **nf = realloc(files, (size_t)cap * sizeof *nf);
                if (!nf)
                    break;
                files = nf;
            }
            files[n++] = strdup(f);
        }
        closedir(dir);
        for (int i = 0; i < n; i++) {
            if (files[i])
                load_file(r, files[i]);
            free(files[i]);
        }
        free(files);
    }
    if (!r->o.sync_always || r->o.save_interval > 0) {
        if (pthread_create(&r->saver, NULL, saver_main, r) == 0)
            r->saver_started = true;
    }
    etd_jobs_start(r);
    etd_events_start(r->events);
}

void etd_registry_set_dp(etd_registry *r, const etd_dp *dp)
{
    r->dp = dp;
}
