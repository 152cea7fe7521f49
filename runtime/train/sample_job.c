#include "sample_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fs.h"
#include "json_file.h"
#include "strbuf.h"
#include "synthetic_data.h"
#include "token_data.h"

#include <jansson.h>

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Host h's name: algo-<h> and the suffix (SageMaker's names need not be the
 * bare algo-N form, so tests can ask for others). */
static void host_name(char *out, size_t size, int h, const struct sample_options *opt)
{
    snprintf(out, size, "algo-%d%s", h, opt->host_suffix ? opt->host_suffix : "");
}

/* Every host's name, either sorted as text (how SageMaker lists top-level
 * hosts: "algo-10" before "algo-2") or in descending order (an instance
 * group's list, which SageMaker does not sort). */
static json_t *host_names(const struct sample_options *opt, bool sorted)
{
    char names[SAMPLE_MAX_HOSTS][SAMPLE_HOST_NAME_MAX + 16];
    const char *order[SAMPLE_MAX_HOSTS];
    for (int i = 0; i < opt->hosts; i++) {
        host_name(names[i], sizeof names[i], sorted ? i + 1 : opt->hosts - i, opt);
        order[i] = names[i];
    }
    if (sorted)
        qsort(order, (size_t)opt->hosts, sizeof order[0], compare_names);
    json_t *list = json_array();
    for (int i = 0; i < opt->hosts; i++)
        json_array_append_new(list, json_string(order[i]));
    return list;
}

static json_t *resource_config(int host, const struct sample_options *opt)
{
    char current[SAMPLE_HOST_NAME_MAX + 16];
    host_name(current, sizeof current, host, opt);
    return json_pack("{s:s, s:s, s:s, s:o, s:[{s:s, s:s, s:o}], s:s}",
                     "current_host", current,
                     "current_instance_type", opt->instance_type,
                     "current_group_name", "homogeneousCluster",
                     "hosts", host_names(opt, true),
                     "instance_groups", "instance_group_name", "homogeneousCluster",
                     "instance_type", opt->instance_type,
                     "hosts", host_names(opt, false),
                     "network_interface_name", "eth0");
}

/* checkpointconfig.json. LocalPath only when asked for: left out, the
 * checkpoints go to <ML root>/checkpoints, so the tree works wherever it is
 * mounted (a path of the machine that wrote it would not exist in a
 * container). */
static json_t *checkpoint_config(const struct sample_options *opt)
{
    json_t *c = json_pack("{s:s}", "S3Uri", "s3://sagerun-sample/checkpoints");
    if (opt->checkpoint_path)
        json_object_set_new(c, "LocalPath", json_string(opt->checkpoint_path));
    return c;
}

/* A fresh job key, written into every host's "tls" channel: the way a real
 * job can deliver key material (a channel from an encrypted S3 prefix). */
static int job_key(char *hex, size_t size, struct sr_error *err)
{
    unsigned char key[32];
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
        error_setf(err, "sample: cannot draw a random job key: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof key && 2 * i + 2 < size; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    return 0;
}

static json_t *channels(bool encryption)
{
    json_t *c = json_object();
    const char *data[] = {"train", "validation"};
    for (int i = 0; i < 2; i++)
        json_object_set_new(c, data[i],
                            json_pack("{s:s, s:s, s:s, s:s}", "ContentType", "application/octet-stream",
                                      "TrainingInputMode", "File", "S3DistributionType", "FullyReplicated",
                                      "RecordWrapperType", "None"));
    if (encryption)
        json_object_set_new(c, "tls", json_pack("{s:s, s:s, s:s}", "TrainingInputMode", "File",
                                                "S3DistributionType", "FullyReplicated", "RecordWrapperType",
                                                "None"));
    return c;
}

static int write_key(const char *root, const char *key, struct sr_error *err)
{
    char path[FS_PATH_BYTES];
    snprintf(path, sizeof path, "%s/input/data/tls", root);
    if (fs_mkdirs(path, err) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/input/data/tls/psk", root);
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", key) < 0 || fclose(f) != 0) {
        error_setf(err, "sample: cannot write %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return 0;
}

/* The built-in trainer's settings for the sample: the tiny model on the
 * synthetic data, short enough for a demo on two CPU cores. */
static json_t *sample_hyperparameters(void)
{
    char vocab[16];
    snprintf(vocab, sizeof vocab, "%d", SAMPLE_VOCAB);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "model", "tiny", "vocab_size",
                     vocab, "seq_len", "64", "batch_size", "16", "max_steps", "400", "learning_rate", "0.003",
                     "warmup_steps", "20", "log_interval", "10", "val_interval", "50", "val_batches", "4",
                     "checkpoint_interval", "50", "seed", "1337");
}

/* The synthetic dataset (synthetic_data.h): train shards, a validation
 * shard from the same chain, and source.json saying what the loss floor is. */
struct sample_data {
    struct markov_source source;
    uint16_t *train[SAMPLE_TRAIN_SHARDS], *validation;
};

static void sample_data_make(struct sample_data *d)
{
    markov_source_build(&d->source, SAMPLE_VOCAB, SAMPLE_BRANCHING, SAMPLE_DATA_SEED);
    struct rng r;
    rng_seed(&r, SAMPLE_DATA_SEED + 1);
    for (int i = 0; i < SAMPLE_TRAIN_SHARDS; i++) {
        d->train[i] = xcalloc(SAMPLE_SHARD_TOKENS, sizeof(uint16_t));
        markov_generate(&d->source, &r, d->train[i], SAMPLE_SHARD_TOKENS);
    }
    d->validation = xcalloc(SAMPLE_VALIDATION_TOKENS, sizeof(uint16_t));
    markov_generate(&d->source, &r, d->validation, SAMPLE_VALIDATION_TOKENS);
}

static void sample_data_free(struct sample_data *d)
{
    for (int i = 0; i < SAMPLE_TRAIN_SHARDS; i++)
        free(d->train[i]);
    free(d->validation);
    markov_source_free(&d->source);
}

static int write_data(const char *root, const struct sample_data *d, struct sr_error *err)
{
    char path[FS_PATH_BYTES];
    for (int i = 0; i < SAMPLE_TRAIN_SHARDS; i++) {
        snprintf(path, sizeof path, "%s/input/data/train/markov_train_%03d.bin", root, i);
        if (shard_write(path, d->train[i], SAMPLE_SHARD_TOKENS, err) != 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/input/data/validation/markov_val_000.bin", root);
    if (shard_write(path, d->validation, SAMPLE_VALIDATION_TOKENS, err) != 0)
        return -1;
    char description[160];
    snprintf(description, sizeof description,
             "synthetic first-order Markov chain over %d tokens, %d successors each (seed %d)", SAMPLE_VOCAB,
             SAMPLE_BRANCHING, SAMPLE_DATA_SEED);
    json_t *meta = json_pack("{s:s, s:i, s:i, s:i, s:f}", "description", description, "vocab_size", SAMPLE_VOCAB,
                             "branching", SAMPLE_BRANCHING, "seed", SAMPLE_DATA_SEED, "entropy_rate_nats",
                             d->source.entropy_rate);
    snprintf(path, sizeof path, "%s/input/data/train/source.json", root);
    int rc = json_file_write(path, meta, err);
    json_decref(meta);
    return rc;
}

static int write_host(const char *dir, int host, const struct sample_options *opt, const char *key,
                      const struct sample_data *data, struct sr_error *err)
{
    char name[SAMPLE_HOST_NAME_MAX + 16];
    host_name(name, sizeof name, host, opt);
    struct strbuf root;
    strbuf_init(&root);
    strbuf_printf(&root, "%s/%s", dir, name);
    char path[FS_PATH_BYTES];

    json_t *files[5][2] = {
        {json_string("resourceconfig.json"), resource_config(host, opt)},
        {json_string("hyperparameters.json"), sample_hyperparameters()},
        {json_string("inputdataconfig.json"), channels(opt->encryption)},
        {json_string("checkpointconfig.json"), checkpoint_config(opt)},
        {json_string("trainingjobconfig.json"),
         json_pack("{s:s, s:b}", "TrainingJobName", "sagerun-sample", "EnableInterContainerTrafficEncryption",
                   opt->encryption)},
    };
    int rc = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/input/config/%s", root.data, json_string_value(files[i][0]));
        if (rc == 0)
            rc = json_file_write(path, files[i][1], err);
        json_decref(files[i][0]);
        json_decref(files[i][1]);
    }
    static const char *const dirs[] = {"input/data/train", "input/data/validation", "model", "output/data",
                                       "checkpoints"};
    for (size_t i = 0; rc == 0 && i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root.data, dirs[i]);
        rc = fs_mkdirs(path, err);
    }
    if (rc == 0)
        rc = write_data(root.data, data, err);
    if (rc == 0 && opt->encryption)
        rc = write_key(root.data, key, err);
    strbuf_free(&root);
    return rc;
}

int sample_job_write(const char *dir, const struct sample_options *opt, struct sr_error *err)
{
    if (opt->hosts < 1 || opt->hosts > SAMPLE_MAX_HOSTS) {
        error_setf(err, "sample: --hosts must be from 1 to %d, got %d", SAMPLE_MAX_HOSTS, opt->hosts);
        return -1;
    }
    const char *suffix = opt->host_suffix ? opt->host_suffix : "";
    if (strlen(suffix) > SAMPLE_HOST_NAME_MAX || strspn(suffix, "abcdefghijklmnopqrstuvwxyz0123456789-.") !=
                                                     strlen(suffix)) {
        error_setf(err, "sample: --host-suffix \"%s\" must be at most %d of a-z, 0-9, '-' and '.'", suffix,
                   SAMPLE_HOST_NAME_MAX);
        return -1;
    }
    if (opt->checkpoint_path && opt->checkpoint_path[0] != '/') {
        error_setf(err, "sample: --checkpoint-path \"%s\" is not an absolute path", opt->checkpoint_path);
        return -1;
    }
    char key[65] = "";
    if (opt->encryption && job_key(key, sizeof key, err) != 0)
        return -1;
    struct sample_data data;
    sample_data_make(&data);
    int rc = 0;
    for (int h = 1; h <= opt->hosts && rc == 0; h++)
        rc = write_host(dir, h, opt, key, &data, err);
    sample_data_free(&data);
    return rc;
}
