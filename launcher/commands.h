/* commands.h — the sagerun subcommands and what they share.
 *
 * SageMaker starts a training image as `<entrypoint> train`; with
 * ENTRYPOINT ["sagerun"] that argument selects cmd_train. Each command parses
 * its own options, returns the process exit status, and on bad job input
 * reports through command_fail() (stderr + /opt/ml/output/failure).
 */
#ifndef SAGERUN_COMMANDS_H
#define SAGERUN_COMMANDS_H

#include "binding.h"
#include "contract.h"
#include "error.h"
#include "plan.h"

#define ML_ROOT_ENV "SAGERUN_ML_ROOT"
#define DEFAULT_ML_ROOT "/opt/ml"

#define DEFAULT_STOP_GRACE_S 100 /* of the 120 s SageMaker allows after SIGTERM */

enum exit_status { EXIT_OK = 0, EXIT_JOB_FAILED = 1, EXIT_USAGE = 2 };

/* Options every job-reading command accepts. */
struct job_options {
    const char *ml_root;
    struct plan_options plan;
};

/* What `train`, `bench` and `validate` launch with. */
struct launch_options {
    struct job_options job;
    enum bind_policy bind;
    int stop_grace_s;
    bool mpirun;                        /* --launcher mpirun */
    const char *bind_flag, *grace_flag; /* as given, until launch_options_finish */
};

/* Defaults: ML root from SAGERUN_ML_ROOT (else /opt/ml), NVML library from
 * SAGERUN_NVML_LIBRARY. */
void job_options_init(struct job_options *o);

/* After the command line: takes SAGERUN_NPROC_PER_HOST and
 * SAGERUN_MASTER_PORT for what the command line did not set. Errors name the
 * variable and are reported under the final ML root. */
int job_options_finish(struct job_options *o, struct sr_error *err);

/* Handles --ml-root, --nproc-per-host, --master-port; returns 1 if `opt`
 * was one of them, 0 if not, -1 on a bad value (err set). */
int job_options_parse(struct job_options *o, int opt, const char *value, struct sr_error *err);

/* The job options (job_options_*) plus --bind and --stop-grace, in the
 * same three steps: init, parse each option (1: it was one of them, 0: not,
 * -1: bad value), finish (the environment's values, then the checks). */
void launch_options_init(struct launch_options *o);
int launch_options_parse(struct launch_options *o, int opt, const char *value, struct sr_error *err);
int launch_options_finish(struct launch_options *o, struct sr_error *err);

/* Binding policy and stop grace from their flag values (NULL: not given),
 * else SAGERUN_BIND and SAGERUN_STOP_GRACE, else numa and the default. */
int launch_settings(const char *bind_flag, const char *grace_flag, enum bind_policy *bind, int *stop_grace_s,
                    struct sr_error *err);

/* <ML root>/input/data/tls when the job has a "tls" channel (where key
 * material may come from, see tls.h), else NULL. */
const char *tls_channel_dir(const struct contract *c, char *buf, size_t size);

/* Runs `cmd` (one of sagerun's own rank programs: cmd[0] is this binary,
 * cmd[1] the subcommand) in every rank of the job, as `train` runs its
 * built-in trainer: joined through the rendezvous with the job's TLS,
 * bound and supervised. Returns < 0 when nothing could be launched (err
 * set), else the launcher's exit status (err set when a rank failed). */
int launch_builtin_program(const struct contract *c, struct plan *p, const struct launch_options *o, char **cmd,
                           int cmd_count, struct sr_error *err);

/* What a launching command does with the job: returns < 0 when nothing
 * could be launched (err set), else the exit status (err set when a rank
 * failed). */
typedef int (*job_runner)(const struct contract *c, struct plan *p, void *ctx, struct sr_error *err);

/* Reads the job under o->job.ml_root, plans this host, runs `run`, and
 * reports a failure as every launching command does (stderr and the
 * failure file). Returns the command's exit status. */
int command_run_job(const struct launch_options *o, job_runner run, void *ctx);

/* Prints "sagerun: <message>" and writes the failure file under ml_root. */
int command_fail(const char *ml_root, const struct sr_error *err);

int cmd_bench(int argc, char **argv);
int cmd_bench_rank(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_trainer(int argc, char **argv);
int cmd_topo(int argc, char **argv);
int cmd_validate(int argc, char **argv);

#endif
