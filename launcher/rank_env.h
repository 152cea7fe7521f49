/* rank_env.h — the environment of one rank.
 *
 * Starts from the launcher's own environment, adds the SM_* variables of
 * `sagerun env`, then the rank's identity in torchrun's names (RANK,
 * LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, ROLE_RANK,
 * ROLE_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a torch.distributed script
 * with init_method="env://" works unchanged, and NCCL_SOCKET_IFNAME and
 * GLOO_SOCKET_IFNAME from the job's network interface unless the user set
 * them (gloo otherwise binds to whatever the host name resolves to, which in
 * a container may be loopback). On EFA instance types it
 * adds what sagemaker-training's torchrun path sets (FI_PROVIDER=efa,
 * FI_EFA_USE_DEVICE_RDMA=1 and RDMAV_FORK_SAFE=1 where RDMA is listed, and
 * NCCL_PROTO=simple for EFA's out-of-order delivery), each only if the user
 * has not set it. Later sources win. A GPU rank gets SAGERUN_GPU, its GPU's
 * PCI bus id (the built-in trainer's device); ranks that share a GPU
 * (SAGERUN_RANKS_PER_GPU) get an NCCL_HOSTID each, so NCCL treats them as
 * separate hosts instead of refusing two ranks on one GPU. Every rank gets a
 * TORCHELASTIC_ERROR_FILE of its own, as torchrun gives its workers
 * (replacing one inherited from the launcher's environment, as torchrun does).
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
    const char *gpu_bus_id;  /* the rank's GPU (SAGERUN_GPU), or NULL for a CPU rank */
    const char *nccl_hostid; /* NCCL_HOSTID unless the user set one; NULL: NCCL's own */
    const char *error_file;  /* TORCHELASTIC_ERROR_FILE, the rank's own (error_file.h); NULL: none */
};

/* Returns a NULL-terminated, sorted "NAME=value" array; free with strv_free. */
char **rank_env_build(char *const *base, const json_t *sm_vars, const struct rank_identity *id);

#endif
