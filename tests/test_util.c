#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "test_util: %s: %s\n", what, strerror(errno));
    abort();
}

char *test_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/sagerun-test-XXXXXX", base ? base : "/tmp") < 0 || !mkdtemp(path))
        die("mkdtemp");
    return path;
}

void test_write(const char *dir, const char *rel, const char *content)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    struct sr_error err = {{0}};
    if (fs_mkdirs(parent, &err) != 0) {
        fprintf(stderr, "test_util: %s\n", err.text);
        abort();
    }
    FILE *f = fopen(path, "w");
    if (!f || fputs(content, f) < 0 || fclose(f) != 0)
        die(path);
}

char *test_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(f);
    fclose(mem);
    return buf;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void test_rmtree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

struct run_result test_run(char *const argv[], char *const extra_env[])
{
    int out_pipe[2], err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(out_pipe[0]), close(err_pipe[0]), close(out_pipe[1]), close(err_pipe[1]);
        for (char *const *e = extra_env; e && *e; e++)
            putenv(*e);
        execvp(argv[0], argv); /* a bare name is looked up in PATH */
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    char *bufs[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    FILE *mem[2] = {open_memstream(&bufs[0], &lens[0]), open_memstream(&bufs[1], &lens[1])};
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            die("poll");
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            char chunk[4096];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                fwrite(chunk, 1, (size_t)n, mem[i]);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    fclose(mem[0]);
    fclose(mem[1]);
    int wstatus;
    if (waitpid(pid, &wstatus, 0) < 0)
        die("waitpid");
    struct run_result r = {WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus), bufs[0], bufs[1]};
    return r;
}

void run_result_free(struct run_result *r)
{
    free(r->out);
    free(r->err);
}

int test_spawn(char *const argv[], char *const extra_env[], const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        FILE *out = fopen(out_path, "w");
        if (!out)
            _exit(126);
        dup2(fileno(out), 1);
        dup2(fileno(out), 2);
        for (char *const *e = extra_env; e && *e; e++)
            putenv(*e);
        execvp(argv[0], argv); /* a bare name is looked up in PATH */
        _exit(127);
    }
    return pid;
}

int test_wait(int pid)
{
    int wstatus;
    if (waitpid(pid, &wstatus, 0) < 0)
        die("waitpid");
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

int test_wait_for_text(const char *path, const char *text, double seconds)
{
    double deadline = test_now() + seconds;
    for (;;) {
        char *content = test_read(path);
        int found = content && strstr(content, text);
        free(content);
        if (found)
            return 1;
        if (test_now() > deadline)
            return 0;
        usleep(20000);
    }
}

double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int test_process_gone(int pid)
{
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    int got = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return got == 1 && state == 'Z';
}

static int compare_lines(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char *test_sorted_lines(const char *text, char only)
{
    char *copy = strdup(text), *save = NULL, **lines = NULL;
    size_t n = 0;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (!only || l[0] == only) {
            lines = realloc(lines, (n + 1) * sizeof *lines);
            lines[n++] = l;
        }
    qsort(lines, n, sizeof *lines, compare_lines);
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    for (size_t i = 0; i < n; i++)
        fprintf(mem, "%s\n", lines[i]);
    fclose(mem);
    free(lines);
    free(copy);
    return out;
}

char *test_replace(const char *text, const char *from, const char *to)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    size_t flen = strlen(from);
    for (const char *p = text; *p;) {
        const char *hit = strstr(p, from);
        if (!hit) {
            fputs(p, mem);
            break;
        }
        fwrite(p, 1, (size_t)(hit - p), mem);
        fputs(to, mem);
        p = hit + flen;
    }
    fclose(mem);
    return buf;
}

char *test_sample_job(const char *sagerun, const char *hyperparameters, char *root, size_t size)
{
    char *dir = test_mkdtemp();
    char *argv[] = {(char *)sagerun, "sample", "--out", dir, "--hosts", "1", "--no-encryption", NULL};
    struct run_result r = test_run(argv, NULL);
    if (r.status != 0) {
        fprintf(stderr, "test_util: sagerun sample exited %d: %s\n", r.status, r.err);
        abort();
    }
    run_result_free(&r);
    snprintf(root, size, "%s/algo-1", dir);
    test_write(root, "input/config/hyperparameters.json", hyperparameters);
    return dir;
}

float *test_model_params(const char *root, size_t *count)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/model/model.bin", root);
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0)
        die(path);
    long bytes = ftell(f) - 1024;
    float *p = bytes > 0 ? malloc((size_t)bytes) : NULL;
    if (!p || fseek(f, 1024, SEEK_SET) != 0 || fread(p, 1, (size_t)bytes, f) != (size_t)bytes)
        die(path);
    fclose(f);
    *count = (size_t)bytes / sizeof(float);
    return p;
}

double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
    }
    return m;
}

int test_fixture_present(const char *dir, const char *file, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, file);
    FILE *probe = fopen(path, "r");
    if (!probe) {
        printf("SKIPPED: %s not found (the shared fixtures sit beside the checkout)\n", path);
        return 0;
    }
    fclose(probe);
    return 1;
}
