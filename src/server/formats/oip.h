/*
 * oip.h - Open Inference Protocol (KServe v2) infer requests: the JSON body
 * or the binary tensor extension, and the datatypes (internal to
 * easytorchd).
 *
 * Binary tensor extension: the header Inference-Header-Content-Length: N
 * says the body is N bytes of JSON followed by the tensors' bytes; an input
 * whose "parameters" has "binary_data_size": B takes the next B bytes
 * (row-major, little-endian, the datatype's size per element) instead of
 * "data".  The sizes must add up to the bytes after the JSON exactly, and
 * each must be what its shape and datatype need -- nothing is read from an
 * offset the request did not account for.
 *
 * Datatypes: BOOL and BYTES are not numbers (refused).  The numeric ones
 * are converted to the model's input dtype: to float32 (FP64 values beyond
 * float32 are refused; integers round as torch's .float()), or to int64
 * for models that take indices (integers exactly; floats only when whole).
 * JSON "data" holds the values nested or flat, each within its datatype's
 * range (and whole for integer types).
 */
#ifndef EASYTORCHD_OIP_H
#define EASYTORCHD_OIP_H

#include <cjson/cJSON.h>
#include <easytorch/easytorch.h>

#include "server/formats/json_in.h"
#include "server/formats/result.h"
#include "server/formats/tensor_json.h"

typedef enum etd_oip_dtype {
    ETD_OIP_BOOL, ETD_OIP_UINT8, ETD_OIP_UINT16, ETD_OIP_UINT32, ETD_OIP_UINT64,
    ETD_OIP_INT8, ETD_OIP_INT16, ETD_OIP_INT32, ETD_OIP_INT64,
    ETD_OIP_FP16, ETD_OIP_BF16, ETD_OIP_FP32, ETD_OIP_FP64, ETD_OIP_BYTES,
    ETD_OIP_NDTYPES
} etd_oip_dtype;

/* The datatype called name ("FP32"), or -1. */
int etd_oip_dtype_find(const char *name);
const char *etd_oip_dtype_name(etd_oip_dtype d);
/* Bytes per element (0 for BYTES). */
size_t etd_oip_dtype_size(etd_oip_dtype d);

#define ETD_OIP_MAX_IO 16

/* One input of a request, validated but not converted. */
typedef struct etd_oip_input {
    const char *name;           /* into the request's JSON tree */
    etd_oip_dtype dtype;
    int64_t shape[ET_MAX_DIMS];
    int ndim;
    int64_t numel;
    const cJSON *data;          /* JSON values, or NULL for ... */
    const unsigned char *bytes; /* ... binary_data_size bytes of the body */
    size_t nbytes;
} etd_oip_input;

typedef struct etd_oip_output {
    const char *name;
    bool binary;                /* answer as binary data (per output or binary_data_output) */
} etd_oip_output;

/* A parsed infer request; free with etd_oip_request_free. */
typedef struct etd_oip_request {
    etd_json_doc doc;           /* the JSON (or the JSON header); names point into it */
    const char *id;             /* NULL when absent */
    int ninputs;
    etd_oip_input inputs[ETD_OIP_MAX_IO];
    int noutputs;               /* 0: every output */
    etd_oip_output outputs[ETD_OIP_MAX_IO];
    bool binary_output;         /* parameters.binary_data_output: the default for outputs */
} etd_oip_request;

/* Parse body[0..len) (NUL at body[len]).  header_len: the value of
 * Inference-Header-Content-Length (NULL: the whole body is JSON).  Checks
 * the JSON fields, datatypes, shapes (at most max_elems elements each),
 * binary sizes; false + ETD_EINVAL naming the field ("inputs[0].shape: ...")
 * or ETD_ETOOBIG. */
bool etd_oip_parse(const char *body, size_t len, const char *header_len,
                   const etd_json_limits *lim, etd_oip_request *r, etd_err *e);
void etd_oip_request_free(etd_oip_request *r);

/* The values of input `in` as an array of dtype `to` (ET_FLOAT32 or
 * ET_INT64) and its shape; false + e naming `what` ("inputs[0]") and the
 * element. */
bool etd_oip_input_array(const etd_oip_input *in, et_dtype to, const char *what, etd_array *a,
                         etd_err *e);

/* n floats as little-endian FP32 bytes at dst (any alignment). */
void etd_oip_put_fp32(void *dst, const float *v, int64_t n);

#endif
