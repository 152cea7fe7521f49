/* failure.h — the SageMaker failure file.
 *
 * SageMaker shows the content of /opt/ml/output/failure as the job's
 * FailureReason, which the API caps at 1024 characters. failure_write()
 * writes the message atomically (temporary file, fsync, then link) so a
 * reader never sees half a message, creating <ml_root>/output if needed, and
 * cuts the message at a UTF-8 character boundary to fit the cap. The first
 * failure wins: when the file exists, it is kept, because the processes
 * stopped as a consequence (other ranks under mpirun) report later than the
 * one that caused it. SageMaker gives every container a fresh output dir.
 */
#ifndef SAGERUN_FAILURE_H
#define SAGERUN_FAILURE_H

#include <stddef.h>

#include "error.h"

#define FAILURE_REASON_MAX 1024

/* Returns 0 when written or when an earlier failure is already recorded;
 * on error fills err (naming the path) and returns -1. */
int failure_write(const char *ml_root, const char *message, struct sr_error *err);

/* Removes a failure file an earlier run left (a rerun on the same tree:
 * SageMaker itself gives every container a fresh output/). Returns 0 when
 * there is none now, -1 (err naming the path) when it cannot be removed. */
int failure_clear(const char *ml_root, struct sr_error *err);

/* Length of the longest prefix of `message` of at most `max` bytes that does
 * not split a UTF-8 sequence. Exposed for tests. */
size_t failure_utf8_prefix(const char *message, size_t max);

#endif
