/* judge.h — `sagerun validate`'s verdict on a job's benchmark results.
 *
 * Every metric of every rank (one rank per GPU, or one CPU rank per host)
 * is judged twice, and fails if either says so:
 *   - against the baseline of its instance type and device (baselines.h):
 *     under `min` fails;
 *   - against its peers, the ranks of the same instance type and device in
 *     this job: under straggler_ratio x their median fails (a GPU at 80% of
 *     its siblings is worth replacing even when it clears the datasheet
 *     floor). A metric with no peers is judged by the baseline alone.
 * Hosts are judged the same way on the sums of their ranks' metrics (peers:
 * hosts of the same instance type), and fail as well when one of their
 * ranks fails. The job's all-reduce fails on any wrong element and on a
 * large-message busbw under the baseline (within one host, or across hosts
 * when the job has several). Every metric is higher-is-better.
 *
 * `results`: {"ranks": [{"rank", "host", "local_rank", "instance_type",
 * "device": "gpu"|"cpu", "cpus", "metrics": {name: number}}...],
 * "allreduce": {"rows": [{"bytes", "out_of_place": {"busbw_gbs", "wrong"},
 * "in_place": {...}}...]} (optional)}. The report: {"passed", "failures":
 * [text...], "ranks": [...], "hosts": [...], "job": {...}}, each entry with
 * its checks (metric, value, baseline min and peak, peer median, ratio,
 * passed, reason).
 */
#ifndef SAGERUN_BENCH_JUDGE_H
#define SAGERUN_BENCH_JUDGE_H

#include <jansson.h>

#include "strbuf.h"

#define JUDGE_DEFAULT_STRAGGLER_RATIO 0.9

json_t *judge_results(const json_t *results, const json_t *baselines, double straggler_ratio);

/* A verdict's (or its summary's) "failures", joined with "; " into `out`. */
void judge_failures_text(const json_t *verdict, struct strbuf *out);

#endif
