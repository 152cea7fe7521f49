#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failure.h"
#include "parse_int.h"

void job_options_set_root(struct job_options *o, const char *path)
{
    char cwd[FS_PATH_BYTES];
    if (path[0] != '/' && getcwd(cwd, sizeof cwd))
        snprintf(o->ml_root_buf, sizeof o->ml_root_buf, "%s/%s", cwd, path);
    else /* absolute, or no working directory to resolve against: the contract's errors will name it */
        snprintf(o->ml_root_buf, sizeof o->ml_root_buf, "%s", path);
    o->ml_root = o->ml_root_buf;
}

void job_options_init(struct job_options *o)
{
    memset(o, 0, sizeof *o);
    const char *root = getenv(ML_ROOT_ENV);
    job_options_set_root(o, root && *root ? root : DEFAULT_ML_ROOT);
    o->plan.nvml_library = getenv("SAGERUN_NVML_LIBRARY");
}

int job_options_parse(struct job_options *o, int opt, const char *value, struct sr_error *err)
{
    switch (opt) {
    case 'r':
        job_options_set_root(o, value);
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

static const struct option *option_named(const struct option *table, const char *name, size_t len)
{
    for (const struct option *o = table; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* The options `name` abbreviates, for the message ("" if none). */
static void options_starting(const struct option *table, const char *name, size_t len, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const struct option *o = table; o->name && used < size; o++)
        if (strncmp(o->name, name, len) == 0)
            used += (size_t)snprintf(out + used, size - used, "%s--%s", used ? ", " : "", o->name);
}

int options_check(int argc, char **argv, const struct option *table, bool stop_at_operand)
{
    opterr = 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (stop_at_operand)
                return 0;
            continue;
        }
        if (a[1] != '-') {
            fprintf(stderr, "sagerun: %s: %s is not an option\n", argv[0], a);
            return EXIT_USAGE;
        }
        size_t len = strcspn(a + 2, "=");
        const struct option *o = option_named(table, a + 2, len);
        if (!o) {
            char like[512];
            options_starting(table, a + 2, len, like, sizeof like);
            fprintf(stderr, "sagerun: %s: --%.*s is not an option%s%s%s\n", argv[0], (int)len, a + 2,
                    like[0] ? " (options are written out in full: " : "", like, like[0] ? ")" : "");
            return EXIT_USAGE;
        }
        if (o->has_arg == required_argument && !a[2 + len] && ++i >= argc) {
            fprintf(stderr, "sagerun: %s: --%s needs a value\n", argv[0], o->name);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int job_load(const struct job_options *o, struct job *j, struct sr_error *err)
{
    memset(j, 0, sizeof *j);
    if (contract_load(&j->contract, o->ml_root, err) != 0)
        return -1;
    char tj_path[FS_PATH_BYTES];
    snprintf(tj_path, sizeof tj_path, "%s/trainingjobconfig.json", j->contract.config_dir);
    if (encryption_decide(&j->contract.training_job, tj_path, getenv(ENCRYPTION_ENV), &j->encryption, err) != 0 ||
        plan_build(&j->contract, &o->plan, &j->plan, err) != 0) {
        contract_free(&j->contract);
        return -1;
    }
    return 0;
}

int job_tls_settings(const struct job *j, struct tls_settings *out, struct sr_error *err)
{
    char dir[FS_PATH_BYTES];
    return tls_settings_load(&j->encryption, contract_channel_dir(&j->contract, "tls", dir, sizeof dir), out, err);
}

void job_free(struct job *j)
{
    plan_free(&j->plan);
    contract_free(&j->contract);
}

int command_run_job(const struct launch_options *o, job_runner run, void *ctx)
{
    struct sr_error err = {{0}};
    /* An earlier run's failure must not stand for this one. Under mpirun
     * every slot's sagerun starts on its own: the first one's failure could
     * already be there, so the file is left as it is. */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && failure_clear(o->job.ml_root, &err) != 0)
        return command_fail(o->job.ml_root, &err);
    struct job j;
    if (job_load(&o->job, &j, &err) != 0)
        return command_fail(o->job.ml_root, &err);
    int status = run(&j, ctx, &err);
    job_free(&j);
    if (status < 0) /* could not launch */
        return command_fail(o->job.ml_root, &err);
    if (error_is_set(&err)) /* a rank failed: its story is the job's failure reason */
        command_fail(o->job.ml_root, &err);
    return status;
}

int command_fail(const char *ml_root, const struct sr_error *err)
{
    fprintf(stderr, "sagerun: %s\n", err->text);
    struct sr_error werr = {{0}};
    if (failure_write(ml_root, err->text, &werr) != 0)
        fprintf(stderr, "sagerun: also failed to record the failure: %s\n", werr.text);
    return EXIT_JOB_FAILED;
}
