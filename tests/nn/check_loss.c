/*
 * check_loss.c - unit tests of loss.h.  Each loss is compared with its
 * definition evaluated here in double, for every reduction; gradients by
 * finite differences.  The PyTorch comparison is tests/torch/test_nn.py.
 */
#include <stdlib.h>
#include <string.h>

#include "nn_check.h"

#define N 4
#define C 5

typedef et_tensor *(*loss2_fn)(et_tensor *, et_tensor *, et_reduction);

/* Elementwise losses: per-element definition in double. */
static double ref_mse(double x, double y) { return (x - y) * (x - y); }
static double ref_l1(double x, double y) { return fabs(x - y); }
static double ref_bce(double x, double y)
{
    return -(y * fmax(log(x), -100) + (1 - y) * fmax(log(1 - x), -100));
}
static double ref_bcel(double x, double y) { return fmax(x, 0) - x * y + log1p(exp(-fabs(x))); }
static double ref_huber(double x, double y)
{
    double d = fabs(x - y), delta = 0.7;
    return d < delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
}
static double ref_sl1(double x, double y)
{
    double d = fabs(x - y), beta = 0.7;
    return d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
}
static et_tensor *huber07(et_tensor *a, et_tensor *b, et_reduction r)
{
    return et_huber_loss(a, b, r, 0.7f);
}
static et_tensor *sl107(et_tensor *a, et_tensor *b, et_reduction r)
{
    return et_smooth_l1_loss(a, b, r, 0.7f);
}

static const struct {
    const char *name;
    loss2_fn fn;
    double (*ref)(double, double);
    bool prob_input;
} elementwise[] = {
    {"mse", et_mse_loss, ref_mse, false},   {"l1", et_l1_loss, ref_l1, false},
    {"bce", et_bce_loss, ref_bce, true},    {"bce_logits", et_bce_with_logits, ref_bcel, false},
    {"huber", huber07, ref_huber, false},   {"smooth_l1", sl107, ref_sl1, false},
};

START_TEST(elementwise_losses_match_definition_for_each_reduction)
{
    int k = _i / 3;
    et_reduction r = (et_reduction)(_i % 3);
    et_generator *g = et_generator_new(100 + (uint64_t)_i);
    float x[N * C], y[N * C];
    if (elementwise[k].prob_input) {
        nn_fill_uniform(g, x, N * C, 0.02, 0.98);
        nn_fill_uniform(g, y, N * C, 0, 1);
    } else {
        nn_fill_uniform(g, x, N * C, -2, 2);
        nn_fill_uniform(g, y, N * C, -2, 2);
    }
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(N, C)), *yt = et_tensor_new(y, ET_SHAPE(N, C));
    et_tensor *l = elementwise[k].fn(xt, yt, r);
    ck_assert_msg(l != NULL, "%s: %s", elementwise[k].name, et_errmsg());
    double sum = 0;
    for (int i = 0; i < N * C; i++) {
        double v = elementwise[k].ref(x[i], y[i]);
        sum += v;
        if (r == ET_REDUCTION_NONE)
            ck_close(et_data(l)[i], v);
    }
    if (r == ET_REDUCTION_NONE) {
        ck_assert(et_same_shape(l, xt));
    } else {
        ck_assert_int_eq(et_ndim(l), 0);
        ck_close(et_item(l), r == ET_REDUCTION_SUM ? sum : sum / (N * C));
    }
    et_tensor_free(l);
    et_tensor_free(xt);
    et_tensor_free(yt);
    et_generator_free(g);
}
END_TEST

/* Gradient of every elementwise loss (mean) by central differences. */
START_TEST(elementwise_loss_gradients_match_finite_differences)
{
    int k = _i;
    et_generator *g = et_generator_new(200 + (uint64_t)k);
    float x[6], y[6];
    /* keep |x - y| away from the kinks of l1/huber/smooth_l1 */
    for (int i = 0; i < 6; i++) {
        y[i] = elementwise[k].prob_input ? (float)et_generator_uniform(g) : 0.1f * (float)i;
        double off = 0.15 + 0.5 * et_generator_uniform(g) + (i % 2) * 0.9;
        x[i] = elementwise[k].prob_input ? (float)(0.1 + 0.8 * et_generator_uniform(g))
                                         : (float)(y[i] + ((i % 3) ? off : -off));
    }
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(6)), *yt = et_tensor_new(y, ET_SHAPE(6));
    et_set_requires_grad(xt, true);
    et_tensor *l = elementwise[k].fn(xt, yt, ET_REDUCTION_MEAN);
    ck_assert_int_eq(et_backward(l, NULL), ET_OK);
    for (int i = 0; i < 6; i++) {
        double h = 1e-3, fp = 0, fm = 0;
        for (int j = 0; j < 6; j++) {
            double xp = x[j] + (j == i ? h : 0), xm = x[j] - (j == i ? h : 0);
            fp += elementwise[k].ref(xp, y[j]) / 6;
            fm += elementwise[k].ref(xm, y[j]) / 6;
        }
        ck_close_tol(et_data(et_grad(xt))[i], (fp - fm) / (2 * h), 1e-3, 1e-4);
    }
    et_tensor_free(l);
    et_tensor_free(xt);
    et_tensor_free(yt);
    et_generator_free(g);
}
END_TEST

/* -log softmax(x)[t] with optional label smoothing, per row. */
static double ref_ce_row(const float *x, int t, double eps)
{
    double m = x[0], z = 0, sum_lp = 0;
    for (int c = 1; c < C; c++)
        m = fmax(m, x[c]);
    for (int c = 0; c < C; c++)
        z += exp(x[c] - m);
    for (int c = 0; c < C; c++)
        sum_lp += x[c] - m - log(z);
    double nll = -(x[t] - m - log(z));
    return (1 - eps) * nll + eps * (-sum_lp / C);
}

START_TEST(cross_entropy_and_nll_match_definition)
{
    et_reduction r = (et_reduction)(_i % 3);
    double eps = _i >= 3 ? 0.2 : 0.0;
    et_generator *g = et_generator_new(300 + (uint64_t)_i);
    float x[N * C], t[N] = {0, 4, 2, 4};
    nn_fill_uniform(g, x, N * C, -3, 3);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(N, C)), *tt = et_tensor_new(t, ET_SHAPE(N));
    et_tensor *l = et_cross_entropy(xt, tt, r, (float)eps);
    et_tensor *lsm = et_log_softmax(xt, 1);
    et_tensor *nl = et_nll_loss(lsm, tt, r);
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_nonnull(nl);
    double sum = 0, sum_nll = 0;
    for (int i = 0; i < N; i++) {
        double v = ref_ce_row(x + i * C, (int)t[i], eps);
        double vn = ref_ce_row(x + i * C, (int)t[i], 0);
        sum += v;
        sum_nll += vn;
        if (r == ET_REDUCTION_NONE) {
            ck_close(et_data(l)[i], v);
            ck_close(et_data(nl)[i], vn);
        }
    }
    if (r != ET_REDUCTION_NONE) {
        ck_close(et_item(l), r == ET_REDUCTION_SUM ? sum : sum / N);
        ck_close(et_item(nl), r == ET_REDUCTION_SUM ? sum_nll : sum_nll / N);
    } else {
        ck_assert_int_eq(et_ndim(l), 1);
    }
    et_tensor_free(l);
    et_tensor_free(nl);
    et_tensor_free(lsm);
    et_tensor_free(xt);
    et_tensor_free(tt);
    et_generator_free(g);
}
END_TEST

START_TEST(cross_entropy_gradient_is_softmax_minus_onehot)
{
    et_generator *g = et_generator_new(17);
    float x[N * C], t[N] = {1, 0, 3, 3};
    nn_fill_uniform(g, x, N * C, -2, 2);
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(N, C)), *tt = et_tensor_new(t, ET_SHAPE(N));
    et_set_requires_grad(xt, true);
    et_tensor *l = et_cross_entropy(xt, tt, ET_REDUCTION_MEAN, 0.0f);
    ck_assert_int_eq(et_backward(l, NULL), ET_OK);
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int c = 0; c < C; c++)
            z += exp(x[i * C + c]);
        for (int c = 0; c < C; c++) {
            double want = (exp(x[i * C + c]) / z - (c == (int)t[i])) / N;
            ck_close(et_data(et_grad(xt))[i * C + c], want);
        }
    }
    et_tensor_free(l);
    et_tensor_free(xt);
    et_tensor_free(tt);
    et_generator_free(g);
}
END_TEST

START_TEST(cross_entropy_is_finite_for_extreme_logits)
{
    float x[2 * 3] = {1e4f, -1e4f, 0, -1e4f, -1e4f, 1e4f}, t[2] = {1, 2};
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(2, 3)), *tt = et_tensor_new(t, ET_SHAPE(2));
    et_set_requires_grad(xt, true);
    et_tensor *l = et_cross_entropy(xt, tt, ET_REDUCTION_NONE, 0.0f);
    ck_close(et_data(l)[0], 2e4);   /* -(-1e4 - 1e4) */
    ck_close(et_data(l)[1], 0.0);
    et_tensor *s = et_sum_all(l);
    ck_assert_int_eq(et_backward(s, NULL), ET_OK);
    for (int i = 0; i < 6; i++)
        ck_assert(isfinite(et_data(et_grad(xt))[i]));
    /* BCE with logits: max(x,0) - x y + log(1 + exp(-|x|)) per element */
    et_tensor *y = et_tensor_new((float[]){1, 0, 1, 0, 1, 0}, ET_SHAPE(2, 3));
    et_tensor *b = et_bce_with_logits(xt, y, ET_REDUCTION_MEAN);
    ck_close(et_item(b), (log(2.0) + 2e4) / 6);
    et_tensor_free(b);
    et_tensor_free(y);
    et_tensor_free(s);
    et_tensor_free(l);
    et_tensor_free(xt);
    et_tensor_free(tt);
}
END_TEST

START_TEST(class_targets_out_of_range_are_errors_naming_the_index)
{
    et_tensor *x = et_zeros(ET_SHAPE(3, 4));
    float bad[][3] = {{0, 4, 1}, {0, 1, -1}, {0.5f, 1, 1}, {0, 1, NAN}};
    const char *where[] = {"index 1", "index 2", "index 0", "index 2"};
    for (int k = 0; k < 4; k++) {
        et_tensor *t = et_tensor_new(bad[k], ET_SHAPE(3));
        ck_assert_ptr_null(et_cross_entropy(x, t, ET_REDUCTION_MEAN, 0));
        ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
        ck_assert_ptr_nonnull(strstr(et_errmsg(), where[k]));
        ck_assert_ptr_null(et_nll_loss(x, t, ET_REDUCTION_SUM));
        ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
        et_tensor_free(t);
    }
    et_tensor *t2 = et_zeros(ET_SHAPE(2));
    ck_assert_ptr_null(et_cross_entropy(x, t2, ET_REDUCTION_MEAN, 0));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_ptr_null(et_cross_entropy(x, t2, ET_REDUCTION_MEAN, 1.5f));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    et_tensor_free(t2);
    et_tensor_free(x);
}
END_TEST

START_TEST(int64_class_targets_equal_float_targets)
{
    et_pool_begin();
    float x[12];
    et_generator *g = et_generator_new(17);
    nn_fill_uniform(g, x, 12, -2, 2);
    et_tensor *xf = et_tensor_new(x, ET_SHAPE(3, 4)), *xi = et_tensor_new(x, ET_SHAPE(3, 4));
    et_set_requires_grad(xf, true);
    et_set_requires_grad(xi, true);
    et_tensor *tf = et_tensor_new((float[]){3, -100, 1}, ET_SHAPE(3));
    et_tensor *ti = et_tensor_new_int64((int64_t[]){3, -100, 1}, ET_SHAPE(3));
    et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
    o.label_smoothing = 0.1f;
    et_tensor *lf = et_cross_entropy_ex(xf, tf, ET_REDUCTION_MEAN, o);
    et_tensor *li = et_cross_entropy_ex(xi, ti, ET_REDUCTION_MEAN, o);
    ck_assert_ptr_nonnull(li);
    ck_assert_float_eq(et_item(lf), et_item(li));
    ck_assert_int_eq(et_backward(lf, NULL), ET_OK);
    ck_assert_int_eq(et_backward(li, NULL), ET_OK);
    for (int k = 0; k < 12; k++)
        ck_assert_float_eq(et_data(et_grad(xf))[k], et_data(et_grad(xi))[k]);
    et_tensor *nl = et_nll_loss(et_log_softmax(xi, 1),
                                et_tensor_new_int64((int64_t[]){0, 1, 2}, ET_SHAPE(3)),
                                ET_REDUCTION_SUM);
    ck_assert_ptr_nonnull(nl);
    ck_assert_ptr_null(et_cross_entropy(xi, et_tensor_new_int64((int64_t[]){0, 4, 1}, ET_SHAPE(3)),
                                        ET_REDUCTION_MEAN, 0));
    ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "target 4 at index 1 is out of bounds"));
    ck_assert_ptr_null(et_cross_entropy(xi, et_tensor_new((float[]){0, 1.5f, 1}, ET_SHAPE(3)),
                                        ET_REDUCTION_MEAN, 0));
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "target 1.5 at index 1 is not an integer"));
    et_generator_free(g);
    et_pool_end();
}
END_TEST

START_TEST(mismatched_shapes_and_bad_arguments_are_errors)
{
    et_tensor *a = et_zeros(ET_SHAPE(2, 3)), *b = et_zeros(ET_SHAPE(3, 2));
    et_tensor *p = et_full(ET_SHAPE(2, 3), 1.5f);
    ck_assert_ptr_null(et_mse_loss(a, b, ET_REDUCTION_MEAN));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(et_errmsg(), "[2, 3]"));
    ck_assert_ptr_null(et_l1_loss(a, NULL, ET_REDUCTION_MEAN));
    ck_assert_ptr_null(et_mse_loss(a, a, (et_reduction)7));
    ck_assert_ptr_null(et_bce_loss(p, a, ET_REDUCTION_MEAN)); /* input outside [0,1] */
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    ck_assert_ptr_null(et_huber_loss(a, a, ET_REDUCTION_MEAN, 0.0f));
    ck_assert_ptr_null(et_smooth_l1_loss(a, a, ET_REDUCTION_MEAN, -1.0f));
    et_tensor_free(a);
    et_tensor_free(b);
    et_tensor_free(p);
}
END_TEST

START_TEST(smooth_l1_with_zero_beta_is_l1)
{
    float x[3] = {1, -2, 0.5f}, y[3] = {0, 0, 0};
    et_tensor *xt = et_tensor_new(x, ET_SHAPE(3)), *yt = et_tensor_new(y, ET_SHAPE(3));
    et_tensor *l = et_smooth_l1_loss(xt, yt, ET_REDUCTION_SUM, 0.0f);
    ck_close(et_item(l), 3.5);
    et_tensor_free(l);
    et_tensor_free(xt);
    et_tensor_free(yt);
}
END_TEST

START_TEST(reduction_parse_and_name_round_trip)
{
    const char *names[] = {"mean", "sum", "none", "batchmean"};
    for (int i = 0; i < 4; i++) {
        et_reduction r;
        ck_assert_int_eq(et_reduction_parse(names[i], &r), ET_OK);
        ck_assert_int_eq(r, i);
        ck_assert_str_eq(et_reduction_name(r), names[i]);
    }
    et_reduction r;
    ck_assert_int_eq(et_reduction_parse("avg", &r), ET_ERR_ARG);
    ck_assert_int_eq(et_reduction_parse(NULL, &r), ET_ERR_ARG);
}
END_TEST

START_TEST(losses_inside_a_pool_belong_to_the_pool)
{
    et_tensor *a = et_ones(ET_SHAPE(4)), *b = et_zeros(ET_SHAPE(4));
    for (int i = 0; i < 1000; i++) {
        et_pool_begin();
        et_tensor *l = et_huber_loss(a, b, ET_REDUCTION_MEAN, 1.0f);
        ck_close(et_item(l), 0.5);
        et_pool_end();
    }
    et_tensor_free(a);
    et_tensor_free(b);
}
END_TEST

/* Identities of the class-loss options (the values themselves are checked
 * against torch in tests/torch/test_nn.py test_class_loss_options):
 * ignoring a row equals dropping it; weight 1 for every class equals no
 * weight; torch's default ignore_index -100 is accepted by et_cross_entropy. */
START_TEST(class_loss_options_identities_and_errors)
{
    et_pool_begin();
    float xv[12] = {0.3f, -1, 2, 0.5f, 1, 1, -2, 0, 0.1f, 0.2f, 0.3f, 0.4f};
    float tv[3] = {2, -100, 0}, tk[2] = {2, 0};
    float rows[8] = {0.3f, -1, 2, 0.5f, 0.1f, 0.2f, 0.3f, 0.4f};
    et_tensor *x = et_tensor_new(xv, ET_SHAPE(3, 4)), *t = et_tensor_new(tv, ET_SHAPE(3));
    et_tensor *xk = et_tensor_new(rows, ET_SHAPE(2, 4)), *kt = et_tensor_new(tk, ET_SHAPE(2));
    for (int r = 0; r < 3; r++) {
        for (int sm = 0; sm < 2; sm++) {
            float eps = sm ? 0.2f : 0.0f;
            et_tensor *a = et_cross_entropy(x, t, (et_reduction)r, eps);
            et_tensor *b = et_cross_entropy(xk, kt, (et_reduction)r, eps);
            ck_assert_ptr_nonnull(a);
            ck_assert_ptr_nonnull(b);
            if (r == ET_REDUCTION_NONE) {
                ck_assert_int_eq(et_numel(a), 3);
                ck_close(et_data(a)[0], et_data(b)[0]);
                ck_assert_float_eq(et_data(a)[1], 0.0f);
                ck_close(et_data(a)[2], et_data(b)[1]);
            } else {
                ck_close(et_item(a), et_item(b));
            }
            et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
            o.weight = et_ones(ET_SHAPE(4));
            o.label_smoothing = eps;
            et_tensor *w = et_cross_entropy_ex(x, t, (et_reduction)r, o);
            ck_assert_ptr_nonnull(w);
            for (int i = 0; i < et_numel(w); i++)
                ck_close(et_data(w)[i], et_data(a)[i]);
        }
    }
    et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
    o.weight = et_ones(ET_SHAPE(3));
    ck_assert_ptr_null(et_cross_entropy_ex(x, t, ET_REDUCTION_MEAN, o));
    ck_assert_int_eq(et_errcode(), ET_ERR_SHAPE);
    o = ET_CLASS_LOSS_DEFAULTS;
    o.label_smoothing = 0.1f;
    ck_assert_ptr_null(et_nll_loss_ex(x, t, ET_REDUCTION_MEAN, o));
    ck_assert_int_eq(et_errcode(), ET_ERR_ARG);
    o = ET_CLASS_LOSS_DEFAULTS;
    o.ignore_index = 1;   /* -100 is now an ordinary (out of range) target */
    ck_assert_ptr_null(et_nll_loss_ex(x, t, ET_REDUCTION_MEAN, o));
    ck_assert_int_eq(et_errcode(), ET_ERR_INDEX);
    et_pool_end();
}
END_TEST

/* The [N, C] class-index cross-entropy runs as one node (core's
 * et_cross_entropy_rows); the same input as [N, C, 1] takes the composed
 * path (log_softmax, gather, where, sum).  Both must give the same bits:
 * loss and input gradient, for every reduction, class weights (zeros
 * included), ignored targets (all of a batch too: the mean's 0/0), int64 and
 * float targets, widths around the 16-wide blocks and extreme logits. */
static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

static void ce_paths(int n, int c, int r, int wmode, int ign, bool int_t, uint32_t seed)
{
    et_pool_begin();   /* every tensor below belongs to the pool */
    uint32_t st = seed;
    float *xv = malloc(sizeof(float) * (size_t)(n * c));
    int64_t *ti = malloc(sizeof(int64_t) * (size_t)n);
    float *tf = malloc(sizeof(float) * (size_t)n), *wv = malloc(sizeof(float) * (size_t)c);
    for (int i = 0; i < n * c; i++) {
        uint32_t u = lcg(&st) >> 8;
        xv[i] = ((float)u / 16777216.0f - 0.5f) * 12.0f;
        if (seed % 5 == 0 && u % 13 == 0)   /* extreme logits */
            xv[i] = u % 2 ? -INFINITY : (u % 3 ? 80.0f : -95.0f);
    }
    for (int i = 0; i < n; i++) {
        ti[i] = (int64_t)(lcg(&st) >> 8) % c;
        if (ign == 1 && i % 3 == 1)
            ti[i] = -100;
        if (ign == 2)
            ti[i] = -100;
        tf[i] = (float)ti[i];
    }
    for (int j = 0; j < c; j++)
        wv[j] = wmode == 2 && j % 4 == 0 ? 0.0f : 0.25f + (float)((lcg(&st) >> 8) % 100) / 40.0f;
    et_class_loss_opts o = ET_CLASS_LOSS_DEFAULTS;
    if (wmode)
        o.weight = et_tensor_new(wv, ET_SHAPE(c));
    et_tensor *t2 = int_t ? et_tensor_new_int64(ti, ET_SHAPE(n)) : et_tensor_new(tf, ET_SHAPE(n));
    et_tensor *t3 = int_t ? et_tensor_new_int64(ti, ET_SHAPE(n, 1)) : et_tensor_new(tf, ET_SHAPE(n, 1));
    et_tensor *x2 = et_tensor_new(xv, ET_SHAPE(n, c)), *x3 = et_tensor_new(xv, ET_SHAPE(n, c, 1));
    et_set_requires_grad(x2, true);
    et_set_requires_grad(x3, true);
    et_tensor *l2 = et_cross_entropy_ex(x2, t2, (et_reduction)r, o);
    et_tensor *l3 = et_cross_entropy_ex(x3, t3, (et_reduction)r, o);
    ck_assert_ptr_nonnull(l2);
    ck_assert_ptr_nonnull(l3);
    ck_assert_str_eq(et_grad_fn_name(l2), "NllLossBackward0");
    ck_assert_int_eq(et_numel(l2), et_numel(l3));
    ck_assert_msg(memcmp(et_data(l2), et_data(l3), sizeof(float) * (size_t)et_numel(l2)) == 0,
                  "loss n=%d c=%d r=%d w=%d ign=%d: %.9g vs %.9g", n, c, r, wmode, ign,
                  (double)et_data(l2)[0], (double)et_data(l3)[0]);
    /* backward with a gradient that is not 1 (none: one per sample) */
    et_tensor *s2 = r == ET_REDUCTION_NONE ? et_sum_all(et_mul_scalar(l2, 0.37f)) : et_mul_scalar(l2, 0.37f);
    et_tensor *s3 = r == ET_REDUCTION_NONE ? et_sum_all(et_mul_scalar(l3, 0.37f)) : et_mul_scalar(l3, 0.37f);
    ck_assert_int_eq(et_backward(s2, NULL), ET_OK);
    ck_assert_int_eq(et_backward(s3, NULL), ET_OK);
    et_tensor *g2 = et_grad(x2), *g3 = et_grad(x3);
    ck_assert_ptr_nonnull(g2);
    ck_assert_ptr_nonnull(g3);
    const float *a = et_data(g2), *b = et_data(g3);
    for (int i = 0; i < n * c; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                      "grad[%d] n=%d c=%d r=%d w=%d ign=%d: %.9g vs %.9g", i, n, c, r, wmode,
                      ign, (double)a[i], (double)b[i]);
    free(xv);
    free(ti);
    free(tf);
    free(wv);
    et_pool_end();
}

START_TEST(cross_entropy_one_node_matches_composed_path)
{
    static const int widths[] = {1, 2, 5, 15, 16, 17, 27, 31, 32, 33, 47, 70};
    static const int rows[] = {1, 3, 32, 37};
    uint32_t seed = 1;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (size_t ni = 0; ni < sizeof rows / sizeof rows[0]; ni++)
            for (int r = 0; r < 3; r++)
                for (int wmode = 0; wmode < 3; wmode++)
                    for (int ign = 0; ign < 3; ign++, seed++)
                        ce_paths(rows[ni], widths[wi], r, wmode, ign, seed % 2 == 0, seed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_loss");
    TCase *tc = tcase_create("elementwise");
    tcase_add_loop_test(tc, elementwise_losses_match_definition_for_each_reduction, 0,
                        (int)(3 * sizeof elementwise / sizeof elementwise[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("elementwise_grad");
    tcase_add_loop_test(tc, elementwise_loss_gradients_match_finite_differences, 0,
                        (int)(sizeof elementwise / sizeof elementwise[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("cross_entropy");
    tcase_add_loop_test(tc, cross_entropy_and_nll_match_definition, 0, 6);
    tcase_add_test(tc, cross_entropy_gradient_is_softmax_minus_onehot);
    tcase_add_test(tc, cross_entropy_is_finite_for_extreme_logits);
    tcase_add_test(tc, class_loss_options_identities_and_errors);
    tcase_add_test(tc, cross_entropy_one_node_matches_composed_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, class_targets_out_of_range_are_errors_naming_the_index);
    tcase_add_test(tc, int64_class_targets_equal_float_targets);
    tcase_add_test(tc, mismatched_shapes_and_bad_arguments_are_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("misc");
    tcase_add_test(tc, smooth_l1_with_zero_beta_is_l1);
    tcase_add_test(tc, reduction_parse_and_name_round_trip);
    tcase_add_test(tc, losses_inside_a_pool_belong_to_the_pool);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
