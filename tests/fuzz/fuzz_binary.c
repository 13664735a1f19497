/*
 * fuzz_binary.c - libFuzzer harness: the binary request bodies of easytorchd
 * (src/server/formats): safetensors bodies (tensor_st.c over the library's
 * et_safetensors_parse) and Open Inference Protocol requests (oip.c: JSON and
 * the binary tensor extension, datatype conversion).
 *
 * The first byte picks what the rest is:
 *   0  a safetensors body: parsed, its metadata read as fields, "inputs" and
 *      "targets" taken as arrays (oracle: an array has the tensor's shape,
 *      numel and dtype); parsed again from a shared buffer at a shifted
 *      address, its tensors aliasing the bytes (oracle: the same tensors);
 *   1  an OIP request with the binary extension: two bytes (little-endian)
 *      give Inference-Header-Content-Length, the rest is the body (oracle:
 *      every input's bytes lie inside the body after the header and add up
 *      to it; each converts to float32 and to int64 or fails cleanly);
 *   2  an OIP JSON request (no header), converted the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/oip.h"
#include "server/formats/shared_buf.h"
#include "server/formats/tensor_st.h"

static const etd_json_limits lim = {.max_depth = 32, .max_values = 100000, .max_elems = 100000};

static void check_array(const etd_array *a, int64_t numel, const int64_t *shape, int nd,
                        et_dtype dt, const char *what)
{
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        n *= a->shape[i];
    if (a->numel != numel || a->ndim != nd || n != numel || a->dtype != dt ||
        memcmp(a->shape, shape, (size_t)nd * sizeof(int64_t)) != 0 ||
        (dt == ET_INT64 ? !a->idata : !a->data)) {
        fprintf(stderr, "fuzz_binary: %s: array does not match its tensor\n", what);
        abort();
    }
}

/* The same body parsed with its tensors aliasing a shared buffer (as the
 * daemon parses request bodies): the same outcome and the same tensors, and
 * a tensor kept past the dict and the buffer's own reference still reads its
 * bytes (ASan: no use after free; LeakSanitizer: every reference returned).
 * The copy starts `shift` bytes into the buffer, so aligned and unaligned
 * tensors both occur. */
static void fuzz_st_shared(const uint8_t *data, size_t size, bool ok, const etd_st_body *plain)
{
    size_t shift = size ? data[size - 1] % 8 : 0;
    char *buf = etd_sbuf_new(size + shift + 1);
    if (!buf)
        return;
    memcpy(buf + shift, data, size);
    etd_st_body b;
    etd_err e;
    if (etd_st_parse(buf + shift, size, buf, &b, &e) != ok) {
        fprintf(stderr, "fuzz_binary: the shared parse and the copying parse disagree\n");
        abort();
    }
    et_tensor *kept = NULL;
    for (int i = 0; ok && i < et_tensor_dict_len(b.d); i++) {
        et_tensor *t = et_tensor_dict_tensor(b.d, i);
        const et_tensor *u = etd_st_tensor(plain, et_tensor_dict_name(b.d, i));
        size_t bytes = (size_t)et_numel(t) * (et_tensor_dtype(t) == ET_INT64 ? 8 : 4);
        const void *pt = et_tensor_dtype(t) == ET_INT64 ? (const void *)et_data_int64(t)
                                                        : (const void *)et_data(t);
        const void *pu = !u ? NULL
                         : et_tensor_dtype(u) == ET_INT64 ? (const void *)et_data_int64_const(u)
                                                          : (const void *)et_data_const(u);
        if (!u || !et_same_shape(t, u) || et_tensor_dtype(t) != et_tensor_dtype(u) ||
            (bytes && memcmp(pt, pu, bytes) != 0)) {
            fprintf(stderr, "fuzz_binary: a shared tensor differs from its copy\n");
            abort();
        }
        if (!kept && bytes)
            kept = et_tensor_ref(t);
    }
    etd_st_free(&b);
    etd_sbuf_unref(buf);
    if (kept) {
        volatile unsigned char sink = 0;
        const unsigned char *p = et_tensor_dtype(kept) == ET_INT64
                                     ? (const unsigned char *)et_data_int64(kept)
                                     : (const unsigned char *)et_data(kept);
        sink ^= p[0];
        (void)sink;
        et_tensor_free(kept);
    }
}

static void fuzz_st(const uint8_t *data, size_t size)
{
    etd_st_body b;
    etd_err e;
    bool sniffed = etd_st_sniff(data, size);
    bool ok = etd_st_parse(data, size, NULL, &b, &e);
    fuzz_st_shared(data, size, ok, &b);
    if (ok) {
        if (!sniffed && size >= 10) {
            fprintf(stderr, "fuzz_binary: a safetensors body the sniffer does not recognise\n");
            abort();
        }
        if (!cJSON_IsObject(b.fields))
            abort();
        static const char *const names[] = {"inputs", "targets"};
        for (int i = 0; i < 2; i++) {
            const et_tensor *t = etd_st_tensor(&b, names[i]);
            if (!t)
                continue;
            etd_array a;
            char err[ETD_ERRCAP];
            if (etd_array_from_tensor(t, names[i], lim.max_elems, &a, err, sizeof err)) {
                check_array(&a, et_numel(t), et_shape(t), et_ndim(t), et_tensor_dtype(t), names[i]);
                etd_array_free(&a);
            } else if (et_numel(t) <= lim.max_elems) {
                fprintf(stderr, "fuzz_binary: a tensor of %lld elements not taken: %s\n",
                        (long long)et_numel(t), err);
                abort();
            }
        }
    }
    etd_st_free(&b);
}

static void fuzz_oip(const char *body, size_t len, const char *hl)
{
    etd_oip_request r;
    etd_err e;
    if (etd_oip_parse(body, len, hl, &lim, &r, &e)) {
        size_t hlen = hl ? (size_t)strtoull(hl, NULL, 10) : len, used = 0;
        for (int i = 0; i < r.ninputs; i++) {
            const etd_oip_input *in = &r.inputs[i];
            if (in->bytes) {
                if ((const char *)in->bytes < body + hlen ||
                    (const char *)in->bytes + in->nbytes > body + len ||
                    in->nbytes != (size_t)in->numel * etd_oip_dtype_size(in->dtype)) {
                    fprintf(stderr, "fuzz_binary: input %d's bytes lie outside the body\n", i);
                    abort();
                }
                used += in->nbytes;
            } else if (!in->data) {
                abort();
            }
            static const et_dtype to[] = {ET_FLOAT32, ET_INT64};
            for (int k = 0; k < 2; k++) {
                etd_array a;
                if (etd_oip_input_array(in, to[k], "inputs[0]", &a, &e)) {
                    check_array(&a, in->numel, in->shape, in->ndim, to[k], "oip input");
                    etd_array_free(&a);
                } else if (e.rc != ETD_EINVAL && e.rc != ETD_ENOMEM) {
                    abort();
                }
            }
        }
        if (hl && used != len - hlen) {
            fprintf(stderr, "fuzz_binary: %zu binary bytes accounted for, %zu sent\n", used,
                    len - hlen);
            abort();
        }
    } else if (e.rc != ETD_EINVAL && e.rc != ETD_ETOOBIG && e.rc != ETD_ENOMEM) {
        abort();
    }
    etd_oip_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        fuzz_st(data, size);
        return 0;
    }
    char hl[16];
    if (mode == 1) {
        if (size < 2)
            return 0;
        snprintf(hl, sizeof hl, "%u", (unsigned)(data[0] | data[1] << 8));
        data += 2;
        size -= 2;
    }
    /* the daemon hands handlers a NUL-terminated body */
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    fuzz_oip(body, size, mode == 1 ? hl : NULL);
    free(body);
    return 0;
}
