#include "nccl_net_env.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fs.h"

int nccl_net_plugin_path(char *path, size_t size, struct sr_error *err)
{
    return fs_find_companion(NCCL_NET_PLUGIN_FILE, "SAGERUN_NCCL_NET_PLUGIN", "NCCL TLS plugin", path, size, err);
}

static void set_default(json_t *vars, const char *name, const char *value)
{
    const char *mine = getenv(name);
    if (!mine || !*mine)
        json_object_set_new(vars, name, json_string(value));
}

int nccl_net_env_add(const struct tls_settings *tls, int gpus, json_t *vars, struct sr_error *err)
{
    if (tls->mode == TLS_OFF)
        return 0;
    const char *net = getenv("NCCL_NET");
    if (net && *net && strcasecmp(net, NCCL_NET_NAME) != 0) {
        error_setf(err, "inter-container traffic encryption is on but NCCL_NET=%s would carry gradients between hosts "
                        "in plaintext; unset it (sagerun sets NCCL_NET=%s)", net, NCCL_NET_NAME);
        return -1;
    }
    json_object_set_new(vars, "NCCL_NET", json_string(NCCL_NET_NAME));
    const char *users = getenv("NCCL_NET_PLUGIN");
    if (!users || !*users) {
        char path[FS_PATH_BYTES];
        struct sr_error why = {0};
        if (nccl_net_plugin_path(path, sizeof path, &why) == 0) {
            json_object_set_new(vars, "NCCL_NET_PLUGIN", json_string(path));
        } else if (gpus > 0 || getenv("SAGERUN_NCCL_NET_PLUGIN")) {
            error_setf(err, "inter-container traffic encryption is on%s, but %s",
                       gpus > 0 ? " and this host has GPUs" : "", why.text);
            return -1;
        } /* no GPU, no NCCL: NCCL_NET alone still keeps any NCCL from plaintext */
    }
    set_default(vars, "NCCL_OOB_NET_ENABLE", "1");
    set_default(vars, "NCCL_RAS_ENABLE", "0");
    return 0;
}
