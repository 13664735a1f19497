/* v1_train.c - training and inference on /v1/models/{name}: predict,
 * batches, step, train, gradients, loss history, checkpoint (docs/API.md). */
#include <stdlib.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

static const char *const xy_keys[] = {"inputs", "targets", NULL};

void etd_h_predict(etd_call *c)
{
    static const char *const keys[] = {"inputs", NULL};
    if (!ep_inputs(c, keys, false))
        return;
    etd_json_doc_free(&c->doc); /* free the tree before the forward pass: it can be large */
    et_tensor *y = NULL;
    if (!ep_ok(c, etd_model_forward(c->m, &c->x, &y, &c->e)))
        return;
    etd_array_free(&c->x);
    etd_buf_puts(&c->rs->body, "{\"outputs\":");
    etd_json_tensor(&c->rs->body, y);
    etd_buf_putc(&c->rs->body, '}');
    et_tensor_free(y);
}

void etd_h_batches(etd_call *c)
{
    etd_batch_result r;
    if (!ep_inputs(c, xy_keys, true))
        return;
    etd_json_doc_free(&c->doc);
    if (!ep_ok(c, etd_model_push_batch(c->m, &c->x, &c->y, &r, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"loss\":");
    etd_json_float(&c->rs->body, r.loss);
    etd_buf_puts(&c->rs->body, ",\"pending_batches\":");
    etd_json_i64(&c->rs->body, r.pending);
    etd_buf_putc(&c->rs->body, '}');
}

void etd_h_step(etd_call *c)
{
    static const char *const none[] = {NULL};
    if (!ep_model(c))
        return;
    /* an empty body or {} is fine */
    if (c->rq->body_len > 0 && (!ep_json(c, NULL) || !ep_keys(c, c->doc.root, none)))
        return;
    etd_step_result r;
    etd_rc rc = etd_model_step(c->m, &r, &c->e);
    if (rc == ETD_ESTATE)
        etd_err_append(&c->e, " (POST /v1/models/%s/batches first)", c->rq->name);
    if (!ep_ok(c, rc))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, r.step);
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, r.lr);
    etd_buf_puts(out, ",\"next_lr\":");
    etd_json_double(out, r.next_lr);
    etd_buf_puts(out, ",\"loss\":");
    etd_json_float(out, r.loss);
    etd_buf_putc(out, '}');
}

void etd_h_train(etd_call *c)
{
    static const char *const keys[] = {"inputs", "targets", "epochs", "batch_size", "shuffle",
                                       NULL};
    etd_train_opts o = {0};
    if (!ep_inputs(c, keys, true) || !ep_pos_int(c, "epochs", 1, &o.epochs) ||
        !ep_pos_int(c, "batch_size", 0, &o.batch_size) || !ep_bool(c, "shuffle", false, &o.shuffle))
        return;
    etd_json_doc_free(&c->doc);
    etd_train_result r;
    if (!ep_ok(c, etd_model_train(c->m, &c->x, &c->y, &o, &r, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, r.step);
    etd_buf_puts(out, ",\"loss\":");
    if (r.n)
        etd_json_float(out, r.losses[r.n - 1]);
    else
        etd_buf_puts(out, "null");
    etd_buf_puts(out, ",\"lr\":");
    etd_json_double(out, r.lr);
    etd_buf_puts(out, ",\"losses\":");
    etd_json_floats(out, r.losses, r.n);
    etd_buf_putc(out, '}');
    etd_train_result_free(&r);
}

void etd_h_grad_get(etd_call *c)
{
    etd_tensors g;
    int64_t pending;
    if (!ep_model(c) || !ep_ok(c, etd_model_gradients(c->m, &g, &pending, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"gradients\":");
    ep_write_tensors(&c->rs->body, &g);
    etd_buf_puts(&c->rs->body, ",\"pending_batches\":");
    etd_json_i64(&c->rs->body, pending);
    etd_buf_putc(&c->rs->body, '}');
    etd_tensors_free(&g);
}

void etd_h_grad_post(etd_call *c)
{
    etd_probe_result r;
    if (!ep_inputs(c, xy_keys, true))
        return;
    etd_json_doc_free(&c->doc);
    if (!ep_ok(c, etd_model_probe(c->m, &c->x, &c->y, &r, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"loss\":");
    etd_json_float(out, r.loss);
    etd_buf_puts(out, ",\"gradients\":");
    ep_write_tensors(out, &r.grads);
    etd_buf_puts(out, ",\"input_gradient\":");
    etd_json_tensor(out, r.input_grad);
    etd_buf_putc(out, '}');
    etd_probe_result_free(&r);
}

void etd_h_loss(etd_call *c)
{
    int64_t since = -1;
    const char *s = ep_query(c, "since");
    if (s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end) {
            ep_error(c, 400, "since: expected an integer step");
            return;
        }
        since = v;
    }
    etd_history h;
    if (!ep_model(c) || !ep_ok(c, etd_model_loss_history(c->m, since, &h, &c->e)))
        return;
    etd_buf *out = &c->rs->body;
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, h.step);
    etd_buf_puts(out, ",\"history\":[");
    for (size_t i = 0; i < h.n; i++) {
        etd_buf_puts(out, i ? ",[" : "[");
        etd_json_i64(out, h.steps[i]);
        etd_buf_putc(out, ',');
        etd_json_float(out, h.losses[i]);
        etd_buf_putc(out, ']');
    }
    etd_buf_puts(out, "]}");
    etd_history_free(&h);
}

void etd_h_checkpoint(etd_call *c)
{
    int64_t step;
    if (!ep_model(c) || !ep_ok(c, etd_model_checkpoint(c->m, &step, &c->e)))
        return;
    etd_buf_puts(&c->rs->body, "{\"saved\":true,\"step\":");
    etd_json_i64(&c->rs->body, step);
    etd_buf_putc(&c->rs->body, '}');
}
