/*
 * cluster.h - easytorchd --mpi: N ranks started by mpirun act as one server
 * (docs/distributed.md).  The only code that knows MPI; it sits above the
 * transport, beside main.c, and plugs into the layers through their generic
 * hooks: etd_app.order (requests of ETD_R_ORDERED routes), etd_app.metrics
 * and the registry's etd_dp (data-parallel gradients).
 *
 *   cluster.c  start, the data dir of rank 0 copied to every rank, stop
 *   order.c    the order: rank 0 numbers every definition and training
 *              request and sends it to every rank, each applies them in that
 *              order through etd_dispatch on one thread; the origin answers
 *   dp.c       etd_dp over MPI: allreduce, broadcast, checksums; /metrics
 *   agree.c    every rank's outcome of each ordered request: one that some
 *              rank could not apply fails everywhere, or every rank stops
 *   watch.c    heartbeats between all ranks: a lost rank stops the others
 *              with a message naming it
 */
#ifndef EASYTORCHD_CLUSTER_H
#define EASYTORCHD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "server/endpoints/endpoint.h"
#include "server/models/models.h"
#include "server/transport/transport.h"

typedef struct etd_cluster etd_cluster;

typedef struct etd_cluster_opts {
    double timeout;            /* a rank silent this long is lost (--mpi-timeout, s) */
    int64_t check_every;       /* parameter checksum every K steps (--mpi-check-every) */
    double bucket_mb;          /* gradient buckets of this size (--mpi-bucket-mb; 0: one
                                  allreduce after the backward) */
} etd_cluster_opts;

/* MPI_Init_thread (MPI_THREAD_MULTIPLE) and the communicators.  Call with
 * the signals already blocked (MPI starts threads).  NULL + e when MPI
 * cannot start or gives less than MPI_THREAD_MULTIPLE.  The heartbeats
 * (watch.c) start here. */
etd_cluster *etd_cluster_init(int *argc, char ***argv, const etd_cluster_opts *o, etd_err *e);
int etd_cluster_rank(const etd_cluster *c);
int etd_cluster_size(const etd_cluster *c);
/* The data dir of this rank into buf: rank 0 dir itself, rank R > 0
 * dir/replica-R (created, its model files replaced by rank 0's: see
 * etd_cluster_sync_files). */
bool etd_cluster_data_dir(const etd_cluster *c, const char *dir, char *buf, size_t cap,
                          etd_err *e);
/* Collective, before the models are loaded: rank 0's model files (and
 * version files) copied into every other rank's data dir, whose own are
 * removed first.  One rank writes what counts: a restart resumes from rank
 * 0's files. */
bool etd_cluster_sync_files(etd_cluster *c, const char *my_dir, etd_err *e);
/* Hook into app (order, metrics) and reg (etd_dp); make the server that
 * applies ordered requests (routes as given, no token, quiet).  Before
 * etd_server_start. */
bool etd_cluster_attach(etd_cluster *c, etd_app *app, const etd_transport_opts *http,
                        const etd_route *routes, int nroutes, etd_err *e);
/* After the models are loaded: start applying the order. */
bool etd_cluster_run(etd_cluster *c, etd_err *e);
/* On SIGTERM, before the jobs are stopped: a stop in the order (the first
 * rank's to reach rank 0 counts), at which every rank interrupts its jobs
 * -- after the same step everywhere -- and after which nothing more is
 * applied anywhere (answered 503).  Returns once this rank has applied it,
 * or after the timeout (rank 0 gone: the jobs then stop where they are). */
void etd_cluster_quiesce(etd_cluster *c);
/* Stop applying the order (after the HTTP server has drained; requests
 * not applied yet are answered 503).  A rank stuck in a collective ends the
 * process after the timeout. */
void etd_cluster_stop(etd_cluster *c);
/* After the models are saved: goodbye to the other ranks, MPI_Finalize,
 * free c. */
void etd_cluster_finish(etd_cluster *c);

#endif
