/* libFuzzer target over the SageMaker config parsers.
 *
 * The first input byte picks which file the rest of the input replaces
 * (resourceconfig, hyperparameters, inputdataconfig, checkpointconfig,
 * trainingjobconfig); the other files keep valid contents. When everything
 * parses, the encryption decision (tls.h), the plan and the whole SM_*
 * environment are built too, so the Python-compatible formatters see
 * fuzzed values. Any crash, leak or UB report fails the run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "contract.h"
#include "json_file.h"
#include "plan.h"
#include "sm_env.h"
#include "tls.h"

static const char *const valid[] = {
    "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"], \"instance_groups\": "
    "[{\"instance_group_name\": \"homogeneousCluster\", \"instance_type\": \"ml.p4d.24xlarge\", "
    "\"hosts\": [\"algo-2\", \"algo-1\"]}], \"current_instance_type\": \"ml.p4d.24xlarge\"}",
    "{\"lr\": \"0.1\", \"layers\": \"[1, 2]\", \"sagemaker_mpi_enabled\": \"true\"}",
    "{\"train\": {\"TrainingInputMode\": \"File\"}}",
    "{\"LocalPath\": \"/opt/ml/checkpoints\"}",
    "{\"EnableInterContainerTrafficEncryption\": true}",
};

static json_t *parse(const char *text, size_t len, struct sr_error *err)
{
    return json_text_parse(text, len, "fuzz.json", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % 5;
    json_t *roots[5];
    struct sr_error err = {{0}};
    for (unsigned i = 0; i < 5; i++) {
        roots[i] = i == which ? parse((const char *)data + 1, size - 1, &err)
                              : parse(valid[i], strlen(valid[i]), &err);
    }
    struct contract c;
    memset(&c, 0, sizeof c);
    c.ml_root = (char *)"/opt/ml";
    int rc = 0;
    if (!roots[0] || resource_config_parse(roots[0], "r", &c.resources, &err) != 0)
        rc = -1;
    if (!roots[1] || hyperparameters_parse(roots[1], "h", &c.hyperparameters, &err) != 0)
        rc = -1;
    if (!roots[2] || input_data_config_parse(roots[2], "i", &c.inputs, &err) != 0)
        rc = -1;
    if (!roots[3] || checkpoint_config_parse(roots[3], "c", "/opt/ml/checkpoints", &c.checkpoint, &err) != 0)
        rc = -1;
    if (!roots[4] || training_job_config_parse(roots[4], "t", &c.training_job, &err) != 0)
        rc = -1;
    struct encryption_decision encryption;
    if (rc == 0 && encryption_decide(&c.training_job, "t", NULL, &encryption, &err) == 0) {
        struct plan p;
        struct plan_options opt = {.nvml_library = "/nonexistent/libnvidia-ml.so.1"};
        if (plan_build(&c, &opt, &p, &err) == 0) {
            json_decref(sm_env_build(&c, &p));
            plan_free(&p);
        }
    }
    resource_config_free(&c.resources);
    hyperparameters_free(&c.hyperparameters);
    input_data_config_free(&c.inputs);
    json_decref(c.checkpoint.raw);
    json_decref(c.training_job.raw);
    return 0;
}
