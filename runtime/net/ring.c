#include "ring.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "strbuf.h"

#define GREETING_MAGIC "SRRING01"
#define GREETING_BYTES 16
#define GREETING_TIMEOUT_S 5.0

float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The first bytes on every ring connection: who is calling and on which
 * stream, so the acceptor can order the streams and turn strangers away. */
static void greeting(unsigned char *g, int rank, int size, int stream)
{
    memcpy(g, GREETING_MAGIC, 8);
    put_u32(g + 8, (uint32_t)rank);
    g[12] = (unsigned char)(size >> 8), g[13] = (unsigned char)size;
    g[14] = 0, g[15] = (unsigned char)stream;
}

static int connect_next(struct ring *r, const struct sockaddr_in *next, SSL_CTX *ctx, double deadline,
                        struct sr_error *err)
{
    for (int s = 0; s < r->streams; s++) {
        bool timed_out;
        struct sr_error e = {{0}};
        if (conn_connect_retry(next, ctx, deadline, 0.05, 1.0, &r->next[s], &timed_out, &e) != 0) {
            error_setf(err, "ring: rank %d cannot reach rank %d: %s", r->rank, (r->rank + 1) % r->size, e.text);
            return -1;
        }
        unsigned char g[GREETING_BYTES];
        greeting(g, r->rank, r->size, s);
        if (conn_send_all(&r->next[s], g, sizeof g, deadline, err) != 0 ||
            conn_seal(&r->next[s], false, deadline, err) != 0)
            return -1;
    }
    return 0;
}

static int accept_prev(struct ring *r, int listen_fd, SSL_CTX *ctx, double deadline, struct sr_error *err)
{
    int prev = (r->rank + r->size - 1) % r->size;
    for (int got = 0; got < r->streams;) {
        struct conn c;
        struct sr_error e = {{0}};
        int rc = conn_accept(listen_fd, ctx, deadline, &c, &e);
        if (rc == -1) {
            error_setf(err, "ring: rank %d waiting for rank %d: %s", r->rank, prev, e.text);
            return -1;
        }
        if (rc == -2) {
            fprintf(stderr, "sagerun: ring: rank %d refused a connection: %s\n", r->rank, e.text);
            continue;
        }
        unsigned char g[GREETING_BYTES];
        double until = clock_now() + GREETING_TIMEOUT_S;
        if (conn_recv_all(&c, g, sizeof g, until < deadline ? until : deadline, &e) != 0 ||
            memcmp(g, GREETING_MAGIC, 8) != 0 || get_u32(g + 8) != (uint32_t)prev ||
            ((int)g[12] << 8 | g[13]) != r->size || g[15] >= r->streams || r->prev[g[15]].fd >= 0) {
            fprintf(stderr, "sagerun: ring: rank %d refused a connection from %s: %s\n", r->rank, c.peer,
                    e.text[0] ? e.text : "not rank-1 of this ring");
            conn_close(&c);
            continue;
        }
        if (conn_seal(&c, false, deadline, err) != 0) {
            conn_close(&c);
            return -1;
        }
        r->prev[g[15]] = c;
        got++;
    }
    return 0;
}

int ring_connect(struct ring *r, int rank, int size, int streams, size_t slice_bytes, int listen_fd,
                 const struct sockaddr_in *next, SSL_CTX *ctx, double deadline, struct sr_error *err)
{
    memset(r, 0, sizeof *r);
    for (int s = 0; s < RING_MAX_STREAMS; s++)
        r->next[s].fd = r->prev[s].fd = -1;
    if (streams < 1 || streams > RING_MAX_STREAMS || slice_bytes < 64 || size < 1 || size > 65535 || rank < 0 ||
        rank >= size) {
        error_setf(err, "ring: bad parameters (rank %d of %d, %d streams, %zu-byte slices; streams 1..%d, slices "
                        ">= 64 bytes)",
                   rank, size, streams, slice_bytes, RING_MAX_STREAMS);
        return -1;
    }
    r->rank = rank, r->size = size, r->streams = streams;
    r->slice_bytes = slice_bytes & ~(size_t)7; /* whole elements of any type */
    r->timeout_s = 300;
    r->staging = xmalloc((size_t)streams * r->slice_bytes);
    if (size == 1)
        return 0;
    int rc = rank % 2 == 0 ? connect_next(r, next, ctx, deadline, err) : accept_prev(r, listen_fd, ctx, deadline, err);
    if (rc == 0)
        rc = rank % 2 == 0 ? accept_prev(r, listen_fd, ctx, deadline, err) : connect_next(r, next, ctx, deadline, err);
    if (rc != 0)
        ring_close(r);
    return rc;
}

void ring_close(struct ring *r)
{
    for (int s = 0; s < RING_MAX_STREAMS; s++) {
        if (r->next[s].fd >= 0)
            conn_close(&r->next[s]);
        if (r->prev[s].fd >= 0)
            conn_close(&r->prev[s]);
    }
    free(r->staging);
    r->staging = NULL;
}

/* Where each step's slices start in the sequence of slices sent (or
 * received): slices of step t are first[t] .. first[t+1]-1. */
struct schedule {
    int n, rank, steps;
    size_t count, esize, slice_elems;
    size_t *send_first, *recv_first;
    bool *recv_done; /* by received-slice sequence number */
};

static size_t chunk_lo(const struct schedule *s, int c) { return s->count * (size_t)c / (size_t)s->n; }

static int send_chunk(const struct schedule *s, int t) { return ((s->rank - t) % s->n + s->n) % s->n; }
static int recv_chunk(const struct schedule *s, int t) { return ((s->rank - t - 1) % s->n + 2 * s->n) % s->n; }

static size_t slices_in(const struct schedule *s, int c)
{
    size_t len = chunk_lo(s, c + 1) - chunk_lo(s, c);
    return (len + s->slice_elems - 1) / s->slice_elems;
}

static void schedule_init(struct schedule *s, const struct ring *r, size_t count, size_t esize)
{
    s->n = r->size, s->rank = r->rank, s->steps = 2 * (r->size - 1);
    s->count = count, s->esize = esize, s->slice_elems = r->slice_bytes / esize;
    s->send_first = xcalloc((size_t)s->steps + 1, sizeof *s->send_first);
    s->recv_first = xcalloc((size_t)s->steps + 1, sizeof *s->recv_first);
    for (int t = 0; t < s->steps; t++) {
        s->send_first[t + 1] = s->send_first[t] + slices_in(s, send_chunk(s, t));
        s->recv_first[t + 1] = s->recv_first[t] + slices_in(s, recv_chunk(s, t));
    }
    s->recv_done = xcalloc(s->recv_first[s->steps] + 1, sizeof *s->recv_done);
}

static void schedule_free(struct schedule *s)
{
    free(s->send_first);
    free(s->recv_first);
    free(s->recv_done);
}

/* One stream's position in its share of the slices (every streams-th). */
struct cursor {
    size_t seq, off;
    int step;
    short events;  /* what the connection waits for */
    bool unready;  /* sending: the next slice waits for data, not for the socket */
};

/* The step of slice `seq`, and the slice's element range. */
static int locate(const struct schedule *s, const size_t *first, struct cursor *c, bool sending, size_t *lo,
                  size_t *hi)
{
    while (c->seq >= first[c->step + 1])
        c->step++;
    int chunk = sending ? send_chunk(s, c->step) : recv_chunk(s, c->step);
    *lo = chunk_lo(s, chunk) + (c->seq - first[c->step]) * s->slice_elems;
    size_t end = chunk_lo(s, chunk + 1);
    *hi = *lo + s->slice_elems < end ? *lo + s->slice_elems : end;
    return c->step;
}

static void reduce(enum ring_dtype type, void *dst, const void *src, size_t n)
{
    if (type == RING_F32) {
        float *restrict d = dst;
        const float *restrict x = src;
        for (size_t i = 0; i < n; i++)
            d[i] += x[i];
    } else {
        uint16_t *restrict d = dst;
        const uint16_t *restrict x = src;
        for (size_t i = 0; i < n; i++)
            d[i] = f32_to_bf16(bf16_to_f32(d[i]) + bf16_to_f32(x[i]));
    }
}

/* Sends what stream k can: slices whose data is final for their step. */
static int pump_send(struct ring *r, const struct schedule *s, struct cursor *c, int k, unsigned char *buf,
                     bool *moved, struct sr_error *err)
{
    size_t total = s->send_first[s->steps];
    while (c->seq < total) {
        size_t lo, hi;
        int t = locate(s, s->send_first, c, true, &lo, &hi);
        c->unready = t > 0 && !s->recv_done[s->recv_first[t - 1] + (c->seq - s->send_first[t])];
        if (c->unready)
            return 0; /* this slice's data is still on its way from rank-1 */
        size_t len = (hi - lo) * s->esize;
        ssize_t n = conn_send_some(&r->next[k], buf + lo * s->esize + c->off, len - c->off, &c->events, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        *moved = true;
        c->off += (size_t)n;
        if (c->off == len)
            c->seq += (size_t)r->streams, c->off = 0;
    }
    return 0;
}

/* Receives what stream k has: reduce-scatter slices land in staging and are
 * added in; all-gather slices land in place (see ring.h). */
static int pump_recv(struct ring *r, const struct schedule *s, struct cursor *c, int k, unsigned char *buf,
                     enum ring_dtype type, bool *moved, struct sr_error *err)
{
    size_t total = s->recv_first[s->steps];
    unsigned char *staging = r->staging + (size_t)k * r->slice_bytes;
    while (c->seq < total) {
        size_t lo, hi;
        int t = locate(s, s->recv_first, c, false, &lo, &hi);
        bool reducing = t < s->n - 1;
        size_t len = (hi - lo) * s->esize;
        unsigned char *dst = reducing ? staging : buf + lo * s->esize;
        ssize_t n = conn_recv_some(&r->prev[k], dst + c->off, len - c->off, &c->events, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        *moved = true;
        c->off += (size_t)n;
        if (c->off < len)
            continue;
        if (reducing)
            reduce(type, buf + lo * s->esize, staging, hi - lo);
        s->recv_done[c->seq] = true;
        c->seq += (size_t)r->streams, c->off = 0;
    }
    return 0;
}

static int wait_for_io(struct ring *r, const struct schedule *s, const struct cursor *sc, const struct cursor *rc,
                       double deadline, struct sr_error *err)
{
    struct pollfd fds[2 * RING_MAX_STREAMS];
    int n = 0;
    for (int k = 0; k < r->streams; k++) {
        if (sc[k].seq < s->send_first[s->steps] && !sc[k].unready)
            fds[n++] = (struct pollfd){r->next[k].fd, sc[k].events, 0};
        if (rc[k].seq < s->recv_first[s->steps])
            fds[n++] = (struct pollfd){r->prev[k].fd, rc[k].events, 0};
    }
    double left = deadline - clock_now();
    if (left <= 0 || poll(fds, (nfds_t)n, (int)(left * 1000) + 1) == 0) {
        error_setf(err, "ring: rank %d: all-reduce made no progress for %.0f s (a peer is stuck)", r->rank,
                   r->timeout_s);
        return -1;
    }
    return 0;
}

int ring_allreduce(struct ring *r, void *buf, size_t count, enum ring_dtype type, struct sr_error *err)
{
    if (r->size == 1 || count == 0)
        return 0;
    struct schedule s;
    schedule_init(&s, r, count, type == RING_F32 ? 4 : 2);
    struct cursor sc[RING_MAX_STREAMS], rc[RING_MAX_STREAMS];
    for (int k = 0; k < r->streams; k++) {
        sc[k] = (struct cursor){(size_t)k, 0, 0, POLLOUT, false};
        rc[k] = (struct cursor){(size_t)k, 0, 0, POLLIN, false};
    }
    /* The steps fill their own error, which then goes to the caller's with
     * this collective's context in front: a message already in `err` stays
     * (error.h's rule: the first error wins). */
    struct sr_error why = {{0}};
    double deadline = clock_now() + r->timeout_s;
    int result = 0;
    for (;;) {
        bool moved = false, done = true;
        for (int k = 0; k < r->streams && result == 0; k++) {
            if (pump_send(r, &s, &sc[k], k, buf, &moved, &why) != 0 ||
                pump_recv(r, &s, &rc[k], k, buf, type, &moved, &why) != 0)
                result = -1;
            done = done && sc[k].seq >= s.send_first[s.steps] && rc[k].seq >= s.recv_first[s.steps];
        }
        if (result != 0 || done)
            break;
        if (moved)
            deadline = clock_now() + r->timeout_s;
        else if (wait_for_io(r, &s, sc, rc, deadline, &why) != 0)
            result = -1;
        if (result != 0)
            break;
    }
    if (result != 0)
        error_setf(err, "ring all-reduce (rank %d of %d, %zu elements): %s", r->rank, r->size, count, why.text);
    schedule_free(&s);
    return result;
}
