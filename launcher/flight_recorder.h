/* flight_recorder.h — PyTorch's NCCL flight recorder, kept for the job.
 *
 * torch.distributed's NCCL backend can keep a ring of its last collectives
 * and dump it, per rank, when a collective times out: the record that says
 * which rank stopped where. For a program of the job's own, sagerun turns
 * it on unless the user set it (rank_env.h: TORCH_FR_BUFFER_SIZE,
 * TORCH_FR_DUMP_ON_TIMEOUT, TORCH_FR_DUMP_TEMP_FILE, and their older
 * TORCH_NCCL_* names for torch before 2.6), with the dumps going to a
 * directory of the launch's own. When the job fails, what the ranks dumped
 * is copied to <ML root>/output/data/flight-recorder/ (uploaded with the
 * job's output) and named in the failure reason.
 */
#ifndef SAGERUN_FLIGHT_RECORDER_H
#define SAGERUN_FLIGHT_RECORDER_H

#include <stddef.h>

/* Makes <launch_dir>/flight-recorder; `prefix` gets the dump path prefix
 * torch appends the rank to. Returns 0, or -1 (prefix "") when it cannot. */
int flight_recorder_prepare(const char *launch_dir, char *prefix, size_t size);

/* Copies the dumps to <ml_root>/output/data/flight-recorder/ and appends
 * "; flight recorder: ..." naming them to `failure` (when there are any). */
void flight_recorder_gather(const char *launch_dir, const char *ml_root, char *failure, size_t size);

/* Removes the dumps and their directory. */
void flight_recorder_remove(const char *launch_dir);

#endif
