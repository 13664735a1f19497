/* workers.c - the worker pool and its scheduler (workers.h).
 *
 * One mutex guards the queue (FIFO, a doubly linked list of the jobs' own
 * links: no allocation) and the list of jobs handed to workers.  dispatch()
 * walks the queue from the oldest job and hands out every job that can
 * start: a worker is idle, the long-job share allows it, no older job of
 * its model is still waiting, and its model's lock can be taken without
 * waiting.  It runs when a job is queued, when a worker finishes, and when
 * a model lock is released elsewhere (etd_workers_poke). */
#include "server/transport/workers.h"

#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct etd_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* workers: a job is ready, or stop */
    pthread_cond_t idle_cv;     /* stop: a worker finished */
    etd_job *head, *tail;       /* queued */
    etd_job *ready_head, *ready_tail; /* handed out, not yet picked up */
    int nqueued, nready;
    atomic_int waiting;         /* nqueued, readable without the mutex (poke) */
    int nthreads, idle, busy, max_long, running_long, max_queue;
    bool stopping;
    unsigned long long done, rejected;
    double wait_sum;
    pthread_t *threads;
    int started;
};

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void unlink_job(etd_workers *w, etd_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        w->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        w->tail = j->prev;
    j->prev = j->next = NULL;
    w->nqueued--;
    atomic_store(&w->waiting, w->nqueued);
}

/* Hand out what can start (w->mu held). */
static void dispatch(etd_workers *w)
{
    int free_workers = w->idle - w->nready;
    if (free_workers <= 0 || !w->head)
        return;
    /* models that have a job still waiting: later jobs of theirs wait too */
    etd_model *blocked[64];
    int nb = 0;
    bool overflow = false;
    int handed = 0;
    for (etd_job *j = w->head, *next; j && free_workers > 0; j = next) {
        next = j->next;
        bool skip = false;
        if (j->m) {
            for (int i = 0; i < nb && !skip; i++)
                skip = blocked[i] == j->m;
            if (!skip && overflow)
                skip = true; /* too many blocked models to track: keep strict order */
        }
        if (!skip && j->longrun && w->running_long >= w->max_long)
            skip = true;
        if (!skip && j->m && !etd_model_try_hold(j->m, j->write, &j->reserved))
            skip = true;
        if (skip) {
            if (j->m) {
                bool known = false;
                for (int i = 0; i < nb && !known; i++)
                    known = blocked[i] == j->m;
                if (!known) {
                    if (nb < 64)
                        blocked[nb++] = j->m;
                    else
                        overflow = true;
                }
            }
            continue;
        }
        unlink_job(w, j);
        w->wait_sum += since(&j->t_queued);
        if (j->longrun)
            w->running_long++;
        if (w->ready_tail)
            w->ready_tail->next = j;
        else
            w->ready_head = j;
        w->ready_tail = j;
        w->nready++;
        free_workers--;
        handed++;
    }
    if (handed == 1)
        pthread_cond_signal(&w->cv);
    else if (handed > 1)
        pthread_cond_broadcast(&w->cv);
}

void etd_job_release(etd_job *j)
{
    if (!j->m)
        return;
    etd_model *m = j->m;
    j->m = NULL;
    etd_model_adopt(NULL, false);
    etd_model_release(m);
    etd_model_unref(m);
}

static void *worker_main(void *arg)
{
    etd_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (!w->ready_head) {
            if (w->stopping)
                break;
            w->idle++;
            dispatch(w); /* one more idle worker: something may start */
            if (!w->ready_head)
                pthread_cond_wait(&w->cv, &w->mu);
            w->idle--;
            continue;
        }
        etd_job *j = w->ready_head;
        w->ready_head = j->next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        w->nready--;
        j->next = NULL;
        bool longrun = j->longrun;
        w->busy++;
        pthread_mutex_unlock(&w->mu);
        if (j->m)
            etd_model_adopt(j->m, j->write);
        j->run(j); /* releases the hold itself (etd_job_release); j may be gone now */
        etd_model_adopt(NULL, false);
        pthread_mutex_lock(&w->mu);
        w->busy--;
        w->done++;
        if (longrun)
            w->running_long--;
        pthread_cond_broadcast(&w->idle_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

etd_workers *etd_workers_new(int nthreads, int max_queue)
{
    if (nthreads < 1)
        nthreads = 1;
    etd_workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->threads = calloc((size_t)nthreads, sizeof *w->threads);
    if (!w->threads) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    atomic_init(&w->waiting, 0);
    w->nthreads = nthreads;
    w->max_long = nthreads > 1 ? nthreads - 1 : 1;
    w->max_queue = max_queue;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
            break;
        w->started++;
    }
    if (w->started == 0) {
        etd_workers_free(w);
        return NULL;
    }
    w->nthreads = w->started;
    return w;
}

bool etd_workers_submit(etd_workers *w, etd_job *j, bool bounded)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping || (bounded && w->nqueued >= w->max_queue)) {
        if (!w->stopping)
            w->rejected++;
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    clock_gettime(CLOCK_MONOTONIC, &j->t_queued);
    j->reserved = false;
    j->next = NULL;
    j->prev = w->tail;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->nqueued++;
    atomic_store(&w->waiting, w->nqueued);
    dispatch(w);
    pthread_mutex_unlock(&w->mu);
    return true;
}

void etd_workers_poke(void *arg)
{
    etd_workers *w = arg;
    if (atomic_load(&w->waiting) == 0)
        return; /* nothing queued: the common case of a release */
    pthread_mutex_lock(&w->mu);
    dispatch(w);
    pthread_mutex_unlock(&w->mu);
}

void etd_workers_stats_get(etd_workers *w, etd_workers_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = (etd_workers_stats){w->nthreads, w->busy, w->nqueued + w->nready, w->max_queue,
                              w->done, w->rejected, w->wait_sum};
    pthread_mutex_unlock(&w->mu);
}

void etd_workers_stop(etd_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    /* queued jobs will not run: hand them back (their drop answers them) */
    etd_job *dropped = w->head;
    w->head = w->tail = NULL;
    w->nqueued = 0;
    atomic_store(&w->waiting, 0);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    while (dropped) {
        etd_job *j = dropped;
        dropped = j->next;
        j->prev = j->next = NULL;
        if (j->m) {
            etd_model_unreserve(j->m, &j->reserved);
            etd_model_unref(j->m);
            j->m = NULL;
        }
        if (j->drop)
            j->drop(j);
    }
    for (int i = 0; i < w->started; i++)
        pthread_join(w->threads[i], NULL);
    w->started = 0;
}

void etd_workers_free(etd_workers *w)
{
    if (!w)
        return;
    if (w->started)
        etd_workers_stop(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    free(w->threads);
    free(w);
}
