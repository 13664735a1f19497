/* ops.c - the elementwise basics: broadcasting binary ops, scalar and
 * unary ops, comparisons and where, the in-place fill_/copy_, and their
 * backward functions.  The reductions (sum/mean, max/min, softmax) are in
 * reduce_basic.c; rounding, trigonometric and the further activations in
 * ops_unary.c. */
#include <math.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* binary, broadcasting                                                 */

static et_tensor *binary(int ew, int op, const char *name, et_tensor *a, et_tensor *b)
{
    if (!etc_null_check(a, name) || !etc_null_check(b, name))
        return NULL;
    et_tensor *ins[2] = {a, b};
    return etc_finish(etc_ew(ew, name, ins, 2, 0.0f, 0.0f), op, ins, 2);
}

et_tensor *etc_add(et_tensor *a, et_tensor *b) { return binary(EW_ADD, ETC_OP_ADD, "add", a, b); }
et_tensor *etc_sub(et_tensor *a, et_tensor *b) { return binary(EW_SUB, ETC_OP_SUB, "sub", a, b); }
et_tensor *etc_mul(et_tensor *a, et_tensor *b) { return binary(EW_MUL, ETC_OP_MUL, "mul", a, b); }
et_tensor *etc_div(et_tensor *a, et_tensor *b) { return binary(EW_DIV, ETC_OP_DIV, "div", a, b); }

et_tensor *et_add(et_tensor *a, et_tensor *b) { return etc_pooled(etc_add(a, b)); }
et_tensor *et_sub(et_tensor *a, et_tensor *b) { return etc_pooled(etc_sub(a, b)); }
et_tensor *et_mul(et_tensor *a, et_tensor *b) { return etc_pooled(etc_mul(a, b)); }
et_tensor *et_div(et_tensor *a, et_tensor *b) { return etc_pooled(etc_div(a, b)); }
et_tensor *et_pow(et_tensor *a, et_tensor *e)
{
    return etc_pooled(binary(EW_POW, ETC_OP_POW, "pow", a, e));
}
et_tensor *et_maximum(et_tensor *a, et_tensor *b)
{
    return etc_pooled(binary(EW_MAXIMUM, ETC_OP_MAXIMUM, "maximum", a, b));
}
et_tensor *et_minimum(et_tensor *a, et_tensor *b)
{
    return etc_pooled(binary(EW_MINIMUM, ETC_OP_MINIMUM, "minimum", a, b));
}

/* Store into gin[i] the gradient `full` summed back to input i's shape.
 * Takes ownership of `full`. */
static bool put_grad(et_tensor *out, int i, et_tensor **gin, et_tensor *full)
{
    if (!full)
        return false;
    if (etc_same_shape(full, out->in[i])) {   /* moved: no reference taken and dropped */
        gin[i] = full;
        return true;
    }
    gin[i] = etc_unbroadcast(full, out->in[i]);
    etc_release(full);
    return gin[i] != NULL;
}

static inline bool want(et_tensor *out, int i) { return out->in[i]->requires_grad; }

bool etc_put_grad(et_tensor *out, int i, et_tensor **gin, et_tensor *full)
{
    return put_grad(out, i, gin, full);
}

ETC_BW(add)
{
    for (int i = 0; i < 2; i++)
        if (want(out, i) && !(gin[i] = etc_unbroadcast(g, out->in[i])))
            return false;
    return true;
}

ETC_BW(sub)
{
    if (want(out, 0) && !(gin[0] = etc_unbroadcast(g, out->in[0])))
        return false;
    if (want(out, 1)) {
        et_tensor *r = etc_unbroadcast(g, out->in[1]);
        if (!r)
            return false;
        gin[1] = etc_ew1(EW_NEG, r, 0, 0);
        etc_release(r);
        if (!gin[1])
            return false;
    }
    return true;
}

ETC_BW(mul)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    if (want(out, 0) && !put_grad(out, 0, gin, etc_ew2(EW_MUL, "mul", g, b, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, etc_ew2(EW_MUL, "mul", g, a, 0)))
        return false;
    return true;
}

static et_tensor *ew3(int op, et_tensor *x, et_tensor *y, et_tensor *z, float p0)
{
    et_tensor *in[3] = {x, y, z};
    return etc_ew(op, "backward", in, 3, p0, 0.0f);
}

ETC_BW(div)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    if (want(out, 0) && !put_grad(out, 0, gin, etc_ew2(EW_DIV, "div", g, b, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, ew3(EW_DIV_BB, g, a, b, 0)))
        return false;
    return true;
}

ETC_BW(pow)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    if (want(out, 0) && !put_grad(out, 0, gin, ew3(EW_POW_BA, g, a, b, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, ew3(EW_POW_BB, g, a, b, 0)))
        return false;
    return true;
}

ETC_BW(maximum)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    if (want(out, 0) && !put_grad(out, 0, gin, ew3(EW_MAX_B, g, a, b, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, ew3(EW_MAX_B, g, b, a, 0)))
        return false;
    return true;
}

ETC_BW(minimum)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    if (want(out, 0) && !put_grad(out, 0, gin, ew3(EW_MIN_B, g, a, b, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, ew3(EW_MIN_B, g, b, a, 0)))
        return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* scalar ops and unary ops                                             */

static et_tensor *unary(int ew, int op, const char *name, et_tensor *a, float p0, float p1)
{
    if (!etc_null_check(a, name))
        return NULL;
    et_tensor *out = etc_ew(ew, name, &a, 1, p0, p1);
    if (!out)
        return NULL;
    out->aux.f[0] = p0;
    out->aux.f[1] = p1;
    return etc_finish(out, op, &a, 1);
}

et_tensor *etc_unary(int ew, int op, const char *name, et_tensor *a, float p0, float p1)
{
    return unary(ew, op, name, a, p0, p1);
}

et_tensor *etc_mul_scalar(et_tensor *a, float s)
{
    return unary(EW_MULS, ETC_OP_MUL_SCALAR, "mul_scalar", a, s, 0);
}

et_tensor *et_add_scalar(et_tensor *a, float s)
{
    return etc_pooled(unary(EW_ADDS, ETC_OP_ADD_SCALAR, "add_scalar", a, s, 0));
}
et_tensor *et_sub_scalar(et_tensor *a, float s)
{
    return etc_pooled(unary(EW_ADDS, ETC_OP_SUB_SCALAR, "sub_scalar", a, -s, 0));
}
et_tensor *et_rsub_scalar(float s, et_tensor *a)
{
    return etc_pooled(unary(EW_RSUBS, ETC_OP_RSUB_SCALAR, "rsub_scalar", a, s, 0));
}
et_tensor *et_mul_scalar(et_tensor *a, float s) { return etc_pooled(etc_mul_scalar(a, s)); }
et_tensor *et_div_scalar(et_tensor *a, float s)
{
    return etc_pooled(unary(EW_DIVS, ETC_OP_DIV_SCALAR, "div_scalar", a, s, 0));
}
et_tensor *et_rdiv_scalar(float s, et_tensor *a)
{
    return etc_pooled(unary(EW_RDIVS, ETC_OP_RDIV_SCALAR, "rdiv_scalar", a, s, 0));
}
et_tensor *et_pow_scalar(et_tensor *a, float e)
{
    return etc_pooled(unary(EW_POWS, ETC_OP_POW_SCALAR, "pow_scalar", a, e, 0));
}
et_tensor *et_rpow_scalar(float base, et_tensor *a)
{
    return etc_pooled(unary(EW_RPOWS, ETC_OP_RPOW_SCALAR, "rpow_scalar", a, base, 0));
}
et_tensor *et_neg(et_tensor *a) { return etc_pooled(unary(EW_NEG, ETC_OP_NEG, "neg", a, 0, 0)); }
et_tensor *et_exp(et_tensor *a) { return etc_pooled(unary(EW_EXP, ETC_OP_EXP, "exp", a, 0, 0)); }
et_tensor *et_log(et_tensor *a) { return etc_pooled(unary(EW_LOG, ETC_OP_LOG, "log", a, 0, 0)); }
et_tensor *et_sqrt(et_tensor *a) { return etc_pooled(unary(EW_SQRT, ETC_OP_SQRT, "sqrt", a, 0, 0)); }
et_tensor *et_abs(et_tensor *a) { return etc_pooled(unary(EW_ABS, ETC_OP_ABS, "abs", a, 0, 0)); }
et_tensor *et_tanh(et_tensor *a) { return etc_pooled(unary(EW_TANH, ETC_OP_TANH, "tanh", a, 0, 0)); }
et_tensor *et_sigmoid(et_tensor *a)
{
    return etc_pooled(unary(EW_SIGMOID, ETC_OP_SIGMOID, "sigmoid", a, 0, 0));
}
et_tensor *et_relu(et_tensor *a) { return etc_pooled(unary(EW_RELU, ETC_OP_RELU, "relu", a, 0, 0)); }
et_tensor *et_leaky_relu(et_tensor *a, float slope)
{
    return etc_pooled(unary(EW_LEAKY, ETC_OP_LEAKY_RELU, "leaky_relu", a, slope, 0));
}
et_tensor *et_gelu(et_tensor *a, bool tanh_approx)
{
    return etc_pooled(unary(tanh_approx ? EW_GELU_TANH : EW_GELU, ETC_OP_GELU, "gelu", a,
                            tanh_approx ? 1.0f : 0.0f, 0));
}
et_tensor *et_clamp(et_tensor *a, float min, float max)
{
    /* torch 1.13: a NaN bound with the other bound given makes every element
     * NaN; a NaN as the only bound (the other is -inf/+inf, i.e. absent)
     * leaves the values, as clamp_min/clamp_max.  No gradient either way. */
    if ((isnan(min) && max != INFINITY) || (isnan(max) && min != -INFINITY))
        return etc_pooled(unary(EW_MULS, ETC_OP_CLAMP, "clamp", a, NAN, NAN));
    if (isnan(min) || isnan(max))
        return etc_pooled(unary(EW_COPY, ETC_OP_CLAMP, "clamp", a, NAN, NAN));
    return etc_pooled(unary(EW_CLAMP, ETC_OP_CLAMP, "clamp", a, min, max));
}

ETC_BW(pass)
{
    gin[0] = etc_ref(g);
    return true;
}

ETC_BW(neg_pass) { return (gin[0] = etc_ew1(EW_NEG, g, 0, 0)) != NULL; }

ETC_BW(mul_scalar)
{
    int op = out->op == ETC_OP_DIV_SCALAR ? EW_DIVS : EW_MULS;
    return (gin[0] = etc_ew1(op, g, out->aux.f[0], 0)) != NULL;
}

ETC_BW(rdiv_scalar)
{
    return (gin[0] = etc_ew2(EW_RDIVS_B, "rdiv", g, out->in[0], out->aux.f[0])) != NULL;
}

ETC_BW(pow_scalar)
{
    return (gin[0] = etc_ew2(EW_POWS_B, "pow", g, out->in[0], out->aux.f[0])) != NULL;
}

ETC_BW(rpow_scalar)
{
    return (gin[0] = ew3(EW_RPOWS_B, g, out->in[0], out, out->aux.f[0])) != NULL;
}

ETC_BW(exp) { return (gin[0] = etc_ew2(EW_MUL, "exp", g, out, 0)) != NULL; }
ETC_BW(log) { return (gin[0] = etc_ew2(EW_DIV, "log", g, out->in[0], 0)) != NULL; }
ETC_BW(sqrt) { return (gin[0] = etc_ew2(EW_SQRT_B, "sqrt", g, out, 0)) != NULL; }
ETC_BW(abs) { return (gin[0] = etc_ew2(EW_ABS_B, "abs", g, out->in[0], 0)) != NULL; }
ETC_BW(tanh) { return (gin[0] = etc_ew2(EW_TANH_B, "tanh", g, out, 0)) != NULL; }
ETC_BW(sigmoid) { return (gin[0] = etc_ew2(EW_SIGMOID_B, "sigmoid", g, out, 0)) != NULL; }
ETC_BW(relu) { return (gin[0] = etc_ew2(EW_RELU_B, "relu", g, out, 0)) != NULL; }
ETC_BW(leaky_relu)
{
    return (gin[0] = etc_ew2(EW_LEAKY_B, "leaky_relu", g, out->in[0], out->aux.f[0])) != NULL;
}
ETC_BW(gelu)
{
    int op = out->aux.f[0] != 0.0f ? EW_GELU_TANH_B : EW_GELU_B;
    return (gin[0] = etc_ew2(op, "gelu", g, out->in[0], 0)) != NULL;
}
ETC_BW(clamp)
{
    et_tensor *in[2] = {g, out->in[0]};
    return (gin[0] = etc_ew(EW_CLAMP_B, "clamp", in, 2, out->aux.f[0], out->aux.f[1])) != NULL;
}

/* ------------------------------------------------------------------ */
/* comparisons and where                                                */

static et_tensor *compare(int ew, const char *name, et_tensor *a, et_tensor *b)
{
    if (!etc_null_check(a, name) || !etc_null_check(b, name))
        return NULL;
    return etc_pooled(etc_ew2(ew, name, a, b, 0));
}

et_tensor *et_eq(et_tensor *a, et_tensor *b) { return compare(EW_EQ, "eq", a, b); }
et_tensor *et_ne(et_tensor *a, et_tensor *b) { return compare(EW_NE, "ne", a, b); }
et_tensor *et_lt(et_tensor *a, et_tensor *b) { return compare(EW_LT, "lt", a, b); }
et_tensor *et_le(et_tensor *a, et_tensor *b) { return compare(EW_LE, "le", a, b); }
et_tensor *et_gt(et_tensor *a, et_tensor *b) { return compare(EW_GT, "gt", a, b); }
et_tensor *et_ge(et_tensor *a, et_tensor *b) { return compare(EW_GE, "ge", a, b); }

et_tensor *et_gt_scalar(et_tensor *a, float s)
{
    if (!etc_null_check(a, "gt"))
        return NULL;
    return etc_pooled(etc_ew1(EW_GTS, a, s, 0));
}

et_tensor *et_lt_scalar(et_tensor *a, float s)
{
    if (!etc_null_check(a, "lt"))
        return NULL;
    return etc_pooled(etc_ew1(EW_LTS, a, s, 0));
}

et_tensor *et_where(et_tensor *cond, et_tensor *a, et_tensor *b)
{
    if (!etc_null_check(cond, "where") || !etc_null_check(a, "where") ||
        !etc_null_check(b, "where"))
        return NULL;
    et_tensor *in[3] = {cond, a, b};
    et_tensor *out = etc_ew(EW_WHERE, "where", in, 3, 0, 0);
    if (!out)
        return NULL;
    out = etc_finish(out, ETC_OP_WHERE, in + 1, 2);
    if (out && out->requires_grad)
        out->saved = etc_ref(cond);
    return etc_pooled(out);
}

ETC_BW(where)
{
    et_tensor *cond = out->saved;
    if (want(out, 0) && !put_grad(out, 0, gin, etc_ew2(EW_MASK, "where", cond, g, 0)))
        return false;
    if (want(out, 1) && !put_grad(out, 1, gin, etc_ew2(EW_MASKN, "where", cond, g, 0)))
        return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* in place                                                             */

static bool inplace_ok(const et_tensor *t, const char *name)
{
    if (t->op != ETC_OP_NONE && t->requires_grad && etc_grad_mode()) {
        et_set_error(ET_ERR_GRAD,
                     "%s: in-place update of a non-leaf tensor that requires grad "
                     "(use no-grad mode)", name);
        return false;
    }
    return true;
}

et_status et_fill_(et_tensor *t, float value)
{
    if (!etc_null_check(t, "fill_"))
        return ET_ERR_ARG;
    if (!inplace_ok(t, "fill_"))
        return ET_ERR_GRAD;
    t->storage->version++;
    if (t->contiguous) {
        /* +0.0f is all zero bits: libc's memset (zero_grad's case) runs
         * the CPU's widest stores, the loop below the baseline's */
        if (value == 0.0f && !signbit(value))
            memset(t->data, 0, (size_t)t->numel * sizeof(float));
        else
            for (int64_t i = 0; i < t->numel; i++)
                t->data[i] = value;
        return ET_OK;
    }
    et_tensor *s = etc_full(NULL, 0, value);
    if (!s)
        return et_errcode();
    etc_strided_copy(t, s);
    etc_release(s);
    return ET_OK;
}

et_status et_copy_(et_tensor *dst, et_tensor *src)
{
    if (!etc_null_check(dst, "copy_") || !etc_null_check(src, "copy_"))
        return ET_ERR_ARG;
    if (!inplace_ok(dst, "copy_"))
        return ET_ERR_GRAD;
    int64_t bs[ET_MAX_DIMS];
    int nd = etc_broadcast_shape(dst->shape, dst->ndim, src->shape, src->ndim, bs);
    bool ok = nd == dst->ndim;
    for (int i = 0; ok && i < nd; i++)
        ok = bs[i] == dst->shape[i];
    if (!ok) {
        char b1[128], b2[128];
        return et_set_error(ET_ERR_SHAPE, "copy_: source shape %s does not broadcast to %s",
                            etc_shape_fmt(src->shape, src->ndim, b1, sizeof b1),
                            etc_shape_fmt(dst->shape, dst->ndim, b2, sizeof b2));
    }
    dst->storage->version++;
    if (src->storage == dst->storage && !(src->contiguous && dst->contiguous &&
                                          src->data == dst->data)) {
        et_tensor *c = etc_clone(src);
        if (!c)
            return et_errcode();
        etc_strided_copy(dst, c);
        etc_release(c);
        return ET_OK;
    }
    etc_strided_copy(dst, src);
    return ET_OK;
}
