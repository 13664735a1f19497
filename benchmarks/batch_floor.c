/*
 * batch_floor.c - `batch_forward --floor [--json]`: the batching row's
 * forward at 64 rows against the GEMM floor of this CPU (issue 12;
 * docs/performance-http.md).  For each Linear of 784-1024-1024-10, the
 * 64-row x·Wᵀ + b (CPU time, best of 5 samples of >= 20 ms each):
 *
 *   - ours, batch-invariant, W packed once (as a batching easytorchd runs
 *     it: g->bpack, the pack cache's panels), with the kernels this CPU
 *     picks (etc_gemm_isa) and with ET_GEMM_ISA's choice lowered to avx2;
 *   - OpenBLAS cblas_sgemm of the same shape (the project's GEMM floor);
 *   - the FMA peak: the layer's multiply-adds at the rate of 12 independent
 *     8-lane FMA chains measured here (two FMA pipes on Zen 3 and Zen 4).
 *
 * The sums are the forward's per-row cost at a full batch; the ceiling row
 * of scripts/bench (http_predict_b1_batching_ceiling) takes the floor (the
 * lower of OpenBLAS's and ours) from --json.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_internal.h"
#include "core/gemm_inv.h"
#include "bench_gemm_time.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && defined(__x86_64__)
/* 8-lane FMAs a second: 12 independent chains (4 cycles of latency x 2
 * pipes needs 8 in flight), best of 5 samples of ~20 ms */
__attribute__((target("avx2,fma"), noinline)) static double fma_rate(void)
{
    double best = 0;
    const long iters = 1000000;
    for (int rep = 0; rep < 5; rep++) {
        __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_set1_ps((float)i);
        double t0 = bench_cpu_ns();
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++)
                a[i] = _mm256_fmadd_ps(a[i], m, c);
            __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]),
                             "+x"(a[5]), "+x"(a[6]), "+x"(a[7]), "+x"(a[8]), "+x"(a[9]),
                             "+x"(a[10]), "+x"(a[11]));
        }
        double t = bench_cpu_ns() - t0;
        float sink[8];
        __m256 s = a[0];
        for (int i = 1; i < 12; i++)
            s = _mm256_add_ps(s, a[i]);
        _mm256_storeu_ps(sink, s);
        if (sink[0] == 12345.0f)   /* keeps the chains alive */
            puts("");
        double rate = 12.0 * (double)iters / (t * 1e-9);
        if (rate > best)
            best = rate;
    }
    return best;
}
#else
static double fma_rate(void) { return 0; }
#endif

int batch_floor(bool json)
{
    static const int64_t dims[4] = {784, 1024, 1024, 10};
    const int64_t m = 64;
    double ours = 0, ours_avx2 = 0, blas = 0, peak = 0, macs = 0;
    double fr = fma_rate();
    const char *isa = etc_gemm_isa();
    if (!json) {
        printf("# %lld-row x·Wᵀ + b of 784-1024-1024-10 (CPU time per call, best of 5); kernels: "
               "%s; FMA peak %.3g G 8-lane FMAs/s\n",
               (long long)m, isa, fr / 1e9);
        printf("| layer (m x n x k) | ours, invariant, packed (µs) | same, avx2 kernels (µs) | "
               "OpenBLAS (µs) | FMA peak (µs) | ours / OpenBLAS | ours / peak |\n"
               "|---|---|---|---|---|---|---|\n");
    }
    int rc = 0;
    for (int l = 0; l < 3 && rc == 0; l++) {
        int64_t k = dims[l], n = dims[l + 1];
        float *a = malloc((size_t)(m * k) * sizeof(float)), *w = malloc((size_t)(n * k) * sizeof(float));
        float *c = malloc((size_t)(m * n) * sizeof(float)), *bias = malloc((size_t)n * sizeof(float));
        etc_gemm_t g = {.m = m, .n = n, .k = k, .ars = k, .acs = 1, .brs = 1, .bcs = k, .ldc = n};
        float *pack = NULL;
        if (a && w && c && bias) {
            for (int64_t i = 0; i < m * k; i++)
                a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
            for (int64_t i = 0; i < n * k; i++)
                w[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
            for (int64_t i = 0; i < n; i++)
                bias[i] = 0.01f * (float)i;
            g.a = a, g.b = w, g.c = c, g.bias = bias, g.act = l < 2 ? ETC_GEMM_RELU : ETC_GEMM_NONE;
            pack = calloc(ETC_INV_PACK_FLOATS(&g), sizeof(float));
        }
        if (!pack) {
            rc = 1;
        } else {
#if defined(__GNUC__) && defined(__x86_64__) && !defined(ET_GEMM_PORTABLE)
            etc_gemm_inv_pack_avx2(&g, pack);
#endif
            etc_gemm_t gp = g;
            gp.bpack = pack;
            double t_ours = bench_gemm_ns(&gp, ETC_GEMM_INVARIANT, 20e6);
            double t_avx2 = t_ours;
            if (strcmp(isa, "avx512") == 0 && etc_gemm_set_isa("avx2") == 0) {
                t_avx2 = bench_gemm_ns(&gp, ETC_GEMM_INVARIANT, 20e6);
                etc_gemm_set_isa(isa);
            }
            double t_blas = bench_gemm_ns(&g, ETC_GEMM_BLAS, 20e6);
            double lm = (double)(m * n * k), t_peak = fr > 0 ? lm / 8.0 / fr * 1e9 : 0;
            ours += t_ours, ours_avx2 += t_avx2, blas += t_blas, peak += t_peak, macs += lm;
            if (!json)
                printf("| %lld x %lld x %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n",
                       (long long)m, (long long)n, (long long)k, t_ours / 1e3, t_avx2 / 1e3,
                       t_blas / 1e3, t_peak / 1e3, t_ours / t_blas, t_peak > 0 ? t_ours / t_peak : 0);
        }
        free(a);
        free(w);
        free(c);
        free(bias);
        free(pack);
    }
    if (rc) {
        fprintf(stderr, "batch_forward --floor: out of memory\n");
        return 1;
    }
    double floor = blas < ours ? blas : ours;
    if (json)
        printf("{\"isa\": \"%s\", \"rows\": %lld, \"fma_per_s\": %.6g, \"ours_us_per_row\": %.4g, "
               "\"ours_avx2_us_per_row\": %.4g, \"openblas_us_per_row\": %.4g, "
               "\"peak_us_per_row\": %.4g, \"floor_us_per_row\": %.4g}\n",
               isa, (long long)m, fr, ours / 1e3 / m, ours_avx2 / 1e3 / m, blas / 1e3 / m,
               peak / 1e3 / m, floor / 1e3 / m);
    else
        printf("| all three, per row | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", ours / 1e3 / m,
               ours_avx2 / 1e3 / m, blas / 1e3 / m, peak / 1e3 / m, ours / blas,
               peak > 0 ? ours / peak : 0);
    return 0;
}
