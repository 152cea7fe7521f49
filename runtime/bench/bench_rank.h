/* bench_rank.h — one rank of `sagerun bench` and `sagerun validate`, what
 * the launcher starts in every rank of the job (as `sagerun bench-rank`),
 * the way the trainer is the rank program of `sagerun train`.
 *
 * The rank joins the ring of all the job's ranks (host_backend.h),
 * measures what the options select on its own device (a GPU by SAGERUN_GPU:
 * gpu_bench.h; else its CPUs: cpu_bench.h), and puts its results in the
 * rendezvous' key-value store. Rank 0 also runs the job's measurements
 * (the all-reduce sweep, training steps), gathers every rank's results,
 * judges them when validating (judge.h), prints the tables and the metric
 * lines, and writes <ML root>/output/data/sagerun-<bench|validate|
 * preflight>.{json,txt,svg} (validate: also <ML root>/model/validation/,
 * the job's artifact). In a preflight (preflight.h) rank 0 also puts a
 * summary of the verdict in the store, and each host's local rank 0 writes
 * it to its own output/data/sagerun-preflight-verdict.json for its
 * launcher. GPU and CPU ranks use different collectives, so a job must be
 * all one or the other.
 */
#ifndef SAGERUN_BENCH_RANK_H
#define SAGERUN_BENCH_RANK_H

#include "bench_options.h"
#include "error.h"

/* Reads the job under o->ml_root and the rank's identity from the
 * launcher's variables; returns 0 when this rank's part succeeded. */
int bench_rank_run(const struct bench_options *o, struct sr_error *err);

#endif
