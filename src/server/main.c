/*
 * main.c - easytorchd: options, signals, startup and orderly shutdown.
 *
 * Startup: parse options (flag > environment > default), bind, load the
 * persisted models (readiness 503 meanwhile), then serve.  SIGTERM/SIGINT:
 * readiness 503, stop accepting, finish requests in flight, save every
 * model, exit 0.  Signals are blocked in every thread and taken with
 * sigwait() here, so no work happens in a signal handler.
 */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <easytorch/easytorch.h>

#include "server/config.h"
#ifdef ETD_HAVE_MPI
#include "server/cluster/cluster.h"
#endif

typedef struct opt {
    const char *flag, *env, *arg, *help;
} opt;

static const opt opts[] = {
    {"--listen", "EASYTORCH_LISTEN", "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080; port 0 picks a free port,\n"
     "    printed as \"listening on HOST:PORT\"; IPv6 as [::1]:8080)"},
    {"--token-file", "EASYTORCH_TOKEN_FILE", "PATH",
     "file holding the bearer token required on every API request\n"
     "    (the token itself may be given in EASYTORCH_TOKEN instead)"},
    {"--insecure", "EASYTORCH_INSECURE", NULL,
     "allow a non-loopback listen address without a token"},
    {"--data-dir", "EASYTORCH_DATA_DIR", "DIR", "where models are persisted (default ./easytorch-data)"},
    {"--sync", "EASYTORCH_SYNC", "always|interval",
     "always: persist every change before acknowledging it; interval (default):\n"
     "    save changed models every --save-interval seconds, on checkpoint and on exit"},
    {"--save-interval", "EASYTORCH_SAVE_INTERVAL", "SECONDS", "background save period (default 10)"},
    {"--max-body", "EASYTORCH_MAX_BODY", "BYTES",
     "largest request body, suffixes k/M/G allowed (default 64M); larger -> 413"},
    {"--max-depth", "EASYTORCH_MAX_DEPTH", "N", "deepest JSON nesting accepted (default 32)"},
    {"--max-elements", "EASYTORCH_MAX_ELEMENTS", "N", "most elements in one tensor (default 16777216)"},
    {"--max-json-values", "EASYTORCH_MAX_JSON_VALUES", "N",
     "most JSON values in a body outside tensors read by the fast path (default 4194304);\n"
     "    bounds the memory of parsing; larger -> 413"},
    {"--max-models", "EASYTORCH_MAX_MODELS", "N", "most models hosted at once (default 1024)"},
    {"--max-params", "EASYTORCH_MAX_PARAMS", "N", "most scalar parameters per model (default 50000000)"},
    {"--max-steps", "EASYTORCH_MAX_STEPS", "N", "most optimizer steps in one train call (default 1000000)"},
    {"--max-history", "EASYTORCH_MAX_HISTORY", "N",
     "loss-history entries kept per model; the oldest half is dropped beyond (default 100000)"},
    {"--job-threads", "EASYTORCH_JOB_THREADS", "N",
     "threads running training jobs (POST .../jobs), one job each (default: the CPU count)"},
    {"--job-nice", "EASYTORCH_JOB_NICE", "N",
     "nice value added to the job threads (default 10; 0: same priority as requests),\n"
     "    so a job yields the CPU to predictions and reads instead of sharing it equally"},
    {"--max-jobs", "EASYTORCH_MAX_JOBS", "N",
     "training jobs queued or running at once, all models together (default 64); more -> 503"},
    {"--event-buffer", "EASYTORCH_EVENT_BUFFER", "N",
     "events kept for Last-Event-ID resume: N for /v1/events, N/4 per model (default 4096)"},
    {"--event-interval", "EASYTORCH_EVENT_INTERVAL", "SECONDS",
     "a model's steps are sent as one \"step\" event per interval (default 0.1; 0: every step)"},
    {"--timeout", "EASYTORCH_TIMEOUT", "SECONDS",
     "close a connection idle for this long, between requests or before its first byte\n"
     "    (default 30)"},
    {"--header-timeout", "EASYTORCH_HEADER_TIMEOUT", "SECONDS",
     "a request's headers must be complete within this of its first byte (default 5);\n"
     "    cuts clients that trickle headers (slowloris): 408"},
    {"--request-timeout", "EASYTORCH_REQUEST_TIMEOUT", "SECONDS",
     "a request's body must be complete within this of its headers (default 4 x --timeout);\n"
     "    cuts clients that trickle bodies"},
    {"--max-connections", "EASYTORCH_MAX_CONNECTIONS", "N",
     "connections at once, in every state (default 10000; RLIMIT_NOFILE is raised to fit);\n"
     "    over it: 503 with Retry-After"},
    {"--max-connections-per-ip", "EASYTORCH_MAX_CONNECTIONS_PER_IP", "N",
     "connections at once from one client address (default 0: no limit); over it: 503"},
    {"--io-threads", "EASYTORCH_IO_THREADS", "N",
     "threads running libmicrohttpd's epoll loops (default: CPUs, at most 4)"},
    {"--workers", "EASYTORCH_WORKERS", "N",
     "worker threads running model work: predict, train, ... (default: CPUs)"},
    {"--max-queue", "EASYTORCH_MAX_QUEUE", "N",
     "requests waiting for a worker or their model before new ones get 503 with\n"
     "    Retry-After (default 1024)"},
    {"--inline-macs", "EASYTORCH_INLINE_MACS", "N",
     "predictions of at most this many multiply-adds run on the I/O thread instead of a\n"
     "    worker (default 262144; 0: always a worker)"},
    {"--inline-train-macs", "EASYTORCH_INLINE_TRAIN_MACS", "N",
     "train calls of at most this many multiply-adds (at most 16 steps, JSON bodies,\n"
     "    no --sync always, no cluster) run on the I/O thread instead of a worker\n"
     "    (default 4194304; 0: always a worker)"},
    {"--max-train-seconds", "EASYTORCH_MAX_TRAIN_SECONDS", "SECONDS",
     "a train call stops between two steps after this long and keeps the steps done\n"
     "    (default 0: no limit)"},
    {"--drain-timeout", "EASYTORCH_DRAIN_TIMEOUT", "SECONDS",
     "on SIGTERM, wait this long for requests in flight (default 60)"},
    {"--blas-threads", "EASYTORCH_BLAS_THREADS", "N",
     "OpenBLAS threads per call (default 1: requests run in parallel instead)"},
    {"--cors-origin", "EASYTORCH_CORS_ORIGIN", "ORIGIN",
     "let browser scripts from ORIGIN (https://app.example.com:8443, or * for any)\n"
     "    call the API; repeatable (the variable takes a comma-separated list)"},
    {"--quiet", "EASYTORCH_QUIET", NULL, "no access log on stderr"},
    {"--mpi", "EASYTORCH_MPI", NULL,
     "run as one rank of `mpirun -n N easytorchd --mpi`: rank R listens on --listen's port\n"
     "    + R, replicates definitions in rank 0's order and trains data-parallel; rank 0\n"
     "    writes --data-dir, rank R > 0 DIR/replica-R (docs/distributed.md)"},
    {"--mpi-timeout", "EASYTORCH_MPI_TIMEOUT", "SECONDS",
     "--mpi: a rank not heard of for this long is lost and the others exit 3 (default 10)"},
    {"--mpi-check-every", "EASYTORCH_MPI_CHECK_EVERY", "STEPS",
     "--mpi: replicas compare a checksum of each model every this many steps\n"
     "    (default 10; 0: never), shown in /metrics"},
    {"--mpi-bucket-mb", "EASYTORCH_MPI_BUCKET_MB", "MB",
     "--mpi: sum the gradients in buckets of this size while the backward runs\n"
     "    (DDP's buckets; default 0: one allreduce after the backward)"},
    {"--help", NULL, NULL, "this text (also -h)"},
    {"--version", NULL, NULL, "print the version (also -V)"},
};
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: easytorchd [OPTIONS]\n\n"
               "HTTP/JSON daemon hosting easytorch models (see docs/API.md).\n\n"
               "Options (each can also be set by the environment variable shown;\n"
               "a flag wins over the environment):\n");
    for (int i = 0; i < NOPTS; i++) {
        char head[80];
        snprintf(head, sizeof head, "%s%s%s", opts[i].flag, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-34s %s%s%s\n    %s\n", head, opts[i].env ? "[env " : "",
                opts[i].env ? opts[i].env : "", opts[i].env ? "]" : "", opts[i].help);
    }
    fprintf(f, "\n  EASYTORCH_TOKEN                    the bearer token itself (instead of a file)\n"
               "\nSignals: SIGTERM/SIGINT drain requests in flight, save every model, exit 0.\n");
}

static const char *values[NOPTS];

/* --cors-origin may be given several times. */
static const char *cors_flags[ETD_CORS_MAX];
static int ncors_flags;

/* An origin as browsers send it: scheme://host[:port], no path; or "*" / "null". */
static bool origin_ok(const char *o)
{
    if (strcmp(o, "*") == 0 || strcmp(o, "null") == 0)
        return true;
    const char *h = strncmp(o, "http://", 7) == 0 ? o + 7 : strncmp(o, "https://", 8) == 0 ? o + 8
                                                                                          : NULL;
    if (!h || !*h)
        return false;
    for (const char *p = h; *p; p++)
        if (*p == '/' || *p == ' ' || *p == ',' || (unsigned char)*p < 0x21)
            return false;
    return true;
}

/* The allowed origins: the flags, else the environment's list. */
static bool read_cors(etd_cors *cors, char **env_copy)
{
    cors->n = 0;
    *env_copy = NULL;
    if (ncors_flags) {
        for (int i = 0; i < ncors_flags; i++)
            cors->origins[cors->n++] = cors_flags[i];
    } else if (getenv("EASYTORCH_CORS_ORIGIN") && getenv("EASYTORCH_CORS_ORIGIN")[0]) {
        char *list = *env_copy = strdup(getenv("EASYTORCH_CORS_ORIGIN"));
        if (!list)
            return false;
        for (char *save = NULL, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (cors->n == ETD_CORS_MAX) {
                fprintf(stderr, "easytorchd: EASYTORCH_CORS_ORIGIN: more than %d origins\n",
                        ETD_CORS_MAX);
                return false;
            }
            cors->origins[cors->n++] = t;
        }
    }
    for (int i = 0; i < cors->n; i++)
        if (!origin_ok(cors->origins[i])) {
            fprintf(stderr, "easytorchd: --cors-origin: \"%s\" is not an origin (expected "
                    "scheme://host[:port] without a path, e.g. https://app.example.com, or *)\n",
                    cors->origins[i]);
            return false;
        }
    return true;
}

static int find_opt(const char *flag, size_t len)
{
    for (int i = 0; i < NOPTS; i++)
        if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, flag, len) == 0)
            return i;
    return -1;
}

static const char *value(const char *flag)
{
    int i = find_opt(flag, strlen(flag));
    if (values[i])
        return values[i];
    return opts[i].env ? getenv(opts[i].env) : NULL;
}

static bool flag_on(const char *flag)
{
    const char *v = value(flag);
    return v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "") != 0;
}

static int die(const char *fmt, const char *a)
{
    fprintf(stderr, "easytorchd: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    return 2;
}

/* Parse a count with optional k/M/G (binary) suffix. */
static bool parse_size(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno)
        return false;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1024.0 * 1024 * 1024, end++;
    if (*end || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static bool num_opt(const char *flag, double def, double min, double max, double *out, int *rc)
{
    const char *v = value(flag);
    *out = def;
    if (v && !parse_size(v, min, max, out)) {
        fprintf(stderr, "easytorchd: %s: invalid value \"%s\" (expected a number in [%g, %g])\n",
                flag, v, min, max);
        *rc = 2;
        return false;
    }
    return true;
}

static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        buf[--n] = '\0';
    char *t = strdup(buf);
    memset(buf, 0, sizeof buf);
    return t;
}

/* Where to go from here: the dashboard and one request to try (a wildcard
 * listen address is reached through loopback). */
static void print_next_steps(const etd_transport_opts *h, unsigned port)
{
    const char *host = h->host;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    char url[300];
    snprintf(url, sizeof url, strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host, port);
    fprintf(stderr, "easytorchd: dashboard %s/\n", url);
    fprintf(stderr, "easytorchd: try  curl -s %s%s/v1/models\n",
            h->token ? "-H \"Authorization: Bearer <token>\" " : "", url);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0)
            a = "--help";
        else if (strcmp(a, "-V") == 0)
            a = "--version";
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int k = strncmp(a, "--", 2) == 0 ? find_opt(a, len) : -1;
        if (k < 0)
            return die("unknown argument \"%s\" (see --help)", a);
        if (strcmp(opts[k].flag, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(opts[k].flag, "--version") == 0) {
            printf("easytorchd %s\n", EASYTORCH_VERSION);
            return 0;
        }
        if (!opts[k].arg) {
            values[k] = eq ? eq + 1 : "1";
        } else if (eq) {
            values[k] = eq + 1;
        } else {
            if (i + 1 >= argc)
                return die("%s needs a value", opts[k].flag);
            values[k] = argv[++i];
        }
        if (strcmp(opts[k].flag, "--cors-origin") == 0) {
            if (ncors_flags == ETD_CORS_MAX)
                return die("%s: too many origins", opts[k].flag);
            cors_flags[ncors_flags++] = values[k];
        }
    }

    etd_config c;
    memset(&c, 0, sizeof c);
    etd_transport_opts *h = &c.http;
    int rc = 0;
    const char *listen = value("--listen");
    if (!listen)
        listen = "127.0.0.1:8080";
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return die("--listen: expected HOST:PORT, got \"%s\"", listen);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535)
        return die("--listen: invalid port in \"%s\"", listen);
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') { /* [::1]:8080 */
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof h->host)
        return die("--listen: host too long in \"%s\"", listen);
    memcpy(h->host, listen, hl);
    h->host[hl] = '\0';
    h->port = (unsigned)port;

    char *token = NULL;
    const char *tf = value("--token-file");
    if (tf) {
        token = read_token_file(tf);
        if (!token)
            return die("--token-file: cannot read \"%s\"", tf);
    } else if (getenv("EASYTORCH_TOKEN")) {
        token = strdup(getenv("EASYTORCH_TOKEN"));
    }
    if (token && !token[0])
        return die("%s", "the token is empty (--token-file / EASYTORCH_TOKEN)");
    h->token = token;
    h->insecure = flag_on("--insecure");
    h->quiet = flag_on("--quiet");
    c.models.data_dir = value("--data-dir") ? value("--data-dir") : "./easytorch-data";
    const char *sync = value("--sync");
    if (sync && strcmp(sync, "always") != 0 && strcmp(sync, "interval") != 0)
        return die("--sync: expected \"always\" or \"interval\", got \"%s\"", sync);
    c.models.sync_always = sync && strcmp(sync, "always") == 0;
    double v;
    if (!num_opt("--save-interval", 10, 0.01, 86400, &c.models.save_interval, &rc) ||
        !num_opt("--max-body", 64.0 * 1024 * 1024, 1, (double)SIZE_MAX / 2, &v, &rc))
        return rc;
    h->max_body = (size_t)v;
    if (!num_opt("--max-depth", 32, 2, 1000, &v, &rc))
        return rc;
    c.json.max_depth = (int)v;
    if (!num_opt("--max-elements", 16777216, 1, 1e12, &v, &rc))
        return rc;
    c.json.max_elems = (int64_t)v;
    if (!num_opt("--max-json-values", 4194304, 16, 1e10, &v, &rc))
        return rc;
    c.json.max_values = (size_t)v;
    if (!num_opt("--max-models", 1024, 1, 1e6, &v, &rc))
        return rc;
    c.models.max_models = (int)v;
    if (!num_opt("--max-params", 5e7, 1, 1e12, &v, &rc))
        return rc;
    c.models.max_params = (int64_t)v;
    if (!num_opt("--max-steps", 1e6, 1, 1e12, &v, &rc))
        return rc;
    c.models.max_steps = (int64_t)v;
    if (!num_opt("--max-history", 100000, 2, 1e9, &v, &rc))
        return rc;
    c.models.max_history = (size_t)v;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (!num_opt("--job-threads", (double)ncpu, 1, 256, &v, &rc))
        return rc;
    c.models.job_threads = (int)v;
    if (!num_opt("--job-nice", 10, 0, 19, &v, &rc))
        return rc;
    c.models.job_nice = (int)v;
    if (!num_opt("--max-jobs", 64, 1, 1e6, &v, &rc))
        return rc;
    c.models.max_jobs = (int)v;
    if (!num_opt("--event-buffer", 4096, 16, 1e7, &v, &rc))
        return rc;
    c.models.event_buffer = (size_t)v;
    if (!num_opt("--event-interval", 0.1, 0, 3600, &c.models.event_interval, &rc))
        return rc;
    if (!num_opt("--timeout", 30, 1, 86400, &v, &rc))
        return rc;
    h->timeout = (unsigned)v;
    if (!num_opt("--header-timeout", 5, 0.1, 86400, &h->header_timeout, &rc) ||
        !num_opt("--request-timeout", 4.0 * h->timeout, 0.5, 86400, &h->request_timeout, &rc))
        return rc;
    if (!num_opt("--max-connections", 10000, 1, 1000000, &v, &rc))
        return rc;
    h->max_conns = (unsigned)v;
    if (!num_opt("--max-connections-per-ip", 0, 0, 1000000, &v, &rc))
        return rc;
    h->max_conns_per_ip = (unsigned)v;
    if (!num_opt("--io-threads", ncpu < 4 ? (double)ncpu : 4, 1, 256, &v, &rc))
        return rc;
    h->io_threads = (unsigned)v;
    if (!num_opt("--workers", (double)ncpu, 1, 1024, &v, &rc))
        return rc;
    h->workers = (unsigned)v;
    if (!num_opt("--max-queue", 1024, 1, 1e7, &v, &rc))
        return rc;
    h->max_queue = (unsigned)v;
    if (!num_opt("--max-train-seconds", 0, 0, 1e9, &c.models.max_train_seconds, &rc))
        return rc;
    if (!num_opt("--inline-macs", 262144, 0, 1e12, &h->inline_macs, &rc))
        return rc;
    if (!num_opt("--inline-train-macs", 4194304, 0, 1e12, &h->inline_train_macs, &rc))
        return rc;
    if (!num_opt("--drain-timeout", 60, 0, 86400, &h->drain_timeout, &rc))
        return rc;
    if (!num_opt("--blas-threads", 1, 1, 1024, &v, &rc))
        return rc;
    /* requests are the unit of parallelism: see docs/server.md */
    openblas_set_num_threads((int)v);

    etd_cors cors;
    char *cors_env = NULL;
    if (!read_cors(&cors, &cors_env))
        return 2;

    /* every thread created from here on inherits the blocked set */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    etd_err err;
    bool mpi = flag_on("--mpi");
    double mpi_timeout, mpi_check, mpi_bucket;
    if (!num_opt("--mpi-timeout", 10, 0.1, 86400, &mpi_timeout, &rc) ||
        !num_opt("--mpi-check-every", 10, 0, 1e12, &mpi_check, &rc) ||
        !num_opt("--mpi-bucket-mb", 0, 0, 1024, &mpi_bucket, &rc))
        return rc;
#ifdef ETD_HAVE_MPI
    etd_cluster_opts copts = {mpi_timeout, (int64_t)mpi_check, mpi_bucket};
    etd_cluster *cl = NULL;
    char rank_dir[4096];
    if (mpi) {
        /* a time limit is not the same on every rank: the replicas would part */
        if (c.models.max_train_seconds > 0)
            return die("%s", "--max-train-seconds cannot be used with --mpi");
        cl = etd_cluster_init(&argc, &argv, &copts, &err);
        if (!cl) {
            fprintf(stderr, "easytorchd: %s\n", err.msg);
            return 1;
        }
        int rank = etd_cluster_rank(cl);
        if (h->port != 0 && h->port + (unsigned)rank > 65535)
            return die("%s", "--listen: the port + the rank is past 65535");
        if (h->port != 0)
            h->port += (unsigned)rank;
        if (!etd_cluster_data_dir(cl, c.models.data_dir, rank_dir, sizeof rank_dir, &err)) {
            fprintf(stderr, "easytorchd: rank %d: %s\n", rank, err.msg);
            return 1;
        }
        c.models.data_dir = rank_dir;
        fprintf(stderr, "easytorchd: rank %d of %d (pid %ld, data dir %s)\n", rank,
                etd_cluster_size(cl), (long)getpid(), rank_dir);
    }
#else
    if (mpi)
        return die("%s", "--mpi: this easytorchd was built without MPI (install libopenmpi-dev "
                   "and configure with meson -Dmpi=enabled)");
#endif
    etd_registry *reg = etd_registry_new(&c.models, &err);
    if (!reg) {
        fprintf(stderr, "easytorchd: data dir: %s\n", err.msg);
        free(cors_env);
        return 1;
    }
    etd_app app = {.reg = reg, .json = c.json, .max_decoded_body = h->max_body, .cors = cors};
#ifdef ETD_HAVE_MPI
    if (cl && (!etd_cluster_sync_files(cl, c.models.data_dir, &err) ||
               !etd_cluster_attach(cl, &app, h, etd_routes, etd_nroutes, &err))) {
        fprintf(stderr, "easytorchd: rank %d: %s\n", etd_cluster_rank(cl), err.msg);
        return 1;
    }
#endif
    etd_server *srv = etd_server_start(&c.http, etd_routes, etd_nroutes, &app, &err);
    if (!srv) {
        fprintf(stderr, "easytorchd: %s\n", err.msg);
        etd_registry_free(reg);
        free(cors_env);
        return 1;
    }
    etd_registry_load_all(reg);
#ifdef ETD_HAVE_MPI
    if (cl && !etd_cluster_run(cl, &err)) {
        fprintf(stderr, "easytorchd: rank %d: %s\n", etd_cluster_rank(cl), err.msg);
        return 1;
    }
#endif
    etd_server_set_ready(srv, true);
    int nm = etd_registry_count(reg);
    fprintf(stderr, "easytorchd: ready (%d model%s, data dir %s, sync %s)\n", nm,
            nm == 1 ? "" : "s", c.models.data_dir, c.models.sync_always ? "always" : "interval");
    print_next_steps(h, etd_server_port(srv));

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
#ifdef ETD_HAVE_MPI
    if (cl) /* the replicas' jobs stop at one place in the order (after the same step) */
        etd_cluster_quiesce(cl);
#endif
    /* readiness is 503 once the log says so (probes and tests go by it) */
    etd_server_drain_begin(srv);
    fprintf(stderr, "easytorchd: %s received: draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    etd_registry_stop_jobs(reg); /* running jobs stop between two steps: "interrupted" */
    etd_server_shutdown(srv);
#ifdef ETD_HAVE_MPI
    if (cl) /* nothing is applied any more: the models can be saved */
        etd_cluster_stop(cl);
#endif
    int n = etd_registry_count(reg);
    etd_registry_free(reg); /* saves every changed model */
#ifdef ETD_HAVE_MPI
    etd_cluster_finish(cl);
#endif
    fprintf(stderr, "easytorchd: saved %d model%s, bye\n", n, n == 1 ? "" : "s");
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    free(cors_env);
    return 0;
}
