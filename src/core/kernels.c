/* kernels.c - elementwise and reduction loops over strided tensors.
 *
 * Every loop coalesces dimensions first, then runs an inner row loop; the
 * contiguous case of each row loop is a plain indexed loop the compiler can
 * vectorise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/tanh_avx512.h"

#define GELU_BETA_EXACT 0.3989422804014327f   /* 1/sqrt(2*pi) */
#define GELU_BETA_TANH 0.7978845608028654f    /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

/* Merge dimensions that are contiguous with respect to every stride array
 * and drop size-1 dims.  Returns the new number of dims (>= 1). */
static int coalesce(int nd, int64_t *shape, int64_t st[][ET_MAX_DIMS], int k)
{
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1)
            continue;
        if (m > 0) {
            bool merge = true;
            for (int j = 0; j < k; j++)
                if (st[j][m - 1] != st[j][d] * shape[d]) {
                    merge = false;
                    break;
                }
            if (merge) {
                shape[m - 1] *= shape[d];
                for (int j = 0; j < k; j++)
                    st[j][m - 1] = st[j][d];
                continue;
            }
        }
        shape[m] = shape[d];
        for (int j = 0; j < k; j++)
            st[j][m] = st[j][d];
        m++;
    }
    if (m == 0) {
        shape[0] = 1;
        for (int j = 0; j < k; j++)
            st[j][0] = 0;
        m = 1;
    }
    return m;
}

/* Advance a multi-index over dims [0, nd-1) (the last dim is the row). */
static inline void next_row(int nd, const int64_t *shape, int64_t *idx,
                            int64_t st[][ET_MAX_DIMS], int64_t *off, int k)
{
    for (int d = nd - 2; d >= 0; d--) {
        idx[d]++;
        for (int j = 0; j < k; j++)
            off[j] += st[j][d];
        if (idx[d] < shape[d])
            return;
        for (int j = 0; j < k; j++)
            off[j] -= st[j][d] * shape[d];
        idx[d] = 0;
    }
}

/* ------------------------------------------------------------------ */
/* elementwise row kernels                                              */

#define LOOP1(E)                                                        \
    do {                                                                \
        if (sx == 1) {                                                  \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i];                                   \
                o[i] = (E);                                             \
            }                                                           \
        } else {                                                        \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i * sx];                              \
                o[i] = (E);                                             \
            }                                                           \
        }                                                               \
    } while (0)

#define LOOP2(E)                                                        \
    do {                                                                \
        if (sx == 1 && sy == 1) {                                       \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i], b = y[i];                         \
                o[i] = (E);                                             \
            }                                                           \
        } else if (sx == 1 && sy == 0) {                                \
            const float b = y[0];                                       \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i];                                   \
                o[i] = (E);                                             \
            }                                                           \
        } else if (sx == 0 && sy == 1) {                                \
            const float a = x[0];                                       \
            for (int64_t i = 0; i < n; i++) {                           \
                const float b = y[i];                                   \
                o[i] = (E);                                             \
            }                                                           \
        } else {                                                        \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i * sx], b = y[i * sy];               \
                o[i] = (E);                                             \
            }                                                           \
        }                                                               \
    } while (0)

#define LOOP3(E)                                                        \
    do {                                                                \
        if (sx == 1 && sy == 1 && sz == 1) {                            \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i], b = y[i], c = z[i];               \
                o[i] = (E);                                             \
            }                                                           \
        } else {                                                        \
            for (int64_t i = 0; i < n; i++) {                           \
                const float a = x[i * sx], b = y[i * sy], c = z[i * sz]; \
                o[i] = (E);                                             \
            }                                                           \
        }                                                               \
    } while (0)

static inline float gelu_f(float a)
{
    return 0.5f * a * (1.0f + erff(a * (float)M_SQRT1_2));
}

static inline float gelu_tanh_f(float a)
{
    float inner = GELU_BETA_TANH * (a + GELU_KAPPA * a * a * a);
    return 0.5f * a * (1.0f + etc_tanhf(inner));
}

static inline float gelu_b(float dy, float x)
{
    float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    float pdf = expf(-0.5f * x * x) * GELU_BETA_EXACT;
    return dy * (cdf + x * pdf);
}

static inline float gelu_tanh_b(float dy, float x)
{
    float x2 = x * x;
    float inner = GELU_BETA_TANH * (x + GELU_KAPPA * x2 * x);
    float th = etc_tanhf(inner);
    float left = 0.5f * x, right = 1.0f + th;
    float dleft = 0.5f * right, dright = 1.0f - th * th;
    float dinner = GELU_BETA_TANH * (1.0f + 3.0f * GELU_KAPPA * x2);
    return dy * (dleft + left * dright * dinner);
}

static inline float sigmoid_f(float a) { return 1.0f / (1.0f + etc_expf(-a)); }

/* ---- ops_unary.c: torch 1.13's CPU formulas ---- */
static inline float sign_f(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : 0.0f); }

/* x * beta > threshold ? x : log1p(exp(x * beta)) / beta */
static inline float softplus_f(float a, float beta, float thr)
{
    return a * beta > thr ? a : log1pf(expf(a * beta)) / beta;
}

static inline float softplus_b(float dy, float x, float beta, float thr)
{
    float z = expf(x * beta);
    return x * beta > thr ? dy : dy * z / (z + 1.0f);
}

static inline float mish_f(float a) { return a * tanhf(log1pf(expf(a))); }

static inline float mish_b(float dy, float x)
{
    float s = 1.0f / (1.0f + expf(-x));
    float t = tanhf(log1pf(expf(x)));
    return dy * (t + x * s * (1.0f - t * t));
}

static inline float silu_b(float dy, float x)
{
    float s = 1.0f / (1.0f + expf(-x));
    return dy * s * (1.0f + x * (1.0f - s));
}

/* (target - 1) * max(log1p(-x), -100) - target * max(log(x), -100) */
static inline float bce_f(float x, float y)
{
    float l1 = log1pf(-x), l0 = logf(x);
    l1 = l1 < -100.0f ? -100.0f : l1;
    l0 = l0 < -100.0f ? -100.0f : l0;
    return (y - 1.0f) * l1 - y * l0;
}

/* torch's norm_backward for finite p != 0 (x, norm, g): 0 where norm == 0 */
static inline float norm_b(float x, float n, float g, float p)
{
    if (n == 0.0f)
        return 0.0f;
    if (p == 1.0f)
        return sign_f(x) * g;
    if (p == 2.0f)
        return x * (g / n);
    if (p < 1.0f)
        return sign_f(x) * powf(fabsf(x), p - 1.0f) * (g / powf(n, p - 1.0f));
    return x * powf(fabsf(x), p - 2.0f) * (g / powf(n, p - 1.0f));
}

static inline float bce_bx(float dy, float x, float y)
{
    float d = (1.0f - x) * x;
    return dy * (x - y) / (d > 1e-12f ? d : 1e-12f);
}

/* Built three times, for baseline x86-64 (SSE2), AVX2 and AVX-512, picked at
 * load time (ifunc): the elementwise loops run 8 or 16 floats wide on current
 * CPUs while the binary still runs everywhere.  No FMA in the clones (ISO C:
 * no contraction), so results are the same bits as the baseline. */
ETC_ISA_CLONES("default", "avx2", "avx512f") /* (not under sanitizers: core_internal.h) */
static void row(int op, float *restrict o, const float *x, int64_t sx, const float *y, int64_t sy,
                const float *z, int64_t sz, int64_t n, float p0, float p1)
{
    switch (op) {
    case EW_ADD: LOOP2(a + b); break;
    case EW_SUB: LOOP2(a - b); break;
    case EW_MUL: LOOP2(a * b); break;
    case EW_DIV: LOOP2(a / b); break;
    case EW_POW: LOOP2(powf(a, b)); break;
    case EW_MAXIMUM: LOOP2((a != a || b != b) ? NAN : (a > b ? a : b)); break;
    case EW_MINIMUM: LOOP2((a != a || b != b) ? NAN : (a < b ? a : b)); break;
    case EW_EQ: LOOP2(a == b ? 1.0f : 0.0f); break;
    case EW_NE: LOOP2(a != b ? 1.0f : 0.0f); break;
    case EW_LT: LOOP2(a < b ? 1.0f : 0.0f); break;
    case EW_LE: LOOP2(a <= b ? 1.0f : 0.0f); break;
    case EW_GT: LOOP2(a > b ? 1.0f : 0.0f); break;
    case EW_GE: LOOP2(a >= b ? 1.0f : 0.0f); break;
    case EW_ADDS: LOOP1(a + p0); break;
    case EW_MULS: LOOP1(a * p0); break;
    case EW_DIVS: LOOP1(a / p0); break;
    case EW_RSUBS: LOOP1(p0 - a); break;
    case EW_RDIVS: LOOP1(p0 / a); break;
    case EW_POWS:
        if (p0 == 2.0f)
            LOOP1(a * a);
        else if (p0 == 1.0f)
            LOOP1(a);
        else if (p0 == 0.5f)
            LOOP1(sqrtf(a));
        else
            LOOP1(powf(a, p0));
        break;
    case EW_RPOWS: LOOP1(powf(p0, a)); break;
    case EW_GTS: LOOP1(a > p0 ? 1.0f : 0.0f); break;
    case EW_LTS: LOOP1(a < p0 ? 1.0f : 0.0f); break;
    case EW_NEG: LOOP1(-a); break;
    case EW_EXP: LOOP1(etc_expf(a)); break;
    case EW_LOG: LOOP1(logf(a)); break;
    case EW_SQRT: LOOP1(sqrtf(a)); break;
    case EW_ABS: LOOP1(fabsf(a)); break;
    case EW_TANH:
        if (sx == 1 && etc_cpu_avx512f())   /* the same bits in fewer instructions */
            etc_tanh_avx512(o, x, n);
        else
            LOOP1(etc_tanhf(a));
        break;
    case EW_SIGMOID: LOOP1(sigmoid_f(a)); break;
    case EW_RELU: LOOP1(a > 0.0f ? a : (a != a ? a : 0.0f)); break;
    case EW_LEAKY: LOOP1(etc_sel(a > 0.0f, a, a * p0)); break;
    case EW_GELU: LOOP1(gelu_f(a)); break;
    case EW_GELU_TANH: LOOP1(gelu_tanh_f(a)); break;
    case EW_CLAMP: /* min(max(a, lo), hi) as torch: hi wins when lo > hi; NaN stays */
        LOOP1(etc_sel(etc_sel(a < p0, p0, a) > p1, p1, etc_sel(a < p0, p0, a)));
        break;
    case EW_COPY: LOOP1(a); break;
    case EW_TANH_B:
        if (sx == 1 && sy == 1 && etc_cpu_avx512f())   /* the same bits */
            etc_tanh_back_avx512(o, x, y, n);
        else
            LOOP2(a * (1.0f - b * b));
        break;
    case EW_SIGMOID_B: LOOP2(a * (1.0f - b) * b); break;
    case EW_RELU_B: LOOP2(b <= 0.0f ? 0.0f : a); break;   /* NaN passes, as torch */
    case EW_LEAKY_B: LOOP2(etc_sel(b > 0.0f, a, a * p0)); break;
    case EW_ABS_B: LOOP2(etc_sel(b > 0.0f, a, etc_sel(b < 0.0f, -a, 0.0f))); break;
    case EW_SQRT_B: LOOP2(a / (2.0f * b)); break;
    case EW_GELU_B: LOOP2(gelu_b(a, b)); break;
    case EW_GELU_TANH_B: LOOP2(gelu_tanh_b(a, b)); break;
    case EW_CLAMP_B: LOOP2((b >= p0 && b <= p1) ? a : 0.0f); break;
    case EW_POWS_B: LOOP2(p0 == 0.0f ? 0.0f : a * p0 * powf(b, p0 - 1.0f)); break;
    case EW_RPOWS_B: /* a = dy, b = exponent, c = result */
        LOOP3((p0 == 0.0f && b >= 0.0f) ? 0.0f : a * c * logf(p0));
        break;
    case EW_POW_BA: LOOP3(c == 0.0f ? 0.0f : a * c * powf(b, c - 1.0f)); break;
    case EW_POW_BB: LOOP3((b == 0.0f && c >= 0.0f) ? 0.0f : a * powf(b, c) * logf(b)); break;
    case EW_DIV_BB: LOOP3(-a * ((b / c) / c)); break;
    case EW_MAX_B: LOOP3(etc_sel(b < c, 0.0f, etc_sel(b == c, a * 0.5f, a))); break;
    case EW_MIN_B: LOOP3(etc_sel(b > c, 0.0f, etc_sel(b == c, a * 0.5f, a))); break;
    case EW_RDIVS_B: LOOP2(-a * p0 / (b * b)); break;
    case EW_WHERE: LOOP3(a != 0.0f ? b : c); break;
    case EW_MASK: LOOP2(a != 0.0f ? b : 0.0f); break;
    case EW_MASKN: LOOP2(a != 0.0f ? 0.0f : b); break;
    /* ops_unary.c */
    case EW_SIGN: LOOP1(sign_f(a)); break;
    case EW_FLOOR: LOOP1(floorf(a)); break;
    case EW_CEIL: LOOP1(ceilf(a)); break;
    case EW_ROUND: LOOP1(nearbyintf(a)); break;   /* half to even, as torch */
    case EW_RECIP: LOOP1(1.0f / a); break;
    case EW_RSQRT: LOOP1(1.0f / sqrtf(a)); break;
    case EW_LOG1P: LOOP1(log1pf(a)); break;
    case EW_EXPM1: LOOP1(expm1f(a)); break;
    case EW_SIN: LOOP1(sinf(a)); break;
    case EW_COS: LOOP1(cosf(a)); break;
    case EW_ERF: LOOP1(erff(a)); break;
    case EW_SOFTPLUS: LOOP1(softplus_f(a, p0, p1)); break;
    case EW_ELU: LOOP1(a <= 0.0f ? expm1f(a) * p0 : a); break;
    case EW_SILU: LOOP1(a / (1.0f + expf(-a))); break;
    case EW_MISH: LOOP1(mish_f(a)); break;
    case EW_HARDTANH: LOOP1(a < p0 ? p0 : (a > p1 ? p1 : a)); break;
    case EW_ISNAN: LOOP1(a != a ? 1.0f : 0.0f); break;
    case EW_ISFINITE: LOOP1(isfinite(a) ? 1.0f : 0.0f); break;
    case EW_LAND: LOOP2((a != 0.0f && b != 0.0f) ? 1.0f : 0.0f); break;
    case EW_LOR: LOOP2((a != 0.0f || b != 0.0f) ? 1.0f : 0.0f); break;
    case EW_LNOT: LOOP1(a == 0.0f ? 1.0f : 0.0f); break;
    case EW_MASKED_FILL: LOOP2(b != 0.0f ? p0 : a); break;   /* a input, b mask */
    case EW_BCE: LOOP2(bce_f(a, b)); break;
    case EW_RECIP_B: LOOP2(-a * (b * b)); break;               /* b = result */
    case EW_RSQRT_B: LOOP2(-0.5f * a * (b * b * b)); break;    /* b = result */
    case EW_LOG1P_B: LOOP2(a / (b + 1.0f)); break;
    case EW_EXPM1_B: LOOP2(a * (b + 1.0f)); break;             /* b = result */
    case EW_SIN_B: LOOP2(a * cosf(b)); break;
    case EW_COS_B: LOOP2(a * -sinf(b)); break;
    case EW_ERF_B: LOOP2(a * 1.12837916709551257f * expf(-(b * b))); break;
    case EW_SOFTPLUS_B: LOOP2(softplus_b(a, b, p0, p1)); break;
    case EW_ELU_B: LOOP2(b <= 0.0f ? a * p0 * expf(b) : a); break;
    case EW_SILU_B: LOOP2(silu_b(a, b)); break;
    case EW_MISH_B: LOOP2(mish_b(a, b)); break;
    case EW_HARDTANH_B: LOOP2((b <= p0 || b >= p1) ? 0.0f : a); break;
    case EW_BCE_BX: LOOP3(bce_bx(a, b, c)); break;             /* a dy, b input, c target */
    case EW_BCE_BY: LOOP2(a * (log1pf(-b) - logf(b))); break;  /* a dy, b input */
    /* reduce.c */
    case EW_NORM_B: LOOP3(norm_b(a, b, c, p0)); break;        /* a x, b norm, c dy */
    case EW_NORM_INF_B: LOOP3(fabsf(a) == b ? sign_f(a) * c : 0.0f); break; /* c dy/ties */
    default: break;
    }
}

int etc_broadcast_shape(const int64_t *a, int na, const int64_t *b, int nb, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nb - n + i;
        int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
        if (sa == sb || sb == 1)
            out[i] = sa;
        else if (sa == 1)
            out[i] = sb;
        else
            return -1;
    }
    return n;
}

et_tensor *etc_ew(int op, const char *name, et_tensor *const *in, int nin, float p0, float p1)
{
    const et_tensor *a = in[0];
    /* fast path: same shape, all contiguous */
    bool same = a->contiguous;
    for (int i = 1; i < nin && same; i++)
        same = in[i]->contiguous && etc_same_shape(a, in[i]);
    if (same) {
        et_tensor *out = etc_alloc(a->shape, a->ndim);
        if (!out)
            return NULL;
        if (nin == 2 && out->numel <= 16 && (op == EW_ADD || op == EW_MUL)) {
            /* a few elements (scalars, tiny graphs): the loop here, not through
             * row()'s ISA dispatch and switch; the same IEEE operations */
            float *o = out->data;
            const float *x = a->data, *y = in[1]->data;
            if (op == EW_ADD)
                for (int64_t i = 0; i < out->numel; i++)
                    o[i] = x[i] + y[i];
            else
                for (int64_t i = 0; i < out->numel; i++)
                    o[i] = x[i] * y[i];
            return out;
        }
        row(op, out->data, a->data, 1, nin > 1 ? in[1]->data : NULL, 1,
            nin > 2 ? in[2]->data : NULL, 1, out->numel, p0, p1);
        return out;
    }
    int64_t shape[ET_MAX_DIMS];
    int nd = a->ndim;
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)nd);
    for (int i = 1; i < nin; i++) {
        int64_t tmp[ET_MAX_DIMS];
        int r = etc_broadcast_shape(shape, nd, in[i]->shape, in[i]->ndim, tmp);
        if (r < 0) {
            char b1[128], b2[128];
            if (nin == 2)
                et_set_error(ET_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", name,
                             etc_shape_fmt(a->shape, a->ndim, b1, sizeof b1),
                             etc_shape_fmt(in[1]->shape, in[1]->ndim, b2, sizeof b2));
            else
                et_set_error(ET_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", name,
                             etc_shape_fmt(shape, nd, b1, sizeof b1),
                             etc_shape_fmt(in[i]->shape, in[i]->ndim, b2, sizeof b2));
            return NULL;
        }
        nd = r;
        memcpy(shape, tmp, sizeof(int64_t) * (size_t)nd);
    }
    et_tensor *out = etc_alloc(shape, nd);
    if (!out)
        return NULL;
    if (out->numel == 0)
        return out;
    int64_t st[4][ET_MAX_DIMS];
    int k = nin + 1;
    for (int d = 0; d < nd; d++)
        st[0][d] = out->strides[d];
    for (int i = 0; i < nin; i++) {
        const et_tensor *t = in[i];
        for (int d = 0; d < nd; d++) {
            int td = d - (nd - t->ndim);
            st[i + 1][d] = (td < 0 || t->shape[td] == 1) ? 0 : t->strides[td];
        }
    }
    int64_t cs[ET_MAX_DIMS];
    memcpy(cs, shape, sizeof(int64_t) * (size_t)nd);
    int cd = coalesce(nd, cs, st, k);
    int64_t idx[ET_MAX_DIMS] = {0};
    int64_t off[4] = {0, 0, 0, 0};
    int64_t rowlen = cs[cd - 1];
    int64_t rows = out->numel / rowlen;
    const float *p1_ = nin > 1 ? in[1]->data : NULL;
    const float *p2_ = nin > 2 ? in[2]->data : NULL;
    for (int64_t r = 0; r < rows; r++) {
        row(op, out->data + off[0], a->data + off[1], st[1][cd - 1],
            p1_ ? p1_ + off[2] : NULL, nin > 1 ? st[2][cd - 1] : 0,
            p2_ ? p2_ + off[3] : NULL, nin > 2 ? st[3][cd - 1] : 0, rowlen, p0, p1);
        next_row(cd, cs, idx, st, off, k);
    }
    return out;
}

et_tensor *etc_ew1(int op, et_tensor *a, float p0, float p1)
{
    return etc_ew(op, "unary", &a, 1, p0, p1);
}

et_tensor *etc_ew2(int op, const char *name, et_tensor *a, et_tensor *b, float p0)
{
    et_tensor *in[2] = {a, b};
    return etc_ew(op, name, in, 2, p0, 0.0f);
}

/* ------------------------------------------------------------------ */
/* strided copy                                                         */

void etc_strided_copy(et_tensor *dst, const et_tensor *src)
{
    if (dst->numel == 0)
        return;
    if (dst->contiguous && src->contiguous && dst->numel == src->numel) {
        memmove(dst->data, src->data, (size_t)dst->numel * (size_t)etc_elsize(dst->dtype));
        return;
    }
    int nd = dst->ndim;
    int64_t shape[ET_MAX_DIMS];
    int64_t st[2][ET_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        shape[d] = dst->shape[d];
        st[0][d] = dst->strides[d];
        int td = d - (nd - src->ndim);
        st[1][d] = (td < 0 || src->shape[td] == 1) ? 0 : src->strides[td];
    }
    int cd = coalesce(nd, shape, st, 2);
    int64_t idx[ET_MAX_DIMS] = {0};
    int64_t off[2] = {0, 0};
    int64_t rowlen = shape[cd - 1], rows = dst->numel / rowlen;
    int64_t so = st[0][cd - 1], si = st[1][cd - 1];
    if (dst->dtype == ET_INT64) {   /* same walk over 8-byte elements */
        for (int64_t r = 0; r < rows; r++) {
            int64_t *o = etc_idata(dst) + off[0];
            const int64_t *x = etc_idata(src) + off[1];
            for (int64_t i = 0; i < rowlen; i++)
                o[i * so] = x[i * si];
            next_row(cd, shape, idx, st, off, 2);
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        float *o = dst->data + off[0];
        const float *x = src->data + off[1];
        if (so == 1 && si == 1)
            memmove(o, x, (size_t)rowlen * sizeof(float));
        else
            for (int64_t i = 0; i < rowlen; i++)
                o[i * so] = x[i * si];
        next_row(cd, shape, idx, st, off, 2);
    }
}

/* ------------------------------------------------------------------ */
/* reductions                                                           */

static double sum_contig(const float *x, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

double etc_sum_contig(const float *x, int64_t n) { return sum_contig(x, n); }

et_tensor *etc_sum_to(const et_tensor *x, const int64_t *shape, int ndim, double scale)
{
    et_tensor *out = etc_alloc(shape, ndim);
    if (!out)
        return NULL;
    int64_t tn = out->numel;
    if (tn == 0)
        return out;
    if (x->numel == 0) {
        /* an empty sum is 0; an empty mean (scale NaN) is NaN, as torch */
        float v = (float)(0.0 * scale);
        for (int64_t i = 0; i < tn; i++)
            out->data[i] = v;
        return out;
    }
    if (tn == 1 && x->contiguous) {
        out->data[0] = (float)(sum_contig(x->data, x->numel) * scale);
        return out;
    }
    int nd = x->ndim;
    int64_t cs[ET_MAX_DIMS];
    int64_t st[2][ET_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        cs[d] = x->shape[d];
        st[0][d] = x->strides[d];
        int td = d - (nd - ndim);
        st[1][d] = (td < 0 || shape[td] == 1) ? 0 : out->strides[td];
    }
    int cd = coalesce(nd, cs, st, 2);
    if (tn == 1 && cd == 1 && st[0][0] == 1) {
        out->data[0] = (float)(sum_contig(x->data, x->numel) * scale);
        return out;
    }
    if (cd == 2 && st[0][0] == cs[1] && st[0][1] == 1 && st[1][0] == 0 && st[1][1] == 1 &&
        cs[1] < 64) {
        /* column sums of a contiguous [R, C] with few columns (bias grads of
         * small layers): accumulate whole blocks of rows flat, then fold */
        int64_t C = cs[1], L = (256 / C) * C, total = x->numel;
        double blk[256] = {0};
        for (int64_t off = 0; off < total; off += L) {
            int64_t n = total - off < L ? total - off : L;
            const float *p = x->data + off;
            for (int64_t k = 0; k < n; k++)
                blk[k] += p[k];
        }
        for (int64_t j = 0; j < C; j++) {
            double s = 0;
            for (int64_t k = j; k < L; k += C)
                s += blk[k];
            out->data[j] = (float)(s * scale);
        }
        return out;
    }
    double local[64];
    double *acc = tn <= 64 ? local : calloc((size_t)tn, sizeof(double));
    if (!acc) {
        etc_release(out);
        et_set_error(ET_ERR_NOMEM, "sum: out of memory");
        return NULL;
    }
    if (acc == local)
        memset(local, 0, sizeof local);
    int64_t idx[ET_MAX_DIMS] = {0};
    int64_t off[2] = {0, 0};
    int64_t rowlen = cs[cd - 1], rows = x->numel / rowlen;
    int64_t sx = st[0][cd - 1], so = st[1][cd - 1];
    for (int64_t r = 0; r < rows; r++) {
        const float *p = x->data + off[0];
        double *q = acc + off[1];
        if (so == 0) {
            if (sx == 1) {
                *q += sum_contig(p, rowlen);
            } else {
                double s = 0;
                for (int64_t i = 0; i < rowlen; i++)
                    s += p[i * sx];
                *q += s;
            }
        } else if (so == 1 && sx == 1) {
            /* column sums of a contiguous matrix (bias gradients): vectorised */
            for (int64_t i = 0; i < rowlen; i++)
                q[i] += p[i];
        } else {
            for (int64_t i = 0; i < rowlen; i++)
                q[i * so] += p[i * sx];
        }
        next_row(cd, cs, idx, st, off, 2);
    }
    for (int64_t i = 0; i < tn; i++)
        out->data[i] = (float)(acc[i] * scale);
    if (acc != local)
        free(acc);
    return out;
}

et_tensor *etc_unbroadcast(et_tensor *g, const et_tensor *like)
{
    if (etc_same_shape(g, like))
        return etc_ref(g);
    return etc_sum_to(g, like->shape, like->ndim, 1.0);
}

ETC_CLONES
static void add_row(float *restrict o, const float *restrict x, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        o[k] += x[k];
}

/* dst += src, element by element (the same bits whatever the layout).  A
 * contiguous src of dst's shape is added row by row along dst's last dim
 * when that is dense -- a whole contiguous dst as one row, a view such as
 * a slice's rows (the slice backward's add into its input's pending
 * gradient) one row at a time; anything else through a temporary. */
void etc_add_into(et_tensor *dst, const et_tensor *src)
{
    etc_zrec_forget(dst);
    int nd = dst->ndim;
    if (src->contiguous && etc_same_shape(dst, src) &&
        (dst->contiguous || (nd > 0 && dst->strides[nd - 1] == 1))) {
        if (dst->contiguous || dst->numel == 0) {
            add_row(dst->data, src->data, dst->numel);
            return;
        }
        int64_t n = dst->shape[nd - 1], rows = dst->numel / n, idx[ET_MAX_DIMS] = {0};
        const float *x = src->data;
        for (int64_t r = 0; r < rows; r++) {
            int64_t off = 0;
            for (int d = 0; d < nd - 1; d++)
                off += idx[d] * dst->strides[d];
            add_row(dst->data + off, x, n);
            x += n;
            for (int d = nd - 2; d >= 0 && ++idx[d] == dst->shape[d]; d--)
                idx[d] = 0;
        }
        return;
    }
    et_tensor *tmp = etc_ew2(EW_ADD, "add_", dst, (et_tensor *)src, 0.0f);
    if (!tmp)
        return;
    etc_strided_copy(dst, tmp);
    etc_release(tmp);
}

/* In-place-safe row of a few one-input ops (the fused Linear's activation
 * over the rows its GEMM just wrote): the same expressions as row(), so the
 * same bits, without row()'s restrict output. */
ETC_ISA_CLONES("default", "avx2", "avx512f")
void etc_ew_row(int op, float *o, const float *x, int64_t n)
{
    switch (op) {
    case EW_TANH:
        if (etc_cpu_avx512f())
            etc_tanh_avx512(o, x, n);
        else
            for (int64_t i = 0; i < n; i++)
                o[i] = etc_tanhf(x[i]);
        break;
    case EW_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            o[i] = sigmoid_f(x[i]);
        break;
    case EW_RELU: /* a > 0 ? a : (NaN ? a : 0) as row()'s, in a form that vectorises */
        for (int64_t i = 0; i < n; i++) {
            const float a = x[i];
            o[i] = a <= 0.0f ? 0.0f : a;
        }
        break;
    default:
        row(op, o, x, 1, NULL, 0, NULL, 0, n, 0.0f, 0.0f);   /* o != x here */
        break;
    }
}
