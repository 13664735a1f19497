/* onnx_import_attn.c - nn.MultiheadAttention's parameters under torch's
 * names in a graph import (onnx_import_graph.c).
 *
 * torch.onnx.export writes attention as primitives: the in-projection a
 * MatMul by the transposed in_proj_weight (folded: "onnx::MatMul_98") plus
 * Add("<p>.in_proj_bias"), the out-projection a Gemm of "<p>.out_proj.weight"
 * and "<p>.out_proj.bias".  Made Linear modules they would be named
 * "<p>.weight" and "<p>_out_proj.weight"; here they are `linear` op nodes on
 * attr nodes of a MultiheadAttention module <p> in the spec's "modules", so
 * the state_dict is torch's -- <p>.in_proj_weight, <p>.in_proj_bias,
 * <p>.out_proj.weight, <p>.out_proj.bias -- and torch's state_dict PUTs
 * as it is.  The module computes nothing itself (the graph's primitives
 * do); its num_heads is read from the Reshape of a head's slice
 * ([L, N * heads, head_dim]).  A prefix that is not a spec name (nested:
 * "layers.0.self_attn") keeps the Linear import. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/onnx_import_internal.h"
#include "server/models/onnx_import_ops.h"

static bool suffix(const char *s, const char *suf, char *prefix)
{
    size_t n = strlen(s), k = strlen(suf);
    if (n <= k || n - k >= OI_NAMELEN || strcmp(s + n - k, suf) != 0)
        return false;
    snprintf(prefix, OI_NAMELEN, "%.*s", (int)(n - k), s);
    if (!((prefix[0] >= 'a' && prefix[0] <= 'z') || (prefix[0] >= 'A' && prefix[0] <= 'Z') ||
          prefix[0] == '_'))
        return false;
    for (const char *c = prefix; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return false;
    return true;
}

static struct oi_attn *find_attn(oi_graph *G, const char *prefix)
{
    for (int k = 0; k < G->nattn; k++)
        if (!strcmp(G->attn[k].prefix, prefix))
            return &G->attn[k];
    return NULL;
}

static etd_rc put(oi_graph *G, const char *prefix, const char *what, et_tensor *t)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", prefix, what);
    etd_rc rc = et_tensor_dict_set(G->x->state, key, t) == ET_OK
                    ? ETD_OK : etd_fail(G->x->e, ETD_ENOMEM, "out of memory");
    et_tensor_free(t);
    return rc;
}

/* {"name": <p>_<what>, "attr": "<p>.<what>"}; its name into out */
static bool attr_node(oi_graph *G, const char *prefix, const char *what, char *out)
{
    char want[OI_NAMELEN * 2], state[OI_NAMELEN * 2];
    snprintf(want, sizeof want, "%s_%s", prefix, what);
    snprintf(state, sizeof state, "%s.%s", prefix, what);
    for (char *c = want; *c; c++)
        *c = *c == '.' ? '_' : *c;
    cJSON *nd = oi_take(G, want, out) ? cJSON_CreateObject() : NULL;
    if (!nd)
        return false;
    cJSON_AddItemToArray(G->nodes, nd);
    cJSON_AddStringToObject(nd, "name", out);
    cJSON_AddStringToObject(nd, "attr", state);
    return true;
}

etd_rc oi_attn_param(oi_graph *G, size_t *i, bool *handled)
{
    imp *x = G->x;
    const Onnx__GraphProto *g = x->g;
    const Onnx__NodeProto *n = g->node[*i], *add = NULL;
    const char *op = oi_s(n->op_type), *w = NULL, *b = NULL;
    *handled = false;
    bool transposed; /* the file's weight is torch's transposed (MatMul's x @ W^T) */
    if (!strcmp(op, "MatMul") && n->n_input == 2 && n->n_output >= 1 && *i + 1 < g->n_node) {
        add = g->node[*i + 1];
        const char *o = oi_s(n->output[0]);
        if (strcmp(oi_s(add->op_type), "Add") != 0 || add->n_input != 2 || add->n_output < 1 ||
            (add->domain && add->domain[0]))
            return ETD_OK;
        b = !strcmp(oi_s(add->input[0]), o) ? oi_s(add->input[1])
            : !strcmp(oi_s(add->input[1]), o) ? oi_s(add->input[0]) : NULL;
        w = oi_s(n->input[1]);
        transposed = true;
    } else if (!strcmp(op, "Gemm") && n->n_input == 3 && n->n_output >= 1 &&
               oi_attr_i(n, "transB", 0) == 1 && oi_attr_i(n, "transA", 0) == 0) {
        const Onnx__AttributeProto *al = oi_attr(n, "alpha"), *be = oi_attr(n, "beta");
        if ((al && al->has_f && al->f != 1) || (be && be->has_f && be->f != 1))
            return ETD_OK;
        w = oi_s(n->input[1]);
        b = oi_s(n->input[2]);
        transposed = false;
    } else {
        return ETD_OK;
    }
    char P[OI_NAMELEN];
    bool in = b && suffix(b, ".in_proj_bias", P);
    if (!b || (!in && !suffix(b, ".out_proj.bias", P)) || !oi_initializer(x, w) ||
        !oi_initializer(x, b))
        return ETD_OK;
    if (!in && strcmp(w, b) != 0 && !transposed) { /* Gemm: its weight named as torch's */
        char wp[OI_NAMELEN];
        if (!suffix(w, ".out_proj.weight", wp) || strcmp(wp, P) != 0)
            return ETD_OK;
    }
    struct oi_attn *at = find_attn(G, P);
    if (in ? at != NULL || G->nattn == (int)(sizeof G->attn / sizeof *G->attn)
           : !at || at->out)
        return ETD_OK; /* the Linear import */
    oi_val xv = *oi_find(G, oi_s(n->input[0])) /* checked by the caller */;
    et_tensor *wt = oi_tensor_of(x, n, w, transposed), *bt = NULL;
    if (!wt)
        return x->e->rc;
    bt = oi_tensor_of(x, add ? add : n, b, false);
    int64_t out_f = et_ndim(wt) == 2 ? et_shape(wt)[0] : -1, in_f = et_ndim(wt) == 2 ? et_shape(wt)[1] : -1;
    bool fits = bt && et_ndim(bt) == 1 && et_shape(bt)[0] == out_f &&
                (in ? out_f == 3 * in_f : out_f == in_f && in_f == at->E) && in_f > 0;
    if (!fits) {
        et_tensor_free(wt);
        et_tensor_free(bt);
        if (x->e->rc != ETD_OK)
            return x->e->rc;
        return ETD_OK; /* not torch's shapes: the Linear import says what is wrong */
    }
    char mname[OI_NAMELEN];
    if (in) {
        cJSON *mod = cJSON_CreateObject();
        if (!mod || !oi_take(G, P, mname) || strcmp(mname, P) != 0) {
            cJSON_Delete(mod);
            et_tensor_free(wt);
            et_tensor_free(bt);
            return mod ? ETD_OK : etd_fail(x->e, ETD_ENOMEM, "out of memory");
        }
        cJSON_AddStringToObject(mod, "type", "MultiheadAttention");
        cJSON_AddNumberToObject(mod, "embed_dim", (double)in_f);
        cJSON_AddNumberToObject(mod, "num_heads", 1);
        cJSON_AddItemToObject(G->modules, P, mod);
        at = &G->attn[G->nattn++];
        *at = (struct oi_attn){.v = oi_s((add ? add : n)->output[0]), .E = in_f};
        snprintf(at->prefix, sizeof at->prefix, "%s", P);
    } else {
        at->out = true;
    }
    etd_rc rc = put(G, P, in ? "in_proj_weight" : "out_proj.weight", wt);
    if (rc == ETD_OK)
        rc = put(G, P, in ? "in_proj_bias" : "out_proj.bias", bt);
    else
        et_tensor_free(bt);
    if (rc != ETD_OK)
        return rc;
    char wn[OI_NAMELEN], bn[OI_NAMELEN], name[OI_NAMELEN];
    const char *out = oi_s((add ? add : n)->output[0]);
    if (!attr_node(G, P, in ? "in_proj_weight" : "out_proj.weight", wn) ||
        !attr_node(G, P, in ? "in_proj_bias" : "out_proj.bias", bn) ||
        !oi_node_name(G, n, out, *i, name))
        return etd_fail(x->e, ETD_ENOMEM, "out of memory");
    cJSON *nd = cJSON_CreateObject();
    if (!nd)
        return etd_fail(x->e, ETD_ENOMEM, "out of memory");
    cJSON_AddItemToArray(G->nodes, nd);
    cJSON_AddStringToObject(nd, "name", name);
    cJSON_AddStringToObject(nd, "op", "linear");
    cJSON *a = cJSON_AddArrayToObject(nd, "args");
    cJSON_AddItemToArray(a, cJSON_CreateString(xv.spec));
    cJSON_AddItemToArray(a, cJSON_CreateString(wn));
    cJSON_AddItemToArray(a, cJSON_CreateString(bn));
    oi_shape os = xv.s;
    if (os.nd >= 1)
        os.d[os.nd - 1] = (oi_dim){out_f, 0};
    if (!oi_add_val(G, out, name, &os))
        return etd_fail(x->e, ETD_ENOMEM, "out of memory");
    *i += add ? 1 : 0;
    *handled = true;
    return ETD_OK;
}

void oi_attn_heads(oi_graph *G, const Onnx__NodeProto *n)
{
    const Onnx__GraphProto *g = G->x->g;
    if (strcmp(oi_s(n->op_type), "Reshape") != 0 || n->n_input != 2)
        return;
    const char *in = oi_s(n->input[0]);
    for (size_t k = 0; k < g->n_node; k++) { /* the node giving the Reshape's input */
        const Onnx__NodeProto *p = g->node[k];
        bool gives = false;
        for (size_t o = 0; o < p->n_output && !gives; o++)
            gives = !strcmp(oi_s(p->output[o]), in);
        if (!gives)
            continue;
        const char *op = oi_s(p->op_type);
        if ((strcmp(op, "Slice") != 0 && strcmp(op, "Split") != 0) || p->n_input < 1)
            return;
        for (int a = 0; a < G->nattn; a++) {
            struct oi_attn *at = &G->attn[a];
            const oi_const *sh = cget(G, n->input[1]);
            int64_t hd;
            if (at->heads || strcmp(oi_s(p->input[0]), at->v) != 0 || !sh || !sh->is_int ||
                sh->nd != 1 || sh->n < 1 || !const_int(sh, sh->n - 1, &hd) || hd < 1 ||
                at->E % hd)
                continue;
            cJSON *mod = cJSON_GetObjectItemCaseSensitive(G->modules, at->prefix);
            cJSON_ReplaceItemInObjectCaseSensitive(mod, "num_heads",
                                                   cJSON_CreateNumber((double)(at->E / hd)));
            at->heads = true;
        }
        return;
    }
}
