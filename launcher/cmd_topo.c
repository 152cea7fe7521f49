/* sagerun topo: the binding plan of this host's ranks (or of a saved
 * topology): GPU -> PCI bus id -> NUMA node -> CPUs, and the nearest NIC. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "commands.h"
#include "fs.h"
#include "options.h"
#include "parse_int.h"
#include "plan.h"
#include "strbuf.h"

#include <jansson.h>

static json_t *bitmap_json(hwloc_const_bitmap_t set)
{
    char *text = NULL;
    if (hwloc_bitmap_iszero(set) || hwloc_bitmap_list_asprintf(&text, set) < 0) {
        free(text);
        return json_null();
    }
    json_t *v = json_string(text);
    free(text);
    return v;
}

static json_t *plan_json(const char *source, const struct gpu_inventory *gpus, const struct binding_plan *plan)
{
    json_t *ranks = json_array();
    for (int r = 0; r < plan->rank_count; r++) {
        const struct rank_binding *rb = &plan->ranks[r];
        json_array_append_new(ranks, json_pack("{s:i, s:s?, s:o, s:o, s:s?, s:s?}", "local_rank", r, "gpu",
                                               rb->gpu_bus_id[0] ? rb->gpu_bus_id : NULL, "numa_nodes",
                                               bitmap_json(rb->nodeset), "cpus", bitmap_json(rb->cpuset), "nic",
                                               rb->nic[0] ? rb->nic : NULL, "note", rb->note[0] ? rb->note : NULL));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "topology", source, "policy", bind_policy_name(plan->policy),
                     "gpu_source", gpus->source, "ranks", ranks);
}

static void plan_text(const char *source, const struct gpu_inventory *gpus, const struct binding_plan *plan,
                      struct strbuf *out)
{
    strbuf_printf(out, "# %s, policy %s; %s\n", source, bind_policy_name(plan->policy), gpus->source);
    for (int r = 0; r < plan->rank_count; r++) {
        const struct rank_binding *rb = &plan->ranks[r];
        char *cpus = NULL, *nodes = NULL;
        hwloc_bitmap_list_asprintf(&cpus, rb->cpuset);
        hwloc_bitmap_list_asprintf(&nodes, rb->nodeset);
        strbuf_printf(out, "rank %d: GPU %s -> NUMA %s -> CPUs %s", r, rb->gpu_bus_id[0] ? rb->gpu_bus_id : "none",
                      hwloc_bitmap_iszero(rb->nodeset) ? "-" : nodes,
                      hwloc_bitmap_iszero(rb->cpuset) ? "unbound" : cpus);
        if (rb->nic[0])
            strbuf_printf(out, "; nearest %s", rb->nic);
        if (rb->note[0])
            strbuf_printf(out, " (%s)", rb->note);
        strbuf_putc(out, '\n');
        free(cpus);
        free(nodes);
    }
}

static const struct option options[] = {
    {"topology", required_argument, NULL, 't'},       {"policy", required_argument, NULL, 'b'},
    {"nproc-per-host", required_argument, NULL, 'n'}, {"format", required_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

int cmd_topo(int argc, char **argv)
{
    const char *xml = NULL, *format = "text";
    enum bind_policy policy = BIND_NUMA;
    int nproc = 0;
    struct sr_error err = {{0}};
    int opt;
    if (options_check(argc, argv, options, false) != 0)
        return EXIT_USAGE;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 't': xml = optarg; break;
        case 'b': bad = bind_policy_parse(optarg, &policy, &err); break;
        case 'n': bad = parse_int_option(optarg, 1, MAX_RANKS_PER_HOST, "--nproc-per-host", &nproc, &err); break;
        case 'f':
            format = optarg;
            bad = strcmp(format, "text") != 0 && strcmp(format, "json") != 0;
            if (bad)
                error_setf(&err, "--format must be text or json, not \"%s\"", optarg);
            break;
        default: return EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "sagerun topo: %s\n", err.text);
            return EXIT_USAGE;
        }
    }
    hwloc_topology_t topo;
    if (topology_open(&topo, xml, &err) != 0) {
        fprintf(stderr, "sagerun topo: %s\n", err.text);
        return EXIT_JOB_FAILED;
    }
    /* A saved topology has no driver to ask: its NVIDIA PCI devices are the GPUs. */
    struct gpu_inventory gpus;
    if (xml)
        topology_gpus(topo, &gpus);
    else
        gpu_inventory_probe(&gpus, getenv("SAGERUN_NVML_LIBRARY"));
    int ranks = nproc > 0 ? nproc : gpus.count > 0 ? gpus.count : 1;
    struct binding_plan plan;
    int status = EXIT_OK;
    if (binding_plan_build(topo, &gpus, ranks, policy, &plan, &err) != 0) {
        fprintf(stderr, "sagerun topo: %s\n", err.text);
        status = EXIT_JOB_FAILED;
    } else {
        char source[FS_PATH_BYTES + 32];
        snprintf(source, sizeof source, "%s%s", xml ? "saved topology " : "live topology of this machine",
                 xml ? xml : "");
        struct strbuf out;
        strbuf_init(&out);
        if (strcmp(format, "json") == 0) {
            json_t *doc = plan_json(source, &gpus, &plan);
            char *text = json_dumps(doc, JSON_INDENT(2));
            strbuf_puts(&out, text);
            strbuf_putc(&out, '\n');
            free(text);
            json_decref(doc);
        } else {
            plan_text(source, &gpus, &plan, &out);
        }
        fwrite(out.data, 1, out.len, stdout);
        strbuf_free(&out);
        binding_plan_free(&plan);
    }
    hwloc_topology_destroy(topo);
    return status;
}
