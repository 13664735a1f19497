/* registry.c - named models, their locks, training operations and persistence
 * glue for easytorchd.  See registry.h for the locking rules. */
#include "server/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/persist.h"
#include "server/models/spec.h"

struct etd_model {
    char name[72];
    etd_registry *reg;
    atomic_int refs;
    pthread_rwlock_t lock;       /* network, gradients, optimizer, training state */
    pthread_mutex_t pub_mu;      /* pub_* and the loss history */
    bool deleted;                /* set under the write lock */
    atomic_bool dirty;           /* changed since the last save */

    char *spec_json;             /* the spec as submitted, without "name" */
    etd_spec spec;
    uint64_t seed;
    et_generator *gen;           /* init, dropout masks, shuffling */
    et_module *net;
    et_optim *opt;
    et_scheduler *sched;
    int nparams;
    et_tensor **params;          /* borrowed from net */

    int64_t step;                /* optimizer steps taken */
    int64_t pending;             /* batches accumulated since the last step */
    double pending_loss_sum;
    bool has_loss;
    float last_loss;

    int64_t pub_step, pub_pending;
    bool pub_has_loss;
    float pub_loss;
    double pub_lr;
    int64_t *h_step;
    float *h_loss;
    size_t h_len, h_cap;
};

typedef struct slot {
    etd_model *m;
    bool deleting;               /* tombstone while the files are removed */
} slot;

struct etd_registry {
    etd_registry_opts o;
    char *data_dir;
    pthread_mutex_t mu;
    slot *slots;
    int n, cap;
    pthread_t saver;
    bool saver_started;
    pthread_mutex_t saver_mu;
    pthread_cond_t saver_cv;
    bool stopping;
};

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

const char *etd_model_name(const etd_model *m) { return m->name; }
int etd_model_num_params(const etd_model *m) { return m->nparams; }

/* -------------------------------------------------------- model lifetime */

static void model_free(etd_model *m)
{
    if (!m)
        return;
    et_scheduler_free(m->sched);
    et_optim_free(m->opt);
    et_module_free(m->net);
    et_generator_free(m->gen);
    free(m->params);
    etd_spec_free(&m->spec);
    free(m->spec_json);
    free(m->h_step);
    free(m->h_loss);
    pthread_rwlock_destroy(&m->lock);
    pthread_mutex_destroy(&m->pub_mu);
    free(m);
}

void etd_model_unref(etd_model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        model_free(m);
}

static double current_lr(const etd_model *m)
{
    return et_optim_get_lr(m->opt);
}

/* Copy the training summary where readers that must not wait see it. */
static void publish(etd_model *m)
{
    pthread_mutex_lock(&m->pub_mu);
    m->pub_step = m->step;
    m->pub_pending = m->pending;
    m->pub_has_loss = m->has_loss;
    m->pub_loss = m->last_loss;
    m->pub_lr = current_lr(m);
    pthread_mutex_unlock(&m->pub_mu);
}

static void history_add(etd_model *m, int64_t step, float loss)
{
    pthread_mutex_lock(&m->pub_mu);
    size_t max = m->reg->o.max_history;
    if (max && m->h_len >= max) { /* drop the oldest half: amortised O(1) */
        size_t drop = m->h_len - max / 2;
        memmove(m->h_step, m->h_step + drop, (m->h_len - drop) * sizeof *m->h_step);
        memmove(m->h_loss, m->h_loss + drop, (m->h_len - drop) * sizeof *m->h_loss);
        m->h_len -= drop;
    }
    if (m->h_len == m->h_cap) {
        size_t cap = m->h_cap ? m->h_cap * 2 : 64;
        int64_t *s = realloc(m->h_step, cap * sizeof *s);
        if (s)
            m->h_step = s;
        float *l = realloc(m->h_loss, cap * sizeof *l);
        if (l)
            m->h_loss = l;
        if (!s || !l) {
            pthread_mutex_unlock(&m->pub_mu);
            return;
        }
        m->h_cap = cap;
    }
    m->h_step[m->h_len] = step;
    m->h_loss[m->h_len] = loss;
    m->h_len++;
    pthread_mutex_unlock(&m->pub_mu);
}

/* Build a model from a parsed spec (taken over, also on failure). */
static etd_model *model_build(etd_registry *r, const char *name, etd_spec *spec, char *spec_json,
                              uint64_t seed, char *err, size_t cap)
{
    etd_model *m = calloc(1, sizeof *m);
    if (!m) {
        etd_spec_free(spec);
        free(spec_json);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->reg = r;
    atomic_init(&m->refs, 1);
    atomic_init(&m->dirty, false);
    pthread_rwlock_init(&m->lock, NULL);
    pthread_mutex_init(&m->pub_mu, NULL);
    m->spec = *spec;
    memset(spec, 0, sizeof *spec);
    m->spec_json = spec_json;
    m->seed = seed;
    m->gen = et_generator_new(seed);
    if (!m->gen) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    etd_err e;
    m->net = etd_spec_build_net(&m->spec, m->gen, &e);
    if (!m->net) {
        snprintf(err, cap, "%s", e.msg);
        goto fail;
    }
    et_module_train(m->net, false);
    m->nparams = et_module_num_params(m->net);
    m->params = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *m->params);
    if (!m->params) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m->nparams; i++)
        m->params[i] = et_module_param(m->net, i);
    m->opt = etd_spec_build_optim(&m->spec, m->params, m->nparams, &e);
    if (!m->opt) {
        snprintf(err, cap, "%s", e.msg);
        goto fail;
    }
    if (m->spec.sched.type) {
        m->sched = etd_spec_build_sched(&m->spec, m->opt, &e);
        if (!m->sched) {
            snprintf(err, cap, "%s", e.msg);
            goto fail;
        }
    }
    publish(m);
    return m;
fail:
    model_free(m);
    return NULL;
}

/* ---------------------------------------------------- state snapshots */

static void meta_u64_hex(etd_buf *b, uint64_t v)
{
    etd_buf_printf(b, "\"%016" PRIx64 "\"", v);
}

/* Serialize the whole model state into safetensors bytes.  Caller holds the
 * model lock (shared is enough). */
static bool model_serialize(etd_model *m, uint8_t **out, size_t *len,
                            char *err, size_t cap)
{
    et_tensor_dict *d = et_tensor_dict_new();
    etd_buf meta;
    etd_buf_init(&meta);
    char key[512];
    bool ok = false;
    if (!d)
        goto oom;
    for (int i = 0; i < m->nparams; i++) {
        const char *pn = et_module_param_name(m->net, i);
        snprintf(key, sizeof key, "param.%s", pn);
        if (et_tensor_dict_set(d, key, m->params[i]) != ET_OK)
            goto lib;
        et_tensor *g = et_grad(m->params[i]);
        if (m->pending > 0 && g) {
            snprintf(key, sizeof key, "grad.%s", pn);
            if (et_tensor_dict_set(d, key, g) != ET_OK)
                goto lib;
        }
    }
    int ns = et_optim_state_count(m->opt);
    for (int i = 0; i < ns; i++) {
        snprintf(key, sizeof key, "optim.%s", et_optim_state_name(m->opt, i));
        if (et_tensor_dict_set(d, key, et_optim_state_tensor(m->opt, i)) != ET_OK)
            goto lib;
    }
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    etd_buf_puts(&meta, "{\"format\":1,\"name\":");
    etd_json_str(&meta, m->name);
    etd_buf_puts(&meta, ",\"spec\":");
    etd_buf_puts(&meta, m->spec_json);
    etd_buf_puts(&meta, ",\"seed\":");
    meta_u64_hex(&meta, m->seed);
    etd_buf_puts(&meta, ",\"generator\":[");
    for (int i = 0; i < 4; i++) {
        if (i)
            etd_buf_putc(&meta, ',');
        meta_u64_hex(&meta, gs[i]);
    }
    etd_buf_puts(&meta, "],\"step\":");
    etd_json_i64(&meta, m->step);
    etd_buf_puts(&meta, ",\"pending_batches\":");
    etd_json_i64(&meta, m->pending);
    etd_buf_puts(&meta, ",\"pending_loss_sum\":");
    etd_json_double(&meta, m->pending_loss_sum);
    etd_buf_puts(&meta, ",\"has_loss\":");
    etd_buf_puts(&meta, m->has_loss ? "true" : "false");
    etd_buf_puts(&meta, ",\"loss\":");
    etd_json_float(&meta, m->has_loss ? m->last_loss : 0.0f);
    etd_buf_puts(&meta, ",\"lr\":");
    etd_json_double(&meta, current_lr(m));
    etd_buf_puts(&meta, ",\"optim_steps\":");
    etd_json_i64(&meta, et_optim_steps(m->opt));
    if (m->sched) {
        etd_buf_puts(&meta, ",\"sched_last_epoch\":");
        etd_json_i64(&meta, et_scheduler_last_epoch(m->sched));
        etd_buf_puts(&meta, ",\"sched_last_lr\":");
        etd_json_double(&meta, et_scheduler_get_last_lr(m->sched));
    }
    etd_buf_puts(&meta, ",\"history\":[");
    pthread_mutex_lock(&m->pub_mu);
    for (size_t i = 0; i < m->h_len; i++) {
        etd_buf_puts(&meta, i ? ",[" : "[");
        etd_json_i64(&meta, m->h_step[i]);
        etd_buf_putc(&meta, ',');
        etd_json_float(&meta, m->h_loss[i]);
        etd_buf_putc(&meta, ']');
    }
    pthread_mutex_unlock(&m->pub_mu);
    etd_buf_putc(&meta, ']');
    etd_buf_putc(&meta, '}');
    if (meta.oom)
        goto oom;
    if (et_tensor_dict_set_meta(d, "easytorch", meta.data) != ET_OK ||
        et_safetensors_dump(d, out, len) != ET_OK)
        goto lib;
    ok = true;
    goto done;
oom:
    snprintf(err, cap, "out of memory");
    goto done;
lib:
    snprintf(err, cap, "%s", et_errmsg());
done:
    etd_buf_free(&meta);
    et_tensor_dict_free(d);
    return ok;
}

static bool json_u64_hex(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsString(j))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(j->valuestring, &end, 16);
    if (errno || *end || end == j->valuestring)
        return false;
    *out = v;
    return true;
}

static bool json_num(const cJSON *o, const char *k, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j))
        return false;
    *out = j->valuedouble;
    return true;
}

/* A float that may have been written as null (NaN or infinite). */
static bool json_num_or_nan(const cJSON *o, const char *k, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNull(j)) {
        *out = NAN;
        return true;
    }
    return json_num(o, k, out);
}

/* Restore training state from a snapshot (dict + parsed metadata).  Used
 * when loading a file.  The caller owns the model exclusively. */
static bool model_restore(etd_model *m, const et_tensor_dict *d, const cJSON *meta,
                          char *err, size_t cap)
{
    char key[512];
    et_tensor_dict *pd = et_tensor_dict_new();
    int ns = et_optim_state_count(m->opt);
    const char **names = calloc((size_t)ns + 1, sizeof *names);
    et_tensor **ts = calloc((size_t)ns + 1, sizeof *ts);
    bool ok = false;
    if (!pd || !names || !ts) {
        snprintf(err, cap, "out of memory");
        goto done;
    }
    double step, pending, pls, lr, osteps, loss;
    uint64_t gs[4];
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(meta, "generator");
    const cJSON *hl = cJSON_GetObjectItemCaseSensitive(meta, "has_loss");
    if (!json_num(meta, "step", &step) || !json_num(meta, "pending_batches", &pending) ||
        !json_num_or_nan(meta, "pending_loss_sum", &pls) || !json_num(meta, "lr", &lr) ||
        !json_num(meta, "optim_steps", &osteps) || !json_num_or_nan(meta, "loss", &loss) ||
        !cJSON_IsBool(hl) || !cJSON_IsArray(gen) || cJSON_GetArraySize(gen) != 4 ||
        step < 0 || pending < 0 || osteps < 0) {
        snprintf(err, cap, "metadata: missing or malformed training state");
        goto done;
    }
    for (int i = 0; i < 4; i++)
        if (!json_u64_hex(cJSON_GetArrayItem(gen, i), &gs[i])) {
            snprintf(err, cap, "metadata: malformed generator state");
            goto done;
        }
    double sched_epoch = 0, sched_lr = 0;
    if (m->sched && (!json_num(meta, "sched_last_epoch", &sched_epoch) ||
                     !json_num(meta, "sched_last_lr", &sched_lr))) {
        snprintf(err, cap, "metadata: missing scheduler state");
        goto done;
    }
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(meta, "history");
    if (!cJSON_IsArray(hist)) {
        snprintf(err, cap, "metadata: missing loss history");
        goto done;
    }
    for (int i = 0; i < m->nparams; i++) {
        const char *pn = et_module_param_name(m->net, i);
        snprintf(key, sizeof key, "param.%s", pn);
        et_tensor *t = et_tensor_dict_get(d, key);
        if (!t) {
            snprintf(err, cap, "missing tensor %.400s", key);
            goto done;
        }
        if (et_tensor_dict_set(pd, pn, t) != ET_OK) {
            snprintf(err, cap, "%s", et_errmsg());
            goto done;
        }
    }
    for (int i = 0; i < ns; i++) {
        names[i] = et_optim_state_name(m->opt, i);
        snprintf(key, sizeof key, "optim.%s", names[i]);
        ts[i] = et_tensor_dict_get(d, key);
        if (!ts[i]) {
            snprintf(err, cap, "missing tensor %.400s", key);
            goto done;
        }
    }
    if (et_module_load_state_dict(m->net, pd) != ET_OK ||
        et_optim_load_state(m->opt, names, ts, ns, (int64_t)osteps) != ET_OK) {
        snprintf(err, cap, "%s", et_errmsg());
        goto done;
    }
    et_optim_set_lr(m->opt, lr);
    if (m->sched && et_scheduler_load_state(m->sched, (int64_t)sched_epoch, sched_lr) != ET_OK) {
        snprintf(err, cap, "%s", et_errmsg());
        goto done;
    }
    et_optim_set_lr(m->opt, lr);
    for (int i = 0; i < m->nparams; i++) {
        snprintf(key, sizeof key, "grad.%s", et_module_param_name(m->net, i));
        et_tensor *g = et_tensor_dict_get(d, key);
        et_tensor *c = g && et_same_shape(g, m->params[i]) ? et_clone(g) : NULL;
        et_set_grad(m->params[i], c);
        et_tensor_free(c);
    }
    et_generator_set_state(m->gen, gs);
    m->step = (int64_t)step;
    m->pending = (int64_t)pending;
    m->pending_loss_sum = pls;
    m->has_loss = cJSON_IsTrue(hl);
    m->last_loss = (float)loss;
    pthread_mutex_lock(&m->pub_mu);
    m->h_len = 0;
    pthread_mutex_unlock(&m->pub_mu);
    for (const cJSON *e = hist->child; e; e = e->next) {
        const cJSON *s = cJSON_GetArrayItem(e, 0), *l = cJSON_GetArrayItem(e, 1);
        if (cJSON_IsNumber(s))
            history_add(m, (int64_t)s->valuedouble,
                        cJSON_IsNumber(l) ? (float)l->valuedouble : NAN);
    }
    publish(m);
    ok = true;
done:
    free(names);
    free(ts);
    et_tensor_dict_free(pd);
    return ok;
}

/* Save to disk.  Caller holds the model lock (shared or exclusive). */
static bool model_save_locked(etd_model *m, char *err, size_t cap)
{
    if (m->deleted)
        return true;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!model_serialize(m, &buf, &len, err, cap))
        return false;
    bool ok = etd_persist_write(m->reg->data_dir, m->name, buf, len, err, cap);
    free(buf);
    if (ok)
        atomic_store(&m->dirty, false);
    return ok;
}

static bool model_save(etd_model *m, char *err, size_t cap)
{
    pthread_rwlock_rdlock(&m->lock);
    bool ok = model_save_locked(m, err, cap);
    pthread_rwlock_unlock(&m->lock);
    return ok;
}

/* After a change under the write lock: persist now (--sync always) or mark
 * dirty for the saver.  Returns false + err if a synchronous save failed. */
static bool model_changed(etd_model *m, char *err, size_t cap)
{
    atomic_store(&m->dirty, true);
    publish(m);
    if (!m->reg->o.sync_always)
        return true;
    if (!model_save_locked(m, err, cap)) {
        fprintf(stderr, "easytorchd: saving model %s failed: %s\n", m->name, err);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ registry */

static void *saver_main(void *arg);

etd_registry *etd_registry_new(const etd_registry_opts *o, char *err, size_t cap)
{
    if (!etd_persist_mkdir(o->data_dir, err, cap))
        return NULL;
    etd_registry *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    r->o = *o;
    r->data_dir = strdup(o->data_dir);
    r->o.data_dir = r->data_dir;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->saver_mu, NULL);
    pthread_cond_init(&r->saver_cv, NULL);
    return r;
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
static etd_model **snapshot_models(etd_registry *r, int *n)
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

int etd_registry_save_all(etd_registry *r)
{
    int n, fails = 0;
    etd_model **v = snapshot_models(r, &n);
    for (int i = 0; i < n; i++) {
        char err[512];
        if (atomic_load(&v[i]->dirty) && !model_save(v[i], err, sizeof err)) {
            fprintf(stderr, "easytorchd: saving model %s failed: %s\n", v[i]->name, err);
            fails++;
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

void etd_registry_free(etd_registry *r)
{
    if (!r)
        return;
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
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->saver_mu);
    pthread_cond_destroy(&r->saver_cv);
    free(r->data_dir);
    free(r);
}

static int find_slot(etd_registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->slots[i].m->name, name) == 0)
            return i;
    return -1;
}

etd_model *etd_registry_get(etd_registry *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    int i = find_slot(r, name);
    etd_model *m = NULL;
    if (i >= 0 && !r->slots[i].deleting) {
        m = r->slots[i].m;
        atomic_fetch_add(&m->refs, 1);
    }
    pthread_mutex_unlock(&r->mu);
    return m;
}

/* Insert m (reference taken over); 409 if the name is taken or full. */
static int insert(etd_registry *r, etd_model *m, char *err, size_t cap)
{
    pthread_mutex_lock(&r->mu);
    int st = 0;
    int live = 0;
    for (int i = 0; i < r->n; i++)
        live += !r->slots[i].deleting;
    if (find_slot(r, m->name) >= 0) {
        snprintf(err, cap, "name: a model named \"%s\" already exists", m->name);
        st = 409;
    } else if (live >= r->o.max_models) {
        snprintf(err, cap, "too many models: the limit is %d (--max-models)", r->o.max_models);
        st = 409;
    } else if (r->n == r->cap) {
        int nc = r->cap ? r->cap * 2 : 16;
        slot *s = realloc(r->slots, (size_t)nc * sizeof *s);
        if (!s) {
            snprintf(err, cap, "out of memory");
            st = 500;
        } else {
            r->slots = s;
            r->cap = nc;
        }
    }
    if (!st)
        r->slots[r->n++] = (slot){m, false};
    pthread_mutex_unlock(&r->mu);
    return st;
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

int etd_registry_define(etd_registry *r, const cJSON *body, etd_buf *out, char *err, size_t cap)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, cap, "body: expected a JSON object");
        return 400;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (!name) {
        snprintf(err, cap, "name: required field is missing");
        return 400;
    }
    if (!cJSON_IsString(name) || !etd_name_ok(name->valuestring)) {
        snprintf(err, cap, "name: expected a string matching ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ "
                 "without \"..\"");
        return 400;
    }
    etd_spec spec;
    etd_err e;
    if (!etd_spec_parse(body, r->o.max_params, &spec, &e)) {
        snprintf(err, cap, "%s", e.msg);
        return e.rc == ETD_ENOMEM ? 500 : 400;
    }
    etd_model *old = etd_registry_get(r, name->valuestring);
    if (old) {
        etd_model_unref(old);
        etd_spec_free(&spec);
        snprintf(err, cap, "name: a model named \"%s\" already exists", name->valuestring);
        return 409;
    }
    cJSON *copy = cJSON_Duplicate(body, 1);
    char *spec_json = NULL;
    if (copy) {
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "name");
        spec_json = cJSON_PrintUnformatted(copy);
        cJSON_Delete(copy);
    }
    if (!spec_json) {
        etd_spec_free(&spec);
        snprintf(err, cap, "out of memory");
        return 500;
    }
    uint64_t seed = spec.has_seed ? spec.seed : random_seed();
    etd_model *m = model_build(r, name->valuestring, &spec, spec_json, seed, err, cap);
    if (!m)
        return 400;
    int st = insert(r, m, err, cap);
    if (st) {
        etd_model_unref(m);
        return st;
    }
    /* a new model is written at once, whatever --sync says */
    char serr[512];
    atomic_store(&m->dirty, true);
    if (!model_save(m, serr, sizeof serr))
        fprintf(stderr, "easytorchd: saving model %s failed: %s\n", m->name, serr);
    etd_model_describe(m, out);
    return 201;
}

/* ,"loss":<last loss, or null before the first step> */
static void put_loss(etd_buf *out, bool has_loss, float loss)
{
    etd_buf_puts(out, ",\"loss\":");
    if (has_loss)
        etd_json_float(out, loss);
    else
        etd_buf_puts(out, "null");
}

int etd_registry_list(etd_registry *r, etd_buf *out)
{
    int n;
    etd_model **v = snapshot_models(r, &n);
    etd_buf_puts(out, "{\"models\":[");
    for (int i = 0; i < n; i++) {
        etd_model *m = v[i];
        pthread_mutex_lock(&m->pub_mu);
        int64_t step = m->pub_step;
        bool hl = m->pub_has_loss;
        float loss = m->pub_loss;
        pthread_mutex_unlock(&m->pub_mu);
        etd_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        etd_json_str(out, m->name);
        etd_buf_puts(out, ",\"step\":");
        etd_json_i64(out, step);
        put_loss(out, hl, loss);
        etd_buf_putc(out, '}');
        etd_model_unref(m);
    }
    free(v);
    etd_buf_puts(out, "]}");
    return 200;
}

int etd_registry_delete(etd_registry *r, const char *name, char *err, size_t cap)
{
    pthread_mutex_lock(&r->mu);
    int i = find_slot(r, name);
    if (i < 0 || r->slots[i].deleting) {
        pthread_mutex_unlock(&r->mu);
        snprintf(err, cap, "no model named \"%s\"", name);
        return 404;
    }
    etd_model *m = r->slots[i].m;
    r->slots[i].deleting = true; /* the name stays reserved until the file is gone */
    pthread_mutex_unlock(&r->mu);

    pthread_rwlock_wrlock(&m->lock); /* waits for running calls and saves */
    m->deleted = true;
    char ferr[512];
    if (!etd_persist_remove(r->data_dir, m->name, ferr, sizeof ferr))
        fprintf(stderr, "easytorchd: deleting model %s: %s\n", m->name, ferr);
    pthread_rwlock_unlock(&m->lock);

    pthread_mutex_lock(&r->mu);
    i = find_slot(r, name);
    if (i >= 0)
        r->slots[i] = r->slots[--r->n];
    pthread_mutex_unlock(&r->mu);
    etd_model_unref(m);
    return 200;
}

static void load_file(etd_registry *r, const char *file)
{
    char err[512] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    et_tensor_dict *d = NULL;
    cJSON *meta = NULL;
    etd_model *m = NULL;
    if (!etd_persist_read(r->data_dir, file, &buf, &len, err, sizeof err))
        goto bad;
    if (et_safetensors_parse(buf, len, &d) != ET_OK) {
        snprintf(err, sizeof err, "payload: %s", et_errmsg());
        goto bad;
    }
    const char *ms = et_tensor_dict_get_meta(d, "easytorch");
    meta = ms ? cJSON_Parse(ms) : NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
    const cJSON *spec_j = cJSON_GetObjectItemCaseSensitive(meta, "spec");
    uint64_t seed;
    if (!cJSON_IsString(name) || !cJSON_IsObject(spec_j) ||
        !json_u64_hex(cJSON_GetObjectItemCaseSensitive(meta, "seed"), &seed)) {
        snprintf(err, sizeof err, "missing or malformed metadata");
        goto bad;
    }
    char expect[128];
    snprintf(expect, sizeof expect, "%s%s", name->valuestring, ETD_FILE_EXT);
    if (!etd_name_ok(name->valuestring) || strcmp(expect, file) != 0) {
        snprintf(err, sizeof err, "file name does not match the model name in it");
        goto bad;
    }
    etd_spec spec;
    etd_err e;
    if (!etd_spec_parse(spec_j, r->o.max_params, &spec, &e)) {
        snprintf(err, sizeof err, "%.500s", e.msg);
        goto bad;
    }
    char *spec_json = cJSON_PrintUnformatted(spec_j);
    if (!spec_json) {
        etd_spec_free(&spec);
        snprintf(err, sizeof err, "out of memory");
        goto bad;
    }
    m = model_build(r, name->valuestring, &spec, spec_json, seed, err, sizeof err);
    if (!m || !model_restore(m, d, meta, err, sizeof err))
        goto bad;
    if (insert(r, m, err, sizeof err) != 0)
        goto bad;
    fprintf(stderr, "easytorchd: loaded model %s (step %lld)\n", m->name, (long long)m->step);
    m = NULL;
    goto done;
bad:
    fprintf(stderr, "easytorchd: skipping %s/%s: %s\n", r->data_dir, file, err);
    etd_model_unref(m);
done:
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    free(buf);
}

void etd_registry_load_all(etd_registry *r)
{
    DIR *dir = opendir(r->data_dir);
    if (dir) {
        struct dirent *e;
        char **files = NULL;
        int n = 0, cap = 0;
        while ((e = readdir(dir))) {
            const char *f = e->d_name;
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
}

void etd_registry_metrics(etd_registry *r, etd_buf *out)
{
    int n;
    etd_model **v = snapshot_models(r, &n);
    /* one consistent reading per model, taken under its lock once */
    struct pub { int64_t step, pending; float loss; bool has_loss; } *pv =
        calloc((size_t)(n ? n : 1), sizeof *pv);
    if (!pv)
        out->oom = true;
    for (int i = 0; pv && i < n; i++) {
        pthread_mutex_lock(&v[i]->pub_mu);
        pv[i] = (struct pub){v[i]->pub_step, v[i]->pub_pending, v[i]->pub_loss,
                             v[i]->pub_has_loss};
        pthread_mutex_unlock(&v[i]->pub_mu);
    }
    etd_buf_printf(out, "# HELP easytorch_models Models hosted.\n# TYPE easytorch_models gauge\n"
                   "easytorch_models %d\n", n);
    etd_buf_puts(out, "# HELP easytorch_optimizer_steps_total Optimizer steps taken per model.\n"
                 "# TYPE easytorch_optimizer_steps_total counter\n");
    for (int i = 0; pv && i < n; i++)
        etd_buf_printf(out, "easytorch_optimizer_steps_total{model=\"%s\"} %lld\n", v[i]->name,
                       (long long)pv[i].step);
    etd_buf_puts(out, "# HELP easytorch_last_loss Last training loss per model.\n"
                 "# TYPE easytorch_last_loss gauge\n");
    for (int i = 0; pv && i < n; i++) {
        if (!pv[i].has_loss)
            continue;
        float l = pv[i].loss;
        char num[40];
        if (isfinite(l))
            etd_fmt_float(num, l);
        else /* Prometheus spells these out; JSON has only null */
            snprintf(num, sizeof num, "%s", isnan(l) ? "NaN" : l > 0 ? "+Inf" : "-Inf");
        etd_buf_printf(out, "easytorch_last_loss{model=\"%s\"} %s\n", v[i]->name, num);
    }
    etd_buf_puts(out, "# HELP easytorch_pending_batches Batches accumulated since the last step.\n"
                 "# TYPE easytorch_pending_batches gauge\n");
    for (int i = 0; pv && i < n; i++)
        etd_buf_printf(out, "easytorch_pending_batches{model=\"%s\"} %lld\n", v[i]->name,
                       (long long)pv[i].pending);
    for (int i = 0; i < n; i++)
        etd_model_unref(v[i]);
    free(pv);
    free(v);
}

/* ------------------------------------------------------------ operations */

/* Take the lock; 404 if the model was deleted while we waited. */
static int lock_model(etd_model *m, bool write, char *err, size_t cap)
{
    if (write)
        pthread_rwlock_wrlock(&m->lock);
    else
        pthread_rwlock_rdlock(&m->lock);
    if (m->deleted) {
        pthread_rwlock_unlock(&m->lock);
        snprintf(err, cap, "no model named \"%s\" (deleted)", m->name);
        return 404;
    }
    return 0;
}

static void unlock_model(etd_model *m) { pthread_rwlock_unlock(&m->lock); }

int etd_model_describe(etd_model *m, etd_buf *out)
{
    pthread_mutex_lock(&m->pub_mu);
    int64_t step = m->pub_step, pending = m->pub_pending;
    bool hl = m->pub_has_loss;
    float loss = m->pub_loss;
    double lr = m->pub_lr;
    pthread_mutex_unlock(&m->pub_mu);
    etd_buf_puts(out, "{\"name\":");
    etd_json_str(out, m->name);
    etd_buf_puts(out, ",\"spec\":");
    etd_buf_puts(out, m->spec_json);
    etd_buf_puts(out, ",\"parameters\":");
    etd_json_i64(out, m->spec.param_count);
    etd_buf_puts(out, ",\"step\":");
    etd_json_i64(out, step);
    etd_buf_puts(out, ",\"pending_batches\":");
    etd_json_i64(out, pending);
    put_loss(out, hl, loss);
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, lr);
    etd_buf_printf(out, ",\"seed\":%" PRIu64 ",\"parameter_names\":[", m->seed);
    for (int i = 0; i < m->nparams; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, et_module_param_name(m->net, i));
    }
    etd_buf_puts(out, "]}");
    return 200;
}

/* Check an input batch against the first layer; 0 or 400. */
static int check_inputs(etd_model *m, const etd_array *x, const char *what, char *err, size_t cap)
{
    if (x->ndim < 1) {
        snprintf(err, cap, "%s: expected a batch (a list), got a scalar", what);
        return 400;
    }
    int64_t in = m->spec.in_features;
    if (in >= 0 && x->shape[x->ndim - 1] != in) {
        char s[160];
        et_shape_str(x->shape, x->ndim, s, sizeof s);
        snprintf(err, cap, "%s: expected shape [batch, %lld] (layers[0].in_features = %lld), got %s",
                 what, (long long)in, (long long)in, s);
        return 400;
    }
    return 0;
}

static et_tensor *array_tensor(const etd_array *a)
{
    return et_tensor_new(a->data, a->shape, a->ndim);
}

int etd_model_forward(etd_model *m, const etd_array *x, et_tensor **y, char *err, size_t cap)
{
    *y = NULL;
    int st = check_inputs(m, x, "inputs", err, cap);
    if (st)
        return st;
    if ((st = lock_model(m, false, err, cap)))
        return st;
    et_pool_begin();
    et_tensor *xt = array_tensor(x), *out = NULL;
    if (xt) {
        ET_NO_GRAD { out = et_module_forward(m->net, xt); }
    }
    if (!out) {
        snprintf(err, cap, "inputs: %s", et_errmsg());
        st = 400;
    } else {
        *y = et_tensor_ref(out);
    }
    et_pool_end();
    unlock_model(m);
    return st ? st : 200;
}

/* Forward + loss in training mode; returns the loss tensor (pool-owned) or
 * NULL with err.  x may be made to require grad by the caller. */
static et_tensor *train_loss(etd_model *m, et_tensor *xt, et_tensor *yt, char *err, size_t cap)
{
    et_tensor *out = et_module_forward(m->net, xt);
    if (!out) {
        snprintf(err, cap, "inputs: %s", et_errmsg());
        return NULL;
    }
    etd_err e;
    et_tensor *loss = etd_spec_loss(&m->spec, out, yt, &e);
    if (!loss) {
        snprintf(err, cap, "%s", e.msg);
        return NULL;
    }
    if (et_numel(loss) != 1) {
        snprintf(err, cap, "loss: expected a scalar");
        return NULL;
    }
    return loss;
}

int etd_model_push_batch(etd_model *m, const etd_array *x, const etd_array *y, etd_buf *out,
                         char *err, size_t cap)
{
    int st = check_inputs(m, x, "inputs", err, cap);
    if (st || (st = lock_model(m, true, err, cap)))
        return st;
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    et_pool_begin();
    et_module_train(m->net, true);
    et_tensor *xt = array_tensor(x), *yt = array_tensor(y);
    et_tensor *loss = xt && yt ? train_loss(m, xt, yt, err, cap) : NULL;
    if (!xt || !yt)
        snprintf(err, cap, "out of memory");
    if (loss && et_backward(loss, NULL) != ET_OK) {
        snprintf(err, cap, "backward: %s", et_errmsg());
        loss = NULL;
    }
    et_module_train(m->net, false);
    if (!loss) {
        et_generator_set_state(m->gen, gs);
        et_pool_end();
        unlock_model(m);
        return 400;
    }
    float lv = et_item(loss);
    et_pool_end();
    m->pending++;
    m->pending_loss_sum += lv;
    m->has_loss = true;
    m->last_loss = lv;
    st = model_changed(m, err, cap) ? 200 : 500;
    int64_t pending = m->pending;
    unlock_model(m);
    if (st != 200)
        return st;
    etd_buf_puts(out, "{\"loss\":");
    etd_json_float(out, lv);
    etd_buf_puts(out, ",\"pending_batches\":");
    etd_json_i64(out, pending);
    etd_buf_putc(out, '}');
    return 200;
}

/* One optimizer step + scheduler step; returns the lr used. */
static bool do_step(etd_model *m, double *lr_used, char *err, size_t cap)
{
    *lr_used = current_lr(m);
    if (et_optim_step(m->opt) != ET_OK) {
        snprintf(err, cap, "optimizer: %s", et_errmsg());
        return false;
    }
    et_optim_zero_grad(m->opt);
    if (m->sched && et_scheduler_step(m->sched) != ET_OK) {
        snprintf(err, cap, "scheduler: %s", et_errmsg());
        return false;
    }
    m->step++;
    return true;
}

int etd_model_step(etd_model *m, etd_buf *out, char *err, size_t cap)
{
    int st = lock_model(m, true, err, cap);
    if (st)
        return st;
    if (m->pending == 0) {
        unlock_model(m);
        snprintf(err, cap, "nothing to step: no batch is pending (POST /v1/models/%s/batches first)",
                 m->name);
        return 409;
    }
    double lr;
    et_pool_begin();
    bool ok = do_step(m, &lr, err, cap);
    et_pool_end();
    if (!ok) {
        unlock_model(m);
        return 500;
    }
    float loss = (float)(m->pending_loss_sum / (double)m->pending);
    m->pending = 0;
    m->pending_loss_sum = 0;
    history_add(m, m->step, loss);
    st = model_changed(m, err, cap) ? 200 : 500;
    int64_t step = m->step;
    double next_lr = current_lr(m);
    unlock_model(m);
    if (st != 200)
        return st;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, step);
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, lr);
    etd_buf_puts(out, ",\"next_lr\":");
    etd_json_double(out, next_lr);
    etd_buf_puts(out, ",\"loss\":");
    etd_json_float(out, loss);
    etd_buf_putc(out, '}');
    return 200;
}

/* A raw copy of everything a train call changes, so that a minibatch that
 * fails half-way can roll the whole call back.  Taking it is a few memcpys
 * (it runs on every train call); restoring goes through the same loaders as
 * persistence. */
typedef struct train_snap {
    int np, ns;
    float **params, **grads, **ostate;
    uint64_t gen[4];
    int64_t step, pending, osteps, sched_epoch;
    double pls, lr, sched_lr;
    bool has_loss;
    float last_loss;
    size_t hlen;
} train_snap;

static float *copy_out(const et_tensor *t)
{
    int64_t n = et_numel(t);
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p)
        et_copy_to(t, p);
    return p;
}

static void snap_free(train_snap *s)
{
    for (int i = 0; i < s->np; i++) {
        if (s->params)
            free(s->params[i]);
        if (s->grads)
            free(s->grads[i]);
    }
    for (int i = 0; i < s->ns; i++)
        if (s->ostate)
            free(s->ostate[i]);
    free(s->params);
    free(s->grads);
    free(s->ostate);
    memset(s, 0, sizeof *s);
}

static bool snap_take(etd_model *m, train_snap *s)
{
    memset(s, 0, sizeof *s);
    s->np = m->nparams;
    s->ns = et_optim_state_count(m->opt);
    s->params = calloc((size_t)s->np + 1, sizeof *s->params);
    s->grads = calloc((size_t)s->np + 1, sizeof *s->grads);
    s->ostate = calloc((size_t)s->ns + 1, sizeof *s->ostate);
    if (!s->params || !s->grads || !s->ostate)
        goto oom;
    for (int i = 0; i < s->np; i++) {
        if (!(s->params[i] = copy_out(m->params[i])))
            goto oom;
        et_tensor *g = et_grad(m->params[i]);
        if (m->pending > 0 && g && !(s->grads[i] = copy_out(g)))
            goto oom;
    }
    for (int i = 0; i < s->ns; i++)
        if (!(s->ostate[i] = copy_out(et_optim_state_tensor(m->opt, i))))
            goto oom;
    et_generator_get_state(m->gen, s->gen);
    s->step = m->step;
    s->pending = m->pending;
    s->pls = m->pending_loss_sum;
    s->has_loss = m->has_loss;
    s->last_loss = m->last_loss;
    s->osteps = et_optim_steps(m->opt);
    s->lr = current_lr(m);
    if (m->sched) {
        s->sched_epoch = et_scheduler_last_epoch(m->sched);
        s->sched_lr = et_scheduler_get_last_lr(m->sched);
    }
    s->hlen = m->h_len;
    return true;
oom:
    snap_free(s);
    return false;
}

static bool snap_restore(etd_model *m, const train_snap *s)
{
    bool ok = true;
    for (int i = 0; i < s->np; i++) {
        et_tensor *p = m->params[i];
        ok &= et_copy_from(p, s->params[i]) == ET_OK;
        et_tensor *g = s->grads[i] ? et_tensor_new(s->grads[i], et_shape(p), et_ndim(p)) : NULL;
        et_set_grad(p, g);
        et_tensor_free(g);
    }
    const char **names = calloc((size_t)s->ns + 1, sizeof *names);
    et_tensor **ts = calloc((size_t)s->ns + 1, sizeof *ts);
    if (names && ts) {
        for (int i = 0; i < s->ns; i++) {
            et_tensor *cur = et_optim_state_tensor(m->opt, i);
            names[i] = et_optim_state_name(m->opt, i);
            ts[i] = et_tensor_new(s->ostate[i], et_shape(cur), et_ndim(cur));
            ok &= ts[i] != NULL;
        }
        ok = ok && et_optim_load_state(m->opt, names, ts, s->ns, s->osteps) == ET_OK;
        for (int i = 0; i < s->ns; i++)
            et_tensor_free(ts[i]);
    } else {
        ok = false;
    }
    free(names);
    free(ts);
    if (m->sched)
        ok &= et_scheduler_load_state(m->sched, s->sched_epoch, s->sched_lr) == ET_OK;
    et_optim_set_lr(m->opt, s->lr);
    et_generator_set_state(m->gen, s->gen);
    m->step = s->step;
    m->pending = s->pending;
    m->pending_loss_sum = s->pls;
    m->has_loss = s->has_loss;
    m->last_loss = s->last_loss;
    pthread_mutex_lock(&m->pub_mu);
    if (m->h_len > s->hlen)
        m->h_len = s->hlen;
    pthread_mutex_unlock(&m->pub_mu);
    publish(m);
    return ok;
}

/* Rows idx[0..n) of a (first dimension) as a new tensor in the current pool. */
static et_tensor *gather_rows(const etd_array *a, const int64_t *idx, int64_t n)
{
    int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
    int64_t total = n * row;
    float *buf = malloc((size_t)(total > 0 ? total : 1) * sizeof(float));
    if (!buf)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        memcpy(buf + i * row, a->data + idx[i] * row, (size_t)row * sizeof(float));
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n;
    et_tensor *t = et_tensor_new(buf, shape, a->ndim);
    free(buf);
    return t;
}

int etd_model_train(etd_model *m, const etd_array *x, const etd_array *y, int64_t epochs,
                    int64_t batch_size, bool shuffle, etd_buf *out, char *err, size_t cap)
{
    int st = check_inputs(m, x, "inputs", err, cap);
    if (st)
        return st;
    if (y->ndim < 1 || y->shape[0] != x->shape[0]) {
        snprintf(err, cap, "targets: expected %lld rows (as many as inputs), got %lld",
                 (long long)x->shape[0], (long long)(y->ndim ? y->shape[0] : 0));
        return 400;
    }
    int64_t n = x->shape[0];
    if (n == 0) {
        snprintf(err, cap, "inputs: empty batch");
        return 400;
    }
    if (batch_size <= 0 || batch_size > n)
        batch_size = n;
    int64_t per_epoch = (n + batch_size - 1) / batch_size;
    if (epochs > m->reg->o.max_steps / per_epoch) {
        snprintf(err, cap, "epochs: %lld epochs of %lld steps exceed the limit of %lld steps per "
                 "call (--max-steps)", (long long)epochs, (long long)per_epoch,
                 (long long)m->reg->o.max_steps);
        return 400;
    }
    int64_t total = epochs * per_epoch;
    float *losses = malloc((size_t)(total ? total : 1) * sizeof(float));
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    if (!losses || !perm) {
        free(losses);
        free(perm);
        snprintf(err, cap, "out of memory");
        return 500;
    }
    if ((st = lock_model(m, true, err, cap))) {
        free(losses);
        free(perm);
        return st;
    }
    /* snapshot for all-or-nothing: a bad minibatch rolls everything back */
    train_snap snap;
    if (!snap_take(m, &snap)) {
        unlock_model(m);
        free(losses);
        free(perm);
        snprintf(err, cap, "out of memory");
        return 500;
    }
    int64_t k = 0;
    double lr = 0;
    bool ok = true;
    et_module_train(m->net, true);
    for (int64_t ep = 0; ep < epochs && ok; ep++) {
        for (int64_t i = 0; i < n; i++)
            perm[i] = i;
        if (shuffle) /* Fisher-Yates from the model's generator */
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)(et_generator_next(m->gen) % (uint64_t)(i + 1));
                int64_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        for (int64_t b = 0; b < n && ok; b += batch_size) {
            int64_t bn = n - b < batch_size ? n - b : batch_size;
            et_pool_begin();
            et_tensor *xb = gather_rows(x, perm + b, bn), *yb = gather_rows(y, perm + b, bn);
            et_optim_zero_grad(m->opt);
            et_tensor *loss = xb && yb ? train_loss(m, xb, yb, err, cap) : NULL;
            if (loss && et_backward(loss, NULL) != ET_OK) {
                snprintf(err, cap, "backward: %s", et_errmsg());
                loss = NULL;
            }
            if (loss && do_step(m, &lr, err, cap)) {
                float lv = et_item(loss);
                losses[k++] = lv;
                m->has_loss = true;
                m->last_loss = lv;
                history_add(m, m->step, lv);
                publish(m);
            } else {
                if (!xb || !yb)
                    snprintf(err, cap, "out of memory");
                /* say where, keep the field name first */
                char where[96], tmp[1024];
                snprintf(where, sizeof where, " (epoch %lld, minibatch %lld; nothing was changed)",
                         (long long)ep + 1, (long long)(b / batch_size) + 1);
                snprintf(tmp, sizeof tmp, "%s%s", err, where);
                snprintf(err, cap, "%s", tmp);
                ok = false;
            }
            et_pool_end();
        }
    }
    et_module_train(m->net, false);
    if (!ok) {
        if (!snap_restore(m, &snap))
            fprintf(stderr, "easytorchd: model %s: rollback after a failed train failed\n", m->name);
        snap_free(&snap);
        free(losses);
        free(perm);
        unlock_model(m);
        return 400;
    }
    snap_free(&snap);
    m->pending = 0;
    m->pending_loss_sum = 0;
    st = model_changed(m, err, cap) ? 200 : 500;
    int64_t step = m->step;
    unlock_model(m);
    if (st == 200) {
        etd_buf_puts(out, "{\"step\":");
        etd_json_i64(out, step);
        etd_buf_puts(out, ",\"loss\":");
        if (k)
            etd_json_float(out, losses[k - 1]);
        else
            etd_buf_puts(out, "null");
        etd_buf_puts(out, ",\"lr\":");
        etd_json_double(out, lr);
        etd_buf_puts(out, ",\"losses\":");
        etd_json_floats(out, losses, k);
        etd_buf_putc(out, '}');
    }
    free(losses);
    free(perm);
    return st;
}

static void write_grads(etd_model *m, etd_buf *out)
{
    etd_buf_putc(out, '{');
    for (int i = 0; i < m->nparams; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, et_module_param_name(m->net, i));
        etd_buf_putc(out, ':');
        et_tensor *g = et_grad(m->params[i]);
        if (g) {
            etd_json_tensor(out, g);
        } else {
            et_tensor *z = et_zeros_like(m->params[i]);
            if (z)
                etd_json_tensor(out, z);
            else
                out->oom = true;
        }
    }
    etd_buf_putc(out, '}');
}

int etd_model_get_gradients(etd_model *m, etd_buf *out)
{
    char err[128];
    int st = lock_model(m, false, err, sizeof err);
    if (st)
        return st;
    et_pool_begin();
    etd_buf_puts(out, "{\"gradients\":");
    write_grads(m, out);
    etd_buf_puts(out, ",\"pending_batches\":");
    etd_json_i64(out, m->pending);
    etd_buf_putc(out, '}');
    et_pool_end();
    unlock_model(m);
    return 200;
}

int etd_model_probe_gradients(etd_model *m, const etd_array *x, const etd_array *y,
                              etd_buf *out, char *err, size_t cap)
{
    int st = check_inputs(m, x, "inputs", err, cap);
    if (st || (st = lock_model(m, true, err, cap)))
        return st;
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    et_pool_begin();
    et_tensor **saved = calloc((size_t)m->nparams + 1, sizeof *saved);
    if (!saved) {
        et_pool_end();
        unlock_model(m);
        snprintf(err, cap, "out of memory");
        return 500;
    }
    /* set the accumulated gradients aside, compute this batch's alone */
    for (int i = 0; i < m->nparams; i++) {
        et_tensor *g = et_grad(m->params[i]);
        saved[i] = g ? et_tensor_ref(g) : NULL;
        et_set_grad(m->params[i], NULL);
    }
    et_module_train(m->net, true);
    et_tensor *xt = array_tensor(x), *yt = array_tensor(y), *loss = NULL;
    if (!xt || !yt)
        snprintf(err, cap, "out of memory");
    else if (et_set_requires_grad(xt, true) == ET_OK)
        loss = train_loss(m, xt, yt, err, cap);
    if (loss && et_backward(loss, NULL) != ET_OK) {
        snprintf(err, cap, "backward: %s", et_errmsg());
        loss = NULL;
    }
    et_module_train(m->net, false);
    if (loss) {
        etd_buf_puts(out, "{\"loss\":");
        etd_json_float(out, et_item(loss));
        etd_buf_puts(out, ",\"gradients\":");
        write_grads(m, out);
        etd_buf_puts(out, ",\"input_gradient\":");
        et_tensor *xg = et_grad(xt);
        if (xg) {
            etd_json_tensor(out, xg);
        } else {
            et_tensor *z = et_zeros_like(xt);
            if (z)
                etd_json_tensor(out, z);
        }
        etd_buf_putc(out, '}');
    }
    for (int i = 0; i < m->nparams; i++) {
        et_set_grad(m->params[i], saved[i]);
        et_tensor_free(saved[i]);
    }
    free(saved);
    et_generator_set_state(m->gen, gs);
    et_pool_end();
    unlock_model(m);
    return loss ? 200 : 400;
}

int etd_model_get_parameters(etd_model *m, etd_buf *out)
{
    char err[128];
    int st = lock_model(m, false, err, sizeof err);
    if (st)
        return st;
    etd_buf_puts(out, "{\"parameters\":{");
    for (int i = 0; i < m->nparams; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, et_module_param_name(m->net, i));
        etd_buf_putc(out, ':');
        etd_json_tensor(out, m->params[i]);
    }
    etd_buf_puts(out, "}}");
    unlock_model(m);
    return 200;
}

int etd_model_get_parameters_st(etd_model *m, uint8_t **buf, size_t *len, char *err, size_t cap)
{
    int st = lock_model(m, false, err, cap);
    if (st)
        return st;
    et_tensor_dict *d = et_module_state_dict(m->net);
    st = 200;
    if (!d || et_tensor_dict_set_meta(d, "format", "pt") != ET_OK ||
        et_safetensors_dump(d, buf, len) != ET_OK) {
        snprintf(err, cap, "%s", et_errmsg());
        st = 500;
    }
    et_tensor_dict_free(d);
    unlock_model(m);
    return st;
}

int etd_model_put_parameters(etd_model *m, const et_tensor_dict *d, char *err, size_t cap)
{
    /* names and shapes first, with messages naming the parameter */
    int n = et_tensor_dict_len(d);
    for (int i = 0; i < n; i++) {
        const char *name = et_tensor_dict_name(d, i);
        et_tensor *p = et_module_param_by_name(m->net, name);
        if (!p) {
            snprintf(err, cap, "parameters.%s: unknown parameter (the model has:", name);
            for (int k = 0; k < m->nparams; k++) {
                size_t l = strlen(err);
                snprintf(err + l, cap - l, " %s", et_module_param_name(m->net, k));
            }
            size_t l = strlen(err);
            snprintf(err + l, cap - l, ")");
            return 400;
        }
        et_tensor *t = et_tensor_dict_tensor(d, i);
        if (!et_same_shape(p, t)) {
            char a[128], b[128];
            et_shape_str(et_shape(p), et_ndim(p), a, sizeof a);
            et_shape_str(et_shape(t), et_ndim(t), b, sizeof b);
            snprintf(err, cap, "parameters.%s: expected shape %s, got %s", name, a, b);
            return 400;
        }
    }
    for (int k = 0; k < m->nparams; k++)
        if (!et_tensor_dict_get(d, et_module_param_name(m->net, k))) {
            snprintf(err, cap, "parameters.%s: missing (every parameter must be given)",
                     et_module_param_name(m->net, k));
            return 400;
        }
    int st = lock_model(m, true, err, cap);
    if (st)
        return st;
    if (et_module_load_state_dict(m->net, d) != ET_OK) {
        snprintf(err, cap, "parameters: %s", et_errmsg());
        unlock_model(m);
        return 400;
    }
    st = model_changed(m, err, cap) ? 200 : 500;
    unlock_model(m);
    return st;
}

int etd_model_loss_history(etd_model *m, int64_t since, etd_buf *out)
{
    pthread_mutex_lock(&m->pub_mu);
    size_t lo = 0, hi = m->h_len;
    while (lo < hi) { /* first entry with step > since */
        size_t mid = (lo + hi) / 2;
        if (m->h_step[mid] <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, m->pub_step);
    etd_buf_puts(out, ",\"history\":[");
    for (size_t i = lo; i < m->h_len; i++) {
        etd_buf_puts(out, i > lo ? ",[" : "[");
        etd_json_i64(out, m->h_step[i]);
        etd_buf_putc(out, ',');
        etd_json_float(out, m->h_loss[i]);
        etd_buf_putc(out, ']');
    }
    pthread_mutex_unlock(&m->pub_mu);
    etd_buf_puts(out, "]}");
    return 200;
}

int etd_model_checkpoint(etd_model *m, etd_buf *out, char *err, size_t cap)
{
    int st = lock_model(m, false, err, cap);
    if (st)
        return st;
    bool ok = model_save_locked(m, err, cap);
    int64_t step = m->step;
    unlock_model(m);
    if (!ok)
        return 500;
    etd_buf_puts(out, "{\"saved\":true,\"step\":");
    etd_json_i64(out, step);
    etd_buf_putc(out, '}');
    return 200;
}

int etd_model_kserve_meta(etd_model *m, etd_buf *out)
{
    etd_buf_puts(out, "{\"name\":");
    etd_json_str(out, m->name);
    etd_buf_puts(out, ",\"versions\":[\"1\"],\"platform\":\"easytorch\",\"inputs\":[{\"name\":"
                 "\"input\",\"datatype\":\"FP32\",\"shape\":[-1");
    if (m->spec.in_features >= 0)
        etd_buf_printf(out, ",%lld", (long long)m->spec.in_features);
    etd_buf_puts(out, "]}],\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[-1");
    if (m->spec.out_features >= 0)
        etd_buf_printf(out, ",%lld", (long long)m->spec.out_features);
    etd_buf_puts(out, "]}]}");
    return 200;
}
