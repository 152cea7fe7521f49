#include "sample_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fs.h"
#include "strbuf.h"

#include <jansson.h>

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* algo-1 .. algo-N, either sorted as text (how SageMaker lists top-level
 * hosts: "algo-10" before "algo-2") or in descending order (an instance
 * group's list, which SageMaker does not sort). */
static json_t *host_names(int hosts, bool sorted)
{
    char names[SAMPLE_MAX_HOSTS][16];
    const char *order[SAMPLE_MAX_HOSTS];
    for (int i = 0; i < hosts; i++) {
        snprintf(names[i], sizeof names[i], "algo-%d", sorted ? i + 1 : hosts - i);
        order[i] = names[i];
    }
    if (sorted)
        qsort(order, (size_t)hosts, sizeof order[0], compare_names);
    json_t *list = json_array();
    for (int i = 0; i < hosts; i++)
        json_array_append_new(list, json_string(order[i]));
    return list;
}

static json_t *resource_config(int host, const struct sample_options *opt)
{
    char current[32];
    snprintf(current, sizeof current, "algo-%d", host);
    return json_pack("{s:s, s:s, s:s, s:o, s:[{s:s, s:s, s:o}], s:s}",
                     "current_host", current,
                     "current_instance_type", opt->instance_type,
                     "current_group_name", "homogeneousCluster",
                     "hosts", host_names(opt->hosts, true),
                     "instance_groups", "instance_group_name", "homogeneousCluster",
                     "instance_type", opt->instance_type,
                     "hosts", host_names(opt->hosts, false),
                     "network_interface_name", "eth0");
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
    json_t *c = json_pack("{s:{s:s, s:s, s:s, s:s}}", "train", "ContentType", "application/octet-stream",
                          "TrainingInputMode", "File", "S3DistributionType", "FullyReplicated", "RecordWrapperType",
                          "None");
    if (encryption)
        json_object_set_new(c, "tls", json_pack("{s:s, s:s, s:s}", "TrainingInputMode", "File",
                                                "S3DistributionType", "FullyReplicated", "RecordWrapperType",
                                                "None"));
    return c;
}

static int write_key(const char *root, const char *key, struct sr_error *err)
{
    char path[4200];
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

static int write_host(const char *dir, int host, const struct sample_options *opt, const char *key,
                      struct sr_error *err)
{
    struct strbuf root;
    strbuf_init(&root);
    strbuf_printf(&root, "%s/algo-%d", dir, host);
    char path[4200], checkpoints[4200];
    snprintf(checkpoints, sizeof checkpoints, "%s/checkpoints", root.data);

    json_t *files[5][2] = {
        {json_string("resourceconfig.json"), resource_config(host, opt)},
        {json_string("hyperparameters.json"),
         json_pack("{s:s, s:s, s:s, s:s, s:s}", "model", "tiny", "max_steps", "50", "learning_rate", "0.0006",
                   "batch_size", "8", "seed", "1337")},
        {json_string("inputdataconfig.json"), channels(opt->encryption)},
        {json_string("checkpointconfig.json"),
         json_pack("{s:s, s:s}", "LocalPath", checkpoints, "S3Uri", "s3://sagerun-sample/checkpoints")},
        {json_string("trainingjobconfig.json"),
         json_pack("{s:s, s:b}", "TrainingJobName", "sagerun-sample", "EnableInterContainerTrafficEncryption",
                   opt->encryption)},
    };
    int rc = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/input/config/%s", root.data, json_string_value(files[i][0]));
        if (rc == 0)
            rc = fs_write_json(path, files[i][1], err);
        json_decref(files[i][0]);
        json_decref(files[i][1]);
    }
    static const char *const dirs[] = {"input/data/train", "model", "output/data", "checkpoints"};
    for (size_t i = 0; rc == 0 && i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root.data, dirs[i]);
        rc = fs_mkdirs(path, err);
    }
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
    char key[65] = "";
    if (opt->encryption && job_key(key, sizeof key, err) != 0)
        return -1;
    for (int h = 1; h <= opt->hosts; h++)
        if (write_host(dir, h, opt, key, err) != 0)
            return -1;
    return 0;
}
