/* plan.h — what this host does in the job, derived from the contract.
 *
 * Hosts are ordered as SageMaker lists them (sorted); the first is the
 * leader. Each host runs one rank per GPU (one CPU rank on a host without
 * GPUs) unless --nproc-per-host / SAGERUN_NPROC_PER_HOST says otherwise.
 * Global rank = sum of ranks of the hosts before it + local rank, which is
 * host index x ranks per host when all hosts are alike. Rank counts of other
 * hosts come from their instance type; rendezvous confirms them later.
 */
#ifndef SAGERUN_PLAN_H
#define SAGERUN_PLAN_H

#include <stdbool.h>

#include "contract.h"
#include "gpu_inventory.h"

#define DEFAULT_MASTER_PORT 7777 /* what SageMaker's newer drivers set */
#define NPROC_ENV "SAGERUN_NPROC_PER_HOST"
#define MASTER_PORT_ENV "SAGERUN_MASTER_PORT"
#define RANKS_PER_GPU_ENV "SAGERUN_RANKS_PER_GPU" /* ranks sharing a GPU (tests on one GPU) */
#define MAX_RANKS_PER_HOST 1024

struct host_plan {
    const char *name;
    const char *instance_type;
    int ranks;
    int first_rank;
    char rank_source[160];
};

struct channel_plan {
    const struct channel *channel;
    char *path;   /* directory (File, FastFile) or first FIFO <name>_0 (Pipe) */
    bool present; /* whether path exists now, of the right kind */
};

struct plan_options {
    int nproc_per_host;         /* 0: one rank per GPU */
    const char *nproc_origin;   /* "--nproc-per-host" or the variable name */
    int master_port;            /* 0: DEFAULT_MASTER_PORT */
    const char *nvml_library;   /* NULL: libnvidia-ml.so.1 */
};

struct plan {
    size_t host_index;
    size_t host_count;
    const char *leader;
    bool is_leader;
    const char *master_addr;
    int master_port;
    struct gpu_inventory gpus;
    struct host_plan *hosts; /* host_count entries */
    int local_ranks;
    int first_rank;
    int world_size;
    struct channel_plan *channels;
    size_t channel_count;
    char warning[320];             /* empty, or a mismatch worth reporting */
};

int plan_build(const struct contract *c, const struct plan_options *opt, struct plan *p,
               struct sr_error *err);
void plan_free(struct plan *p);

#endif
