/* model_lock.c - the per-model lock (models.h, "Locking"): shared for
 * readers, exclusive for training calls, like a read/write lock -- but not
 * tied to a thread.
 *
 * Why not pthread_rwlock: the transport's worker pool must be able to take a
 * model's lock *without waiting* before it hands a request to a worker, so
 * that a request waiting for a model (a prediction behind a long train call)
 * waits in a queue and costs no thread.  The pool takes the lock on its own
 * thread (etd_model_try_hold), the worker that runs the request adopts it
 * (etd_model_adopt: the handler's own etd_model_lock on that model is then a
 * no-op on that thread) and the pool releases it afterwards, possibly from
 * yet another thread.  A pthread rwlock must be unlocked by the thread that
 * locked it; this one need not.
 *
 * Fairness: a thread blocked in etd_model_lock(write) (delete, a training
 * job) keeps new readers out until it got its turn; so does a pool job that
 * asked for an exclusive hold with a reservation.  And a writer that leaves
 * while threads wait to read hands the lock to them first ("readers'
 * turn"): no writer, not even the one that just left, gets it back before
 * every reader that was waiting is in.  Without the turn a training job --
 * which releases and re-takes the lock between every two steps -- got it
 * back before the woken readers ran, so a thread reading the model (the
 * saver, versions, exports) waited for a lucky preemption, seconds at a
 * time.  Pool jobs need no turn: the release hook below hands them out on
 * the releasing thread, before it can re-take the lock.  Every release
 * that leaves the lock free calls the registry's release hook, so the pool
 * can retry the jobs that were waiting for it. */
#include <sched.h>
#include <stdio.h>

#include "server/models/model_internal.h"

/* The model (and mode) whose lock the job running on this thread holds. */
static _Thread_local struct {
    etd_model *m;
    bool write;
} adopted;

void etd_mlock_init(etd_mlock *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->readers = 0;
    l->writer = false;
    l->writers_waiting = 0;
    l->reserved = 0;
    l->readers_waiting = 0;
    l->readers_turn = false;
    atomic_store(&l->write_gen, 0);
}

uint64_t etd_mlock_write_gen(etd_mlock *l) { return atomic_load(&l->write_gen); }

void etd_mlock_destroy(etd_mlock *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

/* The registry's release hook; hook_calls lets a replacement wait for the
 * calls of the old one (a tiny read-copy-update). */
static void call_hook(etd_registry *r)
{
    if (!r || !atomic_load(&r->on_release))
        return;
    atomic_fetch_add(&r->hook_calls, 1);
    const etd_release_hook *h = atomic_load(&r->on_release);
    if (h)
        h->fn(h->arg);
    atomic_fetch_sub(&r->hook_calls, 1);
}

/* A new reader may enter (l->mu held): no writer holds the lock, and none
 * waits for it -- unless it is the readers' turn. */
static bool read_ok(const etd_mlock *l)
{
    return !l->writer && (l->readers_turn || (l->writers_waiting == 0 && l->reserved == 0));
}

static void acquire(etd_model *m, bool write)
{
    etd_mlock *l = &m->lock;
    pthread_mutex_lock(&l->mu);
    if (write) {
        l->writers_waiting++;
        while (l->writer || l->readers > 0 || l->readers_turn)
            pthread_cond_wait(&l->cv, &l->mu);
        l->writers_waiting--;
        l->writer = true;
        atomic_fetch_add(&l->write_gen, 1);
    } else if (!read_ok(l)) {
        l->readers_waiting++;
        do
            pthread_cond_wait(&l->cv, &l->mu);
        while (!read_ok(l));
        if (--l->readers_waiting == 0)
            l->readers_turn = false; /* every reader that waited is in */
        l->readers++;
    } else {
        l->readers++;
    }
    pthread_mutex_unlock(&l->mu);
}

static void release(etd_model *m)
{
    etd_mlock *l = &m->lock;
    pthread_mutex_lock(&l->mu);
    if (l->writer) {
        l->writer = false;
        atomic_fetch_add(&l->write_gen, 1);
        l->readers_turn = l->readers_waiting > 0;
    } else if (l->readers > 0)
        l->readers--;
    bool free_now = !l->writer && l->readers == 0;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (free_now)
        call_hook(m->reg);
}

void etd_model_lock_any(etd_model *m, bool write)
{
    if (adopted.m == m)
        return;
    acquire(m, write);
}

etd_rc etd_model_lock(etd_model *m, bool write, etd_err *e)
{
    if (adopted.m == m) {
        if (write && !adopted.write)
            return etd_fail(e, ETD_EINTERNAL, "internal: model \"%s\" is held shared for this "
                            "request but the call needs it exclusive (route flags)", m->name);
    } else {
        acquire(m, write);
    }
    if (m->deleted) {
        etd_model_unlock(m);
        return etd_fail(e, ETD_ENOTFOUND, "no model named \"%s\" (deleted)", m->name);
    }
    return ETD_OK;
}

void etd_model_unlock(etd_model *m)
{
    if (adopted.m == m)
        return; /* the pool releases it when the job is done */
    release(m);
}

bool etd_model_try_hold(etd_model *m, bool write, bool *reserved)
{
    etd_mlock *l = &m->lock;
    pthread_mutex_lock(&l->mu);
    bool ok;
    if (write) {
        ok = !l->writer && l->readers == 0 && l->writers_waiting == 0 && !l->readers_turn;
        if (!reserved) /* a caller that cannot wait (the I/O thread's small
                        * train) never goes ahead of a job that reserved it */
            ok = ok && l->reserved == 0;
        if (ok) {
            l->writer = true;
            atomic_fetch_add(&l->write_gen, 1);
            if (reserved && *reserved) {
                l->reserved--;
                *reserved = false;
            }
        } else if (reserved && !*reserved) {
            l->reserved++; /* keep new readers out until this job had its turn */
            *reserved = true;
        }
    } else {
        ok = read_ok(l);
        if (ok)
            l->readers++;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void etd_model_unreserve(etd_model *m, bool *reserved)
{
    if (!reserved || !*reserved)
        return;
    etd_mlock *l = &m->lock;
    pthread_mutex_lock(&l->mu);
    l->reserved--;
    *reserved = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    call_hook(m->reg);
}

void etd_model_release(etd_model *m) { release(m); }

void etd_model_adopt(etd_model *m, bool write)
{
    adopted.m = m;
    adopted.write = write;
}

void etd_registry_on_release(etd_registry *r, const etd_release_hook *h)
{
    atomic_store(&r->on_release, h);
    while (atomic_load(&r->hook_calls) > 0)
        sched_yield();
}
