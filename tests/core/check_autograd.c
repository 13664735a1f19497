/* check_autograd.c - et_backward: graph walk, accumulation, special
 * subgradients, errors, et_backward_notify.  Expected gradients come from torch 1.13 (the
 * python expression is quoted) or from elementary calculus. */
#include "check_helpers.h"
#include "core/core_internal.h"   /* etc_scalar_one */

START_TEST(test_simple_graph_matches_torch)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(2, 3), 1, -2, 3, 4, 5, -6);
    et_tensor *b = TV(ET_SHAPE(3), 0.5f, 2, -1);
    et_set_requires_grad(a, true);
    et_set_requires_grad(b, true);
    /* ((a*b + a).sum()).backward() */
    et_tensor *loss = et_sum_all(et_add(et_mul(a, b), a));
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    ASSERT_VALUES(et_grad(a), 1.5f, 3, 0, 1.5f, 3, 0);
    ASSERT_VALUES(et_grad(b), 5, 3, -3);
    ck_assert_ptr_null(et_grad(loss)); /* non-leaf without retain_grad */
    et_pool_end();
}
END_TEST

START_TEST(test_tensor_used_twice_gets_both_contributions)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(3), 1, 2, -3);
    et_set_requires_grad(x, true);
    /* d/dx sum(x*x) = 2x */
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(x, x)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 2, 4, -6);
    et_set_grad(x, NULL);
    /* c = x + x; d/dx sum(c + c) = 4 */
    et_tensor *c = et_add(x, x);
    ck_assert_int_eq(et_backward(et_sum_all(et_add(c, c)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 4, 4, 4);
    et_pool_end();
}
END_TEST

START_TEST(test_shared_chain_visits_each_node_once)
{
    et_pool_begin();
    et_tensor *x0 = et_ones(ET_SHAPE(2));
    et_set_requires_grad(x0, true);
    et_tensor *x = x0;
    /* 50 doublings: a walk that revisits shared nodes would take 2^50 steps */
    for (int i = 0; i < 50; i++)
        x = et_add(x, x);
    ck_assert_float_eq(et_data(x)[0], ldexpf(1, 50));
    ck_assert_int_eq(et_backward(et_sum_all(x), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x0), ldexpf(1, 50), ldexpf(1, 50));
    et_pool_end();
}
END_TEST

START_TEST(test_deep_chain_no_stack_overflow)
{
    et_tensor *x0 = et_scalar(1);
    et_set_requires_grad(x0, true);
    /* built without a pool: freeing the root frees 100000 nodes iteratively */
    et_tensor *x = et_tensor_ref(x0);
    for (int i = 0; i < 100000; i++) {
        et_tensor *y = et_mul_scalar(x, 1.0f);
        et_tensor_free(x);
        x = y;
    }
    ck_assert_int_eq(et_backward(x, NULL), ET_OK);
    ASSERT_VALUES(et_grad(x0), 1);
    et_tensor_free(x);
    et_tensor_free(x0);
}
END_TEST

START_TEST(test_gradients_accumulate_across_calls)
{
    et_pool_begin();
    et_tensor *w = TV(ET_SHAPE(2), 3, 4);
    et_set_requires_grad(w, true);
    et_tensor *loss = et_sum_all(et_mul_scalar(w, 5));
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    et_tensor *g1 = et_grad(w);
    ASSERT_VALUES(g1, 5, 5);
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK); /* graph is retained */
    ck_assert_ptr_eq(et_grad(w), g1);                  /* accumulated in place */
    ASSERT_VALUES(et_grad(w), 10, 10);
    et_pool_end();
}
END_TEST

START_TEST(test_retain_grad_and_explicit_seed)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2), 1, 2);
    et_set_requires_grad(x, true);
    et_tensor *y = et_mul_scalar(x, 3);
    et_retain_grad(y);
    et_tensor *z = et_mul(y, y);
    /* z.backward(torch.tensor([1., 10.])): dz/dy = 2y = [6, 12] */
    ck_assert_int_eq(et_backward(z, TV(ET_SHAPE(2), 1, 10)), ET_OK);
    ASSERT_VALUES(et_grad(y), 6, 120);
    ASSERT_VALUES(et_grad(x), 18, 360);
    et_retain_grad(x); /* no-op on a leaf */
    et_pool_end();
}
END_TEST

START_TEST(test_backward_errors)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2), 1, 2);
    ck_assert_int_eq(et_backward(et_sum_all(x), NULL), ET_ERR_GRAD);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "does not require grad"));
    et_set_requires_grad(x, true);
    et_tensor *y = et_mul_scalar(x, 2);
    ck_assert_int_eq(et_backward(y, NULL), ET_ERR_GRAD);
    ck_assert_ptr_nonnull(strstr(et_errmsg(),
                                 "grad can be implicitly created only for scalar outputs"));
    ck_assert_int_eq(et_backward(y, et_ones(ET_SHAPE(3))), ET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "[3]"));
    ck_assert_int_eq(et_backward(NULL, NULL), ET_ERR_ARG);
    ck_assert_ptr_null(et_grad(x)); /* failed calls changed nothing */
    /* a one-element non-scalar root is seeded with 1 */
    ck_assert_int_eq(et_backward(et_sum(y, NULL, 0, true), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 2, 2);
    et_pool_end();
}
END_TEST

START_TEST(test_subgradients_at_kinks)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(5), 0, -1, 2, 1, 3);
    et_set_requires_grad(x, true);
    /* (x.relu().sum() + x.abs().sum() + x.clamp(0,2).sum()).backward() */
    et_tensor *l = et_add(et_add(et_sum_all(et_relu(x)), et_sum_all(et_abs(x))),
                          et_sum_all(et_clamp(x, 0, 2)));
    ck_assert_int_eq(et_backward(l, NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 1, -1, 3, 3, 2);
    et_pool_end();
}
END_TEST

START_TEST(test_max_min_tie_rules)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(4), 1, 3, 3, 2), *y = TV(ET_SHAPE(4), 2, 3, 1, 2);
    et_set_requires_grad(x, true);
    et_set_requires_grad(y, true);
    /* torch.maximum(x,y).sum().backward(): ties split evenly */
    ck_assert_int_eq(et_backward(et_sum_all(et_maximum(x, y)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 0, 0.5f, 1, 0.5f);
    ASSERT_VALUES(et_grad(y), 1, 0.5f, 0, 0.5f);
    et_set_grad(x, NULL);
    et_set_grad(y, NULL);
    ck_assert_int_eq(et_backward(et_sum_all(et_minimum(x, y)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 1, 0.5f, 0, 0.5f);
    /* (x.max(1)[0] * tensor([1., 10.])).sum(): first index on ties */
    et_tensor *m = TV(ET_SHAPE(2, 3), 1, 3, 3, 2, 0, 2);
    et_set_requires_grad(m, true);
    et_tensor *v = et_max(m, 1, false, NULL);
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(v, TV(ET_SHAPE(2), 1, 10))), NULL), ET_OK);
    ASSERT_VALUES(et_grad(m), 0, 1, 0, 10, 0, 0);
    /* x.max().backward(): the all-reduce spreads over ties */
    et_tensor *z = TV(ET_SHAPE(3), 1, 3, 3);
    et_set_requires_grad(z, true);
    ck_assert_int_eq(et_backward(et_max_all(z), NULL), ET_OK);
    ASSERT_VALUES(et_grad(z), 0, 0.5f, 0.5f);
    et_pool_end();
}
END_TEST

START_TEST(test_softmax_gradients_match_torch)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2, 3), 1, -2, 3, 4, 5, -6);
    et_tensor *w = TV(ET_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    et_set_requires_grad(x, true);
    /* (x.softmax(1)*w).sum().backward() */
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(et_softmax(x, 1), w)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), -0.2082158327102661f, -0.004466705489903688f,
                  0.21268266439437866f, -0.19661378860473633f, 0.19659802317619324f,
                  1.5493293176405132e-05f);
    et_set_grad(x, NULL);
    /* (x.log_softmax(0)*w).sum().backward() */
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(et_log_softmax(x, 0), w)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(x), 0.7628706097602844f, 1.9936226606369019f, -5.998889446258545f,
                  -0.7628706693649292f, -1.9936230182647705f, 5.998889446258545f);
    et_pool_end();
}
END_TEST

START_TEST(test_comparisons_and_where_masks)
{
    et_pool_begin();
    et_tensor *a = TV(ET_SHAPE(3), 1, -1, 2), *b = TV(ET_SHAPE(3), 0, 0, 5);
    et_set_requires_grad(a, true);
    et_set_requires_grad(b, true);
    et_tensor *cond = et_gt(a, b);
    ck_assert(!et_requires_grad(cond));
    ck_assert(et_is_leaf(cond));
    et_tensor *w = et_where(cond, a, et_mul_scalar(b, 2));
    ck_assert_int_eq(et_backward(et_sum_all(w), NULL), ET_OK);
    ASSERT_VALUES(et_grad(a), 1, 0, 0);
    ASSERT_VALUES(et_grad(b), 0, 2, 2);
    et_pool_end();
}
END_TEST

START_TEST(test_view_gradients_flow_to_base)
{
    et_pool_begin();
    et_tensor *x = et_reshape(et_arange(0, 6, 1), ET_SHAPE(2, 3));
    x = et_clone(x);
    et_set_requires_grad(x, true);
    /* x[1, ::2] * 2 + x.t()[0] (= x[:,0]) summed */
    et_tensor *s = et_mul_scalar(et_slice(et_select(x, 0, 1), 0, 0, ET_END, 2), 2);
    et_tensor *t0 = et_select(et_t(x), 0, 0);
    et_tensor *l = et_add(et_sum_all(s), et_sum_all(et_mul(t0, t0)));
    ck_assert_int_eq(et_backward(l, NULL), ET_OK);
    /* d/dx: 2 at [1,0] and [1,2], plus 2*x at column 0 ([0,0]=0, [1,0]=3) */
    ASSERT_VALUES(et_grad(x), 0, 0, 0, 2 + 6, 0, 2);
    et_pool_end();
}
END_TEST

START_TEST(test_no_grad_records_nothing)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2), 1, 2);
    et_set_requires_grad(x, true);
    et_tensor *y;
    ET_NO_GRAD { y = et_mul(x, x); }
    ck_assert(!et_requires_grad(y));
    ck_assert_int_eq(et_backward(et_sum_all(y), NULL), ET_ERR_GRAD);
    et_pool_end();
}
END_TEST

/* torch.tanh saturates to exactly +-1 for |x| > 8.6643 (SLEEF), so the
 * gradient 1 - y*y there is exactly 0 (large weights would amplify any rest) */
START_TEST(test_tanh_saturation_grad_is_zero)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(4), 8.7f, -20, 2550, INFINITY);
    et_set_requires_grad(x, true);
    et_tensor *y = et_tanh(x);
    ASSERT_VALUES(y, 1, -1, 1, 1);
    ck_assert_int_eq(et_backward(et_sum_all(et_mul_scalar(y, 1e6f)), NULL), ET_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(et_data(et_grad(x))[i], 0.0f);
    et_pool_end();
}
END_TEST

/* many inputs: the node's input array is allocated, not inline */
START_TEST(test_cat_stack_many_inputs)
{
    et_pool_begin();
    et_tensor *xs[20];
    for (int i = 0; i < 20; i++) {
        xs[i] = et_full(ET_SHAPE(2), (float)i);
        et_set_requires_grad(xs[i], true);
    }
    /* sum(cat(xs[0..4]) * w) with w = arange(10): grad of xs[i] = w[2i], w[2i+1] */
    et_tensor *c = et_cat(xs, 5, 0);
    ASSERT_SHAPE(c, 10);
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(c, et_arange(0, 10, 1))), NULL), ET_OK);
    for (int i = 0; i < 5; i++)
        ASSERT_VALUES(et_grad(xs[i]), (float)(2 * i), (float)(2 * i + 1));
    /* stack of 20 along dim 1 -> [2, 20]; d/dxs[i] sum(stack * i) = i */
    et_tensor *st = et_stack(xs, 20, 1);
    ASSERT_SHAPE(st, 2, 20);
    ck_assert_str_eq(et_grad_fn_name(st), "StackBackward0");
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(st, et_arange(0, 20, 1))), NULL), ET_OK);
    ASSERT_VALUES(et_grad(xs[7]), 7, 7);
    ASSERT_VALUES(et_grad(xs[2]), 4 + 2, 5 + 2); /* accumulated onto the cat gradient */
    et_pool_end();
}
END_TEST

/* PyTorch's version-counter rule: backward fails when a value it needs was
 * overwritten in place after use; values it does not need may change */
START_TEST(test_in_place_after_use_is_detected)
{
    et_pool_begin();
    et_tensor *w = TV(ET_SHAPE(3), 1, 2, 3), *x = TV(ET_SHAPE(3), 4, 5, 6);
    et_set_requires_grad(w, true);
    et_tensor *prod = et_sum_all(et_mul(w, x));
    et_tensor *sum = et_sum_all(et_add(w, x));
    ET_NO_GRAD { ck_assert_int_eq(et_fill_(et_slice(x, 0, 0, 1, 1), 0), ET_OK); }
    ck_assert_int_eq(et_backward(prod, NULL), ET_ERR_GRAD);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "input 1 (shape [3]) of MulBackward0 was modified "
                                              "by an in-place operation"));
    ck_assert_int_eq(et_backward(sum, NULL), ET_OK); /* add does not read x */
    ASSERT_VALUES(et_grad(w), 1, 1, 1);
    /* an output that the backward reads (relu) */
    et_tensor *r = et_relu(w);
    et_tensor *loss = et_sum_all(r);
    ET_NO_GRAD { ck_assert_int_eq(et_copy_(r, et_zeros(ET_SHAPE(3))), ET_OK); }
    ck_assert_int_eq(et_backward(loss, NULL), ET_ERR_GRAD);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "ReluBackward0"));
    /* a fresh graph after the update is fine */
    ck_assert_int_eq(et_backward(et_sum_all(et_mul(w, x)), NULL), ET_OK);
    ASSERT_VALUES(et_grad(w), 1, 6, 7);
    et_pool_end();
}
END_TEST

/* et_backward_notify: every leaf reported once, as soon as its gradient is
 * final -- the last layer's before the first layer's exists -- with the
 * values of et_backward (torch's). */
typedef struct {
    et_tensor *leaf[8];
    float first[8];       /* grad[0] when reported */
    bool w1_had_grad[8];  /* the first layer's weight had a gradient yet */
    int n;
    et_tensor *w1;
} ready_log;

static void on_ready(et_tensor *leaf, void *arg)
{
    ready_log *l = arg;
    ck_assert_int_lt(l->n, 8);
    l->leaf[l->n] = leaf;
    l->first[l->n] = et_data_const(et_grad(leaf))[0];
    l->w1_had_grad[l->n] = et_grad(l->w1) != NULL;
    l->n++;
}

START_TEST(test_backward_notify_reports_each_leaf_when_final)
{
    et_pool_begin();
    et_tensor *x = TV(ET_SHAPE(2, 2), 1, -2, 0.5f, 3);
    et_tensor *w1 = TV(ET_SHAPE(3, 2), 0.5f, -1, 2, 0.25f, -0.5f, 1.5f);
    et_tensor *b1 = TV(ET_SHAPE(3), 0.1f, -0.2f, 0.3f);
    et_tensor *w2 = TV(ET_SHAPE(1, 3), 1, -1, 0.5f);
    et_tensor *b2 = TV(ET_SHAPE(1), 0.25f);
    et_tensor *unused = TV(ET_SHAPE(1), 1);
    et_tensor *p[] = {w1, b1, w2, b2, unused};
    for (int i = 0; i < 5; i++)
        et_set_requires_grad(p[i], true);
    /* y = linear(relu(linear(x, w1, b1)), w2, b2); ((y*y).sum() + (b2*3).sum()).backward():
     * b2 is used twice, unused not at all */
    et_tensor *y = et_linear(et_relu(et_linear(x, w1, b1)), w2, b2);
    et_tensor *loss = et_add(et_sum_all(et_mul(y, y)), et_sum_all(et_mul_scalar(b2, 3)));
    ready_log l = {.w1 = w1};
    ck_assert_int_eq(et_backward_notify(loss, NULL, on_ready, &l), ET_OK);
    ASSERT_VALUES(et_grad(w1), 3.1f, -6.2f, -4.075f, 0.349999f, 0.4875f, 2.925f);
    ASSERT_VALUES(et_grad(b1), 3.1f, -5.05f, 0.975f);
    ASSERT_VALUES(et_grad(w2), 8.06f, 7.0525f, 8.8725f);
    ASSERT_VALUES(et_grad(b2), 8.05f);
    ck_assert_int_eq(l.n, 4); /* not unused */
    int at[4] = {-1, -1, -1, -1};
    for (int i = 0; i < l.n; i++)
        for (int k = 0; k < 4; k++)
            if (l.leaf[i] == p[k]) {
                ck_assert_int_eq(at[k], -1); /* once */
                at[k] = i;
                /* final when reported: what backward leaves */
                ck_assert(l.first[i] == et_data_const(et_grad(p[k]))[0]);
            }
    for (int k = 0; k < 4; k++)
        ck_assert_int_ge(at[k], 0);
    /* the second layer's before the first layer's, and before w1 had a gradient at all */
    ck_assert_int_lt(at[2], at[0]);
    ck_assert_int_lt(at[3], at[0]);
    ck_assert(!l.w1_had_grad[at[2]] && !l.w1_had_grad[at[3]]);
    /* the same numbers as et_backward, accumulated the same way */
    float g[6];
    et_copy_to(et_grad(w1), g);
    for (int i = 0; i < 5; i++)
        et_set_grad(p[i], NULL);
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    const float *h = et_data_const(et_grad(w1));
    for (int i = 0; i < 6; i++)
        ck_assert(g[i] == h[i]);
    et_pool_end();
}
END_TEST

/* A scalar root's seed is one shared per-thread 1.0 (no tensor made per
 * backward); every gradient that reaches a .grad from it must be a copy, so
 * writing into a .grad can never change the next backward's seed. */
START_TEST(test_scalar_seed_is_shared_never_written)
{
    et_pool_begin();
    et_tensor *one = etc_scalar_one();
    ck_assert_ptr_nonnull(one);
    et_tensor *x = et_scalar(3.0f);
    et_set_requires_grad(x, true);
    for (int i = 0; i < 3; i++) {   /* the root is the leaf itself: seed into .grad */
        ck_assert_int_eq(et_backward(x, NULL), ET_OK);
        ck_assert_ptr_ne(et_grad(x), one);
        ck_assert(et_item(et_grad(x)) == (float)(i + 1));
    }
    et_fill_(et_grad(x), 5.0f);
    et_tensor *a = et_scalar(1.0f), *b = et_scalar(2.0f);
    et_set_requires_grad(a, true);
    et_set_requires_grad(b, true);
    et_tensor *r = et_add(a, b);   /* add's backward hands the seed itself to both */
    et_retain_grad(r);
    ck_assert_int_eq(et_backward(r, NULL), ET_OK);
    ck_assert_ptr_ne(et_grad(a), one);
    ck_assert_ptr_ne(et_grad(b), one);
    ck_assert_ptr_ne(et_grad(r), one);
    ck_assert_ptr_ne(et_grad(a), et_grad(b));
    et_fill_(et_grad(a), 7.0f);
    et_fill_(et_grad(r), 9.0f);
    ck_assert(et_item(et_grad(b)) == 1.0f);
    ck_assert(et_data(one)[0] == 1.0f);
    /* and the next scalar backward still seeds with 1 */
    et_tensor *y = et_scalar(4.0f);
    et_set_requires_grad(y, true);
    ck_assert_int_eq(et_backward(et_mul(y, y), NULL), ET_OK);
    ck_assert(et_item(et_grad(y)) == 8.0f);
    et_tensor_free(one);
    et_pool_end();
}
END_TEST

/* Chunks of a non-leaf (a Transformer's packed q/k/v): the later chunks'
 * gradients go straight into the pending gradient of their input
 * (shape.c), which must equal the sum of the scattered pieces, along the
 * last dim (rows of a view) and an inner one, with the input also used
 * whole (its pending gradient then holds more than the chunks). */
START_TEST(test_chunk_gradients_of_a_non_leaf)
{
    for (int dim = 1; dim <= 2; dim++)
        for (int whole = 0; whole < 2; whole++) {
            et_pool_begin();
            et_tensor *x = et_clone(et_reshape(et_arange(0, 36, 1), ET_SHAPE(2, 3, 6)));
            et_set_requires_grad(x, true);
            et_tensor *y = et_mul_scalar(x, 2), *part[3];
            ck_assert_int_eq(et_chunk(y, 3, dim, part, 3), 3);
            /* sum(a * 1.5) + sum(b * b) + sum(c * 3) (+ sum(y)): dense gradients */
            et_tensor *l = et_add(et_add(et_sum_all(et_mul_scalar(part[0], 1.5f)),
                                         et_sum_all(et_mul(part[1], part[1]))),
                                  et_sum_all(et_mul_scalar(part[2], 3)));
            if (whole)
                l = et_add(l, et_sum_all(y));
            ck_assert_int_eq(et_backward(l, NULL), ET_OK);
            float expect[36];
            for (int i = 0; i < 36; i++) {
                int c = dim == 2 ? (i % 6) / 2 : (i / 6) % 3;   /* which chunk */
                float dy = c == 0 ? 1.5f : c == 1 ? 2.0f * (2.0f * (float)i) : 3.0f;
                expect[i] = 2.0f * (dy + (whole ? 1.0f : 0.0f));
            }
            assert_close_tol(et_grad(x), expect, 36, 0, 0, "chunk gradient");
            et_pool_end();
        }
}
END_TEST

static Suite *autograd_suite(void)
{
    Suite *s = suite_create("autograd");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"simple_graph", test_simple_graph_matches_torch},
        {"used_twice", test_tensor_used_twice_gets_both_contributions},
        {"shared_subgraph", test_shared_chain_visits_each_node_once},
        {"deep_chain", test_deep_chain_no_stack_overflow},
        {"accumulation", test_gradients_accumulate_across_calls},
        {"retain_grad_seed", test_retain_grad_and_explicit_seed},
        {"errors", test_backward_errors},
        {"kinks", test_subgradients_at_kinks},
        {"max_min_ties", test_max_min_tie_rules},
        {"softmax", test_softmax_gradients_match_torch},
        {"where_masks", test_comparisons_and_where_masks},
        {"views", test_view_gradients_flow_to_base},
        {"no_grad", test_no_grad_records_nothing},
        {"tanh_saturation", test_tanh_saturation_grad_is_zero},
        {"cat_stack_many_inputs", test_cat_stack_many_inputs},
        {"in_place_after_use", test_in_place_after_use_is_detected},
        {"backward_notify", test_backward_notify_reports_each_leaf_when_final},
        {"scalar_seed_shared", test_scalar_seed_is_shared_never_written},
        {"chunk_non_leaf", test_chunk_gradients_of_a_non_leaf},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return run_suite(autograd_suite()); }
