/*
 * common.h - what every handler shares (internal to src/server/endpoints).
 *
 * The skeleton of a handler:
 *
 *     static void h_batches(etd_call *c)
 *     {
 *         if (!ep_inputs(c, xy_keys, true))        model, body, keys, tensors;
 *             return;                              400/404 already answered
 *         etd_batch_result r;
 *         if (!ep_ok(c, etd_model_push_batch(c->m, &c->x, &c->y, &r, &c->e)))
 *             return;                              result code -> status + message
 *         ... write the body into c->rs->body ...
 *     }
 *
 * Each ep_* step answers the request itself when it fails and returns
 * false; whatever it took (model reference, parsed body, tensors) is freed
 * by etd_endpoint_run after the handler returns, so handlers have no
 * cleanup paths.
 */
#ifndef EASYTORCHD_ENDPOINTS_COMMON_H
#define EASYTORCHD_ENDPOINTS_COMMON_H

#include "server/endpoints/endpoint.h"
#include "server/formats/tensor_st.h"

/* What a request body is (content.c decides from Content-Type and the bytes). */
typedef enum etd_body_kind {
    ETD_BODY_NONE,              /* empty */
    ETD_BODY_JSON,
    ETD_BODY_SAFETENSORS,       /* routes with ETD_R_BINARY */
    ETD_BODY_OIP,               /* JSON header + binary tensors (ETD_R_OIP routes) */
    ETD_BODY_ONNX               /* an ONNX file (ETD_R_ONNX routes) */
} etd_body_kind;

struct etd_call {
    const etd_request *rq;      /* the body decoded (Content-Encoding) */
    etd_response *rs;
    const etd_route *route;
    etd_body_kind kind;
    char *decoded;              /* the inflated body, when it came compressed */
    etd_model *m;               /* ep_model */
    etd_json_doc doc;           /* ep_json: doc.root is the body (a safetensors body's metadata) */
    etd_st_body st;             /* ep_json of a safetensors body: its tensors */
    etd_array x, y;             /* ep_inputs: inputs, targets */
    const char *const *tensor_keys; /* tensors of nested fields the handler reads itself
                                   ("validation.inputs"), for ep_keys; NULL: none */
    const char *const *tensor_not; /* keys of allowed[] that are no tensor name of this
                                   model (a bare "inputs" when its inputs are named),
                                   for ep_keys; NULL: none */
    bool vary_accept;           /* the answer depends on Accept */
    bool later;                 /* ep_defer: the answer comes after the handler returned */
    etd_err e;                  /* for the models layer's messages */
};

/* An answer given after the handler returned (a dynamic batch, endpoint.h's
 * etd_deferred): what the skeleton's last step (Vary, compression) needs,
 * kept beyond the handler.  ep_defer fills it (false: the transport cannot
 * defer, answer now); ep_later_call gives a call to write the answer with
 * (rq, rs, vary_accept; no model, body or tensors); ep_later_done finishes
 * the answer and hands it to the transport (exactly once, any thread). */
typedef struct ep_later {
    etd_deferred *d;
    etd_request rq;             /* a copy: its headers stay valid until done */
    const etd_route *route;
    bool vary_accept;
} ep_later;
bool ep_defer(etd_call *c, ep_later *l);
etd_call ep_later_call(ep_later *l);
void ep_later_done(ep_later *l);

/* Answer with status and {"error": ...}. */
void ep_error(etd_call *c, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* rc == ETD_OK: true.  Otherwise answer c->e's message with the status of
 * rc and return false. */
bool ep_ok(etd_call *c, etd_rc rc);

/* The route's {name} model into c->m (404 "no model named ..." if none). */
bool ep_model(etd_call *c);
/* The body into c->doc (400/413): strict JSON, or for a safetensors body
 * its metadata as the fields (the tensors stay in c->st for ep_tensor);
 * fast_keys: top-level JSON members holding big tensors (NULL: none). */
bool ep_json(etd_call *c, const char *const *fast_keys);
/* obj is an object with only the keys allowed[] (400 naming the key); for
 * the body of a safetensors request, its tensor names are checked too
 * (against allowed[] but c->tensor_not, and c->tensor_keys). */
bool ep_keys(etd_call *c, const cJSON *obj, const char *const *allowed);
/* The tensor `key` of the body: a safetensors tensor of that name, else the
 * top-level member (400 if missing or bad). */
bool ep_tensor(etd_call *c, const char *key, etd_array *a);
/* A safetensors body's tensor `name` into a as dtype dt (int64 -> float32
 * as torch's .float(), float32 -> int64 only when whole): false (400/500
 * answered) on failure; *found false and nothing answered when the body
 * has no such tensor. */
bool ep_st_tensor_as(etd_call *c, const char *name, et_dtype dt, etd_array *a, bool *found);
/* The common start of a training call: ep_model, the body (inputs and
 * targets through the fast path), ep_keys(keys), then inputs into c->x and,
 * with targets, targets into c->y. */
bool ep_inputs(etd_call *c, const char *const *keys, bool targets);
/* A graph model's named inputs (targets: its loss list's targets) from
 * parent's "inputs" / "targets" object, messages naming "<path>.inputs.user"
 * (a job's validation data); targets of a list without any: rows only. */
bool ep_named_of(etd_call *c, const cJSON *parent, const char *path, bool targets, etd_array *a);

/* Optional top-level fields of the body: absent or null -> def. */
bool ep_pos_int(etd_call *c, const char *key, int64_t def, int64_t *out);
bool ep_bool(etd_call *c, const char *key, bool def, bool *out);

/* The "metrics" (a list of etd_metric_names) and "k" members of obj (the
 * body, or the "validation" object of a job: path "validation") into o;
 * 400 naming the field. */
bool ep_metrics(etd_call *c, const cJSON *obj, const char *path, etd_eval_opts *o);
/* A validation history entry: {"step", "job", "metrics": {...}, "k"?} (v1_train.c). */
void ep_write_validation_entry(etd_buf *out, const etd_val_entry *v);
/* {"loss":..,"accuracy":..} of the metrics measured (NaN as null). */
void ep_write_metric_values(etd_buf *out, unsigned metrics, const double *value);
/* /evaluate's answer {"step", "rows", "metrics", "k"?} (v1_eval.c). */
void ep_write_eval(etd_buf *out, const etd_eval_result *r);

/* A query argument's value (NULL if absent or without "="). */
const char *ep_query(const etd_call *c, const char *name);
/* A request header (case-insensitive; the first if repeated), or NULL. */
const char *ep_header(const etd_call *c, const char *name);

/* ---- content (content.c) ---- */

/* Decode the body of a route that reads one: inflate a Content-Encoding
 * (413 past app->max_decoded_body, 400 for bad data, 415 for an unknown
 * coding; c->rq then points at *local), and tell what it is (c->kind) from
 * Content-Type and the bytes: 415 naming the types the route takes. */
bool ep_body_prepare(etd_call *c, const etd_route *route, etd_request *local);
/* Accept negotiation of an answer with tensors: *binary for safetensors;
 * false (406 answered) when Accept takes neither JSON nor octet-stream. */
bool ep_wants_binary(etd_call *c, bool *binary);
/* Answer with n named tensors (and meta: key, value, ..., NULL) as a
 * safetensors file. */
bool ep_reply_st(etd_call *c, const char *const *names, et_tensor *const *t, int n,
                 const char *const *meta);
/* Vary, and compression for Accept-Encoding (after the handler). */
void ep_encode_answer(etd_call *c);

/* The next member of an object: ,"key": then (but for ep_member) its value.
 * ep_member_double writes NaN and Inf as null, ep_member_str NULL as null,
 * ep_member_time (ep_write_time) null for a time <= 0 or not finite. */
void ep_member(etd_buf *out, const char *key);
void ep_member_i64(etd_buf *out, const char *key, int64_t v);
void ep_member_double(etd_buf *out, const char *key, double v);
void ep_member_str(etd_buf *out, const char *key, const char *s);
void ep_member_time(etd_buf *out, const char *key, double unix_seconds);
/* Tensors by name as a JSON object {"0.weight": [[...]], ...}. */
void ep_write_tensors(etd_buf *out, const etd_tensors *t);
/* ,"loss":<loss or null> */
void ep_write_loss(etd_buf *out, bool has_loss, float loss);
/* ,"skipped":true,"reason":"..." when the divergence guard did not apply a
 * batch or step (nothing when it did). */
void ep_write_skipped(etd_buf *out, bool skipped, const char *why);
/* ,"status":"ok"|"diverged" and ,"nonfinite":{policy, count, last} of a
 * model's summary (GET /v1/models/{name}). */
void ep_write_status(etd_buf *out, const etd_model_summary *s);
void ep_write_nonfinite(etd_buf *out, const etd_nf_summary *nf);
/* An ISO 8601 UTC time with milliseconds, quoted ("2024-05-01T12:00:00.123Z"). */
void ep_write_time(etd_buf *out, double unix_seconds);
/* {"step", "time", "kind", ...the kind's members} */
void ep_write_marker(etd_buf *out, const etd_marker *mk);

#endif
