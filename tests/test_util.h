/* test_util.h — helpers shared by the cmocka tests: temporary ML roots and
 * running the real sagerun binary with captured output. */
#ifndef SAGERUN_TEST_UTIL_H
#define SAGERUN_TEST_UTIL_H

#include <stddef.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); caller frees the path. */
char *test_mkdtemp(void);
/* Writes `content` to dir/rel, creating parent directories. */
void test_write(const char *dir, const char *rel, const char *content);
/* Reads a whole file; NULL if it does not exist. Caller frees. */
char *test_read(const char *path);
/* rm -rf */
void test_rmtree(const char *path);

struct run_result {
    int status; /* exit code, or 128 + signal */
    char *out;
    char *err;
};
/* Runs argv with extra environment entries ("NAME=value", NULL-terminated,
 * may be NULL); captures stdout and stderr. */
struct run_result test_run(char *const argv[], char *const extra_env[]);
void run_result_free(struct run_result *r);

/* Starts argv in the background with stdout and stderr sent to out_path;
 * returns its pid. */
int test_spawn(char *const argv[], char *const extra_env[], const char *out_path);
/* Waits for pid; returns its exit code, or 128 + signal. */
int test_wait(int pid);
/* Seconds on a monotonic clock. */
double test_now(void);
/* Polls the file at `path` until it contains `text`; returns 1, or 0 after
 * `seconds` without it. */
int test_wait_for_text(const char *path, const char *text, double seconds);
/* Whether a process is gone (no such pid, or a zombie nobody reaped yet). */
int test_process_gone(int pid);

/* The lines of text, sorted (ranks print in any order); with `only` not 0,
 * just the lines that start with that character. Caller frees. */
char *test_sorted_lines(const char *text, char only);

/* A one-host sample job (`sagerun sample --hosts 1 --no-encryption`) in a
 * fresh directory, with `hyperparameters` (a JSON object of strings) as its
 * hyperparameters.json. Returns the directory (test_rmtree and free it);
 * root receives its ML root, <dir>/algo-1. */
char *test_sample_job(const char *sagerun, const char *hyperparameters, char *root, size_t size);
/* The parameters in <root>/model/model.bin (after llm.c's 1024-byte
 * header); caller frees. */
float *test_model_params(const char *root, size_t *count);
double test_max_abs_diff(const float *a, const float *b, size_t n);

/* dir/file into path; when it does not exist, says the test is skipped and
 * returns 0 (the caller then calls cmocka's skip()). */
int test_fixture_present(const char *dir, const char *file, char *path, size_t size);

/* Replaces every occurrence of `from` in `text` by `to`; caller frees. */
char *test_replace(const char *text, const char *from, const char *to);

#endif
