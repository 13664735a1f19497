/* check_events.c - the event hub of the models layer (models/events.c)
 * without HTTP: readers from now or after a Last-Event-ID, a reset when
 * events were lost, a slow reader dropped, type filters, per-model rings
 * ending with the model's deletion, wake-ups, coalesced step events, and
 * that publishing never waits for a reader. */
#include "check_server.h"
#include <math.h>
#include <string.h>

#include "server/endpoints/handlers.h"
#include "server/models/model_internal.h"

static char dir[256];
static etd_registry *reg;
static etd_model *ma, *mb;

static etd_registry_opts opts(double interval)
{
    return (etd_registry_opts){.data_dir = dir, .save_interval = 3600, .max_models = 8,
                               .max_params = 100000, .max_steps = 100000, .max_history = 1000,
                               .event_buffer = 16, .event_interval = interval};
}

static etd_model *define(const char *name)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"name\":\"%s\",\"layers\":[{\"type\":\"Linear\",\"in_features\":2,"
             "\"out_features\":1}],\"loss\":\"MSELoss\",\"optimizer\":{\"type\":\"SGD\","
             "\"lr\":0.1},\"seed\":1}", name);
    cJSON *j = cJSON_Parse(spec);
    etd_model *m;
    etd_err e;
    ck_assert_msg(etd_registry_define(reg, j, &m, &e) == ETD_OK, "%s", e.msg);
    cJSON_Delete(j);
    return m;
}

static void setup_with(double interval)
{
    snprintf(dir, sizeof dir, "/tmp/check_events_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    etd_registry_opts o = opts(interval);
    etd_err e;
    reg = etd_registry_new(&o, &e);
    ck_assert_msg(reg != NULL, "%s", e.msg);
    ma = define("a");
    mb = define("b");
}

static void setup(void) { setup_with(0); }
static void setup_coalesced(void) { setup_with(3600); }

static void teardown(void)
{
    etd_model_unref(ma);
    etd_model_unref(mb);
    etd_registry_free(reg);
    remove_scratch_dir(dir);
}

static int wakes;
static void count_wake(void *arg) { (*(int *)arg)++; }

static etd_event_sub *sub(etd_model *m, unsigned types, bool resume, uint64_t last)
{
    etd_sub_opts o = {types, resume, last, count_wake, &wakes, NULL};
    etd_event_sub *s;
    etd_err e;
    ck_assert_msg(etd_events_subscribe(reg, m, &o, &s, &e) == ETD_OK, "%s", e.msg);
    return s;
}

/* Read everything available into a fresh string (caller frees); *r: the last result. */
static char *drain(etd_event_sub *s, etd_ev_read *r)
{
    etd_buf b;
    etd_buf_init(&b);
    do
        *r = etd_events_read(s, etd_sse_event, &b, 1 << 16); /* framed as the endpoint does */
    while (*r == ETD_EV_MORE);
    etd_buf_putc(&b, '\0');
    size_t len;
    return etd_buf_take(&b, &len);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static uint64_t first_id(const char *text)
{
    const char *p = strstr(text, "id: ");
    return p ? strtoull(p + 4, NULL, 10) : 0;
}

static void batch(etd_model *m, int i)
{
    char d[32];
    snprintf(d, sizeof d, "\"i\":%d", i);
    etd_events_publish(m, ETD_EV_BATCH, d);
}

START_TEST(test_readers_from_now_and_wakes)
{
    etd_event_sub *s = sub(NULL, 0, false, 0);
    etd_ev_read r;
    char *t = drain(s, &r);
    ck_assert_int_eq(r, ETD_EV_WAIT);
    ck_assert_str_eq(t, ""); /* the "created" events came before it */
    free(t);
    wakes = 0;
    batch(ma, 1);
    batch(mb, 2); /* already woken: no second wake before it reads */
    ck_assert_int_eq(wakes, 1);
    t = drain(s, &r);
    ck_assert_int_eq(r, ETD_EV_WAIT);
    ck_assert_int_eq(count(t, "event: batch\ndata: {\"model\":"), 2);
    ck_assert_ptr_nonnull(strstr(t, "data: {\"model\":\"a\",\"i\":1}\n\n"));
    ck_assert_ptr_nonnull(strstr(t, "data: {\"model\":\"b\",\"i\":2}\n\n"));
    /* ids grow by one, and from the clock: larger than any earlier run's */
    uint64_t id1 = first_id(t), id2 = first_id(strstr(t, "\n\n") + 2);
    ck_assert_uint_eq(id2, id1 + 1);
    ck_assert_uint_gt(id1, 1700000000000000ull);
    ck_assert_uint_eq(etd_events_last_id(reg), id2);
    free(t);
    batch(ma, 3);
    ck_assert_int_eq(wakes, 2);
    etd_events_unsubscribe(s);
    batch(ma, 4); /* nobody to wake */
    ck_assert_int_eq(wakes, 2);
}
END_TEST

START_TEST(test_resume_after_an_id)
{
    batch(ma, 1);
    uint64_t after = etd_events_last_id(reg);
    batch(ma, 2);
    batch(mb, 3);
    etd_event_sub *s = sub(NULL, 0, true, after);
    etd_ev_read r;
    char *t = drain(s, &r);
    ck_assert_int_eq(count(t, "event: "), 2);
    ck_assert_ptr_nonnull(strstr(t, "\"i\":2"));
    ck_assert_ptr_nonnull(strstr(t, "\"i\":3"));
    ck_assert_ptr_null(strstr(t, "reset"));
    free(t);
    etd_events_unsubscribe(s);
    /* a model's stream resumes over that model's events only */
    s = sub(ma, 0, true, after);
    t = drain(s, &r);
    ck_assert_int_eq(count(t, "event: "), 1);
    ck_assert_ptr_nonnull(strstr(t, "\"i\":2"));
    free(t);
    etd_events_unsubscribe(s);
}
END_TEST

START_TEST(test_lost_events_are_reported_with_a_reset)
{
    batch(ma, 0);
    uint64_t old = etd_events_last_id(reg);
    for (int i = 1; i <= 40; i++) /* the ring for all models holds 16 */
        batch(mb, i);
    etd_event_sub *s = sub(NULL, 0, true, old);
    etd_ev_read r;
    char *t = drain(s, &r);
    ck_assert_msg(strncmp(t, "event: reset\ndata: {\"last_event_id\":", 36) == 0, "%s", t);
    ck_assert_int_eq(count(t, "event: batch"), 16); /* then what is kept */
    ck_assert_ptr_nonnull(strstr(t, "\"i\":40}"));
    free(t);
    etd_events_unsubscribe(s);
    /* model a's ring kept its only event: no reset there */
    s = sub(ma, 0, true, old - 1);
    t = drain(s, &r);
    ck_assert_ptr_null(strstr(t, "reset"));
    ck_assert_int_eq(count(t, "event: batch"), 1);
    free(t);
    etd_events_unsubscribe(s);
    /* an id from another run (older than the ring was ever complete, or newer
     * than any): a reset, then from the oldest kept / from now */
    s = sub(ma, 0, true, 12345);
    t = drain(s, &r);
    ck_assert_ptr_nonnull(strstr(t, "event: reset"));
    free(t);
    etd_events_unsubscribe(s);
    s = sub(NULL, 0, true, etd_events_last_id(reg) + 1000);
    t = drain(s, &r);
    ck_assert_ptr_nonnull(strstr(t, "event: reset"));
    ck_assert_int_eq(count(t, "event: batch"), 0);
    free(t);
    etd_events_unsubscribe(s);
}
END_TEST

START_TEST(test_a_slow_reader_is_dropped_publishers_never_wait)
{
    etd_event_sub *slow = sub(NULL, 0, false, 0);
    etd_event_sub *fast = sub(NULL, 0, false, 0);
    etd_ev_read r;
    int seen = 0;
    for (int i = 0; i < 200; i++) {
        batch(ma, i); /* the slow reader never reads: the producer goes on */
        char *t = drain(fast, &r);
        seen += count(t, "event: batch");
        free(t);
    }
    ck_assert_int_eq(seen, 200);
    char *t = drain(slow, &r);
    ck_assert_int_eq(r, ETD_EV_END);
    ck_assert_msg(strstr(t, "event: dropped\ndata: {\"reason\":\"this reader fell"), "%s", t);
    ck_assert_int_eq(count(t, "event: batch"), 0);
    free(t);
    etd_events_unsubscribe(slow);
    etd_events_unsubscribe(fast);
}
END_TEST

START_TEST(test_type_filters)
{
    etd_event_sub *s = sub(NULL, 1u << ETD_EV_JOB | 1u << ETD_EV_NONFINITE, false, 0);
    etd_ev_read r;
    free(drain(s, &r)); /* wakes come after a read that found nothing */
    wakes = 0;
    batch(ma, 1);
    ck_assert_int_eq(wakes, 0); /* not a type it reads: not woken */
    etd_events_publish(ma, ETD_EV_JOB, "\"id\":1");
    ck_assert_int_eq(wakes, 1);
    char *t = drain(s, &r);
    ck_assert_int_eq(count(t, "event: "), 1);
    ck_assert_ptr_nonnull(strstr(t, "event: job\ndata: {\"model\":\"a\",\"id\":1}"));
    free(t);
    etd_events_unsubscribe(s);
}
END_TEST

START_TEST(test_a_model_stream_ends_with_its_deletion)
{
    etd_event_sub *s = sub(ma, 0, false, 0);
    etd_event_sub *all = sub(NULL, 0, false, 0);
    batch(mb, 1); /* another model's */
    batch(ma, 2);
    etd_ev_read r;
    char *t = drain(s, &r);
    ck_assert_int_eq(r, ETD_EV_WAIT);
    ck_assert_int_eq(count(t, "event: "), 1);
    free(t);
    wakes = 0;
    etd_err e;
    ck_assert(etd_registry_delete(reg, "a", &e) == ETD_OK);
    ck_assert_int_ge(wakes, 1);
    t = drain(s, &r);
    ck_assert_int_eq(r, ETD_EV_END);
    ck_assert_ptr_nonnull(strstr(t, "event: deleted\ndata: {\"model\":\"a\"}"));
    free(t);
    t = drain(all, &r); /* the stream of all models goes on */
    ck_assert_int_eq(r, ETD_EV_WAIT);
    ck_assert_ptr_nonnull(strstr(t, "event: deleted"));
    free(t);
    etd_events_unsubscribe(s); /* still holds the deleted model: freed now */
    etd_events_unsubscribe(all);
    /* a new model of the same name has a fresh stream */
    etd_model *again = define("a");
    s = sub(again, 0, false, 0);
    batch(again, 3);
    t = drain(s, &r);
    ck_assert_int_eq(count(t, "event: batch"), 1);
    free(t);
    etd_events_unsubscribe(s);
    etd_model_unref(again);
}
END_TEST

START_TEST(test_steps_are_coalesced)
{
    etd_event_sub *s = sub(ma, 0, false, 0);
    etd_ev_read r;
    etd_events_step(ma, 1, 0.5f, 0.1, 1764633600.25, 0); /* after a quiet spell: at once */
    char *t = drain(s, &r);
    ck_assert_msg(strstr(t, "event: step\ndata: {\"model\":\"a\",\"step\":1,\"loss\":0.5,"
                            "\"lr\":0.1,\"time\":1764633600.25,\"steps\":[[1,0.5]],"
                            "\"times\":[1764633600.25]}"), "%s", t);
    free(t);
    for (int i = 2; i <= 5; i++) /* the times as given (NaN: not known, null) */
        etd_events_step(ma, i, 1.0f / (float)i, 0.1, i == 4 ? NAN : 1764633600.0 + i, 7);
    t = drain(s, &r);
    ck_assert_str_eq(t, ""); /* buffered: the interval (an hour here) has not passed */
    free(t);
    etd_events_flush(ma);
    t = drain(s, &r);
    ck_assert_msg(strstr(t, "\"step\":5,\"loss\":0.2,\"lr\":0.1,\"time\":1764633605.0,"
                            "\"job\":7,\"steps\":[[2,0.5],[3,0.33333334],[4,0.25],[5,0.2]],"
                            "\"times\":[1764633602.0,1764633603.0,null,1764633605.0]}"),
                  "%s", t);
    ck_assert_int_eq(count(t, "event: step"), 1);
    free(t);
    etd_events_unsubscribe(s);
}
END_TEST

START_TEST(test_every_step_is_an_event_without_an_interval)
{
    etd_event_sub *s = sub(ma, 1u << ETD_EV_STEP, false, 0);
    etd_ev_read r;
    for (int i = 1; i <= 5; i++)
        etd_events_step(ma, i, 1.0f, 0.01, 1764633600.0 + i, 0);
    char *t = drain(s, &r);
    ck_assert_int_eq(count(t, "event: step"), 5);
    free(t);
    etd_events_unsubscribe(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("hub");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_readers_from_now_and_wakes);
    tcase_add_test(tc, test_resume_after_an_id);
    tcase_add_test(tc, test_lost_events_are_reported_with_a_reset);
    tcase_add_test(tc, test_a_slow_reader_is_dropped_publishers_never_wait);
    tcase_add_test(tc, test_type_filters);
    tcase_add_test(tc, test_a_model_stream_ends_with_its_deletion);
    tcase_add_test(tc, test_every_step_is_an_event_without_an_interval);
    suite_add_tcase(s, tc);
    tc = tcase_create("coalesced");
    tcase_add_checked_fixture(tc, setup_coalesced, teardown);
    tcase_add_test(tc, test_steps_are_coalesced);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
