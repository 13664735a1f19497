/*
 * optim_simd.c - the element loops of SGD and Adam on wide vectors: AVX-512
 * (16 lanes) or AVX (8), chosen at run time, so the binary still runs on any
 * x86-64.  Each is exactly the operation sequence of the scalar loop in
 * optim.c (IEEE mul, add, div, sqrt, max and sign flips are lane-wise the
 * same, and no FMA changes a rounding), so the results are the same bits on every CPU
 * and with every vector width.  Each returns how many leading elements it
 * updated (a multiple of its width); optim.c's scalar loop does the tail.
 *
 * Why: the update reads and writes every parameter once per step, so on a
 * large model it is memory-bound (SGD with momentum over the 1.86 M
 * parameters of 784-1024-1024-10 moves 37 MB per step), and the SSE loop
 * GCC made of it issued 4x the instructions of an AVX-512 one; Adam on a
 * small model is bound by the divider (two divisions and a square root per
 * element), where 16 lanes are no faster than 8 but no slower either --
 * except that the AVX-512 loop divides by the bias correction, a constant,
 * with two FMAs instead of the divider (div_bc512: the same bits).
 */
#include "nn/optim_simd.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define OPTIM_X86 1
#include <immintrin.h>
#endif

#ifdef OPTIM_X86
static int width(void)
{
    static int w = -1;
    int v = __atomic_load_n(&w, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx") ? 8 : 0;
        __atomic_store_n(&w, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* ---- SGD: d = ±g; d += wd·p; buf = first ? d : buf·mom + damp·d;
 *      d = nesterov ? d + mom·buf : buf; p += nlr·d ---- */

#define SGD_LOOP(V, LOAD, STORE, SET1, ADD, MUL, XOR, W)                                    \
    const V vwd = SET1(c->wd), vmom = SET1(c->mom), vdamp = SET1(c->damp);               \
    const V vnlr = SET1(c->nlr), sign = SET1(-0.0f);                                      \
    int64_t j = 0;                                                                         \
    for (; j + W <= k; j += W) {                                                           \
        V pj = LOAD(p + j), d = LOAD(g + j);                                               \
        if (c->maximize)                                                                   \
            d = XOR(d, sign);                                                              \
        if (c->has_wd)                                                                     \
            d = ADD(d, MUL(vwd, pj));                                                      \
        if (c->has_mom) {                                                                  \
            V b = c->first ? d : ADD(MUL(LOAD(buf + j), vmom), MUL(vdamp, d));             \
            STORE(buf + j, b);                                                             \
            d = c->nesterov ? ADD(d, MUL(vmom, b)) : b;                                    \
        }                                                                                  \
        STORE(p + j, ADD(pj, MUL(vnlr, d)));                                               \
    }                                                                                      \
    return j;

/* vxorps on zmm needs AVX512DQ; the integer xor is AVX512F */
#define XOR512(a, b) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))

__attribute__((target("avx512f"))) static int64_t sgd512(float *restrict p,
                                                         const float *restrict g,
                                                         float *restrict buf, int64_t k,
                                                         const nn_sgd_consts *c)
{
    SGD_LOOP(__m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_mul_ps, XOR512, 16)
}

__attribute__((target("avx"))) static int64_t sgd256(float *restrict p, const float *restrict g,
                                                     float *restrict buf, int64_t k,
                                                     const nn_sgd_consts *c)
{
    SGD_LOOP(__m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_mul_ps, _mm256_xor_ps, 8)
}
#endif

int64_t nn_sgd_simd(float *p, const float *g, float *buf, int64_t k, const nn_sgd_consts *c)
{
#ifdef OPTIM_X86
    int w = width();
    if (w == 16)
        return sgd512(p, g, buf, k, c);
    if (w == 8)
        return sgd256(p, g, buf, k, c);
#endif
    (void)p, (void)g, (void)buf, (void)k, (void)c;
    return 0;
}

/* ---- Adam: d = sign·g (decoupled: p·decay first; coupled: d += wd·p);
 *      m = m·b1 + (1-b1)·d; v = v·b2 + (1-b2)·d²; (amsgrad: v = max(vmax, v));
 *      p += nstep·(m / (sqrt(v)/bc2s + eps)) ---- */

#ifdef OPTIM_X86
#define ADAM_LOOP(V, LOAD, STORE, SET1, ADD, MUL, DIV, DIVBC, SQRT, MAX, W)                   \
    const V vsign = SET1(c[0]), vwd = SET1(c[1]), vdecay = SET1(c[2]), vb1 = SET1(c[3]);    \
    const V vomb1 = SET1(c[4]), vb2 = SET1(c[5]), vomb2 = SET1(c[6]), vbc2s = SET1(c[7]);   \
    const V veps = SET1(c[8]), vnstep = SET1(c[9]);                                         \
    const bool flip = c[0] != 1.0f;                                                         \
    int64_t j = 0;                                                                          \
    for (; j + W <= k; j += W) {                                                            \
        V pj = LOAD(p + j);                                                                 \
        V d = LOAD(g + j);                                                                  \
        /* d·1 is d (the next multiplication quiets a signalling NaN alike); kept \
         * with coupled weight decay, where without it the compiler may swap the   \
         * addition's operands and a NaN p's sign would win over a NaN g's */      \
        if (flip || coupled_wd)                                                             \
            d = MUL(vsign, d);                                                              \
        if (decoupled)                                                                      \
            pj = MUL(pj, vdecay);                                                           \
        if (coupled_wd)                                                                     \
            d = ADD(d, MUL(vwd, pj));                                                       \
        V mj = ADD(MUL(LOAD(m + j), vb1), MUL(vomb1, d));                                   \
        V vj = ADD(MUL(LOAD(v + j), vb2), MUL(vomb2, MUL(d, d)));                           \
        STORE(m + j, mj);                                                                   \
        STORE(v + j, vj);                                                                   \
        if (ams) {                                                                          \
            vj = MAX(LOAD(vmax + j), vj); /* vmax > vj ? vmax : vj */                       \
            STORE(vmax + j, vj);                                                            \
        }                                                                                   \
        V denom = ADD(DIVBC(SQRT(vj), vbc2s), veps);                                        \
        STORE(p + j, ADD(pj, MUL(vnstep, DIV(mj, denom))));                                 \
    }                                                                                       \
    return j;

/* sqrt(v) / bc2s, the same bits as the division, by a multiplication and
 * two FMAs: with y = RN(1/c), q0 = RN(s·y), the remainder r = s - q0·c
 * (exact in an FMA) and q = RN(q0 + r·y) is RN(s/c) -- Markstein's theorem
 * (IBM J. Res. Dev. 34(1), 1990), the division by a divisor known in
 * advance of Brisebarre, Muller and Raina (IEEE Trans. Computers 53(8),
 * 2004), barring underflow and overflow.  Neither happens for the s =
 * sqrt(v) a float v gives (0, or 2^-75 <= s < 2^64) while 2^-60 <= c <= 1
 * (nn_adam_simd checks c; the remainder stays above 2^-123); ±0 and +inf,
 * where the remainder is 0·inf, take s itself, which is s/c; NaN stays NaN.
 * One division less per parameter on a divider-bound loop.
 * tests/nn/check_optim.c compares it with the division for every s of
 * three whole binades (the algorithm scales with s's exponent) and the
 * special values, for the bias corrections of the first steps and extreme c. */
__attribute__((target("avx512f,avx512dq"))) static inline __m512 div_bc512(__m512 s, __m512 c, __m512 y)
{
    __m512 q0 = _mm512_mul_ps(s, y);
    __m512 q = _mm512_fmadd_ps(_mm512_fnmadd_ps(q0, c, s), y, q0);
    /* one classification (AVX512DQ: ±0, +inf) instead of two comparisons and an or */
    __mmask16 keep = _mm512_fpclass_ps_mask(s, 0x02 | 0x04 | 0x08);
    return _mm512_mask_mov_ps(q, keep, s);
}

__attribute__((target("avx512f,avx512dq"))) static int64_t adam512(
    float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
    float *restrict vmax, int64_t k, bool coupled_wd, bool decoupled, bool ams, const float *c)
{
    const __m512 vrbc2s = _mm512_set1_ps(1.0f / c[7]);
#define DIV_BC512(s, bc) div_bc512(s, bc, vrbc2s)
    ADAM_LOOP(__m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps,
              _mm512_mul_ps, _mm512_div_ps, DIV_BC512, _mm512_sqrt_ps, _mm512_max_ps, 16)
#undef DIV_BC512
}

__attribute__((target("avx512f,avx512dq"))) static int64_t div_bc_many512(const float *s, float *out,
                                                                int64_t n, float c)
{
    const __m512 vc = _mm512_set1_ps(c), vy = _mm512_set1_ps(1.0f / c);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(out + j, div_bc512(_mm512_loadu_ps(s + j), vc, vy));
    return j;
}

__attribute__((target("avx"))) static int64_t adam256(
    float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
    float *restrict vmax, int64_t k, bool coupled_wd, bool decoupled, bool ams, const float *c)
{
    ADAM_LOOP(__m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_add_ps,
              _mm256_mul_ps, _mm256_div_ps, _mm256_div_ps, _mm256_sqrt_ps, _mm256_max_ps, 8)
}

/* div_bc512's CPU (AVX512DQ's classification beside AVX512F: every AVX-512
 * CPU but Xeon Phi) and range of the bias correction */
static bool bc_fma_usable(float c)
{
    static int dq = -1;
    int v = __atomic_load_n(&dq, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = width() == 16 && __builtin_cpu_supports("avx512dq");
        __atomic_store_n(&dq, v, __ATOMIC_RELAXED);
    }
    return v && c >= 0x1p-60f && c <= 1.0f;
}
#endif

int64_t nn_div_bc_simd(const float *s, float *out, int64_t n, float c)
{
    int64_t j = 0;
#ifdef OPTIM_X86
    if (bc_fma_usable(c))
        j = div_bc_many512(s, out, n, c);
#endif
    (void)s, (void)out, (void)n, (void)c;
    return j;
}

int64_t nn_adam_simd(float *p, const float *g, float *m, float *v, float *vmax, int64_t k,
                     bool coupled_wd, bool decoupled, bool ams, const float *c)
{
#ifdef OPTIM_X86
    int w = width();
    /* constant flags per call site: one branch-free loop per combination */
#define ADAM_CALL(fn)                                                                       \
    if (ams)                                                                                \
        return decoupled ? fn(p, g, m, v, vmax, k, false, true, true, c)                    \
             : coupled_wd ? fn(p, g, m, v, vmax, k, true, false, true, c)                   \
                          : fn(p, g, m, v, vmax, k, false, false, true, c);                 \
    return decoupled ? fn(p, g, m, v, vmax, k, false, true, false, c)                       \
         : coupled_wd ? fn(p, g, m, v, vmax, k, true, false, false, c)                      \
                      : fn(p, g, m, v, vmax, k, false, false, false, c)
    /* a bias correction outside div_bc512's range (none a beta2 in [0, 1)
     * gives: c >= sqrt(1 - beta2) >= 2^-26.5) takes the AVX loop, whose
     * divisions give the same bits */
    if (bc_fma_usable(c[7])) {
        ADAM_CALL(adam512);
    }
    if (w >= 8) {
        ADAM_CALL(adam256);
    }
#undef ADAM_CALL
#endif
    (void)p, (void)g, (void)m, (void)v, (void)vmax, (void)k, (void)coupled_wd, (void)decoupled;
    (void)ams, (void)c;
    return 0;
}
