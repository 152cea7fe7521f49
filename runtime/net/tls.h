/* tls.h — key material and OpenSSL 3 contexts for traffic between hosts.
 *
 * With inter-container traffic encryption on, every connection sagerun makes
 * between hosts (rendezvous, the host all-reduce, later the NCCL net plugin)
 * is TLS 1.3 with mutual authentication by one of:
 *   psk   a pre-shared job key, used as a TLS 1.3 external PSK (with an
 *         ephemeral ECDHE exchange, so recorded traffic stays secret even if
 *         the key leaks later): SAGERUN_TLS_PSK_FILE names a file, or
 *         SAGERUN_TLS_PSK holds the key itself; at least 16 bytes;
 *   cert  certificates: SAGERUN_TLS_CA, SAGERUN_TLS_CERT, SAGERUN_TLS_KEY name
 *         PEM files; each side must present a certificate the CA signed.
 * Without those variables the job's `tls` channel is searched (a file `psk`,
 * or `ca.pem`, `cert.pem`, `key.pem`), so key material can arrive the way
 * data does. Never from hyperparameters: DescribeTrainingJob shows those.
 * Encryption on and no key material: tls_settings_load fails (fail closed).
 *
 * One context serves both ends of a connection (accept and connect).
 */
#ifndef SAGERUN_TLS_H
#define SAGERUN_TLS_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "error.h"

#define TLS_PSK_BYTES 32   /* the job key is SHA-256 of the key material */
#define TLS_PSK_MIN_INPUT 16

enum tls_mode { TLS_OFF, TLS_PSK, TLS_CERT };

struct tls_settings {
    enum tls_mode mode;
    unsigned char psk[TLS_PSK_BYTES];
    char ca[1024], cert[1024], key[1024]; /* cert mode: PEM file paths */
    char source[1200];                    /* where the key material came from, for messages */
};

/* Decides the mode from `encryption` and finds the key material in the
 * environment or in `tls_channel_dir` (NULL: the job has no tls channel). */
int tls_settings_load(bool encryption, const char *tls_channel_dir, struct tls_settings *out, struct sr_error *err);

/* Adds to `vars` (an object of strings) the variables that give a rank the
 * same settings: SAGERUN_ENCRYPTION and where the key material is. */
void tls_settings_export(const struct tls_settings *s, json_t *vars);

/* NULL for TLS_OFF (plaintext); else a context, or NULL with err set. */
SSL_CTX *tls_context_create(const struct tls_settings *s, struct sr_error *err);
void tls_context_free(SSL_CTX *ctx);

/* Whether the kernel offers TLS offload (the "tls" TCP upper-layer
 * protocol); `why` gets the reason when it does not. */
bool tls_kernel_offload_available(char *why, size_t size);

const char *tls_mode_name(enum tls_mode mode);

/* Appends OpenSSL's queued error reasons to `buf` ("" if none). */
void tls_error_reasons(char *buf, size_t size);

#endif
