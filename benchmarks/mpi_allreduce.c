/* mpi_allreduce.c - the bare MPI_Allreduce(MPI_SUM) of float32 that easytorchd --mpi
 * does once per minibatch (docs/distributed.md "Performance"): for each size, the
 * ranks meet at a barrier, then time `reps` allreduces; the median per call over
 * the ranks' maximum is printed.  What the cost model is fitted to (latency and
 * bandwidth terms), without the skew of ranks arriving at different times.
 *
 *   mpirun -n 2 build/benchmarks/mpi_allreduce [reps]
 *   mpirun -n 2 --mca btl tcp,self build/benchmarks/mpi_allreduce      (TCP, no shared memory)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (reps < 1 || reps > 10000)
        reps = 20;
    /* floats: 4 KB ... 7.45 MB (the 784-1024-1024-10 model's gradients + 8) */
    static const int counts[] = {1024, 16384, 65536, 269330, 1048576, 1863700, 4194304};
    double *t = malloc((size_t)reps * sizeof *t);
    float *buf = malloc(4194304 * sizeof *buf);
    if (!t || !buf)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (int i = 0; i < 4194304; i++)
        buf[i] = (float)(i % 7) * 0.25f;
    if (rank == 0)
        printf("ranks %d\n%12s %12s %12s %12s\n", size, "floats", "bytes", "median us",
               "GB/s algbw");
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm */
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0, mx;
            MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            t[r] = mx;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        double med = t[reps / 2];
        if (rank == 0)
            printf("%12d %12ld %12.1f %12.3f\n", n, (long)n * 4, med * 1e6,
                   (double)n * 4 / med / 1e9);
    }
    free(t);
    free(buf);
    MPI_Finalize();
    return 0;
}
