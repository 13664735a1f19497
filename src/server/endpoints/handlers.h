/*
 * handlers.h - the handlers of the route table (internal to
 * src/server/endpoints; routes.c lists them).  One line per handler, by
 * family: a new endpoint is a handler in its family's file, its line here
 * and its row in routes.c.
 */
#ifndef EASYTORCHD_HANDLERS_H
#define EASYTORCHD_HANDLERS_H

#include "server/endpoints/endpoint.h"

/* ops.c */
void etd_h_healthz(etd_call *c);
void etd_h_readyz(etd_call *c);
void etd_h_metrics(etd_call *c);
/* v1_models.c */
void etd_h_list(etd_call *c);
void etd_h_define(etd_call *c);
void etd_h_get(etd_call *c);
void etd_h_delete(etd_call *c);
void etd_h_patch(etd_call *c);
/* v1_events.c */
void etd_h_events(etd_call *c);
/* One text/event-stream record into the etd_buf out: "id: N" (when id is
 * not 0), "event: TYPE", "data: JSON", a blank line (an etd_event_fn). */
void etd_sse_event(void *out, uint64_t id, const char *type, const char *json, size_t len);
void etd_h_model_events(etd_call *c);
void etd_h_types(etd_call *c);
/* v1_train.c */
void etd_h_predict(etd_call *c);
void etd_h_batches(etd_call *c);
void etd_h_step(etd_call *c);
void etd_h_train(etd_call *c);
void etd_h_grad_get(etd_call *c);
void etd_h_grad_post(etd_call *c);
void etd_h_loss(etd_call *c);
void etd_h_checkpoint(etd_call *c);
/* predict / infer small enough to run on an I/O thread (etd_route.cheap) */
bool etd_cheap_forward(etd_model *m, const etd_request *rq);
/* a train call small enough to run there (etd_route.cheap of train) */
bool etd_cheap_train(etd_model *m, const etd_request *rq);
/* v1_eval.c */
void etd_h_evaluate(etd_call *c);
/* v1_jobs.c */
void etd_h_job_submit(etd_call *c);
void etd_h_job_list(etd_call *c);
void etd_h_job_get(etd_call *c);
void etd_h_job_cancel(etd_call *c);
/* v1_params.c */
void etd_h_params_get(etd_call *c);
void etd_h_params_put(etd_call *c);
/* v1_train.c: predict's answer for m's outputs ys[0..n) (borrowed):
 * {"outputs": y}, or for several (named) outputs {"outputs": {"logits": ...,
 * "score": ...}}; safetensors: "outputs" / one tensor per output name. */
void ep_predict_answer(etd_call *c, etd_model *m, bool bin, et_tensor *const *ys, int n);
/* Predict c->x on c->m now and answer; false with the error answered. */
bool ep_predict_now(etd_call *c, bool bin);
/* A batching model's predict: c->x queued for its next dynamic batch and
 * answered later (version > 0: the answer names that version); false when
 * the transport cannot wait -- then run ep_predict_now (the same bits). */
bool ep_predict_batched(etd_call *c, bool bin, int64_t version);
/* v1_versions.c */
void etd_h_versions_post(etd_call *c);
void etd_h_versions_list(etd_call *c);
void etd_h_version_get(etd_call *c);
void etd_h_version_delete(etd_call *c);
void etd_h_version_predict(etd_call *c);
void etd_h_version_evaluate(etd_call *c);
void etd_h_rollback(etd_call *c);
/* ,"serving":"live" or ,"serving":N */
void ep_write_serving(etd_buf *out, int64_t serving);
/* Replace c->m by the model plain predictions use ("serving": a version's
 * or c->m itself); *version: 0 for live. */
bool ep_serving(etd_call *c, int64_t *version);
/* The versions' lines of /metrics. */
void ep_version_metrics(etd_buf *out, etd_model *const *models, int n);
/* v1_export.c */
void etd_h_export(etd_call *c);
void etd_h_version_export(etd_call *c);
/* POST /v1/models with an ONNX file as the body: true when Content-Type
 * says application/onnx (also for an empty body); ep_define_onnx defines
 * the model (spec from the query) into c->m, false with the answer set. */
bool ep_onnx_body(etd_call *c);
bool ep_define_onnx(etd_call *c);
/* v2_oip.c */
void etd_h_v2_live(etd_call *c);
void etd_h_v2_ready(etd_call *c);
void etd_h_v2_server(etd_call *c);
void etd_h_v2_model(etd_call *c);
void etd_h_v2_model_ready(etd_call *c);
void etd_h_v2_infer(etd_call *c);
void etd_h_v2_repository_index(etd_call *c);
/* apidocs.c */
void etd_h_openapi(etd_call *c);
void etd_h_docs(etd_call *c);
void etd_h_docs_asset(etd_call *c);
bool etd_docs_asset_exists(const char *name);
/* dashboard.c */
void etd_h_index(etd_call *c);
void etd_h_asset(etd_call *c);
bool etd_asset_exists(const char *name);

#endif
