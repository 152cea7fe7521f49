/* sagerun trainer: one rank of the built-in GPT trainer (trainer.h).
 * `sagerun train` starts it in every rank when the job names no program. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "options.h"
#include "trainer.h"

int cmd_trainer(int argc, char **argv)
{
    static const struct option options[] = {{"ml-root", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    struct job_options o;
    job_options_init(&o);
    int opt;
    if (options_check(argc, argv, options, false) != 0)
        return EXIT_USAGE;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt != 'r') {
            fputs("usage: sagerun trainer [--ml-root DIR]\n", stderr);
            return EXIT_USAGE;
        }
        job_options_set_root(&o, optarg);
    }
    struct sr_error err = {{0}};
    if (trainer_run(o.ml_root, &err) != 0) {
        /* The launcher turns the rank's last lines into the job's failure
         * reason; this line is the one that says why. */
        const char *rank = getenv("RANK");
        fprintf(stderr, "sagerun-trainer: rank %s: %s\n", rank ? rank : "?", err.text);
        return EXIT_JOB_FAILED;
    }
    return EXIT_OK;
}
