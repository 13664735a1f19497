/* embedding.c - embedding and embedding_bag: forward and backward.
 *
 * Indices are read once (int64 or integral float32, range-checked) into a
 * contiguous int64 tensor that the graph node keeps as `saved`; the
 * weight's gradient is dense [V, D], as torch's with sparse=False.
 * The weight is read through its strides: a large table is never copied. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* Checks weight [V, D] float32. */
static bool weight_ok(const et_tensor *w, const char *op)
{
    if (!etc_null_check(w, op))
        return false;
    if (w->ndim != 2) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "%s: 'weight' must be 2-D [num_embeddings, embedding_dim], "
                     "got shape %s", op, etc_shape_fmt(w->shape, w->ndim, b, sizeof b));
        return false;
    }
    return true;
}

/* padding_idx in [-V, V) -> [0, V); ET_NO_INDEX stays. */
static bool padding_ok(int64_t *pad, int64_t V, const char *op)
{
    if (*pad == ET_NO_INDEX)
        return true;
    if (*pad < -V || *pad >= V) {
        et_set_error(ET_ERR_INDEX, "%s: padding_idx %lld must be within num_embeddings %lld", op,
                     (long long)*pad, (long long)V);
        return false;
    }
    if (*pad < 0)
        *pad += V;
    return true;
}

static bool norm_opts_ok(double max_norm, double norm_type, const char *op)
{
    if (!(max_norm >= 0) || isinf(max_norm) || (max_norm > 0 && !(norm_type > 0))) {
        et_set_error(ET_ERR_ARG, "%s: max_norm (%g) must be >= 0 and finite, norm_type (%g) "
                     "positive", op, max_norm, norm_type);
        return false;
    }
    return true;
}

/* torch.embedding_renorm_: each distinct row of w named in ix[n] whose
 * p-norm exceeds max_norm is scaled in place by max_norm / (norm + 1e-7). */
static bool renorm_rows(et_tensor *w, const int64_t *ix, int64_t n, double max_norm, double p)
{
    int64_t V = w->shape[0], D = w->shape[1];
    unsigned char *seen = calloc((size_t)(V > 0 ? V : 1), 1);
    if (!seen) {
        et_set_error(ET_ERR_NOMEM, "embedding: out of memory for max_norm");
        return false;
    }
    bool wrote = false;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = ix[i];
        if (seen[r])
            continue;
        seen[r] = 1;
        float *row = w->data + r * w->strides[0];
        int64_t cs = w->strides[1];
        double acc = 0;
        for (int64_t k = 0; k < D; k++) {
            double a = fabs((double)row[k * cs]);
            acc += p == 2.0 ? a * a : p == 1.0 ? a : pow(a, p);
        }
        float norm = (float)(p == 2.0 ? sqrt(acc) : p == 1.0 ? acc : pow(acc, 1.0 / p));
        if (norm > (float)max_norm) {
            float scale = (float)max_norm / (norm + 1e-7f);
            for (int64_t k = 0; k < D; k++)
                row[k * cs] *= scale;
            wrote = true;
        }
    }
    free(seen);
    if (wrote)
        w->storage->version++;
    return true;
}

/* dst[D] = w row r (through strides) */
static void copy_row(float *dst, const et_tensor *w, int64_t r)
{
    int64_t D = w->shape[1], cs = w->strides[1];
    const float *row = w->data + r * w->strides[0];
    if (cs == 1 && D > 16) {
        memcpy(dst, row, (size_t)D * sizeof(float));
        return;
    }
    /* short rows (the char model's 10) in a loop: a memcpy call per index
     * cost more than the copy */
    for (int64_t k = 0; k < D; k++)
        dst[k] = row[k * cs];
}

/* Per-index gradient scale of scale_grad_by_freq: 1 / count of the index
 * in ix (NULL when not requested). */
static float *freq_scale(const int64_t *ix, int64_t n, int64_t V, bool on)
{
    if (!on)
        return NULL;
    float *s = calloc((size_t)(V > 0 ? V : 1), sizeof *s);
    if (!s) {
        et_set_error(ET_ERR_NOMEM, "embedding: out of memory for scale_grad_by_freq");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        s[ix[i]] += 1.0f;
    for (int64_t v = 0; v < V; v++)
        s[v] = s[v] > 0 ? 1.0f / s[v] : 0.0f;
    return s;
}

/* ------------------------------------------------------------------ */
/* embedding                                                            */

et_tensor *et_embedding(et_tensor *input, et_tensor *weight, et_embedding_opts o)
{
    const char *op = "embedding";
    if (!etc_any_check(input, op) || !weight_ok(weight, op))
        return NULL;
    int64_t V = weight->shape[0], D = weight->shape[1];
    if (!padding_ok(&o.padding_idx, V, op) || !norm_opts_ok(o.max_norm, o.norm_type, op))
        return NULL;
    if (input->ndim >= ET_MAX_DIMS) {
        char b[128];
        et_set_error(ET_ERR_SHAPE, "%s: input of shape %s leaves no room for the embedding dim "
                     "(at most %d dims)", op,
                     etc_shape_fmt(input->shape, input->ndim, b, sizeof b), ET_MAX_DIMS);
        return NULL;
    }
    et_tensor *ix = etc_indices(input, V, op, 0);
    if (!ix)
        return NULL;
    const int64_t *iv = etc_idata(ix);
    if (o.max_norm > 0 && !renorm_rows(weight, iv, ix->numel, o.max_norm, o.norm_type)) {
        etc_release(ix);
        return NULL;
    }
    int64_t sh[ET_MAX_DIMS];
    memcpy(sh, input->shape, (size_t)input->ndim * sizeof *sh);
    sh[input->ndim] = D;
    et_tensor *out = etc_alloc(sh, input->ndim + 1);
    if (!out) {
        etc_release(ix);
        return NULL;
    }
    for (int64_t i = 0; i < ix->numel; i++)
        copy_row(out->data + i * D, weight, iv[i]);
    out = etc_finish(out, ETC_OP_EMBEDDING, &weight, 1);
    if (out && out->requires_grad) {
        out->saved = etc_ref(ix);
        out->aux.l[0] = o.padding_idx;
        out->aux.l[1] = o.scale_grad_by_freq;
    }
    etc_release(ix);
    return etc_pooled(out);
}

/* The weight's gradient goes straight into its .grad when autograd offers
 * it (etc_grad_sink: a leaf used once) -- no [V, D] temporary of zeros and
 * no dense add -- and a gradient known zero before (zero_grad) remembers
 * the rows written, so the next zero_grad clears only those (zero_rows.c).
 * Into a zeroed .grad the sums are the same bits as torch's zeros +
 * index_add then .grad += it. */
ETC_BW(embedding)
{
    et_tensor *w = out->in[0];
    int64_t V = w->shape[0], D = w->shape[1], pad = out->aux.l[0];
    const int64_t *iv = etc_idata(out->saved);
    int64_t n = out->saved->numel;
    bool was_zero = w->grad && etc_zrec_is_zero(w->grad);
    et_tensor *gw = etc_grad_sink(out, 0), *gc;
    bool sink = gw != NULL;
    if (sink) {
        if (!(gc = etc_contig(g)))
            return false;
        if (was_zero)
            etc_zrec_set_zero(gw);
    } else {
        if (!etc_scatter_begin(w, g, &gw, &gc))
            return false;
        if (w->op == ETC_OP_NONE)   /* a leaf's: it becomes .grad as it is */
            etc_zrec_set_zero(gw);
    }
    float *fs = freq_scale(iv, n, V, out->aux.l[1] != 0);
    if (out->aux.l[1] && !fs) {
        if (!sink)
            etc_release(gw);
        etc_release(gc);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        if (iv[i] == pad)
            continue;
        float *dst = gw->data + iv[i] * D;
        const float *src = gc->data + i * D;
        float s = fs ? fs[iv[i]] : 1.0f;
        for (int64_t k = 0; k < D; k++)
            dst[k] += src[k] * s;
    }
    etc_zrec_add_rows(gw, iv, n, D);
    free(fs);
    etc_release(gc);
    if (!sink)
        gin[0] = gw;
    return true;
}

/* ------------------------------------------------------------------ */
/* embedding_bag                                                        */

static const char *const bag_names[] = {"sum", "mean", "max"};

et_status et_bag_mode_parse(const char *s, et_bag_mode *out)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, bag_names[i]) == 0) {
            if (out)
                *out = (et_bag_mode)i;
            return ET_OK;
        }
    return et_set_error(ET_ERR_ARG, "embedding_bag: mode '%s' is not one of sum, mean, max",
                        s ? s : "(null)");
}

const char *et_bag_mode_name(et_bag_mode m) { return (unsigned)m < 3 ? bag_names[m] : "invalid"; }

enum { BAG_HAS_PSW = 4, BAG_FREQ = 8 };

/* Bag boundaries [start[b], end[b]) into se[2 * B] from offsets (or the
 * rows of a 2-D input); checks torch's rules.  *B receives the bag count;
 * se is malloc'ed (caller frees). */
static bool bag_bounds(const et_tensor *input, const et_embedding_bag_opts *o, int64_t *B,
                       int64_t **se)
{
    const char *op = "embedding_bag";
    int64_t n = input->numel;
    *se = NULL;
    if (input->ndim == 2) {
        if (o->offsets) {
            et_set_error(ET_ERR_ARG, "%s: if input is 2-D, then offsets has to be NULL, as input "
                         "is treated as a mini-batch of fixed length sequences", op);
            return false;
        }
        int64_t rows = input->shape[0], len = input->shape[1];
        *B = rows;
        *se = malloc((size_t)(2 * rows + 1) * sizeof **se);
        if (!*se)
            goto oom;
        for (int64_t b = 0; b < rows; b++) {
            (*se)[2 * b] = b * len;
            (*se)[2 * b + 1] = (b + 1) * len;
        }
        return true;
    }
    if (!o->offsets || !etc_any_check(o->offsets, op) || o->offsets->ndim != 1) {
        char bf[128];
        if (!o->offsets)
            et_set_error(ET_ERR_ARG, "%s: offsets has to be a 1-D tensor for a 1-D input", op);
        else if (o->offsets->ndim != 1)
            et_set_error(ET_ERR_SHAPE, "%s: offsets has to be a 1-D tensor, got shape %s", op,
                         etc_shape_fmt(o->offsets->shape, o->offsets->ndim, bf, sizeof bf));
        return false;
    }
    /* offsets may equal the input length (an empty last bag) */
    et_tensor *off = etc_indices(o->offsets, n + 1, "embedding_bag (offsets)", 0);
    if (!off)
        return false;
    const int64_t *ov = etc_idata(off);
    int64_t k = off->numel;
    int64_t nb = o->include_last_offset ? (k > 0 ? k - 1 : 0) : k;
    if (k > 0 && ov[0] != 0) {
        et_set_error(ET_ERR_ARG, "%s: offsets[0] has to be 0, i.e., the first sequence in the "
                     "mini-batch has to start from position 0; got %lld", op, (long long)ov[0]);
        etc_release(off);
        return false;
    }
    for (int64_t i = 1; i < k; i++)
        if (ov[i] < ov[i - 1]) {
            et_set_error(ET_ERR_ARG, "%s: offsets must be non-decreasing, but offsets[%lld] = %lld "
                         "< offsets[%lld] = %lld", op, (long long)i, (long long)ov[i],
                         (long long)(i - 1), (long long)ov[i - 1]);
            etc_release(off);
            return false;
        }
    *B = nb;
    *se = malloc((size_t)(2 * nb + 1) * sizeof **se);
    if (!*se) {
        etc_release(off);
        goto oom;
    }
    for (int64_t b = 0; b < nb; b++) {
        (*se)[2 * b] = ov[b];
        (*se)[2 * b + 1] = b + 1 < k ? ov[b + 1] : n;
    }
    etc_release(off);
    return true;
oom:
    et_set_error(ET_ERR_NOMEM, "%s: out of memory", op);
    return false;
}

et_tensor *et_embedding_bag(et_tensor *input, et_tensor *weight, et_embedding_bag_opts o)
{
    const char *op = "embedding_bag";
    if (!etc_any_check(input, op) || !weight_ok(weight, op))
        return NULL;
    int64_t V = weight->shape[0], D = weight->shape[1];
    char b1[128], b2[128];
    if ((unsigned)o.mode > ET_BAG_MAX) {
        et_set_error(ET_ERR_ARG, "%s: invalid mode %d", op, (int)o.mode);
        return NULL;
    }
    if (input->ndim != 1 && input->ndim != 2) {
        et_set_error(ET_ERR_SHAPE, "%s: input has to be 1-D or 2-D, got shape %s", op,
                     etc_shape_fmt(input->shape, input->ndim, b1, sizeof b1));
        return NULL;
    }
    if (o.mode == ET_BAG_MAX && o.scale_grad_by_freq) {
        et_set_error(ET_ERR_ARG, "%s: max mode does not support scaling the gradient by the "
                     "frequency (scale_grad_by_freq)", op);
        return NULL;
    }
    et_tensor *psw = o.per_sample_weights;
    if (psw) {
        if (!etc_null_check(psw, op))
            return NULL;
        if (o.mode != ET_BAG_SUM) {
            et_set_error(ET_ERR_ARG, "%s: per_sample_weights is only supported for mode 'sum' "
                         "(got mode '%s')", op, bag_names[o.mode]);
            return NULL;
        }
        if (!et_same_shape(psw, input)) {
            et_set_error(ET_ERR_SHAPE, "%s: per_sample_weights of shape %s must have the shape of "
                         "input %s", op, etc_shape_fmt(psw->shape, psw->ndim, b1, sizeof b1),
                         etc_shape_fmt(input->shape, input->ndim, b2, sizeof b2));
            return NULL;
        }
    }
    if (!padding_ok(&o.padding_idx, V, op) || !norm_opts_ok(o.max_norm, o.norm_type, op))
        return NULL;
    int64_t B, *se;
    if (!bag_bounds(input, &o, &B, &se))
        return NULL;
    int64_t n = input->numel;
    bool is_max = o.mode == ET_BAG_MAX;
    /* saved: indices [n], then the bounds [2B], then (max) the winners [B*D] */
    int64_t slen = n + 2 * B + (is_max ? B * D : 0);
    et_tensor *ix = etc_indices(input, V, op, 0);
    et_tensor *saved = ix ? etc_alloc_dtype(&slen, 1, ET_INT64) : NULL;
    et_tensor *pc = psw ? etc_contig(psw) : NULL;
    et_tensor *out = saved && (!psw || pc) ? etc_zeros((int64_t[]){B, D}, 2) : NULL;
    if (!out) {
        free(se);
        etc_release(ix);
        etc_release(saved);
        etc_release(pc);
        return NULL;
    }
    int64_t *sv = etc_idata(saved);
    memcpy(sv, etc_idata(ix), (size_t)n * sizeof *sv);
    memcpy(sv + n, se, (size_t)(2 * B) * sizeof *sv);
    free(se);
    etc_release(ix);
    const int64_t *iv = sv, *bounds = sv + n;
    int64_t *win = is_max ? sv + n + 2 * B : NULL;
    if (o.max_norm > 0 && !renorm_rows(weight, iv, n, o.max_norm, o.norm_type)) {
        etc_release(saved);
        etc_release(pc);
        etc_release(out);
        return NULL;
    }
    int64_t rs = weight->strides[0], cs = weight->strides[1];
    for (int64_t b = 0; b < B; b++) {
        float *y = out->data + b * D;
        int64_t cnt = 0;
        if (win)
            for (int64_t k = 0; k < D; k++)
                win[b * D + k] = -1;
        for (int64_t i = bounds[2 * b]; i < bounds[2 * b + 1]; i++) {
            if (iv[i] == o.padding_idx)
                continue;
            const float *row = weight->data + iv[i] * rs;
            if (is_max) {
                for (int64_t k = 0; k < D; k++)
                    if (cnt == 0 || row[k * cs] > y[k]) {
                        y[k] = row[k * cs];
                        win[b * D + k] = i;
                    }
            } else {
                float s = pc ? pc->data[i] : 1.0f;
                for (int64_t k = 0; k < D; k++)
                    y[k] += row[k * cs] * s;
            }
            cnt++;
        }
        if (o.mode == ET_BAG_MEAN && cnt > 0)
            for (int64_t k = 0; k < D; k++)
                y[k] /= (float)cnt;
    }
    etc_release(pc);
    et_tensor *ins[2] = {weight, psw};
    out = etc_finish(out, ETC_OP_EMBEDDING_BAG, ins, psw ? 2 : 1);
    if (out && out->requires_grad) {
        out->saved = etc_ref(saved);
        out->aux.l[0] = n;
        out->aux.l[1] = B;
        out->aux.l[2] = (int64_t)o.mode | (psw ? BAG_HAS_PSW : 0) |
                        (o.scale_grad_by_freq ? BAG_FREQ : 0);
        out->aux.l[3] = o.padding_idx;
    }
    etc_release(saved);
    return etc_pooled(out);
}

ETC_BW(embedding_bag)
{
    et_tensor *w = out->in[0];
    int64_t V = w->shape[0], D = w->shape[1];
    int64_t n = out->aux.l[0], B = out->aux.l[1], flags = out->aux.l[2], pad = out->aux.l[3];
    et_bag_mode mode = (et_bag_mode)(flags & 3);
    const int64_t *iv = etc_idata(out->saved), *bounds = iv + n;
    const int64_t *win = mode == ET_BAG_MAX ? iv + n + 2 * B : NULL;
    et_tensor *psw = (flags & BAG_HAS_PSW) ? out->in[1] : NULL;
    et_tensor *gc = etc_contig(g);
    et_tensor *pc = psw ? etc_contig(psw) : NULL;
    et_tensor *gw = w->requires_grad ? etc_zeros(w->shape, 2) : NULL;
    et_tensor *gp = psw && psw->requires_grad ? etc_zeros(psw->shape, psw->ndim) : NULL;
    float *fs = NULL;
    bool ok = gc && (!psw || pc) && (!w->requires_grad || gw) && (!psw || !psw->requires_grad || gp);
    if (ok && gw && (flags & BAG_FREQ)) {
        /* torch counts every occurrence of an index in the input */
        ok = (fs = freq_scale(iv, n, V, true)) != NULL;
    }
    if (!ok) {
        etc_release(gc);
        etc_release(pc);
        etc_release(gw);
        etc_release(gp);
        return false;
    }
    int64_t rs = w->strides[0], cs = w->strides[1];
    for (int64_t b = 0; b < B; b++) {
        const float *gb = gc->data + b * D;
        if (mode == ET_BAG_MAX) {
            for (int64_t k = 0; gw && k < D; k++) {
                int64_t i = win[b * D + k];
                if (i >= 0)
                    gw->data[iv[i] * D + k] += gb[k] * (fs ? fs[iv[i]] : 1.0f);
            }
            continue;
        }
        int64_t cnt = 0;
        for (int64_t i = bounds[2 * b]; i < bounds[2 * b + 1]; i++)
            cnt += iv[i] != pad;
        float mscale = mode == ET_BAG_MEAN && cnt > 0 ? 1.0f / (float)cnt : 1.0f;
        for (int64_t i = bounds[2 * b]; i < bounds[2 * b + 1]; i++) {
            if (iv[i] == pad)
                continue;
            if (gw) {
                float s = mscale * (pc ? pc->data[i] : 1.0f) * (fs ? fs[iv[i]] : 1.0f);
                float *dst = gw->data + iv[i] * D;
                for (int64_t k = 0; k < D; k++)
                    dst[k] += gb[k] * s;
            }
            if (gp) {
                const float *row = w->data + iv[i] * rs;
                double dot = 0;
                for (int64_t k = 0; k < D; k++)
                    dot += (double)gb[k] * row[k * cs];
                gp->data[i] = (float)dot;
            }
        }
    }
    free(fs);
    etc_release(gc);
    etc_release(pc);
    gin[0] = gw;
    if (psw)
        gin[1] = gp;
    return true;
}
