/* base64.h - base64 text to bytes (internal; formats layer). */
#ifndef EASYTORCHD_BASE64_H
#define EASYTORCHD_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "server/formats/result.h"

/* Decode s[0..n) (RFC 4648, "=" padding optional); *out malloc'ed.
 * ETD_EINVAL naming the first bad character. */
etd_rc etd_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len, etd_err *e);

#endif
