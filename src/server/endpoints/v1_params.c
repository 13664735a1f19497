/* v1_params.c - GET and PUT /v1/models/{name}/parameters, as JSON tensors or
 * a safetensors file (docs/API.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

void etd_h_params_get(etd_call *c)
{
    /* ?format= wins over Accept */
    const char *fmt = ep_query(c, "format");
    bool st_fmt = false;
    if (fmt && strcmp(fmt, "safetensors") != 0 && strcmp(fmt, "json") != 0) {
        ep_error(c, 400, "format: expected \"json\" or \"safetensors\"");
        return;
    }
    if (fmt)
        st_fmt = strcmp(fmt, "safetensors") == 0;
    else if (!ep_wants_binary(c, &st_fmt))
        return;
    etd_tensors p;
    if (!ep_model(c) || !ep_ok(c, etd_model_parameters(c->m, &p, &c->e)))
        return;
    if (!st_fmt) {
        etd_buf_puts(&c->rs->body, "{\"parameters\":");
        ep_write_tensors(&c->rs->body, &p);
        etd_buf_putc(&c->rs->body, '}');
        etd_tensors_free(&p);
        return;
    }
    /* the state_dict (F32 parameters and buffers, I64 num_batches_tracked),
     * with torch's "format": "pt" */
    et_tensor_dict *d = et_tensor_dict_new();
    uint8_t *buf = NULL;
    size_t len = 0;
    bool ok = d && et_tensor_dict_set_meta(d, "format", "pt") == ET_OK;
    for (int i = 0; ok && i < p.n; i++)
        ok = et_tensor_dict_set(d, p.names[i], p.t[i]) == ET_OK;
    ok = ok && et_safetensors_dump(d, &buf, &len) == ET_OK;
    et_tensor_dict_free(d);
    etd_tensors_free(&p);
    if (!ok) {
        ep_error(c, 500, "%s", et_errmsg());
        return;
    }
    c->rs->raw = buf;
    c->rs->raw_len = len;
    c->rs->raw_free = true;
    c->rs->content_type = "application/octet-stream";
    char disp[160];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.safetensors\"", c->rq->name);
    etd_response_header(c->rs, "Content-Disposition", disp);
}

/* The JSON form: {"parameters": {name: tensor, ...}} or the bare map. */
static et_tensor_dict *json_parameters(etd_call *c)
{
    if (!ep_json(c, NULL))
        return NULL;
    const cJSON *j = c->doc.root;
    if (!cJSON_IsObject(j)) {
        ep_error(c, 400, "body: expected {\"parameters\": {name: tensor, ...}}");
        return NULL;
    }
    const cJSON *p = j;
    const cJSON *wrapped = cJSON_GetObjectItemCaseSensitive(j, "parameters");
    if (wrapped) {
        static const char *const keys[] = {"parameters", NULL};
        if (!ep_keys(c, j, keys))
            return NULL;
        if (!cJSON_IsObject(wrapped)) {
            ep_error(c, 400, "parameters: expected an object of name: tensor");
            return NULL;
        }
        p = wrapped;
    }
    et_tensor_dict *d = et_tensor_dict_new();
    if (!d) {
        ep_error(c, 500, "out of memory");
        return NULL;
    }
    for (const cJSON *e = p->child; e; e = e->next) {
        char what[300], err[ETD_ERRCAP];
        snprintf(what, sizeof what, "parameters.%s", e->string);
        if (et_tensor_dict_get(d, e->string)) {
            ep_error(c, 400, "%s: repeated parameter", what);
            goto fail;
        }
        /* int64 buffers (num_batches_tracked) as whole numbers, exact beyond 2^24 */
        etd_array a;
        bool ints = etd_model_state_is_int64(c->m, e->string);
        if (!(ints ? etd_array_from_json_ints(e, what, c->rq->app->json.max_elems, &a, err,
                                              sizeof err)
                   : etd_array_from_json(e, what, c->rq->app->json.max_elems, &a, err,
                                         sizeof err))) {
            ep_error(c, 400, "%s", err);
            goto fail;
        }
        et_tensor *t = etd_array_tensor(&a);
        etd_array_free(&a);
        if (!t) {
            ep_error(c, 500, "%s: %s", what, et_errmsg());
            goto fail;
        }
        et_status s = et_tensor_dict_set(d, e->string, t);
        et_tensor_free(t);
        if (s != ET_OK) {
            ep_error(c, 500, "%s", et_errmsg());
            goto fail;
        }
    }
    return d;
fail:
    et_tensor_dict_free(d);
    return NULL;
}

void etd_h_params_put(etd_call *c)
{
    if (!ep_model(c))
        return;
    et_tensor_dict *d = NULL;
    if (c->kind == ETD_BODY_SAFETENSORS) { /* Content-Type octet-stream, or sniffed */
        if (et_safetensors_parse((const uint8_t *)c->rq->body, c->rq->body_len, &d) != ET_OK) {
            ep_error(c, 400, "body: %s", et_errmsg()); /* "safetensors: ..." */
            return;
        }
    } else if (!(d = json_parameters(c))) {
        return;
    }
    etd_json_doc_free(&c->doc);
    if (ep_ok(c, etd_model_put_parameters(c->m, d, &c->e))) {
        etd_buf_puts(&c->rs->body, "{\"updated\":[");
        for (int i = 0; i < et_tensor_dict_len(d); i++) {
            if (i)
                etd_buf_putc(&c->rs->body, ',');
            etd_json_str(&c->rs->body, et_tensor_dict_name(d, i));
        }
        etd_buf_puts(&c->rs->body, "]}");
    }
    et_tensor_dict_free(d);
}
