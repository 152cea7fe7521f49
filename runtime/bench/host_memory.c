#include "host_memory.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "measure.h"

/* The topology's NUMA latency matrix, or NULL when it has none. */
static struct hwloc_distances_s *latency_matrix(hwloc_topology_t topo)
{
    unsigned count = 1;
    struct hwloc_distances_s *d = NULL;
    if (hwloc_distances_get_by_type(topo, HWLOC_OBJ_NUMANODE, &count, &d, HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) != 0 ||
        count == 0)
        return NULL;
    return d;
}

/* Latency from node `from` to `to` in matrix d; 0 if none. */
static uint64_t node_latency(struct hwloc_distances_s *d, hwloc_obj_t from, hwloc_obj_t to)
{
    hwloc_uint64_t there = 0, back = 0;
    if (!d || hwloc_distances_obj_pair_values(d, from, to, &there, &back) != 0)
        return 0;
    return there;
}

void host_memory_nodes_for_gpu(hwloc_topology_t topo, const char *bus_id, struct host_memory_nodes *out)
{
    memset(out, 0, sizeof *out);
    out->local = out->remote = -1;
    hwloc_bitmap_t near = hwloc_bitmap_alloc();
    if (gpu_numa_nodes(topo, bus_id, near, out->note, sizeof out->note))
        out->local = hwloc_bitmap_first(near);
    hwloc_obj_t local = out->local >= 0 ? hwloc_get_numanode_obj_by_os_index(topo, (unsigned)out->local) : NULL;
    struct hwloc_distances_s *d = latency_matrix(topo);
    uint64_t farthest = 0;
    for (hwloc_obj_t n = NULL; local && (n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n));) {
        if (hwloc_bitmap_isset(near, n->os_index))
            continue;
        uint64_t latency = node_latency(d, local, n);
        if (out->remote < 0 || latency > farthest) {
            out->remote = (int)n->os_index;
            farthest = latency;
        }
    }
    if (d)
        hwloc_distances_release(topo, d);
    if (local && out->remote < 0)
        snprintf(out->note, sizeof out->note, "one NUMA node: no remote memory to compare with");
    hwloc_bitmap_free(near);
}

/* The node the pages of b sit on, or -1 with the reason in b->note. */
static void locate(hwloc_topology_t topo, struct host_buffer *b)
{
    hwloc_bitmap_t where = hwloc_bitmap_alloc();
    b->node = -1;
    if (hwloc_get_area_memlocation(topo, b->data, b->bytes, where, HWLOC_MEMBIND_BYNODESET) != 0)
        snprintf(b->note + strlen(b->note), sizeof b->note - strlen(b->note), "%spage location unreadable (%s)",
                 *b->note ? "; " : "", strerror(errno));
    else if (hwloc_bitmap_weight(where) == 1)
        b->node = hwloc_bitmap_first(where);
    else {
        char *nodes = NULL;
        hwloc_bitmap_list_asprintf(&nodes, where);
        snprintf(b->note + strlen(b->note), sizeof b->note - strlen(b->note), "%spages spread over nodes %s",
                 *b->note ? "; " : "", nodes ? nodes : "?");
        free(nodes);
    }
    hwloc_bitmap_free(where);
}

int host_buffer_alloc(hwloc_topology_t topo, int node, size_t bytes, struct host_buffer *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    out->bytes = bytes;
    if (node >= 0) {
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        hwloc_bitmap_only(set, (unsigned)node);
        out->data = hwloc_alloc_membind(topo, bytes, set, HWLOC_MEMBIND_BIND,
                                        HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT);
        if (!out->data)
            snprintf(out->note, sizeof out->note, "binding to node %d refused (%s)", node, strerror(errno));
        hwloc_bitmap_free(set);
    }
    if (!out->data && !(out->data = hwloc_alloc(topo, bytes))) {
        error_setf(err, "bench membw: cannot allocate %zu bytes of host memory: %s", bytes, strerror(errno));
        return -1;
    }
    bench_fill_random(out->data, bytes / sizeof(float), 7); /* first touch places the pages */
    locate(topo, out);
    return 0;
}

void host_buffer_free(hwloc_topology_t topo, struct host_buffer *b)
{
    if (b->data)
        hwloc_free(topo, b->data, b->bytes);
    memset(b, 0, sizeof *b);
}
