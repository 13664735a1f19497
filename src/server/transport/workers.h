/*
 * workers.h - the bounded pool of worker threads that runs model work
 * (internal to src/server/transport; docs/server.md, "Execution model").
 *
 * A job names the model whose lock it needs and how (shared/exclusive).
 * The pool takes that lock *before* it hands the job to a worker, and only
 * if that needs no waiting (etd_model_try_hold); a job whose model is busy
 * stays queued -- costing no thread -- until a release of that model's lock
 * pokes the pool (etd_registry_on_release -> etd_workers_poke).  Jobs of
 * one model start in the order they were queued (a queued exclusive job
 * keeps later shared ones behind it, and reserves the lock against new
 * shared holders); jobs of different models never wait for each other.
 * Long jobs (train calls) may occupy at most workers - 1 threads (all of
 * them with one worker), so short work keeps a thread.
 */
#ifndef EASYTORCHD_WORKERS_H
#define EASYTORCHD_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "server/models/models.h"

typedef struct etd_job etd_job;
struct etd_job {
    /* Runs on a worker with m's lock held (if m) and adopted by the
     * thread.  It must call etd_job_release(j) before it makes its result
     * visible (the pool touches nothing of j after run returns, so j may be
     * freed by then). */
    void (*run)(etd_job *j);
    /* Called instead of run when the pool stops with the job still queued
     * (the lock is not held); may be NULL. */
    void (*drop)(etd_job *j);
    etd_model *m;               /* hold its lock first (NULL: none); the reference is the job's */
    bool write;                 /* exclusive */
    bool longrun;               /* a train call: counts against the long-job share */
    /* the pool's */
    etd_job *prev, *next;
    bool reserved;
    struct timespec t_queued;
};

typedef struct etd_workers etd_workers;

typedef struct etd_workers_stats {
    int threads;                /* workers */
    int busy;                   /* running a job */
    int queued;                 /* waiting for a worker or their model */
    int max_queue;
    unsigned long long done;    /* jobs run */
    unsigned long long rejected; /* refused: queue full */
    double wait_sum;            /* seconds jobs spent queued, summed */
} etd_workers_stats;

/* nthreads workers (>= 1); at most max_queue jobs queued by bounded
 * submits.  NULL on failure. */
etd_workers *etd_workers_new(int nthreads, int max_queue);
/* Queue j.  bounded: refuse (false) when max_queue jobs are queued;
 * false also once the pool is stopping.  On false j is untouched (its
 * model reference still the caller's). */
bool etd_workers_submit(etd_workers *w, etd_job *j, bool bounded);
/* A model lock became free: start what can start (any thread). */
void etd_workers_poke(void *w);
/* Give back j's hold (model lock, adoption, reference); idempotent. */
void etd_job_release(etd_job *j);
void etd_workers_stats_get(etd_workers *w, etd_workers_stats *st);
/* Drop the queued jobs (their drop hook), wait for the running ones, join
 * the threads.  Free with etd_workers_free. */
void etd_workers_stop(etd_workers *w);
void etd_workers_free(etd_workers *w);

#endif
