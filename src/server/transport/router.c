/* router.c - route matching over the table the transport is handed. */
#include "server/transport/router.h"

#include <stdio.h>
#include <string.h>

/* Match path against pattern segment by segment; fills the captures. */
static bool match(const etd_route *r, const char *path, etd_captures *cap)
{
    const char *p = r->pattern, *u = path;
    for (;;) {
        if (*p == '\0' || *u == '\0')
            return *p == '\0' && *u == '\0';
        if (*p != '/' || *u != '/')
            return false;
        p++;
        u++;
        const char *pe = strchr(p, '/'), *ue = strchr(u, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t ul = ue ? (size_t)(ue - u) : strlen(u);
        char *dst = NULL;
        size_t dcap = 0;
        if (pl == 6 && strncmp(p, "{name}", 6) == 0) {
            dst = cap->name;
            dcap = sizeof cap->name;
        } else if (pl == 7 && strncmp(p, "{asset}", 7) == 0) {
            dst = cap->asset;
            dcap = sizeof cap->asset;
        } else if (pl == 9 && strncmp(p, "{version}", 9) == 0) {
            dst = cap->version;
            dcap = sizeof cap->version;
        } else if (pl == 4 && strncmp(p, "{id}", 4) == 0) {
            dst = cap->id;
            dcap = sizeof cap->id;
        } else if (pl != ul || strncmp(p, u, pl) != 0) {
            return false;
        }
        if (dst) {
            if (ul == 0 || ul >= dcap)
                return false;
            memcpy(dst, u, ul);
            dst[ul] = '\0';
            if (r->accept && !r->accept(dst))
                return false;
        }
        p += pl;
        u += ul;
    }
}

static bool method_ok(const char *want, const char *got)
{
    return strcmp(want, got) == 0 || (strcmp(want, "GET") == 0 && strcmp(got, "HEAD") == 0);
}

etd_match etd_route_match(const etd_route *routes, int n, const char *method, const char *path,
                          etd_captures *cap)
{
    etd_match m = {.route = -1, .status = 404, .pattern = -1};
    for (int i = 0; i < n; i++) {
        etd_captures c;
        c.name[0] = c.asset[0] = c.version[0] = c.id[0] = '\0';
        if (!match(&routes[i], path, &c))
            continue;
        if (method_ok(routes[i].method, method)) {
            *cap = c;
            m.route = i;
            m.status = 200;
            return m;
        }
        if (m.pattern < 0)
            m.pattern = i;
        if (!strstr(m.allow, routes[i].method)) {
            size_t l = strlen(m.allow);
            snprintf(m.allow + l, sizeof m.allow - l, "%s%s", l ? ", " : "", routes[i].method);
        }
        m.status = 405;
    }
    return m;
}
