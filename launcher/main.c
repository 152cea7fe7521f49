/* sagerun — entrypoint of a SageMaker GPU training image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "failure.h"

static const char usage[] =
    "usage: sagerun <command> [options]\n"
    "\n"
    "commands:\n"
    "  train [--ml-root DIR] [--nproc-per-host N] [-- CMD ARGS...]\n"
    "        read the SageMaker job and run CMD (else the job's sagemaker_program,\n"
    "        else the built-in GPT trainer) in every rank, with the SM_* environment\n"
    "        and the hyperparameters as --key value arguments\n"
    "  trainer [--ml-root DIR]\n"
    "        one rank of the built-in GPT trainer (train starts it)\n"
    "  bench [gemm] [membw] [allreduce] [train] [--ml-root DIR] [options]\n"
    "        run benchmarks in every rank of the job; rank 0 prints and saves the results\n"
    "  validate [--ml-root DIR] [--straggler-ratio R] [--baselines FILE] [options]\n"
    "        every benchmark, each GPU/host judged against its instance type's baseline\n"
    "        and its peers; fails the job when one falls short (see `sagerun bench --help`)\n"
    "  metrics definitions [--bench HOSTS] | metrics check [--bench HOSTS | --definitions FILE] LOG\n"
    "        print the MetricDefinitions for CreateTrainingJob; check a log against them\n"
    "  env   [--ml-root DIR] [--format shell|json] [--nproc-per-host N] [--master-port P]\n"
    "        print this host's plan and the SM_* environment a rank gets\n"
    "  topo  [--topology FILE.xml] [--policy numa|exclusive|none] [--nproc-per-host N]\n"
    "        [--format text|json]\n"
    "        print where each local rank runs: GPU -> PCI -> NUMA node -> CPUs, nearest NIC\n"
    "  sample --out DIR [--hosts N] [--instance-type T] [--no-encryption]\n"
    "        write a sample /opt/ml tree for each host of an N-host job\n"
    "\n"
    "environment: SAGERUN_ML_ROOT (default /opt/ml), SAGERUN_NPROC_PER_HOST,\n"
    "  SAGERUN_MASTER_PORT (default 7777), SAGERUN_INTER_CONTAINER_ENCRYPTION,\n"
    "  SAGERUN_NVML_LIBRARY (default libnvidia-ml.so.1)\n";

void job_options_init(struct job_options *o)
{
    memset(o, 0, sizeof *o);
    o->ml_root = getenv(ML_ROOT_ENV);
    if (!o->ml_root || !*o->ml_root)
        o->ml_root = DEFAULT_ML_ROOT;
    o->plan.nvml_library = getenv("SAGERUN_NVML_LIBRARY");
}

int job_options_finish(struct job_options *o, struct sr_error *err)
{
    const char *nproc = getenv(NPROC_ENV);
    if (nproc && !o->plan.nproc_origin) {
        if (parse_int_option(nproc, 1, MAX_RANKS_PER_HOST, "environment variable " NPROC_ENV,
                             &o->plan.nproc_per_host, err) != 0)
            return -1;
        o->plan.nproc_origin = NPROC_ENV;
    }
    const char *port = getenv(MASTER_PORT_ENV);
    if (port && !o->plan.master_port &&
        parse_int_option(port, 1, 65535, "environment variable " MASTER_PORT_ENV, &o->plan.master_port, err) != 0)
        return -1;
    return 0;
}

int job_options_parse(struct job_options *o, int opt, const char *value, struct sr_error *err)
{
    switch (opt) {
    case 'r':
        o->ml_root = value;
        return 1;
    case 'n':
        o->plan.nproc_origin = "--nproc-per-host";
        return parse_int_option(value, 1, MAX_RANKS_PER_HOST, "--nproc-per-host", &o->plan.nproc_per_host, err)
                   ? -1
                   : 1;
    case 'p':
        return parse_int_option(value, 1, 65535, "--master-port", &o->plan.master_port, err) ? -1 : 1;
    }
    return 0;
}

int launch_settings(const char *bind_flag, const char *grace_flag, enum bind_policy *bind, int *stop_grace_s,
                    struct sr_error *err)
{
    const char *bind_text = bind_flag ? bind_flag : getenv("SAGERUN_BIND");
    const char *grace_text = grace_flag ? grace_flag : getenv("SAGERUN_STOP_GRACE");
    *bind = BIND_NUMA;
    *stop_grace_s = DEFAULT_STOP_GRACE_S;
    if (bind_text && bind_policy_parse(bind_text, bind, err) != 0)
        return -1;
    if (grace_text && parse_int_option(grace_text, 0, 3600, "stop grace (--stop-grace, SAGERUN_STOP_GRACE)",
                                       stop_grace_s, err) != 0)
        return -1;
    return 0;
}

void launch_options_init(struct launch_options *o)
{
    memset(o, 0, sizeof *o);
    job_options_init(&o->job);
}

int launch_options_parse(struct launch_options *o, int opt, const char *value, struct sr_error *err)
{
    if (opt == 'b')
        o->bind_flag = value;
    else if (opt == 'g')
        o->grace_flag = value;
    else
        return job_options_parse(&o->job, opt, value, err);
    return 1;
}

int launch_options_finish(struct launch_options *o, struct sr_error *err)
{
    if (job_options_finish(&o->job, err) != 0)
        return -1;
    return launch_settings(o->bind_flag, o->grace_flag, &o->bind, &o->stop_grace_s, err);
}

const char *tls_channel_dir(const struct contract *c, char *buf, size_t size)
{
    for (size_t i = 0; i < c->inputs.channel_count; i++)
        if (strcmp(c->inputs.channels[i].name, "tls") == 0) {
            snprintf(buf, size, "%s/input/data/tls", c->ml_root);
            return buf;
        }
    return NULL;
}

int command_fail(const char *ml_root, const struct sr_error *err)
{
    fprintf(stderr, "sagerun: %s\n", err->text);
    struct sr_error werr = {{0}};
    if (failure_write(ml_root, err->text, &werr) != 0)
        fprintf(stderr, "sagerun: also failed to record the failure: %s\n", werr.text);
    return EXIT_JOB_FAILED;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "trainer") == 0)
        return cmd_trainer(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "bench-rank") == 0)
        return cmd_bench_rank(argc - 1, argv + 1);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "metrics") == 0)
        return cmd_metrics(argc - 1, argv + 1);
    if (strcmp(cmd, "env") == 0)
        return cmd_env(argc - 1, argv + 1);
    if (strcmp(cmd, "topo") == 0)
        return cmd_topo(argc - 1, argv + 1);
    if (strcmp(cmd, "sample") == 0)
        return cmd_sample(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "sagerun: unknown command \"%s\"\n\n%s", cmd, usage);
    return EXIT_USAGE;
}
