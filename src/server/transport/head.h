/*
 * head.h - the daemon's own check of an HTTP/1.1 request head (internal to
 * src/server/transport), RFC 9112 as a strict server reads it.
 *
 * Two entry points, one set of rules:
 *   - etd_head_check() reads the raw bytes of a first request on a new
 *     connection, before libmicrohttpd sees the socket (acceptor.c): the
 *     request line, header syntax, sizes, then etd_framing_check();
 *   - etd_framing_check() reads headers already split into name/value
 *     pairs -- libmicrohttpd's, for the later requests of a keep-alive
 *     connection (pipeline.c) -- and rules on Host, Content-Length and
 *     Transfer-Encoding.
 * Refusals carry the HTTP status and a message for {"error": ...}.  No
 * libmicrohttpd here.
 */
#ifndef EASYTORCHD_HEAD_H
#define EASYTORCHD_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "server/endpoints/endpoint.h"

#define ETD_HEAD_MAX 16384        /* a request head (line + headers) longer is refused: 431 */
#define ETD_URI_MAX 8192          /* a request target longer is refused: 414 */

typedef struct etd_verdict {
    int status;                 /* 0: acceptable; else the HTTP status of the refusal */
    bool close;                 /* answer, then close the connection (RFC 9112 6.3) */
    bool chunked;               /* the body is chunked */
    char msg[240];
} etd_verdict;

/* Host, Content-Length and Transfer-Encoding of a request of HTTP/1.minor
 * with headers h[n] (names as sent: a name with white space before its
 * colon arrives as "Host "):
 *   - not exactly one Host (HTTP/1.1; at most one for 1.0), or a Host that
 *     is not a valid host[:port] -> 400;
 *   - a header name that is not a token (white space before the colon) -> 400;
 *   - Content-Length not 1*DIGIT, or repeated with different values -> 400;
 *   - Transfer-Encoding whose last coding is not chunked, chunked twice, or
 *     in an HTTP/1.0 request -> 400 and close; chunked after another coding
 *     (gzip, chunked) -> 501 and close (no transfer coding but chunked is
 *     implemented);
 *   - Content-Length together with Transfer-Encoding: served by the
 *     transfer coding, then the connection is closed (v->close).
 * Returns v->status == 0 when acceptable. */
void etd_framing_check(const etd_kv *h, int n, int minor, etd_verdict *v);

/* The first n bytes received on a connection.  Returns -1 while the head
 * is incomplete (read more; n >= ETD_HEAD_MAX is already a 431 or 414),
 * else the length of the head (request line, headers and the blank line)
 * with *v telling whether it is acceptable: the request line is
 * method SP request-target SP HTTP/1.x (a target in origin form
 * "/path?query", absolute form "http://host/path" or "*"), every header
 * line is name ":" value without control bytes, no obsolete line folding,
 * and etd_framing_check() passes.  HTTP/2 and later or before 1.0 -> 505.
 * On a refusal the returned length is where reading stopped. */
long etd_head_check(const char *buf, size_t n, etd_verdict *v);

/* The path of a request target: "/x?y" for "/x?y", "/x" for the absolute
 * form "http://host:port/x", "/" for "http://host".  Borrowed from target. */
const char *etd_target_path(const char *target);

#endif
