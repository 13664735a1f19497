/* ops_unary.c - more elementwise ops (rounding, reciprocal, trig, erf, the
 * activations of torch.nn.functional), predicates and logic, masked_fill,
 * elementwise binary cross entropy, and in-place arithmetic, with their
 * backward functions.  Kernels are rows of kernels.c's row(). */
#include <math.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* unary                                                                */

#define UNARY0(fn, EW, OP)                                                       \
    et_tensor *et_##fn(et_tensor *a)                                             \
    {                                                                            \
        return etc_pooled(etc_unary(EW, OP, #fn, a, 0.0f, 0.0f));                \
    }

UNARY0(sign, EW_SIGN, ETC_OP_SIGN)
UNARY0(floor, EW_FLOOR, ETC_OP_FLOOR)
UNARY0(ceil, EW_CEIL, ETC_OP_CEIL)
UNARY0(round, EW_ROUND, ETC_OP_ROUND)
UNARY0(reciprocal, EW_RECIP, ETC_OP_RECIPROCAL)
UNARY0(rsqrt, EW_RSQRT, ETC_OP_RSQRT)
UNARY0(log1p, EW_LOG1P, ETC_OP_LOG1P)
UNARY0(expm1, EW_EXPM1, ETC_OP_EXPM1)
UNARY0(sin, EW_SIN, ETC_OP_SIN)
UNARY0(cos, EW_COS, ETC_OP_COS)
UNARY0(erf, EW_ERF, ETC_OP_ERF)
UNARY0(silu, EW_SILU, ETC_OP_SILU)
UNARY0(mish, EW_MISH, ETC_OP_MISH)

et_tensor *et_softplus(et_tensor *a, float beta, float threshold)
{
    return etc_pooled(etc_unary(EW_SOFTPLUS, ETC_OP_SOFTPLUS, "softplus", a, beta, threshold));
}

et_tensor *et_elu(et_tensor *a, float alpha)
{
    return etc_pooled(etc_unary(EW_ELU, ETC_OP_ELU, "elu", a, alpha, 0.0f));
}

et_tensor *et_hardtanh(et_tensor *a, float min_val, float max_val)
{
    if (!(min_val <= max_val)) {
        et_set_error(ET_ERR_ARG, "hardtanh: min_val (%g) must not be greater than max_val (%g)",
                     (double)min_val, (double)max_val);
        return NULL;
    }
    return etc_pooled(etc_unary(EW_HARDTANH, ETC_OP_HARDTANH, "hardtanh", a, min_val, max_val));
}

/* Gradient zero everywhere (sign, floor, ceil, round: torch's zeros_like). */
ETC_BW(zero)
{
    et_tensor *a = out->in[0];
    return (gin[0] = etc_zeros(a->shape, a->ndim)) != NULL;
}

/* g (op) saved value, with the op's parameters */
static bool back2(et_tensor *out, et_tensor *g, et_tensor **gin, int ew, et_tensor *saved)
{
    et_tensor *in[2] = {g, saved};
    return (gin[0] = etc_ew(ew, "backward", in, 2, out->aux.f[0], out->aux.f[1])) != NULL;
}

ETC_BW(reciprocal) { return back2(out, g, gin, EW_RECIP_B, out); }
ETC_BW(rsqrt) { return back2(out, g, gin, EW_RSQRT_B, out); }
ETC_BW(log1p) { return back2(out, g, gin, EW_LOG1P_B, out->in[0]); }
ETC_BW(expm1) { return back2(out, g, gin, EW_EXPM1_B, out); }
ETC_BW(sin) { return back2(out, g, gin, EW_SIN_B, out->in[0]); }
ETC_BW(cos) { return back2(out, g, gin, EW_COS_B, out->in[0]); }
ETC_BW(erf) { return back2(out, g, gin, EW_ERF_B, out->in[0]); }
ETC_BW(softplus) { return back2(out, g, gin, EW_SOFTPLUS_B, out->in[0]); }
ETC_BW(elu) { return back2(out, g, gin, EW_ELU_B, out->in[0]); }
ETC_BW(silu) { return back2(out, g, gin, EW_SILU_B, out->in[0]); }
ETC_BW(mish) { return back2(out, g, gin, EW_MISH_B, out->in[0]); }
ETC_BW(hardtanh) { return back2(out, g, gin, EW_HARDTANH_B, out->in[0]); }

/* ------------------------------------------------------------------ */
/* predicates and logic (no gradient)                                   */

static et_tensor *pred1(int ew, const char *name, et_tensor *a)
{
    if (!etc_null_check(a, name))
        return NULL;
    return etc_pooled(etc_ew(ew, name, &a, 1, 0.0f, 0.0f));
}

static et_tensor *pred2(int ew, const char *name, et_tensor *a, et_tensor *b)
{
    if (!etc_null_check(a, name) || !etc_null_check(b, name))
        return NULL;
    return etc_pooled(etc_ew2(ew, name, a, b, 0.0f));
}

et_tensor *et_isnan(et_tensor *a) { return pred1(EW_ISNAN, "isnan", a); }
et_tensor *et_isfinite(et_tensor *a) { return pred1(EW_ISFINITE, "isfinite", a); }
et_tensor *et_logical_not(et_tensor *a) { return pred1(EW_LNOT, "logical_not", a); }
et_tensor *et_logical_and(et_tensor *a, et_tensor *b)
{
    return pred2(EW_LAND, "logical_and", a, b);
}
et_tensor *et_logical_or(et_tensor *a, et_tensor *b) { return pred2(EW_LOR, "logical_or", a, b); }

/* ------------------------------------------------------------------ */
/* masked_fill                                                          */

et_tensor *et_masked_fill(et_tensor *a, et_tensor *mask, float value)
{
    if (!etc_null_check(a, "masked_fill") || !etc_null_check(mask, "masked_fill"))
        return NULL;
    et_tensor *out = etc_ew2(EW_MASKED_FILL, "masked_fill", a, mask, value);
    if (!out)
        return NULL;
    out = etc_finish(out, ETC_OP_MASKED_FILL, &a, 1);
    if (out && out->requires_grad)
        out->saved = etc_ref(mask);
    return etc_pooled(out);
}

/* the gradient passes where the mask is 0 */
ETC_BW(masked_fill)
{
    return etc_put_grad(out, 0, gin, etc_ew2(EW_MASKN, "masked_fill", out->saved, g, 0.0f));
}

/* ------------------------------------------------------------------ */
/* binary cross entropy                                                 */

et_tensor *et_binary_cross_entropy(et_tensor *input, et_tensor *target)
{
    const char *name = "binary_cross_entropy";
    if (!etc_null_check(input, name) || !etc_null_check(target, name))
        return NULL;
    if (!et_same_shape(input, target)) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "%s: input shape %s and target shape %s differ", name,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1),
                     etc_shape_fmt(target->shape, target->ndim, b2, sizeof b2));
        return NULL;
    }
    et_tensor *x = etc_contig(input);
    if (!x)
        return NULL;
    for (int64_t i = 0; i < x->numel; i++) {
        float v = x->data[i];
        if (!(v >= 0.0f && v <= 1.0f)) {
            etc_release(x);
            et_set_error(ET_ERR_ARG, "%s: all elements of input should be between 0 and 1, "
                         "element %lld is %g", name, (long long)i, (double)v);
            return NULL;
        }
    }
    etc_release(x);
    et_tensor *ins[2] = {input, target};
    return etc_pooled(etc_finish(etc_ew(EW_BCE, name, ins, 2, 0.0f, 0.0f), ETC_OP_BCE, ins, 2));
}

/* input: dy (x - y) / max(x (1 - x), 1e-12); target: dy (log(1 - x) - log(x)),
 * as torch's binary_cross_entropy_backward / _target_backward */
ETC_BW(bce)
{
    et_tensor *x = out->in[0], *y = out->in[1];
    if (x->requires_grad) {
        et_tensor *in[3] = {g, x, y};
        if (!(gin[0] = etc_ew(EW_BCE_BX, "backward", in, 3, 0.0f, 0.0f)))
            return false;
    }
    if (y->requires_grad && !(gin[1] = etc_ew2(EW_BCE_BY, "backward", g, x, 0.0f)))
        return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* in place                                                             */

/* torch's rules for an in-place op, minus what easytorch cannot record:
 * with grad mode on, the target must not require grad (a leaf: torch's
 * error; a non-leaf: the write would not be in its graph) and no operand
 * may require grad. */
static bool inplace_check(et_tensor *t, et_tensor *other, const char *name)
{
    if (!etc_null_check(t, name) || (other && !etc_null_check(other, name)))
        return false;
    if (!etc_grad_mode())
        return true;
    if (t->requires_grad) {
        et_set_error(ET_ERR_GRAD, t->op == ETC_OP_NONE
                     ? "%s: a leaf tensor that requires grad is being used in an in-place "
                       "operation (use no-grad mode)"
                     : "%s: in-place update of a non-leaf tensor that requires grad "
                       "(use no-grad mode)", name);
        return false;
    }
    if (other && other->requires_grad) {
        et_set_error(ET_ERR_GRAD, "%s: an operand requires grad; in-place ops are not "
                     "recorded (use the out-of-place op, or no-grad mode)", name);
        return false;
    }
    return true;
}

/* t = ew(t, other) through t's strides; other must broadcast to t's shape. */
static et_status inplace_apply(et_tensor *t, et_tensor *other, int ew, const char *name, float p0,
                               float p1)
{
    et_tensor *ins[2] = {t, other};
    et_tensor *r = etc_ew(ew, name, ins, other ? 2 : 1, p0, p1);
    if (!r)
        return et_errcode();
    if (!et_same_shape(r, t)) {
        char b1[128], b2[128];
        etc_shape_fmt(t->shape, t->ndim, b1, sizeof b1);
        etc_shape_fmt(r->shape, r->ndim, b2, sizeof b2);
        etc_release(r);
        return et_set_error(ET_ERR_SHAPE, "%s: output with shape %s doesn't match the "
                            "broadcast shape %s", name, b1, b2);
    }
    t->storage->version++;
    etc_strided_copy(t, r);
    etc_release(r);
    return ET_OK;
}

et_status et_add_(et_tensor *t, et_tensor *other, float alpha)
{
    if (!inplace_check(t, other, "add_"))
        return et_errcode();
    if (alpha == 1.0f)
        return inplace_apply(t, other, EW_ADD, "add_", 0.0f, 0.0f);
    /* alpha * other first, rounded to float, as torch's add kernel */
    et_tensor *s = etc_ew1(EW_MULS, other, alpha, 0.0f);
    if (!s)
        return et_errcode();
    et_status st = inplace_apply(t, s, EW_ADD, "add_", 0.0f, 0.0f);
    etc_release(s);
    return st;
}

et_status et_mul_(et_tensor *t, et_tensor *other)
{
    if (!inplace_check(t, other, "mul_"))
        return et_errcode();
    return inplace_apply(t, other, EW_MUL, "mul_", 0.0f, 0.0f);
}

et_status et_add_scalar_(et_tensor *t, float s)
{
    if (!inplace_check(t, NULL, "add_"))
        return et_errcode();
    return inplace_apply(t, NULL, EW_ADDS, "add_", s, 0.0f);
}

et_status et_mul_scalar_(et_tensor *t, float s)
{
    if (!inplace_check(t, NULL, "mul_"))
        return et_errcode();
    return inplace_apply(t, NULL, EW_MULS, "mul_", s, 0.0f);
}

et_status et_clamp_(et_tensor *t, float min, float max)
{
    if (!inplace_check(t, NULL, "clamp_"))
        return et_errcode();
    /* a NaN bound next to a given (finite or -inf/+inf on its own side) other bound:
     * NaN everywhere, as torch.clamp; see et_clamp */
    if ((isnan(min) && max != INFINITY) || (isnan(max) && min != -INFINITY))
        return inplace_apply(t, NULL, EW_MULS, "clamp_", NAN, 0.0f);
    if (isnan(min) || isnan(max))
        return ET_OK;   /* the one given bound is NaN: torch's clamp_min/max leave t */
    return inplace_apply(t, NULL, EW_CLAMP, "clamp_", min, max);
}
