/* cross_entropy_avx512.h - cross_entropy.c's AVX-512 kernels
 * (cross_entropy_avx512.c) for rows of 16..CE512_MAX_D logits: the same
 * bits as its AVX2 and portable row kernels. */
#ifndef ET_CROSS_ENTROPY_AVX512_H
#define ET_CROSS_ENTROPY_AVX512_H

#include <stdbool.h>
#include <stdint.h>

#define CE512_MAX_D 256

/* per-row terms of a block of at most 16 rows of the backward */
typedef struct {
    float m[16], ls[16], fs[16], dyt[16];
    int32_t t[16];
} ce512_rows;

/* (callers check etc_cpu_avx512f(), core_internal.h) */
/* max and log-sum-exp of each row of x [N, D] (16 <= D <= CE512_MAX_D) to
 * m_out[i * ostride], ls_out[i * ostride] */
void etc_ce_stats_avx512(const float *x, int64_t N, int64_t D, float *m_out, float *ls_out,
                         int64_t ostride);
/* dx [R, D] of rows x [R, D], R <= 16 */
void etc_ce_back_avx512(const float *x, float *dx, int64_t R, int64_t D, const ce512_rows *rows);

#endif
