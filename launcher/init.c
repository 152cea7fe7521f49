#include "init.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* Reaps every child that has ended; returns the main child's exit status
 * once it has ended, else -1. */
static int reap_all(pid_t main_child)
{
    int result = -1, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == main_child)
            result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

static _Noreturn void serve(pid_t child, const sigset_t *watched)
{
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(watched, &info);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status = reap_all(child);
        if (status >= 0)
            _exit(status);
    }
}

void init_split(void)
{
    sigset_t watched, old;
    sigemptyset(&watched);
    sigaddset(&watched, SIGCHLD);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaddset(&watched, forwarded[i]);
    sigprocmask(SIG_BLOCK, &watched, &old);
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        fprintf(stderr, "sagerun: cannot become a child subreaper (%s); orphans of the job go to PID 1\n",
                strerror(errno));
    pid_t init = getpid();
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "sagerun: cannot fork an init process (%s); running without one\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        return;
    }
    if (child > 0)
        serve(child, &watched);
    /* The child: sagerun itself, dying with its init. The subreaper
     * setting is not inherited across fork, so orphans still go up. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != init)
        _exit(1);
    sigprocmask(SIG_SETMASK, &old, NULL);
}
