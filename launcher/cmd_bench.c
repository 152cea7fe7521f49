/* sagerun bench [gemm] [membw] [allreduce] [train] [options]
 * sagerun validate [options]
 *
 * Both run sagerun's benchmarks in every rank of the job (one per GPU, one
 * CPU rank per host without GPUs), launched like the built-in trainer:
 * through the rendezvous, bound, supervised; the rank program is
 * bench_rank.h's. `validate` runs every benchmark and judges them; on the
 * leader it fails the job, with the failing hosts and ranks in
 * /opt/ml/output/failure, when any check fails.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_options.h"
#include "commands.h"
#include "fs.h"
#include "json_file.h"
#include "judge.h"
#include "launch.h"
#include "options.h"
#include "strbuf.h"

/* The leader's verdict, from the report rank 0 wrote at `path`. */
static int read_verdict(const char *path, struct sr_error *err)
{
    json_t *doc;
    if (json_file_load(path, false, &doc, err) != 0)
        return -1;
    const json_t *verdict = json_object_get(doc, "verdict");
    int rc = 0;
    if (!json_is_true(json_object_get(verdict, "passed"))) {
        struct strbuf why;
        strbuf_init(&why);
        judge_failures_text(verdict, &why);
        error_setf(err, "validate: capacity failed validation (report: %s): %s", path, why.data);
        strbuf_free(&why);
        rc = -1;
    }
    json_decref(doc);
    return rc;
}

static int parse_launch(int argc, char **argv, struct launch_options *lo, struct bench_options *o,
                        struct sr_error *err)
{
    launch_options_init(lo);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", bench_long_options, NULL)) != -1) {
        int handled = launch_options_parse(lo, opt, optarg, err);
        if (handled == 0)
            handled = bench_options_parse(o, opt, optarg, err);
        if (handled < 0)
            return -1;
        if (!handled)
            return 1;
    }
    o->ml_root = lo->job.ml_root;
    if (bench_options_select(o, argc - optind, argv + optind, err) != 0 || bench_options_check(o, err) != 0 ||
        launch_options_finish(lo, err) != 0)
        return -1;
    return 0;
}

/* The rank command: this binary's bench-rank with the same arguments. */
static char **rank_command(const struct bench_options *o, int argc, char **argv, int *count, struct sr_error *err)
{
    char self[FS_PATH_BYTES];
    if (fs_self_executable(self, sizeof self, o->validate ? "validate" : "bench", err) != 0)
        return NULL;
    char **cmd = xcalloc((size_t)argc + 7, sizeof *cmd);
    int n = 0;
    cmd[n++] = xstrdup(self);
    cmd[n++] = xstrdup("bench-rank");
    cmd[n++] = xstrdup("--mode");
    cmd[n++] = xstrdup(o->validate ? "validate" : "bench");
    cmd[n++] = xstrdup("--ml-root");
    cmd[n++] = xstrdup(o->ml_root);
    for (int i = 1; i < argc; i++)
        cmd[n++] = xstrdup(argv[i]);
    *count = n;
    return cmd;
}

struct bench_request {
    const struct launch_options *launch;
    const struct bench_options *bench;
    int argc;
    char **argv;
};

static int run_benchmarks(struct job *j, void *ctx, struct sr_error *err)
{
    const struct bench_request *r = ctx;
    const struct contract *c = &j->contract;
    const struct plan *p = &j->plan;
    const struct bench_options *o = r->bench;
    char report[FS_PATH_BYTES];
    snprintf(report, sizeof report, "%s/output/data/sagerun-validate.json", c->ml_root);
    if (o->validate && p->is_leader)
        unlink(report); /* a report left by an earlier run must not stand for this one */
    int count;
    char **cmd = rank_command(o, r->argc, r->argv, &count, err);
    if (!cmd)
        return -1;
    int status = launch_builtin_program(j, r->launch, cmd, count, err);
    strv_free(cmd);
    if (status == 0 && o->validate && p->is_leader && read_verdict(report, err) != 0)
        status = EXIT_JOB_FAILED;
    return status;
}

static int bench_main(int argc, char **argv, bool validate)
{
    struct launch_options lo;
    struct bench_options o;
    struct sr_error err = {{0}};
    bench_options_init(&o);
    o.validate = validate;
    if (options_check(argc, argv, bench_long_options, false) != 0)
        return EXIT_USAGE;
    int parsed = parse_launch(argc, argv, &lo, &o, &err);
    if (parsed > 0) {
        fputs(bench_usage, stderr);
        return EXIT_USAGE;
    }
    if (parsed < 0)
        return command_fail(lo.job.ml_root, &err);
    struct bench_request r = {&lo, &o, argc, argv};
    return command_run_job(&lo, run_benchmarks, &r);
}

int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv, false);
}

int cmd_validate(int argc, char **argv)
{
    return bench_main(argc, argv, true);
}
