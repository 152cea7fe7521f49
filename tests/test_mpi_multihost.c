/* Users' MPI programs on two hosts under `sagerun train --launcher mpirun`:
 * each host a network namespace (tests/netns/cluster.sh) with its own sshd,
 * its own /opt/ml tree (bind-mounted at one path in its own mount
 * namespace, as each container has /opt/ml) and its own sagerun, started
 * apart as SageMaker starts hosts. mpirun reaches algo-2 over real ssh
 * (key login, plm_rsh_agent = ssh with the test's key). Covers: a C MPI
 * program and an mpi4py one all-reducing over 4 ranks with the worker
 * starting 5 s after the leader; a worker that never starts; a worker
 * whose sshd never answers; rank 3 failing on algo-2 (both hosts fail with
 * its story); one host stopped, named by the other.
 *
 * Needs root, iproute2 and sshd; without them it says so and is skipped. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define SSHD "/usr/sbin/sshd"

static const char *sagerun, *mpi_check, *cluster_sh, *mpi4py_python;

struct job {
    char *dir;
    char ml[4200];   /* each host's own tree appears here, in its own mount namespace */
    char agent[4400]; /* ssh with the test's key: mpirun's plm_rsh_agent */
    int sshd[3], host[3];
    char log[3][4300], sshd_log[3][4300];
};

static void run_or_fail(char *const *argv)
{
    struct run_result r = test_run(argv, NULL);
    if (r.status != 0)
        fail_msg("%s exited %d: %s%s", argv[0], r.status, r.out, r.err);
    run_result_free(&r);
}

static void cluster(const char *action)
{
    char *argv[] = {"/bin/sh", (char *)cluster_sh, (char *)action, "2", NULL};
    run_or_fail(argv);
}

/* A two-host sample job (encryption on: the rendezvous and the slots'
 * reports go over TLS), keys for ssh, and the cluster. */
static void job_create(struct job *j)
{
    memset(j, 0, sizeof *j);
    j->dir = test_mkdtemp();
    char *sample[] = {(char *)sagerun, "sample", "--out", j->dir, "--hosts", "2", NULL};
    run_or_fail(sample);
    snprintf(j->ml, sizeof j->ml, "%s/ml", j->dir);
    char keys[4300], host_key[4400], client_key[4400], authorized[4400];
    snprintf(keys, sizeof keys, "%s/ssh", j->dir);
    snprintf(host_key, sizeof host_key, "%s/host_key", keys);
    snprintf(client_key, sizeof client_key, "%s/client_key", keys);
    snprintf(authorized, sizeof authorized, "%s/authorized_keys", keys);
    char *mk[] = {"/bin/mkdir", "-p", j->ml, keys, "/run/sshd", NULL};
    run_or_fail(mk);
    char *gen_host[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key, NULL};
    char *gen_client[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", client_key, NULL};
    run_or_fail(gen_host);
    run_or_fail(gen_client);
    char pub[4500];
    snprintf(pub, sizeof pub, "%s.pub", client_key);
    char *key = test_read(pub);
    test_write(keys, "authorized_keys", key);
    free(key);
    snprintf(j->agent, sizeof j->agent,
             "ssh -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
             "-o LogLevel=ERROR", client_key);
    cluster("up");
}

/* Runs `cmd` (a shell command line) as on host i: in its network
 * namespace, with its host name (UTS namespace), its own /dev/shm (MPI's
 * shared-memory segments are named by host name) and its ML root mounted
 * at j->ml, as a container has them. */
static int in_host(struct job *j, int i, const char *cmd, char *const *env, const char *log)
{
    char ns[16], script[9000];
    snprintf(ns, sizeof ns, "algo-%d", i);
    snprintf(script, sizeof script,
             "mount --bind '%s/algo-%d' '%s' && mount -t tmpfs shm /dev/shm && hostname %s && exec %s", j->dir, i,
             j->ml, ns, cmd);
    char *argv[] = {"ip", "netns", "exec", ns, "unshare", "--uts", "--mount", "--", "/bin/sh", "-c", script, NULL};
    return test_spawn(argv, env, log);
}

static void start_sshd(struct job *j, int i)
{
    /* Sessions get sshd's environment, not the test's: the sanitizer runs'
     * hwloc setting (tests/CMakeLists.txt) must reach the slots mpirun
     * starts over ssh, as a container's sshd would carry its settings. */
    char cmd[9000], session_env[300] = "";
    const char *hwloc = getenv("HWLOC_COMPONENTS");
    if (hwloc)
        snprintf(session_env, sizeof session_env, " -o SetEnv=HWLOC_COMPONENTS=%s", hwloc);
    snprintf(cmd, sizeof cmd,
             SSHD " -D -e -f /dev/null -o HostKey=%s/ssh/host_key -o AuthorizedKeysFile=%s/ssh/authorized_keys "
             "-o StrictModes=no -o UsePAM=no -o PidFile=none -o PermitRootLogin=prohibit-password%s", j->dir, j->dir,
             session_env);
    snprintf(j->sshd_log[i], sizeof j->sshd_log[i], "%s/sshd-%d.log", j->dir, i);
    j->sshd[i] = in_host(j, i, cmd, NULL, j->sshd_log[i]);
}

/* Host i's `sagerun train --launcher mpirun` with 2 ranks running `program`. */
static void start_sagerun(struct job *j, int i, const char *program, char *const *env)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' train --ml-root '%s' --launcher mpirun --nproc-per-host 2 -- %s", sagerun, j->ml,
             program);
    snprintf(j->log[i], sizeof j->log[i], "%s/algo-%d.log", j->dir, i);
    j->host[i] = in_host(j, i, cmd, env, j->log[i]);
}

/* Both hosts, each with its sshd; the worker `late_s` after the leader. */
static void start_job(struct job *j, const char *program, double late_s, char *const *env)
{
    start_sshd(j, 1);
    start_sagerun(j, 1, program, env);
    usleep((useconds_t)(late_s * 1e6));
    start_sshd(j, 2);
    start_sagerun(j, 2, program, env);
}

static char *failure_of(struct job *j, int i)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/algo-%d/output/failure", j->dir, i);
    return test_read(path);
}

static void job_destroy(struct job *j)
{
    for (int i = 1; i <= 2; i++)
        if (j->sshd[i] > 0) {
            kill(j->sshd[i], SIGTERM);
            test_wait(j->sshd[i]);
        }
    cluster("down");
    test_rmtree(j->dir);
    free(j->dir);
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void expect_ok(struct job *j, int i)
{
    int status = test_wait(j->host[i]);
    if (status != 0) { /* the whole log: cmocka's message would cut it */
        char *log = test_read(j->log[i]), *sshd = test_read(j->sshd_log[i]);
        fprintf(stderr, "algo-%d exited %d:\n%s\nsshd:\n%s\n", i, status, log, sshd ? sshd : "");
        fail_msg("algo-%d exited %d (its log above)", i, status);
    }
}

static void the_agent(struct job *j, char *env, size_t size)
{
    snprintf(env, size, "OMPI_MCA_plm_rsh_agent=%s", j->agent);
}

/* The worker starts 5 s after the leader: mpirun waits for it, then every
 * rank of the C program and of the mpi4py one passes its all-reduce. */
static void programs_run_when_the_worker_starts_late(void **state)
{
    (void)state;
    struct job j;
    job_create(&j);
    char agent[4500];
    the_agent(&j, agent, sizeof agent);
    char *env[] = {agent, NULL};
    start_job(&j, mpi_check, 5.0, env);
    expect_ok(&j, 1);
    expect_ok(&j, 2);
    char *log = test_read(j.log[1]);
    for (int r = 0; r < 4; r++) {
        char want[64];
        snprintf(want, sizeof want, "mpi check: rank %d of 4 on algo-%d passed", r, r / 2 + 1);
        if (!strstr(log, want))
            fail_msg("no \"%s\" in the leader's log:\n%s", want, log);
    }
    assert_non_null(strstr(log, "sagerun: every host is reachable; starting mpirun for 4 ranks on 2 hosts"));
    assert_non_null(strstr(log, "MPI's own traffic between hosts"));
    free(log);
    job_destroy(&j);

    if (!mpi4py_python[0]) {
        printf("note: no Python with mpi4py given (SAGERUN_MPI4PY_PYTHON): the mpi4py job was not run\n");
        return;
    }
    job_create(&j);
    the_agent(&j, agent, sizeof agent);
    char program[4600];
    snprintf(program, sizeof program,
             "'%s' -c 'import os; from mpi4py import MPI; c = MPI.COMM_WORLD; n = c.Get_size(); "
             "s = c.allreduce(c.Get_rank() + 1); assert s == n * (n + 1) // 2, s; "
             "print(\"mpi4py check: rank %%d of %%d on %%s passed\" %% (c.Get_rank(), n, os.environ[\"SM_CURRENT_HOST\"]))'",
             mpi4py_python);
    start_job(&j, program, 5.0, env);
    expect_ok(&j, 1);
    expect_ok(&j, 2);
    log = test_read(j.log[1]);
    assert_int_equal(count(log, "mpi4py check: rank "), 4);
    assert_non_null(strstr(log, "mpi4py check: rank 3 of 4 on algo-2 passed"));
    free(log);
    job_destroy(&j);
}

/* No worker at all: the leader fails at the join deadline, naming it. */
static void a_worker_that_never_starts_is_named(void **state)
{
    (void)state;
    struct job j;
    job_create(&j);
    char agent[4500];
    the_agent(&j, agent, sizeof agent);
    char *env[] = {agent, "SAGERUN_JOIN_TIMEOUT=4", NULL};
    start_sshd(&j, 1);
    double start = test_now();
    start_sagerun(&j, 1, mpi_check, env);
    assert_int_equal(test_wait(j.host[1]), 1);
    assert_true(test_now() - start < 30);
    char *failure = failure_of(&j, 1);
    if (!failure || !strstr(failure, "hosts that never joined within 4 s: algo-2"))
        fail_msg("the leader's failure: %s", failure ? failure : "(none)");
    free(failure);
    job_destroy(&j);
}

/* The worker joins but its sshd never starts: both hosts fail naming it
 * and what the leader saw (no plm_rsh_agent: ssh's port 22). */
static void a_worker_mpirun_cannot_reach_fails_the_job(void **state)
{
    (void)state;
    struct job j;
    job_create(&j);
    char *env[] = {"SAGERUN_MPI_WAIT=3", NULL};
    start_sshd(&j, 1);
    start_sagerun(&j, 1, mpi_check, env);
    start_sagerun(&j, 2, mpi_check, env);
    const char *want = "mpirun cannot start ranks on algo-2: not reachable within 3 s (SAGERUN_MPI_WAIT=3): ssh's "
                       "port 22 on algo-2: ";
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(test_wait(j.host[i]), 1);
        char *failure = failure_of(&j, i);
        if (!failure || strncmp(failure, want, strlen(want)) != 0 || !strstr(failure, "refused"))
            fail_msg("algo-%d's failure: %s", i, failure ? failure : "(none)");
        free(failure);
    }
    job_destroy(&j);
}

/* Rank 3 (algo-2's second) fails of itself; mpirun then stops the rest.
 * Both hosts end 1 with rank 3's story, word for word. */
static void the_failing_rank_is_named_on_every_host(void **state)
{
    (void)state;
    struct job j;
    job_create(&j);
    char agent[4500];
    the_agent(&j, agent, sizeof agent);
    char *env[] = {agent, NULL};
    char program[4400];
    snprintf(program, sizeof program,
             "/bin/sh -c 'if [ $RANK = 3 ]; then echo bad shard 17; exit 3; fi; exec \"$0\"' '%s'", mpi_check);
    start_job(&j, program, 0.5, env);
    const char *want = "rank 3 (host algo-2, local rank 1, no GPU) exited with status 3; last output: bad shard 17";
    for (int i = 1; i <= 2; i++) {
        int status = test_wait(j.host[i]);
        char *failure = failure_of(&j, i), *log = test_read(j.log[i]);
        if (status != 1 || !failure || strcmp(failure, want) != 0)
            fail_msg("algo-%d exited %d, failure: %s\n%s", i, status, failure ? failure : "(none)", log);
        free(failure), free(log);
    }
    job_destroy(&j);
}

/* SIGTERM reaches algo-2's sagerun alone: the leader ends naming the stop. */
static void one_stopped_host_is_named_under_mpirun(void **state)
{
    (void)state;
    struct job j;
    job_create(&j);
    char agent[4500];
    the_agent(&j, agent, sizeof agent);
    char *env[] = {agent, NULL};
    start_job(&j, "/bin/sh -c 'echo up; exec sleep 60'", 0.5, env);
    double until = test_now() + 60;
    char *log = NULL;
    while (test_now() < until && count(log = test_read(j.log[1]), "] up") < 4) {
        free(log);
        log = NULL;
        usleep(100000);
    }
    free(log);
    assert_true(test_wait_for_text(j.log[2], "waiting for the job to end", 5));
    kill(j.host[2], SIGTERM);
    assert_int_equal(test_wait(j.host[2]), 0);
    assert_int_equal(test_wait(j.host[1]), 1);
    char *failure = failure_of(&j, 1);
    if (!failure || strcmp(failure, "host algo-2 was stopped (SIGTERM)") != 0)
        fail_msg("the leader's failure: %s", failure ? failure : "(none)");
    free(failure);
    job_destroy(&j);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: test_mpi_multihost SAGERUN MPI_CHECK CLUSTER_SH MPI4PY_PYTHON|\"\"\n");
        return 2;
    }
    sagerun = argv[1], mpi_check = argv[2], cluster_sh = argv[3], mpi4py_python = argv[4];
    if (geteuid() != 0 || access(SSHD, X_OK) != 0) {
        printf("SKIPPED: MPI across hosts needs root, iproute2 and " SSHD "\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(programs_run_when_the_worker_starts_late),
        cmocka_unit_test(a_worker_that_never_starts_is_named),
        cmocka_unit_test(a_worker_mpirun_cannot_reach_fails_the_job),
        cmocka_unit_test(the_failing_rank_is_named_on_every_host),
        cmocka_unit_test(one_stopped_host_is_named_under_mpirun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
