/* hyperparameters.json: CreateTrainingJob HyperParameters, every value a string. */
#include <string.h>

#include "contract.h"
#include "json_file.h"
#include "pyjson.h"

static int check_entry(const char *file, const char *key, const json_t *value, struct sr_error *err)
{
    char path[512];
    json_path_member(path, sizeof path, "$", key);
    if (*key == '\0') {
        error_config(err, file, path, "hyperparameter name must not be empty");
        return -1;
    }
    if (utf8_length(key) > HYPERPARAMETER_MAX_CHARS) {
        error_config(err, file, path, "hyperparameter name is %zu characters, over the CreateTrainingJob limit of %d",
                     utf8_length(key), HYPERPARAMETER_MAX_CHARS);
        return -1;
    }
    if (!json_is_string(value)) {
        error_config(err, file, path, "expected a string (SageMaker passes every hyperparameter as a string), got %s",
                     json_type_name(value));
        return -1;
    }
    size_t chars = utf8_length(json_string_value(value));
    if (chars > HYPERPARAMETER_MAX_CHARS) {
        error_config(err, file, path, "value is %zu characters, over the CreateTrainingJob limit of %d",
                     chars, HYPERPARAMETER_MAX_CHARS);
        return -1;
    }
    return 0;
}

int hyperparameters_parse(json_t *root, const char *path, struct hyperparameters *hp, struct sr_error *err)
{
    memset(hp, 0, sizeof *hp);
    hp->raw = root;
    if (!json_is_object(root)) {
        error_config(err, path, "$", "expected an object, got %s", json_type_name(root));
        goto fail;
    }
    if (json_object_size(root) > HYPERPARAMETER_MAX_COUNT) {
        error_config(err, path, "$", "%zu hyperparameters, over the CreateTrainingJob limit of %d",
                     json_object_size(root), HYPERPARAMETER_MAX_COUNT);
        goto fail;
    }
    hp->decoded = json_object();
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (check_entry(path, key, value, err) != 0)
            goto fail;
        json_object_set_new(hp->decoded, key, pyjson_decode_or_string(json_string_value(value)));
    }
    return 0;
fail:
    hyperparameters_free(hp);
    return -1;
}

void hyperparameters_free(struct hyperparameters *hp)
{
    json_decref(hp->raw);
    json_decref(hp->decoded);
    memset(hp, 0, sizeof *hp);
}
