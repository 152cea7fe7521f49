/* checkpointconfig.json and trainingjobconfig.json. */
#include <stdio.h>
#include <string.h>

#include "contract.h"
#include "json_file.h"

static int string_member(const json_t *obj, const char *key, const char *file, const char **out,
                         struct sr_error *err)
{
    char path[256];
    json_path_member(path, sizeof path, "$", key);
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        error_config(err, file, path, "expected a non-empty string, got %s",
                     json_is_string(v) ? "an empty string" : json_type_name(v));
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int checkpoint_config_parse(json_t *root, const char *path, const char *default_dir,
                            struct checkpoint_config *cp, struct sr_error *err)
{
    memset(cp, 0, sizeof *cp);
    cp->local_path = default_dir;
    if (!root)
        return 0;
    cp->raw = root;
    if (!json_is_object(root)) {
        error_config(err, path, "$", "expected an object, got %s", json_type_name(root));
        goto fail;
    }
    const char *local = NULL;
    if (string_member(root, "LocalPath", path, &local, err) != 0 ||
        string_member(root, "S3Uri", path, &cp->s3_uri, err) != 0)
        goto fail;
    if (local && local[0] != '/') {
        error_config(err, path, "$.LocalPath", "\"%s\" is not an absolute path", local);
        goto fail;
    }
    if (cp->s3_uri && strncmp(cp->s3_uri, "s3://", 5) != 0) {
        error_config(err, path, "$.S3Uri", "\"%s\" does not start with s3://", cp->s3_uri);
        goto fail;
    }
    if (local)
        cp->local_path = local;
    return 0;
fail:
    json_decref(root);
    memset(cp, 0, sizeof *cp);
    return -1;
}

int training_job_config_parse(json_t *root, const char *path, struct training_job_config *tj,
                              struct sr_error *err)
{
    memset(tj, 0, sizeof *tj);
    if (!root)
        return 0;
    tj->raw = root;
    if (!json_is_object(root)) {
        error_config(err, path, "$", "expected an object, got %s", json_type_name(root));
        goto fail;
    }
    const json_t *flag = json_object_get(root, "EnableInterContainerTrafficEncryption");
    if (flag && !json_is_boolean(flag)) {
        error_config(err, path, "$.EnableInterContainerTrafficEncryption", "expected true or false, got %s",
                     json_type_name(flag));
        goto fail;
    }
    tj->inter_container_encryption = !flag ? JOB_FLAG_ABSENT : json_is_true(flag) ? JOB_FLAG_TRUE : JOB_FLAG_FALSE;
    if (string_member(root, "TrainingJobName", path, &tj->job_name, err) != 0)
        goto fail;
    return 0;
fail:
    json_decref(root);
    memset(tj, 0, sizeof *tj);
    return -1;
}
