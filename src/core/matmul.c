/* matmul.c - torch.matmul's forms on top of etc_gemm (gemm.c); Linear is linear.c. */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* How the last two dims of t can be handed to sgemm without a copy. */
static bool gemm_layout(const et_tensor *t, CBLAS_TRANSPOSE *tr, int64_t *ld)
{
    int nd = t->ndim;
    int64_t rows = t->shape[nd - 2], cols = t->shape[nd - 1];
    int64_t rs = t->strides[nd - 2], cs = t->strides[nd - 1];
    int64_t mc = cols > 1 ? cols : 1, mr = rows > 1 ? rows : 1;
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= mc)) {
        *tr = CblasNoTrans;
        *ld = rows == 1 ? mc : rs;
        return true;
    }
    if ((rs == 1 || rows == 1) && (cols == 1 || cs >= mr)) {
        *tr = CblasTrans;
        *ld = cols == 1 ? mr : cs;
        return true;
    }
    return false;
}

/* c[n, m] = a[n, k] @ b[k, m] (row-major, ld of c = m; dims checked to fit
 * in int by the caller), through etc_gemm (our kernels or sgemm). */
static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t n, int64_t m, int64_t k,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float *c)
{
    etc_gemm_t g = {.m = n, .n = m, .k = k, .a = a, .b = b, .c = c, .ldc = m};
    g.ars = ta == CblasNoTrans ? lda : 1;
    g.acs = ta == CblasNoTrans ? 1 : lda;
    g.brs = tb == CblasNoTrans ? ldb : 1;
    g.bcs = tb == CblasNoTrans ? 1 : ldb;
    etc_gemm(&g, etc_gemm_mode());
}

et_tensor *etc_mm_raw(et_tensor *a, et_tensor *b)
{
    int na = a->ndim, nb = b->ndim;
    int64_t n = a->shape[na - 2], k = a->shape[na - 1], m = b->shape[nb - 1];
    if (b->shape[nb - 2] != k) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "matmul: shapes %s and %s do not align",
                     etc_shape_fmt(a->shape, na, b1, sizeof b1),
                     etc_shape_fmt(b->shape, nb, b2, sizeof b2));
        return NULL;
    }
    int64_t bsh[ET_MAX_DIMS];
    int bnd = etc_broadcast_shape(a->shape, na - 2, b->shape, nb - 2, bsh);
    if (bnd < 0) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "matmul: batch dimensions of %s and %s do not broadcast",
                     etc_shape_fmt(a->shape, na, b1, sizeof b1),
                     etc_shape_fmt(b->shape, nb, b2, sizeof b2));
        return NULL;
    }
    if (bnd + 2 > ET_MAX_DIMS) {
        et_set_error(ET_ERR_SHAPE, "matmul: result has too many dims");
        return NULL;
    }
    int64_t osh[ET_MAX_DIMS];
    memcpy(osh, bsh, sizeof(int64_t) * (size_t)bnd);
    osh[bnd] = n;
    osh[bnd + 1] = m;
    if (n > INT_MAX / 2 || m > INT_MAX / 2 || k > INT_MAX / 2) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_ARG, "matmul: shapes %s and %s are too large for BLAS",
                     etc_shape_fmt(a->shape, na, b1, sizeof b1),
                     etc_shape_fmt(b->shape, nb, b2, sizeof b2));
        return NULL;
    }
    if (!etc_check_shape(osh, bnd + 2, "matmul"))
        return NULL;
    et_tensor *out = etc_alloc(osh, bnd + 2);
    if (!out)
        return NULL;
    if (out->numel == 0)
        return out;
    if (k == 0) {
        memset(out->data, 0, (size_t)out->numel * sizeof(float));
        return out;
    }
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    et_tensor *ac = etc_ref(a), *bc = etc_ref(b);
    if (!gemm_layout(ac, &ta, &lda)) {
        etc_release(ac);
        ac = etc_clone(a);
        if (!ac || !gemm_layout(ac, &ta, &lda))
            goto fail;
    }
    if (!gemm_layout(bc, &tb, &ldb)) {
        etc_release(bc);
        bc = etc_clone(b);
        if (!bc || !gemm_layout(bc, &tb, &ldb))
            goto fail;
    }
    int64_t nbatch = etc_numel(bsh, bnd);
    /* batch strides (0 where broadcast) */
    int64_t sa[ET_MAX_DIMS], sb[ET_MAX_DIMS];
    bool b_shared = true;
    for (int d = 0; d < bnd; d++) {
        int da = d - (bnd - (na - 2)), db = d - (bnd - (nb - 2));
        sa[d] = (da < 0 || ac->shape[da] == 1) ? 0 : ac->strides[da];
        sb[d] = (db < 0 || bc->shape[db] == 1) ? 0 : bc->strides[db];
        if (sb[d] != 0 && bsh[d] != 1)
            b_shared = false;
    }
    /* one big gemm when b is shared and a's batch rows are evenly spaced */
    if (nbatch > 1 && b_shared && ta == CblasNoTrans && n * nbatch <= INT_MAX) {
        bool flat = true;
        int64_t expect = lda * n;
        for (int d = bnd - 1; d >= 0 && flat; d--) {
            if (bsh[d] == 1)
                continue;
            flat = sa[d] == expect;
            expect *= bsh[d];
        }
        if (flat) {
            gemm(CblasNoTrans, tb, n * nbatch, m, k, ac->data, lda, bc->data, ldb, out->data);
            etc_release(ac);
            etc_release(bc);
            return out;
        }
    }
    int64_t idx[ET_MAX_DIMS] = {0};
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < bnd; d++) {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        if (n == 1 && m == 1 && ta == CblasNoTrans && tb == CblasTrans) {
            /* dot product: avoid gemm's setup cost */
            const float *x = ac->data + oa, *y = bc->data + ob;
            float s = 0;
            for (int64_t i = 0; i < k; i++)
                s += x[i] * y[i];
            out->data[bi] = s;
        } else {
            gemm(ta, tb, n, m, k, ac->data + oa, lda, bc->data + ob, ldb, out->data + bi * n * m);
        }
        for (int d = bnd - 1; d >= 0; d--) {
            if (++idx[d] < bsh[d])
                break;
            idx[d] = 0;
        }
    }
    etc_release(ac);
    etc_release(bc);
    return out;
fail:
    etc_release(ac);
    etc_release(bc);
    etc_release(out);
    return NULL;
}

/* 1-D operands promoted to matrices (views), as torch.matmul does. */
static et_tensor *promote(et_tensor *t, bool left)
{
    if (t->ndim != 1)
        return etc_ref(t);
    int64_t sh[2], st[2];
    if (left) {
        sh[0] = 1;
        sh[1] = t->shape[0];
        st[0] = t->shape[0] * t->strides[0];
        st[1] = t->strides[0];
    } else {
        sh[0] = t->shape[0];
        sh[1] = 1;
        st[0] = t->strides[0];
        st[1] = 1;
    }
    return etc_view_of(t, sh, st, 2, t->offset);
}

/* Raw matmul of the original operands (any of torch's forms), no graph. */
static et_tensor *matmul_raw(et_tensor *a, et_tensor *b)
{
    et_tensor *pa = promote(a, true), *pb = promote(b, false);
    et_tensor *r = (pa && pb) ? etc_mm_raw(pa, pb) : NULL;
    etc_release(pa);
    etc_release(pb);
    if (!r) {
        if (et_errcode() == ET_ERR_SHAPE && (a->ndim == 1 || b->ndim == 1)) {
            char b1[128], b2[128];
            et_set_error(ET_ERR_SHAPE, "matmul: shapes %s and %s do not align",
                         etc_shape_fmt(a->shape, a->ndim, b1, sizeof b1),
                         etc_shape_fmt(b->shape, b->ndim, b2, sizeof b2));
        }
        return NULL;
    }
    /* drop the promoted dims: r is contiguous, so fix the header in place */
    if (a->ndim == 1 || b->ndim == 1) {
        int nd = r->ndim;
        int64_t sh[ET_MAX_DIMS];
        int m = 0;
        for (int d = 0; d < nd; d++) {
            if (a->ndim == 1 && d == nd - 2)
                continue;
            if (b->ndim == 1 && d == nd - 1)
                continue;
            sh[m++] = r->shape[d];
        }
        r->ndim = m;
        int64_t s = 1;
        for (int d = m - 1; d >= 0; d--) {
            r->shape[d] = sh[d];
            r->strides[d] = s;
            s *= sh[d];
        }
    }
    return r;
}

et_tensor *etc_matmul(et_tensor *a, et_tensor *b)
{
    if (!etc_null_check(a, "matmul") || !etc_null_check(b, "matmul"))
        return NULL;
    if (a->ndim == 0 || b->ndim == 0) {
        char b1[128], b2[128];
        et_set_error(ET_ERR_SHAPE, "matmul: both arguments need at least 1 dimension, got "
                     "shapes %s and %s", etc_shape_fmt(a->shape, a->ndim, b1, sizeof b1),
                     etc_shape_fmt(b->shape, b->ndim, b2, sizeof b2));
        return NULL;
    }
    et_tensor *r = matmul_raw(a, b);
    if (!r)
        return NULL;
    int op = ETC_OP_MATMUL;
    if (a->ndim == 1 && b->ndim == 1)
        op = ETC_OP_DOT;
    else if (a->ndim == 2 && b->ndim == 1)
        op = ETC_OP_MV;
    else if (a->ndim == 2 && b->ndim == 2)
        op = ETC_OP_MM;
    et_tensor *ins[2] = {a, b};
    return etc_finish(r, op, ins, 2);
}

et_tensor *et_matmul(et_tensor *a, et_tensor *b) { return etc_pooled(etc_matmul(a, b)); }

/* Last two dims swapped (a view). */
static et_tensor *mT(et_tensor *t)
{
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int nd = t->ndim;
    memcpy(sh, t->shape, sizeof sh);
    memcpy(st, t->strides, sizeof st);
    sh[nd - 2] = t->shape[nd - 1];
    sh[nd - 1] = t->shape[nd - 2];
    st[nd - 2] = t->strides[nd - 1];
    st[nd - 1] = t->strides[nd - 2];
    return etc_view_of(t, sh, st, nd, t->offset);
}

/* g viewed with the promoted dims put back: shape [batch..., n, m]. */
static et_tensor *promote_grad(et_tensor *g, const et_tensor *a, const et_tensor *b)
{
    int64_t sh[ET_MAX_DIMS], st[ET_MAX_DIMS];
    int m = 0, gd = 0;
    int gnd = g->ndim;
    int nbatch = gnd - (a->ndim == 1 ? 0 : 1) - (b->ndim == 1 ? 0 : 1);
    for (; gd < nbatch; gd++) {
        sh[m] = g->shape[gd];
        st[m++] = g->strides[gd];
    }
    if (a->ndim == 1) {
        sh[m] = 1;
        st[m++] = 0;
    } else {
        sh[m] = g->shape[gd];
        st[m++] = g->strides[gd];
        gd++;
    }
    if (b->ndim == 1) {
        sh[m] = 1;
        st[m++] = 0;
    } else {
        sh[m] = g->shape[gd];
        st[m++] = g->strides[gd];
    }
    return etc_view_of(g, sh, st, m, g->offset);
}

/* grad_a = g @ b^T, grad_b = a^T @ g, batch dims summed back, 1-D
 * promotions undone. */
ETC_BW(matmul)
{
    et_tensor *a = out->in[0], *b = out->in[1];
    et_tensor *pa = promote(a, true), *pb = promote(b, false);
    et_tensor *pg = promote_grad(g, a, b);
    bool ok = pa && pb && pg;
    for (int i = 0; ok && i < 2; i++) {
        if (!out->in[i]->requires_grad)
            continue;
        et_tensor *other = i == 0 ? pb : pa;
        et_tensor *self = i == 0 ? pa : pb;
        if (self->ndim == 2 && pg->ndim == 2 && !self->contiguous && self->strides[0] == 1 &&
            out->in[i]->ndim == 2) {
            /* self is a transposed matrix (x @ W^T): compute grad^T contiguously,
             * so the gradient reaching W is contiguous in W's own layout */
            et_tensor *gt = mT(pg);
            et_tensor *c = gt ? (i == 0 ? etc_mm_raw(other, gt) : etc_mm_raw(gt, other)) : NULL;
            etc_release(gt);
            gin[i] = c ? mT(c) : NULL;
            etc_release(c);
            ok = gin[i] != NULL;
            continue;
        }
        et_tensor *ot = mT(other);
        et_tensor *full = ot ? (i == 0 ? etc_mm_raw(pg, ot) : etc_mm_raw(ot, pg)) : NULL;
        etc_release(ot);
        et_tensor *red = full ? etc_unbroadcast(full, self) : NULL;
        etc_release(full);
        if (red && out->in[i]->ndim == 1) {
            /* red is [1,k] or [k,1], contiguous: drop the unit dim in place */
            red->ndim = 1;
            red->shape[0] = out->in[i]->shape[0];
            red->strides[0] = 1;
        }
        gin[i] = red;
        ok = red != NULL;
    }
    etc_release(pa);
    etc_release(pb);
    etc_release(pg);
    return ok;
}
