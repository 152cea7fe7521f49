/* trainer.h — one rank of the built-in data-parallel GPT trainer, what
 * `sagerun train` runs in every rank when the job names no program.
 *
 * Every rank holds the whole model. Each optimizer step takes one global
 * batch (batch_size sequences) from the train channel; rank r computes
 * gradients on sequences [r*b, (r+1)*b) (b = batch_size / world size) in
 * micro-batches (with a ShardedByS3Key channel each host reads a window of
 * batch_size / hosts sequences from its own files, its local rank l taking
 * [l*b, (l+1)*b) of it, and the hosts agree at start that an epoch ends
 * after the fewest windows any host's files give), the gradients are summed over all ranks by the host
 * backend's ring all-reduce (each pre-scaled by 1/(batch_size*seq_len), so
 * the sum is the global mean's gradient), clipped by global norm, and every
 * rank applies the same AdamW step, so the replicas stay bit-identical.
 *
 * SIGTERM or SIGINT: the rank finishes its step; the ranks agree (a flag
 * all-reduced with the loss) to stop after the same step, each host's local
 * rank 0 writes a checkpoint and rank 0 the model, and the rank exits 0.
 * At start, the newest valid checkpoint is loaded, so a restarted job
 * resumes where it stopped and ends with the same bits as one that never
 * stopped. Rank 0 prints the metrics lines (metrics.h).
 */
#ifndef SAGERUN_TRAINER_H
#define SAGERUN_TRAINER_H

#include "contract.h"
#include "error.h"

/* Reads the job under `ml_root` and the rank's identity from the launcher's
 * variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, and those of
 * host_backend.h); trains; returns 0 when training ended or was stopped
 * cleanly. */
int trainer_run(const char *ml_root, struct sr_error *err);

/* Whether the trainer can read the job's data as the contract delivers it:
 * a "train" channel, and for it and "validation" (when present) llm.c token
 * shards (token_data.h). Refused, naming the channel and the setting,
 * rather than read as something they are not: RecordIO outside Pipe mode
 * (SageMaker wraps nothing there), ShardedByS3Key in Pipe mode on several
 * hosts (the epoch's end must be agreed before it starts), a ContentType
 * other than application/octet-stream. The launcher checks this before any
 * rank starts; every rank checks it again. */
int trainer_check_channels(const struct contract *c, struct sr_error *err);

/* How the trainer reads channel `ch` (for `sagerun env`), or why it
 * refuses it, or that it does not read it. */
void trainer_describe_channel(const struct contract *c, const struct channel *ch, char *out, size_t size);

#endif
