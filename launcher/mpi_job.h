/* mpi_job.h — a job run by OpenMPI's mpirun, on every host.
 *
 * Every host first joins the job through the rendezvous, as for sagerun's
 * own launcher (join deadline, heartbeats, a stop or a lost host told to
 * all). Then the leader checks that mpirun can reach every other host the
 * way it will start its daemon there (mpi_host_ready), for up to
 * SAGERUN_MPI_WAIT seconds, and only then runs mpirun as its one
 * supervised child (output passed on as it is; a stop forwarded). A host
 * that never becomes reachable fails the job naming it. Other hosts have
 * no process of theirs to run: they stay in the job until it ends.
 *
 * Each slot's sagerun (mpi.h) supervises its one rank; when that rank
 * fails of itself, the slot tells the job at once (failed_on, naming its
 * host), before mpirun hears of the exit and stops the other ranks, so the
 * job's verdict is that rank's failure. Under mpirun every host ends with
 * that verdict as its failure, the same text everywhere, and exits 1.
 */
#ifndef SAGERUN_MPI_JOB_H
#define SAGERUN_MPI_JOB_H

#include "error.h"
#include "host_session.h"
#include "options.h"
#include "tls.h"

/* The leader, joined: waits for the hosts, runs mpirun with cmd on every
 * slot. Returns the exit status (err set when the job failed). */
int mpi_job_lead(const struct contract *c, const struct plan *p, const struct launch_options *o, char **cmd,
                 int cmd_count, const char *cwd, bool encrypted, struct host_session *hs, struct sr_error *err);

/* Any other host, joined: stays until the job ends. */
int mpi_job_serve(const struct contract *c, struct host_session *hs, struct sr_error *err);

/* A slot whose rank failed of itself: tells the job at `rendezvous`
 * ("ip:port", SAGERUN_RENDEZVOUS from the leader). Returns 0 when it was told. */
int mpi_job_report(const struct contract *c, const struct tls_settings *tls, const char *rendezvous,
                   const char *failure, struct sr_error *err);

#endif
