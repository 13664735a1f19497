/* onnx_import_graph.c - an ONNX graph with branches (several inputs or
 * outputs, residual adds, concatenations, shared inputs) as a graph model
 * (spec_graph.h): the graph's inputs and outputs keep their names (made
 * into spec names: letters, digits, _), every ONNX node becomes a spec node
 * in the file's (topological) order:
 *   - Add, Sub, Mul, Div, MatMul of two values: the op; Concat of values: cat;
 *   - Identity, Dropout: no node (the value is its input's);
 *   - anything with constant weights (Gemm, MatMul + Add, Conv, the norms,
 *     pools, activations, Flatten, Reshape keeping the batch, Gather as an
 *     Embedding): the layer(s) the chain import makes of it (onnx_import.c),
 *     as the node's own module, its state "<node>.weight" (a Sequential's
 *     "<node>.0.weight" when one ONNX node makes several layers).
 * A node is named after its weights' prefix when the file has state_dict
 * names ("fc1.weight" -> "fc1", "blocks.0.weight" -> "blocks_0"), else
 * "n<index>"; the node giving a graph output is named as that output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_import_internal.h"

#define NAMELEN OI_NAMELEN

typedef oi_val val;
typedef oi_graph gi;

static void spec_name(char *dst, const char *s)
{
    size_t k = 0;
    if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && *s != '_')
        dst[k++] = 'v';
    for (; *s && k + 1 < NAMELEN; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '_';
        dst[k++] = ok ? *s : '_';
    }
    dst[k] = 0;
}

static bool taken(const gi *G, const char *n)
{
    for (size_t i = 0; i < G->nt; i++)
        if (!strcmp(G->taken[i], n))
            return true;
    return false;
}

/* want as a spec name not yet in use (want_2, want_3, ...). */
bool oi_take(gi *G, const char *want, char *out)
{
    char base[NAMELEN];
    spec_name(base, want);
    snprintf(out, NAMELEN, "%s", base);
    for (int k = 2; taken(G, out); k++)
        snprintf(out, NAMELEN, "%.50s_%d", base, k);
    if (G->nt == G->ct) {
        size_t c = G->ct ? 2 * G->ct : 32;
        void *p = realloc(G->taken, c * sizeof *G->taken);
        if (!p)
            return false;
        G->taken = p;
        G->ct = c;
    }
    snprintf(G->taken[G->nt++], NAMELEN, "%s", out);
    return true;
}

val *oi_find(gi *G, const char *onnx)
{
    for (size_t i = G->nv; i-- > 0;)
        if (!strcmp(G->v[i].onnx, onnx))
            return &G->v[i];
    return NULL;
}

/* spec and s may point into G->v itself (an Identity's value is its
 * argument's): they are copied before the array can move. */
val *oi_add_val(gi *G, const char *onnx, const char *spec, const oi_shape *s)
{
    char name[NAMELEN];
    oi_shape shape = *s;
    snprintf(name, sizeof name, "%s", spec);
    if (G->nv == G->cv) {
        size_t c = G->cv ? 2 * G->cv : 32;
        void *p = realloc(G->v, c * sizeof *G->v);
        if (!p)
            return NULL;
        G->v = p;
        G->cv = c;
    }
    val *v = &G->v[G->nv++];
    v->onnx = onnx;
    memcpy(v->spec, name, NAMELEN);
    v->s = shape;
    v->rank = shape.nd > 0 ? shape.nd : 0;
    v->boolish = false;
    return v;
}

/* The graph output this value is (through Identity / Dropout), or NULL. */
static const char *output_of(const Onnx__GraphProto *g, const char *value, size_t from)
{
    for (size_t o = 0; o < g->n_output; o++)
        if (!strcmp(oi_s(g->output[o]->name), value))
            return oi_s(g->output[o]->name);
    for (size_t i = from; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const char *op = oi_s(n->op_type);
        if ((!strcmp(op, "Identity") || !strcmp(op, "Dropout")) && n->n_input >= 1 &&
            n->n_output >= 1 && !strcmp(oi_s(n->input[0]), value))
            return output_of(g, oi_s(n->output[0]), i + 1);
    }
    return NULL;
}

/* The node's name: the output it gives, its weights' state_dict prefix, or n<i>. */
static bool node_name(gi *G, const Onnx__NodeProto *n, const char *out_value, size_t i,
                      bool weights_first, char *name)
{
    const char *o = weights_first ? NULL : output_of(G->x->g, out_value, i + 1);
    char want[NAMELEN];
    if (o) {
        spec_name(want, o);
        if (!taken(G, want))
            return oi_take(G, o, name);
    }
    /* a MatMul + Add's weight may be a folded transpose ("onnx::MatMul_12"):
     * the Add's bias names it then */
    const Onnx__NodeProto *add = weights_first && i + 1 < G->x->g->n_node &&
                                 !strcmp(oi_s(n->op_type), "MatMul") ? G->x->g->node[i + 1] : NULL;
    size_t nin = n->n_input + (add ? add->n_input : 0);
    for (size_t j = 0; j < nin; j++) {
        const char *in = oi_s(j < n->n_input ? n->input[j] : add->input[j - n->n_input]),
                   *dot = strrchr(in, '.');
        if (oi_initializer(G->x, in) && dot && dot > in && !strchr(in, '/') && !strchr(in, ':')) {
            char pre[NAMELEN];
            snprintf(pre, sizeof pre, "%.*s", (int)(dot - in < NAMELEN - 1 ? dot - in : NAMELEN - 1), in);
            return oi_take(G, pre, name);
        }
    }
    char d[32];
    snprintf(d, sizeof d, "n%zu", i);
    return oi_take(G, d, name);
}

bool oi_node_name(gi *G, const Onnx__NodeProto *n, const char *out_value, size_t i, char *name)
{
    return node_name(G, n, out_value, i, false, name);
}

/* The node's module (x's tmp layers) under name: the state renamed. */
static etd_rc add_module_node(gi *G, cJSON *node, imp *t, const char *name)
{
    imp *x = G->x;
    int nl = cJSON_GetArraySize(t->layers);
    cJSON *mod;
    if (nl == 1) {
        mod = cJSON_DetachItemFromArray(t->layers, 0);
    } else {
        mod = cJSON_CreateObject();
        if (!mod)
            return etd_fail(x->e, ETD_ENOMEM, "out of memory");
        cJSON_AddStringToObject(mod, "type", "Sequential");
        cJSON_AddItemToObject(mod, "layers", t->layers);
        t->layers = NULL;
    }
    cJSON_AddItemToObject(node, "module", mod);
    for (int k = 0; k < et_tensor_dict_len(t->state); k++) {
        const char *key = et_tensor_dict_name(t->state, k), *dot = strchr(key, '.');
        char nk[256];
        if (nl == 1)
            snprintf(nk, sizeof nk, "%s.%s", name, dot ? dot + 1 : key);
        else
            snprintf(nk, sizeof nk, "%s.%s", name, key);
        et_tensor *v = et_tensor_dict_tensor(t->state, k);
        if (et_tensor_dict_set(x->state, nk, v) != ET_OK)
            return etd_fail(x->e, ETD_ENOMEM, "out of memory");
    }
    return ETD_OK;
}

/* Drop the op nodes that lead to no output: a value torch computes only
 * for its shape (Shape of a transposed key, folded here) leaves its op
 * behind.  Nodes are in the file's topological order. */
static void prune(cJSON *nodes, const cJSON *outputs)
{
    int n = cJSON_GetArraySize(nodes);
    bool *used = calloc((size_t)n + 1, sizeof *used);
    if (!used)
        return; /* the spec check then names the unused node */
    for (int k = n - 1; k >= 0; k--) {
        const cJSON *nd = cJSON_GetArrayItem(nodes, k);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(nd, "name"));
        for (const cJSON *o = outputs->child; o && name && !used[k]; o = o->next)
            used[k] = !strcmp(o->valuestring, name);
        for (int j = k + 1; j < n && name && !used[k]; j++) {
            if (!used[j])
                continue;
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(nodes, j), "args");
            for (const cJSON *v = a ? a->child : NULL; v && !used[k]; v = v->next)
                used[k] = cJSON_IsString(v) && !strcmp(v->valuestring, name);
        }
    }
    for (int k = n - 1; k >= 0; k--)
        if (!used[k] && cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(nodes, k), "op"))
            cJSON_DeleteItemFromArray(nodes, k);
    free(used);
}

etd_rc oi_import_graph(imp *x, etd_registry *r, const cJSON *spec_in, etd_model **out)
{
    Onnx__GraphProto *g = x->g;
    etd_err *e = x->e;
    gi G = {.x = x};
    cJSON *spec = cJSON_Duplicate(spec_in, 1), *inputs = cJSON_CreateArray(),
          *nodes = cJSON_CreateArray(), *outputs = cJSON_CreateArray(),
          *modules = cJSON_CreateObject();
    G.nodes = nodes;
    G.modules = modules;
    etd_rc rc = spec && inputs && nodes && outputs && modules
                    ? ETD_OK : etd_fail(e, ETD_ENOMEM, "out of memory");
    /* the batch: the first symbolic dimension of an input */
    for (size_t i = 0; i < g->n_input && !G.batch[0]; i++) {
        const Onnx__TypeProto *t = g->input[i]->type;
        const Onnx__TensorShapeProto *sh = t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                               ? t->tensor_type->shape : NULL;
        for (size_t d = 0; sh && d < sh->n_dim && !G.batch[0]; d++)
            if (sh->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                sh->dim[d]->dim_param && sh->dim[d]->dim_param[0])
                snprintf(G.batch, sizeof G.batch, "%s", sh->dim[d]->dim_param);
    }
    for (size_t i = 0; i < g->n_input && rc == ETD_OK; i++) {
        const char *nm = oi_s(g->input[i]->name);
        char sn[NAMELEN];
        if (oi_initializer(x, nm))
            continue;
        oi_shape is;
        oi_shape_of_info(&G, g->input[i], &is);
        const Onnx__TypeProto *t = g->input[i]->type;
        val *v = oi_take(&G, nm, sn) ? oi_add_val(&G, nm, sn, &is) : NULL;
        if (!v)
            rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        else
            cJSON_AddItemToArray(inputs, cJSON_CreateString(sn));
        /* a bool input (a mask) takes numbers, nonzero true, as torch's x.bool() */
        if (v && t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type &&
            t->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)
            v->boolish = true;
    }
    for (size_t i = 0; i < g->n_node && rc == ETD_OK; i++) {
        Onnx__NodeProto *n = g->node[i];
        const char *op = oi_s(n->op_type);
        bool constant = !strcmp(op, "Constant") && n->n_input == 0;
        if ((n->n_input < 1 && !constant) || n->n_output < 1) {
            rc = oi_node_fail(x, n, "%s", "a node needs an input and an output");
            break;
        }
        if (n->domain && n->domain[0]) {
            rc = oi_node_fail(x, n, "%s", "not an operator of the default ONNX domain");
            break;
        }
        bool handled = false;
        oi_attn_heads(&G, n);
        if ((rc = oi_ops_node(&G, n, i, &handled)) != ETD_OK)
            break;
        if (!handled && n->n_input >= 1 && oi_find(&G, oi_s(n->input[0])) &&
            (rc = oi_attn_param(&G, &i, &handled)) != ETD_OK)
            break;
        if (handled)
            continue;
        /* the values it takes (the rest must be initializers) */
        val *args[16];
        int na = 0;
        bool gather = !strcmp(op, "Gather");
        for (size_t j = 0; j < n->n_input && rc == ETD_OK; j++) {
            const char *in = oi_s(n->input[j]);
            if (!in[0] || (gather && j == 0 && oi_initializer(x, in)))
                continue;
            val *v = oi_find(&G, in);
            if (v && na == 16)
                rc = oi_node_fail(x, n, "%s", "more than 16 values in");
            else if (v)
                args[na++] = v;
            else if (!oi_initializer(x, in) && !oi_is_const(&G, in))
                rc = oi_node_fail(x, n, "input \"%.100s\" is neither a value computed before "
                                  "nor an initializer", in);
        }
        if (rc != ETD_OK)
            break;
        if (na == 0) {
            rc = oi_node_fail(x, n, "%s", "it takes no value (constant folding is the "
                              "exporter's job)");
            break;
        }
        if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) { /* eval-mode no-ops */
            if (!oi_add_val(&G, oi_s(n->output[0]), args[0]->spec, &args[0]->s))
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
            continue;
        }
        bool binary = !strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") ||
                      !strcmp(op, "Div") || !strcmp(op, "MatMul");
        bool cat = !strcmp(op, "Concat");
        cJSON *node = cJSON_CreateObject();
        char name[NAMELEN];
        size_t last = i;
        int rank = args[0]->rank;
        oi_shape os = {.nd = -1};
        if (!node) {
            rc = etd_fail(e, ETD_ENOMEM, "out of memory");
            break;
        }
        cJSON_AddItemToArray(nodes, node);
        if ((binary && na == 2 && n->n_input == 2) || (cat && na == (int)n->n_input)) {
            if (!node_name(&G, n, oi_s(n->output[0]), i, false, name)) {
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
                break;
            }
            char lower[16];
            snprintf(lower, sizeof lower, "%s", cat ? "cat" : op);
            for (char *c = lower; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
            cJSON_AddStringToObject(node, "op", lower);
            if (cat)
                cJSON_AddNumberToObject(node, "dim", (double)oi_attr_i(n, "axis", 0));
            for (int j = 0; j < na; j++)
                rank = args[j]->rank > rank ? args[j]->rank : rank;
        } else {
            if (na != 1) {
                rc = oi_node_fail(x, n, "%s", "an op with constant weights takes one value (the "
                                  "others must be initializers)");
                break;
            }
            imp t = {.g = g, .layers = cJSON_CreateArray(), .state = et_tensor_dict_new(),
                     .rank = args[0]->rank, .nbt = x->nbt, .e = e, .alias = x->alias,
                     .nalias = x->nalias};
            if (!t.layers || !t.state)
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
            else
                rc = oi_one_node(&t, g->node, g->n_node, &last);
            if (rc == ETD_OK && !node_name(&G, n, oi_s(g->node[last]->output[0]), i, true, name))
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
            if (rc == ETD_OK && cJSON_GetArraySize(t.layers) == 0)
                rc = oi_node_fail(x, n, "%s", "no layer");
            if (rc == ETD_OK)
                oi_module_shape(t.layers, &args[0]->s, &os);
            if (rc == ETD_OK)
                rc = add_module_node(&G, node, &t, name);
            rank = t.rank;
            cJSON_Delete(t.layers);
            et_tensor_dict_free(t.state);
            if (rc != ETD_OK)
                break;
        }
        cJSON_AddStringToObject(node, "name", name);
        cJSON *a = cJSON_AddArrayToObject(node, "args");
        for (int j = 0; j < na; j++)
            cJSON_AddItemToArray(a, cJSON_CreateString(args[j]->spec));
        /* a module giving a graph output keeps its weights' names: an
         * Identity node after it carries the output's name */
        const char *o = output_of(g, oi_s(g->node[last]->output[0]), last + 1);
        char want[NAMELEN];
        if (o)
            spec_name(want, o);
        if (o && strcmp(want, name) != 0 && !taken(&G, want)) {
            cJSON *id = cJSON_CreateObject();
            char iname[NAMELEN];
            if (!id || !oi_take(&G, o, iname)) {
                cJSON_Delete(id);
                rc = etd_fail(e, ETD_ENOMEM, "out of memory");
                break;
            }
            cJSON_AddItemToArray(nodes, id);
            cJSON_AddItemToObject(id, "module", cJSON_CreateObject());
            cJSON_AddStringToObject(cJSON_GetObjectItem(id, "module"), "type", "Identity");
            cJSON_AddStringToObject(id, "name", iname);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(id, "args"), cJSON_CreateString(name));
            snprintf(name, NAMELEN, "%s", iname);
        }
        if (os.nd < 0)
            oi_shape_from_file(&G, oi_s(g->node[last]->output[0]), &os);
        if (os.nd < 0 && rank > 0) { /* the rank alone */
            os.nd = rank;
            for (int d = 0; d < rank; d++)
                os.d[d] = (oi_dim){0, -1};
        }
        if (!oi_add_val(&G, oi_s(g->node[last]->output[0]), name, &os))
            rc = etd_fail(e, ETD_ENOMEM, "out of memory");
        i = last;
    }
    for (size_t o = 0; o < g->n_output && rc == ETD_OK; o++) {
        const val *v = oi_find(&G, oi_s(g->output[o]->name));
        bool is_input = false;
        for (int k = 0; v && k < cJSON_GetArraySize(inputs); k++)
            is_input = is_input || !strcmp(cJSON_GetArrayItem(inputs, k)->valuestring, v->spec);
        if (!v || is_input) {
            char shown[NAMELEN]; /* printable: names in a file may be any bytes */
            spec_name(shown, oi_s(g->output[o]->name));
            rc = etd_fail(e, ETD_EINVAL, "onnx: output \"%s\" is %s", shown,
                          v ? "an input (no node computes it)" : "computed by no node");
        }
        else
            cJSON_AddItemToArray(outputs, cJSON_CreateString(v->spec));
    }
    if (rc == ETD_OK)
        prune(nodes, outputs);
    if (rc == ETD_OK && cJSON_GetArraySize(nodes) == 0)
        rc = etd_fail(e, ETD_EINVAL, "onnx: the graph has no nodes");
    if (rc == ETD_OK) {
        cJSON_AddItemToObject(spec, "inputs", inputs);
        if (modules->child) {
            cJSON_AddItemToObject(spec, "modules", modules);
            modules = NULL;
        }
        cJSON_AddItemToObject(spec, "nodes", nodes);
        cJSON_AddItemToObject(spec, "outputs", outputs);
        inputs = nodes = outputs = NULL;
        rc = etd_registry_define_state(r, spec, x->state, out, e);
    }
    cJSON_Delete(spec);
    cJSON_Delete(inputs);
    cJSON_Delete(nodes);
    cJSON_Delete(outputs);
    cJSON_Delete(modules);
    free(G.v);
    free(G.taken);
    oi_consts_free(&G);
    return rc;
}
