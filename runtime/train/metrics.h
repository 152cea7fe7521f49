/* metrics.h — training metrics as log lines that SageMaker's
 * MetricDefinitions regexes pick up from CloudWatch Logs.
 *
 * Rank 0 prints the job's metrics, one whole line per event, always in the
 * same order and always fixed-point (SageMaker parses the captured text as a
 * float; exponents and nan/inf would be dropped or misread):
 *   [metrics] step=120 epoch=0 train_loss=3.4512 lr=0.00060000 grad_norm=0.8123 tokens_per_sec=61234.5 step_ms=412.3 mfu=0.4120
 *   [metrics] step=120 epoch=0 val_loss=3.5012
 * Each rank may print diagnostics under another tag ("[rank-stats]"), whose
 * keys no definition matches. `metric_definitions` are the regexes for
 * CreateTrainingJob (AlgorithmSpecification.MetricDefinitions);
 * `sagerun metrics check` applies them to a log with PCRE2.
 */
#ifndef SAGERUN_METRICS_H
#define SAGERUN_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* CreateTrainingJob limits: at most 40 definitions, Name 1..255 chars,
 * Regex 1..500 chars. */
#define METRIC_MAX_DEFINITIONS 40
#define METRIC_NAME_MAX 255
#define METRIC_REGEX_MAX 500

struct metric_definition {
    const char *name;
    const char *regex; /* one capture group: the value */
};

extern const struct metric_definition metric_definitions[];
extern const size_t metric_definition_count;

/* A field of a metrics line: name=value with `decimals` digits after the
 * point (0 for integers). */
struct metric_field {
    const char *name;
    double value;
    int decimals;
};

/* Formats "<tag> name=value ...\n" into buf. Fails, naming the field, when a
 * value is not finite (the caller reports and stops: a diverged run must not
 * publish garbage metrics). */
int metrics_format(char *buf, size_t size, const char *tag, const struct metric_field *fields, int count,
                   struct sr_error *err);

/* Writes a line with one write(2), so lines of several threads or processes
 * sharing the descriptor never interleave mid-line. */
int metrics_emit(int fd, const char *line, struct sr_error *err);

/* [{"Name": ..., "Regex": ...}, ...] */
json_t *metrics_definitions_json(void);

/* `sagerun bench` and `validate` print, through rank 0, one line per host
 * and one for the job (device-independent headline figures: bf16 GEMM and
 * device-memory copy on GPUs, fp32 GEMM and memcpy on CPUs):
 *   [bench] host=algo-2 ranks=8 gemm_tflops=5312.4000 membw_gbs=21504.0000 train_tokens_per_sec=...
 *   [bench] job hosts=2 ranks=16 allreduce_busbw_gbs=... train_tokens_per_sec=... train_step_ms=...
 * The definitions name each host's metrics "algo-N:<metric>", so the
 * hosts' figures stay apart in CloudWatch: 3 per host and 3 for the job
 * (so at most 12 hosts fit CreateTrainingJob's 40). */
#define METRICS_BENCH_MAX_HOSTS ((METRIC_MAX_DEFINITIONS - 3) / 3)
json_t *metrics_bench_definitions_json(int hosts);

struct metric_tally {
    size_t matches;
    char last[64]; /* the last captured text */
};

/* Applies every definition ([{"Name", "Regex"}...], at most
 * METRIC_MAX_DEFINITIONS) to every line of `log`; tallies[i] belongs to
 * definition i. */
int metrics_check_log(FILE *log, const json_t *definitions, struct metric_tally *tallies, struct sr_error *err);

#endif
