/* spec_graph_check.c - the checks of a parsed graph spec (spec_graph.c):
 * arguments and module targets resolved by name, the nodes sorted
 * topologically (Kahn's algorithm; a cycle is named by walking a left-over
 * node's arguments), every input and node leading to an output, and the
 * last dimensions known followed from node to node so that a module fed
 * the wrong width or an add of widths that do not broadcast is a 400
 * naming the node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/formats/json_in.h"
#include "server/models/spec_graph_internal.h"

/* The value called name: input i -> i, node k -> ninputs + k; or -1. */
int etd_graph_value_of(const etd_graph *g, const char *name)
{
    for (int i = 0; i < g->ninputs; i++)
        if (!strcmp(g->inputs[i], name))
            return i;
    for (int k = 0; k < g->nnodes; k++)
        if (!strcmp(g->nodes[k].name, name))
            return g->ninputs + k;
    return -1;
}

bool etd_graph_is_tuple(const etd_graph *g, int v)
{
    /* torch's MultiheadAttention returns (attn_output, attn_weights) */
    if (v >= g->ninputs && g->nodes[v - g->ninputs].kind == ET_GNODE_MODULE) {
        const gmod *m = g->nodes[v - g->ninputs].mod;
        return m && m->kind == 0 && !strcmp(m->layer.type->name, "MultiheadAttention");
    }
    return v >= g->ninputs && g->nodes[v - g->ninputs].kind == ET_GNODE_OP &&
           (g->nodes[v - g->ninputs].op == ET_GOP_CHUNK || g->nodes[v - g->ninputs].op == ET_GOP_SPLIT);
}

/* Resolve every argument and module target, then order the nodes (Kahn). */
bool etd_graph_wire(etd_graph *g, etd_err *e)
{
    int n = g->nnodes;
    for (int k = 0; k < n; k++) {
        gnode *nd = &g->nodes[k];
        if (nd->kind == ET_GNODE_MODULE) {
            nd->mod = etd_graph_find_mod(g, nd->target);
            if (!nd->mod) {
                const char *names[64];
                int c = 0;
                for (int i = 0; i < g->nmods && c < 63; i++)
                    names[c++] = g->mods[i].name;
                names[c] = NULL;
                char list[512];
                etd_join_names(names, list, sizeof list);
                etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).module: \"%s\" is no module (defined: "
                         "%s)", k, nd->name, nd->target, c ? list : "none");
                etd_err_suggest(e, nd->target, names);
                return false;
            }
            if (nd->mod->kind == 2)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).module: \"%s\" is a ModuleList "
                                "(no forward): call one of its modules (\"%s.0\")", k,
                                nd->name, nd->target, nd->target), false;
            const char *t = nd->mod->kind == 1 ? "Sequential" : nd->mod->layer.type->name;
            int amax = !strcmp(t, "MultiheadAttention") || !strncmp(t, "TransformerEncoder", 18)
                           ? 3 : !strcmp(t, "EmbeddingBag") ? 2 : 1;
            if (nd->nargs > amax)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).args: %s takes %d argument%s, "
                                "%d given", k, nd->name, t, amax, amax == 1 ? "" : "s",
                                nd->nargs), false;
        }
    }
    /* arguments once every target is known (whether a value is a tuple depends on it) */
    for (int k = 0; k < n; k++) {
        gnode *nd = &g->nodes[k];
        for (int i = 0; i < nd->nargs; i++) {
            int v = etd_graph_value_of(g, nd->arg[i]);
            if (v < 0) {
                etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).args[%d]: \"%s\" is no input or node",
                         k, nd->name, i, nd->arg[i]);
                return false;
            }
            if (v == g->ninputs + k)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).args[%d]: a node cannot take "
                                "itself (cycle)", k, nd->name, i), false;
            bool getitem = nd->kind == ET_GNODE_OP && nd->op == ET_GOP_GETITEM;
            if (etd_graph_is_tuple(g, v) && !getitem)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).args[%d]: \"%s\" is a tuple "
                                "(%s): take a piece with {\"op\": \"getitem\", \"index\": i}", k,
                                nd->name, i, nd->arg[i],
                                et_graph_op_name((et_graph_op)g->nodes[v - g->ninputs].op)), false;
            if (getitem && !etd_graph_is_tuple(g, v) && !nd->a.has_dim)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).dim: \"%s\" is a tensor: give the "
                                "dim to select along", k, nd->name, nd->arg[i]), false;
            nd->argv[i] = v;
        }
    }
    int *indeg = calloc((size_t)n + 1, sizeof *indeg);
    bool *placed = calloc((size_t)n + 1, sizeof *placed);
    g->order = calloc((size_t)n + 1, sizeof *g->order);
    if (!indeg || !placed || !g->order) {
        free(indeg);
        free(placed);
        return etd_fail(e, ETD_ENOMEM, "nodes: out of memory"), false;
    }
    for (int k = 0; k < n; k++)
        for (int i = 0; i < g->nodes[k].nargs; i++)
            indeg[k] += g->nodes[k].argv[i] >= g->ninputs;
    int done = 0;
    for (bool progress = true; progress;) {
        progress = false;
        for (int k = 0; k < n; k++) {
            if (placed[k] || indeg[k])
                continue;
            placed[k] = progress = true;
            g->order[done++] = k;
            for (int j = 0; j < n; j++)
                for (int i = 0; i < g->nodes[j].nargs; i++)
                    indeg[j] -= g->nodes[j].argv[i] == g->ninputs + k;
        }
    }
    int stuck = -1;
    for (int k = 0; k < n && stuck < 0; k++)
        if (!placed[k])
            stuck = k;
    free(indeg);
    free(placed);
    if (stuck >= 0) {
        /* walk back along unplaced arguments until a node repeats: that is the cycle */
        int path[GMAX_NODES + 1], len = 0, cur = stuck;
        bool seen[GMAX_NODES] = {false};
        while (!seen[cur] && len < GMAX_NODES) {
            seen[cur] = true;
            path[len++] = cur;
            int next = -1;
            for (int i = 0; i < g->nodes[cur].nargs && next < 0; i++) {
                int v = g->nodes[cur].argv[i] - g->ninputs;
                bool on = false;
                for (int o = 0; o < done && !on; o++)
                    on = g->order[o] == v;
                if (v >= 0 && !on)
                    next = v;
            }
            cur = next;
        }
        char chain[512] = "";
        size_t at = 0;
        int from = 0;
        while (from < len && path[from] != cur)
            from++;
        /* path runs against the data (each node to its argument): print it backwards */
        at += (size_t)snprintf(chain, sizeof chain, "%s", g->nodes[cur].name);
        for (int i = len - 1; i >= from && at < sizeof chain - 80; i--)
            at += (size_t)snprintf(chain + at, sizeof chain - at, " -> %s", g->nodes[path[i]].name);
        return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s): is on a cycle (%s)", cur,
                        g->nodes[cur].name, chain), false;
    }
    return true;
}

static const char *node_what(const gnode *nd)
{
    if (nd->kind == ET_GNODE_OP)
        return et_graph_op_name((et_graph_op)nd->op);
    if (nd->kind == ET_GNODE_ATTR)
        return "attr";
    return nd->mod->kind == 1 ? "Sequential" : nd->mod->layer.type->name;
}

int64_t etd_graph_value_features(const etd_graph *g, int v)
{
    return v < g->ninputs ? g->in_features[v] : g->nodes[v - g->ninputs].features;
}

/* The last dimensions known, in topological order: mismatches named. */
bool etd_graph_follow_features(etd_graph *g, etd_err *e)
{
    for (int o = 0; o < g->nnodes; o++) {
        int k = g->order[o];
        gnode *nd = &g->nodes[k];
        int64_t f0 = nd->nargs > 0 ? etd_graph_value_features(g, nd->argv[0]) : -1;
        int64_t f1 = nd->nargs > 1 ? etd_graph_value_features(g, nd->argv[1]) : -1;
        nd->features = -1;
        if (nd->kind == ET_GNODE_MODULE) {
            const gmod *m = nd->mod;
            if (m->need >= 0 && f0 >= 0 && f0 != m->need)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s).args[0]: \"%s\" has last "
                                "dimension %lld, %s \"%s\" takes %lld", k, nd->name, nd->arg[0],
                                (long long)f0, node_what(nd), nd->target,
                                (long long)m->need), false;
            if (m->need >= 0 && f0 < 0 && nd->argv[0] < g->ninputs &&
                g->in_features[nd->argv[0]] < 0)
                g->in_features[nd->argv[0]] = m->need;   /* fixes the input's width */
            nd->features = m->gives == KEEPS ? f0 : m->gives;
            if (m->index_input && nd->argv[0] < g->ninputs)
                g->in_dtype[nd->argv[0]] = ET_INT64;
            continue;
        }
        if (nd->kind != ET_GNODE_OP)
            continue;
        if (nd->a.has_scalar) { /* x op number: x's shape */
            nd->features = f0;
            continue;
        }
        switch (nd->op) {
        case ET_GOP_NEG: case ET_GOP_EXP: case ET_GOP_LOG: case ET_GOP_SQRT: case ET_GOP_ERF:
            nd->features = f0;
            break;
        case ET_GOP_ADD: case ET_GOP_SUB: case ET_GOP_MUL: case ET_GOP_DIV: case ET_GOP_POW:
            if (f0 >= 0 && f1 >= 0 && f0 != f1 && f0 != 1 && f1 != 1)
                return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s, %s): the last dimensions of "
                                "\"%s\" (%lld) and \"%s\" (%lld) do not broadcast", k, nd->name,
                                node_what(nd), nd->arg[0], (long long)f0, nd->arg[1],
                                (long long)f1), false;
            nd->features = f0 >= 0 && f1 >= 0 ? (f0 > f1 ? f0 : f1) : -1;
            break;
        case ET_GOP_CAT:
            if (nd->a.dim == -1) {
                int64_t sum = 0;
                for (int i = 0; i < nd->nargs && sum >= 0; i++) {
                    int64_t f = etd_graph_value_features(g, nd->argv[i]);
                    sum = f >= 0 ? sum + f : -1;
                }
                nd->features = sum;
            }
            break;
        case ET_GOP_SOFTMAX: case ET_GOP_LOG_SOFTMAX:
            nd->features = f0;
            break;
        default:
            break;
        }
    }
    return true;
}

/* Every input and node leads to an output (a dead one is most likely a
 * wiring mistake; torch.fx would keep it). */
bool etd_graph_all_used(const etd_graph *g, etd_err *e)
{
    int nv = g->ninputs + g->nnodes;
    bool *used = calloc((size_t)nv + 1, sizeof *used);
    if (!used)
        return etd_fail(e, ETD_ENOMEM, "nodes: out of memory"), false;
    for (int i = 0; i < g->nout; i++)
        used[g->out_val[i]] = true;
    for (int o = g->nnodes - 1; o >= 0; o--) {
        int k = g->order[o];
        if (used[g->ninputs + k])
            for (int i = 0; i < g->nodes[k].nargs; i++)
                used[g->nodes[k].argv[i]] = true;
    }
    for (int i = 0; i < nv; i++) {
        if (used[i])
            continue;
        free(used);
        if (i < g->ninputs)
            return etd_fail(e, ETD_EINVAL, "inputs[%d] (%s): unused (no node takes it to an "
                            "output)", i, g->inputs[i]), false;
        int k = i - g->ninputs;
        return etd_fail(e, ETD_EINVAL, "nodes[%d] (%s): unused (it leads to no output)", k,
                        g->nodes[k].name), false;
    }
    free(used);
    return true;
}

