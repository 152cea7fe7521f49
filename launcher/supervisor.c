#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error_file.h"
#include "hang.h"
#include "strbuf.h"

#define LINE_MAX_BYTES 65536 /* a longer line is cut into pieces, each tagged */

struct stream {
    int fd;      /* read end, -1 once closed */
    int out_fd;  /* where its lines go */
    char *buf;   /* bytes of the current, unfinished line */
    size_t len;
};

struct rank_state {
    const struct rank_spec *spec;
    pid_t pid;   /* 0 once reaped */
    int status;  /* wait status */
    struct stream streams[2];
    int progress_fd; /* read end of the progress pipe, or -1 */
    char tail[SUPERVISOR_TAIL_LINES][160]; /* last lines, for the failure message */
    int tail_next;
    char tag[96];
};

static void write_all(int fd, struct iovec *iov, int count)
{
    while (count > 0) {
        ssize_t n = writev(fd, iov, count);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* stdout gone (EPIPE): the ranks still run to the end */
        }
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
}

static void emit_line(struct rank_state *rs, struct stream *s, const char *line, size_t len)
{
    struct iovec iov[3] = {{rs->tag, strlen(rs->tag)}, {(char *)line, len}, {"\n", 1}};
    write_all(s->out_fd, iov, 3);
    snprintf(rs->tail[rs->tail_next], sizeof rs->tail[0], "%.*s", (int)len, line);
    rs->tail_next = (rs->tail_next + 1) % SUPERVISOR_TAIL_LINES;
}

/* Appends bytes read from a rank and writes out every completed line. */
static void relay(struct rank_state *rs, struct stream *s, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (s->len + take > LINE_MAX_BYTES) { /* too long: cut, tag the piece, go on */
            take = LINE_MAX_BYTES - s->len;
            memcpy(s->buf + s->len, data, take);
            emit_line(rs, s, s->buf, LINE_MAX_BYTES);
            s->len = 0;
            data += take;
            n -= take;
            continue;
        }
        if (!nl) { /* an unfinished line waits for the rest */
            memcpy(s->buf + s->len, data, take);
            s->len += take;
            return;
        }
        if (s->len == 0) {
            emit_line(rs, s, data, take);
        } else {
            memcpy(s->buf + s->len, data, take);
            emit_line(rs, s, s->buf, s->len + take);
            s->len = 0;
        }
        data += take + 1;
        n -= take + 1;
    }
}

static void close_stream(struct rank_state *rs, struct stream *s)
{
    if (s->len > 0) /* a last line without newline is still a line */
        emit_line(rs, s, s->buf, s->len);
    s->len = 0;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static _Noreturn void child(const struct rank_spec *spec, const struct supervisor_options *opt, int out, int err,
                            int progress, const sigset_t *old_mask, pid_t launcher)
{
    /* Die with the launcher, even if it is SIGKILLed; if it died before
     * this line, the death signal will never come: leave now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != launcher)
        _exit(1);
    setpgid(0, 0);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    if (progress >= 0) {
        if (progress == SUPERVISOR_PROGRESS_FD)
            fcntl(progress, F_SETFD, 0); /* keep it across exec */
        else
            dup2(progress, SUPERVISOR_PROGRESS_FD);
    }
    signal(SIGPIPE, SIG_DFL);
    sigset_t ours; /* the launcher may block these beyond supervise() (launch.c); a rank must not */
    sigemptyset(&ours);
    sigaddset(&ours, SIGCHLD);
    sigaddset(&ours, SIGTERM);
    sigaddset(&ours, SIGINT);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    sigprocmask(SIG_UNBLOCK, &ours, NULL);
    if (opt->topology && spec->cpuset && !hwloc_bitmap_iszero(spec->cpuset) &&
        hwloc_set_cpubind(opt->topology, spec->cpuset, HWLOC_CPUBIND_PROCESS) != 0) {
        dprintf(STDERR_FILENO, "sagerun: cannot bind rank %d to its CPUs: %s\n", spec->rank, strerror(errno));
        _exit(126);
    }
    /* Containers without CAP_SYS_NICE refuse memory policies: say so once
     * (local rank 0) and run unbound rather than not at all. */
    if (opt->topology && spec->nodeset && !hwloc_bitmap_iszero(spec->nodeset) &&
        hwloc_set_membind(opt->topology, spec->nodeset, HWLOC_MEMBIND_BIND,
                          HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0 &&
        spec->local_rank == 0)
        dprintf(STDERR_FILENO, "sagerun: memory binding refused (%s); ranks run without a NUMA memory policy\n",
                strerror(errno));
    if (spec->cwd && chdir(spec->cwd) != 0) {
        dprintf(STDERR_FILENO, "sagerun: cannot enter %s: %s\n", spec->cwd, strerror(errno));
        _exit(126);
    }
    execvpe(spec->argv[0], spec->argv, spec->envp);
    dprintf(STDERR_FILENO, "sagerun: cannot run \"%s\": %s\n", spec->argv[0], strerror(errno));
    _exit(127);
}

static int start_rank(struct rank_state *rs, const struct supervisor_options *opt, const sigset_t *old_mask,
                      struct sr_error *err)
{
    int out[2], errp[2], prog[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
        (rs->spec->progress_pipe && pipe2(prog, O_CLOEXEC) != 0)) {
        error_setf(err, "cannot create pipes for rank %d: %s", rs->spec->rank, strerror(errno));
        return -1;
    }
    pid_t launcher = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        error_setf(err, "cannot start rank %d: %s", rs->spec->rank, strerror(errno));
        return -1;
    }
    if (pid == 0)
        child(rs->spec, opt, out[1], errp[1], prog[1], old_mask, launcher);
    setpgid(pid, pid); /* also here, so signals sent right away reach the group */
    close(out[1]);
    close(errp[1]);
    if (prog[1] >= 0)
        close(prog[1]);
    rs->progress_fd = prog[0];
    rs->pid = pid;
    rs->streams[0] = (struct stream){out[0], opt->out_fd, xmalloc(LINE_MAX_BYTES), 0};
    rs->streams[1] = (struct stream){errp[0], opt->err_fd, xmalloc(LINE_MAX_BYTES), 0};
    return 0;
}

static void signal_all(struct rank_state *rs, int count, int sig)
{
    for (int i = 0; i < count; i++)
        if (rs[i].pid > 0)
            kill(-rs[i].pid, sig);
}

static int status_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool failed(int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }

static void describe_failure(const struct rank_state *rs, const char *host, char *out, size_t size)
{
    char how[64];
    if (WIFEXITED(rs->status))
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(rs->status));
    else
        snprintf(how, sizeof how, "was killed by signal SIG%s", sigabbrev_np(WTERMSIG(rs->status)));
    size_t used = rs->spec->name
                      ? (size_t)snprintf(out, size, "%s (host %s) %s", rs->spec->name, host, how)
                      : (size_t)snprintf(out, size, "rank %d (host %s, local rank %d, %s%s) %s", rs->spec->rank,
                                         host, rs->spec->local_rank, rs->spec->gpu ? "GPU " : "no GPU",
                                         rs->spec->gpu ? rs->spec->gpu : "", how);
    char error[600];
    if (used < size && rs->spec->error_file && error_file_summary(rs->spec->error_file, error, sizeof error))
        used += (size_t)snprintf(out + used, size - used, "; error: %s", error);
    bool any = false;
    for (int i = 0; i < SUPERVISOR_TAIL_LINES && used < size; i++) {
        const char *line = rs->tail[(rs->tail_next + i) % SUPERVISOR_TAIL_LINES];
        if (!*line)
            continue;
        used += (size_t)snprintf(out + used, size - used, "%s%s", any ? " | " : "; last output: ", line);
        any = true;
    }
}

struct run {
    struct rank_state *ranks;
    int count, alive, open_streams;
    int first_failure;      /* index, or -1 */
    int stop_signal;        /* signal that asked us to stop, or 0 */
    char job_stop[1024];    /* "" or why the rest of the job asked us to stop */
    double next_tick;
    double kill_at;         /* when to SIGKILL whatever is left; 0: not scheduled */
    bool term_at_kill_at;   /* at kill_at, SIGTERM first (job_stop_delay_s) */
    double drain_until;     /* after every rank is reaped */
    double last_progress;   /* when a rank last printed or wrote to its progress pipe */
};

/* What a rank that just exited left in its pipes, read now: its story
 * (last lines) goes to the job before the loop would read them. */
static void drain_rank(struct run *r, struct rank_state *rs)
{
    for (int k = 0; k < 2; k++) {
        struct stream *st = &rs->streams[k];
        while (st->fd >= 0) {
            struct pollfd p = {st->fd, POLLIN, 0};
            if (poll(&p, 1, 0) <= 0)
                break;
            char chunk[65536];
            ssize_t n = read(st->fd, chunk, sizeof chunk);
            if (n > 0) {
                relay(rs, st, chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close_stream(rs, st);
                r->open_streams--;
            }
        }
    }
}

/* Waits for the ranks by pid: the launcher may have other children (the
 * rendezvous server on the leader) that are not ours to reap here. */
static void reap(struct run *r, const struct supervisor_options *opt)
{
    for (int i = 0; i < r->count; i++) {
        struct rank_state *rs = &r->ranks[i];
        int status;
        if (rs->pid <= 0 || waitpid(rs->pid, &status, WNOHANG) != rs->pid)
            continue;
        kill(-rs->pid, SIGKILL); /* anything the rank left behind in its group */
        rs->pid = 0;
        rs->status = status;
        r->alive--;
        if (failed(status) && r->first_failure < 0 && !r->stop_signal && !r->job_stop[0]) {
            r->first_failure = i;
            drain_rank(r, rs);
            signal_all(r->ranks, r->count, SIGTERM);
            r->kill_at = clock_now() + opt->failure_grace_s;
            if (opt->link && opt->link->on_rank_failed) {
                char why[1024];
                describe_failure(rs, opt->host, why, sizeof why);
                opt->link->on_rank_failed(opt->link->ctx, why);
            }
        }
    }
    if (r->alive == 0 && r->drain_until == 0)
        r->drain_until = clock_now() + 1.0;
}

static void on_signal(struct run *r, int sfd, const struct supervisor_options *opt)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            reap(r, opt);
        } else if (!r->stop_signal) {
            r->stop_signal = (int)si.ssi_signo;
            signal_all(r->ranks, r->count, SIGTERM);
            double at = clock_now() + opt->stop_grace_s;
            if (r->kill_at == 0 || at < r->kill_at)
                r->kill_at = at;
        }
    }
}

/* The rest of the job asks us to stop: end the ranks as after a failure. */
static void job_stop(struct run *r, const struct supervisor_options *opt, const char *why)
{
    if (r->job_stop[0] || r->first_failure >= 0 || r->stop_signal || r->alive == 0)
        return;
    snprintf(r->job_stop, sizeof r->job_stop, "%s", why);
    if (opt->job_stop_delay_s > 0) {
        r->term_at_kill_at = true;
        r->kill_at = clock_now() + opt->job_stop_delay_s;
        return;
    }
    signal_all(r->ranks, r->count, SIGTERM);
    r->kill_at = clock_now() + opt->failure_grace_s;
}

/* The job hung: every rank's stacks, then stop with what they show. */
static void hang(struct run *r, const struct supervisor_options *opt, const char *why)
{
    struct hang_rank *ranks = xcalloc((size_t)r->count, sizeof *ranks);
    int n = 0;
    for (int i = 0; i < r->count; i++)
        if (r->ranks[i].pid > 0)
            ranks[n++] = (struct hang_rank){r->ranks[i].spec->rank, r->ranks[i].pid};
    char summary[1024];
    hang_report(why, opt->host, opt->hang_dir ? opt->hang_dir : ".", ranks, n, summary, sizeof summary);
    free(ranks);
    if (opt->link->on_rank_failed)
        opt->link->on_rank_failed(opt->link->ctx, summary);
    job_stop(r, opt, summary);
}

static void serve_link(struct run *r, const struct supervisor_options *opt, bool readable)
{
    const struct supervisor_link *l = opt->link;
    char why[1024] = "";
    int rc = readable ? l->on_input(l->ctx, why, sizeof why) : 0;
    if (rc == 2 && r->alive > 0 && !r->job_stop[0] && r->first_failure < 0 && !r->stop_signal)
        hang(r, opt, why);
    else if (rc)
        job_stop(r, opt, why);
    if (clock_now() >= r->next_tick) {
        r->next_tick = clock_now() + l->tick_s;
        if (l->on_tick(l->ctx, clock_now() - r->last_progress, why, sizeof why))
            job_stop(r, opt, why);
    }
}

/* Progress bytes: each one is progress; a closed pipe is no more. */
static void read_progress(struct run *r, int fd)
{
    for (int i = 0; i < r->count; i++) {
        struct rank_state *rs = &r->ranks[i];
        if (rs->progress_fd != fd)
            continue;
        char bytes[4096];
        ssize_t n = read(fd, bytes, sizeof bytes);
        if (n > 0) {
            r->last_progress = clock_now();
        } else if (n == 0 || errno != EINTR) {
            close(fd);
            rs->progress_fd = -1;
        }
    }
}

static void read_streams(struct run *r, struct pollfd *fds, int nfds)
{
    for (int k = 1; k < nfds; k++) {
        if (!fds[k].revents)
            continue;
        read_progress(r, fds[k].fd);
        for (int i = 0; i < r->count; i++)
            for (int s = 0; s < 2; s++) {
                struct stream *st = &r->ranks[i].streams[s];
                if (st->fd != fds[k].fd)
                    continue;
                char chunk[65536];
                ssize_t n = read(st->fd, chunk, sizeof chunk);
                if (n > 0) {
                    r->last_progress = clock_now();
                    relay(&r->ranks[i], st, chunk, (size_t)n);
                } else if (n == 0 || errno != EINTR) {
                    close_stream(&r->ranks[i], st);
                    r->open_streams--;
                }
            }
    }
}

static void loop(struct run *r, int sfd, const struct supervisor_options *opt)
{
    struct pollfd *fds = xcalloc((size_t)(3 * r->count + 2), sizeof *fds);
    while (r->alive > 0 || (r->open_streams > 0 && clock_now() < r->drain_until)) {
        int nfds = 0;
        fds[nfds++] = (struct pollfd){sfd, POLLIN, 0};
        int link_slot = -1;
        if (opt->link && r->alive > 0) {
            link_slot = nfds;
            fds[nfds++] = (struct pollfd){opt->link->fd, POLLIN, 0};
        }
        for (int i = 0; i < r->count; i++) {
            for (int s = 0; s < 2; s++)
                if (r->ranks[i].streams[s].fd >= 0)
                    fds[nfds++] = (struct pollfd){r->ranks[i].streams[s].fd, POLLIN, 0};
            if (r->ranks[i].progress_fd >= 0 && r->alive > 0)
                fds[nfds++] = (struct pollfd){r->ranks[i].progress_fd, POLLIN, 0};
        }
        double deadline = r->alive > 0 ? r->kill_at : r->drain_until; /* 0: none */
        if (link_slot >= 0 && (deadline == 0 || r->next_tick < deadline))
            deadline = r->next_tick;
        int timeout = -1;
        if (deadline > 0) {
            double left = deadline - clock_now();
            timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            on_signal(r, sfd, opt);
        if (link_slot >= 0) {
            serve_link(r, opt, fds[link_slot].revents != 0);
            fds[link_slot].revents = 0;
        }
        read_streams(r, fds, nfds);
        if (r->alive > 0 && r->kill_at > 0 && clock_now() >= r->kill_at) {
            signal_all(r->ranks, r->count, r->term_at_kill_at ? SIGTERM : SIGKILL);
            r->kill_at = r->term_at_kill_at ? clock_now() + opt->failure_grace_s : 0;
            r->term_at_kill_at = false;
        }
    }
    free(fds);
    if (r->alive > 0) { /* poll itself failed: end the ranks rather than leave them behind */
        signal_all(r->ranks, r->count, SIGKILL);
        for (int i = 0; i < r->count; i++)
            if (r->ranks[i].pid > 0 && waitpid(r->ranks[i].pid, &r->ranks[i].status, 0) > 0)
                r->ranks[i].pid = 0;
    }
    for (int i = 0; i < r->count; i++) {
        for (int s = 0; s < 2; s++)
            if (r->ranks[i].streams[s].fd >= 0)
                close_stream(&r->ranks[i], &r->ranks[i].streams[s]);
        if (r->ranks[i].progress_fd >= 0)
            close(r->ranks[i].progress_fd);
        r->ranks[i].progress_fd = -1;
    }
}

static void conclude(const struct run *r, const struct supervisor_options *opt, struct supervisor_result *result)
{
    result->exit_status = 0;
    result->failure[0] = '\0';
    result->stopped_by_job = r->job_stop[0] != '\0';
    result->stop_signal = r->stop_signal;
    if (result->stopped_by_job) {
        result->exit_status = EXIT_FAILURE;
        snprintf(result->failure, sizeof result->failure, "%s", r->job_stop);
        return;
    }
    if (r->first_failure >= 0) {
        const struct rank_state *rs = &r->ranks[r->first_failure];
        result->exit_status = status_code(rs->status);
        describe_failure(rs, opt->host, result->failure, sizeof result->failure);
        return;
    }
    for (int i = 0; i < r->count; i++) /* after a stop: the first rank that did not exit 0 */
        if (failed(r->ranks[i].status)) {
            result->exit_status = status_code(r->ranks[i].status);
            size_t used = (size_t)snprintf(result->failure, sizeof result->failure, "stopped by SIG%s: ",
                                           sigabbrev_np(r->stop_signal));
            describe_failure(&r->ranks[i], opt->host, result->failure + used, sizeof result->failure - used);
            return;
        }
}

int supervise(const struct rank_spec *ranks, int count, const struct supervisor_options *opt,
              struct supervisor_result *result, struct sr_error *err)
{
    sigset_t mask, old_mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, &old_mask);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        error_setf(err, "cannot watch signals: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return -1;
    }
    struct run r = {xcalloc((size_t)count, sizeof *r.ranks), count, 0, 0, -1, 0, "", 0, 0, false, 0, clock_now()};
    int rc = 0;
    for (int i = 0; i < count; i++) {
        r.ranks[i].spec = &ranks[i];
        r.ranks[i].streams[0].fd = r.ranks[i].streams[1].fd = r.ranks[i].progress_fd = -1;
        if (!ranks[i].name)
            snprintf(r.ranks[i].tag, sizeof r.ranks[i].tag, "[%s:%d] ", opt->host, ranks[i].rank);
        if (start_rank(&r.ranks[i], opt, &old_mask, err) != 0) {
            rc = -1;
            signal_all(r.ranks, i, SIGKILL);
            break;
        }
        r.alive++;
        r.open_streams += 2;
    }
    if (rc == 0 || r.alive > 0) {
        if (rc != 0) /* a rank could not start: the ones that did are killed and reaped */
            r.kill_at = clock_now();
        loop(&r, sfd, opt);
    }
    if (rc == 0)
        conclude(&r, opt, result);
    for (int i = 0; i < count; i++)
        for (int s = 0; s < 2; s++)
            free(r.ranks[i].streams[s].buf);
    free(r.ranks);
    close(sfd);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}
