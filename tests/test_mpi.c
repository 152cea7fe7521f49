/* sagerun under OpenMPI on one host: the leader's mpirun starts one sagerun
 * per slot, each acting as the rank MPI numbers it; a failing rank ends the
 * job with its own story in the failure file (told by its slot through the
 * rendezvous, not the SIGTERMs mpirun sends the others); `sagerun env
 * --launcher mpirun` shows the command. The job's only host is named
 * localhost, so mpirun needs no ssh; test_mpi_multihost.c runs two hosts. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

extern char **environ;

static const char *sagerun;

static char *local_job(void)
{
    char *root = test_mkdtemp();
    test_write(root, "input/config/resourceconfig.json", "{\"current_host\": \"localhost\", \"hosts\": [\"localhost\"]}");
    /* 4 ranks on a 2-core machine: mpirun must be told it may oversubscribe. */
    test_write(root, "input/config/hyperparameters.json",
               "{\"sagemaker_mpi_custom_mpi_options\": \"--oversubscribe\", \"lr\": \"0.1\"}");
    test_write(root, "input/config/inputdataconfig.json", "{}");
    return root;
}

static void four_ranks_under_mpirun(void **state)
{
    (void)state;
    char *root = local_job();
    char *argv[] = {(char *)sagerun, "train", "--ml-root", root, "--launcher", "mpirun", "--nproc-per-host", "4",
                    "--", "/bin/sh", "-c",
                    "echo rank $RANK/$WORLD_SIZE local $LOCAL_RANK/$LOCAL_WORLD_SIZE $SM_CURRENT_HOST $*", "sh", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    char *got = test_sorted_lines(r.out, '['); /* mpirun adds notes of its own */
    assert_string_equal(got, "[localhost:0] rank 0/4 local 0/4 localhost --lr 0.1\n"
                             "[localhost:1] rank 1/4 local 1/4 localhost --lr 0.1\n"
                             "[localhost:2] rank 2/4 local 2/4 localhost --lr 0.1\n"
                             "[localhost:3] rank 3/4 local 3/4 localhost --lr 0.1\n");
    free(got);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

static void a_failing_rank_ends_the_mpi_job(void **state)
{
    (void)state;
    char *root = local_job();
    char *argv[] = {(char *)sagerun, "train", "--ml-root", root, "--launcher", "mpirun", "--nproc-per-host", "3",
                    "--", "/bin/sh", "-c", "if [ $RANK = 1 ]; then echo bad batch; exit 5; fi; exec sleep 60", NULL};
    double start = test_now();
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 1); /* under mpirun every host exits 1: the failure file tells the rest */
    assert_true(test_now() - start < 10);
    char failure_path[4200];
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", root);
    char *failure = test_read(failure_path);
    assert_string_equal(failure, "rank 1 (host localhost, local rank 1, no GPU) exited with status 5; last output: "
                                 "bad batch");
    free(failure);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

static void env_shows_the_mpirun_command(void **state)
{
    (void)state;
    char *root = local_job();
    char *argv[] = {(char *)sagerun, "env", "--ml-root", root, "--launcher", "mpirun", "--nproc-per-host", "4", NULL};
    char *env[] = {"SAGERUN_BIND=exclusive", NULL};
    struct run_result r = test_run(argv, env);
    assert_int_equal(r.status, 0);
    char *expected;
    assert_true(asprintf(&expected,
                         "#   mpirun command (the leader runs it): mpirun --allow-run-as-root --host localhost:4 -np 4 "
                         "--bind-to none --map-by slot -mca btl_tcp_if_include eth0 -mca oob_tcp_if_include eth0 "
                         "-mca plm_rsh_no_tree_spawn 1 -mca pml ob1 -mca btl ^openib -mca "
                         "orte_abort_on_non_zero_status 1 -x PATH -x SAGERUN_BIND --oversubscribe %s train --ml-root "
                         "%s --bind exclusive --stop-grace 100 -- <command>\n", sagerun, root) > 0);
    char *line = strstr(r.out, "#   mpirun command");
    assert_non_null(line);
    assert_memory_equal(line, expected, strlen(expected));
    free(expected);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_SAGERUN\n", argv[0]);
        return 2;
    }
    /* mpirun is given the binary's absolute path (/proc/self/exe). */
    sagerun = realpath(argv[1], NULL);
    /* The mpirun command passes on every SAGERUN_* variable (-x): start
     * from none, whatever the caller's environment holds. */
    for (size_t i = 0; environ[i];) {
        char name[256];
        size_t len = strcspn(environ[i], "=");
        if (strncmp(environ[i], "SAGERUN_", 8) == 0 && len < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)len, environ[i]);
            unsetenv(name); /* environ shifts: look at index i again */
        } else {
            i++;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(four_ranks_under_mpirun),
        cmocka_unit_test(a_failing_rank_ends_the_mpi_job),
        cmocka_unit_test(env_shows_the_mpirun_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
