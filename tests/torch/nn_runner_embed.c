/*
 * nn_runner_embed.c - nn_runner's command for an Embedding trained over
 * several steps, the path whose zero_grad clears only the rows the last
 * backward wrote (src/core/zero_rows.c); test_embed_steps.py drives it:
 *
 *   nn_runner embed_steps <padding_idx | none> <in> <out>
 *       in:  p.weight [V, D]; per step k = 0, 1, ...: idx.k (integral floats
 *            [n]) and gout.k [n, D] (the upstream gradient of the lookup);
 *            optional flags of step k (any tensor): acc.k (no zero_grad
 *            first: the gradient accumulates), mod.k (the module's
 *            zero_grad instead of the optimizer's), twice.k (the lookup
 *            is made twice and summed: the weight has two consumers),
 *            poke.k [1] (after backward, 1.0 is written into that row of
 *            .grad through et_data, as a user may)
 *       a step: zero_grad, y = emb(idx), (y * gout).sum().backward(), Adam
 *       (lr 0.1) step
 *       out: grad.k (the .grad Adam read at step k), w.k (the weight after)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_runner.h"

static bool has(const et_tensor_dict *in, const char *what, int k)
{
    char name[32];
    snprintf(name, sizeof name, "%s.%d", what, k);
    return et_tensor_dict_get(in, name) != NULL;
}

static et_tensor *step_get(const et_tensor_dict *in, const char *what, int k)
{
    char name[32];
    snprintf(name, sizeof name, "%s.%d", what, k);
    return et_tensor_dict_get(in, name);
}

static int put(et_tensor_dict *out, const char *what, int k, et_tensor *t)
{
    char name[32];
    snprintf(name, sizeof name, "%s.%d", what, k);
    et_tensor *c = t ? et_clone(t) : NULL;
    et_status st = c ? et_tensor_dict_set(out, name, c) : ET_ERR_ARG;
    et_tensor_free(c);
    return st == ET_OK ? 0 : fail(name);
}

static int cmd_embed_steps(const char *pad, const char *inp, const char *outp)
{
    et_tensor_dict *in = load(inp);
    et_tensor *w0 = in ? et_tensor_dict_get(in, "p.weight") : NULL;
    if (!w0)
        return fail("embed_steps: p.weight");
    et_embedding_opts o = ET_EMBEDDING_DEFAULTS;
    if (strcmp(pad, "none"))
        o.padding_idx = atoll(pad);
    et_module *emb = et_embedding_new(et_size(w0, 0), et_size(w0, 1), o, NULL);
    if (!emb || load_params(emb, in))
        return fail("embed_steps: module");
    et_tensor *w = et_module_param(emb, 0);
    et_adam_opts ao = ET_ADAM_DEFAULTS;
    ao.lr = 0.1;
    et_optim *opt = et_adam_new(&w, 1, ao);
    et_tensor_dict *out = et_tensor_dict_new();
    if (!opt || !out)
        return fail("embed_steps: optimizer");
    int rc = 0;
    for (int k = 0; has(in, "idx", k) && rc == 0; k++) {
        et_pool_begin();
        if (has(in, "mod", k))
            et_module_zero_grad(emb);
        else if (!has(in, "acc", k))
            et_optim_zero_grad(opt);
        et_tensor *idx = step_get(in, "idx", k), *y = et_module_forward(emb, idx);
        if (y && has(in, "twice", k))
            y = et_add(y, et_module_forward(emb, idx));
        et_tensor *loss = y ? et_sum_all(et_mul(y, step_get(in, "gout", k))) : NULL;
        if (!loss || et_backward(loss, NULL) != ET_OK)
            rc = fail("embed_steps: backward");
        et_tensor *poke = step_get(in, "poke", k);
        if (rc == 0 && poke) {
            float *g = et_data(et_grad(w));
            g[(int64_t)et_item(poke) * et_size(w, 1)] = 1.0f;
        }
        et_pool_end();   /* put's clones are made outside the step's pool */
        if (rc == 0)
            rc = put(out, "grad", k, et_grad(w));
        if (rc == 0 && et_optim_step(opt) != ET_OK)
            rc = fail("embed_steps: step");
        if (rc == 0)
            rc = put(out, "w", k, w);
    }
    et_optim_free(opt);
    et_module_free(emb);
    et_tensor_dict_free(in);
    if (rc) {
        et_tensor_dict_free(out);
        return rc;
    }
    return save(out, outp);
}

int nn_runner_embed(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "embed_steps"))
        return cmd_embed_steps(argv[2], argv[3], argv[4]);
    return -1;
}
