/* net_io.c - a call's data through the network (model_internal.h): the
 * inputs checked against what the spec fixes (one array, or a graph's
 * named parts), arrays made tensors of the model's dtypes (all rows or a
 * minibatch's), the forward layer by layer naming the failing layer (a
 * graph: every output), and the loss (one, or a graph's loss list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models/model_internal.h"
#include "server/models/spec_graph.h"

/* ---------------------------------------------------------------- inputs */

static etd_rc check_one_input(const etd_model *m, const etd_array *x, etd_err *e);

/* An input batch against the first layer that fixes its size; a graph's
 * named inputs each against what fixes theirs, with one number of rows. */
etd_rc etd_check_inputs(const etd_model *m, const etd_array *x, etd_err *e)
{
    const etd_graph *g = m->spec.graph;
    int ni = g ? etd_graph_num_inputs(g) : 1;
    if (!x->nparts && ni == 1)
        return check_one_input(m, x, e);
    if (x->nparts != ni) {
        char names[256] = "";
        size_t at = 0;
        for (int i = 0; i < ni && at < sizeof names - 70; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s\"%s\": ...",
                                   i ? ", " : "", etd_graph_input(g, i));
        return etd_fail(e, ETD_EINVAL, "inputs: the model has %d named input%s: give an object "
                        "{%s}", ni, ni == 1 ? "" : "s", names);
    }
    for (int i = 0; i < ni; i++) {
        const etd_array *p = &x->parts[i];
        const char *nm = etd_graph_input(g, i);
        int64_t f = etd_graph_input_features(g, i);
        char s[160];
        et_shape_str(p->shape, p->ndim, s, sizeof s);
        if (p->ndim < 1)
            return etd_fail(e, ETD_EINVAL, "inputs.%s: expected a batch (a list), got a scalar",
                            nm);
        if (p->shape[0] != x->parts[0].shape[0])
            return etd_fail(e, ETD_EINVAL, "inputs.%s: %lld rows, inputs.%s has %lld", nm,
                            (long long)p->shape[0], etd_graph_input(g, 0),
                            (long long)x->parts[0].shape[0]);
        if (f >= 0 && p->shape[p->ndim - 1] != f)
            return etd_fail(e, ETD_EINVAL, "inputs.%s: expected shape [batch, %lld], got %s", nm,
                            (long long)f, s);
    }
    return ETD_OK;
}

static etd_rc check_one_input(const etd_model *m, const etd_array *x, etd_err *e)
{
    if (x->ndim < 1)
        return etd_fail(e, ETD_EINVAL, "inputs: expected a batch (a list), got a scalar");
    int64_t in = m->spec.in_features;
    if (in >= 0 && x->shape[x->ndim - 1] != in) {
        char s[160];
        et_shape_str(x->shape, x->ndim, s, sizeof s);
        return etd_fail(e, ETD_EINVAL, "inputs: expected shape [batch, %lld] (%s = %lld), got %s",
                        (long long)in, m->spec.in_field, (long long)in, s);
    }
    return ETD_OK;
}

/* t (pool-owned) for a model taking dt.  The endpoints give index inputs
 * (first layer Embedding) and class targets as int64 already; floats
 * there are left to the layer or the loss, whose messages name the bad
 * element.  int64 for a float model becomes float32 (as torch's .float()). */
static et_tensor *as_dtype(et_tensor *t, et_dtype dt)
{
    return t && dt == ET_FLOAT32 && et_tensor_dtype(t) == ET_INT64 ? et_to_dtype(t, dt) : t;
}

et_tensor *etd_array_as(const etd_array *a, et_dtype dt)
{
    return as_dtype(etd_array_tensor(a), dt);
}

/* Rows idx[0..n) of a (first dimension) as a new tensor in the current pool,
 * copied once, straight into the tensor (this runs every training step). */
static et_tensor *gather_rows(const etd_array *a, const int64_t *idx, int64_t n, et_dtype dt)
{
    int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
    bool i64 = a->dtype == ET_INT64;
    size_t es = i64 ? sizeof(int64_t) : sizeof(float);
    const char *src = i64 ? (const char *)a->idata : (const char *)a->data;
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n;
    et_tensor *t = i64 ? et_tensor_new_int64(NULL, shape, a->ndim)
                       : et_tensor_new(NULL, shape, a->ndim);
    if (!t || n * row == 0) /* an empty tensor may have no data pointer */
        return t ? as_dtype(t, dt) : NULL;
    char *dst = i64 ? (char *)(void *)et_data_int64(t) : (char *)(void *)et_data(t);
    if (!dst)
        return NULL; /* t is the pool's */
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + (size_t)(i * row) * es, src + (size_t)(idx[i] * row) * es, (size_t)row * es);
    return as_dtype(t, dt);
}

etd_rc etd_lib_fail(etd_err *e, const char *what)
{
    return etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL, "%s: %s", what,
                    et_errmsg());
}

/* A call's tensors: the model's inputs (or targets), one per part of a
 * named body, else one. */

/* a's tensors (rows idx[0..n) when idx is given, else all), a part i as
 * dts[i], a plain array as dt; false on allocation failure. */
static bool tensors_of(const etd_array *a, const int64_t *idx, int64_t n, const et_dtype *dts,
                       et_dtype dt, etd_tlist *out)
{
    out->n = a->nparts ? a->nparts : 1;
    for (int i = 0; i < out->n; i++) {
        const etd_array *p = a->nparts ? &a->parts[i] : a;
        et_dtype d = a->nparts ? dts[i] : dt;
        out->t[i] = idx ? gather_rows(p, idx, n, d) : etd_array_as(p, d);
        if (!out->t[i])
            return false;
    }
    return true;
}

bool etd_inputs_of(const etd_model *m, const etd_array *x, const int64_t *idx, int64_t n,
                      etd_tlist *out)
{
    etd_model_io io;
    etd_model_io_get(m, &io);
    return tensors_of(x, idx, n, io.in_dtype, m->spec.input_dtype, out);
}

bool etd_targets_of(const etd_model *m, const etd_array *y, const int64_t *idx, int64_t n,
                       etd_tlist *out)
{
    if (m->spec.nterms && !y->nparts && m->spec.ntargets == 0) {   /* no targets at all */
        out->n = 0;
        return true;
    }
    return tensors_of(y, idx, n, m->spec.target_dtypes, m->spec.target_dtype, out);
}

/* layers[i]'s key padding mask from the model's token input (spec
 * {"input_equals": pad}): [batch, seq], nonzero (torch's True) where the
 * token is pad -- tokens are [batch, seq] for a batch_first layer, else
 * [seq, batch].  Pool-owned, or NULL + e. */
static et_tensor *key_padding_mask(const etd_layer *l, et_tensor *tokens, int i, etd_err *e)
{
    bool bf = !strcmp(l->type->name, "MultiheadAttention") ? l->u.mha.o.batch_first
              : !strcmp(l->type->name, "TransformerEncoder") ? l->kids[0].u.enc_layer.o.batch_first
                                                               : l->u.enc_layer.o.batch_first;
    if (et_tensor_dtype(tokens) != ET_INT64 || et_ndim(tokens) != 2)
        return etd_fail(e, ETD_EINVAL, "layers[%d] (%s): its key padding mask needs token "
                        "inputs %s, got %d dims", i, l->type->name,
                        bf ? "[batch, seq]" : "[seq, batch]", et_ndim(tokens)), NULL;
    int64_t r = et_shape(tokens)[0], c = et_shape(tokens)[1];
    int64_t shape[2] = {bf ? r : c, bf ? c : r};
    et_tensor *t = et_is_contiguous(tokens) ? tokens : et_contiguous(tokens);
    et_tensor *mk = t ? et_tensor_new_int64(NULL, shape, 2) : NULL;
    bool any = r > 0 && c > 0; /* an empty tensor may have no data pointer */
    const int64_t *tv = t && any ? et_data_int64(t) : NULL;
    int64_t *mv = mk && any ? et_data_int64(mk) : NULL;
    if (!mk || (any && (!tv || !mv)))
        return etd_fail(e, ETD_ENOMEM, "out of memory"), NULL;
    for (int64_t a = 0; a < r; a++)
        for (int64_t b = 0; b < c; b++)
            mv[bf ? a * c + b : b * r + a] = tv[a * c + b] == l->kpm_pad;
    return mk;
}

/* The network on x, layer by layer, so that a failure names the layer as
 * the spec does: "layers[3] (MaxPool2d): input [32, 8, 1, 1] is smaller
 * than kernel 2" (the library's own "MaxPool2d: " or "BatchNorm1d(64): "
 * prefix is dropped: the spec's name says it).  Pool-owned result or NULL + e. */
/* May layers a, b run as the library's fused Linear + activation?  Plain
 * layers only: no forward of the daemon's own, no key padding mask. */
static bool fusable_pair(const etd_layer *a, const etd_layer *b)
{
    if (a->kpm || b->kpm || a->type->forward || b->type->forward ||
        strcmp(a->type->name, "Linear") != 0)
        return false;
    return !strcmp(b->type->name, "ReLU") || !strcmp(b->type->name, "Tanh") ||
           !strcmp(b->type->name, "Sigmoid");
}

static et_tensor *run_net(etd_model *m, et_tensor *x, etd_err *e)
{
    if (!x)
        return etd_lib_fail(e, "inputs"), NULL;
    if (m->spec.graph) {   /* the library's message names the node: "node 's' (add): ..." */
        et_tensor *y = et_module_forward(m->net, x);
        if (!y)
            etd_lib_fail(e, "nodes");
        return y;
    }
    int n = et_sequential_len(m->net);
    et_tensor *tokens = x;
    for (int i = 0; i < n && x; i++) {
        et_module *layer = et_sequential_get(m->net, i);
        et_tensor *in[ETD_MAX_FWD_ARGS] = {x};   /* a layer list gives each layer only its input */
        const etd_layer *l = &m->spec.layers[i];
        if (l->kpm) {   /* ... and its key padding mask, made from the tokens */
            bool mha = !strcmp(l->type->name, "MultiheadAttention");
            if (!(in[mha ? 3 : 2] = key_padding_mask(l, tokens, i, e)))
                return NULL;
        }
        /* Linear then ReLU/Tanh/Sigmoid: the library's fused op, as a
         * Sequential's own forward runs them (one pass and node fewer; the
         * same values and gradients) */
        bool fuse = i + 1 < n && fusable_pair(l, l + 1);
        et_tensor *y = fuse ? et_sequential_forward_range(m->net, i, i + 2, x)
                            : etd_layer_forward(l, layer, in);
        if (!y) {
            const char *type = et_module_type(layer), *msg = et_errmsg();
            size_t tl = strlen(type);
            if (strncmp(msg, type, tl) == 0 && (msg[tl] == ':' || msg[tl] == '(')) {
                const char *colon = strstr(msg + tl, ": ");
                if (colon)
                    msg = colon + 2;
            }
            etd_fail(e, et_errcode() == ET_ERR_NOMEM ? ETD_ENOMEM : ETD_EINVAL,
                     "layers[%d] (%s): %s", i, type, msg);
            return NULL;
        }
        x = y;
        i += fuse;
    }
    return x;
}

/* Every output of the network on x (pool-owned), false + e. */
bool etd_run_net_all(etd_model *m, const etd_tlist *x, etd_tlist *out, etd_err *e)
{
    const etd_graph *g = m->spec.graph;
    out->n = g ? etd_graph_num_outputs(g) : 1;
    if (!g || (x->n == 1 && out->n == 1))
        return (out->t[0] = run_net(m, x->t[0], e)) != NULL;
    if (x->n != etd_graph_num_inputs(g))
        return etd_fail(e, ETD_EINVAL, "inputs: the model has %d named inputs",
                        etd_graph_num_inputs(g)), false;
    if (et_graph_forward(m->net, x->t, x->n, out->t, out->n) != ET_OK)
        return etd_lib_fail(e, "nodes"), false;
    return true;
}

/* Forward + loss in training mode: the loss tensor (pool-owned) or NULL + e. */
et_tensor *etd_train_loss(etd_model *m, const etd_tlist *xt, const etd_tlist *yt, etd_err *e)
{
    etd_tlist outs;
    if (!etd_run_net_all(m, xt, &outs, e))
        return NULL;
    if (m->spec.nterms) {
        if (yt->n != m->spec.ntargets)
            return etd_fail(e, ETD_EINVAL, "targets: the losses take %d named target%s",
                            m->spec.ntargets, m->spec.ntargets == 1 ? "" : "s"), NULL;
        return etd_spec_losses(&m->spec, outs.t, yt->t, e);
    }
    et_tensor *loss = etd_spec_loss(&m->spec, outs.t[0], yt->t[0], e);
    if (loss && et_numel(loss) != 1)
        return etd_fail(e, ETD_EINVAL, "loss: expected a scalar"), NULL;
    return loss;
}

