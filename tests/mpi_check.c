/* mpi_check: a user's MPI program, as a C MPI job brings one. Every rank
 * all-reduces (sum) a vector of its rank + 1 and checks each element is
 * N(N+1)/2; prints one line per rank and exits 1 on a wrong sum. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define COUNT 4096

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    static int values[COUNT];
    for (int i = 0; i < COUNT; i++)
        values[i] = rank + 1;
    MPI_Allreduce(MPI_IN_PLACE, values, COUNT, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int want = size * (size + 1) / 2, wrong = 0;
    for (int i = 0; i < COUNT; i++)
        wrong += values[i] != want;
    const char *host = getenv("SM_CURRENT_HOST");
    printf("mpi check: rank %d of %d on %s %s\n", rank, size, host ? host : "?", wrong ? "FAILED" : "passed");
    fflush(stdout);
    MPI_Finalize();
    return wrong ? 1 : 0;
}
