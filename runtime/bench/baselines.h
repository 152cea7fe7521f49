/* baselines.h — what healthy hardware of each SageMaker instance type
 * delivers in sagerun's benchmarks, for `sagerun validate`.
 *
 * A baseline names a metric of the benchmark results (the keys of a rank's
 * "metrics", or "allreduce_busbw_gbs" for the job), the datasheet peak (0
 * where none is published) and `min`: the least a healthy part delivers;
 * below it the GPU or host fails. GPU figures are per GPU; CPU figures are
 * per vCPU (`per_cpu`), scaled by the CPUs a rank measured with. Each entry
 * cites its source in baselines.c. Sites with their own measurements
 * replace or add entries with a JSON file (baselines_load):
 *   {"ml.p5.48xlarge": {"gpu": {"gemm_bf16_tflops": {"min": 650, "peak": 989.4,
 *                                                  "source": "our fleet, 2026-10"}}}}
 */
#ifndef SAGERUN_BENCH_BASELINES_H
#define SAGERUN_BENCH_BASELINES_H

#include <jansson.h>

#include "error.h"

/* The table as JSON, instance type -> "gpu"|"cpu" -> metric ->
 * {"min", "peak", "source", "per_cpu"}: the built-in entries, overlaid by
 * the file at `path` (NULL: none; its entries replace built-in ones metric
 * by metric). Errors name the file and the field. */
json_t *baselines_load(const char *path, struct sr_error *err);

/* The entry for one metric, or NULL. */
const json_t *baselines_find(const json_t *table, const char *instance_type, const char *device,
                             const char *metric);

#endif
