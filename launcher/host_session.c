#include "host_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "netaddr.h"
#include "parse_int.h"
#include "strbuf.h"

#define VERDICT_WAIT_S 3.0 /* after a local failure, how long to wait for the job's verdict */
#define SEND_TIMEOUT_S 5.0

/* A number of seconds from the environment, if set there. */
static int env_seconds(const char *name, int min, int max, double *out, struct sr_error *err)
{
    int n;
    int rc = parse_int_env(name, min, max, &n, err);
    if (rc > 0)
        *out = n;
    return rc < 0 ? -1 : 0;
}

int host_session_options_from_env(struct host_session_options *o, struct sr_error *err)
{
    *o = (struct host_session_options){RDZV_DEFAULT_PORT, RDZV_DEFAULT_JOIN_TIMEOUT_S,
                                       RDZV_DEFAULT_HEARTBEAT_TIMEOUT_S, DEFAULT_RESOLVE_TIMEOUT_S,
                                       DEFAULT_HANG_TIMEOUT_S};
    if (parse_int_env("SAGERUN_RENDEZVOUS_PORT", 1, 65535, &o->port, err) < 0 ||
        env_seconds("SAGERUN_JOIN_TIMEOUT", 1, 86400, &o->join_timeout_s, err) != 0 ||
        env_seconds("SAGERUN_HEARTBEAT_TIMEOUT", 2, 3600, &o->heartbeat_timeout_s, err) != 0 ||
        env_seconds(RESOLVE_TIMEOUT_ENV, 1, 86400, &o->resolve_timeout_s, err) != 0 ||
        env_seconds(HANG_TIMEOUT_ENV, 0, 7 * 86400, &o->hang_timeout_s, err) != 0)
        return -1;
    return 0;
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

/* --- the supervisor's link ------------------------------------------------ */

static void record_verdict(struct host_session *hs, const struct rdzv_msg *abort)
{
    snprintf(hs->verdict, sizeof hs->verdict, "%s", abort->reason);
    snprintf(hs->verdict_host, sizeof hs->verdict_host, "%s", abort->host);
}

/* What the leader sent since the last call: 1 when it aborted the job (the
 * verdict is recorded; `why` is its reason) or is lost (`why` says how), 2
 * when it says the job hung (`why` says so), else 0; *finished becomes
 * true when it said the job finished. */
static int read_leader(struct host_session *hs, bool *finished, char *why, size_t size)
{
    struct sr_error err = {{0}};
    struct rdzv_msg m;
    int got;
    while ((got = rdzv_next(&hs->client, &m, 0, &err)) == 1) {
        hs->last_heard = clock_now();
        bool abort = m.op == RDZV_ABORT, hang = m.op == RDZV_HANG;
        if (abort) {
            record_verdict(hs, &m);
            snprintf(why, size, "%s", m.reason);
        }
        if (hang)
            snprintf(why, size, "hang: no rank of the job progressed for %.0f s (%s)", m.idle, HANG_TIMEOUT_ENV);
        *finished = *finished || m.op == RDZV_FINISHED;
        rdzv_msg_free(&m);
        if (abort || hang)
            return hang ? 2 : 1;
    }
    if (got < 0) {
        snprintf(why, size, "lost the rendezvous leader: %s", err.text);
        return 1;
    }
    return 0;
}

/* One heartbeat to the leader, with `idle` (seconds since a rank here made
 * progress; < 0: no ranks run here): 1 when the leader is lost. */
static int heartbeat(struct host_session *hs, double idle, char *why, size_t size)
{
    struct sr_error err = {{0}};
    json_t *msg = idle >= 0 ? json_pack("{s:s, s:f}", "op", "heartbeat", "idle", idle)
                            : json_pack("{s:s}", "op", "heartbeat");
    if (rdzv_send(&hs->client, msg, clock_now() + SEND_TIMEOUT_S, &err) != 0) {
        snprintf(why, size, "lost the rendezvous leader: %s", err.text);
        return 1;
    }
    if (clock_now() - hs->last_heard > hs->heartbeat_timeout_s) {
        snprintf(why, size, "the rendezvous leader (%s) was silent for %.0f s", hs->client.c.peer,
                 hs->heartbeat_timeout_s);
        return 1;
    }
    return 0;
}

static int on_input(void *ctx, char *why, size_t size)
{
    char reason[RDZV_MAX_REASON + 64];
    bool finished = false; /* not before this host is done */
    int rc = read_leader(ctx, &finished, reason, sizeof reason);
    if (rc == 0)
        return 0;
    snprintf(why, size, rc == 2 ? "%s" : "job stopped: %s", reason);
    return rc;
}

static int on_tick(void *ctx, double idle, char *why, size_t size)
{
    char reason[RDZV_MAX_REASON + 64];
    if (!heartbeat(ctx, idle, reason, sizeof reason))
        return 0;
    snprintf(why, size, "job stopped: %s", reason);
    return 1;
}

void host_session_report(struct host_session *hs, const char *failure)
{
    struct sr_error err = {{0}};
    if (!hs->reported &&
        rdzv_send(&hs->client, json_pack("{s:s, s:o}", "op", "failed", "reason", rdzv_text(failure)),
                  clock_now() + SEND_TIMEOUT_S, &err) == 0)
        hs->reported = true;
}

static void on_rank_failed(void *ctx, const char *failure)
{
    struct host_session *hs = ctx;
    if (!hs->under_mpirun) /* mpirun's own failure follows from its ranks', which they report */
        host_session_report(hs, failure);
}

int host_session_keep_up(struct host_session *hs, char *why, size_t size)
{
    bool finished = false;
    return read_leader(hs, &finished, why, size) || heartbeat(hs, -1, why, size);
}

/* --- start ---------------------------------------------------------------- */

static int own_address(const struct contract *c, const struct plan *p, struct host_session *hs, struct sr_error *err)
{
    struct in_addr a;
    struct sr_error e = {{0}};
    if (interface_address(c->resources.network_interface_name, &a, &e) != 0) {
        if (p->host_count > 1) {
            error_setf(err, "%s", e.text);
            return -1;
        }
        fprintf(stderr, "sagerun: %s; this one-host job uses loopback (127.0.0.1)\n", e.text);
        a.s_addr = htonl(INADDR_LOOPBACK);
    }
    inet_ntop(AF_INET, &a, hs->host_addr, sizeof hs->host_addr);
    return 0;
}

/* The leader's server runs in a child that dies with the launcher. */
static int start_server(const struct contract *c, const struct plan *p, SSL_CTX *ctx,
                        const struct host_session_options *o, struct sockaddr_in *leader, struct host_session *hs,
                        struct sr_error *err)
{
    int fd, port;
    /* A one-host job needs no known port: nobody else looks for it. */
    if (transport_address(hs->host_addr, p->host_count > 1 ? o->port : 0, leader, err) != 0 ||
        listener_open(leader, 1024, &fd, &port, err) != 0)
        return -1;
    leader->sin_port = htons((uint16_t)port);
    char **hosts = xcalloc(p->host_count + 1, sizeof *hosts);
    for (size_t i = 0; i < p->host_count; i++)
        hosts[i] = (char *)p->hosts[i].name;
    fflush(NULL);
    pid_t launcher = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        error_setf(err, "cannot start the rendezvous server: %s", strerror(errno));
        close(fd);
        free(hosts);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != launcher)
            _exit(1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN); /* a Ctrl-C reaches the launcher, which ends the job its way */
        struct rdzv_server_config cfg = {fd,         ctx, c->training_job.job_name ? c->training_job.job_name : "",
                                         hosts,      p->host_count, o->join_timeout_s, o->heartbeat_timeout_s,
                                         o->hang_timeout_s};
        _exit(rdzv_serve(&cfg));
    }
    close(fd);
    free(hosts);
    hs->server = pid;
    return 0;
}

static int leader_address(const struct plan *p, const struct host_session_options *o, struct sockaddr_in *leader,
                          struct sr_error *err)
{
    struct in_addr a;
    if (resolve_host(p->leader, o->resolve_timeout_s, &a, err) != 0)
        return -1;
    memset(leader, 0, sizeof *leader);
    leader->sin_family = AF_INET;
    leader->sin_addr = a;
    leader->sin_port = htons((uint16_t)o->port);
    return 0;
}

/* Global ranks come from every host's actual rank count. */
static int apply_welcome(const struct rdzv_msg *m, struct plan *p, struct sr_error *err)
{
    if (m->host_count != p->host_count) {
        error_setf(err, "rendezvous: the leader's job has %zu hosts, this host's resourceconfig.json %zu",
                   m->host_count, p->host_count);
        return -1;
    }
    int first = 0;
    for (size_t i = 0; i < p->host_count; i++) {
        if (strcmp(m->hosts[i].name, p->hosts[i].name) != 0) {
            error_setf(err, "rendezvous: host %zu is %s for the leader but %s here", i, m->hosts[i].name,
                       p->hosts[i].name);
            return -1;
        }
        p->hosts[i].ranks = m->hosts[i].ranks;
        p->hosts[i].first_rank = first;
        snprintf(p->hosts[i].rank_source, sizeof p->hosts[i].rank_source, "rendezvous");
        first += m->hosts[i].ranks;
    }
    p->first_rank = p->hosts[p->host_index].first_rank;
    p->world_size = first;
    return 0;
}

static int join(struct host_session *hs, const struct contract *c, struct plan *p, double deadline,
                struct sr_error *err)
{
    json_t *msg = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s}", "op", "join", "job",
                            c->training_job.job_name ? c->training_job.job_name : "", "host",
                            p->hosts[p->host_index].name, "index", (int)p->host_index, "ranks", p->local_ranks,
                            "addr", hs->host_addr);
    if (rdzv_send(&hs->client, msg, deadline, err) != 0)
        return -1;
    for (;;) {
        struct rdzv_msg m;
        int got = rdzv_next(&hs->client, &m, deadline, err);
        if (got <= 0) {
            if (got == 0)
                error_setf(err, "rendezvous: no welcome from the leader before the join deadline");
            return -1;
        }
        int rc = 1;
        if (m.op == RDZV_WELCOME)
            rc = apply_welcome(&m, p, err);
        else if (m.op == RDZV_ABORT) {
            error_setf(err, "rendezvous: the leader refused or aborted the job: %s", m.reason);
            rc = -1;
        }
        rdzv_msg_free(&m);
        if (rc <= 0)
            return rc;
    }
}

int host_session_start(struct host_session *hs, const struct contract *c, struct plan *p, SSL_CTX *ctx,
                       const struct host_session_options *o, struct sr_error *err)
{
    memset(hs, 0, sizeof *hs);
    hs->client.c.fd = -1;
    hs->heartbeat_timeout_s = o->heartbeat_timeout_s;
    struct sockaddr_in leader;
    if (own_address(c, p, hs, err) != 0)
        return -1;
    if (p->is_leader ? start_server(c, p, ctx, o, &leader, hs, err) : leader_address(p, o, &leader, err))
        return -1;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &leader.sin_addr, ip, sizeof ip);
    snprintf(hs->rendezvous, sizeof hs->rendezvous, "%s:%d", ip, ntohs(leader.sin_port));
    double deadline = clock_now() + o->join_timeout_s + 30; /* the server decides first, then says why */
    if (rdzv_client_connect(&hs->client, &leader, ctx, deadline, err) != 0 || join(hs, c, p, deadline, err) != 0) {
        rdzv_client_close(&hs->client);
        return -1;
    }
    conn_describe(&hs->client.c, hs->security, sizeof hs->security);
    hs->last_heard = clock_now();
    hs->link = (struct supervisor_link){hs->client.c.fd, RDZV_HEARTBEAT_S, on_input, on_tick, on_rank_failed, hs};
    /* From here on a stop is the job's to handle, never a default death:
     * the supervisor takes it while ranks run, host_session_finish after. */
    sigset_t stops;
    stop_signals(&stops);
    sigprocmask(SIG_BLOCK, &stops, NULL);
    return 0;
}

/* --- finish --------------------------------------------------------------- */

static void await_verdict(struct host_session *hs)
{
    double until = clock_now() + VERDICT_WAIT_S;
    struct sr_error err = {{0}};
    struct rdzv_msg m;
    while (!hs->verdict[0] && rdzv_next(&hs->client, &m, until, &err) == 1) {
        if (m.op == RDZV_ABORT)
            record_verdict(hs, &m);
        rdzv_msg_free(&m);
    }
}

/* After "done": 0 the job finished, 1 it failed or the leader is lost
 * (`failure` set), -1 nothing decisive yet; a heartbeat when `tick`. */
static int job_end(struct host_session *hs, const char *host, bool tick, char *failure, size_t size)
{
    char reason[RDZV_MAX_REASON + 64];
    bool finished = false;
    bool failed = read_leader(hs, &finished, reason, sizeof reason) ||
                  (!finished && tick && heartbeat(hs, -1, reason, sizeof reason));
    if (failed) {
        if (hs->under_mpirun && hs->verdict[0])
            snprintf(failure, size, "%s", hs->verdict);
        else
            snprintf(failure, size, "job failed: %s; on this host (%s) every rank had finished", reason, host);
        return 1;
    }
    return finished ? 0 : -1;
}

/* Tells the leader this host was stopped by `sig`: the others then end
 * naming the stop, not what it did to them. */
static void say_stopped(struct host_session *hs, int sig)
{
    struct sr_error err = {{0}};
    char name[16];
    snprintf(name, sizeof name, "SIG%s", sigabbrev_np(sig));
    rdzv_send(&hs->client, json_pack("{s:s, s:s}", "op", "stopped", "signal", name), clock_now() + SEND_TIMEOUT_S,
              &err);
}

/* This host is done; the job may not be: stay, heartbeating, until the
 * leader says it finished or failed. A stop signal ends the wait (the
 * job is being stopped; this host's part succeeded): returns 2 then. */
static int await_job_end(struct host_session *hs, const char *host, char *failure, size_t size)
{
    sigset_t stops;
    stop_signals(&stops);
    int sfd = signalfd(-1, &stops, SFD_NONBLOCK | SFD_CLOEXEC);
    double next_tick = clock_now() + RDZV_HEARTBEAT_S;
    int result;
    for (;;) {
        bool tick = clock_now() >= next_tick;
        if ((result = job_end(hs, host, tick, failure, size)) >= 0)
            break;
        if (tick)
            next_tick = clock_now() + RDZV_HEARTBEAT_S;
        struct pollfd fds[2] = {{hs->client.c.fd, POLLIN, 0}, {sfd, POLLIN, 0}};
        double left = next_tick - clock_now();
        poll(fds, sfd >= 0 ? 2 : 1, left > 0 ? (int)(left * 1000) + 1 : 0);
        struct signalfd_siginfo si;
        if (sfd >= 0 && fds[1].revents && read(sfd, &si, sizeof si) == sizeof si) {
            fprintf(stderr, "sagerun: %s: stopped while waiting for the rest of the job; every rank here had "
                            "finished\n", host);
            say_stopped(hs, (int)si.ssi_signo);
            result = 2;
            break;
        }
    }
    if (sfd >= 0)
        close(sfd);
    return result;
}

/* A failed host's text: under mpirun the verdict as it is; else this
 * host's own failure, after the verdict when another host failed first. */
static void tell_failure(const struct host_session *hs, const char *host, const struct supervisor_result *local,
                         char *failure, size_t size)
{
    if (hs->verdict[0] && hs->under_mpirun)
        snprintf(failure, size, "%s", hs->verdict);
    else if (hs->verdict[0] && !local->stopped_by_job && strcmp(hs->verdict_host, host) != 0)
        snprintf(failure, size, "job failed: %s; on this host (%s): %s", hs->verdict, host, local->failure);
    else
        snprintf(failure, size, "%s", local->failure);
}

int host_session_finish(struct host_session *hs, const char *host, const struct supervisor_result *local,
                        char *failure, size_t size)
{
    struct sr_error err = {{0}};
    double deadline = clock_now() + SEND_TIMEOUT_S;
    int status = 0;
    failure[0] = '\0';
    if (local->stop_signal) {
        /* Stopped: say so, so that the others end naming the stop, and leave
         * at once (when the whole job is stopped, every host does the same). */
        say_stopped(hs, local->stop_signal);
        snprintf(failure, size, "%s", local->failure);
        status = local->exit_status == 0 && !local->failure[0] ? 2 : 1;
    } else if (local->exit_status == 0 && !local->failure[0]) {
        rdzv_send(&hs->client, json_pack("{s:s, s:i}", "op", "done", "status", 0), deadline, &err);
        status = await_job_end(hs, host, failure, size);
    } else if (local->stopped_by_job) {
        tell_failure(hs, host, local, failure, size);
    } else {
        if (!hs->reported) { /* mpirun's failure: its slots may be telling the cause */
            await_verdict(hs);
            if (!hs->verdict[0])
                host_session_report(hs, local->failure);
        }
        await_verdict(hs);
        tell_failure(hs, host, local, failure, size);
    }
    rdzv_client_close(&hs->client);
    if (hs->server > 0) { /* the leader is the last to leave: after its server (which ends the job) */
        int wait_status;
        while (waitpid(hs->server, &wait_status, 0) < 0 && errno == EINTR)
            ;
        hs->server = 0;
    }
    return status == 1 || failure[0] ? 1 : 0;
}
