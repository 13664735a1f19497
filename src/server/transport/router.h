/*
 * router.h - matching a request against a route table (internal to
 * src/server/transport).
 */
#ifndef EASYTORCHD_ROUTER_H
#define EASYTORCHD_ROUTER_H

#include "server/endpoints/endpoint.h"

typedef struct etd_captures {
    char name[72];              /* {name} */
    char asset[72];             /* {asset} */
    char version[72];           /* {version} */
    char id[24];                /* {id}: a job id (the handler checks it is one) */
} etd_captures;

typedef struct etd_match {
    int route;                  /* index of the route, or -1 */
    int status;                 /* 404 or 405 when route < 0 */
    int pattern;                /* for a 405: the first route whose pattern matched */
    char allow[128];            /* for a 405: the methods the path takes ("GET, POST") */
} etd_match;

/* The route of routes[n] for method and (unescaped) path; GET routes also
 * take HEAD.  A capture must fit and be accepted by the route's accept
 * hook. */
etd_match etd_route_match(const etd_route *routes, int n, const char *method, const char *path,
                          etd_captures *cap);

#endif
