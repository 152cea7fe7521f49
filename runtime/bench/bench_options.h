/* bench_options.h — what `sagerun bench` and `validate` are asked to run,
 * and the rank program's options (the launcher hands each rank its own
 * command line, so both ends parse the same options with the same table).
 *
 *   sagerun bench [gemm] [membw] [allreduce] [train] [options]  (no names: all)
 *   sagerun validate [options]                                  (all, judged)
 * Sizes left at 0 are chosen by device (bench_rank.h).
 */
#ifndef SAGERUN_BENCH_OPTIONS_H
#define SAGERUN_BENCH_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#include "error.h"

struct bench_options {
    bool gemm, membw, allreduce, train; /* which benchmarks */
    bool validate;  /* judge the results (validate, preflight) */
    bool preflight; /* sagerun train's check before the program: judged, any selection, the verdict on every host */
    int gemm_size, membw_mib; /* 0: by device (CPU_/GPU_ sizes) */
    int allreduce_min, allreduce_max; /* max 0: by device */
    int repeats, warmup, train_batch;
    const char *train_preset, *baselines, *json_path, *ml_root;
    double straggler_ratio;
};

/* Every option of bench, validate and bench-rank, for getopt_long: the
 * launcher's (--ml-root 'r', --nproc-per-host 'n', --bind 'b', --stop-grace
 * 'g'), the benchmarks' (bench_options_parse), and bench-rank's --mode 'm'. */
extern const struct option bench_long_options[];

/* Usage of bench and validate. */
extern const char bench_usage[];

void bench_options_init(struct bench_options *o);

/* One benchmark option; 1 if `opt` was one, 0 if not, -1 on a bad value. */
int bench_options_parse(struct bench_options *o, int opt, const char *value, struct sr_error *err);

/* The benchmark names after the options select some; none selects all;
 * validate always runs all. */
int bench_options_select(struct bench_options *o, int count, char **names, struct sr_error *err);

/* Checks that need every option: the sweep's range, the baselines file. */
int bench_options_check(const struct bench_options *o, struct sr_error *err);

#endif
