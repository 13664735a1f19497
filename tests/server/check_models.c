/* check_models.c - the models layer (src/server/models) without HTTP: the
 * training state round trip (every field through the model file and back,
 * then identical training afterwards), rollbacks (a failing minibatch, a
 * cancel through the progress hook, a failing batch, a gradient probe leave
 * the state exactly as it was), result codes and messages, a job's record
 * published with its model's step, the dynamic batcher's fill-one-batch-first
 * policy. */
#include "check_server.h"
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "server/models/model_internal.h"

static char dir[256];
static etd_registry *reg;

static etd_registry_opts opts(bool sync_always)
{
    return (etd_registry_opts){.data_dir = dir, .sync_always = sync_always,
                               .save_interval = 3600, .max_models = 8, .max_params = 100000,
                               .max_steps = 100000, .max_history = 1000};
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_models_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    etd_registry_opts o = opts(false);
    etd_err e;
    reg = etd_registry_new(&o, &e);
    ck_assert_msg(reg != NULL, "%s", e.msg);
}

/* twin() registries, each with its own data dir, freed with the fixture */
static etd_registry *twins[4];
static char twin_dirs[4][300];
static int ntwins;

static void teardown(void)
{
    for (int i = 0; i < ntwins; i++) {
        etd_registry_free(twins[i]);
        remove_scratch_dir(twin_dirs[i]);
    }
    ntwins = 0;
    etd_registry_free(reg);
    remove_scratch_dir(dir);
}

/* Adam (moments and step count), a scheduler, Dropout (generator draws). */
#define SPEC_NET "{\"name\":\"m\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,\"out_features\":4}," \
             "{\"type\":\"Tanh\"},{\"type\":\"Dropout\",\"p\":0.25}," \
             "{\"type\":\"Linear\",\"in_features\":4,\"out_features\":3}]," \
             "\"loss\":\"CrossEntropyLoss\",\"optimizer\":{\"type\":\"Adam\",\"lr\":0.05},\"seed\":3"
#define SPEC SPEC_NET ",\"scheduler\":{\"type\":\"StepLR\",\"step_size\":2,\"gamma\":0.5}}"
/* the same without the scheduler: a one-step train keeps no parameter copy */
#define SPEC_NO_SCHED SPEC_NET "}"

static etd_model *define(etd_registry *r, const char *spec)
{
    cJSON *j = cJSON_Parse(spec);
    ck_assert_ptr_nonnull(j);
    etd_model *m;
    etd_err e;
    etd_rc rc = etd_registry_define(r, j, &m, &e);
    ck_assert_msg(rc == ETD_OK, "%s", e.msg);
    cJSON_Delete(j);
    return m;
}

static etd_array array(const float *v, int64_t rows, int64_t cols)
{
    etd_array a = {0};
    a.ndim = cols ? 2 : 1;
    a.shape[0] = rows;
    a.shape[1] = cols;
    a.numel = rows * (cols ? cols : 1);
    a.data = malloc((size_t)a.numel * sizeof(float));
    memcpy(a.data, v, (size_t)a.numel * sizeof(float));
    return a;
}

static const float X[] = {0.5f, -1, 1, 2, -0.25f, 0.75f, 3, -2, 0, 1, -1.5f, 0.5f};
static const float Y[] = {0, 2, 1, 2, 0, 1};

/* Push two batches, step, train with shuffling, push one more: every part
 * of the state is non-trivial (pending gradients, moments, scheduler past a
 * milestone, generator advanced, history). */
static void exercise(etd_model *m)
{
    etd_array x = array(X, 6, 2), y = array(Y, 6, 0);
    etd_err e;
    etd_batch_result b;
    etd_step_result s;
    etd_train_result t;
    ck_assert_msg(etd_model_push_batch(m, &x, &y, &b, &e) == ETD_OK, "%s", e.msg);
    ck_assert_msg(etd_model_push_batch(m, &x, &y, &b, &e) == ETD_OK, "%s", e.msg);
    ck_assert_msg(etd_model_step(m, &s, &e) == ETD_OK, "%s", e.msg);
    etd_train_opts o = {.epochs = 3, .batch_size = 4, .shuffle = true};
    ck_assert_msg(etd_model_train(m, &x, &y, &o, &t, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(t.n, 6);
    etd_train_result_free(&t);
    /* a poisoned batch (the request layer refuses these; this one comes from
     * below it): the guard skips it and remembers the event */
    etd_array px = array(X, 6, 2);
    px.data[3] = NAN;
    ck_assert_msg(etd_model_push_batch(m, &px, &y, &b, &e) == ETD_OK, "%s", e.msg);
    ck_assert(b.skipped);
    ck_assert_int_eq(b.pending, 0);
    etd_array_free(&px);
    ck_assert_msg(etd_model_push_batch(m, &x, &y, &b, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(b.pending, 1);
    etd_array_free(&x);
    etd_array_free(&y);
}

/* The first difference between the two states (bit for bit: every tensor,
 * every scalar of the fields table, the history), or NULL when the same. */
static bool same_times = true;

static const char *state_diff(etd_model *a, etd_model *b)
{
    static char why[256];
    etd_train_state sa, sb;
    etd_err e;
    etd_model_lock_any(a, false);
    ck_assert(etd_ts_capture(a, ETD_TS_ALL, true, &sa, &e) == ETD_OK);
    etd_model_unlock(a);
    etd_model_lock_any(b, false);
    ck_assert(etd_ts_capture(b, ETD_TS_ALL, true, &sb, &e) == ETD_OK);
    etd_model_unlock(b);
    const char *d = NULL;
    if (et_tensor_dict_len(sa.tensors) != et_tensor_dict_len(sb.tensors))
        d = "number of tensors";
    for (int i = 0; !d && i < et_tensor_dict_len(sa.tensors); i++) {
        const char *k = et_tensor_dict_name(sa.tensors, i);
        et_tensor *ta = et_tensor_dict_tensor(sa.tensors, i), *tb = et_tensor_dict_get(sb.tensors, k);
        bool i64 = et_tensor_dtype(ta) == ET_INT64;
        const void *pa = i64 ? (const void *)et_data_int64_const(ta) : (const void *)et_data_const(ta);
        const void *pb = !tb || et_tensor_dtype(tb) != et_tensor_dtype(ta) ? NULL
                         : i64 ? (const void *)et_data_int64_const(tb)
                               : (const void *)et_data_const(tb);
        if (!pa || !pb || !et_same_shape(ta, tb) ||
            memcmp(pa, pb, (size_t)et_numel(ta) * (i64 ? sizeof(int64_t) : sizeof(float)))) {
            snprintf(why, sizeof why, "tensor %s", k);
            d = why;
        }
    }
    /* every row of train_state_file.c's fields[], as the file writes it; the
     * wall-clock time of the last guard event: only a file round trip keeps it */
    if (!same_times)
        sb.s.nf_time = sa.s.nf_time;
    const char *f = d ? NULL : etd_ts_scalars_diff(a, &sa.s, &sb.s);
    if (f) {
        snprintf(why, sizeof why, "scalar %s", f);
        d = why;
    }
    etd_history ha, hb;
    ck_assert(etd_model_loss_history(a, -1, &ha, &e) == ETD_OK);
    ck_assert(etd_model_loss_history(b, -1, &hb, &e) == ETD_OK);
    if (!d && ha.n != hb.n) d = "history length";
    for (size_t i = 0; !d && i < ha.n; i++)
        if (ha.steps[i] != hb.steps[i] || memcmp(&ha.losses[i], &hb.losses[i], sizeof(float)))
            d = "history entry";
    etd_history_free(&ha);
    etd_history_free(&hb);
    etd_ts_free(&sa);
    etd_ts_free(&sb);
    return d;
}

static void same_state(etd_model *a, etd_model *b)
{
    const char *d = state_diff(a, b);
    ck_assert_msg(d == NULL, "states differ in %s", d);
}

/* ---- the round trip ---- */

START_TEST(test_state_round_trips_through_the_file)
{
    etd_model *m = define(reg, SPEC);
    exercise(m);
    ck_assert_int_eq(m->ts.step, 7);
    ck_assert_int_eq(m->ts.pending, 1);
    int64_t step;
    etd_err e;
    ck_assert_msg(etd_model_checkpoint(m, &step, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(step, 7);

    /* a second registry loads the file: the same state, field by field (in
     * a directory of its own: a data dir has one owner at a time) */
    etd_registry_opts o = opts(false);
    char dir2[300];
    o.data_dir = copy_scratch_dir(dir, dir2, sizeof dir2);
    etd_registry *r2 = etd_registry_new(&o, &e);
    ck_assert_msg(r2 != NULL, "%s", e.msg);
    etd_registry_load_all(r2);
    etd_model *m2;
    ck_assert_msg(etd_registry_get(r2, "m", &m2, &e) == ETD_OK, "%s", e.msg);
    same_state(m, m2);

    /* and trains on exactly as the original does (dropout masks, shuffles,
     * Adam moments, the scheduler: all continue bit-identically) */
    exercise(m);
    exercise(m2);
    same_times = false;
    same_state(m, m2);
    same_times = true;
    etd_model_unref(m2);
    etd_model_unref(m);
    etd_registry_free(r2);
    remove_scratch_dir(dir2);
}
END_TEST

START_TEST(test_every_scalar_field_is_in_the_file)
{
    etd_model *m = define(reg, SPEC);
    exercise(m);
    uint8_t *buf;
    size_t len;
    etd_err e;
    etd_model_lock_any(m, false);
    ck_assert(etd_ts_encode(m, &buf, &len, &e) == ETD_OK);
    etd_model_unlock(m);
    et_tensor_dict *d;
    cJSON *meta;
    const char *name;
    const cJSON *spec;
    uint64_t seed;
    ck_assert_msg(etd_ts_decode(buf, len, &d, &meta, &name, &spec, &seed, &e) == ETD_OK, "%s",
                  e.msg);
    ck_assert_str_eq(name, "m");
    ck_assert_uint_eq(seed, 3);
    /* every row of the fields table (the test model has a scheduler) */
    int nkeys = 0;
    for (const char *k; (k = etd_ts_field_key(nkeys)); nkeys++)
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(meta, k), "%s missing", k);
    ck_assert_int_ge(nkeys, 10);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(meta, "history"));
    /* and the comparison the other tests rely on sees a change in any row */
    etd_train_state st0;
    etd_model_lock_any(m, false);
    ck_assert(etd_ts_capture(m, ETD_TS_SCALARS, false, &st0, &e) == ETD_OK);
    etd_model_unlock(m);
    etd_ts_scalars b = st0.s;
    ck_assert_ptr_null(etd_ts_scalars_diff(m, &st0.s, &b));
    b.step++;
    ck_assert_str_eq(etd_ts_scalars_diff(m, &st0.s, &b), "step");
    b = st0.s;
    b.gen[3] ^= 1;
    ck_assert_str_eq(etd_ts_scalars_diff(m, &st0.s, &b), "generator");
    b = st0.s;
    b.sched_lr = nextafter(b.sched_lr, 1.0);
    ck_assert_str_eq(etd_ts_scalars_diff(m, &st0.s, &b), "sched_last_lr");
    etd_ts_free(&st0);
    /* every parameter, its pending gradient and the optimizer slots */
    ck_assert_ptr_nonnull(et_tensor_dict_get(d, "param.0.weight"));
    ck_assert_ptr_nonnull(et_tensor_dict_get(d, "grad.3.bias"));
    ck_assert_ptr_nonnull(et_tensor_dict_get(d, "optim.0.exp_avg"));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "nonfinite_source")->valuestring,
                     "batches");
    /* a file written before the divergence guard existed loads with its defaults */
    static const char *const guard_keys[] = {"nonfinite", "diverged", "nonfinite_count",
                                             "nonfinite_step", "nonfinite_time",
                                             "nonfinite_action", "nonfinite_source",
                                             "nonfinite_reason"};
    cJSON *old = cJSON_Duplicate(meta, 1);
    for (size_t i = 0; i < sizeof guard_keys / sizeof guard_keys[0]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(old, guard_keys[i]);
    etd_train_state st;
    ck_assert_msg(etd_ts_from_file(m, d, old, &st, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(st.s.nonfinite, 0);
    ck_assert_int_eq(st.s.nf_count, 0);
    ck_assert_str_eq(st.s.nf_reason, "");
    etd_ts_free(&st);
    cJSON_Delete(old);
    /* a malformed one is refused */
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "nonfinite", cJSON_CreateString("sometimes"));
    ck_assert_int_eq(etd_ts_from_file(m, d, meta, &st, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "\"nonfinite\" is missing or malformed"), "%s", e.msg);
    etd_ts_free(&st);
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "nonfinite", cJSON_CreateString("skip"));
    /* a file without one of them is refused, naming it */
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "optim_steps");
    ck_assert_int_eq(etd_ts_from_file(m, d, meta, &st, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "\"optim_steps\" is missing"), "%s", e.msg);
    etd_ts_free(&st);
    cJSON_Delete(meta);
    et_tensor_dict_free(d);
    free(buf);
    etd_model_unref(m);
}
END_TEST

/* ---- rollbacks ---- */

/* A copy of the model's whole state, to compare with after a failed call. */
static const char *twin_spec = SPEC; /* the spec m was defined with */
static etd_model *twin(etd_model *m)
{
    /* the same spec and seed in a registry of its own, then m's state applied */
    ck_assert_int_lt(ntwins, 4);
    char *dir2 = twin_dirs[ntwins];
    snprintf(dir2, sizeof twin_dirs[0], "%s/twin%d", dir, ntwins);
    etd_registry_opts o = opts(false);
    o.data_dir = dir2;
    etd_err e;
    etd_registry *r2 = twins[ntwins++] = etd_registry_new(&o, &e);
    ck_assert_ptr_nonnull(r2);
    etd_model *t = define(r2, twin_spec);
    etd_train_state st;
    etd_model_lock_any(m, false);
    ck_assert(etd_ts_capture(m, ETD_TS_ALL, true, &st, &e) == ETD_OK);
    etd_model_unlock(m);
    /* the history is not in a snapshot: copy it over */
    etd_history h;
    ck_assert(etd_model_loss_history(m, -1, &h, &e) == ETD_OK);
    st.h_step = h.steps;
    st.h_loss = h.losses;
    st.h_lr = h.lrs;
    st.h_n = h.n;
    h.steps = NULL; /* taken over by st; the markers are not copied */
    h.losses = NULL;
    h.lrs = NULL;
    etd_history_free(&h);
    etd_model_lock_any(t, true);
    ck_assert_msg(etd_ts_apply(t, &st, &e) == ETD_OK, "%s", e.msg);
    etd_model_unlock(t);
    etd_ts_free(&st);
    return t;
}

START_TEST(test_a_failing_minibatch_rolls_train_back)
{
    etd_model *m = define(reg, SPEC);
    exercise(m);
    etd_model *before = twin(m);
    same_state(m, before);
    /* the comparison sees a change: one more step on the twin differs */
    etd_model *moved = twin(m);
    etd_array x0 = array(X, 6, 2), y0 = array(Y, 6, 0);
    etd_batch_result b0;
    etd_err e0;
    ck_assert(etd_model_push_batch(moved, &x0, &y0, &b0, &e0) == ETD_OK);
    ck_assert_str_eq(state_diff(m, moved), "tensor grad.0.weight");
    etd_step_result s0;
    ck_assert(etd_model_step(moved, &s0, &e0) == ETD_OK);
    ck_assert_ptr_nonnull(state_diff(m, moved));
    etd_array_free(&x0);
    etd_array_free(&y0);
    etd_model_unref(moved);
    /* class 7 of 3 in the last rows: the second minibatch fails */
    float bad[6] = {0, 1, 2, 1, 7, 0};
    etd_array x = array(X, 6, 2), y = array(bad, 6, 0);
    etd_train_opts o = {.epochs = 2, .batch_size = 3, .shuffle = false};
    etd_train_result t;
    etd_err e;
    ck_assert_int_eq(etd_model_train(m, &x, &y, &o, &t, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "targets[1]: class 7 is out of range") &&
                  strstr(e.msg, "(epoch 1, minibatch 2; nothing was changed)"), "%s", e.msg);
    same_state(m, before);
    etd_array_free(&x);
    etd_array_free(&y);
    etd_model_unref(before);
    etd_model_unref(m);
}
END_TEST

/* A one-step train call of a model without a scheduler keeps no copy of the
 * parameters and Adam's moments (train.c: the step cannot fail half-way);
 * failing in its minibatch it still puts back what did change: the pending
 * gradient (zeroed by the minibatch), the generator (Dropout's draws). */
START_TEST(test_a_failing_one_step_train_changes_nothing)
{
    etd_model *m = define(reg, twin_spec = SPEC_NO_SCHED);
    exercise(m); /* leaves a batch pending */
    etd_model *before = twin(m);
    float bad[6] = {0, 1, 2, 1, 7, 0};
    etd_array x = array(X, 6, 2), y = array(bad, 6, 0), y1 = array(Y, 6, 0);
    etd_train_opts o = {.epochs = 1, .shuffle = true};
    etd_train_result t;
    etd_err e;
    ck_assert_int_eq(etd_model_train(m, &x, &y, &o, &t, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "(epoch 1, minibatch 1; nothing was changed)"), "%s", e.msg);
    same_state(m, before);
    /* and the next one-step call trains as on the untouched twin */
    for (etd_model *k = m; k; k = k == m ? before : NULL) {
        ck_assert_msg(etd_model_train(k, &x, &y1, &o, &t, &e) == ETD_OK, "%s", e.msg);
        etd_train_result_free(&t);
    }
    same_times = false;
    same_state(m, before);
    same_times = true;
    etd_array_free(&x);
    etd_array_free(&y);
    etd_array_free(&y1);
    etd_model_unref(before);
    etd_model_unref(m);
    twin_spec = SPEC;
}
END_TEST

typedef struct progress {
    int calls;
    int64_t stop_at;
} progress;

static bool stop_at(void *arg, int64_t done, int64_t total)
{
    progress *p = arg;
    p->calls++;
    ck_assert_int_eq(total, 6);
    return done < p->stop_at;
}

START_TEST(test_stop_through_the_progress_hook_keeps_the_steps_done)
{
    etd_model *m = define(reg, SPEC);
    exercise(m);
    etd_model *twin2 = twin(m); /* will be asked for exactly the steps m keeps */
    etd_array x = array(X, 6, 2), y = array(Y, 6, 0);
    /* 3 epochs of 2 minibatches, stopped before step 5: 4 steps = 2 epochs */
    progress p = {0, 4};
    etd_train_opts o = {.epochs = 3, .batch_size = 3, .shuffle = true, .progress = stop_at,
                        .progress_arg = &p};
    etd_train_result t;
    etd_err e;
    ck_assert_msg(etd_model_train(m, &x, &y, &o, &t, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(t.stopped, ETD_TRAIN_CANCELLED);
    ck_assert_int_eq(t.n, 4);
    ck_assert_int_eq(t.total, 6);
    ck_assert_int_eq(p.calls, 5); /* before steps 1..4 (go on), then before 5 (stop) */
    etd_train_result_free(&t);
    /* the model is exactly as after a call that asked for 2 epochs (the
     * generator included: the third epoch's shuffle never happened) */
    etd_train_opts o2 = {.epochs = 2, .batch_size = 3, .shuffle = true};
    ck_assert_msg(etd_model_train(twin2, &x, &y, &o2, &t, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(t.stopped, ETD_TRAIN_DONE);
    etd_train_result_free(&t);
    same_state(m, twin2);
    ck_assert(atomic_load(&m->dirty)); /* saved as usual */
    /* a stop before the first step changes nothing */
    etd_model *now = twin(m);
    p = (progress){0, 0};
    ck_assert_msg(etd_model_train(m, &x, &y, &o, &t, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(t.n, 0);
    ck_assert_int_eq(t.stopped, ETD_TRAIN_CANCELLED);
    etd_train_result_free(&t);
    same_state(m, now);
    /* a hook that never stops: called before every step, all taken */
    p = (progress){0, 1000};
    ck_assert_msg(etd_model_train(m, &x, &y, &o, &t, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(p.calls, 6);
    ck_assert_int_eq(t.n, 6);
    ck_assert_int_eq(t.stopped, ETD_TRAIN_DONE);
    etd_train_result_free(&t);
    etd_array_free(&x);
    etd_array_free(&y);
    etd_model_unref(now);
    etd_model_unref(twin2);
    etd_model_unref(m);
}
END_TEST

START_TEST(test_failing_batch_and_gradient_probe_change_nothing)
{
    etd_model *m = define(reg, SPEC);
    exercise(m);
    etd_model *before = twin(m);
    etd_err e;
    /* a batch with a bad class: nothing accumulates, the generator is back */
    float bad[6] = {0, 1, 2, 1, 1.5f, 0};
    etd_array x = array(X, 6, 2), y = array(bad, 6, 0), yok = array(Y, 6, 0);
    etd_batch_result b;
    ck_assert_int_eq(etd_model_push_batch(m, &x, &y, &b, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "targets[4]: 1.5 is not an integer"), "%s", e.msg);
    same_state(m, before);
    /* a probe computes gradients of its own and puts everything back */
    etd_probe_result pr;
    ck_assert_msg(etd_model_probe(m, &x, &yok, &pr, &e) == ETD_OK, "%s", e.msg);
    ck_assert_int_eq(pr.grads.n, 4);
    ck_assert_ptr_nonnull(pr.input_grad);
    ck_assert_int_eq(et_numel(pr.input_grad), 12);
    etd_probe_result_free(&pr);
    same_state(m, before);
    /* step with nothing pending is a state error with its message */
    etd_step_result s;
    ck_assert_int_eq(etd_model_step(m, &s, &e), ETD_OK);
    ck_assert_int_eq(etd_model_step(m, &s, &e), ETD_ESTATE);
    ck_assert_str_eq(e.msg, "nothing to step: no batch is pending");
    etd_array_free(&x);
    etd_array_free(&y);
    etd_array_free(&yok);
    etd_model_unref(before);
    etd_model_unref(m);
}
END_TEST

/* ---- the model lock ---- */

static atomic_int readers_in;

static void *read_once(void *arg)
{
    etd_model *m = arg;
    etd_model_lock_any(m, false);
    atomic_fetch_add(&readers_in, 1);
    etd_model_unlock(m);
    return NULL;
}

static int readers_waiting(etd_model *m)
{
    pthread_mutex_lock(&m->lock.mu);
    int n = m->lock.readers_waiting;
    pthread_mutex_unlock(&m->lock.mu);
    return n;
}

/* A training job releases and re-takes the write lock between every two
 * steps.  Readers that were waiting when it released must get in before it
 * has the lock again -- before, the job usually won the race against the
 * woken readers and a reader waited for a lucky preemption (the saver,
 * versions and exports stalled behind a running job). */
START_TEST(test_readers_waiting_go_before_the_writer_retakes_the_lock)
{
    etd_model *m = define(reg, SPEC);
    enum { READERS = 3 };
    for (int round = 0; round < 50; round++) {
        atomic_store(&readers_in, 0);
        etd_model_lock_any(m, true);
        pthread_t t[READERS];
        for (int i = 0; i < READERS; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, read_once, m), 0);
        while (readers_waiting(m) < READERS) /* all blocked behind the writer */
            sched_yield();
        etd_model_unlock(m);
        /* the job's next step, or the pool's exclusive hold: either gets
         * the lock only after every waiting reader had it */
        if (round % 2 == 0 || !etd_model_try_hold(m, true, NULL))
            etd_model_lock_any(m, true);
        int in = atomic_load(&readers_in);
        ck_assert_int_eq(in, READERS);
        etd_model_unlock(m);
        for (int i = 0; i < READERS; i++)
            pthread_join(t[i], NULL);
    }
    ck_assert(etd_model_try_hold(m, true, NULL));
    etd_model_release(m);
    etd_model_unref(m);
}
END_TEST

/* ---- the registry ---- */

/* ---------------------------------------------------------------- dynamic batching */

/* An executor whose every job runs on a thread of its own (slots 2, as a
 * two-worker pool); `running` counts the jobs not yet returned. */
typedef struct spawned {
    void (*fn)(void *);
    void *arg;
} spawned;
static atomic_int running;

static void *spawned_main(void *p)
{
    spawned s = *(spawned *)p;
    free(p);
    s.fn(s.arg);
    atomic_fetch_sub(&running, 1);
    return NULL;
}

static bool spawn_submit(void *self, etd_model *m, void (*fn)(void *), void *arg)
{
    (void)self;
    (void)m;
    spawned *s = malloc(sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->fn = fn;
    s->arg = arg;
    atomic_fetch_add(&running, 1);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, spawned_main, s), 0);
    pthread_detach(t);
    return true;
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open, answered;

/* A request's answer; request 0's does not return until the gate opens, so
 * its batch is still computing meanwhile (run_one answers from inside). */
static void gated_done(void *arg, etd_rc rc, et_tensor **ys, int ny, const char *msg)
{
    ck_assert_msg(rc == ETD_OK, "%s", msg ? msg : "");
    for (int i = 0; i < ny; i++)
        et_tensor_free(ys[i]);
    pthread_mutex_lock(&gate_mu);
    answered++;
    pthread_cond_broadcast(&gate_cv);
    while (arg == NULL && !gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void wait_answered(int n)
{
    pthread_mutex_lock(&gate_mu);
    while (answered < n)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

/* Fill one batch first (batcher.c): while a batch computes, the requests
 * that arrive are not cut off by the delay (0 here: without a batch
 * computing, a request goes at once) but wait, and go as one batch when it
 * is done.  Before, the second slot's job took the first of them alone. */
START_TEST(test_batching_fills_one_batch_while_another_computes)
{
    static const etd_executor ex = {.submit = spawn_submit, .slots = 2};
    etd_registry_set_executor(reg, &ex);
    etd_model *m = define(reg, "{\"name\":\"b\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,"
                               "\"out_features\":1}],\"loss\":\"MSELoss\",\"optimizer\":{\"type\":"
                               "\"SGD\",\"lr\":0.1},\"seed\":1,\"batching\":{\"max_batch_size\":8,"
                               "\"max_delay_us\":0}}");
    gate_open = answered = 0;
    etd_err e;
    etd_array x = array(X, 1, 2);
    ck_assert_msg(etd_model_forward_batched(m, &x, gated_done, NULL, &e) == ETD_OK, "%s", e.msg);
    wait_answered(1); /* request 0's batch computes (in its answer) */
    for (intptr_t i = 1; i <= 3; i++) {
        x = array(X + 2 * i, 1, 2);
        ck_assert_msg(etd_model_forward_batched(m, &x, gated_done, (void *)i, &e) == ETD_OK, "%s",
                      e.msg);
    }
    /* give the forming job every chance to take them now (it must not):
     * until the others' job has started and is waiting */
    for (int k = 0; k < 200 && atomic_load(&running) < 2; k++)
        sched_yield();
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    etd_batch_stats st;
    etd_model_batch_stats(m, &st);
    pthread_mutex_lock(&gate_mu);
    int early = answered;
    pthread_mutex_unlock(&gate_mu);
    ck_assert_int_eq(early, 1);
    ck_assert_int_eq(st.batches, 1);
    ck_assert_int_eq(st.queued_requests, 3);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    wait_answered(4);
    while (atomic_load(&running) > 0)
        sched_yield();
    etd_model_batch_stats(m, &st);
    ck_assert_int_eq(st.batches, 2);   /* [0], then [1, 2, 3] */
    ck_assert_int_eq(st.requests, 4);
    ck_assert_int_eq(st.hist[0], 1);   /* one batch of 1 row */
    ck_assert_int_eq(st.hist[2], 1);   /* one of 3 (the le=4 bucket) */
    etd_registry_set_executor(reg, NULL);
    etd_model_unref(m);
}
END_TEST

START_TEST(test_registry_result_codes_and_messages)
{
    etd_model *m = define(reg, SPEC), *got;
    etd_err e;
    cJSON *j = cJSON_Parse(SPEC);
    ck_assert_int_eq(etd_registry_define(reg, j, &got, &e), ETD_EEXIST);
    ck_assert_str_eq(e.msg, "name: a model named \"m\" already exists");
    cJSON_Delete(j);
    ck_assert_int_eq(etd_registry_get(reg, "nope", &got, &e), ETD_ENOTFOUND);
    ck_assert_str_eq(e.msg, "no model named \"nope\"");
    ck_assert_int_eq(etd_registry_get(reg, "../x", &got, &e), ETD_ENOTFOUND);
    j = cJSON_Parse("{\"name\":\"x\",\"layers\":[{\"type\":\"Relu\"}],\"loss\":\"MSELoss\","
                    "\"optimizer\":{\"type\":\"SGD\",\"lr\":1}}");
    ck_assert_int_eq(etd_registry_define(reg, j, &got, &e), ETD_EINVAL);
    ck_assert_msg(strstr(e.msg, "did you mean \"ReLU\"?"), "%s", e.msg);
    cJSON_Delete(j);
    /* a model deleted while a caller holds it answers ENOTFOUND, not a crash */
    ck_assert_int_eq(etd_registry_delete(reg, "m", &e), ETD_OK);
    etd_tensors p;
    ck_assert_int_eq(etd_model_parameters(m, &p, &e), ETD_ENOTFOUND);
    ck_assert_str_eq(e.msg, "no model named \"m\" (deleted)");
    ck_assert_int_eq(etd_registry_delete(reg, "m", &e), ETD_ENOTFOUND);
    etd_model_unref(m);
}
END_TEST

/* ---- jobs under an etd_dp ----
 * A job's record (steps_done) is published in the same pub_mu section as its
 * model's step (etd_model_publish_with), so a reader never sees the model a
 * step ahead of its job.  The window it closes is a few instructions wide
 * and an HTTP reader hits it by luck only; here a one-replica etd_dp looks
 * from inside it: etd_dp_sync's broadcast runs after the step is published
 * and before the job's worker gets back from etd_train_minibatch (where the
 * record was written before the fix). */
static etd_model *dp_model;
static int64_t dp_job, dp_bcasts, dp_lagged;
static char dp_lag[160];

static bool dp_sum(void *ctx, float *buf, size_t n, etd_err *e)
{
    (void)ctx, (void)buf, (void)n, (void)e;
    return true; /* one replica: the sum is its own */
}

static bool dp_sum_f64(void *ctx, double *buf, size_t n, etd_err *e)
{
    (void)ctx, (void)buf, (void)n, (void)e;
    return true;
}

static bool dp_look(void *ctx, int root, void *buf, size_t n, etd_err *e)
{
    (void)ctx, (void)root, (void)buf, (void)n; /* one per step: no buffers to send apart */
    etd_model_info mi;
    etd_job_info ji;
    etd_model_info_get(dp_model, &mi);
    ck_assert(etd_job_get(dp_model, dp_job, &ji, e) == ETD_OK);
    dp_bcasts++;
    if (ji.start_step + ji.steps_done - ji.skipped != mi.sum.step && !dp_lagged++)
        snprintf(dp_lag, sizeof dp_lag, "model at step %lld, its job: start %lld + %lld done",
                 (long long)mi.sum.step, (long long)ji.start_step, (long long)ji.steps_done);
    return true;
}

START_TEST(test_a_jobs_record_moves_with_its_models_step)
{
    static const etd_dp dp = {.rank = 0, .size = 1, .allreduce = dp_sum,
                              .allreduce_f64 = dp_sum_f64, .bcast = dp_look};
    etd_registry_set_dp(reg, &dp);
    etd_registry_load_all(reg); /* starts the job workers */
    dp_model = define(reg, "{\"name\":\"j\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,"
                           "\"out_features\":1}],\"loss\":\"MSELoss\","
                           "\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1},\"seed\":1}");
    etd_job_spec s = {.x = array(X, 6, 2), .y = array(Y, 6, 1), .epochs = 3, .batch_size = 2};
    etd_job_info ji;
    etd_err e;
    ck_assert_msg(etd_job_submit(dp_model, &s, &ji, &e) == ETD_OK, "%s", e.msg);
    dp_job = ji.id;
    dp_bcasts = dp_lagged = 0;
    char name[64];
    int64_t id;
    while (etd_jobs_next(reg, name, sizeof name, &id)) /* as the cluster's order grants them */
        etd_jobs_tick(reg, name, id);
    ck_assert(etd_job_get(dp_model, dp_job, &ji, &e) == ETD_OK);
    ck_assert_str_eq(etd_job_state_names[ji.state], "done");
    ck_assert_int_eq(ji.steps_done, 9);
    ck_assert_int_eq(dp_bcasts, 9);
    ck_assert_msg(dp_lagged == 0, "%lld of 9 steps: %s", (long long)dp_lagged, dp_lag);
    etd_model_unref(dp_model);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("train_state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_state_round_trips_through_the_file);
    tcase_add_test(tc, test_every_scalar_field_is_in_the_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("rollback");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_failing_minibatch_rolls_train_back);
    tcase_add_test(tc, test_a_failing_one_step_train_changes_nothing);
    tcase_add_test(tc, test_stop_through_the_progress_hook_keeps_the_steps_done);
    tcase_add_test(tc, test_failing_batch_and_gradient_probe_change_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("lock");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_readers_waiting_go_before_the_writer_retakes_the_lock);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_registry_result_codes_and_messages);
    tcase_add_test(tc, test_batching_fills_one_batch_while_another_computes);
    suite_add_tcase(s, tc);
    tc = tcase_create("jobs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_jobs_record_moves_with_its_models_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
