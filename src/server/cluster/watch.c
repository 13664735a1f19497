/* watch.c - a lost rank stops the others (cluster.h; docs/distributed.md).
 *
 * MPI gives no bound on how long a collective waits for a peer that died
 * (over shared memory nothing fails at all: the survivors spin).  So every
 * rank sends every other a heartbeat every timeout/10 seconds on a
 * communicator of its own, from this thread (MPI_THREAD_MULTIPLE: it runs
 * while the apply thread sits in a collective).  A rank not heard of for
 * --mpi-timeout seconds is lost: this rank says which and exits 3, so the
 * job ends with a message naming the lost rank instead of hanging.  A rank
 * that stops cleanly says goodbye first and is not waited for.  A failed MPI
 * call anywhere ends the same way (etd_cluster_fatal). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/cluster/cluster_internal.h"

double etd_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static pthread_mutex_t fatal_mu = PTHREAD_MUTEX_INITIALIZER;

_Noreturn void etd_cluster_fatal(etd_cluster *c, int lost, const char *what, int mpi_err)
{
    pthread_mutex_lock(&fatal_mu); /* one message, one exit */
    double now = etd_now();
    if (lost < 0 && c->last_seen) { /* the call cannot tell: the rank silent longest */
        double worst = 0;
        for (int r = 0; r < c->size; r++)
            if (r != c->rank && !c->gone[r] && now - c->last_seen[r] > worst) {
                worst = now - c->last_seen[r];
                lost = r;
            }
    }
    char err[MPI_MAX_ERROR_STRING + 4] = "";
    if (mpi_err) {
        int n = 0;
        err[0] = ':';
        err[1] = ' ';
        MPI_Error_string(mpi_err, err + 2, &n);
    }
    if (lost >= 0)
        fprintf(stderr, "easytorchd: rank %d: lost rank %d (%s%s; last heard of %.1f s ago); "
                "stopping: restart the job, it resumes from rank 0's data dir\n", c->rank, lost,
                what, err, c->last_seen ? now - c->last_seen[lost] : 0.0);
    else
        fprintf(stderr, "easytorchd: rank %d: %s%s; stopping\n", c->rank, what, err);
    fflush(stderr);
    _exit(3);
}

static void *watch_main(void *arg)
{
    etd_cluster *c = arg;
    double period = c->o.timeout / 10;
    if (period > 0.5)
        period = 0.5;
    if (period < 0.01)
        period = 0.01;
    MPI_Request *req = malloc((size_t)c->size * sizeof *req);
    char beat = 1, in = 0;
    for (int r = 0; r < c->size; r++)
        req[r] = MPI_REQUEST_NULL;
    while (!atomic_load(&c->watch_stop)) {
        double now = etd_now();
        for (int r = 0; r < c->size; r++) {
            if (r == c->rank || c->gone[r])
                continue;
            int done = 1, rc = MPI_SUCCESS;
            if (req[r] != MPI_REQUEST_NULL)
                rc = MPI_Test(&req[r], &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                etd_cluster_fatal(c, r, "heartbeat send", rc);
            /* one heartbeat in flight per peer: a peer that stopped reading
             * does not pile them up */
            if (done && (rc = MPI_Isend(&beat, 1, MPI_BYTE, r, TAG_HB, c->comm_hb, &req[r])) !=
                            MPI_SUCCESS)
                etd_cluster_fatal(c, r, "heartbeat send", rc);
        }
        for (;;) {
            int flag = 0;
            MPI_Status st;
            int rc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->comm_hb, &flag, &st);
            if (rc != MPI_SUCCESS)
                etd_cluster_fatal(c, -1, "heartbeat receive", rc);
            if (!flag)
                break;
            rc = MPI_Recv(&in, 1, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, c->comm_hb,
                          MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                etd_cluster_fatal(c, st.MPI_SOURCE, "heartbeat receive", rc);
            c->last_seen[st.MPI_SOURCE] = now;
            if (st.MPI_TAG == TAG_BYE && !c->gone[st.MPI_SOURCE]) {
                /* the job cannot go on without it: stop as on SIGTERM */
                c->gone[st.MPI_SOURCE] = true;
                fprintf(stderr, "easytorchd: rank %d: rank %d stopped; stopping too\n", c->rank,
                        st.MPI_SOURCE);
                /* to the main thread, which takes it in sigwait (or, once stopping,
                 * keeps it pending): MPI's own threads may not block SIGTERM */
                pthread_kill(c->main_thread, SIGTERM);
            }
        }
        for (int r = 0; r < c->size; r++)
            if (r != c->rank && !c->gone[r] && now - c->last_seen[r] > c->o.timeout) {
                char what[96];
                snprintf(what, sizeof what, "no heartbeat for %.1f s", now - c->last_seen[r]);
                etd_cluster_fatal(c, r, what, 0);
            }
        struct timespec ts = {(time_t)period, (long)((period - (double)(time_t)period) * 1e9)};
        nanosleep(&ts, NULL);
    }
    /* goodbye: this rank stops on purpose */
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank)
            continue;
        if (req[r] != MPI_REQUEST_NULL) {
            MPI_Cancel(&req[r]);
            MPI_Request_free(&req[r]);
        }
        MPI_Request bye;
        if (MPI_Isend(&beat, 1, MPI_BYTE, r, TAG_BYE, c->comm_hb, &bye) == MPI_SUCCESS)
            MPI_Request_free(&bye);
    }
    free(req);
    return NULL;
}

bool etd_watch_start(etd_cluster *c, etd_err *e)
{
    double now = etd_now();
    for (int r = 0; r < c->size; r++)
        c->last_seen[r] = now;
    if (pthread_create(&c->watcher, NULL, watch_main, c) != 0)
        return etd_fail(e, ETD_EINTERNAL, "cannot start the heartbeat thread"), false;
    c->watcher_started = true;
    return true;
}

/* After the goodbyes MPI_Finalize may still wait for a peer that hangs:
 * this thread (no MPI) ends the process after the timeout. */
static double guard_s;
static int guard_rank;

static void *finalize_guard(void *arg)
{
    (void)arg;
    double t = guard_s;
    struct timespec ts = {(time_t)t, 0};
    nanosleep(&ts, NULL);
    fprintf(stderr, "easytorchd: rank %d: MPI_Finalize did not return within %.0f s; "
            "exiting\n", guard_rank, t);
    _exit(3);
}

void etd_watch_stop(etd_cluster *c)
{
    if (!c->watcher_started)
        return;
    atomic_store(&c->watch_stop, true);
    pthread_join(c->watcher, NULL);
    c->watcher_started = false;
    guard_s = c->o.timeout + 5; /* c is freed before the guard would look */
    guard_rank = c->rank;
    pthread_t g;
    if (pthread_create(&g, NULL, finalize_guard, NULL) == 0)
        pthread_detach(g);
}
