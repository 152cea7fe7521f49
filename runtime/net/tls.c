#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

#define PSK_IDENTITY "sagerun-job-key"
#define KEY_FILE_MAX (1 << 20)

/* TLS_AES_128_GCM_SHA256: the PSK's hash must be the suite's (SHA-256). */
static const unsigned char PSK_SUITE[2] = {0x13, 0x01};

const char *tls_mode_name(enum tls_mode mode)
{
    return mode == TLS_PSK ? "psk" : mode == TLS_CERT ? "cert" : "off";
}

void tls_error_reasons(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    unsigned long e;
    while ((e = ERR_get_error()) != 0 && used + 1 < size) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "; " : "", one);
    }
}

/* The job key is SHA-256 of the material, so any length of at least
 * TLS_PSK_MIN_INPUT bytes works and both ends derive the same 32 bytes. */
static int derive_psk(const unsigned char *material, size_t len, const char *source, struct tls_settings *out,
                      struct sr_error *err)
{
    if (len < TLS_PSK_MIN_INPUT) {
        error_setf(err, "TLS key %s is %zu bytes; a job key needs at least %d", source, len, TLS_PSK_MIN_INPUT);
        return -1;
    }
    unsigned int n = 0;
    if (!EVP_Digest(material, len, out->psk, &n, EVP_sha256(), NULL) || n != TLS_PSK_BYTES) {
        error_setf(err, "TLS key %s: cannot hash it (SHA-256 unavailable in OpenSSL)", source);
        return -1;
    }
    out->mode = TLS_PSK;
    snprintf(out->source, sizeof out->source, "%s", source);
    return 0;
}

static int psk_from_file(const char *path, const char *origin, struct tls_settings *out, struct sr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_setf(err, "TLS key file %s (%s) cannot be read: %s", path, origin, strerror(errno));
        return -1;
    }
    unsigned char *buf = xmalloc(KEY_FILE_MAX);
    size_t len = fread(buf, 1, KEY_FILE_MAX, f);
    bool too_long = len == KEY_FILE_MAX, failed = ferror(f);
    fclose(f);
    char source[FS_PATH_BYTES + 128];
    snprintf(source, sizeof source, "file %s (%s)", path, origin);
    int rc = -1;
    if (failed)
        error_setf(err, "TLS key %s: read error", source);
    else if (too_long)
        error_setf(err, "TLS key %s is larger than %d bytes; is it the right file?", source, KEY_FILE_MAX);
    else
        rc = derive_psk(buf, len, source, out, err);
    if (rc == 0)
        snprintf(out->psk_file, sizeof out->psk_file, "%s", path); /* ranks read the same file */
    OPENSSL_cleanse(buf, len);
    free(buf);
    return rc;
}

static int set_path(char *dst, size_t size, const char *path, const char *origin, struct sr_error *err)
{
    if (access(path, R_OK) != 0) {
        error_setf(err, "TLS file %s (%s) cannot be read: %s", path, origin, strerror(errno));
        return -1;
    }
    snprintf(dst, size, "%s", path);
    return 0;
}

static int certs_from(const char *ca, const char *cert, const char *key, const char *origin,
                      struct tls_settings *out, struct sr_error *err)
{
    if (set_path(out->ca, sizeof out->ca, ca, origin, err) != 0 ||
        set_path(out->cert, sizeof out->cert, cert, origin, err) != 0 ||
        set_path(out->key, sizeof out->key, key, origin, err) != 0)
        return -1;
    out->mode = TLS_CERT;
    snprintf(out->source, sizeof out->source, "certificates %s, %s (CA %s) from %s", out->cert, out->key, out->ca,
             origin);
    return 0;
}

static bool file_exists(const char *dir, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int from_channel(const char *dir, struct tls_settings *out, struct sr_error *err)
{
    char psk[FS_PATH_BYTES], ca[FS_PATH_BYTES], cert[FS_PATH_BYTES], key[FS_PATH_BYTES];
    if (file_exists(dir, "psk", psk, sizeof psk))
        return psk_from_file(psk, "the job's tls channel", out, err);
    bool have_ca = file_exists(dir, "ca.pem", ca, sizeof ca), have_cert = file_exists(dir, "cert.pem", cert, sizeof cert),
         have_key = file_exists(dir, "key.pem", key, sizeof key);
    if (have_ca && have_cert && have_key)
        return certs_from(ca, cert, key, "the job's tls channel", out, err);
    if (have_ca || have_cert || have_key) {
        error_setf(err, "tls channel %s has only some of ca.pem, cert.pem, key.pem; certificate mode needs all three",
                   dir);
        return -1;
    }
    return 1; /* nothing there */
}

/* Returns 1 for true, 0 for false, -1 for anything else. */
static int parse_switch(const char *v)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
        return 1;
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return 0;
    return -1;
}

int encryption_decide(const struct training_job_config *tj, const char *tj_path, const char *env_value,
                      struct encryption_decision *out, struct sr_error *err)
{
    int env = -1;
    if (env_value) {
        env = parse_switch(env_value);
        if (env < 0) {
            error_setf(err, "environment variable %s: \"%s\" is not true or false", ENCRYPTION_ENV, env_value);
            return -1;
        }
    }
    enum job_flag flag = tj ? tj->inter_container_encryption : JOB_FLAG_ABSENT;
    if (flag != JOB_FLAG_ABSENT) {
        bool job = flag == JOB_FLAG_TRUE;
        /* Fail closed: either source asking for encryption turns it on. */
        out->enabled = job || env == 1;
        if (job && env == 0)
            snprintf(out->source, sizeof out->source,
                     "%s EnableInterContainerTrafficEncryption=true (overrides %s=%s)", tj_path, ENCRYPTION_ENV,
                     env_value);
        else if (!job && env == 1)
            snprintf(out->source, sizeof out->source, "%s=%s (%s says EnableInterContainerTrafficEncryption=false)",
                     ENCRYPTION_ENV, env_value, tj_path);
        else
            snprintf(out->source, sizeof out->source, "%s EnableInterContainerTrafficEncryption=%s", tj_path,
                     job ? "true" : "false");
    } else if (env >= 0) {
        out->enabled = env == 1;
        snprintf(out->source, sizeof out->source, "%s=%s", ENCRYPTION_ENV, env_value);
    } else {
        out->enabled = false;
        snprintf(out->source, sizeof out->source,
                 "default: no EnableInterContainerTrafficEncryption in trainingjobconfig.json and %s is not set",
                 ENCRYPTION_ENV);
    }
    return 0;
}

/* Key material named by the environment: 0 (found), 1 (none named), -1. */
static int from_environment(struct tls_settings *out, struct sr_error *err)
{
    const char *file = getenv("SAGERUN_TLS_PSK_FILE"), *inline_key = getenv("SAGERUN_TLS_PSK");
    const char *ca = getenv("SAGERUN_TLS_CA"), *cert = getenv("SAGERUN_TLS_CERT"), *key = getenv("SAGERUN_TLS_KEY");
    if (file && *file)
        return psk_from_file(file, "SAGERUN_TLS_PSK_FILE", out, err);
    if (inline_key && *inline_key)
        return derive_psk((const unsigned char *)inline_key, strlen(inline_key), "from SAGERUN_TLS_PSK", out, err);
    if ((ca && *ca) || (cert && *cert) || (key && *key)) {
        if (!(ca && *ca && cert && *cert && key && *key)) {
            error_setf(err, "certificate mode needs all of SAGERUN_TLS_CA, SAGERUN_TLS_CERT and SAGERUN_TLS_KEY");
            return -1;
        }
        return certs_from(ca, cert, key, "SAGERUN_TLS_CA/CERT/KEY", out, err);
    }
    return 1;
}

static int no_key_material(struct sr_error *err)
{
    error_setf(err, "inter-container traffic encryption is on but there is no key material: set SAGERUN_TLS_PSK_FILE "
                    "(or SAGERUN_TLS_PSK) to a job key of at least %d bytes, or SAGERUN_TLS_CA, SAGERUN_TLS_CERT and "
                    "SAGERUN_TLS_KEY to PEM files, or give the job a \"tls\" channel holding psk or ca.pem, cert.pem "
                    "and key.pem. sagerun does not start unencrypted when encryption is on",
               TLS_PSK_MIN_INPUT);
    return -1;
}

int tls_settings_load(const struct encryption_decision *d, const char *tls_channel_dir, struct tls_settings *out,
                      struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    out->mode = TLS_OFF;
    if (!d->enabled)
        return 0;
    int rc = from_environment(out, err);
    if (rc <= 0)
        return rc;
    if (tls_channel_dir) {
        rc = from_channel(tls_channel_dir, out, err);
        if (rc <= 0)
            return rc;
    }
    return no_key_material(err);
}

void tls_settings_export(const struct tls_settings *s, json_t *vars)
{
    json_object_set_new(vars, RANK_ENCRYPTION_ENV, json_string(s->mode == TLS_OFF ? "off" : "on"));
    if (s->mode == TLS_CERT) {
        json_object_set_new(vars, "SAGERUN_TLS_CA", json_string(s->ca));
        json_object_set_new(vars, "SAGERUN_TLS_CERT", json_string(s->cert));
        json_object_set_new(vars, "SAGERUN_TLS_KEY", json_string(s->key));
    } else if (s->mode == TLS_PSK && s->psk_file[0]) {
        json_object_set_new(vars, "SAGERUN_TLS_PSK_FILE", json_string(s->psk_file));
    } /* an inline SAGERUN_TLS_PSK reaches ranks in the launcher's own environment */
}

int tls_settings_from_rank_env(const char *who, struct tls_settings *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    out->mode = TLS_OFF;
    const char *value = getenv(RANK_ENCRYPTION_ENV);
    if (value && strcmp(value, "off") == 0)
        return 0;
    if (!value || strcmp(value, "on") != 0) {
        error_setf(err, "%s: %s is %s%s%s; it must be \"on\" (TLS) or \"off\" (plaintext). A rank never guesses: "
                        "run it under `sagerun train`",
                   who, RANK_ENCRYPTION_ENV, value ? "\"" : "", value ? value : "not set", value ? "\"" : "");
        return -1;
    }
    int rc = from_environment(out, err);
    return rc == 1 ? no_key_material(err) : rc;
}

static SSL_SESSION *psk_session(SSL *ssl)
{
    const struct tls_settings *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const SSL_CIPHER *suite = SSL_CIPHER_find(ssl, PSK_SUITE);
    SSL_SESSION *session = SSL_SESSION_new();
    if (!suite || !session || !SSL_SESSION_set1_master_key(session, s->psk, TLS_PSK_BYTES) ||
        !SSL_SESSION_set_cipher(session, suite) || !SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION)) {
        SSL_SESSION_free(session);
        return NULL;
    }
    return session;
}

/* Client: offer the job key (unless a HelloRetryRequest chose another hash). */
static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *id_len, SSL_SESSION **session)
{
    *session = NULL;
    if (md && md != EVP_sha256())
        return 1;
    *session = psk_session(ssl);
    *id = (const unsigned char *)PSK_IDENTITY;
    *id_len = strlen(PSK_IDENTITY);
    return *session != NULL;
}

/* Server: the job key for our identity, nothing for any other (the
 * handshake then fails: there is no certificate to fall back on). */
static int find_psk(SSL *ssl, const unsigned char *id, size_t id_len, SSL_SESSION **session)
{
    *session = NULL;
    if (id_len != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, id_len) != 0)
        return 1;
    *session = psk_session(ssl);
    return *session != NULL;
}

static int load_certificates(SSL_CTX *ctx, const struct tls_settings *s, struct sr_error *err)
{
    const char *step = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cert) != 1)
        step = "load the certificate";
    else if (SSL_CTX_use_PrivateKey_file(ctx, s->key, SSL_FILETYPE_PEM) != 1)
        step = "load the private key";
    else if (SSL_CTX_check_private_key(ctx) != 1)
        step = "match the private key to the certificate";
    else if (SSL_CTX_load_verify_locations(ctx, s->ca, NULL) != 1)
        step = "load the CA";
    if (step) {
        char why[512];
        tls_error_reasons(why, sizeof why);
        error_setf(err, "TLS: cannot %s (%s): %s", step, s->source, why);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

SSL_CTX *tls_context_create(const struct tls_settings *s, struct sr_error *err)
{
    if (s->mode == TLS_OFF)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")) {
        char why[512];
        tls_error_reasons(why, sizeof why);
        error_setf(err, "TLS: cannot create a TLS 1.3 context: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* No session tickets: every connection authenticates afresh, and no
     * post-handshake message surprises a reader waiting for data. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    struct tls_settings *copy = xmalloc(sizeof *copy);
    *copy = *s;
    SSL_CTX_set_app_data(ctx, copy);
    if (s->mode == TLS_PSK) {
        SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
        SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
    } else if (load_certificates(ctx, s, err) != 0) {
        tls_context_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_context_free(SSL_CTX *ctx)
{
    if (!ctx)
        return;
    struct tls_settings *copy = SSL_CTX_get_app_data(ctx);
    if (copy) {
        OPENSSL_cleanse(copy, sizeof *copy);
        free(copy);
    }
    SSL_CTX_free(ctx);
}

/* The kernel's TLS is a TCP upper-layer protocol; it can only be attached
 * to a connected socket, so try it on a loopback connection. */
bool tls_kernel_offload_available(char *why, size_t size)
{
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), client = -1, accepted = -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    bool ok = false;
    if (server < 0 || bind(server, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(server, 1) != 0 ||
        getsockname(server, (struct sockaddr *)&addr, &len) != 0 ||
        (client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(client, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        (accepted = accept4(server, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        snprintf(why, size, "cannot make a loopback connection to test it: %s", strerror(errno));
    } else if (setsockopt(client, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") != 0) {
        snprintf(why, size, "the kernel refused TCP_ULP \"tls\": %s%s", strerror(errno),
                 errno == ENOENT ? " (no tls module)" : "");
    } else {
        ok = true;
        snprintf(why, size, "available");
    }
    if (accepted >= 0)
        close(accepted);
    if (client >= 0)
        close(client);
    if (server >= 0)
        close(server);
    return ok;
}
