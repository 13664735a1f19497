/*
 * char_lm.c - a character-level language model of English words (Bengio et
 * al. 2003, as in Karpathy's makemore): from the three previous characters,
 * predict the next one.
 *
 *   Embedding(27, 10) -> Flatten -> Linear(30, 200) -> BatchNorm1d(200) ->
 *   Tanh -> Linear(200, 27), cross-entropy, SGD (lr 0.1, 0.01 for the second
 *   half of the steps), batch 32.
 *
 * usage: char_lm [WORDS] [--steps N] [--seed S] [--dump PATH]
 * WORDS defaults to Debian's wamerican list, /usr/share/dict/american-english;
 * only the words of lowercase a-z are used.  The vocabulary is '.' (word
 * boundary, index 0) and a-z (1-26).  The words are shuffled by a seeded
 * splitmix64 and split 80/10/10 into train / validation / test; every
 * character of every word (and the final '.') gives one example whose
 * context is the three characters before it ('.' padded).  Batch k draws
 * rows splitmix64(seed + 1) % ntrain, so another implementation can replay
 * the exact run: --dump PATH writes the initial state_dict ("model.*"),
 * the splits ("Xtr", "Ytr", "Xdev", "Ydev", int64) and the run's settings
 * (metadata) as one safetensors file -- examples/char_lm_torch.py does that
 * with PyTorch and the tests compare the two.
 * Prints the losses every tenth of the run, then
 *     train_loss=<float>     (mean cross-entropy over the training split, eval mode)
 *     val_loss=<float>       (over the validation split)
 *     sample=<word>          (ten words sampled from the model, eval mode)
 * Exit status 77 (skip) when the word list does not exist.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <easytorch/easytorch.h>

#define CTX 3
#define VOCAB 27
#define BATCH 32

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    char **w;
    int n, cap;
} words;

static int read_words(const char *path, words *ws)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "char_lm: cannot open %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? 77 : 1;
    }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        bool ok = len > 0;
        for (size_t i = 0; i < len && ok; i++)
            ok = line[i] >= 'a' && line[i] <= 'z';
        if (!ok)
            continue;
        if (ws->n == ws->cap) {
            int cap = ws->cap ? ws->cap * 2 : 1024;
            char **nw = realloc(ws->w, (size_t)cap * sizeof *nw);
            if (!nw)
                break;
            ws->w = nw;
            ws->cap = cap;
        }
        ws->w[ws->n] = strdup(line);
        if (!ws->w[ws->n])
            break;
        ws->n++;
    }
    fclose(f);
    return ws->n > 0 ? 0 : 1;
}

/* The examples of words[lo, hi) as X [n, 3] and Y [n] (int64; new references). */
static int64_t build(char **w, int lo, int hi, et_tensor **X, et_tensor **Y)
{
    int64_t n = 0;
    for (int i = lo; i < hi; i++)
        n += (int64_t)strlen(w[i]) + 1;
    int64_t *x = malloc((size_t)n * CTX * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return -1;
    }
    int64_t k = 0;
    for (int i = lo; i < hi; i++) {
        int64_t ctx[CTX] = {0, 0, 0};
        for (const char *p = w[i];; p++) {
            int64_t ix = *p ? *p - 'a' + 1 : 0;
            memcpy(x + k * CTX, ctx, sizeof ctx);
            y[k++] = ix;
            memmove(ctx, ctx + 1, (CTX - 1) * sizeof *ctx);
            ctx[CTX - 1] = ix;
            if (!*p)
                break;
        }
    }
    *X = et_tensor_new_int64(x, ET_SHAPE(n, CTX));
    *Y = et_tensor_new_int64(y, ET_SHAPE(n));
    free(x);
    free(y);
    return *X && *Y ? n : -1;
}

static et_module *model(et_generator *g)
{
    et_module *s = et_sequential_new();
    et_module *layers[] = {
        et_embedding_new(VOCAB, 10, ET_EMBEDDING_DEFAULTS, g), et_flatten_new(1, -1),
        et_linear_new(CTX * 10, 200, true, g), et_batch_norm1d_new(200, ET_BATCH_NORM_DEFAULTS),
        et_tanh_new(), et_linear_new(200, VOCAB, true, g)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (et_sequential_append(s, layers[i]) != ET_OK) {
            et_module_free(s);
            return NULL;
        }
    return s;
}

/* Mean cross-entropy over (X, Y) in eval mode, in chunks; NAN on error. */
static double split_loss(et_module *net, et_tensor *X, et_tensor *Y)
{
    et_module_train(net, false);
    int64_t n = et_size(X, 0);
    double total = 0;
    for (int64_t s = 0; s < n; s += 8192) {
        int64_t e = s + 8192 < n ? s + 8192 : n;
        et_pool_begin();
        double v = NAN;
        ET_NO_GRAD {
            et_tensor *out = et_module_forward(net, et_slice(X, 0, s, e, 1));
            et_tensor *l = out ? et_cross_entropy(out, et_slice(Y, 0, s, e, 1), ET_REDUCTION_SUM,
                                                  0.0f) : NULL;
            if (l)
                v = et_item(l);
        }
        et_pool_end();
        if (isnan(v))
            return NAN;
        total += v;
    }
    et_module_train(net, true);
    return total / (double)n;
}

static void sample(et_module *net, et_generator *g, char *out, size_t cap)
{
    et_module_train(net, false);
    int64_t ctx[CTX] = {0, 0, 0};
    size_t len = 0;
    while (len + 1 < cap) {
        et_pool_begin();
        int64_t next = 0;
        ET_NO_GRAD {
            et_tensor *logits = et_module_forward(net, et_tensor_new_int64(ctx, ET_SHAPE(1, CTX)));
            et_tensor *p = logits ? et_softmax(logits, -1) : NULL;
            if (p) {
                double u = et_generator_uniform(g), acc = 0;
                const float *pd = et_data(p);
                next = VOCAB - 1;
                for (int k = 0; k < VOCAB; k++)
                    if ((acc += pd[k]) > u) {
                        next = k;
                        break;
                    }
            }
        }
        et_pool_end();
        if (next == 0)
            break;
        out[len++] = (char)('a' + next - 1);
        memmove(ctx, ctx + 1, (CTX - 1) * sizeof *ctx);
        ctx[CTX - 1] = next;
    }
    out[len] = '\0';
    et_module_train(net, true);
}

static int dump(const char *path, et_module *net, et_tensor *const *data, uint64_t seed,
                long steps)
{
    et_tensor_dict *sd = et_module_state_dict(net), *d = et_tensor_dict_new();
    static const char *names[] = {"Xtr", "Ytr", "Xdev", "Ydev"};
    char b[64];
    et_status st = sd && d ? ET_OK : ET_ERR_NOMEM;
    for (int i = 0; st == ET_OK && i < et_tensor_dict_len(sd); i++) {
        snprintf(b, sizeof b, "model.%s", et_tensor_dict_name(sd, i));
        st = et_tensor_dict_set(d, b, et_tensor_dict_tensor(sd, i));
    }
    for (int i = 0; st == ET_OK && i < 4; i++)
        st = et_tensor_dict_set(d, names[i], data[i]);
    snprintf(b, sizeof b, "%" PRIu64, seed);
    if (st == ET_OK)
        st = et_tensor_dict_set_meta(d, "seed", b);
    snprintf(b, sizeof b, "%ld", steps);
    if (st == ET_OK)
        st = et_tensor_dict_set_meta(d, "steps", b);
    if (st == ET_OK)
        st = et_safetensors_save(d, path);
    et_tensor_dict_free(sd);
    et_tensor_dict_free(d);
    if (st != ET_OK)
        fprintf(stderr, "char_lm: --dump %s: %s\n", path, et_errmsg());
    return st == ET_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *path = "/usr/share/dict/american-english", *dump_path = NULL;
    long steps = 20000;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump_path = argv[++i];
        else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: char_lm [WORDS] [--steps N] [--seed S] [--dump PATH]\n");
            return 2;
        }
    }
    if (steps < 1) {
        fprintf(stderr, "char_lm: --steps must be >= 1\n");
        return 2;
    }
    words ws = {0};
    int rc = read_words(path, &ws);
    if (rc != 0)
        return rc;
    /* Fisher-Yates with splitmix64(seed) */
    uint64_t s = seed;
    for (int i = ws.n - 1; i > 0; i--) {
        int j = (int)(splitmix64(&s) % (uint64_t)(i + 1));
        char *t = ws.w[i];
        ws.w[i] = ws.w[j];
        ws.w[j] = t;
    }
    int n1 = (int)(0.8 * ws.n), n2 = (int)(0.9 * ws.n);
    et_tensor *Xtr, *Ytr, *Xdev, *Ydev;
    int64_t ntr = build(ws.w, 0, n1, &Xtr, &Ytr), ndev = build(ws.w, n1, n2, &Xdev, &Ydev);
    if (ntr <= 0 || ndev <= 0) {
        fprintf(stderr, "char_lm: %s\n", et_errmsg());
        return 1;
    }
    printf("words=%d train_examples=%lld val_examples=%lld\n", ws.n, (long long)ntr,
           (long long)ndev);
    et_generator *g = et_generator_new(seed);
    et_module *net = model(g);
    if (!net) {
        fprintf(stderr, "char_lm: %s\n", et_errmsg());
        return 1;
    }
    if (dump_path && dump(dump_path, net, (et_tensor *[]){Xtr, Ytr, Xdev, Ydev}, seed, steps))
        return 1;
    int np = et_module_num_params(net);
    et_tensor *params[16];
    for (int i = 0; i < np; i++)
        params[i] = et_module_param(net, i);
    et_sgd_opts so = ET_SGD_DEFAULTS;
    so.lr = 0.1;
    et_optim *opt = et_sgd_new(params, np, so);
    uint64_t bs = seed + 1;
    for (long k = 0; k < steps; k++) {
        if (k == steps / 2)
            et_optim_set_lr(opt, 0.01);
        et_pool_begin();
        int64_t ix[BATCH];
        for (int b = 0; b < BATCH; b++)
            ix[b] = (int64_t)(splitmix64(&bs) % (uint64_t)ntr);
        et_tensor *it = et_tensor_new_int64(ix, ET_SHAPE(BATCH));
        et_optim_zero_grad(opt);
        et_tensor *out = et_module_forward(net, et_index_select(Xtr, 0, it));
        et_tensor *loss = out ? et_cross_entropy(out, et_index_select(Ytr, 0, it),
                                                 ET_REDUCTION_MEAN, 0.0f) : NULL;
        et_status st = loss ? et_backward(loss, NULL) : et_errcode();
        if (st == ET_OK)
            st = et_optim_step(opt);
        if (st == ET_OK && (k + 1) % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("step %ld/%ld batch_loss %.4f\n", k + 1, steps, (double)et_item(loss));
        et_pool_end();
        if (st != ET_OK) {
            fprintf(stderr, "char_lm: step %ld: %s\n", k, et_errmsg());
            return 1;
        }
    }
    printf("train_loss=%.6f\n", split_loss(net, Xtr, Ytr));
    printf("val_loss=%.6f\n", split_loss(net, Xdev, Ydev));
    for (int i = 0; i < 10; i++) {
        char w[64];
        sample(net, g, w, sizeof w);
        printf("sample=%s\n", w);
    }
    et_optim_free(opt);
    et_module_free(net);
    et_generator_free(g);
    et_tensor_free(Xtr);
    et_tensor_free(Ytr);
    et_tensor_free(Xdev);
    et_tensor_free(Ydev);
    for (int i = 0; i < ws.n; i++)
        free(ws.w[i]);
    free(ws.w);
    return 0;
}
