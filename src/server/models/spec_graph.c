/* spec_graph.c - graph model specs (spec_graph.h): named inputs, modules,
 * nodes (a module call, a functional op or a parameter) wired by name, and
 * named outputs, in the shape of a torch.fx graph.
 *
 * A node's "module" is a layer object (a module named after the node, as
 * torch names an attribute) or the name of a module defined elsewhere -- a
 * top-level "modules" entry, another node's, or a path into one
 * ("blocks.0") -- which is how several nodes share weights.  Layers are read
 * with THE layer entry point (etd_spec_parse_layer), containers
 * (Sequential, ModuleList) here.  Nodes may be listed in any order: they
 * are sorted topologically (a cycle names a node on it).  What is known of
 * each value's last dimension is followed from node to node (as the layer
 * list's feature flow does), so a Linear fed the wrong width is a 400 at
 * creation; anything this cannot follow is checked when the model runs,
 * where the library names the node. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/nn_graph.h>

#include "server/formats/json_in.h"
#include "server/models/spec_graph_internal.h"

/* Per op: the fields it takes besides name/op/args. */
static const char *const f_none[] = {"name", "op", "args", NULL};
static const char *const f_dim[] = {"name", "op", "args", "dim", NULL};
static const char *const f_shape[] = {"name", "op", "args", "shape", NULL};
static const char *const f_flatten[] = {"name", "op", "args", "start_dim", "end_dim", NULL};
static const char *const f_transpose[] = {"name", "op", "args", "dim0", "dim1", NULL};
static const char *const f_permute[] = {"name", "op", "args", "dims", NULL};
static const char *const f_reduce[] = {"name", "op", "args", "dim", "keepdim", NULL};
static const char *const f_getitem[] = {"name", "op", "args", "index", "dim", NULL};
static const char *const f_chunk[] = {"name", "op", "args", "chunks", "dim", NULL};
static const char *const f_split[] = {"name", "op", "args", "split_size", "dim", NULL};
static const char *const f_cos[] = {"name", "op", "args", "dim", "eps", NULL};
static const char *const f_slice[] = {"name", "op", "args", "dim", "start", "end", "step", NULL};
static const char *const f_fill[] = {"name", "op", "args", "value", NULL};
static const char *const *const op_fields[ET_GOP_COUNT] = {
    [ET_GOP_ADD] = f_none, [ET_GOP_SUB] = f_none, [ET_GOP_MUL] = f_none, [ET_GOP_DIV] = f_none,
    [ET_GOP_MATMUL] = f_none, [ET_GOP_CAT] = f_dim, [ET_GOP_STACK] = f_dim,
    [ET_GOP_RESHAPE] = f_shape, [ET_GOP_FLATTEN] = f_flatten, [ET_GOP_TRANSPOSE] = f_transpose,
    [ET_GOP_PERMUTE] = f_permute, [ET_GOP_SUM] = f_reduce, [ET_GOP_MEAN] = f_reduce,
    [ET_GOP_SOFTMAX] = f_dim, [ET_GOP_LOG_SOFTMAX] = f_dim, [ET_GOP_GETITEM] = f_getitem,
    [ET_GOP_CHUNK] = f_chunk, [ET_GOP_SPLIT] = f_split, [ET_GOP_COSINE_SIMILARITY] = f_cos,
    [ET_GOP_LINEAR] = f_none, [ET_GOP_NEG] = f_none, [ET_GOP_EXP] = f_none,
    [ET_GOP_LOG] = f_none, [ET_GOP_SQRT] = f_none, [ET_GOP_ERF] = f_none, [ET_GOP_POW] = f_none,
    [ET_GOP_UNSQUEEZE] = f_dim, [ET_GOP_SQUEEZE] = f_dim, [ET_GOP_SLICE] = f_slice,
    [ET_GOP_WHERE] = f_none, [ET_GOP_MASKED_FILL] = f_fill, [ET_GOP_LOGICAL_NOT] = f_none,
    [ET_GOP_LOGICAL_AND] = f_none, [ET_GOP_LOGICAL_OR] = f_none, [ET_GOP_EXPAND] = f_shape,
};

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= GNAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

#define NAME_RULE "a name of letters, digits and _, not starting with a digit, at most 63 " \
                  "characters"

/* ------------------------------------------------------------ modules */

static void gmod_free(gmod *m)
{
    for (int i = 0; i < m->nkids; i++)
        gmod_free(&m->kids[i]);
    free(m->kids);
    if (m->kind == 0 && m->layer.type)
        etd_layer_free(&m->layer);
}

/* A module object at path: a spec layer, or Sequential {"layers": [...]} /
 * ModuleList {"modules": [...]}.  flow: features in (KEEPS or a width, or
 * -1 unknown) -> out; parameters counted. */
static bool parse_gmod(const cJSON *j, const char *path, gmod *m, etd_flow *flow, int depth,
                       etd_err *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    bool seq = cJSON_IsString(t) && !strcmp(t->valuestring, "Sequential");
    bool list = cJSON_IsString(t) && !strcmp(t->valuestring, "ModuleList");
    if (!seq && !list) {
        m->kind = 0;
        if (!etd_spec_parse_layer(j, path, &m->layer, flow, e))
            return false;
        /* the library graph calls the module itself: a spec-fixed mask (applied by the
         * layer list's forward hook) would be silently dropped */
        if (m->layer.mask.kind != ETD_MASK_NONE || m->layer.kpm)
            return etd_fail(e, ETD_EINVAL, "%s: a mask fixed in the spec (attn_mask, src_mask, "
                            "mask, key padding masks) is for layer lists; in a graph pass it as an argument "
                            "(TransformerEncoderLayer / TransformerEncoder: src, mask, "
                            "src_key_padding_mask)", path), false;
        m->index_input = m->layer.type->index_input;
        return true;
    }
    static const char *const seq_keys[] = {"type", "layers", NULL};
    static const char *const list_keys[] = {"type", "modules", NULL};
    const char *key = seq ? "layers" : "modules";
    if (depth > 8)
        return etd_fail(e, ETD_EINVAL, "%s: containers nested more than 8 deep", path), false;
    if (!etd_check_keys(j, path, seq ? " for Sequential" : " for ModuleList",
                        seq ? seq_keys : list_keys, NULL, e))
        return false;
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(j, key);
    int n = cJSON_IsArray(kids) ? cJSON_GetArraySize(kids) : 0;
    if (n < 1 || n > GMAX_KIDS)
        return etd_fail(e, ETD_EINVAL, "%s.%s: expected a list of 1 to %d modules", path, key,
                        GMAX_KIDS), false;
    m->kind = seq ? 1 : 2;
    m->kids = calloc((size_t)n, sizeof *m->kids);
    if (!m->kids)
        return etd_fail(e, ETD_ENOMEM, "%s: out of memory", path), false;
    int i = 0;
    int64_t in = flow->features;
    for (const cJSON *k = kids->child; k; k = k->next, i++) {
        char kp[200];
        snprintf(kp, sizeof kp, "%.150s.%s[%d]", path, key, i);
        snprintf(m->kids[i].name, GNAME, "%d", i);
        m->nkids = i + 1;
        gmod *kid = &m->kids[i];
        kid->need = kid->gives = -1;     /* a Sequential's element: called by path, unknown */
        if (list) {      /* each element is called on its own: summarised as a module */
            etd_flow f = *flow;
            f.features = KEEPS;
            f.features_by = "the node's argument";
            f.reshaped = false;
            f.in_features = -1;
            if (!parse_gmod(k, kp, kid, &f, depth + 1, e))
                return false;
            kid->need = f.in_features;
            kid->gives = f.features == KEEPS ? KEEPS : f.features;
            flow->params = f.params;
            continue;
        }
        if (!parse_gmod(k, kp, kid, flow, depth + 1, e))
            return false;
    }
    m->index_input = seq && m->kids[0].index_input;
    if (list) {          /* no forward of its own */
        flow->features = in;
    }
    return true;
}

/* Summarise a top-level module: what width it needs and gives, parsed on a
 * fresh flow (the parameter count carried over). */
static bool parse_top_module(const cJSON *j, const char *path, const char *name, gmod *m,
                             etd_flow *flow, etd_err *e)
{
    etd_flow f = *flow;
    f.features = KEEPS;
    f.features_by = "the node's argument";
    f.reshaped = false;
    f.in_features = -1;
    snprintf(m->name, GNAME, "%s", name);
    if (!parse_gmod(j, path, m, &f, 0, e))
        return false;
    m->need = f.in_features;
    m->gives = f.features == KEEPS ? KEEPS : f.features;
    if (m->kind == 2)
        m->need = m->gives = -1;
    flow->params = f.params;
    return true;
}

/* The module at a dotted path of top-level modules, or NULL. */
const gmod *etd_graph_find_mod(const etd_graph *g, const char *path)
{
    const gmod *list = g->mods;
    int n = g->nmods;
    const gmod *cur = NULL;
    const char *p = path;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        cur = NULL;
        for (int i = 0; i < n && !cur; i++)
            if (strlen(list[i].name) == len && !strncmp(list[i].name, p, len))
                cur = &list[i];
        if (!cur)
            return NULL;
        list = cur->kids;
        n = cur->nkids;
        p = dot ? dot + 1 : p + len;
    }
    return cur;
}

/* ------------------------------------------------------------ nodes */

static bool parse_op(gnode *nd, const etd_obj *o)
{
    int64_t v;
    et_graph_op_args *a = &nd->a;
    *a = ET_GRAPH_OP_ARGS_DEFAULTS;
    const int64_t D = ET_MAX_DIMS;
    switch (nd->op) {
    case ET_GOP_CAT: case ET_GOP_STACK: case ET_GOP_SOFTMAX: case ET_GOP_LOG_SOFTMAX: {
        bool req = nd->op == ET_GOP_SOFTMAX || nd->op == ET_GOP_LOG_SOFTMAX;
        if (!etd_field_int(o, "dim", req, 0, -D - 1, D, &v))
            return false;
        a->dim = (int)v;
        return true;
    }
    case ET_GOP_RESHAPE: case ET_GOP_EXPAND: {
        int64_t *s = NULL;
        bool ok = etd_field_ints(o, "shape", true, ET_MAX_DIMS, -1, &s, &a->nints);
        for (int i = 0; ok && i < a->nints; i++)
            a->ints[i] = s[i];
        free(s);
        return ok;
    }
    case ET_GOP_FLATTEN:
        if (!etd_field_int(o, "start_dim", false, 0, -D, D - 1, &v))
            return false;
        a->dim = (int)v;
        if (!etd_field_int(o, "end_dim", false, -1, -D, D - 1, &v))
            return false;
        a->dim1 = (int)v;
        return true;
    case ET_GOP_TRANSPOSE:
        if (!etd_field_int(o, "dim0", true, 0, -D, D - 1, &v))
            return false;
        a->dim = (int)v;
        if (!etd_field_int(o, "dim1", true, 0, -D, D - 1, &v))
            return false;
        a->dim1 = (int)v;
        return true;
    case ET_GOP_PERMUTE: case ET_GOP_SUM: case ET_GOP_MEAN: {
        bool permute = nd->op == ET_GOP_PERMUTE;
        const char *key = permute ? "dims" : "dim";
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o->o, key);
        if (!permute && cJSON_IsNumber(d)) {
            if (!etd_field_int(o, key, true, 0, -D, D - 1, &v))
                return false;
            a->ints[0] = v;
            a->nints = 1;
        } else if (permute || (d && !cJSON_IsNull(d))) {
            int64_t *s = NULL;
            bool ok = etd_field_ints(o, key, permute, ET_MAX_DIMS, -D, &s, &a->nints);
            for (int i = 0; ok && i < a->nints; i++) {
                if (s[i] >= D)
                    ok = etd_field_fail(o, key, "dim %lld is out of range", (long long)s[i]);
                a->ints[i] = s[i];
            }
            free(s);
            if (!ok)
                return false;
        }
        return permute || etd_field_bool(o, "keepdim", false, &a->keepdim);
    }
    case ET_GOP_GETITEM:
        if (!etd_field_int(o, "index", true, 0, -(1LL << 40), 1LL << 40, &a->index) ||
            !etd_field_int(o, "dim", false, 0, -D, D - 1, &v))
            return false;
        a->dim = (int)v;
        a->has_dim = cJSON_GetObjectItemCaseSensitive(o->o, "dim") != NULL;
        return true;
    case ET_GOP_CHUNK: case ET_GOP_SPLIT: {
        bool chunk = nd->op == ET_GOP_CHUNK;
        if (!etd_field_int(o, chunk ? "chunks" : "split_size", true, 1, 1, 1 << 16, &a->index) ||
            !etd_field_int(o, "dim", false, 0, -D, D - 1, &v))
            return false;
        a->dim = (int)v;
        return true;
    }
    case ET_GOP_UNSQUEEZE: case ET_GOP_SQUEEZE: {
        bool un = nd->op == ET_GOP_UNSQUEEZE; /* unsqueeze's dim may be one past the last */
        if (!etd_field_int(o, "dim", true, 0, un ? -D - 1 : -D, un ? D : D - 1, &v))
            return false;
        a->dim = (int)v;
        return true;
    }
    case ET_GOP_SLICE:
        if (!etd_field_int(o, "dim", true, 0, -D, D - 1, &v) ||
            !etd_field_int(o, "start", false, 0, -(1LL << 53), 1LL << 53, &a->start) ||
            !etd_field_int(o, "end", false, INT64_MAX, -(1LL << 53), 1LL << 53, &a->end) ||
            !etd_field_int(o, "step", false, 1, 1, 1LL << 53, &a->step))
            return false;
        a->dim = (int)v;
        return true;
    case ET_GOP_MASKED_FILL: { /* JSON has no infinities: "-inf" / "inf" say them */
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o->o, "value");
        if (cJSON_IsString(f) && (!strcmp(f->valuestring, "-inf") || !strcmp(f->valuestring, "inf"))) {
            a->value = f->valuestring[0] == '-' ? -INFINITY : INFINITY;
            return true;
        }
        if (cJSON_IsString(f) || (f && !cJSON_IsNumber(f)))
            return etd_field_fail(o, "value", "expected a number, \"-inf\" or \"inf\""), false;
        return etd_field_num(o, "value", true, 0, -FLT_MAX, FLT_MAX, &a->value);
    }
    case ET_GOP_COSINE_SIMILARITY:
        if (!etd_field_int(o, "dim", false, 1, -D, D - 1, &v) ||
            !etd_field_num(o, "eps", false, 1e-8, 0, 1, &a->eps))
            return false;
        a->dim = (int)v;
        return true;
    default:
        return true;
    }
}

/* nodes[k]: its name, kind and fields; a module object becomes a top-level
 * module named after the node.  Arguments are resolved later (any order). */
static bool parse_node(etd_graph *g, int k, const cJSON *j, etd_flow *flow, etd_err *e)
{
    char path[96];
    snprintf(path, sizeof path, "nodes[%d]", k);
    etd_obj o = {j, path, e};
    gnode *nd = &g->nodes[k];
    nd->spec = k;
    if (!cJSON_IsObject(j))
        return etd_field_fail(&o, NULL, "expected an object with \"name\", one of \"module\", "
                              "\"op\" or \"attr\", and \"args\""), false;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(name) || !name_ok(name->valuestring))
        return etd_field_fail(&o, "name", "expected " NAME_RULE), false;
    snprintf(nd->name, GNAME, "%s", name->valuestring);
    snprintf(path, sizeof path, "nodes[%d] (%.63s)", k, nd->name);
    for (int i = 0; i < g->ninputs; i++)
        if (!strcmp(g->inputs[i], nd->name))
            return etd_field_fail(&o, "name", "\"%s\" is already an input", nd->name), false;
    for (int i = 0; i < k; i++)
        if (!strcmp(g->nodes[i].name, nd->name))
            return etd_field_fail(&o, "name", "\"%s\" is already nodes[%d]", nd->name, i), false;
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(j, "module");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    const cJSON *attr = cJSON_GetObjectItemCaseSensitive(j, "attr");
    if (!!mj + !!op + !!attr != 1)
        return etd_field_fail(&o, NULL, "expected exactly one of \"module\", \"op\" or "
                              "\"attr\""), false;
    int amin = 1, amax = 1;
    if (op) {
        static const char *op_names[ET_GOP_COUNT + 1];
        for (int i = 0; i < ET_GOP_COUNT; i++)
            op_names[i] = et_graph_op_name((et_graph_op)i);
        int which;
        if (!etd_field_choice(&o, "op", op_names, 0, &which))
            return false;
        nd->kind = ET_GNODE_OP;
        nd->op = which;
        if (!etd_check_keys(j, path, " for this op", op_fields[which], NULL, e) ||
            !parse_op(nd, &o))
            return false;
        int ar = et_graph_op_arity((et_graph_op)which);
        amin = ar == -1 ? 1 : ar == -2 ? 2 : ar;
        amax = ar == -1 ? GMAX_ARGS : ar == -2 ? 3 : ar;
    } else if (attr) {
        static const char *const akeys[] = {"name", "attr", NULL};
        if (!etd_check_keys(j, path, " for an attr node", akeys, NULL, e))
            return false;
        if (!cJSON_IsString(attr) || strlen(attr->valuestring) >= sizeof nd->target)
            return etd_field_fail(&o, "attr", "expected a parameter's state_dict name "
                                  "(\"emb.weight\")"), false;
        nd->kind = ET_GNODE_ATTR;
        snprintf(nd->target, sizeof nd->target, "%s", attr->valuestring);
        amin = amax = 0;
    } else {
        static const char *const mkeys[] = {"name", "module", "args", NULL};
        if (!etd_check_keys(j, path, " for a module node", mkeys, NULL, e))
            return false;
        nd->kind = ET_GNODE_MODULE;
        if (cJSON_IsString(mj)) {
            if (strlen(mj->valuestring) >= sizeof nd->target || !*mj->valuestring)
                return etd_field_fail(&o, "module", "expected a module's name"), false;
            snprintf(nd->target, sizeof nd->target, "%s", mj->valuestring);
        } else {
            char mp[128];
            snprintf(mp, sizeof mp, "%.100s.module", path);
            for (int i = 0; i < g->nmods; i++)
                if (!strcmp(g->mods[i].name, nd->name))
                    return etd_field_fail(&o, "name", "\"%s\" is already a module's name (in "
                                          "\"modules\")", nd->name), false;
            if (!parse_top_module(mj, mp, nd->name, &g->mods[g->nmods], flow, e)) {
                g->nmods++;      /* freed with the graph */
                return false;
            }
            g->nmods++;
            snprintf(nd->target, sizeof nd->target, "%s", nd->name);
        }
        amax = 3;        /* checked against the module once targets resolve */
    }
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "args");
    int na = cJSON_IsArray(args) ? cJSON_GetArraySize(args) : (args ? -1 : 0);
    if (na < amin || na > amax)
        return etd_field_fail(&o, "args", "expected a list of %d%s%d name%s of inputs or nodes",
                              amin, amin == amax ? "" : " to ", amin == amax ? 0 : amax,
                              amax == 1 ? "" : "s") && false;
    /* add/sub/mul/div/pow: one of the two may be a number (torch.fx's add(x, 2.0));
     * masked_fill: its first (a tensor of the mask's shape filled with it) */
    bool fill = op && nd->op == ET_GOP_MASKED_FILL;
    bool scalar_ok = op && (nd->op == ET_GOP_ADD || nd->op == ET_GOP_SUB ||
                            nd->op == ET_GOP_MUL || nd->op == ET_GOP_DIV || nd->op == ET_GOP_POW ||
                            fill);
    nd->nargs = 0;
    int i = 0;
    for (const cJSON *a = na > 0 ? args->child : NULL; a; a = a->next, i++) {
        if (scalar_ok && cJSON_IsNumber(a) && !nd->a.has_scalar && na == 2 && (!fill || i == 0)) {
            nd->a.has_scalar = true;
            nd->a.scalar_pos = i;
            nd->a.scalar = a->valuedouble;
            continue;
        }
        if (!cJSON_IsString(a) || strlen(a->valuestring) >= GNAME)
            return etd_field_fail(&o, "args", "expected names of inputs or nodes%s (args[%d])",
                                  fill ? ", the first may be a number"
                                  : scalar_ok && na == 2 ? ", one of the two may be a number" : "",
                                  i), false;
        snprintf(nd->arg[nd->nargs++], GNAME, "%s", a->valuestring);
    }
    return true;
}

static bool parse_names(const cJSON *j, const char *what, char (*out)[GNAME], int *n,
                        etd_err *e)
{
    int c = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0;
    if (c < 1 || c > ETD_GMAX_IO)
        return etd_fail(e, ETD_EINVAL, "%s: expected a list of 1 to %d names", what,
                        ETD_GMAX_IO), false;
    int i = 0;
    for (const cJSON *s = j->child; s; s = s->next, i++) {
        if (!cJSON_IsString(s) || !name_ok(s->valuestring))
            return etd_fail(e, ETD_EINVAL, "%s[%d]: expected " NAME_RULE, what, i), false;
        for (int k = 0; k < i; k++)
            if (!strcmp(out[k], s->valuestring))
                return etd_fail(e, ETD_EINVAL, "%s[%d]: \"%s\" is listed twice", what, i,
                                s->valuestring), false;
        snprintf(out[i], GNAME, "%s", s->valuestring);
    }
    *n = c;
    return true;
}

bool etd_graph_parse(const cJSON *root, etd_spec *s, etd_flow *flow, etd_err *e)
{
    etd_graph *g = calloc(1, sizeof *g);
    if (!g)
        return etd_fail(e, ETD_ENOMEM, "out of memory"), false;
    s->graph = g;
    if (!parse_names(cJSON_GetObjectItemCaseSensitive(root, "inputs"), "inputs", g->inputs,
                     &g->ninputs, e))
        return false;
    for (int i = 0; i < g->ninputs; i++) {
        g->in_dtype[i] = ET_FLOAT32;
        g->in_features[i] = -1;
    }
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(root, "modules");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    int nm = mods ? (cJSON_IsObject(mods) ? cJSON_GetArraySize(mods) : -1) : 0;
    int n = cJSON_IsArray(nodes) ? cJSON_GetArraySize(nodes) : 0;
    if (nm < 0 || nm > GMAX_NODES)
        return etd_fail(e, ETD_EINVAL, "modules: expected an object of modules by name (at most "
                        "%d)", GMAX_NODES), false;
    if (n < 1 || n > GMAX_NODES)
        return etd_fail(e, ETD_EINVAL, "nodes: expected a list of 1 to %d nodes", GMAX_NODES),
               false;
    g->nodes = calloc((size_t)n, sizeof *g->nodes);
    g->mods = calloc((size_t)(n + nm), sizeof *g->mods);
    if (!g->nodes || !g->mods)
        return etd_fail(e, ETD_ENOMEM, "nodes: out of memory"), false;
    for (const cJSON *m = mods ? mods->child : NULL; m; m = m->next) {
        char path[96];
        snprintf(path, sizeof path, "modules.%.60s", m->string);
        if (!name_ok(m->string))
            return etd_fail(e, ETD_EINVAL, "%s: expected " NAME_RULE, path), false;
        bool ok = parse_top_module(m, path, m->string, &g->mods[g->nmods], flow, e);
        g->nmods++;
        if (!ok)
            return false;
    }
    int k = 0;
    for (const cJSON *j = nodes->child; j; j = j->next, k++) {
        g->nnodes = k + 1;
        if (!parse_node(g, k, j, flow, e))
            return false;
    }
    if (!parse_names(cJSON_GetObjectItemCaseSensitive(root, "outputs"), "outputs", g->outputs,
                     &g->nout, e) ||
        !etd_graph_wire(g, e))
        return false;
    for (int i = 0; i < g->nout; i++) {
        int v = etd_graph_value_of(g, g->outputs[i]);
        if (v < 0)
            return etd_fail(e, ETD_EINVAL, "outputs[%d]: \"%s\" is no input or node", i,
                            g->outputs[i]), false;
        if (etd_graph_is_tuple(g, v))
            return etd_fail(e, ETD_EINVAL, "outputs[%d]: \"%s\" is a tuple: output a getitem "
                            "of it", i, g->outputs[i]), false;
        g->out_val[i] = v;
    }
    /* an attr node's parameter is looked up when the modules are built
     * (etd_graph_build: the library knows every state name) */
    return etd_graph_all_used(g, e) && etd_graph_follow_features(g, e);
}

void etd_graph_free(etd_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nmods; i++)
        gmod_free(&g->mods[i]);
    free(g->mods);
    free(g->nodes);
    free(g->order);
    free(g);
}

/* ------------------------------------------------------------ building */

static et_module *build_gmod(const gmod *m, et_generator *gen, const char *path, etd_err *e)
{
    if (m->kind == 0)
        return etd_spec_build_layer(&m->layer, gen, path, e);
    et_module *c = m->kind == 1 ? et_sequential_new() : et_module_list_new();
    for (int i = 0; c && i < m->nkids; i++) {
        char kp[200];
        snprintf(kp, sizeof kp, "%.150s.%d", path, i);
        et_module *kid = build_gmod(&m->kids[i], gen, kp, e);
        if (!kid) {
            et_module_free(c);
            return NULL;
        }
        if (et_sequential_append(c, kid) != ET_OK) {
            et_module_free(c);
            c = NULL;
        }
    }
    if (!c)
        etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s", path,
                 et_errmsg());
    return c;
}

et_module *etd_graph_build(const etd_graph *g, et_generator *gen, etd_err *e)
{
    et_module *gm = et_graph_new();
    if (!gm)
        return etd_fail(e, ETD_ENOMEM, "model: %s", et_errmsg()), NULL;
    char path[96];
    for (int i = 0; i < g->ninputs; i++)
        if (et_graph_add_input(gm, g->inputs[i]) != ET_OK)
            goto lib;
    for (int i = 0; i < g->nmods; i++) {
        snprintf(path, sizeof path, "modules.%.63s", g->mods[i].name);
        et_module *m = build_gmod(&g->mods[i], gen, path, e);
        if (!m) {
            et_module_free(gm);
            return NULL;
        }
        if (et_graph_add_module(gm, g->mods[i].name, m) != ET_OK)
            goto lib;
    }
    for (int o = 0; o < g->nnodes; o++) {
        const gnode *nd = &g->nodes[g->order[o]];
        const char *args[GMAX_ARGS];
        for (int i = 0; i < nd->nargs; i++)
            args[i] = nd->arg[i];
        et_status st = nd->kind == ET_GNODE_MODULE
                           ? et_graph_call_module(gm, nd->name, nd->target, args, nd->nargs)
                       : nd->kind == ET_GNODE_ATTR
                           ? et_graph_get_attr(gm, nd->name, nd->target)
                           : et_graph_call_op(gm, nd->name, (et_graph_op)nd->op, args, nd->nargs,
                                              &nd->a);
        if (st != ET_OK) {
            snprintf(path, sizeof path, "nodes[%d] (%.63s)", nd->spec, nd->name);
            etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s", path,
                     et_errmsg());
            et_module_free(gm);
            return NULL;
        }
    }
    for (int i = 0; i < g->nout; i++)
        if (et_graph_add_output(gm, g->outputs[i], g->outputs[i]) != ET_OK)
            goto lib;
    return gm;
lib:
    etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "model: %s", et_errmsg());
    et_module_free(gm);
    return NULL;
}

/* ------------------------------------------------------------ accessors */

int etd_graph_num_inputs(const etd_graph *g) { return g ? g->ninputs : 0; }
const char *etd_graph_input(const etd_graph *g, int i) { return g->inputs[i]; }
et_dtype etd_graph_input_dtype(const etd_graph *g, int i) { return g->in_dtype[i]; }
int64_t etd_graph_input_features(const etd_graph *g, int i) { return g->in_features[i]; }
int etd_graph_num_outputs(const etd_graph *g) { return g ? g->nout : 0; }
const char *etd_graph_output(const etd_graph *g, int i) { return g->outputs[i]; }

int64_t etd_graph_output_features(const etd_graph *g, int i)
{
    return etd_graph_value_features(g, g->out_val[i]);
}
