#include "sm_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "pyjson.h"
#include "strbuf.h"

/* sagemaker_training.params.SAGEMAKER_HYPERPARAMETERS: framework settings,
 * kept out of the user's hyperparameters along with every sagemaker_* key. */
static const char *const toolkit_keys[] = {
    "sagemaker_program",      "sagemaker_submit_directory",   "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",       "sagemaker_container_log_level", "sagemaker_job_name",
    "default_user_module_name", "_tuning_objective_metric",   "sagemaker_s3_output",
};

/* Flags that make the current group a distribution group (toolkit rule). */
static const char *const distribution_flags[] = {
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool is_toolkit_key(const char *key)
{
    for (size_t i = 0; i < COUNT(toolkit_keys); i++)
        if (strcmp(key, toolkit_keys[i]) == 0)
            return true;
    return false;
}

/* The three views of the hyperparameters the toolkit derives. */
struct hp_split {
    json_t *user;      /* neither sagemaker_* nor a toolkit key */
    json_t *framework; /* sagemaker_* keys that are not toolkit keys */
    json_t *sagemaker; /* every sagemaker_* or toolkit key */
};

static void split_hyperparameters(const json_t *decoded, struct hp_split *s)
{
    s->user = json_object();
    s->framework = json_object();
    s->sagemaker = json_object();
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)decoded, key, value) {
        bool toolkit = is_toolkit_key(key);
        if (toolkit || strncmp(key, "sagemaker_", 10) == 0) {
            json_object_set(s->sagemaker, key, value);
            if (!toolkit)
                json_object_set(s->framework, key, value);
        } else {
            json_object_set(s->user, key, value);
        }
    }
}

static void hp_split_free(struct hp_split *s)
{
    json_decref(s->user);
    json_decref(s->framework);
    json_decref(s->sagemaker);
}

static json_t *path_under(const char *root, const char *rel)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "%s/%s", root, rel);
    json_t *v = json_string(sb.data);
    strbuf_free(&sb);
    return v;
}

static json_t *py_str_value(const json_t *v)
{
    struct strbuf sb;
    strbuf_init(&sb);
    pyjson_str(v, &sb);
    json_t *s = json_string(sb.data);
    strbuf_free(&sb);
    return s;
}

/* str() of a dict hyperparameter as to_cmd_args writes it: k=v,k2=v2. */
static void dict_arg(const json_t *dict, struct strbuf *out)
{
    size_t n;
    const char **keys = json_sorted_keys(dict, &n);
    for (size_t i = 0; i < n; i++) {
        strbuf_printf(out, "%s%s=", i ? "," : "", keys[i]);
        pyjson_str(json_object_get(dict, keys[i]), out);
    }
    free(keys);
}

static json_t *user_args(const json_t *hyperparameters)
{
    size_t n;
    const char **keys = json_sorted_keys(hyperparameters, &n);
    json_t *args = json_array();
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(hyperparameters, keys[i]);
        strbuf_reset(&sb);
        strbuf_printf(&sb, "%s%s", utf8_length(keys[i]) > 1 ? "--" : "-", keys[i]);
        json_array_append_new(args, json_string(sb.data));
        strbuf_reset(&sb);
        if (json_is_object(v))
            dict_arg(v, &sb);
        else if (!json_is_null(v))
            pyjson_str(v, &sb);
        json_array_append_new(args, json_string(sb.data));
    }
    strbuf_free(&sb);
    free(keys);
    return args;
}

json_t *sm_env_user_args(const json_t *decoded_hyperparameters)
{
    struct hp_split hps;
    split_hyperparameters(decoded_hyperparameters, &hps);
    json_t *args = user_args(hps.user);
    hp_split_free(&hps);
    return args;
}

/* The toolkit's module_name: $SAGEMAKER_PROGRAM, else str() of the
 * sagemaker_program hyperparameter (the text "None" when absent), minus ".py". */
static json_t *module_name(const json_t *sagemaker_hps)
{
    const char *env = getenv("SAGEMAKER_PROGRAM");
    json_t *name = env ? json_string(env) : NULL;
    if (!name) {
        const json_t *hp = json_object_get(sagemaker_hps, "sagemaker_program");
        name = hp ? py_str_value(hp) : json_string("None");
    }
    const char *s = json_string_value(name);
    size_t len = strlen(s);
    if (len >= 3 && strcmp(s + len - 3, ".py") == 0) {
        char *trimmed = xstrdup(s);
        trimmed[len - 3] = '\0';
        json_decref(name);
        name = json_string(trimmed);
        free(trimmed);
    }
    return name;
}

static json_t *user_entry_point(const json_t *sagemaker_hps)
{
    const char *env = getenv("SAGEMAKER_PROGRAM");
    if (env && *env)
        return json_string(env);
    const json_t *hp = json_object_get(sagemaker_hps, "sagemaker_program");
    return hp ? json_deep_copy(hp) : json_null();
}

/* SM_HP_MP_PARAMETERS: unset -> null, "" -> "", "{}" -> false, else true. */
static json_t *model_parallel_enabled(void)
{
    const char *mp = getenv("SM_HP_MP_PARAMETERS");
    if (!mp)
        return json_null();
    if (!*mp)
        return json_string("");
    return json_boolean(strcmp(mp, "{}") != 0);
}

static json_t *distribution_groups(const struct resource_config *rc, const json_t *framework)
{
    const json_t *given = json_object_get(framework, "sagemaker_distribution_instance_groups");
    if (given)
        return json_deep_copy(given);
    json_t *groups = json_array();
    for (size_t i = 0; i < COUNT(distribution_flags); i++) {
        const json_t *flag = json_object_get(framework, distribution_flags[i]);
        if (flag && pyjson_truthy(flag)) {
            json_array_append_new(groups, json_string(rc->current_group_name));
            break;
        }
    }
    return groups;
}

struct groups_view {
    json_t *names, *by_name, *current_hosts, *distribution_hosts;
};

static void view_groups(const struct resource_config *rc, const json_t *distribution, struct groups_view *v)
{
    v->names = json_array();
    v->by_name = json_object();
    v->current_hosts = json_array();
    v->distribution_hosts = json_array();
    const json_t *raw = json_object_get(rc->raw, "instance_groups");
    for (size_t g = 0; g < rc->group_count; g++) {
        const struct instance_group *grp = &rc->groups[g];
        json_t *raw_group = json_array_get(raw, g);
        json_array_append_new(v->names, json_string(grp->name));
        json_object_set(v->by_name, grp->name, raw_group);
        if (strcmp(grp->name, rc->current_group_name) == 0 && json_array_size(v->current_hosts) == 0)
            json_array_extend(v->current_hosts, json_object_get(raw_group, "hosts"));
        if (pyjson_contains(distribution, grp->name))
            json_array_extend(v->distribution_hosts, json_object_get(raw_group, "hosts"));
    }
    if (rc->group_count == 0) /* local mode: every host takes part */
        json_array_extend(v->distribution_hosts, json_object_get(rc->raw, "hosts"));
}

static json_t *channel_dirs(const struct contract *c)
{
    json_t *dirs = json_object();
    for (size_t i = 0; i < c->inputs.channel_count; i++) {
        struct strbuf sb;
        strbuf_init(&sb);
        strbuf_printf(&sb, "input/data/%s", c->inputs.channels[i].name);
        json_object_set_new(dirs, c->inputs.channels[i].name, path_under(c->ml_root, sb.data));
        strbuf_free(&sb);
    }
    return dirs;
}

static json_t *sorted_channel_names(const json_t *dirs)
{
    size_t n;
    const char **keys = json_sorted_keys(dirs, &n);
    json_t *names = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(names, json_string(keys[i]));
    free(keys);
    return names;
}

/* Environment.__iter__: every property of the toolkit's Environment. */
static json_t *training_env(const struct contract *c, const struct plan *p, const struct hp_split *hps,
                            const struct groups_view *groups, json_t *distribution)
{
    const struct resource_config *rc = &c->resources;
    const char *root = c->ml_root;
    json_t *topology = json_object_get(rc->raw, "topology");
    const json_t *log_level = json_object_get(hps->sagemaker, "sagemaker_container_log_level");
    const json_t *submit_dir = json_object_get(hps->sagemaker, "sagemaker_submit_directory");
    const char *job_name = getenv("TRAINING_JOB_NAME");
    const char *framework_module = getenv("SAGEMAKER_TRAINING_MODULE");
    const char *master = json_array_size(groups->distribution_hosts)
                             ? json_string_value(json_array_get(groups->distribution_hosts, 0))
                             : rc->hosts[0];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    json_t *env = json_object();
    json_object_set(env, "additional_framework_parameters", hps->framework);
    json_object_set_new(env, "channel_input_dirs", channel_dirs(c));
    json_object_set_new(env, "current_host", json_string(rc->current_host));
    json_object_set_new(env, "current_instance_group", json_string(rc->current_group_name));
    json_object_set(env, "current_instance_group_hosts", groups->current_hosts);
    json_object_set_new(env, "current_instance_type", json_string(rc->current_instance_type));
    json_object_set(env, "distribution_hosts", groups->distribution_hosts);
    json_object_set(env, "distribution_instance_groups", distribution);
    json_object_set_new(env, "framework_module", framework_module ? json_string(framework_module) : json_null());
    json_object_set(env, "hosts", json_object_get(rc->raw, "hosts"));
    json_object_set(env, "hyperparameters", hps->user);
    json_object_set_new(env, "input_config_dir", path_under(root, "input/config"));
    json_object_set(env, "input_data_config", c->inputs.raw);
    json_object_set_new(env, "input_dir", path_under(root, "input"));
    json_object_set(env, "instance_groups", groups->names);
    json_object_set(env, "instance_groups_dict", groups->by_name);
    json_object_set_new(env, "is_hetero", json_boolean(rc->group_count > 1));
    json_object_set_new(env, "is_master", json_boolean(strcmp(rc->current_host, master) == 0));
    json_object_set_new(env, "is_modelparallel_enabled", model_parallel_enabled());
    json_object_set_new(env, "is_smddpmprun_installed", json_boolean(fs_on_path("smddpmprun")));
    json_object_set_new(env, "is_smddprun_installed", json_boolean(fs_on_path("smddprun")));
    json_object_set_new(env, "job_name", job_name ? json_string(job_name) : json_null());
    json_object_set_new(env, "log_level", log_level ? json_deep_copy(log_level) : json_integer(20));
    json_object_set_new(env, "master_hostname", json_string(master));
    json_object_set_new(env, "model_dir", path_under(root, "model"));
    json_object_set_new(env, "module_dir", submit_dir ? py_str_value(submit_dir) : path_under(root, "code"));
    json_object_set_new(env, "module_name", module_name(hps->sagemaker));
    json_object_set_new(env, "network_interface_name", json_string(rc->network_interface_name));
    json_object_set_new(env, "num_cpus", json_integer(cpus > 0 ? cpus : 1));
    json_object_set_new(env, "num_gpus", json_integer(p->gpus.count));
    json_object_set_new(env, "num_neurons",
                        json_integer(strstr(rc->current_instance_type, "trn2.48xlarge") ? 64 : 0));
    json_object_set_new(env, "output_data_dir", path_under(root, "output/data"));
    json_object_set_new(env, "output_dir", path_under(root, "output"));
    json_object_set_new(env, "output_intermediate_dir", path_under(root, "output/intermediate"));
    json_object_set(env, "resource_config", rc->raw);
    json_object_set_new(env, "topology", topology ? json_incref(topology) : json_array());
    json_object_set_new(env, "user_entry_point", user_entry_point(hps->sagemaker));
    return env;
}

/* mapping.to_env_vars: SM_<KEY upper-cased>, strings raw, others as JSON. */
static void set_var(json_t *vars, const char *prefix, const char *key, const json_t *value)
{
    struct strbuf name, text;
    strbuf_init(&name);
    strbuf_init(&text);
    strbuf_printf(&name, "SM_%s%s", prefix, key);
    for (char *s = name.data; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
    if (json_is_string(value))
        strbuf_append(&text, json_string_value(value), json_string_length(value));
    else if (!json_is_null(value))
        pyjson_dumps(value, &text);
    json_object_set_new(vars, name.data, json_string(text.data));
    strbuf_free(&name);
    strbuf_free(&text);
}

/* Variables of the toolkit that copy a training_env property unchanged. */
static const char *const copied[][2] = {
    {"hosts", "hosts"},
    {"network_interface_name", "network_interface_name"},
    {"hps", "hyperparameters"},
    {"user_entry_point", "user_entry_point"},
    {"framework_params", "additional_framework_parameters"},
    {"resource_config", "resource_config"},
    {"input_data_config", "input_data_config"},
    {"output_data_dir", "output_data_dir"},
    {"current_host", "current_host"},
    {"current_instance_type", "current_instance_type"},
    {"current_instance_group", "current_instance_group"},
    {"current_instance_group_hosts", "current_instance_group_hosts"},
    {"instance_groups", "instance_groups"},
    {"instance_groups_dict", "instance_groups_dict"},
    {"distribution_instance_groups", "distribution_instance_groups"},
    {"is_hetero", "is_hetero"},
    {"module_name", "module_name"},
    {"log_level", "log_level"},
    {"framework_module", "framework_module"},
    {"input_dir", "input_dir"},
    {"input_config_dir", "input_config_dir"},
    {"output_dir", "output_dir"},
    {"num_cpus", "num_cpus"},
    {"num_gpus", "num_gpus"},
    {"num_neurons", "num_neurons"},
    {"model_dir", "model_dir"},
    {"module_dir", "module_dir"},
    {"output_intermediate_dir", "output_intermediate_dir"},
};

static void add_driver_vars(json_t *vars, const struct contract *c, const struct plan *p)
{
    char number[32];
    json_t *v;
    snprintf(number, sizeof number, "%zu", p->host_count);
    json_object_set_new(vars, "SM_HOST_COUNT", json_string(number));
    snprintf(number, sizeof number, "%zu", p->host_index);
    json_object_set_new(vars, "SM_CURRENT_HOST_RANK", json_string(number));
    json_object_set_new(vars, "SM_MASTER_ADDR", json_string(p->master_addr));
    snprintf(number, sizeof number, "%d", p->master_port);
    json_object_set_new(vars, "SM_MASTER_PORT", json_string(number));
    v = path_under(c->ml_root, "input/data");
    json_object_set_new(vars, "SM_INPUT_DATA_DIR", v);
    v = path_under(c->ml_root, "output/failure");
    json_object_set_new(vars, "SM_OUTPUT_FAILURE", v);
}

json_t *sm_env_build(const struct contract *c, const struct plan *p)
{
    struct hp_split hps;
    struct groups_view groups;
    split_hyperparameters(c->hyperparameters.decoded, &hps);
    json_t *distribution = distribution_groups(&c->resources, hps.framework);
    view_groups(&c->resources, distribution, &groups);
    json_t *env = training_env(c, p, &hps, &groups, distribution);

    json_t *vars = json_object();
    for (size_t i = 0; i < COUNT(copied); i++)
        set_var(vars, "", copied[i][0], json_object_get(env, copied[i][1]));
    json_t *channels = json_object_get(env, "channel_input_dirs");
    json_t *names = sorted_channel_names(channels);
    set_var(vars, "", "channels", names);
    json_decref(names);
    set_var(vars, "", "training_env", env);
    json_t *args = user_args(hps.user);
    set_var(vars, "", "user_args", args);
    json_decref(args);
    json_t *topology = json_object_get(env, "topology");
    if (pyjson_truthy(topology))
        set_var(vars, "", "topology", topology);
    const char *key;
    json_t *value;
    json_object_foreach(channels, key, value) set_var(vars, "CHANNEL_", key, value);
    json_object_foreach(hps.user, key, value) set_var(vars, "HP_", key, value);
    add_driver_vars(vars, c, p);

    json_decref(env);
    json_decref(distribution);
    json_decref(groups.names);
    json_decref(groups.by_name);
    json_decref(groups.current_hosts);
    json_decref(groups.distribution_hosts);
    hp_split_free(&hps);
    return vars;
}
