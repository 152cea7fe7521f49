/* cuda_bench.h — `sagerun bench` on a GPU rank, as the rank sees it.
 *
 * Like the trainer's engine (cuda_engine.h), the GPU benchmarks live in
 * libsagerun-cuda.so behind a flat, ABI-versioned table, so the sagerun
 * binary links no CUDA. The library measures and times; the rank decides
 * what to measure, places host memory (host_memory.h), checks results and
 * reports. Every timed call takes `warmup` untimed runs, then times
 * `repeats` runs one by one with CUDA events into run_s[repeats] (seconds),
 * on the GPU chosen by use_gpu. Functions return 0, or -1 with err set.
 */
#ifndef SAGERUN_CUDA_BENCH_H
#define SAGERUN_CUDA_BENCH_H

#include <stddef.h>

#include "cuda_engine.h"
#include "error.h"

#define CUDA_BENCH_ABI 1
#define CUDA_BENCH_SYMBOL "sagerun_cuda_bench"

enum cuda_copy_kind { CUDA_COPY_D2D, CUDA_COPY_H2D, CUDA_COPY_D2H };

struct cuda_bench_comm;

struct cuda_bench_api {
    int abi;
    /* Makes the GPU at `bus_id` current; its name into name[name_size]. */
    int (*use_gpu)(const char *bus_id, char *name, size_t name_size, struct sr_error *err);
    /* size^3 products through cuBLASLt on random data; type "bf16", "fp16"
     * or "tf32" (fp32 data on TF32 tensor cores). */
    int (*gemm)(const char *type, int size, int warmup, int repeats, double *run_s, struct sr_error *err);
    /* Copies of `bytes`: device to device within the GPU, or between the GPU
     * and `host` (the caller's buffer of `bytes`, page-locked for the
     * duration, as the trainer's pinned buffers are). */
    int (*copy)(enum cuda_copy_kind kind, void *host, size_t bytes, int warmup, int repeats, double *run_s,
                struct sr_error *err);
    /* NCCL: rank 0's unique id, then a communicator over all ranks with
     * send and receive buffers of max_bytes. A collective that has not
     * completed after timeout_s aborts the communicator and fails. */
    int (*unique_id)(unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err);
    int (*comm_open)(struct cuda_bench_comm **out, const unsigned char id[CUDA_ENGINE_ID_BYTES], int rank,
                     int world, size_t max_bytes, double timeout_s, struct sr_error *err);
    /* fp32 sums of `count` elements (out of place: send -> recv), timed. */
    int (*comm_time)(struct cuda_bench_comm *c, size_t count, int in_place, int warmup, int repeats, double *run_s,
                     struct sr_error *err);
    /* One sum of the caller's `mine` (count floats) into `sum`, for checking. */
    int (*comm_check)(struct cuda_bench_comm *c, const float *mine, float *sum, size_t count, int in_place,
                      struct sr_error *err);
    /* NCCL's version and transport, for the report. */
    const char *(*comm_describe)(struct cuda_bench_comm *c);
    void (*comm_close)(struct cuda_bench_comm *c);
};

/* Loads libsagerun-cuda.so as cuda_engine_load does; checks the ABI. */
const struct cuda_bench_api *cuda_bench_load(struct sr_error *err);

#endif
