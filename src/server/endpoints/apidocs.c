/* apidocs.c - the API's own description: GET /openapi.json (docs/openapi.json,
 * the OpenAPI 3.1 document that is the source of truth of the HTTP API) and
 * the reference page GET /docs that renders it in the browser without any
 * network access (clients/apidocs/), both embedded at build time. */
#include <string.h>

#include "server/endpoints/assets.h"
#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

static void serve(etd_call *c, const char *name)
{
    const etd_asset *a = etd_asset_find(etd_api_assets, name);
    if (!a) { /* the build embeds them all; a route only matches existing ones */
        ep_error(c, 404, "no route GET %s", c->rq->path);
        return;
    }
    c->rs->raw = a->data;
    c->rs->raw_len = a->len;
    c->rs->content_type = etd_mime_type(a->name);
}

void etd_h_openapi(etd_call *c) { serve(c, "openapi.json"); }

void etd_h_docs(etd_call *c) { serve(c, "index.html"); }

void etd_h_docs_asset(etd_call *c) { serve(c, c->rq->asset); }

bool etd_docs_asset_exists(const char *name)
{
    return strcmp(name, "openapi.json") != 0 && strcmp(name, "index.html") != 0 &&
           etd_asset_find(etd_api_assets, name) != NULL;
}
