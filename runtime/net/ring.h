/* ring.h — ring all-reduce between processes over the transport (the
 * `host` backend's collective, and the reference for the GPU path).
 *
 * The ranks form a ring (rank r sends to r+1, receives from r-1), joined by
 * `streams` TCP connections (plaintext or TLS) in each direction. A sum of
 * `count` elements is a reduce-scatter then an all-gather: 2(n-1) steps, in
 * step t rank r sends chunk (r-t) mod n and receives chunk (r-t-1) mod n,
 * adding it in during the first n-1 steps and copying it during the rest.
 * Chunk c is elements [c*count/n, (c+1)*count/n), so any count works,
 * including 0 and counts not divisible by n. Chunks are cut into slices
 * that flow as soon as they are ready: slice j of step t leaves once slice j
 * of step t-1 has arrived and been reduced, so all steps are in flight at
 * once (pipelined) and slices spread round-robin over the streams.
 *
 * Every rank ends with the same bits (the all-gather copies one rank's sums),
 * so replicas of a model stay identical. bf16 partial sums travel as bf16,
 * as NCCL's do: each addition is done in fp32 and rounded to nearest even.
 * All ranks must call with the same count and type, in the same order.
 */
#ifndef SAGERUN_RING_H
#define SAGERUN_RING_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "transport.h"

#define RING_MAX_STREAMS 16
#define RING_DEFAULT_STREAMS 2
#define RING_DEFAULT_SLICE_BYTES (256 * 1024)

enum ring_dtype { RING_F32, RING_BF16 };

struct ring {
    int rank, size;
    int streams;
    size_t slice_bytes;
    double timeout_s;                   /* per collective; a silent peer fails it */
    struct conn next[RING_MAX_STREAMS]; /* to rank+1 */
    struct conn prev[RING_MAX_STREAMS]; /* from rank-1 */
    unsigned char *staging;             /* streams x slice_bytes, for slices being reduced */
};

/* Joins the ring: `listen_fd` is this rank's open listener (whose address
 * rank-1 knows); `next` is rank+1's listener. Connections from anyone but
 * rank-1 (a failed handshake, a wrong greeting) are dropped and waited past
 * until `deadline`. Even ranks connect first and odd ranks accept first, so
 * the TLS handshakes never wait on each other in a cycle. */
int ring_connect(struct ring *r, int rank, int size, int streams, size_t slice_bytes, int listen_fd,
                 const struct sockaddr_in *next, SSL_CTX *ctx, double deadline, struct sr_error *err);

/* In-place sum of `count` elements of `type` over all ranks. */
int ring_allreduce(struct ring *r, void *buf, size_t count, enum ring_dtype type, struct sr_error *err);

void ring_close(struct ring *r);

/* bf16 <-> fp32 (round to nearest even; NaN stays NaN). */
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

#endif
