/* The host backend's transport and ring all-reduce, between real processes
 * over real TCP on loopback: plaintext and TLS 1.3 (PSK), any world size and
 * any length (0, not divisible by the world size, many slices), fp32 and
 * bf16, several streams; every rank ends with the same bits. Also: a wrong
 * key and a plaintext peer are refused by a TLS end, and a stranger on a
 * rank's port does not disturb the ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ring.h"
#include "tls.h"
#include "transport.h"

static SSL_CTX *psk_context(const char *key)
{
    struct tls_settings s;
    struct sr_error err = {{0}};
    const struct encryption_decision on = {.enabled = true};
    setenv("SAGERUN_TLS_PSK", key, 1);
    assert_int_equal(tls_settings_load(&on, NULL, &s, &err), 0);
    unsetenv("SAGERUN_TLS_PSK");
    SSL_CTX *ctx = tls_context_create(&s, &err);
    assert_non_null(ctx);
    return ctx;
}

static void open_listener(int *fd, struct sockaddr_in *addr)
{
    struct sr_error err = {{0}};
    int port;
    assert_int_equal(transport_address("127.0.0.1", 0, addr, &err), 0);
    assert_int_equal(listener_open(addr, 64, fd, &port, &err), 0);
    addr->sin_port = htons((uint16_t)port);
}

/* Small integers, so fp32 and bf16 sums are exact and the expected result
 * is known without fixing the order of additions. */
static float value(int rank, size_t i) { return (float)((int)((i * 7 + (size_t)rank * 13) % 5) - 2); }

static uint64_t fnv(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

struct case_spec {
    size_t count;
    enum ring_dtype type;
};

/* One rank: join the ring, run every case, check sums; writes one hash of
 * a random-data result per run to `out` so the parent can compare ranks. */
static int rank_main(int rank, int size, int streams, size_t slice, int *fds, struct sockaddr_in *addrs,
                     SSL_CTX *ctx, const struct case_spec *cases, int ncases, int out)
{
    struct ring r;
    struct sr_error err = {{0}};
    if (ring_connect(&r, rank, size, streams, slice, fds[rank], &addrs[(rank + 1) % size], ctx,
                     clock_now() + 30, &err) != 0) {
        fprintf(stderr, "rank %d: %s\n", rank, err.text);
        return 1;
    }
    for (int c = 0; c < ncases; c++) {
        size_t n = cases[c].count, esize = cases[c].type == RING_F32 ? 4 : 2;
        unsigned char *buf = malloc(n * esize + 1);
        for (size_t i = 0; i < n; i++) {
            if (cases[c].type == RING_F32)
                ((float *)buf)[i] = value(rank, i);
            else
                ((uint16_t *)buf)[i] = f32_to_bf16(value(rank, i));
        }
        if (ring_allreduce(&r, buf, n, cases[c].type, &err) != 0) {
            fprintf(stderr, "rank %d: %s\n", rank, err.text);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            float want = 0;
            for (int k = 0; k < size; k++)
                want += value(k, i);
            float got = cases[c].type == RING_F32 ? ((float *)buf)[i] : bf16_to_f32(((uint16_t *)buf)[i]);
            if (got != want) {
                fprintf(stderr, "rank %d case %d: element %zu is %g, want %g\n", rank, c, i, got, want);
                return 1;
            }
        }
        /* Random data: order-dependent sums, which must still agree bit for bit. */
        srand(1000u * (unsigned)c + (unsigned)rank);
        for (size_t i = 0; cases[c].type == RING_F32 && i < n; i++)
            ((float *)buf)[i] = (float)rand() / (float)RAND_MAX;
        if (cases[c].type == RING_F32 && ring_allreduce(&r, buf, n, RING_F32, &err) != 0) {
            fprintf(stderr, "rank %d: %s\n", rank, err.text);
            return 1;
        }
        uint64_t h = cases[c].type == RING_F32 ? fnv(buf, n * 4) : 0;
        if (write(out, &h, sizeof h) != sizeof h)
            return 1;
        free(buf);
    }
    ring_close(&r);
    return 0;
}

static void run_ring(int size, int streams, size_t slice, SSL_CTX *ctx, const struct case_spec *cases, int ncases)
{
    int fds[16];
    struct sockaddr_in addrs[16];
    int pipes[16][2];
    pid_t pids[16];
    for (int r = 0; r < size; r++) {
        open_listener(&fds[r], &addrs[r]);
        assert_int_equal(pipe(pipes[r]), 0);
    }
    for (int r = 0; r < size; r++) {
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0)
            _exit(rank_main(r, size, streams, slice, fds, addrs, ctx, cases, ncases, pipes[r][1]));
        close(pipes[r][1]);
    }
    uint64_t first[64] = {0};
    for (int r = 0; r < size; r++) {
        int status;
        assert_int_equal(waitpid(pids[r], &status, 0), pids[r]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        for (int c = 0; c < ncases; c++) {
            uint64_t h;
            assert_int_equal(read(pipes[r][0], &h, sizeof h), (ssize_t)sizeof h);
            if (r == 0)
                first[c] = h;
            else
                assert_true(h == first[c]); /* every rank holds the same bits */
        }
        close(pipes[r][0]);
        close(fds[r]);
    }
}

static const struct case_spec CASES[] = {
    {0, RING_F32},     {1, RING_F32},    {2, RING_F32},    {3, RING_F32},   {5, RING_F32},
    {1000, RING_F32},  {65537, RING_F32}, {300001, RING_F32}, {0, RING_BF16}, {7, RING_BF16},
    {99991, RING_BF16},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static void plaintext_world_sizes(void **state)
{
    (void)state;
    for (int size = 1; size <= 5; size++)
        run_ring(size, 1, 4096, NULL, CASES, NCASES); /* small slices: many per chunk */
}

static void plaintext_streams_and_default_slices(void **state)
{
    (void)state;
    run_ring(3, 3, RING_DEFAULT_SLICE_BYTES, NULL, CASES, NCASES);
    run_ring(2, 2, 1000, NULL, CASES, NCASES); /* slice not a multiple of 8: rounded down */
}

static void tls_ring(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context("test-ring-job-key-0123456789");
    run_ring(4, 2, 8192, ctx, CASES, NCASES);
    tls_context_free(ctx);
}

/* A TLS listener and a client with another key, or no TLS at all: the
 * handshake fails on both sides, and nothing the client sent is accepted. */
static void tls_refuses_wrong_key_and_plaintext(void **state)
{
    (void)state;
    SSL_CTX *good = psk_context("the-right-key-0123456789");
    SSL_CTX *bad = psk_context("the-wrong-key-0123456789");
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd;
        struct sockaddr_in addr;
        open_listener(&fd, &addr);
        pid_t pid = fork();
        if (pid == 0) {
            struct conn c;
            bool refused;
            struct sr_error err = {{0}};
            int rc = conn_connect(&addr, attempt == 0 ? bad : NULL, clock_now() + 5, &c, &refused, &err);
            if (rc == 0) { /* plaintext "connects"; the server must still refuse it */
                conn_send_all(&c, "{\"op\":\"join\"}", 13, clock_now() + 5, &err);
                char b;
                short ev;
                sleep(1);
                rc = conn_recv_some(&c, &b, 1, &ev, &err) > 0 ? 0 : -1;
            }
            _exit(rc == 0 ? 0 : 3);
        }
        struct conn c;
        struct sr_error err = {{0}};
        assert_int_equal(conn_accept(fd, good, clock_now() + 5, &c, &err), -2);
        assert_non_null(strstr(err.text, "TLS"));
        int status;
        waitpid(pid, &status, 0);
        assert_int_equal(WEXITSTATUS(status), 3);
        close(fd);
    }
    tls_context_free(good);
    tls_context_free(bad);
}

/* Someone connects to rank 1's port first and says nothing useful: rank 1
 * refuses it and the ring still forms. */
static void stranger_on_ring_port(void **state)
{
    (void)state;
    int fds[2];
    struct sockaddr_in addrs[2];
    open_listener(&fds[0], &addrs[0]);
    open_listener(&fds[1], &addrs[1]);
    struct conn stranger;
    bool refused;
    struct sr_error err = {{0}};
    assert_int_equal(conn_connect(&addrs[1], NULL, clock_now() + 5, &stranger, &refused, &err), 0);
    assert_int_equal(conn_send_all(&stranger, "GET / HTTP/1.0\r\n\r\n", 18, clock_now() + 5, &err), 0);
    static const struct case_spec one[] = {{4097, RING_F32}};
    int p[2][2];
    pid_t pids[2];
    for (int r = 0; r < 2; r++) {
        assert_int_equal(pipe(p[r]), 0);
        pids[r] = fork();
        if (pids[r] == 0)
            _exit(rank_main(r, 2, 1, 4096, fds, addrs, NULL, one, 1, p[r][1]));
        close(p[r][1]);
    }
    for (int r = 0; r < 2; r++) {
        int status;
        waitpid(pids[r], &status, 0);
        assert_int_equal(WEXITSTATUS(status), 0);
        close(p[r][0]);
    }
    conn_close(&stranger);
    close(fds[0]);
    close(fds[1]);
}

static void bf16_rounding(void **state)
{
    (void)state;
    assert_int_equal(f32_to_bf16(1.0f), 0x3f80);
    assert_true(bf16_to_f32(f32_to_bf16(1.00390625f)) == 1.0f);  /* tie: to even (down) */
    assert_true(bf16_to_f32(f32_to_bf16(1.01171875f)) == 1.015625f); /* tie: to even (up) */
    assert_true(bf16_to_f32(f32_to_bf16(-3.0f)) == -3.0f);
    float nan = bf16_to_f32(f32_to_bf16(__builtin_nanf("")));
    assert_true(nan != nan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bf16_rounding),
        cmocka_unit_test(plaintext_world_sizes),
        cmocka_unit_test(plaintext_streams_and_default_slices),
        cmocka_unit_test(tls_ring),
        cmocka_unit_test(tls_refuses_wrong_key_and_plaintext),
        cmocka_unit_test(stranger_on_ring_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
