/* sagerun metrics definitions [--bench HOSTS]
 * sagerun metrics check [--bench HOSTS | --definitions FILE] LOG
 *
 * `definitions` prints the MetricDefinitions array to pass to
 * CreateTrainingJob (AlgorithmSpecification.MetricDefinitions): the
 * built-in trainer's, or with --bench those of `sagerun bench`/`validate`
 * for a job of HOSTS hosts. `check` applies the same regexes (or those of a
 * JSON file holding such an array, e.g. a CreateTrainingJob request's),
 * with PCRE2, to a log (a CloudWatch export or sagerun's own output) and
 * reports per metric how many values matched and the last one; it fails
 * when a metric never matches. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "json_file.h"
#include "metrics.h"
#include "options.h"
#include "parse_int.h"

static int check(const char *path, const json_t *defs)
{
    FILE *log = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!log) {
        fprintf(stderr, "sagerun: metrics check: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_JOB_FAILED;
    }
    struct metric_tally tallies[METRIC_MAX_DEFINITIONS];
    struct sr_error err = {{0}};
    int rc = metrics_check_log(log, defs, tallies, &err);
    if (log != stdin)
        fclose(log);
    if (rc != 0) {
        fprintf(stderr, "sagerun: metrics check: %s: %s\n", path, err.text);
        return EXIT_JOB_FAILED;
    }
    int missing = 0;
    size_t count = json_array_size(defs);
    printf("%-34s %8s  %s\n", "metric", "matches", "last value");
    for (size_t i = 0; i < count; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(defs, i), "Name"));
        printf("%-34s %8zu  %s\n", name, tallies[i].matches, tallies[i].matches ? tallies[i].last : "-");
        missing += tallies[i].matches == 0;
    }
    if (missing) {
        fprintf(stderr, "sagerun: metrics check: %d of %zu metrics never matched in %s\n", missing, count, path);
        return EXIT_JOB_FAILED;
    }
    return EXIT_OK;
}

/* The definitions a file holds: an array, or an object with
 * "MetricDefinitions" at its top or under "AlgorithmSpecification". */
static json_t *definitions_from_file(const char *path, struct sr_error *err)
{
    json_t *doc;
    if (json_file_load(path, false, &doc, err) != 0)
        return NULL;
    json_t *defs = json_is_array(doc) ? doc : json_object_get(doc, "MetricDefinitions");
    if (!defs)
        defs = json_object_get(json_object_get(doc, "AlgorithmSpecification"), "MetricDefinitions");
    if (!json_is_array(defs)) {
        error_config(err, path, "$", "holds no MetricDefinitions array");
        json_decref(doc);
        return NULL;
    }
    json_incref(defs);
    json_decref(doc);
    return defs;
}

static const char usage[] = "usage: sagerun metrics definitions [--bench HOSTS]\n"
                            "       sagerun metrics check [--bench HOSTS | --definitions FILE] LOG\n";

int cmd_metrics(int argc, char **argv)
{
    static const struct option options[] = {
        {"bench", required_argument, NULL, 'b'}, {"definitions", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    if (argc < 2 || (strcmp(argv[1], "definitions") != 0 && strcmp(argv[1], "check") != 0)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (options_check(argc, argv, options, false) != 0)
        return EXIT_USAGE;
    bool checking = strcmp(argv[1], "check") == 0;
    int hosts = 0, opt;
    const char *file = NULL;
    struct sr_error err = {{0}};
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'b' && parse_int_option(optarg, 1, METRICS_BENCH_MAX_HOSTS, "--bench", &hosts, &err) != 0) {
            fprintf(stderr, "sagerun: metrics: %s\n", err.text);
            return EXIT_USAGE;
        }
        if (opt == 'd' && checking)
            file = optarg;
        else if (opt != 'b') {
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - (checking ? 1 : 0) || (hosts && file)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    json_t *defs = file ? definitions_from_file(file, &err)
                   : hosts ? metrics_bench_definitions_json(hosts)
                           : metrics_definitions_json();
    if (!defs) {
        fprintf(stderr, "sagerun: metrics check: %s\n", err.text);
        return EXIT_JOB_FAILED;
    }
    int status = EXIT_OK;
    if (checking) {
        status = check(argv[optind], defs);
    } else {
        char *text = json_dumps(defs, JSON_INDENT(2));
        puts(text);
        free(text);
    }
    json_decref(defs);
    return status;
}
