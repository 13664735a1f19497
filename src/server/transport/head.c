/* head.c - the daemon's own check of a request head (head.h): request line,
 * header syntax and sizes from raw bytes, and the framing rules (Host,
 * Content-Length, Transfer-Encoding) on name/value pairs.  RFC 9112 and
 * 9110 are cited by section where a rule comes from them. */
#include "server/transport/head.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void refuse(etd_verdict *v, int status, bool close, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void refuse(etd_verdict *v, int status, bool close, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    v->status = status;
    v->close = v->close || close;
}

/* tchar (RFC 9110 5.6.2) */
static bool tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* s[0..n) without optional white space at both ends */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2); an empty
 * value is valid (a target without authority). */
static bool host_ok(const char *s, size_t n)
{
    trim(&s, &n);
    size_t i = 0;
    if (n && s[0] == '[') { /* IP-literal */
        for (i = 1; i < n && s[i] != ']'; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.' || c == 'v' || c == 'V'))
                return false;
        }
        if (i >= n || i == 1)
            return false;
        i++;
    } else { /* reg-name or IPv4address */
        for (; i < n && s[i] != ':'; i++) {
            unsigned char c = (unsigned char)s[i];
            bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      strchr("-._~!$&'()*+,;=%", c) != NULL;
            if (!c || !ok)
                return false;
        }
    }
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;
    for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool digits(const char *s, size_t n)
{
    trim(&s, &n);
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ---------------------------------------------------------------- framing */

/* The codings of one Transfer-Encoding value, appended to *last / counts. */
typedef struct te_state {
    int codings;                /* in all Transfer-Encoding lines, in order */
    int chunked;                /* how many of them are "chunked" */
    bool last_chunked;
    char other[40];             /* the first coding that is not chunked */
    bool bad;
} te_state;

static void te_parse(const char *v, size_t n, te_state *t)
{
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        const char *e = v + i;
        size_t el = j - i;
        const char *semi = memchr(e, ';', el); /* transfer-parameters (RFC 9112 7) */
        if (semi)
            el = (size_t)(semi - e);
        trim(&e, &el);
        if (el > 0) { /* empty list elements are allowed (RFC 9110 5.6.1) */
            if (!token(e, el)) {
                t->bad = true;
            } else {
                t->codings++;
                t->last_chunked = el == 7 && strncasecmp(e, "chunked", 7) == 0;
                if (t->last_chunked)
                    t->chunked++;
                else if (!t->other[0])
                    snprintf(t->other, sizeof t->other, "%.*s", (int)(el < 32 ? el : 32), e);
            }
        } else if (semi) {
            t->bad = true;
        }
        i = j + 1;
    }
}

void etd_framing_check(const etd_kv *h, int n, int minor, etd_verdict *v)
{
    memset(v, 0, sizeof *v);
    int hosts = 0;
    bool host_bad = false, have_cl = false;
    const char *cl = NULL;
    size_t cl_len = 0;
    te_state te = {0};
    bool have_te = false;
    for (int i = 0; i < n; i++) {
        const char *name = h[i].name;
        size_t nl = strlen(name);
        if (!token(name, nl)) {
            refuse(v, 400, true, "header \"%.40s\": not a valid field name (white space before "
                   "the colon, or a character outside a token)", name);
            return;
        }
        const char *val = h[i].value ? h[i].value : "";
        size_t vl = h[i].value ? h[i].value_len : 0;
        for (size_t k = 0; k < vl; k++)
            if (((unsigned char)val[k] < 0x20 && val[k] != '\t') || val[k] == 0x7f) {
                refuse(v, 400, true, "header \"%.40s\": control byte 0x%02x in the value", name,
                       (unsigned char)val[k]);
                return;
            }
        if (strcasecmp(name, "Host") == 0) {
            hosts++;
            host_bad = host_bad || !host_ok(val, vl);
        } else if (strcasecmp(name, "Content-Length") == 0) {
            if (!digits(val, vl)) {
                refuse(v, 400, true, "Content-Length: \"%.*s\" is not a decimal number",
                       (int)(vl < 40 ? vl : 40), val);
                return;
            }
            const char *t = val;
            size_t tl = vl;
            trim(&t, &tl);
            if (have_cl && (tl != cl_len || memcmp(t, cl, tl) != 0)) {
                /* the request-smuggling pattern */
                refuse(v, 400, true, "Content-Length: repeated with different values");
                return;
            }
            have_cl = true;
            cl = t;
            cl_len = tl;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            have_te = true;
            te_parse(val, vl, &te);
        }
    }
    if (minor >= 1 && hosts == 0) {
        refuse(v, 400, true, "Host: required in an HTTP/1.1 request (RFC 9112 3.2)");
        return;
    }
    if (hosts > 1) {
        refuse(v, 400, true, "Host: given %d times (exactly one is allowed)", hosts);
        return;
    }
    if (host_bad) {
        refuse(v, 400, true, "Host: not a valid host[:port]");
        return;
    }
    if (!have_te)
        return;
    /* RFC 9112 6.1 and 6.3: the body length is known only when chunked is
     * the final coding, applied once; other codings are not implemented */
    if (minor == 0) {
        refuse(v, 400, true, "Transfer-Encoding: not allowed in an HTTP/1.0 request");
        return;
    }
    if (te.bad || te.codings == 0) {
        refuse(v, 400, true, "Transfer-Encoding: not a list of transfer codings");
        return;
    }
    if (!te.last_chunked) {
        refuse(v, 400, true, "Transfer-Encoding: the final coding must be chunked (got \"%s\"); "
               "the body length cannot be determined", te.other);
        return;
    }
    if (te.chunked > 1) {
        refuse(v, 400, true, "Transfer-Encoding: chunked may be applied only once");
        return;
    }
    if (te.codings > 1) {
        refuse(v, 501, true, "Transfer-Encoding: \"%s\" is not implemented (only chunked is)",
               te.other);
        return;
    }
    v->chunked = true;
    if (have_cl) /* RFC 9112 6.3: Transfer-Encoding wins; close after answering */
        v->close = true;
}

/* ---------------------------------------------------------------- raw heads */

const char *etd_target_path(const char *t)
{
    const char *p = NULL;
    if (strncasecmp(t, "http://", 7) == 0)
        p = t + 7;
    else if (strncasecmp(t, "https://", 8) == 0)
        p = t + 8;
    if (!p)
        return t;
    p += strcspn(p, "/?#");
    return *p == '/' ? p : "/";
}

/* The end of the line starting at s (the LF), or NULL. */
static const char *eol(const char *s, const char *end)
{
    return memchr(s, '\n', (size_t)(end - s));
}

#define MAX_FIELDS 128

long etd_head_check(const char *buf, size_t n, etd_verdict *v)
{
    memset(v, 0, sizeof *v);
    const char *p = buf, *end = buf + n;
    /* RFC 9112 2.2: ignore at least one empty line before the request line */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\r' && (p + 1 >= end || p[1] != '\n'))
            break;
        p += *p == '\r' ? 2 : 1;
    }
    const char *le = eol(p, end);
    if (!le) {
        if ((size_t)(end - p) > ETD_URI_MAX + 32) {
            refuse(v, 414, true, "request target longer than %d bytes", ETD_URI_MAX);
            return (long)n;
        }
        if (n >= ETD_HEAD_MAX) {
            refuse(v, 431, true, "request head longer than %d bytes", ETD_HEAD_MAX);
            return (long)n;
        }
        return -1;
    }
    /* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
    const char *line_end = le > p && le[-1] == '\r' ? le - 1 : le;
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || !token(p, (size_t)(sp1 - p)) || sp2 == sp1 + 1) {
        refuse(v, 400, true, "malformed request line (expected METHOD SP TARGET SP HTTP/1.1)");
        return (long)(le + 1 - buf);
    }
    const char *tgt = sp1 + 1, *ver = sp2 + 1;
    size_t tl = (size_t)(sp2 - tgt), vl = (size_t)(line_end - ver);
    if (tl > ETD_URI_MAX) {
        refuse(v, 414, true, "request target longer than %d bytes", ETD_URI_MAX);
        return (long)(le + 1 - buf);
    }
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)tgt[i] <= 0x20 || (unsigned char)tgt[i] >= 0x7f) {
            refuse(v, 400, true, "request target: byte 0x%02x at %zu is not allowed",
                   (unsigned char)tgt[i], i);
            return (long)(le + 1 - buf);
        }
    bool origin = tgt[0] == '/', star = tl == 1 && tgt[0] == '*';
    bool absolute = (tl > 7 && strncasecmp(tgt, "http://", 7) == 0) ||
                    (tl > 8 && strncasecmp(tgt, "https://", 8) == 0);
    if (!origin && !star && !absolute) {
        refuse(v, 400, true, "request target: expected /path, an absolute http:// URI or *");
        return (long)(le + 1 - buf);
    }
    if (vl != 8 || strncmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        refuse(v, 400, true, "malformed HTTP version \"%.*s\"", (int)(vl < 16 ? vl : 16), ver);
        return (long)(le + 1 - buf);
    }
    int major = ver[5] - '0', minor = ver[7] - '0';
    if (major != 1) {
        refuse(v, 505, true, "HTTP/%d.%d is not supported (HTTP/1.0 and HTTP/1.1 are)", major,
               minor);
        return (long)(le + 1 - buf);
    }
    /* header fields */
    etd_kv fields[MAX_FIELDS];
    char names[MAX_FIELDS][64];
    int nf = 0;
    const char *q = le + 1;
    for (int line = 1;; line++) {
        const char *e = eol(q, end);
        if (!e) {
            if (n >= ETD_HEAD_MAX) {
                refuse(v, 431, true, "request head longer than %d bytes", ETD_HEAD_MAX);
                return (long)n;
            }
            return -1;
        }
        const char *ce = e > q && e[-1] == '\r' ? e - 1 : e;
        if ((size_t)(e + 1 - buf) > ETD_HEAD_MAX) {
            refuse(v, 431, true, "request head longer than %d bytes", ETD_HEAD_MAX);
            return (long)(e + 1 - buf);
        }
        if (ce == q) { /* the empty line: end of the head */
            long len = (long)(e + 1 - buf);
            etd_framing_check(fields, nf, minor, v);
            return len;
        }
        if (*q == ' ' || *q == '\t') {
            refuse(v, 400, true, "header line %d: obsolete line folding is not accepted "
                   "(RFC 9112 5.2)", line);
            return (long)(e + 1 - buf);
        }
        const char *colon = memchr(q, ':', (size_t)(ce - q));
        if (!colon) {
            refuse(v, 400, true, "header line %d: no colon", line);
            return (long)(e + 1 - buf);
        }
        for (const char *c = colon + 1; c < ce; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
                refuse(v, 400, true, "header line %d: control byte 0x%02x in the value", line,
                       (unsigned char)*c);
                return (long)(e + 1 - buf);
            }
        size_t nl = (size_t)(colon - q);
        if (!token(q, nl)) {
            refuse(v, 400, true, "header line %d: \"%.*s\" is not a valid field name (white "
                   "space before the colon?)", line, (int)(nl < 40 ? nl : 40), q);
            return (long)(e + 1 - buf);
        }
        /* only the fields the framing rules read are kept */
        static const char *const wanted[] = {"Host", "Content-Length", "Transfer-Encoding"};
        for (int w = 0; w < 3; w++)
            if (nl == strlen(wanted[w]) && strncasecmp(q, wanted[w], nl) == 0) {
                if (nf == MAX_FIELDS) {
                    refuse(v, 400, true, "too many Host, Content-Length or Transfer-Encoding "
                           "fields");
                    return (long)(e + 1 - buf);
                }
                snprintf(names[nf], sizeof names[nf], "%s", wanted[w]);
                const char *val = colon + 1;
                size_t vlen = (size_t)(ce - val);
                trim(&val, &vlen);
                fields[nf] = (etd_kv){names[nf], val, vlen};
                nf++;
            }
        q = e + 1;
    }
}
