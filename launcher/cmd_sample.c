/* sagerun sample: write the embedded sample job's /opt/ml trees. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "parse_int.h"
#include "sample_job.h"

static const struct option options[] = {
    {"out", required_argument, NULL, 'o'},
    {"hosts", required_argument, NULL, 'h'},
    {"instance-type", required_argument, NULL, 't'},
    {"no-encryption", no_argument, NULL, 'e'},
    {"host-suffix", required_argument, NULL, 's'},
    {"checkpoint-path", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

int cmd_sample(int argc, char **argv)
{
    struct sample_options so = {.hosts = 2, .instance_type = "ml.p4d.24xlarge", .encryption = true};
    const char *out = NULL;
    struct sr_error err = {{0}};
    int opt;
    if (options_check(argc, argv, options, false) != 0)
        return EXIT_USAGE;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 't': so.instance_type = optarg; break;
        case 'e': so.encryption = false; break;
        case 's': so.host_suffix = optarg; break;
        case 'c': so.checkpoint_path = optarg; break;
        case 'h':
            if (parse_int_option(optarg, 1, SAMPLE_MAX_HOSTS, "--hosts", &so.hosts, &err) != 0) {
                fprintf(stderr, "sagerun sample: %s\n", err.text);
                return EXIT_USAGE;
            }
            break;
        default: return EXIT_USAGE;
        }
    }
    if (!out || optind != argc) {
        fprintf(stderr, "usage: sagerun sample --out DIR [--hosts N] [--instance-type T] [--no-encryption]\n"
                        "       [--host-suffix S] [--checkpoint-path PATH]\n");
        return EXIT_USAGE;
    }
    if (sample_job_write(out, &so, &err) != 0) {
        fprintf(stderr, "sagerun sample: %s\n", err.text);
        return EXIT_JOB_FAILED;
    }
    printf("wrote a %d-host sample job under %s (algo-1%s .. algo-%d%s)\n", so.hosts, out,
           so.host_suffix ? so.host_suffix : "", so.hosts, so.host_suffix ? so.host_suffix : "");
    return EXIT_OK;
}
