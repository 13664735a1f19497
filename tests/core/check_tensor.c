/* check_tensor.c - creation, views sharing storage, reference counts and
 * pools, accessors, printing, random generator, errors (tensor.h). */
#include <pthread.h>

#include "check_helpers.h"
#include "core/core_internal.h"

/* ---- creation ---- */

START_TEST(test_new_copies_data)
{
    et_pool_begin();
    float src[] = {1, 2, 3, 4, 5, 6};
    et_tensor *t = et_tensor_new(src, ET_SHAPE(2, 3));
    src[0] = 100;
    ASSERT_SHAPE(t, 2, 3);
    ASSERT_VALUES(t, 1, 2, 3, 4, 5, 6);
    ck_assert(et_is_contiguous(t));
    ck_assert_int_eq(et_strides(t)[0], 3);
    ck_assert_int_eq(et_strides(t)[1], 1);
    ASSERT_VALUES(et_tensor_new(NULL, ET_SHAPE(3)), 0, 0, 0);
    et_pool_end();
}
END_TEST

START_TEST(test_constant_fills)
{
    et_pool_begin();
    ASSERT_VALUES(et_zeros(ET_SHAPE(2, 2)), 0, 0, 0, 0);
    ASSERT_VALUES(et_ones(ET_SHAPE(3)), 1, 1, 1);
    ASSERT_VALUES(et_full(ET_SHAPE(2), 2.5f), 2.5f, 2.5f);
    et_tensor *s = et_scalar(3.5f);
    ck_assert_int_eq(et_ndim(s), 0);
    ck_assert_int_eq(et_numel(s), 1);
    ck_assert_float_eq(et_item(s), 3.5f);
    et_tensor *z = et_zeros(ET_SHAPE(2, 0, 3));
    ck_assert_int_eq(et_numel(z), 0);
    ASSERT_SHAPE(et_ones_like(z), 2, 0, 3);
    ASSERT_VALUES(et_zeros_like(s), 0);
    et_pool_end();
}
END_TEST

START_TEST(test_ranges)
{
    et_pool_begin();
    /* torch.arange(0, 1, 0.3) -> [0.0, 0.3, 0.6, 0.9] */
    ASSERT_VALUES(et_arange(0, 1, 0.3), 0.0f, 0.3f, 0.6f, 0.9f);
    /* torch.arange(5, 1, -2) -> [5, 3] */
    ASSERT_VALUES(et_arange(5, 1, -2), 5, 3);
    /* torch.linspace(0, 1, 5) */
    ASSERT_VALUES(et_linspace(0, 1, 5), 0, 0.25f, 0.5f, 0.75f, 1);
    ASSERT_VALUES(et_linspace(2, 3, 1), 2);
    ASSERT_VALUES(et_eye(2, 3), 1, 0, 0, 0, 1, 0);
    ASSERT_ERROR(et_arange(0, 1, 0), ET_ERR_ARG, "arange");
    ASSERT_ERROR(et_arange(0, 1, -1), ET_ERR_ARG, "step sign");
    ASSERT_ERROR(et_linspace(0, 1, -1), ET_ERR_ARG, "linspace");
    et_pool_end();
}
END_TEST

START_TEST(test_bad_shapes_are_errors)
{
    ASSERT_ERROR(et_zeros(ET_SHAPE(2, -1)), ET_ERR_ARG, "negative size");
    int64_t big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ASSERT_ERROR(et_ones(big, 9), ET_ERR_ARG, "ndim 9");
    ASSERT_ERROR(et_clone(NULL), ET_ERR_ARG, "NULL");
}
END_TEST

/* ---- views share storage ---- */

START_TEST(test_reshape_view_shares_storage)
{
    et_pool_begin();
    et_tensor *a = et_arange(0, 6, 1);
    et_tensor *r = et_reshape(a, ET_SHAPE(2, -1));
    ASSERT_SHAPE(r, 2, 3);
    ck_assert_ptr_eq(et_data(r), et_data(a));
    et_data(r)[4] = 40;
    ck_assert_float_eq(et_data(a)[4], 40);
    et_tensor *v = et_view(a, ET_SHAPE(3, 2));
    ck_assert_ptr_eq(et_data(v), et_data(a));
    ASSERT_ERROR(et_reshape(a, ET_SHAPE(4, -1)), ET_ERR_SHAPE, "invalid for input of size 6");
    ASSERT_ERROR(et_reshape(a, ET_SHAPE(-1, -1)), ET_ERR_ARG, "only one dimension");
    et_pool_end();
}
END_TEST

START_TEST(test_transpose_permute_views)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 3));
    et_tensor *t = et_t(a);
    ASSERT_SHAPE(t, 3, 2);
    ck_assert(!et_is_contiguous(t));
    ASSERT_VALUES(t, 0, 3, 1, 4, 2, 5);
    float *d = et_data(t);
    d[1 * et_strides(t)[0] + 0 * et_strides(t)[1]] = -1; /* t[1][0] is a[0][1] */
    ck_assert_float_eq(et_get(a, (int64_t[]){0, 1}), -1);
    et_tensor *b = et_reshape(et_arange(0, 24, 1), ET_SHAPE(2, 3, 4));
    et_tensor *p = et_permute(b, (int[]){2, 0, 1}, 3);
    ASSERT_SHAPE(p, 4, 2, 3);
    ck_assert_float_eq(et_get(p, (int64_t[]){3, 1, 2}), et_get(b, (int64_t[]){1, 2, 3}));
    ASSERT_SHAPE(et_transpose(b, 0, -1), 4, 3, 2);
    /* view of a non-contiguous tensor fails; reshape copies instead */
    ASSERT_ERROR(et_view(t, ET_SHAPE(6)), ET_ERR_SHAPE, "reshape");
    et_tensor *flat = et_reshape(t, ET_SHAPE(6));
    ck_assert_ptr_ne(et_data(flat), et_data(a));
    ASSERT_VALUES(flat, 0, 3, -1, 4, 2, 5);
    /* a transposed view that is still viewable */
    et_tensor *col = et_reshape(et_arange(0, 3, 1), ET_SHAPE(3, 1));
    et_tensor *row = et_view(et_t(col), ET_SHAPE(3));
    ck_assert_ptr_eq(et_data(row), et_data(col));
    ASSERT_ERROR(et_permute(b, (int[]){0, 0, 1}, 3), ET_ERR_ARG, "repeated");
    ASSERT_ERROR(et_t(b), ET_ERR_SHAPE, "<= 2 dimensions, got shape [2,3,4]");
    et_pool_end();
}
END_TEST

START_TEST(test_select_slice_views)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 12, 1), ET_SHAPE(3, 4));
    et_tensor *r = et_select(a, 0, -1);
    ASSERT_SHAPE(r, 4);
    ASSERT_VALUES(r, 8, 9, 10, 11);
    et_tensor *c = et_select(a, 1, 2);
    ASSERT_VALUES(c, 2, 6, 10);
    et_data(c)[et_strides(c)[0]] = -6; /* c[1] is a[1][2] */
    ck_assert_float_eq(et_get(a, (int64_t[]){1, 2}), -6);
    /* torch: a[:, ::2] and a[1:, 1:3] */
    et_tensor *s = et_slice(a, 1, 0, ET_END, 2);
    ASSERT_SHAPE(s, 3, 2);
    ASSERT_VALUES(s, 0, 2, 4, -6, 8, 10);
    ASSERT_VALUES(et_slice(a, 0, 1, ET_END, 1), 4, 5, -6, 7, 8, 9, 10, 11);
    ASSERT_VALUES(et_slice(a, 1, -3, -1, 1), 1, 2, 5, -6, 9, 10);
    ASSERT_SHAPE(et_slice(a, 0, 5, 10, 1), 0, 4);
    et_fill_(s, 7);
    ck_assert_float_eq(et_get(a, (int64_t[]){2, 2}), 7);
    ck_assert_float_eq(et_get(a, (int64_t[]){2, 1}), 9);
    ASSERT_ERROR(et_select(a, 0, 5), ET_ERR_INDEX,
                 "select: index 5 is out of range for dim 0 of size 3");
    ASSERT_ERROR(et_select(a, 2, 0), ET_ERR_INDEX, "dimension 2 is out of range");
    ASSERT_ERROR(et_slice(a, 0, 0, 2, 0), ET_ERR_ARG, "step");
    et_pool_end();
}
END_TEST

/* Python slices take any positive step: torch a[:, 1::2**63-1] is a[:, 1:2].
 * The length used to be computed as (end - start + step - 1) / step, which
 * overflows for such steps and gave a negative size. */
START_TEST(test_slice_huge_step)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 12, 1), ET_SHAPE(3, 4));
    et_tensor *s = et_slice(a, 1, 1, ET_END, INT64_MAX);
    ASSERT_SHAPE(s, 3, 1);
    ASSERT_VALUES(s, 1, 5, 9);                              /* a[:, 1::2**63-1] */
    ASSERT_VALUES(et_slice(a, 0, 0, ET_END, INT64_MAX / 2), 0, 1, 2, 3);  /* a[0::2**62] */
    ASSERT_SHAPE(et_slice(a, 1, 4, ET_END, INT64_MAX), 3, 0);
    /* the gradient goes back through the same view */
    et_tensor *x = et_clone(a);
    et_set_requires_grad(x, true);
    ck_assert_int_eq(et_backward(et_sum_all(et_slice(x, 1, 2, ET_END, INT64_MAX)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0);
    et_pool_end();
}
END_TEST

START_TEST(test_squeeze_unsqueeze_flatten_expand)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 1, 3));
    ASSERT_SHAPE(et_squeeze(a, 1), 2, 3);
    ASSERT_SHAPE(et_squeeze(a, 0), 2, 1, 3);
    ASSERT_SHAPE(et_squeeze_all(a), 2, 3);
    ASSERT_SHAPE(et_unsqueeze(a, -1), 2, 1, 3, 1);
    ASSERT_SHAPE(et_unsqueeze(a, 0), 1, 2, 1, 3);
    ASSERT_SHAPE(et_flatten(a, 0, -1), 6);
    ASSERT_SHAPE(et_flatten(a, 1, 2), 2, 3);
    ck_assert_ptr_eq(et_data(et_flatten(a, 0, -1)), et_data(a));
    ck_assert_ptr_eq(et_flatten(a, 1, 1), a); /* nothing flattened: the input itself */
    et_tensor *row = et_arange(0, 3, 1);
    et_tensor *e = et_expand(row, ET_SHAPE(2, -1));
    ASSERT_SHAPE(e, 2, 3);
    ck_assert_int_eq(et_strides(e)[0], 0);
    ASSERT_VALUES(e, 0, 1, 2, 0, 1, 2);
    et_data(row)[1] = 9;
    ck_assert_float_eq(et_get(e, (int64_t[]){1, 1}), 9);
    ASSERT_ERROR(et_expand(row, ET_SHAPE(2, 4)), ET_ERR_SHAPE, "expanded size");
    ASSERT_ERROR(et_unsqueeze(a, 4), ET_ERR_INDEX, "out of range");
    ASSERT_ERROR(et_flatten(a, 2, 1), ET_ERR_ARG, "start_dim");
    et_pool_end();
}
END_TEST

START_TEST(test_clone_contiguous_detach)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 3));
    et_set_requires_grad(a, true);
    et_tensor *c = et_clone(a);
    ck_assert(!et_requires_grad(c));
    ck_assert_ptr_ne(et_data(c), et_data(a));
    ck_assert_ptr_eq(et_contiguous(a), a);
    et_tensor *t = et_t(a);
    et_tensor *tc = et_contiguous(t);
    ck_assert(et_is_contiguous(tc));
    ASSERT_VALUES(tc, 0, 3, 1, 4, 2, 5);
    ck_assert_str_eq(et_grad_fn_name(tc), "CloneBackward0");
    et_tensor *d = et_detach(a);
    ck_assert(!et_requires_grad(d));
    ck_assert(et_is_leaf(d));
    ck_assert_ptr_eq(et_data(d), et_data(a));
    et_pool_end();
}
END_TEST

/* ---- references and pools ---- */

START_TEST(test_refcount_keeps_tensor_alive)
{
    et_tensor *a = et_ones(ET_SHAPE(2));
    et_tensor *b = et_tensor_ref(a);
    ck_assert_ptr_eq(a, b);
    et_tensor_free(a);
    ASSERT_VALUES(b, 1, 1); /* still alive: one reference left */
    et_tensor *v = et_reshape(b, ET_SHAPE(2, 1));
    et_tensor_free(b);
    ASSERT_VALUES(v, 1, 1); /* the view holds the storage */
    et_tensor_free(v);
    et_tensor_free(NULL);
    ck_assert_ptr_null(et_tensor_ref(NULL));
}
END_TEST

START_TEST(test_pool_releases_and_ref_escapes)
{
    ck_assert(!etc_pool_active());
    et_pool_begin();
    ck_assert(etc_pool_active());
    et_tensor *a = et_ones(ET_SHAPE(3));
    et_tensor *b = et_mul_scalar(a, 2);
    et_tensor_ref(b);
    et_pool_end();
    ck_assert(!etc_pool_active());
    ck_assert_int_eq(atomic_load(&b->refcount), 1);
    ASSERT_VALUES(b, 2, 2, 2);
    et_tensor_free(b);
}
END_TEST

START_TEST(test_nested_pools)
{
    et_pool_begin();
    et_tensor *outer = et_ones(ET_SHAPE(2));
    et_pool_begin();
    et_tensor *inner = et_add(outer, outer);
    et_tensor_ref(inner);
    et_pool_end();
    /* the nn pattern: a view made in the outer pool of a tensor whose
     * inner pool ended, then the extra reference dropped */
    et_tensor *v = et_view(inner, ET_SHAPE(2, 1));
    et_tensor_free(inner);
    ASSERT_VALUES(v, 2, 2);
    ck_assert_int_eq(atomic_load(&outer->refcount), 1);
    et_pool_end();
    et_pool_end(); /* unbalanced end is a no-op */
}
END_TEST

START_TEST(test_pool_many_tensors)
{
    et_pool_begin();
    et_tensor *x = et_scalar(0);
    for (int i = 0; i < 200000; i++)
        x = et_add_scalar(x, 1);
    ck_assert_float_eq(et_item(x), 200000);
    et_pool_end();
}
END_TEST

/* ---- accessors ---- */

START_TEST(test_accessors)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 24, 1), ET_SHAPE(2, 3, 4));
    ck_assert_int_eq(et_size(a, -1), 4);
    ck_assert_int_eq(et_size(a, 0), 2);
    et_clear_error();
    ck_assert_int_eq(et_size(a, 3), -1);
    ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
    ck_assert_float_eq(et_get(a, (int64_t[]){1, -1, 2}), 22);
    ck_assert(isnan(et_get(a, (int64_t[]){2, 0, 0})));
    ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
    ck_assert(isnan(et_item(a)));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert(et_same_shape(a, et_zeros(ET_SHAPE(2, 3, 4))));
    ck_assert(!et_same_shape(a, et_zeros(ET_SHAPE(2, 4, 3))));
    char buf[64];
    ck_assert_str_eq(et_shape_str(et_shape(a), 3, buf, sizeof buf), "[2, 3, 4]");
    ck_assert_str_eq(et_shape_str(NULL, 0, buf, sizeof buf), "[]");
    et_pool_end();
}
END_TEST

START_TEST(test_copy_to_and_from_through_views)
{
    et_pool_begin();
    et_tensor *a = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 3));
    et_tensor *t = et_t(a);
    float out[6];
    et_copy_to(t, out);
    float expect[] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(out[i], expect[i]);
    float src[] = {10, 11, 12, 13, 14, 15};
    ck_assert_int_eq(et_copy_from(t, src), ET_OK);
    /* t[i][j] = src[i*2+j] lands at a[j][i] */
    ASSERT_VALUES(a, 10, 12, 14, 11, 13, 15);
    ck_assert_int_eq(et_copy_from(NULL, src), ET_ERR_ARG);
    et_pool_end();
}
END_TEST

START_TEST(test_in_place_fill_and_copy)
{
    et_pool_begin();
    et_tensor *a = et_zeros(ET_SHAPE(2, 3));
    ck_assert_int_eq(et_copy_(a, TV(ET_SHAPE(3), 1, 2, 3)), ET_OK);
    ASSERT_VALUES(a, 1, 2, 3, 1, 2, 3);
    ck_assert_int_eq(et_copy_(a, TV(ET_SHAPE(2), 1, 2)), ET_ERR_SHAPE);
    /* overlapping source: copy a's transpose-free row into itself reversed */
    et_tensor *row = et_select(a, 0, 0);
    ck_assert_int_eq(et_copy_(et_select(a, 0, 1), row), ET_OK);
    ck_assert_int_eq(et_fill_(et_select(a, 1, 1), -1), ET_OK);
    ASSERT_VALUES(a, 1, -1, 3, 1, -1, 3);
    et_tensor *w = et_ones(ET_SHAPE(2));
    et_set_requires_grad(w, true);
    et_tensor *y = et_mul_scalar(w, 2);
    ck_assert_int_eq(et_fill_(y, 0), ET_ERR_GRAD);
    ET_NO_GRAD { ck_assert_int_eq(et_fill_(y, 0), ET_OK); }
    ck_assert_int_eq(et_fill_(w, 3), ET_OK);
    ASSERT_VALUES(w, 3, 3);
    et_pool_end();
}
END_TEST

/* ---- autograd flags and grad mode ---- */

START_TEST(test_flags_and_grad_mode)
{
    et_pool_begin();
    et_tensor *w = et_ones(ET_SHAPE(2));
    ck_assert(!et_requires_grad(w));
    ck_assert(et_is_leaf(w));
    ck_assert_ptr_null(et_grad_fn_name(w));
    ck_assert_int_eq(et_set_requires_grad(w, true), ET_OK);
    et_tensor *y = et_add(w, w);
    ck_assert(!et_is_leaf(y));
    ck_assert(et_requires_grad(y));
    ck_assert_str_eq(et_grad_fn_name(y), "AddBackward0");
    ck_assert_int_eq(et_set_requires_grad(y, false), ET_ERR_GRAD);
    ck_assert(et_is_grad_enabled());
    ET_NO_GRAD
    {
        ck_assert(!et_is_grad_enabled());
        et_tensor *z = et_add(w, w);
        ck_assert(!et_requires_grad(z));
        ck_assert(et_is_leaf(z));
    }
    ck_assert(et_is_grad_enabled());
    ck_assert(et_set_grad_enabled(false));
    ck_assert(!et_set_grad_enabled(true));
    ck_assert_ptr_null(et_grad(w));
    et_tensor *g = et_full(ET_SHAPE(2), 5);
    ck_assert_int_eq(et_set_grad(w, g), ET_OK);
    ck_assert_ptr_eq(et_grad(w), g);
    ck_assert_int_eq(et_set_grad(w, et_ones(ET_SHAPE(3))), ET_ERR_SHAPE);
    ck_assert_int_eq(et_set_grad(w, NULL), ET_OK);
    ck_assert_ptr_null(et_grad(w));
    et_pool_end();
}
END_TEST

/* ---- printing: expected strings are torch 1.13's print() output ---- */

static void assert_prints(et_tensor *t, const char *expect)
{
    char *s = et_to_string(t);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strcmp(s, expect) == 0, "got\n%s\nexpected\n%s", s, expect);
    free(s);
}

START_TEST(test_print_like_pytorch)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(1, 2), 1, -2);
    et_set_requires_grad(a, true);
    assert_prints(a, "tensor([[ 1., -2.]], requires_grad=True)");
    assert_prints(et_mul_scalar(TV(ET_SHAPE(2), 1, 2), 2), "tensor([2., 4.])");
    et_tensor *x = TV(ET_SHAPE(2), 1, 2);
    et_set_requires_grad(x, true);
    assert_prints(et_mul_scalar(x, 2), "tensor([2., 4.], grad_fn=<MulBackward0>)");
    assert_prints(TV(ET_SHAPE(2, 2), 1.5f, -2.25f, 100, 0),
                  "tensor([[  1.5000,  -2.2500],\n        [100.0000,   0.0000]])");
    assert_prints(TV(ET_SHAPE(2), 0.001f, 1234.5f), "tensor([1.0000e-03, 1.2345e+03])");
    assert_prints(TV(ET_SHAPE(1, 2, 1), 1, 2), "tensor([[[1.],\n         [2.]]])");
    assert_prints(et_scalar(-0.5f), "tensor(-0.5000)");
    assert_prints(et_zeros(ET_SHAPE(0)), "tensor([])");
    assert_prints(et_zeros(ET_SHAPE(2, 0, 3)), "tensor([], size=(2, 0, 3))");
    assert_prints(et_full(ET_SHAPE(3), 1e9f), "tensor([1.0000e+09, 1.0000e+09, 1.0000e+09])");
    assert_prints(TV(ET_SHAPE(3), NAN, 1.5f, -INFINITY), "tensor([   nan, 1.5000,   -inf])");
    assert_prints(TV(ET_SHAPE(3), NAN, 1, INFINITY), "tensor([nan, 1., inf])");
    /* torch.arange(12.).reshape(3,4)[:, ::2] (a non-contiguous view) */
    assert_prints(et_slice(et_reshape(et_arange(0, 12, 1), ET_SHAPE(3, 4)), 1, 0, ET_END, 2),
                  "tensor([[ 0.,  2.],\n        [ 4.,  6.],\n        [ 8., 10.]])");
    et_tensor *c = et_reshape(et_arange(0, 8, 1), ET_SHAPE(2, 2, 2));
    et_tensor *cc = et_clone(c);
    et_set_requires_grad(cc, true);
    assert_prints(cc, "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n"
                      "         [6., 7.]]], requires_grad=True)");
    /* torch.arange(2000.) */
    assert_prints(et_arange(0, 2000, 1),
                  "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
                  "        1.9990e+03])");
    /* torch.arange(100.) / 3: line wrapping at 80 columns */
    char *s = et_to_string(et_div_scalar(et_arange(0, 100, 1), 3));
    ck_assert_ptr_nonnull(s);
    ck_assert(strncmp(s, "tensor([ 0.0000,  0.3333,  0.6667,  1.0000,  1.3333,  1.6667,  "
                         "2.0000,  2.3333,\n         2.6667,", 90) == 0);
    free(s);
    et_pool_end();
}
END_TEST

START_TEST(test_print_summarized_matrix)
{
    et_pool_begin();
    /* torch.arange(2000.).reshape(40, 50), first two lines and the cut */
    char *s = et_to_string(et_reshape(et_arange(0, 2000, 1), ET_SHAPE(40, 50)));
    ck_assert_ptr_nonnull(s);
    const char *head = "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, "
                       "4.8000e+01,\n         4.9000e+01],\n";
    ck_assert_msg(strncmp(s, head, strlen(head)) == 0, "%s", s);
    ck_assert_ptr_nonnull(strstr(s, "        ...,\n        [1.8500e+03,"));
    free(s);
    /* print(torch.arange(1001.).reshape(143, 7)): rows of 7 > 2*edgeitems are cut too */
    assert_prints(et_reshape(et_arange(0, 1001, 1), ET_SHAPE(143, 7)),
                  "tensor([[   0.,    1.,    2.,  ...,    4.,    5.,    6.],\n"
                  "        [   7.,    8.,    9.,  ...,   11.,   12.,   13.],\n"
                  "        [  14.,   15.,   16.,  ...,   18.,   19.,   20.],\n"
                  "        ...,\n"
                  "        [ 980.,  981.,  982.,  ...,  984.,  985.,  986.],\n"
                  "        [ 987.,  988.,  989.,  ...,  991.,  992.,  993.],\n"
                  "        [ 994.,  995.,  996.,  ...,  998.,  999., 1000.]])");
    et_pool_end();
}
END_TEST

/* A summarized print reads only the elements it shows: printing an expanded
 * view of 2^37 elements (no memory behind it) used to copy every value
 * first (a 512 GiB malloc: NULL, with no error message).  It prints as any
 * summarized tensor of the same values, and non-contiguous views print
 * their own values. */
START_TEST(test_print_huge_view_is_summarized_without_copying)
{
    et_pool_begin();
    et_tensor *one = et_full(ET_SHAPE(1, 1), 2.5f);
    char *huge = et_to_string(et_expand(one, ET_SHAPE((int64_t)1 << 35, 4)));
    char *small = et_to_string(et_full(ET_SHAPE(2000, 4), 2.5f));
    ck_assert_msg(huge != NULL, "%s", et_errmsg());
    ck_assert_ptr_nonnull(small);
    ck_assert_str_eq(huge, small);
    free(huge);
    free(small);
    et_tensor *a = et_reshape(et_arange(0, 3000, 1), ET_SHAPE(60, 50));
    char *tv = et_to_string(et_t(a));
    char *tc = et_to_string(et_contiguous(et_t(a)));
    ck_assert_ptr_nonnull(tv);
    ck_assert_ptr_nonnull(tc);
    ck_assert_str_eq(tv, tc);
    free(tv);
    free(tc);
    et_pool_end();
}
END_TEST

/* ---- generator ---- */

START_TEST(test_generator_deterministic)
{
    et_generator *g1 = et_generator_new(42), *g2 = et_generator_new(42);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(et_generator_next(g1), et_generator_next(g2));
    uint64_t st[4];
    et_generator_get_state(g1, st);
    uint64_t x = et_generator_next(g1);
    et_generator_set_state(g2, st);
    ck_assert_uint_eq(et_generator_next(g2), x);
    double u = et_generator_uniform(g1);
    ck_assert(u >= 0 && u < 1);
    et_generator_free(g1);
    et_generator_free(g2);
    et_generator_free(NULL);
    et_manual_seed(7);
    uint64_t a = et_generator_next(et_default_generator());
    et_manual_seed(7);
    ck_assert_uint_eq(et_generator_next(et_default_generator()), a);
}
END_TEST

START_TEST(test_random_tensors_distribution)
{
    et_pool_begin();
    et_generator *g = et_generator_new(1);
    int64_t n = 100000;
    et_tensor *u = et_rand(g, &n, 1);
    et_tensor *z = et_randn(g, &n, 1);
    et_tensor *w = et_uniform(NULL, &n, 1, -2, 3);
    double su = 0, sz = 0, sz2 = 0, mn = 1, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = et_data(u)[i];
        ck_assert(v >= 0 && v < 1);
        mn = fmin(mn, v);
        mx = fmax(mx, v);
        su += v;
        sz += et_data(z)[i];
        sz2 += (double)et_data(z)[i] * et_data(z)[i];
        ck_assert(et_data(w)[i] >= -2 && et_data(w)[i] < 3);
    }
    /* 100000 samples: standard errors ~0.001 (mean of U) and ~0.003 (N) */
    ck_assert(fabs(su / n - 0.5) < 0.01);
    ck_assert(fabs(sz / n) < 0.02);
    ck_assert(fabs(sz2 / n - 1) < 0.03);
    ck_assert(mn < 0.001 && mx > 0.999);
    ASSERT_ERROR(et_uniform(g, &n, 1, 3, 2), ET_ERR_ARG, "low <= high");
    et_generator_free(g);
    et_pool_end();
}
END_TEST

/* ---- threads: concurrent no-grad forwards over shared parameters ---- */

typedef struct {
    et_tensor *w, *x;
    float expect;
    int bad;
} thread_job;

static void *forward_worker(void *arg)
{
    thread_job *j = arg;
    for (int i = 0; i < 2000; i++) {
        et_pool_begin();
        ET_NO_GRAD
        {
            et_tensor *y = et_sum_all(et_tanh(et_matmul(j->x, et_t(j->w))));
            if (fabsf(et_item(y) - j->expect) > 1e-4f)
                j->bad++;
        }
        et_pool_end();
    }
    /* leave a pool open: thread exit must release it */
    et_pool_begin();
    et_ones(ET_SHAPE(100000));
    return NULL;
}

START_TEST(test_threads_share_parameters)
{
    et_pool_begin();
    et_generator *g = et_generator_new(2);
    et_tensor *w = et_randn(g, ET_SHAPE(8, 4));
    et_set_requires_grad(w, true);
    et_tensor *x = et_randn(g, ET_SHAPE(3, 4));
    float expect;
    et_pool_begin();
    ET_NO_GRAD { expect = et_item(et_sum_all(et_tanh(et_matmul(x, et_t(w))))); }
    et_pool_end();
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){w, x, expect, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, forward_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].bad, 0);
    }
    ck_assert_int_eq(atomic_load(&w->refcount), 1);
    ck_assert_int_eq(atomic_load(&w->storage->refcount), 1);
    et_generator_free(g);
    et_pool_end();
}
END_TEST

/* ---- errors ---- */

START_TEST(test_error_state)
{
    et_clear_error();
    ck_assert_int_eq(et_errcode(), ET_OK);
    ck_assert_str_eq(et_errmsg(), "");
    ck_assert_int_eq(et_set_error(ET_ERR_IO, "file %s missing", "x.bin"), ET_ERR_IO);
    ck_assert_int_eq(et_errcode(), ET_ERR_IO);
    ck_assert_str_eq(et_errmsg(), "file x.bin missing");
    ck_assert_str_eq(et_errstr(ET_ERR_SHAPE), "shape mismatch");
    ck_assert_str_eq(et_errstr(ET_OK), "success");
    ck_assert_str_eq(et_errstr(ET_ERR_COUNT), "unknown error");
    for (int c = 0; c < ET_ERR_COUNT; c++)
        ck_assert(strlen(et_errstr((et_status)c)) > 0);
    et_clear_error();
}
END_TEST

static Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    struct {
        const char *name;
        const TTest *tests[8];
    } cases[] = {
        {"creation", {test_new_copies_data, test_constant_fills, test_ranges,
                      test_bad_shapes_are_errors}},
        {"views", {test_reshape_view_shares_storage, test_transpose_permute_views,
                   test_select_slice_views, test_squeeze_unsqueeze_flatten_expand,
                   test_clone_contiguous_detach, test_slice_huge_step}},
        {"refcount_and_pools", {test_refcount_keeps_tensor_alive,
                                test_pool_releases_and_ref_escapes, test_nested_pools,
                                test_pool_many_tensors}},
        {"accessors", {test_accessors, test_copy_to_and_from_through_views,
                       test_in_place_fill_and_copy}},
        {"autograd_flags", {test_flags_and_grad_mode}},
        {"printing", {test_print_like_pytorch, test_print_summarized_matrix,
                      test_print_huge_view_is_summarized_without_copying}},
        {"generator", {test_generator_deterministic, test_random_tensors_distribution}},
        {"errors", {test_error_state}},
        {"threads", {test_threads_share_parameters}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        for (int j = 0; j < 8 && cases[i].tests[j]; j++)
            tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return run_suite(tensor_suite()); }
