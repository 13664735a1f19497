/* dispatch.c - requests without a socket: etd_dispatch drives the same
 * pipeline as the libmicrohttpd callbacks, for the Check tests and the
 * request fuzzer. */
#include <stdlib.h>
#include <string.h>

#include "server/transport/transport_internal.h"

#define MAX_ARGS 64

etd_server *etd_server_new_detached(const etd_transport_opts *o, const etd_route *routes, int n,
                                    const etd_app *app)
{
    etd_server *s = calloc(1, sizeof *s);
    if (!s || !etd_server_init(s, o, routes, n, app)) {
        free(s);
        return NULL;
    }
    atomic_store(&s->ready, true);
    return s;
}

/* Split qbuf ("a=1&b=%41") into decoded arguments as libmicrohttpd does
 * ('+' is a space, then the unescape rule); returns how many. */
static int parse_args(char *qbuf, etd_kv *kv, int cap)
{
    char *p = qbuf;
    int n = 0;
    while (p && *p && n < cap) {
        char *amp = strchr(p, '&');
        if (amp)
            *amp = '\0';
        if (*p) {
            char *eq = strchr(p, '=');
            if (eq)
                *eq++ = '\0';
            for (char *c = p; *c; c++)
                if (*c == '+')
                    *c = ' ';
            etd_unescape(p);
            size_t vl = 0;
            if (eq) {
                for (char *c = eq; *c; c++)
                    if (*c == '+')
                        *c = ' ';
                vl = etd_unescape(eq);
            }
            kv[n++] = (etd_kv){p, eq, vl};
        }
        p = amp ? amp + 1 : NULL;
    }
    return n;
}

int etd_dispatch(etd_server *s, const char *method, const char *url,
                 const char *const *names, const char *const *values,
                 const size_t *value_lens, int n, const char *body, size_t body_len,
                 char **resp, size_t *resp_len, const char **content_type)
{
    *resp = NULL;
    *resp_len = 0;
    *content_type = "application/json";
    n = n > 0 ? n : 0;
    const char *qm = strchr(url, '?');
    size_t plen = qm ? (size_t)(qm - url) : strlen(url);
    char *path = malloc(plen + 1);
    char *qbuf = qm ? strdup(qm + 1) : NULL;
    etd_kv *hk = calloc((size_t)n + 1, sizeof *hk);
    etd_kv args[MAX_ARGS];
    int status = 0;
    if (!path || (qm && !qbuf) || !hk)
        goto out;
    memcpy(path, url, plen);
    path[plen] = '\0';
    etd_unescape(path);
    int nargs = parse_args(qbuf, args, MAX_ARGS);
    /* headers as on the wire: a NUL inside a name or value is refused */
    bool nul = false;
    int nh = 0;
    for (int i = 0; i < n; i++) {
        const char *k = names[i], *v = values[i];
        size_t vl = value_lens ? value_lens[i] : v ? strlen(v) : 0;
        if (!k || (v && strlen(v) != vl)) {
            nul = true;
            continue;
        }
        hk[nh++] = (etd_kv){k, v, vl};
    }
    etd_exchange *x = etd_exchange_new(s, NULL, method, path, hk, nh, nul, args, nargs);
    if (!x)
        goto out;
    bool ok = true;
    if (!etd_exchange_admit(x)) {
        if (body_len > 0)
            ok = etd_exchange_upload(x, body, body_len);
        ok = ok && etd_exchange_run(x);
    }
    if (ok) {
        const void *data;
        size_t len;
        bool must_free;
        etd_response_finish(&x->rs, strcmp(method, "HEAD") == 0, &data, &len, &must_free);
        *resp = malloc(len + 1);
        if (*resp) {
            if (len)
                memcpy(*resp, data, len);
            (*resp)[len] = '\0';
            *resp_len = len;
            *content_type = x->rs.content_type ? x->rs.content_type : "application/json";
            status = x->rs.status;
        } else {
            x->answered = false;
        }
        if (must_free)
            free((void *)data);
    }
    etd_exchange_end(x, ok && status != 0);
out:
    free(hk);
    free(qbuf);
    free(path);
    return status;
}
