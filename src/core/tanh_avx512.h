/* tanh_avx512.h - etc_tanhf over a contiguous row with AVX-512
 * (tanh_avx512.c): the same bits as the scalar function. */
#ifndef ET_TANH_AVX512_H
#define ET_TANH_AVX512_H

#include <stdbool.h>
#include <stdint.h>

/* o[i] = etc_tanhf(x[i]), i < n (o == x allowed); fast where etc_cpu_avx512f() */
void etc_tanh_avx512(float *o, const float *x, int64_t n);
/* o[i] = g[i] * (1 - y[i]^2), tanh's backward from its output (o != g, y) */
void etc_tanh_back_avx512(float *o, const float *g, const float *y, int64_t n);

#endif
