/*
 * spatial.c - layers that reshape or mask whole feature maps: Unflatten
 * (the inverse of Flatten) and Dropout2d (drops whole channels).
 */
#include "nn/module_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Unflatten */

typedef struct {
    int dim, n;
    int64_t sizes[ET_MAX_DIMS];
} unflatten_cfg;

static et_tensor *unflatten_forward(et_module *m, et_tensor *x)
{
    unflatten_cfg *c = m->impl;
    int nd = et_ndim(x);
    char sx[96];
    int d = c->dim < 0 ? c->dim + nd : c->dim;
    if (d < 0 || d >= nd || nd - 1 + c->n > ET_MAX_DIMS) {
        et_set_error(d < 0 || d >= nd ? ET_ERR_INDEX : ET_ERR_SHAPE, "Unflatten: dim %d is out of "
                     "range for input of shape %s", c->dim, NN_SHAPE_STR(x, sx));
        return NULL;
    }
    /* sizes: one -1 is inferred; their product must be the size of dim */
    int64_t sh[ET_MAX_DIMS], known = 1, full = et_size(x, d);
    int infer = -1;
    for (int i = 0; i < c->n; i++) {
        if (c->sizes[i] == -1)
            infer = i;
        else
            known *= c->sizes[i];
    }
    int64_t inferred = infer >= 0 && known > 0 ? full / known : 0;
    if ((infer >= 0 && (known == 0 || inferred * known != full)) || (infer < 0 && known != full)) {
        char ss[96];
        et_shape_str(c->sizes, c->n, ss, sizeof ss);
        et_set_error(ET_ERR_SHAPE, "Unflatten: provided sizes %s don't multiply up to the size of "
                     "dim %d (%lld) in the input of shape %s", ss, d, (long long)full,
                     NN_SHAPE_STR(x, sx));
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < d; i++)
        sh[k++] = et_size(x, i);
    for (int i = 0; i < c->n; i++)
        sh[k++] = c->sizes[i] == -1 ? inferred : c->sizes[i];
    for (int i = d + 1; i < nd; i++)
        sh[k++] = et_size(x, i);
    return et_reshape(x, sh, k);
}

et_module *et_unflatten_new(int dim, const int64_t *sizes, int nsizes)
{
    if (nsizes < 1 || nsizes > ET_MAX_DIMS || !sizes) {
        et_set_error(ET_ERR_ARG, "Unflatten: unflattened_size needs 1 to %d entries (got %d)",
                     ET_MAX_DIMS, nsizes);
        return NULL;
    }
    int neg = 0;
    for (int i = 0; i < nsizes; i++) {
        if (sizes[i] < -1) {
            et_set_error(ET_ERR_ARG, "Unflatten: size %lld is invalid (>= 0, or one -1)",
                         (long long)sizes[i]);
            return NULL;
        }
        neg += sizes[i] == -1;
    }
    if (neg > 1) {
        et_set_error(ET_ERR_ARG, "Unflatten: only one size can be inferred (-1)");
        return NULL;
    }
    unflatten_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc("Unflatten", unflatten_forward) : NULL;
    if (!m) {
        free(c);
        et_set_error(ET_ERR_NOMEM, "Unflatten: out of memory");
        return NULL;
    }
    c->dim = dim;
    c->n = nsizes;
    memcpy(c->sizes, sizes, sizeof(int64_t) * (size_t)nsizes);
    nn_module_set_impl(m, c, NULL);
    return m;
}

/* --------------------------------------------------------------- Dropout2d */

typedef struct {
    float p;
    et_generator *g;            /* borrowed */
} dropout2d_cfg;

/* torch's feature dropout: one Bernoulli(1 - p) draw per channel, scaled by
 * 1 / (1 - p), broadcast over the feature map.  For a 3-d input torch 1.13
 * adds a batch dim, so its channels are dim 0; otherwise dims 0 and 1. */
static et_tensor *dropout2d_forward(et_module *m, et_tensor *x)
{
    dropout2d_cfg *c = m->impl;
    int nd = et_ndim(x);
    if (!m->training || c->p == 0.0f)
        return x;
    if (nd < 2) {
        char sx[96];
        et_set_error(ET_ERR_SHAPE, "Dropout2d: expected an input with at least 2 dims (3D or 4D), "
                     "but got input of shape %s", NN_SHAPE_STR(x, sx));
        return NULL;
    }
    if (c->p >= 1.0f)
        return et_mul_scalar(x, 0.0f);
    int md = nd == 3 ? 1 : 2;   /* leading dims that carry the mask */
    int64_t msh[ET_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        msh[i] = i < md ? et_size(x, i) : 1;
    /* the channel mask is F.dropout of ones: the same draws as torch's
     * bernoulli_(1 - p) / (1 - p), drawn in one locked pass (not a generator
     * call, and for the default generator a lock, per channel) */
    nn_scope_begin();
    et_tensor *mt = et_dropout(et_ones(msh, nd), c->p, true, c->g);
    return nn_scope_end(mt ? et_mul(x, mt) : NULL);
}

et_module *et_dropout2d_new(float p, et_generator *g)
{
    if (!(p >= 0.0f && p <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "Dropout2d: dropout probability has to be between 0 and 1, but "
                     "got %g", (double)p);
        return NULL;
    }
    dropout2d_cfg *c = calloc(1, sizeof *c);
    et_module *m = c ? nn_module_alloc("Dropout2d", dropout2d_forward) : NULL;
    if (!m) {
        free(c);
        et_set_error(ET_ERR_NOMEM, "Dropout2d: out of memory");
        return NULL;
    }
    c->p = p;
    c->g = g ? g : et_default_generator();
    nn_module_set_impl(m, c, NULL);
    return m;
}
