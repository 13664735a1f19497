/*
 * module_internal.h - the module object, for the files that define layers
 * (module.c: Linear, activations, Dropout, Flatten, Sequential; norm.c,
 * embedding.c, conv/pool modules...).  Never installed.
 *
 * A layer is a struct et_module with a type name, a raw forward and its
 * state: parameters and buffers it owns (added with nn_module_add_param /
 * nn_module_add_buffer, in torch's registration order) and a per-layer
 * configuration behind `impl` (freed with the module through impl_free).
 * Raw forwards run inside the inner pool opened by et_module_forward(), so
 * they never free intermediates themselves (see nn_internal.h).
 */
#ifndef EASYTORCH_MODULE_INTERNAL_H
#define EASYTORCH_MODULE_INTERNAL_H

#include "nn/nn_internal.h"

typedef et_tensor *(*nn_forward_fn)(et_module *m, et_tensor *x);

/* (name, tensor) lists in state_dict order */
typedef struct nn_list {
    int n;
    char **names;
    et_tensor **t;
} nn_list;

struct et_module {
    const char *type;
    nn_forward_fn forward;
    bool training;

    /* Parameters (what optimizers see) and buffers (running statistics:
     * saved and loaded, never optimized).  A module holds a reference to
     * each: its own, and its children's (named "<child>.<name>"; a
     * Sequential's children by index).  `state` is every entry in torch's
     * state_dict order (a module's parameters, then its buffers, children in
     * order), is_buffer[k] telling which. */
    nn_list params, buffers, state;
    bool *is_buffer;

    /* Children (owned) and their names ("0", "self_attn"), in order. */
    et_module **children;
    char **child_names;
    bool indexed;           /* Sequential / ModuleList: et_sequential_append names by index */
    int nchildren, cap;
    et_module *parent;      /* the Sequential that owns it, or NULL */

    /* Configuration of the simple layers of module.c. */
    int dim0, dim1;         /* softmax dim; flatten start/end */
    float f;                /* leaky slope, dropout p */
    bool flag;              /* gelu tanh approximation */
    et_generator *g;        /* dropout (borrowed) */

    /* Configuration of any other layer (owned; freed by impl_free). */
    void *impl;
    void (*impl_free)(void *impl);
};

/* A new module of `type` (a static string, torch's class name) in training
 * mode with no state; NULL + ET_ERR_NOMEM. */
et_module *nn_module_alloc(const char *type, nn_forward_fn forward);

/* Register a parameter / a buffer under `name` (copied).  The module takes
 * over the caller's reference to t, also on failure (t is then released):
 * create t with nn_keep_* so that no pool owns it.  add_param sets
 * requires_grad.  ET_ERR_NOMEM or ET_ERR_ARG (t NULL: an earlier creation
 * failed, its error is kept). */
et_status nn_module_add_param(et_module *m, const char *name, et_tensor *t);
et_status nn_module_add_buffer(et_module *m, const char *name, et_tensor *t);

/* Register child under `name` (torch's register_module): its state entries
 * join m's lists as "<name>.<entry>", in order, after m's own so far; it
 * follows m's train()/eval() and is freed with m.  m takes ownership of
 * child, also on failure (ET_ERR_NOMEM; ET_ERR_STATE when m or child
 * already has a parent: child is then freed only if it had none).  A NULL
 * child (a constructor that failed) keeps its error.  Register children
 * after the parameters that precede them in torch's state_dict. */
et_status nn_module_add_child(et_module *m, const char *name, et_module *child);

/* Attach the layer's configuration (owned by the module from now on; freed
 * with free_fn, which may be NULL for plain malloc'ed memory: free()). */
void nn_module_set_impl(et_module *m, void *impl, void (*free_fn)(void *impl));

/* The parameter / buffer of a leaf module by its own name (borrowed, or NULL). */
et_tensor *nn_param(const et_module *m, const char *name);
et_tensor *nn_buffer(const et_module *m, const char *name);

#endif
