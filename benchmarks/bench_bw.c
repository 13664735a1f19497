/*
 * bench_bw.c - et_bench's memory-bandwidth floors: memcpy of as many bytes
 * as an optimizer update reads and writes per step, within a working set of
 * the same size (so the copy runs from the same cache level as the update).
 *
 * The two buffers are page-aligned, each on its own pages, so the copy's
 * destination is at the same offset within a page as its source.  Until
 * session 9 they were two malloc() blocks side by side: for the Adam row
 * (41 kB each) the destination started 16 bytes past a 4 kB multiple from
 * the source, and glibc 2.36's memcpy (rep movsb on this Zen 3, which has
 * FSRM) runs at ~3-5 GB/s instead of ~60-90 GB/s when the destination is
 * a little after the source modulo 4 kB (loads that look like they depend
 * on the stores just issued: 4k aliasing).  The floor read 32 us for what
 * takes ~1.5 us.  `et_bench --bw-table` shows the effect at several sizes
 * and offsets, beside a plain AVX copy loop (the reference the floor must
 * not be slower than).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_bw.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define BW_X86 1
#endif

enum { PAGE = 4096 };

/* `moved` bytes read + written (a copy of n bytes moves 2n) over buffers
 * totalling `footprint` bytes. */
typedef struct {
    char *src, *dst;
    size_t half, copy;   /* bytes per buffer, bytes copied per iteration */
} bw_state;

void bw_teardown(void *p)
{
    bw_state *s = p;
    if (s == NULL)
        return;
    free(s->src);
    free(s->dst);
    free(s);
}

static char *page_buf(size_t n, int fill)
{
    size_t cap = (n + PAGE - 1) / PAGE * PAGE;
    char *b = aligned_alloc(PAGE, cap ? cap : PAGE);
    if (b != NULL)
        memset(b, fill, cap ? cap : PAGE);   /* touched: no page faults in the timing */
    return b;
}

static void *bw_setup(size_t moved, size_t footprint)
{
    bw_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->half = footprint / 2;
    s->copy = moved / 2;
    s->src = page_buf(s->half, 1);
    s->dst = page_buf(s->half, 2);
    if (s->src == NULL || s->dst == NULL) {
        bw_teardown(s);
        et_set_error(ET_ERR_NOMEM, "bw: out of memory");
        return NULL;
    }
    return s;
}

et_status bw_run(void *p, long iters, double *value)
{
    bw_state *s = p;
    for (long i = 0; i < iters; i++)
        for (size_t done = 0; done < s->copy;) {
            size_t n = s->copy - done < s->half ? s->copy - done : s->half;
            memcpy(s->dst, s->src, n);
            done += n;
        }
    *value = (double)(unsigned char)s->dst[s->half - 1];
    return ET_OK;
}

/* parameter counts of the two models */
enum { NP_13_64_64_1 = 13 * 64 + 64 + 64 * 64 + 64 + 64 + 1,
       NP_784 = 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10 };

/* Adam reads p, g, m, v and writes p, m, v: 28 bytes per parameter, 16 held */
void *bw_adam_setup(void) { return bw_setup((size_t)NP_13_64_64_1 * 28, (size_t)NP_13_64_64_1 * 16); }
/* SGD with momentum reads p, g, buf and writes p, buf: 20 bytes, 12 held */
void *bw_sgd_setup(void) { return bw_setup((size_t)NP_784 * 20, (size_t)NP_784 * 12); }

/* ---- --bw-table ---- */

/* the reference: 32-byte loads and stores, 4 in flight, no tricks */
#ifdef BW_X86
__attribute__((target("avx"))) static void copy_avx(char *restrict d, const char *restrict s,
                                                    size_t n)
{
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m256 a = _mm256_loadu_ps((const float *)(s + i));
        __m256 b = _mm256_loadu_ps((const float *)(s + i + 32));
        __m256 c = _mm256_loadu_ps((const float *)(s + i + 64));
        __m256 e = _mm256_loadu_ps((const float *)(s + i + 96));
        _mm256_storeu_ps((float *)(d + i), a);
        _mm256_storeu_ps((float *)(d + i + 32), b);
        _mm256_storeu_ps((float *)(d + i + 64), c);
        _mm256_storeu_ps((float *)(d + i + 96), e);
    }
    memcpy(d + i, s + i, n - i);
}
#endif

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Best of 7 samples of >= 10 ms each (after one of calibration): ns per copy. */
static double best_copy(void (*copy)(char *, const char *, size_t), char *d, const char *s,
                        size_t n)
{
    long iters = 1;
    double best = 1e300;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            copy(d, s, n);
            __asm__ volatile("" : : "r"(d) : "memory");
        }
        double t = now_ns() - t0;
        if (rep == 0) {
            iters = (long)(10e6 / (t > 1 ? t : 1)) + 1;
            continue;
        }
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    return best;
}

static void copy_libc(char *d, const char *s, size_t n) { memcpy(d, s, n); }

int bw_table(void)
{
    static const size_t sizes[] = {4096, 40968, 262144, 1 << 20, 4 << 20, (size_t)NP_784 * 6};
    static const size_t offs[] = {0, 16, 64, 2048};
    size_t maxn = (size_t)NP_784 * 6;
    size_t span = (maxn + PAGE - 1) / PAGE * PAGE + PAGE;
    char *src = page_buf(span, 1), *dst = page_buf(span, 2);
    if (src == NULL || dst == NULL) {
        free(src);
        free(dst);
        fprintf(stderr, "bw-table: out of memory\n");
        return 1;
    }
    printf("# memcpy (glibc) against a plain AVX loop; source page-aligned, destination at\n"
           "# the given offset past a page boundary; best of 7 samples of >= 10 ms, warm;\n"
           "# GB/s counts bytes read + written (2 per byte copied)\n");
    printf("| bytes | dst - src mod 4096 | memcpy (us) | memcpy GB/s | AVX loop (us) | AVX loop GB/s |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t oi = 0; oi < sizeof offs / sizeof offs[0]; oi++) {
            size_t n = sizes[si];
            char *d = dst + offs[oi];
            double tm = best_copy(copy_libc, d, src, n);
#ifdef BW_X86
            double tv = __builtin_cpu_supports("avx") ? best_copy(copy_avx, d, src, n) : 0;
#else
            double tv = 0;
#endif
            printf("| %zu | %zu | %.3g | %.1f | %.3g | %.1f |\n", n, offs[oi], tm / 1e3,
                   2.0 * (double)n / tm, tv / 1e3, tv > 0 ? 2.0 * (double)n / tv : 0.0);
        }
    free(src);
    free(dst);
    return 0;
}
