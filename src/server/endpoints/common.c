/* common.c - what every endpoint shares: the handler skeleton, responses,
 * the result -> status table, body, keys, model lookup (tensors in: inputs.c). */
#include "server/endpoints/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------------------------------------------------------------- results -> statuses */

int etd_rc_status(etd_rc rc)
{
    static const int status[] = {
        [ETD_OK] = 200,
        [ETD_EINVAL] = 400,
        [ETD_ENOTFOUND] = 404,
        [ETD_EEXIST] = 409,
        [ETD_ELIMIT] = 409,
        [ETD_ESTATE] = 409,
        [ETD_ETOOBIG] = 413,
        [ETD_ENOMEM] = 500,
        [ETD_EIO] = 500,
        [ETD_ENOSPC] = 507,     /* Insufficient Storage (RFC 4918) */
        [ETD_ECANCELED] = 499,  /* nginx's "client closed request": nobody is listening */
        [ETD_EFULL] = 503,      /* with Retry-After */
        [ETD_EINTERNAL] = 500,
    };
    _Static_assert(sizeof status / sizeof status[0] == ETD_RC_COUNT, "one status per etd_rc");
    return (unsigned)rc < ETD_RC_COUNT ? status[rc] : 500;
}

/* ---------------------------------------------------------------- responses */

void etd_response_init(etd_response *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->status = 200;
    etd_buf_init(&rs->body);
}

static void drop_raw(etd_response *rs)
{
    if (rs->raw_free)
        free((void *)rs->raw);
    rs->raw = NULL;
    rs->raw_len = 0;
    rs->raw_free = false;
}

void etd_response_free(etd_response *rs)
{
    drop_raw(rs);
    etd_buf_free(&rs->body);
    if (rs->pull_done) /* a stream that never started (HEAD, a dropped connection) */
        rs->pull_done(rs->pull_arg);
    rs->pull = NULL;
    rs->pull_done = NULL;
    rs->pull_arg = NULL;
}

void etd_response_stream(etd_response *rs, const char *content_type, etd_pull_fn pull,
                         void (*done)(void *arg), void *arg)
{
    rs->content_type = content_type;
    rs->pull = pull;
    rs->pull_done = done;
    rs->pull_arg = arg;
}

static void vreply_error(etd_response *rs, int status, const char *fmt, va_list ap)
{
    char msg[ETD_ERRCAP];
    vsnprintf(msg, sizeof msg, fmt, ap);
    etd_buf_free(&rs->body);
    if (rs->pull_done) /* an error replaces a stream set up before it */
        rs->pull_done(rs->pull_arg);
    rs->pull = NULL;
    rs->pull_done = NULL;
    rs->pull_arg = NULL;
    etd_buf_puts(&rs->body, "{\"error\":");
    etd_json_str(&rs->body, msg);
    etd_buf_puts(&rs->body, "}\n");
    drop_raw(rs);
    rs->content_type = NULL;
    rs->status = status;
}

void etd_response_error(etd_response *rs, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply_error(rs, status, fmt, ap);
    va_end(ap);
}

void etd_response_header(etd_response *rs, const char *name, const char *value)
{
    if (rs->nheaders >= ETD_RESP_HEADERS)
        return;
    size_t n = strlen(value), cap = sizeof rs->headers[0].value;
    if (n >= cap)
        n = cap - 1; /* truncated to fit */
    rs->headers[rs->nheaders].name = name;
    memcpy(rs->headers[rs->nheaders].value, value, n);
    rs->headers[rs->nheaders].value[n] = '\0';
    rs->nheaders++;
}

void etd_response_finish(etd_response *rs, bool head, const void **data, size_t *len,
                         bool *must_free)
{
    if (rs->body.oom) {
        etd_buf_free(&rs->body);
        etd_response_error(rs, 500, "out of memory");
    }
    if (rs->raw) {
        *data = rs->raw;
        *len = rs->raw_len;
        *must_free = rs->raw_free;
        rs->raw = NULL;
        rs->raw_free = false;
    } else {
        if (rs->status != 204 && (rs->body.len == 0 || rs->body.data[rs->body.len - 1] != '\n'))
            etd_buf_putc(&rs->body, '\n');
        *data = etd_buf_take(&rs->body, len);
        *must_free = true;
        if (!*data) { /* etd_buf_take could not even allocate one byte */
            *len = 0;
            *must_free = false;
            *data = "";
        }
    }
    if (head || rs->status == 204)
        *len = 0;
}

/* ---------------------------------------------------------------- the skeleton */

void etd_endpoint_run(const etd_route *route, const etd_request *rq, etd_response *rs)
{
    etd_call c;
    memset(&c, 0, sizeof c);
    c.rq = rq;
    c.rs = rs;
    c.route = route;
    if (!(route->flags & ETD_R_ANY_QUERY)) {
        static const char *const none[] = {NULL};
        const char *const *ok = route->query ? route->query : none;
        for (int i = 0; i < rq->nquery; i++) {
            bool known = false;
            for (int k = 0; ok[k] && !known; k++)
                known = strcmp(ok[k], rq->query[i].name) == 0;
            if (known)
                continue;
            char list[200];
            etd_join_names(ok, list, sizeof list);
            etd_fail(&c.e, ETD_EINVAL, "%s: unknown query parameter (%s%s)", rq->query[i].name,
                     ok[0] ? "accepted: " : "this route takes none", list);
            etd_err_suggest(&c.e, rq->query[i].name, ok);
            ep_ok(&c, ETD_EINVAL);
            return;
        }
    }
    /* replicas: the cluster orders it and answers (deferred) once applied here */
    if ((route->flags & ETD_R_ORDERED) && rq->app->order &&
        rq->app->order(rq->app->order_arg, route, rq, rs))
        return;
    etd_request local;
    if (ep_body_prepare(&c, route, &local))
        route->fn(&c);
    etd_model_unref(c.m);
    etd_json_doc_free(&c.doc);
    etd_st_free(&c.st);
    etd_array_free(&c.x);
    etd_array_free(&c.y);
    if (!c.later) /* a deferred answer is finished by ep_later_done */
        ep_encode_answer(&c);
    free(c.decoded);
}

bool ep_defer(etd_call *c, ep_later *l)
{
    const etd_host *h = c->rq->host;
    if (!h->defer || !(l->d = h->defer(h->xarg)))
        return false;
    l->rq = *c->rq;
    l->rq.body = ""; /* the body (maybe inflated into c->decoded) goes with the handler */
    l->rq.body_len = 0;
    l->rq.body_shared = false;
    l->route = c->route;
    l->vary_accept = c->vary_accept;
    c->later = true;
    return true;
}

etd_call ep_later_call(ep_later *l)
{
    etd_call c;
    memset(&c, 0, sizeof c);
    c.rq = &l->rq;
    c.rs = l->d->rs;
    c.route = l->route;
    c.vary_accept = l->vary_accept;
    return c;
}

void ep_later_done(ep_later *l)
{
    etd_call c = ep_later_call(l);
    ep_encode_answer(&c);
    l->d->done(l->d);
}

/* ---------------------------------------------------------------- the steps */

void ep_error(etd_call *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply_error(c->rs, status, fmt, ap);
    va_end(ap);
}

bool ep_ok(etd_call *c, etd_rc rc)
{
    if (rc == ETD_OK)
        return true;
    ep_error(c, etd_rc_status(rc), "%s", c->e.msg);
    return false;
}

bool ep_model(etd_call *c)
{
    if (c->m)
        return true;
    return ep_ok(c, etd_registry_get(c->rq->app->reg, c->rq->name, &c->m, &c->e));
}

bool ep_json(etd_call *c, const char *const *fast_keys)
{
    etd_json_doc_free(&c->doc);
    etd_st_free(&c->st);
    if (c->kind == ETD_BODY_SAFETENSORS) {
        if (!etd_st_parse(c->rq->body, c->rq->body_len,
                          c->rq->body_shared ? (void *)(uintptr_t)c->rq->body : NULL, &c->st,
                          &c->e))
            return ep_ok(c, c->e.rc);
        /* "format": "pt" is what torch's files carry, not a field of the request */
        cJSON_DeleteItemFromObjectCaseSensitive(c->st.fields, "format");
        c->doc.root = c->st.fields; /* the doc owns the fields now */
        c->st.fields = NULL;
        return true;
    }
    return ep_ok(c, etd_json_parse(c->rq->body, c->rq->body_len, &c->rq->app->json, fast_keys,
                                   &c->doc, &c->e)
                        ? ETD_OK
                        : c->e.rc);
}

/* Is n in the NULL-terminated list (NULL: an empty list)? */
static bool listed(const char *const *list, const char *n)
{
    for (int k = 0; list && list[k]; k++)
        if (strcmp(list[k], n) == 0)
            return true;
    return false;
}

bool ep_keys(etd_call *c, const cJSON *obj, const char *const *allowed)
{
    if (!cJSON_IsObject(obj)) {
        ep_error(c, 400, "body: expected a JSON object");
        return false;
    }
    if (!etd_check_keys(obj, "", NULL, allowed, NULL, &c->e))
        return ep_ok(c, c->e.rc);
    if (obj != c->doc.root || !c->st.d)
        return true;
    for (int i = 0; i < et_tensor_dict_len(c->st.d); i++) {
        const char *n = et_tensor_dict_name(c->st.d, i);
        bool known = false;
        for (int k = 0; allowed[k] && !known; k++)
            known = strcmp(allowed[k], n) == 0 && !listed(c->tensor_not, n);
        for (int k = 0; c->tensor_keys && c->tensor_keys[k] && !known; k++)
            known = strcmp(c->tensor_keys[k], n) == 0;
        if (!known) {
            /* the names a named model's tensors take ("inputs.user") too */
            const char *names[48];
            int nn = 0;
            for (int k = 0; allowed[k] && nn < 47; k++)
                if (!listed(c->tensor_not, allowed[k]))
                    names[nn++] = allowed[k];
            for (int k = 0; c->tensor_keys && c->tensor_keys[k] && nn < 47; k++)
                names[nn++] = c->tensor_keys[k];
            names[nn] = NULL;
            char list[600];
            etd_join_names(names, list, sizeof list);
            etd_fail(&c->e, ETD_EINVAL, "%s: unknown tensor (accepted: %s)", n, list);
            etd_err_suggest(&c->e, n, names);
            return ep_ok(c, ETD_EINVAL);
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, n)) {
            ep_error(c, 400, "%s: given both as a tensor and in __metadata__", n);
            return false;
        }
    }
    return true;
}

/* A field of a safetensors body that came as a tensor where a value is wanted. */
static bool not_a_tensor(etd_call *c, const char *key, const char *what)
{
    if (!c->st.d || !etd_st_tensor(&c->st, key))
        return true;
    ep_error(c, 400, "%s: expected %s in __metadata__, got a tensor", key, what);
    return false;
}

bool ep_pos_int(etd_call *c, const char *key, int64_t def, int64_t *out)
{
    if (!not_a_tensor(c, key, "a positive integer"))
        return false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->doc.root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d < 1 || d != floor(d) || d > 9007199254740992.0) {
        ep_error(c, 400, "%s: expected a positive integer", key);
        return false;
    }
    *out = (int64_t)d;
    return true;
}

bool ep_bool(etd_call *c, const char *key, bool def, bool *out)
{
    if (!not_a_tensor(c, key, "true or false"))
        return false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->doc.root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    if (!cJSON_IsBool(v)) {
        ep_error(c, 400, "%s: expected true or false", key);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

bool ep_metrics(etd_call *c, const cJSON *obj, const char *path, etd_eval_opts *o)
{
    const char *dot = path[0] ? "." : "";
    memset(o, 0, sizeof *o);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(obj, "metrics");
    if (ms && !cJSON_IsNull(ms)) {
        if (!cJSON_IsArray(ms) || !ms->child) {
            ep_error(c, 400, "%s%smetrics: expected a non-empty list of metric names", path, dot);
            return false;
        }
        int i = 0;
        for (const cJSON *v = ms->child; v; v = v->next, i++) {
            int k = 0;
            while (cJSON_IsString(v) && etd_metric_names[k] &&
                   strcmp(etd_metric_names[k], v->valuestring) != 0)
                k++;
            if (!cJSON_IsString(v) || !etd_metric_names[k]) {
                char list[200];
                etd_join_names(etd_metric_names, list, sizeof list);
                etd_fail(&c->e, ETD_EINVAL, "%s%smetrics[%d]: unknown metric (known: %s)", path,
                         dot, i, list);
                if (cJSON_IsString(v))
                    etd_err_suggest(&c->e, v->valuestring, etd_metric_names);
                return ep_ok(c, ETD_EINVAL);
            }
            if (o->metrics & 1u << k) {
                ep_error(c, 400, "%s%smetrics[%d]: \"%s\" is listed twice", path, dot, i,
                         etd_metric_names[k]);
                return false;
            }
            o->metrics |= 1u << k;
        }
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, "k");
    if (k && !cJSON_IsNull(k)) {
        double d = k->valuedouble;
        if (!cJSON_IsNumber(k) || d < 1 || d != floor(d) || d > 1e9) {
            ep_error(c, 400, "%s%sk: expected a positive integer", path, dot);
            return false;
        }
        if (!(o->metrics & 1u << ETD_M_TOPK)) {
            ep_error(c, 400, "%s%sk: only top_k_accuracy takes k (add it to %s%smetrics)", path,
                     dot, path, dot);
            return false;
        }
        o->k = (int64_t)d;
    }
    return true;
}

void ep_write_metric_values(etd_buf *out, unsigned metrics, const double *value)
{
    /* the loss is a float32 the loss function computed; the metrics are doubles */
    etd_json_named(out, etd_metric_names, ETD_M_COUNT, metrics, value, 1u << ETD_M_LOSS);
}

const char *ep_query(const etd_call *c, const char *name)
{
    for (int i = 0; i < c->rq->nquery; i++)
        if (strcmp(c->rq->query[i].name, name) == 0)
            return c->rq->query[i].value;
    return NULL;
}

const char *ep_header(const etd_call *c, const char *name)
{
    for (int i = 0; i < c->rq->nheaders; i++)
        if (strcasecmp(c->rq->headers[i].name, name) == 0)
            return c->rq->headers[i].value;
    return NULL;
}

/* ---------------------------------------------------------------- shared writers */

void ep_member(etd_buf *out, const char *key)
{
    etd_buf_putc(out, ',');
    etd_json_str(out, key);
    etd_buf_putc(out, ':');
}

void ep_member_i64(etd_buf *out, const char *key, int64_t v)
{
    ep_member(out, key);
    etd_json_i64(out, v);
}

void ep_member_double(etd_buf *out, const char *key, double v)
{
    ep_member(out, key);
    etd_json_double(out, v);
}

void ep_member_str(etd_buf *out, const char *key, const char *s)
{
    ep_member(out, key);
    if (s)
        etd_json_str(out, s);
    else
        etd_buf_puts(out, "null");
}

void ep_member_time(etd_buf *out, const char *key, double t)
{
    ep_member(out, key);
    if (t > 0 && isfinite(t))
        ep_write_time(out, t);
    else
        etd_buf_puts(out, "null");
}

void ep_write_tensors(etd_buf *out, const etd_tensors *t)
{
    etd_buf_putc(out, '{');
    for (int i = 0; i < t->n; i++) {
        if (i)
            etd_buf_putc(out, ',');
        etd_json_str(out, t->names[i]);
        etd_buf_putc(out, ':');
        etd_json_tensor(out, t->t[i]);
    }
    etd_buf_putc(out, '}');
}

void ep_write_loss(etd_buf *out, bool has_loss, float loss)
{
    etd_buf_puts(out, ",\"loss\":");
    if (has_loss)
        etd_json_float(out, loss);
    else
        etd_buf_puts(out, "null");
}

void ep_write_skipped(etd_buf *out, bool skipped, const char *why)
{
    if (!skipped)
        return;
    etd_buf_puts(out, ",\"skipped\":true,\"reason\":");
    etd_json_str(out, why);
}

void ep_write_status(etd_buf *out, const etd_model_summary *s)
{
    etd_buf_puts(out, s->nf.diverged ? ",\"status\":\"diverged\"" : ",\"status\":\"ok\"");
}

void ep_write_time(etd_buf *out, double t)
{
    time_t sec = (time_t)floor(t);
    int ms = (int)((t - floor(t)) * 1000.0);
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char s[64];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    etd_buf_printf(out, "\"%s.%03dZ\"", s, ms);
}

void ep_write_marker(etd_buf *out, const etd_marker *mk)
{
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, mk->step);
    etd_buf_puts(out, ",\"time\":");
    ep_write_time(out, mk->time);
    etd_buf_puts(out, ",\"kind\":");
    etd_json_str(out, etd_marker_kinds[mk->kind]);
    if (mk->json[0]) {
        etd_buf_putc(out, ',');
        etd_buf_puts(out, mk->json);
    }
    etd_buf_putc(out, '}');
}

void ep_write_nonfinite(etd_buf *out, const etd_nf_summary *nf)
{
    etd_buf_puts(out, ",\"nonfinite\":{\"policy\":");
    etd_json_str(out, etd_nf_policy_names[nf->policy]);
    ep_member_i64(out, "count", nf->count);
    ep_member(out, "last");
    if (!nf->count) {
        etd_buf_puts(out, "null}");
        return;
    }
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, nf->step);
    ep_member(out, "time");
    ep_write_time(out, nf->time);
    ep_member_str(out, "source", nf->source);
    ep_member_str(out, "reason", nf->reason);
    ep_member_str(out, "action", etd_nf_action_names[nf->action]);
    etd_buf_puts(out, "}}");
}
