#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

/* Reads the child's output until it closes it or `until`. */
static void drain(int fd, double until, size_t max, struct strbuf *out)
{
    while (clock_now() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)((until - clock_now()) * 1000) + 1) <= 0)
            continue;
        char chunk[4096];
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got <= 0)
            return; /* closed: the program is ending */
        if (out->len < max)
            strbuf_append(out, chunk, (size_t)got < max - out->len ? (size_t)got : max - out->len);
    }
}

int capture_run(char *const *argv, double until, size_t max, struct strbuf *out)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        strbuf_printf(out, "%s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        strbuf_printf(out, "cannot fork: %s", strerror(errno));
        return -1;
    }
    drain(pipefd[0], until, max, out);
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (clock_now() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            strbuf_printf(out, "%sno answer in time", out->len ? "; " : "");
            return -1;
        }
        clock_sleep(0.02);
    }
    return status;
}
