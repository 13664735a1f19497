/* v1_eval.c - measuring a model: POST /v1/models/{name}/evaluate (docs/API.md). */
#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

void etd_h_evaluate(etd_call *c)
{
    static const char *const keys[] = {"inputs", "targets", "metrics", "k", NULL};
    etd_eval_opts o;
    if (!ep_inputs(c, keys, true) || !ep_metrics(c, c->doc.root, "", &o))
        return;
    etd_json_doc_free(&c->doc);
    etd_eval_result r;
    if (!ep_ok(c, etd_model_evaluate(c->m, &c->x, &c->y, &o, &r, &c->e)))
        return;
    ep_write_eval(&c->rs->body, &r);
}

void ep_write_eval(etd_buf *out, const etd_eval_result *r)
{
    etd_buf_puts(out, "{\"step\":");
    etd_json_i64(out, r->step);
    etd_buf_puts(out, ",\"rows\":");
    etd_json_i64(out, r->rows);
    etd_buf_puts(out, ",\"metrics\":");
    ep_write_metric_values(out, r->metrics, r->value);
    if (r->nlosses) { /* a loss list: each entry's own loss, in its order */
        etd_buf_puts(out, ",\"losses\":[");
        for (int i = 0; i < r->nlosses; i++) {
            etd_buf_puts(out, i ? "," : "");
            etd_json_float(out, r->losses[i]);
        }
        etd_buf_putc(out, ']');
    }
    if (r->noutputs) { /* ... and the metrics of each output it measures */
        etd_buf_puts(out, ",\"outputs\":{");
        for (int i = 0; i < r->noutputs; i++) {
            etd_buf_puts(out, i ? "," : "");
            etd_json_str(out, r->outputs[i].name);
            etd_buf_putc(out, ':');
            ep_write_metric_values(out, r->outputs[i].metrics, r->outputs[i].value);
        }
        etd_buf_putc(out, '}');
    }
    bool topk = r->metrics & 1u << ETD_M_TOPK;
    for (int i = 0; i < r->noutputs; i++)
        topk = topk || (r->outputs[i].metrics & 1u << ETD_M_TOPK);
    if (topk) {
        etd_buf_puts(out, ",\"k\":");
        etd_json_i64(out, r->k);
    }
    etd_buf_putc(out, '}');
}
