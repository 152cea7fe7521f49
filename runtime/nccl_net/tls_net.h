/* tls_net.h — NCCL's point-to-point transfers over TCP with TLS 1.3: the
 * engine of sagerun's NCCL net plugin (nccl_net_plugin.c maps NCCL's ABI
 * onto it; nothing here knows NCCL's structs).
 *
 * A connection is one control socket and S data sockets, each its own TLS
 * session (mutually authenticated with the job's key material, see tls.h)
 * that then carries sealed records (transport.h's conn_seal, sealed.h)
 * unless kernel TLS is on or SAGERUN_NET_RECORDS=tls.
 * A send is announced on the control socket (its size, 8 bytes), then cut
 * into at most S chunks of at least chunk_bytes that go round-robin over the
 * data sockets; both ends cut the same way, so chunk k of every message
 * travels on the same socket at both ends. T worker threads each own S/T
 * data sockets (and thread 0 the control socket), so encryption runs on T
 * cores at once; the caller's thread only posts requests and tests flags.
 * All socket I/O happens on the plugin's threads, with SIGPIPE blocked.
 *
 * Non-blocking like NCCL wants: tls_net_connect and tls_net_accept return
 * 0 with *out NULL until a background thread has made every socket; then
 * the comm. A peer that fails the TLS handshake is refused (logged), and
 * connection setup that does not finish within timeout_s is an error, so a
 * wrong key never hangs a job. Requests complete in the order posted.
 *
 * Settings (environment, read by tls_net_create):
 *   SAGERUN_ENCRYPTION      read by tls.h's rank reader: "on": TLS with the
 *                           key material the launcher named (none: error);
 *                           "off": plaintext, for measuring what TLS costs;
 *                           unset or other: error.
 *   SAGERUN_NET_IFNAME      interface to listen on; else NCCL_SOCKET_IFNAME
 *                           (one name); else the first up non-loopback one.
 *   SAGERUN_NET_THREADS     threads per comm, 1..16, at most the sockets; default
 *                           from this rank's share of the host's cores (the
 *                           cores online over LOCAL_WORLD_SIZE, at most those
 *                           it is bound to) / 4, 1..8: 6 on a p5, 3 on a p4d
 *   SAGERUN_NET_SOCKETS     data sockets per connection, 1..16 (default 4, or
 *                           the threads if more)
 *   SAGERUN_NET_RECORDS     "sealed" (default) or "tls": keep OpenSSL's own
 *                           records (slower; for measuring, and a way out)
 *   SAGERUN_NET_CHUNK_BYTES smallest chunk, 4096..67108864 (default 65536)
 *   SAGERUN_NET_TIMEOUT     seconds to make a connection, 1..3600 (default 300)
 */
#ifndef SAGERUN_TLS_NET_H
#define SAGERUN_TLS_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define TLS_NET_HANDLE_BYTES 128

struct tls_net;
struct tls_net_listen;
struct tls_net_comm;
struct tls_net_request;

/* How the engine reports what NCCL's log should show (warnings also go to
 * stderr from the plugin, since NCCL hides its log by default). */
typedef void (*tls_net_log_fn)(bool warning, const char *message);

struct tls_net_device {
    const char *name;     /* interface, e.g. "eth0" */
    const char *pci_path; /* sysfs path of its PCI device, NULL for virtual ones */
    int speed_mbps;
};

int tls_net_create(tls_net_log_fn log, struct tls_net **out, struct sr_error *err);
void tls_net_destroy(struct tls_net *net);
void tls_net_device(const struct tls_net *net, struct tls_net_device *out);

/* Listens; writes what the peer needs to connect into `handle`
 * (TLS_NET_HANDLE_BYTES). */
int tls_net_listen(struct tls_net *net, void *handle, struct tls_net_listen **out, struct sr_error *err);
/* Call again with the same `handle` until *out is set or -1. */
int tls_net_connect(struct tls_net *net, void *handle, struct tls_net_comm **out, struct sr_error *err);
int tls_net_accept(struct tls_net_listen *l, struct tls_net_comm **out, struct sr_error *err);
void tls_net_close_listen(struct tls_net_listen *l);

/* Posts a send (send comm) or a receive of up to `size` bytes (receive
 * comm). *out NULL: NCCL_NET_MAX_REQUESTS are in flight, post again later. */
int tls_net_post(struct tls_net_comm *c, void *data, size_t size, struct tls_net_request **out,
                 struct sr_error *err);
/* *done 1 once the request completed; *size then says how many bytes moved. */
int tls_net_test(struct tls_net_request *r, int *done, size_t *size, struct sr_error *err);
void tls_net_close(struct tls_net_comm *c);

bool tls_net_is_sender(const struct tls_net_comm *c);

#endif
