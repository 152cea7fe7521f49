/* sagerun-mpi-allreduce: OpenMPI's MPI_Allreduce (fp32 sum, in place) timed
 * exactly as sagerun-allreduce --bench times the host backend, so the two
 * tables compare side by side on the same hosts. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t min_bytes = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
    size_t max_bytes = argc > 2 ? strtoull(argv[2], NULL, 0) : 256u << 20;
    float *buf = calloc(max_bytes / 4, sizeof *buf);
    if (rank == 0)
        printf("# MPI_Allreduce, %d ranks\n# %12s %10s %12s %10s %10s\n", size, "bytes", "iters", "time_us",
               "algbw_GBs", "busbw_GBs");
    for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
        int iters = bytes <= (1 << 20) ? 50 : bytes <= (16 << 20) ? 10 : 3, count = (int)(bytes / 4);
        MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        for (int i = 0; i < iters; i++)
            MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - start) / iters;
        double algbw = (double)bytes / t / 1e9, busbw = algbw * 2.0 * (size - 1) / size;
        if (rank == 0)
            printf("  %12zu %10d %12.1f %10.3f %10.3f\n", bytes, iters, t * 1e6, algbw, busbw);
        fflush(stdout);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
