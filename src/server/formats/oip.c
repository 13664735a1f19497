/* oip.c - Open Inference Protocol infer requests: JSON and the binary tensor
 * extension, datatypes and their conversion (see oip.h). */
#include "server/formats/oip.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    double lo, hi;              /* range of the values (integers: exact bounds) */
} dtypes[ETD_OIP_NDTYPES] = {
    [ETD_OIP_BOOL] = {"BOOL", 1, 0, 1},
    [ETD_OIP_UINT8] = {"UINT8", 1, 0, 255},
    [ETD_OIP_UINT16] = {"UINT16", 2, 0, 65535},
    [ETD_OIP_UINT32] = {"UINT32", 4, 0, 4294967295.0},
    [ETD_OIP_UINT64] = {"UINT64", 8, 0, 18446744073709551615.0},
    [ETD_OIP_INT8] = {"INT8", 1, -128, 127},
    [ETD_OIP_INT16] = {"INT16", 2, -32768, 32767},
    [ETD_OIP_INT32] = {"INT32", 4, -2147483648.0, 2147483647.0},
    [ETD_OIP_INT64] = {"INT64", 8, -9223372036854775808.0, 9223372036854775807.0},
    [ETD_OIP_FP16] = {"FP16", 2, -65504, 65504},
    [ETD_OIP_BF16] = {"BF16", 2, -3.3895313892515355e38, 3.3895313892515355e38},
    [ETD_OIP_FP32] = {"FP32", 4, -FLT_MAX, FLT_MAX},
    [ETD_OIP_FP64] = {"FP64", 8, -DBL_MAX, DBL_MAX},
    [ETD_OIP_BYTES] = {"BYTES", 0, 0, 0},
};

int etd_oip_dtype_find(const char *name)
{
    for (int i = 0; i < ETD_OIP_NDTYPES; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

const char *etd_oip_dtype_name(etd_oip_dtype d)
{
    return (unsigned)d < ETD_OIP_NDTYPES ? dtypes[d].name : "?";
}

size_t etd_oip_dtype_size(etd_oip_dtype d)
{
    return (unsigned)d < ETD_OIP_NDTYPES ? dtypes[d].size : 0;
}

static bool is_int(etd_oip_dtype d) { return d >= ETD_OIP_UINT8 && d <= ETD_OIP_INT64; }

/* ---------------------------------------------------------------- the request */

void etd_oip_request_free(etd_oip_request *r)
{
    etd_json_doc_free(&r->doc);
    memset(r, 0, sizeof *r);
}

/* A JSON non-negative integer up to max. */
static bool whole(const cJSON *j, double max, int64_t *out)
{
    double v = j ? j->valuedouble : -1;
    if (!cJSON_IsNumber(j) || !(v >= 0) || v != floor(v) || v > max)
        return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_input(const cJSON *in, int i, const etd_json_limits *lim, bool have_binary,
                        const unsigned char **bin, size_t *binleft, etd_oip_input *out, etd_err *e)
{
    static const char *const keys[] = {"name", "shape", "datatype", "data", "parameters", NULL};
    char path[32];
    snprintf(path, sizeof path, "inputs[%d]", i);
    if (!cJSON_IsObject(in))
        return etd_fail(e, ETD_EINVAL, "%s: expected an object with name, shape, datatype and "
                        "data", path), false;
    if (!etd_check_keys(in, path, NULL, keys, NULL, e))
        return false;
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    if (!nm)
        return etd_fail(e, ETD_EINVAL, "%s.name: required field is missing", path), false;
    if (!cJSON_IsString(nm))
        return etd_fail(e, ETD_EINVAL, "%s.name: expected a string", path), false;
    out->name = nm->valuestring;
    int d = cJSON_IsString(dt) ? etd_oip_dtype_find(dt->valuestring) : -1;
    if (!dt)
        return etd_fail(e, ETD_EINVAL, "%s.datatype: required field is missing", path), false;
    if (d < 0)
        return etd_fail(e, ETD_EINVAL, "%s.datatype: expected one of FP32, FP64, FP16, BF16, "
                        "INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64", path), false;
    if (d == ETD_OIP_BOOL || d == ETD_OIP_BYTES)
        return etd_fail(e, ETD_EINVAL, "%s.datatype: %s is not a numeric datatype (FP32, FP64, "
                        "INT32, INT64, ... are)", path, dtypes[d].name), false;
    out->dtype = (etd_oip_dtype)d;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ET_MAX_DIMS ||
        cJSON_GetArraySize(shape) < 1)
        return etd_fail(e, ETD_EINVAL, "%s.shape: expected a list of 1 to %d non-negative "
                        "integers", path, ET_MAX_DIMS), false;
    out->ndim = 0;
    out->numel = 1;
    for (const cJSON *s = shape->child; s; s = s->next) {
        int64_t v;
        if (!whole(s, (double)lim->max_elems, &v))
            return etd_fail(e, ETD_EINVAL, "%s.shape[%d]: expected a non-negative integer", path,
                            out->ndim), false;
        if (v > 0 && out->numel > lim->max_elems / v)
            return etd_fail(e, ETD_EINVAL, "%s: more than %lld elements (--max-elements)", path,
                            (long long)lim->max_elems), false;
        out->shape[out->ndim++] = v;
        out->numel *= v;
    }
    const cJSON *bsize = NULL;
    if (par) {
        if (!cJSON_IsObject(par))
            return etd_fail(e, ETD_EINVAL, "%s.parameters: expected an object", path), false;
        bsize = cJSON_GetObjectItemCaseSensitive(par, "binary_data_size");
    }
    if (bsize) {
        int64_t n;
        if (!whole(bsize, 9007199254740992.0, &n))
            return etd_fail(e, ETD_EINVAL, "%s.parameters.binary_data_size: expected a "
                            "non-negative integer", path), false;
        if (!have_binary)
            return etd_fail(e, ETD_EINVAL, "%s.parameters.binary_data_size: binary data needs "
                            "the header Inference-Header-Content-Length (the length of the JSON "
                            "part of the body)", path), false;
        if (data)
            return etd_fail(e, ETD_EINVAL, "%s: give either data or "
                            "parameters.binary_data_size, not both", path), false;
        uint64_t need = (uint64_t)out->numel * dtypes[d].size;
        if ((uint64_t)n != need)
            return etd_fail(e, ETD_EINVAL, "%s.parameters.binary_data_size: %lld bytes, but shape "
                            "and %s need %llu", path, (long long)n, dtypes[d].name,
                            (unsigned long long)need), false;
        if ((uint64_t)n > *binleft)
            return etd_fail(e, ETD_EINVAL, "%s.parameters.binary_data_size: %lld bytes, but only "
                            "%zu bytes of binary data are left in the body", path, (long long)n,
                            *binleft), false;
        out->bytes = *bin;
        out->nbytes = (size_t)n;
        *bin += n;
        *binleft -= (size_t)n;
        out->data = NULL;
        return true;
    }
    if (!data)
        return etd_fail(e, ETD_EINVAL, "%s.data: required field is missing (or give "
                        "parameters.binary_data_size)", path), false;
    out->data = data;
    return true;
}

bool etd_oip_parse(const char *body, size_t len, const char *header_len,
                   const etd_json_limits *lim, etd_oip_request *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    size_t jlen = len;
    char *jcopy = NULL;
    const char *json = body;
    if (header_len) {
        char *end;
        unsigned long long n = strtoull(header_len, &end, 10);
        if (!header_len[0] || *end || header_len[0] == '-' || header_len[0] == '+' ||
            header_len[0] == ' ')
            return etd_fail(e, ETD_EINVAL, "Inference-Header-Content-Length: expected a byte "
                            "count, got \"%.40s\"", header_len), false;
        if (n > len)
            return etd_fail(e, ETD_EINVAL, "Inference-Header-Content-Length: %llu is more than "
                            "the %zu bytes of the body", n, len), false;
        jlen = (size_t)n;
        if (!(jcopy = malloc(jlen + 1)))
            return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
        memcpy(jcopy, body, jlen);
        jcopy[jlen] = '\0';
        json = jcopy;
    }
    bool ok = etd_json_parse(json, jlen, lim, NULL, &r->doc, e);
    free(jcopy); /* the tree holds copies of its strings */
    if (!ok)
        return false;
    static const char *const keys[] = {"id", "inputs", "outputs", "parameters", NULL};
    const cJSON *root = r->doc.root;
    if (!cJSON_IsObject(root))
        return etd_fail(e, ETD_EINVAL, "body: expected a JSON object with \"inputs\""), false;
    if (!etd_check_keys(root, "", NULL, keys, NULL, e))
        return false;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id && !cJSON_IsString(id))
        return etd_fail(e, ETD_EINVAL, "id: expected a string"), false;
    r->id = id ? id->valuestring : NULL;
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (par) {
        if (!cJSON_IsObject(par))
            return etd_fail(e, ETD_EINVAL, "parameters: expected an object"), false;
        const cJSON *bo = cJSON_GetObjectItemCaseSensitive(par, "binary_data_output");
        if (bo && !cJSON_IsBool(bo))
            return etd_fail(e, ETD_EINVAL, "parameters.binary_data_output: expected true or "
                            "false"), false;
        r->binary_output = bo && cJSON_IsTrue(bo);
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!ins)
        return etd_fail(e, ETD_EINVAL, "inputs: required field is missing"), false;
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) < 1)
        return etd_fail(e, ETD_EINVAL, "inputs: expected a list of input tensors"), false;
    if (cJSON_GetArraySize(ins) > ETD_OIP_MAX_IO)
        return etd_fail(e, ETD_EINVAL, "inputs: more than %d tensors", ETD_OIP_MAX_IO), false;
    const unsigned char *bin = (const unsigned char *)body + jlen;
    size_t binleft = len - jlen;
    for (const cJSON *in = ins->child; in; in = in->next) {
        int i = r->ninputs;
        if (!parse_input(in, i, lim, header_len != NULL, &bin, &binleft, &r->inputs[i], e))
            return false;
        for (int k = 0; k < i; k++)
            if (strcmp(r->inputs[k].name, r->inputs[i].name) == 0)
                return etd_fail(e, ETD_EINVAL, "inputs[%d].name: \"%s\" is given twice", i,
                                r->inputs[i].name), false;
        r->ninputs++;
    }
    if (binleft)
        return etd_fail(e, ETD_EINVAL, "body: %zu bytes of binary data after the JSON header "
                        "that no input's binary_data_size accounts for", binleft), false;
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs) {
        if (!cJSON_IsArray(outs))
            return etd_fail(e, ETD_EINVAL, "outputs: expected a list of requested outputs"), false;
        if (cJSON_GetArraySize(outs) > ETD_OIP_MAX_IO)
            return etd_fail(e, ETD_EINVAL, "outputs: more than %d", ETD_OIP_MAX_IO), false;
        static const char *const okeys[] = {"name", "parameters", NULL};
        for (const cJSON *o = outs->child; o; o = o->next) {
            int i = r->noutputs;
            char path[32];
            snprintf(path, sizeof path, "outputs[%d]", i);
            if (!cJSON_IsObject(o))
                return etd_fail(e, ETD_EINVAL, "%s: expected an object with a name", path), false;
            if (!etd_check_keys(o, path, NULL, okeys, NULL, e))
                return false;
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
            if (!cJSON_IsString(nm))
                return etd_fail(e, ETD_EINVAL, "%s.name: %s", path,
                                nm ? "expected a string" : "required field is missing"), false;
            for (int k = 0; k < i; k++)
                if (strcmp(r->outputs[k].name, nm->valuestring) == 0)
                    return etd_fail(e, ETD_EINVAL, "%s.name: \"%s\" is requested twice", path,
                                    nm->valuestring), false;
            r->outputs[i].name = nm->valuestring;
            r->outputs[i].binary = r->binary_output;
            const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "parameters");
            if (op) {
                if (!cJSON_IsObject(op))
                    return etd_fail(e, ETD_EINVAL, "%s.parameters: expected an object", path), false;
                const cJSON *bd = cJSON_GetObjectItemCaseSensitive(op, "binary_data");
                if (bd && !cJSON_IsBool(bd))
                    return etd_fail(e, ETD_EINVAL, "%s.parameters.binary_data: expected true or "
                                    "false", path), false;
                if (bd)
                    r->outputs[i].binary = cJSON_IsTrue(bd);
                if (cJSON_GetObjectItemCaseSensitive(op, "classification"))
                    return etd_fail(e, ETD_EINVAL, "%s.parameters.classification: the "
                                    "classification extension is not supported (take the "
                                    "outputs and their top k)", path), false;
            }
            r->noutputs++;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- conversion */

static bool host_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint64_t le_uint(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (ex == 0x1f)
        bits = s | 0x7f800000u | (m << 13); /* inf, NaN */
    else if (ex)
        bits = s | ((ex + 112) << 23) | (m << 13);
    else if (!m)
        bits = s;
    else { /* subnormal: normalise */
        int k = -1;
        do {
            m <<= 1;
            k++;
        } while (!(m & 0x400));
        bits = s | ((uint32_t)(112 - k) << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double bin_value(etd_oip_dtype d, const unsigned char *p)
{
    uint64_t u = le_uint(p, dtypes[d].size);
    switch (d) {
    case ETD_OIP_UINT8: case ETD_OIP_UINT16: case ETD_OIP_UINT32: return (double)u;
    case ETD_OIP_UINT64: return (double)u;
    case ETD_OIP_INT8: return (double)(int8_t)u;
    case ETD_OIP_INT16: return (double)(int16_t)u;
    case ETD_OIP_INT32: return (double)(int32_t)u;
    case ETD_OIP_INT64: return (double)(int64_t)u;
    case ETD_OIP_FP16: return half_to_float((uint16_t)u);
    case ETD_OIP_BF16: {
        uint32_t bits = (uint32_t)u << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    case ETD_OIP_FP32: {
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    case ETD_OIP_FP64: {
        double v;
        memcpy(&v, &u, 8);
        return v;
    }
    default: return 0;
    }
}

/* data into v[0..n): a flat list of n numbers, or lists nested exactly as
 * the shape (ragged or mis-shaped nesting is refused, naming the place). */
static bool flatten(const cJSON *j, const etd_oip_input *in, double *v, const char *what,
                    etd_err *e)
{
    int64_t n = in->numel, k = 0;
    if (!cJSON_IsArray(j))
        return etd_fail(e, ETD_EINVAL, "%s.data: expected a list of numbers", what), false;
    bool nested = j->child && cJSON_IsArray(j->child);
    if (!nested) {
        for (const cJSON *c = j->child; c; c = c->next, k++) {
            if (!cJSON_IsNumber(c))
                return etd_fail(e, ETD_EINVAL, "%s.data[%lld]: expected a number", what,
                                (long long)k), false;
            if (k < n)
                v[k] = c->valuedouble;
        }
        if (k != n)
            return etd_fail(e, ETD_EINVAL, "%s.data: shape needs %lld values, got %lld", what,
                            (long long)n, (long long)k), false;
        return true;
    }
    /* nested: walk it as the shape says (counts bound k by n) */
    const cJSON *next[ET_MAX_DIMS];
    int64_t cnt[ET_MAX_DIMS];
    int nd = in->ndim, d = 0;
    next[0] = j->child;
    cnt[0] = 0;
    while (d >= 0) {
        const cJSON *c = next[d];
        if (!c) {
            if (cnt[d] != in->shape[d])
                return etd_fail(e, ETD_EINVAL, "%s.data: a list at depth %d has %lld elements, "
                                "the shape says %lld", what, d, (long long)cnt[d],
                                (long long)in->shape[d]), false;
            d--;
            continue;
        }
        next[d] = c->next;
        if (++cnt[d] > in->shape[d])
            return etd_fail(e, ETD_EINVAL, "%s.data: a list at depth %d has more than %lld "
                            "elements", what, d, (long long)in->shape[d]), false;
        if (d + 1 < nd) {
            if (!cJSON_IsArray(c))
                return etd_fail(e, ETD_EINVAL, "%s.data: expected lists nested %d deep as the "
                                "shape, found a value at depth %d", what, nd, d + 1), false;
            d++;
            next[d] = c->child;
            cnt[d] = 0;
        } else {
            if (!cJSON_IsNumber(c))
                return etd_fail(e, ETD_EINVAL, "%s.data: expected a number at depth %d%s", what,
                                d + 1, cJSON_IsArray(c) ? " (nested deeper than the shape)" : ""),
                       false;
            v[k++] = c->valuedouble;
        }
    }
    return true;
}

bool etd_oip_input_array(const etd_oip_input *in, et_dtype to, const char *what, etd_array *a,
                         etd_err *e)
{
    memset(a, 0, sizeof *a);
    int64_t n = in->numel;
    a->dtype = to;
    a->ndim = in->ndim;
    memcpy(a->shape, in->shape, sizeof a->shape);
    a->numel = n;
    size_t cnt = (size_t)(n ? n : 1);
    if (to == ET_INT64)
        a->idata = malloc(cnt * sizeof(int64_t));
    else
        a->data = malloc(cnt * sizeof(float));
    if (!a->idata && !a->data)
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    const char *dn = dtypes[in->dtype].name;
    /* the common case without a conversion */
    if (in->bytes && in->dtype == ETD_OIP_FP32 && to == ET_FLOAT32 && host_le()) {
        memcpy(a->data, in->bytes, (size_t)n * 4);
        return true;
    }
    if (in->bytes && in->dtype == ETD_OIP_INT64 && to == ET_INT64 && host_le()) {
        memcpy(a->idata, in->bytes, (size_t)n * 8);
        return true;
    }
    double *vals = NULL;
    if (in->data) {
        if (!(vals = malloc(cnt * sizeof(double)))) {
            etd_array_free(a);
            return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
        }
        if (!flatten(in->data, in, vals, what, e)) {
            free(vals);
            etd_array_free(a);
            return false;
        }
    }
    size_t es = dtypes[in->dtype].size;
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (vals) {
            v = vals[i];
            /* JSON numbers within the declared datatype (whole for integer types) */
            if (is_int(in->dtype) ? (v != floor(v) || v < dtypes[in->dtype].lo ||
                                     v > dtypes[in->dtype].hi)
                                  : (!isfinite(v) || fabs(v) > dtypes[in->dtype].hi)) {
                etd_fail(e, ETD_EINVAL, "%s.data[%lld]: %.17g is not a%s %s value", what,
                         (long long)i, v, is_int(in->dtype) ? "n" : "", dn);
                goto fail;
            }
        } else {
            v = bin_value(in->dtype, in->bytes + (size_t)i * es);
        }
        if (to == ET_INT64) {
            if (in->dtype == ETD_OIP_INT64 && !vals) { /* exact, also past 2^53 */
                a->idata[i] = (int64_t)le_uint(in->bytes + (size_t)i * 8, 8);
                continue;
            }
            if (in->dtype == ETD_OIP_UINT64 && !vals) {
                uint64_t u = le_uint(in->bytes + (size_t)i * 8, 8);
                if (u > (uint64_t)INT64_MAX) {
                    etd_fail(e, ETD_EINVAL, "%s: element %lld is %llu, beyond int64", what,
                             (long long)i, (unsigned long long)u);
                    goto fail;
                }
                a->idata[i] = (int64_t)u;
                continue;
            }
            if (!isfinite(v) || v != floor(v) || fabs(v) >= 9223372036854775808.0) {
                etd_fail(e, ETD_EINVAL, "%s: element %lld is %g, not an integer index (the model "
                         "takes int64 indices)", what, (long long)i, v);
                goto fail;
            }
            a->idata[i] = (int64_t)v;
        } else {
            if (isfinite(v) && fabs(v) > FLT_MAX) {
                etd_fail(e, ETD_EINVAL, "%s: element %lld is %.17g, which does not fit in "
                         "float32", what, (long long)i, v);
                goto fail;
            }
            a->data[i] = (float)v;
        }
    }
    free(vals);
    return true;
fail:
    free(vals);
    etd_array_free(a);
    return false;
}

void etd_oip_put_fp32(void *dst, const float *v, int64_t n)
{
    unsigned char *p = dst;
    if (host_le()) {
        memcpy(p, v, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            p[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
}
