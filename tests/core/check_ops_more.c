/* check_ops_more.c - the ops added after the first release (ops_unary.c,
 * reduce.c, sort.c, shape_more.c, index.c, einsum.c): forward values from
 * torch 1.13 (expression quoted), the parts of their API the differential
 * suite cannot reach (piece arrays, in-place refusals easytorch adds,
 * pools), and random arguments that must give a result or an error, never
 * a crash (run under ASan/UBSan). */
#include "check_helpers.h"

/* a = torch.tensor([[1.,-2.,3.],[4.,5.,-6.]]) */
static et_tensor *make_a(void) { return TV(ET_SHAPE(2, 3), 1, -2, 3, 4, 5, -6); }

START_TEST(test_activations)
{
    et_pool_begin();
    et_tensor *a = make_a();
    /* F.softplus(a) */
    ASSERT_VALUES(et_softplus(a, 1, 20), 1.31326163f, 0.126928002f, 3.04858732f, 4.01814985f,
                  5.0067153f, 0.00247568521f);
    /* F.elu(a) */
    ASSERT_VALUES(et_elu(a, 1), 1, -0.864664733f, 3, 4, 5, -0.997521222f);
    /* F.silu(a) */
    ASSERT_VALUES(et_silu(a), 0.731058598f, -0.238405839f, 2.85772252f, 3.92805505f, 4.96653557f,
                  -0.0148357386f);
    /* F.mish(a) */
    ASSERT_VALUES(et_mish(a), 0.865098357f, -0.252501458f, 2.98653507f, 3.99741292f, 4.99955225f,
                  -0.014854081f);
    /* torch.erf(a / 4) */
    ASSERT_VALUES(et_erf(et_div_scalar(a, 4)), 0.276326388f, -0.520499885f, 0.711155653f,
                  0.842700779f, 0.92290014f, -0.966105163f);
    /* F.hardtanh(a, -2, 4) */
    ASSERT_VALUES(et_hardtanh(a, -2, 4), 1, -2, 3, 4, 4, -2);
    ASSERT_ERROR(et_hardtanh(a, 1, -1), ET_ERR_ARG, "min_val");
    et_pool_end();
}
END_TEST

START_TEST(test_reductions)
{
    et_pool_begin();
    et_tensor *a = make_a();
    int d1 = 1, d0 = 0;
    ASSERT_VALUES(et_logsumexp(a, &d1, 1, false), 3.13284516f, 5.31327391f); /* logsumexp(a, 1) */
    ASSERT_VALUES(et_var(a, &d1, 1, 1, false), 6.33333349f, 37);              /* a.var(1) */
    ASSERT_VALUES(et_std(a, &d0, 1, 0, false), 1.5f, 3.5f, 4.5f);             /* a.std(0, correction=0) */
    /* torch.linalg.vector_norm(a, 3, 1) */
    ASSERT_VALUES(et_norm(a, 3, &d1, 1, false), 3.30192733f, 7.39863682f);
    ASSERT_VALUES(et_cumsum(a, 1), 1, -1, 2, 4, 9, 3);                        /* a.cumsum(1) */
    ASSERT_VALUES(et_prod(a, 0, false), 4, -10, -18);                         /* a.prod(0) */
    ASSERT_SHAPE(et_amax(a, NULL, 0, true), 1, 1);
    ASSERT_VALUES(et_amin(a, NULL, 0, false), -6);
    et_pool_end();
}
END_TEST

START_TEST(test_einsum_and_sort)
{
    et_pool_begin();
    et_tensor *a = make_a();
    /* torch.einsum('ij,kj->ik', a, a) */
    ASSERT_VALUES(et_einsum("ij,kj->ik", (et_tensor *[]){a, a}, 2), 14, -24, -24, 77);
    ASSERT_ERROR(et_einsum(NULL, &a, 1), ET_ERR_ARG, "einsum");
    ASSERT_ERROR(et_einsum("ij->i", &a, 0), ET_ERR_ARG, "einsum");
    et_tensor *ix = NULL;
    /* a.sort(1, descending=True) -> [[3,1,-2],[5,4,-6]], indices [[2,0,1],[1,0,2]] */
    ASSERT_VALUES(et_sort(a, 1, true, &ix), 3, 1, -2, 5, 4, -6);
    ck_assert_int_eq(et_tensor_dtype(ix), ET_INT64);
    ASSERT_VALUES(ix, 2, 0, 1, 1, 0, 2);
    ASSERT_VALUES(et_topk(a, 1, 0, false, true, NULL), 1, -2, -6);
    et_pool_end();
}
END_TEST

/* piece arrays: count query, capacity, ownership through pools */
START_TEST(test_split_api)
{
    et_tensor *a = et_arange(0, 10, 1);
    ck_assert_int_eq(et_split(a, 3, 0, NULL, 0), 4);
    ck_assert_int_eq(et_chunk(a, 3, 0, NULL, 0), 3);
    et_tensor *p[4];
    et_clear_error();
    ck_assert_int_eq(et_split(a, 3, 0, p, 2), -1);
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_int_eq(et_split(a, 3, 0, p, 4), 4);
    ASSERT_VALUES(p[3], 9);
    for (int i = 0; i < 4; i++)
        et_tensor_free(p[i]);
    et_pool_begin();   /* inside a pool the pieces belong to the pool */
    ck_assert_int_eq(et_unbind(et_reshape(a, ET_SHAPE(2, 5)), 0, p, 4), 2);
    ASSERT_VALUES(p[1], 5, 6, 7, 8, 9);
    et_pool_end();
    et_tensor_free(a);
}
END_TEST

/* in place: what torch would record and easytorch refuses (nothing changes) */
START_TEST(test_inplace_refusals)
{
    et_pool_begin();
    et_tensor *t = TV(ET_SHAPE(3), 1, 2, 3);
    et_tensor *w = TV(ET_SHAPE(3), 1, 1, 1);
    et_set_requires_grad(w, true);
    et_clear_error();
    ck_assert_int_eq(et_mul_(t, w), ET_ERR_GRAD);       /* operand requires grad */
    ck_assert(strstr(et_errmsg(), "not recorded") != NULL);
    et_tensor *e = et_exp(w);                           /* non-leaf requiring grad */
    ck_assert_int_eq(et_clamp_(e, 0, 1), ET_ERR_GRAD);
    ASSERT_VALUES(t, 1, 2, 3);
    ET_NO_GRAD {
        ck_assert_int_eq(et_mul_(t, w), ET_OK);
        ck_assert_int_eq(et_add_(w, t, -1), ET_OK);     /* what an optimizer does */
    }
    ASSERT_VALUES(w, 0, -1, -2);
    ck_assert_int_eq(et_add_(t, TV(ET_SHAPE(2, 3), 1, 1, 1, 1, 1, 1), 1), ET_ERR_SHAPE);
    ASSERT_VALUES(t, 1, 2, 3);
    et_clear_error();   /* else the NULL counts as a consequence of the failure above */
    ck_assert_int_eq(et_add_scalar_(NULL, 1), ET_ERR_ARG);
    et_pool_end();
}
END_TEST

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

static et_tensor *rnd_index(et_generator *g, const et_tensor *like)
{
    int nd = et_ndim(like);
    int64_t sh[ET_MAX_DIMS], v[64];
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        sh[i] = rnd(g, 0, 3);
        n *= sh[i];
    }
    for (int64_t i = 0; i < n && i < 64; i++)
        v[i] = rnd(g, -1, 3);
    return n <= 64 ? et_tensor_new_int64(v, sh, nd) : NULL;
}

START_TEST(test_random_arguments_never_crash)
{
    static const char *eqs[] = {"ij,jk->ik", "i,i", "ii->i", "...ij->...ji", "ij->", "bij,bjk",
                                "i,j", "ab,bc,cd->ad", "i->ii", "x", ""};
    et_generator *g = et_generator_new(78);
    int ok = 0, failed = 0;
    for (int it = 0; it < 20000; it++) {
        et_pool_begin();
        et_tensor *a = rnd_tensor(g), *b = rnd_tensor(g), *r = NULL;
        int d = (int)rnd(g, -5, 5);
        int dims[2] = {(int)rnd(g, -4, 4), (int)rnd(g, -4, 4)};
        int64_t l3[3] = {rnd(g, -1, 3), rnd(g, -1, 3), rnd(g, -1, 3)};
        et_tensor *pieces[8];
        et_clear_error();
        int which = (int)rnd(g, 0, 30);
        switch (which) {
        case 0: r = et_logsumexp(a, dims, (int)rnd(g, 0, 2), rnd(g, 0, 1)); break;
        case 1: r = et_var(a, dims, (int)rnd(g, 0, 2), (double)rnd(g, 0, 3), rnd(g, 0, 1)); break;
        case 2: r = et_std(a, dims, (int)rnd(g, 0, 2), 1, rnd(g, 0, 1)); break;
        case 3: r = et_prod(a, d, rnd(g, 0, 1)); break;
        case 4: r = et_cumsum(a, d); break;
        case 5: r = et_norm(a, (double)rnd(g, -1, 3), dims, (int)rnd(g, 0, 2), rnd(g, 0, 1)); break;
        case 6: r = et_amax(a, dims, (int)rnd(g, 0, 2), rnd(g, 0, 1)); break;
        case 7: r = et_argmin(a, d, rnd(g, 0, 1)); break;
        case 8: r = et_sort(a, d, rnd(g, 0, 1), NULL); break;
        case 9: r = et_topk(a, rnd(g, -1, 4), d, rnd(g, 0, 1), true, NULL); break;
        case 10: {
            int n = et_split(a, rnd(g, -1, 3), d, pieces, 8);
            r = n > 0 ? pieces[n - 1] : NULL;
            break;
        }
        case 11: {
            int n = et_chunk(a, (int)rnd(g, -1, 4), d, pieces, 8);
            r = n > 0 ? pieces[0] : NULL;
            break;
        }
        case 12: {
            int n = et_unbind(a, d, pieces, 8);
            r = n > 0 ? pieces[0] : n == 0 ? a : NULL;   /* a size-0 dim has no pieces */
            break;
        }
        case 13: r = et_diagonal(a, rnd(g, -3, 3), d, (int)rnd(g, -3, 3)); break;
        case 14: r = et_repeat(a, l3, (int)rnd(g, 0, 3)); break;
        case 15: r = et_flip(a, dims, (int)rnd(g, 0, 2)); break;
        case 16: r = et_roll(a, l3, dims, (int)rnd(g, 0, 2)); break;
        case 17: r = rnd(g, 0, 1) ? et_tril(a, rnd(g, -3, 3)) : et_triu(a, rnd(g, -3, 3)); break;
        case 18: r = et_scatter(a, d, rnd_index(g, a), b); break;
        case 19: r = et_scatter_add(a, d, rnd_index(g, a), b); break;
        case 20: r = et_index_add(a, d, rnd_index(g, b), b, 0.5f); break;
        case 21: r = et_einsum(eqs[rnd(g, 0, 10)], (et_tensor *[]){a, b}, (int)rnd(g, 1, 2)); break;
        case 22: r = et_masked_fill(a, b, 1.5f); break;
        case 23: r = et_expand_as(a, b); break;
        case 24: r = et_softplus(a, (float)rnd(g, -1, 2), (float)rnd(g, 0, 20)); break;
        case 25: r = et_hardtanh(a, (float)rnd(g, -2, 1), (float)rnd(g, -1, 2)); break;
        case 26: r = et_logical_and(a, b); break;
        case 27: r = et_binary_cross_entropy(et_sigmoid(a), b); break;
        case 28: r = et_scatter_value(a, d, rnd_index(g, a), 2.0f); break;
        case 29: {
            et_status st = et_add_(a, b, 0.5f);
            r = st == ET_OK ? a : NULL;
            break;
        }
        default: r = et_clamp(a, rnd(g, 0, 1) ? NAN : -1.0f, (float)rnd(g, -1, 1)); break;
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
            ck_assert_msg(et_errcode() != ET_OK, "case %d returned NULL without an error", which);
            ck_assert(strlen(et_errmsg()) > 0);
        }
        et_pool_end();
    }
    ck_assert(ok > 1000 && failed > 1000); /* both paths exercised */
    et_generator_free(g);
}
END_TEST

static Suite *ops_more_suite(void)
{
    Suite *s = suite_create("ops_more");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"activations", test_activations},
        {"reductions", test_reductions},
        {"einsum_and_sort", test_einsum_and_sort},
        {"split_api", test_split_api},
        {"inplace_refusals", test_inplace_refusals},
        {"random_arguments", test_random_arguments_never_crash},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return run_suite(ops_more_suite()); }
