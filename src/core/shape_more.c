/* shape_more.c - split / chunk / unbind (views), diagonal (a view),
 * expand_as, and the copying rearrangements repeat, flip, roll, tril and
 * triu, with their backward functions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* split / chunk / unbind: views along one dim                          */

/* Hands the n pieces to the caller (each through the pool) or, when the
 * caller's array is too small, releases them and fails. */
static int hand_out(et_tensor **pieces, int n, et_tensor **out, int max_out, const char *name)
{
    if (!out) {
        for (int i = 0; i < n; i++)
            etc_release(pieces[i]);
        return n;
    }
    if (n > max_out) {
        for (int i = 0; i < n; i++)
            etc_release(pieces[i]);
        et_set_error(ET_ERR_ARG, "%s: %d pieces do not fit the output array of %d", name, n,
                     max_out);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = etc_pooled(pieces[i]);
    return n;
}

/* Slices [start_i, start_i + len_i) of dim d, marked with `op` (their
 * backward is slice's). */
static int split_at(et_tensor *a, int d, const int64_t *lens, int n, int op, const char *name,
                    et_tensor **out, int max_out)
{
    et_tensor **pieces = calloc((size_t)(n > 0 ? n : 1), sizeof *pieces);
    if (!pieces) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", name);
        return -1;
    }
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        pieces[i] = etc_slice(a, d, pos, pos + lens[i], 1);
        if (!pieces[i]) {
            for (int j = 0; j < i; j++)
                etc_release(pieces[j]);
            free(pieces);
            return -1;
        }
        if (pieces[i]->op == ETC_OP_SLICE)
            pieces[i]->op = op;
        pos += lens[i];
    }
    int r = hand_out(pieces, n, out, max_out, name);
    free(pieces);
    return r;
}

static int split_dim(et_tensor *a, int dim, const char *name)
{
    if (!etc_any_check(a, name))
        return -1;
    if (a->ndim == 0) {
        et_set_error(ET_ERR_INDEX, "%s: cannot be applied to a 0-dim tensor", name);
        return -1;
    }
    return etc_wrap_dim(dim, a->ndim, name);
}

/* pieces of split_size (the last one shorter) */
static int split_even(et_tensor *a, int64_t split_size, int d, int op, const char *name,
                      et_tensor **out, int max_out)
{
    int64_t D = a->shape[d];
    if (split_size < 0 || (split_size == 0 && D != 0)) {
        et_set_error(ET_ERR_ARG, "%s: split_size can only be 0 if dimension size is 0, but got "
                     "split_size %lld for dimension size %lld", name, (long long)split_size,
                     (long long)D);
        return -1;
    }
    int64_t n = split_size == 0 ? 1 : (D + split_size - 1) / split_size;
    if (n == 0)
        n = 1;
    if (n > 1 << 20) {
        et_set_error(ET_ERR_ARG, "%s: %lld pieces are too many", name, (long long)n);
        return -1;
    }
    int64_t *lens = malloc((size_t)n * sizeof *lens);
    if (!lens) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", name);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        lens[i] = split_size == 0 ? 0 : (D - i * split_size < split_size ? D - i * split_size
                                                                         : split_size);
    int r = split_at(a, d, lens, (int)n, op, name, out, max_out);
    free(lens);
    return r;
}

int et_split(et_tensor *a, int64_t split_size, int dim, et_tensor **out, int max_out)
{
    int d = split_dim(a, dim, "split");
    if (d < 0)
        return -1;
    return split_even(a, split_size, d, ETC_OP_SPLIT, "split", out, max_out);
}

int et_split_sizes(et_tensor *a, const int64_t *sizes, int n, int dim, et_tensor **out,
                   int max_out)
{
    int d = split_dim(a, dim, "split_with_sizes");
    if (d < 0)
        return -1;
    if (n <= 0 || !sizes) {
        et_set_error(ET_ERR_ARG, "split_with_sizes: expected a non-empty list of sizes");
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) {
            et_set_error(ET_ERR_ARG, "split_with_sizes: size %d is negative (%lld)", i,
                         (long long)sizes[i]);
            return -1;
        }
        total += sizes[i] < INT64_MAX - total ? sizes[i] : INT64_MAX - total;
    }
    if (total != a->shape[d]) {
        et_set_error(ET_ERR_SHAPE, "split_with_sizes: expects split_sizes to sum exactly to "
                     "%lld (input's size at dimension %d), but they sum to %lld",
                     (long long)a->shape[d], d, (long long)total);
        return -1;
    }
    return split_at(a, d, sizes, n, ETC_OP_SPLIT_WITH_SIZES, "split_with_sizes", out, max_out);
}

int et_chunk(et_tensor *a, int chunks, int dim, et_tensor **out, int max_out)
{
    int d = split_dim(a, dim, "chunk");
    if (d < 0)
        return -1;
    if (chunks <= 0) {
        et_set_error(ET_ERR_ARG, "chunk: expects `chunks` to be greater than 0, got %d", chunks);
        return -1;
    }
    int64_t D = a->shape[d];
    if (D == 0) {   /* torch: `chunks` empty pieces */
        int64_t *lens = calloc((size_t)chunks, sizeof *lens);
        if (!lens) {
            et_set_error(ET_ERR_NOMEM, "chunk: out of memory");
            return -1;
        }
        int r = split_at(a, d, lens, chunks, ETC_OP_SPLIT, "chunk", out, max_out);
        free(lens);
        return r;
    }
    return split_even(a, (D + chunks - 1) / chunks, d, ETC_OP_SPLIT, "chunk", out, max_out);
}

int et_unbind(et_tensor *a, int dim, et_tensor **out, int max_out)
{
    int d = split_dim(a, dim, "unbind");
    if (d < 0)
        return -1;
    int64_t D = a->shape[d];
    if (D > 1 << 20) {
        et_set_error(ET_ERR_ARG, "unbind: %lld pieces are too many", (long long)D);
        return -1;
    }
    et_tensor **pieces = calloc((size_t)(D > 0 ? D : 1), sizeof *pieces);
    if (!pieces) {
        et_set_error(ET_ERR_NOMEM, "unbind: out of memory");
        return -1;
    }
    for (int64_t i = 0; i < D; i++) {
        pieces[i] = etc_select(a, d, i);
        if (!pieces[i]) {
            for (int64_t j = 0; j < i; j++)
                etc_release(pieces[j]);
            free(pieces);
            return -1;
        }
        if (pieces[i]->op == ETC_OP_SELECT)
            pieces[i]->op = ETC_OP_UNBIND;
    }
    int r = hand_out(pieces, (int)D, out, max_out, "unbind");
    free(pieces);
    return r;
}

/* ------------------------------------------------------------------ */
/* diagonal (a view)                                                    */

/* The diagonal of dims d1, d2 (wrapped, distinct) as a plain view: the
 * other dims, then the diagonal. */
static et_tensor *diag_view(et_tensor *a, int64_t offset, int d1, int d2)
{
    int64_t n1 = a->shape[d1], n2 = a->shape[d2];
    int64_t len = offset >= 0 ? (n2 - offset < n1 ? n2 - offset : n1)
                              : (n1 + offset < n2 ? n1 + offset : n2);
    if (len < 0)
        len = 0;
    int64_t start = a->offset;
    if (len > 0)
        start += offset >= 0 ? offset * a->strides[d2] : -offset * a->strides[d1];
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < a->ndim; d++)
        if (d != d1 && d != d2) {
            sh[m] = a->shape[d];
            st[m++] = a->strides[d];
        }
    sh[m] = len;
    st[m++] = a->strides[d1] + a->strides[d2];
    return etc_view_of(a, sh, st, m, start);
}

et_tensor *etc_diagonal(et_tensor *a, int64_t offset, int dim1, int dim2)
{
    if (!etc_any_check(a, "diagonal"))
        return NULL;
    if (a->ndim < 2) {
        et_set_error(ET_ERR_SHAPE, "diagonal: expects a tensor with at least 2 dims, got %d",
                     a->ndim);
        return NULL;
    }
    int d1 = etc_wrap_dim(dim1, a->ndim, "diagonal");
    int d2 = d1 < 0 ? -1 : etc_wrap_dim(dim2, a->ndim, "diagonal");
    if (d1 < 0 || d2 < 0)
        return NULL;
    if (d1 == d2) {
        et_set_error(ET_ERR_ARG, "diagonal: dimensions cannot be identical %d, %d", dim1, dim2);
        return NULL;
    }
    if (offset > INT64_MAX / 4 || offset < -(INT64_MAX / 4)) {
        et_set_error(ET_ERR_ARG, "diagonal: offset %lld is out of range", (long long)offset);
        return NULL;
    }
    et_tensor *out = etc_finish(diag_view(a, offset, d1, d2), ETC_OP_DIAGONAL, &a, 1);
    if (out) {
        out->aux.l[0] = offset;
        out->aux.l[1] = d1;
        out->aux.l[2] = d2;
    }
    return out;
}

et_tensor *et_diagonal(et_tensor *a, int64_t offset, int dim1, int dim2)
{
    return etc_pooled(etc_diagonal(a, offset, dim1, dim2));
}

/* zeros of the input's shape with g written through the same diagonal view */
ETC_BW(diagonal)
{
    et_tensor *a = out->in[0];
    et_tensor *z = etc_zeros(a->shape, a->ndim);
    et_tensor *v = z ? diag_view(z, out->aux.l[0], (int)out->aux.l[1], (int)out->aux.l[2]) : NULL;
    if (!v) {
        etc_release(z);
        return false;
    }
    etc_strided_copy(v, g);
    etc_release(v);
    gin[0] = z;
    return true;
}

et_tensor *et_expand_as(et_tensor *a, et_tensor *other)
{
    if (!etc_any_check(a, "expand_as") || !etc_any_check(other, "expand_as"))
        return NULL;
    return etc_pooled(etc_expand(a, other->shape, other->ndim));
}

/* ------------------------------------------------------------------ */
/* index-mapping copies: repeat, roll                                   */

/* Walks every element of `shape` in row-major order; idx is the multi-index. */
static bool next_index(int64_t *idx, const int64_t *shape, int nd)
{
    for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < shape[d])
            return true;
        idx[d] = 0;
    }
    return false;
}

et_tensor *et_repeat(et_tensor *a, const int64_t *repeats, int n)
{
    if (!etc_any_check(a, "repeat"))
        return NULL;
    if (n < a->ndim || n > ET_MAX_DIMS || (n > 0 && !repeats)) {
        et_set_error(ET_ERR_ARG, "repeat: number of dimensions of repeat dims (%d) can not be "
                     "smaller than number of dimensions of tensor (%d)%s", n, a->ndim,
                     n > ET_MAX_DIMS ? " or exceed the maximum" : "");
        return NULL;
    }
    int64_t sh[ET_MAX_DIMS], src[ET_MAX_DIMS];
    for (int d = 0; d < n; d++) {
        int ad = d - (n - a->ndim);
        src[d] = ad >= 0 ? a->shape[ad] : 1;
        if (repeats[d] < 0) {
            et_set_error(ET_ERR_ARG, "repeat: trying to create a tensor with negative dimension "
                         "%lld", (long long)repeats[d]);
            return NULL;
        }
        if (__builtin_mul_overflow(src[d], repeats[d], &sh[d])) {
            et_set_error(ET_ERR_NOMEM, "repeat: the result size overflows");
            return NULL;
        }
    }
    if (!etc_check_shape(sh, n, "repeat"))
        return NULL;
    et_tensor *x = etc_contig(a);
    et_tensor *out = x ? etc_alloc_dtype(sh, n, a->dtype) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    int es = etc_elsize(a->dtype);
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t k = 0; k < out->numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < n; d++)
            off = off * src[d] + idx[d] % src[d];
        memcpy((char *)out->data + k * es, (char *)x->data + off * es, (size_t)es);
        next_index(idx, sh, n);
    }
    etc_release(x);
    return etc_pooled(etc_finish(out, ETC_OP_REPEAT, &a, 1));
}

/* every tile's gradient summed back onto the input */
ETC_BW(repeat)
{
    et_tensor *a = out->in[0];
    int n = out->ndim;
    int64_t src[ET_MAX_DIMS];
    for (int d = 0; d < n; d++) {
        int ad = d - (n - a->ndim);
        src[d] = ad >= 0 ? a->shape[ad] : 1;
    }
    et_tensor *gz, *gc;
    if (!etc_scatter_begin(a, g, &gz, &gc))
        return false;
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t k = 0; k < gc->numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < n; d++)
            off = off * src[d] + idx[d] % src[d];
        gz->data[off] += gc->data[k];
        next_index(idx, out->shape, n);
    }
    etc_release(gc);
    gin[0] = gz;
    return true;
}

/* out[i + shift] = in[i] along each rolled dim (flat when ndims is 0) */
static et_tensor *roll_copy(et_tensor *a, const int64_t *shifts, const int *dims, int n)
{
    et_tensor *x = etc_contig(a);
    et_tensor *out = x ? etc_alloc_dtype(a->shape, a->ndim, a->dtype) : NULL;
    if (!out) {
        etc_release(x);
        return NULL;
    }
    int es = etc_elsize(a->dtype);
    if (x->numel == 0) {
        etc_release(x);
        return out;
    }
    if (n == 0) {   /* flattened */
        int64_t N = x->numel, s = ((shifts[0] % N) + N) % N;
        for (int64_t k = 0; k < N; k++)
            memcpy((char *)out->data + ((k + s) % N) * es, (char *)x->data + k * es, (size_t)es);
        etc_release(x);
        return out;
    }
    int64_t sh[ET_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int64_t D = a->shape[dims[i]];
        sh[dims[i]] = (sh[dims[i]] + shifts[i] % D + D) % D;   /* repeated dims add up */
    }
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t k = 0; k < x->numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < a->ndim; d++)
            off = off * a->shape[d] + (idx[d] + sh[d]) % a->shape[d];
        memcpy((char *)out->data + off * es, (char *)x->data + k * es, (size_t)es);
        next_index(idx, a->shape, a->ndim);
    }
    etc_release(x);
    return out;
}

et_tensor *et_roll(et_tensor *a, const int64_t *shifts, const int *dims, int n)
{
    if (!etc_any_check(a, "roll"))
        return NULL;
    if (n < 0 || n > ET_MAX_DIMS || !shifts || (n > 0 && !dims)) {
        et_set_error(ET_ERR_ARG, "roll: expected a shift (and, with dims, one shift per dim; at "
                     "most %d)", ET_MAX_DIMS);
        return NULL;
    }
    int wd[ET_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++)
        if ((wd[i] = etc_wrap_dim(dims[i], a->ndim, "roll")) < 0)
            return NULL;
    if (n > 0 && a->ndim == 0) {
        et_set_error(ET_ERR_INDEX, "roll: cannot roll a 0-dim tensor along a dim");
        return NULL;
    }
    et_tensor *out = roll_copy(a, shifts, wd, n);
    if (!out)
        return NULL;
    out->aux.i[0] = n;
    for (int i = 0; i < n; i++)
        out->aux.i[1 + i] = wd[i];
    out = etc_finish(out, ETC_OP_ROLL, &a, 1);
    if (out && out->requires_grad) {
        int64_t s[ET_MAX_DIMS];
        for (int i = 0; i < (n ? n : 1); i++)
            s[i] = shifts[i];
        out->saved = etc_alloc_dtype((const int64_t[]){n ? n : 1}, 1, ET_INT64);
        if (!out->saved) {
            etc_release(out);
            return NULL;
        }
        memcpy(etc_idata(out->saved), s, (size_t)(n ? n : 1) * sizeof(int64_t));
    }
    return etc_pooled(out);
}

/* roll the gradient back by -shifts */
ETC_BW(roll)
{
    int n = out->aux.i[0];
    int dims[ET_MAX_DIMS];
    int64_t s[ET_MAX_DIMS];
    for (int i = 0; i < (n ? n : 1); i++) {
        dims[i] = out->aux.i[1 + i];
        int64_t v = etc_idata(out->saved)[i];
        s[i] = v == INT64_MIN ? INT64_MAX : -v;
    }
    return (gin[0] = roll_copy(g, s, dims, n)) != NULL;
}

/* ------------------------------------------------------------------ */
/* flip (negative-stride view, then a copy)                             */

static et_tensor *flip_copy(et_tensor *a, unsigned mask)
{
    int64_t st[ET_MAX_DIMS];
    int64_t off = a->offset;
    for (int d = 0; d < a->ndim; d++) {
        st[d] = a->strides[d];
        if ((mask & (1u << d)) && a->shape[d] > 0) {
            off += (a->shape[d] - 1) * a->strides[d];
            st[d] = -a->strides[d];
        }
    }
    if (a->numel == 0)
        off = a->offset;
    et_tensor *v = etc_view_of(a, a->shape, st, a->ndim, off);
    et_tensor *out = v ? etc_alloc_dtype(a->shape, a->ndim, a->dtype) : NULL;
    if (out)
        etc_strided_copy(out, v);
    etc_release(v);
    return out;
}

et_tensor *et_flip(et_tensor *a, const int *dims, int n)
{
    if (!etc_any_check(a, "flip"))
        return NULL;
    unsigned mask;
    if (n < 0 || (n > 0 && !dims)) {
        et_set_error(ET_ERR_ARG, "flip: invalid dims list");
        return NULL;
    }
    mask = 0;
    for (int i = 0; i < n; i++) {
        int d = etc_wrap_dim(dims[i], a->ndim, "flip");
        if (d < 0)
            return NULL;
        if (a->ndim && (mask & (1u << d))) {
            et_set_error(ET_ERR_ARG, "flip: dim %d appears multiple times in the list of dims", d);
            return NULL;
        }
        if (a->ndim)
            mask |= 1u << d;
    }
    et_tensor *out = flip_copy(a, mask);
    if (!out)
        return NULL;
    out->aux.i[0] = (int)mask;
    return etc_pooled(etc_finish(out, ETC_OP_FLIP, &a, 1));
}

ETC_BW(flip) { return (gin[0] = flip_copy(g, (unsigned)out->aux.i[0])) != NULL; }

/* ------------------------------------------------------------------ */
/* tril / triu                                                          */

/* keep [.., i, j] where j - i <= k (lower) or j - i >= k (upper), else 0 */
static et_tensor *tri_copy(et_tensor *a, int64_t k, bool upper)
{
    et_tensor *out = etc_clone(a);
    if (!out)
        return NULL;
    int64_t R = a->shape[a->ndim - 2], C = a->shape[a->ndim - 1];
    int64_t B = (R > 0 && C > 0) ? out->numel / (R * C) : 0;
    int es = etc_elsize(a->dtype);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                int64_t diff = j - i;
                bool keep = upper ? diff >= k : diff <= k;
                if (!keep)
                    memset((char *)out->data + ((b * R + i) * C + j) * es, 0, (size_t)es);
            }
    return out;
}

static et_tensor *tri(et_tensor *a, int64_t diagonal, bool upper)
{
    const char *name = upper ? "triu" : "tril";
    if (!etc_any_check(a, name))
        return NULL;
    if (a->ndim < 2) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "%s: input tensor must have at least 2 dimensions, got %s",
                     name, etc_shape_fmt(a->shape, a->ndim, b, sizeof b));
        return NULL;
    }
    et_tensor *out = tri_copy(a, diagonal, upper);
    if (!out)
        return NULL;
    out->aux.l[0] = diagonal;
    return etc_pooled(etc_finish(out, upper ? ETC_OP_TRIU : ETC_OP_TRIL, &a, 1));
}

et_tensor *et_tril(et_tensor *a, int64_t diagonal) { return tri(a, diagonal, false); }
et_tensor *et_triu(et_tensor *a, int64_t diagonal) { return tri(a, diagonal, true); }

ETC_BW(tri)
{
    return (gin[0] = tri_copy(g, out->aux.l[0], out->op == ETC_OP_TRIU)) != NULL;
}
