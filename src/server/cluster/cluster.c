/* cluster.c - easytorchd --mpi (cluster.h): MPI's start and end, each
 * rank's data dir, rank 0's files copied to the others at startup, and the
 * hooks into the layers below. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/cluster/cluster_internal.h"

etd_cluster *etd_cluster_init(int *argc, char ***argv, const etd_cluster_opts *o, etd_err *e)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        etd_fail(e, ETD_EINTERNAL, "--mpi: MPI_Init_thread failed");
        return NULL;
    }
    if (provided < MPI_THREAD_MULTIPLE) {
        etd_fail(e, ETD_EINTERNAL, "--mpi: this MPI library gives thread level %d, "
                 "MPI_THREAD_MULTIPLE (%d) is needed", provided, MPI_THREAD_MULTIPLE);
        MPI_Finalize();
        return NULL;
    }
    etd_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        etd_fail(e, ETD_ENOMEM, "out of memory");
        MPI_Finalize();
        return NULL;
    }
    c->o = *o;
    c->main_thread = pthread_self();
    /* errors come back as codes: a lost rank is reported, not an abort
     * without a word (etd_cluster_fatal) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->comm_op);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->comm_dp);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->comm_hb);
    MPI_Comm_set_errhandler(c->comm_op, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(c->comm_dp, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(c->comm_hb, MPI_ERRORS_RETURN);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->stop_cv, NULL);
    pthread_mutex_init(&c->stat_mu, NULL);
    atomic_init(&c->stop, false);
    atomic_init(&c->watch_stop, false);
    c->last_seen = calloc((size_t)c->size, sizeof *c->last_seen);
    c->gone = calloc((size_t)c->size, sizeof *c->gone);
    /* heartbeats from the start: a rank that dies while the others copy files
     * or load models is noticed too */
    if (!c->last_seen || !c->gone || !etd_watch_start(c, e))
        return NULL;
    return c;
}

int etd_cluster_rank(const etd_cluster *c) { return c->rank; }
int etd_cluster_size(const etd_cluster *c) { return c->size; }

bool etd_cluster_data_dir(const etd_cluster *c, const char *dir, char *buf, size_t cap,
                          etd_err *e)
{
    int n = c->rank == 0 ? snprintf(buf, cap, "%s", dir)
                         : snprintf(buf, cap, "%s/replica-%d", dir, c->rank);
    if (n < 0 || (size_t)n >= cap)
        return etd_fail(e, ETD_EINVAL, "--data-dir: path too long"), false;
    if (c->rank > 0 && mkdir(dir, 0755) != 0 && errno != EEXIST)
        return etd_fail(e, ETD_EIO, "cannot create %s: %s", dir, strerror(errno)), false;
    return true;
}

/* ---------------------------------------------------------------- rank 0's files */

/* A file worth copying: a model file, a versions directory's file. */
static bool model_file(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".etm") == 0;
}

static bool versions_dir(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 9 && strcmp(name + n - 9, ".versions") == 0;
}

/* Relative paths of what rank 0 copies, '\n'-separated, into *list. */
static void list_files(const char *dir, etd_buf *list)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (model_file(de->d_name)) {
            etd_buf_printf(list, "%s\n", de->d_name);
        } else if (versions_dir(de->d_name)) {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
            DIR *v = opendir(sub);
            struct dirent *ve;
            while (v && (ve = readdir(v)))
                if (model_file(ve->d_name))
                    etd_buf_printf(list, "%s/%s\n", de->d_name, ve->d_name);
            if (v)
                closedir(v);
        }
    }
    if (d)
        closedir(d);
}

static char *read_all(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)*len + 1)) && fread(b, 1, (size_t)*len, f) != (size_t)*len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

/* Remove rank R's own model files (rank 0's replace them). */
static void wipe(const char *dir)
{
    etd_buf list;
    etd_buf_init(&list);
    list_files(dir, &list);
    for (char *p = list.data, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, p);
        unlink(path);
    }
    etd_buf_free(&list);
}

bool etd_cluster_sync_files(etd_cluster *c, const char *my_dir, etd_err *e)
{
    etd_buf list;
    etd_buf_init(&list);
    if (c->rank == 0)
        list_files(my_dir, &list);
    else
        wipe(my_dir);
    long n = c->rank == 0 ? (long)list.len : 0;
    if (MPI_Bcast(&n, 1, MPI_LONG, 0, c->comm_op) != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "startup: MPI_Bcast", 0);
    if (c->rank != 0 && !etd_buf_reserve(&list, (size_t)n + 1))
        return etd_buf_free(&list), etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    if (n > 0 && MPI_Bcast(list.data, (int)n, MPI_CHAR, 0, c->comm_op) != MPI_SUCCESS)
        etd_cluster_fatal(c, -1, "startup: MPI_Bcast", 0);
    list.len = (size_t)n;
    if (n > 0)
        list.data[n] = '\0';
    bool ok = true;
    int files = 0;
    for (char *p = n > 0 ? list.data : NULL, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", my_dir, p);
        long len = -1;
        char *data = c->rank == 0 ? read_all(path, &len) : NULL;
        if (MPI_Bcast(&len, 1, MPI_LONG, 0, c->comm_op) != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "startup: MPI_Bcast", 0);
        if (len < 0) /* gone meanwhile, or unreadable: rank 0 reports it when loading */
            continue;
        if (c->rank != 0 && !(data = malloc((size_t)len + 1)))
            etd_cluster_fatal(c, -1, "startup: out of memory", 0);
        if (len > 0 && MPI_Bcast(data, (int)len, MPI_CHAR, 0, c->comm_op) != MPI_SUCCESS)
            etd_cluster_fatal(c, -1, "startup: MPI_Bcast", 0);
        if (c->rank != 0) {
            char *slash = strchr(p, '/');
            if (slash) { /* a versions directory */
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%.*s", my_dir, (int)(slash - p), p);
                mkdir(sub, 0755);
            }
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(data, 1, (size_t)len, f) != (size_t)len || fflush(f) != 0 ||
                fsync(fileno(f)) != 0) {
                if (ok)
                    etd_fail(e, ETD_EIO, "cannot write %s: %s", path, strerror(errno));
                ok = false;
            }
            if (f)
                fclose(f);
        }
        free(data);
        files++;
    }
    etd_buf_free(&list);
    if (ok && c->rank == 0 && c->size > 1)
        fprintf(stderr, "easytorchd: rank 0: %d model file%s sent to %d replica%s\n", files,
                files == 1 ? "" : "s", c->size - 1, c->size == 2 ? "" : "s");
    return ok;
}

/* ---------------------------------------------------------------- hooks, life cycle */

bool etd_cluster_attach(etd_cluster *c, etd_app *app, const etd_transport_opts *http,
                        const etd_route *routes, int nroutes, etd_err *e)
{
    /* the server that applies the order: the same routes and limits, no
     * token (the origin checked it), no access log (the origin logs), and
     * an app without the order hook (applying must not order again) */
    etd_app *aapp = malloc(sizeof *aapp);
    if (!aapp)
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    *aapp = *app;
    aapp->order = NULL;
    etd_transport_opts o = *http;
    o.token = NULL;
    o.quiet = true;
    c->apply = etd_server_new_detached(&o, routes, nroutes, aapp);
    if (!c->apply) {
        free(aapp);
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    }
    c->app = aapp;
    app->order = etd_order_hook;
    app->order_arg = c;
    app->metrics = etd_cluster_metrics;
    app->metrics_arg = c;
    etd_dp_setup(c);
    etd_registry_set_dp(app->reg, &c->dp);
    return true;
}

bool etd_cluster_run(etd_cluster *c, etd_err *e)
{
    return etd_order_start(c, e);
}

void etd_cluster_quiesce(etd_cluster *c)
{
    etd_order_quiesce(c);
}

void etd_cluster_stop(etd_cluster *c)
{
    etd_order_stop(c);
    if (c->apply)
        etd_server_shutdown(c->apply);
    c->apply = NULL;
}

void etd_cluster_finish(etd_cluster *c)
{
    if (!c)
        return;
    etd_cluster_stop(c);
    etd_watch_stop(c); /* goodbyes; a rank that hangs in MPI_Finalize is cut after the timeout */
    MPI_Comm_free(&c->comm_op);
    MPI_Comm_free(&c->comm_dp);
    MPI_Comm_free(&c->comm_hb);
    MPI_Finalize();
    free(c->app);
    free(c->last_seen);
    free(c->gone);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->stat_mu);
    free(c);
}
