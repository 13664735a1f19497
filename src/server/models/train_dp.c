/* train_dp.c - data-parallel training over replicas (models.h, "data-parallel
 * replicas"; docs/distributed.md): this replica's share of a minibatch's
 * rows, the gradients combined through the registry's etd_dp, and what keeps
 * the replicas identical afterwards.  How the numbers travel (MPI) is the
 * cluster's business (src/server/cluster); nothing here knows it.
 *
 * The weighting.  A loss with reduction mean divides by a normaliser D (the
 * elements; for class targets the non-ignored ones, or their class weights
 * summed): loss = S / D with S the sum over the rows.  Replica r computes
 * its share's mean loss_r = S_r / D_r and its gradient g_r, and contributes
 * D_r * g_r and D_r; after the sum, g = (sum D_r g_r) / (sum D_r) is the
 * gradient of S / D -- the whole minibatch's, only the order of the sums
 * differs.  With reduction sum the contributions just add.  A share whose
 * D_r is 0 (every target ignored) contributes nothing instead of torch's
 * 0/0 = NaN.  Where no replica produced a gradient for a parameter, it keeps
 * none (torch's optimizers skip those).
 *
 * Agreement.  A replica that fails on its own (out of memory, a snapshot it
 * cannot take) and skips a collective leaves the others waiting in it for
 * ever.  So a data-parallel call's first collective is etd_dp_agree: every
 * replica says whether it got there ready (etd_dp_backward after its own
 * allocations, everything the result needs allocated before the sum; a
 * caller that failed before it calls etd_dp_agree(m, false, e) in its
 * place), and the same before etd_dp_sync's broadcast (the step, the save of
 * a batch).  A local failure thus fails the call on every replica alike,
 * and nothing after the gradients' sum allocates. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/model_internal.h"

/* Rows [lo, hi) of n for replica rank of size: contiguous, sizes differ by at most one. */
static void share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi)
{
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fault injection for the tests (tests/server/test_mpi.py test_local_failures):
 * EASYTORCHD_TEST_DP_FAIL="POINT@RANK[,POINT@RANK...]" makes replica RANK
 * fail, as out of memory, the first time it reaches POINT. */
static const char *const fault_points[] = {"batch", "minibatch", "train", "backward", "step",
                                           "sync", "job", "save", "apply_train", "apply_patch", NULL};

bool etd_dp_fault(const etd_dp *dp, const char *point, etd_err *e)
{
    static atomic_uint fired;
    const char *v = getenv("EASYTORCHD_TEST_DP_FAIL");
    int bit = 0;
    while (fault_points[bit] && strcmp(fault_points[bit], point) != 0)
        bit++;
    if (!v || !fault_points[bit] || atomic_load(&fired) & 1u << bit)
        return false;
    char want[64];
    snprintf(want, sizeof want, "%s@%d", point, dp->rank);
    size_t l = strlen(want);
    for (const char *p = v; *p; p += strcspn(p, ","), p += *p == ',') {
        if (strncmp(p, want, l) == 0 && (p[l] == ',' || p[l] == '\0') &&
            !(atomic_fetch_or(&fired, 1u << bit) & 1u << bit)) {
            etd_fail(e, ETD_ENOMEM, "out of memory (EASYTORCHD_TEST_DP_FAIL %s)", want);
            return true;
        }
    }
    return false;
}

bool etd_dp_agree(etd_model *m, bool ok, const char *where, etd_err *e)
{
    const etd_dp *dp = m->reg->dp;
    double v[2] = {ok ? 0 : 1, !ok && e->rc == ETD_ENOMEM ? 1 : 0};
    etd_err re;
    if (!dp->allreduce_f64(dp->ctx, v, 2, &re)) {
        if (ok)
            *e = re;
        return false;
    }
    if (v[0] == 0)
        return true;
    if (ok)
        etd_fail(e, v[1] > 0 ? ETD_ENOMEM : ETD_EINTERNAL, "another replica %s %s",
                 v[1] > 0 ? "ran out of memory" : "failed", where);
    etd_err_append(e, " (%d of %d replicas failed)", (int)v[0], dp->size);
    return false;
}

/* A graph's loss list: every term has its own normaliser, so one weight per
 * share cannot make the sum right.  Instead the terms' normalisers over the
 * whole minibatch are summed first (one small allreduce, with the failures),
 * and each share computes its terms rescaled to them (mean: S_r / D_r times
 * D_r / D = S_r / D): the replicas' losses, and their gradients, then just
 * add up to the whole minibatch's.  A term whose share has D_r = 0 is left
 * out (torch's full batch counts those rows for nothing too); D = 0 gives
 * torch's NaN.  *loss: the share's rescaled loss, NULL when it has none
 * (no rows, every term left out, or le set).  *anyfail: some replica failed
 * before the sum (every replica sees it).  false + e: the collective failed. */
static bool terms_loss(etd_model *m, const etd_dp *dp, etd_dp_bn *bn, const etd_array *x,
                       const etd_array *y, const int64_t *idx, int64_t n, et_tensor **loss,
                       bool *anyfail, etd_err *le, etd_err *e)
{
    const etd_spec *sp = &m->spec;
    int k = sp->nterms;
    float d[ETD_MAX_LOSSES + 1] = {0};
    double mine[ETD_MAX_LOSSES] = {0}, scale[ETD_MAX_LOSSES];
    etd_tlist xb, yb, outs;
    bool fwd = false;
    *loss = NULL;
    if (n > 0) {
        bool have_x = etd_inputs_of(m, x, idx, n, &xb);
        bool have_y = have_x && etd_targets_of(m, y, idx, n, &yb);
        if (!have_x || !have_y)
            etd_lib_fail(le, have_x ? "targets" : "inputs");
        else if (yb.n != sp->ntargets)
            etd_fail(le, ETD_EINVAL, "targets: the losses take %d named target%s", sp->ntargets,
                     sp->ntargets == 1 ? "" : "s");
        else
            fwd = etd_run_net_all(m, &xb, &outs, le);
        for (int i = 0; fwd && i < k; i++)
            mine[i] = etd_spec_term_norm(sp, i, outs.t, yb.t);
    }
    /* SyncBatchNorm: the forward's layer calls met before the sum */
    bool failed = le->rc != ETD_OK && !(bn && bn->remote);
    bool bnfail = bn && etd_dp_bn_drain(bn, failed);
    for (int i = 0; i < k; i++)
        d[i] = failed ? 0.0f : (float)mine[i];
    d[k] = failed ? 1.0f : 0.0f;
    if (!dp->allreduce(dp->ctx, d, (size_t)k + 1, e))
        return false;
    *anyfail = d[k] > 0 || bnfail;
    if (*anyfail || !fwd)
        return true;
    for (int i = 0; i < k; i++)
        scale[i] = sp->terms[i].l.reduction == ET_REDUCTION_SUM ? 1.0
                   : mine[i] > 0 ? mine[i] / (double)d[i]
                   : d[i] > 0 ? 0.0 : NAN;
    *loss = etd_spec_losses_scaled(sp, outs.t, yb.t, scale, le);
    /* every term left out: under SyncBatchNorm the rows still moved the
     * others' statistics, so the share backpropagates a zero loss */
    if (!*loss && bn && le->rc == ETD_OK)
        *loss = etd_dp_bn_zero_loss(&outs, le);
    return true;
}

et_tensor *etd_dp_backward(etd_model *m, const etd_array *x, const etd_array *y,
                           const int64_t *idx, int64_t n, bool backprop_bad, etd_err *e)
{
    const etd_dp *dp = m->reg->dp;
    bool terms = m->spec.nterms > 0; /* the same on every replica: the spec is */
    int64_t lo, hi;
    share(n, dp->rank, dp->size, &lo, &hi);
    /* the gradients so far (pending batches) stay aside: the sum is of this
     * call's contributions only, added to them afterwards */
    et_tensor **prev = calloc((size_t)m->nparams + 1, sizeof *prev);
    size_t total = 0;
    for (int i = 0; i < m->nparams; i++)
        total += (size_t)et_numel(m->params[i]);
    /* [gradients..., has-grad per parameter, D * loss, D, failures] */
    size_t nbuf = total + (size_t)m->nparams + 3;
    float *buf = calloc(nbuf, sizeof *buf);
    /* what the result needs, before the sum: nothing after it can fail
     * here alone (pool-owned: the caller's pool) */
    et_tensor **gnew = calloc((size_t)m->nparams + 1, sizeof *gnew);
    const float **pd = calloc((size_t)m->nparams + 1, sizeof *pd);
    et_tensor *out = et_scalar(0);
    etd_dp_buckets bk = {0}; /* --mpi-bucket-mb: summed while the backward runs */
    bool ready = prev && buf && gnew && pd && out && etd_dp_buckets_init(&bk, m, buf);
    for (int i = 0; ready && i < m->nparams; i++) {
        gnew[i] = et_zeros(et_shape(m->params[i]), et_ndim(m->params[i]));
        et_tensor *g = et_grad(m->params[i]), *gc = g ? et_contiguous(g) : NULL;
        pd[i] = gc ? et_data_const(gc) : NULL;
        ready = gnew[i] && (!g || pd[i]);
    }
    if (!ready)
        etd_fail(e, ETD_ENOMEM, "out of memory");
    else if (etd_dp_fault(dp, "backward", e))
        ready = false;
    if (!etd_dp_agree(m, ready, "before the gradients' sum", e)) {
        etd_dp_buckets_free(&bk);
        free(prev);
        free(buf);
        free(gnew);
        free(pd);
        return NULL;
    }
    for (int i = 0; i < m->nparams; i++) {
        prev[i] = et_grad(m->params[i]);
        if (prev[i])
            et_tensor_ref(prev[i]);
        et_set_grad(m->params[i], NULL);
    }
    /* replicas draw their dropout masks from streams of their own (rank 0's
     * is the model's; the generator is made equal again in etd_dp_sync) */
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    if (dp->rank > 0) {
        uint64_t mix = gs[0] ^ gs[1] ^ gs[2] ^ gs[3] ^ (uint64_t)dp->rank * 0x2545f4914f6cdd1dull;
        uint64_t ns[4];
        for (int k = 0; k < 4; k++)
            ns[k] = splitmix(&mix);
        et_generator_set_state(m->gen, ns);
    }
    etd_err le;
    le.rc = ETD_OK;
    le.msg[0] = '\0';
    bool failed = false;
    double d = 0, lv = 0;
    /* SyncBatchNorm: the layers' statistics over every replica's rows */
    etd_dp_bn bn;
    etd_err be;
    be.rc = ETD_OK;
    bool sync = etd_dp_bn_begin(&bn, m, &be);
    if (be.rc != ETD_OK) /* out of memory: this replica cannot take part */
        etd_fail(&le, be.rc, "%s", be.msg);
    /* a loss list's shares, and SyncBatchNorm's, are already scaled to the
     * whole minibatch: they add */
    bool mean = !terms && !sync && m->spec.loss.reduction != ET_REDUCTION_SUM;
    bool early = false; /* failed before the gradients' sum (every replica alike) */
    if (terms || sync) {
        et_tensor *loss = NULL;
        bool anyfail = false;
        etd_err re;
        bool ok = terms ? terms_loss(m, dp, sync ? &bn : NULL, x, y, idx + lo, hi - lo, &loss,
                                     &anyfail, &le, &re)
                        : etd_dp_bn_loss(m, &bn, x, y, idx + lo, hi - lo, &loss, &anyfail, &le,
                                         &re);
        if (!ok) {
            *e = re;
            early = true;
        } else if (anyfail) {
            if (le.rc != ETD_OK)
                *e = le;
            else
                etd_fail(e, ETD_EINVAL, "another replica failed on its share of the rows");
            early = true;
        } else if (loss) {
            lv = et_item(loss);
            if ((isfinite(lv) || backprop_bad) && etd_dp_buckets_backward(&bk, loss, 1) != ET_OK)
                etd_fail(&le, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL,
                         "backward: %s", et_errmsg());
        }
        /* the backward's layer calls met (on every replica, early or not:
         * early is every replica's) */
        failed = le.rc != ETD_OK && !(sync && bn.remote);
        if (sync)
            etd_dp_bn_drain(&bn, failed);
    } else if (hi > lo) {
        etd_tlist xb, yb;
        bool have_x = etd_inputs_of(m, x, idx + lo, hi - lo, &xb);
        bool have_y = have_x && etd_targets_of(m, y, idx + lo, hi - lo, &yb);
        et_tensor *loss = NULL;
        if (!have_x || !have_y)
            etd_lib_fail(&le, have_x ? "targets" : "inputs");
        else
            d = etd_spec_loss_norm(&m->spec.loss, yb.t[0]);
        if (have_y && (!mean || d > 0))
            loss = etd_train_loss(m, &xb, &yb, &le);
        if (loss) {
            lv = et_item(loss);
            if ((isfinite(lv) || backprop_bad) &&
                etd_dp_buckets_backward(&bk, loss, mean ? d : 1) != ET_OK)
                etd_fail(&le, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL,
                         "backward: %s", et_errmsg());
        }
        failed = le.rc != ETD_OK;
    }
    double w = mean ? d : 1;
    size_t off = 0;
    if (bk.local_fail && !failed) { /* a gradient the buckets could not read */
        etd_fail(&le, ETD_ENOMEM, "out of memory");
        failed = true;
    }
    for (int i = 0; i < m->nparams && !bk.on; i++) { /* the buckets have them already */
        size_t k = (size_t)et_numel(m->params[i]);
        et_tensor *g = et_grad(m->params[i]);
        if (g && !failed) {
            et_tensor *gc = et_contiguous(g); /* the caller's pool */
            const float *gd = gc ? et_data_const(gc) : NULL;
            for (size_t j = 0; gd && j < k; j++)
                buf[off + j] = (float)(w * gd[j]);
            buf[total + (size_t)i] = 1;
            if (!gd) {
                etd_fail(&le, ETD_ENOMEM, "out of memory");
                failed = true;
            }
        }
        off += k;
    }
    buf[nbuf - 3] = failed || (mean && d == 0) ? 0.0f : (float)(w * lv);
    buf[nbuf - 2] = failed ? 0.0f : (float)d;
    buf[nbuf - 1] = failed ? 1.0f : 0.0f;
    etd_dp_bn_end(&bn);
    bool done = false;
    etd_err re;
    if (early) {
        /* e says why */
    } else if (!(bk.on ? etd_dp_buckets_finish(&bk, nbuf, &re)
                       : dp->allreduce(dp->ctx, buf, nbuf, &re))) {
        *e = re;
    } else if (buf[nbuf - 1] > 0) {
        if (failed)
            *e = le;
        else
            etd_fail(e, ETD_EINVAL, "another replica failed on its share of the rows");
        etd_err_append(e, " (%d of %d replicas failed)", (int)buf[nbuf - 1], dp->size);
    } else {
        /* mean: divide by the whole rows' normaliser (0/0 = NaN as torch when
         * every target is ignored) */
        float scale = mean ? 1.0f / buf[nbuf - 2] : 1.0f;
        off = 0;
        for (int i = 0; i < m->nparams; i++) {
            size_t k = (size_t)et_numel(m->params[i]);
            bool has = buf[total + (size_t)i] > 0;
            if (has) { /* as backward accumulates: old + new */
                float *gd = et_data(gnew[i]);
                for (size_t j = 0; j < k; j++) {
                    float v = mean ? buf[off + j] * scale : buf[off + j];
                    gd[j] = pd[i] ? pd[i][j] + v : v;
                }
            }
            if (has || prev[i])
                et_set_grad(m->params[i], has ? gnew[i] : prev[i]); /* same shape: cannot fail */
            off += k;
        }
        et_data(out)[0] = mean ? buf[nbuf - 3] / buf[nbuf - 2] : buf[nbuf - 3];
        done = true;
    }
    if (!done) /* the caller's rollback puts the rest back */
        for (int i = 0; i < m->nparams; i++)
            et_set_grad(m->params[i], prev[i]);
    for (int i = 0; i < m->nparams; i++)
        et_tensor_free(prev[i]);
    etd_dp_buckets_free(&bk);
    free(prev);
    free(buf);
    free(gnew);
    free(pd);
    return done ? out : NULL;
}

/* The model's buffers (float32 and int64, e.g. num_batches_tracked) into
 * pack (NULL: their bytes), or out of it. */
static size_t buffers_pack(etd_model *m, char *pack, bool in)
{
    size_t off = 0;
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; i < nb; i++) {
        et_tensor *b = et_module_buffer(m->net, i);
        bool f32 = et_tensor_dtype(b) == ET_FLOAT32;
        if (!f32 && et_tensor_dtype(b) != ET_INT64)
            continue;
        size_t k = (size_t)et_numel(b) * (f32 ? sizeof(float) : sizeof(int64_t));
        if (pack && in && f32)
            et_copy_to(b, (float *)(void *)(pack + off));
        else if (pack && in)
            et_copy_to_int64(b, (int64_t *)(void *)(pack + off));
        else if (pack && f32)
            et_copy_from(b, (const float *)(const void *)(pack + off));
        else if (pack)
            et_copy_from_int64(b, (const int64_t *)(const void *)(pack + off));
        off += k;
    }
    return off;
}

/* Rank 0's generator state, and the buffers of one replica: rank 0's (DDP's
 * broadcast_buffers); under SyncBatchNorm the last replica's, which always
 * has rows (share()) -- a replica without rows takes no forward, so its
 * running statistics and num_batches_tracked did not move; every replica
 * with rows holds the same ones. */
etd_rc etd_dp_sync(etd_model *m, bool ok, etd_err *e)
{
    const etd_dp *dp = m->reg->dp;
    int root = m->spec.sync_batchnorm ? dp->size - 1 : 0;
    size_t nbuf = buffers_pack(m, NULL, true), head = 4 * sizeof(uint64_t);
    char *pack = ok ? malloc(head + nbuf) : NULL;
    if (ok && !pack)
        etd_fail(e, ETD_ENOMEM, "out of memory");
    bool ready = pack && !etd_dp_fault(dp, "sync", e);
    if (!etd_dp_agree(m, ready, "after the gradients' sum", e)) {
        free(pack);
        return e->rc;
    }
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    memcpy(pack, gs, sizeof gs);
    buffers_pack(m, pack + head, true);
    bool sent = root == 0 ? dp->bcast(dp->ctx, 0, pack, head + nbuf, e)
                          : dp->bcast(dp->ctx, 0, pack, head, e) &&
                                dp->bcast(dp->ctx, root, pack + head, nbuf, e);
    if (!sent) {
        free(pack);
        return e->rc;
    }
    memcpy(gs, pack, sizeof gs);
    et_generator_set_state(m->gen, gs);
    buffers_pack(m, pack + head, false);
    free(pack);
    if (dp->verify && dp->check_every > 0 && m->ts.step > 0 && m->ts.step % dp->check_every == 0)
        dp->verify(dp->ctx, m->name, m->ts.step, etd_model_checksum(m));
    return ETD_OK;
}

etd_rc etd_dp_commit(etd_model *m, const etd_train_state *snap, etd_err *e)
{
    const etd_dp *dp = m->reg->dp;
    if (!dp || !m->reg->o.sync_always)
        return etd_model_commit(m, snap, e);
    etd_rc rc;
    etd_err re;
    if (etd_dp_fault(dp, "save", e)) { /* as a failed save: taken back, the file untouched */
        rc = e->rc;
        if (snap && etd_ts_apply(m, snap, &re) != ETD_OK)
            fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name, re.msg);
    } else {
        rc = etd_model_commit(m, snap, e);
    }
    bool was = rc == ETD_OK;
    if (etd_dp_agree(m, was, "saving", e))
        return ETD_OK;
    if (!was) /* this replica's own failure: taken back already */
        return rc;
    /* saved here, failed on another replica: taken back here too, in memory
     * and in the file (what a restart reads) */
    if (!snap || etd_ts_apply(m, snap, &re) != ETD_OK)
        fprintf(stderr, "easytorchd: model %s: rollback failed: %s\n", m->name,
                snap ? re.msg : "no snapshot");
    else if (etd_model_save_locked(m, NULL, &re) != ETD_OK)
        fprintf(stderr, "easytorchd: %s\n", re.msg);
    return e->rc;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t etd_model_checksum(etd_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    et_pool_begin(); /* the contiguous copies */
    for (int i = 0; i < m->nparams; i++) {
        et_tensor *c = et_contiguous(m->params[i]);
        if (c)
            h = fnv(h, et_data_const(c), (size_t)et_numel(c) * sizeof(float));
    }
    int nb = et_module_num_buffers(m->net);
    for (int i = 0; i < nb; i++) {
        et_tensor *b = et_module_buffer(m->net, i);
        if (et_tensor_dtype(b) == ET_INT64 && et_numel(b) == 1) { /* num_batches_tracked */
            int64_t v = 0;
            et_copy_to_int64(b, &v);
            h = fnv(h, &v, sizeof v);
        }
        if (et_tensor_dtype(b) != ET_FLOAT32)
            continue;
        et_tensor *c = et_contiguous(b);
        if (c)
            h = fnv(h, et_data_const(c), (size_t)et_numel(c) * sizeof(float));
    }
    et_pool_end();
    uint64_t gs[4];
    et_generator_get_state(m->gen, gs);
    return fnv(h, gs, sizeof gs);
}
