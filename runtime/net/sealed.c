#include "sealed.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "strbuf.h"
#include "tls.h"

#define LABEL "EXPORTER-sagerun-sealed-records"
#define IV_BYTES 12
#define TAG_BYTES 16
#define LENGTH_BYTES 4

/* One direction's keys: the epoch and the record number make the nonce. */
struct direction {
    EVP_CIPHER_CTX *ctx;
    unsigned char iv[IV_BYTES];
    char who; /* 'c': sent by the connector; 's': by the acceptor */
    int encrypt;
    uint64_t epoch, record, bytes;
};

struct sealed {
    SSL *ssl; /* the conn's; exports each epoch's keys */
    EVP_CIPHER *cipher;
    size_t key_bytes;
    uint64_t rekey_bytes;
    struct direction tx, rx;

    /* sending: the record being written out */
    unsigned char *out;
    size_t out_len, out_sent, out_plain;

    /* receiving: the record being read, and a whole one that did not fit the caller's buffer */
    unsigned char length[LENGTH_BYTES], tag[TAG_BYTES];
    size_t length_have, tag_have, body_len, body_have;
    unsigned char *target; /* NULL between records; else where the body goes */
    const void *caller_buf;
    unsigned char *bounce;
    size_t bounce_off, bounce_left;
};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int crypto_error(struct sr_error *err, const char *what, const char *peer)
{
    char why[512];
    tls_error_reasons(why, sizeof why);
    error_setf(err, "sealed records with %s: %s: %s", peer, what, why[0] ? why : "unknown OpenSSL error");
    return -1;
}

static int rekey(struct sealed *s, struct direction *d, struct sr_error *err)
{
    unsigned char context[9], material[32 + IV_BYTES];
    context[0] = (unsigned char)d->who;
    for (int i = 0; i < 8; i++)
        context[1 + i] = (unsigned char)(d->epoch >> (56 - 8 * i));
    int ok = SSL_export_keying_material(s->ssl, material, s->key_bytes + IV_BYTES, LABEL, strlen(LABEL), context,
                                        sizeof context, 1) == 1 &&
             EVP_CipherInit_ex2(d->ctx, s->cipher, material, NULL, d->encrypt, NULL) == 1;
    memcpy(d->iv, material + s->key_bytes, IV_BYTES);
    OPENSSL_cleanse(material, sizeof material);
    d->record = d->bytes = 0;
    return ok ? 0 : crypto_error(err, "cannot derive keys", "the peer");
}

/* Sets this record's nonce; the key stays. */
static int begin_record(struct direction *d)
{
    unsigned char nonce[IV_BYTES];
    memcpy(nonce, d->iv, IV_BYTES);
    for (int i = 0; i < 8; i++)
        nonce[IV_BYTES - 1 - i] ^= (unsigned char)(d->record >> (8 * i));
    return EVP_CipherInit_ex2(d->ctx, NULL, NULL, nonce, d->encrypt, NULL) == 1 ? 0 : -1;
}

static int end_record(struct sealed *s, struct direction *d, size_t len, struct sr_error *err)
{
    d->record++;
    d->bytes += len;
    if (d->bytes < s->rekey_bytes)
        return 0;
    d->epoch++;
    return rekey(s, d, err);
}

int sealed_start(SSL *ssl, struct sealed **out, struct sr_error *err)
{
    *out = NULL;
    const char *suite = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)), *cipher;
    size_t key_bytes;
    if (strcmp(suite, "TLS_AES_128_GCM_SHA256") == 0)
        cipher = "AES-128-GCM", key_bytes = 16;
    else if (strcmp(suite, "TLS_AES_256_GCM_SHA384") == 0)
        cipher = "AES-256-GCM", key_bytes = 32;
    else {
        error_setf(err, "sealed records: the handshake chose %s; only the AES-GCM suites are allowed", suite);
        return -1;
    }
    struct sealed *s = xcalloc(1, sizeof *s);
    s->ssl = ssl;
    s->key_bytes = key_bytes;
    s->rekey_bytes = SEALED_REKEY_BYTES;
    s->cipher = EVP_CIPHER_fetch(NULL, cipher, NULL);
    s->tx.ctx = EVP_CIPHER_CTX_new();
    s->rx.ctx = EVP_CIPHER_CTX_new();
    s->tx.who = SSL_is_server(ssl) ? 's' : 'c';
    s->rx.who = SSL_is_server(ssl) ? 'c' : 's';
    s->tx.encrypt = 1;
    if (!s->cipher || !s->tx.ctx || !s->rx.ctx) {
        crypto_error(err, "cannot set up the cipher", "the peer");
        sealed_free(s);
        return -1;
    }
    if (rekey(s, &s->tx, err) != 0 || rekey(s, &s->rx, err) != 0) {
        sealed_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void sealed_free(struct sealed *s)
{
    if (!s)
        return;
    EVP_CIPHER_CTX_free(s->tx.ctx);
    EVP_CIPHER_CTX_free(s->rx.ctx);
    EVP_CIPHER_free(s->cipher);
    free(s->out);
    free(s->bounce);
    free(s);
}

void sealed_set_rekey_bytes(struct sealed *s, uint64_t bytes) { s->rekey_bytes = bytes; }

/* ---- sending ------------------------------------------------------------ */

int sealed_seal_record(struct sealed *s, const void *in, size_t len, unsigned char *out, struct sr_error *err)
{
    struct direction *d = &s->tx;
    int n;
    put_u32(out, (uint32_t)len);
    if (len == 0 || len > SEALED_RECORD_MAX || begin_record(d) != 0 ||
        EVP_EncryptUpdate(d->ctx, NULL, &n, out, LENGTH_BYTES) != 1 ||
        EVP_EncryptUpdate(d->ctx, out + LENGTH_BYTES, &n, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(d->ctx, out + LENGTH_BYTES + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, out + LENGTH_BYTES + len) != 1)
        return crypto_error(err, "cannot seal a record", "the peer");
    return end_record(s, d, len, err);
}

ssize_t sealed_send(struct sealed *s, int fd, const void *buf, size_t len, short *events, const char *peer,
                    struct sr_error *err)
{
    *events = POLLOUT;
    if (len == 0)
        return 0;
    if (s->out_len == 0) {
        size_t n = len < SEALED_RECORD_MAX ? len : SEALED_RECORD_MAX;
        if (!s->out)
            s->out = xmalloc(SEALED_RECORD_MAX + SEALED_OVERHEAD);
        if (sealed_seal_record(s, buf, n, s->out, err) != 0)
            return -1;
        s->out_len = n + SEALED_OVERHEAD, s->out_sent = 0, s->out_plain = n;
    } else if (len < s->out_plain) {
        error_setf(err, "sending to %s: retried with %zu bytes, fewer than the %zu already sealed", peer, len,
                   s->out_plain);
        return -1;
    }
    while (s->out_sent < s->out_len) {
        size_t left = s->out_len - s->out_sent;
        ssize_t n = send(fd, s->out + s->out_sent, left, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (n < 0) {
            error_setf(err, "sending to %s: %s", peer, strerror(errno));
            return -1;
        }
        s->out_sent += (size_t)n;
        if ((size_t)n < left)
            return 0; /* the socket's buffer is full: wait for POLLOUT rather than a certain EAGAIN */
    }
    size_t sent = s->out_plain;
    s->out_len = s->out_sent = s->out_plain = 0;
    return (ssize_t)sent;
}

/* ---- receiving ---------------------------------------------------------- */

static int begin_open(struct sealed *s, unsigned char *target, const char *peer, struct sr_error *err)
{
    s->body_len = get_u32(s->length);
    if (s->body_len == 0 || s->body_len > SEALED_RECORD_MAX) {
        error_setf(err, "receiving from %s: a record of %zu bytes (1..%u allowed): the peer does not speak "
                        "sagerun's sealed records, or the stream was altered",
                   peer, s->body_len, SEALED_RECORD_MAX);
        return -1;
    }
    int n;
    if (begin_record(&s->rx) != 0 || EVP_DecryptUpdate(s->rx.ctx, NULL, &n, s->length, LENGTH_BYTES) != 1)
        return crypto_error(err, "cannot open a record", peer);
    s->target = target;
    s->body_have = s->tag_have = s->length_have = 0;
    return 0;
}

static int absorb(struct sealed *s, size_t n, const char *peer, struct sr_error *err)
{
    unsigned char *at = s->target + s->body_have;
    int out;
    if (n && EVP_DecryptUpdate(s->rx.ctx, at, &out, at, (int)n) != 1)
        return crypto_error(err, "cannot decrypt", peer);
    s->body_have += n;
    return 0;
}

static int finish_open(struct sealed *s, const char *peer, struct sr_error *err)
{
    int n;
    if (EVP_CIPHER_CTX_ctrl(s->rx.ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, s->tag) != 1 ||
        EVP_DecryptFinal_ex(s->rx.ctx, s->target + s->body_len, &n) != 1) {
        error_setf(err, "receiving from %s: record %llu of epoch %llu failed authentication (altered, replayed, "
                        "reordered or dropped on the way, or sealed with another key)",
                   peer, (unsigned long long)s->rx.record, (unsigned long long)s->rx.epoch);
        return -1;
    }
    s->target = NULL;
    return end_record(s, &s->rx, s->body_len, err);
}

int sealed_open_record(struct sealed *s, unsigned char *rec, size_t rec_len, struct sr_error *err)
{
    if (rec_len < SEALED_OVERHEAD + 1) {
        error_setf(err, "sealed records: %zu bytes are not a record", rec_len);
        return -1;
    }
    memcpy(s->length, rec, LENGTH_BYTES);
    if (begin_open(s, rec + LENGTH_BYTES, "memory", err) != 0)
        return -1;
    if (s->body_len + SEALED_OVERHEAD != rec_len) {
        s->target = NULL;
        error_setf(err, "sealed records: a record of %zu bytes says it holds %zu", rec_len, s->body_len);
        return -1;
    }
    memcpy(s->tag, rec + LENGTH_BYTES + s->body_len, TAG_BYTES);
    if (absorb(s, s->body_len, "memory", err) != 0)
        return -1;
    return finish_open(s, "memory", err);
}

static size_t deliver(struct sealed *s, void *buf, size_t len)
{
    size_t n = len < s->bounce_left ? len : s->bounce_left;
    memcpy(buf, s->bounce + s->bounce_off, n);
    s->bounce_off += n, s->bounce_left -= n;
    return n;
}

/* Reads once: what is left of the body (into its target), the tag, and the
 * next record's length, so a stream of records costs one call each.
 * Returns bytes read, 0 when none are there, -1 on error. */
static ssize_t read_record(struct sealed *s, int fd, size_t *asked, const char *peer, struct sr_error *err)
{
    struct iovec iov[3];
    int k = 0;
    if (s->body_have < s->body_len)
        iov[k++] = (struct iovec){s->target + s->body_have, s->body_len - s->body_have};
    iov[k++] = (struct iovec){s->tag + s->tag_have, TAG_BYTES - s->tag_have};
    iov[k++] = (struct iovec){s->length, LENGTH_BYTES};
    *asked = 0;
    for (int i = 0; i < k; i++)
        *asked += iov[i].iov_len;
    ssize_t n = readv(fd, iov, k);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    error_setf(err, "receiving from %s: %s", peer, n == 0 ? "the peer closed the connection" : strerror(errno));
    return -1;
}

ssize_t sealed_recv(struct sealed *s, int fd, void *buf, size_t len, short *events, const char *peer,
                    struct sr_error *err)
{
    *events = POLLIN;
    if (len == 0)
        return 0;
    if (s->bounce_left)
        return (ssize_t)deliver(s, buf, len);
    for (;;) {
        if (!s->target) {
            if (s->length_have < LENGTH_BYTES) {
                ssize_t n = read(fd, s->length + s->length_have, LENGTH_BYTES - s->length_have);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                    return 0;
                if (n <= 0) {
                    error_setf(err, "receiving from %s: %s", peer,
                               n == 0 ? "the peer closed the connection" : strerror(errno));
                    return -1;
                }
                s->length_have += (size_t)n;
                continue;
            }
            /* The body goes straight into the caller's buffer when it fits. */
            bool fits = get_u32(s->length) <= len;
            if (!fits && !s->bounce)
                s->bounce = xmalloc(SEALED_RECORD_MAX);
            if (begin_open(s, fits ? buf : s->bounce, peer, err) != 0)
                return -1;
            s->caller_buf = buf;
        } else if (s->target != s->bounce && (buf != s->caller_buf || len < s->body_len)) {
            error_setf(err, "receiving from %s: retried with another buffer in the middle of a record", peer);
            return -1;
        }
        size_t asked, body_left = s->body_len - s->body_have, tag_left = TAG_BYTES - s->tag_have;
        ssize_t got = read_record(s, fd, &asked, peer, err);
        if (got <= 0)
            return got;
        size_t n = (size_t)got, body = n < body_left ? n : body_left;
        if (absorb(s, body, peer, err) != 0)
            return -1;
        n -= body;
        size_t tag = n < tag_left ? n : tag_left;
        s->tag_have += tag;
        s->length_have += n - tag;
        if (s->tag_have == TAG_BYTES) {
            size_t size = s->body_len;
            bool bounced = s->target == s->bounce;
            if (finish_open(s, peer, err) != 0)
                return -1;
            if (!bounced)
                return (ssize_t)size;
            s->bounce_off = 0, s->bounce_left = size;
            return (ssize_t)deliver(s, buf, len);
        }
        if ((size_t)got < asked)
            return 0; /* drained: wait for POLLIN rather than a certain EAGAIN */
    }
}
