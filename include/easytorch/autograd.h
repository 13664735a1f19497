/*
 * autograd.h - reverse-mode differentiation.
 *
 * et_backward(root, grad) walks the graph below `root` once, in reverse
 * topological order (iterative, no recursion), so shared subgraphs cost
 * linear time.  Gradients ACCUMULATE (+=) into .grad of every leaf that
 * requires grad, and of non-leaves marked with et_retain_grad(); a tensor used
 * twice receives both contributions.
 *
 * The graph is NOT freed by backward: it lives as long as the tensors that
 * hold it (see tensor.h OWNERSHIP), so calling backward again adds the same
 * gradients again (PyTorch's retain_graph=True behaviour).  Higher-order
 * gradients (create_graph) are not supported: gradients are plain tensors.
 */
#ifndef EASYTORCH_AUTOGRAD_H
#define EASYTORCH_AUTOGRAD_H

#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `grad` may be NULL only when root has one element (seeded with 1).
 * Errors: root does not require grad (ET_ERR_GRAD), grad shape differs
 * from root's (ET_ERR_SHAPE), non-scalar root without grad (ET_ERR_GRAD). */
et_status et_backward(et_tensor *root, et_tensor *grad);

/* et_backward, telling ready(leaf, arg) about every leaf that requires grad
 * as soon as its .grad is final for this backward: after the last
 * contribution was accumulated into it and before the walk goes on (PyTorch's
 * Tensor.register_post_accumulate_grad_hook, for all leaves at once).  With
 * it a caller can use a gradient while the rest of the backward runs, e.g.
 * send it to other processes (DDP's gradient buckets).  Leaves come in the
 * walk's order (the layers nearest the root first), each at most once; a
 * leaf the root does not depend on, or that got no gradient, is not reported.
 * ready runs on the calling thread, with gradient recording off; it may read
 * leaf's .grad but must not change it or the graph.  ready NULL: et_backward. */
typedef void (*et_grad_ready_fn)(et_tensor *leaf, void *arg);
et_status et_backward_notify(et_tensor *root, et_tensor *grad, et_grad_ready_fn ready,
                             void *arg);

#ifdef __cplusplus
}
#endif
#endif
