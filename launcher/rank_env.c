#include "rank_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_inventory.h"
#include "instance_types.h"
#include "pyjson.h"
#include "strbuf.h"

static void set_int(json_t *env, const char *name, int value)
{
    char text[24];
    snprintf(text, sizeof text, "%d", value);
    json_object_set_new(env, name, json_string(text));
}

char **rank_env_build(char *const *base, const json_t *sm_vars, const struct rank_identity *id)
{
    json_t *env = json_object();
    for (char *const *e = base; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        char *name = strndup(*e, (size_t)(eq - *e));
        json_t *value = json_string(eq + 1);
        if (name && value) /* entries that are not UTF-8 cannot be kept in JSON; SageMaker sets none */
            json_object_set_new(env, name, value);
        else
            json_decref(value);
        free(name);
    }
    json_object_update(env, (json_t *)sm_vars);
    set_int(env, "RANK", id->rank);
    set_int(env, "LOCAL_RANK", id->local_rank);
    set_int(env, "WORLD_SIZE", id->world_size);
    set_int(env, "LOCAL_WORLD_SIZE", id->local_world_size);
    set_int(env, "GROUP_RANK", id->group_rank);
    set_int(env, "ROLE_RANK", id->rank);
    set_int(env, "ROLE_WORLD_SIZE", id->world_size);
    json_object_set_new(env, "MASTER_ADDR", json_string(id->master_addr));
    if (id->gpu_bus_id)
        json_object_set_new(env, GPU_ENV, json_string(id->gpu_bus_id));
    else
        json_object_del(env, GPU_ENV);
    set_int(env, "MASTER_PORT", id->master_port);
    if (id->error_file)
        json_object_set_new(env, "TORCHELASTIC_ERROR_FILE", json_string(id->error_file));
    set_int(env, "GROUP_WORLD_SIZE", id->group_world_size);
    json_object_set_new(env, "ROLE_NAME", json_string("default"));
    json_object_set_new(env, "TORCHELASTIC_RUN_ID", json_string(id->run_id && *id->run_id ? id->run_id : "none"));
    json_object_set_new(env, "TORCHELASTIC_RESTART_COUNT", json_string("0"));
    json_object_set_new(env, "TORCHELASTIC_MAX_RESTARTS", json_string("0"));
    json_object_set_new(env, "TORCHELASTIC_USE_AGENT_STORE", json_string("False"));
    json_object_set_new(env, "TORCHELASTIC_SIGNALS_TO_HANDLE", json_string("SIGTERM,SIGINT"));
    char cpus[24];
    snprintf(cpus, sizeof cpus, "%d", id->cpus > 0 ? id->cpus : 1);
    enum efa_support efa = instance_type_efa(id->instance_type);
    const char *defaults[][2] = {
        {"NCCL_SOCKET_IFNAME", id->network_interface},
        /* gloo binds to what the host name resolves to, which in a container
         * may be 127.0.0.1: then peers on other hosts cannot reach it. */
        {"GLOO_SOCKET_IFNAME", id->network_interface},
        {"FI_PROVIDER", efa != EFA_NONE ? "efa" : NULL},
        {"NCCL_PROTO", efa != EFA_NONE ? "simple" : NULL},
        {"FI_EFA_USE_DEVICE_RDMA", efa == EFA_NCCL_RDMA ? "1" : NULL},
        {"RDMAV_FORK_SAFE", efa == EFA_NCCL_RDMA ? "1" : NULL},
        {"NCCL_HOSTID", id->nccl_hostid},
        {"TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"},
        {"OMP_NUM_THREADS", cpus},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (defaults[i][1] && !json_object_get(env, defaults[i][0]))
            json_object_set_new(env, defaults[i][0], json_string(defaults[i][1]));
    /* The flight recorder: torch reads the current name, then the old one. */
    const char *recorder[][3] = {
        {"TORCH_FR_BUFFER_SIZE", "TORCH_NCCL_TRACE_BUFFER_SIZE", "2000"},
        {"TORCH_FR_DUMP_ON_TIMEOUT", "TORCH_NCCL_DUMP_ON_TIMEOUT", "1"},
        {"TORCH_FR_DUMP_TEMP_FILE", "TORCH_NCCL_DEBUG_INFO_TEMP_FILE", id->flight_recorder},
    };
    for (size_t i = 0; id->flight_recorder && i < sizeof recorder / sizeof *recorder; i++)
        if (!json_object_get(env, recorder[i][0]) && !json_object_get(env, recorder[i][1]))
            for (int k = 0; k < 2; k++)
                json_object_set_new(env, recorder[i][k], json_string(recorder[i][2]));

    size_t n;
    const char **names = json_sorted_keys(env, &n);
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        struct strbuf sb;
        strbuf_init(&sb);
        strbuf_printf(&sb, "%s=%s", names[i], json_string_value(json_object_get(env, names[i])));
        out[i] = strbuf_detach(&sb);
    }
    free(names);
    json_decref(env);
    return out;
}
