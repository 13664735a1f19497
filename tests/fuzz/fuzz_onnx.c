/*
 * fuzz_onnx.c - libFuzzer harness: the ONNX importer (src/server/models/onnx_import.c,
 * protobuf-c's decoder of onnx.proto) -- what POST /v1/models reads from an
 * application/onnx body or a base64 "onnx" field.
 *
 * The input is the file.  It is imported into a fresh registry with a fixed
 * spec (MSELoss, SGD).  Oracles:
 *   - a refusal is ETD_EINVAL (never an internal error or a crash) with a
 *     message starting "onnx: " or naming the spec field, in printable ASCII,
 *     and it leaves the registry empty;
 *   - a model that imports is usable: it describes itself, gives its
 *     parameters, and exports to ONNX again -- and when that export works,
 *     the exported file imports too (the daemon reads what it writes).
 * The seed corpus (tests/fuzz/corpus/fuzz_onnx, make_onnx_seeds.py) holds
 * real torch.onnx.export files and daemon exports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/models/models.h"
#include "server/models/onnx.h"

#include "fuzz_common.h"

static etd_registry *new_registry(void)
{
    etd_err err;
    etd_registry_opts o = {
        .data_dir = fz_scratch(), .sync_always = false, .save_interval = 3600,
        .max_models = 8, .max_params = 200000, .max_steps = 100, .max_history = 1000,
    };
    etd_registry *r = etd_registry_new(&o, &err);
    if (!r)
        abort(); /* harness setup */
    return r;
}

static void check_refusal(etd_registry *r, etd_rc rc, const etd_err *e, const char *what)
{
    if (rc != ETD_EINVAL && rc != ETD_ENOMEM) {
        fprintf(stderr, "fuzz_onnx: %s: refused with rc %d (not a 400): %s\n", what, rc, e->msg);
        abort();
    }
    if (!e->msg[0]) {
        fprintf(stderr, "fuzz_onnx: %s: refused without a message\n", what);
        abort();
    }
    for (const char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            fprintf(stderr, "fuzz_onnx: %s: message has byte 0x%02x: %s\n", what,
                    (unsigned char)*p, e->msg);
            abort();
        }
    if (etd_registry_count(r) != 0) {
        fprintf(stderr, "fuzz_onnx: %s: a refused import left a model behind\n", what);
        abort();
    }
}

/* A model that imported: describe it, read it, export it and import that. */
static void check_model(etd_registry *r, etd_model *m, const cJSON *spec)
{
    etd_err e;
    etd_model_info info;
    etd_model_info_get(m, &info);
    etd_tensors p;
    if (etd_model_parameters(m, &p, &e) != ETD_OK) {
        fprintf(stderr, "fuzz_onnx: an imported model gives no parameters: %s\n", e.msg);
        abort();
    }
    etd_tensors_free(&p);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (etd_model_export_onnx(m, NULL, -1, &buf, &len, &e) != ETD_OK) {
        if (e.rc != ETD_EINVAL) { /* the layers may need an input_shape: a 400 */
            fprintf(stderr, "fuzz_onnx: exporting an imported model: rc %d: %s\n", e.rc, e.msg);
            abort();
        }
        return;
    }
    cJSON *s2 = cJSON_Duplicate(spec, 1);
    if (!s2)
        abort();
    cJSON_ReplaceItemInObjectCaseSensitive(s2, "name", cJSON_CreateString("m2"));
    etd_model *m2 = NULL;
    if (etd_onnx_import_file(r, s2, buf, len, &m2, &e) != ETD_OK) {
        fprintf(stderr, "fuzz_onnx: the daemon's export of an imported model does not import: "
                "%s\n", e.msg);
        abort();
    }
    etd_model_unref(m2);
    cJSON_Delete(s2);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *spec;
    if (!spec) {
        spec = cJSON_Parse("{\"name\":\"m\",\"loss\":\"MSELoss\","
                           "\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1}}");
        if (!spec)
            abort();
    }
    etd_registry *r = new_registry();
    etd_model *m = NULL;
    etd_err e;
    memset(&e, 0, sizeof e);
    etd_rc rc = etd_onnx_import_file(r, spec, data, size, &m, &e);
    if (rc == ETD_OK) {
        check_model(r, m, spec);
        etd_model_unref(m);
    } else {
        check_refusal(r, rc, &e, "import");
    }
    etd_registry_free(r);
    fz_empty_dir();
    return 0;
}
