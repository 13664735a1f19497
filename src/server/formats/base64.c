/* base64.c - RFC 4648 base64 (standard alphabet, padding optional) into
 * bytes, for models sent inside JSON (ONNX import).  See base64.h. */
#include "server/formats/base64.h"

#include <stdlib.h>

static int val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

etd_rc etd_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len, etd_err *e)
{
    *out = NULL;
    *len = 0;
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return etd_fail(e, ETD_EINVAL, "not base64: %zu characters cannot encode whole bytes", n);
    uint8_t *b = malloc(n / 4 * 3 + 3);
    if (!b)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = val((unsigned char)s[i]);
        if (v < 0) {
            free(b);
            return etd_fail(e, ETD_EINVAL, "not base64: character %zu is not of the alphabet", i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = b;
    *len = k;
    return ETD_OK;
}
