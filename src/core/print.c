/* print.c - PyTorch-style text form of a tensor (torch/_tensor_str.py:
 * precision 4, linewidth 80, threshold 1000, edgeitems 3). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

#define LINEWIDTH 80
#define THRESHOLD 1000
#define EDGE 3

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *s, const char *str, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        while (nc < s->len + n + 1)
            nc *= 2;
        char *nb = realloc(s->buf, nc);
        if (!nb) {
            s->oom = true;
            return;
        }
        s->buf = nb;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, str, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static void sb_str(sbuf *s, const char *str) { sb_put(s, str, strlen(str)); }

static void sb_rep(sbuf *s, char c, int n)
{
    for (int i = 0; i < n; i++)
        sb_put(s, &c, 1);
}

typedef struct {
    bool int_mode, sci_mode;
    bool int64;              /* an int64 tensor: "%lld", no trailing '.' */
    int width;
} fmt;

static int fmt_value(const fmt *f, double v, char *out, size_t cap)
{
    if (f->sci_mode)
        return snprintf(out, cap, "%.4e", v);
    if (f->int_mode) {
        if (isnan(v) || isinf(v))
            return snprintf(out, cap, "%.0f", v);
        return snprintf(out, cap, "%.0f.", v);
    }
    return snprintf(out, cap, "%.4f", v);
}

/* Python prints nan/inf as "nan"/"inf"/"-inf"; so does C's printf. */
static void fmt_init(fmt *f, const float *vals, int64_t n)
{
    f->int_mode = true;
    f->sci_mode = false;
    f->width = 1;
    double mn = INFINITY, mx = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = vals[i];
        if (!isfinite(v) || v == 0)
            continue;
        cnt++;
        double a = fabs(v);
        if (a < mn)
            mn = a;
        if (a > mx)
            mx = a;
        if (v != ceil(v))
            f->int_mode = false;
    }
    char tmp[64];
    if (cnt > 0) {
        if (f->int_mode) {
            if (mx / mn > 1000.0 || mx > 1e8) {
                f->sci_mode = true;
                for (int64_t i = 0; i < n; i++)
                    if (isfinite(vals[i]) && vals[i] != 0) {
                        int w = snprintf(tmp, sizeof tmp, "%.4e", (double)vals[i]);
                        if (w > f->width)
                            f->width = w;
                    }
            } else {
                for (int64_t i = 0; i < n; i++)
                    if (isfinite(vals[i]) && vals[i] != 0) {
                        int w = snprintf(tmp, sizeof tmp, "%.0f", (double)vals[i]) + 1;
                        if (w > f->width)
                            f->width = w;
                    }
            }
        } else {
            f->sci_mode = mx / mn > 1000.0 || mx > 1e8 || mn < 1e-4;
            for (int64_t i = 0; i < n; i++)
                if (isfinite(vals[i]) && vals[i] != 0) {
                    int w = snprintf(tmp, sizeof tmp, f->sci_mode ? "%.4e" : "%.4f",
                                     (double)vals[i]);
                    if (w > f->width)
                        f->width = w;
                }
        }
    }
    /* PyTorch's formatter only measures the nonzero finite values, but the
     * formatted width of the rest still pads via max(); mimic format(): */
}

/* element i of a float32 or int64 buffer */
static const char *elem(const char *v, int64_t i, const fmt *f)
{
    return v + i * (f->int64 ? 8 : 4);
}

static void put_value(sbuf *s, const fmt *f, const char *p)
{
    char tmp[64];
    int w = f->int64 ? snprintf(tmp, sizeof tmp, "%lld", (long long)*(const int64_t *)(const void *)p)
                     : fmt_value(f, *(const float *)(const void *)p, tmp, sizeof tmp);
    if (w < f->width)
        sb_rep(s, ' ', f->width - w);
    sb_str(s, tmp);
}

/* values of t in row-major order */
static float *values(const et_tensor *t)
{
    float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (v)
        et_copy_to(t, v);
    return v;
}

/* recursive over dims; depth bounded by ET_MAX_DIMS */
static void tensor_str(sbuf *s, const fmt *f, const char *v, const int64_t *shape,
                       const int64_t *st, int nd, int indent, bool summarize)
{
    if (nd == 0) {
        put_value(s, f, v);
        return;
    }
    int64_t n = shape[0];
    if (nd == 1) {
        int elen = f->width + 2;
        int per = (LINEWIDTH - indent) / elen;
        if (per < 1)
            per = 1;
        sb_str(s, "[");
        bool cut = summarize && n > 2 * EDGE;
        int64_t items = cut ? 2 * EDGE + 1 : n;
        for (int64_t k = 0; k < items; k++) {
            if (k > 0) {
                if (k % per == 0) {
                    sb_str(s, ",\n");
                    sb_rep(s, ' ', indent + 1);
                } else {
                    sb_str(s, ", ");
                }
            }
            if (cut) {
                if (k == EDGE) {
                    sb_str(s, " ...");
                    continue;
                }
                int64_t i = k < EDGE ? k : n - (items - k);
                put_value(s, f, elem(v, i * st[0], f));
            } else {
                put_value(s, f, elem(v, k * st[0], f));
            }
        }
        sb_str(s, "]");
        return;
    }
    sb_str(s, "[");
    bool cut = summarize && n > 2 * EDGE;
    int64_t items = cut ? 2 * EDGE + 1 : n;
    for (int64_t k = 0; k < items; k++) {
        if (k > 0) {
            sb_str(s, ",");
            sb_rep(s, '\n', nd - 1);
            sb_rep(s, ' ', indent + 1);
        }
        if (cut && k == EDGE) {
            sb_str(s, "...");
            continue;
        }
        int64_t i = (cut && k > EDGE) ? n - (items - k) : k;
        tensor_str(s, f, elem(v, i * st[0], f), shape + 1, st + 1, nd - 1, indent + 1, summarize);
    }
    sb_str(s, "]");
}

/* the values PyTorch's summarized formatter looks at (as floats; for an
 * int64 tensor, the widest decimal form is taken into *iwidth) */
static void summarized_vals(const char *v, const fmt *f, const int64_t *shape, const int64_t *st,
                            int nd, float *out, int64_t *n, int *iwidth)
{
    if (nd == 0) {
        if (f->int64) {
            char tmp[32];
            int w = snprintf(tmp, sizeof tmp, "%lld", (long long)*(const int64_t *)(const void *)v);
            *iwidth = w > *iwidth ? w : *iwidth;
        } else {
            out[*n] = *(const float *)(const void *)v;
        }
        (*n)++;
        return;
    }
    int64_t len = shape[0];
    for (int64_t i = 0; i < len; i++) {
        if (len > 2 * EDGE && i == EDGE)
            i = len - EDGE;
        summarized_vals(elem(v, i * st[0], f), f, shape + 1, st + 1, nd - 1, out, n, iwidth);
    }
}

char *et_to_string(const et_tensor *t)
{
    sbuf s = {0};
    if (!t) {
        sb_str(&s, "NULL");
        return s.oom ? NULL : s.buf;
    }
    sb_str(&s, "tensor(");
    const int indent = 7;
    if (t->numel == 0) {
        sb_str(&s, "[]");
    } else {
        /* Values are read through t's own strides: a summarized tensor
         * (possibly a huge expanded view) is never copied whole. */
        bool summarize = t->numel > THRESHOLD;
        fmt f = {.int64 = t->dtype == ET_INT64};
        float *v;
        int64_t n = 0;
        if (f.int64) {
            /* torch formats integers with the width of the widest one */
            int w = 1;
            int64_t cnt = 0;
            summarized_vals((const char *)t->data, &f, t->shape, t->strides, t->ndim, NULL, &cnt,
                            &w);
            if (!summarize) {   /* every value (summarized_vals saw only the edges) */
                et_tensor *c = etc_contig((et_tensor *)t);
                for (int64_t i = 0; c && i < c->numel; i++) {
                    char tmp[32];
                    int k = snprintf(tmp, sizeof tmp, "%lld", (long long)etc_idata(c)[i]);
                    w = k > w ? k : w;
                }
                etc_release(c);
            }
            f.width = w;
            tensor_str(&s, &f, (const char *)t->data, t->shape, t->strides, t->ndim, indent,
                       summarize);
            goto suffixes;
        }
        if (summarize) {
            int64_t cap = 1;
            for (int d = 0; d < t->ndim; d++)
                cap *= t->shape[d] > 2 * EDGE ? 2 * EDGE : t->shape[d];
            v = malloc((size_t)cap * sizeof(float));
            if (v)
                summarized_vals((const char *)t->data, &f, t->shape, t->strides, t->ndim, v, &n,
                                NULL);
        } else {
            v = values(t);
            n = t->numel;
        }
        if (!v) {
            free(s.buf);
            et_set_error(ET_ERR_NOMEM, "to_string: out of memory");
            return NULL;
        }
        fmt_init(&f, v, n);
        free(v);
        tensor_str(&s, &f, (const char *)t->data, t->shape, t->strides, t->ndim, indent,
                   summarize);
    }
suffixes:;
    char suf[3][160];
    int ns = 0;
    if (t->numel == 0 && !(t->ndim == 1 && t->shape[0] == 0)) {
        int p = snprintf(suf[ns], sizeof suf[ns], "size=(");
        for (int d = 0; d < t->ndim; d++)
            p += snprintf(suf[ns] + p, sizeof suf[ns] - (size_t)p, d ? ", %lld" : "%lld",
                          (long long)t->shape[d]);
        snprintf(suf[ns] + p, sizeof suf[ns] - (size_t)p, t->ndim == 1 ? ",)" : ")");
        ns++;
    }
    if (t->numel == 0 && t->dtype == ET_INT64)   /* torch names the dtype of empty ints */
        snprintf(suf[ns++], sizeof suf[0], "dtype=torch.int64");
    if (t->op != ETC_OP_NONE)
        snprintf(suf[ns++], sizeof suf[0], "grad_fn=<%s>", etc_ops[t->op].name);
    else if (t->requires_grad)
        snprintf(suf[ns++], sizeof suf[0], "requires_grad=True");
    if (!s.oom) {
        const char *nl = strrchr(s.buf, '\n');
        size_t last = nl ? (size_t)(s.buf + s.len - nl) + 1 : s.len + 2;
        for (int i = 0; i < ns; i++) {
            size_t sl = strlen(suf[i]);
            if (last + sl + 2 > LINEWIDTH) {
                sb_str(&s, ",\n");
                sb_rep(&s, ' ', indent);
                sb_str(&s, suf[i]);
                last = indent + sl;
            } else {
                sb_str(&s, ", ");
                sb_str(&s, suf[i]);
                last += sl + 2;
            }
        }
    }
    sb_str(&s, ")");
    if (s.oom) {
        free(s.buf);
        et_set_error(ET_ERR_NOMEM, "to_string: out of memory");
        return NULL;
    }
    return s.buf;
}

void et_fprint(FILE *f, const et_tensor *t)
{
    char *str = f ? et_to_string(t) : NULL;
    if (!str)
        return;
    fputs(str, f);
    fputc('\n', f);
    free(str);
}

void et_print(const et_tensor *t) { et_fprint(stdout, t); }
