/* inputdataconfig.json: the job's data channels and how each is delivered. */
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "json_file.h"
#include "strbuf.h"

const char *input_mode_name(enum input_mode mode)
{
    switch (mode) {
    case INPUT_MODE_FILE: return "File";
    case INPUT_MODE_PIPE: return "Pipe";
    case INPUT_MODE_FASTFILE: return "FastFile";
    }
    return "?";
}

/* Channel names become directory names and SM_CHANNEL_<NAME> variables; the
 * API allows [A-Za-z0-9.-_]{1,64}. */
static bool valid_channel_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Reads an optional string member that must be one of `allowed` (NULL-terminated). */
static int optional_enum(const json_t *obj, const char *key, const char *parent, const char *file,
                         const char *const *allowed, const char *allowed_text, const char **out,
                         struct sr_error *err)
{
    char path[512];
    json_path_member(path, sizeof path, parent, key);
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        error_config(err, file, path, "expected a string, got %s", json_type_name(v));
        return -1;
    }
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(json_string_value(v), *a) == 0) {
            *out = *a;
            return 0;
        }
    error_config(err, file, path, "\"%s\" is not one of %s", json_string_value(v), allowed_text);
    return -1;
}

static int parse_channel(const char *file, const char *name, const json_t *spec, struct channel *ch,
                         struct sr_error *err)
{
    static const char *const modes[] = {"File", "Pipe", "FastFile", NULL};
    static const char *const distributions[] = {"FullyReplicated", "ShardedByS3Key", NULL};
    static const char *const wrappers[] = {"None", "RecordIO", NULL};
    char path[512];
    json_path_member(path, sizeof path, "$", name);
    if (!valid_channel_name(name)) {
        error_config(err, file, path, "\"%s\" is not a valid channel name (1 to 64 letters, digits, '.', '-' or '_')",
                     name);
        return -1;
    }
    if (!json_is_object(spec)) {
        error_config(err, file, path, "expected an object, got %s", json_type_name(spec));
        return -1;
    }
    ch->name = name;
    const char *mode;
    if (!json_object_get(spec, "TrainingInputMode")) {
        char field[600];
        json_path_member(field, sizeof field, path, "TrainingInputMode");
        error_config(err, file, field, "required field is missing");
        return -1;
    }
    if (optional_enum(spec, "TrainingInputMode", path, file, modes, "File, Pipe, FastFile", &mode, err) != 0 ||
        optional_enum(spec, "S3DistributionType", path, file, distributions, "FullyReplicated, ShardedByS3Key",
                      &ch->s3_distribution_type, err) != 0 ||
        optional_enum(spec, "RecordWrapperType", path, file, wrappers, "None, RecordIO",
                      &ch->record_wrapper_type, err) != 0)
        return -1;
    ch->mode = strcmp(mode, "File") == 0 ? INPUT_MODE_FILE
             : strcmp(mode, "Pipe") == 0 ? INPUT_MODE_PIPE
                                         : INPUT_MODE_FASTFILE;
    const json_t *ct = json_object_get(spec, "ContentType");
    if (ct && !json_is_string(ct)) {
        char field[600];
        json_path_member(field, sizeof field, path, "ContentType");
        error_config(err, file, field, "expected a string, got %s", json_type_name(ct));
        return -1;
    }
    ch->content_type = ct ? json_string_value(ct) : NULL;
    return 0;
}

int input_data_config_parse(json_t *root, const char *path, struct input_data_config *in, struct sr_error *err)
{
    memset(in, 0, sizeof *in);
    in->raw = root;
    if (!json_is_object(root)) {
        error_config(err, path, "$", "expected an object, got %s", json_type_name(root));
        goto fail;
    }
    in->channels = xcalloc(json_object_size(root), sizeof *in->channels);
    const char *name;
    json_t *spec;
    json_object_foreach(root, name, spec) {
        if (parse_channel(path, name, spec, &in->channels[in->channel_count], err) != 0)
            goto fail;
        in->channel_count++;
    }
    return 0;
fail:
    input_data_config_free(in);
    return -1;
}

void input_data_config_free(struct input_data_config *in)
{
    free(in->channels);
    json_decref(in->raw);
    memset(in, 0, sizeof *in);
}
