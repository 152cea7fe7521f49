/* host_backend.h — the `host` backend as a rank sees it: join the ring of
 * all the job's ranks through the rendezvous, then all-reduce over it.
 *
 * Reads what the launcher gives every rank: RANK, WORLD_SIZE,
 * SAGERUN_RENDEZVOUS (leader "ip:port"), SAGERUN_HOST_ADDR (this host's
 * address to listen on), SAGERUN_ENCRYPTION and the TLS key variables (see
 * tls.h), and the tuning knobs SAGERUN_RING_STREAMS (connections per
 * neighbour, default 2) and SAGERUN_RING_SLICE_BYTES (default 256 KiB).
 */
#ifndef SAGERUN_HOST_BACKEND_H
#define SAGERUN_HOST_BACKEND_H

#include "rendezvous.h"
#include "ring.h"

struct host_backend {
    SSL_CTX *ctx;
    struct ring ring;
    int rank, size;
    char security[160]; /* how the ring's connections are protected */
};

int host_backend_open(struct host_backend *b, double timeout_s, struct sr_error *err);
int host_backend_allreduce(struct host_backend *b, void *buf, size_t count, enum ring_dtype type,
                           struct sr_error *err);
void host_backend_close(struct host_backend *b);

/* A connection of this rank's own to the rendezvous (SAGERUN_RENDEZVOUS),
 * protected as the ring is, for its key-value store (rendezvous.h). */
int host_backend_rendezvous(const struct host_backend *b, struct rdzv_client *cl, double deadline,
                            struct sr_error *err);

#endif
