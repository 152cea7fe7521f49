/* Bad job input, end to end: each case breaks one thing in an otherwise valid
 * ML root, runs the real `sagerun env`, and checks the exit status, the exact
 * message on stderr, the failure file (same message, cut to 1024 bytes), and
 * that nothing was printed on stdout. "{cfg}" in an expected message stands
 * for <ML root>/input/config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static const char *sagerun_binary;

static const char base_resources[] =
    "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"current_instance_type\": "
    "\"ml.p4d.24xlarge\", \"instance_groups\": [{\"instance_group_name\": \"homogeneousCluster\", "
    "\"instance_type\": \"ml.p4d.24xlarge\", \"hosts\": [\"algo-2\", \"algo-1\"]}]}";

struct bad_case {
    const char *name;
    const char *file;    /* config file to replace, or NULL */
    const char *content; /* its new content (NULL with `make` or to delete it) */
    char *(*make)(void); /* builds content that is too long to write inline */
    const char *env;     /* one NAME=value for the process, or NULL */
    const char *expected;
};

static char *many_hyperparameters(void)
{
    char *buf = malloc(8192), *p = buf;
    p += sprintf(p, "{");
    for (int i = 0; i < 101; i++)
        p += sprintf(p, "%s\"hp%d\": \"%d\"", i ? ", " : "", i, i);
    sprintf(p, "}");
    return buf;
}

static char *long_value(void)
{
    char *buf = malloc(512);
    int n = sprintf(buf, "{\"prompt\": \"");
    for (int i = 0; i < 256; i++)
        n += sprintf(buf + n, "%s", i ? "x" : "\xc3\xa9"); /* 256 characters, 257 bytes: must pass */
    sprintf(buf + n, "y\"}");                              /* 257 characters: must fail */
    return buf;
}

static char *long_key(void)
{
    char *buf = malloc(512);
    int n = sprintf(buf, "{\"");
    for (int i = 0; i < 257; i++)
        buf[n++] = 'k';
    sprintf(buf + n, "\": \"1\"}");
    return buf;
}

static char *many_long_hosts(void)
{
    /* 20 hosts of 60 characters: the message lists them all and runs past
     * the 1024-byte FailureReason limit, so the failure file is cut. */
    char *buf = malloc(4096), *p = buf;
    p += sprintf(p, "{\"current_host\": \"missing\", \"hosts\": [");
    for (int i = 0; i < 20; i++)
        p += sprintf(p, "%s\"host-%02d-%s\"", i ? ", " : "", i,
                     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    sprintf(p, "]}");
    return buf;
}

static const struct bad_case cases[] = {
    {"resource_invalid_json", "resourceconfig.json", "{\"current_host\": \"algo-1\",\n \"hosts\": [\"algo-1\"", NULL,
     NULL, "{cfg}/resourceconfig.json:2:19: invalid JSON: ']' expected near end of file"},
    {"resource_duplicate_key", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"current_host\": \"algo-2\", \"hosts\": [\"algo-1\"]}", NULL, NULL,
     "{cfg}/resourceconfig.json:1:41: invalid JSON: duplicate object key near '\"current_host\"'"},
    {"resource_not_object", "resourceconfig.json", "[\"algo-1\"]", NULL, NULL,
     "{cfg}/resourceconfig.json: $: expected an object, got array"},
    {"resource_missing", "resourceconfig.json", NULL, NULL, NULL, "{cfg}/resourceconfig.json: file is missing"},
    {"current_host_missing", "resourceconfig.json", "{\"hosts\": [\"algo-1\"]}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.current_host: required field is missing"},
    {"current_host_wrong_type", "resourceconfig.json", "{\"current_host\": 1, \"hosts\": [\"algo-1\"]}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.current_host: expected a string, got integer"},
    {"current_host_not_in_hosts", "resourceconfig.json",
     "{\"current_host\": \"algo-9\", \"hosts\": [\"algo-1\", \"algo-2\"]}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.current_host: \"algo-9\" is not one of $.hosts (algo-1, algo-2)"},
    {"hosts_duplicate", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\", \"algo-1\"]}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.hosts[2]: host \"algo-1\" is listed twice (also at $.hosts[0])"},
    {"hosts_empty_name", "resourceconfig.json", "{\"current_host\": \"algo-1\", \"hosts\": [\"\", \"algo-1\"]}",
     NULL, NULL,
     "{cfg}/resourceconfig.json: $.hosts[0]: \"\" is not a valid host name (1 to 253 letters, digits, '-', '.' or "
     "'_')"},
    {"hosts_empty_list", "resourceconfig.json", "{\"current_host\": \"algo-1\", \"hosts\": []}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.hosts: must list at least one host"},
    {"hosts_not_array", "resourceconfig.json", "{\"current_host\": \"algo-1\", \"hosts\": \"algo-1\"}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.hosts: expected an array of host names, got string"},
    {"interface_name_bad", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"network_interface_name\": \"eth0/x\"}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.network_interface_name: \"eth0/x\" is not a network interface name (1 to 15 "
     "characters, no '/', ':' or spaces)"},
    {"group_host_unknown", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"instance_groups\": [{\"instance_group_name\": "
     "\"g\", \"hosts\": [\"algo-1\", \"algo-7\"]}], \"current_group_name\": \"g\"}",
     NULL, NULL, "{cfg}/resourceconfig.json: $.instance_groups[0].hosts[1]: host \"algo-7\" is not one of $.hosts"},
    {"group_host_twice", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"current_group_name\": \"a\", "
     "\"instance_groups\": [{\"instance_group_name\": \"a\", \"hosts\": [\"algo-1\", \"algo-2\"]}, "
     "{\"instance_group_name\": \"b\", \"hosts\": [\"algo-2\"]}]}",
     NULL, NULL,
     "{cfg}/resourceconfig.json: $.instance_groups[1].hosts[0]: host \"algo-2\" is already in instance group "
     "\"a\""},
    {"group_unknown_current", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"current_group_name\": \"train2\", "
     "\"instance_groups\": [{\"instance_group_name\": \"train1\", \"hosts\": [\"algo-1\"]}]}",
     NULL, NULL, "{cfg}/resourceconfig.json: $.current_group_name: \"train2\" names no entry of $.instance_groups"},
    {"group_missing_host", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"current_group_name\": \"g\", "
     "\"instance_groups\": [{\"instance_group_name\": \"g\", \"hosts\": [\"algo-1\"]}]}",
     NULL, NULL, "{cfg}/resourceconfig.json: $.instance_groups: host \"algo-2\" of $.hosts belongs to no instance group"},
    {"group_without_current_host", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"current_group_name\": \"b\", "
     "\"instance_groups\": [{\"instance_group_name\": \"a\", \"hosts\": [\"algo-1\"]}, "
     "{\"instance_group_name\": \"b\", \"hosts\": [\"algo-2\"]}]}",
     NULL, NULL,
     "{cfg}/resourceconfig.json: $.current_group_name: current host \"algo-1\" is not in instance group \"b\" "
     "($.instance_groups[1].hosts)"},
    {"topology_wrong_type", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"topology\": \"cu-1\"}", NULL, NULL,
     "{cfg}/resourceconfig.json: $.topology: expected an array or null, got string"},
    {"failure_reason_cut_at_1024", "resourceconfig.json", NULL, many_long_hosts, NULL, NULL},
    {"hyperparameter_not_string", "hyperparameters.json", "{\"lr\": 0.1}", NULL, NULL,
     "{cfg}/hyperparameters.json: $.lr: expected a string (SageMaker passes every hyperparameter as a string), got "
     "number"},
    {"hyperparameters_too_many", "hyperparameters.json", NULL, many_hyperparameters, NULL,
     "{cfg}/hyperparameters.json: $: 101 hyperparameters, over the CreateTrainingJob limit of 100"},
    {"hyperparameter_value_too_long", "hyperparameters.json", NULL, long_value, NULL,
     "{cfg}/hyperparameters.json: $.prompt: value is 257 characters, over the CreateTrainingJob limit of 256"},
    {"hyperparameter_key_too_long", "hyperparameters.json", NULL, long_key, NULL, NULL},
    {"hyperparameter_empty_key", "hyperparameters.json", "{\"\": \"1\"}", NULL, NULL,
     "{cfg}/hyperparameters.json: $[\"\"]: hyperparameter name must not be empty"},
    {"hyperparameters_missing", "hyperparameters.json", NULL, NULL, NULL,
     "{cfg}/hyperparameters.json: file is missing"},
    {"input_mode_unknown", "inputdataconfig.json", "{\"train\": {\"TrainingInputMode\": \"Stream\"}}", NULL, NULL,
     "{cfg}/inputdataconfig.json: $.train.TrainingInputMode: \"Stream\" is not one of File, Pipe, FastFile"},
    {"input_mode_missing", "inputdataconfig.json", "{\"train\": {\"ContentType\": \"text/csv\"}}", NULL, NULL,
     "{cfg}/inputdataconfig.json: $.train.TrainingInputMode: required field is missing"},
    {"input_distribution_bad", "inputdataconfig.json",
     "{\"train\": {\"TrainingInputMode\": \"File\", \"S3DistributionType\": \"Sharded\"}}", NULL, NULL,
     "{cfg}/inputdataconfig.json: $.train.S3DistributionType: \"Sharded\" is not one of FullyReplicated, "
     "ShardedByS3Key"},
    {"input_channel_name_bad", "inputdataconfig.json", "{\"../etc\": {\"TrainingInputMode\": \"File\"}}", NULL,
     NULL,
     "{cfg}/inputdataconfig.json: $[\"../etc\"]: \"../etc\" is not a valid channel name (1 to 64 letters, digits, "
     "'.', '-' or '_')"},
    {"input_channel_not_object", "inputdataconfig.json", "{\"train\": \"File\"}", NULL, NULL,
     "{cfg}/inputdataconfig.json: $.train: expected an object, got string"},
    {"checkpoint_relative_path", "checkpointconfig.json", "{\"LocalPath\": \"checkpoints\"}", NULL, NULL,
     "{cfg}/checkpointconfig.json: $.LocalPath: \"checkpoints\" is not an absolute path"},
    {"checkpoint_s3_uri_bad", "checkpointconfig.json",
     "{\"LocalPath\": \"/opt/ml/checkpoints\", \"S3Uri\": \"https://bucket/x\"}", NULL, NULL,
     "{cfg}/checkpointconfig.json: $.S3Uri: \"https://bucket/x\" does not start with s3://"},
    {"encryption_flag_not_boolean", "trainingjobconfig.json", "{\"EnableInterContainerTrafficEncryption\": \"yes\"}",
     NULL, NULL,
     "{cfg}/trainingjobconfig.json: $.EnableInterContainerTrafficEncryption: expected true or false, got string"},
    {"encryption_env_bad", NULL, NULL, NULL, "SAGERUN_INTER_CONTAINER_ENCRYPTION=maybe",
     "environment variable SAGERUN_INTER_CONTAINER_ENCRYPTION: \"maybe\" is not true or false"},
    {"nproc_env_bad", NULL, NULL, NULL, "SAGERUN_NPROC_PER_HOST=0",
     "environment variable SAGERUN_NPROC_PER_HOST: \"0\" is not an integer from 1 to 1024"},
    {"unknown_instance_type", "resourceconfig.json",
     "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"current_instance_type\": "
     "\"ml.p4d.24xlarge\", \"current_group_name\": \"a\", \"instance_groups\": [{\"instance_group_name\": \"a\", "
     "\"instance_type\": \"ml.p4d.24xlarge\", \"hosts\": [\"algo-1\"]}, {\"instance_group_name\": \"b\", "
     "\"instance_type\": \"ml.x9.huge\", \"hosts\": [\"algo-2\"]}]}",
     NULL, NULL,
     "cannot plan ranks for host algo-2: instance type \"ml.x9.huge\" is unknown to sagerun and differs from this "
     "host's (ml.p4d.24xlarge); set SAGERUN_NPROC_PER_HOST"},
};

static char *long_key_expected(void)
{
    return strdup("{cfg}/hyperparameters.json: $.kkkk: hyperparameter name is 257 characters, over the "
                  "CreateTrainingJob limit of 256");
}

static void run_case(void **state)
{
    const struct bad_case *bc = *state;
    char *root = test_mkdtemp();
    test_write(root, "input/config/resourceconfig.json", base_resources);
    test_write(root, "input/config/hyperparameters.json", "{\"lr\": \"0.1\"}");
    test_write(root, "input/config/inputdataconfig.json", "{\"train\": {\"TrainingInputMode\": \"File\"}}");
    if (bc->file) {
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "input/config/%s", bc->file);
        char *content = bc->make ? bc->make() : NULL;
        if (content || bc->content) {
            test_write(root, rel, content ? content : bc->content);
        } else {
            snprintf(path, sizeof path, "%s/%s", root, rel);
            assert_int_equal(remove(path), 0);
        }
        free(content);
    }
    char *env[] = {(char *)bc->env, NULL};
    char *argv[] = {(char *)sagerun_binary, "env", "--ml-root", root, NULL};
    struct run_result r = test_run(argv, env);

    char cfg[4200], failure_path[4200];
    snprintf(cfg, sizeof cfg, "%s/input/config", root);
    snprintf(failure_path, sizeof failure_path, "%s/output/failure", root);
    char *expected = NULL;
    if (bc->expected) {
        expected = test_replace(bc->expected, "{cfg}", cfg);
    } else if (bc->make == long_key) {
        char *pattern = long_key_expected();
        char key[300] = "$.";
        memset(key + 2, 'k', 257);
        key[259] = '\0';
        char *with_key = test_replace(pattern, "$.kkkk", key);
        expected = test_replace(with_key, "{cfg}", cfg);
        free(pattern);
        free(with_key);
    } else { /* failure_reason_cut_at_1024: check the shape, then the cut */
        assert_non_null(strstr(r.err, "$.current_host: \"missing\" is not one of $.hosts (host-00-"));
        expected = strndup(r.err + strlen("sagerun: "), strlen(r.err) - strlen("sagerun: ") - 1);
        assert_true(strlen(expected) > 1024);
    }
    char *stderr_expected;
    assert_true(asprintf(&stderr_expected, "sagerun: %s\n", expected) > 0);

    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, stderr_expected);
    assert_string_equal(r.out, "");
    char *failure = test_read(failure_path);
    assert_non_null(failure);
    size_t want = strlen(expected) > 1024 ? 1024 : strlen(expected);
    assert_int_equal(strlen(failure), want);
    assert_memory_equal(failure, expected, want);

    free(failure);
    free(stderr_expected);
    free(expected);
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

/* A valid tree must give exit 0, output, and no failure file. */
static void valid_tree_passes(void **state)
{
    (void)state;
    char *root = test_mkdtemp();
    test_write(root, "input/config/resourceconfig.json", base_resources);
    test_write(root, "input/config/hyperparameters.json", "{\"lr\": \"0.1\"}");
    test_write(root, "input/config/inputdataconfig.json", "{\"train\": {\"TrainingInputMode\": \"File\"}}");
    char *argv[] = {(char *)sagerun_binary, "env", "--ml-root", root, NULL};
    struct run_result r = test_run(argv, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_non_null(strstr(r.out, "export SM_HP_LR='0.1'\n"));
    char path[4200];
    snprintf(path, sizeof path, "%s/output/failure", root);
    assert_null(test_read(path));
    run_result_free(&r);
    test_rmtree(root);
    free(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_SAGERUN\n", argv[0]);
        return 2;
    }
    sagerun_binary = argv[1];
    size_t n = sizeof cases / sizeof cases[0];
    struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
    tests[0] = (struct CMUnitTest)cmocka_unit_test(valid_tree_passes);
    for (size_t i = 0; i < n; i++)
        tests[i + 1] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    int failed = _cmocka_run_group_tests("bad_input", tests, n + 1, NULL, NULL);
    free(tests);
    return failed;
}
