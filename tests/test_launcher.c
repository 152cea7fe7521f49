/* sagerun train as a launcher, run for real: ranks and their torchrun
 * variables, fail-fast teardown, SIGTERM forwarding and its deadline, ranks
 * dying with a killed launcher, whole lines under load, CPU binding seen
 * from inside the ranks, and the orphans of ranks adopted and reaped. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "binding.h"
#include "test_util.h"

static const char *sagerun, *line_writer, *torch_fixtures;

struct job {
    char *dir;
    char root[4200];    /* the host's ML root */
    char failure[4300]; /* its failure file */
};

static void job_setup(struct job *j, const char *host)
{
    j->dir = test_mkdtemp();
    /* One host: jobs of several hosts are tested in network namespaces (test_multihost). */
    char *argv[] = {(char *)sagerun, "sample", "--out", j->dir, "--hosts", "1", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    snprintf(j->root, sizeof j->root, "%s/%s", j->dir, host);
    snprintf(j->failure, sizeof j->failure, "%s/output/failure", j->root);
}

static void job_teardown(struct job *j)
{
    test_rmtree(j->dir);
    free(j->dir);
}

static void ranks_get_torchrun_variables(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", "2", "--",
                    "/bin/sh", "-c",
                    "echo $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $GROUP_RANK $MASTER_ADDR $MASTER_PORT "
                    "$SM_CURRENT_HOST $NCCL_SOCKET_IFNAME \"$1\"", "sh", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    char *got = test_sorted_lines(r.out, 0);
    /* $1 is the first user argument: the hyperparameters follow the command. */
    assert_string_equal(got, "[algo-1:0] 0 0 2 2 0 algo-1 7777 algo-1 eth0 --batch_size\n"
                             "[algo-1:1] 1 1 2 2 0 algo-1 7777 algo-1 eth0 --batch_size\n");
    free(got);
    run_result_free(&r);
    job_teardown(&j);
}

/* Waits until `count` files named <dir>/ready.<n> exist; returns their pids. */
static void wait_ready(const char *dir, int count, int *pids)
{
    double until = test_now() + 10;
    for (int i = 0; i < count; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/ready.%d", dir, i);
        char *text;
        while (!(text = test_read(path)) || !strchr(text, '\n')) {
            free(text);
            if (test_now() > until)
                fail_msg("rank %d did not start", i);
            usleep(10000);
        }
        pids[i] = atoi(text);
        free(text);
    }
}

/* Starts `sagerun train` on algo-1 with `nproc` ranks (plus `options`, a
 * NULL-terminated list of flags); each rank runs the shell `traps` (so they
 * are set before anyone signals it), announces itself in
 * <dir>/ready.<local rank>, then runs `body`. Waits for all of them and
 * returns the launcher's pid, the ranks' pids in `pids`, output in out.log. */
static int start_job(struct job *j, int nproc, const char *const *options, const char *traps, const char *body,
                     int *pids)
{
    char script[8192], nproc_text[16], out_path[4300];
    snprintf(script, sizeof script,
             "%s; echo $$ > %s/ready.$LOCAL_RANK.tmp && mv %s/ready.$LOCAL_RANK.tmp %s/ready.$LOCAL_RANK; %s",
             traps ? traps : ":", j->dir, j->dir, j->dir, body);
    snprintf(nproc_text, sizeof nproc_text, "%d", nproc);
    snprintf(out_path, sizeof out_path, "%s/out.log", j->dir);
    char *argv[32] = {(char *)sagerun, "train", "--ml-root", j->root, "--nproc-per-host", nproc_text};
    int n = 6;
    for (const char *const *o = options; o && *o; o++)
        argv[n++] = (char *)*o;
    argv[n++] = "--";
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n] = NULL;
    int launcher = test_spawn(argv, NULL, out_path);
    wait_ready(j->dir, nproc, pids);
    return launcher;
}

static void a_killed_rank_stops_the_others_fast(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    char body[4600];
    snprintf(body, sizeof body,
             "echo up; if [ $LOCAL_RANK = 1 ]; then sleep 0.5; echo going down; date +%%s.%%N > %s/died; "
             "kill -9 $$; fi; exec sleep 60", j.dir);
    int pids[3];
    int launcher = start_job(&j, 3, NULL, NULL, body, pids);
    assert_int_equal(test_wait(launcher), 137);
    /* From rank 1's death (the time it wrote just before kill -9) to the
     * launcher's exit, when every rank is reaped. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char died_path[4300];
    snprintf(died_path, sizeof died_path, "%s/died", j.dir);
    char *died = test_read(died_path);
    assert_non_null(died);
    double elapsed = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - atof(died);
    free(died);
    assert_true(elapsed < 5.0);
    for (int i = 0; i < 3; i++)
        assert_true(test_process_gone(pids[i]));
    char *failure = test_read(j.failure);
    assert_string_equal(failure, "rank 1 (host algo-1, local rank 1, no GPU) was killed by signal SIGKILL; "
                                 "last output: up | going down");
    printf("teardown: all ranks gone and launcher exited %.3f s after rank 1 was killed\n", elapsed);
    free(failure);
    job_teardown(&j);
}

static void sigterm_is_forwarded(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    int pids[2];
    int launcher = start_job(&j, 2, NULL, "trap 'echo checkpoint saved; exit 0' TERM", "sleep 60 & wait", pids);
    char out_path[4300];
    snprintf(out_path, sizeof out_path, "%s/out.log", j.dir);
    kill(launcher, SIGTERM);
    assert_int_equal(test_wait(launcher), 0); /* the ranks exited 0, so does the job */
    char *out = test_read(out_path);
    assert_non_null(strstr(out, "[algo-1:0] checkpoint saved\n"));
    assert_non_null(strstr(out, "[algo-1:1] checkpoint saved\n"));
    assert_null(test_read(j.failure));
    free(out);
    job_teardown(&j);
}

static void stop_grace_ends_with_sigkill(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    static const char *const grace[] = {"--stop-grace", "1", NULL};
    int pid;
    int launcher = start_job(&j, 1, grace, "trap 'echo ignoring TERM' TERM", "while :; do sleep 0.05; done", &pid);
    double start = test_now();
    kill(launcher, SIGTERM);
    assert_int_equal(test_wait(launcher), 137);
    double elapsed = test_now() - start;
    assert_true(elapsed >= 1.0 && elapsed < 3.0);
    char *failure = test_read(j.failure);
    assert_non_null(strstr(failure, "stopped by SIGTERM: rank 0 (host algo-1, local rank 0, no GPU) was killed by "
                                    "signal SIGKILL; last output: "));
    assert_non_null(strstr(failure, "ignoring TERM"));
    free(failure);
    job_teardown(&j);
}

static void ranks_die_with_a_killed_launcher(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    int pids[2];
    int launcher = start_job(&j, 2, NULL, NULL, "exec sleep 60", pids);
    kill(launcher, SIGKILL);
    assert_int_equal(test_wait(launcher), 128 + SIGKILL);
    double until = test_now() + 5;
    while ((!test_process_gone(pids[0]) || !test_process_gone(pids[1])) && test_now() < until)
        usleep(10000);
    assert_true(test_process_gone(pids[0]));
    assert_true(test_process_gone(pids[1]));
    job_teardown(&j);
}

/* 8 ranks x 100,000 lines written in chunks that cut lines anywhere: every
 * output line must be one whole line of one rank, in order, none lost. */
static void lines_are_never_torn(void **state)
{
    (void)state;
    enum { RANKS = 8, LINES = 100000 };
    struct job j;
    job_setup(&j, "algo-1");
    char count[16];
    snprintf(count, sizeof count, "%d", LINES);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", "8", "--", "/bin/sh", "-c",
                    "exec \"$0\" $LOCAL_RANK \"$1\"", (char *)line_writer, count, NULL};
    char out_path[4300];
    snprintf(out_path, sizeof out_path, "%s/out.log", j.dir);
    int launcher = test_spawn(argv, NULL, out_path);
    assert_int_equal(test_wait(launcher), 0);
    FILE *f = fopen(out_path, "r");
    assert_non_null(f);
    long next[RANKS] = {0}, bad = 0, total = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int tag_rank, rank;
        long seq;
        char payload[200];
        unsigned sum, check = 0;
        if (strncmp(line, "sagerun: ", 9) == 0)
            continue; /* the launcher's own lines (joining the job), whole lines too */
        total++;
        /* the hyperparameters arrive as arguments after "$1": ignored by line_writer */
        if (sscanf(line, "[algo-1:%d] w%d %ld %199s %u\n", &tag_rank, &rank, &seq, payload, &sum) != 5 ||
            tag_rank != rank || rank < 0 || rank >= RANKS || seq != next[rank]) {
            if (bad++ < 3)
                printf("bad line: %s", line);
            continue;
        }
        for (const char *p = payload; *p; p++)
            check += (unsigned char)*p;
        if (check != sum && bad++ < 3)
            printf("corrupt line: %s", line);
        next[rank]++;
    }
    fclose(f);
    assert_int_equal(bad, 0);
    assert_int_equal(total, (long)RANKS * LINES);
    for (int r = 0; r < RANKS; r++)
        assert_int_equal(next[r], LINES);
    job_teardown(&j);
}

/* What each rank sees with sched_getaffinity equals sagerun's plan. */
static void ranks_run_on_their_planned_cpus(void **state)
{
    (void)state;
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    assert_int_equal(topology_open(&topo, NULL, &err), 0);
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int ranks = cores >= 2 ? 2 : 1;
    struct gpu_inventory none = {.count = 0};
    struct binding_plan plan;
    assert_int_equal(binding_plan_build(topo, &none, ranks, BIND_EXCLUSIVE, &plan, &err), 0);
    struct job j;
    job_setup(&j, "algo-1");
    char nproc[8];
    snprintf(nproc, sizeof nproc, "%d", ranks);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", nproc, "--bind",
                    "exclusive", "--", "/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status", NULL};
    char *env[] = {"SAGERUN_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1", NULL};
    struct run_result r = test_run(argv, env);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < ranks; i++) {
        char *cpus = NULL, expected[256];
        hwloc_bitmap_list_asprintf(&cpus, plan.ranks[i].cpuset);
        snprintf(expected, sizeof expected, "[algo-1:%d] Cpus_allowed_list:\t%s\n", i, cpus);
        if (!strstr(r.out, expected))
            fail_msg("expected \"%s\" in:\n%s", expected, r.out);
        free(cpus);
    }
    run_result_free(&r);
    binding_plan_free(&plan);
    hwloc_topology_destroy(topo);
    job_teardown(&j);
}

/* Children of `parent` named `comm`, alive or zombies (state Z). */
static void count_children(int parent, const char *comm, int *alive, int *zombies)
{
    *alive = *zombies = 0;
    DIR *proc = opendir("/proc");
    assert_non_null(proc);
    for (struct dirent *d; (d = readdir(proc));) {
        char path[300], line[512];
        snprintf(path, sizeof path, "/proc/%s/stat", d->d_name);
        FILE *f = d->d_name[0] >= '0' && d->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        char *open = NULL, *close = NULL;
        if (fgets(line, sizeof line, f)) {
            open = strchr(line, '(');
            close = strrchr(line, ')');
        }
        fclose(f);
        char state;
        int ppid;
        if (!open || !close || sscanf(close + 1, " %c %d", &state, &ppid) != 2 || ppid != parent)
            continue;
        if (state == 'Z')
            (*zombies)++; /* a zombie's comm may still be the program's */
        else if ((size_t)(close - open - 1) == strlen(comm) && strncmp(open + 1, comm, strlen(comm)) == 0)
            (*alive)++;
    }
    closedir(proc);
}

/* Orphans a rank leaves (here 100 double-forked sleeps) come to sagerun, a
 * child subreaper when it is not PID 1, which reaps them: none is left a
 * zombie, and none is taken for a rank, so the job ends with the rank's
 * own status. */
static void orphans_are_adopted_and_reaped(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    int pids[1];
    int launcher = start_job(&j, 1, NULL, NULL,
                             "for i in $(seq 100); do (sleep 4 &); done; echo forked; sleep 6; exit 7", pids);
    char out[4300];
    snprintf(out, sizeof out, "%s/out.log", j.dir);
    assert_true(test_wait_for_text(out, "forked", 30));
    int alive, zombies;
    count_children(launcher, "sleep", &alive, &zombies);
    assert_int_equal(alive, 100); /* adopted: orphans came to sagerun, not to PID 1 */
    double until = test_now() + 20;
    while (alive > 0 && test_now() < until) {
        usleep(100000);
        count_children(launcher, "sleep", &alive, &zombies);
    }
    assert_int_equal(alive, 0);
    for (int i = 0; i < 10; i++) { /* every one that ended was reaped */
        count_children(launcher, "sleep", &alive, &zombies);
        assert_int_equal(zombies, 0);
        usleep(50000);
    }
    assert_int_equal(test_wait(launcher), 7);
    job_teardown(&j);
}

/* A relative --ml-root is made absolute once, where it is parsed: the job's
 * program (found in <root>/code and run there) and every SM_* path still
 * point where they should. */
static void relative_ml_root_is_made_absolute(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    test_write(j.root, "code/train.sh", "echo \"model=$SM_MODEL_DIR cwd=$(pwd)\"\n");
    test_write(j.root, "input/config/hyperparameters.json", "{\"sagemaker_program\": \"train.sh\"}");
    char cwd[4200], want[8800];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(j.dir), 0);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", "algo-1", "--nproc-per-host", "1", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(chdir(cwd), 0);
    if (r.status != 0)
        fail_msg("sagerun train --ml-root algo-1 exited %d: %s", r.status, r.err);
    snprintf(want, sizeof want, "model=%s/model cwd=%s/code", j.root, j.root);
    if (!strstr(r.out, want))
        fail_msg("the program said \"%s\", not \"%s\"", r.out, want);
    run_result_free(&r);
    job_teardown(&j);
}

/* A Python rank that fails under torch's @record: its error file holds what
 * a real torch 2.15 wrote for a ValueError (fixtures/torch/record-error.json,
 * made by capture.sh); the failure reason carries the exception and the
 * line that raised it, before the last lines of output. */
static void a_ranks_error_file_reaches_the_failure(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    test_write(j.root, "code/train.py",
               "import os, shutil, sys\n"
               "shutil.copy(sys.argv[1], os.environ['TORCHELASTIC_ERROR_FILE'])\n"
               "print('ValueError: batch 17 has 3 columns, the model wants 4', file=sys.stderr)\n"
               "sys.exit(1)\n");
    char record[4300];
    snprintf(record, sizeof record, "%s/record-error.json", torch_fixtures);
    test_write(j.root, "input/config/hyperparameters.json", "{\"sagemaker_program\": \"train.py\"}");
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", "1", "--", "python3",
                    "code/train.py", record, NULL};
    char cwd[4300];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(j.root), 0);
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(r.status, 1);
    char *failure = test_read(j.failure);
    const char *want = "rank 0 (host algo-1, local rank 0, no GPU) exited with status 1; error: ValueError: batch 17 "
                       "has 3 columns, the model wants 4 (File \"/work/main/tests/fixtures/torch/fail.py\", line 5, "
                       "in load_batch); last output: ValueError: batch 17 has 3 columns, the model wants 4";
    if (!failure || strcmp(failure, want) != 0)
        fail_msg("the failure file says \"%s\", not \"%s\"", failure ? failure : "(none)", want);
    free(failure);
    run_result_free(&r);
    job_teardown(&j);
}

/* A rank's environment against a real torchrun's for the same layout
 * (fixtures/torch/torchrun-1x2-rank1.json: `torchrun --nnodes 1
 * --nproc-per-node 2`, rank 1): every variable torchrun gives a worker,
 * sagerun gives too, with the same value, except those below, each for
 * the reason given (rank_env.h). */
static void ranks_match_a_real_torchrun(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    char dump[4300], fixture[4300], mine[4400];
    snprintf(dump, sizeof dump, "%s/dump_env.py", torch_fixtures);
    snprintf(fixture, sizeof fixture, "%s/torchrun-1x2-rank1.json", torch_fixtures);
    snprintf(mine, sizeof mine, "%s/rank-1.json", j.dir);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", "2", "--bind", "none", "--",
                    "python3", dump, j.dir, NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    json_error_t jerr;
    json_t *torchrun = json_load_file(fixture, 0, &jerr), *ours = json_load_file(mine, 0, &jerr);
    assert_non_null(torchrun);
    assert_non_null(ours);
    /* name, sagerun's value (NULL: any), why it differs */
    const char *differ[][3] = {
        {"MASTER_ADDR", "algo-1", "the job's first host, not torchrun's localhost"},
        {"MASTER_PORT", "7777", "the port SageMaker's toolkit uses; torchrun picked a free one"},
        {"TORCHELASTIC_ERROR_FILE", NULL, "a file of the rank's own in each launcher's own directory"},
        {"TORCHELASTIC_RUN_ID", "sagerun-sample", "the job's name"},
        {"TORCHELASTIC_USE_AGENT_STORE", "False", "no agent serves a TCPStore: rank 0 does"},
        {"TORCHELASTIC_SIGNALS_TO_HANDLE", "SIGTERM,SIGINT", "the stops sagerun forwards"},
        {"OMP_NUM_THREADS", NULL, "the CPUs of the rank, not 1"},
    };
    const char *launcher_own[] = {"PATH", "HOME", "LC_CTYPE"}; /* capture.sh's env -i, and Python's */
    const char *name;
    json_t *value;
    json_object_foreach(torchrun, name, value) {
        bool skip = false;
        for (size_t i = 0; i < sizeof launcher_own / sizeof *launcher_own; i++)
            skip = skip || strcmp(name, launcher_own[i]) == 0;
        if (skip)
            continue;
        const char *got = json_string_value(json_object_get(ours, name));
        if (!got)
            fail_msg("torchrun sets %s (%s) for its workers; sagerun does not", name, json_string_value(value));
        const char *const *d = NULL;
        for (size_t i = 0; i < sizeof differ / sizeof *differ; i++)
            if (strcmp(differ[i][0], name) == 0)
                d = differ[i];
        if (!d && strcmp(got, json_string_value(value)) != 0)
            fail_msg("%s: torchrun says %s, sagerun %s", name, json_string_value(value), got);
        if (d && d[1] && strcmp(got, d[1]) != 0)
            fail_msg("%s: sagerun says %s, not %s (%s)", name, got, d[1], d[2]);
    }
    assert_true(atoi(json_string_value(json_object_get(ours, "OMP_NUM_THREADS"))) >= 1);
    json_decref(torchrun);
    json_decref(ours);
    run_result_free(&r);
    job_teardown(&j);
}

/* A program that dumps PyTorch's flight recorder where the environment
 * says (as torch does on a collective's timeout) and fails: the dump is
 * kept in output/data/flight-recorder/ and named in the failure reason. */
static void flight_recorder_dumps_are_kept(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--nproc-per-host", "2", "--", "/bin/sh", "-c",
                    "echo trace of $RANK > \"$TORCH_FR_DUMP_TEMP_FILE$RANK\"; [ \"$TORCH_FR_DUMP_ON_TIMEOUT\" = 1 ] && "
                    "[ \"$TORCH_NCCL_DEBUG_INFO_TEMP_FILE\" = \"$TORCH_FR_DUMP_TEMP_FILE\" ] && sleep 1 && exit 4", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 4);
    char *failure = test_read(j.failure), dump[4400];
    if (!failure || !strstr(failure, "; flight recorder: output/data/flight-recorder/ (rank_"))
        fail_msg("the failure says \"%s\"", failure ? failure : "(none)");
    snprintf(dump, sizeof dump, "%s/output/data/flight-recorder/rank_1", j.root);
    char *text = test_read(dump);
    assert_non_null(text);
    assert_string_equal(text, "trace of 1\n");
    free(text), free(failure);
    run_result_free(&r);
    job_teardown(&j);
}

/* The preflight on one host (tests/test_multihost.c has the 3-host one):
 * a host that sees fewer GPUs than its instance type has fails before the
 * program; a CPU instance type passes and the program runs; bad settings
 * (and a bad hang timeout) are errors naming the variable or flag. */
static void preflight_gates_the_program(void **state)
{
    (void)state;
    struct job j;
    job_setup(&j, "algo-1");
    char ran[4300];
    snprintf(ran, sizeof ran, "%s/model/ran", j.root);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", j.root, "--", "/bin/sh", "-c", "touch \"$SM_MODEL_DIR/ran\"",
                    NULL};
    char *quick[] = {"SAGERUN_PREFLIGHT=quick", "OPENBLAS_NUM_THREADS=1", NULL};
    struct run_result r = test_run(argv, quick);
    assert_int_equal(r.status, 1);
    char *failure = test_read(j.failure);
    assert_non_null(failure);
    if (strncmp(failure, "preflight: algo-1 sees 0 of the 8 GPUs of ml.p4d.24xlarge (", 59) != 0)
        fail_msg("the failure says \"%s\"", failure);
    free(failure);
    assert_int_equal(access(ran, F_OK), -1);
    run_result_free(&r);

    /* A CPU type without a built-in baseline: whether this (shared, maybe
     * sanitized) machine reaches a c5's GEMM rate is not what this checks. */
    test_write(j.root, "input/config/resourceconfig.json",
               "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"current_instance_type\": \"ml.c4.2xlarge\"}");
    r = test_run(argv, quick);
    if (r.status != 0)
        fail_msg("exit %d:\n%s", r.status, r.err);
    assert_non_null(strstr(r.err, "sagerun: preflight: algo-1 passed: gemm_fp32_tflops "));
    assert_non_null(strstr(r.err, "sagerun: preflight: all-reduce across the job: "));
    assert_int_equal(access(ran, F_OK), 0);
    char report[4300];
    snprintf(report, sizeof report, "%s/output/data/sagerun-preflight.json", j.root);
    assert_int_equal(access(report, F_OK), 0);
    run_result_free(&r);

    struct {
        char *env, *flag;
        const char *error;
    } bad[] = {
        {"SAGERUN_PREFLIGHT=maybe", NULL, "preflight (SAGERUN_PREFLIGHT): \"maybe\" is not off, quick or full"},
        {"SAGERUN_PREFLIGHT=off", "--preflight=soon", "preflight (--preflight): \"soon\" is not off, quick or full"},
        {"SAGERUN_BENCH_THROTTLE=2", "--preflight=quick", "SAGERUN_BENCH_THROTTLE"},
        {"SAGERUN_HANG_TIMEOUT=soon", NULL, "environment variable SAGERUN_HANG_TIMEOUT"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *env[] = {bad[i].env, NULL};
        char *args[] = {(char *)sagerun, "train", "--ml-root", j.root, bad[i].flag, "--", "true", NULL};
        if (!bad[i].flag)
            memmove(&args[4], &args[5], 3 * sizeof *args);
        unlink(j.failure); /* a failure before the job starts does not replace an earlier one */
        r = test_run(args, env);
        assert_int_equal(r.status, 1);
        failure = test_read(j.failure);
        if (!failure || !strstr(failure, bad[i].error))
            fail_msg("case %zu: the failure says \"%s\", not \"%s\" (stderr: %s)", i, failure ? failure : "(none)",
                     bad[i].error, r.err);
        free(failure);
        run_result_free(&r);
    }
    job_teardown(&j);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PATH_TO_SAGERUN PATH_TO_LINE_WRITER TORCH_FIXTURES\n", argv[0]);
        return 2;
    }
    sagerun = argv[1];
    line_writer = argv[2];
    torch_fixtures = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranks_get_torchrun_variables),
        cmocka_unit_test(a_killed_rank_stops_the_others_fast),
        cmocka_unit_test(sigterm_is_forwarded),
        cmocka_unit_test(stop_grace_ends_with_sigkill),
        cmocka_unit_test(ranks_die_with_a_killed_launcher),
        cmocka_unit_test(lines_are_never_torn),
        cmocka_unit_test(ranks_run_on_their_planned_cpus),
        cmocka_unit_test(orphans_are_adopted_and_reaped),
        cmocka_unit_test(relative_ml_root_is_made_absolute),
        cmocka_unit_test(a_ranks_error_file_reaches_the_failure),
        cmocka_unit_test(ranks_match_a_real_torchrun),
        cmocka_unit_test(preflight_gates_the_program),
        cmocka_unit_test(flight_recorder_dumps_are_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
