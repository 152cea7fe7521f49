/* Sealed records (runtime/net/sealed.h) between two conns that made a real
 * TLS 1.3 handshake (PSK) over a socket pair, the peer on its own thread:
 * every size round-trips, records too large for the receiver's buffer are
 * handed out in pieces, epochs change keys at both ends, and a stream that
 * was altered, replayed, reordered, cut short or is not sealed records is
 * refused with an error that says so. Also: either end asking for TLS's own
 * records keeps them for both, and plaintext conns are left alone. */
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "sealed.h"
#include "tls.h"
#include "transport.h"

static SSL_CTX *psk_context(void)
{
    struct tls_settings s;
    struct sr_error err = {{0}};
    const struct encryption_decision on = {.enabled = true};
    setenv("SAGERUN_TLS_PSK", "test-sealed-key-0123456789", 1);
    assert_int_equal(tls_settings_load(&on, NULL, &s, &err), 0);
    unsetenv("SAGERUN_TLS_PSK");
    SSL_CTX *ctx = tls_context_create(&s, &err);
    assert_non_null(ctx);
    return ctx;
}

struct end {
    SSL_CTX *ctx;
    int fd;
    bool server, tls_records;
    struct conn conn;
    int rc;
    struct sr_error err;
};

static void *set_up_end(void *arg)
{
    struct end *e = arg;
    double deadline = clock_now() + 10;
    e->rc = conn_adopt(e->fd, e->ctx, e->server, &e->conn, &e->err);
    short events;
    int step = 0;
    while (e->rc == 0 && (step = conn_handshake_step(&e->conn, &events, &e->err)) == 0)
        clock_sleep(0.001);
    if (e->rc == 0 && step != 1)
        e->rc = -1;
    if (e->rc == 0)
        e->rc = conn_seal(&e->conn, e->tls_records, deadline, &e->err);
    return NULL;
}

/* a: the connecting end, b: the accepting one. */
static void make_pair(SSL_CTX *ctx, bool a_tls, bool b_tls, struct conn *a, struct conn *b)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct end ea = {.ctx = ctx, .fd = sv[0], .tls_records = a_tls};
    struct end eb = {.ctx = ctx, .fd = sv[1], .server = true, .tls_records = b_tls};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_up_end, &eb), 0);
    set_up_end(&ea);
    pthread_join(t, NULL);
    if (ea.rc != 0 || eb.rc != 0)
        fail_msg("setting up: %s / %s", ea.err.text, eb.err.text);
    *a = ea.conn, *b = eb.conn;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131 + seed * 7) >> 3);
}

struct sender {
    struct conn *c;
    const unsigned char *buf;
    size_t len;
    int rc;
    struct sr_error err;
};

static void *send_main(void *arg)
{
    struct sender *s = arg;
    s->rc = conn_send_all(s->c, s->buf, s->len, clock_now() + 30, &s->err);
    return NULL;
}

/* Sends `len` bytes a to b on a thread while b receives them in pieces of
 * at most `piece` bytes; returns the receive's result, err its reason. */
static int transfer(struct conn *a, struct conn *b, const unsigned char *data, size_t len, size_t piece,
                    unsigned char *got, struct sr_error *err)
{
    struct sender s = {.c = a, .buf = data, .len = len};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
    int rc = 0;
    for (size_t done = 0; rc == 0 && done < len;) {
        size_t n = len - done < piece ? len - done : piece;
        rc = conn_recv_all(b, got + done, n, clock_now() + 30, err);
        done += n;
    }
    if (rc != 0)
        shutdown(a->fd, SHUT_RDWR); /* the sender may wait for room that never comes */
    pthread_join(t, NULL);
    return rc;
}

static void round_trips_every_size(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context();
    struct conn a, b;
    make_pair(ctx, false, false, &a, &b);
    assert_non_null(a.sealed);
    assert_non_null(b.sealed);
    char how[256];
    conn_describe(&a, how, sizeof how);
    assert_non_null(strstr(how, "sealed records"));

    const size_t sizes[] = {1, 7, 4096, SEALED_RECORD_MAX - 1, SEALED_RECORD_MAX, SEALED_RECORD_MAX + 1,
                            3 * SEALED_RECORD_MAX + 5};
    size_t most = 3 * SEALED_RECORD_MAX + 5;
    unsigned char *data = malloc(most), *got = malloc(most);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        fill(data, sizes[i], (unsigned)i);
        memset(got, 0xee, most);
        struct sr_error err = {{0}};
        /* both directions, one piece per message and then small pieces (records split for the receiver) */
        assert_int_equal(transfer(&a, &b, data, sizes[i], sizes[i], got, &err), 0);
        assert_memory_equal(got, data, sizes[i]);
        assert_int_equal(transfer(&b, &a, data, sizes[i], 1000, got, &err), 0);
        assert_memory_equal(got, data, sizes[i]);
    }
    free(data), free(got);
    conn_close(&a), conn_close(&b);
    tls_context_free(ctx);
}

static void epochs_change_keys(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context();
    unsigned char data[7000], got[7000];
    fill(data, sizeof data, 3);
    struct sr_error err = {{0}};

    struct conn a, b;
    make_pair(ctx, false, false, &a, &b);
    sealed_set_rekey_bytes(a.sealed, 1000), sealed_set_rekey_bytes(b.sealed, 1000);
    for (int i = 0; i < 10; i++) { /* records of 700 bytes: a new epoch every second record */
        assert_int_equal(transfer(&a, &b, data + i * 700, 700, 700, got + i * 700, &err), 0);
        assert_int_equal(transfer(&b, &a, data + i * 700, 700, 700, got + i * 700, &err), 0);
    }
    assert_memory_equal(got, data, sizeof data);
    conn_close(&a), conn_close(&b);

    /* Only the sender changes keys: the receiver must refuse the first record of epoch 1. */
    make_pair(ctx, false, false, &a, &b);
    sealed_set_rekey_bytes(a.sealed, 1000);
    assert_int_equal(transfer(&a, &b, data, 700, 700, got, &err), 0);
    assert_int_equal(transfer(&a, &b, data, 700, 700, got, &err), 0);
    assert_int_equal(transfer(&a, &b, data, 700, 700, got, &err), -1);
    assert_non_null(strstr(err.text, "record 2 of epoch 0 failed authentication"));
    conn_close(&a), conn_close(&b);
    tls_context_free(ctx);
}

/* What a sends, as bytes on the wire: `count` records of `len` bytes. */
static size_t capture(struct conn *a, struct conn *b, size_t len, int count, unsigned char *wire)
{
    unsigned char data[4096];
    fill(data, len, 9);
    struct sr_error err = {{0}};
    for (int i = 0; i < count; i++)
        assert_int_equal(conn_send_all(a, data, len, clock_now() + 5, &err), 0);
    size_t want = (size_t)count * (len + SEALED_OVERHEAD), have = 0;
    while (have < want) {
        ssize_t n = read(b->fd, wire + have, want - have);
        if (n < 0)
            clock_sleep(0.001);
        else
            have += (size_t)n;
    }
    return have;
}

/* b reads `wire` instead of what a sent; returns b's receive and its reason. */
static int feed(struct conn *b, const unsigned char *wire, size_t n, size_t want, struct sr_error *err)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], wire, n), (ssize_t)n);
    close(sv[0]); /* what follows the bytes is the end of the stream */
    close(b->fd);
    b->fd = sv[1];
    unsigned char got[8192];
    return conn_recv_all(b, got, want, clock_now() + 5, err);
}

static void refuses_altered_streams(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context();
    const size_t len = 1000, rec = len + SEALED_OVERHEAD;
    struct {
        const char *what, *expect;
    } cases[] = {
        {"flipped ciphertext bit", "record 0 of epoch 0 failed authentication"},
        {"flipped tag bit", "record 0 of epoch 0 failed authentication"},
        {"changed length", "failed authentication"},
        {"replayed record", "record 1 of epoch 0 failed authentication"},
        {"reordered records", "record 0 of epoch 0 failed authentication"},
        {"length out of range", "a record of 4294967295 bytes"},
        {"cut short", "the peer closed the connection"},
        {"plaintext", "a record of 1751477356 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct conn a, b;
        make_pair(ctx, false, false, &a, &b);
        unsigned char wire[3 * 1100], edited[3 * 1100];
        size_t n = capture(&a, &b, len, 2, wire), m = n, want = 2 * len;
        memcpy(edited, wire, n);
        switch (i) {
        case 0: edited[4 + 10] ^= 1; break;
        case 1: edited[rec - 1] ^= 0x80; break;
        case 2: edited[3] = (unsigned char)(len - 1); /* a shorter record: the bytes after it are misread */ break;
        case 3: memcpy(edited + rec, wire, rec); break;
        case 4: memcpy(edited, wire + rec, rec), memcpy(edited + rec, wire, rec); break;
        case 5: memset(edited, 0xff, 4); break;
        case 6: m = rec + rec / 2; break;
        case 7: memcpy(edited, "hello, plaintext", 16), m = 16, want = 16; break;
        }
        struct sr_error err = {{0}};
        assert_int_equal(feed(&b, edited, m, want, &err), -1);
        if (!strstr(err.text, cases[i].expect))
            fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].what, err.text, cases[i].expect);
        conn_close(&a), conn_close(&b);
    }
    tls_context_free(ctx);
}

static void tls_records_when_either_end_asks(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context();
    unsigned char data[100000], got[100000];
    fill(data, sizeof data, 5);
    const bool ask[3][2] = {{true, false}, {false, true}, {true, true}};
    for (int i = 0; i < 3; i++) {
        struct conn a, b;
        make_pair(ctx, ask[i][0], ask[i][1], &a, &b);
        assert_null(a.sealed);
        assert_null(b.sealed);
        char how[256];
        conn_describe(&b, how, sizeof how);
        assert_non_null(strstr(how, "TLS records, kernel TLS send off"));
        struct sr_error err = {{0}};
        assert_int_equal(transfer(&a, &b, data, sizeof data, 777, got, &err), 0);
        assert_memory_equal(got, data, sizeof data);
        conn_close(&a), conn_close(&b);
    }
    tls_context_free(ctx);

    /* plaintext: conn_seal does nothing, and sends nothing */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct conn p;
    struct sr_error err = {{0}};
    assert_int_equal(conn_adopt(sv[0], NULL, false, &p, &err), 0);
    assert_int_equal(conn_seal(&p, false, clock_now() + 1, &err), 0);
    assert_null(p.sealed);
    char c;
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
    conn_close(&p);
    close(sv[1]);
}

static void seals_and_opens_in_memory(void **state)
{
    (void)state;
    SSL_CTX *ctx = psk_context();
    struct conn a, b;
    make_pair(ctx, false, false, &a, &b);
    static unsigned char data[SEALED_RECORD_MAX], rec[SEALED_RECORD_MAX + SEALED_OVERHEAD];
    fill(data, sizeof data, 11);
    struct sr_error err = {{0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sealed_seal_record(a.sealed, data, sizeof data, rec, &err), 0);
        assert_int_equal(sealed_open_record(b.sealed, rec, sizeof rec, &err), 0);
        assert_memory_equal(rec + 4, data, sizeof data);
    }
    assert_int_equal(sealed_seal_record(a.sealed, data, 0, rec, &err), -1);
    conn_close(&a), conn_close(&b);
    tls_context_free(ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* closing the second end of a pair writes close_notify to a closed socket */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips_every_size),
        cmocka_unit_test(epochs_change_keys),
        cmocka_unit_test(refuses_altered_streams),
        cmocka_unit_test(tls_records_when_either_end_asks),
        cmocka_unit_test(seals_and_opens_in_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
