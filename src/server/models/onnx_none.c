/* onnx_none.c - etd_model_export_onnx of a build without protobuf-c
 * (meson feature "onnx" off or its packages missing). */
#include "server/models/onnx.h"

etd_rc etd_model_export_onnx(etd_model *m, const int64_t *in_dims, int in_nd, uint8_t **buf,
                             size_t *len, etd_err *e)
{
    (void)m, (void)in_dims, (void)in_nd, (void)len;
    *buf = NULL;
    return etd_fail(e, ETD_ESTATE, "export: this easytorchd was built without ONNX support "
                    "(protobuf-c-compiler, libprotobuf-c-dev, libonnx-dev)");
}

etd_rc etd_onnx_import(etd_registry *r, const cJSON *body, etd_model **out, etd_err *e)
{
    (void)r, (void)body;
    *out = NULL;
    return etd_fail(e, ETD_ESTATE, "onnx: this easytorchd was built without ONNX support "
                    "(protobuf-c-compiler, libprotobuf-c-dev, libonnx-dev)");
}

etd_rc etd_onnx_import_file(etd_registry *r, const cJSON *spec, const uint8_t *bytes,
                            size_t len, etd_model **out, etd_err *e)
{
    (void)r, (void)spec, (void)bytes, (void)len;
    *out = NULL;
    return etd_fail(e, ETD_ESTATE, "onnx: this easytorchd was built without ONNX support "
                    "(protobuf-c-compiler, libprotobuf-c-dev, libonnx-dev)");
}
