/* The NCCL net plugin, loaded with dlopen and driven through its ABI by two
 * real processes (nccl_net_peer), as NCCL's proxy threads would drive it:
 * every message size from 0 to 256 MiB both ways at once with several in
 * flight, byte-exact; ABI versions 11, 10 and 9; a peer with the wrong key
 * or none refused without a hang; no key material, no start; ranks that
 * disagree on a size; a peer killed mid-transfer. As root, the two peers are
 * hosts in two network namespaces (tests/netns/cluster.sh) and a packet
 * capture on the link shows only ciphertext; otherwise they talk over
 * loopback and the capture test is skipped with a message. */
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define KEY "sagerun-test-key-0123456789abcdef"
#define OTHER_KEY "sagerun-test-key-fedcba9876543210"

static const char *plugin, *peer, *cluster_sh;
static bool namespaces; /* root with iproute2: peers are hosts algo-1 and algo-2 */

struct pair {
    char *dir;
    int pids[2];
    int status[2];
    char *log[2];
    double seconds;
};

static void cluster(const char *action)
{
    char *argv[] = {"/bin/sh", (char *)cluster_sh, (char *)action, "2", NULL};
    struct run_result r = test_run(argv, NULL);
    if (r.status != 0)
        fail_msg("cluster.sh %s: %s", action, r.err);
    run_result_free(&r);
}

/* Starts both peers: `env[r]` are rank r's extra variables, `args` extra
 * arguments for both. */
static void pair_start(struct pair *p, const char *version, char *const env[2][8], char *const *args)
{
    memset(p, 0, sizeof *p);
    p->dir = test_mkdtemp();
    p->seconds = test_now();
    for (int r = 0; r < 2; r++) {
        char *argv[32], rank[4], ns[16], out[4300];
        int n = 0;
        snprintf(rank, sizeof rank, "%d", r);
        snprintf(ns, sizeof ns, "algo-%d", r + 1);
        snprintf(out, sizeof out, "%s/peer-%d.log", p->dir, r);
        if (namespaces)
            argv[n++] = "ip", argv[n++] = "netns", argv[n++] = "exec", argv[n++] = ns;
        argv[n++] = (char *)peer, argv[n++] = (char *)plugin, argv[n++] = (char *)version, argv[n++] = rank;
        argv[n++] = p->dir;
        for (char *const *a = args; a && *a; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        char *envv[12];
        int k = 0;
        envv[k++] = namespaces ? "SAGERUN_NET_IFNAME=eth0" : "SAGERUN_NET_IFNAME=lo";
        for (int i = 0; env[r][i]; i++)
            envv[k++] = env[r][i];
        envv[k] = NULL;
        p->pids[r] = test_spawn(argv, envv, out);
    }
}

static void pair_wait(struct pair *p)
{
    for (int r = 0; r < 2; r++) {
        char path[4300];
        p->status[r] = test_wait(p->pids[r]);
        snprintf(path, sizeof path, "%s/peer-%d.log", p->dir, r);
        p->log[r] = test_read(path);
        if (!p->log[r])
            p->log[r] = strdup("");
    }
    p->seconds = test_now() - p->seconds;
}

static void pair_free(struct pair *p)
{
    for (int r = 0; r < 2; r++)
        free(p->log[r]);
    test_rmtree(p->dir);
    free(p->dir);
}

static void run_pair(struct pair *p, const char *version, char *const env[2][8], char *const *args)
{
    pair_start(p, version, env, args);
    pair_wait(p);
}

static void assert_log_has(const struct pair *p, int r, const char *text)
{
    if (!strstr(p->log[r], text))
        fail_msg("peer %d's output lacks \"%s\":\n%s", r, text, p->log[r]);
}

/* With sealed records (the default), then with one end asking for TLS's
 * own records, which both ends then use. */
static void every_size_both_ways_over_tls(void **state)
{
    (void)state;
    const char *records[] = {"SAGERUN_NET_RECORDS=sealed", "SAGERUN_NET_RECORDS=tls"};
    const char *expect[] = {"TLSv1.3 TLS_AES_128_GCM_SHA256 (psk), sealed records",
                            "TLSv1.3 TLS_AES_128_GCM_SHA256 (psk), TLS records, kernel TLS send off"};
    for (int i = 0; i < 2; i++) {
        char *const env[2][8] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL},
                                 {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, (char *)records[i], NULL}};
        struct pair p;
        run_pair(&p, "11", env, NULL);
        for (int r = 0; r < 2; r++) {
            if (p.status[r] != 0)
                fail_msg("peer %d exited %d:\n%s", r, p.status[r], p.log[r]);
            assert_log_has(&p, r, "net sagerun-tls v11 device");
            assert_log_has(&p, r, "ok 11 messages, 353570827 bytes each way");
            assert_log_has(&p, r, expect[i]); /* both comms, with the path that ran */
        }
        const char *line = strstr(p.log[0], "connected to");
        printf("%s: %.*s\n", namespaces ? "two namespaces" : "loopback", (int)strcspn(line, "\n"), line);
        pair_free(&p);
    }
}

static void older_abi_versions(void **state)
{
    (void)state;
    char *const env[2][8] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL},
                             {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL}};
    char *const args[] = {"--sizes", "0,1,65536,65537,5000001", NULL};
    const char *versions[] = {"10", "9"};
    for (int v = 0; v < 2; v++) {
        struct pair p;
        run_pair(&p, versions[v], env, args);
        for (int r = 0; r < 2; r++) {
            if (p.status[r] != 0)
                fail_msg("v%s peer %d exited %d:\n%s", versions[v], r, p.status[r], p.log[r]);
            assert_log_has(&p, r, "ok 5 messages, 5131075 bytes each way");
        }
        pair_free(&p);
    }
}

/* Neither side hangs: each end's connection to the other fails its
 * handshake (the wrong key's binder, or plaintext to a TLS end), the refusal
 * is logged, and both get an error from NCCL's calls. */
static void wrong_key_or_plaintext_is_refused(void **state)
{
    (void)state;
    const char *intruders[][2] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" OTHER_KEY},
                                  {"SAGERUN_ENCRYPTION=off", "SAGERUN_NET_UNUSED=1"}};
    for (int i = 0; i < 2; i++) {
        char *const env[2][8] = {
            {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, "SAGERUN_NET_TIMEOUT=4", NULL},
            {(char *)intruders[i][0], (char *)intruders[i][1], "SAGERUN_NET_TIMEOUT=4", NULL}};
        char *const args[] = {"--sizes", "1000", NULL};
        struct pair p;
        run_pair(&p, "11", env, args);
        assert_int_equal(p.status[0], 1);
        assert_int_equal(p.status[1], 1);
        /* usually both ends log a refusal; one may exit before it does */
        assert_true(strstr(p.log[0], "refused a connection") || strstr(p.log[1], "refused a connection"));
        for (int r = 0; r < 2; r++)
            assert_true(strstr(p.log[r], "peer: connect failed") || strstr(p.log[r], "peer: accept failed"));
        assert_null(strstr(p.log[0], "peer 0: ok"));
        assert_true(p.seconds < 30);
        pair_free(&p);
    }
}

static void bad_settings_no_start(void **state)
{
    (void)state;
    const char *settings[][2] = {
        {"SAGERUN_ENCRYPTION=on", "no key material"},
        {"SAGERUN_ENCRYPTION=maybe", "SAGERUN_ENCRYPTION is \"maybe\"; it must be \"on\" (TLS) or \"off\""},
        {"SAGERUN_NET_UNUSED=1", "SAGERUN_ENCRYPTION is not set; it must be \"on\" (TLS) or \"off\""},
        {"SAGERUN_NET_RECORDS=kernel", "SAGERUN_NET_RECORDS=\"kernel\": must be sealed or tls"},
        {"SAGERUN_NET_THREADS=0", "SAGERUN_NET_THREADS"}};
    for (int i = 0; i < 5; i++) {
        char *const env[2][8] = {{(char *)settings[i][0], NULL}, {(char *)settings[i][0], NULL}};
        struct pair p;
        run_pair(&p, "11", env, NULL);
        for (int r = 0; r < 2; r++) {
            assert_int_equal(p.status[r], 1);
            assert_log_has(&p, r, settings[i][1]);
            assert_log_has(&p, r, "peer: init failed");
        }
        pair_free(&p);
    }
}

/* The threads per connection follow this rank's share of the cores unless
 * SAGERUN_NET_THREADS says, and the data sockets follow the threads. */
static void threads_follow_the_cores(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int share = CPU_COUNT(&set) < online ? CPU_COUNT(&set) : (int)online, threads = share / 4;
    threads = threads < 1 ? 1 : threads > 8 ? 8 : threads;
    char mine[160];
    snprintf(mine, sizeof mine, "%d data sockets and %d threads per connection (%d cores for this rank / 4)",
             threads > 4 ? threads : 4, threads, share);
    const char *cases[][2] = {
        {"LOCAL_WORLD_SIZE=1", mine},
        {"LOCAL_WORLD_SIZE=100000", "4 data sockets and 1 threads per connection (1 cores for this rank / 4)"},
        {"SAGERUN_NET_THREADS=6", "6 data sockets and 6 threads per connection (SAGERUN_NET_THREADS)"},
    };
    for (int i = 0; i < 3; i++) {
        char *const env[2][8] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, (char *)cases[i][0], NULL},
                                 {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, (char *)cases[i][0], NULL}};
        char *const args[] = {"--sizes", "1000,3000000", NULL};
        struct pair p;
        run_pair(&p, "11", env, args);
        for (int r = 0; r < 2; r++) {
            if (p.status[r] != 0)
                fail_msg("%s: peer %d exited %d:\n%s", cases[i][0], r, p.status[r], p.log[r]);
            assert_log_has(&p, r, cases[i][1]);
        }
        pair_free(&p);
    }
}

/* Each receive is half the size sent: an error naming both sizes. The end
 * that notices first exits, so the other may see its connection reset. */
static void disagreeing_sizes_fail(void **state)
{
    (void)state;
    char *const env[2][8] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL},
                             {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL}};
    char *const args[] = {"--sizes", "100000", "--shrink-receives", "1", NULL};
    struct pair p;
    run_pair(&p, "11", env, args);
    const char *why = "sent a message of 100000 bytes to a receive of 50000 bytes";
    assert_int_equal(p.status[0], 1);
    assert_int_equal(p.status[1], 1);
    assert_true(strstr(p.log[0], why) || strstr(p.log[1], why));
    pair_free(&p);
}

/* A peer killed mid-transfer: the survivor's next test() fails. */
static void killed_peer_fails_the_other(void **state)
{
    (void)state;
    char *const env[2][8] = {{"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL},
                             {"SAGERUN_ENCRYPTION=on", "SAGERUN_TLS_PSK=" KEY, NULL}};
    char *const args[] = {"--bench", "67108864", "--iters", "100000", NULL};
    struct pair p;
    pair_start(&p, "11", env, args);
    char log1[4300];
    snprintf(log1, sizeof log1, "%s/peer-1.log", p.dir);
    assert_true(test_wait_for_text(log1, "connected in", 30));
    usleep(300000); /* mid-transfer */
    kill(p.pids[1], SIGKILL);
    pair_wait(&p);
    assert_int_equal(p.status[1], 128 + SIGKILL);
    assert_int_equal(p.status[0], 1);
    assert_log_has(&p, 0, "failed (nccl result 2)");
    assert_true(strstr(p.log[0], "[sagerun-net] receiving from 10.77.0.2") ||
                strstr(p.log[0], "[sagerun-net] sending to 10.77.0.2") ||
                strstr(p.log[0], "[sagerun-net] receiving from 127.0.0.1") ||
                strstr(p.log[0], "[sagerun-net] sending to 127.0.0.1"));
    pair_free(&p);
}

/* Marker-filled messages cross algo-1's link: with TLS the capture holds
 * megabytes but never the marker; in plaintext it does (so this can fail). */
static bool capture_contains(const char *encryption, const char *marker, size_t *bytes)
{
    char *dir = test_mkdtemp(), pcap[4300], tlog[4300];
    snprintf(pcap, sizeof pcap, "%s/wire.pcap", dir);
    snprintf(tlog, sizeof tlog, "%s/tcpdump.log", dir);
    char *dump[] = {"ip", "netns", "exec", "sagerun-switch", "tcpdump", "-i", "v-algo-1", "-U", "-s", "0", "-B", "131072",
                    "-w", pcap, "tcp", NULL};
    int tcpdump = test_spawn(dump, NULL, tlog);
    if (!test_wait_for_text(tlog, "listening on", 10))
        fail_msg("tcpdump did not start");
    /* "listening on" can come before packets are captured: knock on a
     * closed port until the capture file holds a packet. */
    char *knock[] = {"ip", "netns", "exec", "algo-1", "bash", "-c", ": 2>/dev/null </dev/tcp/10.77.0.2/9", NULL};
    for (double until = test_now() + 10;; usleep(50000)) {
        struct run_result k = test_run(knock, NULL);
        run_result_free(&k);
        struct stat st;
        if (stat(pcap, &st) == 0 && st.st_size > 24) /* more than the file header */
            break;
        if (test_now() > until)
            fail_msg("tcpdump captured nothing in 10 s");
    }
    char *const env[2][8] = {{(char *)encryption, "SAGERUN_TLS_PSK=" KEY, NULL},
                             {(char *)encryption, "SAGERUN_TLS_PSK=" KEY, NULL}};
    char *const args[] = {"--sizes", "262144,700001", "--marker", (char *)marker, NULL};
    struct pair p;
    run_pair(&p, "11", env, args);
    for (int r = 0; r < 2; r++)
        if (p.status[r] != 0)
            fail_msg("peer %d exited %d:\n%s", r, p.status[r], p.log[r]);
    usleep(300000);
    kill(tcpdump, SIGINT);
    test_wait(tcpdump);
    FILE *f = fopen(pcap, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *bytes = (size_t)ftell(f);
    rewind(f);
    char *wire = malloc(*bytes + 1);
    assert_int_equal(fread(wire, 1, *bytes, f), *bytes);
    fclose(f);
    bool seen = memmem(wire, *bytes, marker, strlen(marker)) != NULL;
    bool key_seen = memmem(wire, *bytes, KEY, strlen(KEY)) != NULL;
    assert_false(key_seen);
    free(wire);
    pair_free(&p);
    test_rmtree(dir);
    free(dir);
    return seen;
}

static void capture_shows_only_ciphertext(void **state)
{
    (void)state;
    if (!namespaces) {
        printf("SKIPPED: the packet capture needs root and network namespaces\n");
        return;
    }
    const char *marker = "SAGERUN-NCCL-GRADIENT-MARKER-91c4";
    size_t bytes;
    assert_false(capture_contains("SAGERUN_ENCRYPTION=on", marker, &bytes));
    printf("TLS: %zu bytes captured, marker absent\n", bytes);
    assert_true(bytes > 262144 + 700001); /* the messages did cross this link */
    assert_true(capture_contains("SAGERUN_ENCRYPTION=off", marker, &bytes));
    printf("plaintext: %zu bytes captured, marker present\n", bytes);
}

static int setup(void **state)
{
    (void)state;
    if (namespaces)
        cluster("up");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (namespaces)
        cluster("down");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_nccl_net PLUGIN NCCL_NET_PEER CLUSTER_SH\n");
        return 2;
    }
    plugin = argv[1], peer = argv[2], cluster_sh = argv[3];
    namespaces = geteuid() == 0 && system("command -v ip >/dev/null 2>&1") == 0;
    if (!namespaces)
        printf("note: not root or no iproute2: the peers talk over loopback, not two namespaces\n");
    unsetenv("SAGERUN_TLS_PSK_FILE"), unsetenv("SAGERUN_TLS_PSK"), unsetenv("SAGERUN_TLS_CA");
    unsetenv("SAGERUN_TLS_CERT"), unsetenv("SAGERUN_TLS_KEY"), unsetenv("SAGERUN_ENCRYPTION");
    unsetenv("NCCL_SOCKET_IFNAME");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_size_both_ways_over_tls),
        cmocka_unit_test(older_abi_versions),
        cmocka_unit_test(wrong_key_or_plaintext_is_refused),
        cmocka_unit_test(bad_settings_no_start),
        cmocka_unit_test(threads_follow_the_cores),
        cmocka_unit_test(disagreeing_sizes_fail),
        cmocka_unit_test(killed_peer_fails_the_other),
        cmocka_unit_test(capture_shows_only_ciphertext),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
