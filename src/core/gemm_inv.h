/* gemm_inv.h - the batch-invariant x·Wᵀ kernels (gemm_inv_few.c,
 * gemm_inv_many.c): C (+)= A·B (+ bias, ReLU) with both operands along k in
 * memory (g->acs == 1, g->brs == 1: a Linear layer's forward), any m, n and
 * k >= 1, each element in the dot kernel's order (gemm_kernel.h,
 * FN(gemm_dot)): 16 partial sums, lane l taking p = l mod 16 in order (lanes
 * past k in the last chunk get one fma(0, 0, s), i.e. s + 0), then the
 * tree (l, l+8), (l, l+4), (l, l+2), (l, l+1).  That order depends on k
 * only, so both kernels give every row the same bits, alone or in any batch,
 * and the same bits as gemm_dot_avx2 / gemm_dot_avx512 / gemm_dot_portable
 * (the default mode's one-row kernel).  The CPU must have AVX2 and FMA;
 * only on x86-64 without ET_GEMM_PORTABLE. */
#ifndef ET_GEMM_INV_H
#define ET_GEMM_INV_H

#include "core/core_internal.h"

/* Invariant x·Wᵀ from this many rows on: gemm_inv_many.c, else
 * gemm_inv_few.c (the same bits; the crossover of the two on the
 * 784-1024-1024-10 forward, docs/performance-http.md). */
#define ETC_INV_MANY_MIN_ROWS 16

/* Few rows: the 16 lanes along k, W's rows read in place. */
void etc_gemm_inv_few_avx2(const etc_gemm_t *g);

/* Floats of scratch etc_gemm_inv_many_avx2 needs for g (any m): a panel
 * of W (16 columns), A's rows of a block of 64 in groups of 6 (66 rows),
 * and the 16 passes' partial sums of each of the block's 11 tiles. */
#define ETC_INV_MANY_A_ROWS 66
/* Floats of one 16-column panel of W: 16 passes of ceil(k / 16) x 16, each
 * pass 16 floats longer (a pass 4 kB long would make the transpose's eight
 * stores 4 kB apart: 4K aliasing) */
#define ETC_INV_PANEL_FLOATS(g) ((size_t)(((g)->k + 15) / 16 * 16 + 16) * 16u)
#define ETC_INV_MANY_SCRATCH(g) \
    (ETC_INV_PANEL_FLOATS(g) + (size_t)(((g)->k + 15) / 16 * 16) * ETC_INV_MANY_A_ROWS + \
     11u * 16u * 96u)

/* Many rows: W transposed 16 columns at a time (as the tile kernel does),
 * A's values broadcast; `scratch`: the floats above.  With g->bpack, W's
 * panels are read from there (etc_gemm_inv_pack_avx2's layout) instead. */
void etc_gemm_inv_many_avx2(const etc_gemm_t *g, float *scratch);

/* Floats of all of W's panels packed for g (ceil(n / 16) panels). */
#define ETC_INV_PACK_FLOATS(g) ((size_t)(((g)->n + 15) / 16) * ETC_INV_PANEL_FLOATS(g))

/* All of W (g->b, g->bcs; g->brs == 1) into dst (ETC_INV_PACK_FLOATS(g),
 * zeroed by the caller: lanes past n are left alone) for g->bpack. */
void etc_gemm_inv_pack_avx2(const etc_gemm_t *g, float *dst);

/* The cached pack of the Linear weight w for the invariant x·Wᵀ g (this
 * thread's et_pack_cache, gemm_inv_pack.c), packed now if missing; NULL
 * when there is no cache, the call would not use the many-row kernel, or
 * memory is short (the caller then packs per call as before). */
const float *etc_inv_pack_get(const etc_gemm_t *g, const et_tensor *w);

#endif
