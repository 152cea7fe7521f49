/* host_session.h — this host's membership in the job (see rendezvous.h).
 *
 * Start: find this host's address (the job's network interface; a one-host
 * job without that interface uses loopback and says so), on the leader start
 * the rendezvous server, resolve the leader's name (with retries: SageMaker's
 * DNS can lag), join with this host's rank count and wait for every host.
 * The welcome fixes each host's rank count, so the plan's global ranks and
 * world size are set from it. While the ranks run, the session is the
 * supervisor's link: heartbeats both ways, this host's failure reported at
 * once, an abort from the leader stops the ranks, and the heartbeats carry
 * how long since a rank last made progress, for the leader's hang watch;
 * when it says the job hung, the supervisor collects the ranks' stacks
 * (hang.h) before it stops them. Finish: say done or
 * failed; explain a failure by the job's verdict (which host failed first);
 * a done host waits for the job's end; the leader then waits for its
 * server, which ends when every host has hung up.
 */
#ifndef SAGERUN_HOST_SESSION_H
#define SAGERUN_HOST_SESSION_H

#include <sys/types.h>

#include "contract.h"
#include "plan.h"
#include "rendezvous.h"
#include "supervisor.h"

struct host_session_options {
    int port;                  /* the leader's rendezvous port (multi-host jobs) */
    double join_timeout_s;     /* how long hosts may take to arrive */
    double heartbeat_timeout_s;
    double resolve_timeout_s;
    double hang_timeout_s;     /* the leader's hang watch (rendezvous.h); 0: off */
};

#define HANG_TIMEOUT_ENV "SAGERUN_HANG_TIMEOUT"
#define DEFAULT_HANG_TIMEOUT_S 1800 /* 30 min: longer than any sane step, shorter than a lost day */

/* Defaults, then SAGERUN_RENDEZVOUS_PORT, SAGERUN_JOIN_TIMEOUT,
 * SAGERUN_HEARTBEAT_TIMEOUT, SAGERUN_RESOLVE_TIMEOUT, SAGERUN_HANG_TIMEOUT. */
int host_session_options_from_env(struct host_session_options *o, struct sr_error *err);

struct host_session {
    struct rdzv_client client;
    pid_t server;             /* leader: the rendezvous server process */
    char host_addr[16];       /* where this host's ranks listen */
    char rendezvous[32];      /* "ip:port" of the leader's server, for ranks */
    char security[160];       /* how the connection to the leader is protected */
    double heartbeat_timeout_s, last_heard;
    char verdict[2048];       /* the leader's abort reason, once known */
    char verdict_host[256];
    bool reported;            /* failure already sent */
    bool under_mpirun;        /* the ranks are mpirun's: every host tells the job's verdict as it is */
    struct supervisor_link link;
};

int host_session_start(struct host_session *hs, const struct contract *c, struct plan *p, SSL_CTX *ctx,
                       const struct host_session_options *o, struct sr_error *err);

/* Between the start and the ranks (the leader's wait for its hosts under
 * mpirun): takes what the leader sent and heartbeats. Returns 1 when the
 * job stopped or the leader is lost (`why` says which), else 0. */
int host_session_keep_up(struct host_session *hs, char *why, size_t size);

/* Tells the job this host failed, once. */
void host_session_report(struct host_session *hs, const char *failure);

/* Ends this host's part. `local` is the supervisor's result; `failure`
 * gets the text for the failure file ("" when all went well). A host whose
 * ranks all succeeded says done and stays in the job until the leader says
 * it finished (every host done) or failed, so no host leaves a job that is
 * still running and every host ends with the job's status; a stop signal
 * ends that wait. SIGTERM and SIGINT stay blocked from the session's start
 * to the process's end: a stop after this host's part succeeded must not
 * turn its status into 143. The leader waits for its server last.
 * Returns 0, or 1 when the job failed (the local failure, or one
 * elsewhere after this host was done). A failure that was not reported
 * while the ranks ran (mpirun's: its slots report their own ranks) is
 * reported only if no verdict comes first. Under mpirun every host's
 * failure is the verdict itself, the same text on every host. */
int host_session_finish(struct host_session *hs, const char *host, const struct supervisor_result *local,
                        char *failure, size_t size);

#endif
