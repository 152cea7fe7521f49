#include "mpi_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "mpi.h"
#include "parse_int.h"
#include "strbuf.h"
#include "supervisor.h"

extern char **environ;

#define MPIRUN_OWN_ABORT_S 2.0  /* after the job's abort, mpirun's time to end of itself */
#define MPIRUN_STOP_GRACE_S 3.0 /* then, after SIGTERM, before SIGKILL */

/* A failure that is `host`'s, told by whoever saw it. */
static int tell_failed_on(struct rdzv_client *cl, const char *host, const char *reason, struct sr_error *err)
{
    return rdzv_send(cl, json_pack("{s:s, s:s, s:o}", "op", "failed_on", "host", host, "reason", rdzv_text(reason)),
                     clock_now() + 5.0, err);
}

/* Until mpirun can reach every other host: 0; 1 when the job stopped
 * meanwhile; 2 when a host stayed out of reach (told to the job). */
static int await_remote_start(const struct plan *p, const char *agent, int wait_s, struct host_session *hs,
                              char *why, size_t size)
{
    bool *ready = xcalloc(p->host_count, sizeof *ready);
    ready[p->host_index] = true;
    double until = clock_now() + wait_s;
    int result = -1;
    while (result < 0) {
        size_t missing = p->host_count; /* the first host out of reach, and what was seen */
        char seen[512] = "", look[512];
        for (size_t i = 0; i < p->host_count; i++) {
            if (ready[i] || (ready[i] = mpi_host_ready(p->hosts[i].name, agent, look, sizeof look)))
                continue;
            if (missing == p->host_count) {
                missing = i;
                snprintf(seen, sizeof seen, "%s", look);
            }
        }
        if (missing == p->host_count) {
            result = 0;
        } else if (host_session_keep_up(hs, why, size)) {
            result = 1;
        } else if (clock_now() >= until) {
            snprintf(why, size, "mpirun cannot start ranks on %s: not reachable within %d s (%s=%d): %s",
                     p->hosts[missing].name, wait_s, MPI_WAIT_ENV, wait_s, seen);
            struct sr_error err = {{0}};
            if (tell_failed_on(&hs->client, p->hosts[missing].name, why, &err) == 0)
                hs->reported = true;
            result = 2;
        } else {
            clock_sleep(0.5);
        }
    }
    free(ready);
    return result;
}

static int mpi_wait_seconds(int *wait_s, struct sr_error *err)
{
    *wait_s = DEFAULT_MPI_WAIT_S;
    return parse_int_env(MPI_WAIT_ENV, 1, 86400, wait_s, err) < 0 ? -1 : 0;
}

/* mpirun as the one supervised child of the leader. */
static int supervise_mpirun(const struct contract *c, const struct launch_options *o, char **argv, const char *cwd,
                            struct host_session *hs, struct supervisor_result *result, struct sr_error *err)
{
    struct rank_spec spec = {0, 0, argv, environ, NULL, NULL, NULL, cwd, NULL, "mpirun", false};
    char hang_dir[FS_PATH_BYTES];
    snprintf(hang_dir, sizeof hang_dir, "%s/output/data", c->ml_root);
    struct supervisor_options so = {c->resources.current_host, MPIRUN_STOP_GRACE_S, o->stop_grace_s, NULL,
                                    STDOUT_FILENO, STDERR_FILENO, &hs->link, hang_dir, MPIRUN_OWN_ABORT_S};
    return supervise(&spec, 1, &so, result, err);
}

static int end_of_job(const struct contract *c, struct host_session *hs, const struct supervisor_result *local,
                      struct sr_error *err)
{
    char failure[2048];
    int failed = host_session_finish(hs, c->resources.current_host, local, failure, sizeof failure);
    if (failure[0])
        error_setf(err, "%s", failure);
    return failed ? EXIT_JOB_FAILED : 0;
}

int mpi_job_lead(const struct contract *c, const struct plan *p, const struct launch_options *o, char **cmd,
                 int cmd_count, const char *cwd, bool encrypted, struct host_session *hs, struct sr_error *err)
{
    hs->under_mpirun = true;
    int wait_s;
    if (mpi_wait_seconds(&wait_s, err) != 0)
        return -1;
    char *agent = mpi_rsh_agent(c);
    struct supervisor_result result = {0};
    int waited = await_remote_start(p, agent, wait_s, hs, result.failure, sizeof result.failure);
    free(agent);
    if (waited != 0) {
        result.exit_status = EXIT_JOB_FAILED;
        result.stopped_by_job = waited == 1;
        return end_of_job(c, hs, &result, err);
    }
    /* Slots tell the job of their ranks' failures: they need its address. */
    setenv("SAGERUN_RENDEZVOUS", hs->rendezvous, 1);
    char **argv = mpi_command(c, p, o->bind, o->stop_grace_s, cmd, cmd_count, err);
    if (!argv)
        return -1;
    fprintf(stderr, "sagerun: every host is reachable; starting mpirun for %d ranks on %zu hosts\n", p->world_size,
            p->host_count);
    if (encrypted)
        fprintf(stderr, "sagerun: warning: encryption is on, but under --launcher mpirun %s; only NCCL between "
                        "hosts is encrypted (the sagerun-tls plugin)\n", MPIRUN_NOT_ENCRYPTED);
    fflush(NULL);
    int rc = supervise_mpirun(c, o, argv, cwd, hs, &result, err);
    strv_free(argv);
    if (rc != 0)
        return -1;
    return end_of_job(c, hs, &result, err);
}

int mpi_job_serve(const struct contract *c, struct host_session *hs, struct sr_error *err)
{
    hs->under_mpirun = true;
    fprintf(stderr, "sagerun: %s: the leader's mpirun starts this host's ranks; waiting for the job to end\n",
            c->resources.current_host);
    fflush(NULL);
    struct supervisor_result nothing_to_run = {0};
    return end_of_job(c, hs, &nothing_to_run, err);
}

int mpi_job_report(const struct contract *c, const struct tls_settings *tls, const char *rendezvous,
                   const char *failure, struct sr_error *err)
{
    struct sockaddr_in leader;
    if (transport_endpoint(rendezvous, "mpirun slot: SAGERUN_RENDEZVOUS", &leader, err) != 0)
        return -1;
    SSL_CTX *ctx = NULL;
    if (tls->mode != TLS_OFF && !(ctx = tls_context_create(tls, err)))
        return -1;
    struct rdzv_client cl;
    int rc = rdzv_client_connect(&cl, &leader, ctx, clock_now() + 5.0, err);
    if (rc == 0) {
        rc = tell_failed_on(&cl, c->resources.current_host, failure, err);
        rdzv_client_close(&cl);
    }
    tls_context_free(ctx);
    return rc;
}
