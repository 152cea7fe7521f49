#include "bench_options.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "judge.h"
#include "parse_int.h"

const struct option bench_long_options[] = {
    {"ml-root", required_argument, NULL, 'r'},
    {"nproc-per-host", required_argument, NULL, 'n'},
    {"bind", required_argument, NULL, 'b'},
    {"stop-grace", required_argument, NULL, 'g'},
    {"gemm-size", required_argument, NULL, 'G'},
    {"membw-mib", required_argument, NULL, 'M'},
    {"repeats", required_argument, NULL, 'R'},
    {"warmup", required_argument, NULL, 'W'},
    {"allreduce-min-bytes", required_argument, NULL, 'a'},
    {"allreduce-max-bytes", required_argument, NULL, 'A'},
    {"train-preset", required_argument, NULL, 'P'},
    {"train-batch", required_argument, NULL, 'B'},
    {"straggler-ratio", required_argument, NULL, 'S'},
    {"baselines", required_argument, NULL, 'L'},
    {"json", required_argument, NULL, 'j'},
    {"mode", required_argument, NULL, 'm'},
    {NULL, 0, NULL, 0},
};

const char bench_usage[] =
    "usage: sagerun bench [gemm] [membw] [allreduce] [train] [options]   (no names: all four)\n"
    "       sagerun validate [options]\n"
    "options: --ml-root DIR --nproc-per-host N --bind POLICY --stop-grace S\n"
    "         --gemm-size N (1024 on CPUs, 8192 on GPUs) --membw-mib N (256 on CPUs, 1024 on GPUs)\n"
    "         --repeats N (10) --warmup N (2)\n"
    "         --allreduce-min-bytes N (8192) --allreduce-max-bytes N (64 MiB on CPUs, 1 GiB on GPUs)\n"
    "         --train-preset tiny|gpt2-124m (tiny) --train-batch N (4)\n"
    "         --straggler-ratio R (0.9) --baselines FILE --json FILE\n";

void bench_options_init(struct bench_options *o)
{
    *o = (struct bench_options){.repeats = 10, .warmup = 2,
                                .allreduce_min = 8192, .train_batch = 4,
                                .train_preset = "tiny", .straggler_ratio = JUDGE_DEFAULT_STRAGGLER_RATIO};
}

static int parse_ratio(const char *text, double *out, struct sr_error *err)
{
    char *end;
    double v = strtod(text, &end);
    if (*end || end == text || !(v > 0.0 && v <= 1.0)) {
        error_setf(err, "--straggler-ratio: \"%s\" is not a number in (0, 1]", text);
        return -1;
    }
    *out = v;
    return 0;
}

int bench_options_parse(struct bench_options *o, int opt, const char *v, struct sr_error *err)
{
    switch (opt) {
    case 'G': return parse_int_option(v, 16, 65536, "--gemm-size", &o->gemm_size, err) ? -1 : 1;
    case 'M': return parse_int_option(v, 1, 65536, "--membw-mib", &o->membw_mib, err) ? -1 : 1;
    case 'R': return parse_int_option(v, 1, 10000, "--repeats", &o->repeats, err) ? -1 : 1;
    case 'W': return parse_int_option(v, 0, 10000, "--warmup", &o->warmup, err) ? -1 : 1;
    case 'a': return parse_int_option(v, 4, 1 << 30, "--allreduce-min-bytes", &o->allreduce_min, err) ? -1 : 1;
    case 'A': return parse_int_option(v, 4, 1 << 30, "--allreduce-max-bytes", &o->allreduce_max, err) ? -1 : 1;
    case 'B': return parse_int_option(v, 1, 4096, "--train-batch", &o->train_batch, err) ? -1 : 1;
    case 'P': o->train_preset = v; return 1;
    case 'S': return parse_ratio(v, &o->straggler_ratio, err) ? -1 : 1;
    case 'L': o->baselines = v; return 1;
    case 'j': o->json_path = v; return 1;
    case 'r': o->ml_root = v; return 1;
    }
    return 0;
}

int bench_options_select(struct bench_options *o, int count, char **names, struct sr_error *err)
{
    /* SageMaker may append its `train` argument to a ContainerEntrypoint of
     * ["sagerun", "validate", ...]; for validate it means nothing. */
    bool everything = o->validate && !o->preflight;
    if (everything && count == 1 && strcmp(names[0], "train") == 0)
        count = 0;
    if (count == 0 || everything) {
        if (count > 0) {
            error_setf(err, "validate runs every benchmark; \"%s\" is not an option", names[0]);
            return -1;
        }
        o->gemm = o->membw = o->allreduce = o->train = true;
        return 0;
    }
    for (int i = 0; i < count; i++) {
        bool *which = strcmp(names[i], "gemm") == 0        ? &o->gemm
                      : strcmp(names[i], "membw") == 0     ? &o->membw
                      : strcmp(names[i], "allreduce") == 0 ? &o->allreduce
                      : strcmp(names[i], "train") == 0     ? &o->train
                                                           : NULL;
        if (!which) {
            error_setf(err, "bench: \"%s\" is not a benchmark (gemm, membw, allreduce, train)", names[i]);
            return -1;
        }
        *which = true;
    }
    return 0;
}

int bench_options_check(const struct bench_options *o, struct sr_error *err)
{
    if (o->allreduce_max && o->allreduce_min > o->allreduce_max) {
        error_setf(err, "--allreduce-min-bytes %d is over --allreduce-max-bytes %d", o->allreduce_min,
                   o->allreduce_max);
        return -1;
    }
    if (o->baselines && access(o->baselines, R_OK) != 0) {
        error_setf(err, "--baselines %s cannot be read", o->baselines);
        return -1;
    }
    return 0;
}
