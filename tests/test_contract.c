/* The contract reader and the plan on the fixture trees in tests/fixtures/ml:
 * what is read, what defaults apply, how ranks and encryption are decided,
 * and the failure file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "contract.h"
#include "failure.h"
#include "plan.h"
#include "sample_job.h"
#include "test_util.h"
#include "tls.h"

static const char *fixtures;
/* An NVML that cannot exist, so plans do not depend on this machine's GPUs. */
static const struct plan_options no_gpu = {.nvml_library = "/nonexistent/libnvidia-ml.so.1"};

static void load_fixture(const char *name, struct contract *c)
{
    char root[4096];
    snprintf(root, sizeof root, "%s/%s", fixtures, name);
    struct sr_error err = {{0}};
    int rc = contract_load(c, root, &err);
    if (rc != 0)
        fail_msg("%s", err.text);
}

/* The job's encryption, as the launcher decides it (tls.h), with
 * SAGERUN_INTER_CONTAINER_ENCRYPTION unset (main unsets it). */
static struct encryption_decision job_encryption(const struct contract *c)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/trainingjobconfig.json", c->config_dir);
    struct encryption_decision d;
    struct sr_error err = {{0}};
    if (encryption_decide(&c->training_job, path, NULL, &d, &err) != 0)
        fail_msg("%s", err.text);
    return d;
}

static void homogeneous_job_is_read(void **state)
{
    (void)state;
    struct contract c;
    load_fixture("homogeneous-2host", &c);
    const struct resource_config *rc = &c.resources;
    assert_string_equal(rc->current_host, "algo-2");
    assert_int_equal(rc->host_count, 2);
    assert_int_equal(rc->current_host_index, 1);
    assert_int_equal(rc->group_count, 1);
    assert_string_equal(rc->groups[0].hosts[0], "algo-2"); /* group order kept, not sorted */
    assert_int_equal(c.inputs.channel_count, 2);
    assert_string_equal(c.inputs.channels[0].name, "train");
    assert_int_equal(c.inputs.channels[0].mode, INPUT_MODE_FILE);
    assert_int_equal(c.inputs.channels[1].mode, INPUT_MODE_PIPE);
    assert_string_equal(c.inputs.channels[1].s3_distribution_type, "ShardedByS3Key");
    assert_string_equal(c.checkpoint.local_path, "/opt/ml/checkpoints");
    assert_string_equal(c.checkpoint.s3_uri, "s3://bucket/checkpoints");
    assert_true(json_is_real(json_object_get(c.hyperparameters.decoded, "learning_rate")));
    assert_string_equal(json_string_value(json_object_get(c.hyperparameters.decoded, "notjson")), "{oops");
    assert_false(job_encryption(&c).enabled);

    struct plan p;
    struct sr_error err = {{0}};
    assert_int_equal(plan_build(&c, &no_gpu, &p, &err), 0);
    assert_int_equal(p.gpus.count, 0);
    assert_non_null(strstr(p.gpus.source, "cannot be loaded"));
    assert_int_equal(p.world_size, 2); /* one CPU rank per host without GPUs */
    assert_int_equal(p.first_rank, 1);
    assert_false(p.is_leader);
    assert_string_equal(p.leader, "algo-1");
    assert_int_equal(p.master_port, DEFAULT_MASTER_PORT);
    assert_non_null(strstr(p.warning, "ml.p4d.24xlarge has 8 GPUs, but this host sees 0"));
    assert_true(p.channels[1].path[strlen(p.channels[1].path) - 1] == '0'); /* Pipe: <channel>_0 FIFO */
    assert_false(p.channels[0].present);
    plan_free(&p);
    contract_free(&c);
}

static void defaults_follow_the_toolkit(void **state)
{
    (void)state;
    struct contract c;
    load_fixture("minimal", &c);
    assert_string_equal(c.resources.current_instance_type, "local");
    assert_string_equal(c.resources.current_group_name, "homogeneousCluster");
    assert_string_equal(c.resources.network_interface_name, "eth0");
    assert_int_equal(c.inputs.channel_count, 0);
    assert_non_null(strstr(c.checkpoint.local_path, "/minimal/checkpoints"));
    assert_null(c.checkpoint.s3_uri);
    assert_null(c.training_job.raw);
    contract_free(&c);
}

static void heterogeneous_ranks_come_from_instance_types(void **state)
{
    (void)state;
    struct contract c;
    load_fixture("heterogeneous", &c);
    struct encryption_decision enc = job_encryption(&c);
    assert_true(enc.enabled);
    assert_non_null(strstr(enc.source, "trainingjobconfig.json EnableInterContainerTrafficEncryption=true"));
    struct plan p;
    struct sr_error err = {{0}};
    assert_int_equal(plan_build(&c, &no_gpu, &p, &err), 0);
    /* algo-1, algo-2: ml.p4d.24xlarge, 8 GPUs each; algo-3 (this host): a CPU instance, one rank. */
    assert_int_equal(p.hosts[0].ranks, 8);
    assert_int_equal(p.hosts[1].ranks, 8);
    assert_int_equal(p.hosts[2].ranks, 1);
    assert_int_equal(p.world_size, 17);
    assert_int_equal(p.first_rank, 16);
    assert_string_equal(p.warning, "");
    plan_free(&p);

    struct plan_options forced = no_gpu;
    forced.nproc_per_host = 4;
    forced.nproc_origin = "--nproc-per-host";
    forced.master_port = 29500;
    assert_int_equal(plan_build(&c, &forced, &p, &err), 0);
    assert_int_equal(p.world_size, 12);
    assert_int_equal(p.first_rank, 8);
    assert_int_equal(p.master_port, 29500);
    assert_string_equal(p.hosts[0].rank_source, "--nproc-per-host");
    plan_free(&p);
    contract_free(&c);
}

struct encryption_case {
    const char *job_flag; /* "true", "false" or NULL (no trainingjobconfig.json flag) */
    const char *env;      /* SAGERUN_INTER_CONTAINER_ENCRYPTION or NULL */
    bool enabled;
    const char *source_part;
};

static void encryption_decision_fails_closed(void **state)
{
    (void)state;
    static const struct encryption_case cases[] = {
        {NULL, NULL, false, "default: no EnableInterContainerTrafficEncryption"},
        {NULL, "true", true, "SAGERUN_INTER_CONTAINER_ENCRYPTION=true"},
        {NULL, "0", false, "SAGERUN_INTER_CONTAINER_ENCRYPTION=0"},
        {"true", NULL, true, "tj.json EnableInterContainerTrafficEncryption=true"},
        {"true", "false", true, "(overrides SAGERUN_INTER_CONTAINER_ENCRYPTION=false)"},
        {"false", "TRUE", true, "SAGERUN_INTER_CONTAINER_ENCRYPTION=TRUE (tj.json says"},
        {"false", "false", false, "tj.json EnableInterContainerTrafficEncryption=false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct training_job_config tj = {0};
        struct sr_error err = {{0}};
        if (cases[i].job_flag) { /* the flag as the contract's parser keeps it */
            char text[128];
            snprintf(text, sizeof text, "{\"EnableInterContainerTrafficEncryption\": %s}", cases[i].job_flag);
            assert_int_equal(training_job_config_parse(json_loads(text, 0, NULL), "tj.json", &tj, &err), 0);
        }
        struct encryption_decision out;
        assert_int_equal(encryption_decide(&tj, "tj.json", cases[i].env, &out, &err), 0);
        assert_int_equal(out.enabled, cases[i].enabled);
        if (!strstr(out.source, cases[i].source_part))
            fail_msg("case %zu: source \"%s\" lacks \"%s\"", i, out.source, cases[i].source_part);
        json_decref(tj.raw);
    }
}

/* The embedded sample: every host's tree loads, hosts agree on the job,
 * the File channel directory exists, and nothing in a tree names the
 * machine that wrote it (checkpoints under its own ML root, wherever it is
 * mounted). */
static void sample_job_trees_load(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    struct sr_error err = {{0}};
    struct sample_options so = {.hosts = 12, .instance_type = "ml.p5.48xlarge", .encryption = true};
    assert_int_equal(sample_job_write(dir, &so, &err), 0);
    for (int h = 1; h <= so.hosts; h++) {
        char root[4200];
        snprintf(root, sizeof root, "%s/algo-%d", dir, h);
        struct contract c;
        if (contract_load(&c, root, &err) != 0)
            fail_msg("%s", err.text);
        assert_int_equal(c.resources.host_count, 12);
        assert_string_equal(c.resources.hosts[1], "algo-10"); /* sorted as text, as SageMaker does */
        assert_string_equal(c.resources.groups[0].hosts[0], "algo-12");
        assert_string_equal(c.resources.current_host, c.resources.hosts[c.resources.current_host_index]);
        assert_true(job_encryption(&c).enabled);
        assert_string_equal(c.checkpoint.local_path, c.default_checkpoint_dir);
        assert_null(json_object_get(c.checkpoint.raw, "LocalPath"));
        struct plan p;
        assert_int_equal(plan_build(&c, &no_gpu, &p, &err), 0);
        assert_true(p.channels[0].present);
        assert_string_equal(p.leader, "algo-1");
        plan_free(&p);
        contract_free(&c);
    }
    test_rmtree(dir);
    free(dir);
}

/* Host names need not be the bare algo-N: with a suffix, each tree is named
 * after its host and lists the others by the same names, sorted as text. */
static void sample_host_names_take_a_suffix(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    struct sr_error err = {{0}};
    struct sample_options so = {.hosts = 2, .instance_type = "ml.m5.xlarge", .host_suffix = "-c7.sagerun"};
    assert_int_equal(sample_job_write(dir, &so, &err), 0);
    char root[4200];
    snprintf(root, sizeof root, "%s/algo-2-c7.sagerun", dir);
    struct contract c;
    if (contract_load(&c, root, &err) != 0)
        fail_msg("%s", err.text);
    assert_string_equal(c.resources.current_host, "algo-2-c7.sagerun");
    assert_string_equal(c.resources.hosts[0], "algo-1-c7.sagerun");
    assert_string_equal(c.resources.hosts[1], "algo-2-c7.sagerun");
    contract_free(&c);
    so.host_suffix = "_Bad";
    assert_int_equal(sample_job_write(dir, &so, &err), -1);
    assert_non_null(strstr(err.text, "--host-suffix \"_Bad\""));
    test_rmtree(dir);
    free(dir);
}

static void failure_file_is_whole_and_capped(void **state)
{
    (void)state;
    char *root = test_mkdtemp();
    struct sr_error err = {{0}};
    /* 1023 ASCII bytes then a 2-byte character: the cut must not split it. */
    char message[1100];
    memset(message, 'a', 1023);
    strcpy(message + 1023, "\xc3\xa9 tail");
    assert_int_equal(failure_write(root, message, &err), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/output/failure", root);
    char *text = test_read(path);
    assert_non_null(text);
    assert_int_equal(strlen(text), 1023);
    free(text);
    /* The first failure is the cause; a later one (a rank stopped because of
     * it) must not replace it. */
    assert_int_equal(failure_write(root, "second failure", &err), 0);
    text = test_read(path);
    assert_int_equal(strlen(text), 1023);
    free(text);
    assert_int_equal(failure_utf8_prefix("abc", 10), 3);
    test_rmtree(root);
    free(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    unsetenv(ENCRYPTION_ENV);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(homogeneous_job_is_read),
        cmocka_unit_test(defaults_follow_the_toolkit),
        cmocka_unit_test(heterogeneous_ranks_come_from_instance_types),
        cmocka_unit_test(encryption_decision_fails_closed),
        cmocka_unit_test(sample_job_trees_load),
        cmocka_unit_test(sample_host_names_take_a_suffix),
        cmocka_unit_test(failure_file_is_whole_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
