/*
 * gemm_inv_many.c - the batch-invariant x·Wᵀ for many rows (gemm_inv.h):
 * the dot kernel's order with the vector lanes along the columns of C.
 *
 * gemm_inv_few.c reads W in place with the 16 lanes of each element along
 * k: the fastest for a few rows, but from ~8 rows up both operands of every
 * FMA are loaded vectors and it runs at about half the tile kernel's rate.
 * Here, as in the tile kernel, W is transposed into a panel of 16 columns
 * (k x 16 floats in the passes' order, bp[(p % 16) * L + p / 16 * 16 + jj]
 * = W(j0 + jj, p), a pass L = 16 * ceil(k / 16) + 16 floats long, so each
 * pass reads its chunks contiguously), once per 64 rows -- or, with g->bpack (all of W packed
 * once and cached, gemm_inv_pack.c), never -- and A's values are
 * broadcast; but each element (i, j) still keeps 16 partial sums, lane l of
 * the dot order taking p = 16c + l, as 16 passes over the chunks c,
 * followed by the dot kernel's tree:
 *
 *     s_l[cols] = fma(A(i, 16c + l), bp[16c + l][cols], s_l[cols])  (c in order)
 *     (s_l + s_{l+8}), then (+4), (+2), (+1)
 *
 * so every element has exactly gemm_inv_few.c's (and gemm_dot's) bits.
 * A's rows, 6 at a time, are copied in the order of the passes
 * (ap[((l * G + q) * C + c) * 6 + r] = A(i0 + r, 16c + l) for group q of G)
 * so a pass's broadcasts are contiguous.  Tiles (16 ymm registers): 6 rows
 * x 16 columns (12 accumulators; per step 2 panel loads, 6 broadcasts, 12
 * FMAs), the tile kernel's shape.  Loop order (session 9): pass l of every
 * group of rows before pass l + 1, each tile's 16 sums kept in scratch until
 * its tree, so the pass's slice of the panel (C x 16 floats, 4 kB at k =
 * 1024) stays in L1 while the groups go by; tile after tile (before) read
 * the whole panel (64 kB) from L2 for each group.  Lanes past k in the last
 * chunk get s + 0 (the vector kernels' fma(0, 0, s)).
 */
#include <stdbool.h>

#include "core/gemm_inv.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
#include <immintrin.h>

#include "core/avx_transpose.h"

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET

enum { MR = 6, PW = 16, ROW_BLOCK = 64 };

INLINE __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}


/* W's rows j0 .. j0+nj-1 (nj <= 16) into the panel bp, zeros in the lanes
 * past nj of their 8-lane half: row p of the panel at p * 16 (per call:
 * the transpose's stores in sequence), or at (p % 16) * L + p / 16 * 16 (the
 * cache's passes' order, `pass_order`: each pass's chunks contiguous, worth
 * its scattered stores only when packed once) */
static TARGET void pack_w(const etc_gemm_t *g, int64_t j0, int nj, float *bp, bool pass_order)
{
    const int64_t k = g->k, ls = (int64_t)ETC_INV_PANEL_FLOATS(g) / 16;
    for (int jb = 0; jb < nj; jb += 8) {
        int nr = nj - jb < 8 ? nj - jb : 8;
        for (int64_t p = 0; p < k; p += 8) {
            int np = k - p < 8 ? (int)(k - p) : 8;
            __m256i mp = first_lanes(np);
            __m256 r[8];
            for (int q = 0; q < 8; q++)
                r[q] = q < nr ? _mm256_maskload_ps(g->b + (j0 + jb + q) * g->bcs + p, mp)
                              : _mm256_setzero_ps();
            etc_t8(r);
            if (pass_order)
                for (int q = 0; q < np; q++)
                    _mm256_storeu_ps(bp + (p + q) % 16 * ls + (p + q) / 16 * PW + jb, r[q]);
            else
                for (int q = 0; q < np; q++)
                    _mm256_storeu_ps(bp + (p + q) * PW + jb, r[q]);
        }
    }
}

/* rows i0 .. i0+nr-1 (nr <= 6) of A, group q of ng, into ap in the passes'
 * order: ap[((l * ng + q) * nc + c) * 6 + r] = A(i0 + r, 16c + l), so one
 * pass's slices of every group are contiguous.  Eight columns of the rows
 * at a time through the 8x8 transpose, each column's 6 values stored at
 * once (the element-by-element copy, an index computed per float, was
 * ~50 us of a 64-row batch per layer on session 10's Zen 4: all of the
 * 64 x 10 x 1024 layer's cost beyond its one panel's FMAs); the slots of
 * rows past nr get zeros (never read) */
static TARGET void pack_a(const etc_gemm_t *g, int64_t i0, int nr, int64_t q, int64_t ng,
                          float *ap)
{
    const int64_t k = g->k, nc = (k + 15) / 16;
    for (int64_t p = 0; p < k; p += 8) {
        int np = k - p < 8 ? (int)(k - p) : 8;
        __m256i mp = first_lanes(np);
        __m256 r[8];
        for (int rr = 0; rr < 8; rr++) {
            const float *a = g->a + (i0 + rr) * g->ars + p;
            r[rr] = rr >= nr ? _mm256_setzero_ps()
                             : np == 8 ? _mm256_loadu_ps(a) : _mm256_maskload_ps(a, mp);
        }
        etc_t8(r);   /* r[j]: A(i0 + 0..7, p + j) */
        for (int j = 0; j < np; j++) {
            int64_t pj = p + j;
            float *d = ap + (((pj % 16) * ng + q) * nc + pj / 16) * MR;
            _mm_storeu_ps(d, _mm256_castps256_ps128(r[j]));
            _mm_storel_pi((__m64 *)(void *)(d + 4), _mm256_extractf128_ps(r[j], 1));
        }
    }
}

/* Pass l of an mr x nv tile (mr rows of A at al, nv vectors of columns of
 * the panel's pass at bl): lane l's chain over its cl chunks, + 0 when the
 * last chunk had no term for it (the vector kernels' fma(0, 0, s)), into
 * out[(r * 2 + v) * 8]; mr and nv constant after inlining */
INLINE void pass(const int mr, const int nv, const float *al, const float *bl, int64_t cs,
                 int64_t cl, bool pad, float *out)
{
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < cl; c++) {
        const float *br = bl + c * cs;
        __m256 b0 = _mm256_loadu_ps(br), b1 = nv > 1 ? _mm256_loadu_ps(br + 8) : b0;
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++)
            if (r < mr) {
                __m256 av = _mm256_broadcast_ss(al + c * MR + r);
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                if (nv > 1)
                    acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
    }
    const __m256 z = _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
        if (r < mr)
            for (int v = 0; v < nv; v++)
                _mm256_storeu_ps(out + (r * 2 + v) * 8, pad ? _mm256_add_ps(acc[r][v], z)
                                                             : acc[r][v]);
}

/* The tree over the 16 passes' sums of an mr x nv tile (pass l's at
 * sb + l * SB_PASS) and the epilogue, into rows i0.., columns j0.. of C */
enum { SB_PASS = MR * 2 * 8, SB_TILE = 16 * SB_PASS };
INLINE void finish(const int mr, const int nv, const etc_gemm_t *g, const float *sb, int64_t i0,
                   int64_t j0, __m256i mt, bool nfull)
{
    for (int r = 0; r < mr; r++) {
        float *cr = g->c + (i0 + r) * g->ldc + j0;
        for (int v = 0; v < nv; v++) {
            const float *sv = sb + (r * 2 + v) * 8;
            __m256 t[8];
            for (int l = 0; l < 8; l++)
                t[l] = _mm256_add_ps(_mm256_loadu_ps(sv + l * SB_PASS),
                                     _mm256_loadu_ps(sv + (l + 8) * SB_PASS));
            for (int l = 0; l < 4; l++)
                t[l] = _mm256_add_ps(t[l], t[l + 4]);
            for (int l = 0; l < 2; l++)
                t[l] = _mm256_add_ps(t[l], t[l + 2]);
            __m256 x = _mm256_add_ps(t[0], t[1]);
            /* plain moves for full vectors: vmaskmovps is microcoded on Zen */
            const bool whole = v < nv - 1 || nfull;
            if (g->accumulate)
                x = _mm256_add_ps(whole ? _mm256_loadu_ps(cr + 8 * v)
                                        : _mm256_maskload_ps(cr + 8 * v, mt), x);
            if (g->bias)
                x = _mm256_add_ps(x, whole ? _mm256_loadu_ps(g->bias + j0 + 8 * v)
                                           : _mm256_maskload_ps(g->bias + j0 + 8 * v, mt));
            if (g->act == ETC_GEMM_RELU)
                x = _mm256_and_ps(x, _mm256_or_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ),
                                                  _mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
            if (whole)
                _mm256_storeu_ps(cr + 8 * v, x);
            else
                _mm256_maskstore_ps(cr + 8 * v, mt, x);
        }
    }
}

#define P(MRR, NV) case (MRR) * 4 + (NV): pass(MRR, NV, al, bl, cs, cl, pad, out); return;
static TARGET void pass_any(int mr, int nv, const float *al, const float *bl, int64_t cs,
                            int64_t cl, bool pad, float *out)
{
    switch (mr * 4 + nv) {
    P(1, 1) P(2, 1) P(3, 1) P(4, 1) P(5, 1) P(6, 1)
    P(1, 2) P(2, 2) P(3, 2) P(4, 2) P(5, 2) P(6, 2)
    default: break;
    }
}

#define F(MRR, NV) case (MRR) * 4 + (NV): finish(MRR, NV, g, sb, i0, j0, mt, nfull); return;
static TARGET void finish_any(int mr, int nv, const etc_gemm_t *g, const float *sb, int64_t i0,
                              int64_t j0, __m256i mt, bool nfull)
{
    switch (mr * 4 + nv) {
    F(1, 1) F(2, 1) F(3, 1) F(4, 1) F(5, 1) F(6, 1)
    F(1, 2) F(2, 2) F(3, 2) F(4, 2) F(5, 2) F(6, 2)
    default: break;
    }
}

TARGET void etc_gemm_inv_pack_avx2(const etc_gemm_t *g, float *dst)
{
    for (int64_t j0 = 0; j0 < g->n; j0 += PW)
        pack_w(g, j0, g->n - j0 < PW ? (int)(g->n - j0) : PW,
               dst + (size_t)(j0 / PW) * ETC_INV_PANEL_FLOATS(g), true);
}

TARGET void etc_gemm_inv_many_avx2(const etc_gemm_t *g, float *scratch)
{
    const int64_t kp = (g->k + 15) / 16 * 16, nc = kp / 16;
    const int kr = (int)(g->k % 16);
    /* the W panel, A's groups, the passes' sums of every tile of a panel */
    const int64_t ls = (int64_t)ETC_INV_PANEL_FLOATS(g) / 16;   /* a pass's floats */
    float *bp = scratch, *apb = scratch + 16 * ls, *sb = apb + kp * ETC_INV_MANY_A_ROWS;
    for (int64_t b0 = 0; b0 < g->m; b0 += ROW_BLOCK) {
        int64_t end = g->m - b0 < ROW_BLOCK ? g->m : b0 + ROW_BLOCK;
        const int64_t ng = (end - b0 + MR - 1) / MR;
        for (int64_t q = 0; q < ng; q++) {
            int64_t i0 = b0 + q * MR;
            pack_a(g, i0, end - i0 < MR ? (int)(end - i0) : MR, q, ng, apb);
        }
        for (int64_t j0 = 0; j0 < g->n; j0 += PW) {
            int nj = g->n - j0 < PW ? (int)(g->n - j0) : PW;
            const float *panel = g->bpack ? g->bpack + j0 / PW * 16 * ls : bp;
            if (!g->bpack)
                pack_w(g, j0, nj, bp, false);
            /* pass l's chunk c: at l * ls + c * 16 (cached), l * 16 + c * 256 */
            const int64_t lstride = g->bpack ? ls : PW, cs = g->bpack ? PW : 16 * PW;
            int nv = (nj + 7) / 8;
            __m256i mt = first_lanes(nj - (nv - 1) * 8);
            /* pass by pass over every group of rows: a pass's slice of the
             * panel (C x 16 floats) stays in L1 while the groups go by */
            for (int l = 0; l < 16; l++) {
                const int64_t cl = kr == 0 || l < kr ? nc : nc - 1;
                const float *bl = panel + l * lstride;
                for (int64_t q = 0; q < ng; q++) {
                    int64_t i0 = b0 + q * MR;
                    int mr = end - i0 < MR ? (int)(end - i0) : MR;
                    pass_any(mr, nv, apb + (l * ng + q) * nc * MR, bl, cs, cl, cl < nc,
                             sb + q * SB_TILE + l * SB_PASS);
                }
            }
            for (int64_t q = 0; q < ng; q++) {
                int64_t i0 = b0 + q * MR;
                int mr = end - i0 < MR ? (int)(end - i0) : MR;
                finish_any(mr, nv, g, sb + q * SB_TILE, i0, j0, mt, nj % 8 == 0);
            }
        }
    }
}
#endif
