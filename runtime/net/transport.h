/* transport.h — TCP connections between hosts, plaintext or TLS 1.3.
 *
 * One API for the rendezvous, the host all-reduce and the NCCL net plugin
 * (nccl_net/tls_net.c): connect, accept, send and receive, the same with and without TLS
 * (ctx NULL means plaintext). Sockets are non-blocking; the *_some calls
 * move what they can and say which poll events they wait for, so one thread
 * can drive many connections (a ring step sends and receives at once; the
 * rendezvous server serves every host). The *_all calls block until the
 * whole buffer moved or a deadline (clock_now() seconds, clock.h) passed.
 * Several connections to one peer are simply several conns; callers
 * stripe data over them.
 *
 * TLS handshakes are mutual (see tls.h): a peer with the wrong key, or one
 * speaking plaintext to a TLS end, fails the handshake and is refused.
 */
#ifndef SAGERUN_TRANSPORT_H
#define SAGERUN_TRANSPORT_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct sealed;

struct conn {
    int fd;   /* -1 when closed */
    SSL *ssl; /* NULL: plaintext */
    struct sealed *sealed; /* non-NULL after conn_seal chose sealed records (sealed.h) */
    char peer[64]; /* "a.b.c.d:port", for messages */
};

/* Parses "a.b.c.d" and a port. */
int transport_address(const char *ipv4, int port, struct sockaddr_in *out, struct sr_error *err);
/* The same from "a.b.c.d:port"; `what` names the text in errors. */
int transport_endpoint(const char *text, const char *what, struct sockaddr_in *out, struct sr_error *err);

/* Listens on ipv4:port (port 0: any free one); *port_out gets the port. */
int listener_open(const struct sockaddr_in *addr, int backlog, int *fd_out, int *port_out, struct sr_error *err);

/* One attempt: connect and (with ctx) complete the TLS handshake before
 * `deadline`. Sets *refused when nobody listened yet (worth retrying). */
int conn_connect(const struct sockaddr_in *to, SSL_CTX *ctx, double deadline, struct conn *c, bool *refused,
                 struct sr_error *err);

/* conn_connect, retried while nobody listens yet (a peer that starts
 * later), pausing first_backoff, doubling up to max_backoff, until
 * `deadline`. On failure err holds the last attempt's reason and
 * *timed_out whether the deadline ended the attempts. */
int conn_connect_retry(const struct sockaddr_in *to, SSL_CTX *ctx, double deadline, double first_backoff,
                       double max_backoff, struct conn *c, bool *timed_out, struct sr_error *err);

/* Accepts one connection and completes its handshake before `deadline`.
 * Returns 0, -1 when the listener failed or nobody came in time, or -2 when
 * a peer came but was refused (its handshake failed): accept again. */
int conn_accept(int listen_fd, SSL_CTX *ctx, double deadline, struct conn *c, struct sr_error *err);

/* Non-blocking server side: wraps an accepted socket; then call
 * conn_handshake_step until it returns 1 (done) or -1 (refused). */
int conn_adopt(int fd, SSL_CTX *ctx, bool server, struct conn *c, struct sr_error *err);
int conn_handshake_step(struct conn *c, short *events, struct sr_error *err);

/* For connections that carry bulk data (the ring, the NCCL plugin): both
 * ends call it at the same point after connecting, before more data. With
 * TLS, each end says whether kernel TLS is on at its end (or it wants TLS's
 * own records: `tls_records`, for measuring and as a way out); if neither
 * does, the connection switches to sealed records (sealed.h), which cost
 * the cipher and the kernel's copies and nothing more; else it keeps TLS's
 * records. Plaintext: nothing happens. */
int conn_seal(struct conn *c, bool tls_records, double deadline, struct sr_error *err);

/* Bytes moved (> 0), 0 if it would block (*events: what to poll for), or
 * -1 on error or, for recv, the peer closing (err says which). */
ssize_t conn_send_some(struct conn *c, const void *buf, size_t len, short *events, struct sr_error *err);
ssize_t conn_recv_some(struct conn *c, void *buf, size_t len, short *events, struct sr_error *err);

int conn_send_all(struct conn *c, const void *buf, size_t len, double deadline, struct sr_error *err);
int conn_recv_all(struct conn *c, void *buf, size_t len, double deadline, struct sr_error *err);

/* "plaintext", or "TLS 1.3 <suite> (psk|cert), " and then "sealed records"
 * or "TLS records, kernel TLS send on|off, receive on|off". */
void conn_describe(const struct conn *c, char *buf, size_t size);

void conn_close(struct conn *c);

#endif
