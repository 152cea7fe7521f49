/* allreduce_sweep.h — `sagerun bench allreduce`: an nccl-tests-style sweep
 * of fp32 sums from min_bytes to max_bytes (x4 per row), each size out of
 * place (send buffer -> receive buffer) and in place, over a backend: the
 * host ring (host_backend.h) on CPU ranks, NCCL on GPU ranks (gpu_bench.h).
 *
 * Time per operation is the median of the timed runs (measure.h); algbw =
 * bytes / time; busbw = algbw x 2(n-1)/n, the bytes each rank's links carry
 * in a ring, comparable across rank counts (nccl-tests' PERFORMANCE.md).
 * Each size and mode is then checked once on fresh data: small integers per
 * rank, whose sums fp32 holds exactly, so every element must equal the sum
 * computed locally; the wrong elements of all ranks are added up over the
 * host ring (0 is a pass). All ranks must call with the same arguments.
 */
#ifndef SAGERUN_BENCH_ALLREDUCE_SWEEP_H
#define SAGERUN_BENCH_ALLREDUCE_SWEEP_H

#include <stddef.h>

#include "host_backend.h"
#include "measure.h"

/* What the sweep runs on: fp32 sums over all `size` ranks. */
struct sweep_backend {
    const char *name; /* "host" or "nccl" */
    int rank, size;
    void *ctx;
    /* `warmup` untimed, then `repeats` timed sums of `count` floats. */
    int (*time)(void *ctx, size_t count, int in_place, int warmup, int repeats, double *run_s, struct sr_error *err);
    /* One sum of every rank's `mine` into `sum`. */
    int (*check)(void *ctx, const float *mine, float *sum, size_t count, int in_place, struct sr_error *err);
};

/* The host ring as a sweep backend, with buffers for max_bytes. */
int host_sweep_open(struct host_backend *b, size_t max_bytes, struct sweep_backend *out, struct sr_error *err);
void host_sweep_close(struct sweep_backend *s);

struct allreduce_mode_result {
    double time_us, algbw, busbw; /* algbw, busbw in bytes/s */
    long wrong;
};

struct allreduce_row {
    size_t bytes, count;
    struct allreduce_mode_result out_of_place, in_place;
};

/* *rows: malloc'ed, *row_count entries; `tally` sums the wrong counts. */
int bench_allreduce_sweep(const struct sweep_backend *s, struct host_backend *tally, size_t min_bytes,
                          size_t max_bytes, int repeats, struct allreduce_row **rows, size_t *row_count,
                          struct sr_error *err);

#endif
