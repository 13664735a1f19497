/*
 * gemm_kernel.h - the register-tiled GEMM kernel of gemm.c, written once and
 * included once per instruction set (AVX-512, AVX2) with these macros set:
 *
 *   ISA          suffix of the generated functions (gemm_run_ISA)
 *   TARGET       __attribute__((target(...))) for every function
 *   VW           floats per vector;  V, M: vector and lane-mask types
 *   MR, NVMAX    a tile of C is MR rows x NVMAX vectors (a panel is PW = NVMAX*VW columns)
 *   V_ZERO(), V_SET1(x), V_LOAD(p), V_MLOAD(m, p),
 *   V_PSTORE(m, nl, p, v)  the first nl lanes of v (m = M_FIRST(nl)) to p,
 *   V_FMA(a, b, c) = a*b + c rounded once, V_ADD(a, b),
 *   V_RELU(v)    v > 0 ? v : (v is NaN ? v : 0), as the elementwise ReLU
 *   M_FIRST(n)   mask of the first n lanes (0 <= n <= VW)
 *   V_STORE(p, v), V_GATHER(m, base, idx)  lanes base[idx[l]] where m is set, else 0
 *   VI, I_STRIDE(s)  int32 index vector type, and {0, s, 2s, ...}
 *   CASES(NV)    `CASE(r, NV)` for r = 1 .. MR-1 (the tails of m)
 *   PW           NVMAX * VW
 * and dot_tile_ISA() defined before (the dot kernel's 4x4 tile, see FN(gemm_dot)).
 * It undefines all of them at its end.
 *
 * Every element of C is   acc = 0;  for p in 0..k-1: acc = fma(A(i,p), B(p,j), acc)
 * followed by the epilogue  (C(i,j) +) acc (+ bias[j]) (then ReLU).  That
 * order depends on k only: not on m, on the tile an element falls in, on
 * the ISA or on whether B was packed, so a row of C has the same bits
 * whether it is computed alone or in a batch (etc_gemm's batch invariance),
 * and on every CPU.  (The k-split variant, KS > 1, gives up that property
 * for speed when m is tiny; etc_gemm never uses it for invariant calls.)
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, ISA)

/* The epilogue of one row of a tile: (C +) acc (+ bias), ReLU, store.
 * `full`: every lane of m is set, so C is read and written with plain
 * vector moves -- AVX2's masked store (vmaskmovps) is microcoded on AMD's
 * Zen cores, ~20x a plain store: it was a third of the char model's GEMM
 * time on a Zen 3 (docs/performance.md).  A partial vector (nl lanes, m
 * their mask) is stored by V_PSTORE, which on AVX2 is plain 16-, 8- and
 * 4-byte stores for the same reason. */
static inline __attribute__((always_inline)) TARGET void
FN(store)(const etc_gemm_t *g, float *cr, V v, M m, int nl, bool full, const float *bias, V bv)
{
    if (g->accumulate)
        v = V_ADD(full ? V_LOAD(cr) : V_MLOAD(m, cr), v);
    if (bias)
        v = V_ADD(v, bv);
    if (g->act == ETC_GEMM_RELU)
        v = V_RELU(v);
    if (full)
        V_STORE(cr, v);
    else
        V_PSTORE(m, nl, cr, v);
}

/* One tile: mr rows x nv vectors of C (nv <= NVMAX), both constant after
 * inlining, so the accumulators stay in registers.  A(i,p) = a[i*ars +
 * p*acs]; the tile's k-th row of B at bp + p*bst; mt masks the last vector,
 * its first tl lanes (tfull: it has every lane). */
static inline __attribute__((always_inline)) TARGET void
FN(tile)(const int mr, const int nv, int64_t k, const float *a, int64_t ars, int64_t acs,
         const float *bp, int64_t bst, M mt, int tl, bool tfull, const etc_gemm_t *g, float *c,
         const float *bias)
{
    V acc[NVMAX][MR];
    const float *ai[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        ai[i] = a + (i < mr ? i : 0) * ars;
#pragma GCC unroll 4
        for (int h = 0; h < NVMAX; h++)
            acc[h][i] = V_ZERO();
    }
    for (int64_t p = 0; p < k; p++) {
        const float *br = bp + p * bst;
        V b[NVMAX];
#pragma GCC unroll 4
        for (int h = 0; h < NVMAX; h++)
            if (h < nv)
                b[h] = h == nv - 1 ? V_MLOAD(mt, br + h * VW) : V_LOAD(br + h * VW);
        const int64_t ap = p * acs;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                V av = V_SET1(ai[i][ap]);
#pragma GCC unroll 4
                for (int h = 0; h < NVMAX; h++)
                    if (h < nv)
                        acc[h][i] = V_FMA(av, b[h], acc[h][i]);
            }
        }
    }
    V bv[NVMAX];
#pragma GCC unroll 4
    for (int h = 0; h < NVMAX; h++)
        if (h < nv)
            bv[h] = bias ? (h == nv - 1 ? V_MLOAD(mt, bias + h * VW) : V_LOAD(bias + h * VW))
                         : V_ZERO();
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
#pragma GCC unroll 4
            for (int h = 0; h < NVMAX; h++)
                if (h < nv)
                    FN(store)(g, c + i * g->ldc + h * VW, acc[h][i],
                              h == nv - 1 ? mt : M_FIRST(VW), h == nv - 1 ? tl : VW,
                              h < nv - 1 || tfull, bias, bv[h]);
        }
    }
}

/* m <= 2 rows, one or two vectors of C (m0, m1 masks of n0, n1 lanes), with k split into
 * KS_MAX interleaved chains (p mod KS_MAX, the tail on chain 0, summed in
 * order at the end): one row with a long k is latency-bound on a single
 * chain.  Not batch-invariant. */
static inline __attribute__((always_inline)) TARGET void
FN(tile_few)(const int mr, const int nv, int64_t k, const float *a, int64_t ars, int64_t acs,
             const float *bp, int64_t bst, M m0, M m1, int n0, int n1, bool f0, bool f1,
             const etc_gemm_t *g, float *c, const float *bias)
{
    V acc0[2][KS_MAX], acc1[2][KS_MAX];
#pragma GCC unroll 8
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 8
        for (int s = 0; s < KS_MAX; s++)
            acc0[i][s] = acc1[i][s] = V_ZERO();
    int64_t p = 0;
    for (; p + KS_MAX <= k; p += KS_MAX) {
#pragma GCC unroll 8
        for (int s = 0; s < KS_MAX; s++) {
            const float *br = bp + (p + s) * bst;
            V b0 = V_MLOAD(m0, br), b1 = nv > 1 ? V_MLOAD(m1, br + VW) : V_ZERO();
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) {
                V av = V_SET1(a[i * ars + (p + s) * acs]);
                acc0[i][s] = V_FMA(av, b0, acc0[i][s]);
                if (nv > 1)
                    acc1[i][s] = V_FMA(av, b1, acc1[i][s]);
            }
        }
    }
    for (; p < k; p++) {
        const float *br = bp + p * bst;
        V b0 = V_MLOAD(m0, br), b1 = nv > 1 ? V_MLOAD(m1, br + VW) : V_ZERO();
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            V av = V_SET1(a[i * ars + p * acs]);
            acc0[i][0] = V_FMA(av, b0, acc0[i][0]);
            if (nv > 1)
                acc1[i][0] = V_FMA(av, b1, acc1[i][0]);
        }
    }
    V bv0 = V_ZERO(), bv1 = V_ZERO();
    if (bias) {
        bv0 = V_MLOAD(m0, bias);
        if (nv > 1)
            bv1 = V_MLOAD(m1, bias + VW);
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        V v0 = acc0[i][0], v1 = acc1[i][0];
#pragma GCC unroll 8
        for (int s = 1; s < KS_MAX; s++) {
            v0 = V_ADD(v0, acc0[i][s]);
            v1 = V_ADD(v1, acc1[i][s]);
        }
        FN(store)(g, c + i * g->ldc, v0, m0, n0, f0, bias, bv0);
        if (nv > 1)
            FN(store)(g, c + i * g->ldc + VW, v1, m1, n1, f1, bias, bv1);
    }
}

/* All rows of one panel (nv vectors, constant). */
#define ROWS(NV)                                                                     \
    do {                                                                             \
        int64_t i0 = 0;                                                              \
        for (; i0 + MR <= g->m; i0 += MR)                                            \
            FN(tile)(MR, NV, g->k, g->a + i0 * g->ars, g->ars, g->acs, bp, bst, mt,  \
                     tl, tfull, g, g->c + i0 * g->ldc + j0, bias);                   \
        const float *ar = g->a + i0 * g->ars;                                        \
        float *cr = g->c + i0 * g->ldc + j0;                                         \
        switch ((int)(g->m - i0)) {                                                  \
        CASES(NV)                                                                    \
        default: break;                                                              \
        }                                                                            \
    } while (0)

#define CASE(R, NV)                                                                  \
    case R:                                                                          \
        FN(tile)(R, NV, g->k, ar, g->ars, g->acs, bp, bst, mt, tl, tfull, g, cr, bias); \
        break;

/* m <= 2 rows of a panel of at most 2 vectors, k split (not invariant). */
#define FEW(NV)                                                                      \
    do {                                                                             \
        float *cr = g->c + j0;                                                       \
        if (g->m == 1)                                                               \
            FN(tile_few)(1, NV, g->k, g->a, g->ars, g->acs, bp, bst, m0, m1, n0, n1, \
                         f0, f1, g, cr, bias);                                       \
        else                                                                         \
            FN(tile_few)(2, NV, g->k, g->a, g->ars, g->acs, bp, bst, m0, m1, n0, n1, \
                         f0, f1, g, cr, bias);                                       \
    } while (0)


/* Packs columns j0..j0+nj of B (B(p,j) = b[p*brs + j*bcs]) into
 * bp[p * ps + l] (ps = the panel's vectors * VW): rows copied when bcs == 1
 * (B's rows far apart in memory: one panel row per cache line set), else by
 * 8x8 transposes of 8 columns x 8 values of p (brs == 1, x·Wᵀ).  Lanes
 * beyond nj are left as they are: the tile reads the last vector through
 * its mask (a narrow last panel -- 27 outputs, 200 = 3 x 64 + 8 -- costs
 * only its own columns). */
static TARGET void FN(pack)(const etc_gemm_t *g, int64_t j0, int nj, float *bp, int64_t ps)
{
    const int64_t k = g->k, bcs = g->bcs;
    const float *b = g->b + j0 * bcs;
    const int nv = (nj + VW - 1) / VW;
    if (bcs == 1) {
        const M mt = M_FIRST(nj - (nv - 1) * VW);
        for (int64_t p = 0; p < k; p++) {
            const float *br = b + p * g->brs;
            float *o = bp + p * ps;
            for (int h = 0; h < nv; h++)
                V_STORE(o + h * VW, h < nv - 1 ? V_LOAD(br + h * VW) : V_MLOAD(mt, br + h * VW));
        }
        return;
    }
    if (g->brs != 1) {   /* both strides non-unit (a view): element by element */
        for (int64_t p = 0; p < k; p++)
            for (int l = 0; l < nj; l++)
                bp[p * ps + l] = b[p * g->brs + l * bcs];
        return;
    }
    for (int jb = 0; jb < nj; jb += 8) {
        int nr = nj - jb < 8 ? nj - jb : 8;
        int64_t p = 0;
        for (; p < k; p += 8) {
            int np = k - p < 8 ? (int)(k - p) : 8;
            __m256i mp = _mm256_cmpgt_epi32(_mm256_set1_epi32(np), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            __m256 r[8];
            for (int q = 0; q < 8; q++)
                r[q] = q < nr ? _mm256_maskload_ps(b + (jb + q) * bcs + p, mp) : _mm256_setzero_ps();
            etc_t8(r);
            for (int q = 0; q < np; q++)
                _mm256_storeu_ps(bp + (p + q) * ps + jb, r[q]);
        }
    }
}

/* C (+)= T transposed, with the epilogue, for n <= 8 columns: T holds Cᵀ
 * (n rows of m).  8 rows of C at a time through an 8x8 transpose. */
static TARGET void FN(ct_store)(const etc_gemm_t *g, const float *t)
{
    const int64_t m = g->m;
    const int n = (int)g->n;
    const __m256i mn = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 bias = g->bias ? _mm256_maskload_ps(g->bias, mn) : _mm256_setzero_ps();
    int64_t i0 = 0;
    for (; i0 + 8 <= m; i0 += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; q++)
            r[q] = q < n ? _mm256_loadu_ps(t + q * m + i0) : _mm256_setzero_ps();
        etc_t8(r);
        for (int q = 0; q < 8; q++) {
            float *cr = g->c + (i0 + q) * g->ldc;
            __m256 v = r[q];
            if (g->accumulate)
                v = _mm256_add_ps(_mm256_maskload_ps(cr, mn), v);
            if (g->bias)
                v = _mm256_add_ps(v, bias);
            if (g->act == ETC_GEMM_RELU)
                v = _mm256_and_ps(v, _mm256_or_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ),
                                                  _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
            etc_store_first8(cr, v, n);   /* not vmaskmovps: microcoded on Zen */
        }
    }
    for (; i0 < m; i0++) {
        for (int j = 0; j < n; j++)
            etc_gemm_store1(g, i0, j, t[j * m + i0]);
    }
}

/* n == 1, k <= 8, rows contiguous (acs == 1): 8 rows of A transposed so
 * that lane q holds row i0+q, then acc = fma(A(i,p), b[p], acc) over p in
 * every lane: the tile kernel's per-element order. */
static TARGET void FN(gemm_n1_short)(const etc_gemm_t *g)
{
    const int64_t m = g->m;
    const int k = (int)g->k;
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 bp[8];
    for (int p = 0; p < 8; p++)
        bp[p] = _mm256_set1_ps(p < k ? g->b[p * g->brs] : 0.0f);
    int64_t i0 = 0;
    for (; i0 + 8 <= m; i0 += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; q++)
            r[q] = _mm256_maskload_ps(g->a + (i0 + q) * g->ars, mk);
        etc_t8(r);
        __m256 acc = _mm256_setzero_ps();
        for (int p = 0; p < k; p++)
            acc = _mm256_fmadd_ps(r[p], bp[p], acc);
        float v[8];
        _mm256_storeu_ps(v, acc);
        for (int q = 0; q < 8; q++)
            etc_gemm_store1(g, i0 + q, 0, v[q]);
    }
    for (; i0 < m; i0++) {
        const float *a = g->a + i0 * g->ars;
        float acc = 0.0f;
        for (int p = 0; p < k; p++)
            acc = fmaf(a[p], g->b[p * g->brs], acc);
        etc_gemm_store1(g, i0, 0, acc);
    }
}

/* n == 1: one fma chain per row (the tile kernel's order), rows
 * independent so several chains run at once. */
static TARGET void FN(gemm_n1)(const etc_gemm_t *g)
{
    for (int64_t i = 0; i < g->m; i++) {
        const float *a = g->a + i * g->ars;
        float acc = 0.0f;
        for (int64_t p = 0; p < g->k; p++)
            acc = fmaf(a[p * g->acs], g->b[p * g->brs], acc);
        etc_gemm_store1(g, i, 0, acc);
    }
}

/* C = A·B where both run along k in memory (x·Wᵀ: acs == 1, brs == 1): a
 * tile of 4 rows of A x 4 columns of C with no packing, 16 partial sums per
 * element (lane l takes p = l mod 16, in order), then added in one fixed
 * tree: ((l, l+8), (l, l+4), (l, l+2), (l, l+1)).  The order depends on k
 * only: batch-invariant, and the same on every ISA (AVX2 holds the 16
 * lanes in two vectors).  dot_tile_ISA(ar, br, k, out) leaves the 16
 * sums in out[4 * i + j] for rows ar[i] of A and br[j] of Bᵀ. */
static TARGET void FN(gemm_dot)(const etc_gemm_t *g)
{
    const int64_t m = g->m, n = g->n, k = g->k;
    /* column blocks of B whose rows stay in L2 while all of A goes by */
    int64_t jb = ((int64_t)128 << 10) / (k * (int64_t)sizeof(float));
    jb = jb < 4 ? 4 : jb - jb % 4;
    for (int64_t jb0 = 0; jb0 < n; jb0 += jb) {
        int64_t jend = jb0 + jb < n ? jb0 + jb : n;
        for (int64_t i0 = 0; i0 < m; i0 += 4) {
            int ri = m - i0 < 4 ? (int)(m - i0) : 4;
            const float *ar[4];
            for (int r = 0; r < 4; r++)
                ar[r] = g->a + (i0 + (r < ri ? r : 0)) * g->ars;
            for (int64_t j0 = jb0; j0 < jend; j0 += 4) {
                int rj = jend - j0 < 4 ? (int)(jend - j0) : 4;
                const float *br[4];
                for (int q = 0; q < 4; q++)
                    br[q] = g->b + (j0 + (q < rj ? q : 0)) * g->bcs;
                float out[16];
                CAT(dot_tile, ISA)(ar, br, k, out);
                for (int r = 0; r < ri; r++) {
                    for (int q = 0; q < rj; q++)
                        etc_gemm_store1(g, i0 + r, j0 + q, out[4 * r + q]);
                }
            }
        }
    }
}

/* C = A·B (+ epilogue) for any m, n, k >= 1 by tiles (see etc_gemm for
 * when the dot kernel is used instead).  `ks` > 1 (k split into KS_MAX
 * chains) only for m <= 2 and n <= 2 vectors, in calls that need not be
 * batch-invariant.  B is packed panel by panel into `scratch` (k * PW
 * floats) when given, else read in place (needs g->bcs == 1). */
static TARGET void FN(gemm_run)(const etc_gemm_t *g, int ks, float *scratch)
{
    const int pw = ks > 1 ? 2 * VW : PW;
    for (int64_t j0 = 0; j0 < g->n; j0 += pw) {
        int nj = g->n - j0 < pw ? (int)(g->n - j0) : pw;
        int nv = (nj + VW - 1) / VW;
        const int tl = nj - (nv - 1) * VW;
        M mt = M_FIRST(tl);
        /* the k-split rows' two vectors (pw == 2 VW there) */
        const int n0 = nj < VW ? nj : VW, n1 = nj > 2 * VW ? VW : nj > VW ? nj - VW : 0;
        M m0 = M_FIRST(n0), m1 = M_FIRST(n1);
        const bool tfull = nj == nv * VW, f0 = nj >= VW, f1 = nj >= 2 * VW;
        const float *bp;
        int64_t bst;
        if (scratch == NULL) {   /* B's rows read in place */
            bp = g->b + j0;
            bst = g->brs;
        } else {
            bst = (int64_t)nv * VW;
            FN(pack)(g, j0, nj, scratch, bst);
            bp = scratch;
        }
        const float *bias = g->bias ? g->bias + j0 : NULL;
        if (ks > 1) {
            if (nv > 1)
                FEW(2);
            else
                FEW(1);
            continue;
        }
        switch (nv) {
        case 1: ROWS(1); break;
        case 2: ROWS(2); break;
#if NVMAX > 2
        case 3: ROWS(3); break;
        case 4: ROWS(4); break;
#endif
        default: break;
        }
    }
}

#undef CAT_
#undef CAT
#undef FN
#undef ROWS
#undef CASE
#undef FEW
/* and the parameters, so that gemm.c can include this again for the next ISA */
#undef ISA
#undef TARGET
#undef VW
#undef MR
#undef NVMAX
#undef PW
#undef V
#undef VI
#undef M
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_STORE
#undef V_MLOAD
#undef V_PSTORE
#undef V_FMA
#undef V_ADD
#undef V_RELU
#undef M_FIRST
#undef V_GATHER
#undef I_STRIDE
#undef CASES
