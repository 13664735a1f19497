/*
 * nn_runner_attention.c - nn_runner's command for the attention layers of
 * nn_attention.h and F.scaled_dot_product_attention (tests/torch/
 * nn_attention.py drives it):
 *
 *   nn_runner attention '<json spec>' <in> <out>
 *       spec: {"type": "MultiheadAttention" | "TransformerEncoderLayer" |
 *             "TransformerEncoder" | "sdpa", torch's keyword arguments,
 *             "train": bool, "self": bool (query, key and value are one
 *             tensor), "kv_same": bool (key and value are one tensor),
 *             "need_weights", "average_attn_weights", "is_causal",
 *             "dropout_p", "mask_bool", "kpm_bool" (the mask entries are 0/1
 *             floats standing for torch.bool), "num_layers", "final_norm"}
 *       in:  query, key, value (or src), attn_mask, key_padding_mask,
 *            gout, gw (upstream gradient of the weights), p.<state name>...
 *       out: y, w, query_grad, key_grad, value_grad, attn_mask_grad,
 *            grad.<param name>..., init.<state name> (after construction)
 *       A construction or forward error is printed as "error: <code> <message>".
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/nn_attention.h>

#include "nn_runner.h"

static const cJSON *key(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

static double num(const cJSON *s, const char *k, double d)
{
    const cJSON *v = key(s, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}

static bool flag(const cJSON *s, const char *k, bool d)
{
    const cJSON *v = key(s, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : d;
}

static int report_error(void)
{
    printf("error: %d %s\n", (int)et_errcode(), et_errmsg());
    return 0;
}

static et_encoder_layer_opts layer_opts(const cJSON *s)
{
    et_encoder_layer_opts o = ET_ENCODER_LAYER_DEFAULTS;
    o.dim_feedforward = (int64_t)num(s, "dim_feedforward", 2048);
    o.dropout = (float)num(s, "dropout", 0.1);
    o.layer_norm_eps = num(s, "layer_norm_eps", 1e-5);
    o.batch_first = flag(s, "batch_first", false);
    o.norm_first = flag(s, "norm_first", false);
    const cJSON *a = key(s, "activation");
    if (cJSON_IsString(a) && et_transformer_activation_parse(a->valuestring, &o.activation) != ET_OK)
        o.activation = (et_transformer_activation)99;   /* the constructor reports it */
    return o;
}

static et_module *build(const cJSON *s, const char *type, et_generator *g)
{
    if (!strcmp(type, "MultiheadAttention")) {
        et_mha_opts o = ET_MHA_DEFAULTS;
        o.dropout = (float)num(s, "dropout", 0);
        o.bias = flag(s, "bias", true);
        o.add_bias_kv = flag(s, "add_bias_kv", false);
        o.add_zero_attn = flag(s, "add_zero_attn", false);
        o.kdim = (int64_t)num(s, "kdim", 0);
        o.vdim = (int64_t)num(s, "vdim", 0);
        o.batch_first = flag(s, "batch_first", false);
        return et_multihead_attention_new((int64_t)num(s, "embed_dim", 0),
                                          (int64_t)num(s, "num_heads", 0), o, g);
    }
    int64_t d = (int64_t)num(s, "d_model", 0), h = (int64_t)num(s, "nhead", 0);
    if (!strcmp(type, "TransformerEncoderLayer"))
        return et_transformer_encoder_layer_new(d, h, layer_opts(s), g);
    if (!strcmp(type, "TransformerEncoder")) {
        et_module *layer = et_transformer_encoder_layer_new(d, h, layer_opts(s), g);
        et_module *norm = NULL;
        if (flag(s, "final_norm", false))
            norm = et_layer_norm_new(&d, 1, num(s, "layer_norm_eps", 1e-5), true);
        return et_transformer_encoder_new(layer, (int)num(s, "num_layers", 1), norm);
    }
    et_set_error(ET_ERR_ARG, "runner: unknown attention type '%s'", type);
    return NULL;
}

/* a mask entry of `in` (NULL if absent), int64 when it stands for a bool mask */
static et_tensor *mask_of(const et_tensor_dict *in, const char *name, bool as_bool)
{
    if (!et_tensor_dict_get(in, name))
        return NULL;
    et_tensor *m = get(in, name, !as_bool);
    if (!as_bool)
        return m;
    et_tensor *b = et_to_dtype(m, ET_INT64);
    et_tensor_free(m);
    return b;
}

static void put_grad(et_tensor_dict *out, const char *name, et_tensor *t)
{
    if (t && et_grad(t))
        et_tensor_dict_set(out, name, et_grad(t));
}

static int cmd_attention(const char *spec, const char *inp, const char *outp)
{
    cJSON *s = cJSON_Parse(spec);
    if (!s)
        return fail("attention: spec is not JSON");
    const cJSON *t = key(s, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    bool sdpa = !strcmp(type, "sdpa");
    et_generator *g = et_generator_new((uint64_t)num(s, "seed", 0));
    et_module *m = sdpa ? NULL : build(s, type, g);
    et_tensor_dict *in = load(inp);
    if (!in)
        return 1;
    int rc = 0;
    if (!sdpa && !m) {
        rc = report_error();
        goto done;
    }
    et_tensor_dict *out = et_tensor_dict_new();
    for (int i = 0; m && i < et_module_num_state(m); i++) {
        char name[160];
        snprintf(name, sizeof name, "init.%s", et_module_state_name(m, i));
        et_tensor *c = et_clone(et_module_state_tensor(m, i));   /* before the load */
        et_tensor_dict_set(out, name, c);
        et_tensor_free(c);
    }
    if (m) {
        et_module_train(m, flag(s, "train", true));
        if (load_params(m, in)) {
            rc = 1;
            goto done;
        }
    }
    bool self = flag(s, "self", false), kv_same = flag(s, "kv_same", false);
    bool is_layer = !strncmp(type, "Transformer", 11);
    et_tensor *q = get(in, is_layer ? "src" : "query", true);
    et_tensor *k = self || is_layer ? q : get(in, "key", true);
    et_tensor *v = self || is_layer || kv_same ? k : get(in, "value", true);
    et_tensor *am = mask_of(in, is_layer ? "mask" : "attn_mask", flag(s, "mask_bool", false));
    et_tensor *kpm = mask_of(in, "key_padding_mask", flag(s, "kpm_bool", false));
    et_tensor *w = NULL, *y = NULL;
    bool need = flag(s, "need_weights", false);
    if (!q || !k || !v) {
        rc = 1;
        goto done;
    }
    if (sdpa)
        y = et_scaled_dot_product_attention(q, k, v, am, (float)num(s, "dropout_p", 0),
                                            flag(s, "is_causal", false), g, need ? &w : NULL);
    else if (!strcmp(type, "MultiheadAttention"))
        y = et_multihead_attention_forward(m, q, k, v, kpm, need, am,
                                           flag(s, "average_attn_weights", true), &w);
    else if (!strcmp(type, "TransformerEncoderLayer"))
        y = et_transformer_encoder_layer_forward(m, q, am, kpm);
    else
        y = et_transformer_encoder_forward(m, q, am, kpm);
    if (!y) {
        rc = report_error();
        et_tensor_dict_free(out);
    } else {
        et_tensor *gout = et_tensor_dict_get(in, "gout") ? get(in, "gout", false) : NULL;
        et_tensor *gw = et_tensor_dict_get(in, "gw") ? get(in, "gw", false) : NULL;
        if (gout && gw && w) {
            /* one backward through both results: sum(y * gout) + sum(w * gw) */
            et_pool_begin();
            et_tensor *l = et_add(et_sum_all(et_mul(y, gout)), et_sum_all(et_mul(w, gw)));
            if (!l || et_backward(l, NULL) != ET_OK)
                rc = fail("backward");
            et_pool_end();
        } else if (gout && et_requires_grad(y) && et_backward(y, gout) != ET_OK) {
            rc = fail("backward");
        }
        et_tensor_dict_set(out, "y", y);
        if (w)
            et_tensor_dict_set(out, "w", w);
        put_grad(out, is_layer ? "src_grad" : "query_grad", q);
        if (k != q)
            put_grad(out, "key_grad", k);
        if (v != k)
            put_grad(out, "value_grad", v);
        if (am && et_tensor_dtype(am) == ET_FLOAT32)
            put_grad(out, "attn_mask_grad", am);
        for (int i = 0; m && i < et_module_num_params(m); i++) {
            char name[160];
            snprintf(name, sizeof name, "grad.%s", et_module_param_name(m, i));
            put_grad(out, name, et_module_param(m, i));
        }
        if (rc == 0)
            rc = save(out, outp);
        else
            et_tensor_dict_free(out);
        et_tensor_free(gout);
        et_tensor_free(gw);
    }
    et_tensor_free(y);
    et_tensor_free(w);
    if (v != k)
        et_tensor_free(v);
    if (k != q)
        et_tensor_free(k);
    et_tensor_free(q);
    et_tensor_free(am);
    et_tensor_free(kpm);
done:
    cJSON_Delete(s);
    et_tensor_dict_free(in);
    et_module_free(m);
    et_generator_free(g);
    return rc;
}

int nn_runner_attention(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "attention"))
        return cmd_attention(argv[2], argv[3], argv[4]);
    return -1;
}
