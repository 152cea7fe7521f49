/* Binding plans computed with hwloc, checked exactly on saved topologies of
 * real servers (../shared/fixtures/hwloc: p4d.24xlarge, p5.48xlarge,
 * g4dn.metal) and on the repository's own small topology, plus the live
 * machine's CPU-rank plan. Expected values come from the fixtures' notes:
 * GPU bus ids, which NUMA node each sits on, and the CPUs of each node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binding.h"
#include "test_util.h"

static const char *shared_dir; /* ../shared/fixtures/hwloc, may be missing */
static const char *own_dir;    /* tests/fixtures/hwloc */

struct expected_rank {
    const char *gpu, *nodes, *cpus, *nic, *note;
};

static char *list(hwloc_const_bitmap_t set)
{
    char *text = NULL;
    if (hwloc_bitmap_iszero(set))
        return strdup("");
    assert_true(hwloc_bitmap_list_asprintf(&text, set) >= 0);
    return text;
}

static void check_plan(const char *dir, const char *file, enum bind_policy policy, int count,
                       const struct expected_rank *want)
{
    char path[4096];
    if (!test_fixture_present(dir, file, path, sizeof path))
        skip();
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    if (topology_open(&topo, path, &err) != 0)
        fail_msg("%s", err.text);
    struct gpu_inventory gpus;
    topology_gpus(topo, &gpus);
    assert_int_equal(gpus.count, count);
    struct binding_plan plan;
    assert_int_equal(binding_plan_build(topo, &gpus, count, policy, &plan, &err), 0);
    for (int r = 0; r < count; r++) {
        const struct rank_binding *rb = &plan.ranks[r];
        char *cpus = list(rb->cpuset), *nodes = list(rb->nodeset);
        if (strcmp(rb->gpu_bus_id, want[r].gpu) || strcmp(nodes, want[r].nodes) || strcmp(cpus, want[r].cpus) ||
            strcmp(rb->nic, want[r].nic) || strcmp(rb->note, want[r].note))
            fail_msg("%s rank %d: got gpu=%s nodes=%s cpus=%s nic=\"%s\" note=\"%s\"", file, r, rb->gpu_bus_id,
                     nodes, cpus, rb->nic, rb->note);
        free(cpus);
        free(nodes);
    }
    binding_plan_free(&plan);
    hwloc_topology_destroy(topo);
}

#define NO_CORES "no Core objects in the topology: split by PU"

static void p4d_numa(void **state)
{
    (void)state;
    const struct expected_rank want[] = {
        {"00000000:10:1C.0", "0", "0-23", "EFA 00000000:10:1B.0", ""},
        {"00000000:10:1D.0", "0", "0-23", "EFA 00000000:10:1B.0", ""},
        {"00000000:20:1C.0", "0", "0-23", "EFA 00000000:20:1B.0", ""},
        {"00000000:20:1D.0", "0", "0-23", "EFA 00000000:20:1B.0", ""},
        {"00000000:90:1C.0", "1", "24-47", "EFA 00000000:90:1B.0", ""},
        {"00000000:90:1D.0", "1", "24-47", "EFA 00000000:90:1B.0", ""},
        {"00000000:A0:1C.0", "1", "24-47", "EFA 00000000:A0:1B.0", ""},
        {"00000000:A0:1D.0", "1", "24-47", "EFA 00000000:A0:1B.0", ""},
    };
    check_plan(shared_dir, "p4d.24xl-topo.xml", BIND_NUMA, 8, want);
}

static void p4d_exclusive_splits_pus(void **state)
{
    (void)state;
    /* The p4d capture has no Core objects, so slices are of PUs. */
    const struct expected_rank want[] = {
        {"00000000:10:1C.0", "0", "0-5", "EFA 00000000:10:1B.0", NO_CORES},
        {"00000000:10:1D.0", "0", "6-11", "EFA 00000000:10:1B.0", NO_CORES},
        {"00000000:20:1C.0", "0", "12-17", "EFA 00000000:20:1B.0", NO_CORES},
        {"00000000:20:1D.0", "0", "18-23", "EFA 00000000:20:1B.0", NO_CORES},
        {"00000000:90:1C.0", "1", "24-29", "EFA 00000000:90:1B.0", NO_CORES},
        {"00000000:90:1D.0", "1", "30-35", "EFA 00000000:90:1B.0", NO_CORES},
        {"00000000:A0:1C.0", "1", "36-41", "EFA 00000000:A0:1B.0", NO_CORES},
        {"00000000:A0:1D.0", "1", "42-47", "EFA 00000000:A0:1B.0", NO_CORES},
    };
    check_plan(shared_dir, "p4d.24xl-topo.xml", BIND_EXCLUSIVE, 8, want);
}

static void p5_numa(void **state)
{
    (void)state;
    /* Each H100 shares a PCIe switch with four EFA devices. */
    const struct expected_rank want[] = {
        {"00000000:53:00.0", "0", "0-47", "EFA 00000000:4F:00.0 00000000:50:00.0 00000000:51:00.0 00000000:52:00.0", ""},
        {"00000000:64:00.0", "0", "0-47", "EFA 00000000:60:00.0 00000000:61:00.0 00000000:62:00.0 00000000:63:00.0", ""},
        {"00000000:75:00.0", "0", "0-47", "EFA 00000000:71:00.0 00000000:72:00.0 00000000:73:00.0 00000000:74:00.0", ""},
        {"00000000:86:00.0", "0", "0-47", "EFA 00000000:82:00.0 00000000:83:00.0 00000000:84:00.0 00000000:85:00.0", ""},
        {"00000000:97:00.0", "1", "48-95", "EFA 00000000:93:00.0 00000000:94:00.0 00000000:95:00.0 00000000:96:00.0", ""},
        {"00000000:A8:00.0", "1", "48-95", "EFA 00000000:A4:00.0 00000000:A5:00.0 00000000:A6:00.0 00000000:A7:00.0", ""},
        {"00000000:B9:00.0", "1", "48-95", "EFA 00000000:B5:00.0 00000000:B6:00.0 00000000:B7:00.0 00000000:B8:00.0", ""},
        {"00000000:CA:00.0", "1", "48-95", "EFA 00000000:C6:00.0 00000000:C7:00.0 00000000:C8:00.0 00000000:C9:00.0", ""},
    };
    check_plan(shared_dir, "p5.48xl-topo.xml", BIND_NUMA, 8, want);
}

static void g4dn_exclusive_keeps_hyperthreads_together(void **state)
{
    (void)state;
    /* 24 cores per node, 4 GPUs each: 6 whole cores (12 PUs) per rank. */
    const struct expected_rank want[] = {
        {"00000000:18:00.0", "0", "0-5,48-53", "EFA 00000000:C5:00.0", ""},
        {"00000000:19:00.0", "0", "6-11,54-59", "EFA 00000000:C5:00.0", ""},
        {"00000000:35:00.0", "0", "12-17,60-65", "EFA 00000000:C5:00.0", ""},
        {"00000000:36:00.0", "0", "18-23,66-71", "EFA 00000000:C5:00.0", ""},
        {"00000000:E7:00.0", "1", "24-29,72-77", "EFA 00000000:C5:00.0", ""},
        {"00000000:E8:00.0", "1", "30-35,78-83", "EFA 00000000:C5:00.0", ""},
        {"00000000:F4:00.0", "1", "36-41,84-89", "EFA 00000000:C5:00.0", ""},
        {"00000000:F5:00.0", "1", "42-47,90-95", "EFA 00000000:C5:00.0", ""},
    };
    check_plan(shared_dir, "g4dnmetal.xml", BIND_EXCLUSIVE, 8, want);
}

#define NO_LOCALITY "no locality: the topology attaches this GPU to the whole machine"
#define SHARED "fewer cores than the 3 ranks sharing this NUMA node: shared"

static void own_topology_fallbacks(void **state)
{
    (void)state;
    const struct expected_rank numa[] = {
        {"00000000:10:00.0", "0", "0-3", "EFA 00000000:10:01.0", ""},
        {"00000000:20:00.0", "1", "4-7", "NIC 00000000:20:03.0", ""},
        {"00000000:20:01.0", "1", "4-7", "NIC 00000000:20:03.0", ""},
        {"00000000:20:02.0", "1", "4-7", "NIC 00000000:20:03.0", ""},
        {"00000000:30:00.0", "", "", "EFA 00000000:10:01.0", NO_LOCALITY},
    };
    check_plan(own_dir, "two-socket-5gpu.xml", BIND_NUMA, 5, numa);
    const struct expected_rank exclusive[] = {
        {"00000000:10:00.0", "0", "0-3", "EFA 00000000:10:01.0", ""},
        {"00000000:20:00.0", "1", "4-7", "NIC 00000000:20:03.0", SHARED},
        {"00000000:20:01.0", "1", "4-7", "NIC 00000000:20:03.0", SHARED},
        {"00000000:20:02.0", "1", "4-7", "NIC 00000000:20:03.0", SHARED},
        {"00000000:30:00.0", "", "", "EFA 00000000:10:01.0", NO_LOCALITY},
    };
    check_plan(own_dir, "two-socket-5gpu.xml", BIND_EXCLUSIVE, 5, exclusive);
    const struct expected_rank none[] = {
        {"00000000:10:00.0", "", "", "EFA 00000000:10:01.0", "policy none: not bound"},
        {"00000000:20:00.0", "", "", "NIC 00000000:20:03.0", "policy none: not bound"},
        {"00000000:20:01.0", "", "", "NIC 00000000:20:03.0", "policy none: not bound"},
        {"00000000:20:02.0", "", "", "NIC 00000000:20:03.0", "policy none: not bound"},
        {"00000000:30:00.0", "", "", "EFA 00000000:10:01.0", "policy none: not bound"},
    };
    check_plan(own_dir, "two-socket-5gpu.xml", BIND_NONE, 5, none);
}

/* GPUs the topology does not show, more ranks than GPUs, unreadable files. */
static void errors_and_unknown_gpus(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/two-socket-5gpu.xml", own_dir);
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    assert_int_equal(topology_open(&topo, path, &err), 0);
    struct gpu_inventory gpus = {.count = 2};
    strcpy(gpus.gpus[0].bus_id, "00000000:10:00.0");
    strcpy(gpus.gpus[1].bus_id, "00000000:77:00.0");
    struct binding_plan plan;
    assert_int_equal(binding_plan_build(topo, &gpus, 2, BIND_NUMA, &plan, &err), 0);
    assert_string_equal(plan.ranks[1].note, "no locality: the topology does not show PCI device 00000000:77:00.0");
    assert_true(hwloc_bitmap_iszero(plan.ranks[1].cpuset));
    binding_plan_free(&plan);
    assert_int_equal(binding_plan_build(topo, &gpus, 3, BIND_NUMA, &plan, &err), -1);
    assert_string_equal(err.text, "binding: 3 ranks but only 2 GPUs on this host");
    hwloc_topology_destroy(topo);

    struct sr_error err2 = {{0}};
    assert_int_equal(topology_open(&topo, "/nonexistent/topo.xml", &err2), -1);
    assert_non_null(strstr(err2.text, "hwloc: cannot read topology /nonexistent/topo.xml"));
    enum bind_policy p;
    struct sr_error err3 = {{0}};
    assert_int_equal(bind_policy_parse("spread", &p, &err3), -1);
    assert_string_equal(err3.text, "binding policy \"spread\" is not one of numa, exclusive, none");
}

/* On this machine (no GPU): exclusive CPU ranks get disjoint slices that
 * together cover every allowed CPU, when there are at least as many cores. */
static void live_cpu_ranks_share_the_machine(void **state)
{
    (void)state;
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    assert_int_equal(topology_open(&topo, NULL, &err), 0);
    struct gpu_inventory none = {.count = 0};
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    int ranks = cores >= 2 ? 2 : 1;
    struct binding_plan plan;
    assert_int_equal(binding_plan_build(topo, &none, ranks, BIND_EXCLUSIVE, &plan, &err), 0);
    hwloc_bitmap_t all = hwloc_bitmap_alloc();
    for (int r = 0; r < ranks; r++) {
        assert_false(hwloc_bitmap_iszero(plan.ranks[r].cpuset));
        assert_false(hwloc_bitmap_intersects(all, plan.ranks[r].cpuset));
        hwloc_bitmap_or(all, all, plan.ranks[r].cpuset);
        assert_string_equal(plan.ranks[r].note, "CPU rank: no GPU on this host");
    }
    if (nodes == 1)
        assert_true(hwloc_bitmap_isequal(all, hwloc_topology_get_allowed_cpuset(topo)));
    hwloc_bitmap_free(all);
    binding_plan_free(&plan);
    hwloc_topology_destroy(topo);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SHARED_HWLOC_FIXTURES OWN_HWLOC_FIXTURES\n", argv[0]);
        return 2;
    }
    shared_dir = argv[1];
    own_dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(p4d_numa),
        cmocka_unit_test(p4d_exclusive_splits_pus),
        cmocka_unit_test(p5_numa),
        cmocka_unit_test(g4dn_exclusive_keeps_hyperthreads_together),
        cmocka_unit_test(own_topology_fallbacks),
        cmocka_unit_test(errors_and_unknown_gpus),
        cmocka_unit_test(live_cpu_ranks_share_the_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
