/* spec.c - parse, validate and build model specifications: type lookup,
 * one layer (etd_spec_parse_layer), the top level and the build functions.
 * The field readers and the feature flow are in spec_fields.c, the type
 * tables in spec_layers*.c and spec_train.c. */
#include "server/models/models.h"
#include "server/models/spec.h"
#include "server/models/spec_graph.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"


/* ---------------------------------------------------------------- tables */

const void *etd_spec_find(const void *rows, int n, size_t size, const char *name)
{
    for (int i = 0; i < n; i++) {
        const void *row = (const char *)rows + (size_t)i * size;
        if (strcmp(*(const char *const *)row, name) == 0)
            return row;
    }
    return NULL;
}

/* "type" of the object at o: the row of the table with that name, or false
 * + "unknown <what> type \"X\" (known: ...); did you mean \"Y\"?". */
static const void *find_type(const etd_obj *o, const void *rows, int n, size_t size,
                             const char *what)
{
    if (!cJSON_IsObject(o->o))
        return etd_field_fail(o, NULL, "expected an object with a \"type\""), NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o->o, "type");
    if (!t)
        return etd_field_fail(o, "type", "required field is missing"), NULL;
    if (!cJSON_IsString(t))
        return etd_field_fail(o, "type", "expected a string"), NULL;
    const void *row = etd_spec_find(rows, n, size, t->valuestring);
    if (row)
        return row;
    const char *names[128];
    int k = 0;
    for (; k < n && k < 127; k++)
        names[k] = *(const char *const *)((const char *)rows + (size_t)k * size);
    names[k] = NULL;
    char list[1024];
    etd_join_names(names, list, sizeof list);
    etd_field_fail(o, "type", "unknown %s type \"%.60s\" (known: %s)", what, t->valuestring, list);
    etd_err_suggest(o->e, t->valuestring, names);
    return NULL;
}

/* The object's fields: "type" and fields[] only, each once. */
static bool check_fields(const etd_obj *o, const char *type, const char *const *fields)
{
    static const char *const none[] = {NULL};
    char for_what[96];
    snprintf(for_what, sizeof for_what, " for %s", type);
    return etd_check_keys(o->o, o->path, for_what, fields ? fields : none, "type", o->e);
}

/* ---------------------------------------------------------------- the whole spec */

bool etd_spec_parse_layer(const cJSON *j, const char *path, etd_layer *out, etd_flow *f,
                          etd_err *e)
{
    memset(out, 0, sizeof *out);
    etd_obj o = {j, path, e};
    const etd_layer_type *t =
        find_type(&o, etd_layer_types, etd_nlayer_types, sizeof *etd_layer_types, "layer");
    if (!t || !check_fields(&o, t->name, t->fields))
        return false;
    out->type = t;
    return !t->parse || t->parse(out, &o, f);
}

void etd_layer_free(etd_layer *l)
{
    for (int i = 0; i < l->nkids; i++)
        etd_layer_free(&l->kids[i]);
    free(l->kids);
    free(l->mask.f);
    free(l->mask.b);
    memset(l, 0, sizeof *l);
}

et_module *etd_spec_build_layer(const etd_layer *l, et_generator *g, const char *path,
                                etd_err *e)
{
    et_module *m = l->type->build(l, g);
    if (!m)
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s", path,
                 et_errmsg());
    return m;
}

et_tensor *etd_layer_forward(const etd_layer *l, et_module *m, et_tensor *const *in)
{
    return l->type->forward ? l->type->forward(l, m, in) : et_module_forward(m, in[0]);
}

static bool parse_layers(const cJSON *layers, etd_spec *s, etd_flow *flow, etd_err *e)
{
    if (!layers)
        return etd_fail(e, ETD_EINVAL, "layers: required field is missing"), false;
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
        return etd_fail(e, ETD_EINVAL, "layers: expected a non-empty list of layers"), false;
    int n = cJSON_GetArraySize(layers);
    if (n > 1000)
        return etd_fail(e, ETD_EINVAL, "layers: more than 1000 layers"), false;
    s->layers = calloc((size_t)n, sizeof *s->layers);
    if (!s->layers)
        return etd_fail(e, ETD_ENOMEM, "layers: out of memory"), false;
    s->nlayers = n;
    int i = 0;
    for (const cJSON *l = layers->child; l; l = l->next, i++) {
        char path[32];
        snprintf(path, sizeof path, "layers[%d]", i);
        if (!etd_spec_parse_layer(l, path, &s->layers[i], flow, e))
            return false;
    }
    return true;
}

static bool parse_loss(const cJSON *j, etd_spec *s, etd_err *e)
{
    if (cJSON_IsArray(j))
        return etd_spec_parse_loss_list(j, s, e);
    if (!etd_spec_parse_loss(j, "loss", &s->loss, e))
        return false;
    if (s->loss.type->ninputs > 1)
        return etd_fail(e, ETD_EINVAL, "loss: %s takes %d outputs of the model: give a graph "
                        "model and a loss list naming them ([{\"type\": \"%s\", \"output\": "
                        "[...], ...}])", s->loss.type->name, s->loss.type->ninputs,
                        s->loss.type->name), false;
    if (s->graph && etd_graph_num_outputs(s->graph) > 1)
        return etd_fail(e, ETD_EINVAL, "loss: the model has %d outputs: give a loss list naming "
                        "the output and target of each loss", etd_graph_num_outputs(s->graph)),
               false;
    return true;
}

/* The loss may be a bare string: {"type": <it>}. */
bool etd_spec_parse_loss(const cJSON *j, const char *path, etd_loss_spec *out, etd_err *e)
{
    static const char *const reductions[] = {"mean", "sum", NULL};
    /* batchmean (the sum over the batch size) is KLDivLoss's own */
    static const char *const kl_reductions[] = {"mean", "sum", "batchmean", NULL};
    if (!j)
        return etd_fail(e, ETD_EINVAL, "%s: required field is missing", path), false;
    cJSON *tmp = NULL;
    if (cJSON_IsString(j)) {
        tmp = cJSON_CreateObject();
        if (!tmp || !cJSON_AddStringToObject(tmp, "type", j->valuestring)) {
            cJSON_Delete(tmp);
            return etd_fail(e, ETD_ENOMEM, "%s: out of memory", path), false;
        }
        j = tmp;
    }
    etd_obj o = {j, path, e};
    const etd_loss_type *t =
        find_type(&o, etd_loss_types, etd_nloss_types, sizeof *etd_loss_types, "loss");
    int red = 0;
    bool ok = t && check_fields(&o, t->name, t->fields);
    if (ok) {
        out->type = t;
        out->ignore_index = -100;
        bool kl = strcmp(t->name, "KLDivLoss") == 0;
        ok = etd_field_choice(&o, "reduction", kl ? kl_reductions : reductions, 0, &red);
        out->reduction = red == 2 ? ET_REDUCTION_BATCHMEAN
                         : red ? ET_REDUCTION_SUM : ET_REDUCTION_MEAN;
    }
    if (ok && t->parse)
        ok = t->parse(out, &o);
    cJSON_Delete(tmp);
    return ok;
}

/* "param_groups": [{"params": ["0.", "2.weight"], "lr": 0.1, ...}, ...]: each
 * entry's other keys must be the optimizer's fields; the group's options
 * (the top-level ones overridden by the entry's) are checked by the type's
 * own parse on the merged object, so a group is as valid as an optimizer. */
#define MAX_PARAM_GROUPS 16
static bool parse_param_groups(const etd_obj *o, const etd_optim_type *t, etd_optim_spec *os)
{
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(o->o, "param_groups");
    if (!pg)
        return true;
    if (!cJSON_IsArray(pg) || cJSON_GetArraySize(pg) < 1 ||
        cJSON_GetArraySize(pg) > MAX_PARAM_GROUPS)
        return etd_field_fail(o, "param_groups", "expected a list of 1 to %d groups "
                              "({\"params\": [name prefixes], hyper-parameters...})",
                              MAX_PARAM_GROUPS);
    int n = cJSON_GetArraySize(pg);
    os->groups = calloc((size_t)n, sizeof *os->groups);
    if (!os->groups)
        return etd_fail(o->e, ETD_ENOMEM, "optimizer: out of memory"), false;
    os->ngroups = n;
    /* the keys a group may set: the optimizer's fields (not param_groups) */
    const char *const *keys = t->fields;
    int gi = 0;
    for (const cJSON *g = pg->child; g; g = g->next, gi++) {
        char path[64];
        snprintf(path, sizeof path, "%s.param_groups[%d]", o->path, gi);
        etd_obj go = {g, path, o->e};
        if (!cJSON_IsObject(g))
            return etd_field_fail(&go, NULL, "expected an object {\"params\": [...], ...}");
        if (!etd_check_keys(g, path, " for a parameter group", keys, "params", o->e))
            return false;
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(g, "params");
        if (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) < 1 || cJSON_GetArraySize(ps) > 1000)
            return etd_field_fail(&go, "params", "expected a non-empty list of parameter names "
                                  "or name prefixes (\"0.\", \"2.weight\")");
        etd_param_group *grp = &os->groups[gi];
        grp->prefixes = calloc((size_t)cJSON_GetArraySize(ps), sizeof *grp->prefixes);
        if (!grp->prefixes)
            return etd_fail(o->e, ETD_ENOMEM, "optimizer: out of memory"), false;
        int pi = 0;
        for (const cJSON *x = ps->child; x; x = x->next, pi++) {
            if (!cJSON_IsString(x) || !x->valuestring[0] || strlen(x->valuestring) > 200) {
                char k[32];
                snprintf(k, sizeof k, "params[%d]", pi);
                return etd_field_fail(&go, k, "expected a parameter name or prefix");
            }
            if (!(grp->prefixes[pi] = strdup(x->valuestring)))
                return etd_fail(o->e, ETD_ENOMEM, "optimizer: out of memory"), false;
            grp->nprefixes = pi + 1;
        }
        /* merged = the optimizer object with the group's keys over it */
        cJSON *merged = cJSON_Duplicate(o->o, true);
        bool ok = merged != NULL;
        for (const cJSON *kv = g->child; ok && kv; kv = kv->next) {
            if (strcmp(kv->string, "params") == 0)
                continue;
            cJSON_DeleteItemFromObjectCaseSensitive(merged, kv->string);
            ok = cJSON_AddItemToObject(merged, kv->string, cJSON_Duplicate(kv, true));
            if (!ok)
                break;
            if (strcmp(kv->string, "betas") == 0) {
                grp->key[grp->nset] = "beta1";
                grp->value[grp->nset++] = cJSON_GetArrayItem(kv, 0)
                                              ? cJSON_GetArrayItem(kv, 0)->valuedouble : NAN;
                grp->key[grp->nset] = "beta2";
                grp->value[grp->nset++] = cJSON_GetArrayItem(kv, 1)
                                              ? cJSON_GetArrayItem(kv, 1)->valuedouble : NAN;
            } else if (grp->nset < 16) {
                for (int k = 0; keys[k]; k++)
                    if (strcmp(keys[k], kv->string) == 0)
                        grp->key[grp->nset] = keys[k];
                grp->value[grp->nset++] = cJSON_IsBool(kv) ? (double)cJSON_IsTrue(kv)
                                                           : kv->valuedouble;
            }
        }
        if (!ok) {
            cJSON_Delete(merged);
            return etd_fail(o->e, ETD_ENOMEM, "optimizer: out of memory"), false;
        }
        etd_optim_spec tmp = {.type = t};
        etd_obj mo = {merged, path, o->e};
        ok = t->parse(&tmp, &mo);
        cJSON_Delete(merged);
        if (!ok)
            return false;
    }
    return true;
}

static bool parse_optim(const cJSON *j, etd_spec *s, etd_err *e)
{
    if (!j)
        return etd_fail(e, ETD_EINVAL, "optimizer: required field is missing"), false;
    etd_obj o = {j, "optimizer", e};
    const etd_optim_type *t =
        find_type(&o, etd_optim_types, etd_noptim_types, sizeof *etd_optim_types, "optimizer");
    if (!t)
        return false;
    /* its constructor's fields and "param_groups" */
    const char *keys[33];
    int nk = 0;
    for (int k = 0; t->fields[k] && nk < 31; k++)
        keys[nk++] = t->fields[k];
    keys[nk++] = "param_groups";
    keys[nk] = NULL;
    if (!check_fields(&o, t->name, keys))
        return false;
    s->optim.type = t;
    return t->parse(&s->optim, &o) && parse_param_groups(&o, t, &s->optim);
}

bool etd_sched_parse(const cJSON *j, const char *path, int nested, etd_sched_spec *out,
                     etd_err *e)
{
    memset(out, 0, sizeof *out);
    etd_obj o = {j, path, e};
    const etd_sched_type *t =
        find_type(&o, etd_sched_types, etd_nsched_types, sizeof *etd_sched_types, "scheduler");
    if (!t || !check_fields(&o, t->name, t->fields))
        return false;
    if (nested > 2)
        return etd_field_fail(&o, NULL, "schedulers nest at most 3 deep"), false;
    out->type = t;
    out->u.seq.n = nested;   /* the parse of SequentialLR / ChainedScheduler reads it */
    if (!t->parse(out, &o)) {
        etd_sched_free(out);
        return false;
    }
    return true;
}

void etd_sched_free(etd_sched_spec *s)
{
    if (s && s->type && s->type->free)
        s->type->free(s);
    if (s)
        memset(s, 0, sizeof *s);
}

static bool parse_sched(const cJSON *j, etd_spec *s, etd_err *e)
{
    s->sched.type = NULL;
    if (!j || cJSON_IsNull(j))
        return true;
    return etd_sched_parse(j, "scheduler", 0, &s->sched, e);
}

/* The layers whose forward computes each row of the batch from that row
 * alone, with the same bits whatever the batch size (given batch-invariant
 * GEMM kernels): a model of only these can be batched dynamically. */
static bool row_wise(const etd_layer *l, const char **why)
{
    static const char *const plain[] = {"Linear", "ReLU", "Tanh", "Sigmoid", "GELU",
                                        "LeakyReLU", "Dropout", "Identity", NULL};
    const char *n = l->type->name;
    for (int i = 0; plain[i]; i++)
        if (strcmp(n, plain[i]) == 0)
            return true;
    if (strcmp(n, "Softmax") == 0 || strcmp(n, "LogSoftmax") == 0) {
        *why = "its dim must not be 0 (the batch dimension)";
        return l->u.softmax.dim != 0;
    }
    if (strcmp(n, "Flatten") == 0) {
        *why = "its start_dim must not be 0 (the batch dimension)";
        return l->u.flatten.start_dim != 0;
    }
    *why = "its forward is not known to be batch-invariant (rows computed together may differ "
           "in their last bits from rows computed alone)";
    return false;
}

/* "batching": {"max_batch_size": 64, "max_delay_us": 500} (Triton's dynamic
 * batcher; TorchServe's batch_size / max_batch_delay) */
static bool parse_batching(const cJSON *j, etd_spec *s, etd_err *e)
{
    static const char *const fields[] = {"max_batch_size", "max_delay_us", NULL};
    if (!j || cJSON_IsNull(j))
        return true;
    if (!cJSON_IsObject(j))
        return etd_fail(e, ETD_EINVAL, "batching: expected an object such as "
                        "{\"max_batch_size\": 64, \"max_delay_us\": 500}"), false;
    etd_obj o = {j, "batching", e};
    if (!etd_check_keys(j, "batching", NULL, fields, NULL, e) ||
        !etd_field_int(&o, "max_batch_size", true, 0, 1, 65536, &s->max_batch_size) ||
        !etd_field_int(&o, "max_delay_us", false, 500, 0, 1000000, &s->max_delay_us))
        return false;
    if (s->graph)   /* checked on the built graph (spec_graph_batch.c, from model.c) */
        return true;
    for (int i = 0; i < s->nlayers; i++) {
        const char *why = "";
        if (!row_wise(&s->layers[i], &why))
            return etd_fail(e, ETD_EINVAL, "batching: layers[%d] (%s) cannot be batched: %s", i,
                            s->layers[i].type->name, why), false;
    }
    return true;
}

/* "layers" (a Sequential) or a graph ("inputs", "modules", "nodes",
 * "outputs"; spec_graph.c): the network and what is known of its input and
 * output. */
static bool parse_net(const cJSON *root, etd_spec *s, etd_flow *flow, etd_err *e)
{
    static const char *const graph_keys[] = {"inputs", "modules", "nodes", "outputs"};
    const char *graph_key = NULL;
    for (int i = 0; i < 4 && !graph_key; i++)
        if (cJSON_GetObjectItemCaseSensitive(root, graph_keys[i]))
            graph_key = graph_keys[i];
    if (graph_key && cJSON_GetObjectItemCaseSensitive(root, "layers"))
        return etd_fail(e, ETD_EINVAL, "%s: a model has \"layers\" (a Sequential) or a graph "
                        "(\"inputs\", \"nodes\", \"outputs\"), not both", graph_key), false;
    if (!graph_key) {
        if (!parse_layers(cJSON_GetObjectItemCaseSensitive(root, "layers"), s, flow, e))
            return false;
        for (int i = 0; i < s->nlayers; i++)   /* a key padding mask reads the token input */
            if (s->layers[i].kpm && (i == 0 || !s->layers[0].type->index_input))
                return etd_fail(e, ETD_EINVAL, "layers[%d] (%s): a key padding mask "
                                "{\"input_equals\": ...} needs token inputs: layers[0] an "
                                "Embedding", i, s->layers[i].type->name), false;
        s->in_features = flow->in_features;
        memcpy(s->in_field, flow->in_field, sizeof s->in_field);
        s->input_dtype = s->layers[0].type->index_input ? ET_INT64 : ET_FLOAT32;
        s->out_features = flow->features;
        return true;
    }
    if (!etd_graph_parse(root, s, flow, e))
        return false;
    /* the single-tensor view of the model (one input, one output) */
    s->in_features = etd_graph_input_features(s->graph, 0);
    snprintf(s->in_field, sizeof s->in_field, "inputs[0] (%.30s)", etd_graph_input(s->graph, 0));
    s->input_dtype = etd_graph_input_dtype(s->graph, 0);
    s->out_features = etd_graph_output_features(s->graph, 0);
    return true;
}

bool etd_spec_parse(const cJSON *root, int64_t max_params, etd_spec *s, etd_err *e)
{
    static const char *const top[] = {"name", "layers", "loss", "optimizer", "scheduler", "seed",
                                      "batching", "nonfinite", "sync_batchnorm", "inputs",
                                      "modules", "nodes", "outputs", NULL};
    /* by etd_nf_policy (models.h; spec.h stays below it) */
    static const char *const nonfinite[] = {"skip", "rollback", "allow", NULL};
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(root))
        return etd_fail(e, ETD_EINVAL, "body: expected a JSON object"), false;
    if (!etd_check_keys(root, "", NULL, top, NULL, e))
        return false;
    etd_flow flow = {.features = -1, .features_by = "", .in_features = -1,
                     .max_params = max_params};
    if (!parse_net(root, s, &flow, e))
        goto bad;
    s->param_count = flow.params;
    if (s->param_count == 0) { /* torch.optim: "optimizer got an empty parameter list" */
        etd_fail(e, ETD_EINVAL, "%s: the model has no parameters to optimize (add a Linear)",
                 s->graph ? "nodes" : "layers");
        goto bad;
    }
    if (!parse_loss(cJSON_GetObjectItemCaseSensitive(root, "loss"), s, e) ||
        !parse_optim(cJSON_GetObjectItemCaseSensitive(root, "optimizer"), s, e) ||
        !parse_sched(cJSON_GetObjectItemCaseSensitive(root, "scheduler"), s, e))
        goto bad;
    s->target_dtype = s->loss.type->class_targets ? ET_INT64 : ET_FLOAT32;
    if (s->nterms && s->ntargets)
        s->target_dtype = s->target_dtypes[0];
    s->target_float_ok = s->loss.type->prob_targets;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        double v = seed->valuedouble;
        if (!cJSON_IsNumber(seed) || v < 0 || v != floor(v) || v > ETD_SPEC_MAX_EXACT) {
            etd_fail(e, ETD_EINVAL, "seed: expected a non-negative integer (at most 2^53)");
            goto bad;
        }
        s->has_seed = true;
        s->seed = (uint64_t)v;
    }
    if (!parse_batching(cJSON_GetObjectItemCaseSensitive(root, "batching"), s, e))
        goto bad;

    etd_obj top_obj = {root, "", e};
    if (!etd_field_choice(&top_obj, "nonfinite", nonfinite, 0, &s->nonfinite) ||
        !etd_field_bool(&top_obj, "sync_batchnorm", false, &s->sync_batchnorm))
        goto bad;
    return true;
bad:
    etd_spec_free(s);
    return false;
}

void etd_spec_free(etd_spec *s)
{
    etd_sched_free(&s->sched);
    for (int g = 0; g < s->optim.ngroups; g++) {
        for (int k = 0; k < s->optim.groups[g].nprefixes; k++)
            free(s->optim.groups[g].prefixes[k]);
        free(s->optim.groups[g].prefixes);
    }
    free(s->optim.groups);
    free(s->loss.weight);
    free(s->loss.pos_weight);
    for (int i = 0; i < s->nterms; i++) {
        free(s->terms[i].l.weight);
        free(s->terms[i].l.pos_weight);
    }
    free(s->terms);
    for (int i = 0; i < s->nlayers; i++)
        etd_layer_free(&s->layers[i]);
    free(s->layers);
    etd_graph_free(s->graph);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- building */

et_module *etd_spec_build_net(const etd_spec *s, et_generator *g, etd_err *e)
{
    if (s->graph)
        return etd_graph_build(s->graph, g, e);
    et_module *seq = et_sequential_new();
    if (!seq) {
        etd_fail(e, ETD_ENOMEM, "model: %s", et_errmsg());
        return NULL;
    }
    for (int i = 0; i < s->nlayers; i++) {
        char path[32];
        snprintf(path, sizeof path, "layers[%d]", i);
        et_module *m = etd_spec_build_layer(&s->layers[i], g, path, e);
        if (!m || et_sequential_append(seq, m) != ET_OK) {
            if (m)
                etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s",
                         path, et_errmsg());
            et_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Which param_groups entry params[i] belongs to (-1: none), checking that it
 * is in at most one and that every prefix selects something. */
static bool assign_groups(const etd_optim_spec *os, const char *const *names, int n, int *of,
                          etd_err *e)
{
    for (int i = 0; i < n; i++) {
        of[i] = -1;
        for (int g = 0; g < os->ngroups; g++)
            for (int k = 0; k < os->groups[g].nprefixes; k++)
                if (starts_with(names[i], os->groups[g].prefixes[k])) {
                    if (of[i] >= 0 && of[i] != g)
                        return etd_fail(e, ETD_EINVAL, "optimizer.param_groups[%d]: parameter "
                                        "%s is also in param_groups[%d] (torch: some "
                                        "parameters appear in more than one parameter group)",
                                        g, names[i], of[i]), false;
                    of[i] = g;
                }
    }
    for (int g = 0; g < os->ngroups; g++)
        for (int k = 0; k < os->groups[g].nprefixes; k++) {
            bool any = false;
            for (int i = 0; i < n && !any; i++)
                any = starts_with(names[i], os->groups[g].prefixes[k]);
            if (!any) {
                char list[512] = "";
                for (int i = 0, m = 0; i < n && m < (int)sizeof list - 2; i++)
                    m += snprintf(list + m, sizeof list - (size_t)m, "%s%s", i ? ", " : "",
                                  names[i]);
                return etd_fail(e, ETD_EINVAL, "optimizer.param_groups[%d].params[%d]: \"%s\" "
                                "is no parameter's name or prefix (the model has %s)", g, k,
                                os->groups[g].prefixes[k], list), false;
            }
        }
    return true;
}

et_optim *etd_spec_build_optim(const etd_spec *s, et_tensor *const *params,
                               const char *const *names, int n, etd_err *e)
{
    const etd_optim_spec *os = &s->optim;
    int *of = calloc((size_t)(n > 0 ? n : 1), sizeof *of);
    et_tensor **ps = calloc((size_t)(n > 0 ? n : 1), sizeof *ps);
    et_optim *o = NULL;
    if (!of || !ps) {
        etd_fail(e, ETD_ENOMEM, "optimizer: out of memory");
        goto out;
    }
    if (!assign_groups(os, names, n, of, e))
        goto out;
    /* group 0: the parameters no entry selects (with the top-level options),
     * then the entries in order -- torch's [{"params": base}, {"params": head, ...}] */
    bool rest = false;
    for (int i = 0; i < n; i++)
        rest |= of[i] < 0;
    for (int g = rest ? -1 : 0; g < os->ngroups; g++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (of[i] == g)
                ps[k++] = params[i];
        if (!o) {
            o = os->type->build(os, ps, k);
            if (!o)
                break;
        } else if (et_optim_add_param_group(o, ps, k) < 0) {
            break;
        }
        int gi = et_optim_num_groups(o) - 1;
        for (int j = 0; g >= 0 && j < os->groups[g].nset; j++)
            if (et_optim_group_set(o, gi, os->groups[g].key[j], os->groups[g].value[j]) != ET_OK) {
                et_optim_free(o);
                o = NULL;
                break;
            }
        if (!o)
            break;
    }
    if (!o || et_optim_num_groups(o) != os->ngroups + rest) {
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "optimizer: %s",
                 et_errmsg());
        et_optim_free(o);
        o = NULL;
    }
out:
    free(of);
    free(ps);
    return o;
}

et_scheduler *etd_spec_build_sched(const etd_spec *s, et_optim *o, etd_err *e)
{
    if (!s->sched.type)
        return NULL;
    et_scheduler *r = s->sched.type->build(&s->sched, o);
    if (!r)
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "scheduler: %s",
                 et_errmsg());
    return r;
}

et_tensor *etd_spec_loss(const etd_spec *s, et_tensor *out, et_tensor *target, etd_err *e)
{
    const etd_loss_type *t = s->loss.type;
    if (t->check && !t->check(&s->loss, out, target, e))
        return NULL;
    et_tensor *l = t->fn(&s->loss, out, target);
    if (!l)
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "targets: %s",
                 et_errmsg());
    return l;
}

/* ---------------------------------------------------------------- the vocabulary */

int etd_spec_type_count(etd_type_family f)
{
    switch (f) {
    case ETD_TYPES_LAYER: return etd_nlayer_types;
    case ETD_TYPES_LOSS: return etd_nloss_types;
    case ETD_TYPES_OPTIMIZER: return etd_noptim_types;
    case ETD_TYPES_SCHEDULER: return etd_nsched_types;
    default: return 0;
    }
}

const char *etd_spec_type(etd_type_family f, int i, const char *const **fields)
{
    *fields = NULL;
    if (i < 0 || i >= etd_spec_type_count(f))
        return NULL;
    switch (f) {
    case ETD_TYPES_LAYER: *fields = etd_layer_types[i].fields; return etd_layer_types[i].name;
    case ETD_TYPES_LOSS: *fields = etd_loss_types[i].fields; return etd_loss_types[i].name;
    case ETD_TYPES_OPTIMIZER: *fields = etd_optim_types[i].fields; return etd_optim_types[i].name;
    case ETD_TYPES_SCHEDULER: *fields = etd_sched_types[i].fields; return etd_sched_types[i].name;
    default: return NULL;
    }
}
