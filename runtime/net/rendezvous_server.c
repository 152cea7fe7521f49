/* The rendezvous server: one single-threaded poll loop, so nothing a client
 * does can block another. Handshakes are non-blocking and bounded in time;
 * input and output buffers are bounded; a client that breaks a rule loses
 * its connection, and only a host's loss concerns the job. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "rendezvous.h"

#define MAX_CLIENTS 4096
#define HANDSHAKE_TIMEOUT_S 10.0
#define MAX_PENDING_OUTPUT (1 << 20)
#define SETTLE_S 0.5  /* failures this close together are one incident */
#define FLUSH_S 1.0   /* time to deliver the abort before exiting */
#define FINISH_WAIT_S 10.0 /* after "finished", how long the hosts may take to hang up */
#define MAX_KEYS 65536

struct client {
    struct conn c;
    bool handshaking;
    double handshake_deadline;
    short events;
    struct strbuf in, out;
    int host;             /* host slot, or -1 for a rank or a host not yet joined */
    char *wait_key;       /* a get waiting for its key */
};

struct slot {
    int client; /* -1 until joined */
    int ranks;
    char addr[16];
    bool done;
    double last_heard;
    double progress_at; /* when a rank of the host last made progress (this server's clock) */
};

struct server {
    const struct rdzv_server_config *cfg;
    struct client *clients;
    size_t count, cap;
    struct slot *slots;
    size_t joined;
    bool welcomed;
    json_t *kv;
    double join_deadline, next_heartbeat;
    int fail_priority;    /* 0: no failure; higher names a likelier root cause */
    double abort_at;
    char fail_host[RDZV_MAX_NAME + 1];
    char fail_reason[RDZV_MAX_REASON + 1];
};

/* A stop outranks a loss, which outranks a report: the others' failures
 * after a host was stopped or lost are its consequence. A hang outranks
 * them all: the reports that follow it are its consequence. */
enum { FAIL_REPORTED = 1, FAIL_LOST = 2, FAIL_STOPPED = 3, FAIL_HANG = 4 };

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[RDZV_MAX_REASON + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sagerun: rendezvous: %s\n", line);
}

static void fail(struct server *s, int host, int priority, const char *reason)
{
    if (priority <= s->fail_priority)
        return;
    if (s->fail_priority == 0)
        s->abort_at = clock_now() + SETTLE_S;
    s->fail_priority = priority;
    snprintf(s->fail_host, sizeof s->fail_host, "%s", host >= 0 ? s->cfg->hosts[host] : "");
    snprintf(s->fail_reason, sizeof s->fail_reason, "%s", reason);
    say("%s", reason);
}

static void queue(struct client *cl, json_t *msg) { rdzv_frame(msg, &cl->out); }

static void drop(struct server *s, struct client *cl, const char *why)
{
    if (cl->host >= 0 && !s->slots[cl->host].done && s->fail_priority < FAIL_LOST) {
        char reason[RDZV_MAX_REASON];
        snprintf(reason, sizeof reason, "host %s lost its connection to the rendezvous (%s)",
                 s->cfg->hosts[cl->host], why);
        fail(s, cl->host, FAIL_LOST, reason);
    }
    if (cl->host >= 0)
        s->slots[cl->host].client = -1;
    conn_close(&cl->c);
    strbuf_free(&cl->in);
    strbuf_free(&cl->out);
    free(cl->wait_key);
    memset(cl, 0, sizeof *cl);
    cl->c.fd = -1;
    cl->host = -1;
}

static void welcome(struct server *s)
{
    json_t *hosts = json_array();
    for (size_t i = 0; i < s->cfg->host_count; i++)
        json_array_append_new(hosts, json_pack("{s:s, s:i, s:s}", "host", s->cfg->hosts[i], "ranks",
                                               s->slots[i].ranks, "addr", s->slots[i].addr));
    for (size_t i = 0; i < s->cfg->host_count; i++)
        queue(&s->clients[s->slots[i].client], json_pack("{s:s, s:O}", "op", "welcome", "hosts", hosts));
    json_decref(hosts);
    s->welcomed = true;
    double now = clock_now();
    for (size_t i = 0; i < s->cfg->host_count; i++)
        s->slots[i].last_heard = s->slots[i].progress_at = now;
    say("all %zu hosts joined", s->cfg->host_count);
}

static int on_join(struct server *s, struct client *cl, const struct rdzv_msg *m, char *why, size_t size)
{
    size_t i = (size_t)m->index;
    if (cl->host >= 0 || s->welcomed)
        snprintf(why, size, "join from %s after the job formed", m->host);
    else if (strcmp(m->job, s->cfg->job) != 0)
        snprintf(why, size, "host %s belongs to job \"%s\", not \"%s\"", m->host, m->job, s->cfg->job);
    else if (i >= s->cfg->host_count || strcmp(s->cfg->hosts[i], m->host) != 0)
        snprintf(why, size, "host \"%s\" at index %d is not in this job's host list", m->host, m->index);
    else if (s->slots[i].client >= 0)
        snprintf(why, size, "host %s has already joined", m->host);
    else {
        s->slots[i] = (struct slot){(int)(cl - s->clients), m->ranks, "", false, clock_now(), clock_now()};
        snprintf(s->slots[i].addr, sizeof s->slots[i].addr, "%s", m->addr);
        cl->host = (int)i;
        s->joined++;
        say("%s joined from %s (%d ranks)", m->host, cl->c.peer, m->ranks);
        if (s->joined == s->cfg->host_count)
            welcome(s);
        return 0;
    }
    return -1;
}

static int host_index(const struct server *s, const char *name)
{
    for (size_t i = 0; i < s->cfg->host_count; i++)
        if (strcmp(s->cfg->hosts[i], name) == 0)
            return (int)i;
    return -1;
}

static void answer_gets(struct server *s, const char *key)
{
    json_t *value = json_object_get(s->kv, key);
    if (!value)
        return;
    for (size_t i = 0; i < s->count; i++) {
        struct client *cl = &s->clients[i];
        if (cl->c.fd >= 0 && cl->wait_key && strcmp(cl->wait_key, key) == 0) {
            queue(cl, json_pack("{s:s, s:s, s:O}", "op", "value", "key", key, "value", value));
            free(cl->wait_key);
            cl->wait_key = NULL;
        }
    }
}

/* Returns -1 (reason in why) when the client broke the protocol. */
static int handle(struct server *s, struct client *cl, const struct rdzv_msg *m, char *why, size_t size)
{
    if (cl->host >= 0)
        s->slots[cl->host].last_heard = clock_now();
    switch (m->op) {
    case RDZV_JOIN: return on_join(s, cl, m, why, size);
    case RDZV_HEARTBEAT:
        if (cl->host >= 0 && m->idle >= 0)
            s->slots[cl->host].progress_at = clock_now() - m->idle;
        return 0;
    case RDZV_FAILED:
    case RDZV_DONE:
        if (cl->host < 0)
            break;
        if (m->op == RDZV_DONE && m->status == 0) {
            s->slots[cl->host].done = true;
            say("%s is done", s->cfg->hosts[cl->host]);
        } else {
            char reason[RDZV_MAX_REASON + RDZV_MAX_NAME + 64];
            if (m->op == RDZV_FAILED)
                snprintf(reason, sizeof reason, "host %s failed: %s", s->cfg->hosts[cl->host], m->reason);
            else
                snprintf(reason, sizeof reason, "host %s ended with status %d", s->cfg->hosts[cl->host], m->status);
            fail(s, cl->host, FAIL_REPORTED, reason);
        }
        return 0;
    case RDZV_STOPPED:
        if (cl->host < 0)
            break;
        s->slots[cl->host].done = true; /* it leaves now: its hanging up is no loss */
        char reason[RDZV_MAX_NAME + 64];
        snprintf(reason, sizeof reason, "host %s was stopped (%s)", s->cfg->hosts[cl->host], m->signal);
        fail(s, cl->host, FAIL_STOPPED, reason);
        return 0;
    case RDZV_FAILED_ON: {
        int host = host_index(s, m->host);
        if (host < 0) {
            snprintf(why, size, "failed_on names \"%s\", not a host of this job", m->host);
            return -1;
        }
        fail(s, host, FAIL_REPORTED, m->reason);
        return 0;
    }
    case RDZV_SET:
        if (json_object_size(s->kv) >= MAX_KEYS && !json_object_get(s->kv, m->key)) {
            snprintf(why, size, "key-value store full (%d keys)", MAX_KEYS);
            return -1;
        }
        json_object_set_new(s->kv, m->key, json_string(m->value));
        answer_gets(s, m->key);
        return 0;
    case RDZV_GET:
        if (cl->wait_key)
            break;
        cl->wait_key = strdup(m->key);
        answer_gets(s, m->key);
        return 0;
    default: break;
    }
    snprintf(why, size, "unexpected \"%s\" message", m->op == RDZV_WELCOME ? "welcome" : "out-of-turn");
    return -1;
}

static void write_client(struct server *s, struct client *cl)
{
    struct sr_error err = {{0}};
    size_t sent = 0;
    while (sent < cl->out.len) {
        short events;
        ssize_t n = conn_send_some(&cl->c, cl->out.data + sent, cl->out.len - sent, &events, &err);
        if (n < 0) {
            drop(s, cl, err.text);
            return;
        }
        if (n == 0)
            break;
        sent += (size_t)n;
    }
    memmove(cl->out.data, cl->out.data + sent, cl->out.len - sent + 1);
    cl->out.len -= sent;
    if (cl->out.len > MAX_PENDING_OUTPUT)
        drop(s, cl, "does not read what it is sent");
}

/* Reads what the client sent, handles every whole message, then, if the
 * connection ended, drops it (a host's last "done" still counts). */
static void read_client(struct server *s, struct client *cl)
{
    char chunk[16384];
    struct sr_error err = {{0}}, closed = {{0}};
    for (;;) {
        short events;
        ssize_t n = conn_recv_some(&cl->c, chunk, sizeof chunk, &events, &closed);
        if (n <= 0)
            break;
        strbuf_append(&cl->in, chunk, (size_t)n);
        if (cl->in.len > RDZV_MAX_MESSAGE + 4)
            break; /* rdzv_take below refuses the oversized frame */
    }
    struct rdzv_msg m;
    int got;
    while ((got = rdzv_take(&cl->in, &m, &err)) == 1) {
        char why[RDZV_MAX_REASON];
        int rc = handle(s, cl, &m, why, sizeof why);
        rdzv_msg_free(&m);
        if (rc != 0) {
            say("dropped %s: %s", cl->c.peer, why);
            queue(cl, json_pack("{s:s, s:s, s:o}", "op", "abort", "host", "", "reason", rdzv_text(why)));
            write_client(s, cl);
            drop(s, cl, why);
            return;
        }
    }
    if (got < 0) {
        say("dropped %s: %s", cl->c.peer, err.text);
        drop(s, cl, err.text);
    } else if (error_is_set(&closed)) {
        drop(s, cl, closed.text);
    }
}

static void accept_clients(struct server *s)
{
    for (;;) {
        int fd = accept4(s->cfg->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        size_t i = 0;
        while (i < s->count && s->clients[i].c.fd >= 0)
            i++;
        if (i == s->count) {
            if (s->count == MAX_CLIENTS) {
                close(fd);
                continue;
            }
            if (s->count == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 16;
                s->clients = realloc(s->clients, s->cap * sizeof *s->clients);
                if (!s->clients) {
                    fprintf(stderr, "sagerun: rendezvous: out of memory\n");
                    abort();
                }
            }
            s->count++;
        }
        struct client *cl = &s->clients[i];
        memset(cl, 0, sizeof *cl);
        cl->host = -1;
        struct sr_error err = {{0}};
        if (conn_adopt(fd, s->cfg->ctx, true, &cl->c, &err) != 0) {
            say("%s", err.text);
            cl->c.fd = -1;
            continue;
        }
        strbuf_init(&cl->in);
        strbuf_init(&cl->out);
        cl->handshaking = true;
        cl->events = POLLIN;
        cl->handshake_deadline = clock_now() + HANDSHAKE_TIMEOUT_S;
    }
}

static void step_handshake(struct server *s, struct client *cl)
{
    struct sr_error err = {{0}};
    int rc = conn_handshake_step(&cl->c, &cl->events, &err);
    if (rc == 1) {
        cl->handshaking = false;
    } else if (rc < 0 || clock_now() > cl->handshake_deadline) {
        say("refused a connection from %s: %s", cl->c.peer, rc < 0 ? err.text : "handshake timed out");
        drop(s, cl, "refused");
    }
}

/* No host whose ranks still run has seen progress for hang_timeout_s:
 * every host collects its stacks (hang), and the job is aborted. */
static void watch_for_hang(struct server *s, double now)
{
    double limit = s->cfg->hang_timeout_s, freshest = -1;
    for (size_t i = 0; limit > 0 && i < s->cfg->host_count; i++)
        if (!s->slots[i].done && (freshest < 0 || s->slots[i].progress_at > freshest))
            freshest = s->slots[i].progress_at;
    if (limit <= 0 || freshest < 0 || now - freshest <= limit)
        return;
    for (size_t i = 0; i < s->cfg->host_count; i++)
        if (s->slots[i].client >= 0)
            queue(&s->clients[s->slots[i].client], json_pack("{s:s, s:f}", "op", "hang", "idle", now - freshest));
    char reason[RDZV_MAX_REASON];
    snprintf(reason, sizeof reason, "hang: no rank of the job progressed for %.0f s (SAGERUN_HANG_TIMEOUT=%.0f)",
             now - freshest, limit);
    fail(s, -1, FAIL_HANG, reason);
}

static void timers(struct server *s)
{
    double now = clock_now();
    if (!s->welcomed && now >= s->join_deadline && s->fail_priority == 0) {
        char missing[RDZV_MAX_REASON / 2] = "";
        size_t used = 0;
        for (size_t i = 0; i < s->cfg->host_count && used < sizeof missing; i++)
            if (s->slots[i].client < 0)
                used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%s", used ? ", " : "",
                                         s->cfg->hosts[i]);
        char reason[RDZV_MAX_REASON];
        snprintf(reason, sizeof reason, "hosts that never joined within %.0f s: %s", s->cfg->join_timeout_s,
                 missing);
        fail(s, -1, FAIL_LOST, reason);
    }
    for (size_t i = 0; s->welcomed && i < s->cfg->host_count; i++) {
        const struct slot *sl = &s->slots[i];
        if (!sl->done && now - sl->last_heard > s->cfg->heartbeat_timeout_s) {
            char reason[RDZV_MAX_REASON];
            snprintf(reason, sizeof reason, "host %s lost: no heartbeat for %.0f s", s->cfg->hosts[i],
                     s->cfg->heartbeat_timeout_s);
            fail(s, (int)i, FAIL_LOST, reason);
        }
    }
    if (s->welcomed && !s->fail_priority)
        watch_for_hang(s, now);
    if (now >= s->next_heartbeat) {
        for (size_t i = 0; i < s->cfg->host_count; i++)
            if (s->slots[i].client >= 0)
                queue(&s->clients[s->slots[i].client], json_pack("{s:s}", "op", "heartbeat"));
        s->next_heartbeat = now + RDZV_HEARTBEAT_S;
    }
}

static bool all_done(const struct server *s)
{
    for (size_t i = 0; i < s->cfg->host_count; i++)
        if (!s->slots[i].done)
            return false;
    return true;
}

/* One round: wait for I/O (at most 100 ms, for the timers), then serve. */
static void serve_round(struct server *s, bool flushing)
{
    struct pollfd *fds = calloc(s->count + 1, sizeof *fds);
    if (!fds)
        abort();
    size_t n = 0;
    if (!flushing)
        fds[n++] = (struct pollfd){s->cfg->listen_fd, POLLIN, 0};
    for (size_t i = 0; i < s->count; i++) {
        struct client *cl = &s->clients[i];
        if (cl->c.fd >= 0)
            fds[n++] = (struct pollfd){cl->c.fd,
                                       cl->handshaking ? cl->events : (short)(POLLIN | (cl->out.len ? POLLOUT : 0)),
                                       0};
    }
    poll(fds, n, 100);
    free(fds);
    if (!flushing)
        accept_clients(s);
    for (size_t i = 0; i < s->count; i++) {
        struct client *cl = &s->clients[i];
        if (cl->c.fd >= 0 && cl->handshaking)
            step_handshake(s, cl);
        if (cl->c.fd >= 0 && !cl->handshaking && !flushing)
            read_client(s, cl);
        if (cl->c.fd >= 0 && !cl->handshaking && cl->out.len)
            write_client(s, cl);
    }
}

static void broadcast_abort(struct server *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->clients[i].c.fd >= 0 && !s->clients[i].handshaking)
            queue(&s->clients[i], json_pack("{s:s, s:o, s:o}", "op", "abort", "host", rdzv_text(s->fail_host),
                                            "reason", rdzv_text(s->fail_reason)));
    double until = clock_now() + FLUSH_S;
    for (;;) {
        bool pending = false;
        for (size_t i = 0; i < s->count; i++)
            pending = pending || (s->clients[i].c.fd >= 0 && !s->clients[i].handshaking && s->clients[i].out.len);
        if (!pending || clock_now() >= until)
            break;
        serve_round(s, true);
    }
}

static bool hosts_connected(const struct server *s)
{
    for (size_t i = 0; i < s->cfg->host_count; i++)
        if (s->slots[i].client >= 0)
            return true;
    return false;
}

/* Every host is done: tell each one the job ended, and stay until they
 * have all hung up, so the leader's launcher (which waits for this process)
 * is the last to leave the job. */
static void announce_finished(struct server *s)
{
    say("every host is done: the job finished");
    for (size_t i = 0; i < s->cfg->host_count; i++)
        if (s->slots[i].client >= 0)
            queue(&s->clients[s->slots[i].client], json_pack("{s:s}", "op", "finished"));
    double until = clock_now() + FINISH_WAIT_S;
    while (hosts_connected(s) && clock_now() < until)
        serve_round(s, false);
}

int rdzv_serve(const struct rdzv_server_config *cfg)
{
    struct server s = {.cfg = cfg, .kv = json_object()};
    s.slots = calloc(cfg->host_count, sizeof *s.slots);
    if (!s.slots)
        return 1;
    for (size_t i = 0; i < cfg->host_count; i++)
        s.slots[i].client = -1;
    s.join_deadline = clock_now() + cfg->join_timeout_s;
    s.next_heartbeat = clock_now() + RDZV_HEARTBEAT_S;
    int status;
    for (;;) {
        serve_round(&s, false);
        timers(&s);
        if (s.fail_priority && clock_now() >= s.abort_at) {
            say("aborting the job: %s", s.fail_reason);
            broadcast_abort(&s);
            status = 1;
            break;
        }
        if (!s.fail_priority && s.welcomed && all_done(&s)) {
            announce_finished(&s);
            status = 0;
            break;
        }
    }
    for (size_t i = 0; i < s.count; i++)
        if (s.clients[i].c.fd >= 0) {
            s.clients[i].host = -1; /* closing at the end is no failure */
            drop(&s, &s.clients[i], "server exits");
        }
    free(s.clients);
    free(s.slots);
    json_decref(s.kv);
    return status;
}
