/* check_ops.c - forward values of the ops in ops.h.  Expected numbers come
 * from torch 1.13 on the same inputs (the python expression is quoted next
 * to each), or from identities between ops (non-contiguous == contiguous). */
#include "check_helpers.h"
#include "core/core_internal.h"
#include "core/tanh_avx512.h"

/* a = torch.tensor([[1.,-2.,3.],[4.,5.,-6.]]), b = torch.tensor([0.5,2.,-1.]) */
static et_tensor *make_a(void) { return TV(ET_SHAPE(2, 3), 1, -2, 3, 4, 5, -6); }
static et_tensor *make_b(void) { return TV(ET_SHAPE(3), 0.5f, 2, -1); }

START_TEST(test_binary_broadcast)
{
    et_pool_begin();
    et_tensor *a = make_a(), *b = make_b();
    ASSERT_VALUES(et_add(a, b), 1.5f, 0, 2, 4.5f, 7, -7);          /* a+b */
    ASSERT_VALUES(et_div(a, b), 2, -1, -3, 8, 2.5f, 6);            /* a/b */
    ASSERT_VALUES(et_maximum(a, b), 1, 2, 3, 4, 5, -1);            /* torch.maximum(a,b) */
    ASSERT_VALUES(et_minimum(a, b), 0.5f, -2, -1, 0.5f, 2, -6);
    ASSERT_VALUES(et_sub(b, a), -0.5f, 4, -4, -3.5f, -3, 5);
    ASSERT_VALUES(et_mul(a, b), 0.5f, -4, -3, 2, 10, 6);
    /* a.abs()**b */
    ASSERT_VALUES(et_pow(et_abs(a), b), 1, 4, 0.3333333432674408f, 2, 25, 0.1666666716337204f);
    /* column [2,1] with row [3] -> [2,3] */
    et_tensor *col = TV(ET_SHAPE(2, 1), 10, 20);
    ASSERT_SHAPE(et_add(col, b), 2, 3);
    ASSERT_VALUES(et_add(col, b), 10.5f, 12, 9, 20.5f, 22, 19);
    ASSERT_VALUES(et_add(a, et_scalar(1)), 2, -1, 4, 5, 6, -5);
    ASSERT_ERROR(et_add(a, TV(ET_SHAPE(4), 1, 2, 3, 4)), ET_ERR_SHAPE,
                 "add: shapes [2,3] and [4] do not broadcast");
    ASSERT_ERROR(et_mul(a, NULL), ET_ERR_ARG, "NULL");
    et_pool_end();
}
END_TEST

START_TEST(test_scalar_ops)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(3), 1, 2, 4);
    ASSERT_VALUES(et_add_scalar(a, 1), 2, 3, 5);
    ASSERT_VALUES(et_sub_scalar(a, 1), 0, 1, 3);
    ASSERT_VALUES(et_rsub_scalar(1, a), 0, -1, -3);
    ASSERT_VALUES(et_mul_scalar(a, -2), -2, -4, -8);
    ASSERT_VALUES(et_div_scalar(a, 4), 0.25f, 0.5f, 1);
    ASSERT_VALUES(et_rdiv_scalar(2, a), 2, 1, 0.5f);
    ASSERT_VALUES(et_pow_scalar(a, 2), 1, 4, 16);
    ASSERT_VALUES(et_pow_scalar(a, 0.5f), 1, 1.41421354f, 2);
    ASSERT_VALUES(et_rpow_scalar(2, a), 2, 4, 16);
    et_pool_end();
}
END_TEST

START_TEST(test_unary)
{
    et_pool_begin();
    et_tensor *a = make_a();
    ASSERT_VALUES(et_neg(a), -1, 2, -3, -4, -5, 6);
    ASSERT_VALUES(et_abs(a), 1, 2, 3, 4, 5, 6);
    ASSERT_VALUES(et_relu(a), 1, 0, 3, 4, 5, 0);
    /* a.tanh() */
    ASSERT_VALUES(et_tanh(a), 0.7615941762924194f, -0.9640275835990906f, 0.9950547814369202f,
                  0.9993293285369873f, 0.9999092221260071f, -0.9999877214431763f);
    /* a.sigmoid() */
    ASSERT_VALUES(et_sigmoid(a), 0.7310585975646973f, 0.11920291930437088f, 0.9525741338729858f,
                  0.9820137619972229f, 0.9933071732521057f, 0.0024726230185478926f);
    /* F.gelu(a) and F.gelu(a, approximate='tanh') */
    ASSERT_VALUES(et_gelu(a, false), 0.8413447141647339f, -0.045500099658966064f,
                  2.995950222015381f, 3.999873161315918f, 4.999998569488525f, 0.0f);
    ASSERT_VALUES(et_gelu(a, true), 0.8411920070648193f, -0.04540228843688965f,
                  2.9963626861572266f, 3.999929904937744f, 4.999999523162842f, -0.0f);
    /* F.leaky_relu(a, 0.1) */
    ASSERT_VALUES(et_leaky_relu(a, 0.1f), 1, -0.2f, 3, 4, 5, -0.6f);
    /* a.clamp(-1.5, 3.5) */
    ASSERT_VALUES(et_clamp(a, -1.5f, 3.5f), 1, -1.5f, 3, 3.5f, 3.5f, -1.5f);
    ASSERT_VALUES(et_clamp(a, 0, INFINITY), 1, 0, 3, 4, 5, 0);
    /* torch.tensor([-3., .5, 3., nan]).clamp(1., 0.) -> [0, 0, 0, nan] */
    ASSERT_VALUES(et_clamp(TV(ET_SHAPE(4), -3, 0.5f, 3, NAN), 1, 0), 0, 0, 0, NAN);
    et_tensor *p = TV(ET_SHAPE(3), 1, 4, 0.25f);
    ASSERT_VALUES(et_sqrt(p), 1, 2, 0.5f);
    ASSERT_VALUES(et_log(et_exp(p)), 1, 4, 0.25f);
    ASSERT_VALUES(et_exp(et_scalar(1)), 2.71828183f);
    /* a.clamp(nan, 1) -> all nan; a.clamp(min=nan) -> a (torch 1.13's clamp_min) */
    ASSERT_VALUES(et_clamp(a, NAN, 1), NAN, NAN, NAN, NAN, NAN, NAN);
    ASSERT_VALUES(et_clamp(a, NAN, INFINITY), 1, -2, 3, 4, 5, -6);
    et_pool_end();
}
END_TEST

START_TEST(test_sum_mean)
{
    et_pool_begin();
    et_tensor *a = make_a();
    ASSERT_VALUES(et_sum_all(a), 5);
    ASSERT_VALUES(et_mean_all(a), 0.8333333134651184f);  /* a.mean() */
    et_tensor *s0 = et_sum(a, (int[]){0}, 1, false);       /* a.sum(0) */
    ASSERT_SHAPE(s0, 3);
    ASSERT_VALUES(s0, 5, 3, -3);
    et_tensor *s1 = et_sum(a, (int[]){1}, 1, true);        /* a.sum(1, keepdim=True) */
    ASSERT_SHAPE(s1, 2, 1);
    ASSERT_VALUES(s1, 2, 3);
    et_tensor *m = et_mean(a, (int[]){0, -1}, 2, false);   /* a.mean((0,1)) */
    ck_assert_int_eq(et_ndim(m), 0);
    ASSERT_VALUES(m, 0.8333333134651184f);
    ASSERT_SHAPE(et_mean(a, NULL, 0, true), 1, 1);
    et_tensor *b = et_reshape(et_arange(0, 24, 1), ET_SHAPE(2, 3, 4));
    /* torch.arange(24.).reshape(2,3,4).sum((0,2)) */
    ASSERT_VALUES(et_sum(b, (int[]){0, 2}, 2, false), 60, 92, 124);
    /* accuracy: 10^6 copies of 0.1 (float32 accumulation drifts by ~1%) */
    int64_t n = 1000000;
    ASSERT_VALUES(et_sum_all(et_full(&n, 1, 0.1f)), 100000.0015f);
    ASSERT_ERROR(et_sum(a, (int[]){1, 1}, 2, false), ET_ERR_ARG, "multiple times");
    ASSERT_ERROR(et_sum(a, (int[]){2}, 1, false), ET_ERR_INDEX, "out of range");
    et_pool_end();
}
END_TEST

START_TEST(test_max_min_argmax)
{
    et_pool_begin();
    et_tensor *a = make_a();
    et_tensor *ix;
    /* a.max(1) -> values [3, 5], indices [2, 1] */
    et_tensor *v = et_max(a, 1, false, &ix);
    ASSERT_VALUES(v, 3, 5);
    ASSERT_VALUES(ix, 2, 1);
    ck_assert(!et_requires_grad(ix));
    ck_assert_int_eq(et_tensor_dtype(ix), ET_INT64);   /* torch.long, as torch */
    /* a.min(0) -> values [1, -2, -6], indices [0, 0, 1] */
    v = et_min(a, 0, true, &ix);
    ASSERT_SHAPE(v, 1, 3);
    ASSERT_VALUES(v, 1, -2, -6);
    ASSERT_VALUES(ix, 0, 0, 1);
    ASSERT_VALUES(et_argmax(a, 0, false), 1, 1, 0);
    ck_assert_int_eq(et_tensor_dtype(et_argmax(a, 0, false)), ET_INT64);
    ASSERT_VALUES(et_argmin(a, 1, false), 1, 2);   /* a.argmin(1) */
    ASSERT_VALUES(et_max_all(a), 5);
    ASSERT_VALUES(et_min_all(a), -6);
    /* ties: first occurrence, torch.tensor([1.,3.,3.]).max(0) -> index 1 */
    ASSERT_VALUES(et_argmax(TV(ET_SHAPE(3), 1, 3, 3), 0, false), 1);
    ASSERT_VALUES(et_max(TV(ET_SHAPE(3), 1, NAN, 3), 0, false, NULL), NAN);
    ASSERT_ERROR(et_max_all(et_zeros(ET_SHAPE(0))), ET_ERR_ARG, "empty");
    ASSERT_ERROR(et_max(a, 2, false, NULL), ET_ERR_INDEX, "out of range");
    et_pool_end();
}
END_TEST

START_TEST(test_softmax_family)
{
    et_pool_begin();
    et_tensor *a = make_a();
    /* a.softmax(1) */
    ASSERT_VALUES(et_softmax(a, 1), 0.11849965155124664f, 0.0058997501619160175f,
                  0.8756005764007568f, 0.2689381539821625f, 0.731049656867981f,
                  1.2209772648930084e-05f);
    /* a.log_softmax(0) */
    ASSERT_VALUES(et_log_softmax(a, 0), -3.0485873222351074f, -7.000911235809326f,
                  -0.00012337400403339416f, -0.04858732968568802f, -0.0009114163694903255f,
                  -9.000123023986816f);
    /* stable for huge inputs */
    ASSERT_VALUES(et_softmax(TV(ET_SHAPE(2), 1000, 1000), 0), 0.5f, 0.5f);
    ASSERT_VALUES(et_log_softmax(TV(ET_SHAPE(2), -1000, 0), -1), -1000, 0);
    ASSERT_ERROR(et_softmax(a, 3), ET_ERR_INDEX, "out of range");
    et_pool_end();
}
END_TEST

START_TEST(test_matmul_forms)
{
    et_pool_begin();
    et_tensor *m = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 3));           /* arange(6).reshape(2,3) */
    et_tensor *n = et_add_scalar(et_reshape(et_arange(0, 12, 1), ET_SHAPE(3, 4)), -5);
    /* m @ n */
    ASSERT_VALUES(et_matmul(m, n), 5, 8, 11, 14, -4, 8, 20, 32);
    ASSERT_VALUES(et_matmul(m, TV(ET_SHAPE(3), 1, 2, 3)), 8, 26);             /* mv */
    ASSERT_VALUES(et_matmul(TV(ET_SHAPE(2), 1, 2), m), 6, 9, 12);             /* vm */
    et_tensor *d = et_matmul(TV(ET_SHAPE(3), 1, 2, 3), TV(ET_SHAPE(3), 4, 5, 6));
    ck_assert_int_eq(et_ndim(d), 0);
    ASSERT_VALUES(d, 32);
    /* transposed operands use CblasTrans: same values as contiguous copies */
    et_tensor *nt = et_t(et_clone(et_t(n)));     /* n's values, transposed layout */
    ck_assert(!et_is_contiguous(nt));
    ASSERT_VALUES(et_matmul(m, nt), 5, 8, 11, 14, -4, 8, 20, 32);
    ASSERT_VALUES(et_matmul(et_t(et_t(m)), et_slice(n, 1, 0, ET_END, 1)), 5, 8, 11, 14, -4, 8, 20, 32);
    /* strided rows (column slice) */
    et_tensor *ns = et_slice(n, 1, 0, ET_END, 2);
    ASSERT_VALUES(et_matmul(m, ns), 5, 11, -4, 20);
    /* batched with broadcast batch dims: [2,1,2,3] @ [3,3,4] -> [2,3,2,4] */
    et_generator *g = et_generator_new(3);
    et_tensor *x = et_randn(g, ET_SHAPE(2, 1, 2, 3));
    et_tensor *y = et_randn(g, ET_SHAPE(3, 3, 4));
    et_tensor *z = et_matmul(x, y);
    ASSERT_SHAPE(z, 2, 3, 2, 4);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            et_tensor *ref = et_matmul(et_select(et_select(x, 0, i), 0, 0), et_select(y, 0, j));
            et_tensor *got = et_select(et_select(z, 0, i), 0, j);
            float rv[8];
            et_copy_to(ref, rv);
            assert_close_tol(got, rv, 8, RTOL, ATOL, "batch slice");
        }
    /* 3-D @ 2-D is a single flattened gemm */
    et_tensor *w = et_randn(g, ET_SHAPE(3, 5));
    et_tensor *xw = et_matmul(x, w);
    ASSERT_SHAPE(xw, 2, 1, 2, 5);
    float rv[10];
    et_copy_to(et_matmul(et_select(et_select(x, 0, 1), 0, 0), w), rv);
    assert_close_tol(et_select(et_select(xw, 0, 1), 0, 0), rv, 10, RTOL, ATOL, "flat gemm");
    et_tensor *big = et_matmul(et_ones(ET_SHAPE(4, 0)), et_ones(ET_SHAPE(0, 2)));
    ASSERT_VALUES(big, 0, 0, 0, 0, 0, 0, 0, 0);
    ASSERT_ERROR(et_matmul(et_ones(ET_SHAPE(3, 4)), et_ones(ET_SHAPE(5, 2))), ET_ERR_SHAPE,
                 "matmul: shapes [3,4] and [5,2] do not align");
    ASSERT_ERROR(et_matmul(et_ones(ET_SHAPE(3)), et_ones(ET_SHAPE(4))), ET_ERR_SHAPE,
                 "matmul: shapes [3] and [4] do not align");
    ASSERT_ERROR(et_matmul(et_ones(ET_SHAPE(2, 2, 3)), et_ones(ET_SHAPE(3, 3, 1))), ET_ERR_SHAPE,
                 "do not broadcast");
    ASSERT_ERROR(et_matmul(et_scalar(1), et_ones(ET_SHAPE(2))), ET_ERR_SHAPE, "at least 1");
    et_generator_free(g);
    et_pool_end();
}
END_TEST

START_TEST(test_cat_stack_index)
{
    et_pool_begin();
    et_tensor *a = make_a();
    et_tensor *c = et_cat((et_tensor *[]){a, et_neg(a)}, 2, 1);
    ASSERT_SHAPE(c, 2, 6);
    ASSERT_VALUES(c, 1, -2, 3, -1, 2, -3, 4, 5, -6, -4, -5, 6);
    et_tensor *s = et_stack((et_tensor *[]){a, a, a}, 3, 1);
    ASSERT_SHAPE(s, 2, 3, 3);
    ASSERT_VALUES(et_select(s, 1, 2), 1, -2, 3, 4, 5, -6);
    ASSERT_SHAPE(et_stack((et_tensor *[]){a}, 1, -1), 2, 3, 1);
    /* a.index_select(1, tensor([2, 0, 2])) */
    ASSERT_VALUES(et_index_select(a, 1, TV(ET_SHAPE(3), 2, 0, 2)), 3, 1, 3, -6, 4, -6);
    ASSERT_VALUES(et_index_select(a, 0, TV(ET_SHAPE(1), 1)), 4, 5, -6);
    /* a.gather(1, tensor([[0, 0], [2, 1]])) */
    ASSERT_VALUES(et_gather(a, 1, TV(ET_SHAPE(2, 2), 0, 0, 2, 1)), 1, 1, -6, 5);
    ASSERT_VALUES(et_gather(a, 0, TV(ET_SHAPE(1, 3), 1, 0, 1)), 4, -2, -6);
    ASSERT_ERROR(et_cat((et_tensor *[]){a, et_ones(ET_SHAPE(3, 2))}, 2, 0), ET_ERR_SHAPE,
                 "sizes of tensors must match");
    ASSERT_ERROR(et_stack((et_tensor *[]){a, et_ones(ET_SHAPE(3, 2))}, 2, 0), ET_ERR_SHAPE,
                 "equal size");
    ASSERT_ERROR(et_index_select(a, 1, TV(ET_SHAPE(1), 3)), ET_ERR_INDEX,
                 "index 3 is out of range for dim 1 of size 3");
    ASSERT_ERROR(et_index_select(a, 1, TV(ET_SHAPE(1), 0.5f)), ET_ERR_INDEX, "not an integer");
    ASSERT_ERROR(et_gather(a, 1, TV(ET_SHAPE(2, 1), 0, -1)), ET_ERR_INDEX, "out of range");
    /* indices beyond int64's range: the float -> int64 conversion used to
     * give INT64_MIN, pass the range check and read out of bounds */
    const float far[] = {1e30f, INFINITY, 9.3e18f, 1.8e19f};
    for (int i = 0; i < 4; i++) {
        ASSERT_ERROR(et_gather(a, 0, TV(ET_SHAPE(1, 3), 0, far[i], 0)), ET_ERR_INDEX,
                     "out of range");
        ASSERT_ERROR(et_index_select(a, 1, TV(ET_SHAPE(2), 1, far[i])), ET_ERR_INDEX,
                     "out of range");
    }
    ASSERT_ERROR(et_cat(NULL, 0, 0), ET_ERR_ARG, "non-empty");
    et_pool_end();
}
END_TEST

START_TEST(test_comparisons_where)
{
    et_pool_begin();
    et_tensor *a = make_a(), *b = make_b();
    ASSERT_VALUES(et_gt(a, b), 1, 0, 1, 1, 1, 0);
    ASSERT_VALUES(et_lt(a, b), 0, 1, 0, 0, 0, 1);
    ASSERT_VALUES(et_ge(a, et_scalar(3)), 0, 0, 1, 1, 1, 0);
    ASSERT_VALUES(et_le(a, et_scalar(3)), 1, 1, 1, 0, 0, 1);
    ASSERT_VALUES(et_eq(a, et_scalar(4)), 0, 0, 0, 1, 0, 0);
    ASSERT_VALUES(et_ne(a, et_scalar(4)), 1, 1, 1, 0, 1, 1);
    ASSERT_VALUES(et_gt_scalar(a, 0), 1, 0, 1, 1, 1, 0);
    ASSERT_VALUES(et_lt_scalar(a, 0), 0, 1, 0, 0, 0, 1);
    et_tensor *w = et_where(et_gt_scalar(a, 0), a, b);
    ASSERT_VALUES(w, 1, 2, 3, 4, 5, -1);
    ASSERT_ERROR(et_where(TV(ET_SHAPE(2), 1, 0), a, b), ET_ERR_SHAPE, "where");
    et_pool_end();
}
END_TEST

/* every op on a non-contiguous input equals the op on a contiguous copy */
START_TEST(test_noncontiguous_inputs_match_contiguous)
{
    et_pool_begin();
    et_generator *g = et_generator_new(11);
    et_tensor *base = et_randn(g, ET_SHAPE(4, 6));
    et_tensor *nc = et_slice(et_t(base), 0, 0, ET_END, 2);  /* [3,4], strides (2,6) */
    et_tensor *cc = et_clone(nc);
    ck_assert(!et_is_contiguous(nc));
    et_tensor *other = et_randn(g, ET_SHAPE(4));
    et_tensor *(*unary[])(et_tensor *) = {et_neg, et_exp, et_abs, et_tanh, et_sigmoid, et_relu,
                                           et_sum_all, et_mean_all, et_max_all};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        float ref[12];
        et_tensor *r = unary[i](cc);
        et_copy_to(r, ref);
        assert_close_tol(unary[i](nc), ref, et_numel(r), 1e-6, 1e-6, "unary");
    }
    et_tensor *(*binary[])(et_tensor *, et_tensor *) = {et_add, et_sub, et_mul, et_div,
                                                         et_maximum, et_gt};
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++) {
        float ref[12];
        et_copy_to(binary[i](cc, other), ref);
        assert_close_tol(binary[i](nc, other), ref, 12, 1e-6, 1e-6, "binary");
        et_copy_to(binary[i](other, cc), ref);
        assert_close_tol(binary[i](other, nc), ref, 12, 1e-6, 1e-6, "binary swapped");
    }
    float ref[12];
    et_copy_to(et_softmax(cc, 0), ref);
    assert_close_tol(et_softmax(nc, 0), ref, 12, 1e-6, 1e-6, "softmax");
    et_copy_to(et_sum(cc, (int[]){0}, 1, false), ref);
    assert_close_tol(et_sum(nc, (int[]){0}, 1, false), ref, 4, 1e-6, 1e-6, "sum");
    et_copy_to(et_matmul(cc, other), ref);
    assert_close_tol(et_matmul(nc, other), ref, 3, 1e-5, 1e-5, "matmul");
    et_copy_to(et_max(cc, 1, false, NULL), ref);
    assert_close_tol(et_max(nc, 1, false, NULL), ref, 3, 0, 0, "max");
    et_generator_free(g);
    et_pool_end();
}
END_TEST

/* the fused linear equals matmul(x, w^T) + b */
START_TEST(test_fused_linear)
{
    et_pool_begin();
    et_generator *g = et_generator_new(9);
    et_tensor *x = et_randn(g, ET_SHAPE(2, 3, 4));
    et_tensor *w = et_randn(g, ET_SHAPE(5, 4));
    et_tensor *b = et_randn(g, ET_SHAPE(5));
    et_tensor *y = etc_pooled(etc_linear(x, w, b));
    ASSERT_SHAPE(y, 2, 3, 5);
    float ref[30];
    et_copy_to(et_add(et_matmul(x, et_t(w)), b), ref);
    assert_close_tol(y, ref, 30, RTOL, ATOL, "linear");
    et_copy_to(et_matmul(x, et_t(w)), ref);
    assert_close_tol(etc_pooled(etc_linear(x, w, NULL)), ref, 30, RTOL, ATOL, "linear nobias");
    ck_assert_str_eq(et_grad_fn_name(y) ? et_grad_fn_name(y) : "leaf", "leaf");
    ASSERT_ERROR(etc_linear(x, et_ones(ET_SHAPE(5, 3)), b), ET_ERR_SHAPE,
                 "input shape [2,3,4] and weight shape [5,3] do not align");
    ASSERT_ERROR(etc_linear(x, w, et_ones(ET_SHAPE(4))), ET_ERR_SHAPE, "bias shape [4]");
    et_generator_free(g);
    et_pool_end();
}
END_TEST

/* Random shapes, dims and indices (mostly invalid): every call must return
 * a result or NULL with a message, never crash (run under ASan/UBSan). */
static int64_t rnd(et_generator *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(et_generator_next(g) % (uint64_t)(hi - lo + 1));
}

static et_tensor *rnd_tensor(et_generator *g)
{
    int nd = (int)rnd(g, 0, 4);
    int64_t sh[4];
    for (int i = 0; i < nd; i++)
        sh[i] = rnd(g, 0, 3);
    et_tensor *t = et_uniform(g, sh, nd, -2, 2);
    if (rnd(g, 0, 3) == 0 && nd >= 2)
        t = et_transpose(t, 0, nd - 1);
    if (rnd(g, 0, 2) == 0)
        et_set_requires_grad(t, et_is_leaf(t));
    return t;
}

START_TEST(test_random_arguments_never_crash)
{
    et_generator *g = et_generator_new(77);
    int ok = 0, failed = 0;
    for (int it = 0; it < 20000; it++) {
        et_pool_begin();
        et_tensor *a = rnd_tensor(g), *b = rnd_tensor(g), *r = NULL;
        int d = (int)rnd(g, -5, 5);
        int64_t sh[3] = {rnd(g, -1, 4), rnd(g, -1, 4), rnd(g, -1, 4)};
        int dims[2] = {(int)rnd(g, -4, 4), (int)rnd(g, -4, 4)};
        et_clear_error();
        switch (rnd(g, 0, 24)) {
        case 0: r = et_add(a, b); break;
        case 1: r = et_mul(a, rnd(g, 0, 5) ? b : NULL); break;
        case 2: r = et_matmul(a, b); break;
        case 3: r = et_sum(a, dims, (int)rnd(g, 0, 2), rnd(g, 0, 1)); break;
        case 4: r = et_mean(a, dims, (int)rnd(g, 0, 2), rnd(g, 0, 1)); break;
        case 5: r = et_max(a, d, rnd(g, 0, 1), NULL); break;
        case 6: r = et_softmax(a, d); break;
        case 7: r = et_log_softmax(a, d); break;
        case 8: r = et_reshape(a, sh, (int)rnd(g, 0, 3)); break;
        case 9: r = et_view(a, sh, (int)rnd(g, 0, 3)); break;
        case 10: r = et_transpose(a, d, (int)rnd(g, -3, 3)); break;
        case 11: r = et_permute(a, dims, (int)rnd(g, 0, 2)); break;
        case 12: r = et_squeeze(a, d); break;
        case 13: r = et_unsqueeze(a, d); break;
        case 14: r = et_flatten(a, d, (int)rnd(g, -3, 3)); break;
        case 15: r = et_expand(a, sh, (int)rnd(g, 0, 3)); break;
        case 16: r = et_select(a, d, rnd(g, -4, 4)); break;
        case 17: r = et_slice(a, d, rnd(g, -5, 5), rnd(g, -5, 5), rnd(g, -1, 3)); break;
        case 18: r = et_cat((et_tensor *[]){a, b}, 2, d); break;
        case 19: r = et_stack((et_tensor *[]){a, b}, 2, d); break;
        case 20: r = et_index_select(a, d, et_add_scalar(et_mul_scalar(b, 2), 1)); break;
        case 21: r = et_gather(a, d, et_abs(b)); break;
        case 22: r = et_where(a, b, a); break;
        case 23: r = et_t(a); break;
        default: r = et_argmax(a, d, rnd(g, 0, 1)); break;
        }
        if (r) {
            ok++;
            char *str = et_to_string(r);
            ck_assert_ptr_nonnull(str);
            free(str);
            if (et_requires_grad(r) && et_numel(r) > 0) {
                et_tensor *ones = et_ones_like(r);
                ck_assert_int_eq(et_backward(r, ones), ET_OK);
            }
        } else {
            failed++;
            ck_assert_int_ne(et_errcode(), ET_OK);
            ck_assert(strlen(et_errmsg()) > 0);
        }
        et_pool_end();
    }
    ck_assert(ok > 1000 && failed > 1000); /* both paths exercised */
    et_generator_free(g);
}
END_TEST

/* the inline exp/tanh used by the kernels against libm in double */
/* tanh_avx512.c's row against etc_tanhf bit for bit: every 251st float
 * bit pattern (both signs, subnormals, infinities, NaNs with their
 * payloads), the saturation and clamp edges, and rows of every length
 * 1..100 (the four-vector blocks, single vectors and the masked tail) */
START_TEST(test_tanh_avx512_bits)
{
    if (!etc_cpu_avx512f()) {
        note_not_run(__func__, "the AVX-512 tanh row (this CPU has no AVX-512F)");
        return;
    }
    enum { B = 4096 };
    static float x[B], y[B];
    int n = 0;
    uint64_t checked = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 251) {
        uint32_t w = (uint32_t)u;
        memcpy(&x[n++], &w, sizeof w);
        if (n == B || u + 251 > 0xffffffffu) {
            etc_tanh_avx512(y, x, n);
            for (int i = 0; i < n; i++) {   /* one check call per mismatch, not per value */
                float t = etc_tanhf(x[i]);
                if (memcmp(&t, &y[i], sizeof t) != 0)
                    ck_abort_msg("tanh(%a) = %a, avx512 %a", (double)x[i], (double)t,
                                 (double)y[i]);
            }
            checked += (uint64_t)n;
            n = 0;
        }
    }
    ck_assert(checked > 17000000u);
    static const float edge[] = {0.0f, -0.0f, 8.664339742f, 8.6643400f, 8.6643390f, 9.0f,
                                 9.0000010f, 8.9999990f, 1e-30f, -1e-30f, 1.4e-45f, 40.0f,
                                 INFINITY, -INFINITY, NAN, -NAN, 3.0e38f, 0.5f, -0.5f};
    const int ne = (int)(sizeof edge / sizeof edge[0]);
    for (int len = 1; len <= 100; len++) {
        for (int i = 0; i < len; i++)
            x[i] = edge[i % ne] * (i >= ne ? -1.0f : 1.0f);
        x[len] = 12345.0f;   /* past the row: must stay */
        y[len] = 777.0f;
        etc_tanh_avx512(y, x, len);
        for (int i = 0; i < len; i++) {
            float t = etc_tanhf(x[i]);
            ck_assert_msg(memcmp(&t, &y[i], sizeof t) == 0, "len %d: tanh(%a) = %a, avx512 %a",
                          len, (double)x[i], (double)t, (double)y[i]);
        }
        ck_assert_float_eq(y[len], 777.0f);
    }
    /* in place */
    for (int i = 0; i < 37; i++)
        x[i] = (float)i * 0.31f - 5.0f;
    for (int i = 0; i < 37; i++)
        y[i] = etc_tanhf(x[i]);
    etc_tanh_avx512(x, x, 37);
    ck_assert(memcmp(x, y, 37 * sizeof(float)) == 0);
}
END_TEST

/* tanh's backward row g * (1 - y^2) against the scalar expression bit for
 * bit: rows of 1..150 (the four-vector blocks and the masked tail), values
 * from random bit patterns (NaNs, infinities, subnormals, signed zeros) */
START_TEST(test_tanh_back_avx512_bits)
{
    if (!etc_cpu_avx512f()) {
        note_not_run(__func__, "the AVX-512 tanh backward row (this CPU has no AVX-512F)");
        return;
    }
    enum { L = 150 };
    static float g[L + 1], y[L + 1], o[L + 1];
    uint32_t st = 12345;
    for (int len = 1; len <= L; len++) {
        for (int i = 0; i < len; i++) {
            uint32_t w[2];
            for (int q = 0; q < 2; q++) {
                st = st * 1664525u + 1013904223u;
                w[q] = st;
            }
            /* half the lanes plain numbers in [-1.5, 1.5), half raw bit patterns */
            if (i % 2) {
                memcpy(&g[i], &w[0], sizeof w[0]);
                memcpy(&y[i], &w[1], sizeof w[1]);
            } else {
                g[i] = (float)(w[0] >> 8) / 16777216.0f * 3.0f - 1.5f;
                y[i] = (float)(w[1] >> 8) / 16777216.0f * 3.0f - 1.5f;
            }
        }
        o[len] = 777.0f;   /* past the row: must stay */
        etc_tanh_back_avx512(o, g, y, len);
        for (int i = 0; i < len; i++) {
            float t = g[i] * (1.0f - y[i] * y[i]);
            ck_assert_msg(memcmp(&t, &o[i], sizeof t) == 0, "len %d: %a * (1 - %a^2) = %a, avx512 %a",
                          len, (double)g[i], (double)y[i], (double)t, (double)o[i]);
        }
        ck_assert_float_eq(o[len], 777.0f);
    }
}
END_TEST

START_TEST(test_exp_tanh_accuracy)
{
    double maxe = 0, maxt = 0;
    for (float v = -110.0f; v < 90.0f; v += 0.00071f) {
        double e = exp((double)v);
        if (e > 1.2e-38 && e < 3.4e38)
            maxe = fmax(maxe, fabs(etc_expf(v) - e) / e);
    }
    for (float v = -12.0f; v < 12.0f; v += 0.000113f) {
        double t = tanh((double)v);
        if (t != 0)
            maxt = fmax(maxt, fabs(etc_tanhf(v) - t) / fabs(t));
    }
    /* in ulps of the result, every 4093rd float of [0, 9] (subnormals too) and
     * its negation: 2.40 at most (PyTorch's SLEEF tanhf: 1.0; the two agree
     * within 2 ulp) */
    double maxu = 0;
    for (uint32_t u = 0; u <= 0x41100000u; u += 4093) {
        float v;
        memcpy(&v, &u, sizeof v);
        double t = tanh((double)v);
        float tf = (float)t;
        double ulp = tf == 0 ? 1.4e-45 : nextafterf(fabsf(tf), INFINITY) - fabsf(tf);
        float y = etc_tanhf(v), yn = etc_tanhf(-v);
        ck_assert_msg(yn == -y, "tanh(-%g) = %.9g, not -tanh(%g) = %.9g", (double)v, (double)yn,
                      (double)v, (double)-y);
        maxu = fmax(maxu, fabs(y - t) / ulp);
    }
    ck_assert_msg(maxu <= 2.5, "tanh max error %g ulp", maxu);
    /* tanh's exp over its range [0, 40]: etc_expf's bits exactly */
    for (float v = 0.0f; v <= 40.0f; v += 0.000917f) {
        float a = etc_expf_0_40(v), b = etc_expf(v);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "expf_0_40(%.9g) = %.9g, expf %.9g",
                      (double)v, (double)a, (double)b);
    }
    ck_assert_msg(maxe < 3e-7, "exp max relative error %g", maxe);
    ck_assert_msg(maxt < 3e-7, "tanh max relative error %g", maxt);
    ck_assert_float_eq(etc_expf(0), 1.0f);
    ck_assert(isinf(etc_expf(89.0f)) && isinf(etc_expf(INFINITY)));
    ck_assert_float_eq(etc_expf(-105.0f), 0.0f);
    ck_assert_float_eq(etc_expf(-INFINITY), 0.0f);
    ck_assert(etc_expf(-95.0f) > 0 && fabs(etc_expf(-95.0f) - exp(-95.0)) < 1e-44);
    ck_assert(isnan(etc_expf(NAN)) && isnan(etc_tanhf(NAN)));
    ck_assert_float_eq(etc_tanhf(INFINITY), 1.0f);
    ck_assert_float_eq(etc_tanhf(-30.0f), -1.0f);
    ck_assert_float_eq(etc_tanhf(1e-30f), 1e-30f);
    et_pool_begin();
    /* torch.sigmoid(torch.tensor([-100., 100., 0.])) = [3.7835e-44, 1., 0.5] */
    ASSERT_VALUES(et_sigmoid(TV(ET_SHAPE(3), -100, 100, 0)), 3.7835e-44f, 1, 0.5f);
    et_pool_end();
}
END_TEST

/* Expanded views own no memory, so they can claim shapes whose broadcast,
 * matmul or cat result has more than 2^63 elements; the result's size must
 * be an error, not a wrapped-around numel (2^40 * 2^40 wraps to 0, which
 * used to return a [2^40, 2^40] tensor with an empty buffer). */
START_TEST(test_result_shape_overflow_is_an_error)
{
    et_pool_begin();
    const int64_t big = (int64_t)1 << 40;
    et_tensor *one = et_zeros(ET_SHAPE(1, 1));
    et_tensor *col = et_expand(one, ET_SHAPE(big, 1));
    et_tensor *row = et_expand(one, ET_SHAPE(1, big));
    ck_assert_ptr_nonnull(col);
    ck_assert_ptr_nonnull(row);
    ASSERT_ERROR(et_mul(col, row), ET_ERR_NOMEM, "too large");
    ASSERT_ERROR(et_add(row, col), ET_ERR_NOMEM, "too large");
    ASSERT_ERROR(et_where(col, row, col), ET_ERR_NOMEM, "too large");
    /* matmul refuses dims past BLAS's int first */
    ASSERT_ERROR(et_matmul(col, row), ET_ERR_ARG, "too large");
    /* batch dims that broadcast to 2^80 */
    et_tensor *m = et_zeros(ET_SHAPE(1, 1, 1, 1));
    et_tensor *b1 = et_expand(m, ET_SHAPE(big, 1, 1, 1));
    et_tensor *b2 = et_expand(m, ET_SHAPE(1, big, 1, 1));
    ASSERT_ERROR(et_matmul(b1, b2), ET_ERR_NOMEM, "too large");
    /* cat of views whose sizes sum past INT64_MAX */
    const int64_t huge = (int64_t)1 << 59;   /* 16 of them reach 2^63 */
    et_tensor *h = et_expand(et_zeros(ET_SHAPE(1)), ET_SHAPE(huge));
    ck_assert_ptr_nonnull(h);
    et_tensor *parts[17];
    for (int i = 0; i < 17; i++)
        parts[i] = h;
    et_clear_error();
    ck_assert_ptr_null(et_cat(parts, 17, 0));
    ck_assert_int_ne(et_errcode(), ET_OK);
    et_pool_end();
}
END_TEST

/* torch.zeros(0, 3): .mean(0) -> [nan, nan, nan], .mean() -> nan,
 * .sum(0) -> [0, 0, 0], .sum() -> 0, .mean(1) -> [] (an empty mean used to
 * be 0 because the empty-input path ignored the 1/count scale). */
START_TEST(test_empty_reductions)
{
    et_pool_begin();
    et_tensor *e = et_zeros(ET_SHAPE(0, 3));
    int d0 = 0, d1 = 1;
    ASSERT_VALUES(et_mean(e, &d0, 1, false), NAN, NAN, NAN);
    ASSERT_VALUES(et_mean_all(e), NAN);
    ASSERT_VALUES(et_sum(e, &d0, 1, false), 0, 0, 0);
    ASSERT_VALUES(et_sum_all(e), 0);
    ASSERT_SHAPE(et_mean(e, &d1, 1, false), 0);
    et_pool_end();
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"binary_broadcast", test_binary_broadcast},
        {"scalar_ops", test_scalar_ops},
        {"unary", test_unary},
        {"sum_mean", test_sum_mean},
        {"max_min_argmax", test_max_min_argmax},
        {"softmax_family", test_softmax_family},
        {"matmul", test_matmul_forms},
        {"cat_stack_index", test_cat_stack_index},
        {"comparisons_where", test_comparisons_where},
        {"noncontiguous", test_noncontiguous_inputs_match_contiguous},
        {"fused_linear", test_fused_linear},
        {"random_arguments", test_random_arguments_never_crash},
        {"exp_tanh_accuracy", test_exp_tanh_accuracy},
        {"tanh_avx512_bits", test_tanh_avx512_bits},
        {"tanh_back_avx512_bits", test_tanh_back_avx512_bits},
        {"result_shape_overflow", test_result_shape_overflow_is_an_error},
        {"empty_reductions", test_empty_reductions},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return run_suite(ops_suite()); }
