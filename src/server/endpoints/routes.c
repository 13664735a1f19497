/* routes.c - the route table of easytorchd: {method, pattern, handler,
 * flags, accepted query arguments}.  The transport matches requests against
 * it (transport/router.c); the pattern is also the metrics label. */
#include "server/endpoints/handlers.h"

static const char *const q_loss[] = {"since", "series", NULL};
static const char *const q_format[] = {"format", NULL};
static const char *const q_export[] = {"format", "input_shape", NULL};

#define PUB ETD_R_PUBLIC
#define RDY ETD_R_READY
#define BODY ETD_R_BODY
#define BIN (ETD_R_BODY | ETD_R_BINARY) /* JSON or safetensors */
#define M "/v1/models/{name}"
#define V "/v2/models/{name}/versions/{version}"
const etd_route etd_routes[] = {
    {"GET", "/healthz", etd_h_healthz, PUB, NULL, NULL},
    {"GET", "/readyz", etd_h_readyz, PUB, NULL, NULL},
    {"GET", "/metrics", etd_h_metrics, 0, NULL, NULL},
    {"GET", "/v1/models", etd_h_list, RDY, NULL, NULL},
    {"POST", "/v1/models", etd_h_define, RDY | BODY, NULL, NULL},
    {"GET", "/v1/types", etd_h_types, 0, NULL, NULL},
    {"GET", M, etd_h_get, RDY, NULL, NULL},
    {"DELETE", M, etd_h_delete, RDY, NULL, NULL},
    {"PATCH", M, etd_h_patch, RDY | BODY, NULL, NULL},
    {"POST", M "/predict", etd_h_predict, RDY | BIN, NULL, NULL},
    {"POST", M "/batches", etd_h_batches, RDY | BIN, NULL, NULL},
    {"POST", M "/step", etd_h_step, RDY | BODY, NULL, NULL},
    {"POST", M "/train", etd_h_train, RDY | BIN, NULL, NULL},
    {"GET", M "/gradients", etd_h_grad_get, RDY, NULL, NULL},
    {"POST", M "/gradients", etd_h_grad_post, RDY | BIN, NULL, NULL},
    {"GET", M "/parameters", etd_h_params_get, RDY, q_format, NULL},
    {"PUT", M "/parameters", etd_h_params_put, RDY | BIN, NULL, NULL},
    {"GET", M "/loss", etd_h_loss, RDY, q_loss, NULL},
    {"POST", M "/evaluate", etd_h_evaluate, RDY | BIN, NULL, NULL},
    {"POST", M "/jobs", etd_h_job_submit, RDY | BIN, NULL, NULL},
    {"GET", M "/jobs", etd_h_job_list, RDY, NULL, NULL},
    {"GET", M "/jobs/{id}", etd_h_job_get, RDY, NULL, NULL},
    {"DELETE", M "/jobs/{id}", etd_h_job_cancel, RDY, NULL, NULL},
    {"POST", M "/checkpoint", etd_h_checkpoint, RDY, NULL, NULL},
    {"POST", M "/versions", etd_h_versions_post, RDY | BODY, NULL, NULL},
    {"GET", M "/versions", etd_h_versions_list, RDY, NULL, NULL},
    {"GET", M "/versions/{version}", etd_h_version_get, RDY, NULL, NULL},
    {"DELETE", M "/versions/{version}", etd_h_version_delete, RDY, NULL, NULL},
    {"POST", M "/versions/{version}/predict", etd_h_version_predict, RDY | BODY, NULL, NULL},
    {"POST", M "/rollback", etd_h_rollback, RDY | BODY, NULL, NULL},
    {"GET", M "/export", etd_h_export, RDY, q_export, NULL},
    {"GET", M "/versions/{version}/export", etd_h_version_export, RDY, q_export, NULL},
    {"GET", "/v2/health/live", etd_h_v2_live, PUB, NULL, NULL},
    {"GET", "/v2/health/ready", etd_h_v2_ready, PUB, NULL, NULL},
    {"GET", "/v2", etd_h_v2_server, 0, NULL, NULL},
    {"GET", "/v2/models/{name}", etd_h_v2_model, RDY, NULL, NULL},
    {"GET", "/v2/models/{name}/ready", etd_h_v2_model_ready, RDY, NULL, NULL},
    {"POST", "/v2/models/{name}/infer", etd_h_v2_infer, RDY | BODY | ETD_R_OIP, NULL, NULL},
    {"GET", V "", etd_h_v2_model, RDY, NULL, NULL},
    {"GET", V "/ready", etd_h_v2_model_ready, RDY, NULL, NULL},
    {"POST", V "/infer", etd_h_v2_infer, RDY | BODY | ETD_R_OIP, NULL, NULL},
    {"POST", "/v2/repository/index", etd_h_v2_repository_index, RDY | BODY, NULL, NULL},
    {"GET", "/openapi.json", etd_h_openapi, PUB, NULL, NULL},
    {"GET", "/docs", etd_h_docs, PUB, NULL, NULL},
    {"GET", "/docs/{asset}", etd_h_docs_asset, PUB, NULL, etd_docs_asset_exists},
    {"GET", "/", etd_h_index, PUB | ETD_R_ANY_QUERY, NULL, NULL},
    {"GET", "/{asset}", etd_h_asset, PUB | ETD_R_ANY_QUERY, NULL, etd_asset_exists},
};
#undef M
#undef V
#undef BIN
const int etd_nroutes = (int)(sizeof etd_routes / sizeof etd_routes[0]);
