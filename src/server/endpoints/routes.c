/* routes.c - the route table of easytorchd: {method, pattern, handler,
 * flags, accepted query arguments}.  The transport matches requests against
 * it (transport/router.c); the pattern is also the metrics label. */
#include "server/endpoints/handlers.h"

static const char *const q_loss[] = {"since", "series", NULL};
static const char *const q_format[] = {"format", NULL};
static const char *const q_export[] = {"format", "input_shape", NULL};
/* POST /v1/models with an ONNX body: the spec's other fields (v1_export.c) */
static const char *const q_define[] = {"name", "loss", "optimizer", "lr", "scheduler", "seed",
                                       "batching", "nonfinite", "keep_versions", NULL};
static const char *const q_events[] = {"types", "last_event_id", "heartbeat", "coalesce",
                                       "access_token", NULL};

#define PUB ETD_R_PUBLIC
#define RDY ETD_R_READY
#define BODY ETD_R_BODY
#define BIN (ETD_R_BODY | ETD_R_BINARY) /* JSON or safetensors */
/* where the transport runs the handler (endpoint.h): on the I/O thread
 * (INL: reads only published summaries, never waits), or on a worker with
 * the {name} model's lock held shared (SH) or exclusive (EX) */
#define INL ETD_R_INLINE
#define SH ETD_R_SHARED
#define EX ETD_R_EXCLUSIVE
#define LONG ETD_R_LONG
/* replicas apply it in one order (--mpi) */
#define ORD ETD_R_ORDERED
#define M "/v1/models/{name}"
#define V "/v2/models/{name}/versions/{version}"
const etd_route etd_routes[] = {
    {"GET", "/healthz", etd_h_healthz, PUB | INL, NULL, NULL, NULL},
    {"GET", "/readyz", etd_h_readyz, PUB | INL, NULL, NULL, NULL},
    {"GET", "/metrics", etd_h_metrics, INL, NULL, NULL, NULL},
    {"GET", "/v1/models", etd_h_list, RDY | INL, NULL, NULL, NULL},
    {"POST", "/v1/models", etd_h_define, RDY | BODY | ETD_R_ONNX | ORD, q_define, NULL, NULL},
    {"GET", "/v1/types", etd_h_types, INL, NULL, NULL, NULL},
    /* event streams: subscribing never waits; the body is pulled on the I/O
     * thread (EventSource sends no headers: the token may be ?access_token=) */
    {"GET", "/v1/events", etd_h_events, RDY | INL | ETD_R_QUERY_TOKEN, q_events, NULL, NULL},
    {"GET", M, etd_h_get, RDY | INL, NULL, NULL, NULL},
    {"DELETE", M, etd_h_delete, RDY | EX | ORD, NULL, NULL, NULL},
    {"PATCH", M, etd_h_patch, RDY | BODY | ORD, NULL, NULL, NULL},
    {"POST", M "/predict", etd_h_predict, RDY | BIN | SH, NULL, NULL, etd_cheap_forward},
    {"POST", M "/batches", etd_h_batches, RDY | BIN | EX | ORD, NULL, NULL, NULL},
    {"POST", M "/step", etd_h_step, RDY | BODY | EX | ORD, NULL, NULL, NULL},
    {"POST", M "/train", etd_h_train, RDY | BIN | EX | LONG | ORD, NULL, NULL, etd_cheap_train},
    {"GET", M "/gradients", etd_h_grad_get, RDY | SH, NULL, NULL, NULL},
    {"POST", M "/gradients", etd_h_grad_post, RDY | BIN | EX, NULL, NULL, NULL},
    {"GET", M "/parameters", etd_h_params_get, RDY | SH, q_format, NULL, NULL},
    {"PUT", M "/parameters", etd_h_params_put, RDY | BIN | EX | ORD, NULL, NULL, NULL},
    {"GET", M "/loss", etd_h_loss, RDY | INL, q_loss, NULL, NULL},
    {"GET", M "/events", etd_h_model_events, RDY | INL | ETD_R_QUERY_TOKEN, q_events, NULL, NULL},
    {"POST", M "/evaluate", etd_h_evaluate, RDY | BIN | SH | ORD, NULL, NULL, NULL},
    /* jobs take the model's lock themselves, per step: a cancel waits for the
     * running step, so it must not hold the lock (a worker, holding nothing) */
    {"POST", M "/jobs", etd_h_job_submit, RDY | BIN | ORD, NULL, NULL, NULL},
    {"GET", M "/jobs", etd_h_job_list, RDY, NULL, NULL, NULL},
    {"GET", M "/jobs/{id}", etd_h_job_get, RDY, NULL, NULL, NULL},
    {"DELETE", M "/jobs/{id}", etd_h_job_cancel, RDY | ORD, NULL, NULL, NULL},
    {"POST", M "/checkpoint", etd_h_checkpoint, RDY | SH | ORD, NULL, NULL, NULL},
    /* versions take the locks they need themselves (a worker, holding nothing) */
    {"POST", M "/versions", etd_h_versions_post, RDY | BODY | ORD, NULL, NULL, NULL},
    {"GET", M "/versions", etd_h_versions_list, RDY, NULL, NULL, NULL},
    {"GET", M "/versions/{version}", etd_h_version_get, RDY, NULL, NULL, NULL},
    {"DELETE", M "/versions/{version}", etd_h_version_delete, RDY | ORD, NULL, NULL, NULL},
    {"POST", M "/versions/{version}/predict", etd_h_version_predict, RDY | BODY, NULL, NULL, NULL},
    {"POST", M "/versions/{version}/evaluate", etd_h_version_evaluate, RDY | BIN, NULL, NULL,
     NULL},
    {"POST", M "/rollback", etd_h_rollback, RDY | BODY | ORD, NULL, NULL, NULL},
    {"GET", M "/export", etd_h_export, RDY, q_export, NULL, NULL},
    {"GET", M "/versions/{version}/export", etd_h_version_export, RDY, q_export, NULL, NULL},
    {"GET", "/v2/health/live", etd_h_v2_live, PUB | INL, NULL, NULL, NULL},
    {"GET", "/v2/health/ready", etd_h_v2_ready, PUB | INL, NULL, NULL, NULL},
    {"GET", "/v2", etd_h_v2_server, INL, NULL, NULL, NULL},
    {"GET", "/v2/models/{name}", etd_h_v2_model, RDY | INL, NULL, NULL, NULL},
    {"GET", "/v2/models/{name}/ready", etd_h_v2_model_ready, RDY | INL, NULL, NULL, NULL},
    {"POST", "/v2/models/{name}/infer", etd_h_v2_infer, RDY | BODY | ETD_R_OIP | SH, NULL, NULL,
     etd_cheap_forward},
    {"GET", V "", etd_h_v2_model, RDY | INL, NULL, NULL, NULL},
    {"GET", V "/ready", etd_h_v2_model_ready, RDY | INL, NULL, NULL, NULL},
    {"POST", V "/infer", etd_h_v2_infer, RDY | BODY | ETD_R_OIP | SH, NULL, NULL,
     etd_cheap_forward},
    {"POST", "/v2/repository/index", etd_h_v2_repository_index, RDY | BODY, NULL, NULL, NULL},
    {"GET", "/openapi.json", etd_h_openapi, PUB | INL, NULL, NULL, NULL},
    {"GET", "/docs", etd_h_docs, PUB | INL, NULL, NULL, NULL},
    {"GET", "/docs/{asset}", etd_h_docs_asset, PUB | INL, NULL, etd_docs_asset_exists, NULL},
    {"GET", "/", etd_h_index, PUB | ETD_R_ANY_QUERY | INL, NULL, NULL, NULL},
    {"GET", "/{asset}", etd_h_asset, PUB | ETD_R_ANY_QUERY | INL, NULL, etd_asset_exists, NULL},
};
#undef M
#undef V
#undef BIN
#undef ORD
const int etd_nroutes = (int)(sizeof etd_routes / sizeof etd_routes[0]);
