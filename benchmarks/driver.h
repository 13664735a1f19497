/* driver.h - the command loop of a benchmark program in driver mode: after
 * its "ready ..." line the harness (benchmarks/harness/micro.py) sends
 * "run NAME ITERATIONS" lines, each answered by run(), until "quit" or EOF.
 * Returns the OR of run()'s results. */
#ifndef BENCH_DRIVER_H
#define BENCH_DRIVER_H

#include <stdio.h>
#include <string.h>

static inline int bench_serve(int (*run)(const char *name, long iters))
{
    char line[256], name[128];
    long iters;
    int rc = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "run %127s %ld", name, &iters) == 2)
            rc |= run(name, iters);
        else
            printf("error bad command\n");
    }
    return rc;
}

#endif
