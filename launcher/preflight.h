/* preflight.h — a health check of the job's capacity before its program.
 *
 * SAGERUN_PREFLIGHT (or `sagerun train --preflight`) = off (the default) |
 * quick | full. quick, on every host before any rank of the program starts:
 * the GPUs this host sees against its instance type's count; then, as one
 * job of sagerun's own rank program (bench_rank.h, in its own rendezvous
 * session on the next port), a short GEMM and memory copy per GPU (per CPU
 * rank without GPUs) and one all-reduce sweep across all hosts over the
 * job's real path (NCCL with the TLS plugin when encrypted; the host
 * backend on CPUs), judged with validate's rules (judge.h): the instance
 * type's baselines and the peers' median. full is the whole of `sagerun
 * validate`. The report goes to <ML root>/output/data/sagerun-preflight.*
 * on the leader. A failure fails the job on every host before the program
 * starts: "preflight: <each failing GPU or host, its figure and the rule it
 * broke>"; a pass prints one line per host and the program runs.
 */
#ifndef SAGERUN_PREFLIGHT_H
#define SAGERUN_PREFLIGHT_H

#include "error.h"
#include "options.h"

#define PREFLIGHT_ENV "SAGERUN_PREFLIGHT"

/* "off" | "quick" | "full" into *out; -1 (err names `origin`) otherwise. */
int preflight_parse(const char *value, const char *origin, enum preflight_level *out, struct sr_error *err);

/* Runs the check o->preflight asks for. Returns 0 when it passed (or is
 * off), else the exit status, err set. */
int preflight_run(struct job *j, const struct launch_options *o, struct sr_error *err);

#endif
