/* rank_env.h — the environment of one rank.
 *
 * Starts from the launcher's own environment, adds the SM_* variables of
 * `sagerun env`, then the rank's identity in torchrun's names (RANK,
 * LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, ROLE_RANK,
 * ROLE_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a torch.distributed script
 * with init_method="env://" works unchanged, and NCCL_SOCKET_IFNAME from the
 * job's network interface unless the user set it. On EFA instance types it
 * adds what sagemaker-training's torchrun path sets (FI_PROVIDER=efa,
 * FI_EFA_USE_DEVICE_RDMA=1 and RDMAV_FORK_SAFE=1 where RDMA is listed, and
 * NCCL_PROTO=simple for EFA's out-of-order delivery), each only if the user
 * has not set it. Later sources win.
 */
#ifndef SAGERUN_RANK_ENV_H
#define SAGERUN_RANK_ENV_H

#include <jansson.h>

struct rank_identity {
    int rank;
    int local_rank;
    int world_size;
    int local_world_size;
    int group_rank; /* the host's index */
    const char *master_addr;
    int master_port;
    const char *network_interface;
    const char *instance_type;
};

/* Returns a NULL-terminated, sorted "NAME=value" array; free with strv_free. */
char **rank_env_build(char *const *base, const json_t *sm_vars, const struct rank_identity *id);

#endif
