/*
 * check_layers.c - the normalisation and embedding modules (norm.c,
 * embedding.c) and module buffers: construction errors, state_dict names,
 * order and dtypes, train/eval, a failing forward changing nothing,
 * buffers through safetensors and checkpoints.  Numbers against PyTorch:
 * tests/torch/test_layers.py (module cases).
 */
#include <string.h>
#include <unistd.h>

#include "nn_check.h"

static et_module *char_model(et_generator *g)
{
    et_module *s = et_sequential_new();
    et_sequential_append(s, et_embedding_new(27, 10, ET_EMBEDDING_DEFAULTS, g));
    et_sequential_append(s, et_flatten_new(1, -1));
    et_sequential_append(s, et_linear_new(30, 16, true, g));
    et_sequential_append(s, et_batch_norm1d_new(16, ET_BATCH_NORM_DEFAULTS));
    et_sequential_append(s, et_tanh_new());
    et_sequential_append(s, et_linear_new(16, 27, true, g));
    return s;
}

START_TEST(state_dict_names_order_and_dtypes_are_torchs)
{
    et_generator *g = et_generator_new(3);
    et_module *m = char_model(g);
    const char *want[] = {"0.weight", "2.weight", "2.bias", "3.weight", "3.bias",
                          "3.running_mean", "3.running_var", "3.num_batches_tracked",
                          "5.weight", "5.bias"};
    ck_assert_int_eq(et_module_num_state(m), 10);
    for (int i = 0; i < 10; i++)
        ck_assert_str_eq(et_module_state_name(m, i), want[i]);
    ck_assert_int_eq(et_module_num_params(m), 7);
    ck_assert_int_eq(et_module_num_buffers(m), 3);
    ck_assert(et_module_state_is_buffer(m, 5) && !et_module_state_is_buffer(m, 4));
    et_tensor *nbt = et_module_buffer_by_name(m, "3.num_batches_tracked");
    ck_assert_int_eq(et_tensor_dtype(nbt), ET_INT64);
    ck_assert_int_eq(et_ndim(nbt), 0);
    ck_assert(!et_requires_grad(nbt) && !et_requires_grad(et_module_buffer(m, 0)));
    ck_assert(et_requires_grad(et_module_param_by_name(m, "3.weight")));
    /* init as torch: BN weight 1, bias 0, running_var 1 */
    ck_assert_float_eq(et_data(et_module_param_by_name(m, "3.weight"))[7], 1.0f);
    ck_assert_float_eq(et_data(et_module_param_by_name(m, "3.bias"))[7], 0.0f);
    ck_assert_float_eq(et_data(et_module_buffer_by_name(m, "3.running_var"))[0], 1.0f);
    et_tensor_dict *sd = et_module_state_dict(m);
    ck_assert_int_eq(et_tensor_dict_len(sd), 10);
    ck_assert_str_eq(et_tensor_dict_name(sd, 7), "3.num_batches_tracked");
    et_tensor_dict_free(sd);
    et_module_free(m);
    et_generator_free(g);
}
END_TEST

START_TEST(train_and_eval_matter_and_a_failing_forward_changes_nothing)
{
    et_pool_begin();
    et_module *bn = et_batch_norm1d_new(2, ET_BATCH_NORM_DEFAULTS);
    et_tensor *x = et_tensor_new((float[]){1, 10, 3, 20, 5, 60}, ET_SHAPE(3, 2));
    et_tensor *y = et_module_forward(bn, x);
    ck_assert_ptr_nonnull(y);
    et_tensor *rm = et_module_buffer_by_name(bn, "running_mean");
    ck_assert_float_eq_tol(et_data(rm)[0], 0.3f, 1e-6f);     /* 0.9 * 0 + 0.1 * 3 */
    int64_t n;
    ck_assert_int_eq(et_item_int64(et_module_buffer_by_name(bn, "num_batches_tracked"), &n), ET_OK);
    ck_assert_int_eq(n, 1);
    /* a batch of one in training fails naming the layer, and counts nothing */
    ck_assert_ptr_null(et_module_forward(bn, et_tensor_new((float[]){1, 2}, ET_SHAPE(1, 2))));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "BatchNorm1d(2)"));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "more than 1 value per channel"));
    et_item_int64(et_module_buffer_by_name(bn, "num_batches_tracked"), &n);
    ck_assert_int_eq(n, 1);
    ck_assert_float_eq_tol(et_data(rm)[0], 0.3f, 1e-6f);
    ck_assert_ptr_null(et_module_forward(bn, et_zeros(ET_SHAPE(2, 3))));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "[2, 3]"));
    ck_assert_ptr_null(et_module_forward(bn, et_zeros(ET_SHAPE(2, 2, 2, 2))));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "expected 2D or 3D input (got 4D input"));
    /* eval: running statistics, batch of one fine, nothing updated */
    et_module_train(bn, false);
    et_tensor *ye = et_module_forward(bn, et_tensor_new((float[]){0.3f, 1}, ET_SHAPE(1, 2)));
    ck_assert_ptr_nonnull(ye);
    ck_assert_float_eq_tol(et_data(ye)[0], 0.0f, 1e-6f);
    et_item_int64(et_module_buffer_by_name(bn, "num_batches_tracked"), &n);
    ck_assert_int_eq(n, 1);
    /* Dropout is the identity in eval */
    et_module *d = et_dropout_new(0.5f, NULL);
    et_module_train(d, false);
    ck_assert_ptr_eq(et_data_const(et_module_forward(d, x)), et_data_const(x));
    et_module_free(d);
    et_module_free(bn);
    et_pool_end();
}
END_TEST

START_TEST(constructor_errors_name_the_layer)
{
    et_batch_norm_opts o = ET_BATCH_NORM_DEFAULTS;
    ck_assert_ptr_null(et_batch_norm2d_new(0, o));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "BatchNorm2d"));
    o.eps = -1;
    ck_assert_ptr_null(et_batch_norm1d_new(3, o));
    ck_assert_ptr_null(et_group_norm_new(2, 3, 1e-5, true));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "divisible"));
    ck_assert_ptr_null(et_layer_norm_new((int64_t[]){3, 0}, 2, 1e-5, true));
    et_embedding_opts eo = ET_EMBEDDING_DEFAULTS;
    eo.padding_idx = 5;
    ck_assert_ptr_null(et_embedding_new(5, 2, eo, NULL));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "padding_idx 5"));
    et_embedding_bag_opts bo = ET_EMBEDDING_BAG_DEFAULTS;
    bo.mode = ET_BAG_MAX;
    bo.scale_grad_by_freq = true;
    ck_assert_ptr_null(et_embedding_bag_new(5, 2, bo, NULL));
    /* padding row zeroed at init; negative padding_idx counts from the end */
    eo.padding_idx = -1;
    et_module *e = et_embedding_new(5, 2, eo, NULL);
    const float *w = et_data(et_module_param(e, 0));
    ck_assert(w[8] == 0.0f && w[9] == 0.0f && w[0] != 0.0f);
    et_pool_begin();
    ck_assert_ptr_null(et_module_forward(e, et_tensor_new_int64((int64_t[]){5}, ET_SHAPE(1))));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "Embedding(5, 2): embedding: index 5 is out of range"));
    et_pool_end();
    et_module_free(e);
}
END_TEST

START_TEST(buffers_survive_safetensors_and_checkpoints)
{
    char path[] = "/tmp/et_layers_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    et_generator *g = et_generator_new(5);
    et_module *a = char_model(g);
    et_pool_begin();
    int64_t ix[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int k = 0; k < 3; k++)
        ck_assert_ptr_nonnull(et_module_forward(a, et_tensor_new_int64(ix, ET_SHAPE(4, 3))));
    et_pool_end();
    et_tensor_dict *sd = et_module_state_dict(a);
    ck_assert_int_eq(et_safetensors_save(sd, path), ET_OK);
    et_tensor_dict_free(sd);
    et_module *b = char_model(g);
    et_tensor_dict *back;
    ck_assert_int_eq(et_safetensors_load(path, &back), ET_OK);
    ck_assert_int_eq(et_module_load_state_dict(b, back), ET_OK);
    et_tensor_dict_free(back);
    int64_t n;
    ck_assert_int_eq(et_item_int64(et_module_buffer_by_name(b, "3.num_batches_tracked"), &n), ET_OK);
    ck_assert_int_eq(n, 3);
    const float *ra = et_data(et_module_buffer_by_name(a, "3.running_var"));
    const float *rb = et_data(et_module_buffer_by_name(b, "3.running_var"));
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq(ra[i], rb[i]);
    /* checkpoints carry buffers as model.<name> */
    et_module *c = char_model(g);
    ck_assert_int_eq(et_checkpoint_save(path, a, NULL, NULL, NULL, 7), ET_OK);
    int64_t step;
    ck_assert_int_eq(et_checkpoint_load(path, c, NULL, NULL, NULL, &step), ET_OK);
    ck_assert_int_eq(step, 7);
    et_item_int64(et_module_buffer_by_name(c, "3.num_batches_tracked"), &n);
    ck_assert_int_eq(n, 3);
    /* an integral float for an int64 buffer converts; a fractional one is refused, nothing changed */
    et_tensor_dict *d = et_module_state_dict(a);
    et_tensor *f = et_tensor_new((float[]){2.5f}, NULL, 0);
    et_tensor_dict_set(d, "3.num_batches_tracked", f);
    ck_assert_int_eq(et_module_load_state_dict(c, d), ET_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "3.num_batches_tracked"));
    et_item_int64(et_module_buffer_by_name(c, "3.num_batches_tracked"), &n);
    ck_assert_int_eq(n, 3);
    et_tensor_free(f);
    f = et_tensor_new((float[]){9}, NULL, 0);
    et_tensor_dict_set(d, "3.num_batches_tracked", f);
    ck_assert_int_eq(et_module_load_state_dict(c, d), ET_OK);
    et_item_int64(et_module_buffer_by_name(c, "3.num_batches_tracked"), &n);
    ck_assert_int_eq(n, 9);
    et_tensor_free(f);
    et_tensor_dict_free(d);
    unlink(path);
    et_module_free(a);
    et_module_free(b);
    et_module_free(c);
    et_generator_free(g);
}
END_TEST

START_TEST(embedding_bag_module_forward_takes_offsets_and_weights)
{
    et_pool_begin();
    et_embedding_bag_opts o = ET_EMBEDDING_BAG_DEFAULTS;
    o.mode = ET_BAG_SUM;
    et_module *m = et_embedding_bag_new(4, 2, o, NULL);
    et_tensor *w = et_module_param(m, 0);
    const float *wd = et_data(w);
    et_tensor *in = et_tensor_new_int64((int64_t[]){0, 1, 3}, ET_SHAPE(3));
    et_tensor *off = et_tensor_new_int64((int64_t[]){0, 1}, ET_SHAPE(2));
    et_tensor *psw = et_tensor_new((float[]){2, 1, -1}, ET_SHAPE(3));
    et_tensor *y = et_embedding_bag_module_forward(m, in, off, psw);
    ck_assert(et_ndim(y) == 2 && et_size(y, 0) == 2 && et_size(y, 1) == 2);
    ck_close(et_data(y)[0], 2 * wd[0]);
    ck_close(et_data(y)[3], wd[3] - wd[7]);
    ck_assert_ptr_null(et_module_forward(m, in));   /* 1-D input needs offsets */
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "EmbeddingBag(4, 2)"));
    et_module *t = et_tanh_new();
    ck_assert_ptr_null(et_embedding_bag_module_forward(t, in, off, NULL));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "not an EmbeddingBag"));
    et_module_free(t);
    et_module_free(m);
    et_pool_end();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_layers");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, state_dict_names_order_and_dtypes_are_torchs);
    tcase_add_test(tc, train_and_eval_matter_and_a_failing_forward_changes_nothing);
    tcase_add_test(tc, constructor_errors_name_the_layer);
    tcase_add_test(tc, buffers_survive_safetensors_and_checkpoints);
    tcase_add_test(tc, embedding_bag_module_forward_takes_offsets_and_weights);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
