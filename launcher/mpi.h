/* mpi.h — running under OpenMPI's mpirun.
 *
 * Two sides. The leader (`sagerun train --launcher mpirun`) replaces itself
 * with an mpirun command built from resourceconfig, as SageMaker's MPI mode
 * does: every host with slots = its ranks, sagerun's own binding instead of
 * mpirun's (--bind-to none), TCP on the job's interface, and on each slot
 * `sagerun train` again. That inner sagerun sees OMPI_COMM_WORLD_* and acts
 * as exactly one rank with MPI's rank numbers. Other hosts wait for the
 * leader's mpirun to start (its orted daemon appears) and to finish.
 */
#ifndef SAGERUN_MPI_H
#define SAGERUN_MPI_H

#include <stdbool.h>

#include "binding.h"
#include "contract.h"
#include "error.h"
#include "plan.h"

#define MPI_WAIT_ENV "SAGERUN_MPI_WAIT" /* seconds the leader waits for the hosts' remote start */
/* What stays in plaintext between hosts under mpirun, whatever the job's
 * encryption (sagerun does not carry mpirun's traffic). */
#define MPIRUN_NOT_ENCRYPTED "MPI's own traffic between hosts (mpirun's daemons and MPI messages over TCP) is not encrypted"
#define DEFAULT_MPI_WAIT_S 120 /* after every host joined: sshd comes up with its container */

/* This process's place in an mpirun job, from OMPI_COMM_WORLD_*. */
struct mpi_rank {
    int rank, size, local_rank, local_size;
};

/* True when started by mpirun; fails (false, err set) on malformed values. */
bool mpi_rank_from_env(struct mpi_rank *out, struct sr_error *err);

/* The mpirun command line (NULL-terminated; free with strv_free) that
 * starts this sagerun binary as `train --ml-root ROOT --bind B --stop-grace S
 * -- CMD...` on every slot of the job. Extra mpirun options come from the
 * sagemaker_mpi_custom_mpi_options hyperparameter, as in the toolkit.
 * Returns NULL with err set if the binary's own path cannot be read. */
char **mpi_command(const struct contract *c, const struct plan *p, enum bind_policy bind, int stop_grace_s,
                   char *const *cmd, int cmd_count, struct sr_error *err);

/* The remote shell mpirun will use: the plm_rsh_agent of
 * sagemaker_mpi_custom_mpi_options (-mca or --mca), else of
 * OMPI_MCA_plm_rsh_agent; NULL: ssh. Free the result. */
char *mpi_rsh_agent(const struct contract *c);

/* One look at whether mpirun can start its daemon on `host` now: with an
 * agent, `AGENT HOST true` succeeds within 10 s; without, `host` resolves
 * and accepts a TCP connection on port 22. Returns true, or false with what
 * was seen in `why`. */
bool mpi_host_ready(const char *host, const char *agent, char *why, size_t size);

#endif
