/*
 * metrics.h - HTTP request metrics of one server, in Prometheus text
 * (internal to src/server/transport).
 *
 * Series are labelled by route pattern and method: a request that matched
 * a route by the route's own (HEAD is counted under its GET route); a 405
 * by the pattern its path matched and the method it used; anything else
 * (404, refused before routing) as route="unmatched", method="any".
 */
#ifndef EASYTORCHD_METRICS_H
#define EASYTORCHD_METRICS_H

#include "server/endpoints/endpoint.h"

typedef struct etd_http_metrics etd_http_metrics;

/* Counters for the routes of routes[n] (borrowed: they must outlive it). */
etd_http_metrics *etd_http_metrics_new(const etd_route *routes, int n);
void etd_http_metrics_free(etd_http_metrics *m);
/* The series of a request: route >= 0 matched; else pattern >= 0 (a 405,
 * with the request's method); else unmatched. */
int etd_http_metrics_slot(const etd_http_metrics *m, int route, int pattern, const char *method);
/* Count one request of that series (status 0: no answer was sent). */
void etd_http_metrics_record(etd_http_metrics *m, int slot, int status, double secs);
/* easytorch_http_requests_total and easytorch_http_request_duration_seconds. */
void etd_http_metrics_write(const etd_http_metrics *m, etd_buf *out);

#endif
