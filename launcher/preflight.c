#include "preflight.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "fs.h"
#include "instance_types.h"
#include "json_file.h"
#include "judge.h"
#include "launch.h"
#include "strbuf.h"

int preflight_parse(const char *value, const char *origin, enum preflight_level *out, struct sr_error *err)
{
    static const char *const names[] = {"off", "quick", "full"};
    for (int i = 0; i < 3; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = (enum preflight_level)i;
            return 0;
        }
    error_setf(err, "preflight (%s): \"%s\" is not off, quick or full", origin, value);
    return -1;
}

/* A host that sees fewer GPUs than its instance type has is unfit. */
static int check_gpu_count(const struct job *j, struct sr_error *err)
{
    const struct contract *c = &j->contract;
    int expected = instance_type_gpus(c->resources.current_instance_type);
    if (expected > 0 && j->plan.gpus.count < expected) {
        error_setf(err, "preflight: %s sees %d of the %d GPUs of %s (%s)", c->resources.current_host,
                   j->plan.gpus.count, expected, c->resources.current_instance_type, j->plan.gpus.source);
        return -1;
    }
    return 0;
}

/* The rank command: this binary's bench-rank in preflight mode. quick: the
 * GEMM, the memory copy and the all-reduce, briefly; full: everything. */
static char **rank_command(const struct job *j, enum preflight_level level, int *count, struct sr_error *err)
{
    char self[FS_PATH_BYTES];
    if (fs_self_executable(self, sizeof self, "preflight", err) != 0)
        return NULL;
    const char *quick[] = {"--allreduce-max-bytes", "16777216", "gemm", "membw", "allreduce", NULL};
    char **cmd = xcalloc(16, sizeof *cmd);
    int n = 0;
    const char *head[] = {self, "bench-rank", "--mode", "preflight", "--ml-root", j->contract.ml_root, NULL};
    for (const char **a = head; *a; a++)
        cmd[n++] = xstrdup(*a);
    for (const char **a = quick; level == PREFLIGHT_QUICK && *a; a++)
        cmd[n++] = xstrdup(*a);
    *count = n;
    return cmd;
}

static void print_figures(const char *who, const char *how, const json_t *metrics)
{
    struct strbuf line;
    strbuf_init(&line);
    const char *metric;
    json_t *value;
    json_object_foreach((json_t *)metrics, metric, value)
        strbuf_printf(&line, "%s%s %.4g", line.len ? ", " : "", metric, json_number_value(value));
    fprintf(stderr, "sagerun: preflight: %s%s: %s\n", who, how, line.data);
    strbuf_free(&line);
}

/* One line per host, passed or not, with its figures; then the job's. */
static void print_hosts(const json_t *summary)
{
    size_t i;
    const json_t *h;
    json_array_foreach(json_object_get(summary, "hosts"), i, h)
        print_figures(json_string_value(json_object_get(h, "host")),
                      json_is_true(json_object_get(h, "passed")) ? " passed" : " FAILED", json_object_get(h, "metrics"));
    print_figures("all-reduce across the job", "", json_object_get(summary, "job"));
}

/* This host's copy of the verdict (bench_rank.c writes it on every host). */
static int read_verdict(const char *path, struct sr_error *err)
{
    json_t *summary;
    if (json_file_load(path, false, &summary, err) != 0)
        return -1;
    print_hosts(summary);
    int rc = 0;
    if (!json_is_true(json_object_get(summary, "passed"))) {
        struct strbuf why;
        strbuf_init(&why);
        judge_failures_text(summary, &why);
        error_setf(err, "preflight: %s", why.data);
        strbuf_free(&why);
        rc = -1;
    }
    json_decref(summary);
    return rc;
}

int preflight_run(struct job *j, const struct launch_options *o, struct sr_error *err)
{
    if (o->preflight == PREFLIGHT_OFF)
        return 0;
    if (check_gpu_count(j, err) != 0)
        return EXIT_JOB_FAILED;
    char verdict[FS_PATH_BYTES];
    snprintf(verdict, sizeof verdict, "%s/output/data/sagerun-preflight-verdict.json", j->contract.ml_root);
    unlink(verdict); /* an earlier run's must not stand for this one */
    int count;
    char **cmd = rank_command(j, o->preflight, &count, err);
    if (!cmd)
        return -1;
    struct launch_options own = *o; /* sagerun's own ranks, in a session of their own */
    own.mpirun = false;
    own.rendezvous_port_shift = 1;
    fprintf(stderr, "sagerun: preflight (%s) before the program\n", o->preflight == PREFLIGHT_QUICK ? "quick" : "full");
    fflush(NULL);
    int status = launch_builtin_program(j, &own, cmd, count, err);
    strv_free(cmd);
    if (status != 0)
        return status < 0 ? -1 : status;
    return read_verdict(verdict, err) == 0 ? 0 : EXIT_JOB_FAILED;
}
