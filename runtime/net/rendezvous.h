/* rendezvous.h — how the hosts of a job find each other and stay together.
 *
 * The leader (first host) runs the server in a process of its own; every
 * host's launcher, the leader's included, is a client that joins with its
 * rank count and address, waits for the welcome (the table of all hosts,
 * sent once every host has joined), then heartbeats until its ranks end and
 * says done or failed; a host that is done stays until the server says the
 * whole job finished (every host done), so no host leaves a job that is
 * still running. Ranks connect too, for a small key-value store (ring
 * addresses, NCCL's unique id, the benchmarks' results).
 *
 * Failure spreads: a host that reports a failed rank or a stop (SIGTERM
 * reached it alone), a failure another reports as a host's (failed_on:
 * under mpirun no host launcher supervises the ranks), drops its connection or falls silent (no heartbeat for
 * heartbeat_timeout_s) makes the server tell every client to abort, naming
 * the host. Failures that arrive within
 * half a second of each other are one incident: a lost host is named before
 * a host that merely saw its peer vanish. Hosts that have not joined by the
 * join deadline: the server aborts, naming them. When every host is done,
 * the server sends finished, waits (at most 10 s) for the hosts to hang up
 * and exits 0; after an abort, 1.
 */
#ifndef SAGERUN_RENDEZVOUS_H
#define SAGERUN_RENDEZVOUS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "rendezvous_msg.h"
#include "transport.h"

#define RDZV_DEFAULT_PORT 7778 /* beside MASTER_PORT (7777), which torch.distributed uses */
#define RDZV_DEFAULT_JOIN_TIMEOUT_S 900
#define RDZV_DEFAULT_HEARTBEAT_TIMEOUT_S 30
#define RDZV_HEARTBEAT_S 1.0

struct rdzv_server_config {
    int listen_fd;
    SSL_CTX *ctx;          /* NULL: plaintext */
    const char *job;       /* a joining host must name the same job */
    char *const *hosts;    /* the expected hosts, in rank order */
    size_t host_count;
    double join_timeout_s;
    double heartbeat_timeout_s;
    double hang_timeout_s; /* 0: no hang watch */
};

/* Serves until every host is done (returns 0) or the job aborts (1). */
int rdzv_serve(const struct rdzv_server_config *cfg);

struct rdzv_client {
    struct conn c;
    struct strbuf in;
};

/* Connects to the leader, retrying refused connections with backoff until
 * `deadline` (hosts start at different times). A failed TLS handshake is not
 * retried: a wrong key stays wrong. */
int rdzv_client_connect(struct rdzv_client *cl, const struct sockaddr_in *leader, SSL_CTX *ctx, double deadline,
                        struct sr_error *err);
void rdzv_client_close(struct rdzv_client *cl);

/* Sends `msg` (released). */
int rdzv_send(struct rdzv_client *cl, json_t *msg, double deadline, struct sr_error *err);

/* The next message: 1 (in *m; rdzv_msg_free it), 0 (none before deadline;
 * a deadline already past just checks), -1 (connection failed or bad data). */
int rdzv_next(struct rdzv_client *cl, struct rdzv_msg *m, double deadline, struct sr_error *err);

/* The key-value store, for ranks: a get waits until the key is set. An
 * abort from the server fails them with its reason. *value is malloc'ed. */
int rdzv_set(struct rdzv_client *cl, const char *key, const char *value, double deadline, struct sr_error *err);
int rdzv_get(struct rdzv_client *cl, const char *key, char **value, double deadline, struct sr_error *err);

#endif
