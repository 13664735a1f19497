/* json_lex.c - the JSON number lexer (see json_lex.h). */
#include "server/formats/json_lex.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 10^0 .. 10^22, every one exact in a double (json_lex.h) */
const double etd_pow10_tab[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
const uint64_t etd_pow10_int[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                   100000000};

/* strtod of the n bytes at s (not terminated there), as the general paths
 * decide; false when they do not fit the copy. */
static bool strtod_text(const char *s, size_t n, double *out)
{
    char tmp[128];
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    return true;
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* mant * 10^exp10 for mant >= 2^53: two roundings put the double v within
 * 2 ulp of the exact value.  What matters downstream is the float32 it
 * rounds to (the general path does strtod then (float)); that is settled
 * unless v lies within a few ulp of a midpoint between two floats, in which
 * case this declines and strtod decides. */
static bool near_float_ok(uint64_t mant, int exp10, double *out)
{
    double v = (double)mant;
    v = exp10 < 0 ? v / etd_pow10_tab[-exp10] : v * etd_pow10_tab[exp10];
    float f = (float)v;
    if (!isfinite(f) || f == 0.0f || fabsf(f) < FLT_MIN)
        return false;
    double lo = ((double)f + (double)nextafterf(f, 0.0f)) / 2;
    double hi = ((double)f + (double)nextafterf(f, f > 0 ? INFINITY : -INFINITY)) / 2;
    double tol = 8 * (nextafter(v, INFINITY) - v);
    if (fabs(v - lo) <= tol || fabs(v - hi) <= tol)
        return false;
    *out = v;
    return true;
}

const char *etd_json_number(const char *p, const char *end, double *out)
{
    const char *start = p;
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return NULL;
    uint64_t mant = 0;
    int sig = 0, exp10 = 0;
    bool exact = true;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                sig++;
            } else {
                exp10++;
                exact = false;
            }
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p)) {
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                if (mant)
                    sig++;
                exp10--;
            } else {
                exact = false;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int es = 1, e = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            es = *p == '-' ? -1 : 1;
            p++;
        }
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p)) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += es * e;
    }
    /* a number ends at a delimiter, never in more number-ish characters */
    if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
        return NULL;
    if (!out)
        return p;
    double v;
    if (mant == 0) {
        v = 0.0;
    } else if (exact && mant < (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        /* both operands exact: one correctly rounded operation (Clinger) */
        v = exp10 < 0 ? (double)mant / etd_pow10_tab[-exp10] : (double)mant * etd_pow10_tab[exp10];
    } else if (exact && exp10 >= -22 && exp10 <= 22 && near_float_ok(mant, exp10, &v)) {
        /* 16-19 digits (Python prints up to 17): v is within 2 ulp of the
         * correctly rounded double and provably rounds to the same float */
    } else {
        return strtod_text(start, (size_t)(p - start), out) ? p : NULL;
    }
    *out = neg ? -v : v;
    return p;
}

/* ---------------------------------------------------------------- numbers as float32 */

/* The general case of etd_json_read_float (json_lex.h): etd_json_number's
 * double, then the float32 range. */
const char *etd_json_read_float_general(const char *p, const char *end, float *out)
{
    double v;
    const char *e = etd_json_number(p, end, &v);
    if (!e)
        return NULL;
    if (!(isfinite(v) && fabs(v) <= (double)FLT_MAX)) {
        /* etd_json_number's double may be an ulp off (its 16-19 digit
         * branch): at the edge of the range strtod decides, as the general
         * path does */
        if (!strtod_text(p, (size_t)(e - p), &v) || !(isfinite(v) && fabs(v) <= (double)FLT_MAX))
            return NULL;
    }
    *out = (float)v;
    return e;
}
