/* sagerun train: what SageMaker runs on every host. Reads and checks the
 * job, plans this host's ranks (one per GPU, one CPU rank without GPUs),
 * runs the preflight when asked (preflight.h) and the program in every
 * rank (launch.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "launch.h"
#include "options.h"
#include "preflight.h"

static const struct option options[] = {
    {"ml-root", required_argument, NULL, 'r'},     {"nproc-per-host", required_argument, NULL, 'n'},
    {"master-port", required_argument, NULL, 'p'}, {"bind", required_argument, NULL, 'b'},
    {"stop-grace", required_argument, NULL, 'g'},  {"launcher", required_argument, NULL, 'l'},
    {"preflight", required_argument, NULL, 'f'},   {NULL, 0, NULL, 0},
};

/* Returns 0, 1 (usage) or -1 (bad value, err set). */
static int parse_options(int argc, char **argv, struct launch_options *o, struct sr_error *err)
{
    launch_options_init(o);
    const char *launcher = getenv("SAGERUN_LAUNCHER"), *preflight = getenv(PREFLIGHT_ENV);
    const char *preflight_origin = PREFLIGHT_ENV;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        int handled = launch_options_parse(o, opt, optarg, err);
        if (handled < 0)
            return -1;
        if (handled)
            continue;
        if (opt == 'l') {
            launcher = optarg;
        } else if (opt == 'f') {
            preflight = optarg;
            preflight_origin = "--preflight";
        } else {
            return 1;
        }
    }
    if (preflight && *preflight && preflight_parse(preflight, preflight_origin, &o->preflight, err) != 0)
        return -1;
    if (launcher && strcmp(launcher, "local") != 0 && strcmp(launcher, "mpirun") != 0) {
        error_setf(err, "launcher (--launcher, SAGERUN_LAUNCHER): \"%s\" is not local or mpirun", launcher);
        return -1;
    }
    o->mpirun = launcher && strcmp(launcher, "mpirun") == 0;
    return launch_options_finish(o, err);
}

struct train_request {
    const struct launch_options *options;
    int cmd_count;
    char **cmd;
};

/* The preflight first (not in the slots mpirun starts: their host's own
 * sagerun ran it), then the program. */
static int run_train_request(struct job *j, void *ctx, struct sr_error *err)
{
    const struct train_request *r = ctx;
    int status = getenv("OMPI_COMM_WORLD_SIZE") ? 0 : preflight_run(j, r->options, err);
    return status != 0 ? status : launch_program(j, r->options, r->cmd, r->cmd_count, err);
}

int cmd_train(int argc, char **argv)
{
    struct launch_options o;
    struct sr_error err = {{0}};
    if (options_check(argc, argv, options, true) != 0)
        return EXIT_USAGE;
    int parsed = parse_options(argc, argv, &o, &err);
    if (parsed > 0)
        return EXIT_USAGE;
    if (parsed < 0)
        return command_fail(o.job.ml_root, &err);
    if (optind == argc && strcmp(argv[optind - 1], "--") == 0) {
        fprintf(stderr, "sagerun: train: nothing after \"--\": give the command every rank runs, or leave out "
                        "\"--\" to run the job's program (else the built-in trainer)\n");
        return EXIT_USAGE;
    }
    struct train_request r = {&o, argc - optind, argv + optind};
    return command_run_job(&o, run_train_request, &r);
}
