/* check_memory.c - 10,000 training steps of a small MLP built from core ops
 * (matmul, add, tanh, mse via sub/mul/mean, SGD under no-grad), one pool
 * per step.  Run it under -Db_sanitize=address,undefined: LeakSanitizer
 * must report nothing.  Heap use (mallinfo2) must be flat across steps. */
#include <malloc.h>

#include "check_helpers.h"

#define STEPS 10000

static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

START_TEST(test_mlp_training_memory_is_flat)
{
    et_generator *g = et_generator_new(5);
    /* fit y = sin(3x) on 32 points; setup tensors escape their pool by a ref */
    et_pool_begin();
    et_tensor *x = et_tensor_ref(et_reshape(et_linspace(-1, 1, 32), ET_SHAPE(32, 1)));
    et_tensor *y = et_tensor_ref(et_clone(x));
    for (int64_t i = 0; i < 32; i++)
        et_data(y)[i] = sinf(3 * et_data(x)[i]);
    et_tensor *params[4] = {
        et_tensor_ref(et_randn(g, ET_SHAPE(1, 16))),
        et_tensor_ref(et_zeros(ET_SHAPE(16))),
        et_tensor_ref(et_mul_scalar(et_randn(g, ET_SHAPE(16, 1)), 0.25f)),
        et_tensor_ref(et_zeros(ET_SHAPE(1))),
    };
    et_pool_end();
    for (int i = 0; i < 4; i++)
        et_set_requires_grad(params[i], true);
    float first = 0, last = 0;
    size_t heap_early = 0;
    for (int step = 0; step < STEPS; step++) {
        et_pool_begin();
        et_tensor *h = et_tanh(et_add(et_matmul(x, params[0]), params[1]));
        et_tensor *pred = et_add(et_matmul(h, params[2]), params[3]);
        et_tensor *d = et_sub(pred, y);
        et_tensor *loss = et_mean_all(et_mul(d, d));
        ck_assert_int_eq(et_backward(loss, NULL), ET_OK);
        if (step == 0)
            first = et_item(loss);
        last = et_item(loss);
        ET_NO_GRAD
        {
            for (int i = 0; i < 4; i++) {
                et_tensor *p = params[i];
                ck_assert_int_eq(et_copy_(p, et_sub(p, et_mul_scalar(et_grad(p), 0.1f))), ET_OK);
                ck_assert_int_eq(et_fill_(et_grad(p), 0), ET_OK);
            }
        }
        et_pool_end();
        if (step == 100)
            heap_early = heap_in_use();
    }
    size_t heap_late = heap_in_use();
    ck_assert_msg(heap_late <= heap_early, "heap grew from %zu to %zu bytes", heap_early,
                  heap_late);
    ck_assert_msg(last < 0.1f * first, "loss did not fall: %g -> %g", first, last);
    for (int i = 0; i < 4; i++)
        et_tensor_free(params[i]);
    et_tensor_free(x);
    et_tensor_free(y);
    et_generator_free(g);
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("mlp_training_steps");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_mlp_training_memory_is_flat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(memory_suite()); }
