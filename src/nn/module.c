/*
 * module.c - torch.nn-style modules: Linear, activations, Dropout, Flatten,
 * Identity and Sequential, plus gradient clipping.
 *
 * The module object itself (struct et_module, module_internal.h: state
 * registration, Sequential, the generic API) lives here too; other layers
 * are in their own files and use module_internal.h.
 */
#include "nn/module_internal.h"
#include "core/core_internal.h"   /* etc_linear, etc_pooled */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef nn_forward_fn forward_fn;

/* ---------------------------------------------------------------- helpers */

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

et_module *nn_module_alloc(const char *type, nn_forward_fn fwd)
{
    et_module *m = calloc(1, sizeof(*m));
    if (!m) {
        et_set_error(ET_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    m->type = type;
    m->forward = fwd;
    m->training = true;
    return m;
}

static et_module *module_alloc(const char *type, forward_fn fwd)
{
    return nn_module_alloc(type, fwd);
}

static void list_clear(nn_list *l, bool owns)
{
    for (int i = 0; i < l->n; i++) {
        free(l->names[i]);
        if (owns)
            et_tensor_free(l->t[i]);
    }
    free(l->names);
    free(l->t);
    *l = (nn_list){0};
}

static void clear_params(et_module *m)
{
    /* every module holds a reference to each tensor of its params and
     * buffers (its own, and its children's: attach_child takes one); state
     * only points at them */
    list_clear(&m->params, true);
    list_clear(&m->buffers, true);
    list_clear(&m->state, false);
    free(m->is_buffer);
    m->is_buffer = NULL;
}

void et_module_free(et_module *m)
{
    if (!m)
        return;
    clear_params(m);
    for (int i = 0; i < m->nchildren; i++) {
        et_module_free(m->children[i]);
        free(m->child_names[i]);
    }
    free(m->children);
    free(m->child_names);
    if (m->impl_free)
        m->impl_free(m->impl);
    else
        free(m->impl);
    free(m);
}

void nn_module_set_impl(et_module *m, void *impl, void (*free_fn)(void *impl))
{
    m->impl = impl;
    m->impl_free = free_fn;
}

/* Appends (copy of name, t) to l; false on NOMEM (l unchanged). */
static bool list_push(nn_list *l, const char *name, et_tensor *t)
{
    char *nm = str_dup(name);
    char **nn = nm ? realloc(l->names, (size_t)(l->n + 1) * sizeof *nn) : NULL;
    if (nn)
        l->names = nn;
    et_tensor **nt = nn ? realloc(l->t, (size_t)(l->n + 1) * sizeof *nt) : NULL;
    if (!nt) {
        free(nm);
        return false;
    }
    l->t = nt;
    l->names[l->n] = nm;
    l->t[l->n++] = t;
    return true;
}

static et_status add_entry(et_module *m, const char *name, et_tensor *t, bool buffer)
{
    if (!t)
        return et_errcode() != ET_OK ? et_errcode()
                                     : et_set_error(ET_ERR_ARG, "%s: NULL %s", m->type, name);
    bool *ib = realloc(m->is_buffer, (size_t)(m->state.n + 1) * sizeof *ib);
    if (ib)
        m->is_buffer = ib;
    nn_list *own = buffer ? &m->buffers : &m->params;
    if (!ib || !list_push(own, name, t)) {
        et_tensor_free(t);
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory adding %s", m->type, name);
    }
    if (!list_push(&m->state, name, t)) {
        own->n--;   /* still owned: drop the entry and its tensor */
        free(own->names[own->n]);
        et_tensor_free(t);
        return et_set_error(ET_ERR_NOMEM, "%s: out of memory adding %s", m->type, name);
    }
    m->is_buffer[m->state.n - 1] = buffer;
    if (!buffer)
        et_set_requires_grad(t, true);
    return ET_OK;
}

et_status nn_module_add_param(et_module *m, const char *name, et_tensor *t)
{
    return add_entry(m, name, t, false);
}

et_status nn_module_add_buffer(et_module *m, const char *name, et_tensor *t)
{
    return add_entry(m, name, t, true);
}

static et_tensor *list_find(const nn_list *l, const char *name)
{
    for (int i = 0; name && i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return l->t[i];
    return NULL;
}

et_tensor *nn_param(const et_module *m, const char *name) { return list_find(&m->params, name); }
et_tensor *nn_buffer(const et_module *m, const char *name) { return list_find(&m->buffers, name); }

/* ----------------------------------------------------------------- Linear */

static et_tensor *linear_forward(et_module *m, et_tensor *x)
{
    et_tensor *w = m->params.t[0];
    int nd = et_ndim(x);
    int64_t in = et_size(w, 1);
    if (nd < 1 || et_size(x, -1) != in) {
        char buf[64];
        et_set_error(ET_ERR_SHAPE, "Linear: input of shape %s, expected last dim %lld",
                     NN_SHAPE_STR(x, buf), (long long)in);
        return NULL;
    }
    /* core's fused addmm: one sgemm forward, dW straight into W's layout */
    return etc_pooled(etc_linear(x, w, m->params.n > 1 ? m->params.t[1] : NULL));
}

et_module *et_linear_new(int64_t in_features, int64_t out_features, bool bias, et_generator *g)
{
    if (in_features <= 0 || out_features <= 0) {
        et_set_error(ET_ERR_ARG, "Linear: in_features (%lld) and out_features (%lld) must be "
                     "positive", (long long)in_features, (long long)out_features);
        return NULL;
    }
    if (!g)
        g = et_default_generator();
    et_module *m = module_alloc("Linear", linear_forward);
    if (!m)
        return NULL;
    /* kaiming_uniform_(a=sqrt(5)) gives bound = gain*sqrt(3/fan_in) with
     * gain = sqrt(2/(1+5)), i.e. 1/sqrt(fan_in); the bias uses the same. */
    double bound = 1.0 / sqrt((double)in_features);
    et_pool_begin();
    et_tensor *w = et_uniform(g, ET_SHAPE(out_features, in_features), -bound, bound);
    et_tensor *b = bias ? et_uniform(g, ET_SHAPE(out_features), -bound, bound) : NULL;
    if (w)
        et_tensor_ref(w);
    if (b)
        et_tensor_ref(b);
    et_pool_end();
    et_status st = nn_module_add_param(m, "weight", w);
    if (bias) {
        if (st == ET_OK)
            st = nn_module_add_param(m, "bias", b);
        else
            et_tensor_free(b);
    }
    if (st != ET_OK)
        goto oom;
    return m;
oom:
    et_module_free(m);
    et_set_error(ET_ERR_NOMEM, "Linear(%lld, %lld): out of memory", (long long)in_features,
                 (long long)out_features);
    return NULL;
}

/* ------------------------------------------------------------ activations */

static et_tensor *relu_forward(et_module *m, et_tensor *x) { return et_relu(x); }
static et_tensor *tanh_forward(et_module *m, et_tensor *x) { return et_tanh(x); }
static et_tensor *sigmoid_forward(et_module *m, et_tensor *x) { return et_sigmoid(x); }
static et_tensor *gelu_forward(et_module *m, et_tensor *x) { return et_gelu(x, m->flag); }
static et_tensor *softmax_forward(et_module *m, et_tensor *x) { return et_softmax(x, m->dim0); }
static et_tensor *log_softmax_forward(et_module *m, et_tensor *x)
{
    return et_log_softmax(x, m->dim0);
}
static et_tensor *leaky_forward(et_module *m, et_tensor *x) { return et_leaky_relu(x, m->f); }
static et_tensor *flatten_forward(et_module *m, et_tensor *x)
{
    return et_flatten(x, m->dim0, m->dim1);
}
static et_tensor *identity_forward(et_module *m, et_tensor *x) { return x; }

et_module *et_relu_new(void) { return module_alloc("ReLU", relu_forward); }
et_module *et_tanh_new(void) { return module_alloc("Tanh", tanh_forward); }
et_module *et_sigmoid_new(void) { return module_alloc("Sigmoid", sigmoid_forward); }
et_module *et_identity_new(void) { return module_alloc("Identity", identity_forward); }

et_module *et_gelu_new(bool tanh_approximation)
{
    et_module *m = module_alloc("GELU", gelu_forward);
    if (m)
        m->flag = tanh_approximation;
    return m;
}

et_module *et_softmax_new(int dim)
{
    et_module *m = module_alloc("Softmax", softmax_forward);
    if (m)
        m->dim0 = dim;
    return m;
}

et_module *et_log_softmax_new(int dim)
{
    et_module *m = module_alloc("LogSoftmax", log_softmax_forward);
    if (m)
        m->dim0 = dim;
    return m;
}

et_module *et_leaky_relu_new(float negative_slope)
{
    if (!isfinite(negative_slope)) {
        et_set_error(ET_ERR_ARG, "LeakyReLU: negative_slope must be finite");
        return NULL;
    }
    et_module *m = module_alloc("LeakyReLU", leaky_forward);
    if (m)
        m->f = negative_slope;
    return m;
}

et_module *et_flatten_new(int start_dim, int end_dim)
{
    et_module *m = module_alloc("Flatten", flatten_forward);
    if (m) {
        m->dim0 = start_dim;
        m->dim1 = end_dim;
    }
    return m;
}

/* ---------------------------------------------------------------- Dropout */

static et_tensor *dropout_forward(et_module *m, et_tensor *x)
{
    return et_dropout(x, m->f, m->training, m->g);
}

et_module *et_dropout_new(float p, et_generator *g)
{
    if (!(p >= 0.0f && p <= 1.0f)) {
        et_set_error(ET_ERR_ARG, "Dropout: probability has to be between 0 and 1, but got %g",
                     (double)p);
        return NULL;
    }
    et_module *m = module_alloc("Dropout", dropout_forward);
    if (m) {
        m->f = p;
        m->g = g ? g : et_default_generator();
    }
    return m;
}

/* ------------------------------------------------------------- Sequential */

/* Which activation module follows a Linear, for the fused op (core's
 * etc_linear_act: one node, the bias and ReLU in the GEMM's store). */
static int fused_act(const et_module *m)
{
    if (m->forward == relu_forward)
        return ETC_ACT_RELU;
    if (m->forward == tanh_forward)
        return ETC_ACT_TANH;
    if (m->forward == sigmoid_forward)
        return ETC_ACT_SIGMOID;
    return ETC_ACT_NONE;
}

static et_tensor *forward_range(et_module *m, int from, int to, et_tensor *x)
{
    et_tensor *cur = x;
    for (int i = from; i < to && cur; i++) {
        et_module *c = m->children[i];
        int act = i + 1 < to && c->forward == linear_forward
                      ? fused_act(m->children[i + 1]) : ETC_ACT_NONE;
        if (act != ETC_ACT_NONE && et_ndim(cur) >= 1 &&
            et_size(cur, -1) == et_size(c->params.t[0], 1)) {
            /* Linear + ReLU/Tanh/Sigmoid as one op: the same values and
             * gradients (same kernels), one graph node and pass fewer; the
             * output's grad_fn is the activation's, as in torch */
            cur = etc_pooled(etc_linear_act(cur, c->params.t[0],
                                            c->params.n > 1 ? c->params.t[1] : NULL, act));
            i++;
            continue;
        }
        cur = c->forward(c, cur);
    }
    return cur;
}

static et_tensor *sequential_forward(et_module *m, et_tensor *x)
{
    return forward_range(m, 0, m->nchildren, x);
}

et_tensor *et_sequential_forward_range(et_module *seq, int from, int to, et_tensor *x)
{
    if (!seq || !x || seq->forward != sequential_forward || from < 0 || to > seq->nchildren ||
        from > to)
    {
        et_set_error(ET_ERR_ARG, "sequential_forward_range: not a Sequential, or children "
                     "[%d, %d) out of range", from, to);
        return NULL;
    }
    return forward_range(seq, from, to, x);
}

et_module *et_sequential_new(void)
{
    et_module *m = module_alloc("Sequential", sequential_forward);
    if (m)
        m->indexed = true;
    return m;
}

static et_status attach_child(et_module *m, const char *prefix, et_module *child);

/* The parent copies the child's (name, tensor) list when the child is
 * appended, so a Sequential that already has a parent cannot grow (its
 * parent's list would go stale), and a module has at most one parent (two
 * owners would free it twice; A in B in A would be a cycle). */
et_status et_sequential_append(et_module *seq, et_module *child)
{
    const char *op = seq && seq->type && !strcmp(seq->type, "ModuleList")
                         ? "module_list_append" : "sequential_append";
    /* never free a module that is owned elsewhere, or that owns seq */
    bool ancestor = false;
    for (const et_module *p = seq ? seq->parent : NULL; p && !ancestor; p = p->parent)
        ancestor = p == child;
    if (child && child != seq && (child->parent || ancestor))
        return et_set_error(ET_ERR_STATE, "%s: the %s is already %s", op,
                            child->type, ancestor ? "an enclosing Sequential (cycle)"
                                                  : "in a Sequential (a module has one parent)");
    if (seq && seq->parent && child && child != seq && seq->indexed) {
        et_module_free(child);
        return et_set_error(ET_ERR_STATE, "%s: this %s is already inside another module; "
                            "build it completely before appending to it", op, seq->type);
    }
    if (!seq || !child || seq == child || !seq->indexed) {
        et_module_free(child == seq ? NULL : child);
        if (!seq || !child) /* most likely a constructor that failed: keep its message */
            return et_set_error_after(ET_ERR_ARG, "%s: NULL module", op);
        return et_set_error(ET_ERR_ARG, "%s: %s", op,
                            seq == child ? "cannot append a module to itself"
                                         : "not a Sequential or ModuleList");
    }
    return attach_child(seq, NULL, child);
}

/* Appends child to m->children and its (prefixed) parameters, buffers and
 * state entries to m's lists, all or nothing.  prefix NULL: the child's
 * index (Sequential, ModuleList).  Frees child on failure. */
static et_status attach_child(et_module *m, const char *prefix, et_module *child)
{
    if (m->nchildren == m->cap) {
        int cap = m->cap ? m->cap * 2 : 4;
        et_module **c = realloc(m->children, (size_t)cap * sizeof(*c));
        if (!c)
            goto oom;
        m->children = c;
        char **cn = realloc(m->child_names, (size_t)cap * sizeof(*cn));
        if (!cn)
            goto oom;
        m->child_names = cn;
        m->cap = cap;
    }
    char idxname[16];
    if (!prefix) {
        snprintf(idxname, sizeof idxname, "%d", m->nchildren);
        prefix = idxname;
    }
    char *keep_name = str_dup(prefix);
    if (!keep_name)
        goto oom;
    /* all or nothing: build the three grown lists first */
    nn_list grown[3] = {{0}};
    const nn_list *mine[3] = {&m->params, &m->buffers, &m->state};
    const nn_list *theirs[3] = {&child->params, &child->buffers, &child->state};
    bool *ib = malloc((size_t)(m->state.n + child->state.n + 1) * sizeof *ib);
    bool ok = ib != NULL;
    for (int k = 0; k < 3 && ok; k++) {
        int n = mine[k]->n + theirs[k]->n;
        grown[k].names = calloc((size_t)n + 1, sizeof(char *));
        grown[k].t = calloc((size_t)n + 1, sizeof(et_tensor *));
        ok = grown[k].names && grown[k].t;
        for (int i = 0; ok && i < theirs[k]->n; i++) {
            size_t len = strlen(theirs[k]->names[i]) + strlen(prefix) + 2;
            char *nm = malloc(len);
            ok = nm != NULL;
            if (ok)
                snprintf(nm, len, "%s.%s", prefix, theirs[k]->names[i]);
            grown[k].names[mine[k]->n + i] = nm;
            grown[k].t[mine[k]->n + i] = theirs[k]->t[i];
        }
        grown[k].n = n;
    }
    if (!ok) {
        for (int k = 0; k < 3; k++) {
            for (int i = 0; grown[k].names && i < theirs[k]->n; i++)
                free(grown[k].names[mine[k]->n + i]);
            free(grown[k].names);
            free(grown[k].t);
        }
        free(ib);
        free(keep_name);
        goto oom;
    }
    nn_list *dst[3] = {&m->params, &m->buffers, &m->state};
    for (int k = 0; k < 2; k++)   /* m's own reference of each param and buffer */
        for (int i = 0; i < theirs[k]->n; i++)
            et_tensor_ref(theirs[k]->t[i]);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < mine[k]->n; i++) {
            grown[k].names[i] = mine[k]->names[i];
            grown[k].t[i] = mine[k]->t[i];
        }
        free(dst[k]->names);
        free(dst[k]->t);
        *dst[k] = grown[k];
    }
    for (int i = 0; i < m->state.n; i++)
        ib[i] = i < m->state.n - child->state.n ? m->is_buffer[i]
                                                : child->is_buffer[i - (m->state.n -
                                                                        child->state.n)];
    free(m->is_buffer);
    m->is_buffer = ib;
    m->child_names[m->nchildren] = keep_name;
    m->children[m->nchildren++] = child;   /* keeps its own mode, as torch */
    child->parent = m;
    return ET_OK;
oom:
    et_module_free(child);
    return et_set_error(ET_ERR_NOMEM, "%s: out of memory adding a %s", m->type, child->type);
}

et_status nn_module_add_child(et_module *m, const char *name, et_module *child)
{
    if (!child)
        return et_errcode() != ET_OK ? et_errcode()
                                     : et_set_error(ET_ERR_ARG, "%s: NULL %s", m->type, name);
    if (child->parent || m->parent) {
        et_module_free(child->parent ? NULL : child);
        return et_set_error(ET_ERR_STATE, "%s: %s already has a parent", m->type,
                            child->parent ? name : "the module");
    }
    return attach_child(m, name, child);
}

int et_sequential_len(const et_module *seq)
{
    return seq && seq->forward == sequential_forward ? seq->nchildren : 0;
}

et_module *et_sequential_get(const et_module *seq, int i)
{
    if (!seq || seq->forward != sequential_forward || i < 0 || i >= seq->nchildren) {
        et_set_error(ET_ERR_INDEX, "sequential_get: index %d out of range (len %d)", i,
                     et_sequential_len(seq));
        return NULL;
    }
    return seq->children[i];
}

/* ----------------------------------------------------------- generic API */

et_tensor *et_module_forward(et_module *m, et_tensor *x)
{
    if (!m || !x) {
        et_set_error_after(ET_ERR_ARG, "module_forward: NULL %s", m ? "input" : "module");
        return NULL;
    }
    nn_scope_begin();
    return nn_scope_end(m->forward(m, x));
}

const char *et_module_type(const et_module *m)
{
    return m ? m->type : NULL;
}

void et_module_train(et_module *m, bool mode)
{
    if (!m)
        return;
    m->training = mode;
    for (int i = 0; i < m->nchildren; i++)
        et_module_train(m->children[i], mode);
}

bool et_module_is_training(const et_module *m)
{
    return m && m->training;
}

static int list_len(const et_module *m, const nn_list *l) { return m ? l->n : 0; }

static bool list_index_ok(const et_module *m, const nn_list *l, int i, const char *what)
{
    if (m && i >= 0 && i < l->n)
        return true;
    et_set_error(ET_ERR_INDEX, "module_%s: index %d out of range (%d entries)", what, i,
                 m ? l->n : 0);
    return false;
}

int et_module_num_params(const et_module *m) { return m ? m->params.n : 0; }

const char *et_module_param_name(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->params : NULL, i, "param_name") ? m->params.names[i] : NULL;
}

et_tensor *et_module_param(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->params : NULL, i, "param") ? m->params.t[i] : NULL;
}

et_tensor *et_module_param_by_name(const et_module *m, const char *name)
{
    return m ? list_find(&m->params, name) : NULL;
}

int et_module_num_buffers(const et_module *m) { return m ? list_len(m, &m->buffers) : 0; }

const char *et_module_buffer_name(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->buffers : NULL, i, "buffer_name") ? m->buffers.names[i]
                                                                         : NULL;
}

et_tensor *et_module_buffer(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->buffers : NULL, i, "buffer") ? m->buffers.t[i] : NULL;
}

et_tensor *et_module_buffer_by_name(const et_module *m, const char *name)
{
    return m ? list_find(&m->buffers, name) : NULL;
}

int et_module_num_state(const et_module *m) { return m ? list_len(m, &m->state) : 0; }

const char *et_module_state_name(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->state : NULL, i, "state_name") ? m->state.names[i] : NULL;
}

et_tensor *et_module_state_tensor(const et_module *m, int i)
{
    return list_index_ok(m, m ? &m->state : NULL, i, "state_tensor") ? m->state.t[i] : NULL;
}

bool et_module_state_is_buffer(const et_module *m, int i)
{
    return m && i >= 0 && i < m->state.n && m->is_buffer[i];
}

int64_t et_module_param_count(const et_module *m)
{
    int64_t total = 0;
    for (int i = 0; m && i < m->params.n; i++)
        total += et_numel(m->params.t[i]);
    return total;
}

void et_module_zero_grad(et_module *m)
{
    for (int i = 0; m && i < m->params.n; i++) {
        et_tensor *g = et_grad(m->params.t[i]);
        if (g)
            nn_zero_grad_(g);
    }
}

/* ------------------------------------------------------ gradient clipping */

double et_clip_grad_norm(et_tensor *const *params, int n, double max_norm, double norm_type)
{
    if (n < 0 || (n > 0 && !params) || isnan(max_norm) || !(norm_type > 0.0)) {
        et_set_error(ET_ERR_ARG, "clip_grad_norm: invalid arguments (n=%d, max_norm=%g, "
                     "norm_type=%g)", n, max_norm, norm_type);
        return NAN;
    }
    bool inf_norm = isinf(norm_type);
    double acc = 0.0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        et_tensor *g = params[i] ? et_grad(params[i]) : NULL;
        if (!g)
            continue;
        any = true;
        nn_buf b;
        if (nn_buf_acquire(&b, g) != ET_OK)
            return NAN;
        int64_t k = et_numel(g);
        double part = 0.0;
        for (int64_t j = 0; j < k; j++) {
            double a = fabs((double)b.p[j]);
            if (inf_norm)
                part = (a > part || isnan(a)) ? a : part;
            else
                part += norm_type == 2.0 ? a * a : pow(a, norm_type);
        }
        nn_buf_release(&b, false);
        if (inf_norm)
            acc = (part > acc || isnan(part)) ? part : acc;
        else
            acc += part;
    }
    if (!any)
        return 0.0;
    double total = inf_norm ? acc : (norm_type == 2.0 ? sqrt(acc) : pow(acc, 1.0 / norm_type));
    /* torch computes the norm in float32 and scales by
     * clamp(max_norm / (total + 1e-6), max=1). */
    float totalf = (float)total;
    float coef = (float)max_norm / (totalf + 1e-6f);
    if (coef < 1.0f || isnan(coef)) {
        for (int i = 0; i < n; i++) {
            et_tensor *g = params[i] ? et_grad(params[i]) : NULL;
            if (!g)
                continue;
            nn_buf b;
            if (nn_buf_acquire(&b, g) != ET_OK)
                return NAN;
            int64_t k = et_numel(g);
            for (int64_t j = 0; j < k; j++)
                b.p[j] *= coef;
            nn_buf_release(&b, true);
        }
    }
    return (double)totalf;
}

et_status et_clip_grad_value(et_tensor *const *params, int n, double clip_value)
{
    if (n < 0 || (n > 0 && !params) || !(clip_value >= 0.0))
        return et_set_error(ET_ERR_ARG, "clip_grad_value: invalid arguments (n=%d, clip_value=%g)",
                            n, clip_value);
    float c = (float)clip_value;
    for (int i = 0; i < n; i++) {
        et_tensor *g = params[i] ? et_grad(params[i]) : NULL;
        if (!g)
            continue;
        nn_buf b;
        et_status st = nn_buf_acquire(&b, g);
        if (st != ET_OK)
            return st;
        int64_t k = et_numel(g);
        for (int64_t j = 0; j < k; j++) {
            float v = b.p[j];
            b.p[j] = v < -c ? -c : (v > c ? c : v);
        }
        nn_buf_release(&b, true);
    }
    return ET_OK;
}
