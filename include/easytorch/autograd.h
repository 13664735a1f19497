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

#ifdef __cplusplus
}
#endif
#endif
