/* check_batch_norm_sync.c - et_batch_norm_reduced (torch.nn.SyncBatchNorm's
 * arithmetic): a batch split by rows over participants -- threads here, each
 * with its share, summing through a reducer that meets them all -- gives
 * every participant the output and input gradient of et_batch_norm over the
 * whole batch (compared with PyTorch in tests/torch/test_layers.py), weight
 * and bias gradients that add up to the whole batch's, and the same running
 * statistics; a participant without rows takes part; a failing reducer
 * fails the op and changes nothing; eval mode never calls it. */
#include <pthread.h>

#include "check_helpers.h"
#include "easytorch/functional.h"

enum { P = 3, C = 3, L = 2, N = 9, MAXV = 2 * C };

/* The participants meet here: each puts its vector in its slot, the last to
 * arrive sums them in participant order (every participant gets the same
 * bits), and all leave with the sum. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived, calls;
    unsigned gen;
    double slot[P][MAXV], sum[MAXV];
    bool fail_all;          /* the reducer reports a failure */
} meeting;

typedef struct {
    meeting *g;
    int who;
    et_reducer r;
} member;

static bool meet(void *ctx, double *v, int64_t n)
{
    member *me = ctx;
    meeting *g = me->g;
    ck_assert_int_le(n, MAXV);
    pthread_mutex_lock(&g->mu);
    memcpy(g->slot[me->who], v, (size_t)n * sizeof *v);
    unsigned gen = g->gen;
    if (++g->arrived == P) {
        for (int64_t k = 0; k < n; k++) {
            g->sum[k] = 0;
            for (int p = 0; p < P; p++)
                g->sum[k] += g->slot[p][k];
        }
        g->arrived = 0;
        g->calls++;
        g->gen++;
        pthread_cond_broadcast(&g->cv);
    } else {
        while (g->gen == gen)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    memcpy(v, g->sum, (size_t)n * sizeof *v);
    bool ok = !g->fail_all;
    pthread_mutex_unlock(&g->mu);
    if (!ok)
        et_set_error(ET_ERR_STATE, "participant %d: the group is gone", me->who);
    return ok;
}

/* The whole batch, its upstream gradient, and the affine parameters. */
static float X[N * C * L], G[N * C * L];
static const float W[C] = {1.5f, -0.5f, 2.0f}, B[C] = {0.1f, 0.2f, -0.3f};
static int64_t LO[P], HI[P]; /* participant p's rows [LO, HI) */

static void split(int64_t a, int64_t b) /* [0, a), [a, b), [b, N) */
{
    LO[0] = 0, HI[0] = LO[1] = a, HI[1] = LO[2] = b, HI[2] = N;
}

static void fill(void)
{
    uint32_t s = 12345;
    for (int i = 0; i < N * C * L; i++) {
        s = s * 1103515245u + 12345u;
        X[i] = 3.0f + (float)((s >> 8) % 10000) / 2500.0f; /* |mean| > std */
        s = s * 1103515245u + 12345u;
        G[i] = (float)((s >> 8) % 10000) / 5000.0f - 1.0f;
    }
}

typedef struct {
    member me;
    bool training;
    /* out: this share's y and dx, dw, db; the running statistics after */
    float y[N * C * L], dx[N * C * L], dw[C], db[C], rm[C], rv[C];
    bool ok;
    char err[256];
} share;

static void *run_share(void *arg)
{
    share *s = arg;
    int64_t lo = LO[s->me.who], n = HI[s->me.who] - lo;
    et_pool_begin();
    et_tensor *x = et_tensor_new(X + lo * C * L, ET_SHAPE(n, C, L));
    et_tensor *g = et_tensor_new(G + lo * C * L, ET_SHAPE(n, C, L));
    et_tensor *w = et_tensor_new(W, ET_SHAPE(C)), *b = et_tensor_new(B, ET_SHAPE(C));
    et_tensor *rm = TV(ET_SHAPE(C), 0.5f, 0, -1), *rv = TV(ET_SHAPE(C), 2, 1, 1);
    et_set_requires_grad(x, true);
    et_set_requires_grad(w, true);
    et_set_requires_grad(b, true);
    et_tensor *y = et_batch_norm_reduced(x, rm, rv, w, b, s->training, 0.1, 1e-5, &s->me.r);
    s->ok = y && (!s->training || et_backward(y, g) == ET_OK);
    if (!s->ok)
        snprintf(s->err, sizeof s->err, "%s", et_errmsg());
    if (s->ok) {
        et_copy_to(y, s->y);
        if (s->training) {
            et_copy_to(et_grad(x), s->dx);
            et_copy_to(et_grad(w), s->dw);
            et_copy_to(et_grad(b), s->db);
        }
    }
    et_copy_to(rm, s->rm);
    et_copy_to(rv, s->rv);
    et_pool_end();
    return NULL;
}

static meeting *run_all(share *sh, bool training, bool fail)
{
    static meeting g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    g.fail_all = fail;
    pthread_t t[P];
    for (int p = 0; p < P; p++) {
        memset(&sh[p], 0, sizeof sh[p]);
        sh[p].me = (member){&g, p, {meet, &sh[p].me}};
        sh[p].training = training;
        ck_assert_int_eq(pthread_create(&t[p], NULL, run_share, &sh[p]), 0);
    }
    for (int p = 0; p < P; p++)
        pthread_join(t[p], NULL);
    return &g;
}

static void assert_rows(const float *got, const et_tensor *full, int64_t lo, int64_t n,
                        const char *what)
{
    float all[N * C * L];
    et_copy_to(full, all);
    assert_close_tol(et_tensor_new(got, ET_SHAPE(n * C * L)), all + lo * C * L, n * C * L, 1e-5,
                     1e-6, what);
}

START_TEST(shares_give_the_whole_batchs_numbers)
{
    fill();
    split(5, 5); /* participant 1 has no rows */
    share sh[P];
    meeting *g = run_all(sh, true, false);
    ck_assert_int_eq(g->calls, 3); /* forward: sums + count, squared deviations; backward: 1 */
    et_pool_begin();
    et_tensor *x = et_tensor_new(X, ET_SHAPE(N, C, L)), *gy = et_tensor_new(G, ET_SHAPE(N, C, L));
    et_tensor *w = et_tensor_new(W, ET_SHAPE(C)), *b = et_tensor_new(B, ET_SHAPE(C));
    et_tensor *rm = TV(ET_SHAPE(C), 0.5f, 0, -1), *rv = TV(ET_SHAPE(C), 2, 1, 1);
    et_set_requires_grad(x, true);
    et_set_requires_grad(w, true);
    et_set_requires_grad(b, true);
    et_tensor *y = et_batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
    ck_assert_int_eq(et_backward(y, gy), ET_OK);
    float dw[C] = {0}, db[C] = {0}, frm[C], frv[C];
    for (int p = 0; p < P; p++) {
        ck_assert_msg(sh[p].ok, "participant %d: %s", p, sh[p].err);
        int64_t n = HI[p] - LO[p];
        assert_rows(sh[p].y, y, LO[p], n, "y");
        assert_rows(sh[p].dx, et_grad(x), LO[p], n, "dx");
        for (int c = 0; c < C; c++) {
            dw[c] += sh[p].dw[c];
            db[c] += sh[p].db[c];
        }
    }
    assert_close_tol(et_tensor_new(dw, ET_SHAPE(C)), et_data_const(et_grad(w)), C, 1e-5, 1e-6,
                     "sum of the weight gradients");
    assert_close_tol(et_tensor_new(db, ET_SHAPE(C)), et_data_const(et_grad(b)), C, 1e-5, 1e-6,
                     "sum of the bias gradients");
    et_copy_to(rm, frm);
    et_copy_to(rv, frv);
    for (int p = 0; p < P; p++) { /* the unbiased variance counts every row */
        assert_close_tol(et_tensor_new(sh[p].rm, ET_SHAPE(C)), frm, C, 1e-6, 1e-7, "running_mean");
        assert_close_tol(et_tensor_new(sh[p].rv, ET_SHAPE(C)), frv, C, 1e-6, 1e-7, "running_var");
    }
    /* the empty share's weight and bias gradients are zero: no rows of its own */
    for (int c = 0; c < C; c++)
        ck_assert_float_eq(sh[1].dw[c], 0);
    et_pool_end();
}
END_TEST

START_TEST(a_failing_reducer_fails_the_op_and_changes_nothing)
{
    fill();
    split(4, 6);
    share sh[P];
    run_all(sh, true, true);
    for (int p = 0; p < P; p++) {
        ck_assert(!sh[p].ok);
        ck_assert_msg(strstr(sh[p].err, "the group is gone") != NULL, "%s", sh[p].err);
        ck_assert_float_eq(sh[p].rm[0], 0.5f);
        ck_assert_float_eq(sh[p].rv[0], 2.0f);
    }
}
END_TEST

START_TEST(eval_mode_never_calls_the_reducer)
{
    fill();
    split(4, 6);
    share sh[P];
    meeting *g = run_all(sh, false, false);
    ck_assert_int_eq(g->calls, 0);
    for (int p = 0; p < P; p++)
        ck_assert_msg(sh[p].ok, "%s", sh[p].err);
}
END_TEST

START_TEST(the_value_count_is_every_participants)
{
    /* no rows anywhere: every participant fails alike, after the first sum */
    fill();
    split(0, 0);
    HI[2] = 0;
    share sh[P];
    meeting *g = run_all(sh, true, false);
    ck_assert_int_eq(g->calls, 1);
    for (int p = 0; p < P; p++) {
        ck_assert(!sh[p].ok);
        ck_assert_msg(strstr(sh[p].err, "more than 1 value per channel when training, got 0 "
                             "over all the participants") != NULL, "%s", sh[p].err);
    }
}
END_TEST

static Suite *sync_suite(void)
{
    Suite *s = suite_create("batch_norm_sync");
    TCase *tc = tcase_create("reduced");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, shares_give_the_whole_batchs_numbers);
    tcase_add_test(tc, a_failing_reducer_fails_the_op_and_changes_nothing);
    tcase_add_test(tc, eval_mode_never_calls_the_reducer);
    tcase_add_test(tc, the_value_count_is_every_participants);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(sync_suite()); }
