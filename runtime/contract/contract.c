#include "contract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_file.h"
#include "strbuf.h"

static char *join_path(const char *dir, const char *name)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "%s/%s", dir, name);
    return strbuf_detach(&sb);
}

/* Reads config file `name` (an optional one may be absent: *root NULL);
 * *path gets its full path, which the parser names in its messages. */
static int load_file(const struct contract *c, const char *name, bool optional, json_t **root,
                     char **path, struct sr_error *err)
{
    *path = join_path(c->config_dir, name);
    return json_file_load(*path, optional, root, err);
}

static int load_all(struct contract *c, struct sr_error *err)
{
    json_t *root;
    char *path = NULL;
    int rc = -1;

#define LOAD(name, optional, parse_call)                       \
    do {                                                       \
        free(path);                                            \
        if (load_file(c, name, optional, &root, &path, err)) \
            goto out;                                          \
        if ((parse_call) != 0)                                 \
            goto out;                                          \
    } while (0)

    LOAD("resourceconfig.json", false, resource_config_parse(root, path, &c->resources, err));
    LOAD("hyperparameters.json", false, hyperparameters_parse(root, path, &c->hyperparameters, err));
    LOAD("inputdataconfig.json", false, input_data_config_parse(root, path, &c->inputs, err));
    LOAD("checkpointconfig.json", true,
         checkpoint_config_parse(root, path, c->default_checkpoint_dir, &c->checkpoint, err));
    LOAD("trainingjobconfig.json", true, training_job_config_parse(root, path, &c->training_job, err));
#undef LOAD
    rc = 0;
out:
    free(path);
    return rc;
}

int contract_load(struct contract *c, const char *ml_root, struct sr_error *err)
{
    memset(c, 0, sizeof *c);
    c->ml_root = xstrdup(ml_root);
    c->config_dir = join_path(ml_root, "input/config");
    c->default_checkpoint_dir = join_path(ml_root, "checkpoints");
    if (load_all(c, err) != 0) {
        contract_free(c);
        return -1;
    }
    return 0;
}

void contract_free(struct contract *c)
{
    resource_config_free(&c->resources);
    hyperparameters_free(&c->hyperparameters);
    input_data_config_free(&c->inputs);
    json_decref(c->checkpoint.raw);
    json_decref(c->training_job.raw);
    free(c->ml_root);
    free(c->config_dir);
    free(c->default_checkpoint_dir);
    memset(c, 0, sizeof *c);
}

const struct channel *contract_channel(const struct contract *c, const char *name)
{
    for (size_t i = 0; i < c->inputs.channel_count; i++)
        if (strcmp(c->inputs.channels[i].name, name) == 0)
            return &c->inputs.channels[i];
    return NULL;
}

const char *contract_channel_dir(const struct contract *c, const char *name, char *path, size_t size)
{
    if (!contract_channel(c, name))
        return NULL;
    snprintf(path, size, "%s/input/data/%s", c->ml_root, name);
    return path;
}
