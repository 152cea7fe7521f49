#include "host_backend.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "parse_int.h"
#include "rendezvous.h"
#include "tls.h"

int host_backend_rendezvous(const struct host_backend *b, struct rdzv_client *cl, double deadline,
                            struct sr_error *err)
{
    struct sockaddr_in leader;
    if (transport_endpoint(getenv("SAGERUN_RENDEZVOUS"), "host backend: SAGERUN_RENDEZVOUS", &leader, err) != 0)
        return -1;
    return rdzv_client_connect(cl, &leader, b->ctx, deadline, err);
}

static int exchange_addresses(struct host_backend *b, int listen_port, struct sockaddr_in *next, double deadline,
                              struct sr_error *err)
{
    struct rdzv_client cl;
    if (host_backend_rendezvous(b, &cl, deadline, err) != 0)
        return -1;
    char key[64], mine[64], *theirs = NULL;
    snprintf(key, sizeof key, "ring/%d", b->rank);
    snprintf(mine, sizeof mine, "%s:%d", getenv("SAGERUN_HOST_ADDR"), listen_port);
    int rc = rdzv_set(&cl, key, mine, deadline, err);
    snprintf(key, sizeof key, "ring/%d", (b->rank + 1) % b->size);
    if (rc == 0)
        rc = rdzv_get(&cl, key, &theirs, deadline, err);
    if (rc == 0)
        rc = transport_endpoint(theirs, key, next, err);
    free(theirs);
    rdzv_client_close(&cl);
    return rc;
}

int host_backend_open(struct host_backend *b, double timeout_s, struct sr_error *err)
{
    memset(b, 0, sizeof *b);
    int streams = RING_DEFAULT_STREAMS, slice = RING_DEFAULT_SLICE_BYTES;
    if (require_int_env("host backend", "RANK", 0, 1 << 20, &b->rank, err) != 0 ||
        require_int_env("host backend", "WORLD_SIZE", 1, 1 << 20, &b->size, err) != 0 ||
        parse_int_env("SAGERUN_RING_STREAMS", 1, RING_MAX_STREAMS, &streams, err) < 0 ||
        parse_int_env("SAGERUN_RING_SLICE_BYTES", 4096, 64 << 20, &slice, err) < 0)
        return -1;
    const char *host_addr = getenv("SAGERUN_HOST_ADDR");
    if (!host_addr) {
        error_setf(err, "host backend: SAGERUN_HOST_ADDR is not set; run under `sagerun train`");
        return -1;
    }
    struct tls_settings tls;
    int rc = tls_settings_from_rank_env("host backend", &tls, err);
    if (rc == 0 && tls.mode != TLS_OFF && !(b->ctx = tls_context_create(&tls, err)))
        rc = -1;
    OPENSSL_cleanse(&tls, sizeof tls);
    if (rc != 0)
        return -1;
    double deadline = clock_now() + timeout_s;
    struct sockaddr_in here, next;
    int fd = -1, port;
    rc = -1;
    if (transport_address(host_addr, 0, &here, err) == 0 && listener_open(&here, 64, &fd, &port, err) == 0 &&
        exchange_addresses(b, port, &next, deadline, err) == 0)
        rc = ring_connect(&b->ring, b->rank, b->size, streams, (size_t)slice, fd, &next, b->ctx, deadline, err);
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        tls_context_free(b->ctx);
        b->ctx = NULL;
        return -1;
    }
    if (b->size > 1)
        conn_describe(&b->ring.next[0], b->security, sizeof b->security);
    else
        snprintf(b->security, sizeof b->security, "no peers");
    return 0;
}

int host_backend_allreduce(struct host_backend *b, void *buf, size_t count, enum ring_dtype type,
                           struct sr_error *err)
{
    return ring_allreduce(&b->ring, buf, count, type, err);
}

void host_backend_close(struct host_backend *b)
{
    ring_close(&b->ring);
    tls_context_free(b->ctx);
    b->ctx = NULL;
}
