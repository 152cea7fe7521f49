#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "instance_types.h"
#include "strbuf.h"

static const char *group_type_of(const struct resource_config *rc, const char *host)
{
    for (size_t g = 0; g < rc->group_count; g++)
        for (size_t h = 0; h < rc->groups[g].host_count; h++)
            if (strcmp(rc->groups[g].hosts[h], host) == 0 && rc->groups[g].instance_type)
                return rc->groups[g].instance_type;
    return rc->current_instance_type;
}

static void plan_local_ranks(const struct contract *c, struct plan *p, struct host_plan *hp)
{
    int expected = instance_type_gpus(hp->instance_type);
    if (p->gpus.count > 0) {
        hp->ranks = p->gpus.count;
        snprintf(hp->rank_source, sizeof hp->rank_source, "one per GPU: %s", p->gpus.source);
    } else {
        hp->ranks = 1;
        snprintf(hp->rank_source, sizeof hp->rank_source, "one CPU rank: %s", p->gpus.source);
    }
    if (expected >= 0 && expected != p->gpus.count)
        snprintf(p->warning, sizeof p->warning, "%s of %s has %d GPUs, but this host sees %d (%s)",
                 c->resources.current_host, hp->instance_type, expected, p->gpus.count, p->gpus.source);
}

static int plan_remote_ranks(const struct host_plan *self, struct host_plan *hp,
                             struct sr_error *err)
{
    if (strcmp(hp->instance_type, self->instance_type) == 0) {
        hp->ranks = self->ranks;
        snprintf(hp->rank_source, sizeof hp->rank_source, "same instance type as %s", self->name);
        return 0;
    }
    int gpus = instance_type_gpus(hp->instance_type);
    if (gpus < 0) {
        error_setf(err,
                   "cannot plan ranks for host %s: instance type \"%s\" is unknown to sagerun and differs from "
                   "this host's (%s); set %s",
                   hp->name, hp->instance_type, self->instance_type, NPROC_ENV);
        return -1;
    }
    hp->ranks = gpus > 0 ? gpus : 1;
    snprintf(hp->rank_source, sizeof hp->rank_source, "%s has %d GPUs", hp->instance_type, gpus);
    return 0;
}

static int plan_hosts(const struct contract *c, const struct plan_options *opt, struct plan *p, struct sr_error *err)
{
    const struct resource_config *rc = &c->resources;
    p->hosts = xcalloc(rc->host_count, sizeof *p->hosts);
    for (size_t i = 0; i < rc->host_count; i++) {
        p->hosts[i].name = rc->hosts[i];
        p->hosts[i].instance_type = group_type_of(rc, rc->hosts[i]);
    }
    struct host_plan *self = &p->hosts[p->host_index];
    if (opt->nproc_per_host > 0) {
        for (size_t i = 0; i < rc->host_count; i++) {
            p->hosts[i].ranks = opt->nproc_per_host;
            snprintf(p->hosts[i].rank_source, sizeof p->hosts[i].rank_source, "%s", opt->nproc_origin);
        }
    } else {
        plan_local_ranks(c, p, self);
        for (size_t i = 0; i < rc->host_count; i++)
            if (i != p->host_index && plan_remote_ranks(self, &p->hosts[i], err) != 0)
                return -1;
    }
    int next = 0;
    for (size_t i = 0; i < rc->host_count; i++) {
        p->hosts[i].first_rank = next;
        next += p->hosts[i].ranks;
    }
    p->world_size = next;
    p->local_ranks = self->ranks;
    p->first_rank = self->first_rank;
    return 0;
}

static bool path_is(const char *path, mode_t kind)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

static void plan_channels(const struct contract *c, struct plan *p)
{
    p->channels = xcalloc(c->inputs.channel_count, sizeof *p->channels);
    p->channel_count = c->inputs.channel_count;
    for (size_t i = 0; i < c->inputs.channel_count; i++) {
        const struct channel *ch = &c->inputs.channels[i];
        struct strbuf sb;
        strbuf_init(&sb);
        bool pipe = ch->mode == INPUT_MODE_PIPE;
        /* Pipe mode: SageMaker creates one FIFO per epoch, <channel>_<epoch>. */
        strbuf_printf(&sb, "%s/input/data/%s%s", c->ml_root, ch->name, pipe ? "_0" : "");
        p->channels[i].channel = ch;
        p->channels[i].path = strbuf_detach(&sb);
        p->channels[i].present = path_is(p->channels[i].path, pipe ? S_IFIFO : S_IFDIR);
    }
}

int plan_build(const struct contract *c, const struct plan_options *opt, struct plan *p, struct sr_error *err)
{
    memset(p, 0, sizeof *p);
    const struct resource_config *rc = &c->resources;
    p->host_index = rc->current_host_index;
    p->host_count = rc->host_count;
    p->leader = rc->hosts[0];
    p->is_leader = p->host_index == 0;
    p->master_addr = p->leader;
    p->master_port = opt->master_port > 0 ? opt->master_port : DEFAULT_MASTER_PORT;
    gpu_inventory_probe(&p->gpus, opt->nvml_library);
    if (plan_hosts(c, opt, p, err) != 0) {
        plan_free(p);
        return -1;
    }
    plan_channels(c, p);
    return 0;
}

void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->channel_count; i++)
        free(p->channels[i].path);
    free(p->channels);
    free(p->hosts);
    memset(p, 0, sizeof *p);
}
