/* sagerun-tls-cipher: what sealing and opening records costs one core, with
 * the code and keys the encrypted paths use (runtime/net/sealed.h): a TLS
 * 1.3 handshake (PSK) between two ends of a socket pair in this process,
 * then records of each size sealed from a 64 MiB buffer into one record
 * buffer (as a send does) and opened in place across a 64 MiB buffer (as a
 * receive does), each for about a second. Run it pinned to one core:
 *
 *   taskset -c 0 sagerun-tls-cipher [RECORD_BYTES...]   (16384..262144; default 262144 16384)
 *
 * Prints per size: "seal BYTES RATE GB/s" and "open BYTES RATE GB/s". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "sealed.h"
#include "tls.h"
#include "transport.h"

#define BUFFER_BYTES (64u << 20)

static void die(const char *what, const struct sr_error *err)
{
    fprintf(stderr, "sagerun-tls-cipher: %s: %s\n", what, err->text);
    exit(1);
}

/* Both ends of a handshake, stepped in turn on this one thread. */
static void handshake_pair(SSL_CTX *ctx, struct conn *a, struct conn *b)
{
    int sv[2];
    struct sr_error err = {{0}};
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || conn_adopt(sv[0], ctx, false, a, &err) != 0 ||
        conn_adopt(sv[1], ctx, true, b, &err) != 0)
        die("socket pair", &err);
    int done_a = 0, done_b = 0;
    short events;
    while (done_a != 1 || done_b != 1) {
        if (done_a != 1 && (done_a = conn_handshake_step(a, &events, &err)) < 0)
            die("handshake", &err);
        if (done_b != 1 && (done_b = conn_handshake_step(b, &events, &err)) < 0)
            die("handshake", &err);
    }
}

static double rate(size_t bytes, double seconds) { return (double)bytes / seconds / 1e9; }

/* `send` seals as a send does; `tx` seals what `rx` opens (record numbers must match). */
static void measure(struct sealed *send, struct sealed *tx, struct sealed *rx, size_t record, unsigned char *data,
                    unsigned char *wire)
{
    struct sr_error err = {{0}};
    size_t count = BUFFER_BYTES / record, step = record + SEALED_OVERHEAD;
    unsigned char *out = malloc(step);
    size_t sealed_bytes = 0, opened_bytes = 0;
    double seal_s = 0, open_s = 0;
    while (seal_s < 1.0 || open_s < 1.0) {
        double t = clock_now();
        for (size_t i = 0; i < count; i++)
            if (sealed_seal_record(send, data + i * record, record, out, &err) != 0)
                die("seal", &err);
        seal_s += clock_now() - t;
        sealed_bytes += count * record;
        /* records to open, sealed outside the timing; they are opened where they lie */
        for (size_t i = 0; i < count; i++)
            if (sealed_seal_record(tx, data + i * record, record, wire + i * step, &err) != 0)
                die("seal", &err);
        t = clock_now();
        for (size_t i = 0; i < count; i++)
            if (sealed_open_record(rx, wire + i * step, step, &err) != 0)
                die("open", &err);
        open_s += clock_now() - t;
        opened_bytes += count * record;
        if (memcmp(wire + 4, data, record) != 0) {
            fprintf(stderr, "sagerun-tls-cipher: a record opened to other bytes than were sealed\n");
            exit(1);
        }
    }
    printf("seal %zu %.3f GB/s\nopen %zu %.3f GB/s\n", record, rate(sealed_bytes, seal_s), record,
           rate(opened_bytes, open_s));
    free(out);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* closing the second end writes close_notify to a closed socket */
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct tls_settings settings;
    struct sr_error err = {{0}};
    const struct encryption_decision on = {.enabled = true};
    setenv("SAGERUN_TLS_PSK", "sagerun-tls-cipher-benchmark-key", 1);
    if (tls_settings_load(&on, NULL, &settings, &err) != 0)
        die("key", &err);
    SSL_CTX *ctx = tls_context_create(&settings, &err);
    if (!ctx)
        die("context", &err);
    struct conn a, b;
    handshake_pair(ctx, &a, &b);
    struct sealed *send, *tx, *rx;
    if (sealed_start(a.ssl, &send, &err) != 0 || sealed_start(a.ssl, &tx, &err) != 0 ||
        sealed_start(b.ssl, &rx, &err) != 0)
        die("keys", &err);
    printf("# %s, sealed records\n", SSL_CIPHER_get_name(SSL_get_current_cipher(a.ssl)));

    unsigned char *data = malloc(BUFFER_BYTES), *wire = malloc(BUFFER_BYTES + BUFFER_BYTES / 16384 * SEALED_OVERHEAD);
    for (size_t i = 0; i < BUFFER_BYTES; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 24);
    size_t sizes[16] = {SEALED_RECORD_MAX, 16384}, n = argc > 1 ? (size_t)argc - 1 : 2;
    for (size_t i = 0; i < n && i < 16; i++) {
        size_t record = argc > 1 ? strtoull(argv[i + 1], NULL, 0) : sizes[i];
        if (record < 16384 || record > SEALED_RECORD_MAX) { /* the opening buffer is sized for >= 16 KiB */
            fprintf(stderr, "sagerun-tls-cipher: record sizes are 16384..%u bytes\n", SEALED_RECORD_MAX);
            return 2;
        }
        measure(send, tx, rx, record, data, wire);
    }
    sealed_free(send), sealed_free(tx), sealed_free(rx);
    conn_close(&a), conn_close(&b);
    tls_context_free(ctx);
    free(data), free(wire);
    return 0;
}
