/* tanh_avx512.h - etc_tanhf over a contiguous row with AVX-512
 * (tanh_avx512.c): the same bits as the scalar function. */
#ifndef ET_TANH_AVX512_H
#define ET_TANH_AVX512_H

#include <stdbool.h>
#include <stdint.h>

/* o[i] = etc_tanhf(x[i]), i < n (o == x allowed); needs etc_tanh_avx512_cpu() */
void etc_tanh_avx512(float *o, const float *x, int64_t n);
/* the CPU has AVX-512F (false where the kernel is not built) */
bool etc_tanh_avx512_cpu(void);

#endif
