#include "tls_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "netaddr.h"
#include "parse_int.h"
#include "strbuf.h"
#include "tls.h"
#include "transport.h"

#define NET_MAX_SOCKETS 16
#define NET_SLOTS 32 /* requests in flight per comm (NCCL posts at most NCCL_NET_MAX_REQUESTS = 32) */
#define NET_HANDLE_MAGIC 0x5352544eu  /* "SRTN" */
#define NET_GREETING_MAGIC 0x53524748u /* "SRGH" */
#define NET_BURST_BYTES (1u << 20)     /* moved on one socket before a thread visits its next */

struct tls_net {
    tls_net_log_fn log;
    SSL_CTX *tls; /* NULL: plaintext */
    char ifname[IF_NAMESIZE + 1];
    char pci_path[PATH_MAX];
    bool has_pci;
    int speed_mbps;
    struct in_addr addr;
    int sockets, threads;
    size_t chunk_bytes;
    double timeout_s;
    bool tls_records; /* SAGERUN_NET_RECORDS=tls: keep OpenSSL's records (transport.h's conn_seal) */
    char threads_why[64]; /* how the default thread count was chosen; "" when the variable set it */
};

/* What listen() hands NCCL to pass to the peer. `setup` is the connecting
 * side's own progress: NCCL calls connect with the same handle until it
 * returns a comm, so the handle is where that state lives between calls. */
struct net_handle {
    uint32_t magic;
    uint32_t unused;
    struct sockaddr_in addr;
    uint64_t listen_id;
    struct net_setup *setup; /* NULL in the listener's copy */
};
_Static_assert(sizeof(struct net_handle) <= TLS_NET_HANDLE_BYTES, "handle too large for NCCL");

/* First bytes on every socket of a connection, connector to acceptor. */
struct net_greeting {
    uint32_t magic;
    uint32_t index; /* 0: control socket; 1..sockets: data */
    uint64_t listen_id;
    uint64_t comm_id; /* the same on every socket of one connection */
    uint32_t sockets;
    uint32_t chunk_bytes;
};

/* Single-producer single-consumer ring of pointers. */
struct net_queue {
    void *items[NET_SLOTS];
    atomic_uint head, tail;
};

struct net_task {
    unsigned char *data;
    size_t size, moved;
    struct tls_net_request *request;
};

struct tls_net_request {
    struct tls_net_comm *comm;
    bool used; /* caller's thread only */
    unsigned char *data;
    size_t size;          /* sender: the size; receiver: the capacity, then what arrived */
    atomic_int remaining; /* the announcement plus each chunk not yet moved */
    uint64_t announced;   /* the size on the control socket */
    size_t announced_moved;
    struct net_task tasks[NET_MAX_SOCKETS];
};

struct net_stream {
    struct conn conn;
    struct net_queue queue; /* tasks, from thread 0 to the owner */
};

struct net_worker {
    struct tls_net_comm *comm;
    int index;
    int wake_fd;
    pthread_t thread;
    bool started;
};

enum { COMM_OK, COMM_FAILING, COMM_FAILED };

struct tls_net_comm {
    struct tls_net *net;
    bool sending;
    struct conn control;
    struct net_queue announcements; /* requests, from the caller to thread 0 */
    struct net_stream streams[NET_MAX_SOCKETS];
    int nstreams;
    size_t chunk_bytes;
    unsigned next_stream; /* thread 0 only */
    struct net_worker workers[NET_MAX_SOCKETS];
    int nworkers;
    struct tls_net_request requests[NET_SLOTS];
    uint64_t posted; /* caller's thread only */
    atomic_int state;
    char failure[SR_ERROR_MAX];
    atomic_bool stop;
};

/* A connection being made (connect or accept) on a thread of its own. */
struct net_setup {
    struct tls_net *net;
    struct tls_net_comm *comm;
    struct sockaddr_in to; /* connect */
    uint64_t listen_id;
    int listen_fd;         /* accept */
    atomic_bool finished, cancel;
    bool failed;
    struct sr_error err;
    pthread_t thread;
};

struct tls_net_listen {
    struct tls_net *net;
    int fd;
    uint64_t id;
    struct net_setup *setup;
};

static void logf_net(const struct tls_net *net, bool warning, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_net(const struct tls_net *net, bool warning, const char *fmt, ...)
{
    char msg[SR_ERROR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (net->log)
        net->log(warning, msg);
}

/* ---- settings ---------------------------------------------------------- */

static int tls_from_env(struct tls_net *net, struct sr_error *err)
{
    struct tls_settings settings;
    int rc = tls_settings_from_rank_env("sagerun net plugin", &settings, err);
    if (rc == 0 && settings.mode == TLS_OFF)
        logf_net(net, true, RANK_ENCRYPTION_ENV "=off: connections are PLAINTEXT (for measurement only)");
    else if (rc == 0 && !(net->tls = tls_context_create(&settings, err)))
        rc = -1;
    OPENSSL_cleanse(&settings, sizeof settings);
    return rc;
}

/* The first up, non-loopback interface with an IPv4 address. */
static int default_interface(char *name, size_t size, struct sr_error *err)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) {
        error_setf(err, "sagerun net plugin: cannot list network interfaces: %s", strerror(errno));
        return -1;
    }
    int rc = -1;
    for (struct ifaddrs *a = list; a && rc != 0; a = a->ifa_next)
        if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET && (a->ifa_flags & IFF_UP) &&
            !(a->ifa_flags & IFF_LOOPBACK)) {
            snprintf(name, size, "%s", a->ifa_name);
            rc = 0;
        }
    freeifaddrs(list);
    if (rc != 0)
        error_setf(err, "sagerun net plugin: no network interface is up with an IPv4 address; set SAGERUN_NET_IFNAME");
    return rc;
}

static int interface_from_env(struct tls_net *net, struct sr_error *err)
{
    const char *name = getenv("SAGERUN_NET_IFNAME"), *origin = "SAGERUN_NET_IFNAME";
    if (!name || !*name) {
        name = getenv("NCCL_SOCKET_IFNAME"), origin = "NCCL_SOCKET_IFNAME";
        if (name && *name == '=') /* NCCL's "exactly this name" */
            name++;
    }
    if (!name || !*name) {
        if (default_interface(net->ifname, sizeof net->ifname, err) != 0)
            return -1;
    } else if (strlen(name) > IF_NAMESIZE || strpbrk(name, ",^")) {
        error_setf(err, "sagerun net plugin: %s=\"%s\" is not one interface name; set SAGERUN_NET_IFNAME to one",
                   origin, name);
        return -1;
    } else {
        snprintf(net->ifname, sizeof net->ifname, "%s", name);
    }
    if (interface_address(net->ifname, &net->addr, err) != 0)
        return -1;

    char path[PATH_MAX];
    snprintf(path, sizeof path, "/sys/class/net/%s/device", net->ifname);
    net->has_pci = realpath(path, net->pci_path) != NULL;
    snprintf(path, sizeof path, "/sys/class/net/%s/speed", net->ifname);
    FILE *f = fopen(path, "r");
    net->speed_mbps = 0;
    if (f) {
        if (fscanf(f, "%d", &net->speed_mbps) != 1)
            net->speed_mbps = 0;
        fclose(f);
    }
    if (net->speed_mbps <= 0)
        net->speed_mbps = 10000; /* loopback and some virtual NICs do not say; NCCL's socket net assumes the same */
    return 0;
}

/* Threads per connection when SAGERUN_NET_THREADS does not say: this rank's
 * share of the host's cores (the cores online over LOCAL_WORLD_SIZE, at
 * most those it is bound to) over NET_BUSY_CONNECTIONS, since a rank drives
 * a send and a receive connection per channel at once over at least 2
 * channels; 1..NET_DEFAULT_MAX_THREADS: 6 on a p5 (192 vCPUs, 8 ranks), 3 on
 * a p4d (96, 8), 1 on a small host. */
#define NET_DEFAULT_MAX_THREADS 8
#define NET_BUSY_CONNECTIONS 4

static int default_threads(int *share_out, struct sr_error *err)
{
    int local = 1; /* outside a sagerun or torchrun job: one rank */
    if (parse_int_env("LOCAL_WORLD_SIZE", 1, 1 << 20, &local, err) < 0)
        return -1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int bound = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    int share = online > local ? (int)(online / local) : 1;
    *share_out = share < bound ? share : bound;
    int threads = *share_out / NET_BUSY_CONNECTIONS;
    return threads < 1 ? 1 : threads > NET_DEFAULT_MAX_THREADS ? NET_DEFAULT_MAX_THREADS : threads;
}

static int sizes_from_env(struct tls_net *net, struct sr_error *err)
{
    int share, threads = default_threads(&share, err), chunk = 65536, timeout = 300;
    if (threads < 0)
        return -1;
    const char *set = getenv("SAGERUN_NET_THREADS");
    if (!set || !*set)
        snprintf(net->threads_why, sizeof net->threads_why, "%d cores for this rank / %d", share,
                 NET_BUSY_CONNECTIONS);
    if (parse_int_env("SAGERUN_NET_THREADS", 1, NET_MAX_SOCKETS, &threads, err) < 0)
        return -1;
    int sockets = threads > 4 ? threads : 4;
    if (parse_int_env("SAGERUN_NET_SOCKETS", 1, NET_MAX_SOCKETS, &sockets, err) < 0 ||
        parse_int_env("SAGERUN_NET_CHUNK_BYTES", 4096, 64 << 20, &chunk, err) < 0 ||
        parse_int_env("SAGERUN_NET_TIMEOUT", 1, 3600, &timeout, err) < 0)
        return -1;
    net->sockets = sockets;
    net->threads = threads;
    net->chunk_bytes = (size_t)chunk;
    net->timeout_s = timeout;
    const char *records = getenv("SAGERUN_NET_RECORDS");
    if (records && *records && strcmp(records, "sealed") != 0 && strcmp(records, "tls") != 0) {
        error_setf(err, "sagerun net plugin: SAGERUN_NET_RECORDS=\"%s\": must be sealed or tls", records);
        return -1;
    }
    net->tls_records = records && strcmp(records, "tls") == 0;
    return 0;
}

int tls_net_create(tls_net_log_fn log, struct tls_net **out, struct sr_error *err)
{
    /* The plugin's threads may still be in a handshake when the process
     * exits (NCCL failed and the job ends); OpenSSL's own exit handler would
     * free its tables under them. Without it the process just ends. */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL);
    struct tls_net *net = xcalloc(1, sizeof *net);
    net->log = log;
    if (sizes_from_env(net, err) != 0 || interface_from_env(net, err) != 0 || tls_from_env(net, err) != 0) {
        tls_net_destroy(net);
        return -1;
    }
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &net->addr, addr, sizeof addr);
    logf_net(net, false, "sagerun net plugin on %s (%s), %s, %d data sockets and %d threads per connection (%s)",
             net->ifname, addr, net->tls ? (net->tls_records ? "TLS 1.3, TLS records" : "TLS 1.3, sealed records")
                                         : "plaintext",
             net->sockets, net->threads, net->threads_why[0] ? net->threads_why : "SAGERUN_NET_THREADS");
    *out = net;
    return 0;
}

void tls_net_destroy(struct tls_net *net)
{
    if (!net)
        return;
    tls_context_free(net->tls);
    free(net);
}

void tls_net_device(const struct tls_net *net, struct tls_net_device *out)
{
    out->name = net->ifname;
    out->pci_path = net->has_pci ? net->pci_path : NULL;
    out->speed_mbps = net->speed_mbps;
}

bool tls_net_is_sender(const struct tls_net_comm *c) { return c->sending; }

/* ---- queues, failure, wake-ups ----------------------------------------- */

static void queue_push(struct net_queue *q, void *item)
{
    unsigned tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    q->items[tail % NET_SLOTS] = item;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

static void *queue_peek(struct net_queue *q)
{
    unsigned head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (head == atomic_load_explicit(&q->tail, memory_order_acquire))
        return NULL;
    return q->items[head % NET_SLOTS];
}

static void queue_pop(struct net_queue *q)
{
    atomic_fetch_add_explicit(&q->head, 1, memory_order_release);
}

static void wake(struct net_worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n; /* only fails when the counter is already huge, i.e. the worker is awake anyway */
}

/* The first failure wins; the caller's next test() reports it. */
static void comm_fail(struct tls_net_comm *c, const char *why)
{
    int expected = COMM_OK;
    if (!atomic_compare_exchange_strong(&c->state, &expected, COMM_FAILING))
        return;
    snprintf(c->failure, sizeof c->failure, "%s", why);
    atomic_store_explicit(&c->state, COMM_FAILED, memory_order_release);
    logf_net(c->net, true, "%s", why);
}

static bool comm_failed(struct tls_net_comm *c, struct sr_error *err)
{
    if (atomic_load_explicit(&c->state, memory_order_acquire) != COMM_FAILED)
        return false;
    error_setf(err, "%s", c->failure);
    return true;
}

static void block_sigpipe(void)
{
    /* A peer that vanishes makes writes fail with EPIPE; the signal it would
     * also raise must not kill the training process. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* ---- the data path (plugin threads) ------------------------------------ */

static void add_poll(struct pollfd *pf, int *npf, int fd, short events)
{
    pf[*npf] = (struct pollfd){.fd = fd, .events = events};
    (*npf)++;
}

/* Cuts a request into chunks, hands each to its socket's thread, and lets
 * the request's announcement count as done. */
static void dispatch(struct tls_net_comm *c, struct tls_net_request *r)
{
    size_t per = (r->size + (size_t)c->nstreams - 1) / (size_t)c->nstreams;
    if (per < c->chunk_bytes)
        per = c->chunk_bytes;
    int n = 0;
    for (size_t off = 0; off < r->size; off += per, n++) {
        size_t len = r->size - off < per ? r->size - off : per;
        r->tasks[n] = (struct net_task){.data = r->data + off, .size = len, .request = r};
    }
    atomic_fetch_add_explicit(&r->remaining, n, memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        int s = (int)(c->next_stream++ % (unsigned)c->nstreams);
        queue_push(&c->streams[s].queue, &r->tasks[i]);
        wake(&c->workers[s % c->nworkers]);
    }
    atomic_fetch_sub_explicit(&r->remaining, 1, memory_order_release);
}

/* Thread 0: announces sizes (sender) or learns them (receiver), in order. */
static int progress_control(struct tls_net_comm *c, struct pollfd *pf, int *npf, bool *moved, struct sr_error *err)
{
    struct tls_net_request *r;
    while ((r = queue_peek(&c->announcements))) {
        while (r->announced_moved < sizeof r->announced) {
            short events;
            unsigned char *at = (unsigned char *)&r->announced + r->announced_moved;
            size_t left = sizeof r->announced - r->announced_moved;
            ssize_t n = c->sending ? conn_send_some(&c->control, at, left, &events, err)
                                   : conn_recv_some(&c->control, at, left, &events, err);
            if (n < 0)
                return -1;
            if (n == 0) {
                add_poll(pf, npf, c->control.fd, events);
                return 0;
            }
            r->announced_moved += (size_t)n;
            *moved = true;
        }
        if (!c->sending) {
            if (r->announced > r->size) {
                error_setf(err, "sagerun net plugin: %s sent a message of %llu bytes to a receive of %zu bytes; "
                                "the ranks disagree on a collective's size or on NCCL settings",
                           c->control.peer, (unsigned long long)r->announced, r->size);
                return -1;
            }
            r->size = (size_t)r->announced;
        }
        queue_pop(&c->announcements);
        dispatch(c, r);
    }
    return 0;
}

static int progress_stream(struct tls_net_comm *c, struct net_stream *s, struct pollfd *pf, int *npf, bool *moved,
                           struct sr_error *err)
{
    struct net_task *t;
    size_t burst = 0;
    while ((t = queue_peek(&s->queue))) {
        while (t->moved < t->size) {
            if (burst >= NET_BURST_BYTES) {
                *moved = true; /* come back after the other sockets had a turn */
                return 0;
            }
            short events;
            ssize_t n = c->sending ? conn_send_some(&s->conn, t->data + t->moved, t->size - t->moved, &events, err)
                                   : conn_recv_some(&s->conn, t->data + t->moved, t->size - t->moved, &events, err);
            if (n < 0)
                return -1;
            if (n == 0) {
                add_poll(pf, npf, s->conn.fd, events);
                return 0;
            }
            t->moved += (size_t)n;
            burst += (size_t)n;
            *moved = true;
        }
        struct tls_net_request *r = t->request;
        queue_pop(&s->queue);
        atomic_fetch_sub_explicit(&r->remaining, 1, memory_order_release);
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct net_worker *w = arg;
    struct tls_net_comm *c = w->comm;
    struct pollfd pf[NET_MAX_SOCKETS + 2];
    block_sigpipe();
    while (!atomic_load(&c->stop)) {
        int npf = 0;
        bool moved = false;
        struct sr_error err = {0};
        if (atomic_load_explicit(&c->state, memory_order_relaxed) == COMM_OK) {
            int rc = w->index == 0 ? progress_control(c, pf, &npf, &moved, &err) : 0;
            for (int s = w->index; rc == 0 && s < c->nstreams; s += c->nworkers)
                rc = progress_stream(c, &c->streams[s], pf, &npf, &moved, &err);
            if (rc != 0) {
                comm_fail(c, err.text);
                npf = 0;
                moved = false;
            }
        }
        if (moved)
            continue;
        add_poll(pf, &npf, w->wake_fd, POLLIN);
        if (poll(pf, (nfds_t)npf, -1) < 0 && errno != EINTR) {
            char why[256];
            snprintf(why, sizeof why, "sagerun net plugin: poll: %s", strerror(errno));
            comm_fail(c, why);
        }
        if (pf[npf - 1].revents & POLLIN) {
            uint64_t count;
            ssize_t n = read(w->wake_fd, &count, sizeof count);
            (void)n; /* resets the counter; nothing to do if another read raced it */
        }
    }
    return NULL;
}

/* ---- comms --------------------------------------------------------------- */

static struct tls_net_comm *comm_new(struct tls_net *net, bool sending, int nstreams, size_t chunk_bytes)
{
    struct tls_net_comm *c = xcalloc(1, sizeof *c);
    c->net = net;
    c->sending = sending;
    c->control.fd = -1;
    c->nstreams = nstreams;
    c->chunk_bytes = chunk_bytes;
    for (int i = 0; i < NET_MAX_SOCKETS; i++)
        c->streams[i].conn.fd = -1;
    c->nworkers = net->threads < nstreams ? net->threads : nstreams;
    for (int i = 0; i < NET_MAX_SOCKETS; i++)
        c->workers[i].wake_fd = -1;
    for (int i = 0; i < NET_SLOTS; i++)
        c->requests[i].comm = c;
    return c;
}

static int comm_start(struct tls_net_comm *c, struct sr_error *err)
{
    for (int i = 0; i < c->nworkers; i++) {
        struct net_worker *w = &c->workers[i];
        w->comm = c;
        w->index = i;
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->wake_fd < 0) {
            error_setf(err, "sagerun net plugin: eventfd: %s", strerror(errno));
            return -1;
        }
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            error_setf(err, "sagerun net plugin: cannot start a thread: %s", strerror(rc));
            return -1;
        }
        w->started = true;
    }
    char how[256];
    conn_describe(&c->control, how, sizeof how);
    logf_net(c->net, false, "%s %s: 1 control + %d data sockets, %d threads, %s", c->sending ? "connected to" : "accepted",
             c->control.peer, c->nstreams, c->nworkers, how);
    return 0;
}

void tls_net_close(struct tls_net_comm *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, true);
    for (int i = 0; i < c->nworkers; i++) {
        struct net_worker *w = &c->workers[i];
        if (w->started) {
            wake(w);
            pthread_join(w->thread, NULL);
        }
        if (w->wake_fd >= 0)
            close(w->wake_fd);
    }
    conn_close(&c->control);
    for (int i = 0; i < c->nstreams; i++)
        conn_close(&c->streams[i].conn);
    free(c);
}

int tls_net_post(struct tls_net_comm *c, void *data, size_t size, struct tls_net_request **out, struct sr_error *err)
{
    *out = NULL;
    if (comm_failed(c, err))
        return -1;
    struct tls_net_request *r = &c->requests[c->posted % NET_SLOTS];
    if (r->used)
        return 0;
    r->used = true;
    r->data = data;
    r->size = size;
    r->announced = size;
    r->announced_moved = 0;
    atomic_store_explicit(&r->remaining, 1, memory_order_relaxed);
    queue_push(&c->announcements, r);
    wake(&c->workers[0]);
    c->posted++;
    *out = r;
    return 0;
}

int tls_net_test(struct tls_net_request *r, int *done, size_t *size, struct sr_error *err)
{
    *done = 0;
    if (atomic_load_explicit(&r->remaining, memory_order_acquire) == 0) {
        *done = 1;
        *size = r->size;
        r->used = false;
        return 0;
    }
    return comm_failed(r->comm, err) ? -1 : 0;
}

/* ---- making connections (setup threads) -------------------------------- */

static uint64_t random_id(void)
{
    uint64_t id = 0;
    if (RAND_bytes((unsigned char *)&id, sizeof id) != 1)
        id = (uint64_t)getpid() << 32 ^ (uint64_t)(clock_now() * 1e9);
    return id;
}

static struct conn *socket_of(struct tls_net_comm *c, uint32_t index)
{
    return index == 0 ? &c->control : &c->streams[index - 1].conn;
}

static void *connect_main(void *arg)
{
    struct net_setup *p = arg;
    struct tls_net *net = p->net;
    struct tls_net_comm *c = p->comm;
    double deadline = clock_now() + net->timeout_s;
    uint64_t comm_id = random_id();
    block_sigpipe();
    for (uint32_t i = 0; i <= (uint32_t)c->nstreams && !p->failed; i++) {
        struct conn *conn = socket_of(c, i);
        bool timed_out; /* retried until the listener is there */
        if (conn_connect_retry(&p->to, net->tls, deadline, 0.05, 1.0, conn, &timed_out, &p->err) != 0)
            p->failed = true;
        struct net_greeting g = {NET_GREETING_MAGIC, i, p->listen_id, comm_id, (uint32_t)c->nstreams,
                                 (uint32_t)c->chunk_bytes};
        uint64_t ack = 0;
        if (!p->failed && (conn_send_all(conn, &g, sizeof g, deadline, &p->err) != 0 ||
                           conn_recv_all(conn, &ack, sizeof ack, deadline, &p->err) != 0))
            p->failed = true;
        if (!p->failed && ack != comm_id) {
            error_setf(&p->err, "sagerun net plugin: %s answered with the wrong connection id", conn->peer);
            p->failed = true;
        }
        if (!p->failed && conn_seal(conn, net->tls_records, deadline, &p->err) != 0)
            p->failed = true;
    }
    if (p->failed) {
        char addr[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &p->to.sin_addr, addr, sizeof addr);
        struct sr_error why = p->err;
        memset(&p->err, 0, sizeof p->err);
        error_setf(&p->err, "sagerun net plugin: cannot connect to %s:%d: %s", addr, ntohs(p->to.sin_port), why.text);
    }
    atomic_store(&p->finished, true);
    return NULL;
}

/* Accepts one socket of a connection: a peer that fails the handshake or
 * sends a wrong greeting is refused and logged, and 0 is returned with no
 * socket so the caller accepts again. */
static int accept_one(struct net_setup *p, double deadline, struct net_greeting *g, struct conn *conn)
{
    struct tls_net *net = p->net;
    struct pollfd pf = {.fd = p->listen_fd, .events = POLLIN};
    int ready = poll(&pf, 1, 200);
    if (ready <= 0)
        return ready == 0 || errno == EINTR ? 0 : -1;
    double handshake_deadline = clock_now() + 10 < deadline ? clock_now() + 10 : deadline;
    struct sr_error why = {0};
    int rc = conn_accept(p->listen_fd, net->tls, handshake_deadline, conn, &why);
    if (rc == -2) {
        logf_net(net, true, "sagerun net plugin: refused a connection: %s", why.text);
        return 0;
    }
    if (rc != 0) {
        error_setf(&p->err, "%s", why.text);
        return -1;
    }
    if (conn_recv_all(conn, g, sizeof *g, handshake_deadline, &why) != 0 || g->magic != NET_GREETING_MAGIC ||
        g->listen_id != p->listen_id || g->sockets < 1 || g->sockets > NET_MAX_SOCKETS || g->index > g->sockets ||
        g->chunk_bytes < 4096) {
        logf_net(net, true, "sagerun net plugin: refused a connection from %s: %s", conn->peer,
                 why.text[0] ? why.text : "not a sagerun net plugin greeting for this listener");
        conn_close(conn);
        return 0;
    }
    return 1;
}

static void *accept_main(void *arg)
{
    struct net_setup *p = arg;
    struct tls_net *net = p->net;
    double deadline = clock_now() + net->timeout_s;
    struct tls_net_comm *c = NULL;
    uint64_t comm_id = 0;
    int have = 0;
    block_sigpipe();
    while (!p->failed && (!c || have < c->nstreams + 1)) {
        if (atomic_load(&p->cancel) || clock_now() > deadline) {
            error_setf(&p->err, "sagerun net plugin: %s waiting for a peer to connect (%d of %d sockets came)",
                       atomic_load(&p->cancel) ? "gave up (listener closed)" : "timed out", have,
                       c ? c->nstreams + 1 : 0);
            p->failed = true;
            break;
        }
        struct net_greeting g;
        struct conn conn = {.fd = -1};
        int rc = accept_one(p, deadline, &g, &conn);
        if (rc < 0)
            p->failed = true;
        if (rc <= 0)
            continue;
        if (!c) {
            c = comm_new(net, false, (int)g.sockets, g.chunk_bytes);
            comm_id = g.comm_id;
        }
        if (g.comm_id != comm_id || g.sockets != (uint32_t)c->nstreams || socket_of(c, g.index)->fd >= 0) {
            logf_net(net, true, "sagerun net plugin: refused a connection from %s: not part of the connection "
                                "being accepted", conn.peer);
            conn_close(&conn);
            continue;
        }
        if (conn_send_all(&conn, &comm_id, sizeof comm_id, deadline, &p->err) != 0 ||
            conn_seal(&conn, net->tls_records, deadline, &p->err) != 0) {
            conn_close(&conn);
            p->failed = true;
            continue;
        }
        *socket_of(c, g.index) = conn;
        have++;
    }
    p->comm = c;
    atomic_store(&p->finished, true);
    return NULL;
}

static struct net_setup *setup_new(struct tls_net *net)
{
    struct net_setup *p = xcalloc(1, sizeof *p);
    p->net = net;
    p->listen_fd = -1;
    return p;
}

/* Starts the setup thread; on failure frees `p` and the comm it holds. */
static int setup_run(struct net_setup *p, void *(*main_fn)(void *), struct sr_error *err)
{
    int rc = pthread_create(&p->thread, NULL, main_fn, p);
    if (rc == 0)
        return 0;
    error_setf(err, "sagerun net plugin: cannot start a thread: %s", strerror(rc));
    tls_net_close(p->comm);
    free(p);
    return -1;
}

/* Joins a finished setup thread and hands over its comm: 1 done, 0 not yet, -1 failed. */
static int setup_finish(struct net_setup *p, struct tls_net_comm **out, struct sr_error *err)
{
    if (!atomic_load(&p->finished))
        return 0;
    pthread_join(p->thread, NULL);
    int rc = 1;
    if (p->failed || comm_start(p->comm, &p->err) != 0) {
        error_setf(err, "%s", p->err.text);
        tls_net_close(p->comm);
        rc = -1;
    } else {
        *out = p->comm;
    }
    free(p);
    return rc;
}

int tls_net_listen(struct tls_net *net, void *handle, struct tls_net_listen **out, struct sr_error *err)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr = net->addr};
    int fd, port;
    if (listener_open(&addr, 128, &fd, &port, err) != 0)
        return -1;
    struct tls_net_listen *l = xcalloc(1, sizeof *l);
    l->net = net;
    l->fd = fd;
    l->id = random_id();
    struct net_handle h = {.magic = NET_HANDLE_MAGIC, .addr = addr, .listen_id = l->id};
    h.addr.sin_port = htons((uint16_t)port);
    memset(handle, 0, TLS_NET_HANDLE_BYTES);
    memcpy(handle, &h, sizeof h);
    *out = l;
    return 0;
}

int tls_net_connect(struct tls_net *net, void *handle, struct tls_net_comm **out, struct sr_error *err)
{
    struct net_handle *h = handle;
    *out = NULL;
    if (h->magic != NET_HANDLE_MAGIC) {
        error_setf(err, "sagerun net plugin: the connection handle is not one of sagerun's (is every rank using "
                        "the same NCCL_NET_PLUGIN?)");
        return -1;
    }
    if (!h->setup) {
        struct net_setup *p = setup_new(net);
        p->comm = comm_new(net, true, net->sockets, net->chunk_bytes);
        p->to = h->addr;
        p->listen_id = h->listen_id;
        if (setup_run(p, connect_main, err) != 0)
            return -1;
        h->setup = p;
        return 0;
    }
    int rc = setup_finish(h->setup, out, err);
    if (rc != 0)
        h->setup = NULL;
    return rc < 0 ? -1 : 0;
}

int tls_net_accept(struct tls_net_listen *l, struct tls_net_comm **out, struct sr_error *err)
{
    *out = NULL;
    if (!l->setup) {
        struct net_setup *p = setup_new(l->net);
        p->listen_fd = l->fd;
        p->listen_id = l->id;
        if (setup_run(p, accept_main, err) != 0)
            return -1;
        l->setup = p;
        return 0;
    }
    int rc = setup_finish(l->setup, out, err);
    if (rc != 0)
        l->setup = NULL;
    return rc < 0 ? -1 : 0;
}

void tls_net_close_listen(struct tls_net_listen *l)
{
    if (!l)
        return;
    if (l->setup) {
        atomic_store(&l->setup->cancel, true);
        struct tls_net_comm *c = NULL;
        struct sr_error ignored = {0};
        while (setup_finish(l->setup, &c, &ignored) == 0)
            clock_sleep(0.01);
        tls_net_close(c);
    }
    close(l->fd);
    free(l);
}
