/* The GPU benchmarks (cuda_bench.h) behind the flat table that
 * libsagerun-cuda.so exports beside the trainer's engine. */
#include "cuda_bench.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "gemm_rate.h"
#include "nccl_grads.h"

#define POLL_NS 50000 /* 50 us between looks at an unfinished collective */

static int cuda_ok(cudaError_t r, const char *what, struct sr_error *err)
{
    if (r == cudaSuccess)
        return 0;
    error_setf(err, "GPU bench: %s: %s", what, cudaGetErrorString(r));
    return -1;
}

static void pause_briefly(void)
{
    struct timespec t = {0, POLL_NS};
    nanosleep(&t, NULL);
}

static int bench_use_gpu(const char *bus_id, char *name, size_t name_size, struct sr_error *err)
{
    int device = 0;
    struct cudaDeviceProp prop;
    if ((bus_id && *bus_id && cuda_ok(cudaDeviceGetByPCIBusId(&device, bus_id), bus_id, err) != 0) ||
        cuda_ok(cudaSetDevice(device), "cudaSetDevice", err) != 0 ||
        cuda_ok(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", err) != 0)
        return -1;
    snprintf(name, name_size, "%s", prop.name);
    return 0;
}

/* Times `runs` of what `enqueue` puts on `stream`, one event pair each. */
struct timed_runs {
    cudaStream_t stream;
    cudaEvent_t start, stop;
};

static int timed_runs_open(struct timed_runs *t, struct sr_error *err)
{
    memset(t, 0, sizeof *t);
    return cuda_ok(cudaStreamCreateWithFlags(&t->stream, cudaStreamNonBlocking), "cudaStreamCreate", err) == 0 &&
                   cuda_ok(cudaEventCreate(&t->start), "cudaEventCreate", err) == 0 &&
                   cuda_ok(cudaEventCreate(&t->stop), "cudaEventCreate", err) == 0
               ? 0
               : -1;
}

static void timed_runs_close(struct timed_runs *t)
{
    if (t->start)
        cudaEventDestroy(t->start);
    if (t->stop)
        cudaEventDestroy(t->stop);
    if (t->stream)
        cudaStreamDestroy(t->stream);
}

static int elapsed(struct timed_runs *t, double *seconds, struct sr_error *err)
{
    float ms = 0.0f;
    if (cuda_ok(cudaEventElapsedTime(&ms, t->start, t->stop), "cudaEventElapsedTime", err) != 0)
        return -1;
    *seconds = ms * 1e-3;
    return 0;
}

static int bench_gemm(const char *type, int size, int warmup, int repeats, double *run_s, struct sr_error *err)
{
    return cuda_gemm_times(type, size, warmup, repeats, run_s, err);
}

static int copy_runs(struct timed_runs *t, void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                     int warmup, int repeats, double *run_s, struct sr_error *err)
{
    for (int i = 0; i < warmup + repeats; i++) {
        if (cuda_ok(cudaEventRecord(t->start, t->stream), "cudaEventRecord", err) != 0 ||
            cuda_ok(cudaMemcpyAsync(dst, src, bytes, kind, t->stream), "cudaMemcpyAsync", err) != 0 ||
            cuda_ok(cudaEventRecord(t->stop, t->stream), "cudaEventRecord", err) != 0 ||
            cuda_ok(cudaEventSynchronize(t->stop), "a timed copy", err) != 0)
            return -1;
        if (i >= warmup && elapsed(t, &run_s[i - warmup], err) != 0)
            return -1;
    }
    return 0;
}

static int bench_copy(enum cuda_copy_kind kind, void *host, size_t bytes, int warmup, int repeats, double *run_s,
                      struct sr_error *err)
{
    struct timed_runs t;
    void *device = NULL, *other = NULL;
    int registered = 0;
    int rc = timed_runs_open(&t, err) == 0 && cuda_ok(cudaMalloc(&device, bytes), "cudaMalloc", err) == 0 ? 0 : -1;
    if (rc == 0 && kind == CUDA_COPY_D2D)
        rc = cuda_ok(cudaMalloc(&other, bytes), "cudaMalloc", err) == 0 &&
                     cuda_ok(cudaMemset(other, 0x3c, bytes), "cudaMemset", err) == 0 &&
                     cuda_ok(cudaDeviceSynchronize(), "cudaMemset", err) == 0 /* the timed stream does not wait */
                 ? 0
                 : -1;
    else if (rc == 0)
        rc = cuda_ok(cudaHostRegister(host, bytes, cudaHostRegisterDefault), "page-locking the host buffer", err);
    registered = rc == 0 && kind != CUDA_COPY_D2D;
    if (rc == 0) {
        if (kind == CUDA_COPY_D2D)
            rc = copy_runs(&t, device, other, bytes, cudaMemcpyDeviceToDevice, warmup, repeats, run_s, err);
        else if (kind == CUDA_COPY_H2D)
            rc = copy_runs(&t, device, host, bytes, cudaMemcpyHostToDevice, warmup, repeats, run_s, err);
        else
            rc = copy_runs(&t, host, device, bytes, cudaMemcpyDeviceToHost, warmup, repeats, run_s, err);
    }
    if (registered)
        cudaHostUnregister(host);
    cudaFree(device);
    cudaFree(other);
    timed_runs_close(&t);
    return rc;
}

/* ---- NCCL ---- */

struct cuda_bench_comm {
    ncclComm_t comm;
    struct timed_runs t;
    float *send, *recv;
    size_t max_count;
    double timeout_s;
    int rank, world;
    char description[160];
};

static int nccl_ok(ncclResult_t r, const char *what, struct sr_error *err)
{
    if (r == ncclSuccess || r == ncclInProgress)
        return 0;
    error_setf(err, "GPU bench: %s: %s", what, ncclGetErrorString(r));
    return -1;
}

static int give_up(struct cuda_bench_comm *c, const char *what, const char *why, struct sr_error *err)
{
    error_setf(err, "GPU bench: rank %d of %d: %s %s; NCCL communicator aborted", c->rank, c->world, what, why);
    if (c->comm)
        ncclCommAbort(c->comm);
    c->comm = NULL;
    return -1;
}

/* The communicator is non-blocking, so every NCCL call returns at once;
 * this waits until NCCL has finished (or enqueued) it, or gives up. */
static int wait_nccl(struct cuda_bench_comm *c, const char *what, double deadline, struct sr_error *err)
{
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &state);
        if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress))
            return give_up(c, what, ncclGetErrorString(r != ncclSuccess ? r : state), err);
        if (state == ncclSuccess)
            return 0;
        if (clock_now() > deadline)
            return give_up(c, what, "timed out in NCCL", err);
        pause_briefly();
    }
}

/* Waits for the GPU to pass `event` while watching NCCL's error state. */
static int wait_event(struct cuda_bench_comm *c, cudaEvent_t event, const char *what, double deadline,
                      struct sr_error *err)
{
    for (;;) {
        cudaError_t done = cudaEventQuery(event);
        if (done == cudaSuccess)
            return 0;
        if (done != cudaErrorNotReady)
            return give_up(c, what, cudaGetErrorString(done), err);
        if (wait_nccl(c, what, deadline, err) != 0)
            return -1;
        if (clock_now() > deadline)
            return give_up(c, what, "did not complete before the collective timeout", err);
        pause_briefly();
    }
}

static void bench_comm_close(struct cuda_bench_comm *c)
{
    if (!c)
        return;
    if (c->comm) {
        struct sr_error ignored = {{0}}; /* closing: an abort here is all that can be done */
        ncclResult_t r = ncclCommFinalize(c->comm);
        if (r == ncclSuccess || r == ncclInProgress)
            wait_nccl(c, "ncclCommFinalize", clock_now() + c->timeout_s, &ignored);
        if (c->comm)
            ncclCommDestroy(c->comm);
    }
    cudaFree(c->send);
    cudaFree(c->recv);
    timed_runs_close(&c->t);
    free(c);
}

static int bench_comm_open(struct cuda_bench_comm **out, const unsigned char id[CUDA_ENGINE_ID_BYTES], int rank,
                           int world, size_t max_bytes, double timeout_s, struct sr_error *err)
{
    struct cuda_bench_comm *c = calloc(1, sizeof *c);
    if (!c) {
        error_setf(err, "GPU bench: out of host memory");
        return -1;
    }
    c->rank = rank;
    c->world = world;
    c->timeout_s = timeout_s;
    c->max_count = max_bytes / sizeof(float);
    ncclUniqueId nid;
    memcpy(&nid, id, sizeof nid);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    int rc = timed_runs_open(&c->t, err) == 0 &&
                     cuda_ok(cudaMalloc((void **)&c->send, max_bytes), "cudaMalloc", err) == 0 &&
                     cuda_ok(cudaMalloc((void **)&c->recv, max_bytes), "cudaMalloc", err) == 0 &&
                     cuda_ok(cudaMemset(c->send, 0x3c, max_bytes), "cudaMemset", err) == 0 &&
                     cuda_ok(cudaDeviceSynchronize(), "cudaMemset", err) == 0 &&
                     nccl_ok(ncclCommInitRankConfig(&c->comm, world, nid, rank, &config), "ncclCommInitRankConfig",
                             err) == 0 &&
                     wait_nccl(c, "ncclCommInitRank", clock_now() + timeout_s, err) == 0
                 ? 0
                 : -1;
    if (rc != 0) {
        bench_comm_close(c);
        return -1;
    }
    int version = 0;
    ncclGetVersion(&version);
    snprintf(c->description, sizeof c->description, "NCCL %d.%d.%d, %d ranks", version / 10000, version / 100 % 100,
             version % 100, world);
    *out = c;
    return 0;
}

/* One all-reduce of `count` floats, timed by events into *seconds. */
static int allreduce_once(struct cuda_bench_comm *c, size_t count, int in_place, double *seconds,
                          struct sr_error *err)
{
    if (!c->comm || count > c->max_count) {
        error_setf(err, "GPU bench: all-reduce of %zu floats: %s", count,
                   c->comm ? "over the buffers' size" : "the communicator was aborted");
        return -1;
    }
    double deadline = clock_now() + c->timeout_s;
    const float *src = in_place ? c->recv : c->send;
    if (cuda_ok(cudaEventRecord(c->t.start, c->t.stream), "cudaEventRecord", err) != 0 ||
        nccl_ok(ncclAllReduce(src, c->recv, count, ncclFloat32, ncclSum, c->comm, c->t.stream), "ncclAllReduce",
                err) != 0 ||
        wait_nccl(c, "ncclAllReduce", deadline, err) != 0 ||
        cuda_ok(cudaEventRecord(c->t.stop, c->t.stream), "cudaEventRecord", err) != 0 ||
        wait_event(c, c->t.stop, "ncclAllReduce", deadline, err) != 0)
        return -1;
    return seconds ? elapsed(&c->t, seconds, err) : 0;
}

static int bench_comm_time(struct cuda_bench_comm *c, size_t count, int in_place, int warmup, int repeats,
                           double *run_s, struct sr_error *err)
{
    for (int i = 0; i < warmup + repeats; i++)
        if (allreduce_once(c, count, in_place, i >= warmup ? &run_s[i - warmup] : NULL, err) != 0)
            return -1;
    return 0;
}

static int bench_comm_check(struct cuda_bench_comm *c, const float *mine, float *sum, size_t count, int in_place,
                            struct sr_error *err)
{
    size_t bytes = count * sizeof(float);
    if (count > c->max_count) {
        error_setf(err, "GPU bench: check of %zu floats: over the buffers' size", count);
        return -1;
    }
    /* On the collective's stream, so the copies and the sum stay in order. */
    return cuda_ok(cudaMemcpyAsync(in_place ? c->recv : c->send, mine, bytes, cudaMemcpyHostToDevice, c->t.stream),
                   "cudaMemcpyAsync", err) == 0 &&
                   allreduce_once(c, count, in_place, NULL, err) == 0 &&
                   cuda_ok(cudaMemcpyAsync(sum, c->recv, bytes, cudaMemcpyDeviceToHost, c->t.stream),
                           "cudaMemcpyAsync", err) == 0 &&
                   cuda_ok(cudaStreamSynchronize(c->t.stream), "copying the sum back", err) == 0
               ? 0
               : -1;
}

static const char *bench_comm_describe(struct cuda_bench_comm *c)
{
    return c->description;
}

static const struct cuda_bench_api bench_api = {
    CUDA_BENCH_ABI,  bench_use_gpu,   bench_gemm,       bench_copy,          nccl_unique_id,
    bench_comm_open, bench_comm_time, bench_comm_check, bench_comm_describe, bench_comm_close,
};

__attribute__((visibility("default"))) const struct cuda_bench_api *sagerun_cuda_bench(void)
{
    return &bench_api;
}
