/*
 * fuzz_load.c - libFuzzer harness: the checkpoint loader and the safetensors
 * reader (src/server/formats/modelfile.c, the model loader in
 * src/server/models/registry.c and train_state.c, et_safetensors_parse in src/nn).
 *
 * The first byte picks what the rest is:
 *   0  a safetensors buffer for et_safetensors_parse; when it parses, dumping
 *      it and parsing the dump must succeed and give the same names (oracle);
 *   1  the payload of a model file: the harness wraps it in a header with
 *      correct checksums (so the fuzzer gets past the CRCs to the
 *      safetensors and JSON state inside), writes DATA/m.etm and loads the
 *      data dir into a fresh registry;
 *   2  a whole model file, written as is (header and checksums fuzzed too).
 * Oracle for 1 and 2: loading never crashes, and at most one model loads.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/modelfile.h"
#include "server/models/models.h"

#include "fuzz_common.h"

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void write_file(const char *path, const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort(); /* scratch dir vanished: harness problem, not input */
    if ((alen && write(fd, a, alen) != (ssize_t)alen) || (blen && write(fd, b, blen) != (ssize_t)blen))
        abort();
    close(fd);
}

static void load_dir(void)
{
    etd_err err;
    etd_registry_opts o = {
        .data_dir = fz_scratch(), .sync_always = false, .save_interval = 3600,
        .max_models = 8, .max_params = 200000, .max_steps = 100, .max_history = 100000,
    };
    etd_registry *r = etd_registry_new(&o, &err);
    if (!r)
        abort();
    etd_registry_load_all(r);
    if (etd_registry_count(r) > 1) {
        fprintf(stderr, "fuzz_load: one file loaded as %d models\n", etd_registry_count(r));
        abort();
    }
    etd_model *m;
    if (etd_registry_get(r, "m", &m, &err) == ETD_OK) {
        /* a model that loads must be usable: describe it and read its state */
        etd_model_info info;
        etd_model_info_get(m, &info);
        etd_tensors p;
        if (etd_model_parameters(m, &p, &err) == ETD_OK)
            etd_tensors_free(&p);
        etd_history h;
        if (etd_model_loss_history(m, -1, &h, &err) == ETD_OK)
            etd_history_free(&h);
        etd_model_unref(m);
    }
    etd_registry_free(r);
}

static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    et_tensor_dict *d = NULL;
    if (et_safetensors_parse(data, size, &d) != ET_OK)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (et_safetensors_dump(d, &buf, &len) != ET_OK) {
        fprintf(stderr, "fuzz_load: a parsed safetensors dict cannot be dumped: %s\n", et_errmsg());
        abort();
    }
    et_tensor_dict *d2 = NULL;
    if (et_safetensors_parse(buf, len, &d2) != ET_OK ||
        et_tensor_dict_len(d2) != et_tensor_dict_len(d)) {
        fprintf(stderr, "fuzz_load: dump of a parsed safetensors buffer does not parse back\n");
        abort();
    }
    for (int i = 0; i < et_tensor_dict_len(d); i++)
        if (!et_tensor_dict_get(d2, et_tensor_dict_name(d, i))) {
            fprintf(stderr, "fuzz_load: tensor %s lost in a dump/parse round trip\n",
                    et_tensor_dict_name(d, i));
            abort();
        }
    et_tensor_dict_free(d2);
    free(buf);
    et_tensor_dict_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        fuzz_safetensors(data, size);
        return 0;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/m%s", fz_scratch(), ETD_FILE_EXT);
    if (mode == 1) {
        uint8_t h[ETD_FILE_HEADER];
        memset(h, 0, sizeof h);
        memcpy(h, ETD_FILE_MAGIC, 8); /* "ETMODEL\0" */
        put_le32(h + 8, ETD_FILE_VERSION);
        put_le32(h + 12, 0);
        put_le64(h + 16, size);
        put_le32(h + 24, etd_crc32(data, size));
        put_le32(h + 28, etd_crc32(h, 28));
        write_file(path, h, sizeof h, data, size);
    } else {
        write_file(path, data, size, NULL, 0);
    }
    load_dir();
    fz_empty_dir();
    return 0;
}
