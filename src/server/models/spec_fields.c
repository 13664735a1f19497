/* spec_fields.c - the field readers (etd_field_*: one JSON field of a spec
 * object, checked, every message naming "<path>.<key>") and the feature
 * flow between layers (etd_flow_*), declared in spec.h. */
#include "server/models/spec.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"

/* ---------------------------------------------------------------- field readers */

bool etd_field_fail(const etd_obj *o, const char *key, const char *fmt, ...)
{
    char msg[ETD_ERRCAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key) /* a top-level field has no path: "nonfinite: ..." */
        etd_fail(o->e, ETD_EINVAL, "%s%s%s: %s", o->path, o->path[0] ? "." : "", key, msg);
    else
        etd_fail(o->e, ETD_EINVAL, "%s: %s", o->path, msg);
    return false;
}

static const cJSON *field(const etd_obj *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o->o, key);
}

bool etd_field_int(const etd_obj *o, const char *key, bool required, int64_t def, int64_t min,
                   int64_t max, int64_t *out)
{
    const cJSON *v = field(o, key);
    if (!v) {
        if (required)
            return etd_field_fail(o, key, "required field is missing");
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > ETD_SPEC_MAX_EXACT || d < (double)min ||
        d > (double)max) {
        if (max == INT64_MAX && min == 1)
            return etd_field_fail(o, key, "expected a positive integer");
        if (max == INT64_MAX && min == 0)
            return etd_field_fail(o, key, "expected a non-negative integer");
        if (max == INT64_MAX)
            return etd_field_fail(o, key, "expected an integer >= %lld", (long long)min);
        return etd_field_fail(o, key, "expected an integer in [%lld, %lld]", (long long)min,
                              (long long)max);
    }
    *out = (int64_t)d;
    return true;
}

bool etd_field_num(const etd_obj *o, const char *key, bool required, double def, double lo,
                   double hi, double *out)
{
    const cJSON *v = field(o, key);
    if (!v) {
        if (required)
            return etd_field_fail(o, key, "required field is missing");
        *out = def;
        return true;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d < lo || d > hi) {
        if (isinf(lo) && isinf(hi))
            return etd_field_fail(o, key, "expected a number");
        if (isinf(hi))
            return etd_field_fail(o, key, "expected a number >= %g", lo);
        return etd_field_fail(o, key, "expected a number in [%g, %g]", lo, hi);
    }
    *out = d;
    return true;
}

bool etd_field_bool(const etd_obj *o, const char *key, bool def, bool *out)
{
    const cJSON *v = field(o, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!cJSON_IsBool(v))
        return etd_field_fail(o, key, "expected true or false");
    *out = cJSON_IsTrue(v);
    return true;
}

bool etd_field_choice(const etd_obj *o, const char *key, const char *const *choices, int def,
                      int *out)
{
    const cJSON *v = field(o, key);
    if (!v) {
        *out = def;
        return true;
    }
    for (int i = 0; cJSON_IsString(v) && choices[i]; i++)
        if (strcmp(v->valuestring, choices[i]) == 0) {
            *out = i;
            return true;
        }
    char list[512] = "";
    for (int i = 0, n = 0; choices[i] && n < (int)sizeof list; i++)
        n += snprintf(list + n, sizeof list - (size_t)n, "%s\"%s\"",
                      i == 0 ? "" : choices[i + 1] ? ", " : " or ", choices[i]);
    etd_field_fail(o, key, "expected %s", list);
    if (cJSON_IsString(v))
        etd_err_suggest(o->e, v->valuestring, choices);
    return false;
}

static bool tuple_fail(const etd_obj *o, const char *key, int n, int64_t min, int64_t max)
{
    char range[96];
    if (max == INT64_MAX)
        snprintf(range, sizeof range, ">= %lld", (long long)min);
    else
        snprintf(range, sizeof range, "in [%lld, %lld]", (long long)min, (long long)max);
    return etd_field_fail(o, key, "expected an integer %s or a list of %d of them", range, n);
}

bool etd_field_int_tuple(const etd_obj *o, const char *key, bool required, int n, int64_t def,
                         int64_t min, int64_t max, int64_t *out)
{
    const cJSON *v = field(o, key);
    if (!v) {
        if (required)
            return etd_field_fail(o, key, "required field is missing");
        for (int i = 0; i < n; i++)
            out[i] = def;
        return true;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) != n)
        return etd_field_fail(o, key, "expected %d integers, got a list of %d", n,
                              cJSON_GetArraySize(v));
    const cJSON *x = cJSON_IsArray(v) ? v->child : v;
    for (int i = 0; i < n; i++) {
        double d = x ? x->valuedouble : 0;
        if (!x || !cJSON_IsNumber(x) || d != floor(d) || fabs(d) > ETD_SPEC_MAX_EXACT || d < (double)min ||
            d > (double)max)
            return tuple_fail(o, key, n, min, max);
        out[i] = (int64_t)d;
        if (cJSON_IsArray(v))
            x = x->next;
    }
    return true;
}

bool etd_field_num_or_null(const etd_obj *o, const char *key, double lo, double hi, double *out,
                           bool *is_null)
{
    const cJSON *v = field(o, key);
    *is_null = !v || cJSON_IsNull(v);
    return *is_null || etd_field_num(o, key, true, 0, lo, hi, out);
}

bool etd_field_int_or_null(const etd_obj *o, const char *key, int64_t min, int64_t max,
                           int64_t *out, bool *is_null)
{
    const cJSON *v = field(o, key);
    *is_null = !v || cJSON_IsNull(v);
    return *is_null || etd_field_int(o, key, true, 0, min, max, out);
}

bool etd_field_ints(const etd_obj *o, const char *key, bool required, int max_n, int64_t min,
                    int64_t **out, int *n)
{
    const cJSON *v = field(o, key);
    *out = NULL;
    *n = 0;
    if (!v)
        return required ? etd_field_fail(o, key, "required field is missing") : true;
    const char *what = min == 0 ? "non-negative integers" : min == 1 ? "positive integers"
                                                                     : "integers";
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > max_n)
        return etd_field_fail(o, key, "expected a list of %s", what);
    int k = cJSON_GetArraySize(v);
    int64_t *a = calloc((size_t)(k ? k : 1), sizeof *a);
    if (!a)
        return etd_fail(o->e, ETD_ENOMEM, "%s.%s: out of memory", o->path, key), false;
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        double d = x->valuedouble;
        if (!cJSON_IsNumber(x) || d < (double)min || d != floor(d) || d > ETD_SPEC_MAX_EXACT) {
            free(a);
            char k2[96];
            snprintf(k2, sizeof k2, "%s[%d]", key, i);
            return etd_field_fail(o, k2, "expected a %s", min == 0 ? "non-negative integer"
                                                        : min == 1 ? "positive integer"
                                                                   : "integer");
        }
        a[i] = (int64_t)d;
    }
    *out = a;
    *n = k;
    return true;
}

/* ---------------------------------------------------------------- feature flow */

bool etd_flow_need(etd_flow *f, const etd_obj *o, const char *key, int64_t n)
{
    if (f->features >= 0 && f->features != n)
        return etd_field_fail(o, key, "expected %lld (%s), got %lld", (long long)f->features,
                              f->features_by, (long long)n);
    if (f->features < 0 && !f->reshaped && f->in_features < 0) {
        f->in_features = n;
        snprintf(f->in_field, sizeof f->in_field, "%s.%s", o->path, key);
    }
    return true;
}

void etd_flow_give(etd_flow *f, int64_t n, const char *by)
{
    f->features = n;
    f->features_by = by;
}

void etd_flow_reshape(etd_flow *f)
{
    f->features = -1;
    f->reshaped = true;
}

bool etd_flow_params(etd_flow *f, const etd_obj *o, int64_t n)
{
    if (n < 0 || n > f->max_params - f->params)
        return etd_field_fail(o, NULL, "the model would have more than %lld parameters",
                              (long long)f->max_params);
    f->params += n;
    return true;
}
