/* allreduce_sweep.h — `sagerun bench allreduce` over the host backend: an
 * nccl-tests-style sweep of fp32 sums from min_bytes to max_bytes (x4 per
 * row), each size out of place (send buffer copied into the receive buffer,
 * then reduced there: the ring works in place) and in place.
 *
 * Time per operation is the median of the timed runs (measure.h); algbw =
 * bytes / time; busbw = algbw x 2(n-1)/n, the bytes each rank's links carry
 * in a ring, comparable across rank counts (nccl-tests' PERFORMANCE.md).
 * Each size and mode is then checked once on fresh data: small integers per
 * rank, whose sums fp32 holds exactly, so every element must equal the sum
 * computed locally; the wrong elements of all ranks are added up (0 is a
 * pass). All ranks must call with the same arguments.
 */
#ifndef SAGERUN_BENCH_ALLREDUCE_SWEEP_H
#define SAGERUN_BENCH_ALLREDUCE_SWEEP_H

#include <stddef.h>

#include "host_backend.h"
#include "measure.h"

struct allreduce_mode_result {
    double time_us, algbw, busbw; /* algbw, busbw in bytes/s */
    long wrong;
};

struct allreduce_row {
    size_t bytes, count;
    struct allreduce_mode_result out_of_place, in_place;
};

/* *rows: malloc'ed, *row_count entries. */
int bench_allreduce_sweep(struct host_backend *b, size_t min_bytes, size_t max_bytes, int repeats,
                          struct allreduce_row **rows, size_t *row_count, struct sr_error *err);

#endif
