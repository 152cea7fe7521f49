/* The built-in trainer end to end: the real sagerun binary trains the
 * sample job's synthetic data on one host (ranks meet over loopback).
 *
 * - Data parallelism computes the one-rank function: 2 ranks x 4 sequences
 *   and 1 rank x 8 sequences in 4 micro-batches of 2 end within 5e-5 of
 *   1 rank x 8 sequences after 20 steps. Only the order of fp32 additions
 *   differs (the gradient sum over sequences is split across ranks or
 *   micro-batches, and the ring adds partial sums), so each step's gradient
 *   differs by rounding (~1e-7 relative), which AdamW's normalised steps
 *   carry into the weights: measured 8.9e-6 (ranks) and 7.9e-6
 *   (micro-batches). The bound is 1/200 of how far the same 20 steps move
 *   the weights from their initial values (> 1e-2, asserted), so any
 *   mistake in which sequences a rank trains on shows. The same layout twice
 *   gives the same bits.
 * - SIGTERM mid-run: exit 0 within 10 s with a checkpoint; the restarted
 *   job ends with the bits of a run that never stopped.
 * - kill -9 at random moments with a checkpoint after every step, and a
 *   corrupted newest checkpoint: every restart loads a valid checkpoint and
 *   the final bits are still those of the uninterrupted run.
 * - Pipe mode (FIFOs fed by another process, across epochs) trains the same
 *   bits as File mode on the same shards.
 * - `sagerun metrics check` finds every metric in a real training log.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_util.h"
#include "token_data.h"

static const char *sagerun, *recordio_wrap;

struct job {
    char *dir, root[4096];
};

/* A 1-host sample job with the given hyperparameters (a JSON object of strings). */
static void job_create(struct job *j, const char *hyperparameters)
{
    j->dir = test_sample_job(sagerun, hyperparameters, j->root, sizeof j->root);
}

static void job_destroy(struct job *j)
{
    test_rmtree(j->dir);
    free(j->dir);
}

static char *log_path(const struct job *j, int n)
{
    char *p = malloc(4200);
    assert_non_null(p);
    snprintf(p, 4200, "%s/run-%d.log", j->dir, n);
    return p;
}

static int spawn_train(const struct job *j, const char *nproc, const char *log, char *const *env)
{
    char *argv[] = {(char *)sagerun, "train", "--ml-root", (char *)j->root, "--nproc-per-host", (char *)nproc, NULL};
    return test_spawn(argv, env, log);
}

static int train(const struct job *j, const char *nproc, int n, char *const *env)
{
    char *log = log_path(j, n);
    int status = test_wait(spawn_train(j, nproc, log, env));
    if (status != 0) {
        char *text = test_read(log);
        fprintf(stderr, "training failed (%d):\n%s\n", status, text ? text : "");
        free(text);
    }
    free(log);
    return status;
}

static float *model_params(const struct job *j, size_t *count)
{
    return test_model_params(j->root, count);
}

/* The tiny model's hyperparameters, a JSON object of strings as SageMaker
 * writes them: `steps` optimizer steps, validation every `val_interval`
 * steps (0: never), then name, value pairs ending with NULL, which add or
 * override settings. free() the text. */
static char *hyperparameters(const char *steps, const char *val_interval, ...)
{
    json_t *hp = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "model", "tiny", "vocab_size",
                           "64", "seq_len", "64", "batch_size", "8", "max_steps", steps, "learning_rate", "0.003",
                           "warmup_steps", "5", "log_interval", "5", "val_interval", val_interval, "val_batches", "2",
                           "seed", "7");
    assert_non_null(hp);
    va_list ap;
    va_start(ap, val_interval);
    for (const char *name; (name = va_arg(ap, const char *));)
        json_object_set_new(hp, name, json_string(va_arg(ap, const char *)));
    va_end(ap);
    char *text = json_dumps(hp, 0);
    json_decref(hp);
    assert_non_null(text);
    return text;
}

static float *train_layout(const char *nproc, const char *micro, size_t *count)
{
    struct job j;
    char *hp = hyperparameters("20", "10", "micro_batch_size", micro, NULL);
    job_create(&j, hp);
    assert_int_equal(train(&j, nproc, 0, NULL), 0);
    float *p = model_params(&j, count);
    job_destroy(&j);
    free(hp);
    return p;
}

static void data_parallel_matches_one_rank(void **state)
{
    (void)state;
    size_t n1, n2, n3, n4;
    float *one = train_layout("1", "8", &n1), *two = train_layout("2", "4", &n2);
    float *accumulated = train_layout("1", "2", &n3), *two_again = train_layout("2", "4", &n4);
    assert_true(n1 == n2 && n1 == n3 && n1 == n4 && n1 > 100000);
    double d_ranks = test_max_abs_diff(one, two, n1), d_accum = test_max_abs_diff(one, accumulated, n1);
    fprintf(stderr, "max |weight difference| after 20 steps: 2 ranks %.3g, 4 micro-batches %.3g\n", d_ranks,
            d_accum);
    assert_true(d_ranks <= 5e-5);
    assert_true(d_accum <= 5e-5);
    assert_memory_equal(two, two_again, n2 * sizeof(float));
    /* The runs did train: the weights moved far beyond the tolerance. */
    struct job init;
    char *hp = hyperparameters("0", "10", NULL);
    job_create(&init, hp);
    free(hp);
    assert_int_equal(train(&init, "1", 0, NULL), 0);
    size_t n0;
    float *start = model_params(&init, &n0);
    assert_true(test_max_abs_diff(start, one, n1) > 1e-2);
    free(start);
    job_destroy(&init);
    free(one), free(two), free(accumulated), free(two_again);
}

/* Waits until `log` contains `text` (at most 60 s). */
static void wait_for_text(const char *log, const char *text)
{
    if (!test_wait_for_text(log, text, 60))
        fail_msg("%s never showed \"%s\"", log, text);
}

static float *uninterrupted(const char *hyperparameters, const char *nproc, size_t *count)
{
    struct job j;
    job_create(&j, hyperparameters);
    assert_int_equal(train(&j, nproc, 0, NULL), 0);
    float *p = model_params(&j, count);
    job_destroy(&j);
    return p;
}

static void sigterm_checkpoints_and_resumes_bit_exact(void **state)
{
    (void)state;
    char *hp = hyperparameters("80", "10", "checkpoint_interval", "0", NULL);
    size_t n_ref, n;
    float *reference = uninterrupted(hp, "2", &n_ref);

    struct job j;
    job_create(&j, hp);
    free(hp);
    char *log = log_path(&j, 1);
    int pid = spawn_train(&j, "2", log, NULL);
    wait_for_text(log, "[metrics] step=20 ");
    double sent = test_now();
    kill(pid, SIGTERM);
    assert_int_equal(test_wait(pid), 0);
    double took = test_now() - sent;
    char *text = test_read(log);
    fprintf(stderr, "SIGTERM to exit with a checkpoint: %.2f s\n", took);
    assert_true(took < 10.0);
    assert_non_null(strstr(text, "stop requested (SIGTERM)"));
    assert_non_null(strstr(text, "checkpoint of step"));
    assert_null(strstr(text, "[metrics] step=80 "));
    free(text);

    assert_int_equal(train(&j, "2", 2, NULL), 0);
    char *log2 = log_path(&j, 2);
    text = test_read(log2);
    assert_non_null(strstr(text, "resumed from"));
    free(text);
    float *resumed = model_params(&j, &n);
    assert_int_equal(n, n_ref);
    assert_memory_equal(resumed, reference, n * sizeof(float));
    free(resumed), free(reference), free(log), free(log2);
    job_destroy(&j);
}

static void flip_a_byte(const char *path, long at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void kill9_and_corruption_never_lose_the_run(void **state)
{
    (void)state;
    char *hp = hyperparameters("60", "10", "checkpoint_interval", "1", "checkpoint_keep", "3", NULL);
    size_t n_ref, n;
    float *reference = uninterrupted(hp, "1", &n_ref);

    struct job j;
    job_create(&j, hp);
    free(hp);
    /* Killed at moments spread over a step (~25 ms here; a checkpoint write
     * takes a few of them), after training has begun. */
    for (int k = 0; k < 6; k++) {
        char *log = log_path(&j, 10 + k);
        int pid = spawn_train(&j, "1", log, NULL);
        wait_for_text(log, "checkpoint of step");
        usleep(20000 + 7000 * k);
        kill(pid, SIGKILL);
        test_wait(pid);
        free(log);
    }
    /* The newest checkpoint corrupted, the one before it truncated. */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls %s/checkpoints/ckpt-*.bin | sort -r > %s/list", j.root, j.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/list", j.dir);
    char *list = test_read(cmd);
    char *newest = strtok(list, "\n"), *older = strtok(NULL, "\n");
    assert_non_null(newest);
    assert_non_null(older);
    flip_a_byte(newest, 5000);
    assert_int_equal(truncate(older, 4096), 0);

    assert_int_equal(train(&j, "1", 30, NULL), 0);
    char *log = log_path(&j, 30), *text = test_read(log);
    assert_non_null(strstr(text, "SHA-256 mismatch"));
    assert_non_null(strstr(text, "(truncated)"));
    assert_non_null(strstr(text, "resumed from"));
    float *resumed = model_params(&j, &n);
    assert_int_equal(n, n_ref);
    assert_memory_equal(resumed, reference, n * sizeof(float));
    free(text), free(log), free(list), free(resumed), free(reference);
    job_destroy(&j);
}

/* Small shards so a short run crosses epochs: 4096 tokens, 7 windows of
 * 8 x 64 + 1 each. */
static void write_small_shards(const char *dir, uint16_t seed)
{
    uint16_t tokens[4096];
    struct sr_error err = {{0}};
    char path[4300];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 4096; i++)
            tokens[i] = (uint16_t)((i * 7 + s * 13 + seed + (i / 3) % 5) % 64);
        snprintf(path, sizeof path, "%s/shard_%d.bin", dir, s);
        assert_int_equal(shard_write(path, tokens, 4096, &err), 0);
    }
}

/* Feeds `epochs` FIFOs <pipes>/train_<e>, each the shards back to back, as
 * SageMaker's Pipe mode does (through `writer`: cat, or recordio_wrap for
 * RecordIO records); the process is killed when no longer needed. */
static int feed_pipes(const char *pipes, const char *shards, int epochs, const char *writer)
{
    int pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    setpgid(0, 0); /* killed as a group, with the cat that may wait on a FIFO */
    for (int e = 0; e < epochs; e++) {
        char fifo[4300], cmd[9000];
        snprintf(fifo, sizeof fifo, "%s/train_%d", pipes, e);
        if (mkfifo(fifo, 0600) != 0)
            _exit(1);
        snprintf(cmd, sizeof cmd, "%s %s/shard_0.bin %s/shard_1.bin > %s", writer, shards, shards, fifo);
        if (system(cmd) != 0)
            _exit(1);
    }
    _exit(0);
}

/* Trains `piped` from FIFOs fed by `writer` with the shards in `shards`;
 * returns its exit status. */
static int train_from_pipes(struct job *piped, const char *shards, const char *channel, const char *writer)
{
    test_write(piped->root, "input/config/inputdataconfig.json", channel);
    char pipes[4300], env_dir[4400];
    snprintf(pipes, sizeof pipes, "%s/pipes", piped->dir);
    assert_int_equal(mkdir(pipes, 0700), 0);
    int feeder = feed_pipes(pipes, shards, 4, writer);
    snprintf(env_dir, sizeof env_dir, "SAGERUN_PIPE_DIR=%s", pipes);
    char *env[] = {env_dir, NULL};
    int status = train(piped, "1", 0, env);
    kill(-feeder, SIGKILL); /* it waits on the FIFO of an epoch nobody reads */
    test_wait(feeder);
    return status;
}

/* File mode, Pipe mode, and Pipe mode with each shard a RecordIO record
 * (the tests' own writer) train the same bits. */
static void pipe_mode_trains_like_file_mode(void **state)
{
    (void)state;
    char *hp = hyperparameters("30", "0", NULL);
    struct job file, piped, wrapped;
    job_create(&file, hp);
    job_create(&piped, hp);
    job_create(&wrapped, hp);
    free(hp);
    char dir[4300];
    snprintf(dir, sizeof dir, "rm -f %s/input/data/train/*.bin", file.root);
    assert_int_equal(system(dir), 0);
    snprintf(dir, sizeof dir, "%s/input/data/train", file.root);
    write_small_shards(dir, 0);
    assert_int_equal(train(&file, "1", 0, NULL), 0);
    const char *validation = ", \"validation\": {\"TrainingInputMode\": \"File\"}}";
    char raw[256], recordio[256];
    snprintf(raw, sizeof raw, "{\"train\": {\"TrainingInputMode\": \"Pipe\"}%s", validation);
    snprintf(recordio, sizeof recordio, "{\"train\": {\"TrainingInputMode\": \"Pipe\", \"RecordWrapperType\": "
             "\"RecordIO\"}%s", validation);
    assert_int_equal(train_from_pipes(&piped, dir, raw, "cat"), 0);
    assert_int_equal(train_from_pipes(&wrapped, dir, recordio, recordio_wrap), 0);
    char *log = log_path(&file, 0), *text = test_read(log);
    assert_non_null(strstr(text, "[metrics] step=30 epoch=2 ")); /* 14 windows an epoch: crossed two */
    size_t n1, n2, n3;
    float *a = model_params(&file, &n1), *b = model_params(&piped, &n2), *c = model_params(&wrapped, &n3);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_memory_equal(a, b, n1 * sizeof(float));
    assert_memory_equal(a, c, n1 * sizeof(float));
    free(a), free(b), free(c), free(text), free(log);
    job_destroy(&file);
    job_destroy(&piped);
    job_destroy(&wrapped);
}

/* A RecordIO channel fed raw shards, and a record holding two shards, are
 * refused with what is wrong. */
static void broken_recordio_channels_are_refused(void **state)
{
    (void)state;
    char *hp = hyperparameters("30", "0", NULL);
    const char *channel = "{\"train\": {\"TrainingInputMode\": \"Pipe\", \"RecordWrapperType\": \"RecordIO\"}, "
                          "\"validation\": {\"TrainingInputMode\": \"File\"}}";
    struct {
        const char *writer, *failure;
    } cases[] = {
        {"cat", "channel train: epoch 0 FIFO record 0: not RecordIO (magic 0x0134d888: an unwrapped llm.c shard?)"},
        {NULL, "channel train: epoch 0 FIFO record 0: RecordIO record holds more than one shard (bytes after its "
               "4096 tokens)"},
    };
    char both[4400];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct job j;
        job_create(&j, hp);
        char shards[4300];
        snprintf(shards, sizeof shards, "%s/shards", j.dir);
        assert_int_equal(mkdir(shards, 0700), 0);
        write_small_shards(shards, 0);
        /* two shards in one record: cat them, then wrap the one file */
        snprintf(both, sizeof both, "sh -c 'cat \"$@\" > %s/both && exec %s %s/both' sh", j.dir, recordio_wrap, j.dir);
        assert_int_equal(train_from_pipes(&j, shards, channel, cases[i].writer ? cases[i].writer : both), 1);
        char failure_path[4300];
        snprintf(failure_path, sizeof failure_path, "%s/output/failure", j.root);
        char *failure = test_read(failure_path);
        if (!failure || !strstr(failure, cases[i].failure))
            fail_msg("case %zu: the failure file says \"%s\", not \"%s\"", i, failure ? failure : "(none)",
                     cases[i].failure);
        free(failure);
        job_destroy(&j);
    }
    free(hp);
}

/* A gzip-compressed shard (what CompressionType Gzip would hold) is
 * refused as such, never read as tokens. */
static void compressed_shards_are_refused(void **state)
{
    (void)state;
    char *hp = hyperparameters("5", "0", NULL);
    struct job j;
    job_create(&j, hp);
    free(hp);
    char cmd[9000], failure_path[4300];
    snprintf(cmd, sizeof cmd, "cd %s/input/data/train && for f in *.bin; do gzip -c \"$f\" > \"$f.gz\" && "
             "mv \"$f.gz\" \"$f\"; done", j.root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(train(&j, "1", 0, NULL), 1);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", j.root);
    char *failure = test_read(failure_path);
    if (!failure || !strstr(failure, "markov_train_000.bin: gzip data, not a token shard"))
        fail_msg("the failure file says \"%s\"", failure ? failure : "(none)");
    free(failure);
    job_destroy(&j);
}

static void metrics_check_reads_a_training_log(void **state)
{
    (void)state;
    struct job j;
    char *hp = hyperparameters("20", "10", NULL);
    job_create(&j, hp);
    free(hp);
    assert_int_equal(train(&j, "2", 0, NULL), 0);
    char *log = log_path(&j, 0);
    char *argv[] = {(char *)sagerun, "metrics", "check", log, NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "train:loss"));
    assert_non_null(strstr(r.out, "validation:loss"));
    run_result_free(&r);
    /* A log without metrics fails, naming how many never matched. */
    char empty[4300];
    snprintf(empty, sizeof empty, "%s/empty.log", j.dir);
    test_write(j.dir, "empty.log", "[algo-1:0] [rank-stats] rank=0 data_ms=0.01 compute_ms=20.00 comm_ms=0.30\n");
    char *argv2[] = {(char *)sagerun, "metrics", "check", empty, NULL};
    r = test_run(argv2, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "never matched"));
    run_result_free(&r);
    free(log);
    job_destroy(&j);
}

static void bad_hyperparameter_is_named(void **state)
{
    (void)state;
    const struct {
        const char *hyperparameters, *failure;
    } cases[] = {
        {"{\"model\": \"tiny\", \"lerning_rate\": \"0.1\"}",
         "hyperparameters.json: $.lerning_rate: the built-in trainer has no hyperparameter"},
        {"{\"model\": \"tiny\", \"attention\": \"fast\"}",
         "hyperparameters.json: $.attention: \"fast\" is not auto, flash or materialized"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct job j;
        job_create(&j, cases[i].hyperparameters);
        assert_int_equal(train(&j, "1", 0, NULL), 1);
        char path[4300];
        snprintf(path, sizeof path, "%s/output/failure", j.root);
        char *failure = test_read(path);
        assert_non_null(failure);
        if (!strstr(failure, cases[i].failure))
            fail_msg("failure file says \"%s\", not \"%s\"", failure, cases[i].failure);
        free(failure);
        job_destroy(&j);
    }
}

/* The checkpoint directory is made and checked before the first step: one
 * that cannot be made fails the job at start, naming it and where it came
 * from, instead of at the first checkpoint. */
static void unwritable_checkpoint_dir_fails_at_start(void **state)
{
    (void)state;
    char *hp = hyperparameters("20", "0", "checkpoint_interval", "5", NULL);
    struct job j;
    job_create(&j, hp);
    free(hp);
    test_write(j.root, "input/config/checkpointconfig.json", "{\"LocalPath\": \"/proc/sagerun-test/checkpoints\"}");
    assert_int_equal(train(&j, "1", 0, NULL), 1);
    char path[4300];
    snprintf(path, sizeof path, "%s/output/failure", j.root);
    char *failure = test_read(path), *log = log_path(&j, 0), *text = test_read(log);
    assert_non_null(failure);
    const char *want = "checkpoints: the directory /proc/sagerun-test/checkpoints (checkpointconfig.json LocalPath) "
                       "cannot be made";
    if (!strstr(failure, want))
        fail_msg("failure file says \"%s\", not \"%s\"", failure, want);
    assert_null(strstr(text, "[metrics] step=")); /* not a single step was taken */
    free(failure), free(log), free(text);
    job_destroy(&j);
}

/* Channel settings the built-in trainer cannot honour are refused before
 * any rank starts, naming the channel and the setting in the failure file,
 * instead of being read as something they are not. */
static void unreadable_channel_settings_are_refused_at_start(void **state)
{
    (void)state;
    const char *train = "\"train\": {\"TrainingInputMode\": \"File\"}";
    struct {
        const char *channels, *failure;
    } cases[] = {
        {"{\"train\": {\"TrainingInputMode\": \"File\", \"RecordWrapperType\": \"RecordIO\"}}",
         "inputdataconfig.json: $.train.RecordWrapperType: \"RecordIO\" in File mode: SageMaker wraps records in Pipe "
         "mode only (\"In File mode, leave this field unset or set it to None\"), so these files are not wrapped; "
         "set it to None"},
        {NULL, "inputdataconfig.json: $.validation.S3DistributionType: \"ShardedByS3Key\" in Pipe mode: the job's 2 "
               "hosts must agree on where an epoch ends before it starts, and a FIFO does not say how much it holds; "
               "use File or FastFile mode"},
        {"{\"train\": {\"TrainingInputMode\": \"File\", \"ContentType\": \"text/csv\"}}",
         "inputdataconfig.json: $.train.ContentType: \"text/csv\": the built-in trainer reads llm.c token shards "
         "(application/octet-stream, or no ContentType)"},
    };
    char sharded[256];
    snprintf(sharded, sizeof sharded, "{%s, \"validation\": {\"TrainingInputMode\": \"Pipe\", "
             "\"S3DistributionType\": \"ShardedByS3Key\"}}", train);
    cases[1].channels = sharded;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = test_mkdtemp(), root[4300], failure_path[4400];
        char *sample[] = {(char *)sagerun, "sample", "--out", dir, "--hosts", "2", "--no-encryption", NULL};
        struct run_result r = test_run(sample, NULL);
        assert_int_equal(r.status, 0);
        run_result_free(&r);
        snprintf(root, sizeof root, "%s/algo-1", dir);
        test_write(root, "input/config/inputdataconfig.json", cases[i].channels);
        char *argv[] = {(char *)sagerun, "train", "--ml-root", root, NULL};
        r = test_run(argv, NULL);
        assert_int_equal(r.status, 1);
        assert_null(strstr(r.out, "[algo-1:")); /* no rank started */
        snprintf(failure_path, sizeof failure_path, "%s/output/failure", root);
        char *failure = test_read(failure_path);
        if (!failure || !strstr(failure, cases[i].failure))
            fail_msg("case %zu: the failure file says \"%s\", not \"%s\"", i, failure ? failure : "(none)",
                     cases[i].failure);
        free(failure);
        run_result_free(&r);
        /* `sagerun env` says so beforehand. */
        char *env_argv[] = {(char *)sagerun, "env", "--ml-root", root, NULL};
        r = test_run(env_argv, NULL);
        assert_int_equal(r.status, 0);
        const char *said = strstr(r.out, "refused by the built-in trainer: ");
        if (!said || !strstr(said, cases[i].failure))
            fail_msg("case %zu: sagerun env does not say it refuses: %s:\n%s", i, cases[i].failure, r.out);
        run_result_free(&r);
        test_rmtree(dir);
        free(dir);
    }
}

/* A rank of the built-in trainer told anything but "on" or "off" about
 * encryption (or nothing) refuses to join the host backend's ring, naming
 * the variable and the value, instead of guessing plaintext. */
static void rank_refuses_an_undefined_encryption_setting(void **state)
{
    (void)state;
    char *hp = hyperparameters("5", "0", NULL);
    struct job j;
    job_create(&j, hp);
    free(hp);
    unsetenv("SAGERUN_ENCRYPTION");
    const char *values[] = {"yes", "ON", "", NULL}; /* NULL: not set at all */
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char setting[64];
        snprintf(setting, sizeof setting, "SAGERUN_ENCRYPTION=%s", values[i] ? values[i] : "");
        char *env[] = {"RANK=0", "WORLD_SIZE=1", "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=1", "GROUP_RANK=0", "GROUP_WORLD_SIZE=1",
                       "SAGERUN_HOST_ADDR=127.0.0.1",
                       "SAGERUN_RENDEZVOUS=127.0.0.1:9", values[i] ? setting : NULL, NULL};
        char *argv[] = {(char *)sagerun, "trainer", "--ml-root", j.root, NULL};
        struct run_result r = test_run(argv, env);
        char expected[128];
        snprintf(expected, sizeof expected, "host backend: SAGERUN_ENCRYPTION is %s%s%s; it must be \"on\" (TLS) "
                 "or \"off\" (plaintext)", values[i] ? "\"" : "", values[i] ? values[i] : "not set",
                 values[i] ? "\"" : "");
        assert_int_equal(r.status, 1);
        if (!strstr(r.err, expected))
            fail_msg("value %s: stderr lacks \"%s\":\n%s", values[i] ? values[i] : "(unset)", expected, r.err);
        assert_null(strstr(r.out, "[metrics]"));
        run_result_free(&r);
    }
    job_destroy(&j);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SAGERUN RECORDIO_WRAP\n", argv[0]);
        return 2;
    }
    sagerun = argv[1];
    recordio_wrap = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_parallel_matches_one_rank),
        cmocka_unit_test(sigterm_checkpoints_and_resumes_bit_exact),
        cmocka_unit_test(kill9_and_corruption_never_lose_the_run),
        cmocka_unit_test(pipe_mode_trains_like_file_mode),
        cmocka_unit_test(broken_recordio_channels_are_refused),
        cmocka_unit_test(compressed_shards_are_refused),
        cmocka_unit_test(metrics_check_reads_a_training_log),
        cmocka_unit_test(bad_hyperparameter_is_named),
        cmocka_unit_test(rank_refuses_an_undefined_encryption_setting),
        cmocka_unit_test(unwritable_checkpoint_dir_fails_at_start),
        cmocka_unit_test(unreadable_channel_settings_are_refused_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
