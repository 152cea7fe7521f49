/* binding.h — where each local rank should run: GPU -> PCI device -> NUMA
 * node -> CPUs, computed with hwloc from the live machine or a saved XML.
 *
 * A GPU is found by its PCI bus id (from the driver, or, for a saved
 * topology, from the NVIDIA display/3D devices in it); its locality is the
 * CPU set and NUMA nodes of its nearest non-I/O ancestor. Policies:
 *   numa       all CPUs of the GPU's NUMA node(s) (default)
 *   exclusive  that node's cores split among the ranks whose GPUs sit there,
 *              whole cores (hyperthread siblings together), no overlap
 *   none       no binding
 * Ranks without a GPU (CPU machines) share out the machine's cores the same
 * way: all of them under numa, an exclusive slice under exclusive. A GPU the
 * topology does not show, or a topology without locality, gets no binding
 * and a note saying why. Binding itself happens in the rank's child process
 * before exec (launcher); this module only plans.
 */
#ifndef SAGERUN_BINDING_H
#define SAGERUN_BINDING_H

#include <hwloc.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "gpu_inventory.h"

enum bind_policy { BIND_NUMA, BIND_EXCLUSIVE, BIND_NONE };

struct rank_binding {
    int local_rank;
    char gpu_bus_id[32];    /* "" for a CPU rank */
    hwloc_bitmap_t cpuset;  /* empty: do not bind */
    hwloc_bitmap_t nodeset; /* NUMA nodes for the memory policy; empty: none */
    char nic[128];          /* nearest network devices, e.g. "0000:10:1b.0 (EFA)"; "" if none */
    char note[192];         /* why a rank is not bound, or how its CPUs were chosen */
};

struct binding_plan {
    enum bind_policy policy;
    int rank_count;
    struct rank_binding *ranks;
};

/* Loads the live topology (xml_path NULL) or a saved one, keeping the PCI
 * devices that matter (GPUs, NICs) and the bridges above them. */
int topology_open(hwloc_topology_t *topo, const char *xml_path, struct sr_error *err);

/* GPUs of a topology: NVIDIA display/3D controllers in bus id order, for
 * saved topologies where no driver can be asked. */
void topology_gpus(hwloc_topology_t topo, struct gpu_inventory *inv);

/* The NUMA nodes nearest the GPU at `bus_id` (what the numa policy binds
 * its rank's memory to), into `nodeset`; false, with the reason in `note`,
 * when the topology does not show the GPU or gives it no locality. */
bool gpu_numa_nodes(hwloc_topology_t topo, const char *bus_id, hwloc_bitmap_t nodeset, char *note, size_t note_size);

/* Plans `ranks` local ranks over the GPUs in `gpus` (rank i drives GPU i;
 * with no GPUs every rank is a CPU rank; more ranks than GPUs is an error). */
int binding_plan_build(hwloc_topology_t topo, const struct gpu_inventory *gpus, int ranks,
                       enum bind_policy policy, struct binding_plan *plan, struct sr_error *err);
void binding_plan_free(struct binding_plan *plan);

int bind_policy_parse(const char *text, enum bind_policy *out, struct sr_error *err);
const char *bind_policy_name(enum bind_policy policy);

#endif
