/* evaluate.c - measuring a model without training it (models.h): a
 * forward in eval mode without gradients under the read lock, the loss and
 * the metrics, and the validation history that jobs record.
 *
 * The metrics follow sklearn.metrics / torchmetrics (docs/API.md):
 *   accuracy        multiclass: argmax of each output row (torch.argmax: a
 *                   NaN counts as the largest) against the class index (or
 *                   the argmax of a same-shaped target row); BCE losses:
 *                   outputs thresholded (logits at 0 for BCEWithLogitsLoss,
 *                   probabilities at 0.5 for BCELoss) against 0/1 targets,
 *                   a row right when all its labels are (sklearn's subset
 *                   accuracy; one label per row is plain binary accuracy);
 *   top_k_accuracy  the true class among the k highest scores
 *                   (sklearn.metrics.top_k_accuracy_score, k = 2 by default);
 *   mae, mse        means over every element; rmse = sqrt(mse);
 *   r2              sklearn.metrics.r2_score, multioutput "uniform_average":
 *                   1 - SS_res/SS_tot per output column, averaged; a constant
 *                   column scores 1 if predicted exactly, else 0 (sklearn's
 *                   force_finite); undefined (null) for fewer than 2 rows.
 * Sums run in double precision. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/model_internal.h"
#include "server/models/spec_graph.h"

const char *const etd_metric_names[] = {"loss", "accuracy", "top_k_accuracy", "mae", "mse",
                                        "rmse", "r2", NULL};
_Static_assert(sizeof etd_metric_names / sizeof etd_metric_names[0] == ETD_M_COUNT + 1,
               "one name per metric");

/* ---------------------------------------------------------------- what the loss implies */

typedef enum { K_CLASS, K_BINARY, K_REGRESSION, K_OTHER } target_kind;

static target_kind kind_of(const etd_loss_spec *l, bool *logits)
{
    static const char *const cls[] = {"CrossEntropyLoss", "NLLLoss", NULL};
    static const char *const bin[] = {"BCELoss", "BCEWithLogitsLoss", NULL};
    static const char *const reg[] = {"MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", NULL};
    const char *n = l->type->name;
    *logits = strcmp(n, "BCEWithLogitsLoss") == 0;
    for (int i = 0; cls[i]; i++)
        if (strcmp(n, cls[i]) == 0)
            return K_CLASS;
    for (int i = 0; bin[i]; i++)
        if (strcmp(n, bin[i]) == 0)
            return K_BINARY;
    for (int i = 0; reg[i]; i++)
        if (strcmp(n, reg[i]) == 0)
            return K_REGRESSION;
    return K_OTHER;
}

unsigned etd_model_default_metrics(const etd_model *m)
{
    bool logits;
    unsigned loss = 1u << ETD_M_LOSS;
    switch (kind_of(&m->spec.loss, &logits)) {
    case K_CLASS:
    case K_BINARY: return loss | 1u << ETD_M_ACCURACY;
    case K_REGRESSION:
        return loss | 1u << ETD_M_MAE | 1u << ETD_M_MSE | 1u << ETD_M_RMSE | 1u << ETD_M_R2;
    case K_OTHER: break;
    }
    return loss;
}

/* ---------------------------------------------------------------- the metrics */

/* Target element i (class targets arrive as int64). */
static double tval(const etd_array *y, int64_t i)
{
    return y->dtype == ET_INT64 ? (double)y->idata[i] : (double)y->data[i];
}

/* The true class of row i: a class index, or the argmax of a target row
 * shaped like the output's.  -1 + e when it is neither. */
static int64_t argmax_row(const float *v, int64_t c)
{
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++) {
        if (isnan(v[best]))
            break;
        if (isnan(v[j]) || v[j] > v[best])
            best = j;
    }
    return best;
}

/* Class targets for multiclass metrics: *cls[N] (malloc'ed). */
static etd_rc class_targets(const char *metric, const et_tensor *out, const etd_array *y,
                            int64_t **cls, etd_err *e)
{
    *cls = NULL;
    if (et_ndim(out) != 2 || et_shape(out)[1] < 2)
        return etd_fail(e, ETD_EINVAL, "metrics: %s needs a classification output of shape "
                        "[batch, classes >= 2], the model gives %s", metric,
                        et_ndim(out) == 2 ? "one column" : "another rank");
    int64_t n = et_shape(out)[0], c = et_shape(out)[1];
    bool rows = y->ndim == 2 && y->shape[0] == n && y->shape[1] == c;
    if (!rows && !(y->ndim == 1 && y->shape[0] == n))
        return etd_fail(e, ETD_EINVAL, "targets: %s needs %lld class indices (shape [%lld]) or "
                        "target rows shaped like the outputs [%lld, %lld]", metric,
                        (long long)n, (long long)n, (long long)n, (long long)c);
    int64_t *t = malloc((size_t)(n ? n : 1) * sizeof *t);
    if (!t)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (rows && y->dtype == ET_FLOAT32) {
            t[i] = argmax_row(y->data + i * c, c);
            continue;
        }
        if (rows) { /* int64 rows: the first largest */
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (y->idata[i * c + j] > y->idata[i * c + best])
                    best = j;
            t[i] = best;
            continue;
        }
        double v = tval(y, i);
        if (v != floor(v) || v < 0 || v >= (double)c) {
            free(t);
            return etd_fail(e, ETD_EINVAL, "targets[%lld]: %s needs class indices in [0, %lld), "
                            "got %g", (long long)i, metric, (long long)c, (double)v);
        }
        t[i] = (int64_t)v;
    }
    *cls = t;
    return ETD_OK;
}

static etd_rc accuracy(const etd_loss_spec *ls, const et_tensor *out, const etd_array *y, double *acc,
                       etd_err *e)
{
    bool logits;
    const float *o = et_data_const(out);
    int64_t n = et_ndim(out) ? et_shape(out)[0] : 0;
    if (n == 0)
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    if (kind_of(ls, &logits) == K_BINARY) {
        if (y->numel != et_numel(out))
            return etd_fail(e, ETD_EINVAL, "targets: accuracy needs 0/1 targets shaped like the "
                            "outputs (%lld values), got %lld", (long long)et_numel(out),
                            (long long)y->numel);
        int64_t per = et_numel(out) / n, right = 0;
        float thr = logits ? 0.0f : 0.5f;
        for (int64_t i = 0; i < n; i++) {
            bool all = true;
            for (int64_t j = 0; j < per; j++) {
                double t = tval(y, i * per + j);
                if (t != 0 && t != 1)
                    return etd_fail(e, ETD_EINVAL, "targets[%lld]: accuracy needs labels 0 or 1 "
                                    "(got %g)", (long long)i, (double)t);
                all = all && ((o[i * per + j] > thr) == (t == 1));
            }
            right += all;
        }
        *acc = (double)right / (double)n;
        return ETD_OK;
    }
    int64_t *cls;
    if (class_targets("accuracy", out, y, &cls, e) != ETD_OK)
        return e->rc;
    int64_t c = et_shape(out)[1], right = 0;
    for (int64_t i = 0; i < n; i++)
        right += argmax_row(o + i * c, c) == cls[i];
    free(cls);
    *acc = (double)right / (double)n;
    return ETD_OK;
}

static etd_rc top_k(const et_tensor *out, const etd_array *y, int64_t k, double *acc,
                    etd_err *e)
{
    int64_t *cls;
    if (class_targets("top_k_accuracy", out, y, &cls, e) != ETD_OK)
        return e->rc;
    const float *o = et_data_const(out);
    int64_t n = et_shape(out)[0], c = et_shape(out)[1], right = 0;
    if (n == 0) {
        free(cls);
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    }
    for (int64_t i = 0; i < n; i++) {
        float s = o[i * c + cls[i]];
        int64_t above = 0; /* classes scoring strictly higher than the true one */
        for (int64_t j = 0; j < c; j++)
            above += o[i * c + j] > s || (isnan(o[i * c + j]) && !isnan(s));
        right += !isnan(s) && above < k;
    }
    free(cls);
    *acc = (double)right / (double)n;
    return ETD_OK;
}

/* mae, mse, rmse, r2 into v[] for the metrics in want. */
static etd_rc regression(const et_tensor *out, const etd_array *y, unsigned want, double *v,
                         etd_err *e)
{
    const char *which = NULL;
    for (int i = ETD_M_MAE; i <= ETD_M_R2 && !which; i++)
        if (want & 1u << i)
            which = etd_metric_names[i];
    int64_t numel = et_numel(out);
    if (y->numel != numel || (y->ndim && et_ndim(out) && y->shape[0] != et_shape(out)[0])) {
        char a[160], b[160];
        et_shape_str(et_shape(out), et_ndim(out), a, sizeof a);
        et_shape_str(y->shape, y->ndim, b, sizeof b);
        return etd_fail(e, ETD_EINVAL, "targets: %s needs targets shaped like the outputs %s, "
                        "got %s", which, a, b);
    }
    if (numel == 0)
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    const float *o = et_data_const(out);
    double sa = 0, ss = 0;
    for (int64_t i = 0; i < numel; i++) {
        double d = (double)o[i] - tval(y, i);
        sa += fabs(d);
        ss += d * d;
    }
    v[ETD_M_MAE] = sa / (double)numel;
    v[ETD_M_MSE] = ss / (double)numel;
    v[ETD_M_RMSE] = sqrt(ss / (double)numel);
    int64_t n = et_ndim(out) ? et_shape(out)[0] : 1, cols = numel / n;
    if (n < 2) {
        v[ETD_M_R2] = NAN;
        return ETD_OK;
    }
    double r2 = 0;
    for (int64_t j = 0; j < cols; j++) {
        double mean = 0, res = 0, tot = 0;
        for (int64_t i = 0; i < n; i++)
            mean += tval(y, i * cols + j);
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double d = tval(y, i * cols + j) - (double)o[i * cols + j];
            double c = tval(y, i * cols + j) - mean;
            res += d * d;
            tot += c * c;
        }
        r2 += tot != 0 ? 1.0 - res / tot : res == 0 ? 1.0 : 0.0;
    }
    v[ETD_M_R2] = r2 / (double)cols;
    return ETD_OK;
}

/* ---------------------------------------------------------------- the call */

/* The metrics in want other than the loss of out against y, for a loss ls. */
static etd_rc measure_metrics(const etd_loss_spec *ls, const et_tensor *out, const etd_array *y,
                              int64_t k, unsigned want, double *value, etd_err *e)
{
    if ((want & 1u << ETD_M_ACCURACY) && accuracy(ls, out, y, &value[ETD_M_ACCURACY], e) != ETD_OK)
        return e->rc;
    if (want & 1u << ETD_M_TOPK) {
        int64_t c = et_ndim(out) == 2 ? et_shape(out)[1] : 0;
        if (c >= 2 && k > c)
            return etd_fail(e, ETD_EINVAL, "k: top_k_accuracy needs k <= the %lld classes, got "
                            "%lld", (long long)c, (long long)k);
        if (top_k(out, y, k, &value[ETD_M_TOPK], e) != ETD_OK)
            return e->rc;
    }
    unsigned reg = 1u << ETD_M_MAE | 1u << ETD_M_MSE | 1u << ETD_M_RMSE | 1u << ETD_M_R2;
    if ((want & reg) && regression(out, y, want, value, e) != ETD_OK)
        return e->rc;
    return ETD_OK;
}

/* Metrics of out against y (the loss computed from out). */
static etd_rc measure(etd_model *m, et_tensor *out, const etd_array *y, const etd_eval_opts *o,
                      etd_eval_result *r, etd_err *e)
{
    unsigned want = r->metrics;
    if (want & 1u << ETD_M_LOSS) {
        et_tensor *yt = etd_array_tensor(y);
        if (yt && m->spec.target_dtype == ET_FLOAT32 && et_tensor_dtype(yt) == ET_INT64)
            yt = et_to_dtype(yt, ET_FLOAT32); /* as train.c does: torch's .float() */
        et_tensor *l = yt ? etd_spec_loss(&m->spec, out, yt, e) : NULL;
        if (!yt)
            return etd_fail(e, ETD_ENOMEM, "out of memory");
        if (!l)
            return e->rc;
        if (et_numel(l) != 1)
            return etd_fail(e, ETD_EINVAL, "loss: expected a scalar");
        r->value[ETD_M_LOSS] = et_item(l);
    }
    return measure_metrics(&m->spec.loss, out, y, o->k, want, r->value, e);
}

/* The metrics a loss's kind gives (besides the loss): by default, and all it can. */
static unsigned kind_metrics(target_kind k, bool all)
{
    unsigned reg = 1u << ETD_M_MAE | 1u << ETD_M_MSE | 1u << ETD_M_RMSE | 1u << ETD_M_R2;
    switch (k) {
    case K_CLASS: return 1u << ETD_M_ACCURACY | (all ? 1u << ETD_M_TOPK : 0);
    case K_BINARY: return 1u << ETD_M_ACCURACY;
    case K_REGRESSION: return reg;
    case K_OTHER: break;
    }
    return 0;
}

/* A graph's loss list on its outputs ys[] (eval mode, no grad, in a pool):
 * the weighted total and each entry's loss, as train computes them, and the
 * metrics of each output a one-output loss entry with a target takes. */
static etd_rc measure_terms(etd_model *m, et_tensor *const *ys, int ny, const etd_array *y,
                            const etd_eval_opts *o, etd_eval_result *r, etd_err *e)
{
    const etd_spec *s = &m->spec;
    _Static_assert(sizeof r->losses / sizeof r->losses[0] == ETD_MAX_LOSSES, "one per loss");
    unsigned asked = o->metrics, loss = 1u << ETD_M_LOSS;
    int term_of[ETD_MAX_IO];
    for (int i = 0; i < ny; i++)
        term_of[i] = -1;
    for (int i = 0; i < s->nterms; i++)
        if (s->terms[i].nout == 1 && s->terms[i].target >= 0 && term_of[s->terms[i].out[0]] < 0)
            term_of[s->terms[i].out[0]] = i;
    if (asked & ~loss) { /* every metric asked for fits some output */
        unsigned fit = 0;
        bool logits;
        for (int i = 0; i < ny; i++)
            if (term_of[i] >= 0)
                fit |= kind_metrics(kind_of(&s->terms[term_of[i]].l, &logits), true);
        for (int k = 1; k < ETD_M_COUNT; k++)
            if ((asked & 1u << k) && !(fit & 1u << k))
                return etd_fail(e, ETD_EINVAL, "metrics: %s fits none of the model's outputs "
                                "(by the loss each output's entry of \"loss\" gives)",
                                etd_metric_names[k]);
    }
    r->metrics = asked ? asked & loss : loss;
    if (y->nparts != s->ntargets && s->ntargets)
        return etd_fail(e, ETD_EINVAL, "targets: the losses take %d named targets", s->ntargets);
    for (int i = 0; i < y->nparts; i++)
        if (y->parts[i].ndim < 1 || y->parts[i].shape[0] != r->rows)
            return etd_fail(e, ETD_EINVAL, "targets.%s: expected %lld rows (as many as inputs), "
                            "got %lld", s->target_names[i], (long long)r->rows,
                            (long long)(y->parts[i].ndim ? y->parts[i].shape[0] : 0));
    if (r->metrics & loss) {
        etd_tlist yt;
        if (!etd_targets_of(m, y, NULL, 0, &yt))
            return etd_lib_fail(e, "targets");
        et_tensor *total = etd_spec_losses_each(s, ys, yt.t, r->losses, e);
        if (!total)
            return e->rc;
        r->value[ETD_M_LOSS] = et_item(total);
        r->nlosses = s->nterms;
    }
    for (int i = 0; i < ny; i++) {
        if (term_of[i] < 0)
            continue;
        const etd_loss_term *t = &s->terms[term_of[i]];
        bool logits;
        target_kind kind = kind_of(&t->l, &logits);
        unsigned want = asked ? asked & kind_metrics(kind, true) : kind_metrics(kind, false);
        if (!want)
            continue;
        int at = r->noutputs++;
        r->outputs[at].name = etd_graph_output(s->graph, i);
        r->outputs[at].metrics = want;
        for (int k = 0; k < ETD_M_COUNT; k++)
            r->outputs[at].value[k] = NAN;
        if (measure_metrics(&t->l, ys[i], &y->parts[t->target], o->k, want, r->outputs[at].value,
                            e) != ETD_OK) {
            char msg[ETD_ERRCAP];
            snprintf(msg, sizeof msg, "%s", e->msg);
            return etd_fail(e, e->rc, "outputs.%s (target \"%s\"): %s", r->outputs[at].name,
                            s->target_names[t->target], msg);
        }
    }
    return ETD_OK;
}

etd_rc etd_model_evaluate(etd_model *m, const etd_array *x, const etd_array *y,
                          const etd_eval_opts *o, etd_eval_result *r, etd_err *e)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < ETD_M_COUNT; i++)
        r->value[i] = NAN;
    bool terms = m->spec.nterms > 0;
    r->metrics = o->metrics ? o->metrics : terms ? 1u << ETD_M_LOSS : etd_model_default_metrics(m);
    r->k = o->k > 0 ? o->k : 2;
    etd_eval_opts oo = *o;
    oo.k = r->k;
    if (x->ndim < 1)
        return etd_fail(e, ETD_EINVAL, "inputs: expected a batch (a list), got a scalar");
    if (y->ndim < 1 || y->shape[0] != x->shape[0])
        return etd_fail(e, ETD_EINVAL, "targets: expected %lld rows (as many as inputs), got %lld",
                        (long long)x->shape[0], (long long)(y->ndim ? y->shape[0] : 0));
    if (x->shape[0] == 0)
        return etd_fail(e, ETD_EINVAL, "inputs: empty batch");
    et_tensor *ys[ETD_MAX_IO];
    int ny = 0;
    /* eval mode, no grad, read lock; every output (a graph's one loss takes output 0) */
    if (etd_model_forward_all(m, x, ys, &ny, e) != ETD_OK)
        return e->rc;
    r->rows = x->shape[0];
    etd_rc rc = ETD_OK;
    et_pool_begin();
    ET_NO_GRAD {
        et_tensor *c[ETD_MAX_IO];
        for (int i = 0; i < ny && rc == ETD_OK; i++)
            if (!(c[i] = et_is_contiguous(ys[i]) ? ys[i] : et_contiguous(ys[i])))
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        if (rc == ETD_OK)
            rc = terms ? measure_terms(m, c, ny, y, &oo, r, e) : measure(m, c[0], y, &oo, r, e);
    }
    et_pool_end();
    for (int i = 0; i < ny; i++)
        et_tensor_free(ys[i]);
    etd_model_info in;
    etd_model_info_get(m, &in);
    r->step = in.sum.step;
    pthread_mutex_lock(&m->pub_mu);
    r->wgen = m->wgen;
    pthread_mutex_unlock(&m->pub_mu);
    return rc;
}

/* ---------------------------------------------------------------- the validation history */

void etd_model_validation_add(etd_model *m, const etd_val_entry *v)
{
    pthread_mutex_lock(&m->pub_mu);
    size_t max = m->reg->o.max_history;
    if (max && m->v_len >= max) { /* the oldest half goes, as for the loss history */
        size_t drop = m->v_len - max / 2;
        memmove(m->v, m->v + drop, (m->v_len - drop) * sizeof *m->v);
        m->v_len -= drop;
    }
    if (m->v_len == m->v_cap) {
        size_t cap = m->v_cap ? m->v_cap * 2 : 16;
        etd_val_entry *nv = realloc(m->v, cap * sizeof *nv);
        if (!nv) {
            pthread_mutex_unlock(&m->pub_mu);
            return;
        }
        m->v = nv;
        m->v_cap = cap;
    }
    m->v[m->v_len] = *v;
    if (v->wgen != m->wgen) /* the weights changed while it was measured */
        m->v[m->v_len].stale = true;
    m->v_len++;
    pthread_mutex_unlock(&m->pub_mu);
}

void etd_model_weights_changed(etd_model *m)
{
    pthread_mutex_lock(&m->pub_mu);
    m->wgen++;
    for (size_t i = 0; i < m->v_len; i++)
        if (m->v[i].step >= m->ts.step)
            m->v[i].stale = true;
    pthread_mutex_unlock(&m->pub_mu);
}

etd_rc etd_model_validation_history(etd_model *m, int64_t since, int64_t job,
                                    etd_val_history *h, etd_err *e)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_lock(&m->pub_mu);
    size_t n = 0;
    for (size_t i = 0; i < m->v_len; i++)
        n += m->v[i].step > since && (job <= 0 || m->v[i].job == job);
    h->v = malloc((n ? n : 1) * sizeof *h->v);
    if (h->v)
        for (size_t i = 0; i < m->v_len; i++)
            if (m->v[i].step > since && (job <= 0 || m->v[i].job == job))
                h->v[h->n++] = m->v[i];
    pthread_mutex_unlock(&m->pub_mu);
    if (!h->v)
        return etd_fail(e, ETD_ENOMEM, "out of memory");
    return ETD_OK;
}

void etd_val_history_free(etd_val_history *h)
{
    free(h->v);
    memset(h, 0, sizeof *h);
}
