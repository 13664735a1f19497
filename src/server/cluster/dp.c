/* dp.c - the registry's etd_dp over MPI (models.h "data-parallel replicas";
 * models/train_dp.c does the weighting) and the cluster's /metrics.
 *
 * The gradient sum is one MPI_Allreduce(MPI_SUM) of float32 over comm_dp.
 * Open MPI's algorithms for it (recursive doubling, ring, Rabenseifner) give
 * every rank the same bits: each element is reduced once, or by commutative
 * pairs whose float sums are equal (a + b == b + a exactly); the checksum
 * every --mpi-check-every steps verifies it rather than trusting it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/cluster/cluster_internal.h"

/* MPI counts are ints: long buffers go in pieces. */
#define CHUNK (1 << 28)

static bool dp_allreduce(void *ctx, float *buf, size_t n, etd_err *e)
{
    etd_cluster *c = ctx;
    if (!etd_agree_enter(c, e))
        return false;
    double t0 = etd_now();
    for (size_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, c->comm_dp);
        if (rc != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "MPI_Allreduce of the gradients", rc);
    }
    double dt = etd_now() - t0;
    pthread_mutex_lock(&c->stat_mu);
    c->allreduces++;
    c->allreduce_bytes += n * sizeof(float);
    c->allreduce_s += dt;
    pthread_mutex_unlock(&c->stat_mu);
    (void)e;
    return true;
}

/* Gradient buckets: MPI_Iallreduce each, progressed by MPI_Testall while
 * the backward runs (Open MPI moves a non-blocking collective only inside MPI
 * calls), MPI_Waitall at the end.  The gradient allreduce's wall time is
 * the time waited in iwait: the communication the backward did not hide. */
static bool dp_iwait(void *ctx, etd_err *e)
{
    etd_cluster *c = ctx;
    double t0 = etd_now();
    int rc = c->nireq ? MPI_Waitall(c->nireq, c->ireq, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "MPI_Iallreduce of the gradients", rc);
    c->nireq = 0;
    double dt = etd_now() - t0;
    pthread_mutex_lock(&c->stat_mu);
    c->allreduce_s += dt;
    pthread_mutex_unlock(&c->stat_mu);
    (void)e;
    return true;
}

static bool dp_istart(void *ctx, float *buf, size_t n, etd_err *e)
{
    etd_cluster *c = ctx;
    if (!etd_agree_enter(c, e))
        return false;
    for (size_t off = 0; off < n; off += CHUNK) {
        if (c->nireq == (int)(sizeof c->ireq / sizeof c->ireq[0]) && !dp_iwait(c, e))
            return false;
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, c->comm_dp,
                                &c->ireq[c->nireq]);
        if (rc != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "MPI_Iallreduce of the gradients", rc);
        c->nireq++;
    }
    pthread_mutex_lock(&c->stat_mu);
    c->allreduces++;
    c->allreduce_bytes += n * sizeof(float);
    pthread_mutex_unlock(&c->stat_mu);
    return true;
}

static void dp_iprogress(void *ctx)
{
    etd_cluster *c = ctx;
    int done;
    if (c->nireq && MPI_Testall(c->nireq, c->ireq, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "MPI_Iallreduce of the gradients", MPI_ERR_OTHER);
}

/* SyncBatchNorm's sums (a few per layer and step) and normalisers: counted
 * apart from the gradients' */
static bool dp_allreduce_f64(void *ctx, double *buf, size_t n, etd_err *e)
{
    etd_cluster *c = ctx;
    if (!etd_agree_enter(c, e))
        return false;
    double t0 = etd_now();
    for (size_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_DOUBLE, MPI_SUM, c->comm_dp);
        if (rc != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "MPI_Allreduce of the BatchNorm statistics", rc);
    }
    double dt = etd_now() - t0;
    pthread_mutex_lock(&c->stat_mu);
    c->small_reduces++;
    c->small_reduce_s += dt;
    pthread_mutex_unlock(&c->stat_mu);
    (void)e;
    return true;
}

static bool dp_bcast(void *ctx, int root, void *buf, size_t n, etd_err *e)
{
    etd_cluster *c = ctx;
    if (!etd_agree_enter(c, e))
        return false;
    double t0 = etd_now();
    for (size_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, c->comm_dp);
        if (rc != MPI_SUCCESS)
            etd_cluster_fatal(c, root, "MPI_Bcast of the generator and buffers", rc);
    }
    double dt = etd_now() - t0;
    pthread_mutex_lock(&c->stat_mu);
    c->bcasts++;
    c->bcast_s += dt;
    pthread_mutex_unlock(&c->stat_mu);
    (void)e;
    return true;
}

/* Every rank's checksum to every rank: they must all be equal. */
static void dp_verify(void *ctx, const char *model, int64_t step, uint64_t sum)
{
    etd_cluster *c = ctx;
    if (!etd_agree_enter(c, NULL))
        return;
    uint64_t all[1024];
    uint64_t *v = c->size <= 1024 ? all : NULL;
    if (!v)
        return;
    int rc = MPI_Allgather(&sum, 1, MPI_UINT64_T, v, 1, MPI_UINT64_T, c->comm_dp);
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "MPI_Allgather of the checksums", rc);
    bool agree = true;
    for (int r = 1; r < c->size; r++)
        agree = agree && v[r] == v[0];
    if (!agree) {
        char list[512];
        size_t off = 0;
        for (int r = 0; r < c->size && off < sizeof list - 40; r++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%d:%016" PRIx64,
                                    r ? " " : "", r, v[r]);
        fprintf(stderr, "easytorchd: rank %d: model %s: replicas differ after step %lld "
                "(checksums %s)\n", c->rank, model, (long long)step, list);
    }
    pthread_mutex_lock(&c->stat_mu);
    if (!agree)
        c->mismatches++;
    int i = 0;
    while (i < c->nsums && strcmp(c->sums[i].model, model) != 0)
        i++;
    if (i == c->nsums && c->nsums < ETD_SUM_RECS)
        c->nsums++;
    if (i < c->nsums) {
        snprintf(c->sums[i].model, sizeof c->sums[i].model, "%s", model);
        c->sums[i].step = step;
        c->sums[i].sum = sum;
        c->sums[i].agree = agree;
    }
    pthread_mutex_unlock(&c->stat_mu);
}

void etd_dp_setup(etd_cluster *c)
{
    c->dp = (etd_dp){.rank = c->rank, .size = c->size, .allreduce = dp_allreduce,
                     .allreduce_f64 = dp_allreduce_f64, .bcast = dp_bcast, .verify = dp_verify,
                     .check_every = c->o.check_every, .istart = dp_istart,
                     .iprogress = dp_iprogress, .iwait = dp_iwait,
                     .bucket_bytes = (size_t)(c->o.bucket_mb * 1048576.0), .ctx = c};
}

void etd_cluster_metrics(void *arg, etd_buf *out)
{
    etd_cluster *c = arg;
    pthread_mutex_lock(&c->stat_mu);
    etd_buf_printf(out,
        "# HELP easytorch_cluster_rank This process's MPI rank (easytorchd --mpi).\n"
        "# TYPE easytorch_cluster_rank gauge\neasytorch_cluster_rank %d\n"
        "# HELP easytorch_cluster_size Ranks in the job.\n"
        "# TYPE easytorch_cluster_size gauge\neasytorch_cluster_size %d\n"
        "# HELP easytorch_cluster_requests_applied_total Ordered requests applied on this rank.\n"
        "# TYPE easytorch_cluster_requests_applied_total counter\n"
        "easytorch_cluster_requests_applied_total %llu\n"
        "# HELP easytorch_cluster_requests_submitted_total Ordered requests received here.\n"
        "# TYPE easytorch_cluster_requests_submitted_total counter\n"
        "easytorch_cluster_requests_submitted_total %llu\n"
        "# HELP easytorch_cluster_job_steps_total Job steps granted in the order (jobs).\n"
        "# TYPE easytorch_cluster_job_steps_total counter\n"
        "easytorch_cluster_job_steps_total %llu\n"
        "# HELP easytorch_cluster_allreduce_total Gradient allreduces (one per minibatch).\n"
        "# TYPE easytorch_cluster_allreduce_total counter\neasytorch_cluster_allreduce_total %llu\n"
        "# HELP easytorch_cluster_allreduce_bytes_total Bytes allreduced (per rank).\n"
        "# TYPE easytorch_cluster_allreduce_bytes_total counter\n"
        "easytorch_cluster_allreduce_bytes_total %llu\n"
        "# HELP easytorch_cluster_allreduce_seconds_total Wall time in gradient allreduces.\n"
        "# TYPE easytorch_cluster_allreduce_seconds_total counter\n"
        "easytorch_cluster_allreduce_seconds_total %.6f\n"
        "# HELP easytorch_cluster_small_allreduce_total Small allreduces of doubles "
        "(SyncBatchNorm's statistics, normalisers).\n"
        "# TYPE easytorch_cluster_small_allreduce_total counter\n"
        "easytorch_cluster_small_allreduce_total %llu\n"
        "# HELP easytorch_cluster_small_allreduce_seconds_total Wall time in them.\n"
        "# TYPE easytorch_cluster_small_allreduce_seconds_total counter\n"
        "easytorch_cluster_small_allreduce_seconds_total %.6f\n"
        "# HELP easytorch_cluster_bcast_seconds_total Wall time broadcasting rank 0's "
        "generator and buffers.\n"
        "# TYPE easytorch_cluster_bcast_seconds_total counter\n"
        "easytorch_cluster_bcast_seconds_total %.6f\n"
        "# HELP easytorch_cluster_checksum_mismatches_total Checksums that differed between "
        "replicas.\n"
        "# TYPE easytorch_cluster_checksum_mismatches_total counter\n"
        "easytorch_cluster_checksum_mismatches_total %llu\n",
        c->rank, c->size, (unsigned long long)c->ops_applied,
        (unsigned long long)c->ops_submitted, (unsigned long long)c->job_ticks,
        (unsigned long long)c->allreduces,
        (unsigned long long)c->allreduce_bytes, c->allreduce_s,
        (unsigned long long)c->small_reduces, c->small_reduce_s, c->bcast_s,
        (unsigned long long)c->mismatches);
    if (c->nsums)
        etd_buf_puts(out, "# HELP easytorch_cluster_checksum_step The last step whose checksum "
                     "the replicas compared, with it (hex) and whether they agreed.\n"
                     "# TYPE easytorch_cluster_checksum_step gauge\n");
    for (int i = 0; i < c->nsums; i++)
        etd_buf_printf(out, "easytorch_cluster_checksum_step{model=\"%s\",checksum=\"%016" PRIx64
                       "\",agree=\"%s\"} %lld\n", c->sums[i].model, c->sums[i].sum,
                       c->sums[i].agree ? "true" : "false", (long long)c->sums[i].step);
    pthread_mutex_unlock(&c->stat_mu);
}
