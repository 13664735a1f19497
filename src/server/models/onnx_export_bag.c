/* onnx_export_bag.c - EmbeddingBag as ONNX opset 17 nodes (onnx_ox.h).
 *
 * Opset 17 has no bag op.  The rows are gathered (Gather of the weight),
 * then reduced per bag:
 *   - a 2-D input [B, L] (each row a bag: a layer list, or a graph call
 *     with one argument): ReduceSum / ReduceMean / ReduceMax over axis 1;
 *   - a 1-D input [N] with offsets [B] (a graph call (input, offsets)):
 *     bags are segments of the input, which ONNX's fixed-rank ops express
 *     as a membership matrix M [B, N], M[b, j] = offsets[b] <= j < end[b]
 *     (end: the next offset, N for the last bag; include_last_offset: the
 *     offsets' last entry), built from Range(N); sum is M @ rows, mean that
 *     over the bag's count, max ReduceMax of Where(M, rows, -inf).
 * A padding_idx leaves its positions out of every bag (and of mean's
 * count); an empty bag gives zeros, as torch (Max(count, 1) as mean's
 * divisor, Where(count > 0) after max).  O(B * N * E) for offsets; the
 * library's own loop is O(N * E). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "server/models/onnx_ox.h"

#define U(what) ox_str(x, "%s_%zu", what, x->ni)

static const char *cast(ox *x, const char *v, int to)
{
    return ox_node(x, "Cast", IN(v), AT(ox_attr_i(x, "to", to)));
}

static const char *unsq(ox *x, const char *v, int64_t axis)
{
    return ox_node(x, "Unsqueeze", IN(v, ox_init_i64(x, U("axes"), &axis, 1)), NULL);
}

static const char *reduce(ox *x, const char *op, const char *v, int64_t axis, int keep)
{
    if (!strcmp(op, "ReduceSum")) /* opset 13+: axes an input */
        return ox_node(x, op, IN(v, ox_init_i64(x, U("axes"), &axis, 1)),
                       AT(ox_attr_i(x, "keepdims", keep)));
    return ox_node(x, op, IN(v), AT(ox_attr_ints(x, "axes", &axis, 1),
                                    ox_attr_i(x, "keepdims", keep)));
}

/* per-bag results r [B, E] of a bag membership mask m (bool) whose bag axis
 * sums to count [B, 1]: mean's division, max's zeros for empty bags */
static const char *finish(ox *x, et_bag_mode mode, const char *r, const char *count)
{
    if (mode == ET_BAG_MEAN)
        return ox_node(x, "Div", IN(r, ox_node(x, "Max", IN(count, ox_scalar_f(x, U("one"), 1.0f)),
                                               NULL)), NULL);
    if (mode == ET_BAG_MAX)
        return ox_node(x, "Where", IN(ox_node(x, "Greater", IN(count, ox_scalar_f(x, U("zero"), 0.0f)),
                                              NULL), r, ox_scalar_f(x, U("zero"), 0.0f)), NULL);
    return r;
}

etd_rc ox_export_embedding_bag(ox *x, const etd_layer *l, const shape *in, const char *idx,
                               bool idx_int64, const char *offsets, const char **cur, etd_err *e)
{
    const et_embedding_bag_opts *o = &l->u.embedding.o;
    if (o->max_norm > 0)
        return ox_unsupported(x, "max_norm (it renormalises the weight in the forward)", e);
    if (offsets ? in->nd != 1 : in->nd != 2)
        return ox_unsupported(x, offsets ? "offsets with an input that is not 1-D"
                                         : "an input that is not [bags, indices per bag] "
                                           "(1-D indices need offsets)", e);
    const int I64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64, F32 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (!idx_int64)
        idx = cast(x, idx, I64);
    const char *rows = ox_node(x, "Gather", IN(ox_param(x, "weight", NULL, 0), idx),
                               AT(ox_attr_i(x, "axis", 0)));      /* [.., E] */
    const char *keep = NULL; /* positions that are not padding (bool, shaped like idx) */
    if (o->padding_idx != ET_NO_INDEX) {
        int64_t p = o->padding_idx < 0 ? o->padding_idx + l->u.embedding.num : o->padding_idx;
        keep = ox_node(x, "Not", IN(ox_node(x, "Equal", IN(idx, ox_init(x, U("padding_idx"), I64,
                                                                        &p, sizeof p, NULL, 0)),
                                            NULL)), NULL);
    }
    const float ninf = -INFINITY;
    const char *r, *count = NULL;
    if (!offsets) { /* [B, L, E] over axis 1 */
        if (!keep) {
            static const char *const op[] = {"ReduceSum", "ReduceMean", "ReduceMax"};
            *cur = reduce(x, op[o->mode], rows, 1, 0);
            return ETD_OK;
        }
        const char *k3 = unsq(x, keep, 2), *kf = cast(x, keep, F32);
        count = reduce(x, "ReduceSum", kf, 1, 1);                 /* [B, 1] */
        r = o->mode == ET_BAG_MAX
                ? reduce(x, "ReduceMax", ox_node(x, "Where", IN(k3, rows, ox_scalar_f(x, U("ninf"), ninf)),
                                                 NULL), 1, 0)
                : reduce(x, "ReduceSum", ox_node(x, "Mul", IN(rows, cast(x, k3, F32)), NULL), 1, 0);
        *cur = finish(x, o->mode, r, count);
        return ETD_OK;
    }
    /* offsets: starts [B], ends [B] against positions [N] */
    int64_t z = 0, one = 1, big = INT64_MAX, m1 = -1;
    const char *off = cast(x, offsets, I64);
    const char *n1 = ox_node(x, "Shape", IN(idx), NULL);         /* [N] as a 1-element shape */
    const char *n = ox_node(x, "Squeeze", IN(n1, ox_init_i64(x, U("axes"), &z, 1)), NULL);
    const char *pos = ox_node(x, "Range", IN(ox_init(x, U("zero"), I64, &z, sizeof z, NULL, 0), n,
                                             ox_init(x, U("one"), I64, &one, sizeof one, NULL, 0)),
                              NULL);
    const char *first = ox_init_i64(x, U("start"), &z, 1), *second = ox_init_i64(x, U("start"), &one, 1);
    const char *tail = ox_node(x, "Slice", IN(off, second, ox_init_i64(x, U("end"), &big, 1)), NULL);
    const char *starts = o->include_last_offset
                             ? ox_node(x, "Slice", IN(off, first, ox_init_i64(x, U("end"), &m1, 1)), NULL)
                             : off;
    const char *ends = o->include_last_offset
                           ? tail : ox_node(x, "Concat", IN(tail, n1), AT(ox_attr_i(x, "axis", 0)));
    const char *p0 = unsq(x, pos, 0);                              /* [1, N] */
    const char *m = ox_node(x, "And", IN(ox_node(x, "GreaterOrEqual", IN(p0, unsq(x, starts, 1)), NULL),
                                         ox_node(x, "Less", IN(p0, unsq(x, ends, 1)), NULL)), NULL);
    if (keep)
        m = ox_node(x, "And", IN(m, unsq(x, keep, 0)), NULL);     /* [B, N] */
    const char *mf = cast(x, m, F32);
    if (o->mode == ET_BAG_MAX)
        r = reduce(x, "ReduceMax", ox_node(x, "Where", IN(unsq(x, m, 2), unsq(x, rows, 0),
                                                          ox_scalar_f(x, U("ninf"), ninf)), NULL), 1, 0);
    else
        r = ox_node(x, "MatMul", IN(mf, rows), NULL);              /* [B, E] */
    count = o->mode == ET_BAG_SUM ? NULL : reduce(x, "ReduceSum", mf, 1, 1);
    *cur = finish(x, o->mode, r, count);
    return ETD_OK;
}
