/* resourceconfig.json: which hosts form the job and which one this is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "json_file.h"
#include "strbuf.h"

/* Reads an optional string member; absent (or, with allow_null, null) gives
 * `fallback`. Present values must be non-empty strings. */
static int optional_string(const json_t *obj, const char *key, const char *parent,
                           const char *fallback, const char *file, const char **out,
                           struct sr_error *err)
{
    char path[512];
    json_path_member(path, sizeof path, parent, key);
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = fallback;
        return 0;
    }
    if (!json_is_string(v)) {
        error_config(err, file, path, "expected a string, got %s", json_type_name(v));
        return -1;
    }
    if (json_string_length(v) == 0) {
        error_config(err, file, path, "must not be empty");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int required_string(const json_t *obj, const char *key, const char *parent,
                           const char *file, const char **out, struct sr_error *err)
{
    if (!json_object_get(obj, key)) {
        char path[512];
        json_path_member(path, sizeof path, parent, key);
        error_config(err, file, path, "required field is missing");
        return -1;
    }
    return optional_string(obj, key, parent, NULL, file, out, err);
}

/* Host names become DNS lookups and NCCL/rendezvous addresses: refuse
 * anything that is not a plain host name. */
static bool valid_host_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return false;
    return true;
}

static bool valid_interface_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15) /* IFNAMSIZ - 1 */
        return false;
    for (; *s; s++)
        if (*s == '/' || *s == ':' || *s == ' ' || *s == '\t' || *s == '\n')
            return false;
    return true;
}

static long find_host(const char *const *hosts, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(hosts[i], name) == 0)
            return (long)i;
    return -1;
}

/* Parses a list of host names at `path`; each must be valid and unique. */
static int parse_host_list(const json_t *arr, const char *path, const char *file,
                           const char ***out, size_t *count, struct sr_error *err)
{
    if (!json_is_array(arr)) {
        error_config(err, file, path, "expected an array of host names, got %s", json_type_name(arr));
        return -1;
    }
    size_t n = json_array_size(arr);
    const char **hosts = xcalloc(n, sizeof *hosts);
    for (size_t i = 0; i < n; i++) {
        char item[512];
        snprintf(item, sizeof item, "%s[%zu]", path, i);
        const json_t *h = json_array_get(arr, i);
        if (!json_is_string(h)) {
            error_config(err, file, item, "expected a host name string, got %s", json_type_name(h));
            goto fail;
        }
        const char *name = json_string_value(h);
        if (!valid_host_name(name)) {
            error_config(err, file, item,
                         "\"%s\" is not a valid host name (1 to 253 letters, digits, '-', '.' or '_')",
                         name);
            goto fail;
        }
        long dup = find_host(hosts, i, name);
        if (dup >= 0) {
            error_config(err, file, item, "host \"%s\" is listed twice (also at %s[%ld])", name, path, dup);
            goto fail;
        }
        hosts[i] = name;
    }
    *out = hosts;
    *count = n;
    return 0;
fail:
    free(hosts);
    return -1;
}

static void host_list_text(char *out, size_t size, const char *const *hosts, size_t count)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", hosts[i]);
}

static int parse_group(const json_t *g, size_t index, const char *file, struct resource_config *rc,
                       struct sr_error *err)
{
    char path[128], hosts_path[160];
    snprintf(path, sizeof path, "$.instance_groups[%zu]", index);
    if (!json_is_object(g)) {
        error_config(err, file, path, "expected an object, got %s", json_type_name(g));
        return -1;
    }
    struct instance_group *grp = &rc->groups[index];
    if (required_string(g, "instance_group_name", path, file, &grp->name, err) != 0 ||
        optional_string(g, "instance_type", path, NULL, file, &grp->instance_type, err) != 0)
        return -1;
    for (size_t j = 0; j < index; j++)
        if (strcmp(rc->groups[j].name, grp->name) == 0) {
            error_config(err, file, path, "instance group \"%s\" is listed twice (also at $.instance_groups[%zu])",
                         grp->name, j);
            return -1;
        }
    snprintf(hosts_path, sizeof hosts_path, "%s.hosts", path);
    const json_t *hosts = json_object_get(g, "hosts");
    if (!hosts) {
        error_config(err, file, hosts_path, "required field is missing");
        return -1;
    }
    if (parse_host_list(hosts, hosts_path, file, &grp->hosts, &grp->host_count, err) != 0)
        return -1;
    for (size_t h = 0; h < grp->host_count; h++) {
        char item[192];
        snprintf(item, sizeof item, "%s[%zu]", hosts_path, h);
        if (find_host(rc->hosts, rc->host_count, grp->hosts[h]) < 0) {
            error_config(err, file, item, "host \"%s\" is not one of $.hosts", grp->hosts[h]);
            return -1;
        }
        for (size_t j = 0; j < index; j++)
            if (find_host(rc->groups[j].hosts, rc->groups[j].host_count, grp->hosts[h]) >= 0) {
                error_config(err, file, item, "host \"%s\" is already in instance group \"%s\"",
                             grp->hosts[h], rc->groups[j].name);
                return -1;
            }
    }
    return 0;
}

/* Every host belongs to exactly one group, and this host to the current one. */
static int check_groups(const char *file, struct resource_config *rc, struct sr_error *err)
{
    for (size_t i = 0; i < rc->host_count; i++) {
        bool found = false;
        for (size_t g = 0; g < rc->group_count && !found; g++)
            found = find_host(rc->groups[g].hosts, rc->groups[g].host_count, rc->hosts[i]) >= 0;
        if (!found) {
            error_config(err, file, "$.instance_groups", "host \"%s\" of $.hosts belongs to no instance group",
                         rc->hosts[i]);
            return -1;
        }
    }
    for (size_t g = 0; g < rc->group_count; g++) {
        if (strcmp(rc->groups[g].name, rc->current_group_name) != 0)
            continue;
        if (find_host(rc->groups[g].hosts, rc->groups[g].host_count, rc->current_host) < 0) {
            error_config(err, file, "$.current_group_name",
                         "current host \"%s\" is not in instance group \"%s\" ($.instance_groups[%zu].hosts)",
                         rc->current_host, rc->current_group_name, g);
            return -1;
        }
        return 0;
    }
    error_config(err, file, "$.current_group_name", "\"%s\" names no entry of $.instance_groups",
                 rc->current_group_name);
    return -1;
}

static int parse_groups(const char *file, struct resource_config *rc, struct sr_error *err)
{
    const json_t *groups = json_object_get(rc->raw, "instance_groups");
    if (!groups)
        return 0;
    if (!json_is_array(groups)) {
        error_config(err, file, "$.instance_groups", "expected an array, got %s", json_type_name(groups));
        return -1;
    }
    if (json_array_size(groups) == 0)
        return 0;
    rc->groups = xcalloc(json_array_size(groups), sizeof *rc->groups);
    for (size_t i = 0; i < json_array_size(groups); i++) {
        rc->group_count = i + 1;
        if (parse_group(json_array_get(groups, i), i, file, rc, err) != 0)
            return -1;
    }
    return check_groups(file, rc, err);
}

static int parse_fields(const char *file, struct resource_config *rc, struct sr_error *err)
{
    json_t *root = rc->raw;
    if (!json_is_object(root)) {
        error_config(err, file, "$", "expected an object, got %s", json_type_name(root));
        return -1;
    }
    if (required_string(root, "current_host", "$", file, &rc->current_host, err) != 0 ||
        optional_string(root, "current_instance_type", "$", "local", file, &rc->current_instance_type, err) != 0 ||
        optional_string(root, "current_group_name", "$", "homogeneousCluster", file, &rc->current_group_name, err) != 0 ||
        optional_string(root, "network_interface_name", "$", "eth0", file, &rc->network_interface_name, err) != 0)
        return -1;
    if (!valid_interface_name(rc->network_interface_name)) {
        error_config(err, file, "$.network_interface_name",
                     "\"%s\" is not a network interface name (1 to 15 characters, no '/', ':' or spaces)",
                     rc->network_interface_name);
        return -1;
    }
    const json_t *hosts = json_object_get(root, "hosts");
    if (!hosts) {
        error_config(err, file, "$.hosts", "required field is missing");
        return -1;
    }
    if (parse_host_list(hosts, "$.hosts", file, &rc->hosts, &rc->host_count, err) != 0)
        return -1;
    if (rc->host_count == 0) {
        error_config(err, file, "$.hosts", "must list at least one host");
        return -1;
    }
    long index = find_host(rc->hosts, rc->host_count, rc->current_host);
    if (index < 0) {
        char list[1024];
        host_list_text(list, sizeof list, rc->hosts, rc->host_count);
        error_config(err, file, "$.current_host", "\"%s\" is not one of $.hosts (%s)", rc->current_host, list);
        return -1;
    }
    rc->current_host_index = (size_t)index;
    const json_t *topology = json_object_get(root, "topology");
    if (topology && !json_is_null(topology) && !json_is_array(topology)) {
        error_config(err, file, "$.topology", "expected an array or null, got %s", json_type_name(topology));
        return -1;
    }
    return parse_groups(file, rc, err);
}

int resource_config_parse(json_t *root, const char *path, struct resource_config *rc, struct sr_error *err)
{
    memset(rc, 0, sizeof *rc);
    rc->raw = root;
    if (parse_fields(path, rc, err) != 0) {
        resource_config_free(rc);
        return -1;
    }
    return 0;
}

void resource_config_free(struct resource_config *rc)
{
    for (size_t g = 0; g < rc->group_count; g++)
        free(rc->groups[g].hosts);
    free(rc->groups);
    free(rc->hosts);
    json_decref(rc->raw);
    memset(rc, 0, sizeof *rc);
}
