/*
 * jsonout.h - a growable output buffer and fast JSON writers (internal).
 *
 * Responses are written directly into a buffer instead of building a cJSON
 * tree and printing it: tensors of millions of floats are the hot path, and
 * et_jb_float() writes the shortest decimal that reads back as the same
 * float32 without going through printf.
 */
#ifndef EASYTORCHD_JSONOUT_H
#define EASYTORCHD_JSONOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable byte buffer.  On allocation failure `oom` is set and further
 * writes are dropped; the owner checks it once at the end. */
typedef struct etd_buf {
    char *data;
    size_t len, cap;
    bool oom;
} etd_buf;

/* An empty buffer (no allocation yet). */
void etd_buf_init(etd_buf *b);
/* Free the bytes and leave b empty and reusable. */
void etd_buf_free(etd_buf *b);
/* Make room for n more bytes; returns false (and sets oom) on failure. */
bool etd_buf_reserve(etd_buf *b, size_t n);
/* Append n bytes / a C string / one byte / printf output. */
void etd_buf_putn(etd_buf *b, const char *s, size_t n);
void etd_buf_puts(etd_buf *b, const char *s);
void etd_buf_putc(etd_buf *b, char c);
void etd_buf_printf(etd_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Hand the bytes over (caller frees with free()); the buffer is left empty. */
char *etd_buf_take(etd_buf *b, size_t *len);

/* Shortest decimal that parses back to exactly f (as float32); "null" for
 * NaN/Inf, which JSON cannot express.  out needs 32 bytes; returns length. */
size_t etd_fmt_float(char *out, float f);
/* Same for a double (shortest of %.15g..%.17g that round-trips). */
size_t etd_fmt_double(char *out, double d);

/* Append a number as etd_fmt_float / etd_fmt_double / an integer. */
void etd_json_float(etd_buf *b, float f);
void etd_json_double(etd_buf *b, double d);
void etd_json_i64(etd_buf *b, int64_t v);
/* Quoted, escaped JSON string. */
void etd_json_str(etd_buf *b, const char *s);
/* Flat array of n floats: [a,b,c]. */
void etd_json_floats(etd_buf *b, const float *v, int64_t n);
/* Nested arrays in row-major order, as torch.tensor(x).tolist(); a 0-d
 * tensor (ndim 0) is a bare number. */
void etd_json_nested(etd_buf *b, const float *v, const int64_t *shape, int ndim);
/* An object {"names[i]": value[i], ...} of the i < n whose bit is set in
 * mask, in index order; the entries in float32_mask are float32 values
 * (written as etd_json_float), the others doubles. */
void etd_json_named(etd_buf *b, const char *const *names, int n, unsigned mask,
                    const double *value, unsigned float32_mask);

#endif
