/* gemm_n1.h - one output column of many rows, not batch-invariant
 * (gemm_n1_ks.c): C (+)= A·b (+ bias, ReLU) for n == 1 with both operands
 * along k in memory (g->acs == 1, g->brs == 1: x·wᵀ, a Linear layer with one
 * output), k >= 32.  Each element is KS_MAX = 4 interleaved fma chains
 * (chain s takes p = s mod 4 in order, the tail past the last whole group
 * of 4 on chain 0), summed ((c0 + c1) + c2) + c3, then C (accumulate), the
 * bias, ReLU: exactly the bits of gemm.c's Cᵀ path with the tile kernel's
 * k split, which these shapes took before.  The CPU must have AVX2 and FMA;
 * only on x86-64 without ET_GEMM_PORTABLE. */
#ifndef ET_GEMM_N1_H
#define ET_GEMM_N1_H

#include "core/core_internal.h"

void etc_gemm_n1_ks4(const etc_gemm_t *g);

#endif
