/*
 * nn_util.c - pool scoping and buffer helpers shared by the nn layer.
 */
#include "nn/nn_internal.h"
#include "core/core_internal.h"   /* etc_pooled */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nn_scope_begin(void)
{
    et_pool_begin();
}

et_tensor *nn_scope_end(et_tensor *res)
{
    /* Keep res past the inner pool, then hand that reference to the
     * caller's pool (if one is open) like any core op result. */
    if (res)
        et_tensor_ref(res);
    et_pool_end();
    return etc_pooled(res);
}

/* Run `make` in an inner pool and keep one owned reference of its result. */
static et_tensor *keep(et_tensor *t)
{
    if (t)
        et_tensor_ref(t);
    et_pool_end();
    return t;
}

et_tensor *nn_keep_new(const float *data, const int64_t *shape, int ndim)
{
    et_pool_begin();
    return keep(et_tensor_new(data, shape, ndim));
}

et_tensor *nn_keep_ones(const int64_t *shape, int ndim)
{
    et_pool_begin();
    return keep(et_ones(shape, ndim));
}

et_tensor *nn_keep_new_int64(const int64_t *data, const int64_t *shape, int ndim)
{
    et_pool_begin();
    return keep(et_tensor_new_int64(data, shape, ndim));
}

et_tensor *nn_keep_clone(const et_tensor *t)
{
    et_pool_begin();
    return keep(et_clone(t));
}

et_tensor *nn_keep_detach(et_tensor *t)
{
    et_pool_begin();
    return keep(et_detach(t));
}

et_tensor *nn_keep_uniform(et_generator *g, const int64_t *shape, int ndim, double bound)
{
    et_pool_begin();
    return keep(et_uniform(g, shape, ndim, -bound, bound));
}

et_status nn_error_prefix(const char *fmt, ...)
{
    char msg[1024], prefix[256];
    et_status code = et_errcode();
    snprintf(msg, sizeof msg, "%s", et_errmsg());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return et_set_error(code != ET_OK ? code : ET_ERR_STATE, "%s%s", prefix, msg);
}

void nn_zero_grad_(et_tensor *g) { etc_zero_grad_(g); }

et_status nn_buf_acquire(nn_buf *b, et_tensor *t)
{
    b->t = t;
    b->tmp = NULL;
    b->p = NULL;
    if (et_tensor_dtype(t) != ET_FLOAT32)
        return et_set_error(ET_ERR_ARG, "expected a float32 tensor, got %s",
                            et_dtype_name(et_tensor_dtype(t)));
    if (et_is_contiguous(t)) {
        /* not et_data: a read must not drop a gradient's zero record; a
         * write is seen by nn_buf_release's version bump */
        b->p = t->data;
        return ET_OK;
    }
    int64_t n = et_numel(t);
    b->tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!b->tmp)
        return et_set_error(ET_ERR_NOMEM, "out of memory copying a %lld-element tensor",
                            (long long)n);
    et_copy_to(t, b->tmp);
    b->p = b->tmp;
    return ET_OK;
}

void nn_buf_release(nn_buf *b, bool write_back)
{
    if (b->tmp) {
        if (write_back)
            et_copy_from(b->t, b->tmp);   /* bumps the storage version */
        free(b->tmp);
    } else if (write_back && b->t) {
        /* written in place through the direct pointer: count it as an
         * in-place edit (as et_copy_from does), so a graph recorded before
         * an optimizer step cannot be back-propagated with the new values */
        b->t->storage->version++;
    }
    b->tmp = NULL;
    b->p = NULL;
}
