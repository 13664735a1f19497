/*
 * cluster_internal.h - what the files of src/server/cluster share.
 *
 * Threads and communicators (MPI_THREAD_MULTIPLE):
 *   the apply thread (order.c): comm_op (requests to rank 0, the order from
 *       it) and comm_dp (the data-parallel collectives of the requests it
 *       applies) -- one thread, so their calls never interleave;
 *   the watch thread (watch.c): comm_hb (heartbeats, goodbyes);
 *   main: startup (comm_op, before the apply thread exists) and shutdown.
 */
#ifndef EASYTORCHD_CLUSTER_INTERNAL_H
#define EASYTORCHD_CLUSTER_INTERNAL_H

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>

#include "server/cluster/cluster.h"

enum { TAG_SUBMIT = 1, TAG_OP = 2, TAG_FILE = 3, TAG_HB = 4, TAG_BYE = 5 };

typedef struct etd_pending etd_pending;
typedef struct etd_sendq etd_sendq;

/* The last checksum of a model (dp.c), for /metrics. */
typedef struct etd_sum_rec {
    char model[72];
    int64_t step;
    uint64_t sum;
    bool agree;
} etd_sum_rec;
#define ETD_SUM_RECS 64

struct etd_cluster {
    etd_cluster_opts o;
    int rank, size;
    MPI_Comm comm_op, comm_dp, comm_hb;
    etd_app *app;
    etd_server *apply;          /* detached: ordered requests applied through it */
    etd_dp dp;
    MPI_Request ireq[64];       /* dp.c: bucket sums started (the apply thread's) */
    int nireq;

    /* order.c */
    pthread_t applier;
    bool applier_started;
    atomic_bool stop;
    pthread_mutex_t mu;         /* submit queue, pending answers */
    struct etd_op *submit_head, *submit_tail;
    etd_pending *pending;
    uint64_t next_ticket;
    etd_sendq *sends;           /* Isends in flight (apply thread only) */
    uint64_t seq;               /* rank 0: requests ordered so far */
    atomic_bool stop_applied;
    int ag;                     /* agree.c: the request being applied (ETD_AG_*) */
    char ag_what[160];          /* its method and target, for messages */   /* the order's stop is applied: nothing after it is */
    pthread_cond_t stop_cv;     /* (with mu) etd_cluster_quiesce waits for it */

    /* watch.c */
    pthread_t main_thread;      /* the one that waits for signals (etd_cluster_init's caller) */
    pthread_t watcher;
    bool watcher_started;
    atomic_bool watch_stop;
    double *last_seen;          /* per rank, monotonic seconds */
    bool *gone;                 /* said goodbye */

    /* metrics (dp.c), under stat_mu */
    pthread_mutex_t stat_mu;
    uint64_t ops_applied, ops_submitted, job_ticks;
    uint64_t allreduces, allreduce_bytes, bcasts, small_reduces;
    double allreduce_s, bcast_s, small_reduce_s;
    uint64_t mismatches;
    etd_sum_rec sums[ETD_SUM_RECS];
    int nsums;
};

/* A serialised request (order.c). */
typedef struct etd_op {
    struct etd_op *next;
    char *buf;
    size_t len;
} etd_op;

/* agree.c: the outcome of each ordered request, agreed by every rank */
enum { ETD_AG_NONE, ETD_AG_PENDING, ETD_AG_ENTERED, ETD_AG_ABORTED };
/* Before applying one (the apply thread). */
void etd_agree_begin(etd_cluster *c, const char *method, const char *url);
/* dp.c, before every data-parallel collective: the first of a request meets
 * the others' etd_agree_begin..end; false + e (if e) when a rank could not
 * apply the request (the call then fails before changing anything). */
bool etd_agree_enter(etd_cluster *c, etd_err *e);
/* After applying it (status: its answer's; >= 500 when this rank could not
 * apply it).  Stops every rank (exit 3, naming the ranks) when some applied
 * it and some did not. */
void etd_agree_end(etd_cluster *c, int status);
/* order.c */
bool etd_order_hook(void *arg, const etd_route *route, const etd_request *rq, etd_response *rs);
bool etd_order_start(etd_cluster *c, etd_err *e);
void etd_order_quiesce(etd_cluster *c);
void etd_order_stop(etd_cluster *c);
/* dp.c */
void etd_dp_setup(etd_cluster *c);
void etd_cluster_metrics(void *arg, etd_buf *out);
/* watch.c */
bool etd_watch_start(etd_cluster *c, etd_err *e);
void etd_watch_stop(etd_cluster *c);
double etd_now(void);
/* A failed MPI call or a lost rank: say which (the rank silent longest when
 * the call cannot tell) and exit 3 -- the others do the same within the
 * timeout, so nothing hangs and nothing diverges (docs/distributed.md). */
_Noreturn void etd_cluster_fatal(etd_cluster *c, int lost, const char *what, int mpi_err);

#endif
