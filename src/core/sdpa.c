/*
 * sdpa.c - scaled dot-product attention as one op:
 *
 *   out = dropout(softmax(q kᵀ · scale + mask)) v,   scale = 1 / sqrt(E)
 *
 * per (batch, head), with no tensor object per head and no graph node per
 * step: the two products of each batch item go through etc_gemm on the
 * operands' own strides (so heads folded in the last dim of [N, L, H*hd]
 * projections are read in place, and the result is written with the heads
 * merged back), the scaled scores and the mask are added in the softmax's
 * row pass, and one dropout mask is drawn over all items' probabilities (the
 * draws the composed ops' dropout of the whole weights tensor would make).
 * The node keeps the probabilities P (and the dropout mask D, already
 * scaled by 1 / (1 - p)); its backward is torch's math path's:
 *
 *   dV = (P⊙D)ᵀ G,  dP = (G Vᵀ) ⊙ D,  dS = P ⊙ (dP - Σ_j dP⊙P),
 *   dQ = dS K · scale,  dK = dSᵀ Q · scale,  dmask = dS summed to its shape.
 *
 * The softmax's backward is reduce_basic.c's row kernel; the forward rows
 * are computed here with the same operations in a different summation
 * order, so the numbers are those of the composed ops to rounding (and
 * scores · scale instead of (q · scale) kᵀ: exact when scale is a power of
 * two, as for head dims 4, 16, 64, 256).
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/core_internal.h"

/* Which strided operand an offset is for: the inputs, then the dense
 * results (out, and the gradients of q, k, v and the mask). */
enum { T_Q, T_K, T_V, T_M, T_O, T_DQ, T_DK, T_DV, T_DM, T_COUNT };

typedef struct {
    int64_t B, L, S, E, Ev;      /* batch items, query / key lengths, head dims */
    int nb;                      /* batch dims (heads: [N, H]) */
    int64_t bshape[ET_MAX_DIMS];
    int64_t bst[T_COUNT][ET_MAX_DIMS];   /* per batch dim, 0 where broadcast */
    int64_t rs[T_COUNT], cs[T_COUNT];    /* row and column strides */
    int64_t oshape[ET_MAX_DIMS];         /* the result's shape */
    int ond;
    int64_t fshape[T_COUNT][ET_MAX_DIMS]; /* dense gradients' shapes (general) */
    float scale;
} plan;

/* The strides of t's dims aligned right against `n` dims of `full` (0 where
 * t lacks the dim or has size 1 there). */
static void align(const et_tensor *t, const int64_t *full, int n, int64_t *st)
{
    for (int d = 0; d < n; d++) {
        int td = t->ndim - n + d;
        st[d] = td >= 0 && t->shape[td] != 1 && full[d] != 1 ? t->strides[td] : 0;
    }
}

/* Contiguous strides of the dense [bshape..., rows, cols] into bst/rs/cs. */
static void dense(plan *p, int t, int64_t rows, int64_t cols)
{
    int64_t s = rows * cols;
    for (int d = p->nb - 1; d >= 0; d--) {
        p->bst[t][d] = s;
        s *= p->bshape[d];
    }
    p->rs[t] = cols;
    p->cs[t] = 1;
}

static bool fits(int64_t x) { return x >= 0 && x <= INT_MAX / 4; }

static bool make_plan(plan *p, const et_tensor *q, const et_tensor *k, const et_tensor *v,
                      const et_tensor *mask, int heads)
{
    static const char *op = "scaled_dot_product_attention";
    char b1[128], b2[128];
    memset(p, 0, sizeof *p);
    int nq = q->ndim, nk = k->ndim, nv = v->ndim;
    p->L = q->shape[nq - 2];
    p->S = k->shape[nk - 2];
    int64_t ms[ET_MAX_DIMS + 2];
    if (heads > 0) {
        int64_t N = q->shape[0], H = heads;
        p->E = q->shape[2] / H;
        p->Ev = v->shape[2] / H;
        p->nb = 2;
        p->bshape[0] = N;
        p->bshape[1] = H;
        const et_tensor *in[3] = {q, k, v};
        for (int t = T_Q; t <= T_V; t++) {
            int64_t w = t == T_V ? p->Ev : p->E;
            p->bst[t][0] = in[t]->strides[0];
            p->bst[t][1] = w * in[t]->strides[2];
            p->rs[t] = in[t]->strides[1];
            p->cs[t] = in[t]->strides[2];
        }
        /* the result and the input gradients: [N, L, H, w] */
        int64_t rows[T_COUNT] = {[T_O] = p->L, [T_DQ] = p->L, [T_DK] = p->S, [T_DV] = p->S};
        int64_t cols[T_COUNT] = {[T_O] = p->Ev, [T_DQ] = p->E, [T_DK] = p->E, [T_DV] = p->Ev};
        for (int t = T_O; t <= T_DV; t++) {
            p->bst[t][0] = rows[t] * H * cols[t];
            p->bst[t][1] = cols[t];
            p->rs[t] = H * cols[t];
            p->cs[t] = 1;
        }
        p->ond = 3;
        p->oshape[0] = N;
        p->oshape[1] = p->L;
        p->oshape[2] = H * p->Ev;
        if (mask) {
            /* broadcast to [N*H, L, S]; the first dim split into [N, H] */
            int64_t full[3] = {N * H, p->L, p->S}, st[3];
            align(mask, full, 3, st);
            p->bst[T_M][0] = st[0] * H;
            p->bst[T_M][1] = st[0];
            p->rs[T_M] = st[1];
            p->cs[T_M] = st[2];
        }
        p->bst[T_DM][0] = H * p->L * p->S;
        p->bst[T_DM][1] = p->L * p->S;
        p->rs[T_DM] = p->S;
        p->cs[T_DM] = 1;
    } else {
        p->E = q->shape[nq - 1];
        p->Ev = v->shape[nv - 1];
        int64_t t1[ET_MAX_DIMS];
        int n1 = etc_broadcast_shape(q->shape, nq - 2, k->shape, nk - 2, t1);
        p->nb = n1 < 0 ? -1 : etc_broadcast_shape(t1, n1, v->shape, nv - 2, p->bshape);
        if (p->nb < 0) {
            et_set_error(ET_ERR_SHAPE, "%s: the batch dims of query %s and key %s / value do "
                         "not broadcast", op, etc_shape_fmt(q->shape, nq, b1, sizeof b1),
                         etc_shape_fmt(k->shape, nk, b2, sizeof b2));
            return false;
        }
        const et_tensor *in[3] = {q, k, v};
        for (int t = T_Q; t <= T_V; t++) {
            /* the batch dims, right-aligned before the two matrix dims */
            const et_tensor *x = in[t];
            for (int d = 0; d < p->nb; d++) {
                int xd = x->ndim - 2 - p->nb + d;
                p->bst[t][d] = xd >= 0 && x->shape[xd] != 1 ? x->strides[xd] : 0;
            }
            p->rs[t] = x->strides[x->ndim - 2];
            p->cs[t] = x->strides[x->ndim - 1];
        }
        dense(p, T_O, p->L, p->Ev);
        dense(p, T_DQ, p->L, p->E);
        dense(p, T_DK, p->S, p->E);
        dense(p, T_DV, p->S, p->Ev);
        dense(p, T_DM, p->L, p->S);
        p->ond = p->nb + 2;
        memcpy(p->oshape, p->bshape, sizeof(int64_t) * (size_t)p->nb);
        p->oshape[p->nb] = p->L;
        p->oshape[p->nb + 1] = p->Ev;
        if (mask) {
            memcpy(ms, p->bshape, sizeof(int64_t) * (size_t)p->nb);
            ms[p->nb] = p->L;
            ms[p->nb + 1] = p->S;
            int64_t st[ET_MAX_DIMS + 2];
            align(mask, ms, p->nb + 2, st);
            memcpy(p->bst[T_M], st, sizeof(int64_t) * (size_t)p->nb);
            p->rs[T_M] = st[p->nb];
            p->cs[T_M] = st[p->nb + 1];
        }
    }
    p->B = 1;
    for (int d = 0; d < p->nb; d++)
        p->B *= p->bshape[d];
    if (!fits(p->L) || !fits(p->S) || !fits(p->E) || !fits(p->Ev) || !fits(p->B) ||
        !fits(p->L * p->S) || !fits(p->B * p->L * p->S)) {
        et_set_error(ET_ERR_ARG, "%s: query %s and key %s are too large", op,
                     etc_shape_fmt(q->shape, nq, b1, sizeof b1),
                     etc_shape_fmt(k->shape, nk, b2, sizeof b2));
        return false;
    }
    p->scale = (float)(1.0 / sqrt((double)p->E));
    return true;
}

/* Element offsets of batch item b in every operand. */
static void offsets(const plan *p, int64_t b, int64_t off[T_COUNT])
{
    for (int t = 0; t < T_COUNT; t++)
        off[t] = 0;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t i = b % p->bshape[d];
        b /= p->bshape[d];
        for (int t = 0; t < T_COUNT; t++)
            off[t] += i * p->bst[t][d];
    }
}

/* C[m, n] (row stride ldc) = A B, A(i, l) = a[i*ars + l*acs], B(l, j) = b[l*brs + j*bcs] */
static void gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs,
                 const float *b, int64_t brs, int64_t bcs, float *c, int64_t ldc, unsigned mode)
{
    etc_gemm_t g = {.m = m, .n = n, .k = k, .a = a, .ars = ars, .acs = acs, .b = b, .brs = brs,
                    .bcs = bcs, .c = c, .ldc = ldc};
    etc_gemm(&g, mode);
}

/* softmax(x * scale + mask) over each row of an [L, S] block of scores, in
 * place (mask row i at m + i*mrs, its columns mcs apart; m NULL: none).
 * The row passes run 16 wide with a scalar tail, instead of
 * etc_softmax_row's padded block, which for attention's short rows (32
 * keys) computed a third of its exps on padding; an all -inf row gives NaN,
 * a NaN score a NaN row, as torch. */
ETC_CLONES
static void softmax_block(float *restrict P, int64_t L, int64_t S, float scale,
                          const float *restrict m, int64_t mrs, int64_t mcs)
{
    const int64_t Sf = S & ~(int64_t)15;
    for (int64_t i = 0; i < L; i++) {
        float *restrict x = P + i * S;
        const float *mr = m ? m + i * mrs : NULL;
        if (mr && mcs == 1)
            for (int64_t j = 0; j < S; j++)
                x[j] = x[j] * scale + mr[j];
        else if (mr)
            for (int64_t j = 0; j < S; j++)
                x[j] = x[j] * scale + mr[j * mcs];
        else
            for (int64_t j = 0; j < S; j++)
                x[j] = x[j] * scale;
        float pm[16], part[16];
        for (int j = 0; j < 16; j++) {
            pm[j] = -INFINITY;
            part[j] = 0.0f;
        }
        for (int64_t k = 0; k < Sf; k += 16)
            for (int j = 0; j < 16; j++)
                pm[j] = x[k + j] > pm[j] ? x[k + j] : pm[j];
        float mx = -INFINITY;
        for (int j = 0; j < 16; j++)
            mx = pm[j] > mx ? pm[j] : mx;
        for (int64_t k = Sf; k < S; k++)
            mx = x[k] > mx ? x[k] : mx;
        if (mx == -INFINITY)
            mx = 0; /* all -inf: 0/0 = NaN below, as torch */
        for (int64_t k = 0; k < S; k++)
            x[k] = etc_expf(x[k] - mx);
        for (int64_t k = 0; k < Sf; k += 16)
            for (int j = 0; j < 16; j++)
                part[j] += x[k + j];
        double sum = 0;
        for (int j = 0; j < 16; j++)
            sum += part[j];
        for (int64_t k = Sf; k < S; k++)
            sum += x[k];
        float inv = sum > 0 ? (float)(1.0 / sum) : NAN;
        for (int64_t k = 0; k < S; k++)
            x[k] *= inv;
    }
}

et_tensor *etc_sdpa(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *mask, int heads,
                    float dropout_p, et_generator *g)
{
    plan p;
    if (!make_plan(&p, q, k, v, mask, heads))
        return NULL;
    et_tensor *ins[4] = {q, k, v, mask};
    int nin = mask ? 4 : 3;
    bool rec = etc_grad_mode() && etc_needs_grad(ins, nin);
    bool drop = dropout_p > 0.0f;
    int64_t L = p.L, S = p.S, LS = L * S;
    et_tensor *out = etc_alloc(p.oshape, p.ond);
    /* kept for the backward: P, then (dropout) D */
    et_tensor *saved = rec ? etc_alloc(ET_SHAPE((drop ? 2 : 1) * p.B * LS)) : NULL;
    int64_t nscr = 1 + (rec ? 0 : p.B * LS) + (drop ? (rec ? 1 : 2) * p.B * LS : 0);
    et_tensor *scr = etc_alloc(ET_SHAPE(nscr));
    if (!out || (rec && !saved) || !scr) {
        etc_release(out);
        etc_release(saved);
        etc_release(scr);
        return NULL;
    }
    float keep = 1.0f - dropout_p;
    unsigned mode = etc_gemm_mode();
    int64_t BLS = p.B * LS;
    float *at = scr->data;
    float *P = rec ? saved->data : at;                      /* [B, L, S] */
    if (!rec)
        at += BLS;
    float *PD = drop ? at : NULL;
    float *D = drop ? (rec ? saved->data + BLS : at + BLS) : NULL;
    for (int64_t b = 0; b < p.B; b++) {
        int64_t o[T_COUNT];
        offsets(&p, b, o);
        float *Pb = P + b * LS;
        /* scores: Q Kᵀ, B(l, j) = k[j, l] */
        gemm(L, S, p.E, q->data + o[T_Q], p.rs[T_Q], p.cs[T_Q], k->data + o[T_K], p.cs[T_K],
             p.rs[T_K], Pb, S, mode);
        softmax_block(Pb, L, S, p.scale, mask ? mask->data + o[T_M] : NULL, p.rs[T_M],
                      p.cs[T_M]);
    }
    /* one mask over every item, in order: the composed ops' dropout of the
     * whole weights tensor, draw for draw */
    if (drop)
        etc_dropout_mask(g, D, BLS, keep, 1.0f / keep, P, PD);
    for (int64_t b = 0; b < p.B; b++) {
        int64_t o[T_COUNT];
        offsets(&p, b, o);
        /* out = (P ⊙ D) V */
        gemm(L, p.Ev, S, (drop ? PD : P) + b * LS, S, 1, v->data + o[T_V], p.rs[T_V], p.cs[T_V],
             out->data + o[T_O], p.rs[T_O], mode);
    }
    etc_release(scr);
    if (!rec)
        return out;
    if (!etc_record(out, ETC_OP_SDPA, ins, nin)) {
        etc_release(out);
        etc_release(saved);
        return NULL;
    }
    out->saved = saved;
    out->aux.i[0] = heads;
    out->aux.i[1] = drop;
    return out;
}

/* The gradient of input t from its dense buffer: itself when it has the
 * input's shape, else summed down to it (broadcast batch dims). */
static bool put(et_tensor *in, et_tensor *dense_g, et_tensor **gin)
{
    if (et_same_shape(in, dense_g)) {
        *gin = dense_g;
        return true;
    }
    *gin = etc_sum_to(dense_g, in->shape, in->ndim, 1.0);
    etc_release(dense_g);
    return *gin != NULL;
}

ETC_BW(sdpa)
{
    et_tensor *q = out->in[0], *k = out->in[1], *v = out->in[2];
    et_tensor *mask = out->nin > 3 ? out->in[3] : NULL;
    int heads = out->aux.i[0];
    bool drop = out->aux.i[1];
    plan p;
    if (!make_plan(&p, q, k, v, mask, heads))
        return false;
    int64_t L = p.L, S = p.S, LS = L * S, E = p.E, Ev = p.Ev;
    /* dense gradients: the input's shape (heads) or the broadcast one */
    int64_t sh[ET_MAX_DIMS];
    int nd = heads > 0 ? 3 : p.nb + 2;
    et_tensor *dq = NULL, *dk = NULL, *dv = NULL, *dm = NULL;
    bool ok = true;
    et_tensor **dst[4] = {&dq, &dk, &dv, &dm};
    const et_tensor *src[4] = {q, k, v, mask};
    int64_t rows[4] = {L, S, S, L}, cols[4] = {E, E, Ev, S};
    for (int t = 0; t < 4 && ok; t++) {
        if (!src[t] || !src[t]->requires_grad)
            continue;
        if (heads > 0 && t < 3) {
            memcpy(sh, src[t]->shape, sizeof(int64_t) * 3);
        } else if (heads > 0) {
            sh[0] = p.B;
            sh[1] = L;
            sh[2] = S;
        } else {
            memcpy(sh, p.bshape, sizeof(int64_t) * (size_t)p.nb);
            sh[p.nb] = rows[t];
            sh[p.nb + 1] = cols[t];
        }
        *dst[t] = etc_alloc(sh, nd);
        ok = *dst[t] != NULL;
    }
    et_tensor *gc = ok ? etc_contig(g) : NULL;
    et_tensor *scr = gc ? etc_alloc(ET_SHAPE(3 * LS)) : NULL;
    if (!scr) {
        etc_release(dq);
        etc_release(dk);
        etc_release(dv);
        etc_release(dm);
        etc_release(gc);
        return false;
    }
    const float *saved = out->saved->data;
    float *PD = scr->data, *dP = scr->data + LS, *dS = scr->data + 2 * LS;
    for (int64_t b = 0; b < p.B; b++) {
        int64_t o[T_COUNT];
        offsets(&p, b, o);
        const float *P = saved + b * LS;
        const float *D = drop ? saved + (p.B + b) * LS : NULL;
        const float *A = P;
        if (drop) {
            for (int64_t i = 0; i < LS; i++)
                PD[i] = P[i] * D[i];
            A = PD;
        }
        const float *G = gc->data + o[T_O];
        int64_t gr = p.rs[T_O];
        /* dV = (P ⊙ D)ᵀ G */
        if (dv)
            gemm(S, Ev, L, A, 1, S, G, gr, 1, dv->data + o[T_DV], p.rs[T_DV], 0);
        if (!dq && !dk && !dm)
            continue;
        /* dP = G Vᵀ (⊙ D), B(l, j) = v[j, l] */
        gemm(L, S, Ev, G, gr, 1, v->data + o[T_V], p.cs[T_V], p.rs[T_V], dP, S, 0);
        if (drop)
            for (int64_t i = 0; i < LS; i++)
                dP[i] *= D[i];
        for (int64_t i = 0; i < L; i++)
            etc_softmax_back_row(P + i * S, dP + i * S, dS + i * S, S, false);
        if (dm)
            memcpy(dm->data + b * LS, dS, sizeof(float) * (size_t)LS);
        for (int64_t i = 0; i < LS; i++)
            dS[i] *= p.scale;
        /* dQ = dS K, dK = dSᵀ Q */
        if (dq)
            gemm(L, E, S, dS, S, 1, k->data + o[T_K], p.rs[T_K], p.cs[T_K],
                 dq->data + o[T_DQ], p.rs[T_DQ], 0);
        if (dk)
            gemm(S, E, L, dS, 1, S, q->data + o[T_Q], p.rs[T_Q], p.cs[T_Q],
                 dk->data + o[T_DK], p.rs[T_DK], 0);
    }
    etc_release(scr);
    etc_release(gc);
    et_tensor *d[4] = {dq, dk, dv, dm};
    for (int t = 0; t < 4; t++) {
        if (d[t] && ok)
            ok = put(out->in[t], d[t], &gin[t]);
        else
            etc_release(d[t]);
    }
    return ok;
}
