/* v1_jobs.c - training jobs on /v1/models/{name}/jobs: submit, list, read,
 * cancel (docs/API.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

/* A job record as JSON (validation entries of the job from the model's
 * history when it has any). */
static void write_job(etd_call *c, etd_buf *out, const etd_job_info *j, bool with_results)
{
    etd_buf_puts(out, "{\"id\":");
    etd_json_i64(out, j->id);
    ep_member_str(out, "model", c->rq->name);
    ep_member_str(out, "state", etd_job_state_names[j->state]);
    ep_member_i64(out, "steps_done", j->steps_done);
    ep_member_i64(out, "steps_total", j->steps_total);
    ep_member_i64(out, "epoch", j->epoch);
    ep_member_i64(out, "epochs", j->epochs);
    ep_member_i64(out, "batch_size", j->batch_size);
    ep_member_i64(out, "rows", j->rows);
    etd_buf_puts(out, j->shuffle ? ",\"shuffle\":true" : ",\"shuffle\":false");
    ep_write_loss(out, j->has_loss, j->loss);
    ep_member_double(out, "lr", j->has_loss ? j->lr : NAN);
    ep_member_i64(out, "skipped_steps", j->skipped);
    ep_member(out, "start_step");
    if (j->state == ETD_JOB_QUEUED || (j->started == 0 && j->steps_done == 0))
        etd_buf_puts(out, "null");
    else
        etd_json_i64(out, j->start_step);
    ep_member_time(out, "created", j->created);
    ep_member_time(out, "started", j->started);
    ep_member_time(out, "finished", j->finished);
    ep_member_str(out, "error", j->error[0] ? j->error : NULL);
    ep_member(out, "validation");
    if (!j->validate) {
        etd_buf_puts(out, "null}");
        return;
    }
    etd_buf_puts(out, "{\"rows\":");
    etd_json_i64(out, j->val_rows);
    ep_member_i64(out, "eval_every", j->eval_every);
    ep_member_i64(out, "evaluations", j->evaluations);
    etd_buf_puts(out, ",\"metrics\":[");
    bool first = true;
    for (int i = 0; i < ETD_M_COUNT; i++)
        if (j->metrics & 1u << i) {
            etd_buf_puts(out, first ? "" : ",");
            etd_json_str(out, etd_metric_names[i]);
            first = false;
        }
    etd_buf_putc(out, ']');
    if (j->metrics & 1u << ETD_M_TOPK)
        ep_member_i64(out, "k", j->k);
    if (with_results) {
        etd_val_history vh;
        etd_buf_puts(out, ",\"results\":[");
        if (etd_model_validation_history(c->m, -1, j->id, &vh, &c->e) == ETD_OK) {
            for (size_t i = 0; i < vh.n; i++) {
                if (i)
                    etd_buf_putc(out, ',');
                ep_write_validation_entry(out, &vh.v[i]);
            }
            etd_val_history_free(&vh);
        }
        etd_buf_putc(out, ']');
    }
    etd_buf_puts(out, "}}");
}

/* The {id} capture as a job id. */
static bool job_id(etd_call *c, int64_t *id)
{
    const char *s = c->rq->id;
    char *end;
    long long v = s && *s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || v < 1 || s[0] == '0' || s[0] == '+') {
        ep_error(c, 404, "no job \"%s\" (job ids are positive integers)", s ? s : "");
        return false;
    }
    *id = v;
    return true;
}

/* The "validation" object of a job body.  In a safetensors body its
 * tensors are "validation.inputs" and "validation.targets" and its other
 * members ("metrics", "k") the "validation" entry of __metadata__ (which
 * may then be absent). */
static const char *const val_tensors[] = {"validation.inputs", "validation.targets", NULL};

static bool validation(etd_call *c, etd_job_spec *s)
{
    static const char *const keys[] = {"inputs", "targets", "metrics", "k", NULL};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->doc.root, "validation");
    bool binary = c->st.d && (etd_st_tensor(&c->st, val_tensors[0]) ||
                              etd_st_tensor(&c->st, val_tensors[1]));
    if ((!v || cJSON_IsNull(v)) && !binary)
        return true;
    if (v && cJSON_IsNull(v))
        v = NULL;
    if (v && !cJSON_IsObject(v)) {
        ep_error(c, 400, "validation: expected an object {\"inputs\", \"targets\"}");
        return false;
    }
    if ((v && !ep_ok(c, etd_check_keys(v, "validation", NULL, keys, NULL, &c->e) ? ETD_OK
                                                                                  : c->e.rc)) ||
        !ep_metrics(c, v, "validation", &s->metrics))
        return false;
    char err[ETD_ERRCAP];
    const char *names[2] = {"inputs", "targets"};
    etd_array *dst[2] = {&s->vx, &s->vy};
    et_dtype dt[2]; /* indices (Embedding inputs, class targets) as whole numbers */
    etd_model_dtypes(c->m, &dt[0], &dt[1]);
    etd_model_io io;
    etd_model_io_get(c->m, &io);
    bool named_y = io.named && (io.ntargets == 0 || io.targets[0]);
    if (io.named) { /* a graph's named inputs (and targets), as the body's own: JSON */
        if (binary) {
            ep_error(c, 400, "validation: a model with named inputs takes its validation data "
                     "in the JSON (or __metadata__) \"validation\" object");
            return false;
        }
        if (!ep_named_of(c, v, "validation", false, &s->vx) ||
            (named_y && !ep_named_of(c, v, "validation", true, &s->vy)))
            return false;
        if (named_y && !s->vy.nparts) /* no targets: the inputs' rows */
            s->vy.shape[0] = s->vy.numel = s->vx.shape[0];
        if (named_y) {
            s->validate = true;
            return true;
        }
    }
    for (int i = io.named ? 1 : 0; i < 2; i++) {
        const char *what = val_tensors[i];
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, names[i]);
        bool found;
        if (!ep_st_tensor_as(c, what, dt[i], dst[i], &found))
            return false;
        if (found && t) {
            ep_error(c, 400, "%s: given both as a tensor and in __metadata__", what);
            return false;
        }
        if (found)
            continue;
        if (!t) {
            ep_error(c, 400, "%s: required field is missing", what);
            return false;
        }
        if (!(dt[i] == ET_INT64 ? etd_array_from_json_ints : etd_array_from_json)(
                t, what, c->rq->app->json.max_elems, dst[i], err, sizeof err)) {
            ep_error(c, 400, "%s", err);
            return false;
        }
    }
    s->validate = true;
    return true;
}

void etd_h_job_submit(etd_call *c)
{
    static const char *const keys[] = {"inputs", "targets", "epochs", "batch_size", "shuffle",
                                       "validation", "eval_every", NULL};
    etd_job_spec s = {0};
    int64_t eval_every;
    c->tensor_keys = val_tensors;
    if (!ep_inputs(c, keys, true) || !ep_pos_int(c, "epochs", 1, &s.epochs) ||
        !ep_pos_int(c, "batch_size", 0, &s.batch_size) || !ep_bool(c, "shuffle", false, &s.shuffle) ||
        !ep_pos_int(c, "eval_every", 0, &eval_every) || !validation(c, &s)) {
        etd_array_free(&s.vx);
        etd_array_free(&s.vy);
        return;
    }
    if (eval_every > 0 && !s.validate) {
        ep_error(c, 400, "eval_every: evaluations need \"validation\" data");
        return;
    }
    s.eval_every = eval_every;
    etd_json_doc_free(&c->doc);
    s.x = c->x; /* taken over by the job */
    s.y = c->y;
    memset(&c->x, 0, sizeof c->x);
    memset(&c->y, 0, sizeof c->y);
    etd_job_info j;
    etd_rc rc = etd_job_submit(c->m, &s, &j, &c->e);
    if (rc == ETD_EFULL)
        etd_response_header(c->rs, "Retry-After", "1");
    if (!ep_ok(c, rc))
        return;
    c->rs->status = 202;
    char loc[160];
    snprintf(loc, sizeof loc, "/v1/models/%s/jobs/%lld", c->rq->name, (long long)j.id);
    etd_response_header(c->rs, "Location", loc);
    write_job(c, &c->rs->body, &j, false);
}

void etd_h_job_list(etd_call *c)
{
    etd_job_info *l;
    int n;
    if (!ep_model(c) || !ep_ok(c, etd_job_list(c->m, &l, &n, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"jobs\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            etd_buf_putc(out, ',');
        write_job(c, out, &l[i], false);
    }
    etd_buf_puts(out, "]}");
    free(l);
}

void etd_h_job_get(etd_call *c)
{
    int64_t id;
    etd_job_info j;
    if (!ep_model(c) || !job_id(c, &id) || !ep_ok(c, etd_job_get(c->m, id, &j, &c->e)))
        return;
    write_job(c, &c->rs->body, &j, true);
}

void etd_h_job_cancel(etd_call *c)
{
    int64_t id;
    etd_job_info j;
    if (!ep_model(c) || !job_id(c, &id) || !ep_ok(c, etd_job_cancel(c->m, id, &j, &c->e)))
        return;
    write_job(c, &c->rs->body, &j, true);
}
