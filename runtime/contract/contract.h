/* contract.h — the SageMaker training container contract, read and checked.
 *
 * SageMaker hands a training container its job description as files under
 * /opt/ml (the "ML root"; tests point it elsewhere):
 *   input/config/resourceconfig.json     hosts, this host, instance groups
 *   input/config/hyperparameters.json    every value a JSON string
 *   input/config/inputdataconfig.json    channels and their input modes
 *   input/config/checkpointconfig.json   optional: LocalPath, S3Uri
 *   input/config/trainingjobconfig.json  optional: parts of the
 *                                        CreateTrainingJob request
 * contract_load() reads them all, checks every field sagerun relies on, and
 * fails with one message "<file>: <json path>: <reason>" on the first problem.
 * Strings in these structs point into the parsed JSON (`raw`) and live as
 * long as the contract.
 */
#ifndef SAGERUN_CONTRACT_H
#define SAGERUN_CONTRACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* CreateTrainingJob limits on HyperParameters (API reference). */
#define HYPERPARAMETER_MAX_COUNT 100
#define HYPERPARAMETER_MAX_CHARS 256

struct instance_group {
    const char *name;
    const char *instance_type;
    const char **hosts; /* in the order the file lists them (not sorted) */
    size_t host_count;
};

struct resource_config {
    json_t *raw;
    const char *current_host;
    const char *current_instance_type;  /* "local" when absent, as the toolkit */
    const char *current_group_name;     /* "homogeneousCluster" when absent */
    const char *network_interface_name; /* "eth0" when absent */
    const char **hosts;                 /* SageMaker lists them sorted */
    size_t host_count;
    size_t current_host_index; /* position of current_host in hosts */
    struct instance_group *groups;
    size_t group_count;
};

struct hyperparameters {
    json_t *raw;     /* object of strings, as in the file */
    json_t *decoded; /* each value json.loads()-ed when it parses (toolkit rule) */
};

enum input_mode { INPUT_MODE_FILE, INPUT_MODE_PIPE, INPUT_MODE_FASTFILE };

struct channel {
    const char *name;
    enum input_mode mode;
    const char *content_type;         /* NULL when absent */
    const char *s3_distribution_type; /* FullyReplicated | ShardedByS3Key | NULL */
    const char *record_wrapper_type;  /* None | RecordIO | NULL */
};

struct input_data_config {
    json_t *raw;
    struct channel *channels; /* in file order */
    size_t channel_count;
};

struct checkpoint_config {
    json_t *raw;            /* NULL when the file is absent */
    const char *local_path; /* "/opt/ml/checkpoints" under the ML root by default */
    const char *s3_uri;     /* NULL when absent */
};

/* A boolean the job may leave out. */
enum job_flag { JOB_FLAG_ABSENT, JOB_FLAG_FALSE, JOB_FLAG_TRUE };

struct training_job_config {
    json_t *raw; /* NULL when the file is absent */
    const char *job_name;
    /* EnableInterContainerTrafficEncryption: one input to the encryption
     * decision, which the TLS module makes (tls.h). */
    enum job_flag inter_container_encryption;
};

struct contract {
    char *ml_root;
    char *config_dir; /* <ml_root>/input/config */
    char *default_checkpoint_dir;
    struct resource_config resources;
    struct hyperparameters hyperparameters;
    struct input_data_config inputs;
    struct checkpoint_config checkpoint;
    struct training_job_config training_job;
};

int contract_load(struct contract *c, const char *ml_root, struct sr_error *err);
void contract_free(struct contract *c);

const char *input_mode_name(enum input_mode mode);

/* The channel called `name`, or NULL when the job has none. */
const struct channel *contract_channel(const struct contract *c, const char *name);

/* Where a File or FastFile channel's data is: <ML root>/input/data/<name>,
 * into path[size]; NULL when the job has no such channel. */
const char *contract_channel_dir(const struct contract *c, const char *name, char *path, size_t size);

/* Per-file parsers, used by contract_load() and by the fuzzer. Each takes
 * ownership of `root` (even on failure); `path` names the file in messages. */
int resource_config_parse(json_t *root, const char *path, struct resource_config *rc,
                          struct sr_error *err);
void resource_config_free(struct resource_config *rc);
int hyperparameters_parse(json_t *root, const char *path, struct hyperparameters *hp,
                          struct sr_error *err);
void hyperparameters_free(struct hyperparameters *hp);
int input_data_config_parse(json_t *root, const char *path, struct input_data_config *in,
                            struct sr_error *err);
void input_data_config_free(struct input_data_config *in);
int checkpoint_config_parse(json_t *root, const char *path, const char *default_dir,
                            struct checkpoint_config *cp, struct sr_error *err);
int training_job_config_parse(json_t *root, const char *path, struct training_job_config *tj,
                              struct sr_error *err);

#endif
