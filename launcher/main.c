/* sagerun — entrypoint of a SageMaker GPU training image: the usage text
 * and the dispatch to the commands (commands.h), those that run a job
 * behind an init (init.h); nothing else. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "init.h"

static const char usage[] =
    "usage: sagerun <command> [options]\n"
    "\n"
    "commands:\n"
    "  train [--ml-root DIR] [--nproc-per-host N] [--launcher local|mpirun]\n"
    "        [--preflight off|quick|full] [-- CMD ARGS...]\n"
    "        read the SageMaker job and run CMD (else the job's sagemaker_program,\n"
    "        else the built-in GPT trainer) in every rank, with the SM_* environment\n"
    "        and the hyperparameters as --key value arguments; with --preflight, check\n"
    "        every host's capacity first\n"
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
    "  sample --out DIR [--hosts N] [--instance-type T] [--no-encryption] [--host-suffix S]\n"
    "        [--checkpoint-path PATH]\n"
    "        write a sample /opt/ml tree for each host of an N-host job\n"
    "\n"
    "environment: SAGERUN_ML_ROOT (default /opt/ml), SAGERUN_NPROC_PER_HOST,\n"
    "  SAGERUN_MASTER_PORT (default 7777), SAGERUN_INTER_CONTAINER_ENCRYPTION,\n"
    "  SAGERUN_NVML_LIBRARY (default libnvidia-ml.so.1)\n";

/* The commands that run a job (and so may be a container's PID 1) start
 * behind an init (init.h). */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    bool runs_a_job;
} commands[] = {
    {"train", cmd_train, true},       {"bench", cmd_bench, true},   {"validate", cmd_validate, true},
    {"trainer", cmd_trainer, false},  {"bench-rank", cmd_bench_rank, false},
    {"metrics", cmd_metrics, false},  {"env", cmd_env, false},      {"topo", cmd_topo, false},
    {"sample", cmd_sample, false},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(cmd, commands[i].name) == 0) {
            if (commands[i].runs_a_job)
                init_split();
            return commands[i].run(argc - 1, argv + 1);
        }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "sagerun: unknown command \"%s\"\n\n%s", cmd, usage);
    return EXIT_USAGE;
}
