/* The sagerun command line, run as a real process: train runs the user's
 * command with the SM_* environment and the hyperparameters as arguments,
 * env --format json is the same data as the shell form, usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_util.h"
#include "train_config.h"

static const char *sagerun;
static const char *fixtures;
static const char *fake_nvml;
static const char *examples;

static char *fixture(const char *name)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", fixtures, name) > 0);
    return path;
}

/* Writes a sample job of `hosts` hosts into a new directory (returned) and
 * puts the ML root of `host` in root. */
static char *sample_job(const char *hosts, const char *host, char *root, size_t size)
{
    char *dir = test_mkdtemp();
    char *argv[] = {(char *)sagerun, "sample", "--out", dir, "--hosts", (char *)hosts, NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    snprintf(root, size, "%s/%s", dir, host);
    return dir;
}

/* The sample job's hyperparameters as a program gets them (sorted). */
#define SAMPLE_ARGS                                                                                                 \
    "--batch_size 16 --checkpoint_interval 50 --learning_rate 0.003 --log_interval 10 --max_steps 400 --model "    \
    "tiny --seed 1337 --seq_len 64 --val_batches 4 --val_interval 50 --vocab_size 64 --warmup_steps 20"

static void train_runs_command_with_environment_and_arguments(void **state)
{
    (void)state;
    char host_root[4200];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    /* The script prints what a user program sees: identity, data dir, args. */
    char *argv[] = {(char *)sagerun, "train", "--ml-root", host_root, "--",
                    "/bin/sh", "-c", "echo \"$SM_CURRENT_HOST $SM_CURRENT_HOST_RANK $SM_HOST_COUNT $SM_HP_SEED\"; "
                    "echo \"$SM_CHANNEL_TRAIN\"; echo \"$@\"; exit 7", "prog", NULL};
    struct run_result r = test_run(argv, NULL);
    char *expected;
    assert_true(asprintf(&expected,
                         "[algo-1:0] algo-1 0 1 1337\n[algo-1:0] %s/input/data/train\n[algo-1:0] " SAMPLE_ARGS "\n",
                         host_root) > 0);
    assert_string_equal(r.out, expected);
    assert_int_equal(r.status, 7); /* the command's status is the job's */
    char failure_path[4300];
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    char *failure = test_read(failure_path), *want;
    assert_true(asprintf(&want, "rank 0 (host algo-1, local rank 0, no GPU) exited with status 7; last output: "
                                "algo-1 0 1 1337 | %s/input/data/train | " SAMPLE_ARGS, host_root) > 0);
    /* The failure file keeps the start of a long last line. */
    assert_non_null(failure);
    assert_true(strlen(failure) > 200);
    assert_memory_equal(failure, want, strlen(failure));
    free(want);
    free(failure);
    free(expected);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* No command and no program: the built-in trainer, whose settings are
 * checked before any rank starts (the training itself: test_trainer). */
static void train_without_command_checks_builtin_trainer_settings(void **state)
{
    (void)state;
    char host_root[4200], failure_path[4300];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    test_write(host_root, "input/config/hyperparameters.json", "{\"model\": \"tiny\", \"n_embd\": \"90\"}");
    char *argv[] = {(char *)sagerun, "train", NULL};
    char env_root[4300];
    snprintf(env_root, sizeof env_root, "SAGERUN_ML_ROOT=%s", host_root);
    char *env[] = {env_root, NULL};
    struct run_result r = test_run(argv, env);
    assert_int_equal(r.status, 1);
    char *msg;
    assert_true(asprintf(&msg, "%s/input/config/hyperparameters.json: $.n_embd: 90 is not a multiple of n_head (4)",
                         host_root) > 0);
    char *failure = test_read(failure_path);
    assert_non_null(failure);
    assert_string_equal(failure, msg);
    assert_non_null(strstr(r.err, msg));
    assert_null(strstr(r.err, "[algo-1:0]")); /* no rank started */
    free(msg);
    free(failure);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* No command after "--": the job's sagemaker_program runs from <ML root>/code,
 * in that directory, with the user hyperparameters as arguments. */
static void train_runs_the_program_the_job_names(void **state)
{
    (void)state;
    char host_root[4200], code[4300];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(code, sizeof code, "%s/code", host_root);
    test_write(host_root, "code/train.py",
               "import os, sys\nprint(os.getcwd() == sys.argv[0].rsplit('/', 1)[0], os.environ['RANK'], sys.argv[1:3])\n");
    test_write(host_root, "code/train.sh", "echo \"shell $SM_USER_ENTRY_POINT $1 $2\"\n");
    char hp_path[4300];
    snprintf(hp_path, sizeof hp_path, "%s/input/config/hyperparameters.json", host_root);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", host_root, NULL};
    const char *cases[][2] = {
        {"{\"sagemaker_program\": \"train.py\", \"lr\": \"0.1\"}", "[algo-1:0] True 0 ['--lr', '0.1']\n"},
        {"{\"sagemaker_program\": \"train.sh\", \"lr\": \"0.1\"}", "[algo-1:0] shell train.sh --lr 0.1\n"},
    };
    for (size_t i = 0; i < 2; i++) {
        test_write(host_root, "input/config/hyperparameters.json", cases[i][0]);
        struct run_result r = test_run(argv, NULL);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.out, cases[i][1]);
        run_result_free(&r);
    }
    test_write(host_root, "input/config/hyperparameters.json", "{\"sagemaker_program\": \"missing.py\"}");
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 1);
    char *expected;
    assert_true(asprintf(&expected, "sagerun: train: entry point %s/missing.py (program \"missing.py\") cannot be "
                                    "read: No such file or directory; sagerun does not download "
                                    "sagemaker_submit_directory, so put the code in the image or in %s\n",
                         code, code) > 0);
    assert_string_equal(r.err, expected);
    free(expected);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

static void train_reports_a_command_that_cannot_start(void **state)
{
    (void)state;
    char host_root[4200], failure_path[4300];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", host_root, "--", "/nonexistent/train.py", NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 127);
    const char *msg = "rank 0 (host algo-1, local rank 0, no GPU) exited with status 127; last output: "
                      "sagerun: cannot run \"/nonexistent/train.py\": No such file or directory";
    char *failure = test_read(failure_path);
    assert_non_null(failure);
    assert_string_equal(failure, msg);
    free(failure);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* Encryption on and no key material: nothing starts (fail closed); a key
 * that is too short is refused too. The ranks' command would leave a mark. */
static void train_refuses_to_start_without_key_material(void **state)
{
    (void)state;
    char host_root[4200], failure_path[4300], psk[4300], marker[4300];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    snprintf(psk, sizeof psk, "%s/input/data/tls/psk", host_root);
    snprintf(marker, sizeof marker, "touch %s/started", root);
    assert_int_equal(unlink(psk), 0);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", host_root, "--", "/bin/sh", "-c", marker, NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 1);
    char *failure = test_read(failure_path);
    assert_non_null(failure);
    assert_true(strncmp(failure, "inter-container traffic encryption is on but there is no key material", 69) == 0);
    assert_non_null(strstr(r.err, "sagerun does not start unencrypted when encryption is on"));
    free(failure);
    run_result_free(&r);

    char *short_key[] = {"SAGERUN_TLS_PSK=short", NULL};
    unlink(failure_path);
    r = test_run(argv, short_key);
    assert_int_equal(r.status, 1);
    failure = test_read(failure_path);
    assert_string_equal(failure, "TLS key from SAGERUN_TLS_PSK is 5 bytes; a job key needs at least 16");
    free(failure);
    run_result_free(&r);

    char started[4300];
    snprintf(started, sizeof started, "%s/started", root);
    assert_int_not_equal(access(started, F_OK), 0);
    test_rmtree(root);
    free(root);
}

static void json_and_shell_forms_agree(void **state)
{
    (void)state;
    char *root = fixture("homogeneous-2host");
    char *json_argv[] = {(char *)sagerun, "env", "--format", "json", "--ml-root", root, "--nproc-per-host", "4",
                         "--master-port", "29500", NULL};
    char *env[] = {"SAGERUN_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1", NULL};
    struct run_result r = test_run(json_argv, env);
    assert_int_equal(r.status, 0);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    assert_non_null(doc);
    json_t *plan = json_object_get(doc, "plan");
    assert_int_equal(json_integer_value(json_object_get(plan, "world_size")), 8);
    assert_int_equal(json_integer_value(json_object_get(plan, "first_rank")), 4);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "env"), "SM_MASTER_PORT")), "29500");

    char *shell_argv[] = {(char *)sagerun, "env", "--ml-root", root, "--nproc-per-host", "4", "--master-port",
                          "29500", NULL};
    struct run_result s = test_run(shell_argv, env);
    assert_int_equal(s.status, 0);
    assert_non_null(strstr(s.out, "#   this host: ranks 4-7 of world size 8 (--nproc-per-host)\n"));
    /* Every variable appears once in the shell form, with the JSON's value. */
    const char *name;
    json_t *value;
    json_object_foreach(json_object_get(doc, "env"), name, value) {
        char *line;
        assert_true(asprintf(&line, "%s='", name) > 0);
        const char *at = strstr(s.out, line);
        if (!at)
            fail_msg("%s missing from the shell form", name);
        assert_null(strstr(at + 1, line));
        free(line);
    }
    assert_non_null(strstr(s.out, "# not a shell name; set in the environment of ranks: SM_HP_LEARNING-RATE='0.1'\n"));
    json_decref(doc);
    run_result_free(&r);
    run_result_free(&s);
    free(root);
}

/* GPUs reported by the driver become the ranks of this host and of hosts
 * of the same instance type, and are listed with their bus ids. */
/* Encryption on: ranks get NCCL's TLS plugin and the settings that keep
 * NCCL off plaintext; a user's NCCL_NET naming another net, or a plugin
 * that is not there on a GPU host, stops the job. Encryption off: none. */
static void ranks_get_the_nccl_tls_plugin_only_with_encryption(void **state)
{
    (void)state;
    char host_root[4200], failure_path[4300];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    char *argv[] = {(char *)sagerun, "train", "--ml-root", host_root, "--", "/bin/sh", "-c",
                    "echo \"$NCCL_NET|$NCCL_OOB_NET_ENABLE|$NCCL_RAS_ENABLE\"; "
                    "case $NCCL_NET_PLUGIN in /*/libnccl-net-sagerun.so) test -r \"$NCCL_NET_PLUGIN\" && echo found;; esac",
                    NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[algo-1:0] sagerun-tls|1|0\n[algo-1:0] found\n");
    run_result_free(&r);

    char *socket_net[] = {"NCCL_NET=Socket", NULL};
    r = test_run(argv, socket_net);
    assert_int_equal(r.status, 1);
    char *failure = test_read(failure_path);
    assert_non_null(failure);
    assert_non_null(strstr(failure, "NCCL_NET=Socket would carry gradients between hosts in plaintext"));
    free(failure);
    run_result_free(&r);

    char library[4200];
    snprintf(library, sizeof library, "SAGERUN_NVML_LIBRARY=%s", fake_nvml);
    char *no_plugin[] = {library, "FAKE_NVML_GPUS=NVIDIA H100 80GB HBM3@00000000:53:00.0",
                         "SAGERUN_NCCL_NET_PLUGIN=/nonexistent/libnccl-net-sagerun.so", NULL};
    unlink(failure_path);
    r = test_run(argv, no_plugin);
    if (r.status != 1)
        fail_msg("status %d: %s", r.status, r.err);
    failure = test_read(failure_path);
    assert_non_null(failure);
    assert_string_equal(failure, "inter-container traffic encryption is on and this host has GPUs, but "
                                 "SAGERUN_NCCL_NET_PLUGIN=/nonexistent/libnccl-net-sagerun.so: No such file or directory");
    free(failure);
    run_result_free(&r);
    test_rmtree(root);
    free(root);

    char *dir = test_mkdtemp();
    char *plain[] = {(char *)sagerun, "sample", "--out", dir, "--hosts", "1", "--no-encryption", NULL};
    r = test_run(plain, NULL);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    snprintf(host_root, sizeof host_root, "%s/algo-1", dir);
    r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[algo-1:0] ||\n");
    run_result_free(&r);
    test_rmtree(dir);
    free(dir);
}

/* With encryption on, `sagerun env` says what sagerun encrypts between
 * hosts and what it cannot (gloo, MPI's own traffic, the program's own
 * sockets), in both forms; with --launcher mpirun it warns about MPI's. */
static void env_says_what_encryption_covers(void **state)
{
    (void)state;
    char host_root[4200];
    char *root = sample_job("2", "algo-1", host_root, sizeof host_root);
    char *env[] = {"SAGERUN_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1", NULL};
    char *text_argv[] = {(char *)sagerun, "env", "--ml-root", host_root, "--launcher", "mpirun", NULL};
    struct run_result r = test_run(text_argv, env);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "#     encrypted: the rendezvous, the host backend's all-reduce ring, and NCCL "
                                  "between hosts (the sagerun-tls plugin)\n"));
    assert_non_null(strstr(r.out, "#     not encrypted: gloo, MPI's own traffic"));
    assert_non_null(strstr(r.out, "#   warning: encryption is on, but under mpirun MPI's own traffic between hosts"));
    run_result_free(&r);
    char *json_argv[] = {(char *)sagerun, "env", "--ml-root", host_root, "--format", "json", NULL};
    r = test_run(json_argv, env);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    json_t *enc = json_object_get(json_object_get(doc, "plan"), "encryption");
    assert_true(json_is_true(json_object_get(enc, "enabled")));
    assert_non_null(strstr(json_string_value(json_object_get(enc, "not_covered")), "torch's TCP store"));
    json_decref(doc);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

static void gpus_from_the_driver_set_the_ranks(void **state)
{
    (void)state;
    char *root = fixture("homogeneous-2host");
    char *argv[] = {(char *)sagerun, "env", "--format", "json", "--ml-root", root, NULL};
    char library[4200];
    snprintf(library, sizeof library, "SAGERUN_NVML_LIBRARY=%s", fake_nvml);
    char *env[] = {library, "FAKE_NVML_GPUS=NVIDIA A100-SXM4-40GB@00000000:10:1C.0;"
                            "NVIDIA A100-SXM4-40GB@00000000:10:1D.0", NULL};
    struct run_result r = test_run(argv, env);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    json_t *plan = json_object_get(doc, "plan"), *gpus = json_object_get(plan, "gpus");
    assert_int_equal(json_array_size(gpus), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(gpus, 1), "bus_id")), "00000000:10:1D.0");
    assert_string_equal(json_string_value(json_object_get(json_array_get(gpus, 0), "name")), "NVIDIA A100-SXM4-40GB");
    assert_int_equal(json_integer_value(json_object_get(plan, "world_size")), 4);
    assert_int_equal(json_integer_value(json_object_get(plan, "first_rank")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "env"), "SM_NUM_GPUS")), "2");
    /* ml.p4d.24xlarge has 8 GPUs: seeing 2 is worth a warning. */
    assert_non_null(strstr(json_string_value(json_object_get(plan, "warning")), "has 8 GPUs, but this host sees 2"));
    json_decref(doc);
    run_result_free(&r);

    char *failing[] = {library, "FAKE_NVML_GPUS=x@0", "FAKE_NVML_INIT_FAILS=1", NULL};
    r = test_run(argv, failing);
    assert_int_equal(r.status, 0);
    doc = json_loads(r.out, 0, NULL);
    plan = json_object_get(doc, "plan");
    assert_int_equal(json_integer_value(json_object_get(plan, "local_ranks")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(plan, "gpu_source")), "nvmlInit failed: Driver Not Loaded"));
    json_decref(doc);
    run_result_free(&r);
    free(root);
}

static void usage_errors_exit_2(void **state)
{
    (void)state;
    char *a[] = {(char *)sagerun, NULL};
    char *b[] = {(char *)sagerun, "frobnicate", NULL};
    char *c[] = {(char *)sagerun, "env", "--format", "yaml", NULL};
    char *d[] = {(char *)sagerun, "sample", "--hosts", "2", NULL};
    char **cases[] = {a, b, c, d};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run_result r = test_run(cases[i], NULL);
        assert_int_equal(r.status, 2);
        assert_true(strlen(r.err) > 0);
        run_result_free(&r);
    }
}

/* Options are written out in full (getopt would take --nproc for
 * --nproc-per-host), a usage error names sagerun and the command, `train
 * --` needs a command after it, and a failure file an earlier run left is
 * gone once a job starts. */
static void usage_is_strict_and_says_sagerun(void **state)
{
    (void)state;
    char host_root[4200];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    struct {
        char *argv[8];
        const char *err;
    } cases[] = {
        {{(char *)sagerun, "train", "--nproc", "2", NULL},
         "sagerun: train: --nproc is not an option (options are written out in full: --nproc-per-host)\n"},
        {{(char *)sagerun, "env", "--ml-root", NULL}, "sagerun: env: --ml-root needs a value\n"},
        {{(char *)sagerun, "topo", "-x", NULL}, "sagerun: topo: -x is not an option\n"},
        {{(char *)sagerun, "bench", "--repeat=3", NULL},
         "sagerun: bench: --repeat is not an option (options are written out in full: --repeats)\n"},
        {{(char *)sagerun, "train", "--ml-root", host_root, "--", NULL},
         "sagerun: train: nothing after \"--\": give the command every rank runs, or leave out \"--\" to run the "
         "job's program (else the built-in trainer)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run_result r = test_run(cases[i].argv, NULL);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.err, cases[i].err);
        run_result_free(&r);
    }
    test_write(host_root, "output/failure", "an earlier run failed");
    char *ok[] = {(char *)sagerun, "train", "--ml-root", host_root, "--", "/bin/true", NULL};
    struct run_result r = test_run(ok, NULL);
    assert_int_equal(r.status, 0);
    char failure_path[4300];
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    assert_null(test_read(failure_path));
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* `sagerun bench` on one host of two CPU ranks: the tables, the saved
 * results (no verdict: bench judges nothing), and metric lines that the
 * bench MetricDefinitions match. */
static void bench_reports_and_saves(void **state)
{
    (void)state;
    char host_root[4200];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    char *argv[] = {(char *)sagerun, "bench", "--ml-root", host_root, "--nproc-per-host", "2", "--gemm-size", "128",
                    "--membw-mib", "4", "--repeats", "3", "--warmup", "1", "--allreduce-max-bytes", "32768",
                    "--train-batch", "1", NULL};
    char *env[] = {"OPENBLAS_NUM_THREADS=1", NULL};
    struct run_result r = test_run(argv, env);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "[algo-1:0] # sagerun bench: 1 hosts, 2 ranks"));
    assert_non_null(strstr(r.out, "[algo-1:0]        32768         8192    float    sum     -1"));
    assert_null(strstr(r.out, "validation"));
    char path[4400];
    snprintf(path, sizeof path, "%s/output/data/sagerun-bench.json", host_root);
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(json_object_get(results, "ranks")), 2);
    json_t *m = json_object_get(json_array_get(json_object_get(results, "ranks"), 1), "metrics");
    assert_true(json_number_value(json_object_get(m, "gemm_fp32_tflops")) > 0);
    assert_true(json_number_value(json_object_get(m, "membw_copy_gbs")) > 0);
    assert_true(json_number_value(json_object_get(m, "train_compute_tokens_per_s")) > 0);
    assert_true(json_is_null(json_object_get(doc, "verdict")) || !json_object_get(doc, "verdict"));
    json_t *rows = json_object_get(json_object_get(results, "allreduce"), "rows");
    assert_int_equal(json_array_size(rows), 2); /* 8 KiB, 32 KiB */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(rows, 1), "in_place"), "wrong")),
                     0);
    json_decref(doc);
    snprintf(path, sizeof path, "%s/model/validation", host_root);
    assert_int_not_equal(access(path, F_OK), 0); /* only validate leaves an artifact */
    snprintf(path, sizeof path, "%s/bench.log", root);
    test_write(root, "bench.log", r.out);
    char *check[] = {(char *)sagerun, "metrics", "check", "--bench", "1", path, NULL};
    struct run_result c = test_run(check, NULL);
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.out, "algo-1:gemm_tflops"));
    run_result_free(&c);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* Bad bench options fail with the reason in the failure file, and so does a
 * host whose driver lists GPUs that CUDA cannot use (fake NVML, no CUDA
 * driver here): its GPU ranks try the GPU benchmarks and the job fails fast,
 * naming a GPU rank and the GPU library's complaint, instead of hanging. */
static void bench_refuses_bad_requests(void **state)
{
    (void)state;
    char host_root[4200], failure_path[4300], library[4200];
    char *root = sample_job("1", "algo-1", host_root, sizeof host_root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", host_root);
    snprintf(library, sizeof library, "SAGERUN_NVML_LIBRARY=%s", fake_nvml);
    struct {
        const char *cmd, *arg1, *arg2, *want;
        int gpus;
        const char *want_too;
    } cases[] = {
        {"bench", "bogus", NULL, "\"bogus\" is not a benchmark (gemm, membw, allreduce, train)", 0, NULL},
        {"validate", "gemm", NULL, "validate runs every benchmark", 0, NULL},
        {"validate", "--straggler-ratio", "1.5", "--straggler-ratio: \"1.5\" is not a number in (0, 1]", 0, NULL},
        {"bench", "--allreduce-max-bytes", "4096", "--allreduce-min-bytes 8192 is over --allreduce-max-bytes 4096", 0,
         NULL},
        {"validate", "--baselines", "/nonexistent.json", "--baselines /nonexistent.json cannot be read", 0, NULL},
        /* no --allreduce-max-bytes: the device's own largest size (64 MiB on a CPU) bounds the sweep */
        {"bench", "--allreduce-min-bytes", "134217728",
         "--allreduce-min-bytes 134217728 is over this device's largest size, 67108864 bytes", 0, NULL},
        {"validate", NULL, NULL, "exited with status 1; last output: sagerun bench-rank: ", 1, ", GPU 00000000:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {(char *)sagerun, (char *)cases[i].cmd, "--ml-root", host_root, (char *)cases[i].arg1,
                        (char *)cases[i].arg2, NULL};
        char *env[] = {library, "FAKE_NVML_GPUS=NVIDIA H100@00000000:53:00.0;NVIDIA H100@00000000:64:00.0", NULL};
        unlink(failure_path);
        struct run_result r = test_run(argv, cases[i].gpus ? env : NULL);
        assert_int_equal(r.status, 1);
        char *failure = test_read(failure_path);
        assert_non_null(failure);
        const char *want[2] = {cases[i].want, cases[i].want_too};
        for (int w = 0; w < 2; w++)
            if (want[w] && !strstr(failure, want[w]))
                fail_msg("case %zu: failure file says \"%s\", want \"%s\"", i, failure, want[w]);
        free(failure);
        run_result_free(&r);
    }
    test_rmtree(root);
    free(root);
}

/* The training example's hyperparameters are the built-in trainer's. */
static void example_hyperparameters_are_valid(void **state)
{
    (void)state;
    char path[4300];
    snprintf(path, sizeof path, "%s/train-p5-2x-spot.json", examples);
    json_t *req = json_load_file(path, 0, NULL);
    assert_non_null(req);
    struct train_config cfg;
    struct sr_error err = {{0}};
    if (train_config_parse(json_object_get(req, "HyperParameters"), path, &cfg, &err) != 0)
        fail_msg("%s", err.text);
    assert_string_equal(cfg.preset, "gpt2-124m");
    /* each of the 16 GPUs' share of the batch splits into whole micro-batches */
    int ranks = 16, share = cfg.batch_size / ranks;
    assert_int_equal(cfg.batch_size % ranks, 0);
    assert_int_equal(share % cfg.micro_batch_size, 0);
    json_decref(req);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PATH_TO_SAGERUN FIXTURES_DIR FAKE_NVML_LIBRARY EXAMPLES_DIR\n", argv[0]);
        return 2;
    }
    sagerun = argv[1];
    fixtures = argv[2];
    fake_nvml = argv[3];
    examples = argv[4];
    unsetenv("SAGERUN_ML_ROOT");
    unsetenv("SAGERUN_NPROC_PER_HOST");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(train_runs_command_with_environment_and_arguments),
        cmocka_unit_test(train_without_command_checks_builtin_trainer_settings),
        cmocka_unit_test(train_runs_the_program_the_job_names),
        cmocka_unit_test(train_reports_a_command_that_cannot_start),
        cmocka_unit_test(train_refuses_to_start_without_key_material),
        cmocka_unit_test(ranks_get_the_nccl_tls_plugin_only_with_encryption),
        cmocka_unit_test(json_and_shell_forms_agree),
        cmocka_unit_test(env_says_what_encryption_covers),
        cmocka_unit_test(gpus_from_the_driver_set_the_ranks),
        cmocka_unit_test(usage_errors_exit_2),
        cmocka_unit_test(usage_is_strict_and_says_sagerun),
        cmocka_unit_test(bench_reports_and_saves),
        cmocka_unit_test(bench_refuses_bad_requests),
        cmocka_unit_test(example_hyperparameters_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
