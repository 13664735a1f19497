/* spec_losses.c - a graph model's loss list ("loss": [{"type", "output",
 * "target", "weight"}, ...]: parsed against the graph's outputs, the
 * targets named in first-use order; the weighted sum) and the loss types
 * that take several of its outputs (torch.nn.MarginRankingLoss,
 * CosineEmbeddingLoss, TripletMarginLoss: torch's constructor arguments
 * and defaults). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/spec_graph.h"
#include "server/models/spec_losses.h"

/* A graph's loss list: [{"type": ..., "output": "logits" (or a list for
 * losses of several outputs), "target": "label", "weight": 0.5, the loss's
 * own fields}, ...].  A numeric "weight" multiplies the term; a list is the
 * loss's own weight field (CrossEntropyLoss's class weights). */
bool etd_spec_parse_loss_list(const cJSON *j, etd_spec *s, etd_err *e)
{
    int n = cJSON_GetArraySize(j);
    if (!s->graph)
        return etd_fail(e, ETD_EINVAL, "loss: a list of losses is for graph models (\"nodes\"), "
                        "whose outputs it names"), false;
    if (n < 1 || n > ETD_MAX_LOSSES)
        return etd_fail(e, ETD_EINVAL, "loss: expected 1 to %d losses", ETD_MAX_LOSSES), false;
    s->terms = calloc((size_t)n, sizeof *s->terms);
    if (!s->terms)
        return etd_fail(e, ETD_ENOMEM, "loss: out of memory"), false;
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        char path[32];
        snprintf(path, sizeof path, "loss[%d]", i);
        etd_loss_term *t = &s->terms[i];
        s->nterms = i + 1;
        t->weight = 1.0;
        t->target = -1;
        if (!cJSON_IsObject(it))
            return etd_fail(e, ETD_EINVAL, "%s: expected an object {\"type\", \"output\", "
                            "\"target\"}", path), false;
        cJSON *copy = cJSON_Duplicate(it, true);
        if (!copy)
            return etd_fail(e, ETD_ENOMEM, "%s: out of memory", path), false;
        cJSON *outj = cJSON_DetachItemFromObjectCaseSensitive(copy, "output");
        cJSON *tj = cJSON_DetachItemFromObjectCaseSensitive(copy, "target");
        cJSON *wj = cJSON_GetObjectItemCaseSensitive(copy, "weight");
        bool ok = true;
        if (cJSON_IsNumber(wj)) {
            t->weight = wj->valuedouble;
            if (!isfinite(t->weight) || t->weight < 0)
                ok = !etd_fail(e, ETD_EINVAL, "%s.weight: expected a non-negative number",
                              path);
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "weight");
        }
        ok = ok && etd_spec_parse_loss(copy, path, &t->l, e);
        int want = ok ? (t->l.type->ninputs > 1 ? t->l.type->ninputs : 1) : 0;
        if (ok) {   /* the outputs: a name, or a list of want names */
            int no = cJSON_IsString(outj) ? 1 : cJSON_IsArray(outj) ? cJSON_GetArraySize(outj) : 0;
            if (no != want || (want > 1 && !cJSON_IsArray(outj)))
                ok = !etd_fail(e, ETD_EINVAL, "%s.output: %s takes %s (outputs: ...)", path,
                              t->l.type->name, want == 1 ? "the name of one output"
                              : want == 2 ? "a list of 2 output names" : "a list of 3 output names");
            for (int k = 0; ok && k < no; k++) {
                const cJSON *on = cJSON_IsString(outj) ? outj : cJSON_GetArrayItem(outj, k);
                int idx = -1;
                for (int q = 0; cJSON_IsString(on) && q < etd_graph_num_outputs(s->graph); q++)
                    if (!strcmp(etd_graph_output(s->graph, q), on->valuestring))
                        idx = q;
                if (idx < 0)
                    ok = !etd_fail(e, ETD_EINVAL, "%s.output: \"%.60s\" is not one of the model's "
                                  "outputs", path, cJSON_IsString(on) ? on->valuestring : "?");
                t->out[k] = idx;
            }
            t->nout = no;
        }
        if (ok && t->l.type->no_target && tj)
            ok = !etd_fail(e, ETD_EINVAL, "%s.target: %s takes no target", path,
                          t->l.type->name);
        if (ok && !t->l.type->no_target) {
            if (!cJSON_IsString(tj) || !*tj->valuestring || strlen(tj->valuestring) >= 64)
                ok = !etd_fail(e, ETD_EINVAL, "%s.target: expected the name of a target (the key "
                              "under \"targets\" in train and batches)", path);
            for (int q = 0; ok && q < s->ntargets && t->target < 0; q++)
                if (!strcmp(s->target_names[q], tj->valuestring))
                    t->target = q;
            et_dtype dt = t->l.type->class_targets ? ET_INT64 : ET_FLOAT32;
            if (ok && t->target >= 0 && s->target_dtypes[t->target] != dt)
                ok = !etd_fail(e, ETD_EINVAL, "%s.target: \"%s\" is also the target of a loss "
                              "taking %s", path, tj->valuestring,
                              dt == ET_INT64 ? "floats" : "class indices");
            if (ok && t->target < 0) {
                t->target = s->ntargets++;
                snprintf(s->target_names[t->target], 64, "%s", tj->valuestring);
                s->target_dtypes[t->target] = dt;
                s->target_float_oks[t->target] = t->l.type->prob_targets;
            }
        }
        cJSON_Delete(outj);
        cJSON_Delete(tj);
        cJSON_Delete(copy);
        if (!ok)
            return false;
    }
    /* the scalar view (evaluate's metrics, the vocabulary): the first term's */
    s->loss = s->terms[0].l;
    s->loss.weight = NULL;      /* owned by the term */
    s->loss.pos_weight = NULL;
    return true;
}

et_tensor *etd_spec_losses(const etd_spec *s, et_tensor *const *outs, et_tensor *const *targets,
                           etd_err *e)
{
    return etd_spec_losses_scaled(s, outs, targets, NULL, e);
}

double etd_spec_term_norm(const etd_spec *s, int i, et_tensor *const *outs,
                          et_tensor *const *targets)
{
    const etd_loss_term *t = &s->terms[i];
    const etd_loss_type *ty = t->l.type;
    et_tensor *y = t->target >= 0 ? targets[t->target] : NULL;
    if (ty->ninputs <= 1)
        return etd_spec_loss_norm(&t->l, y);
    if (t->l.reduction == ET_REDUCTION_SUM)
        return 0;
    et_tensor *x0 = outs[t->out[0]];
    if (ty->fn_n == etd_margin_ranking_fn) { /* elementwise over the broadcast shapes */
        int64_t n = et_numel(x0);
        if (et_numel(outs[t->out[1]]) > n)
            n = et_numel(outs[t->out[1]]);
        if (y && et_numel(y) > n)
            n = et_numel(y);
        return (double)n;
    }
    return et_ndim(x0) >= 2 ? (double)et_shape(x0)[0] : 1; /* one distance per row */
}

/* The loss list's total, term i scaled by scale[i] (NULL: 1), each term's own
 * value (unweighted) into each[i] when each is given. */
static et_tensor *losses(const etd_spec *s, et_tensor *const *outs, et_tensor *const *targets,
                         const double *scale, float *each, etd_err *e)
{
    et_tensor *total = NULL;
    for (int i = 0; i < s->nterms; i++) {
        const etd_loss_term *t = &s->terms[i];
        double w = t->weight * (scale ? scale[i] : 1.0);
        if (scale && scale[i] == 0)
            continue;
        const etd_loss_type *ty = t->l.type;
        et_tensor *x[3] = {NULL, NULL, NULL};
        for (int k = 0; k < t->nout; k++)
            x[k] = outs[t->out[k]];
        et_tensor *y = t->target >= 0 ? targets[t->target] : NULL;
        et_tensor *l = NULL;
        if (ty->ninputs > 1) {
            l = ty->fn_n(&t->l, x, y);
        } else {
            char why[ETD_ERRCAP];
            etd_err sub = {0};
            if (ty->check && !ty->check(&t->l, x[0], y, &sub)) {
                snprintf(why, sizeof why, "%s", sub.msg);
                etd_fail(e, ETD_EINVAL, "loss[%d] (%s, target \"%s\"): %s", i, ty->name,
                         s->target_names[t->target], why);
                return NULL;
            }
            l = ty->fn(&t->l, x[0], y);
        }
        if (l && et_numel(l) != 1)
            return etd_fail(e, ETD_EINVAL, "loss[%d] (%s): expected a scalar", i, ty->name), NULL;
        if (l && each)
            each[i] = et_item(l);
        if (l && w != 1.0)
            l = et_mul_scalar(l, (float)w);
        if (l)
            total = total ? et_add(total, l) : l;
        if (!l || !total) {
            etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "loss[%d] (%s): %s",
                     i, ty->name, et_errmsg());
            return NULL;
        }
    }
    return total;
}

et_tensor *etd_spec_losses_scaled(const etd_spec *s, et_tensor *const *outs,
                                  et_tensor *const *targets, const double *scale, etd_err *e)
{
    return losses(s, outs, targets, scale, NULL, e);
}

et_tensor *etd_spec_losses_each(const etd_spec *s, et_tensor *const *outs,
                                et_tensor *const *targets, float *each, etd_err *e)
{
    return losses(s, outs, targets, NULL, each, e);
}

const char *const etd_margin_fields[] = {"margin", "reduction", NULL};
const char *const etd_triplet_fields[] = {"margin", "p", "eps", "swap", "reduction", NULL};

bool etd_margin_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_num(o, "margin", false, 0.0, -INFINITY, INFINITY, &l->arg);
}

bool etd_triplet_parse(etd_loss_spec *l, const etd_obj *o)
{
    return etd_field_num(o, "margin", false, 1.0, -INFINITY, INFINITY, &l->arg) &&
           etd_field_num(o, "p", false, 2.0, 0.0, INFINITY, &l->p) &&
           etd_field_num(o, "eps", false, 1e-6, 0.0, INFINITY, &l->eps) &&
           etd_field_bool(o, "swap", false, &l->flag);
}

/* targets of these are 1 / -1 labels: float32 (an int64 list is converted) */
static et_tensor *as_float(et_tensor *y)
{
    return y && et_tensor_dtype(y) == ET_INT64 ? et_to_dtype(y, ET_FLOAT32) : y;
}

et_tensor *etd_margin_ranking_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y)
{
    return et_margin_ranking_loss(x[0], x[1], as_float(y), (float)l->arg, l->reduction);
}

et_tensor *etd_cosine_embedding_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y)
{
    return et_cosine_embedding_loss(x[0], x[1], as_float(y), (float)l->arg, l->reduction);
}

et_tensor *etd_triplet_fn(const etd_loss_spec *l, et_tensor *const *x, et_tensor *y)
{
    (void)y;
    et_triplet_opts o = {.margin = (float)l->arg, .p = (float)l->p, .eps = (float)l->eps,
                         .swap = l->flag};
    return et_triplet_margin_loss(x[0], x[1], x[2], o, l->reduction);
}
