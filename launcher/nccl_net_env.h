/* nccl_net_env.h — what NCCL needs to encrypt traffic between hosts.
 *
 * With inter-container traffic encryption on, every rank gets
 *   NCCL_NET=sagerun-tls       NCCL uses sagerun's plugin or fails (never
 *                              falls back to its plaintext sockets);
 *   NCCL_NET_PLUGIN=<path>     libnccl-net-sagerun.so beside the sagerun
 *                              binary or in ../lib (SAGERUN_NCCL_NET_PLUGIN
 *                              overrides; a user's own NCCL_NET_PLUGIN stays);
 *   NCCL_OOB_NET_ENABLE=1      NCCL's bootstrap ring over the plugin too;
 *   NCCL_RAS_ENABLE=0          no RAS sockets (plaintext, between hosts).
 * A user's NCCL_NET naming another net is an error, as is a missing plugin
 * on a host with GPUs. With encryption off nothing is set: NCCL keeps its
 * own transports (EFA through aws-ofi-nccl where the instance has it).
 */
#ifndef SAGERUN_NCCL_NET_ENV_H
#define SAGERUN_NCCL_NET_ENV_H

#include <jansson.h>

#include "error.h"
#include "tls.h"

#define NCCL_NET_PLUGIN_FILE "libnccl-net-sagerun.so"
#define NCCL_NET_NAME "sagerun-tls"

/* Adds the variables to `vars` (an object of strings); `gpus` is this
 * host's GPU count. */
int nccl_net_env_add(const struct tls_settings *tls, int gpus, json_t *vars, struct sr_error *err);

/* The plugin's path: SAGERUN_NCCL_NET_PLUGIN, else beside the running
 * binary, else ../lib from it. -1 if none exists (err says where it looked). */
int nccl_net_plugin_path(char *path, size_t size, struct sr_error *err);

#endif
