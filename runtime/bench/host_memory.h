/* host_memory.h — host buffers placed on a chosen NUMA node, for the
 * host<->device copies of `sagerun bench membw` on GPU ranks.
 *
 * This is where binding shows or does not: a GPU's copy engines reach host
 * memory through their PCIe root complex, and memory on the other socket's
 * node crosses the inter-socket link first. So each GPU rank copies to and
 * from a buffer on its GPU's own node (the node the numa binding gives it)
 * and one on the farthest other node, side by side.
 *
 * Placement is checked, not assumed: after the buffer is bound and first
 * touched, the node its pages actually sit on is read back. Containers may
 * refuse memory-policy calls (Docker's seccomp without CAP_SYS_NICE); the
 * buffer then stays where the kernel put it and its note says why.
 */
#ifndef SAGERUN_BENCH_HOST_MEMORY_H
#define SAGERUN_BENCH_HOST_MEMORY_H

#include <hwloc.h>
#include <stddef.h>

#include "error.h"

struct host_memory_nodes {
    int local;  /* the GPU's NUMA node (os index); -1: unknown, see note */
    int remote; /* the node farthest from it; -1: there is no other node */
    char note[256];
};

/* The GPU's node and the farthest other one (by the topology's NUMA
 * latencies when it has them, else the first other node). Never fails. */
void host_memory_nodes_for_gpu(hwloc_topology_t topo, const char *bus_id, struct host_memory_nodes *out);

struct host_buffer {
    float *data;
    size_t bytes;
    int node; /* where its pages are; -1: unknown or spread, see note */
    char note[256];
};

/* `bytes` of random floats on NUMA node `node` (-1: wherever the kernel
 * puts them). Fails only when no memory can be had. */
int host_buffer_alloc(hwloc_topology_t topo, int node, size_t bytes, struct host_buffer *out, struct sr_error *err);
void host_buffer_free(hwloc_topology_t topo, struct host_buffer *b);

#endif
