/* supervisor.h — start this host's ranks and own them until they end.
 *
 * Each rank runs in its own process group (so signals reach anything it
 * spawns), starts with SIGTERM, SIGINT and SIGCHLD unblocked whatever the
 * launcher blocks, dies with the launcher (PR_SET_PDEATHSIG), and is bound
 * to its planned CPUs and NUMA memory in the child before exec. Its stdout and
 * stderr come back through pipes and are written out line by line, each
 * line whole and prefixed with "[host:rank] "; a last partial line is
 * completed at exit.
 *
 * A failure is told as "rank R (host, local rank, GPU) exited with status
 * N", then the exception the rank wrote to its error file (error_file.h),
 * then its last lines of output.
 *
 * Fail fast: when a rank exits non-zero or by a signal, the others get
 * SIGTERM, then SIGKILL after failure_grace_s. SIGTERM or SIGINT to the
 * launcher (SageMaker stop, MaxRuntime, spot interruption) is forwarded to
 * every rank, which get stop_grace_s before SIGKILL. Never hangs: once every
 * rank is reaped, leftovers in their process groups are killed and output
 * is drained for at most a second.
 */
#ifndef SAGERUN_SUPERVISOR_H
#define SAGERUN_SUPERVISOR_H

#include <hwloc.h>
#include <stdbool.h>

#include "error.h"

#define SUPERVISOR_TAIL_LINES 3

struct rank_spec {
    int rank;
    int local_rank;
    char *const *argv;
    char *const *envp;
    hwloc_const_bitmap_t cpuset;  /* NULL or empty: no CPU binding */
    hwloc_const_bitmap_t nodeset; /* NULL or empty: no memory binding */
    const char *gpu;              /* bus id, or NULL for a CPU rank */
    const char *cwd;              /* working directory, or NULL to keep the launcher's */
    const char *error_file;       /* its TORCHELASTIC_ERROR_FILE (error_file.h), or NULL */
    const char *name;             /* NULL: a rank, told as "rank R (host, local rank, GPU)"; else
                                     this (mpirun), its lines passed on untagged (its ranks tag theirs) */
    bool progress_pipe;           /* fd SUPERVISOR_PROGRESS_FD is a pipe whose every byte is progress */
};

/* A rank makes progress when it prints (a line or part of one), and when
 * it writes to its progress pipe (the built-in trainer: a byte a step). */
#define SUPERVISOR_PROGRESS_FD 3
#define PROGRESS_FD_ENV "SAGERUN_PROGRESS_FD" 

/* The job beyond this host (the rendezvous): its connection is polled with
 * the ranks, it hears of this host's first failed rank at once, and each
 * tick of how long since a rank here made progress (`idle`). The callbacks
 * return 0 to go on, or 1 when the job must stop, with the reason in
 * `why`: the ranks then get SIGTERM and the failure grace; on_input returns
 * 2 when the job hung: the ranks' stacks are collected first (hang.h) and
 * the failure is `why` with what they were doing. */
struct supervisor_link {
    int fd; /* polled for input */
    double tick_s;
    int (*on_input)(void *ctx, char *why, size_t size);
    int (*on_tick)(void *ctx, double idle, char *why, size_t size);
    void (*on_rank_failed)(void *ctx, const char *failure);
    void *ctx;
};

struct supervisor_options {
    const char *host;
    double failure_grace_s;
    double stop_grace_s;
    hwloc_topology_t topology; /* used for binding in the child */
    int out_fd;                /* where ranks' stdout lines go */
    int err_fd;                /* where ranks' stderr lines go */
    const struct supervisor_link *link; /* NULL: a job of this host alone */
    const char *hang_dir;               /* where a hang's stacks go (hang-<host>.txt) */
    double job_stop_delay_s;   /* when the link says stop, the time the ranks get to end of themselves
                                  before SIGTERM (mpirun: it aborts its ranks itself, and a SIGTERM
                                  during its abort crashes it); 0 for ranks */
};

struct supervisor_result {
    int exit_status;   /* the launcher's: 0, a rank's exit code, or 128 + signal */
    char failure[1024]; /* "" or what went wrong first, with the rank's last lines */
    bool stopped_by_job; /* the link said stop: failure holds its reason */
    int stop_signal;     /* the SIGTERM or SIGINT that stopped the ranks, or 0 */
};

int supervise(const struct rank_spec *ranks, int count, const struct supervisor_options *opt,
              struct supervisor_result *result, struct sr_error *err);

#endif
