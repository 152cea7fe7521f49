/* sample_job.h — the embedded sample job: a complete /opt/ml tree per host.
 *
 * `sagerun sample` writes <dir>/algo-1 ... <dir>/algo-N, each shaped like the
 * tree SageMaker gives one container of an N-host job (instance group hosts
 * deliberately unsorted, as SageMaker writes them). With encryption on, a
 * fresh random job key goes into every host's "tls" channel
 * (input/data/tls/psk), so the hosts can authenticate each other. The README's first
 * command and the multi-host tests run sagerun on these trees.
 */
#ifndef SAGERUN_SAMPLE_JOB_H
#define SAGERUN_SAMPLE_JOB_H

#include <stdbool.h>

#include "error.h"

#define SAMPLE_MAX_HOSTS 64

struct sample_options {
    int hosts;
    const char *instance_type;
    bool encryption;
};

int sample_job_write(const char *dir, const struct sample_options *opt, struct sr_error *err);

#endif
