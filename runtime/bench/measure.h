/* measure.h — how every sagerun benchmark times its work.
 *
 * `warmup` untimed runs (first-touch page faults, BLAS thread start-up,
 * connection slow start), then `repeats` timed runs; the result is the
 * median run time, with the fastest and slowest kept to show the spread.
 * The median, not the mean, because a rank that loses its CPU for a moment
 * must not look like a slow GPU or host.
 *
 * `throttle` in (0, 1] is a drill: after each timed run the measurement
 * sleeps until the run has taken elapsed/throttle, as if the hardware ran at
 * that fraction of its speed. SAGERUN_BENCH_THROTTLE sets it for a host, so
 * a test (or an operator checking the pipeline) can slow one host down and
 * see `sagerun validate` flag it. 1 (the default) measures as is.
 */
#ifndef SAGERUN_BENCH_MEASURE_H
#define SAGERUN_BENCH_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct bench_timing {
    int warmup, repeats;
    double throttle;
};

/* Seconds per run. */
struct bench_stats {
    double median, min, max;
    int repeats;
};

/* One run of the work; returns 0, or -1 with err set. */
typedef int (*bench_work_fn)(void *ctx, struct sr_error *err);

int bench_measure(bench_work_fn work, void *ctx, const struct bench_timing *t, struct bench_stats *out,
                  struct sr_error *err);

/* The stats of n run times (sorted in place). */
void bench_stats_of(double *runs, int n, struct bench_stats *out);

/* The stats of n device-timed runs (sorted in place). The throttle drill
 * cannot make a GPU itself slower, so it stretches each time by 1/throttle. */
void bench_stats_of_device(double *runs, int n, double throttle, struct bench_stats *out);

/* Sleeps so that work that took `elapsed` seconds takes elapsed/throttle. */
void bench_throttle_wait(double elapsed, double throttle);

/* Throttle from SAGERUN_BENCH_THROTTLE (1 when unset); errors name it. */
int bench_throttle_from_env(double *throttle, struct sr_error *err);

/* Fills n floats with uniform values in [-1, 1) from `seed`: benchmarks
 * never run on zeros, which some hardware and libraries handle faster. */
void bench_fill_random(float *x, size_t n, uint64_t seed);

#endif
