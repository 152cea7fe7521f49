/* sagerun-nccl-allreduce — one rank of an nccl-tests-style all-reduce sweep,
 * for comparing NCCL's transports (its own sockets, sagerun's TLS plugin).
 *
 *   RANK=r WORLD_SIZE=n sagerun-nccl-allreduce DIR [MIN_BYTES MAX_BYTES]
 *
 * Rank 0 writes NCCL's unique id to DIR/nccl-id; the others wait for it.
 * Each rank uses GPU (RANK mod device count), so several ranks can share
 * one GPU when each has its own NCCL_HOSTID (NCCL then treats them as
 * separate hosts and their traffic crosses the net transport). For each size
 * from MIN_BYTES to MAX_BYTES (x2), fp32 sum, out of place: a correctness
 * pass (integers, so the sum is exact: every wrong element is counted), a
 * warm-up, then timed iterations between CUDA events. Rank 0 prints a table
 * like nccl-tests' (algbw = bytes / time, busbw = algbw x 2(n-1)/n) and one
 * JSON object per size on lines starting with "json ".
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CUDA_CHECK(call)                                                                                   \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        if (e_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "rank %d: %s:%d: %s: %s\n", rank, __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)
#define NCCL_CHECK(call)                                                                                   \
    do {                                                                                                   \
        ncclResult_t r_ = (call);                                                                          \
        if (r_ != ncclSuccess) {                                                                           \
            fprintf(stderr, "rank %d: %s:%d: %s: %s (%s)\n", rank, __FILE__, __LINE__, #call,              \
                    ncclGetErrorString(r_), ncclGetLastError(NULL));                                        \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

static int rank;

static int env_int(const char *name)
{
    const char *v = getenv(name);
    if (!v) {
        fprintf(stderr, "sagerun-nccl-allreduce: %s is not set\n", name);
        exit(2);
    }
    return atoi(v);
}

static void exchange_id(const char *dir, ncclUniqueId *id)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/nccl-id", dir);
    if (rank == 0) {
        NCCL_CHECK(ncclGetUniqueId(id));
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(id, sizeof *id, 1, f) != 1 || fclose(f) != 0 || rename(tmp, path) != 0) {
            perror("writing the NCCL id");
            exit(1);
        }
        return;
    }
    for (int tries = 0; tries < 6000; tries++, usleep(10000)) {
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(id, sizeof *id, 1, f);
        fclose(f);
        if (n == 1)
            return;
    }
    fprintf(stderr, "rank %d: no NCCL id in %s after 60 s\n", rank, path);
    exit(1);
}

/* Element i of rank r is (r + 1) * (i % 13 + 1): small integers, exact sums. */
static void fill_input(float *host, size_t count)
{
    for (size_t i = 0; i < count; i++)
        host[i] = (float)((rank + 1) * (int)(i % 13 + 1));
}

static size_t count_wrong(const float *host, size_t count, int world)
{
    size_t wrong = 0;
    float ranks_sum = (float)(world * (world + 1) / 2);
    for (size_t i = 0; i < count; i++)
        wrong += host[i] != ranks_sum * (float)(i % 13 + 1);
    return wrong;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: RANK=r WORLD_SIZE=n sagerun-nccl-allreduce DIR [MIN_BYTES MAX_BYTES]\n");
        return 2;
    }
    rank = env_int("RANK");
    int world = env_int("WORLD_SIZE"), devices = 0;
    size_t min_bytes = argc == 4 ? strtoull(argv[2], NULL, 10) : (size_t)1 << 20;
    size_t max_bytes = argc == 4 ? strtoull(argv[3], NULL, 10) : (size_t)1 << 30;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    CUDA_CHECK(cudaSetDevice(rank % devices));
    ncclUniqueId id;
    exchange_id(argv[1], &id);
    ncclComm_t comm;
    NCCL_CHECK(ncclCommInitRank(&comm, world, id, rank));
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));

    size_t max_count = max_bytes / sizeof(float);
    float *send, *recv, *host = malloc(max_bytes);
    if (!host) {
        fprintf(stderr, "rank %d: out of host memory\n", rank);
        return 1;
    }
    CUDA_CHECK(cudaMalloc((void **)&send, max_bytes));
    CUDA_CHECK(cudaMalloc((void **)&recv, max_bytes));
    fill_input(host, max_count);
    CUDA_CHECK(cudaMemcpy(send, host, max_bytes, cudaMemcpyHostToDevice));
    if (rank == 0) {
        char name[256] = "";
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
            snprintf(name, sizeof name, "%s", prop.name);
        int version = 0;
        ncclGetVersion(&version);
        printf("# %d ranks, %d GPU(s) (%s), NCCL %d, NCCL_NET=%s\n", world, devices, name, version,
               getenv("NCCL_NET") ? getenv("NCCL_NET") : "(default)");
        printf("# %12s %10s %9s %9s %7s   (GB/s)\n", "bytes", "time_us", "algbw", "busbw", "#wrong");
    }
    for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
        size_t count = bytes / sizeof(float);
        CUDA_CHECK(cudaMemset(recv, 0xff, bytes)); /* NaN: unwritten elements count as wrong */
        NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat, ncclSum, comm, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaMemcpy(host, recv, bytes, cudaMemcpyDeviceToHost));
        size_t wrong = count_wrong(host, count, world);
        int iters = bytes >= ((size_t)256 << 20) ? 5 : bytes >= ((size_t)32 << 20) ? 10 : 20;
        for (int i = 0; i < 2; i++)
            NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat, ncclSum, comm, stream));
        CUDA_CHECK(cudaEventRecord(start, stream));
        for (int i = 0; i < iters; i++)
            NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat, ncclSum, comm, stream));
        CUDA_CHECK(cudaEventRecord(stop, stream));
        CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        double seconds = ms / 1e3 / iters;
        double algbw = (double)bytes / seconds / 1e9, busbw = algbw * 2.0 * (world - 1) / world;
        if (rank == 0) {
            printf("  %12zu %10.1f %9.3f %9.3f %7zu\n", bytes, seconds * 1e6, algbw, busbw, wrong);
            printf("json {\"bytes\": %zu, \"time_us\": %.1f, \"algbw_gbs\": %.3f, \"busbw_gbs\": %.3f, \"wrong\": %zu}\n",
                   bytes, seconds * 1e6, algbw, busbw, wrong);
        }
        if (wrong) {
            fprintf(stderr, "rank %d: %zu of %zu elements wrong at %zu bytes\n", rank, wrong, count, bytes);
            return 1;
        }
    }
    NCCL_CHECK(ncclCommDestroy(comm));
    CUDA_CHECK(cudaFree(send));
    CUDA_CHECK(cudaFree(recv));
    free(host);
    return 0;
}
