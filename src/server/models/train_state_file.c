/*
 * train_state_file.c - the training state in the model file: the payload is
 * a safetensors file of the state's tensors (train_state.c takes them) with
 * the scalars, the histories and the job records in its "easytorch" metadata
 * (format: docs/server.md).  fields[] lists every scalar of etd_ts_scalars
 * once -- its key in the file, kind and flags; the snapshot copies the
 * struct whole, so the table is all a new scalar needs here.
 * Callers hold the model's lock and no tensor pool.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_out.h"
#include "server/models/model_internal.h"

/* *out = j as an integer: a JSON number that is integral and within +-2^53
 * (exact in a double; a file's inf, nan or 1e300 is refused, never cast) */
static bool int53_of(const cJSON *j, int64_t *out)
{
    if (!cJSON_IsNumber(j) || !(fabs(j->valuedouble) <= 9007199254740992.0) ||
        j->valuedouble != floor(j->valuedouble))
        return false;
    *out = (int64_t)j->valuedouble;
    return true;
}

/* ---------------------------------------------------------------- the scalars' table */

typedef enum { F_I64, F_F64, F_F32, F_BOOL, F_GEN, F_ENUM, F_STR } field_kind;
enum { NONNEG = 1, NULLABLE = 2, SCHED = 4, OPTIONAL = 8 };

static const struct ts_field {
    const char *key;           /* in the file's metadata */
    field_kind kind;
    size_t off;                /* in etd_ts_scalars */
    unsigned flags;            /* NONNEG; NULLABLE: a non-finite float is written as null;
                                  SCHED: only with a scheduler; OPTIONAL: a file without it
                                  (written before the field existed) reads as zero */
    const char *const *names;  /* F_ENUM: the names of the values (stored as an int) */
    size_t size;               /* F_STR: the char array's size */
} fields[] = {
    {"generator", F_GEN, offsetof(etd_ts_scalars, gen), 0, NULL, 0},
    {"step", F_I64, offsetof(etd_ts_scalars, step), NONNEG, NULL, 0},
    {"pending_batches", F_I64, offsetof(etd_ts_scalars, pending), NONNEG, NULL, 0},
    {"pending_loss_sum", F_F64, offsetof(etd_ts_scalars, pending_loss_sum), NULLABLE, NULL, 0},
    {"has_loss", F_BOOL, offsetof(etd_ts_scalars, has_loss), 0, NULL, 0},
    {"loss", F_F32, offsetof(etd_ts_scalars, last_loss), NULLABLE, NULL, 0},
    {"lr", F_F64, offsetof(etd_ts_scalars, lr), 0, NULL, 0},
    {"optim_steps", F_I64, offsetof(etd_ts_scalars, optim_steps), NONNEG, NULL, 0},
    {"sched_last_epoch", F_I64, offsetof(etd_ts_scalars, sched_epoch), SCHED, NULL, 0},
    {"sched_last_lr", F_F64, offsetof(etd_ts_scalars, sched_lr), SCHED, NULL, 0},
    /* the divergence guard (guard.c) */
    {"nonfinite", F_ENUM, offsetof(etd_ts_scalars, nonfinite), OPTIONAL, etd_nf_policy_names, 0},
    {"diverged", F_BOOL, offsetof(etd_ts_scalars, diverged), OPTIONAL, NULL, 0},
    {"nonfinite_count", F_I64, offsetof(etd_ts_scalars, nf_count), NONNEG | OPTIONAL, NULL, 0},
    {"nonfinite_step", F_I64, offsetof(etd_ts_scalars, nf_step), NONNEG | OPTIONAL, NULL, 0},
    {"nonfinite_time", F_F64, offsetof(etd_ts_scalars, nf_time), OPTIONAL, NULL, 0},
    {"nonfinite_action", F_ENUM, offsetof(etd_ts_scalars, nf_action), OPTIONAL,
     etd_nf_action_names, 0},
    {"nonfinite_source", F_STR, offsetof(etd_ts_scalars, nf_source), OPTIONAL, NULL,
     sizeof(((etd_ts_scalars *)0)->nf_source)},
    {"lr_base", F_BOOL, offsetof(etd_ts_scalars, lr_base), OPTIONAL, NULL, 0},
    {"nonfinite_reason", F_STR, offsetof(etd_ts_scalars, nf_reason), OPTIONAL, NULL,
     sizeof(((etd_ts_scalars *)0)->nf_reason)},
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

/* ---------------------------------------------------------------- the file */

static void put_u64_hex(etd_buf *b, uint64_t v)
{
    etd_buf_printf(b, "\"%016" PRIx64 "\"", v);
}

static bool get_u64_hex(const cJSON *j, uint64_t *out)
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

static void write_field(etd_buf *b, const struct ts_field *f, const etd_ts_scalars *s)
{
    const char *p = (const char *)s + f->off;
    switch (f->kind) {
    case F_I64: etd_json_i64(b, *(const int64_t *)p); break;
    case F_F64: etd_json_double(b, *(const double *)p); break; /* null when not finite */
    case F_F32: etd_json_float(b, *(const float *)p); break;
    case F_BOOL: etd_buf_puts(b, *(const bool *)p ? "true" : "false"); break;
    case F_ENUM: etd_json_str(b, f->names[*(const int *)p]); break;
    case F_STR: etd_json_str(b, p); break;
    case F_GEN:
        for (int i = 0; i < 4; i++) {
            etd_buf_putc(b, i ? ',' : '[');
            put_u64_hex(b, ((const uint64_t *)p)[i]);
        }
        etd_buf_putc(b, ']');
        break;
    }
}

static bool read_field(const cJSON *meta, const struct ts_field *f, etd_ts_scalars *s)
{
    char *p = (char *)s + f->off;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(meta, f->key);
    if (!j && (f->flags & OPTIONAL)) /* s is zeroed: the default */
        return true;
    if ((f->flags & NULLABLE) && cJSON_IsNull(j)) {
        if (f->kind == F_F64)
            *(double *)p = NAN;
        else
            *(float *)p = NAN;
        return true;
    }
    switch (f->kind) {
    case F_I64:
        return int53_of(j, (int64_t *)p) && !((f->flags & NONNEG) && *(int64_t *)p < 0);
    case F_F64:
    case F_F32:
        if (!cJSON_IsNumber(j))
            return false;
        if (f->kind == F_F64)
            *(double *)p = j->valuedouble;
        else
            *(float *)p = (float)j->valuedouble;
        return true;
    case F_BOOL:
        if (!cJSON_IsBool(j))
            return false;
        *(bool *)p = cJSON_IsTrue(j);
        return true;
    case F_ENUM:
        for (int i = 0; cJSON_IsString(j) && f->names[i]; i++)
            if (strcmp(f->names[i], j->valuestring) == 0) {
                *(int *)p = i;
                return true;
            }
        return false;
    case F_STR:
        if (!cJSON_IsString(j) || strlen(j->valuestring) >= f->size)
            return false;
        memcpy(p, j->valuestring, strlen(j->valuestring) + 1);
        return true;
    case F_GEN:
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 4)
            return false;
        for (int i = 0; i < 4; i++)
            if (!get_u64_hex(cJSON_GetArrayItem(j, i), &((uint64_t *)p)[i]))
                return false;
        return true;
    }
    return false;
}

const char *etd_ts_field_key(int i)
{
    return i >= 0 && i < NFIELDS ? fields[i].key : NULL;
}

const char *etd_ts_scalars_diff(const etd_model *m, const etd_ts_scalars *a,
                                const etd_ts_scalars *b)
{
    const char *d = NULL;
    etd_buf x, y;
    etd_buf_init(&x);
    etd_buf_init(&y);
    for (int i = 0; !d && i < NFIELDS; i++) {
        if ((fields[i].flags & SCHED) && !m->sched)
            continue;
        x.len = y.len = 0;
        write_field(&x, &fields[i], a);
        write_field(&y, &fields[i], b);
        if (x.oom || y.oom || x.len != y.len || memcmp(x.data, y.data, x.len) != 0)
            d = fields[i].key;
    }
    /* the groups' hyper-parameters and the scheduler's state (bitwise: NaN = NaN) */
    if (!d && (a->nhp != b->nhp || memcmp(a->hp, b->hp, sizeof a->hp[0] * (size_t)a->nhp)))
        d = "optim_groups";
    if (!d && (a->nsched != b->nsched ||
               memcmp(a->sched, b->sched, sizeof a->sched[0] * (size_t)a->nsched)))
        d = "sched_state";
    etd_buf_free(&x);
    etd_buf_free(&y);
    return d;
}

/* a double that may be infinite (a plateau's best): a number, or "inf" / "-inf" */
static void put_num(etd_buf *b, double v)
{
    if (isfinite(v))
        etd_json_double(b, v);
    else
        etd_buf_puts(b, isnan(v) ? "\"nan\"" : v > 0 ? "\"inf\"" : "\"-inf\"");
}

static bool get_num(const cJSON *j, double *out)
{
    if (cJSON_IsNumber(j)) {
        *out = j->valuedouble;
        return true;
    }
    if (!cJSON_IsString(j))
        return false;
    if (!strcmp(j->valuestring, "inf"))
        *out = INFINITY;
    else if (!strcmp(j->valuestring, "-inf"))
        *out = -INFINITY;
    else
        return false;
    return true;
}

/* "optim_groups": [[every hyper-parameter of group g], ...] with "optim_hparams" naming
 * them, and "sched_state": {name: value} */
static void write_mirrors(etd_buf *b, const etd_model *m, const etd_ts_scalars *s)
{
    int nk = et_optim_num_hparams(m->opt);
    etd_buf_puts(b, ",\"optim_hparams\":[");
    for (int k = 0; k < nk; k++) {
        if (k)
            etd_buf_putc(b, ',');
        etd_json_str(b, et_optim_hparam_name(m->opt, k));
    }
    etd_buf_puts(b, "],\"optim_groups\":[");
    for (int i = 0; nk > 0 && i < s->nhp; i++) {
        etd_buf_puts(b, i % nk ? "," : i ? "],[" : "[");
        put_num(b, s->hp[i]);
    }
    etd_buf_puts(b, s->nhp ? "]]" : "]");
    if (!m->sched)
        return;
    etd_buf_puts(b, ",\"sched_state\":{");
    for (int i = 0; i < s->nsched; i++) {
        if (i)
            etd_buf_putc(b, ',');
        etd_json_str(b, et_scheduler_state_name(m->sched, i));
        etd_buf_putc(b, ':');
        put_num(b, s->sched[i]);
    }
    etd_buf_putc(b, '}');
}

/* The inverse of write_mirrors for m; absent (a file from before parameter
 * groups): nothing (the "lr" field serves every group). */
static bool read_mirrors(const cJSON *meta, const etd_model *m, etd_ts_scalars *s, etd_err *e)
{
    s->nhp = s->nsched = 0;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(meta, "optim_groups");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(meta, "optim_hparams");
    int nk = et_optim_num_hparams(m->opt), ng = et_optim_num_groups(m->opt);
    if (groups) {
        bool ok = cJSON_IsArray(groups) && cJSON_GetArraySize(groups) == ng &&
                  cJSON_IsArray(names) && cJSON_GetArraySize(names) == nk;
        for (int k = 0; ok && k < nk; k++) {
            const cJSON *n = cJSON_GetArrayItem(names, k);
            ok = cJSON_IsString(n) && !strcmp(n->valuestring, et_optim_hparam_name(m->opt, k));
        }
        for (const cJSON *g = ok ? groups->child : NULL; ok && g; g = g->next) {
            ok = cJSON_IsArray(g) && cJSON_GetArraySize(g) == nk && s->nhp + nk <= ETD_TS_MAX_HP;
            for (const cJSON *v = ok ? g->child : NULL; ok && v; v = v->next)
                ok = get_num(v, &s->hp[s->nhp++]);
        }
        if (!ok)
            return etd_fail(e, ETD_EINVAL, "metadata: \"optim_groups\" does not match the "
                            "optimizer's %d parameter groups of %s", ng,
                            et_optim_type(m->opt)), false;
    }
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(meta, "sched_state");
    if (m->sched && ss) {
        int n = et_scheduler_state_count(m->sched);
        for (int i = 0; i < n && i < ETD_TS_MAX_SCHED; i++) {
            const char *name = et_scheduler_state_name(m->sched, i);
            if (!get_num(cJSON_GetObjectItemCaseSensitive(ss, name), &s->sched[i]) ||
                et_scheduler_state_check(m->sched, name, s->sched[i]) != ET_OK)
                return etd_fail(e, ETD_EINVAL, "metadata: sched_state.%s is missing or out of "
                                "range", name), false;
        }
        s->nsched = n < ETD_TS_MAX_SCHED ? n : ETD_TS_MAX_SCHED;
    }
    return true;
}

/* {"step":..,"job":..,"k":..,"loss":..,...}: the metrics measured, NaN as null */
void etd_ts_write_validation(etd_buf *b, const etd_val_entry *v, bool comma)
{
    etd_buf_puts(b, comma ? ",{\"step\":" : "{\"step\":");
    etd_json_i64(b, v->step);
    etd_buf_puts(b, ",\"job\":");
    etd_json_i64(b, v->job);
    etd_buf_puts(b, ",\"k\":");
    etd_json_i64(b, v->k);
    for (int i = 0; i < ETD_M_COUNT; i++)
        if (v->metrics & 1u << i) {
            etd_buf_printf(b, ",\"%s\":", etd_metric_names[i]);
            etd_json_double(b, v->value[i]);
        }
    if (v->stale)
        etd_buf_puts(b, ",\"stale\":true");
    if (v->nlosses > 0) {
        etd_buf_puts(b, ",\"losses\":");
        etd_json_floats(b, v->losses, v->nlosses);
    }
    etd_buf_putc(b, '}');
}

bool etd_ts_read_validation(const cJSON *j, etd_val_entry *v)
{
    memset(v, 0, sizeof *v);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "k");
    if (!int53_of(s, &v->step) || !int53_of(job, &v->job) || !int53_of(k, &v->k))
        return false;
    v->stale = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stale"));
    for (int i = 0; i < ETD_M_COUNT; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, etd_metric_names[i]);
        v->value[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        if (x)
            v->metrics |= 1u << i;
    }
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "losses");
    if (ls && (!cJSON_IsArray(ls) || cJSON_GetArraySize(ls) > 8))
        return false;
    for (const cJSON *x = ls ? ls->child : NULL; x; x = x->next) {
        if (!cJSON_IsNumber(x) && !cJSON_IsNull(x))
            return false;
        v->losses[v->nlosses++] = cJSON_IsNumber(x) ? (float)x->valuedouble : NAN;
    }
    return true;
}

/* A job record, every field of etd_job_info (times as Unix seconds, 0 = not yet). */
static void write_job(etd_buf *b, const etd_job_info *j, bool comma)
{
    etd_buf_printf(b, "%s{\"id\":%lld,\"state\":", comma ? "," : "", (long long)j->id);
    etd_json_str(b, etd_job_state_names[j->state]);
    const struct { const char *k; int64_t v; } ints[] = {
        {"steps_done", j->steps_done}, {"steps_total", j->steps_total}, {"epoch", j->epoch},
        {"epochs", j->epochs}, {"batch_size", j->batch_size}, {"rows", j->rows},
        {"skipped", j->skipped}, {"start_step", j->start_step}, {"val_rows", j->val_rows},
        {"eval_every", j->eval_every}, {"evaluations", j->evaluations},
        {"metrics", (int64_t)j->metrics}, {"k", j->k}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        etd_buf_printf(b, ",\"%s\":%lld", ints[i].k, (long long)ints[i].v);
    etd_buf_printf(b, ",\"shuffle\":%s,\"has_loss\":%s,\"validate\":%s,\"loss\":",
                   j->shuffle ? "true" : "false", j->has_loss ? "true" : "false",
                   j->validate ? "true" : "false");
    etd_json_float(b, j->has_loss ? j->loss : 0.0f);
    const struct { const char *k; double v; } dbl[] = {
        {"lr", j->lr}, {"created", j->created}, {"started", j->started},
        {"finished", j->finished}};
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++) {
        etd_buf_printf(b, ",\"%s\":", dbl[i].k);
        etd_json_double(b, dbl[i].v);
    }
    etd_buf_puts(b, ",\"error\":");
    etd_json_str(b, j->error);
    etd_buf_putc(b, '}');
}

/* The inverse of write_job; false for a malformed record (skipped, reported). */
static bool read_job(const cJSON *o, etd_job_info *j)
{
    memset(j, 0, sizeof *j);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (!cJSON_IsObject(o) || !cJSON_IsString(st) || !cJSON_IsString(err))
        return false;
    int s = 0;
    while (etd_job_state_names[s] && strcmp(etd_job_state_names[s], st->valuestring))
        s++;
    if (!etd_job_state_names[s])
        return false;
    j->state = s;
    snprintf(j->error, sizeof j->error, "%s", err->valuestring);
    struct { const char *k; int64_t *v; } ints[] = {
        {"id", &j->id}, {"steps_done", &j->steps_done}, {"steps_total", &j->steps_total},
        {"epoch", &j->epoch}, {"epochs", &j->epochs}, {"batch_size", &j->batch_size},
        {"rows", &j->rows}, {"skipped", &j->skipped}, {"start_step", &j->start_step},
        {"val_rows", &j->val_rows}, {"eval_every", &j->eval_every},
        {"evaluations", &j->evaluations}, {"k", &j->k}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, ints[i].k);
        if (!int53_of(v, ints[i].v) || *ints[i].v < 0)
            return false;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    if (!cJSON_IsNumber(mt) || mt->valuedouble < 0 || mt->valuedouble >= (1 << ETD_M_COUNT))
        return false;
    j->metrics = (unsigned)mt->valuedouble;
    struct { const char *k; bool *v; } bools[] = {
        {"shuffle", &j->shuffle}, {"has_loss", &j->has_loss}, {"validate", &j->validate}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, bools[i].k);
        if (!cJSON_IsBool(v))
            return false;
        *bools[i].v = cJSON_IsTrue(v);
    }
    struct { const char *k; double *v; } dbl[] = {
        {"lr", &j->lr}, {"created", &j->created}, {"started", &j->started},
        {"finished", &j->finished}};
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, dbl[i].k);
        *dbl[i].v = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss");
    j->loss = cJSON_IsNumber(l) ? (float)l->valuedouble : NAN;
    if (j->id < 1)
        return false;
    return true;
}

etd_rc etd_ts_encode(etd_model *m, uint8_t **buf, size_t *len, etd_err *e)
{
    etd_train_state st;
    if (etd_ts_capture(m, ETD_TS_PARAMS | ETD_TS_GRADS | ETD_TS_OPTIM | ETD_TS_SCALARS |
                              ETD_TS_BUFFERS, false, &st, e) != ETD_OK)
        return e->rc;
    etd_buf meta;
    etd_buf_init(&meta);
    etd_buf_puts(&meta, "{\"format\":1,\"name\":");
    etd_json_str(&meta, m->name);
    etd_buf_puts(&meta, ",\"spec\":");
    etd_buf_puts(&meta, m->spec_json);
    etd_buf_puts(&meta, ",\"seed\":");
    put_u64_hex(&meta, m->seed);
    if (!st.s.has_loss)
        st.s.last_loss = 0.0f; /* no loss yet is written as 0 beside has_loss false */
    for (int i = 0; i < NFIELDS; i++) {
        if ((fields[i].flags & SCHED) && !m->sched)
            continue;
        etd_buf_printf(&meta, ",\"%s\":", fields[i].key);
        write_field(&meta, &fields[i], &st.s);
    }
    write_mirrors(&meta, m, &st.s);
    etd_buf_puts(&meta, ",\"history\":[");
    pthread_mutex_lock(&m->pub_mu);
    for (size_t i = 0; i < m->h_len; i++) {
        etd_buf_puts(&meta, i ? ",[" : "[");
        etd_json_i64(&meta, m->h_step[i]);
        etd_buf_putc(&meta, ',');
        etd_json_float(&meta, m->h_loss[i]);
        etd_buf_putc(&meta, ',');
        etd_json_double(&meta, m->h_lr[i]);
        etd_buf_putc(&meta, ',');
        etd_json_double(&meta, m->h_time[i]);
        etd_buf_putc(&meta, ']');
    }
    etd_buf_puts(&meta, "],\"markers\":[");
    for (size_t i = 0; i < m->mk_len; i++) {
        etd_buf_puts(&meta, i ? ",{\"step\":" : "{\"step\":");
        etd_json_i64(&meta, m->mk[i].step);
        etd_buf_puts(&meta, ",\"time\":");
        etd_json_double(&meta, m->mk[i].time);
        etd_buf_puts(&meta, ",\"kind\":");
        etd_json_str(&meta, etd_marker_kinds[m->mk[i].kind]);
        etd_buf_puts(&meta, ",\"data\":");
        etd_json_str(&meta, m->mk[i].json);
        etd_buf_putc(&meta, '}');
    }
    etd_buf_puts(&meta, "],\"validation\":[");
    for (size_t i = 0; i < m->v_len; i++)
        etd_ts_write_validation(&meta, &m->v[i], i > 0);
    etd_buf_puts(&meta, "],\"next_job\":");
    etd_json_i64(&meta, m->next_job);
    etd_buf_puts(&meta, ",\"jobs\":[");
    for (int i = 0; i < m->njobs; i++)
        write_job(&meta, &m->jobs[i], i > 0);
    pthread_mutex_unlock(&m->pub_mu);
    etd_buf_puts(&meta, "]}");
    etd_rc rc = ETD_OK;
    if (meta.oom)
        rc = etd_fail(e, ETD_ENOMEM, "out of memory encoding the model");
    else if (et_tensor_dict_set_meta(st.tensors, "easytorch", meta.data) != ET_OK ||
             et_safetensors_dump(st.tensors, buf, len) != ET_OK)
        rc = etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINTERNAL,
                      "encoding the model: %s", et_errmsg());
    etd_buf_free(&meta);
    etd_ts_free(&st);
    return rc;
}

etd_rc etd_ts_decode(const uint8_t *buf, size_t len, et_tensor_dict **dict, cJSON **meta,
                     const char **name, const cJSON **spec, uint64_t *seed, etd_err *e)
{
    *dict = NULL;
    *meta = NULL;
    if (et_safetensors_parse(buf, len, dict) != ET_OK)
        return etd_fail(e, ETD_EINVAL, "payload: %s", et_errmsg());
    const char *ms = et_tensor_dict_get_meta(*dict, "easytorch");
    *meta = ms ? cJSON_Parse(ms) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(*meta, "name");
    *spec = cJSON_GetObjectItemCaseSensitive(*meta, "spec");
    if (!cJSON_IsString(n) || !cJSON_IsObject(*spec) ||
        !get_u64_hex(cJSON_GetObjectItemCaseSensitive(*meta, "seed"), seed))
        return etd_fail(e, ETD_EINVAL, "missing or malformed metadata");
    *name = n->valuestring;
    return ETD_OK;
}

/* A marker's members are written into answers as they are: from a file,
 * only JSON object members with no other marker field's name pass. */
static bool valid_members(const char *s)
{
    if (!*s)
        return true;
    size_t n = strlen(s);
    char *w = malloc(n + 3);
    if (!w)
        return false;
    w[0] = '{';
    memcpy(w + 1, s, n);
    w[n + 1] = '}';
    w[n + 2] = 0;
    cJSON *j = cJSON_Parse(w);
    free(w);
    bool ok = cJSON_IsObject(j) && !cJSON_GetObjectItemCaseSensitive(j, "step") &&
              !cJSON_GetObjectItemCaseSensitive(j, "time") &&
              !cJSON_GetObjectItemCaseSensitive(j, "kind");
    cJSON_Delete(j);
    return ok;
}

etd_rc etd_ts_from_file(etd_model *m, const et_tensor_dict *dict, const cJSON *meta,
                        etd_train_state *st, etd_err *e)
{
    memset(st, 0, sizeof *st);
    st->parts = ETD_TS_ALL;
    for (int i = 0; i < NFIELDS; i++) {
        if ((fields[i].flags & SCHED) && !m->sched)
            continue;
        if (!read_field(meta, &fields[i], &st->s))
            return etd_fail(e, ETD_EINVAL, "metadata: \"%s\" is missing or malformed",
                            fields[i].key);
    }
    if (!read_mirrors(meta, m, &st->s, e))
        return e->rc;
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(meta, "history");
    if (!cJSON_IsArray(hist))
        return etd_fail(e, ETD_EINVAL, "metadata: missing loss history");
    size_t n = (size_t)cJSON_GetArraySize(hist);
    st->h_step = malloc((n ? n : 1) * sizeof *st->h_step);
    st->h_loss = malloc((n ? n : 1) * sizeof *st->h_loss);
    st->h_lr = malloc((n ? n : 1) * sizeof *st->h_lr);
    st->h_time = malloc((n ? n : 1) * sizeof *st->h_time);
    st->tensors = et_tensor_dict_new();
    if (!st->h_step || !st->h_loss || !st->h_lr || !st->h_time || !st->tensors) {
        etd_ts_free(st);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    for (const cJSON *h = hist->child; h; h = h->next) {
        const cJSON *s = cJSON_GetArrayItem(h, 0), *l = cJSON_GetArrayItem(h, 1);
        const cJSON *r = cJSON_GetArrayItem(h, 2); /* absent in files before the lr series */
        const cJSON *t = cJSON_GetArrayItem(h, 3); /* and before the time series */
        if (!int53_of(s, &st->h_step[st->h_n]))
            continue;
        st->h_lr[st->h_n] = cJSON_IsNumber(r) ? r->valuedouble : NAN;
        st->h_time[st->h_n] = cJSON_IsNumber(t) ? t->valuedouble : NAN;
        st->h_loss[st->h_n++] = cJSON_IsNumber(l) ? (float)l->valuedouble : NAN;
    }
    /* the markers (none in files before them); a malformed one is skipped */
    const cJSON *mks = cJSON_GetObjectItemCaseSensitive(meta, "markers");
    int nmk = cJSON_IsArray(mks) ? cJSON_GetArraySize(mks) : 0;
    if (!(st->mk = calloc((size_t)(nmk ? nmk : 1), sizeof *st->mk))) {
        etd_ts_free(st);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    for (const cJSON *x = nmk ? mks->child : NULL; x; x = x->next) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(x, "step");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(x, "time");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(x, "kind");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(x, "data");
        int kind = 0;
        while (cJSON_IsString(k) && etd_marker_kinds[kind] &&
               strcmp(etd_marker_kinds[kind], k->valuestring))
            kind++;
        if (!cJSON_IsNumber(s) || !cJSON_IsNumber(t) || !cJSON_IsString(k) ||
            !etd_marker_kinds[kind] || !cJSON_IsString(d) || !valid_members(d->valuestring))
            continue;
        if (!(st->mk[st->mk_n].json = strdup(d->valuestring))) {
            etd_ts_free(st);
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        }
        st->mk[st->mk_n].step = (int64_t)s->valuedouble;
        st->mk[st->mk_n].time = t->valuedouble;
        st->mk[st->mk_n++].kind = (etd_marker_kind)kind;
    }
    /* the validation history (files written before it existed have none) */
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(meta, "validation");
    if (val && !cJSON_IsArray(val)) {
        etd_ts_free(st);
        return etd_fail(e, ETD_EINVAL, "metadata: malformed validation history");
    }
    size_t nv = val ? (size_t)cJSON_GetArraySize(val) : 0;
    if (!(st->v = malloc((nv ? nv : 1) * sizeof *st->v))) {
        etd_ts_free(st);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    for (const cJSON *v = val ? val->child : NULL; v; v = v->next)
        if (etd_ts_read_validation(v, &st->v[st->v_n]))
            st->v_n++;
    /* the job records (none in files written before jobs existed); a job the
     * daemon was running when it stopped was interrupted */
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(meta, "jobs");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(meta, "next_job");
    if ((jobs && !cJSON_IsArray(jobs)) || (next && !cJSON_IsNumber(next))) {
        etd_ts_free(st);
        return etd_fail(e, ETD_EINVAL, "metadata: malformed job records");
    }
    int nj = jobs ? cJSON_GetArraySize(jobs) : 0;
    st->parts |= ETD_TS_JOBS;
    st->next_job = next ? (int64_t)next->valuedouble : 1;
    if (!(st->jobs = calloc((size_t)(nj ? nj : 1), sizeof *st->jobs))) {
        etd_ts_free(st);
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    }
    for (const cJSON *j = jobs ? jobs->child : NULL; j; j = j->next) {
        etd_job_info *ji = &st->jobs[st->njobs];
        if (!read_job(j, ji)) {
            fprintf(stderr, "easytorchd: model %s: skipping a malformed job record\n", m->name);
            continue;
        }
        if (ji->state == ETD_JOB_QUEUED || ji->state == ETD_JOB_RUNNING) {
            bool ran = ji->state == ETD_JOB_RUNNING;
            ji->state = ETD_JOB_INTERRUPTED;
            snprintf(ji->error, sizeof ji->error, "interrupted: the daemon stopped %s%lld of "
                     "%lld steps", ran ? "after " : "before it started (", (long long)ji->steps_done,
                     (long long)ji->steps_total);
            if (!ran)
                snprintf(ji->error + strlen(ji->error), sizeof ji->error - strlen(ji->error), ")");
        }
        if (ji->id >= st->next_job)
            st->next_job = ji->id + 1;
        st->njobs++;
    }
    /* the tensors the model has slots for (references; the rest is ignored) */
    for (int i = 0; i < et_tensor_dict_len(dict); i++) {
        const char *k = et_tensor_dict_name(dict, i);
        if ((strncmp(k, "param.", 6) == 0 || strncmp(k, "grad.", 5) == 0 ||
             strncmp(k, "optim.", 6) == 0 || strncmp(k, "buffer.", 7) == 0) &&
            et_tensor_dict_set(st->tensors, k, et_tensor_dict_tensor(dict, i)) != ET_OK) {
            etd_ts_free(st);
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        }
    }
    return ETD_OK;
}
