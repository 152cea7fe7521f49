/* sample_job.h — the embedded sample job: a complete /opt/ml tree per host.
 *
 * `sagerun sample` writes <dir>/algo-1 ... <dir>/algo-N (each host's name,
 * with host_suffix after it when given), each shaped like the tree SageMaker
 * gives one container of an N-host job (instance group hosts deliberately
 * unsorted, as SageMaker writes them). Nothing in a tree names the machine
 * that wrote it, so a tree works wherever it is mounted (at /opt/ml in a
 * container): checkpoints go to <ML root>/checkpoints unless
 * checkpoint_path asks for a LocalPath. With encryption on, a
 * fresh random job key goes into every host's "tls" channel
 * (input/data/tls/psk), so the hosts can authenticate each other. The
 * train and validation channels hold a synthetic token dataset
 * (synthetic_data.h) and the hyperparameters configure the built-in
 * trainer's tiny model for it. The README's first command and the
 * multi-host tests run sagerun on these trees.
 */
#ifndef SAGERUN_SAMPLE_JOB_H
#define SAGERUN_SAMPLE_JOB_H

#include <stdbool.h>

#include "error.h"

#define SAMPLE_MAX_HOSTS 64
#define SAMPLE_HOST_NAME_MAX 64 /* of the suffix */

/* The synthetic dataset every host gets (FullyReplicated). */
#define SAMPLE_VOCAB 64
#define SAMPLE_BRANCHING 4
#define SAMPLE_DATA_SEED 2024
#define SAMPLE_TRAIN_SHARDS 2
#define SAMPLE_SHARD_TOKENS (256 * 1024)
#define SAMPLE_VALIDATION_TOKENS (32 * 1024)

struct sample_options {
    int hosts;
    const char *instance_type;
    bool encryption;
    const char *host_suffix;     /* NULL: the bare algo-N names */
    const char *checkpoint_path; /* NULL: no LocalPath (the default, under the ML root) */
};

int sample_job_write(const char *dir, const struct sample_options *opt, struct sr_error *err);

#endif
