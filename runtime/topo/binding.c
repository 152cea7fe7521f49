#include "binding.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define PCI_VENDOR_NVIDIA 0x10de
#define PCI_VENDOR_AMAZON 0x1d0f
#define PCI_CLASS_NETWORK 0x02
#define PCI_CLASS_DISPLAY 0x03

const char *bind_policy_name(enum bind_policy policy)
{
    switch (policy) {
    case BIND_NUMA: return "numa";
    case BIND_EXCLUSIVE: return "exclusive";
    case BIND_NONE: return "none";
    }
    return "?";
}

int bind_policy_parse(const char *text, enum bind_policy *out, struct sr_error *err)
{
    for (int p = BIND_NUMA; p <= BIND_NONE; p++)
        if (strcmp(text, bind_policy_name((enum bind_policy)p)) == 0) {
            *out = (enum bind_policy)p;
            return 0;
        }
    error_setf(err, "binding policy \"%s\" is not one of numa, exclusive, none", text);
    return -1;
}

int topology_open(hwloc_topology_t *topo, const char *xml_path, struct sr_error *err)
{
    if (hwloc_topology_init(topo) != 0) {
        error_setf(err, "hwloc: cannot initialise a topology: %s", strerror(errno));
        return -1;
    }
    /* Without this, hwloc drops every PCI device and GPUs cannot be found. */
    hwloc_topology_set_io_types_filter(*topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (xml_path && hwloc_topology_set_xml(*topo, xml_path) != 0) {
        error_setf(err, "hwloc: cannot read topology %s: %s", xml_path, strerror(errno));
        hwloc_topology_destroy(*topo);
        return -1;
    }
    if (hwloc_topology_load(*topo) != 0) {
        error_setf(err, "hwloc: cannot load the %s topology%s%s: %s", xml_path ? "saved" : "live",
                   xml_path ? " " : "", xml_path ? xml_path : "", strerror(errno));
        hwloc_topology_destroy(*topo);
        return -1;
    }
    return 0;
}

static void format_bus_id(hwloc_obj_t dev, char *out, size_t size)
{
    /* NVML's form, so live and saved topologies name GPUs alike. */
    const struct hwloc_pcidev_attr_s *pci = &dev->attr->pcidev;
    snprintf(out, size, "%08X:%02X:%02X.%X", pci->domain, pci->bus, pci->dev, pci->func);
}

void topology_gpus(hwloc_topology_t topo, struct gpu_inventory *inv)
{
    memset(inv, 0, sizeof *inv);
    for (hwloc_obj_t dev = hwloc_get_next_pcidev(topo, NULL); dev; dev = hwloc_get_next_pcidev(topo, dev)) {
        const struct hwloc_pcidev_attr_s *pci = &dev->attr->pcidev;
        if (pci->vendor_id != PCI_VENDOR_NVIDIA || (pci->class_id >> 8) != PCI_CLASS_DISPLAY ||
            inv->count == GPU_INVENTORY_MAX)
            continue;
        struct gpu_info *g = &inv->gpus[inv->count++];
        const char *name = hwloc_obj_get_info_by_name(dev, "PCIDevice");
        snprintf(g->name, sizeof g->name, "%s", name ? name : "NVIDIA GPU");
        format_bus_id(dev, g->bus_id, sizeof g->bus_id);
    }
    snprintf(inv->source, sizeof inv->source, "topology: %d NVIDIA GPU%s on the PCI bus", inv->count,
             inv->count == 1 ? "" : "s");
}

static hwloc_obj_t find_gpu(hwloc_topology_t topo, const char *bus_id)
{
    unsigned domain, bus, dev, func;
    if (sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &func) != 4)
        return NULL;
    return hwloc_get_pcidev_by_busid(topo, domain, bus, dev, func);
}

static bool is_ancestor(hwloc_obj_t maybe, hwloc_obj_t obj)
{
    for (hwloc_obj_t o = obj; o; o = o->parent)
        if (o == maybe)
            return true;
    return false;
}

/* Hops from the GPU up to the first object that also holds the NIC. */
static int hops_between(hwloc_obj_t gpu, hwloc_obj_t nic)
{
    int hops = 0;
    for (hwloc_obj_t o = gpu; o; o = o->parent, hops++)
        if (is_ancestor(o, nic))
            return hops;
    return -1;
}

static bool is_efa(hwloc_obj_t dev)
{
    const struct hwloc_pcidev_attr_s *pci = &dev->attr->pcidev;
    return pci->vendor_id == PCI_VENDOR_AMAZON && (pci->device_id & 0xfff0) == 0xefa0;
}

static hwloc_obj_t next_nic(hwloc_topology_t topo, hwloc_obj_t prev)
{
    hwloc_obj_t dev = prev;
    while ((dev = hwloc_get_next_pcidev(topo, dev)))
        if ((dev->attr->pcidev.class_id >> 8) == PCI_CLASS_NETWORK)
            return dev;
    return NULL;
}

/* The network devices closest to the GPU in the PCI tree (fewest hops up to
 * a shared parent), EFA preferred, at most four listed. */
static void nearest_nics(hwloc_topology_t topo, hwloc_obj_t gpu, char *out, size_t size)
{
    int best = -1;
    bool efa_at_best = false;
    for (hwloc_obj_t nic = next_nic(topo, NULL); nic; nic = next_nic(topo, nic)) {
        int hops = hops_between(gpu, nic);
        if (best < 0 || hops < best) {
            best = hops;
            efa_at_best = is_efa(nic);
        } else if (hops == best && is_efa(nic)) {
            efa_at_best = true;
        }
    }
    size_t used = 0;
    int listed = 0;
    out[0] = '\0';
    for (hwloc_obj_t nic = next_nic(topo, NULL); nic && listed < 4 && used < size; nic = next_nic(topo, nic)) {
        if (hops_between(gpu, nic) != best || (efa_at_best && !is_efa(nic)))
            continue;
        char bus_id[32];
        format_bus_id(nic, bus_id, sizeof bus_id);
        used += (size_t)snprintf(out + used, size - used, "%s%s", listed ? " " : (efa_at_best ? "EFA " : "NIC "),
                                 bus_id);
        listed++;
    }
}

/* CPUs and NUMA nodes near a GPU, or false when the topology gives none. */
static bool gpu_locality(hwloc_topology_t topo, hwloc_obj_t gpu, hwloc_bitmap_t cpuset, hwloc_bitmap_t nodeset,
                         char *note, size_t note_size)
{
    hwloc_obj_t near = hwloc_get_non_io_ancestor_obj(topo, gpu);
    hwloc_obj_t root = hwloc_get_root_obj(topo);
    int numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (!near || !near->nodeset || (near == root && numa_nodes > 1)) {
        snprintf(note, note_size, "no locality: the topology attaches this GPU to the whole machine");
        return false;
    }
    hwloc_bitmap_copy(nodeset, near->nodeset);
    hwloc_bitmap_zero(cpuset);
    hwloc_obj_t node = NULL;
    while ((node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)))
        if (hwloc_bitmap_isset(nodeset, node->os_index))
            hwloc_bitmap_or(cpuset, cpuset, node->cpuset);
    hwloc_bitmap_and(cpuset, cpuset, hwloc_topology_get_allowed_cpuset(topo));
    if (hwloc_bitmap_iszero(cpuset)) {
        snprintf(note, note_size, "no locality: the GPU's NUMA node has no usable CPU");
        return false;
    }
    return true;
}

bool gpu_numa_nodes(hwloc_topology_t topo, const char *bus_id, hwloc_bitmap_t nodeset, char *note, size_t note_size)
{
    hwloc_obj_t dev = find_gpu(topo, bus_id);
    if (!dev) {
        snprintf(note, note_size, "the topology does not show PCI device %s", bus_id);
        return false;
    }
    hwloc_bitmap_t cpuset = hwloc_bitmap_alloc();
    bool found = gpu_locality(topo, dev, cpuset, nodeset, note, note_size);
    hwloc_bitmap_free(cpuset);
    return found;
}

/* A CPU rank's share of the machine: NUMA nodes are dealt out round robin. */
static void cpu_rank_locality(hwloc_topology_t topo, int rank, hwloc_bitmap_t cpuset, hwloc_bitmap_t nodeset)
{
    int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)(rank % (nodes > 0 ? nodes : 1)));
    if (!node) {
        hwloc_bitmap_copy(cpuset, hwloc_topology_get_allowed_cpuset(topo));
        hwloc_bitmap_zero(nodeset);
        return;
    }
    hwloc_bitmap_and(cpuset, node->cpuset, hwloc_topology_get_allowed_cpuset(topo));
    hwloc_bitmap_only(nodeset, node->os_index);
}

/* Splits `set` into `parts` balanced slices of whole cores (or of PUs when
 * the topology has no Core objects); returns slice `index` in `out`. */
static bool split_cores(hwloc_topology_t topo, hwloc_const_bitmap_t set, int parts, int index, hwloc_bitmap_t out,
                        bool *by_pu)
{
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, HWLOC_OBJ_CORE);
    *by_pu = cores <= 0;
    int units = *by_pu ? hwloc_bitmap_weight(set) : cores;
    if (units < parts)
        return false;
    int first = index * units / parts, last = (index + 1) * units / parts;
    hwloc_bitmap_zero(out);
    if (*by_pu) {
        int i = 0, pu;
        hwloc_bitmap_foreach_begin(pu, set) {
            if (i >= first && i < last)
                hwloc_bitmap_set(out, (unsigned)pu);
            i++;
        }
        hwloc_bitmap_foreach_end();
    } else {
        for (int i = first; i < last; i++) {
            hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(topo, set, HWLOC_OBJ_CORE, (unsigned)i);
            hwloc_bitmap_or(out, out, core->cpuset);
        }
        hwloc_bitmap_and(out, out, set);
    }
    return true;
}

/* Exclusive policy: ranks with the same locality share its cores out. */
static void make_exclusive(hwloc_topology_t topo, struct binding_plan *plan)
{
    hwloc_bitmap_t *local = xcalloc((size_t)plan->rank_count, sizeof *local);
    for (int r = 0; r < plan->rank_count; r++)
        local[r] = hwloc_bitmap_dup(plan->ranks[r].cpuset);
    for (int r = 0; r < plan->rank_count; r++) {
        struct rank_binding *rb = &plan->ranks[r];
        if (hwloc_bitmap_iszero(local[r]))
            continue;
        int parts = 0, index = 0;
        for (int o = 0; o < plan->rank_count; o++)
            if (hwloc_bitmap_isequal(local[o], local[r])) {
                if (o < r)
                    index++;
                parts++;
            }
        bool by_pu;
        if (!split_cores(topo, local[r], parts, index, rb->cpuset, &by_pu))
            snprintf(rb->note, sizeof rb->note, "fewer cores than the %d ranks sharing this NUMA node: shared", parts);
        else if (by_pu)
            snprintf(rb->note, sizeof rb->note, "no Core objects in the topology: split by PU");
    }
    for (int r = 0; r < plan->rank_count; r++)
        hwloc_bitmap_free(local[r]);
    free(local);
}

int binding_plan_build(hwloc_topology_t topo, const struct gpu_inventory *gpus, int ranks, enum bind_policy policy,
                       struct binding_plan *plan, struct sr_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (gpus->count > 0 && ranks > gpus->count) {
        error_setf(err, "binding: %d ranks but only %d GPUs on this host", ranks, gpus->count);
        return -1;
    }
    plan->policy = policy;
    plan->rank_count = ranks;
    plan->ranks = xcalloc((size_t)ranks, sizeof *plan->ranks);
    for (int r = 0; r < ranks; r++) {
        struct rank_binding *rb = &plan->ranks[r];
        rb->local_rank = r;
        rb->cpuset = hwloc_bitmap_alloc();
        rb->nodeset = hwloc_bitmap_alloc();
        if (gpus->count == 0) {
            cpu_rank_locality(topo, r, rb->cpuset, rb->nodeset);
            snprintf(rb->note, sizeof rb->note, "CPU rank: no GPU on this host");
            continue;
        }
        snprintf(rb->gpu_bus_id, sizeof rb->gpu_bus_id, "%s", gpus->gpus[r].bus_id);
        hwloc_obj_t dev = find_gpu(topo, rb->gpu_bus_id);
        if (!dev) {
            snprintf(rb->note, sizeof rb->note, "no locality: the topology does not show PCI device %s",
                     rb->gpu_bus_id);
            continue;
        }
        nearest_nics(topo, dev, rb->nic, sizeof rb->nic);
        if (!gpu_locality(topo, dev, rb->cpuset, rb->nodeset, rb->note, sizeof rb->note)) {
            hwloc_bitmap_zero(rb->cpuset);
            hwloc_bitmap_zero(rb->nodeset);
        }
    }
    if (policy == BIND_EXCLUSIVE)
        make_exclusive(topo, plan);
    if (policy == BIND_NONE)
        for (int r = 0; r < ranks; r++) {
            hwloc_bitmap_zero(plan->ranks[r].cpuset);
            hwloc_bitmap_zero(plan->ranks[r].nodeset);
            snprintf(plan->ranks[r].note, sizeof plan->ranks[r].note, "policy none: not bound");
        }
    return 0;
}

void binding_plan_free(struct binding_plan *plan)
{
    for (int r = 0; r < plan->rank_count; r++) {
        hwloc_bitmap_free(plan->ranks[r].cpuset);
        hwloc_bitmap_free(plan->ranks[r].nodeset);
    }
    free(plan->ranks);
    memset(plan, 0, sizeof *plan);
}
