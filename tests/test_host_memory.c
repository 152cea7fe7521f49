/* Host buffers for `bench membw`'s host<->device copies: which NUMA nodes a
 * GPU rank copies from (its GPU's node, and the farthest other one) on
 * saved topologies of real servers, and that a buffer asked for on the live
 * machine's node is there, or says why not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binding.h"
#include "host_memory.h"
#include "test_util.h"

static const char *shared_dir; /* ../shared/fixtures/hwloc, may be missing */

struct expected_nodes {
    const char *gpu;
    int local, remote;
    const char *note;
};

static void check_nodes(const char *file, const struct expected_nodes *want, size_t count)
{
    char path[4096];
    if (!test_fixture_present(shared_dir, file, path, sizeof path))
        skip();
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    if (topology_open(&topo, path, &err) != 0)
        fail_msg("%s", err.text);
    for (size_t i = 0; i < count; i++) {
        struct host_memory_nodes n;
        host_memory_nodes_for_gpu(topo, want[i].gpu, &n);
        if (n.local != want[i].local || n.remote != want[i].remote || strcmp(n.note, want[i].note) != 0)
            fail_msg("%s GPU %s: got local %d remote %d note \"%s\"", file, want[i].gpu, n.local, n.remote, n.note);
    }
    hwloc_topology_destroy(topo);
}

static void p4d_nodes(void **state)
{
    (void)state;
    const struct expected_nodes want[] = {
        {"00000000:10:1C.0", 0, 1, ""},
        {"00000000:20:1D.0", 0, 1, ""},
        {"00000000:90:1C.0", 1, 0, ""},
        {"00000000:A0:1D.0", 1, 0, ""},
        {"00000000:77:00.0", -1, -1, "the topology does not show PCI device 00000000:77:00.0"},
    };
    check_nodes("p4d.24xl-topo.xml", want, sizeof want / sizeof *want);
}

static void p5_nodes(void **state)
{
    (void)state;
    const struct expected_nodes want[] = {{"00000000:53:00.0", 0, 1, ""}, {"00000000:CA:00.0", 1, 0, ""}};
    check_nodes("p5.48xl-topo.xml", want, sizeof want / sizeof *want);
}

/* g4dn.metal carries a NUMA latency matrix: the remote node comes from it. */
static void g4dn_nodes(void **state)
{
    (void)state;
    const struct expected_nodes want[] = {{"00000000:18:00.0", 0, 1, ""}, {"00000000:F5:00.0", 1, 0, ""}};
    check_nodes("g4dnmetal.xml", want, sizeof want / sizeof *want);
}

/* The live machine: a buffer on its first NUMA node is on that node, unless
 * the kernel refused the binding or hides page locations, which the note
 * must then say; its contents are the random fill, not zeros. */
static void live_buffer(void **state)
{
    (void)state;
    hwloc_topology_t topo;
    struct sr_error err = {{0}};
    if (topology_open(&topo, NULL, &err) != 0)
        fail_msg("%s", err.text);
    hwloc_obj_t first = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL);
    assert_non_null(first);
    struct host_buffer b;
    size_t bytes = 4u << 20;
    assert_int_equal(host_buffer_alloc(topo, (int)first->os_index, bytes, &b, &err), 0);
    assert_non_null(b.data);
    assert_int_equal(b.bytes, bytes);
    if (b.node != (int)first->os_index && b.note[0] == '\0')
        fail_msg("buffer wanted on node %u is on %d with no note", first->os_index, b.node);
    printf("live: node %u wanted, pages on %d%s%s\n", first->os_index, b.node, b.note[0] ? ": " : "", b.note);
    size_t zeros = 0;
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        zeros += b.data[i] == 0.0f;
    assert_true(zeros < bytes / sizeof(float) / 1000);
    host_buffer_free(topo, &b);
    assert_null(b.data);
    hwloc_topology_destroy(topo);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SHARED_HWLOC_FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    shared_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(p4d_nodes),
        cmocka_unit_test(p5_nodes),
        cmocka_unit_test(g4dn_nodes),
        cmocka_unit_test(live_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
