/* tensor_st.c - tensors in safetensors bodies (see tensor_st.h).  The parsing
 * is the library's (et_safetensors_parse, or _shared: tensors aliasing a
 * shared request body); this adds the metadata-as-fields rule and the writer
 * of answers. */
#include "server/formats/tensor_st.h"
#include "server/formats/shared_buf.h"

#include <stdlib.h>
#include <string.h>

bool etd_st_sniff(const void *body, size_t len)
{
    const unsigned char *p = body;
    if (len < 10 || p[7] != 0)
        return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    if (n > len - 8)
        return false;
    for (size_t i = 8; i < 8 + n; i++) { /* JSON may start with whitespace */
        if (p[i] == '{')
            return true;
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return false;
    }
    return false;
}

void etd_st_free(etd_st_body *b)
{
    et_tensor_dict_free(b->d);
    cJSON_Delete(b->fields);
    b->d = NULL;
    b->fields = NULL;
}

/* A metadata value as a field: its JSON text when it is one JSON value,
 * else the string itself. */
static cJSON *field_value(const char *v)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(v, &end, 1);
    if (j)
        return j;
    return cJSON_CreateString(v);
}

bool etd_st_parse(const void *body, size_t len, void *shared, etd_st_body *b, etd_err *e)
{
    memset(b, 0, sizeof *b);
    et_status st = shared ? et_safetensors_parse_shared((uint8_t *)(uintptr_t)body, len,
                                                        etd_sbuf_ref, etd_sbuf_unref, shared,
                                                        &b->d)
                          : et_safetensors_parse((const uint8_t *)body, len, &b->d);
    if (st != ET_OK) {
        /* nn's messages say what is wrong ("safetensors: tensor \"x\" has
         * dtype F64, only F32 and I64 are supported", "... header length
         * exceeds the file"): passed on as they are, as PUT parameters does */
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "body: %s",
                 et_errmsg());
        return false;
    }
    if (!(b->fields = cJSON_CreateObject())) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        return false;
    }
    for (int i = 0; i < et_tensor_dict_meta_len(b->d); i++) {
        const char *k = et_tensor_dict_meta_key(b->d, i);
        cJSON *v = field_value(et_tensor_dict_get_meta(b->d, k));
        if (!v || !cJSON_AddItemToObject(b->fields, k, v)) {
            cJSON_Delete(v);
            etd_fail(e, ETD_ENOMEM, "out of memory");
            return false;
        }
    }
    return true;
}

const et_tensor *etd_st_tensor(const etd_st_body *b, const char *name)
{
    return et_tensor_dict_get(b->d, name);
}

etd_rc etd_st_encode(const char *const *names, et_tensor *const *t, int n,
                     const char *const *meta, void **out, size_t *len, etd_err *e)
{
    *out = NULL;
    *len = 0;
    et_tensor_dict *d = et_tensor_dict_new();
    bool ok = d != NULL;
    for (int i = 0; ok && meta && meta[i]; i += 2)
        ok = et_tensor_dict_set_meta(d, meta[i], meta[i + 1]) == ET_OK;
    for (int i = 0; ok && i < n; i++)
        ok = et_tensor_dict_set(d, names[i], t[i]) == ET_OK;
    uint8_t *buf = NULL;
    ok = ok && et_safetensors_dump(d, &buf, len) == ET_OK;
    et_tensor_dict_free(d);
    if (!ok)
        return etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINTERNAL,
                        "encoding the answer as safetensors: %s", et_errmsg());
    *out = buf;
    return ETD_OK;
}
