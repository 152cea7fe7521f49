/* sagerun train: what SageMaker runs. Reads and checks the job, then runs
 * the user's command with the toolkit's SM_* environment and the user's
 * hyperparameters appended as --key value arguments (as sagemaker-training
 * does for an entry point). The process is replaced by the command (exec),
 * so its exit status and signals are the job's. Multi-rank launch, binding
 * and supervision are the launcher's next step (see the issues). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "contract.h"
#include "plan.h"
#include "sm_env.h"
#include "strbuf.h"

static const struct option options[] = {
    {"ml-root", required_argument, NULL, 'r'},
    {"nproc-per-host", required_argument, NULL, 'n'},
    {"master-port", required_argument, NULL, 'p'},
    {NULL, 0, NULL, 0},
};

/* argv for exec: the command, then the user arguments from SM_USER_ARGS. */
static char **command_line(char **cmd, int cmd_count, const json_t *user_args)
{
    size_t n = (size_t)cmd_count + json_array_size(user_args);
    char **argv = xcalloc(n + 1, sizeof *argv);
    for (int i = 0; i < cmd_count; i++)
        argv[i] = cmd[i];
    for (size_t i = 0; i < json_array_size(user_args); i++)
        argv[(size_t)cmd_count + i] = xstrdup(json_string_value(json_array_get(user_args, i)));
    return argv;
}

static int export_vars(const json_t *vars, struct sr_error *err)
{
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)vars, name, value) {
        if (setenv(name, json_string_value(value), 1) != 0) {
            error_setf(err, "cannot set %s in the environment: %s", name, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    struct job_options jo;
    struct sr_error err = {{0}};
    job_options_init(&jo);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        int handled = job_options_parse(&jo, opt, optarg, &err);
        if (handled < 0)
            return command_fail(jo.ml_root, &err);
        if (!handled)
            return EXIT_USAGE;
    }
    if (job_options_finish(&jo, &err) != 0)
        return command_fail(jo.ml_root, &err);
    struct contract c;
    struct plan p;
    if (contract_load(&c, jo.ml_root, &err) != 0)
        return command_fail(jo.ml_root, &err);
    if (plan_build(&c, &jo.plan, &p, &err) != 0) {
        contract_free(&c);
        return command_fail(jo.ml_root, &err);
    }
    if (optind >= argc) {
        error_setf(&err, "train: no command to run; give one after \"--\" (sagerun train -- CMD ARGS...). "
                         "This build has no built-in trainer yet.");
        plan_free(&p);
        contract_free(&c);
        return command_fail(jo.ml_root, &err);
    }
    json_t *vars = sm_env_build(&c, &p);
    /* SM_USER_ARGS holds exactly the arguments the toolkit appends. */
    json_t *user_args = json_loads(json_string_value(json_object_get(vars, "SM_USER_ARGS")), 0, NULL);
    char **cmd = NULL;
    if (!user_args) {
        error_setf(&err, "train: SM_USER_ARGS is not a JSON list (internal error)");
    } else if (export_vars(vars, &err) == 0) {
        cmd = command_line(argv + optind, argc - optind, user_args);
        fflush(NULL);
        execvp(cmd[0], cmd);
        error_setf(&err, "train: cannot run \"%s\": %s", cmd[0], strerror(errno));
    }
    for (size_t i = (size_t)(argc - optind); cmd && cmd[i]; i++)
        free(cmd[i]);
    free(cmd);
    json_decref(user_args);
    json_decref(vars);
    plan_free(&p);
    contract_free(&c);
    return command_fail(jo.ml_root, &err);
}
