/* check_gradcheck.c - analytic gradients of every differentiable op
 * against central finite differences.
 *
 * For each case the scalar L = sum(f(inputs) * R) with fixed random R is
 * differentiated both ways: et_backward(f(inputs), R) and
 * (L(x + eps) - L(x - eps)) / 2eps per input element, with L accumulated
 * in double.  eps = 1e-2 and the tolerance 1e-2 (abs + rel) suit float32;
 * inputs are kept > eps away from kinks (relu, abs, clamp, max ties). */
#include "check_helpers.h"
#include "core/core_internal.h"

#define EPS 1e-2
#define TOL 1e-2
#define MAXIN 4

typedef enum { D_ANY, D_POS, D_AWAY, D_DISTINCT, D_INDEX } domain;

typedef struct {
    const char *name;
    int nin;
    int64_t shape[MAXIN][4];
    int ndim[MAXIN];
    domain dom[MAXIN];
    et_tensor *(*f)(et_tensor **in);
} gcase;

/* ---- the functions under test ---- */
static et_tensor *f_add(et_tensor **x) { return et_add(x[0], x[1]); }
static et_tensor *f_add_t(et_tensor **x) { return et_add(et_t(x[0]), x[1]); }
static et_tensor *f_sub(et_tensor **x) { return et_sub(x[0], x[1]); }
static et_tensor *f_mul(et_tensor **x) { return et_mul(x[0], x[1]); }
static et_tensor *f_div(et_tensor **x) { return et_div(x[0], x[1]); }
static et_tensor *f_pow(et_tensor **x) { return et_pow(x[0], x[1]); }
static et_tensor *f_maximum(et_tensor **x) { return et_maximum(x[0], x[1]); }
static et_tensor *f_minimum(et_tensor **x) { return et_minimum(x[0], x[1]); }
static et_tensor *f_add_s(et_tensor **x) { return et_add_scalar(x[0], 1.5f); }
static et_tensor *f_sub_s(et_tensor **x) { return et_sub_scalar(x[0], 1.5f); }
static et_tensor *f_rsub_s(et_tensor **x) { return et_rsub_scalar(1.5f, x[0]); }
static et_tensor *f_mul_s(et_tensor **x) { return et_mul_scalar(x[0], -2.5f); }
static et_tensor *f_div_s(et_tensor **x) { return et_div_scalar(x[0], -2.5f); }
static et_tensor *f_rdiv_s(et_tensor **x) { return et_rdiv_scalar(2.5f, x[0]); }
static et_tensor *f_pow_s(et_tensor **x) { return et_pow_scalar(x[0], 2.5f); }
static et_tensor *f_pow_s2(et_tensor **x) { return et_pow_scalar(x[0], 2.0f); }
static et_tensor *f_rpow_s(et_tensor **x) { return et_rpow_scalar(1.7f, x[0]); }
static et_tensor *f_neg(et_tensor **x) { return et_neg(x[0]); }
static et_tensor *f_exp(et_tensor **x) { return et_exp(x[0]); }
static et_tensor *f_log(et_tensor **x) { return et_log(x[0]); }
static et_tensor *f_sqrt(et_tensor **x) { return et_sqrt(x[0]); }
static et_tensor *f_abs(et_tensor **x) { return et_abs(x[0]); }
static et_tensor *f_tanh(et_tensor **x) { return et_tanh(x[0]); }
static et_tensor *f_sigmoid(et_tensor **x) { return et_sigmoid(x[0]); }
static et_tensor *f_relu(et_tensor **x) { return et_relu(x[0]); }
static et_tensor *f_leaky(et_tensor **x) { return et_leaky_relu(x[0], 0.1f); }
static et_tensor *f_gelu(et_tensor **x) { return et_gelu(x[0], false); }
static et_tensor *f_gelu_t(et_tensor **x) { return et_gelu(x[0], true); }
static et_tensor *f_clamp(et_tensor **x) { return et_clamp(x[0], -0.5f, 0.55f); }
static et_tensor *f_sum_all(et_tensor **x) { return et_sum_all(x[0]); }
static et_tensor *f_sum_d(et_tensor **x) { return et_sum(x[0], (int[]){0, 2}, 2, false); }
static et_tensor *f_sum_k(et_tensor **x) { return et_sum(x[0], (int[]){-1}, 1, true); }
static et_tensor *f_mean_all(et_tensor **x) { return et_mean_all(x[0]); }
static et_tensor *f_mean_d(et_tensor **x) { return et_mean(x[0], (int[]){1}, 1, false); }
static et_tensor *f_max_d(et_tensor **x) { return et_max(x[0], 1, false, NULL); }
static et_tensor *f_min_d(et_tensor **x) { return et_min(x[0], 0, true, NULL); }
static et_tensor *f_max_all(et_tensor **x) { return et_max_all(x[0]); }
static et_tensor *f_min_all(et_tensor **x) { return et_min_all(x[0]); }
static et_tensor *f_softmax(et_tensor **x) { return et_softmax(x[0], 1); }
static et_tensor *f_softmax0(et_tensor **x) { return et_softmax(x[0], 0); }
static et_tensor *f_log_softmax(et_tensor **x) { return et_log_softmax(x[0], -1); }
static et_tensor *f_log_softmax0(et_tensor **x) { return et_log_softmax(x[0], 0); }
static et_tensor *f_matmul(et_tensor **x) { return et_matmul(x[0], x[1]); }
static et_tensor *f_matmul_tt(et_tensor **x) { return et_matmul(et_t(x[0]), et_t(x[1])); }
static et_tensor *f_reshape_nc(et_tensor **x) { return et_reshape(et_t(x[0]), ET_SHAPE(-1)); }
static et_tensor *f_view(et_tensor **x) { return et_view(x[0], ET_SHAPE(3, 2, 2)); }
static et_tensor *f_transpose(et_tensor **x) { return et_transpose(x[0], 0, 2); }
static et_tensor *f_permute(et_tensor **x) { return et_permute(x[0], (int[]){1, 2, 0}, 3); }
static et_tensor *f_squeeze(et_tensor **x) { return et_squeeze(x[0], 1); }
static et_tensor *f_squeeze_all(et_tensor **x) { return et_squeeze_all(x[0]); }
static et_tensor *f_unsqueeze(et_tensor **x) { return et_unsqueeze(x[0], 1); }
static et_tensor *f_flatten(et_tensor **x) { return et_flatten(x[0], 1, 2); }
static et_tensor *f_expand(et_tensor **x) { return et_expand(x[0], ET_SHAPE(2, 3, -1)); }
static et_tensor *f_select(et_tensor **x) { return et_select(x[0], 1, -1); }
static et_tensor *f_slice(et_tensor **x) { return et_slice(x[0], 1, 1, ET_END, 2); }
static et_tensor *f_cat(et_tensor **x) { return et_cat(x, 2, 1); }
static et_tensor *f_stack(et_tensor **x) { return et_stack(x, 2, 2); }
static et_tensor *f_index_select(et_tensor **x)
{
    return et_index_select(x[0], 1, TV(ET_SHAPE(4), 2, 0, 2, 3));
}
static et_tensor *f_gather(et_tensor **x)
{
    return et_gather(x[0], 1, TV(ET_SHAPE(3, 2), 0, 0, 3, 1, 2, 2));
}
static et_tensor *f_where(et_tensor **x)
{
    return et_where(et_gt_scalar(x[0], 0), x[0], x[1]);
}
static et_tensor *f_contiguous(et_tensor **x) { return et_contiguous(et_t(x[0])); }
static et_tensor *f_linear(et_tensor **x) { return etc_pooled(etc_linear(x[0], x[1], x[2])); }
static et_tensor *f_linear_nobias(et_tensor **x)
{
    return etc_pooled(etc_linear(x[0], x[1], NULL));
}
static et_tensor *f_linear_tx(et_tensor **x)
{
    return etc_pooled(etc_linear(et_t(x[0]), x[1], x[2]));
}
static et_tensor *f_chain(et_tensor **x)
{
    /* a small MLP-like composite with broadcasting and reuse */
    et_tensor *h = et_tanh(et_add(et_matmul(x[0], x[1]), x[2]));
    return et_mean(et_mul(h, h), (int[]){0}, 1, false);
}

/* scaled dot-product attention, the fused op (sdpa.c) */
static et_tensor *f_sdpa(et_tensor **x)
{
    return et_scaled_dot_product_attention(x[0], x[1], x[2], NULL, 0.0f, false, NULL, NULL);
}
static et_tensor *f_sdpa_mask(et_tensor **x)
{
    return et_scaled_dot_product_attention(x[0], x[1], x[2], x[3], 0.0f, false, NULL, NULL);
}
static et_tensor *f_sdpa_causal(et_tensor **x)
{
    return et_scaled_dot_product_attention(x[0], x[1], x[2], NULL, 0.0f, true, NULL, NULL);
}
/* heads folded in the last dim of seq-first [T, N, H*hd] inputs (as
 * MultiheadAttention calls it), a [N*H, 1, S] mask */
static et_tensor *f_sdpa_heads(et_tensor **x)
{
    return etc_pooled(etc_sdpa(et_transpose(x[0], 0, 1), et_transpose(x[1], 0, 1),
                               et_transpose(x[2], 0, 1), x[3], 2, 0.0f, NULL));
}

static const gcase cases[] = {
    {"sdpa", 3, {{2, 3, 4}, {2, 5, 4}, {2, 5, 3}}, {3, 3, 3}, {D_ANY, D_ANY, D_ANY}, f_sdpa},
    {"sdpa_broadcast_mask", 4, {{2, 3, 3}, {1, 4, 3}, {4, 2}, {3, 4}}, {3, 3, 2, 2},
     {D_ANY, D_ANY, D_ANY, D_ANY}, f_sdpa_mask},
    {"sdpa_causal_4d", 3, {{1, 2, 4, 3}, {1, 2, 4, 3}, {1, 2, 4, 2}}, {4, 4, 4},
     {D_ANY, D_ANY, D_ANY}, f_sdpa_causal},
    {"sdpa_heads", 4, {{3, 2, 4}, {4, 2, 4}, {4, 2, 6}, {4, 1, 4}}, {3, 3, 3, 3},
     {D_ANY, D_ANY, D_ANY, D_ANY}, f_sdpa_heads},
    {"add", 2, {{2, 3}, {3}}, {2, 1}, {D_ANY, D_ANY}, f_add},
    {"add_t", 2, {{3, 2}, {2, 1}}, {2, 2}, {D_ANY, D_ANY}, f_add_t},
    {"sub", 2, {{2, 1}, {1, 3}}, {2, 2}, {D_ANY, D_ANY}, f_sub},
    {"mul", 2, {{2, 3}, {2, 1}}, {2, 2}, {D_ANY, D_ANY}, f_mul},
    {"div", 2, {{2, 3}, {3}}, {2, 1}, {D_ANY, D_POS}, f_div},
    {"pow", 2, {{2, 3}, {3}}, {2, 1}, {D_POS, D_ANY}, f_pow},
    {"maximum", 2, {{2, 3}, {3}}, {2, 1}, {D_DISTINCT, D_DISTINCT}, f_maximum},
    {"minimum", 2, {{2, 3}, {2, 3}}, {2, 2}, {D_DISTINCT, D_DISTINCT}, f_minimum},
    {"add_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_add_s},
    {"sub_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_sub_s},
    {"rsub_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_rsub_s},
    {"mul_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_mul_s},
    {"div_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_div_s},
    {"rdiv_scalar", 1, {{2, 3}}, {2}, {D_POS}, f_rdiv_s},
    {"pow_scalar", 1, {{2, 3}}, {2}, {D_POS}, f_pow_s},
    {"pow_scalar_2", 1, {{2, 3}}, {2}, {D_ANY}, f_pow_s2},
    {"rpow_scalar", 1, {{2, 3}}, {2}, {D_ANY}, f_rpow_s},
    {"neg", 1, {{2, 3}}, {2}, {D_ANY}, f_neg},
    {"exp", 1, {{2, 3}}, {2}, {D_ANY}, f_exp},
    {"log", 1, {{2, 3}}, {2}, {D_POS}, f_log},
    {"sqrt", 1, {{2, 3}}, {2}, {D_POS}, f_sqrt},
    {"abs", 1, {{2, 3}}, {2}, {D_AWAY}, f_abs},
    {"tanh", 1, {{2, 3}}, {2}, {D_ANY}, f_tanh},
    {"sigmoid", 1, {{2, 3}}, {2}, {D_ANY}, f_sigmoid},
    {"relu", 1, {{2, 3}}, {2}, {D_AWAY}, f_relu},
    {"leaky_relu", 1, {{2, 3}}, {2}, {D_AWAY}, f_leaky},
    {"gelu", 1, {{2, 3}}, {2}, {D_ANY}, f_gelu},
    {"gelu_tanh", 1, {{2, 3}}, {2}, {D_ANY}, f_gelu_t},
    {"clamp", 1, {{3, 4}}, {2}, {D_AWAY}, f_clamp},
    {"sum_all", 1, {{2, 3}}, {2}, {D_ANY}, f_sum_all},
    {"sum_dims", 1, {{2, 3, 2}}, {3}, {D_ANY}, f_sum_d},
    {"sum_keepdim", 1, {{2, 3}}, {2}, {D_ANY}, f_sum_k},
    {"mean_all", 1, {{2, 3}}, {2}, {D_ANY}, f_mean_all},
    {"mean_dim", 1, {{2, 3}}, {2}, {D_ANY}, f_mean_d},
    {"max_dim", 1, {{3, 4}}, {2}, {D_DISTINCT}, f_max_d},
    {"min_dim", 1, {{3, 4}}, {2}, {D_DISTINCT}, f_min_d},
    {"max_all", 1, {{3, 4}}, {2}, {D_DISTINCT}, f_max_all},
    {"min_all", 1, {{3, 4}}, {2}, {D_DISTINCT}, f_min_all},
    {"softmax", 1, {{2, 4}}, {2}, {D_ANY}, f_softmax},
    {"softmax_dim0", 1, {{3, 2}}, {2}, {D_ANY}, f_softmax0},
    {"log_softmax", 1, {{2, 4}}, {2}, {D_ANY}, f_log_softmax},
    {"log_softmax_dim0", 1, {{3, 2}}, {2}, {D_ANY}, f_log_softmax0},
    {"matmul_dot", 2, {{4}, {4}}, {1, 1}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_mv", 2, {{3, 4}, {4}}, {2, 1}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_vm", 2, {{3}, {3, 2}}, {1, 2}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_mm", 2, {{2, 3}, {3, 4}}, {2, 2}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_transposed", 2, {{3, 2}, {4, 3}}, {2, 2}, {D_ANY, D_ANY}, f_matmul_tt},
    {"matmul_batched_2d", 2, {{2, 2, 3}, {3, 2}}, {3, 2}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_broadcast", 2, {{2, 1, 2, 3}, {3, 3, 2}}, {4, 3}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_batched_vec", 2, {{3}, {2, 3, 2}}, {1, 3}, {D_ANY, D_ANY}, f_matmul},
    {"matmul_batched_mv", 2, {{2, 2, 3}, {3}}, {3, 1}, {D_ANY, D_ANY}, f_matmul},
    {"reshape_noncontig", 1, {{2, 3}}, {2}, {D_ANY}, f_reshape_nc},
    {"view", 1, {{2, 6}}, {2}, {D_ANY}, f_view},
    {"transpose", 1, {{2, 3, 2}}, {3}, {D_ANY}, f_transpose},
    {"permute", 1, {{2, 3, 2}}, {3}, {D_ANY}, f_permute},
    {"squeeze", 1, {{2, 1, 3}}, {3}, {D_ANY}, f_squeeze},
    {"squeeze_all", 1, {{1, 3, 1}}, {3}, {D_ANY}, f_squeeze_all},
    {"unsqueeze", 1, {{2, 3}}, {2}, {D_ANY}, f_unsqueeze},
    {"flatten", 1, {{2, 3, 2}}, {3}, {D_ANY}, f_flatten},
    {"expand", 1, {{3, 1}}, {2}, {D_ANY}, f_expand},
    {"select", 1, {{2, 3}}, {2}, {D_ANY}, f_select},
    {"slice_step", 1, {{2, 6}}, {2}, {D_ANY}, f_slice},
    {"cat", 2, {{2, 3}, {2, 1}}, {2, 2}, {D_ANY, D_ANY}, f_cat},
    {"stack", 2, {{2, 3}, {2, 3}}, {2, 2}, {D_ANY, D_ANY}, f_stack},
    {"index_select", 1, {{2, 4}}, {2}, {D_ANY}, f_index_select},
    {"gather", 1, {{3, 4}}, {2}, {D_ANY}, f_gather},
    {"where", 2, {{2, 3}, {3}}, {2, 1}, {D_AWAY, D_ANY}, f_where},
    {"contiguous", 1, {{2, 3}}, {2}, {D_ANY}, f_contiguous},
    {"linear", 3, {{4, 3}, {5, 3}, {5}}, {2, 2, 1}, {D_ANY, D_ANY, D_ANY}, f_linear},
    {"linear_3d", 3, {{2, 2, 3}, {4, 3}, {4}}, {3, 2, 1}, {D_ANY, D_ANY, D_ANY}, f_linear},
    {"linear_1d", 3, {{3}, {2, 3}, {2}}, {1, 2, 1}, {D_ANY, D_ANY, D_ANY}, f_linear},
    {"linear_nobias", 2, {{4, 3}, {5, 3}}, {2, 2}, {D_ANY, D_ANY}, f_linear_nobias},
    {"linear_noncontig_x", 3, {{3, 4}, {5, 3}, {5}}, {2, 2, 1}, {D_ANY, D_ANY, D_ANY}, f_linear_tx},
    {"composite_mlp", 3, {{4, 3}, {3, 5}, {5}}, {2, 2, 1}, {D_ANY, D_ANY, D_ANY}, f_chain},
};

static et_tensor *make_input(et_generator *g, const gcase *c, int i)
{
    et_tensor *t = et_uniform(g, c->shape[i], c->ndim[i], -1.5, 1.5);
    float *d = et_data(t);
    int64_t n = et_numel(t);
    for (int64_t k = 0; k < n; k++) {
        switch (c->dom[i]) {
        case D_POS: d[k] = 0.5f + fabsf(d[k]); break;
        case D_AWAY: d[k] = d[k] < 0 ? d[k] - 0.1f : d[k] + 0.1f; break;
        case D_DISTINCT: d[k] = 0.1f * (float)((k * 7 + i * 3) % 23) - 1.0f; break;
        default: break;
        }
    }
    et_set_requires_grad(t, true);
    return t;
}

static double weighted(et_tensor *out, et_tensor *r)
{
    int64_t n = et_numel(out);
    float *o = malloc((size_t)n * sizeof(float)), *w = malloc((size_t)n * sizeof(float));
    et_copy_to(out, o);
    et_copy_to(r, w);
    double s = 0;
    for (int64_t k = 0; k < n; k++)
        s += (double)o[k] * w[k];
    free(o);
    free(w);
    return s;
}

START_TEST(test_finite_differences)
{
    const gcase *c = &cases[_i];
    et_pool_begin();
    et_generator *g = et_generator_new(1000 + (uint64_t)_i);
    et_tensor *in[MAXIN] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < c->nin; i++)
        in[i] = make_input(g, c, i);
    et_tensor *out = c->f(in);
    ck_assert_msg(out != NULL, "%s: %s", c->name, et_errmsg());
    ck_assert_msg(et_requires_grad(out), "%s: result does not require grad", c->name);
    et_tensor *r = et_uniform(g, et_shape(out), et_ndim(out), -1, 1);
    ck_assert_int_eq(et_backward(out, r), ET_OK);
    for (int i = 0; i < c->nin; i++) {
        et_tensor *ga = et_grad(in[i]);
        ck_assert_msg(ga != NULL, "%s: input %d has no grad", c->name, i);
        ck_assert(et_same_shape(ga, in[i]));
        float *x = et_data(in[i]);
        for (int64_t k = 0; k < et_numel(in[i]); k++) {
            float save = x[k];
            double lp, lm;
            et_pool_begin();
            x[k] = (float)(save + EPS);
            lp = weighted(c->f(in), r);
            x[k] = (float)(save - EPS);
            lm = weighted(c->f(in), r);
            x[k] = save;
            et_pool_end();
            double num = (lp - lm) / (2 * EPS);
            double ana = et_data(ga)[k];
            ck_assert_msg(fabs(num - ana) <= TOL + TOL * fabs(num),
                          "%s: d/d input%d[%lld]: analytic %.6g, numeric %.6g", c->name, i,
                          (long long)k, ana, num);
        }
    }
    et_generator_free(g);
    et_pool_end();
}
END_TEST

static Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite_differences_every_op");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_finite_differences, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(gradcheck_suite()); }
