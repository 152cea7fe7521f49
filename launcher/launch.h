/* launch.h — running a program in every rank of this host.
 *
 * A program is the user's command (after `--` on the command line), else
 * the job's own (SAGEMAKER_PROGRAM or the sagemaker_program
 * hyperparameter, found as sagemaker-training finds it: in a local
 * sagemaker_submit_directory, else <ML root>/code; .py runs with python3,
 * .sh with /bin/sh), else sagerun's built-in GPT trainer. A user's program
 * gets the SM_* and torchrun variables and the hyperparameters as
 * --key value arguments, as the toolkit gives an entry point.
 *
 * Every launch takes the job's key material first (fail closed) and NCCL's
 * TLS plugin settings, then either joins the job through the rendezvous
 * (host_session.h) and starts this host's ranks bound nearest their GPUs
 * and supervised (supervisor.h), or, with --launcher mpirun, joins the job
 * and has the leader run mpirun once every host is reachable (mpi_job.h);
 * under mpirun each slot's sagerun runs exactly one rank.
 *
 * Both return < 0 when nothing could be launched (err set), else the
 * launcher's exit status (err set when a rank failed).
 */
#ifndef SAGERUN_LAUNCH_H
#define SAGERUN_LAUNCH_H

#include "error.h"
#include "options.h"

/* `sagerun train`: cmd[cmd_count] is the user's command, or empty. */
int launch_program(struct job *j, const struct launch_options *o, char **cmd, int cmd_count, struct sr_error *err);

/* One of sagerun's own rank programs (cmd[0] this binary, cmd[1] its
 * subcommand: the trainer, bench-rank), always joined through the
 * rendezvous (never under mpirun). */
int launch_builtin_program(struct job *j, const struct launch_options *o, char **cmd, int cmd_count,
                           struct sr_error *err);

#endif
