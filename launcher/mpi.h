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

#define MPI_WAIT_ENV "SAGERUN_MPI_WAIT" /* seconds a worker waits for the leader's orted */
/* What stays in plaintext between hosts under mpirun, whatever the job's
 * encryption (sagerun does not carry mpirun's traffic). */
#define MPIRUN_NOT_ENCRYPTED "MPI's own traffic between hosts (mpirun's daemons and MPI messages over TCP) is not encrypted"
#define DEFAULT_MPI_WAIT_S 900          /* the toolkit also waits up to 15 minutes */

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

/* Worker side: waits until an orted process appears (within wait_s) and then
 * until none is left. */
int mpi_wait_for_leader(int wait_s, struct sr_error *err);

#endif
