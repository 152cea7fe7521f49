/* sagerun bench-rank: one rank of `sagerun bench`, `validate` or a
 * preflight (bench_rank.h); those start it in every rank. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "bench_rank.h"
#include "commands.h"
#include "options.h"

int cmd_bench_rank(int argc, char **argv)
{
    struct bench_options o;
    struct sr_error err = {{0}};
    bench_options_init(&o);
    struct job_options defaults; /* the ML root when --ml-root is absent */
    job_options_init(&defaults);
    o.ml_root = defaults.ml_root;
    if (options_check(argc, argv, bench_long_options, false) != 0)
        return EXIT_USAGE;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", bench_long_options, NULL)) != -1) {
        if (opt == 'm') {
            o.preflight = strcmp(optarg, "preflight") == 0;
            o.validate = o.preflight || strcmp(optarg, "validate") == 0;
        }
        else if (opt == '?' || bench_options_parse(&o, opt, optarg, &err) < 0) {
            fprintf(stderr, "sagerun bench-rank: %s\n", err.text[0] ? err.text : "bad option");
            return EXIT_USAGE;
        }
    }
    if (bench_options_select(&o, argc - optind, argv + optind, &err) != 0 || bench_rank_run(&o, &err) != 0) {
        fprintf(stderr, "sagerun bench-rank: %s\n", err.text);
        return EXIT_JOB_FAILED;
    }
    return EXIT_OK;
}

