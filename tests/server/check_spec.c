/* check_spec.c - model specifications (spec.h): every layer and loss type
 * parses; omitted fields take torch's defaults, read from torch's own
 * signatures (spec_testlib.c); bad fields are refused with a message naming
 * them; the whole spec's fields and limits, key checks and did-you-mean.
 * Optimizers and schedulers: check_spec_optim.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"
#include "spec_testlib.h"

/* ---- layers ---- */

START_TEST(test_every_layer_type_parses_with_torch_defaults)
{
    etd_spec s;
    layer_spec("{\"type\":\"Linear\",\"in_features\":2,\"out_features\":4}", &s);
    ck_assert_str_eq(s.layers[1].type->name, "Linear");
    ck_assert_int_eq(s.layers[1].u.linear.out_features, 4);
    eq_num("Linear.bias", s.layers[1].u.linear.bias);
    ck_assert_int_eq(s.param_count, 3 * 2 + 2 + 2 * 4 + 4);
    etd_spec_free(&s);

    /* every other row of the table with only its required fields (after a
     * Linear giving width 2): the rest are torch's defaults */
    static const struct { const char *type, *required; } req[] = {
        {"BatchNorm1d", ",\"num_features\":2"}, {"BatchNorm2d", ",\"num_features\":3"},
        {"LayerNorm", ",\"normalized_shape\":2"},
        {"GroupNorm", ",\"num_groups\":1,\"num_channels\":2"},
        {"Embedding", ",\"num_embeddings\":5,\"embedding_dim\":3"},
        {"EmbeddingBag", ",\"num_embeddings\":5,\"embedding_dim\":3"},
        {"Conv1d", ",\"in_channels\":2,\"out_channels\":3,\"kernel_size\":3"},
        {"Conv2d", ",\"in_channels\":2,\"out_channels\":3,\"kernel_size\":3"},
        {"ConvTranspose2d", ",\"in_channels\":2,\"out_channels\":3,\"kernel_size\":3"},
        {"MaxPool1d", ",\"kernel_size\":2"}, {"MaxPool2d", ",\"kernel_size\":2"},
        {"AvgPool1d", ",\"kernel_size\":2"}, {"AvgPool2d", ",\"kernel_size\":2"},
        {"AdaptiveAvgPool1d", ",\"output_size\":1"}, {"AdaptiveAvgPool2d", ",\"output_size\":1"},
        {"AdaptiveMaxPool1d", ",\"output_size\":1"}, {"AdaptiveMaxPool2d", ",\"output_size\":1"},
        {"ZeroPad2d", ",\"padding\":1"}, {"ConstantPad1d", ",\"padding\":1,\"value\":0.5"},
        {"ConstantPad2d", ",\"padding\":1,\"value\":0.5"}, {"ReflectionPad1d", ",\"padding\":1"},
        {"ReflectionPad2d", ",\"padding\":1"}, {"ReplicationPad1d", ",\"padding\":1"},
        {"ReplicationPad2d", ",\"padding\":1"},
        {"Unflatten", ",\"dim\":1,\"unflattened_size\":[1,2]"},
        {"MultiheadAttention", ",\"embed_dim\":2,\"num_heads\":1"},
        {"TransformerEncoderLayer", ",\"d_model\":2,\"nhead\":2"},
        {"TransformerEncoder", ",\"num_layers\":1,\"encoder_layer\":"
                               "{\"type\":\"TransformerEncoderLayer\",\"d_model\":2,\"nhead\":1}"},
    };
    int seen = 0;
    for (int i = 0; i < etd_nlayer_types; i++) {
        const char *type = etd_layer_types[i].name, *extra = "";
        if (strcmp(type, "Linear") == 0)
            continue;
        for (size_t k = 0; k < sizeof req / sizeof req[0]; k++)
            if (strcmp(req[k].type, type) == 0)
                extra = req[k].required;
        char l[256];
        snprintf(l, sizeof l, "{\"type\":\"%s\"%s}", type, extra);
        layer_spec(l, &s);
        const etd_layer *x = &s.layers[1];
        ck_assert_ptr_eq(x->type, &etd_layer_types[i]);
        if (strcmp(type, "GELU") == 0)
            eq_str("GELU.approximate", x->u.gelu.tanh ? "tanh" : "none");
        else if (strcmp(type, "LeakyReLU") == 0)
            eq_num("LeakyReLU.negative_slope", x->u.leaky_relu.negative_slope);
        else if (strcmp(type, "Dropout") == 0)
            eq_num("Dropout.p", x->u.dropout.p);
        else if (strcmp(type, "Flatten") == 0) {
            eq_num("Flatten.start_dim", x->u.flatten.start_dim);
            eq_num("Flatten.end_dim", x->u.flatten.end_dim);
        } else if (strcmp(type, "ELU") == 0) {
            eq_num("ELU.alpha", x->u.act.a);
        } else if (strcmp(type, "Softplus") == 0) {
            eq_num("Softplus.beta", x->u.act.a);
            eq_num("Softplus.threshold", x->u.act.b);
        } else if (strcmp(type, "Hardtanh") == 0) {
            eq_num("Hardtanh.min_val", x->u.act.a);
            eq_num("Hardtanh.max_val", x->u.act.b);
        } else if (strcmp(type, "Softmax") == 0 || strcmp(type, "LogSoftmax") == 0) {
            /* torch's dim=None picks a dim implicitly (deprecated); the daemon uses the
             * last dim, which is what that picks for the 2-D batches it serves (docs/API.md) */
            ck_assert_int_eq(x->u.softmax.dim, -1);
        } else if (strncmp(type, "BatchNorm", 9) == 0) {
            char k[64];
#define B(f, v) (snprintf(k, sizeof k, "%s.%s", type, f), eq_num(k, v))
            B("eps", x->u.batch_norm.o.eps);
            B("momentum", x->u.batch_norm.o.momentum);
            B("affine", x->u.batch_norm.o.affine);
            B("track_running_stats", x->u.batch_norm.o.track_running_stats);
#undef B
        } else if (strcmp(type, "LayerNorm") == 0) {
            eq_num("LayerNorm.eps", x->u.layer_norm.eps);
            eq_num("LayerNorm.elementwise_affine", x->u.layer_norm.affine);
        } else if (strcmp(type, "GroupNorm") == 0) {
            eq_num("GroupNorm.eps", x->u.group_norm.eps);
            eq_num("GroupNorm.affine", x->u.group_norm.affine);
        } else if (strncmp(type, "Embedding", 9) == 0) {
            char k[64];
            snprintf(k, sizeof k, "%s.norm_type", type);
            eq_num(k, x->u.embedding.o.norm_type);
            snprintf(k, sizeof k, "%s.scale_grad_by_freq", type);
            eq_num(k, x->u.embedding.o.scale_grad_by_freq);
            /* torch's None for both */
            ck_assert(x->u.embedding.o.padding_idx == ET_NO_INDEX && x->u.embedding.o.max_norm == 0);
            if (type[9] == 'B') {
                eq_str("EmbeddingBag.mode", et_bag_mode_name(x->u.embedding.o.mode));
                eq_num("EmbeddingBag.include_last_offset", x->u.embedding.o.include_last_offset);
            }
        } else if (strncmp(type, "Conv", 4) == 0) {
            char k[64];
            const et_conv_opts *c = &x->u.conv.o;
#define C(f, v) (snprintf(k, sizeof k, "%s.%s", type, f), eq_num(k, v))
            C("stride", c->stride[0]);
            C("padding", c->padding[0]);
            C("dilation", c->dilation[0]);
            C("groups", c->groups);
            C("bias", c->bias);
            if (strcmp(type, "ConvTranspose2d") == 0)
                C("output_padding", c->output_padding[0]);
#undef C
            snprintf(k, sizeof k, "%s.padding_mode", type);
            eq_str(k, "zeros");
            ck_assert(c->padding_mode == ET_PAD_CONSTANT && c->stride[1] == c->stride[0]);
        } else if (strstr(type, "Pool") && !strstr(type, "Adaptive")) {
            char k[64];
            const et_pool_opts *p = &x->u.pool.o;
            ck_assert(p->stride[0] == 0); /* torch's stride=None: the kernel size */
#define P(f, v) (snprintf(k, sizeof k, "%s.%s", type, f), eq_num(k, v))
            P("padding", p->padding[0]);
            P("ceil_mode", p->ceil_mode);
            if (strncmp(type, "Max", 3) == 0) {
                P("dilation", p->dilation[0]);
                P("return_indices", 0);
            } else {
                P("count_include_pad", p->count_include_pad);
            }
#undef P
        } else if (strcmp(type, "Dropout2d") == 0) {
            eq_num("Dropout2d.p", x->u.dropout.p);
        } else if (strcmp(type, "MultiheadAttention") == 0) {
            const et_mha_opts *m = &x->u.mha.o;
            eq_num("MultiheadAttention.dropout", m->dropout);
            eq_num("MultiheadAttention.bias", m->bias);
            eq_num("MultiheadAttention.add_bias_kv", m->add_bias_kv);
            eq_num("MultiheadAttention.add_zero_attn", m->add_zero_attn);
            eq_num("MultiheadAttention.batch_first", m->batch_first);
            ck_assert(m->kdim == 0 && m->vdim == 0 && x->mask.kind == ETD_MASK_NONE); /* None */
            ck_assert_int_eq(s.param_count, 3 * 2 + 2 + 4 * 2 * 2 + 4 * 2);
        } else if (strncmp(type, "Transformer", 11) == 0) {
            /* TransformerEncoder: its encoder_layer's defaults */
            bool enc = strcmp(type, "TransformerEncoder") == 0;
            const et_encoder_layer_opts *o = enc ? &x->kids[0].u.enc_layer.o : &x->u.enc_layer.o;
            eq_num("TransformerEncoderLayer.dim_feedforward", (double)o->dim_feedforward);
            /* a float32 in the library, as in MultiheadAttention */
            ck_assert(o->dropout == (float)tdef("TransformerEncoderLayer.dropout")->valuedouble);
            eq_num("TransformerEncoderLayer.layer_norm_eps", o->layer_norm_eps);
            eq_num("TransformerEncoderLayer.batch_first", o->batch_first);
            eq_num("TransformerEncoderLayer.norm_first", o->norm_first);
            /* torch's default activation is the function F.relu */
            ck_assert(o->activation == ET_ACT_RELU && x->mask.kind == ETD_MASK_NONE);
            if (enc) {
                eq_num("TransformerEncoder.enable_nested_tensor", 1);
                eq_num("TransformerEncoder.mask_check", 1);
                ck_assert(x->kids[1].type == NULL && x->u.encoder.num_layers == 1);
            }
        }
        etd_spec_free(&s);
        seen++;
    }
    ck_assert_int_ge(seen, 35); /* ReLU, ..., the norm, embedding and image layers */
}
END_TEST

START_TEST(test_layer_fields_are_read)
{
    etd_spec s;
    layer_spec("{\"type\":\"LeakyReLU\",\"negative_slope\":0.2,\"inplace\":true}", &s);
    ck_assert(s.layers[1].u.leaky_relu.negative_slope == 0.2);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"GELU\",\"approximate\":\"tanh\"}", &s);
    ck_assert(s.layers[1].u.gelu.tanh);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"Flatten\",\"start_dim\":0,\"end_dim\":1}", &s);
    ck_assert_int_eq(s.layers[1].u.flatten.start_dim, 0);
    ck_assert_int_eq(s.layers[1].u.flatten.end_dim, 1);
    etd_spec_free(&s);
    layer_spec("{\"type\":\"Dropout\",\"p\":0.25}", &s);
    ck_assert(s.layers[1].u.dropout.p == 0.25);
    etd_spec_free(&s);
}
END_TEST

START_TEST(test_layer_errors_name_the_field)
{
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2,\"bogus\":1}],"
              BASE_LOSS "," BASE_OPT "}", "layers[0].bogus", "unknown field");
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3}]," BASE_LOSS "," BASE_OPT "}",
              "out_features", "missing");
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":0,\"out_features\":2}],"
              BASE_LOSS "," BASE_OPT "}", "in_features", "positive");
    must_fail("{\"layers\":[{\"type\":\"LSTM\"}]," BASE_LOSS "," BASE_OPT "}", "LSTM", "known:");
    must_fail("{\"layers\":[{\"type\":\"Conv2d\"}]," BASE_LOSS "," BASE_OPT "}",
              "layers[0].in_channels", "missing");
    must_fail("{\"layers\":[{\"type\":\"Dropout\",\"p\":1.5}]," BASE_LOSS "," BASE_OPT "}",
              "p", NULL);
    must_fail("{\"layers\":[{\"type\":\"GELU\",\"approximate\":\"fast\"}]," BASE_LOSS "," BASE_OPT "}",
              "approximate", NULL);
    must_fail("{\"layers\":[{\"type\":\"ReLU\",\"inplace\":1}]," BASE_LOSS "," BASE_OPT "}",
              "inplace", NULL);
    must_fail("{\"layers\":[{\"type\":\"Tanh\",\"x\":1}]," BASE_LOSS "," BASE_OPT "}", "x",
              "unknown field");
    /* float-typed fields: a double that overflows float32 is refused by the parser (H8) */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},"
              "{\"type\":\"LeakyReLU\",\"negative_slope\":1e100}]," BASE_LOSS "," BASE_OPT "}",
              "layers[1].negative_slope", NULL);
    /* Linear feature chaining */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},"
              "{\"type\":\"Linear\",\"in_features\":5,\"out_features\":1}]," BASE_LOSS "," BASE_OPT "}",
              "in_features", NULL);
}
END_TEST

/* ---- losses ---- */

START_TEST(test_every_loss_type_parses_with_torch_defaults)
{
    const struct { const char *type; const char *arg; } losses[] = {
        {"MSELoss", NULL}, {"L1Loss", NULL}, {"CrossEntropyLoss", "label_smoothing"},
        {"NLLLoss", NULL}, {"BCELoss", NULL}, {"BCEWithLogitsLoss", NULL},
        {"HuberLoss", "delta"}, {"SmoothL1Loss", "beta"}, {"KLDivLoss", NULL},
    };
    /* + MarginRankingLoss, CosineEmbeddingLoss, TripletMarginLoss: several outputs, below */
    ck_assert_int_eq(etd_nloss_types, (int)(sizeof losses / sizeof losses[0]) + 3);
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        char text[512], key[64];
        /* both the string shorthand and the object form */
        for (int form = 0; form < 2; form++) {
            if (form == 0)
                snprintf(text, sizeof text, "{" BASE_LAYERS ",\"loss\":\"%s\"," BASE_OPT "}",
                         losses[i].type);
            else
                snprintf(text, sizeof text, "{" BASE_LAYERS ",\"loss\":{\"type\":\"%s\"}," BASE_OPT "}",
                         losses[i].type);
            etd_spec s;
            must_parse(text, &s);
            ck_assert_str_eq(s.loss.type->name, losses[i].type);
            snprintf(key, sizeof key, "%s.reduction", losses[i].type);
            eq_str(key, s.loss.reduction == ET_REDUCTION_SUM ? "sum" : "mean");
            if (losses[i].arg) {
                snprintf(key, sizeof key, "%s.%s", losses[i].type, losses[i].arg);
                eq_num(key, s.loss.arg);
            }
            etd_spec_free(&s);
        }
    }
}
END_TEST

/* The losses of several outputs: only in a graph's loss list, torch's defaults. */
#define PAIR_GRAPH "\"inputs\":[\"a\",\"b\",\"c\"],\"nodes\":[" \
    "{\"name\":\"f\",\"module\":{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2},\"args\":[\"a\"]}," \
    "{\"name\":\"g\",\"module\":\"f\",\"args\":[\"b\"]},{\"name\":\"h\",\"module\":\"f\",\"args\":[\"c\"]}]," \
    "\"outputs\":[\"f\",\"g\",\"h\"]"
START_TEST(test_multi_output_losses)
{
    etd_spec s;
    must_parse("{" PAIR_GRAPH ",\"loss\":[{\"type\":\"MarginRankingLoss\",\"output\":[\"f\",\"g\"],"
               "\"target\":\"y\"},{\"type\":\"CosineEmbeddingLoss\",\"output\":[\"g\",\"h\"],"
               "\"target\":\"y\",\"weight\":0.5},{\"type\":\"TripletMarginLoss\",\"output\":[\"f\",\"g\","
               "\"h\"]}]," BASE_OPT "}", &s);
    ck_assert_int_eq(s.nterms, 3);
    ck_assert_int_eq(s.ntargets, 1);
    ck_assert_str_eq(s.target_names[0], "y");
    eq_num("MarginRankingLoss.margin", s.terms[0].l.arg);
    eq_num("CosineEmbeddingLoss.margin", s.terms[1].l.arg);
    ck_assert(s.terms[1].weight == 0.5);
    eq_num("TripletMarginLoss.margin", s.terms[2].l.arg);
    eq_num("TripletMarginLoss.p", s.terms[2].l.p);
    eq_num("TripletMarginLoss.eps", s.terms[2].l.eps);
    ck_assert(!s.terms[2].l.flag); /* swap=False */
    ck_assert_int_eq(s.terms[2].target, -1);
    ck_assert_int_eq(s.terms[2].out[2], 2);
    etd_spec_free(&s);
    must_fail("{" BASE_LAYERS ",\"loss\":\"TripletMarginLoss\"," BASE_OPT "}", "loss",
              "takes 3 outputs");
    must_fail("{" PAIR_GRAPH ",\"loss\":[{\"type\":\"MarginRankingLoss\",\"output\":\"f\","
              "\"target\":\"y\"}]," BASE_OPT "}", "loss[0].output", "list of 2");
}
END_TEST

START_TEST(test_loss_errors_name_the_field)
{
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"delta\":1}," BASE_OPT "}",
              "loss.delta", "unknown field");
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"reduction\":\"none\"}," BASE_OPT "}",
              "loss.reduction", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":\"CTCLoss\"," BASE_OPT "}", "CTCLoss", NULL);
    /* batchmean is KLDivLoss's only */
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"reduction\":\"batchmean\"},"
              BASE_OPT "}", "loss.reduction", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"BCEWithLogitsLoss\",\"pos_weight\":[1,\"x\"]},"
              BASE_OPT "}", "loss.pos_weight[1]", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"CrossEntropyLoss\",\"weight\":[]},"
              BASE_OPT "}", "loss.weight", NULL);
    must_fail("{" BASE_LAYERS "," BASE_OPT "}", "loss", "missing");
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"HuberLoss\",\"delta\":0}," BASE_OPT "}",
              "loss.delta", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"HuberLoss\",\"delta\":1e300}," BASE_OPT "}",
              "loss.delta", NULL);
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"SmoothL1Loss\",\"beta\":1e300}," BASE_OPT "}",
              "loss.beta", NULL);
}
END_TEST

/* ---- the whole spec ---- */

START_TEST(test_top_level_fields_and_limits)
{
    etd_spec s;
    must_parse("{\"name\":\"ignored\",\"seed\":7," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert(s.has_seed);
    ck_assert_uint_eq(s.seed, 7);
    ck_assert_int_eq(s.in_features, 3);
    ck_assert_int_eq(s.out_features, 2);
    ck_assert_int_eq(s.param_count, 8);
    etd_spec_free(&s);
    must_fail("{\"extra\":1," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", "extra",
              "unknown field (accepted: name, layers, loss, optimizer, scheduler, seed, batching, nonfinite, "
              "sync_batchnorm, inputs, modules, nodes, outputs)");
    must_fail("{\"sync_batchnorm\":1," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}",
              "sync_batchnorm: expected true or false", NULL);
    must_parse("{\"sync_batchnorm\":true," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert(s.sync_batchnorm);
    etd_spec_free(&s);
    must_fail("{\"seed\":1,\"seed\":2," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", "seed",
              "repeated field");
    /* the divergence guard's policy: skip by default */
    must_parse("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert_int_eq(s.nonfinite, 0);
    etd_spec_free(&s);
    must_parse("{\"nonfinite\":\"rollback\"," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert_int_eq(s.nonfinite, 1);
    etd_spec_free(&s);
    must_parse("{\"nonfinite\":\"allow\"," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", &s);
    ck_assert_int_eq(s.nonfinite, 2);
    etd_spec_free(&s);
    must_fail("{\"nonfinite\":\"Skip\"," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}",
              "nonfinite: expected \"skip\", \"rollback\" or \"allow\"", "did you mean \"skip\"");
    must_fail("{\"nonfinite\":true," BASE_LAYERS "," BASE_LOSS "," BASE_OPT "}", "nonfinite",
              NULL);
    must_fail("{\"layers\":[]," BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    must_fail("{" BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    /* no parameters: torch's optimizers refuse an empty parameter list */
    must_fail("{\"layers\":[{\"type\":\"Identity\"}]," BASE_LOSS "," BASE_OPT "}", "layers",
              "no parameters");
    /* parameter count over max_params (1e6 here), without overflow for huge sizes */
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":1099511627776,"
              "\"out_features\":1099511627776}]," BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_features\":1000,\"out_features\":1001}],"
              BASE_LOSS "," BASE_OPT "}", "layers", NULL);
    etd_spec zero = {0};
    etd_spec_free(&zero); /* freeing a zeroed spec is harmless */
}
END_TEST

START_TEST(test_parsed_spec_builds)
{
    etd_spec s;
    must_parse("{\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":4},"
               "{\"type\":\"ReLU\"},{\"type\":\"Linear\",\"in_features\":4,\"out_features\":2}],"
               "\"loss\":\"CrossEntropyLoss\",\"optimizer\":{\"type\":\"Adam\"},"
               "\"scheduler\":{\"type\":\"StepLR\",\"step_size\":2},\"seed\":1}", &s);
    etd_err err;
    et_generator *g = et_generator_new(1);
    et_module *net = etd_spec_build_net(&s, g, &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    int n = et_module_num_params(net);
    ck_assert_int_eq(n, 4);
    et_tensor *params[4];
    const char *names[4];
    for (int i = 0; i < n; i++) {
        params[i] = et_module_param(net, i);
        names[i] = et_module_param_name(net, i);
    }
    et_optim *o = etd_spec_build_optim(&s, params, names, n, &err);
    ck_assert_msg(o != NULL, "%s", err.msg);
    et_scheduler *sc = etd_spec_build_sched(&s, o, &err);
    ck_assert_msg(sc != NULL, "%s", err.msg);
    et_scheduler_free(sc);
    et_optim_free(o);
    et_module_free(net);
    et_generator_free(g);
    etd_spec_free(&s);
}
END_TEST

/* ---- etd_bad_key / etd_join_names ---- */

START_TEST(test_bad_key_finds_unknown_and_repeated_keys)
{
    static const char *const allowed[] = {"a", "b", NULL};
    bool rep = true;
    cJSON *j = cJSON_Parse("{\"a\":1,\"type\":2,\"b\":3}");
    ck_assert_ptr_null(etd_bad_key(j, allowed, "type", &rep));
    const cJSON *e = etd_bad_key(j, allowed, NULL, &rep);
    ck_assert_str_eq(e->string, "type");
    ck_assert(!rep);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"a\":1,\"b\":2,\"a\":3}");
    e = etd_bad_key(j, allowed, NULL, &rep);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->string, "a");
    ck_assert(rep);
    ck_assert_ptr_eq(e, cJSON_GetArrayItem(j, 2)); /* the repeat, not the first */
    cJSON_Delete(j);
    j = cJSON_Parse("{}");
    ck_assert_ptr_null(etd_bad_key(j, allowed, NULL, &rep));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_join_names_truncates_safely)
{
    static const char *const names[] = {"alpha", "beta", "gamma", "delta", NULL};
    static const char *const none[] = {NULL};
    char buf[64];
    etd_join_names(names, buf, sizeof buf);
    ck_assert_str_eq(buf, "alpha, beta, gamma, delta");
    etd_join_names(none, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    char small[9];
    memset(small, 'x', sizeof small);
    etd_join_names(names, small, 8); /* one byte of slack: nothing written past cap */
    ck_assert_str_eq(small, "alpha, ");
    ck_assert_int_eq(small[8], 'x');
}
END_TEST

/* ---- did you mean: case typos and near misses ---- */

START_TEST(test_typos_get_did_you_mean)
{
    must_fail("{\"layers\":[{\"type\":\"Relu\"}]," BASE_LOSS "," BASE_OPT "}",
              "unknown layer type \"Relu\" (known: Linear, ReLU,", "did you mean \"ReLU\"?");
    must_fail("{" BASE_LAYERS "," BASE_LOSS ",\"optimizer\":{\"type\":\"adam\"}}",
              "unknown optimizer type \"adam\"", "did you mean \"Adam\"?");
    must_fail("{" BASE_LAYERS ",\"loss\":\"mseloss\"," BASE_OPT "}", "loss.type",
              "did you mean \"MSELoss\"?");
    must_fail("{" BASE_LAYERS "," BASE_LOSS "," BASE_OPT ",\"scheduler\":{\"type\":\"StepLr\","
              "\"step_size\":1}}", "scheduler.type", "did you mean \"StepLR\"?");
    must_fail("{\"layers\":[{\"type\":\"Linear\",\"in_feature\":3,\"out_features\":2}],"
              BASE_LOSS "," BASE_OPT "}", "layers[0].in_feature: unknown field for Linear",
              "did you mean \"in_features\"?");
    must_fail("{" BASE_LAYERS ",\"loss\":{\"type\":\"MSELoss\",\"reduction\":\"Mean\"}," BASE_OPT "}",
              "loss.reduction: expected \"mean\" or \"sum\"", "did you mean \"mean\"?");
    must_fail("{\"Layers\":[]," BASE_LOSS "," BASE_OPT "}", "Layers: unknown field",
              "did you mean \"layers\"?");
    /* nothing close: no suggestion */
    etd_spec s;
    char err[ETD_ERRCAP];
    ck_assert(!parse_spec("{\"layers\":[{\"type\":\"Transformer\"}]," BASE_LOSS "," BASE_OPT "}",
                          &s, err, sizeof err));
    ck_assert_msg(!strstr(err, "did you mean"), "%s", err);
}
END_TEST

START_TEST(test_suggest_picks_one_close_name)
{
    static const char *const names[] = {"SGD", "Adagrad", "RMSprop", "Adam", "AdamW", NULL};
    ck_assert_str_eq(etd_suggest("adam", names), "Adam");     /* case only: exact pick */
    ck_assert_str_eq(etd_suggest("ADAMW", names), "AdamW");
    ck_assert_str_eq(etd_suggest("Adgrad", names), "Adagrad"); /* one letter missing */
    ck_assert_str_eq(etd_suggest("RMSPorp", names), "RMSprop"); /* swapped neighbours */
    ck_assert_ptr_null(etd_suggest("LBFGS", names));
    ck_assert_ptr_null(etd_suggest("", names));
    static const char *const close[] = {"lr", "lr_decay", "eps", NULL};
    ck_assert_ptr_null(etd_suggest("xy", close)); /* short names: one edit at most */
    static const char *const two[] = {"abcde1", "abcde2", NULL};
    ck_assert_ptr_null(etd_suggest("abcde", two)); /* as close to both: no pick */
}
END_TEST

/* ---- targets the loss cannot take: named before the library sees them ---- */

static char *loss_error(const char *loss, const float *out, int64_t n, int64_t c,
                        const float *tgt, const int64_t *tshape, int tnd)
{
    char text[512];
    snprintf(text, sizeof text, "{" BASE_LAYERS ",\"loss\":\"%s\"," BASE_OPT "}", loss);
    etd_spec s;
    must_parse(text, &s);
    et_tensor *o = et_tensor_new(out, (int64_t[]){n, c}, 2);
    et_tensor *t = et_tensor_new(tgt, tshape, tnd);
    etd_err e = {0};
    et_tensor *l = etd_spec_loss(&s, o, t, &e);
    static char msg[ETD_ERRCAP];
    snprintf(msg, sizeof msg, "%s", l ? "" : e.msg);
    ck_assert(l || e.rc == ETD_EINVAL);
    et_tensor_free(l);
    et_tensor_free(t);
    et_tensor_free(o);
    etd_spec_free(&s);
    return msg;
}

START_TEST(test_loss_targets_are_checked_with_clear_messages)
{
    const float out[6] = {0.1f, 0.2f, 0.7f, 1, 2, 3};
    /* one-hot / probability targets: CrossEntropyLoss takes them, NLLLoss class indices only */
    char *m = loss_error("CrossEntropyLoss", out, 1, 3, (float[]){0, 0, 1}, (int64_t[]){1, 3}, 2);
    ck_assert_str_eq(m, "");
    m = loss_error("NLLLoss", out, 1, 3, (float[]){0, 0, 1}, (int64_t[]){1, 3}, 2);
    ck_assert_msg(strstr(m, "targets: NLLLoss takes class indices, one per row: "
                            "expected shape [1], got [1, 3]") &&
                  strstr(m, "probability targets are CrossEntropyLoss's"), "%s", m);
    m = loss_error("CrossEntropyLoss", out, 2, 3, (float[]){1.5f, 0}, (int64_t[]){2}, 1);
    ck_assert_msg(strstr(m, "targets[0]: 1.5 is not an integer"), "%s", m);
    m = loss_error("NLLLoss", out, 2, 3, (float[]){0, 3}, (int64_t[]){2}, 1);
    ck_assert_msg(strstr(m, "targets[1]: class 3 is out of range for 3 classes"), "%s", m);
    m = loss_error("CrossEntropyLoss", out, 2, 3, (float[]){0, 1, 2}, (int64_t[]){3}, 1);
    ck_assert_msg(strstr(m, "targets: expected shape [2] (one class index per row"), "%s", m);
    /* torch's default ignore_index -100 is accepted */
    m = loss_error("CrossEntropyLoss", out, 2, 3, (float[]){-100, 2}, (int64_t[]){2}, 1);
    ck_assert_str_eq(m, "");
    /* MSE of the wrong width: the model's output is the output, not "input" */
    m = loss_error("MSELoss", out, 2, 1, (float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    ck_assert_msg(strstr(m, "targets: expected shape [2, 1] (the model's output") &&
                  strstr(m, "got [2, 3]") && !strstr(m, "input"), "%s", m);
    m = loss_error("HuberLoss", out, 2, 3, out, (int64_t[]){2, 3}, 2);
    ck_assert_str_eq(m, "");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spec");
    TCase *tc;
    tc = tcase_create("layers");
    tcase_add_test(tc, test_every_layer_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_layer_fields_are_read);
    tcase_add_test(tc, test_layer_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("losses");
    tcase_add_test(tc, test_every_loss_type_parses_with_torch_defaults);
    tcase_add_test(tc, test_multi_output_losses);
    tcase_add_test(tc, test_loss_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("spec");
    tcase_add_test(tc, test_top_level_fields_and_limits);
    tcase_add_test(tc, test_parsed_spec_builds);
    suite_add_tcase(s, tc);
    tc = tcase_create("key_checks");
    tcase_add_test(tc, test_bad_key_finds_unknown_and_repeated_keys);
    tcase_add_test(tc, test_join_names_truncates_safely);
    tcase_add_test(tc, test_typos_get_did_you_mean);
    tcase_add_test(tc, test_suggest_picks_one_close_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("loss_targets");
    tcase_add_test(tc, test_loss_targets_are_checked_with_clear_messages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    load_torch_defaults(); /* once: the forked tests inherit it */
    int rc = run_suite(suite());
    cJSON_Delete(torch_defaults);
    return rc;
}
