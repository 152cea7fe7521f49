/* commands.h — the sagerun subcommands, which main.c dispatches to.
 *
 * SageMaker starts a training image as `<entrypoint> train`; with
 * ENTRYPOINT ["sagerun"] that argument selects cmd_train. Each command
 * parses its own options (argv[0] is the command's name) and returns the
 * process exit status, reporting bad job input through command_fail()
 * (options.h).
 */
#ifndef SAGERUN_COMMANDS_H
#define SAGERUN_COMMANDS_H

enum exit_status { EXIT_OK = 0, EXIT_JOB_FAILED = 1, EXIT_USAGE = 2 };

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
