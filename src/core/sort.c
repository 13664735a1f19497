/* sort.c - sort, argsort and topk along a dim with int64 indices, and
 * their backward (the gradient goes back to the positions the indices name).
 *
 * Sorting is always stable (torch's stable=True; an allowed order for
 * stable=False too) and NaN compares as the largest value, as torch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

typedef struct {
    float v;
    int64_t i;
} pair;

/* NaN is the largest value; ties keep their original order (stability). */
static int cmp_asc(const void *pa, const void *pb)
{
    const pair *a = pa, *b = pb;
    bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb)
        return na ? 1 : -1;
    if (!na && a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

static int cmp_desc(const void *pa, const void *pb)
{
    const pair *a = pa, *b = pb;
    bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb)
        return na ? -1 : 1;
    if (!na && a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

/* Shared by sort and topk: the first `k` of each sorted row along dim.
 * values and/or indices may be NULL when not wanted. */
static bool sort_rows(et_tensor *a, int d, int64_t k, bool descending, const char *name,
                      et_tensor **values, et_tensor **indices)
{
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    if (a->ndim)
        shape[d] = k;
    else
        k = 1;   /* a 0-d input is its own one-element result (torch: even for k 0) */
    et_tensor *x = etc_contig(a);
    et_tensor *v = x && values ? etc_alloc(shape, a->ndim) : NULL;
    et_tensor *ix = x ? etc_alloc_dtype(shape, a->ndim, ET_INT64) : NULL;
    int64_t outer = 1, inner = 1, D = a->ndim ? a->shape[d] : 1;
    for (int j = 0; j < d; j++)
        outer *= a->shape[j];
    for (int j = d + 1; j < a->ndim; j++)
        inner *= a->shape[j];
    pair *row = x ? malloc((size_t)(D > 0 ? D : 1) * sizeof *row) : NULL;
    if (!x || (values && !v) || !ix || !row) {
        if (x && (!values || v) && ix && !row)
            et_set_error(ET_ERR_NOMEM, "%s: out of memory for a row of %lld", name, (long long)D);
        etc_release(x);
        etc_release(v);
        etc_release(ix);
        free(row);
        return false;
    }
    int64_t *io = etc_idata(ix);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *p = x->data + o * D * inner + i;
            for (int64_t j = 0; j < D; j++)
                row[j] = (pair){p[j * inner], j};
            qsort(row, (size_t)D, sizeof *row, descending ? cmp_desc : cmp_asc);
            for (int64_t j = 0; j < k; j++) {
                int64_t at = (o * k + j) * inner + i;
                if (v)
                    v->data[at] = row[j].v;
                io[at] = row[j].i;
            }
        }
    free(row);
    etc_release(x);
    if (values)
        *values = v;
    *indices = ix;
    return true;
}

/* Values result recorded as `op`; hands out the indices if asked. */
static et_tensor *with_indices(et_tensor *a, et_tensor *v, et_tensor *ix, int d, int op,
                               et_tensor **indices)
{
    v->aux.i[0] = d;
    if (!etc_record(v, op, &a, 1)) {
        etc_release(v);
        etc_release(ix);
        return NULL;
    }
    if (v->requires_grad)
        v->saved = etc_ref(ix);
    if (indices)
        *indices = etc_pooled(ix);
    else
        etc_release(ix);
    return etc_pooled(v);
}

et_tensor *et_sort(et_tensor *a, int dim, bool descending, et_tensor **indices)
{
    if (indices)
        *indices = NULL;
    if (!etc_null_check(a, "sort"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "sort");
    if (d < 0)
        return NULL;
    et_tensor *v, *ix;
    if (!sort_rows(a, d, a->ndim ? a->shape[d] : 1, descending, "sort", &v, &ix))
        return NULL;
    return with_indices(a, v, ix, d, ETC_OP_SORT, indices);
}

et_tensor *et_argsort(et_tensor *a, int dim, bool descending)
{
    if (!etc_null_check(a, "argsort"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "argsort");
    if (d < 0)
        return NULL;
    et_tensor *ix;
    if (!sort_rows(a, d, a->ndim ? a->shape[d] : 1, descending, "argsort", NULL, &ix))
        return NULL;
    return etc_pooled(ix);
}

et_tensor *et_topk(et_tensor *a, int64_t k, int dim, bool largest, bool sorted,
                   et_tensor **indices)
{
    (void)sorted;   /* the k results always come sorted: an allowed order for sorted=False */
    if (indices)
        *indices = NULL;
    if (!etc_null_check(a, "topk"))
        return NULL;
    int d = etc_wrap_dim(dim, a->ndim, "topk");
    if (d < 0)
        return NULL;
    int64_t D = a->ndim ? a->shape[d] : 1;
    if (k < 0 || k > D) {
        et_set_error(ET_ERR_INDEX, "topk: k (%lld) is out of range for dim %d of size %lld",
                     (long long)k, d, (long long)D);
        return NULL;
    }
    et_tensor *v, *ix;
    if (!sort_rows(a, d, k, largest, "topk", &v, &ix))
        return NULL;
    return with_indices(a, v, ix, d, ETC_OP_TOPK, indices);
}

/* zeros of the input's shape with g added at the positions the indices name */
ETC_BW(sort)
{
    et_tensor *a = out->in[0];
    int d = out->aux.i[0];
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(a, g, &gz, &gc))
        return false;
    int64_t outer = 1, inner = 1, D = a->ndim ? a->shape[d] : 1;
    int64_t k = out->ndim ? out->shape[d] : 1;
    for (int j = 0; j < d; j++)
        outer *= a->shape[j];
    for (int j = d + 1; j < a->ndim; j++)
        inner *= a->shape[j];
    const int64_t *ix = etc_idata(out->saved);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < k; j++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (o * k + j) * inner + i;
                gz->data[(o * D + ix[at]) * inner + i] += gc->data[at];
            }
    etc_release(gc);
    gin[0] = gz;
    return true;
}
