/* bench_gemm_time.h - the process CPU clock, and the CPU time of one etc_gemm
 * call as the best of 5 samples of >= sample_ns each (after one of
 * calibration): shared by bench_floor.c (et_bench's GEMM floors) and
 * batch_floor.c (batch_forward --floor). */
#ifndef BENCH_GEMM_TIME_H
#define BENCH_GEMM_TIME_H

#include <time.h>

#include "core/core_internal.h"

static inline double bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline double bench_gemm_ns(const etc_gemm_t *g, unsigned flags, double sample_ns)
{
    double best = 1e300;
    long iters = 1;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = bench_cpu_ns();
        for (long i = 0; i < iters; i++)
            etc_gemm(g, flags);
        double t = bench_cpu_ns() - t0;
        if (rep == 0) {   /* calibration */
            iters = (long)(sample_ns / (t > 1 ? t : 1)) + 1;
            continue;
        }
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    return best;
}

#endif
