/*
 * safetensors_parse.c - safetensors buffers to tensor dicts (serialize.h).
 * The parser trusts nothing in the buffer: every length, offset, shape and
 * name is checked before any tensor is created.  Tensors are copied out of
 * the buffer, or -- et_safetensors_parse_shared -- alias it where their bytes
 * are aligned (external storage, et_tensor_from_external).
 */
#include "nn/nn_internal.h"
#include "nn/st_bytes.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest JSON header accepted (the reference implementation's limit). */
#define MAX_HEADER (100u * 1024u * 1024u)
#define MAX_EXACT 9007199254740992.0   /* 2^53 */

typedef struct {
    const char *name;
    int64_t shape[ET_MAX_DIMS];
    int ndim;
    et_dtype dtype;
    uint64_t begin, end;
} st_entry;

static et_status fmt_err(const char *fmt, const char *name)
{
    return et_set_error(ET_ERR_FORMAT, fmt, name);
}

/* Exact non-negative integer from a JSON number, or false. */
static bool json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= MAX_EXACT) || v != floor(v))
        return false;
    *out = (uint64_t)v;
    return true;
}

static et_status parse_entry(const cJSON *item, st_entry *e)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return fmt_err("safetensors: entry \"%s\" is not an object", name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = item->child; f; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        if (!slot)
            return fmt_err("safetensors: entry \"%s\" has an unknown field", name);
        if (*slot)
            return fmt_err("safetensors: entry \"%s\" repeats a field", name);
        *slot = f;
    }
    if (!dtype || !shape || !offs)
        return fmt_err("safetensors: entry \"%s\" lacks dtype, shape or data_offsets", name);
    if (!cJSON_IsString(dtype))
        return fmt_err("safetensors: entry \"%s\" has a non-string dtype", name);
    if (strcmp(dtype->valuestring, "F32") == 0)
        e->dtype = ET_FLOAT32;
    else if (strcmp(dtype->valuestring, "I64") == 0)
        e->dtype = ET_INT64;
    else
        return et_set_error(ET_ERR_FORMAT, "safetensors: tensor \"%s\" has dtype %s, only F32 "
                            "and I64 are supported", name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return fmt_err("safetensors: entry \"%s\" has a non-array shape", name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ET_MAX_DIMS)
        return fmt_err("safetensors: tensor \"%s\" has too many dimensions", name);
    e->ndim = 0;
    uint64_t numel = 1;
    for (const cJSON *s = shape->child; s; s = s->next) {
        uint64_t v;
        if (!json_uint(s, &v))
            return fmt_err("safetensors: tensor \"%s\" has an invalid dimension", name);
        if (v != 0 && numel > (uint64_t)(INT64_MAX / 4) / v)
            return fmt_err("safetensors: tensor \"%s\" is too large", name);
        numel *= v;
        e->shape[e->ndim++] = (int64_t)v;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, &e->begin) || !json_uint(offs->child->next, &e->end) ||
        e->end < e->begin)
        return fmt_err("safetensors: tensor \"%s\" has invalid data_offsets", name);
    if (e->end - e->begin != numel * st_elsize(e->dtype))
        return fmt_err("safetensors: tensor \"%s\": data_offsets do not match its shape", name);
    e->name = name;
    return ET_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static et_status parse_metadata(const cJSON *meta, et_tensor_dict *d)
{
    if (!cJSON_IsObject(meta))
        return et_set_error(ET_ERR_FORMAT, "safetensors: __metadata__ is not an object");
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return fmt_err("safetensors: metadata \"%s\" is not a string", m->string);
        if (et_tensor_dict_get_meta(d, m->string))
            return fmt_err("safetensors: duplicate metadata key \"%s\"", m->string);
        et_status st = et_tensor_dict_set_meta(d, m->string, m->valuestring);
        if (st != ET_OK)
            return st;
    }
    return ET_OK;
}

/* How tensors get their bytes: copied (share NULL) or aliasing the buffer. */
typedef struct st_share {
    void (*retain)(void *arg);
    et_release_fn release;
    void *arg;
} st_share;

/* A tensor over the buffer's bytes at src (aligned, little-endian host): one
 * reference of the buffer's owner taken for it; NULL + error if it cannot be
 * made (the reference given back). */
static et_tensor *alias(const st_share *sh, const uint8_t *src, const st_entry *e)
{
    if (sh->retain)
        sh->retain(sh->arg);
    et_pool_begin();
    et_tensor *t = et_tensor_from_external((void *)(uintptr_t)src, e->shape, e->ndim, e->dtype,
                                           sh->release, sh->arg);
    if (t)
        et_tensor_ref(t);
    et_pool_end();
    if (!t && sh->release)
        sh->release(sh->arg);
    return t;
}

static et_status parse_header(const cJSON *root, const uint8_t *data, uint64_t data_len,
                              const st_share *sh, et_tensor_dict *d)
{
    if (!cJSON_IsObject(root))
        return et_set_error(ET_ERR_FORMAT, "safetensors: header is not a JSON object");
    int count = 0;
    bool seen_meta = false;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta)
                return et_set_error(ET_ERR_FORMAT, "safetensors: duplicate __metadata__");
            seen_meta = true;
            et_status st = parse_metadata(it, d);
            if (st != ET_OK)
                return st;
        } else {
            count++;
        }
    }
    st_entry *es = calloc((size_t)(count > 0 ? count : 1), sizeof(*es));
    if (!es)
        return et_set_error(ET_ERR_NOMEM, "safetensors: out of memory");
    et_status st = ET_OK;
    int k = 0;
    for (const cJSON *it = root->child; it && st == ET_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0)
            continue;
        for (int j = 0; j < k && st == ET_OK; j++)
            if (strcmp(es[j].name, it->string) == 0)
                st = fmt_err("safetensors: duplicate tensor name \"%s\"", it->string);
        if (st == ET_OK)
            st = parse_entry(it, &es[k++]);
    }
    if (st == ET_OK) {
        /* The data region must be covered exactly, without gaps or overlaps. */
        st_entry *sorted = malloc((size_t)(count > 0 ? count : 1) * sizeof(*sorted));
        if (!sorted) {
            st = et_set_error(ET_ERR_NOMEM, "safetensors: out of memory");
        } else {
            memcpy(sorted, es, (size_t)count * sizeof(*sorted));
            qsort(sorted, (size_t)count, sizeof(*sorted), cmp_begin);
            uint64_t pos = 0;
            for (int j = 0; j < count && st == ET_OK; j++) {
                if (sorted[j].begin != pos)
                    st = fmt_err("safetensors: tensor \"%s\" does not start where the "
                                 "previous one ends", sorted[j].name);
                pos = sorted[j].end;
            }
            if (st == ET_OK && pos != data_len)
                st = et_set_error(ET_ERR_FORMAT, "safetensors: tensors cover %llu data bytes "
                                  "but the buffer holds %llu", (unsigned long long)pos,
                                  (unsigned long long)data_len);
            free(sorted);
        }
    }
    for (int j = 0; j < count && st == ET_OK; j++) {
        bool i64 = es[j].dtype == ET_INT64;
        size_t bytes = (size_t)(es[j].end - es[j].begin);
        const uint8_t *src = data + es[j].begin;
        /* aligned little-endian elements are copied once, straight into the
         * tensor; otherwise into a zeroed one, then byte-wise */
        bool direct = bytes > 0 && host_is_little() &&
                      (uintptr_t)src % (i64 ? _Alignof(int64_t) : _Alignof(float)) == 0;
        et_tensor *t = direct && sh ? alias(sh, src, &es[j])
                       : i64 ? nn_keep_new_int64(direct ? (const int64_t *)(const void *)src : NULL,
                                                 es[j].shape, es[j].ndim)
                             : nn_keep_new(direct ? (const float *)(const void *)src : NULL,
                                           es[j].shape, es[j].ndim);
        if (!t) {
            st = et_errcode() != ET_OK ? et_errcode() : ET_ERR_NOMEM;
            break;
        }
        if (bytes > 0 && !direct) {
            uint8_t *dst = i64 ? (uint8_t *)et_data_int64(t) : (uint8_t *)et_data(t);
            memcpy(dst, data + es[j].begin, bytes);
            if (!host_is_little()) {
                if (i64)
                    swap64(dst, bytes / 8);
                else
                    swap32(dst, bytes / 4);
            }
        }
        st = et_tensor_dict_set(d, es[j].name, t);
        et_tensor_free(t);
    }
    free(es);
    return st;
}

static et_status parse(const uint8_t *buf, size_t len, const st_share *sh, et_tensor_dict **out)
{
    if (!out)
        return et_set_error(ET_ERR_ARG, "safetensors_parse: NULL output");
    *out = NULL;
    if (!buf && len > 0)
        return et_set_error(ET_ERR_ARG, "safetensors_parse: NULL buffer");
    if (len < 8)
        return et_set_error(ET_ERR_FORMAT, "safetensors: buffer of %zu bytes is too short for "
                            "the header length", len);
    uint64_t n = get_u64le(buf);
    if (n < 2 || n > MAX_HEADER)
        return et_set_error(ET_ERR_FORMAT, "safetensors: invalid header length %llu",
                            (unsigned long long)n);
    if (n > len - 8)
        return et_set_error(ET_ERR_FORMAT, "safetensors: header length %llu exceeds the %zu "
                            "bytes that follow (truncated?)", (unsigned long long)n, len - 8);
    if (memchr(buf + 8, '\0', (size_t)n))
        return et_set_error(ET_ERR_FORMAT, "safetensors: header contains a NUL byte");
    /* JSON text may open with JSON's whitespace only; cJSON would also skip
     * any other control byte, which the format (and etd_st_sniff) does not */
    size_t lead = 0;
    while (lead < n && strchr(" \t\n\r", buf[8 + lead]))
        lead++;
    if (lead == n || buf[8 + lead] != '{')
        return et_set_error(ET_ERR_FORMAT, "safetensors: header is not a JSON object "
                            "(it must start with '{' after JSON whitespace)");
    char *text = malloc((size_t)n + 1);
    if (!text)
        return et_set_error(ET_ERR_NOMEM, "safetensors: out of memory");
    memcpy(text, buf + 8, (size_t)n);
    text[n] = '\0';
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n + 1, NULL, true);
    free(text);
    if (!root)
        return et_set_error(ET_ERR_FORMAT, "safetensors: header is not valid JSON");
    et_tensor_dict *d = et_tensor_dict_new();
    et_status st = d ? parse_header(root, buf + 8 + n, (uint64_t)(len - 8 - n), sh, d)
                     : ET_ERR_NOMEM;
    cJSON_Delete(root);
    if (st != ET_OK) {
        et_tensor_dict_free(d);
        return st;
    }
    *out = d;
    return ET_OK;
}

et_status et_safetensors_parse(const uint8_t *buf, size_t len, et_tensor_dict **out)
{
    return parse(buf, len, NULL, out);
}

et_status et_safetensors_parse_shared(uint8_t *buf, size_t len, void (*retain)(void *arg),
                                      et_release_fn release, void *arg, et_tensor_dict **out)
{
    st_share sh = {retain, release, arg};
    return parse(buf, len, &sh, out);
}
