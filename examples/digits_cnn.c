/*
 * digits_cnn.c - a small convolutional network on scikit-learn's 8x8 digits
 * (1797 images of 0-9, pixels 0-16; digits.csv.gz from Debian's python3-sklearn):
 *
 *   Conv2d(1, 16, 3, padding=1) -> ReLU -> MaxPool2d(2) ->
 *   Conv2d(16, 32, 3, padding=1) -> ReLU -> Flatten -> Linear(512, 10),
 *   cross-entropy, Adam (lr 0.005), batch 32, 40 epochs.
 *
 * usage: digits_cnn [digits.csv.gz] [--epochs N] [--seed S]
 * The rows (64 pixels then the label, gzip'ed CSV) are shuffled with a seeded
 * splitmix64 (seed 0 by default: the fixed split the test uses) and split
 * 80/20; pixels are scaled to [0, 1].  Prints the loss
 * every few epochs, then
 *     train_accuracy=<percent>
 *     test_accuracy=<percent>
 * Exit status 77 (skip) when the file does not exist.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <easytorch/easytorch.h>

#define NPIX 64
#define MAXROWS 2048

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Rows of "p0,...,p63,label" into x[n][64] (scaled to [0, 1]) and y[n]. */
static int load(const char *path, float (*x)[NPIX], int64_t *y)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "digits_cnn: cannot open %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? -77 : -1;
    }
    char line[1024];
    int n = 0;
    while (n < MAXROWS && gzgets(f, line, sizeof line)) {
        char *p = line, *end;
        int k = 0;
        for (; k <= NPIX; k++) {
            double v = strtod(p, &end);
            if (end == p)
                break;
            if (k < NPIX)
                x[n][k] = (float)(v / 16.0);
            else
                y[n] = (int64_t)v;
            p = *end == ',' ? end + 1 : end;
        }
        if (k == NPIX + 1 && y[n] >= 0 && y[n] < 10)
            n++;
        else if (k > 0)
            fprintf(stderr, "digits_cnn: skipping a malformed row\n");
    }
    gzclose(f);
    return n;
}

static et_module *model(et_generator *g)
{
    et_conv_opts c = ET_CONV_DEFAULTS;
    c.padding[0] = c.padding[1] = 1;
    int64_t k3[2] = {3, 3}, k2[2] = {2, 2};
    et_module *s = et_sequential_new();
    et_module *layers[] = {et_conv2d_new(1, 16, k3, &c, g), et_relu_new(), et_max_pool2d_new(k2, NULL),
                           et_conv2d_new(16, 32, k3, &c, g), et_relu_new(), et_flatten_new(1, -1),
                           et_linear_new(32 * 4 * 4, 10, true, g)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (et_sequential_append(s, layers[i]) != ET_OK) {
            et_module_free(s);
            return NULL;
        }
    return s;
}

/* Accuracy (percent) of net on rows idx[0..n) in eval mode. */
static double accuracy(et_module *net, float (*x)[NPIX], const int64_t *y, const int *idx, int n)
{
    et_module_train(net, false);
    int right = 0;
    et_pool_begin();
    float *buf = malloc((size_t)n * NPIX * sizeof *buf);
    for (int i = 0; buf && i < n; i++)
        memcpy(buf + (size_t)i * NPIX, x[idx[i]], sizeof x[0]);
    ET_NO_GRAD {
        et_tensor *out = buf ? et_module_forward(net, et_tensor_new(buf, ET_SHAPE(n, 1, 8, 8)))
                             : NULL;
        et_tensor *pred = out ? et_argmax(out, 1, false) : NULL;
        int64_t *pv = pred ? malloc((size_t)n * sizeof *pv) : NULL;
        if (pv && et_copy_to_int64(pred, pv) == ET_OK)
            for (int i = 0; i < n; i++)
                right += pv[i] == y[idx[i]];
        free(pv);
    }
    free(buf);
    et_pool_end();
    et_module_train(net, true);
    return 100.0 * right / n;
}

int main(int argc, char **argv)
{
    const char *path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
    long epochs = 40;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: digits_cnn [digits.csv.gz] [--epochs N] [--seed S]\n");
            return 2;
        }
    }
    static float x[MAXROWS][NPIX];
    static int64_t y[MAXROWS];
    int n = load(path, x, y);
    if (n < 0)
        return n == -77 ? 77 : 1;
    if (n < 100) {
        fprintf(stderr, "digits_cnn: only %d rows in %s\n", n, path);
        return 1;
    }
    static int idx[MAXROWS];
    for (int i = 0; i < n; i++)
        idx[i] = i;
    uint64_t s = seed;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix64(&s) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    int ntr = n * 8 / 10, nte = n - ntr;
    const int *tr = idx, *te = idx + ntr;
    printf("images=%d train=%d test=%d\n", n, ntr, nte);

    et_generator *g = et_generator_new(seed);
    et_module *net = model(g);
    if (!net) {
        fprintf(stderr, "digits_cnn: %s\n", et_errmsg());
        return 1;
    }
    int np = et_module_num_params(net);
    et_tensor *params[16];
    for (int i = 0; i < np; i++)
        params[i] = et_module_param(net, i);
    et_adam_opts ao = ET_ADAM_DEFAULTS;
    ao.lr = 0.005;
    et_optim *opt = et_adam_new(params, np, ao);
    int order[MAXROWS];
    memcpy(order, tr, (size_t)ntr * sizeof *order);
    float batch[32 * NPIX];
    int64_t labels[32];
    for (long ep = 0; ep < epochs; ep++) {
        for (int i = ntr - 1; i > 0; i--) {
            int j = (int)(splitmix64(&s) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double total = 0;
        for (int b = 0; b < ntr; b += 32) {
            int bn = ntr - b < 32 ? ntr - b : 32;
            for (int i = 0; i < bn; i++) {
                memcpy(batch + (size_t)i * NPIX, x[order[b + i]], sizeof x[0]);
                labels[i] = y[order[b + i]];
            }
            et_pool_begin();
            et_optim_zero_grad(opt);
            et_tensor *out = et_module_forward(net, et_tensor_new(batch, ET_SHAPE(bn, 1, 8, 8)));
            et_tensor *loss = out ? et_cross_entropy(out, et_tensor_new_int64(labels, ET_SHAPE(bn)),
                                                     ET_REDUCTION_MEAN, 0.0f) : NULL;
            et_status st = loss ? et_backward(loss, NULL) : et_errcode();
            if (st == ET_OK)
                st = et_optim_step(opt);
            if (st == ET_OK)
                total += et_item(loss) * bn;
            et_pool_end();
            if (st != ET_OK) {
                fprintf(stderr, "digits_cnn: epoch %ld: %s\n", ep + 1, et_errmsg());
                return 1;
            }
        }
        if ((ep + 1) % 10 == 0 || ep == 0)
            printf("epoch %ld/%ld loss %.4f\n", ep + 1, epochs, total / ntr);
    }
    printf("train_accuracy=%.2f\n", accuracy(net, x, y, tr, ntr));
    printf("test_accuracy=%.2f\n", accuracy(net, x, y, te, nte));
    et_optim_free(opt);
    et_module_free(net);
    et_generator_free(g);
    return 0;
}
