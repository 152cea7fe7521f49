/* checkpoint.h — training state on disk, for Managed Spot Training and stops.
 *
 * One file per checkpoint, <dir>/ckpt-<step, 10 digits>.bin: a fixed header
 * (magic "SRCKPT01", model fingerprint, step, data position, seed), the
 * parameters and both AdamW moments (fp32, native little-endian), then a
 * SHA-256 of everything before it. Written atomically: a temporary file in
 * the same directory, fsync, rename, fsync of the directory; so a crash at
 * any moment leaves either the old set of checkpoints or the new one, never a
 * torn file under a checkpoint's name. Older checkpoints beyond `keep` are
 * deleted after a new one is in place.
 *
 * Loading tries the newest first; a file that is truncated or fails its
 * checksum is reported and skipped, the next newest is tried. A checkpoint of
 * a different model (fingerprint) is an error, never silently ignored.
 */
#ifndef SAGERUN_CHECKPOINT_H
#define SAGERUN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "token_data.h"

struct checkpoint_state {
    uint64_t fingerprint; /* of the model's shape: resuming into another shape is refused */
    uint64_t step;        /* optimizer steps taken */
    struct data_position data;
    uint64_t seed;
    size_t num_params;
    float *params, *m, *v; /* num_params each, the caller's memory */
};

/* Creates `dir` (as SageMaker would have) and checks that a file can be
 * written in it, before the first step: a job must not train for an hour
 * and then fail at its first checkpoint. `origin` says where the path came
 * from, for the message. */
int checkpoint_dir_prepare(const char *dir, const char *origin, struct sr_error *err);

int checkpoint_save(const char *dir, const struct checkpoint_state *s, int keep, struct sr_error *err);

/* Fills s->params/m/v (allocated by the caller for s->num_params) and the
 * scalars from the newest valid checkpoint, whose path goes to `loaded`.
 * Returns 1 when one was loaded, 0 when there is none (or only invalid ones,
 * each reported on `log`), -1 on an error. */
int checkpoint_load_latest(const char *dir, struct checkpoint_state *s, char *loaded, size_t loaded_size, FILE *log,
                           struct sr_error *err);

#endif
