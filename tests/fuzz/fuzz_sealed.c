/* libFuzzer target over the receiving side of sealed records (sealed.h):
 * the input is a program of steps that seal records of chosen sizes, put
 * their bytes on a socket in chosen pieces, receive with chosen buffer
 * sizes, and inject chosen junk. Whatever the order and the pieces, every
 * byte received must be the next byte sealed, and junk may end the stream
 * with an error but never deliver a byte. A violation aborts; so does any
 * crash, leak, overread or UB report. One TLS handshake serves every input
 * (fresh record counters per input from sealed_start). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sealed.h"
#include "tls.h"
#include "transport.h"

#define MOST_PLAIN 65536u
#define MOST_PENDING (512u * 1024u) /* sealed bytes waiting to be written */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct conn connector, acceptor;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_sealed: %s: %s\n", what, why);
    abort();
}

static void handshake_once(void)
{
    struct tls_settings settings;
    struct sr_error err = {{0}};
    const struct encryption_decision on = {.enabled = true};
    setenv("SAGERUN_TLS_PSK", "fuzz-sealed-records-key", 1);
    SSL_CTX *ctx = NULL;
    int sv[2];
    if (tls_settings_load(&on, NULL, &settings, &err) != 0 || !(ctx = tls_context_create(&settings, &err)) ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || conn_adopt(sv[0], ctx, false, &connector, &err) != 0 ||
        conn_adopt(sv[1], ctx, true, &acceptor, &err) != 0)
        die("setting up", err.text);
    int a = 0, b = 0;
    short events;
    while (a != 1 || b != 1) /* both ends stepped in turn on this thread */
        if ((a != 1 && (a = conn_handshake_step(&connector, &events, &err)) < 0) ||
            (b != 1 && (b = conn_handshake_step(&acceptor, &events, &err)) < 0))
            die("handshake", err.text);
}

static unsigned char pattern(uint64_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

struct run {
    struct sealed *tx, *rx;
    int in, out; /* the receiver's end, the writer's */
    unsigned char *wire; /* sealed bytes not yet written */
    size_t wire_len;
    uint64_t sealed, received;
    size_t locked; /* receive size to retry with after a 0 mid-record, or 0 */
    bool junk, failed;
    unsigned char buf[MOST_PLAIN + SEALED_RECORD_MAX];
};

static void seal(struct run *r, size_t n)
{
    if (r->wire_len + n + SEALED_OVERHEAD > MOST_PENDING)
        return;
    unsigned char plain[MOST_PLAIN];
    for (size_t i = 0; i < n; i++)
        plain[i] = pattern(r->sealed + i);
    struct sr_error err = {{0}};
    if (sealed_seal_record(r->tx, plain, n, r->wire + r->wire_len, &err) != 0)
        die("seal", err.text);
    r->wire_len += n + SEALED_OVERHEAD;
    r->sealed += n;
}

/* Writes what the socket takes now (it never blocks). */
static size_t put(struct run *r, const void *bytes, size_t n)
{
    ssize_t w = write(r->out, bytes, n);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        die("write", strerror(errno));
    return w < 0 ? 0 : (size_t)w;
}

static void flush(struct run *r, size_t n)
{
    n = put(r, r->wire, n < r->wire_len ? n : r->wire_len);
    memmove(r->wire, r->wire + n, r->wire_len - n);
    r->wire_len -= n;
}

/* One receive; returns bytes delivered (checked against the pattern). */
static ssize_t receive(struct run *r, size_t len)
{
    if (r->locked)
        len = r->locked;
    short events;
    struct sr_error err = {{0}};
    ssize_t n = sealed_recv(r->rx, r->in, r->buf, len, &events, "the fuzzer", &err);
    if (n < 0) {
        if (!r->junk)
            die("an error without junk", err.text);
        r->failed = true;
        return 0;
    }
    if ((size_t)n > len)
        die("received", "more bytes than the buffer holds");
    r->locked = n == 0 ? len : 0;
    for (ssize_t i = 0; i < n; i++)
        if (r->buf[i] != pattern(r->received + (uint64_t)i))
            die("received", "a byte that was not the next one sealed");
    r->received += (uint64_t)n;
    if (r->received > r->sealed)
        die("received", "more bytes than were sealed");
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!connector.ssl)
        handshake_once();
    struct run *r = calloc(1, sizeof *r);
    struct sr_error err = {{0}};
    int sv[2];
    if (sealed_start(connector.ssl, &r->tx, &err) != 0 || sealed_start(acceptor.ssl, &r->rx, &err) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("per input", err.text);
    r->in = sv[0], r->out = sv[1];
    r->wire = malloc(MOST_PENDING);
    for (size_t i = 0; i + 2 < size && !r->failed; i += 3) {
        size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
        switch (data[i] % 4) {
        case 0: seal(r, 1 + arg % MOST_PLAIN); break;
        case 1: flush(r, 1 + arg); break;
        case 2: receive(r, 1 + arg * 4); break;
        case 3: { /* junk: the input's next bytes, straight onto the socket */
            size_t n = (arg % 64) + 1;
            n = n < size - i - 3 ? n : size - i - 3;
            put(r, data + i + 3, n);
            r->junk = true;
            i += n;
            break;
        }
        }
    }
    for (int idle = 0; !r->junk && r->received < r->sealed;) { /* what was sealed all arrives */
        size_t waiting = r->wire_len;
        flush(r, r->wire_len);
        bool moved = receive(r, MOST_PLAIN) > 0 || r->wire_len < waiting;
        idle = moved ? 0 : idle + 1;
        if (idle > 100)
            die("received", "fewer bytes than were sealed, and no more come");
    }
    sealed_free(r->tx), sealed_free(r->rx);
    close(r->in), close(r->out);
    free(r->wire);
    free(r);
    return 0;
}
