/*
 * check_attention.c - what the differential suite (tests/torch/
 * nn_attention.py) cannot compare with torch: dropout in training (random
 * masks on both sides), train/eval reaching every child, state names and
 * the copies of a TransformerEncoder, errors that change nothing, and the
 * C API's argument checks.
 */
#include <string.h>

#include <easytorch/nn_attention.h>

#include "nn_check.h"

static et_tensor *randn(et_generator *g, const int64_t *shape, int nd, bool rg)
{
    et_tensor *t = et_randn(g, shape, nd);
    et_set_requires_grad(t, rg);
    return t;
}

START_TEST(test_dropout_op)
{
    et_generator *g = et_generator_new(3);
    et_tensor *x = randn(g, ET_SHAPE(1000), true);
    et_tensor *same = et_dropout(x, 0.5f, false, g);
    ck_assert_ptr_eq(same, x);                       /* eval: x itself */
    et_tensor_free(same);
    et_tensor *y = et_dropout(x, 0.25f, true, g);
    const float *xd = et_data_const(x), *yd = et_data_const(y);
    int zeros = 0;
    for (int i = 0; i < 1000; i++) {
        if (yd[i] == 0.0f)
            zeros++;
        else
            ck_close(yd[i], xd[i] / 0.75f);
    }
    ck_assert_msg(zeros > 200 && zeros < 300, "%d of 1000 dropped at p 0.25", zeros);
    et_pool_begin();
    ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_OK);
    et_pool_end();
    const float *gd = et_data_const(et_grad(x));
    for (int i = 0; i < 1000; i++)
        ck_close(gd[i], yd[i] == 0.0f ? 0.0f : 1.0f / 0.75f);
    ck_assert_ptr_null(et_dropout(x, 1.5f, true, g));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "between 0 and 1"));
    et_tensor_free(y);
    et_tensor_free(x);
    et_generator_free(g);
}
END_TEST

/* training-mode dropout on the weights: each weight 0 or w / (1 - p), and
 * the output is the dropped weights times v */
START_TEST(test_sdpa_dropout_structure)
{
    et_generator *g = et_generator_new(5);
    et_tensor *q = randn(g, ET_SHAPE(2, 6, 4), true), *k = randn(g, ET_SHAPE(2, 7, 4), true);
    et_tensor *v = randn(g, ET_SHAPE(2, 7, 3), true);
    et_tensor *w0 = NULL, *w = NULL;
    et_tensor *y0 = et_scaled_dot_product_attention(q, k, v, NULL, 0.0f, false, g, &w0);
    et_tensor *y = et_scaled_dot_product_attention(q, k, v, NULL, 0.4f, false, g, &w);
    ck_assert_ptr_nonnull(y0);
    ck_assert_ptr_nonnull(y);
    const float *a = et_data_const(w0), *b = et_data_const(w);
    int zeros = 0;
    for (int i = 0; i < 2 * 6 * 7; i++) {
        if (b[i] == 0.0f)
            zeros++;
        else
            ck_close(b[i], a[i] / 0.6f);
    }
    ck_assert_msg(zeros > 10 && zeros < 60, "%d of 84 dropped at p 0.4", zeros);
    et_tensor *wv = et_matmul(w, v);
    const float *yd = et_data_const(y), *wvd = et_data_const(wv);
    for (int i = 0; i < 2 * 6 * 3; i++)
        ck_close(yd[i], wvd[i]);
    et_pool_begin();
    ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_OK);
    et_pool_end();
    ck_assert_ptr_nonnull(et_grad(q));
    et_tensor *ts[] = {wv, y, w, y0, w0, v, k, q};
    for (int i = 0; i < 8; i++)
        et_tensor_free(ts[i]);
    et_generator_free(g);
}
END_TEST

/* Training-mode dropout of the fused op (no weights asked for) against the
 * composed ops (weights asked for) from the same generator state: the fused
 * op draws one mask over all batch items in order, the composed dropout one
 * over the whole weights tensor, so the masks are the same draws (L*S odd:
 * no item starts at a draw boundary) and outputs and gradients agree to
 * rounding; the generator moves on alike. */
START_TEST(test_sdpa_fused_dropout_matches_composed)
{
    et_generator *g = et_generator_new(9);
    et_tensor *q = randn(g, ET_SHAPE(3, 5, 4), true), *k = randn(g, ET_SHAPE(3, 7, 4), true);
    et_tensor *v = randn(g, ET_SHAPE(3, 7, 5), true);
    et_tensor *up = randn(g, ET_SHAPE(3, 5, 5), false);
    uint64_t st0[4], st1[4], st2[4];
    et_generator_get_state(g, st0);
    float got[2][3 * 5 * 5], grads[2][3][3 * 7 * 5];
    et_tensor *in[3] = {q, k, v};
    for (int r = 0; r < 2; r++) {
        et_generator_set_state(g, st0);
        et_pool_begin();
        et_tensor *w = NULL;
        et_tensor *y = et_scaled_dot_product_attention(q, k, v, NULL, 0.3f, false, g,
                                                       r ? &w : NULL);
        ck_assert_ptr_nonnull(y);
        ck_assert(r == 0 || w != NULL);
        et_copy_to(y, got[r]);
        ck_assert_int_eq(et_backward(y, up), ET_OK);
        et_pool_end();
        et_generator_get_state(g, r ? st2 : st1);
        for (int i = 0; i < 3; i++) {
            et_copy_to(et_grad(in[i]), grads[r][i]);
            et_set_grad(in[i], NULL);
        }
    }
    ck_assert(memcmp(st1, st2, sizeof st1) == 0);
    for (int i = 0; i < 3 * 5 * 5; i++)
        ck_close(got[0][i], got[1][i]);
    for (int i = 0; i < 3; i++)
        for (int64_t j = 0; j < et_numel(in[i]); j++)
            ck_close(grads[0][i][j], grads[1][i][j]);
    et_tensor *ts[] = {up, v, k, q};
    for (int i = 0; i < 4; i++)
        et_tensor_free(ts[i]);
    et_generator_free(g);
}
END_TEST

START_TEST(test_mha_names_train_eval)
{
    et_generator *g = et_generator_new(7);
    et_mha_opts o = ET_MHA_DEFAULTS;
    o.dropout = 0.5f;
    o.kdim = 3;
    o.add_bias_kv = true;
    et_module *m = et_multihead_attention_new(8, 2, o, g);
    ck_assert_ptr_nonnull(m);
    const char *want[] = {"q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                          "bias_k", "bias_v", "out_proj.weight", "out_proj.bias"};
    ck_assert_int_eq(et_module_num_state(m), 8);
    for (int i = 0; i < 8; i++)
        ck_assert_str_eq(et_module_state_name(m, i), want[i]);
    ck_assert_int_eq(et_size(et_module_param_by_name(m, "k_proj_weight"), 1), 3);
    et_tensor *q = randn(g, ET_SHAPE(5, 2, 8), false), *kv = randn(g, ET_SHAPE(4, 2, 3), false);
    et_tensor *v = randn(g, ET_SHAPE(4, 2, 8), false);
    /* training: dropout makes two calls differ; eval: identical */
    et_tensor *a = et_multihead_attention_forward(m, q, kv, v, NULL, false, NULL, true, NULL);
    et_tensor *b = et_multihead_attention_forward(m, q, kv, v, NULL, false, NULL, true, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert(memcmp(et_data_const(a), et_data_const(b), 80 * sizeof(float)) != 0);
    et_tensor_free(a);
    et_tensor_free(b);
    et_module_train(m, false);
    a = et_multihead_attention_forward(m, q, kv, v, NULL, false, NULL, true, NULL);
    b = et_multihead_attention_forward(m, q, kv, v, NULL, false, NULL, true, NULL);
    ck_assert(memcmp(et_data_const(a), et_data_const(b), 80 * sizeof(float)) == 0);
    et_tensor_free(a);
    et_tensor_free(b);
    /* need_weights without a place for them */
    ck_assert_ptr_null(et_multihead_attention_forward(m, q, kv, v, NULL, true, NULL, true, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    et_tensor_free(q);
    et_tensor_free(kv);
    et_tensor_free(v);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

/* a bool mask with a float one is refused, and the call changes nothing */
START_TEST(test_mha_mixed_masks)
{
    et_generator *g = et_generator_new(9);
    et_module *m = et_multihead_attention_new(4, 2, ET_MHA_DEFAULTS, g);
    et_tensor *x = randn(g, ET_SHAPE(3, 1, 4), true);
    et_tensor *fm = et_zeros(ET_SHAPE(1, 3));
    et_tensor *am = et_zeros(ET_SHAPE(3, 3));
    ck_assert_ptr_null(et_multihead_attention_forward(m, x, x, x, fm, false, am, true, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "MultiheadAttention(4, 2): "));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "key_padding_mask"));
    ck_assert_ptr_null(et_grad(x));
    et_tensor_free(fm);
    et_tensor_free(am);
    et_tensor_free(x);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

START_TEST(test_encoder_structure)
{
    et_generator *g = et_generator_new(11);
    et_encoder_layer_opts o = ET_ENCODER_LAYER_DEFAULTS;
    o.dim_feedforward = 12;
    o.batch_first = true;
    et_module *layer = et_transformer_encoder_layer_new(8, 2, o, g);
    ck_assert_ptr_nonnull(layer);
    ck_assert_int_eq(et_module_num_state(layer), 12);
    ck_assert_str_eq(et_module_state_name(layer, 0), "self_attn.in_proj_weight");
    ck_assert_str_eq(et_module_state_name(layer, 4), "linear1.weight");
    ck_assert_str_eq(et_module_state_name(layer, 11), "norm2.bias");
    int64_t d = 8;
    et_module *enc = et_transformer_encoder_new(layer, 3, et_layer_norm_new(&d, 1, 1e-5, true));
    ck_assert_ptr_nonnull(enc);
    ck_assert_int_eq(et_module_num_state(enc), 3 * 12 + 2);
    ck_assert_str_eq(et_module_state_name(enc, 12), "layers.1.self_attn.in_proj_weight");
    ck_assert_str_eq(et_module_state_name(enc, 37), "norm.bias");
    /* copies of one layer, in distinct tensors */
    et_tensor *w0 = et_module_param_by_name(enc, "layers.0.linear1.weight");
    et_tensor *w2 = et_module_param_by_name(enc, "layers.2.linear1.weight");
    ck_assert_ptr_ne(w0, w2);
    ck_assert(memcmp(et_data_const(w0), et_data_const(w2), 96 * sizeof(float)) == 0);
    /* dropout 0.1 in training differs between calls; eval reaches every child */
    et_tensor *x = randn(g, ET_SHAPE(2, 5, 8), false);
    et_tensor *a = et_module_forward(enc, x), *b = et_module_forward(enc, x);
    ck_assert(memcmp(et_data_const(a), et_data_const(b), 80 * sizeof(float)) != 0);
    et_tensor_free(a);
    et_tensor_free(b);
    et_module_train(enc, false);
    a = et_module_forward(enc, x);
    b = et_transformer_encoder_forward(enc, x, NULL, NULL);
    ck_assert(memcmp(et_data_const(a), et_data_const(b), 80 * sizeof(float)) == 0);
    et_tensor_free(a);
    et_tensor_free(b);
    /* a wrong width names the layer */
    et_tensor *bad = randn(g, ET_SHAPE(2, 5, 6), false);
    ck_assert_ptr_null(et_module_forward(enc, bad));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "TransformerEncoder: layers.0: "
                                              "TransformerEncoderLayer(8, 2): "));
    et_tensor_free(bad);
    et_tensor_free(x);
    et_module_free(enc);
    /* a module that is not an encoder layer is refused (and freed) */
    ck_assert_ptr_null(et_transformer_encoder_new(et_relu_new(), 2, NULL));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    o.activation = (et_transformer_activation)7;
    ck_assert_ptr_null(et_transformer_encoder_layer_new(8, 2, o, g));
    et_generator_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_add_test(tc, test_dropout_op);
    tcase_add_test(tc, test_sdpa_dropout_structure);
    tcase_add_test(tc, test_sdpa_fused_dropout_matches_composed);
    tcase_add_test(tc, test_mha_names_train_eval);
    tcase_add_test(tc, test_mha_mixed_masks);
    tcase_add_test(tc, test_encoder_structure);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
