/* The environment of a rank: launcher environment, SM_* variables, torchrun
 * identity, and the NCCL/EFA settings sagemaker-training chooses per
 * instance type, with the user's own settings kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rank_env.h"
#include "strbuf.h"

static const char *lookup(char **env, const char *name)
{
    size_t n = strlen(name);
    for (char **e = env; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static char **build(const char *instance_type, char *const *base)
{
    json_t *sm = json_pack("{s:s, s:s}", "SM_CURRENT_HOST", "algo-2", "PATH", "/from/sm");
    struct rank_identity id = {5, 1, 8, 4, 1, "algo-1", 7777, "eth0", instance_type, NULL, NULL, "/tmp/e/rank-5.json",
                               2, "job-7", 12, "/tmp/e/flight-recorder/rank_"};
    char **env = rank_env_build(base, sm, &id);
    json_decref(sm);
    return env;
}

static void identity_and_sources(void **state)
{
    (void)state;
    char *base[] = {"PATH=/usr/bin", "HOME=/root", "RANK=99", "NOEQUALS", NULL};
    char **env = build("ml.c5.xlarge", base);
    assert_string_equal(lookup(env, "HOME"), "/root");
    assert_string_equal(lookup(env, "PATH"), "/from/sm"); /* SM_* set wins over the launcher's */
    assert_string_equal(lookup(env, "RANK"), "5");        /* the identity wins over both */
    assert_string_equal(lookup(env, "LOCAL_RANK"), "1");
    assert_string_equal(lookup(env, "WORLD_SIZE"), "8");
    assert_string_equal(lookup(env, "LOCAL_WORLD_SIZE"), "4");
    assert_string_equal(lookup(env, "GROUP_RANK"), "1");
    assert_string_equal(lookup(env, "ROLE_RANK"), "5");
    assert_string_equal(lookup(env, "ROLE_WORLD_SIZE"), "8");
    assert_string_equal(lookup(env, "MASTER_ADDR"), "algo-1");
    assert_string_equal(lookup(env, "MASTER_PORT"), "7777");
    assert_string_equal(lookup(env, "NCCL_SOCKET_IFNAME"), "eth0");
    assert_string_equal(lookup(env, "GLOO_SOCKET_IFNAME"), "eth0");
    assert_string_equal(lookup(env, "TORCHELASTIC_ERROR_FILE"), "/tmp/e/rank-5.json");
    assert_string_equal(lookup(env, "SM_CURRENT_HOST"), "algo-2");
    assert_null(lookup(env, "FI_PROVIDER")); /* not an EFA instance type */
    assert_null(lookup(env, "NCCL_PROTO"));
    assert_null(lookup(env, "NOEQUALS"));
    for (char **e = env; e[1]; e++) /* sorted, so the output is reproducible */
        assert_true(strcmp(e[0], e[1]) < 0);
    strv_free(env);
}

/* torchrun's other worker variables, with the user's OMP_NUM_THREADS and
 * TORCH_NCCL_ASYNC_ERROR_HANDLING kept, and an inherited agent-store flag
 * overridden (nothing serves one). */
static void torchrun_worker_variables(void **state)
{
    (void)state;
    char *base[] = {"PATH=/usr/bin", "TORCHELASTIC_USE_AGENT_STORE=True", NULL};
    char **env = build("ml.c5.xlarge", base);
    assert_string_equal(lookup(env, "GROUP_WORLD_SIZE"), "2");
    assert_string_equal(lookup(env, "ROLE_NAME"), "default");
    assert_string_equal(lookup(env, "TORCHELASTIC_RUN_ID"), "job-7");
    assert_string_equal(lookup(env, "TORCHELASTIC_RESTART_COUNT"), "0");
    assert_string_equal(lookup(env, "TORCHELASTIC_MAX_RESTARTS"), "0");
    assert_string_equal(lookup(env, "TORCHELASTIC_USE_AGENT_STORE"), "False");
    assert_string_equal(lookup(env, "TORCHELASTIC_SIGNALS_TO_HANDLE"), "SIGTERM,SIGINT");
    assert_string_equal(lookup(env, "TORCH_NCCL_ASYNC_ERROR_HANDLING"), "1");
    assert_string_equal(lookup(env, "OMP_NUM_THREADS"), "12");
    strv_free(env);
    char *mine[] = {"OMP_NUM_THREADS=3", "TORCH_NCCL_ASYNC_ERROR_HANDLING=0", NULL};
    env = build("ml.c5.xlarge", mine);
    assert_string_equal(lookup(env, "OMP_NUM_THREADS"), "3");
    assert_string_equal(lookup(env, "TORCH_NCCL_ASYNC_ERROR_HANDLING"), "0");
    strv_free(env);
}

/* PyTorch's flight recorder: both names of each setting, unless the user
 * set either; none of it without a prefix (sagerun's own ranks). */
static void flight_recorder_settings(void **state)
{
    (void)state;
    char *base[] = {"PATH=/usr/bin", "TORCH_NCCL_TRACE_BUFFER_SIZE=64", NULL};
    char **env = build("ml.p5.48xlarge", base);
    assert_string_equal(lookup(env, "TORCH_NCCL_TRACE_BUFFER_SIZE"), "64"); /* the user's, old name */
    assert_null(lookup(env, "TORCH_FR_BUFFER_SIZE"));
    assert_string_equal(lookup(env, "TORCH_FR_DUMP_ON_TIMEOUT"), "1");
    assert_string_equal(lookup(env, "TORCH_NCCL_DUMP_ON_TIMEOUT"), "1");
    assert_string_equal(lookup(env, "TORCH_FR_DUMP_TEMP_FILE"), "/tmp/e/flight-recorder/rank_");
    assert_string_equal(lookup(env, "TORCH_NCCL_DEBUG_INFO_TEMP_FILE"), "/tmp/e/flight-recorder/rank_");
    strv_free(env);
    char *plain[] = {"PATH=/usr/bin", NULL};
    env = build("ml.p5.48xlarge", plain);
    assert_string_equal(lookup(env, "TORCH_FR_BUFFER_SIZE"), "2000");
    assert_string_equal(lookup(env, "TORCH_NCCL_TRACE_BUFFER_SIZE"), "2000");
    strv_free(env);
    json_t *sm = json_object();
    struct rank_identity own = {0, 0, 1, 1, 0, "algo-1", 7777, "eth0", "ml.p5.48xlarge", NULL, NULL, NULL, 1, NULL,
                                1, NULL};
    env = rank_env_build(plain, sm, &own);
    assert_null(lookup(env, "TORCH_FR_DUMP_TEMP_FILE"));
    strv_free(env);
    json_decref(sm);
}

/* A GPU rank names its GPU; ranks sharing one get a host id each, unless
 * the user chose NCCL_HOSTID; a CPU rank drops an inherited SAGERUN_GPU. */
static void gpu_and_shared_gpu_settings(void **state)
{
    (void)state;
    json_t *sm = json_object();
    struct rank_identity id = {1, 1, 2, 2, 0, "algo-1", 7777, "eth0", "ml.p5.48xlarge", "00000000:53:00.0",
                               "algo-1-rank1", NULL, 1, NULL, 1, NULL};
    char *base[] = {"PATH=/usr/bin", NULL};
    char **env = rank_env_build(base, sm, &id);
    assert_string_equal(lookup(env, "SAGERUN_GPU"), "00000000:53:00.0");
    assert_string_equal(lookup(env, "NCCL_HOSTID"), "algo-1-rank1");
    strv_free(env);

    char *mine[] = {"NCCL_HOSTID=chosen", "SAGERUN_GPU=stale", NULL};
    id.gpu_bus_id = NULL;
    env = rank_env_build(mine, sm, &id);
    assert_string_equal(lookup(env, "NCCL_HOSTID"), "chosen");
    assert_null(lookup(env, "SAGERUN_GPU"));
    strv_free(env);

    id.nccl_hostid = NULL;
    env = rank_env_build(base, sm, &id);
    assert_null(lookup(env, "NCCL_HOSTID"));
    strv_free(env);
    json_decref(sm);
}

static void efa_settings_follow_the_instance_type(void **state)
{
    (void)state;
    char *base[] = {"PATH=/usr/bin", NULL};
    char **p4d = build("ml.p4d.24xlarge", base);
    assert_string_equal(lookup(p4d, "FI_PROVIDER"), "efa");
    assert_string_equal(lookup(p4d, "FI_EFA_USE_DEVICE_RDMA"), "1");
    assert_string_equal(lookup(p4d, "RDMAV_FORK_SAFE"), "1");
    assert_string_equal(lookup(p4d, "NCCL_PROTO"), "simple");
    strv_free(p4d);
    char **p5 = build("ml.p5.48xlarge", base); /* EFA, but not in the toolkit's RDMA list */
    assert_string_equal(lookup(p5, "FI_PROVIDER"), "efa");
    assert_null(lookup(p5, "FI_EFA_USE_DEVICE_RDMA"));
    strv_free(p5);
    char *user[] = {"FI_PROVIDER=tcp", "NCCL_SOCKET_IFNAME=ens5", "NCCL_PROTO=LL128", "GLOO_SOCKET_IFNAME=ens6", NULL};
    char **mine = build("ml.p4d.24xlarge", user);
    assert_string_equal(lookup(mine, "FI_PROVIDER"), "tcp");
    assert_string_equal(lookup(mine, "NCCL_SOCKET_IFNAME"), "ens5");
    assert_string_equal(lookup(mine, "GLOO_SOCKET_IFNAME"), "ens6");
    assert_string_equal(lookup(mine, "NCCL_PROTO"), "LL128");
    assert_string_equal(lookup(mine, "FI_EFA_USE_DEVICE_RDMA"), "1");
    strv_free(mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_and_sources),
        cmocka_unit_test(torchrun_worker_variables),
        cmocka_unit_test(flight_recorder_settings),
        cmocka_unit_test(gpu_and_shared_gpu_settings),
        cmocka_unit_test(efa_settings_follow_the_instance_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
