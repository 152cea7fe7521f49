#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "sealed.h"
#include "tls.h"

int transport_address(const char *ipv4, int port, struct sockaddr_in *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (port < 0 || port > 65535 || inet_pton(AF_INET, ipv4, &out->sin_addr) != 1) {
        error_setf(err, "\"%s\" port %d is not an IPv4 address and port", ipv4, port);
        return -1;
    }
    return 0;
}

static void name_peer(struct conn *c, const struct sockaddr_in *a)
{
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(a->sin_port));
}

static int poll_until(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - clock_now();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int listener_open(const struct sockaddr_in *addr, int backlog, int *fd_out, int *port_out, struct sr_error *err)
{
    char where[64];
    struct conn named;
    name_peer(&named, addr);
    snprintf(where, sizeof where, "%s", named.peer);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &len) != 0) {
        error_setf(err, "cannot listen on %s: %s", where, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *fd_out = fd;
    if (port_out)
        *port_out = ntohs(bound.sin_port);
    return 0;
}

static void tune_socket(int fd)
{
    int on = 1;
    /* Small control messages must not wait for Nagle; bulk data comes in
     * large writes anyway. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int conn_adopt(int fd, SSL_CTX *ctx, bool server, struct conn *c, struct sr_error *err)
{
    c->fd = fd;
    c->ssl = NULL;
    c->sealed = NULL;
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
        name_peer(c, &peer);
    else
        snprintf(c->peer, sizeof c->peer, "?");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    tune_socket(fd);
    if (!ctx)
        return 0;
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        char why[256];
        tls_error_reasons(why, sizeof why);
        error_setf(err, "TLS: cannot set up a connection with %s: %s", c->peer, why);
        conn_close(c);
        return -1;
    }
    if (server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    return 0;
}

/* What an SSL call's failure means: 0 retry after *events, -1 fatal. */
static int ssl_wait(struct conn *c, int rc, short *events, const char *what, struct sr_error *err)
{
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        *events = POLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *events = POLLOUT;
        return 0;
    }
    char why[512];
    int saved = errno;
    tls_error_reasons(why, sizeof why);
    if (e == SSL_ERROR_ZERO_RETURN)
        error_setf(err, "%s %s: the peer closed the connection", what, c->peer);
    else if (e == SSL_ERROR_SYSCALL)
        error_setf(err, "%s %s: %s", what, c->peer,
                   saved && rc < 0 ? strerror(saved) : "the peer closed the connection");
    else
        error_setf(err, "%s %s: TLS error: %s", what, c->peer, why[0] ? why : "unknown");
    return -1;
}

int conn_handshake_step(struct conn *c, short *events, struct sr_error *err)
{
    if (!c->ssl)
        return 1;
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1)
        return 1;
    return ssl_wait(c, rc, events, "TLS handshake with", err);
}

static int handshake(struct conn *c, double deadline, struct sr_error *err)
{
    short events = 0;
    int rc;
    while ((rc = conn_handshake_step(c, &events, err)) == 0) {
        int ready = poll_until(c->fd, events, deadline);
        if (ready <= 0) {
            error_setf(err, "TLS handshake with %s: %s", c->peer, ready == 0 ? "timed out" : strerror(errno));
            return -1;
        }
    }
    return rc == 1 ? 0 : -1;
}

int conn_connect(const struct sockaddr_in *to, SSL_CTX *ctx, double deadline, struct conn *c, bool *refused,
                 struct sr_error *err)
{
    *refused = false;
    c->fd = -1;
    c->ssl = NULL;
    c->sealed = NULL;
    name_peer(c, to);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setf(err, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0) {
        int e = errno, ready;
        socklen_t len = sizeof e;
        if (e == EINPROGRESS) {
            ready = poll_until(fd, POLLOUT, deadline);
            e = ready > 0 ? (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 ? e : errno)
                          : (ready == 0 ? ETIMEDOUT : errno);
        }
        if (e != 0) {
            *refused = e == ECONNREFUSED || e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH;
            error_setf(err, "cannot connect to %s: %s", c->peer, strerror(e));
            close(fd);
            return -1;
        }
    }
    char peer[64];
    snprintf(peer, sizeof peer, "%s", c->peer);
    if (conn_adopt(fd, ctx, false, c, err) != 0)
        return -1;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (handshake(c, deadline, err) != 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

int conn_connect_retry(const struct sockaddr_in *to, SSL_CTX *ctx, double deadline, double first_backoff,
                       double max_backoff, struct conn *c, bool *timed_out, struct sr_error *err)
{
    double backoff = first_backoff;
    *timed_out = false;
    for (;;) {
        bool refused;
        struct sr_error attempt = {{0}};
        if (conn_connect(to, ctx, deadline, c, &refused, &attempt) == 0)
            return 0;
        if (!refused || clock_now() + backoff >= deadline) {
            *timed_out = refused;
            error_setf(err, "%s", attempt.text);
            return -1;
        }
        clock_sleep(backoff);
        backoff = backoff * 2 > max_backoff ? max_backoff : backoff * 2;
    }
}

int conn_accept(int listen_fd, SSL_CTX *ctx, double deadline, struct conn *c, struct sr_error *err)
{
    c->fd = -1;
    c->ssl = NULL;
    c->sealed = NULL;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (conn_adopt(fd, ctx, true, c, err) != 0)
                return -2;
            if (handshake(c, deadline, err) != 0) {
                conn_close(c);
                return -2;
            }
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            error_setf(err, "accept: %s", strerror(errno));
            return -1;
        }
        int ready = poll_until(listen_fd, POLLIN, deadline);
        if (ready <= 0) {
            error_setf(err, "accept: %s", ready == 0 ? "no peer connected in time" : strerror(errno));
            return -1;
        }
    }
}

ssize_t conn_send_some(struct conn *c, const void *buf, size_t len, short *events, struct sr_error *err)
{
    *events = POLLOUT;
    if (len == 0)
        return 0;
    if (c->sealed)
        return sealed_send(c->sealed, c->fd, buf, len, events, c->peer, err);
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0)
            return n;
        return ssl_wait(c, n, events, "sending to", err) == 0 ? 0 : -1;
    }
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    error_setf(err, "sending to %s: %s", c->peer, strerror(errno));
    return -1;
}

ssize_t conn_recv_some(struct conn *c, void *buf, size_t len, short *events, struct sr_error *err)
{
    *events = POLLIN;
    if (len == 0)
        return 0;
    if (c->sealed)
        return sealed_recv(c->sealed, c->fd, buf, len, events, c->peer, err);
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0)
            return n;
        return ssl_wait(c, n, events, "receiving from", err) == 0 ? 0 : -1;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    error_setf(err, "receiving from %s: %s", c->peer, n == 0 ? "the peer closed the connection" : strerror(errno));
    return -1;
}

static int move_all(struct conn *c, void *buf, size_t len, double deadline, bool sending, struct sr_error *err)
{
    size_t done = 0;
    while (done < len) {
        short events = 0;
        ssize_t n = sending ? conn_send_some(c, (const char *)buf + done, len - done, &events, err)
                            : conn_recv_some(c, (char *)buf + done, len - done, &events, err);
        if (n < 0)
            return -1;
        done += (size_t)n;
        if (n == 0) {
            int ready = poll_until(c->fd, events, deadline);
            if (ready <= 0) {
                error_setf(err, "%s %s: %s", sending ? "sending to" : "receiving from", c->peer,
                           ready == 0 ? "timed out" : strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

int conn_send_all(struct conn *c, const void *buf, size_t len, double deadline, struct sr_error *err)
{
    return move_all(c, (void *)buf, len, deadline, true, err);
}

int conn_recv_all(struct conn *c, void *buf, size_t len, double deadline, struct sr_error *err)
{
    return move_all(c, buf, len, deadline, false, err);
}

static bool kernel_tls_on(const struct conn *c)
{
    return BIO_get_ktls_send(SSL_get_wbio(c->ssl)) || BIO_get_ktls_recv(SSL_get_rbio(c->ssl));
}

int conn_seal(struct conn *c, bool tls_records, double deadline, struct sr_error *err)
{
    if (!c->ssl || c->sealed)
        return 0;
    /* 'T': this end keeps TLS's records, 'S': it can switch. Kernel TLS
     * frames whatever the socket sends, so an end with it must stay. */
    char mine = tls_records || kernel_tls_on(c) ? 'T' : 'S', theirs = 0;
    if (conn_send_all(c, &mine, 1, deadline, err) != 0 || conn_recv_all(c, &theirs, 1, deadline, err) != 0)
        return -1;
    if (theirs != 'T' && theirs != 'S') {
        error_setf(err, "%s answered the choice of records with 0x%02x, not 'T' or 'S'", c->peer,
                   (unsigned char)theirs);
        return -1;
    }
    if (mine == 'T' || theirs == 'T')
        return 0;
    if (SSL_pending(c->ssl) > 0) { /* cannot happen without read-ahead; the bytes would be lost */
        error_setf(err, "%s sent TLS records after choosing sealed ones", c->peer);
        return -1;
    }
    return sealed_start(c->ssl, &c->sealed, err);
}

void conn_describe(const struct conn *c, char *buf, size_t size)
{
    if (!c->ssl) {
        snprintf(buf, size, "plaintext");
        return;
    }
    const SSL_CTX *ctx = SSL_get_SSL_CTX(c->ssl);
    const struct tls_settings *s = SSL_CTX_get_app_data(ctx);
    int n = snprintf(buf, size, "%s %s (%s), ", SSL_get_version(c->ssl),
                     SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)), s ? tls_mode_name(s->mode) : "?");
    if (n < 0 || (size_t)n >= size)
        return;
    if (c->sealed)
        snprintf(buf + n, size - (size_t)n, "sealed records");
    else
        snprintf(buf + n, size - (size_t)n, "TLS records, kernel TLS send %s, receive %s",
                 BIO_get_ktls_send(SSL_get_wbio(c->ssl)) ? "on" : "off",
                 BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) ? "on" : "off");
}

void conn_close(struct conn *c)
{
    if (c->sealed) { /* a TLS alert now would read as a broken record: the socket's end says it */
        sealed_free(c->sealed);
        c->sealed = NULL;
    } else if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort close_notify; never waits */
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int transport_endpoint(const char *text, const char *what, struct sockaddr_in *out, struct sr_error *err)
{
    char ip[64];
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || (size_t)(colon - text) >= sizeof ip) {
        error_setf(err, "%s \"%s\" is not ip:port", what, text ? text : "");
        return -1;
    }
    memcpy(ip, text, (size_t)(colon - text));
    ip[colon - text] = '\0';
    return transport_address(ip, atoi(colon + 1), out, err);
}
