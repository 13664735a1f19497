/* check_external.c - tensors over memory the library does not own
 * (et_tensor_from_external, src/core/tensor_alloc.c): no copy, views and
 * in-place writes through the caller's bytes, the release callback once when
 * the last reference goes (also from another thread, also through a pool),
 * nothing taken on a refused call.  Expected values are plain arithmetic on
 * the buffer (torch.from_numpy shares memory the same way). */
#include <pthread.h>

#include "check_helpers.h"

/* what a release callback saw */
typedef struct {
    int calls;
    pthread_t thread;
} released;

static void on_release(void *arg)
{
    released *r = arg;
    r->calls++;
    r->thread = pthread_self();
}

START_TEST(test_external_aliases_the_buffer)
{
    float buf[6] = {1, 2, 3, 4, 5, 6};
    released r = {0};
    et_tensor *t = et_tensor_from_external(buf, ET_SHAPE(2, 3), ET_FLOAT32, on_release, &r);
    ck_assert_ptr_nonnull(t);
    ck_assert(et_tensor_is_external(t));
    ck_assert_ptr_eq(et_data(t), buf); /* no copy */
    ASSERT_SHAPE(t, 2, 3);
    ASSERT_VALUES(t, 1, 2, 3, 4, 5, 6);
    buf[4] = 50; /* the caller's writes are the tensor's */
    ASSERT_VALUES(t, 1, 2, 3, 4, 50, 6);
    /* an op's result is ordinary storage: 2 * t */
    et_tensor *two = et_add(t, t);
    ASSERT_VALUES(two, 2, 4, 6, 8, 100, 12);
    ck_assert(!et_tensor_is_external(two));
    /* a view keeps the buffer referenced after the tensor itself is gone */
    et_tensor *v = et_transpose(t, 0, 1);
    ck_assert_ptr_nonnull(v);
    ASSERT_VALUES(v, 1, 4, 2, 50, 3, 6);
    et_tensor_free(t);
    et_tensor_free(two);
    ck_assert_int_eq(r.calls, 0);
    /* in-place writes go to the buffer */
    ck_assert_int_eq(et_fill_(v, 7.0f), ET_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(buf[i], 7.0f);
    et_tensor_free(v);
    ck_assert_int_eq(r.calls, 1);
    ck_assert(pthread_equal(r.thread, pthread_self()));
}
END_TEST

START_TEST(test_external_int64_and_empty)
{
    int64_t idx[3] = {2, 0, 1};
    released r = {0};
    et_tensor *i = et_tensor_from_external(idx, ET_SHAPE(3), ET_INT64, on_release, &r);
    ck_assert_ptr_nonnull(i);
    ck_assert_int_eq(et_tensor_dtype(i), ET_INT64);
    ck_assert_ptr_eq(et_data_int64(i), idx);
    et_tensor *w = TV(ET_SHAPE(3, 2), 10, 11, 20, 21, 30, 31);
    et_pool_begin(); /* a pooled result dies at the pool's end */
    /* torch.index_select(w, 0, tensor([2, 0, 1])) */
    ASSERT_VALUES(et_index_select(w, 0, i), 30, 31, 10, 11, 20, 21);
    et_pool_end();
    et_tensor_free(w);
    et_tensor_free(i);
    ck_assert_int_eq(r.calls, 1);
    /* an empty tensor may have no memory at all; release NULL is allowed */
    et_tensor *e = et_tensor_from_external(NULL, ET_SHAPE(0, 4), ET_FLOAT32, NULL, NULL);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(et_numel(e), 0);
    et_tensor_free(e);
}
END_TEST

START_TEST(test_external_in_a_pool_and_a_graph)
{
    float x[4] = {1, 2, 3, 4};
    released r = {0};
    et_pool_begin();
    et_tensor *t = et_tensor_from_external(x, ET_SHAPE(4), ET_FLOAT32, on_release, &r);
    et_tensor *w = TV(ET_SHAPE(4), 0.5, -1, 2, 0);
    et_set_requires_grad(w, true);
    et_tensor *loss = et_sum_all(et_mul(t, w)); /* d loss / d w = x */
    ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
    ASSERT_VALUES(et_grad(w), 1, 2, 3, 4);
    ASSERT_VALUES(loss, 0.5 - 2 + 6);
    ck_assert_int_eq(r.calls, 0); /* the graph holds x */
    et_pool_end();
    ck_assert_int_eq(r.calls, 1);
}
END_TEST

static void *free_there(void *t)
{
    et_tensor_free(t);
    return NULL;
}

START_TEST(test_external_released_on_the_last_thread)
{
    float *buf = malloc(1000 * sizeof(float));
    for (int i = 0; i < 1000; i++)
        buf[i] = (float)i;
    released r = {0};
    et_tensor *t = et_tensor_from_external(buf, ET_SHAPE(10, 100), ET_FLOAT32, on_release, &r);
    et_tensor *row = et_slice(t, 0, 3, 4, 1); /* a view, freed here */
    ASSERT_SHAPE(row, 1, 100);
    ck_assert_float_eq(et_data(row)[5], 305.0f);
    et_tensor_free(row);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, free_there, t), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.calls, 1);
    ck_assert(pthread_equal(r.thread, th));
    free(buf);
}
END_TEST

START_TEST(test_external_refusals_take_nothing)
{
    _Alignas(8) unsigned char bytes[64] = {0};
    released r = {0};
    /* data not aligned to the element size: the caller copies instead */
    ASSERT_ERROR(et_tensor_from_external(bytes + 2, ET_SHAPE(4), ET_FLOAT32, on_release, &r),
                 ET_ERR_ARG, "not aligned");
    ASSERT_ERROR(et_tensor_from_external(bytes + 4, ET_SHAPE(4), ET_INT64, on_release, &r),
                 ET_ERR_ARG, "not aligned");
    ASSERT_ERROR(et_tensor_from_external(NULL, ET_SHAPE(2), ET_FLOAT32, on_release, &r), ET_ERR_ARG,
                 "data is NULL");
    ASSERT_ERROR(et_tensor_from_external(bytes, ET_SHAPE(-1), ET_FLOAT32, on_release, &r),
                 ET_ERR_ARG, "negative size");
    ASSERT_ERROR(et_tensor_from_external(bytes, ET_SHAPE(2), (et_dtype)7, on_release, &r),
                 ET_ERR_ARG, "unknown dtype");
    ck_assert_int_eq(r.calls, 0);
    /* 4-aligned is enough for float32 */
    et_tensor *t = et_tensor_from_external(bytes + 4, ET_SHAPE(4), ET_FLOAT32, on_release, &r);
    ck_assert_ptr_nonnull(t);
    et_tensor_free(t);
    ck_assert_int_eq(r.calls, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("external");
    TCase *tc = tcase_create("external");
    tcase_add_test(tc, test_external_aliases_the_buffer);
    tcase_add_test(tc, test_external_int64_and_empty);
    tcase_add_test(tc, test_external_in_a_pool_and_a_graph);
    tcase_add_test(tc, test_external_released_on_the_last_thread);
    tcase_add_test(tc, test_external_refusals_take_nothing);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
