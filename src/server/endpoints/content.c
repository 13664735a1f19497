/* content.c - what a request body is and how an answer is encoded: the
 * request's Content-Encoding (gzip, deflate: inflated under a size limit)
 * and Content-Type (JSON, safetensors, the OIP binary extension; 415 for a
 * type the route does not take), and the answer's Accept (JSON or
 * safetensors, 406) and Accept-Encoding (gzip, deflate). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "server/endpoints/common.h"
#include "server/formats/tensor_st.h"

#define DEFAULT_MAX_DECODED ((size_t)64 << 20)
#define COMPRESS_MIN 1024 /* smaller answers are sent as they are */

/* ---------------------------------------------------------------- header values */

/* The media type of a Content-Type value, lowercased, without parameters. */
static void media_type(const char *v, char *out, size_t cap)
{
    size_t n = 0;
    while (v && (*v == ' ' || *v == '\t'))
        v++;
    for (; v && *v && *v != ';' && *v != ' ' && *v != '\t' && n + 1 < cap; v++)
        out[n++] = (char)tolower((unsigned char)*v);
    out[n] = '\0';
}

/* One element of a comma list ("gzip;q=0.5"): its token (lowercased) and q. */
typedef struct list_item {
    char token[80];
    double q;
} list_item;

/* The next element of a comma-separated header value at *p; false at the end. */
static bool next_item(const char **p, list_item *it)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (!*s)
        return false;
    size_t n = 0;
    while (*s && *s != ',' && *s != ';' && *s != ' ' && *s != '\t') {
        if (n + 1 < sizeof it->token)
            it->token[n++] = (char)tolower((unsigned char)*s);
        s++;
    }
    it->token[n] = '\0';
    it->q = 1.0;
    while (*s && *s != ',') { /* parameters: only q matters */
        while (*s == ' ' || *s == '\t' || *s == ';')
            s++;
        if ((s[0] == 'q' || s[0] == 'Q') && s[1] == '=') {
            char *end;
            double q = strtod(s + 2, &end);
            if (end != s + 2)
                it->q = q < 0 ? 0 : q > 1 ? 1 : q;
            s = end;
        }
        while (*s && *s != ',' && *s != ';')
            s++;
    }
    *p = s;
    return true;
}

/* q of media type `type` ("application/json") under an Accept value, with
 * the specificity of the range that gave it (2 exact, 1 type/star, 0 star);
 * -1 when no range matches. */
static double accept_q(const char *accept, const char *type, int *spec)
{
    double q = -1;
    *spec = -1;
    const char *slash = strchr(type, '/');
    size_t tl = slash ? (size_t)(slash - type) : strlen(type);
    list_item it;
    const char *p = accept;
    while (next_item(&p, &it)) {
        int s = -1;
        if (strcmp(it.token, type) == 0)
            s = 2;
        else if (strncmp(it.token, type, tl) == 0 && strcmp(it.token + tl, "/*") == 0)
            s = 1;
        else if (strcmp(it.token, "*/*") == 0 || strcmp(it.token, "*") == 0)
            s = 0;
        if (s > *spec) {
            *spec = s;
            q = it.q;
        }
    }
    return q;
}

/* q of a coding ("gzip") under an Accept-Encoding value (-1: not listed). */
static double coding_q(const char *v, const char *coding)
{
    double q = -1, star = -1;
    list_item it;
    const char *p = v;
    while (next_item(&p, &it)) {
        if (strcmp(it.token, coding) == 0 || (strcmp(coding, "gzip") == 0 &&
                                              strcmp(it.token, "x-gzip") == 0))
            q = it.q;
        else if (strcmp(it.token, "*") == 0)
            star = it.q;
    }
    return q >= 0 ? q : star;
}

/* ---------------------------------------------------------------- inflating */

static bool inflate_body(etd_call *c, const char *coding, const char *in, size_t n, size_t limit,
                         char **out, size_t *outlen)
{
    bool gzip = strcmp(coding, "gzip") == 0;
    const unsigned char *u = (const unsigned char *)in;
    /* "deflate" is the zlib format (RFC 9110); some clients send raw deflate */
    bool zlib_hdr = n >= 2 && (u[0] & 0x0f) == 8 && ((u[0] << 8) | u[1]) % 31 == 0;
    int bits = gzip ? 16 + MAX_WBITS : zlib_hdr ? MAX_WBITS : -MAX_WBITS;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, bits) != Z_OK) {
        ep_error(c, 500, "out of memory");
        return false;
    }
    size_t cap = n * 4 + 4096 < limit ? n * 4 + 4096 : limit + 1;
    char *buf = malloc(cap + 1);
    size_t len = 0;
    bool ok = buf != NULL;
    if (!ok)
        ep_error(c, 500, "out of memory");
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    size_t left = n - z.avail_in;
    while (ok) {
        if (len == cap) {
            if (cap > limit) {
                ep_error(c, 413, "body: more than %zu bytes once decompressed (%s); the limit "
                         "is --max-body", limit, coding);
                ok = false;
                break;
            }
            size_t nc = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                ep_error(c, 500, "out of memory");
                ok = false;
                break;
            }
            buf = nb;
            cap = nc;
        }
        z.next_out = (Bytef *)buf + len;
        size_t room = cap - len;
        z.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
        uInt before = z.avail_out;
        int r = inflate(&z, Z_NO_FLUSH);
        len += before - z.avail_out;
        if (z.avail_in == 0 && left) { /* bodies over 4 GiB come in pieces */
            z.avail_in = (uInt)(left > UINT32_MAX ? UINT32_MAX : left);
            left -= z.avail_in;
        }
        if (r == Z_STREAM_END) {
            /* gzip may concatenate members (RFC 1952); anything else after the end is bad */
            if (gzip && z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
                inflateReset(&z);
                continue;
            }
            if (z.avail_in || left) {
                ep_error(c, 400, "body: %u bytes after the end of the %s data", z.avail_in,
                         coding);
                ok = false;
            }
            break;
        }
        if (r == Z_BUF_ERROR && z.avail_in == 0 && !left) {
            ep_error(c, 400, "body: the %s data is truncated (it ends before its stream does)",
                     coding);
            ok = false;
            break;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            ep_error(c, r == Z_MEM_ERROR ? 500 : 400, "body: invalid %s data (%s)", coding,
                     z.msg ? z.msg : r == Z_MEM_ERROR ? "out of memory" : "corrupt stream");
            ok = false;
            break;
        }
    }
    inflateEnd(&z);
    if (!ok) {
        free(buf);
        return false;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return true;
}

/* ---------------------------------------------------------------- the request body */

/* The body types of a route, for 415 messages. */
static const char *takes(const etd_route *r)
{
    if (r->flags & ETD_R_OIP)
        return "application/json, or the binary tensor extension (Inference-Header-Content-Length)";
    if (r->flags & ETD_R_BINARY)
        return "application/json or application/octet-stream (safetensors)";
    if (r->flags & ETD_R_ONNX)
        return "application/json or application/onnx (an ONNX model file)";
    return "application/json";
}

bool ep_body_prepare(etd_call *c, const etd_route *route, etd_request *local)
{
    const etd_request *rq = c->rq;
    c->kind = rq->body_len ? ETD_BODY_JSON : ETD_BODY_NONE;
    if (!(route->flags & ETD_R_BODY))
        return true; /* the transport read and dropped it */
    /* 1. Content-Encoding */
    const char *ce = ep_header(c, "Content-Encoding");
    char coding[32] = "";
    media_type(ce, coding, sizeof coding);
    if (strcmp(coding, "x-gzip") == 0)
        strcpy(coding, "gzip");
    if (ce && strchr(ce, ',')) {
        ep_error(c, 415, "Content-Encoding: %s: one coding at most (gzip, deflate or identity)",
                 ce);
        etd_response_header(c->rs, "Accept-Encoding", "gzip, deflate, identity");
        return false;
    }
    if (coding[0] && strcmp(coding, "identity") != 0) {
        if (strcmp(coding, "gzip") != 0 && strcmp(coding, "deflate") != 0) {
            ep_error(c, 415, "Content-Encoding: %s is not supported (gzip, deflate or identity)",
                     coding);
            etd_response_header(c->rs, "Accept-Encoding", "gzip, deflate, identity");
            return false;
        }
        size_t limit = rq->app->max_decoded_body ? rq->app->max_decoded_body : DEFAULT_MAX_DECODED;
        size_t n;
        if (!inflate_body(c, coding, rq->body, rq->body_len, limit, &c->decoded, &n))
            return false;
        *local = *rq;
        local->body = c->decoded;
        local->body_len = n;
        local->body_shared = false;
        c->rq = rq = local;
        c->kind = n ? ETD_BODY_JSON : ETD_BODY_NONE;
    }
    if (!rq->body_len)
        return true;
    /* 2. what the bytes are */
    char ct[96] = "";
    media_type(ep_header(c, "Content-Type"), ct, sizeof ct);
    const unsigned char *b = (const unsigned char *)rq->body;
    bool st = etd_st_sniff(rq->body, rq->body_len);
    if ((route->flags & ETD_R_OIP) && ep_header(c, "Inference-Header-Content-Length")) {
        c->kind = ETD_BODY_OIP;
        return true;
    }
    if ((route->flags & ETD_R_ONNX) && strcmp(ct, "application/onnx") == 0) {
        c->kind = ETD_BODY_ONNX;
        return true;
    }
    size_t ctl = strlen(ct);
    bool json = strcmp(ct, "application/json") == 0 ||
                (ctl > 5 && strcmp(ct + ctl - 5, "+json") == 0);
    /* curl -d sends application/x-www-form-urlencoded: read as JSON unless
     * the bytes say otherwise (as without a Content-Type) */
    bool loose = !ct[0] || strcmp(ct, "application/x-www-form-urlencoded") == 0 ||
                 strcmp(ct, "text/plain") == 0;
    if (strcmp(ct, "application/octet-stream") == 0 || (loose && st)) {
        if (route->flags & ETD_R_BINARY) {
            c->kind = ETD_BODY_SAFETENSORS;
            return true;
        }
        ep_error(c, 415, "%s%s: %s %s takes %s", ct[0] ? "Content-Type " : "body",
                 ct[0] ? ct : " (a safetensors file?)", route->method, route->pattern,
                 takes(route));
        return false;
    }
    if (loose && rq->body_len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        ep_error(c, 415, "body: looks gzip-compressed (starts with 1f 8b): send it with "
                 "Content-Encoding: gzip");
        return false;
    }
    if (json || loose) {
        c->kind = ETD_BODY_JSON;
        return true;
    }
    ep_error(c, 415, "Content-Type %s: %s %s takes %s", ct, route->method, route->pattern,
             takes(route));
    return false;
}

/* ---------------------------------------------------------------- the answer */

bool ep_wants_binary(etd_call *c, bool *binary)
{
    *binary = false;
    c->vary_accept = true;
    const char *acc = ep_header(c, "Accept");
    if (!acc || !acc[0])
        return true;
    int sj, so;
    double qj = accept_q(acc, "application/json", &sj);
    double qo = accept_q(acc, "application/octet-stream", &so);
    if (qj <= 0 && qo <= 0) {
        ep_error(c, 406, "Accept: %.100s: %s %s answers application/json or "
                 "application/octet-stream (safetensors)", acc, c->rq->method, c->route->pattern);
        return false;
    }
    *binary = qo > qj || (qo == qj && so > sj);
    return true;
}

bool ep_reply_st(etd_call *c, const char *const *names, et_tensor *const *t, int n,
                 const char *const *meta)
{
    void *buf;
    size_t len;
    if (!ep_ok(c, etd_st_encode(names, t, n, meta, &buf, &len, &c->e)))
        return false;
    etd_buf_free(&c->rs->body);
    c->rs->raw = buf;
    c->rs->raw_len = len;
    c->rs->raw_free = true;
    c->rs->content_type = "application/octet-stream";
    return true;
}

/* Compress the answer for Accept-Encoding (gzip preferred). */
void ep_encode_answer(etd_call *c)
{
    etd_response *rs = c->rs;
    etd_response_header(rs, "Vary", c->vary_accept ? "Accept, Accept-Encoding" : "Accept-Encoding");
    const char *ae = ep_header(c, "Accept-Encoding");
    if (!ae || rs->status == 204 || rs->status < 200 || rs->body.oom)
        return;
    const char *ct = rs->content_type ? rs->content_type : "application/json";
    if (strncmp(ct, "image/", 6) == 0)
        return; /* already compressed */
    const char *coding = coding_q(ae, "gzip") > 0 ? "gzip" : coding_q(ae, "deflate") > 0 ? "deflate"
                                                                                           : NULL;
    if (!coding)
        return;
    /* the bytes as they would be sent (JSON with its final newline) */
    const void *data = rs->raw;
    size_t len = rs->raw_len;
    if (!data) {
        if (rs->body.len == 0 || rs->body.data[rs->body.len - 1] != '\n')
            etd_buf_putc(&rs->body, '\n');
        if (rs->body.oom)
            return;
        data = rs->body.data;
        len = rs->body.len;
    }
    if (len < COMPRESS_MIN)
        return;
    z_stream z;
    memset(&z, 0, sizeof z);
    /* level 1: several times smaller for JSON numbers at a fraction of level 6's time */
    if (deflateInit2(&z, 1, Z_DEFLATED, strcmp(coding, "gzip") == 0 ? 16 + MAX_WBITS : MAX_WBITS,
                     8, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    unsigned char *out = malloc(cap);
    if (!out || len > UINT32_MAX || cap > UINT32_MAX) {
        free(out);
        deflateEnd(&z);
        return; /* sent uncompressed */
    }
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    size_t olen = cap - z.avail_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(out);
        return;
    }
    if (rs->raw_free)
        free((void *)rs->raw);
    etd_buf_free(&rs->body);
    rs->raw = out;
    rs->raw_len = olen;
    rs->raw_free = true;
    rs->content_type = ct;
    etd_response_header(rs, "Content-Encoding", coding);
}
