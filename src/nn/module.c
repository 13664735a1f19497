/*
 * module.c - torch.nn-style modules: Linear, activations, Dropout, Flatten,
 * Identity and Sequential, plus gradient clipping.
 *
 * A module is one struct with a small vtable (type name, raw forward).  Raw
 * forwards run inside the inner pool opened by et_module_forward(), so they
 * never free intermediates themselves (see nn_internal.h).
 */
#include "nn/nn_internal.h"
#include "core/core_internal.h"   /* etc_linear, etc_pooled */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef et_tensor *(*forward_fn)(et_module *m, et_tensor *x);

struct et_module {
    const char *type;
    forward_fn forward;
    bool training;

    /* Parameters in state_dict order.  A leaf module owns its tensors
     * (owns_params); a Sequential borrows its children's and prefixes the
     * names with the child index. */
    int nparams;
    char **names;
    et_tensor **params;
    bool owns_params;

    /* Sequential children (owned). */
    et_module **children;
    int nchildren, cap;
    et_module *parent;      /* the Sequential that owns it, or NULL */

    /* Configuration of the leaf modules. */
    int dim0, dim1;         /* softmax dim; flatten start/end */
    float f;                /* leaky slope, dropout p */
    bool flag;              /* gelu tanh approximation */
    et_generator *g;        /* dropout (borrowed) */
};

/* ---------------------------------------------------------------- helpers */

static et_module *module_alloc(const char *type, forward_fn fwd)
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

static void clear_params(et_module *m)
{
    for (int i = 0; i < m->nparams; i++) {
        free(m->names[i]);
        if (m->owns_params)
            et_tensor_free(m->params[i]);
    }
    free(m->names);
    free(m->params);
    m->names = NULL;
    m->params = NULL;
    m->nparams = 0;
}

void et_module_free(et_module *m)
{
    if (!m)
        return;
    clear_params(m);
    for (int i = 0; i < m->nchildren; i++)
        et_module_free(m->children[i]);
    free(m->children);
    free(m);
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ----------------------------------------------------------------- Linear */

static et_tensor *linear_forward(et_module *m, et_tensor *x)
{
    et_tensor *w = m->params[0];
    int nd = et_ndim(x);
    int64_t in = et_size(w, 1);
    if (nd < 1 || et_size(x, -1) != in) {
        char buf[64];
        et_set_error(ET_ERR_SHAPE, "Linear: input of shape %s, expected last dim %lld",
                     NN_SHAPE_STR(x, buf), (long long)in);
        return NULL;
    }
    /* core's fused addmm: one sgemm forward, dW straight into W's layout */
    return etc_pooled(etc_linear(x, w, m->nparams > 1 ? m->params[1] : NULL));
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
    int np = bias ? 2 : 1;
    m->names = calloc((size_t)np, sizeof(char *));
    m->params = calloc((size_t)np, sizeof(et_tensor *));
    m->owns_params = true;
    if (!m->names || !m->params)
        goto oom;
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
    m->params[0] = w;
    m->names[0] = str_dup("weight");
    m->nparams = 1;
    if (bias) {
        m->params[1] = b;
        m->names[1] = str_dup("bias");
        m->nparams = 2;
    }
    for (int i = 0; i < m->nparams; i++) {
        if (!m->params[i] || !m->names[i])
            goto oom;
        et_set_requires_grad(m->params[i], true);
    }
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
    float p = m->f;
    if (!m->training || p == 0.0f)
        return x;
    if (p >= 1.0f)
        return et_mul_scalar(x, 0.0f);
    int64_t n = et_numel(x);
    float *mask = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!mask) {
        et_set_error(ET_ERR_NOMEM, "Dropout: out of memory for a %lld-element mask",
                     (long long)n);
        return NULL;
    }
    /* bernoulli(1-p) then divided by (1-p), as torch's dropout. */
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++)
        mask[i] = et_generator_uniform(m->g) < (double)(1.0f - p) ? scale : 0.0f;
    et_tensor *mt = et_tensor_new(mask, et_shape(x), et_ndim(x));
    free(mask);
    return mt ? et_mul(x, mt) : NULL;
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

static et_tensor *sequential_forward(et_module *m, et_tensor *x)
{
    et_tensor *cur = x;
    for (int i = 0; i < m->nchildren && cur; i++)
        cur = m->children[i]->forward(m->children[i], cur);
    return cur;
}

et_module *et_sequential_new(void)
{
    return module_alloc("Sequential", sequential_forward);
}

/* The parent copies the child's (name, tensor) list when the child is
 * appended, so a Sequential that already has a parent cannot grow (its
 * parent's list would go stale), and a module has at most one parent (two
 * owners would free it twice; A in B in A would be a cycle). */
et_status et_sequential_append(et_module *seq, et_module *child)
{
    /* never free a module that is owned elsewhere, or that owns seq */
    bool ancestor = false;
    for (const et_module *p = seq ? seq->parent : NULL; p && !ancestor; p = p->parent)
        ancestor = p == child;
    if (child && child != seq && (child->parent || ancestor))
        return et_set_error(ET_ERR_STATE, "sequential_append: the %s is already %s",
                            child->type, ancestor ? "an enclosing Sequential (cycle)"
                                                  : "in a Sequential (a module has one parent)");
    if (seq && seq->parent && child && child != seq && seq->forward == sequential_forward) {
        et_module_free(child);
        return et_set_error(ET_ERR_STATE, "sequential_append: this Sequential is already "
                            "inside another one; build it completely before appending it");
    }
    if (!seq || !child || seq == child || seq->forward != sequential_forward) {
        et_module_free(child == seq ? NULL : child);
        return et_set_error(ET_ERR_ARG, "sequential_append: %s",
                            !seq || !child ? "NULL module" :
                            seq == child ? "cannot append a module to itself"
                                         : "not a Sequential");
    }
    int idx = seq->nchildren;
    int add = child->nparams;
    char **names = NULL;
    et_tensor **params = NULL;
    if (seq->nchildren == seq->cap) {
        int cap = seq->cap ? seq->cap * 2 : 4;
        et_module **c = realloc(seq->children, (size_t)cap * sizeof(*c));
        if (!c)
            goto oom;
        seq->children = c;
        seq->cap = cap;
    }
    names = calloc((size_t)(seq->nparams + add) + 1, sizeof(char *));
    params = calloc((size_t)(seq->nparams + add) + 1, sizeof(et_tensor *));
    if (!names || !params)
        goto oom;
    for (int i = 0; i < add; i++) {
        size_t len = strlen(child->names[i]) + 16;
        names[seq->nparams + i] = malloc(len);
        if (!names[seq->nparams + i]) {
            for (int k = 0; k < i; k++)
                free(names[seq->nparams + k]);
            goto oom;
        }
        snprintf(names[seq->nparams + i], len, "%d.%s", idx, child->names[i]);
        params[seq->nparams + i] = child->params[i];
    }
    for (int i = 0; i < seq->nparams; i++) {
        names[i] = seq->names[i];
        params[i] = seq->params[i];
    }
    free(seq->names);
    free(seq->params);
    seq->names = names;
    seq->params = params;
    seq->nparams += add;
    seq->children[seq->nchildren++] = child;   /* keeps its own mode, as torch */
    child->parent = seq;
    return ET_OK;
oom:
    free(names);
    free(params);
    et_module_free(child);
    return et_set_error(ET_ERR_NOMEM, "sequential_append: out of memory");
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
        et_set_error(ET_ERR_ARG, "module_forward: NULL %s", m ? "input" : "module");
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

int et_module_num_params(const et_module *m)
{
    return m ? m->nparams : 0;
}

const char *et_module_param_name(const et_module *m, int i)
{
    if (!m || i < 0 || i >= m->nparams) {
        et_set_error(ET_ERR_INDEX, "module_param_name: index %d out of range (%d parameters)", i,
                     m ? m->nparams : 0);
        return NULL;
    }
    return m->names[i];
}

et_tensor *et_module_param(const et_module *m, int i)
{
    if (!m || i < 0 || i >= m->nparams) {
        et_set_error(ET_ERR_INDEX, "module_param: index %d out of range (%d parameters)", i,
                     m ? m->nparams : 0);
        return NULL;
    }
    return m->params[i];
}

et_tensor *et_module_param_by_name(const et_module *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->params[i];
    return NULL;
}

int64_t et_module_param_count(const et_module *m)
{
    int64_t total = 0;
    for (int i = 0; m && i < m->nparams; i++)
        total += et_numel(m->params[i]);
    return total;
}

void et_module_zero_grad(et_module *m)
{
    for (int i = 0; m && i < m->nparams; i++) {
        et_tensor *g = et_grad(m->params[i]);
        if (g)
            et_fill_(g, 0.0f);
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
