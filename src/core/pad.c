/* pad.c - torch.nn.functional.pad: constant, reflect, replicate and
 * circular padding, negative padding (cropping) included.
 *
 * Every mode is one index map per padded dim: output position o along a
 * dim with left padding l reads input position src(o) (or the constant
 * when src is outside the input):
 *   constant   o - l
 *   reflect    o - l mirrored about the first and last element
 *   replicate  o - l clamped to [0, n)
 *   circular   wrapped inside the input cropped by the negative paddings
 * The forward gathers through the maps, the backward scatter-adds through
 * them (reflect/replicate/circular send several outputs to one input).
 * The rank rules are ATen's (PadNd.cpp): constant pads any of the last
 * dims; the other modes pad the last 1-3 dims of a 2-5-d input that has
 * one or two leading (channel, batch) dims, circular always both.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "easytorch/conv.h"

static const char *const mode_name[] = {"constant", "reflect", "replicate", "circular"};

/* Source index along one dim for output position o, or -1 (constant). */
static inline int64_t src_index(int mode, int64_t o, int64_t left, int64_t right, int64_t n)
{
    int64_t s = o - left;
    switch (mode) {
    case ET_PAD_REFLECT:
        if (s < 0)
            s = -s;
        if (s >= n)
            s = 2 * (n - 1) - s;
        return s;
    case ET_PAD_REPLICATE:
        return s < 0 ? 0 : (s >= n ? n - 1 : s);
    case ET_PAD_CIRCULAR: {
        int64_t c0 = left < 0 ? -left : 0, len = n - c0 - (right < 0 ? -right : 0);
        int64_t c = o - (left > 0 ? left : 0);
        c %= len;
        if (c < 0)
            c += len;
        return c0 + c;
    }
    default:
        return s >= 0 && s < n ? s : -1;
    }
}

/* Per output element of the padded dims: the input offset, or -1.  Built
 * as one map per dim (dims [first, nd)). */
typedef struct {
    int first;                   /* first padded dim */
    int64_t *map[ET_MAX_DIMS];   /* map[d][o] = input index along d, or -1 */
} pad_maps;

static void maps_free(pad_maps *m)
{
    for (int d = 0; d < ET_MAX_DIMS; d++)
        free(m->map[d]);
}

static bool maps_make(pad_maps *m, int mode, const et_tensor *in, const int64_t *oshape,
                      const int64_t *left, int first)
{
    memset(m, 0, sizeof *m);
    m->first = first;
    for (int d = first; d < in->ndim; d++) {
        int64_t n = in->shape[d], o = oshape[d], l = left[d], r = o - n - l;
        m->map[d] = malloc((size_t)(o > 0 ? o : 1) * sizeof(int64_t));
        if (!m->map[d]) {
            maps_free(m);
            et_set_error(ET_ERR_NOMEM, "pad: out of memory");
            return false;
        }
        for (int64_t k = 0; k < o; k++)
            m->map[d][k] = src_index(mode, k, l, r, n);
    }
    return true;
}

/* Input strides of a contiguous tensor of shape s. */
static void contig_strides(const int64_t *s, int nd, int64_t *st)
{
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= s[d];
    }
}

/* The copy in both directions: forward (gather, fill) or backward
 * (scatter-add).  `x` is the contiguous input (or its gradient), `y` the
 * contiguous output (or the upstream gradient). */
static void pad_apply(const pad_maps *m, const et_tensor *in, const int64_t *oshape, float *x,
                      float *y, float value, bool backward)
{
    int nd = in->ndim;
    int64_t ist[ET_MAX_DIMS], idx[ET_MAX_DIMS] = {0};
    contig_strides(in->shape, nd, ist);
    int64_t total = etc_numel(oshape, nd);
    if (total == 0)
        return;
    if (nd == 0) {
        if (backward)
            x[0] += y[0];
        else
            y[0] = x[0];
        return;
    }
    int64_t W = oshape[nd - 1];
    const int64_t *last = m->map[nd - 1];
    for (int64_t o = 0; o < total; o += W) {
        /* offset of the row (all dims but the last), or -1 when a padded
         * outer dim maps outside the input */
        int64_t base = 0;
        for (int d = 0; d < nd - 1 && base >= 0; d++) {
            int64_t s = d >= m->first ? m->map[d][idx[d]] : idx[d];
            base = s < 0 ? -1 : base + s * ist[d];
        }
        float *yr = y + o;
        if (backward) {
            if (base >= 0)
                for (int64_t k = 0; k < W; k++) {
                    int64_t s = last ? last[k] : k;
                    if (s >= 0)
                        x[base + s] += yr[k];
                }
        } else if (base < 0) {
            for (int64_t k = 0; k < W; k++)
                yr[k] = value;
        } else {
            for (int64_t k = 0; k < W; k++) {
                int64_t s = last ? last[k] : k;
                yr[k] = s >= 0 ? x[base + s] : value;
            }
        }
        for (int d = nd - 2; d >= 0; d--) {   /* next row */
            if (++idx[d] < oshape[d])
                break;
            idx[d] = 0;
        }
    }
}

et_tensor *et_pad(et_tensor *input, const int64_t *pad, int npad, et_pad_mode mode, float value)
{
    const char *op = "pad";
    char bx[128];
    if (!etc_null_check(input, op))
        return NULL;
    if ((int)mode < ET_PAD_CONSTANT || (int)mode > ET_PAD_CIRCULAR) {
        et_set_error(ET_ERR_ARG, "pad: unknown mode %d", (int)mode);
        return NULL;
    }
    int nd = input->ndim;
    if (npad < 0 || npad % 2 != 0 || (npad > 0 && !pad)) {
        et_set_error(ET_ERR_ARG, "pad: Padding length must be divisible by 2 (got %d)", npad);
        return NULL;
    }
    int pdims = npad / 2;
    if (pdims > nd) {
        et_set_error(ET_ERR_ARG, "pad: Padding length too large: %d values for input %s", npad,
                     etc_shape_fmt(input->shape, nd, bx, sizeof bx));
        return NULL;
    }
    if (mode != ET_PAD_CONSTANT) {
        bool ok = pdims >= 1 && pdims <= 3 && (nd == pdims + 2 ||
                                               (nd == pdims + 1 && mode != ET_PAD_CIRCULAR));
        if (!ok) {
            et_set_error(ET_ERR_ARG, "pad: %s padding of %d dim(s) needs a %s input, but got "
                         "input of size %s", mode_name[mode], pdims,
                         mode == ET_PAD_CIRCULAR ? (pdims == 1 ? "3D" : pdims == 2 ? "4D" : "5D")
                         : (pdims == 1 ? "2D or 3D" : pdims == 2 ? "3D or 4D" : "4D or 5D"),
                         etc_shape_fmt(input->shape, nd, bx, sizeof bx));
            return NULL;
        }
        if (value != 0.0f) {
            et_set_error(ET_ERR_ARG, "pad: padding mode \"%s\" doesn't take in value argument",
                         mode_name[mode]);
            return NULL;
        }
    }
    int64_t left[ET_MAX_DIMS] = {0}, oshape[ET_MAX_DIMS];
    memcpy(oshape, input->shape, sizeof(int64_t) * (size_t)nd);
    for (int i = 0; i < pdims; i++) {
        int d = nd - 1 - i;
        int64_t l = pad[2 * i], r = pad[2 * i + 1], n = input->shape[d];
        if (l < -(int64_t)INT_MAX || l > INT_MAX || r < -(int64_t)INT_MAX || r > INT_MAX) {
            et_set_error(ET_ERR_ARG, "pad: padding (%lld, %lld) of dim %d is out of range",
                         (long long)l, (long long)r, d);
            return NULL;
        }
        if (mode == ET_PAD_REFLECT && (l >= n || r >= n)) {
            et_set_error(ET_ERR_ARG, "pad: Padding size should be less than the corresponding "
                         "input dimension, but got: padding (%lld, %lld) at dimension %d of "
                         "input %s", (long long)l, (long long)r, d,
                         etc_shape_fmt(input->shape, nd, bx, sizeof bx));
            return NULL;
        }
        int64_t crop = (l < 0 ? -l : 0) + (r < 0 ? -r : 0);
        if (mode == ET_PAD_CIRCULAR && (l > n || r > n || l > n - crop || r > n - crop)) {
            et_set_error(ET_ERR_ARG, "pad: Padding value causes wrapping around more than once: "
                         "padding (%lld, %lld) at dimension %d of input %s", (long long)l,
                         (long long)r, d, etc_shape_fmt(input->shape, nd, bx, sizeof bx));
            return NULL;
        }
        oshape[d] = n + l + r;
        bool empty_in = mode != ET_PAD_CONSTANT && (n == 0 || crop >= n);
        if (oshape[d] < 0 || (mode != ET_PAD_CONSTANT && oshape[d] < 1) || empty_in) {
            et_set_error(ET_ERR_SHAPE, "pad: the input size %lld, plus padding %lld and %lld "
                         "resulted in an invalid output size %lld (dimension %d of input %s)",
                         (long long)n, (long long)l, (long long)r, (long long)oshape[d], d,
                         etc_shape_fmt(input->shape, nd, bx, sizeof bx));
            return NULL;
        }
        left[d] = l;
    }
    if (!etc_check_shape(oshape, nd, op))
        return NULL;
    pad_maps m;
    if (!maps_make(&m, mode, input, oshape, left, nd - pdims))
        return NULL;
    et_tensor *xc = etc_contig(input);
    et_tensor *out = xc ? etc_alloc(oshape, nd) : NULL;
    if (out)
        pad_apply(&m, input, oshape, xc->data, out->data, value, false);
    maps_free(&m);
    etc_release(xc);
    if (!out)
        return NULL;
    for (int d = 0; d < nd; d++)
        out->aux.i[d] = (int)left[d];
    out->aux.i[ET_MAX_DIMS] = (int)mode;
    out->aux.i[ET_MAX_DIMS + 1] = nd - pdims;
    return etc_pooled(etc_finish(out, ETC_OP_PAD, &input, 1));
}

ETC_BW(pad)
{
    et_tensor *x = out->in[0], *gz, *gc;
    int64_t left[ET_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++)
        left[d] = out->aux.i[d];
    pad_maps m;
    if (!maps_make(&m, out->aux.i[ET_MAX_DIMS], x, out->shape, left, out->aux.i[ET_MAX_DIMS + 1]))
        return false;
    if (!etc_scatter_begin(x, g, &gz, &gc)) {
        maps_free(&m);
        return false;
    }
    pad_apply(&m, x, out->shape, gz->data, gc->data, 0.0f, true);
    maps_free(&m);
    etc_release(gc);
    gin[0] = gz;
    return true;
}
