/* options.h — what every sagerun command shares: the options that name the
 * job and shape its launch, the job they name (read, encryption decided,
 * this host planned), and how a failure is reported.
 *
 * Options are taken in three steps: init (defaults), parse each option
 * (1: it was one of these, 0: not, -1: bad value, err set), finish (the
 * environment's values for what the command line did not set, then the
 * checks). A failure reaches SageMaker through command_fail: stderr and
 * <ML root>/output/failure.
 */
#ifndef SAGERUN_OPTIONS_H
#define SAGERUN_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#include "binding.h"
#include "commands.h"
#include "contract.h"
#include "error.h"
#include "fs.h"
#include "plan.h"
#include "tls.h"

#define ML_ROOT_ENV "SAGERUN_ML_ROOT"
#define DEFAULT_ML_ROOT "/opt/ml"

#define DEFAULT_STOP_GRACE_S 100 /* of the 120 s SageMaker allows after SIGTERM */

/* Options every job-reading command accepts. */
struct job_options {
    const char *ml_root; /* always absolute (ml_root_buf): ranks run in other directories */
    char ml_root_buf[FS_PATH_BYTES];
    struct plan_options plan;
};

/* What `train`, `bench` and `validate` launch with. */
/* What runs before the program (SAGERUN_PREFLIGHT, --preflight; preflight.h). */
enum preflight_level { PREFLIGHT_OFF, PREFLIGHT_QUICK, PREFLIGHT_FULL };

struct launch_options {
    struct job_options job;
    enum bind_policy bind;
    int stop_grace_s;
    bool mpirun;                        /* --launcher mpirun */
    enum preflight_level preflight;
    int rendezvous_port_shift;          /* 1 for the preflight's own session: it must not meet the program's */
    const char *bind_flag, *grace_flag; /* as given, until launch_options_finish */
};

/* Defaults: ML root from SAGERUN_ML_ROOT (else /opt/ml), NVML library from
 * SAGERUN_NVML_LIBRARY. */
void job_options_init(struct job_options *o);

/* Sets the ML root, made absolute against the working directory once, here:
 * a relative root would mean something else in a rank that runs in the
 * program's own directory. */
void job_options_set_root(struct job_options *o, const char *path);

/* Handles --ml-root, --nproc-per-host, --master-port. */
int job_options_parse(struct job_options *o, int opt, const char *value, struct sr_error *err);

/* Takes SAGERUN_NPROC_PER_HOST and SAGERUN_MASTER_PORT for what the
 * command line did not set. Errors name the variable. */
int job_options_finish(struct job_options *o, struct sr_error *err);

/* The job options plus --bind and --stop-grace. */
void launch_options_init(struct launch_options *o);
int launch_options_parse(struct launch_options *o, int opt, const char *value, struct sr_error *err);
int launch_options_finish(struct launch_options *o, struct sr_error *err);

/* Binding policy and stop grace from their flag values (NULL: not given),
 * else SAGERUN_BIND and SAGERUN_STOP_GRACE, else numa and the default. */
int launch_settings(const char *bind_flag, const char *grace_flag, enum bind_policy *bind, int *stop_grace_s,
                    struct sr_error *err);

/* Checks argv (argv[0]: the command's name) against getopt_long's `table`
 * before getopt_long sees it, up to a "--" (and, with stop_at_operand, up to
 * the first argument that is not an option). getopt_long takes any
 * unambiguous prefix (--nproc for --nproc-per-host) and names its errors
 * after argv[0]; here an option must be written out in full, a short one is
 * unknown (no command has any), and every complaint starts
 * "sagerun: <command>:". Returns 0, or EXIT_USAGE after saying why on stderr;
 * getopt_long's own messages are then off (opterr = 0). */
int options_check(int argc, char **argv, const struct option *table, bool stop_at_operand);

/* The job a command works on. */
struct job {
    struct contract contract;
    struct encryption_decision encryption; /* made once, here (tls.h) */
    struct plan plan;
};

/* Reads the job under o->ml_root, decides encryption, plans this host. */
int job_load(const struct job_options *o, struct job *j, struct sr_error *err);
void job_free(struct job *j);

/* The job's key material as its decision asks (tls_settings_load), from
 * the environment or the job's "tls" channel. */
int job_tls_settings(const struct job *j, struct tls_settings *out, struct sr_error *err);

/* What a launching command does with the job: returns < 0 when nothing
 * could be launched (err set), else the exit status (err set when a rank
 * failed). */
typedef int (*job_runner)(struct job *j, void *ctx, struct sr_error *err);

/* Loads the job, runs `run`, and reports a failure as every launching
 * command does. Returns the command's exit status. */
int command_run_job(const struct launch_options *o, job_runner run, void *ctx);

/* Prints "sagerun: <message>" and writes the failure file under ml_root;
 * returns EXIT_JOB_FAILED. */
int command_fail(const char *ml_root, const struct sr_error *err);

#endif
