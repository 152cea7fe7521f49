/* cpu_bench.h — the CPU variants of `sagerun bench gemm` and `membw`, for
 * ranks on hosts without a GPU (and for CI, which has none).
 *
 * gemm: C = A·B, n×n fp32 matrices of random values through OpenBLAS's
 * sgemm on this rank's CPUs; 2n³ floating-point operations per run.
 * (Debian's OpenBLAS is built without bf16, so fp32 is the only type.)
 * membw: memcpy of a buffer much larger than the caches, counted as bytes
 * read plus bytes written, as the GPU copy is. The buffer is first touched
 * by this rank, so it lives on the NUMA node the rank is bound to.
 */
#ifndef SAGERUN_CPU_BENCH_H
#define SAGERUN_CPU_BENCH_H

#include <stddef.h>

#include "measure.h"

/* FLOP/s in *flops: the median run's rate. */
int cpu_bench_gemm(int n, const struct bench_timing *t, struct bench_stats *run, double *flops,
                   struct sr_error *err);

/* Bytes/s (read + written) of copying `bytes`. */
int cpu_bench_membw(size_t bytes, const struct bench_timing *t, struct bench_stats *run, double *bytes_per_s,
                    struct sr_error *err);

#endif
