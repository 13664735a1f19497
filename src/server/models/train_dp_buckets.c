/* train_dp_buckets.c - the gradients summed in buckets while the backward
 * runs (DDP's gradient buckets; models.h etd_dp.bucket_bytes, --mpi-bucket-mb;
 * docs/distributed.md "Bucketing").  How the sums travel is the cluster's
 * business; nothing here knows MPI.
 *
 * The parameters, last first (the backward finishes them about in that
 * order), are grouped into buckets of about bucket_bytes (a larger
 * parameter is a bucket of its own): ranges of etd_dp_backward's buffer.
 * When the backward has finished a parameter's gradient (core's
 * et_backward_notify) it is copied, weighted, into its place; a bucket whose
 * parameters are all there starts summing (dp->istart).  Buckets start in
 * bucket order only -- the same on every replica, whatever its backward
 * does -- and a replica without rows, or whose backward failed, starts the
 * rest after it (zeros where it has nothing).  The rest of the buffer (the
 * has-grad flags, loss, normaliser, failures) is one allreduce afterwards,
 * then every bucket is waited for.  Each element is the same sum of the same
 * replicas' values as with the single allreduce: the same bits. */
#include <stdlib.h>

#include "server/models/model_internal.h"

bool etd_dp_buckets_init(etd_dp_buckets *b, etd_model *m, float *buf)
{
    const etd_dp *dp = m->reg->dp;
    int n = m->nparams;
    *b = (etd_dp_buckets){.m = m, .dp = dp, .buf = buf};
    if (!dp->bucket_bytes || !dp->istart || n == 0)
        return true; /* off */
    b->off = calloc((size_t)n + 1, sizeof *b->off);
    b->of = calloc((size_t)n, sizeof *b->of);
    b->left = calloc((size_t)n, sizeof *b->left);
    b->first = calloc((size_t)n, sizeof *b->first);
    b->done = calloc((size_t)n, sizeof *b->done);
    if (!b->off || !b->of || !b->left || !b->first || !b->done) {
        etd_dp_buckets_free(b);
        return false;
    }
    for (int i = 0; i < n; i++)
        b->off[i + 1] = b->off[i] + (size_t)et_numel(m->params[i]);
    b->total = b->off[n];
    /* from the last parameter down: bucket k is params [first[k], first[k-1]) */
    size_t cap = dp->bucket_bytes / sizeof(float), fill = 0;
    int k = -1;
    for (int i = n - 1; i >= 0; i--) {
        if (k < 0 || fill >= cap) {
            k++;
            fill = 0;
        }
        b->of[i] = k;
        b->left[k]++;
        b->first[k] = i;
        fill += (size_t)et_numel(m->params[i]);
    }
    b->nb = k + 1;
    b->on = true;
    return true;
}

void etd_dp_buckets_free(etd_dp_buckets *b)
{
    free(b->off);
    free(b->of);
    free(b->left);
    free(b->first);
    free(b->done);
    b->off = NULL;
    b->of = b->left = b->first = NULL;
    b->done = NULL;
    b->on = false;
}

/* Start the buckets that are complete, in order. */
static void start_ready(etd_dp_buckets *b)
{
    while (b->ok && b->next < b->nb && b->left[b->next] == 0) {
        int k = b->next++;
        int lo = b->first[k], hi = k == 0 ? b->m->nparams : b->first[k - 1];
        if (!b->dp->istart(b->dp->ctx, b->buf + b->off[lo], b->off[hi] - b->off[lo], &b->e))
            b->ok = false;
    }
}

static void mark(etd_dp_buckets *b, int i)
{
    if (b->done[i])
        return;
    b->done[i] = true;
    b->left[b->of[i]]--;
}

/* et_backward_notify's ready: leaf's gradient into its place (weighted). */
static void ready(et_tensor *leaf, void *arg)
{
    etd_dp_buckets *b = arg;
    etd_model *m = b->m;
    int i = m->nparams - 1; /* the last ones come first */
    while (i >= 0 && m->params[i] != leaf)
        i--;
    if (i < 0 || b->done[i])
        return;
    et_tensor *gc = et_contiguous(et_grad(leaf)); /* the caller's pool */
    const float *gd = gc ? et_data_const(gc) : NULL;
    if (!gd) {
        b->local_fail = true; /* left as zeros; the failure flag discards the sums */
    } else {
        float *dst = b->buf + b->off[i];
        size_t k = b->off[i + 1] - b->off[i];
        for (size_t j = 0; j < k; j++)
            dst[j] = (float)(b->w * gd[j]);
        b->buf[b->total + (size_t)i] = 1;
    }
    mark(b, i);
    start_ready(b);
    b->dp->iprogress(b->dp->ctx);
}

et_status etd_dp_buckets_backward(etd_dp_buckets *b, et_tensor *loss, double w)
{
    if (!b->on)
        return et_backward(loss, NULL);
    b->w = w;
    b->ok = true;
    return et_backward_notify(loss, NULL, ready, b);
}

bool etd_dp_buckets_finish(etd_dp_buckets *b, size_t nbuf, etd_err *e)
{
    const etd_dp *dp = b->dp;
    b->ok = true;
    for (int i = 0; i < b->m->nparams; i++)
        mark(b, i);
    start_ready(b);
    if (!b->ok) {
        *e = b->e;
        return false;
    }
    /* flags, loss, normaliser, failures; then every bucket */
    return dp->allreduce(dp->ctx, b->buf + b->total, nbuf - b->total, e) && dp->iwait(dp->ctx, e);
}
