/* autograd.c - the op table and reverse-mode differentiation. */
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* One row per etc_op, in enum order: PyTorch's grad_fn name, backward, and
 * which saved values the backward reads (R_IN0/R_IN1 inputs, R_OUT result). */
const etc_op_info etc_ops[] = {
    {"", NULL, 0},                              /* NONE */
    {"AddBackward0", etc_bw_add, 0},            /* ADD */
    {"SubBackward0", etc_bw_sub, 0},            /* SUB */
    {"MulBackward0", etc_bw_mul, R_IN0 | R_IN1},            /* MUL */
    {"DivBackward0", etc_bw_div, R_IN0 | R_IN1},            /* DIV */
    {"PowBackward1", etc_bw_pow, R_IN0 | R_IN1},            /* POW */
    {"MaximumBackward0", etc_bw_maximum, R_IN0 | R_IN1},    /* MAXIMUM */
    {"MinimumBackward0", etc_bw_minimum, R_IN0 | R_IN1},    /* MINIMUM */
    {"AddBackward0", etc_bw_pass, 0},           /* ADD_SCALAR */
    {"SubBackward0", etc_bw_pass, 0},           /* SUB_SCALAR */
    {"RsubBackward1", etc_bw_neg_pass, 0},      /* RSUB_SCALAR */
    {"MulBackward0", etc_bw_mul_scalar, 0},     /* MUL_SCALAR */
    {"DivBackward0", etc_bw_mul_scalar, 0},     /* DIV_SCALAR */
    {"MulBackward0", etc_bw_rdiv_scalar, R_IN0},    /* RDIV_SCALAR */
    {"PowBackward0", etc_bw_pow_scalar, R_IN0},     /* POW_SCALAR */
    {"PowBackward1", etc_bw_rpow_scalar, R_IN0 | R_OUT},    /* RPOW_SCALAR */
    {"NegBackward0", etc_bw_neg_pass, 0},       /* NEG */
    {"ExpBackward0", etc_bw_exp, R_OUT},            /* EXP */
    {"LogBackward0", etc_bw_log, R_IN0},            /* LOG */
    {"SqrtBackward0", etc_bw_sqrt, R_OUT},          /* SQRT */
    {"AbsBackward0", etc_bw_abs, R_IN0},            /* ABS */
    {"TanhBackward0", etc_bw_tanh, R_OUT},          /* TANH */
    {"SigmoidBackward0", etc_bw_sigmoid, R_OUT},    /* SIGMOID */
    {"ReluBackward0", etc_bw_relu, R_OUT},          /* RELU */
    {"LeakyReluBackward0", etc_bw_leaky_relu, R_IN0}, /* LEAKY_RELU */
    {"GeluBackward0", etc_bw_gelu, R_IN0},          /* GELU */
    {"ClampBackward1", etc_bw_clamp, R_IN0},        /* CLAMP */
    {"SumBackward0", etc_bw_sum_all, 0},        /* SUM_ALL */
    {"SumBackward1", etc_bw_sum, 0},            /* SUM */
    {"MeanBackward0", etc_bw_mean_all, 0},      /* MEAN_ALL */
    {"MeanBackward1", etc_bw_mean, 0},          /* MEAN */
    {"MaxBackward0", etc_bw_max_dim, 0},        /* MAX */
    {"MinBackward0", etc_bw_max_dim, 0},        /* MIN */
    {"MaxBackward1", etc_bw_max_all, R_IN0 | R_OUT},        /* MAX_ALL */
    {"MinBackward1", etc_bw_max_all, R_IN0 | R_OUT},        /* MIN_ALL */
    {"SoftmaxBackward0", etc_bw_softmax, R_OUT},    /* SOFTMAX */
    {"LogSoftmaxBackward0", etc_bw_log_softmax, R_OUT}, /* LOG_SOFTMAX */
    {"DotBackward0", etc_bw_matmul, R_IN0 | R_IN1},         /* DOT */
    {"MvBackward0", etc_bw_matmul, R_IN0 | R_IN1},          /* MV */
    {"MmBackward0", etc_bw_matmul, R_IN0 | R_IN1},          /* MM */
    {"MatmulBackward0", etc_bw_matmul, R_IN0 | R_IN1},      /* MATMUL */
    {"ViewBackward0", etc_bw_reshape, 0},       /* VIEW */
    {"ReshapeAliasBackward0", etc_bw_reshape, 0}, /* RESHAPE */
    {"TransposeBackward0", etc_bw_transpose, 0}, /* TRANSPOSE */
    {"TBackward0", etc_bw_transpose, 0},        /* T */
    {"PermuteBackward0", etc_bw_permute, 0},    /* PERMUTE */
    {"SqueezeBackward1", etc_bw_reshape, 0},    /* SQUEEZE */
    {"SqueezeBackward0", etc_bw_reshape, 0},    /* SQUEEZE_ALL */
    {"UnsqueezeBackward0", etc_bw_reshape, 0},  /* UNSQUEEZE */
    {"ExpandBackward0", etc_bw_expand, 0},      /* EXPAND */
    {"SelectBackward0", etc_bw_select, 0},      /* SELECT */
    {"SliceBackward0", etc_bw_slice, 0},        /* SLICE */
    {"CatBackward0", etc_bw_cat, 0},            /* CAT */
    {"StackBackward0", etc_bw_stack, 0},        /* STACK */
    {"IndexSelectBackward0", etc_bw_index_select, 0}, /* INDEX_SELECT */
    {"GatherBackward0", etc_bw_gather, 0},      /* GATHER */
    {"WhereBackward0", etc_bw_where, 0},        /* WHERE */
    {"CloneBackward0", etc_bw_clone, 0},        /* CLONE */
    {"AddmmBackward0", etc_bw_linear, R_IN0 | R_IN1},       /* LINEAR */
    /* ops_unary.c */
    {"SignBackward0", etc_bw_zero, 0},              /* SIGN */
    {"FloorBackward0", etc_bw_zero, 0},             /* FLOOR */
    {"CeilBackward0", etc_bw_zero, 0},              /* CEIL */
    {"RoundBackward0", etc_bw_zero, 0},             /* ROUND */
    {"ReciprocalBackward0", etc_bw_reciprocal, R_OUT}, /* RECIPROCAL */
    {"RsqrtBackward0", etc_bw_rsqrt, R_OUT},        /* RSQRT */
    {"Log1PBackward0", etc_bw_log1p, R_IN0},        /* LOG1P */
    {"Expm1Backward0", etc_bw_expm1, R_OUT},        /* EXPM1 */
    {"SinBackward0", etc_bw_sin, R_IN0},            /* SIN */
    {"CosBackward0", etc_bw_cos, R_IN0},            /* COS */
    {"ErfBackward0", etc_bw_erf, R_IN0},            /* ERF */
    {"SoftplusBackward0", etc_bw_softplus, R_IN0},  /* SOFTPLUS */
    {"EluBackward0", etc_bw_elu, R_IN0},            /* ELU */
    {"SiluBackward0", etc_bw_silu, R_IN0},          /* SILU */
    {"MishBackward0", etc_bw_mish, R_IN0},          /* MISH */
    {"HardtanhBackward0", etc_bw_hardtanh, R_IN0},  /* HARDTANH */
    {"MaskedFillBackward0", etc_bw_masked_fill, 0}, /* MASKED_FILL */
    {"BinaryCrossEntropyBackward0", etc_bw_bce, R_IN0 | R_IN1}, /* BCE */
    {"ConvolutionBackward0", etc_bw_conv, R_IN0 | R_IN1},   /* CONV */
    {"ConvolutionBackward0", etc_bw_conv_transpose, R_IN0 | R_IN1}, /* CONV_TRANSPOSE */
    {"NativeBatchNormBackward0", etc_bw_batch_norm, R_IN0 | R_IN1}, /* BATCH_NORM */
    {"NativeLayerNormBackward0", etc_bw_layer_norm, R_IN0 | R_IN1}, /* LAYER_NORM */
    {"NativeGroupNormBackward0", etc_bw_group_norm, R_IN0 | R_IN1}, /* GROUP_NORM */
    {"EmbeddingBackward0", etc_bw_embedding, 0},                    /* EMBEDDING */
    {"EmbeddingBagBackward0", etc_bw_embedding_bag, R_IN0},         /* EMBEDDING_BAG */
    {"MaxPool2DWithIndicesBackward0", etc_bw_max_pool, 0},  /* MAX_POOL */
    {"AvgPool2DBackward0", etc_bw_avg_pool, 0},             /* AVG_POOL */
    {"AdaptiveAvgPool2DBackward0", etc_bw_adaptive_avg_pool, 0}, /* ADAPTIVE_AVG_POOL */
    {"AdaptiveMaxPool2DBackward0", etc_bw_max_pool, 0},     /* ADAPTIVE_MAX_POOL */
    {"ConstantPadNdBackward0", etc_bw_pad, 0},              /* PAD */
    {"Im2ColBackward0", etc_bw_unfold, 0},                  /* UNFOLD */
    {"Col2ImBackward0", etc_bw_fold, 0},                    /* FOLD */
    /* reduce.c */
    {"LogsumexpBackward0", etc_bw_logsumexp, R_IN0 | R_OUT}, /* LOGSUMEXP */
    {"VarBackward0", etc_bw_var, R_IN0},            /* VAR */
    {"StdBackward0", etc_bw_std, R_IN0 | R_OUT},    /* STD */
    {"ProdBackward0", etc_bw_prod, R_IN0},          /* PROD_ALL */
    {"ProdBackward1", etc_bw_prod, R_IN0},          /* PROD */
    {"CumsumBackward0", etc_bw_cumsum, 0},          /* CUMSUM */
    {"NormBackward1", etc_bw_norm, R_IN0 | R_OUT},  /* NORM */
    {"AmaxBackward0", etc_bw_amax, R_IN0 | R_OUT},  /* AMAX */
    {"AminBackward0", etc_bw_amax, R_IN0 | R_OUT},  /* AMIN */
    /* sort.c */
    {"SortBackward0", etc_bw_sort, 0},              /* SORT */
    {"TopkBackward0", etc_bw_sort, 0},              /* TOPK */
    /* shape_more.c */
    {"SplitBackward0", etc_bw_slice, 0},            /* SPLIT */
    {"SplitWithSizesBackward0", etc_bw_slice, 0},   /* SPLIT_WITH_SIZES */
    {"UnbindBackward0", etc_bw_select, 0},          /* UNBIND */
    {"DiagonalBackward0", etc_bw_diagonal, 0},      /* DIAGONAL */
    {"RepeatBackward0", etc_bw_repeat, 0},          /* REPEAT */
    {"RollBackward0", etc_bw_roll, 0},              /* ROLL */
    {"FlipBackward0", etc_bw_flip, 0},              /* FLIP */
    {"TrilBackward0", etc_bw_tri, 0},               /* TRIL */
    {"TriuBackward0", etc_bw_tri, 0},               /* TRIU */
    /* index.c */
    {"ScatterBackward0", etc_bw_scatter, 0},        /* SCATTER */
    {"ScatterBackward1", etc_bw_scatter, 0},        /* SCATTER_VALUE */
    {"ScatterAddBackward0", etc_bw_scatter, 0},     /* SCATTER_ADD */
    {"IndexAddBackward0", etc_bw_index_add, 0},     /* INDEX_ADD */
    /* linear.c: the activation's grad_fn name, as torch's module output */
    {"ReluBackward0", etc_bw_linear_act, R_IN0 | R_IN1 | R_OUT},    /* LINEAR_RELU */
    {"TanhBackward0", etc_bw_linear_act, R_IN0 | R_IN1 | R_OUT},    /* LINEAR_TANH */
    {"SigmoidBackward0", etc_bw_linear_act, R_IN0 | R_IN1 | R_OUT}, /* LINEAR_SIGMOID */
    /* sdpa.c: torch 2's name for its fused math attention's node */
    {"ScaledDotProductAttentionBackward0", etc_bw_sdpa, R_IN0 | R_IN1}, /* SDPA */
    /* cross_entropy.c: torch's node of the loss (log_softmax's is inside it) */
    {"NllLossBackward0", etc_bw_cross_entropy, R_IN0},  /* CROSS_ENTROPY */
};
_Static_assert(sizeof etc_ops / sizeof etc_ops[0] == ETC_OP_COUNT,
               "etc_ops needs exactly one row per etc_op");

static atomic_uint_fast64_t generation;

/* Owned gradient for a tensor that persists it in .grad: steal `g` when
 * nothing else can see it, else copy. */
static et_tensor *owned(et_tensor *g)
{
    if (g->contiguous && atomic_load_explicit(&g->refcount, memory_order_relaxed) == 1 &&
        atomic_load_explicit(&g->storage->refcount, memory_order_relaxed) == 1)
        return etc_ref(g);
    return etc_clone(g);
}

/* slot += g; *slot may be shared (copy on write). Consumes nothing. */
static bool accumulate(et_tensor **slot, et_tensor *g, bool persist)
{
    et_tensor *s = *slot;
    if (!s) {
        *slot = persist ? owned(g) : etc_ref(g);
        return *slot != NULL;
    }
    if (persist || (s->contiguous &&
                    atomic_load_explicit(&s->refcount, memory_order_relaxed) == 1 &&
                    atomic_load_explicit(&s->storage->refcount, memory_order_relaxed) == 1)) {
        etc_add_into(s, g);
        return true;
    }
    et_tensor *sum = etc_ew2(EW_ADD, "backward", s, g, 0);
    if (!sum)
        return false;
    etc_release(s);
    *slot = sum;
    return true;
}

static bool exclusive(const et_tensor *t)
{
    return t->contiguous && atomic_load_explicit(&t->refcount, memory_order_relaxed) == 1 &&
           atomic_load_explicit(&t->storage->refcount, memory_order_relaxed) == 1;
}

/* accumulate(slot, g, false), consuming g: the first gradient of a node is
 * moved into its slot (no reference taken and dropped, two atomic
 * read-modify-writes per edge of the graph); a later one adds the slot's
 * value into g when only g is ours to write (the slot shares its gradient
 * with another input, as add's backward hands out), instead of a new sum
 * (x + y == y + x in IEEE arithmetic: the same bits). */
static bool accumulate_take(et_tensor **slot, et_tensor *g)
{
    et_tensor *s = *slot;
    if (!s) {
        *slot = g;
        return true;
    }
    if (!exclusive(s) && exclusive(g) && g->dtype == s->dtype && etc_same_shape(g, s)) {
        etc_add_into(g, s);
        *slot = g;
        etc_release(s);
        return true;
    }
    bool ok = accumulate(slot, g, false);
    etc_release(g);
    return ok;
}

/* A value the backward of t reads was overwritten in place after t was
 * made: its gradient would be silently wrong, so fail like PyTorch. */
static bool versions_ok(const et_tensor *t)
{
    unsigned r = etc_ops[t->op].reads;
    for (int i = 0; i < 2 && i < t->nin; i++) {
        const et_tensor *x = t->in[i];
        if ((r & (1u << i)) && x->storage->version != t->in_version[i]) {
            char b[128];
            et_set_error(ET_ERR_GRAD,
                         "backward: input %d (shape %s) of %s was modified by an in-place "
                         "operation after it was used (version %u, expected %u)", i,
                         etc_shape_fmt(x->shape, x->ndim, b, sizeof b), etc_ops[t->op].name,
                         (unsigned)x->storage->version, (unsigned)t->in_version[i]);
            return false;
        }
    }
    if ((r & R_OUT) && t->storage->version != t->self_version) {
        char b[128];
        et_set_error(ET_ERR_GRAD,
                     "backward: the output (shape %s) of %s was modified by an in-place "
                     "operation after it was made (version %u, expected %u)",
                     etc_shape_fmt(t->shape, t->ndim, b, sizeof b), etc_ops[t->op].name,
                     (unsigned)t->storage->version, (unsigned)t->self_version);
        return false;
    }
    return true;
}

et_tensor *etc_grad_sink(const et_tensor *out, int i)
{
    const et_tensor *x = out->in[i];
    et_tensor *g = x->grad;
    if (x->op != ETC_OP_NONE || !x->requires_grad || x->nuse != 1 || x->pgrad || !g ||
        !g->contiguous || g->dtype != ET_FLOAT32 || !etc_same_shape(g, x))
        return NULL;
    etc_zrec_forget(g);   /* the caller writes into it */
    return g;
}

typedef struct {
    et_tensor *t;
    int next;
} frame;

et_status et_backward(et_tensor *root, et_tensor *grad)
{
    return et_backward_notify(root, grad, NULL, NULL);
}

et_status et_backward_notify(et_tensor *root, et_tensor *grad, et_grad_ready_fn ready,
                             void *arg)
{
    if (!etc_null_check(root, "backward"))
        return ET_ERR_ARG;
    if (!root->requires_grad)
        return et_set_error(ET_ERR_GRAD, "backward: element 0 of tensors does not require grad "
                            "and does not have a grad_fn");
    if (grad && !etc_same_shape(grad, root)) {
        char b1[128], b2[128];
        return et_set_error(ET_ERR_SHAPE, "backward: grad has shape %s but the root has shape %s",
                            etc_shape_fmt(grad->shape, grad->ndim, b1, sizeof b1),
                            etc_shape_fmt(root->shape, root->ndim, b2, sizeof b2));
    }
    if (!grad && root->numel != 1)
        return et_set_error(ET_ERR_GRAD, "backward: grad can be implicitly created only for "
                            "scalar outputs (root has shape %s)",
                            etc_shape_fmt(root->shape, root->ndim, (char[128]){0}, 128));

    uint64_t gen = atomic_fetch_add(&generation, 1) + 1;

    /* iterative DFS, post-order: inputs before the tensors that use them */
    frame sbuf[32];
    et_tensor *obuf[32];
    frame *stack = sbuf;
    et_tensor **order = obuf;
    size_t sp = 0, scap = 32, no = 0, ocap = 32;
    et_status st = ET_OK;
    root->mark = gen;
    root->nuse = 1;
    stack[sp++] = (frame){root, 0};
    while (sp) {
        frame *f = &stack[sp - 1];
        if (f->next < f->t->nin) {
            et_tensor *c = f->t->in[f->next++];
            if (!c->requires_grad)
                continue;
            if (c->mark == gen) {
                c->nuse++;   /* edges into c: sinks need a single consumer */
                continue;
            }
            c->mark = gen;
            c->nuse = 1;
            if (sp == scap) {
                frame *ns = malloc(scap * 2 * sizeof *ns);
                if (!ns) {
                    st = et_set_error(ET_ERR_NOMEM, "backward: out of memory");
                    goto done;
                }
                memcpy(ns, stack, sp * sizeof *ns);
                if (stack != sbuf)
                    free(stack);
                stack = ns;
                scap *= 2;
            }
            stack[sp++] = (frame){c, 0};
        } else {
            if (no == ocap) {
                et_tensor **nn = malloc(ocap * 2 * sizeof *nn);
                if (!nn) {
                    st = et_set_error(ET_ERR_NOMEM, "backward: out of memory");
                    goto done;
                }
                memcpy(nn, order, no * sizeof *nn);
                if (order != obuf)
                    free(order);
                order = nn;
                ocap *= 2;
            }
            order[no++] = f->t;
            sp--;
        }
    }

    bool prev = !etc_grad_off;
    etc_grad_off = true;   /* et_set_grad_enabled(false), inline */
    et_tensor *seed = grad         ? etc_ref(grad)
                      : root->ndim ? etc_full(root->shape, root->ndim, 1.0f)
                                   : etc_scalar_one();
    if (!seed) {
        et_set_grad_enabled(prev);
        st = et_errcode();
        goto done;
    }
    root->pgrad = seed;
    et_tensor *gl[ETC_INLINE_INPUTS];
    for (size_t i = no; i-- > 0;) {
        et_tensor *t = order[i];
        et_tensor *g = t->pgrad;
        t->pgrad = NULL;
        /* a leaf comes after every tensor that uses it: its .grad is final
         * once this one is added (or was written by a sink, g NULL) */
        if (!g || st != ET_OK) {
            etc_release(g);
            if (ready && st == ET_OK && t->op == ETC_OP_NONE && t->grad)
                ready(t, arg);
            continue;
        }
        if (t->op == ETC_OP_NONE && !t->grad && exclusive(g)) {
            t->grad = g;   /* a leaf's first gradient, nothing else sees it: moved into .grad */
            if (ready)
                ready(t, arg);
            continue;
        }
        if (t->op == ETC_OP_NONE || t->retain_grad) {
            if (!accumulate(&t->grad, g, true))
                st = et_errcode();
            else if (ready && t->op == ETC_OP_NONE)
                ready(t, arg);
        }
        if (t->op != ETC_OP_NONE && st == ET_OK) {
            et_tensor **gin = t->nin <= ETC_INLINE_INPUTS ? gl
                                                          : calloc((size_t)t->nin, sizeof *gin);
            if (!gin) {
                st = et_set_error(ET_ERR_NOMEM, "backward: out of memory");
            } else if (!versions_ok(t)) {
                st = ET_ERR_GRAD;
                if (gin != gl)
                    free(gin);
            } else {
                if (gin == gl)   /* a fixed-size clear: no memset call per node */
                    for (int j = 0; j < ETC_INLINE_INPUTS; j++)
                        gl[j] = NULL;
                if (!etc_ops[t->op].backward(t, g, gin))
                    st = et_errcode() != ET_OK ? et_errcode() : ET_ERR_NOMEM;
                for (int j = 0; j < t->nin; j++) {
                    if (gin[j] && st == ET_OK && t->in[j]->requires_grad) {
                        if (!accumulate_take(&t->in[j]->pgrad, gin[j]))
                            st = et_errcode();
                    } else {
                        etc_release(gin[j]);
                    }
                }
                if (gin != gl)
                    free(gin);
            }
        }
        etc_release(g);
    }
    etc_grad_off = !prev;
done:
    if (st != ET_OK)
        for (size_t i = 0; i < no; i++) {
            etc_release(order[i]->pgrad);
            order[i]->pgrad = NULL;
        }
    if (stack != sbuf)
        free(stack);
    if (order != obuf)
        free(order);
    return st;
}
