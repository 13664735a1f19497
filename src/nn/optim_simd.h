/*
 * optim_simd.h - wide-vector element loops of the optimizers (optim_simd.c).
 * Each updates the leading elements it can (a multiple of its width) with
 * exactly the scalar loop's operations and returns how many; 0 when the
 * CPU has no suitable vectors.  Internal to src/nn.
 */
#ifndef EASYTORCH_NN_OPTIM_SIMD_H
#define EASYTORCH_NN_OPTIM_SIMD_H

#include <stdbool.h>
#include <stdint.h>

/* SGD's constants and flags (optim.c's sgd_update). */
typedef struct nn_sgd_consts {
    float wd, mom, damp, nlr;
    bool maximize, has_wd, has_mom, first, nesterov;
} nn_sgd_consts;

int64_t nn_sgd_simd(float *p, const float *g, float *buf, int64_t k, const nn_sgd_consts *c);

/* Adam/AdamW; c[10] as optim.c's adam_update: sign, wd, decay, b1, 1-b1,
 * b2, 1-b2, sqrt(bias correction 2), eps, -lr/bias correction 1. */
int64_t nn_adam_simd(float *p, const float *g, float *m, float *v, float *vmax, int64_t k,
                     bool coupled_wd, bool decoupled, bool ams, const float *c);

/* s[i] / c into out[i] by the AVX-512 Adam loop's division of sqrt(v) by
 * the bias correction (two FMAs, the same bits as the division); returns how
 * many leading elements it did (a multiple of 16), 0 when the CPU has no
 * AVX-512 or c is outside the range where the loop uses it.  For tests. */
int64_t nn_div_bc_simd(const float *s, float *out, int64_t n, float c);

#endif
