/* cors.c - Cross-Origin Resource Sharing for browser clients served from
 * other origins (--cors-origin ORIGIN, repeatable).  An answer to a request
 * whose Origin is allowed carries Access-Control-Allow-Origin (and the
 * headers a script may read); a preflight OPTIONS is answered 204 before
 * authentication (browsers send it without the token) with the methods of
 * the path.  Without --cors-origin no CORS header is ever sent, so browsers
 * keep other origins out (the same-origin dashboard needs none). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/endpoints/endpoint.h"

static const char *header(const etd_kv *h, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* The Access-Control-Allow-Origin value for this request, or NULL. */
static const char *allowed(const etd_cors *cors, const etd_kv *h, int n)
{
    const char *origin = header(h, n, "Origin");
    if (!cors || !cors->n || !origin || !origin[0])
        return NULL;
    for (int i = 0; i < cors->n; i++) {
        if (strcmp(cors->origins[i], "*") == 0)
            return "*";
        if (strcmp(cors->origins[i], origin) == 0)
            return origin;
    }
    return NULL;
}

void etd_cors_answer(const etd_cors *cors, const etd_kv *h, int n, etd_response *rs)
{
    if (!cors || !cors->n)
        return;
    etd_response_header(rs, "Vary", "Origin");
    const char *o = allowed(cors, h, n);
    if (!o)
        return;
    etd_response_header(rs, "Access-Control-Allow-Origin", o);
    etd_response_header(rs, "Access-Control-Expose-Headers",
                        "Content-Disposition, Inference-Header-Content-Length, WWW-Authenticate, "
                        "Allow");
}

void etd_cors_preflight(const etd_cors *cors, const etd_kv *h, int n, const char *allow,
                        etd_response *rs)
{
    rs->status = 204;
    char methods[160];
    snprintf(methods, sizeof methods, "%s, OPTIONS", allow);
    etd_response_header(rs, "Allow", methods);
    const char *o = allowed(cors, h, n);
    if (cors && cors->n)
        etd_response_header(rs, "Vary", "Origin, Access-Control-Request-Method, "
                            "Access-Control-Request-Headers");
    if (!o || !header(h, n, "Access-Control-Request-Method"))
        return; /* a plain OPTIONS, or an origin that is not allowed: no CORS headers */
    etd_response_header(rs, "Access-Control-Allow-Origin", o);
    etd_response_header(rs, "Access-Control-Allow-Methods", methods);
    const char *req = header(h, n, "Access-Control-Request-Headers");
    /* the headers a script may send; echoing the request's covers custom ones */
    etd_response_header(rs, "Access-Control-Allow-Headers",
                        req && req[0] ? req
                                      : "Authorization, Content-Type, Content-Encoding, Accept, "
                                        "Inference-Header-Content-Length, Last-Event-ID");
    etd_response_header(rs, "Access-Control-Max-Age", "600");
}
