/* jsonout.c - output buffer and number writers for easytorchd. */
#include "server/formats/json_out.h"
#include "server/formats/json_lex.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void etd_buf_init(etd_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void etd_buf_free(etd_buf *b)
{
    free(b->data);
    etd_buf_init(b);
}

bool etd_buf_reserve(etd_buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > n)
        return true;
    size_t want = b->cap ? b->cap : 256;
    while (want - b->len <= n) {
        if (want > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        want *= 2;
    }
    char *p = realloc(b->data, want);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = want;
    return true;
}

void etd_buf_putn(etd_buf *b, const char *s, size_t n)
{
    if (!etd_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void etd_buf_puts(etd_buf *b, const char *s) { etd_buf_putn(b, s, strlen(s)); }

void etd_buf_putc(etd_buf *b, char c)
{
    if (!etd_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void etd_buf_printf(etd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !etd_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *etd_buf_take(etd_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = calloc(1, 1);
    etd_buf_init(b);
    return p;
}

/* ---- numbers ---- */

/* v * 10^e, correctly rounded whenever 10^|e| is exact (|e| <= 22). */
static double scale10(double v, int e)
{
    if (e >= 0)
        return e <= 22 ? v * etd_pow10_tab[e] : v * pow(10.0, e);
    return -e <= 22 ? v / etd_pow10_tab[-e] : v / pow(10.0, -e);
}

static const uint32_t pow10_u32[10] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u};

/* Float32 -> shortest round-trip decimal, without printf.
 *
 * In double precision (29 bits more than float32), scale |f| to V in
 * [1e8, 1e9) and its rounding interval -- the halfway points to the
 * neighbouring floats -- to (L, H).  The shortest decimal is the first
 * p = 1..9 for which a p-digit number next to V lies strictly inside (L, H)
 * (the nearer one if both do): any such decimal reads back as f.  p = 9 is always inside (the
 * interval is at least +-2.9 units wide there, rounding moves V by <= 0.5),
 * and the scaling errors (~1e-16 relative) are far below the interval. */
size_t etd_fmt_float(char *out, float f)
{
    if (!isfinite(f)) {
        memcpy(out, "null", 5);
        return 4;
    }
    char *o = out;
    if (signbit(f))
        *o++ = '-';
    float af = fabsf(f);
    if (af == 0.0f) {
        memcpy(o, "0.0", 4);
        return (size_t)(o - out) + 3;
    }
    /* neighbours from the bit pattern (libm's nextafterf/frexp/nearbyint
     * are calls; this runs once per number of every tensor printed) */
    uint32_t u;
    memcpy(&u, &af, sizeof u);
    float prevf, nextf;
    uint32_t ubelow = u - 1, uabove = u + 1;
    memcpy(&prevf, &ubelow, sizeof prevf);
    memcpy(&nextf, &uabove, sizeof nextf);
    double v = (double)af;
    double lo = (v + (double)prevf) / 2;
    double hi = af == FLT_MAX ? v + (v - (double)prevf) / 2 : (v + (double)nextf) / 2;
    int e2 = (int)((u >> 23) & 0xFF) - 127; /* floor(log2 v) for normals */
    if ((u >> 23) == 0)
        e2 = -149 + 31 - __builtin_clz(u); /* subnormal */
    int e = (e2 * 78913) >> 18;           /* floor(e2 * log10(2)), arithmetic shift */
    double V = scale10(v, 8 - e);
    if (V >= 1e9) {
        e++;
        V = scale10(v, 8 - e);
    } else if (V < 1e8) {
        e--;
        V = scale10(v, 8 - e);
    }
    double L = scale10(lo, 8 - e), H = scale10(hi, 8 - e);
    bool even = (u & 1) == 0;
    uint32_t m = 0;
    int p;
    for (p = 1; p < 9; p++) {
        /* the p-digit numbers just below and above V; either may be the
         * only one inside the interval */
        double unit = etd_pow10_tab[9 - p];
        uint64_t qd = (uint64_t)(V / unit);
        double cdn = (double)qd * unit, cup = (double)(qd + 1) * unit;
        /* a decimal exactly halfway rounds to the even float (strtof's ties) */
        bool dn = cdn > L || (even && cdn == L), up = cup < H || (even && cup == H);
        if (dn && up) {
            double ddn = V - (double)qd * unit, dup = (double)(qd + 1) * unit - V;
            m = (uint32_t)(ddn < dup || (ddn == dup && qd % 2 == 0) ? qd : qd + 1);
            break;
        }
        if (dn || up) {
            m = (uint32_t)(dn ? qd : qd + 1);
            break;
        }
    }
    if (p == 9)
        m = (uint32_t)(V + 0.5);
    if (m >= pow10_u32[p]) { /* rounded up to 10^p: one digit more than p */
        m /= 10;
        e++;
    }
    while (p > 1 && m % 10 == 0) {
        m /= 10;
        p--;
    }
    char dig[10];
    for (int i = p - 1; i >= 0; i--) {
        dig[i] = (char)('0' + m % 10);
        m /= 10;
    }
    if (e >= -4 && e < 16) { /* the same switch to exponents as Python's repr */
        if (e >= 0) {
            int i;
            for (i = 0; i <= e; i++)
                *o++ = i < p ? dig[i] : '0';
            *o++ = '.';
            if (i < p) {
                for (; i < p; i++)
                    *o++ = dig[i];
            } else {
                *o++ = '0';
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -e - 1; i++)
                *o++ = '0';
            for (int i = 0; i < p; i++)
                *o++ = dig[i];
        }
    } else {
        *o++ = dig[0];
        if (p > 1) {
            *o++ = '.';
            for (int i = 1; i < p; i++)
                *o++ = dig[i];
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae >= 100) {
            *o++ = (char)('0' + ae / 100);
            ae %= 100;
            *o++ = (char)('0' + ae / 10);
        } else {
            *o++ = (char)('0' + ae / 10);
        }
        *o++ = (char)('0' + ae % 10);
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* The decimal digits of v (< 10^20) into out, most significant first; returns how many. */
static size_t put_digits(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* A wall time as the history keeps it (whole milliseconds, k / 1000.0, the
 * double nearest k ms) of 7 to 12 integer digits: what "%.15g" prints for
 * it -- the exact decimal k / 1000 without trailing zeros, never an
 * exponent at these sizes -- written without printf; 0 when d is not such
 * a value.  The saver writes one per history entry (100,000 by default),
 * and alternating with the learning rate they defeat etd_fmt_double's
 * one-value memory: snprintf + strtod twice per entry. */
static size_t fmt_ms(char *out, double d)
{
    if (!(d >= 1e6 && d < 1e12))
        return 0;
    double k = nearbyint(d * 1000.0);
    if (k / 1000.0 != d)
        return 0;
    uint64_t ms = (uint64_t)k;
    size_t n = put_digits(out, ms / 1000);
    unsigned frac = (unsigned)(ms % 1000);
    out[n++] = '.';
    if (frac == 0) {
        out[n++] = '0';
    } else {
        out[n++] = (char)('0' + frac / 100);
        if (frac % 100) {
            out[n++] = (char)('0' + frac / 10 % 10);
            if (frac % 10)
                out[n++] = (char)('0' + frac % 10);
        }
    }
    out[n] = '\0';
    return n;
}

size_t etd_fmt_double(char *out, double d)
{
    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    size_t ms = fmt_ms(out, d);
    if (ms)
        return ms;
    /* the last value this thread wrote (the same learning rate in every
     * answer and event): printf and strtod cost ~0.6 us */
    static _Thread_local double last;
    static _Thread_local char last_s[32];
    static _Thread_local size_t last_n;
    if (last_n && memcmp(&d, &last, sizeof d) == 0) {
        memcpy(out, last_s, last_n + 1);
        return last_n;
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    /* make it look like a float, as Python's json does */
    if (!strpbrk(out, ".eEn") && n < 30) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    last = d;
    last_n = (size_t)n;
    memcpy(last_s, out, last_n + 1);
    return (size_t)n;
}

void etd_json_float(etd_buf *b, float f)
{
    if (!etd_buf_reserve(b, 32))
        return;
    b->len += etd_fmt_float(b->data + b->len, f);
}

void etd_json_double(etd_buf *b, double d)
{
    if (!etd_buf_reserve(b, 32))
        return;
    b->len += etd_fmt_double(b->data + b->len, d);
}

void etd_json_i64(etd_buf *b, int64_t v)
{
    char tmp[24]; /* without printf: a step number in every answer, history entry and event */
    size_t n = 0;
    if (v < 0)
        tmp[n++] = '-';
    n += put_digits(tmp + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    etd_buf_putn(b, tmp, n);
}

void etd_json_str(etd_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    etd_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            etd_buf_putn(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            etd_buf_putn(b, e, 6);
        } else {
            etd_buf_putc(b, (char)c);
        }
    }
    etd_buf_putc(b, '"');
}

void etd_json_floats(etd_buf *b, const float *v, int64_t n)
{
    etd_buf_putc(b, '[');
    for (int64_t i = 0; i < n; i++) {
        /* number (<= 16 chars) + comma */
        if (!etd_buf_reserve(b, 40))
            return;
        if (i)
            b->data[b->len++] = ',';
        b->len += etd_fmt_float(b->data + b->len, v[i]);
    }
    if (b->data)
        b->data[b->len] = '\0';
    etd_buf_putc(b, ']');
}

void etd_json_nested(etd_buf *b, const float *v, const int64_t *shape, int ndim)
{
    if (ndim == 0) {
        etd_json_float(b, v[0]);
        return;
    }
    int64_t idx[16] = {0};
    int64_t inner = shape[ndim - 1];
    /* an empty dimension d: the lists above it hold empty lists, as
     * tolist() gives for shape [2, 0] -> [[], []] */
    for (int d = 0; d < ndim; d++) {
        if (shape[d] != 0)
            continue;
        int64_t outer = 1, oidx[16] = {0};
        for (int k = 0; k < d; k++) {
            outer *= shape[k];
            etd_buf_putc(b, '[');
        }
        for (int64_t i = 0; i < outer; i++) {
            etd_buf_puts(b, "[]");
            for (int k = d - 1; k >= 0; k--) {
                if (++oidx[k] < shape[k]) {
                    etd_buf_putc(b, ',');
                    for (int j = k + 1; j < d; j++)
                        etd_buf_putc(b, '[');
                    break;
                }
                oidx[k] = 0;
                etd_buf_putc(b, ']');
            }
        }
        return;
    }
    for (int d = 0; d < ndim; d++)
        etd_buf_putc(b, '[');
    const float *p = v;
    for (;;) {
        for (int64_t i0 = 0; i0 < inner; i0 += 1024) {
            int64_t i1 = inner - i0 < 1024 ? inner : i0 + 1024;
            if (!etd_buf_reserve(b, (size_t)(i1 - i0) * 40 + 8))
                return;
            char *o = b->data + b->len;
            for (int64_t i = i0; i < i1; i++) {
                if (i)
                    *o++ = ',';
                o += etd_fmt_float(o, p[i]);
            }
            b->len = (size_t)(o - b->data);
        }
        p += inner;
        int k = ndim - 2;
        for (; k >= 0; k--) {
            etd_buf_putc(b, ']');
            if (++idx[k] < shape[k])
                break;
            idx[k] = 0;
        }
        if (k < 0) {
            etd_buf_putc(b, ']');
            return;
        }
        etd_buf_putc(b, ',');
        for (int j = k + 1; j < ndim; j++)
            etd_buf_putc(b, '[');
    }
}

void etd_json_named(etd_buf *b, const char *const *names, int n, unsigned mask,
                    const double *value, unsigned float32_mask)
{
    etd_buf_putc(b, '{');
    bool first = true;
    for (int i = 0; i < n; i++)
        if (mask & 1u << i) {
            if (!first)
                etd_buf_putc(b, ',');
            etd_json_str(b, names[i]);
            etd_buf_putc(b, ':');
            if (float32_mask & 1u << i)
                etd_json_float(b, (float)value[i]);
            else
                etd_json_double(b, value[i]);
            first = false;
        }
    etd_buf_putc(b, '}');
}
