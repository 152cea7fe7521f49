/* sagerun metrics definitions | check LOG
 *
 * `definitions` prints the MetricDefinitions array to pass to
 * CreateTrainingJob (AlgorithmSpecification.MetricDefinitions), so the
 * console and CloudWatch chart what the built-in trainer logs. `check`
 * applies the same regexes, with PCRE2, to a log (a CloudWatch export or
 * sagerun's own output) and reports per metric how many values matched and
 * the last one; it fails when a metric never matches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "metrics.h"

static int check(const char *path)
{
    FILE *log = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!log) {
        fprintf(stderr, "sagerun: metrics check: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_JOB_FAILED;
    }
    struct metric_tally tallies[METRIC_MAX_DEFINITIONS];
    struct sr_error err = {{0}};
    int rc = metrics_check_log(log, tallies, &err);
    if (log != stdin)
        fclose(log);
    if (rc != 0) {
        fprintf(stderr, "sagerun: metrics check: %s: %s\n", path, err.text);
        return EXIT_JOB_FAILED;
    }
    int missing = 0;
    printf("%-22s %8s  %s\n", "metric", "matches", "last value");
    for (size_t i = 0; i < metric_definition_count; i++) {
        printf("%-22s %8zu  %s\n", metric_definitions[i].name, tallies[i].matches,
               tallies[i].matches ? tallies[i].last : "-");
        missing += tallies[i].matches == 0;
    }
    if (missing) {
        fprintf(stderr, "sagerun: metrics check: %d of %zu metrics never matched in %s\n", missing,
                metric_definition_count, path);
        return EXIT_JOB_FAILED;
    }
    return EXIT_OK;
}

int cmd_metrics(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "definitions") == 0) {
        json_t *defs = metrics_definitions_json();
        char *text = json_dumps(defs, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(defs);
        return EXIT_OK;
    }
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return check(argv[2]);
    fputs("usage: sagerun metrics definitions | sagerun metrics check LOG\n", stderr);
    return EXIT_USAGE;
}
