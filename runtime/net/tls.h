/* tls.h — whether a job's traffic between hosts is encrypted, the key
 * material, and OpenSSL 3 contexts: the one owner of encryption in sagerun.
 *
 * The decision is made once, by the launcher (encryption_decide), from
 * trainingjobconfig.json's EnableInterContainerTrafficEncryption (kept in
 * the contract) and SAGERUN_INTER_CONTAINER_ENCRYPTION; either one asking
 * for encryption turns it on (fail closed).
 *
 * With encryption on, every connection sagerun makes between hosts (the
 * rendezvous, the host all-reduce, the NCCL net plugin) is TLS 1.3 with
 * mutual authentication by one of:
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
 * What ranks receive crosses a process boundary with one writer and one
 * reader, both here: tls_settings_export (the launcher) sets
 * SAGERUN_ENCRYPTION to "on" or "off" and names the key material;
 * tls_settings_from_rank_env (every rank: the host backend, the NCCL
 * plugin) reads it back and refuses anything but those two values.
 *
 * One context serves both ends of a connection (accept and connect).
 */
#ifndef SAGERUN_TLS_H
#define SAGERUN_TLS_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "contract.h"
#include "error.h"
#include "fs.h"

#define TLS_PSK_BYTES 32   /* the job key is SHA-256 of the key material */
#define TLS_PSK_MIN_INPUT 16

/* CreateTrainingJob `Environment` variable that turns encryption on when
 * trainingjobconfig.json does not say (true/false, 1/0). */
#define ENCRYPTION_ENV "SAGERUN_INTER_CONTAINER_ENCRYPTION"
/* What a rank is told: "on" or "off", nothing else. */
#define RANK_ENCRYPTION_ENV "SAGERUN_ENCRYPTION"

/* What encryption on covers between hosts, and what it cannot: the plan
 * (`sagerun env`), the log at start and the README say both. PyTorch's
 * PyPI builds have no TLS transport for gloo, and MPI's TCP traffic is
 * mpirun's own, so sagerun cannot switch encryption on for them. */
#define TLS_COVERED "the rendezvous, the host backend's all-reduce ring, and NCCL between hosts (the sagerun-tls plugin)"
#define TLS_NOT_COVERED                                                                                              \
    "gloo, MPI's own traffic (mpirun's daemons and MPI messages over TCP), torch's TCP store (MASTER_PORT) and "  \
    "any socket of the program's own"

struct encryption_decision {
    bool enabled;
    char source[512]; /* what decided it, for `sagerun env` and messages */
};

/* `tj`: the job's trainingjobconfig.json (at tj_path, named in the source);
 * `env_value`: ENCRYPTION_ENV's value, or NULL when unset. A value other
 * than true/false/1/0 is an error naming the variable. */
int encryption_decide(const struct training_job_config *tj, const char *tj_path, const char *env_value,
                      struct encryption_decision *out, struct sr_error *err);

enum tls_mode { TLS_OFF, TLS_PSK, TLS_CERT };

struct tls_settings {
    enum tls_mode mode;
    unsigned char psk[TLS_PSK_BYTES];
    char psk_file[FS_PATH_BYTES];                     /* psk mode: the file it came from, or "" (inline) */
    char ca[FS_PATH_BYTES], cert[FS_PATH_BYTES], key[FS_PATH_BYTES]; /* cert mode: PEM file paths */
    char source[3 * FS_PATH_BYTES + 128];             /* where the key material came from, for messages */
};

/* The launcher's: TLS_OFF when `d` says off; else the key material from
 * the environment or from `tls_channel_dir` (NULL: the job has no tls
 * channel), or an error. */
int tls_settings_load(const struct encryption_decision *d, const char *tls_channel_dir, struct tls_settings *out,
                      struct sr_error *err);

/* The writer: adds to `vars` (an object of strings) what gives a rank the
 * same settings: RANK_ENCRYPTION_ENV and where the key material is. */
void tls_settings_export(const struct tls_settings *s, json_t *vars);

/* The reader, in a rank: RANK_ENCRYPTION_ENV "off" gives TLS_OFF, "on" the
 * key material the launcher named (none: error); unset or any other value
 * is an error naming the variable and the value. `who` starts messages. */
int tls_settings_from_rank_env(const char *who, struct tls_settings *out, struct sr_error *err);

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
