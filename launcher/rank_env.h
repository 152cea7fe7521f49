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
 *
 * The rest of what torchrun's agent gives a worker, with torchrun's meaning
 * (tests/fixtures/torch holds a real torchrun's, compared in CI):
 * GROUP_WORLD_SIZE (hosts), ROLE_NAME "default", TORCHELASTIC_RUN_ID (the
 * job name: torchrun's rendezvous id; "none" as torchrun's default when
 * there is none), TORCHELASTIC_RESTART_COUNT and _MAX_RESTARTS "0" (sagerun
 * never restarts ranks in place: a failed job fails),
 * TORCHELASTIC_SIGNALS_TO_HANDLE "SIGTERM,SIGINT" (the signals sagerun's
 * launcher takes as a stop and forwards; torchrun's list adds SIGHUP and
 * SIGQUIT), and, unless the user set them, TORCH_NCCL_ASYNC_ERROR_HANDLING=1
 * and OMP_NUM_THREADS = the CPUs the rank is bound to (torchrun's 1 starves
 * a CPU rank). TORCHELASTIC_USE_AGENT_STORE is "False", where torchrun says
 * "True": torchrun's agent serves the TCPStore at MASTER_ADDR:MASTER_PORT,
 * sagerun does not, so rank 0 must (True would make every rank a client of
 * a store nobody serves).
 *
 * With a flight-recorder prefix (a program of the job's own), PyTorch's
 * NCCL flight recorder is turned on unless the user set it: each pair of
 * names (current, and before torch 2.6) is set only when neither is:
 * TORCH_FR_BUFFER_SIZE / TORCH_NCCL_TRACE_BUFFER_SIZE = 2000 entries,
 * TORCH_FR_DUMP_ON_TIMEOUT / TORCH_NCCL_DUMP_ON_TIMEOUT = 1,
 * TORCH_FR_DUMP_TEMP_FILE / TORCH_NCCL_DEBUG_INFO_TEMP_FILE = the prefix.
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
    int group_world_size;    /* hosts in the job */
    const char *run_id;      /* the job's name, or NULL */
    int cpus;                /* CPUs the rank may run on (OMP_NUM_THREADS), at least 1 */
    const char *flight_recorder; /* PyTorch's flight-recorder dump prefix (flight_recorder.h), or NULL */
};

/* Returns a NULL-terminated, sorted "NAME=value" array; free with strv_free. */
char **rank_env_build(char *const *base, const json_t *sm_vars, const struct rank_identity *id);

#endif
