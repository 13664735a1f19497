/* agree.c - every rank reports how it applied an ordered request (cluster.h;
 * docs/distributed.md "A rank failing on its own").
 *
 * Every rank applies the same request, but one may fail on its own before
 * the request reaches the training code (out of memory parsing the body, a
 * test fault): it would answer its error and go on, while the others wait in
 * the call's first collective for ever -- it is alive, so no heartbeat is
 * missed.  So each ordered request ends in one small allreduce over comm_dp,
 * of [kind, status] per rank, and a data-parallel call's first collective
 * (dp.c, through etd_agree_enter) is the same allreduce: a rank that reaches
 * the training code says ENTER there, a rank whose request ended without
 * reaching it says END (with its status) after etd_dispatch.  The two meet:
 *
 *   every rank ENTER      the call goes on; its own agreements
 *                         (models/train_dp.c etd_dp_agree) take it from here
 *   every rank END        the same outcome everywhere (each answers its own);
 *                         some applied it (status < 500) and some did not:
 *                         the replicas would differ -- every rank stops
 *   some ENTER, some END  the END ranks failed (status >= 500): the ENTER
 *                         ranks fail the call before it changed anything
 *                         ("another replica could not apply the request
 *                         (rank 1: 500)") and put the model back, as for any
 *                         failed agreement; an END rank that applied it: stop
 *
 * Every rank sees the same sums, so every rank decides alike: nothing hangs,
 * and a request either changed every replica or none, or the job stops with a
 * message naming the rank (exit 3; a restart resumes from rank 0's files).
 * Ticks of a job and the stop are not requests: not agreed here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/cluster/cluster_internal.h"

enum { KIND_ENTER = 1, KIND_END = 2 };

void etd_agree_begin(etd_cluster *c, const char *method, const char *url)
{
    c->ag = ETD_AG_PENDING;
    snprintf(c->ag_what, sizeof c->ag_what, "%s %s", method, url);
}

/* Rank r's part of the sums: [kind per rank..., status per rank...]. */
static int *exchange(etd_cluster *c, int kind, int status)
{
    int *v = calloc(2 * (size_t)c->size, sizeof *v);
    if (!v)
        etd_cluster_fatal(c, -1, "out of memory", 0);
    v[c->rank] = kind;
    v[c->size + c->rank] = status;
    double t0 = etd_now();
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2 * c->size, MPI_INT, MPI_SUM, c->comm_dp);
    if (rc != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "MPI_Allreduce of the request's outcome", rc);
    double dt = etd_now() - t0;
    pthread_mutex_lock(&c->stat_mu);
    c->small_reduces++;
    c->small_reduce_s += dt;
    pthread_mutex_unlock(&c->stat_mu);
    return v;
}

/* Some ranks applied the request and some did not: stop (every rank). */
_Noreturn static void diverged(etd_cluster *c, const int *v)
{
    char list[256] = "";
    size_t off = 0;
    for (int r = 0; r < c->size && off < sizeof list - 40; r++) {
        if (v[r] == KIND_END)
            off += (size_t)snprintf(list + off, sizeof list - off, "%srank %d: %d",
                                    r ? ", " : "", r, v[c->size + r]);
        else
            off += (size_t)snprintf(list + off, sizeof list - off, "%srank %d: training",
                                    r ? ", " : "", r);
    }
    fprintf(stderr, "easytorchd: rank %d: %s was applied on some ranks only (%s); the "
            "replicas would differ; stopping: restart the job, it resumes from rank 0's data "
            "dir\n", c->rank, c->ag_what, list);
    fflush(stderr);
    _exit(3);
}

bool etd_agree_enter(etd_cluster *c, etd_err *e)
{
    if (c->ag == ETD_AG_ENTERED || c->ag == ETD_AG_NONE)
        return true;
    if (c->ag == ETD_AG_ABORTED) { /* the call failed already: no more collectives */
        if (e)
            etd_fail(e, ETD_EINTERNAL, "another replica could not apply the request");
        return false;
    }
    int *v = exchange(c, KIND_ENTER, 0);
    int first = -1, status = 0;
    for (int r = 0; r < c->size; r++)
        if (v[r] == KIND_END) {
            if (v[c->size + r] < 500)
                diverged(c, v); /* it applied the request without the training code */
            if (first < 0) {
                first = r;
                status = v[c->size + r];
            }
        }
    free(v);
    if (first < 0) {
        c->ag = ETD_AG_ENTERED;
        return true;
    }
    c->ag = ETD_AG_ABORTED;
    if (e)
        etd_fail(e, ETD_EINTERNAL, "another replica could not apply the request (rank %d: %d)",
                 first, status);
    return false;
}

void etd_agree_end(etd_cluster *c, int status)
{
    int ag = c->ag;
    c->ag = ETD_AG_NONE;
    if (ag != ETD_AG_PENDING) /* met in the call's first collective */
        return;
    int *v = exchange(c, KIND_END, status);
    int applied = 0, entered = 0;
    for (int r = 0; r < c->size; r++) {
        entered += v[r] == KIND_ENTER;
        applied += v[r] == KIND_END && v[c->size + r] < 500;
    }
    /* the ENTER ranks failed the call before it changed anything: fine when
     * no END rank applied it either; all END: all applied or none */
    bool same = entered ? applied == 0 : applied == 0 || applied == c->size;
    if (!same)
        diverged(c, v);
    free(v);
}
