/* metrics.c - HTTP request counters and latency histograms (see metrics.h). */
#include "server/transport/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const int status_codes[] = {200, 201, 204, 400, 401, 404, 405, 409, 413, 500, 503, 507};
#define NSTATUS ((int)(sizeof status_codes / sizeof status_codes[0]) + 1) /* + "other" */
static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS ((int)(sizeof buckets / sizeof buckets[0]))
/* methods a 405 is counted under */
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                      "other"};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

typedef struct series {
    atomic_ulong count[NSTATUS];
    atomic_ulong bucket[NBUCKETS + 1];
    atomic_ullong sum_us;
} series;

/* Slots: [0, n) the routes; [n, n + n * NMETHODS) 405s by (pattern route,
 * method); the last one unmatched. */
struct etd_http_metrics {
    const etd_route *routes;
    int n, nslots;
    series s[];
};

etd_http_metrics *etd_http_metrics_new(const etd_route *routes, int n)
{
    int nslots = n + n * NMETHODS + 1;
    etd_http_metrics *m = calloc(1, sizeof *m + (size_t)nslots * sizeof(series));
    if (!m)
        return NULL;
    m->routes = routes;
    m->n = n;
    m->nslots = nslots;
    for (int i = 0; i < nslots; i++) {
        for (int k = 0; k < NSTATUS; k++)
            atomic_init(&m->s[i].count[k], 0);
        for (int k = 0; k <= NBUCKETS; k++)
            atomic_init(&m->s[i].bucket[k], 0);
        atomic_init(&m->s[i].sum_us, 0);
    }
    return m;
}

void etd_http_metrics_free(etd_http_metrics *m) { free(m); }

int etd_http_metrics_slot(const etd_http_metrics *m, int route, int pattern, const char *method)
{
    if (route >= 0 && route < m->n)
        return route;
    if (pattern >= 0 && pattern < m->n) {
        int k = NMETHODS - 1;
        for (int i = 0; i < NMETHODS - 1; i++)
            if (strcmp(methods[i], method) == 0)
                k = i;
        return m->n + pattern * NMETHODS + k;
    }
    return m->nslots - 1;
}

static int status_slot(int status)
{
    for (int i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status)
            return i;
    return NSTATUS - 1;
}

void etd_http_metrics_record(etd_http_metrics *m, int slot, int status, double secs)
{
    if (slot < 0 || slot >= m->nslots)
        slot = m->nslots - 1;
    series *s = &m->s[slot];
    atomic_fetch_add_explicit(&s->count[status_slot(status)], 1, memory_order_relaxed);
    int b = 0;
    while (b < NBUCKETS && secs > buckets[b])
        b++;
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, (unsigned long long)(secs * 1e6), memory_order_relaxed);
}

/* The labels of a slot. */
static void labels(const etd_http_metrics *m, int slot, const char **method, const char **route)
{
    if (slot < m->n) {
        *method = m->routes[slot].method;
        *route = m->routes[slot].pattern;
    } else if (slot < m->nslots - 1) {
        *method = methods[(slot - m->n) % NMETHODS];
        *route = m->routes[(slot - m->n) / NMETHODS].pattern;
    } else {
        *method = "any";
        *route = "unmatched";
    }
}

void etd_http_metrics_write(const etd_http_metrics *m, etd_buf *out)
{
    const char *method, *route;
    etd_buf_puts(out, "# HELP easytorch_http_requests_total HTTP requests by route and status.\n"
                 "# TYPE easytorch_http_requests_total counter\n");
    for (int r = 0; r < m->nslots; r++) {
        labels(m, r, &method, &route);
        for (int k = 0; k < NSTATUS; k++) {
            unsigned long c = atomic_load(&m->s[r].count[k]);
            if (!c)
                continue;
            if (k < NSTATUS - 1)
                etd_buf_printf(out, "easytorch_http_requests_total{method=\"%s\",route=\"%s\","
                               "status=\"%d\"} %lu\n", method, route, status_codes[k], c);
            else
                etd_buf_printf(out, "easytorch_http_requests_total{method=\"%s\",route=\"%s\","
                               "status=\"other\"} %lu\n", method, route, c);
        }
    }
    etd_buf_puts(out, "# HELP easytorch_http_request_duration_seconds Request latency.\n"
                 "# TYPE easytorch_http_request_duration_seconds histogram\n");
    for (int r = 0; r < m->nslots; r++) {
        unsigned long total = 0;
        for (int b = 0; b <= NBUCKETS; b++)
            total += atomic_load(&m->s[r].bucket[b]);
        if (!total)
            continue;
        labels(m, r, &method, &route);
        unsigned long cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += atomic_load(&m->s[r].bucket[b]);
            etd_buf_printf(out, "easytorch_http_request_duration_seconds_bucket{method=\"%s\","
                           "route=\"%s\",le=\"%g\"} %lu\n", method, route, buckets[b], cum);
        }
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_bucket{method=\"%s\","
                       "route=\"%s\",le=\"+Inf\"} %lu\n", method, route, total);
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_sum{method=\"%s\","
                       "route=\"%s\"} %.6f\n", method, route,
                       (double)atomic_load(&m->s[r].sum_us) / 1e6);
        etd_buf_printf(out, "easytorch_http_request_duration_seconds_count{method=\"%s\","
                       "route=\"%s\"} %lu\n", method, route, total);
    }
}
