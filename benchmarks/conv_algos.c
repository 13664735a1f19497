/*
 * conv_algos.c - the measurement behind conv.c's choice between oneDNN and
 * im2col + sgemm (docs/design.md "Convolution").
 *
 *   conv_algos [SECONDS_PER_CELL]          the built-in shape list
 *   conv_algos N,C,H,W,O,K,S,P,G ...       given shapes (K square, stride, padding, groups)
 *
 * For each shape and each pass (forward; backward to the input only; backward
 * to the weight and bias only) it times et_conv2d / et_backward with the
 * algorithm forced to im2col and to oneDNN, best of repeated runs, and
 * prints both, their ratio and what ET_CONV_AUTO picks.  Run it with one
 * BLAS thread (OPENBLAS_NUM_THREADS=1), as scripts/bench does.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "easytorch/easytorch.h"
#include "core/conv_internal.h"

typedef struct {
    int64_t n, c, h, w, o, k, s, p, g;
} shape;

static const shape SHAPES[] = {
    {64, 1, 28, 28, 6, 5, 1, 2, 1},    /* LeNet conv1 */
    {64, 6, 14, 14, 16, 5, 1, 0, 1},   /* LeNet conv2 */
    {64, 64, 56, 56, 64, 3, 1, 1, 1},  /* the ResNet layer of the bench target */
    {1, 3, 32, 32, 8, 3, 1, 1, 1},
    {1, 64, 56, 56, 64, 3, 1, 1, 1},
    {8, 3, 64, 64, 16, 3, 1, 1, 1},
    {8, 16, 32, 32, 32, 3, 2, 1, 1},
    {32, 32, 16, 16, 64, 3, 1, 1, 1},
    {32, 64, 8, 8, 128, 3, 1, 1, 1},
    {16, 128, 14, 14, 128, 1, 1, 0, 1},
    {16, 32, 28, 28, 32, 3, 1, 1, 32}, /* depthwise */
    {16, 64, 14, 14, 64, 3, 1, 1, 4},
    {64, 1, 8, 8, 8, 3, 1, 1, 1},      /* digits CNN conv1 */
    {64, 8, 4, 4, 16, 3, 1, 1, 1},     /* digits CNN conv2 */
    {256, 3, 8, 8, 4, 3, 1, 0, 1},
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* pass 0: forward, 1: backward to x, 2: backward to w and b */
static double run(const shape *s, int pass, et_tensor *x, et_tensor *w, et_tensor *b,
                  et_tensor *up)
{
    const int64_t st[2] = {s->s, s->s}, pd[2] = {s->p, s->p};
    et_set_requires_grad(x, pass == 1);
    et_set_requires_grad(w, pass == 2);
    et_set_requires_grad(b, pass == 2);
    et_pool_begin();
    double t0 = now(), t1;
    et_tensor *y = et_conv2d(x, w, b, st, pd, NULL, s->g);
    if (!y) {
        fprintf(stderr, "conv2d: %s\n", et_errmsg());
        exit(1);
    }
    if (pass == 0) {
        t1 = now();
    } else {
        double tb = now();
        if (et_backward(y, up) != ET_OK) {
            fprintf(stderr, "backward: %s\n", et_errmsg());
            exit(1);
        }
        t1 = now();
        t0 = tb;   /* time the backward alone */
    }
    et_pool_end();
    return t1 - t0;
}

static double best(const shape *s, int pass, et_tensor *x, et_tensor *w, et_tensor *b,
                   et_tensor *up, double budget)
{
    double b0 = 1e30, start = now();
    int it = 0;
    run(s, pass, x, w, b, up);   /* warm: primitive cache, storage cache */
    while (it < 3 || (now() - start < budget && it < 1000)) {
        double t = run(s, pass, x, w, b, up);
        if (t < b0)
            b0 = t;
        it++;
    }
    return b0;
}

int main(int argc, char **argv)
{
    double budget = 0.3;
    shape given[64];
    int ng = 0;
    for (int a = 1; a < argc; a++) {
        shape s;
        if (sscanf(argv[a], "%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld", &s.n, &s.c, &s.h, &s.w, &s.o,
                   &s.k, &s.s, &s.p, &s.g) == 9 && ng < 64)
            given[ng++] = s;
        else
            budget = atof(argv[a]);
    }
    const shape *list = ng ? given : SHAPES;
    int nl = ng ? ng : (int)(sizeof SHAPES / sizeof SHAPES[0]);
    if (!et_have_onednn()) {
        fprintf(stderr, "conv_algos: this build has no oneDNN\n");
        return 1;
    }
    printf("OpenBLAS %s, %d thread(s)\n", openblas_get_corename(), openblas_get_num_threads());
    printf("%-28s %-10s %12s %12s %7s  %s\n", "N,C,H,W -> O, k/s/p/g", "pass", "im2col us",
           "oneDNN us", "i2c/dnn", "auto");
    const char *pname[3] = {"forward", "bwd_data", "bwd_weight"};
    et_generator *gen = et_generator_new(0);
    for (int i = 0; i < nl; i++) {
        const shape *s = &list[i];
        et_tensor *x = et_randn(gen, ET_SHAPE(s->n, s->c, s->h, s->w));
        et_tensor *w = et_randn(gen, ET_SHAPE(s->o, s->c / s->g, s->k, s->k));
        et_tensor *b = et_randn(gen, ET_SHAPE(s->o));
        int64_t oh = (s->h + 2 * s->p - s->k) / s->s + 1, ow = (s->w + 2 * s->p - s->k) / s->s + 1;
        et_tensor *up = et_randn(gen, ET_SHAPE(s->n, s->o, oh, ow));
        etc_conv_geom g = {.n = s->n, .c = s->c, .h = s->h, .w = s->w, .o = s->o, .kh = s->k,
                           .kw = s->k, .oh = oh, .ow = ow, .sh = s->s, .sw = s->s, .dh = 1,
                           .dw = 1, .pt = s->p, .pb = s->p, .pl = s->p, .pr = s->p,
                           .groups = s->g};
        char label[64];
        snprintf(label, sizeof label, "%ld,%ld,%ld,%ld->%ld k%ld/s%ld/p%ld/g%ld", s->n, s->c,
                 s->h, s->w, s->o, s->k, s->s, s->p, s->g);
        for (int pass = 0; pass < 3; pass++) {
            double t[2];
            for (int k = 0; k < 2; k++) {
                et_set_conv_algo(k ? ET_CONV_ONEDNN : ET_CONV_IM2COL);
                t[k] = best(s, pass, x, w, b, up, budget);
            }
            et_set_conv_algo(ET_CONV_AUTO);
            bool dnn = etc_conv_use_onednn(&g, pass);
            printf("%-28s %-10s %12.1f %12.1f %7.2f  %s%s\n", label, pname[pass], t[0] * 1e6,
                   t[1] * 1e6, t[0] / t[1], dnn ? "oneDNN" : "im2col",
                   (dnn ? t[1] <= t[0] * 1.1 : t[0] <= t[1] * 1.1) ? "" : "  <- slower pick");
            fflush(stdout);
        }
        et_tensor_free(x);
        et_tensor_free(w);
        et_tensor_free(b);
        et_tensor_free(up);
    }
    et_generator_free(gen);
    return 0;
}
