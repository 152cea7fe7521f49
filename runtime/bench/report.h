/* report.h — what `sagerun bench` and `validate` show and leave behind,
 * from the gathered results (and the verdict, for validate; judge.h).
 *
 *   - tables on stdout: one row per rank, the all-reduce sweep in
 *     nccl-tests' columns, and with a verdict PASS/FAIL per rank and host
 *     with the reasons;
 *   - metric lines for MetricDefinitions (metrics.h), one per host and one
 *     for the job;
 *   - an SVG picture: all-reduce busbw against message size, and one bar per
 *     rank for each headline figure (GEMM, memory, training), red where the
 *     verdict failed that figure, the median of all ranks as a dashed line.
 * `results` is laid out as cmd_bench.c gathers it (see there).
 */
#ifndef SAGERUN_BENCH_REPORT_H
#define SAGERUN_BENCH_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "error.h"

void report_print(FILE *out, const json_t *results, const json_t *verdict);
int report_emit_metrics(const json_t *results, struct sr_error *err);
int report_write_svg(const char *path, const json_t *results, const json_t *verdict, struct sr_error *err);

/* The headline figure of a rank's metrics: "gemm_tflops" is bf16 where
 * measured (GPUs), else fp32; "membw_gbs" device-memory copy, else memcpy;
 * "train_tokens_per_sec" the rank's training compute rate. -1 if absent;
 * else the metric's own name in *metric (unless NULL). */
double report_headline(const json_t *metrics, const char *which, const char **metric);

#endif
