/*
 * json_lex.h - the JSON number lexer of easytorchd (internal).
 *
 * One lexer for every place that reads JSON numbers from bytes: the strict
 * scan of a request body (json_in.c) and the fast tensor path
 * (tensor_json.c).  cJSON itself is lenient ("01", "1." pass), so every
 * number in a body goes through this grammar once.
 */
#ifndef EASYTORCHD_JSON_LEX_H
#define EASYTORCHD_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The JSON number at p in the strict grammar
 *   -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * and not followed by more number characters ("01", "1.", "1e", "1.5.3"
 * are not numbers).  Returns the end of the number, or NULL.
 * With v non-NULL, *v receives a double that rounds to the same float32 as
 * strtod's result would (exact Clinger fast path for <= 15 digits and
 * |exponent| <= 22; 16-19 digits computed in double unless within a few
 * ulp of a float32 rounding midpoint; strtod otherwise). */
const char *etd_json_number(const char *p, const char *end, double *v);

/* The JSON number at p (the grammar above) as float32, exactly the float
 * that (float)strtod gives for its text, which is what cJSON's path stores:
 * returns the end of the number, or NULL when the text is not a strict JSON
 * number or its value is not a finite float32 (beyond +-FLT_MAX as a
 * double: what etd_number_ok refuses).  The common form (-?D{1,7}(.D{1,16})?,
 * up to 19 digits, 32 bytes before end) is read
 * eight bytes at a time (inline, below) and converted with etd_json_number's
 * exact branch; every other form goes to etd_json_read_float_general, which
 * is etd_json_number.  The number parser of the tensor fast path
 * (json_fast.c), for any reader of float arrays. */
static inline const char *etd_json_read_float(const char *p, const char *end, float *out);

const char *etd_json_read_float_general(const char *p, const char *end, float *out);
extern const double etd_pow10_tab[23];   /* 10^0 .. 10^22, exact doubles */
extern const uint64_t etd_pow10_int[9];

/* Eight bytes at p as x = bytes ^ '0' (digits become 0..9), little-endian:
 * byte i of x is character p[i]. */
static inline uint64_t etd_lex_load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w ^ 0x3030303030303030ULL;
}

/* How many of x's bytes, from the first, are digits (0..8).  A byte is a
 * digit when it is below 10: below 0x80 and not reaching 0x80 with 0x76
 * added.  The addition's carries only run from a non-digit byte into the
 * bytes after it, which are past the first non-digit already. */
static inline int etd_lex_digits(uint64_t x)
{
    uint64_t nd = ((x + 0x7676767676767676ULL) | x) & 0x8080808080808080ULL;
    return nd ? __builtin_ctzll(nd) >> 3 : 8;
}

/* The value of x's first k digits (1 <= k <= 8): shifted to the top, the
 * bytes before them are leading zeros of an eight-digit number, combined
 * pairwise (2, 4, then 8 digits) by multiplications. */
static inline uint64_t etd_lex_value(uint64_t x, int k)
{
    x <<= 8 * (8 - k);
    x = x * 10 + (x >> 8);
    x = (((x & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
         (((x >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
    return (uint32_t)x;
}

static inline const char *etd_json_read_float(const char *p, const char *end, float *out)
{
    const char *s = p;
    if (end - p < 32) /* then every byte read below is before end */
        return etd_json_read_float_general(s, end, out);
    bool neg = *p == '-';
    p += neg;
    uint64_t mant;
    int ki;
    if ((unsigned)(p[0] - '0') < 10 && p[1] == '.') { /* one integer digit: the usual */
        mant = (uint64_t)(p[0] - '0');
        ki = 1;
    } else {
        uint64_t x = etd_lex_load8(p);
        ki = etd_lex_digits(x);
        if (ki == 0 || ki == 8 || (ki > 1 && *p == '0')) /* 8+ digits, not a number, "01" */
            return etd_json_read_float_general(s, end, out);
        mant = etd_lex_value(x, ki);
    }
    p += ki;
    int frac = 0;
    if (*p == '.') {
        p++;
        uint64_t x = etd_lex_load8(p);
        int k1 = etd_lex_digits(x);
        if (k1 == 0)
            return etd_json_read_float_general(s, end, out);
        mant = mant * etd_pow10_int[k1] + etd_lex_value(x, k1);
        p += k1;
        frac = k1;
        if (k1 == 8) {
            x = etd_lex_load8(p);
            int k2 = etd_lex_digits(x);
            if (k2 == 8 || ki + 8 + k2 > 19)
                return etd_json_read_float_general(s, end, out);
            if (k2) {
                mant = mant * etd_pow10_int[k2] + etd_lex_value(x, k2);
                p += k2;
                frac += k2;
            }
            /* 16-19 digits: a significand a double does not hold exactly
             * goes the general way */
            if (mant >= (1ULL << 53))
                return etd_json_read_float_general(s, end, out);
        }
    }
    /* the digits ended inside the bytes read (p < end).  A number ends at
     * ',' or ']' in a list; an exponent, a second point or a sign goes the
     * general way (which refuses the last two) */
    char c = *p;
    if (c != ',' && c != ']' && (c == 'e' || c == 'E' || c == '.' || c == '+' || c == '-'))
        return etd_json_read_float_general(s, end, out);
    /* etd_json_number's exact branch, the same operations: the double strtod
     * gives (one correctly rounded division of exact operands), then
     * float32 as the general path's (float) */
    double v = frac ? (double)mant / etd_pow10_tab[frac] : (double)mant;
    *out = (float)(neg ? -v : v);
    return p;
}

/* p past JSON whitespace (space, tab, CR, LF), at most to end. */
static inline const char *etd_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

#endif
