/* sealed.h — bulk data over a TCP socket after a TLS 1.3 handshake, in
 * AES-GCM records sealed with keys exported from that handshake, where the
 * kernel does not do TLS's records (transport.h's conn_seal decides).
 *
 * Why: OpenSSL 3.0's record layer copies every byte once more on each side
 * (into its write buffer before encrypting, out of its read buffer after
 * decrypting) and makes a system call per 16 KiB record on send and two on
 * receive. Here a record is up to SEALED_RECORD_MAX bytes, is encrypted
 * from the caller's buffer into one send buffer, and is received straight
 * into the caller's buffer and decrypted there: the cipher's two passes and
 * the kernel's copies, nothing else.
 *
 * The protocol (both ends are sagerun; nothing else speaks it):
 *   record  = length (4 bytes, big-endian, 1..SEALED_RECORD_MAX)
 *             || ciphertext (length bytes) || GCM tag (16 bytes)
 *   cipher  = AES-128-GCM or AES-256-GCM, as the handshake negotiated
 *   key, iv = SSL_export_keying_material (RFC 8446 §7.5), label
 *             "EXPORTER-sagerun-sealed-records", context = direction
 *             ('c' connector to acceptor, 's' back) || epoch (8 bytes BE)
 *   nonce   = iv XOR record number within the epoch (TLS 1.3's rule)
 *   AAD     = the length field
 * A new epoch (fresh key and iv) starts after SEALED_REKEY_BYTES, far inside
 * AES-GCM's limit (RFC 8446 §5.5), which OpenSSL 3.0 does not enforce for
 * its own records. A record that fails its tag, a replayed, reordered or
 * dropped one (the nonce differs), and a length out of range end the
 * connection with an error. There is no close_notify: callers know how
 * many bytes they expect, so an early end is an error to them.
 *
 * Calling contract (the *_some calls of transport.h): a send returns 0
 * until its record has left in full, and must be retried with the same
 * bytes; a receive returns 0 until a whole record is verified, and must be
 * retried with the same buffer (checked). Unverified bytes may sit in that
 * buffer meanwhile; only verified bytes are counted.
 */
#ifndef SAGERUN_SEALED_H
#define SAGERUN_SEALED_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define SEALED_RECORD_MAX (256u * 1024u)
#define SEALED_OVERHEAD 20u /* length field and tag */
#define SEALED_REKEY_BYTES (1ull << 32)

struct sealed;

/* Keys for both directions from `ssl`'s finished handshake. */
int sealed_start(SSL *ssl, struct sealed **out, struct sr_error *err);
void sealed_free(struct sealed *s);

/* Socket I/O with the *_some semantics of transport.h. `peer` names the
 * other end in errors. */
ssize_t sealed_send(struct sealed *s, int fd, const void *buf, size_t len, short *events, const char *peer,
                    struct sr_error *err);
ssize_t sealed_recv(struct sealed *s, int fd, void *buf, size_t len, short *events, const char *peer,
                    struct sr_error *err);

/* In memory, for the cipher-rate benchmark (bench/tls_limit.c) and tests:
 * seals `len` (1..SEALED_RECORD_MAX) bytes of `in` as the next record sent,
 * into `out` (len + SEALED_OVERHEAD bytes); opens the next record received
 * in place: `rec` holds a whole record, its plaintext is left at rec + 4. */
int sealed_seal_record(struct sealed *s, const void *in, size_t len, unsigned char *out, struct sr_error *err);
int sealed_open_record(struct sealed *s, unsigned char *rec, size_t rec_len, struct sr_error *err);

/* Tests only: start new epochs every `bytes` instead of SEALED_REKEY_BYTES. */
void sealed_set_rekey_bytes(struct sealed *s, uint64_t bytes);

#endif
