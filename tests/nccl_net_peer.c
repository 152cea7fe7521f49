/* nccl_net_peer — one end of a conversation through the NCCL net plugin,
 * driven the way NCCL's proxy thread drives it, for tests and benchmarks.
 *
 *   nccl_net_peer PLUGIN VERSION RANK DIR [options]
 *
 * Loads PLUGIN with dlopen, finds ncclNetPlugin_v<VERSION> (11, 10 or 9),
 * listens, publishes its handle as DIR/handle-<RANK>, reads the other
 * rank's, and connects to it while accepting it (neither call may block).
 * Then both ranks send each other the same list of messages at once, up to
 * 8 in flight each way, polling test() as NCCL does, and check every byte
 * received and every size reported.
 *   --sizes A,B,...  message sizes (default: 0 to 256 MiB, awkward sizes included)
 *   --marker TEXT    fill messages with TEXT repeated (for packet captures)
 *   --bench BYTES    instead: --iters messages of BYTES each way; prints GB/s
 *                    and CPU seconds while it ran: the plugin's threads'
 *                    (the process's less this calling thread's, which
 *                    polls), the calling thread's, the whole machine's
 *   --iters N        (default 20)
 *   --shrink-receives 1  post each receive at half the size sent (must fail)
 * Prints "peer R: ok ..." and exits 0, or prints the failure and exits 1.
 */
#include <dlfcn.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "nccl_net_abi.h"

#define WINDOW 8
#define MAX_MESSAGES 64

/* The three ABI versions behind one set of calls. */
static int version;
static nccl_net_v11 *v11;
static nccl_net_v10 *v10;
static nccl_net_v9 *v9;
static void *ctx;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A failed call ends the process the way a failed NCCL call ends a rank:
 * at once, with the plugin's comms still open (so no leak check at exit). */
static void quit(void)
{
    fflush(NULL);
    _exit(1);
}

static void die(const char *what, nccl_result rc)
{
    fprintf(stderr, "peer: %s failed (nccl result %d)\n", what, (int)rc);
    quit();
}

static void log_to_stderr(int level, unsigned long flags, const char *file, int line, const char *fmt, ...)
{
    (void)flags, (void)file, (void)line;
    va_list ap;
    va_start(ap, fmt);
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nccl-log %s: %s\n", level == NCCL_LOG_WARN ? "WARN" : "INFO", msg);
}

static nccl_result api_init(void)
{
    if (version == 11)
        return v11->init(&ctx, 42, &(struct nccl_net_comm_config){-1}, (nccl_logger)log_to_stderr, NULL);
    return version == 10 ? v10->init((nccl_logger)log_to_stderr, NULL) : v9->init((nccl_logger)log_to_stderr);
}

static const char *api_name(void) { return version == 11 ? v11->name : version == 10 ? v10->name : v9->name; }

static void api_describe(int rank)
{
    int ndev = 0;
    nccl_result rc = version == 11 ? v11->devices(&ndev) : version == 10 ? v10->devices(&ndev) : v9->devices(&ndev);
    if (rc != NCCL_RESULT_SUCCESS || ndev != 1)
        die("devices", rc);
    struct nccl_net_properties_v11 p;
    memset(&p, 0xa5, sizeof p); /* poisoned: every field must be written */
    rc = version == 11 ? v11->get_properties(0, &p)
         : version == 10 ? v10->get_properties(0, &p.v9) : v9->get_properties(0, &p.v9);
    if (rc != NCCL_RESULT_SUCCESS)
        die("getProperties", rc);
    printf("peer %d: net %s v%d device %s speed %d Mbps ptr_support %d max_recvs %d\n", rank, api_name(), version,
           p.v9.name, p.v9.speed_mbps, p.v9.ptr_support, p.v9.max_recvs);
}

static nccl_result api_listen(void *handle, void **lc)
{
    return version == 11 ? v11->listen(ctx, 0, handle, lc)
           : version == 10 ? v10->listen(0, handle, lc) : v9->listen(0, handle, lc);
}

static nccl_result api_connect(void *handle, void **sc)
{
    return version == 11 ? v11->connect(ctx, 0, handle, sc, NULL)
           : version == 10 ? v10->connect(0, NULL, handle, sc, NULL) : v9->connect(0, handle, sc, NULL);
}

static nccl_result api_accept(void *lc, void **rc)
{
    return version == 11 ? v11->accept(lc, rc, NULL) : version == 10 ? v10->accept(lc, rc, NULL) : v9->accept(lc, rc, NULL);
}

static nccl_result api_isend(void *sc, void *data, size_t size, void **req)
{
    return version == 11 ? v11->isend(sc, data, size, 0, NULL, NULL, req)
           : version == 10 ? v10->isend(sc, data, size, 0, NULL, NULL, req) : v9->isend(sc, data, size, 0, NULL, req);
}

static nccl_result api_irecv(void *rc, void *data, size_t size, void **req)
{
    void *bufs[1] = {data};
    size_t sizes[1] = {size};
    int tags[1] = {0};
    void *mh[1] = {NULL};
    return version == 11 ? v11->irecv(rc, 1, bufs, sizes, tags, mh, NULL, req)
           : version == 10 ? v10->irecv(rc, 1, bufs, sizes, tags, mh, NULL, req)
                           : v9->irecv(rc, 1, bufs, sizes, tags, mh, req);
}

static nccl_result api_test(void *req, int *done, int *size)
{
    return version == 11 ? v11->test(req, done, size) : version == 10 ? v10->test(req, done, size) : v9->test(req, done, size);
}

static void api_close(void *sc, void *rc, void *lc)
{
    nccl_result r1 = version == 11 ? v11->close_send(sc) : version == 10 ? v10->close_send(sc) : v9->close_send(sc);
    nccl_result r2 = version == 11 ? v11->close_recv(rc) : version == 10 ? v10->close_recv(rc) : v9->close_recv(rc);
    nccl_result r3 = version == 11 ? v11->close_listen(lc) : version == 10 ? v10->close_listen(lc) : v9->close_listen(lc);
    if (r1 || r2 || r3)
        die("close", r1 ? r1 : r2 ? r2 : r3);
    if (version == 11 && v11->finalize(ctx) != NCCL_RESULT_SUCCESS)
        die("finalize", NCCL_RESULT_INTERNAL_ERROR);
}

/* ---- handles ---------------------------------------------------------- */

static void publish_handle(const char *dir, int rank, const unsigned char *handle)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/handle-%d.tmp", dir, rank);
    snprintf(path, sizeof path, "%s/handle-%d", dir, rank);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(handle, 1, NCCL_NET_HANDLE_BYTES, f) != NCCL_NET_HANDLE_BYTES || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        perror("peer: writing the handle");
        quit();
    }
}

static void read_handle(const char *dir, int rank, unsigned char *handle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/handle-%d", dir, rank);
    for (double until = now() + 60; now() < until; usleep(10000)) {
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(handle, 1, NCCL_NET_HANDLE_BYTES, f);
        fclose(f);
        if (n == NCCL_NET_HANDLE_BYTES)
            return;
    }
    fprintf(stderr, "peer: no handle from rank %d in %s after 60 s\n", rank, path);
    quit();
}

/* ---- messages ---------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fill(unsigned char *buf, size_t size, int from_rank, int message, const char *marker)
{
    size_t mlen = marker ? strlen(marker) : 0;
    uint64_t seed = ((uint64_t)from_rank << 48) ^ ((uint64_t)message << 32);
    for (size_t i = 0; i < size; i += 8) {
        uint64_t word = mix(seed + i / 8);
        size_t n = size - i < 8 ? size - i : 8;
        if (marker)
            for (size_t k = 0; k < n; k++)
                buf[i + k] = (unsigned char)marker[(i + k) % mlen];
        else
            memcpy(buf + i, &word, n);
    }
}

static size_t parse_sizes(const char *text, size_t *sizes)
{
    size_t n = 0;
    for (const char *p = text; *p && n < MAX_MESSAGES; n++) {
        char *end;
        sizes[n] = (size_t)strtoull(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p)
            break;
    }
    return n;
}

struct exchange {
    size_t n;
    size_t *sizes;
    size_t shrink; /* receives are sizes / shrink */
    unsigned char **send, **recv, **expect;
};

/* Tests posted requests in order from *first, as NCCL does, up to the first
 * one not done; checks each completed one's size. Returns how many completed. */
static size_t complete_in_order(void **requests, size_t *first, size_t posted, const size_t *sizes, const char *what)
{
    size_t completed = 0;
    while (*first < posted) {
        int done = 0, size = -1;
        nccl_result r = api_test(requests[*first], &done, &size);
        if (r != NCCL_RESULT_SUCCESS)
            die(what, r);
        if (!done)
            break;
        if ((size_t)size != sizes[*first]) {
            fprintf(stderr, "peer: %s %zu reported %d bytes, not %zu\n", what, *first, size, sizes[*first]);
            quit();
        }
        (*first)++, completed++;
    }
    return completed;
}

/* Both directions at once, at most WINDOW messages in flight each way. */
static void run_exchange(void *sc, void *rc, struct exchange *x)
{
    void **sreq = calloc(x->n, sizeof *sreq), **rreq = calloc(x->n, sizeof *rreq);
    size_t sposted = 0, rposted = 0, sfinished = 0, rfinished = 0;
    double deadline = now() + 600;
    while (sfinished < x->n || rfinished < x->n) {
        if (now() > deadline) {
            fprintf(stderr, "peer: exchange not finished after 600 s (%zu sent, %zu received of %zu)\n", sfinished,
                    rfinished, x->n);
            quit();
        }
        while (sposted < x->n && sposted - sfinished < WINDOW) {
            nccl_result r = api_isend(sc, x->send[sposted], x->sizes[sposted], &sreq[sposted]);
            if (r != NCCL_RESULT_SUCCESS)
                die("isend", r);
            if (!sreq[sposted])
                break;
            sposted++;
        }
        while (rposted < x->n && rposted - rfinished < WINDOW) {
            nccl_result r = api_irecv(rc, x->recv[rposted], x->sizes[rposted] / x->shrink, &rreq[rposted]);
            if (r != NCCL_RESULT_SUCCESS)
                die("irecv", r);
            if (!rreq[rposted])
                break;
            rposted++;
        }
        size_t completed = complete_in_order(sreq, &sfinished, sposted, x->sizes, "test (send)") +
                           complete_in_order(rreq, &rfinished, rposted, x->sizes, "test (recv)");
        if (completed == 0) /* as NCCL's proxy thread does when idle */
            sched_yield();
    }
    free(sreq), free(rreq);
}

static void check_received(struct exchange *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (memcmp(x->recv[i], x->expect[i], x->sizes[i]) != 0) {
            size_t at = 0;
            while (x->recv[i][at] == x->expect[i][at])
                at++;
            fprintf(stderr, "peer: message %zu (%zu bytes) differs from byte %zu on\n", i, x->sizes[i], at);
            quit();
        }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: nccl_net_peer PLUGIN VERSION RANK DIR [--sizes A,B,..] [--marker TEXT] "
                        "[--bench BYTES] [--iters N]\n");
        return 2;
    }
    const char *plugin_path = argv[1], *dir = argv[4], *marker = NULL;
    version = atoi(argv[2]);
    int rank = atoi(argv[3]), iters = 20;
    size_t list[MAX_MESSAGES] = {0, 1, 7, 4096, 65535, 65536, 65537, 1048579, 16777216, 67108864, 268435456};
    size_t n = 11, bench = 0, shrink = 1;
    for (int i = 5; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sizes") == 0)
            n = parse_sizes(argv[i + 1], list);
        else if (strcmp(argv[i], "--marker") == 0)
            marker = argv[i + 1];
        else if (strcmp(argv[i], "--bench") == 0)
            bench = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--shrink-receives") == 0)
            shrink = 2;
    }
    if (iters < 1)
        iters = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);

    void *lib = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "peer: dlopen %s: %s\n", plugin_path, dlerror());
        return 1;
    }
    char symbol[32];
    snprintf(symbol, sizeof symbol, "ncclNetPlugin_v%d", version);
    void *table = dlsym(lib, symbol);
    if (!table) {
        fprintf(stderr, "peer: %s has no %s\n", plugin_path, symbol);
        return 1;
    }
    v11 = version == 11 ? table : NULL, v10 = version == 10 ? table : NULL, v9 = version == 9 ? table : NULL;
    nccl_result r = api_init();
    if (r != NCCL_RESULT_SUCCESS)
        die("init", r);
    api_describe(rank);

    unsigned char mine[NCCL_NET_HANDLE_BYTES], theirs[NCCL_NET_HANDLE_BYTES];
    void *lc = NULL, *sc = NULL, *rc = NULL;
    if ((r = api_listen(mine, &lc)) != NCCL_RESULT_SUCCESS)
        die("listen", r);
    publish_handle(dir, rank, mine);
    read_handle(dir, 1 - rank, theirs);
    double t0 = now();
    while (!sc || !rc) { /* as NCCL does: call both again until each returns a comm */
        if (!sc && (r = api_connect(theirs, &sc)) != NCCL_RESULT_SUCCESS)
            die("connect", r);
        if (!rc && (r = api_accept(lc, &rc)) != NCCL_RESULT_SUCCESS)
            die("accept", r);
        usleep(1000);
    }
    printf("peer %d: connected in %.3f s\n", rank, now() - t0);

    if (bench)
        n = (size_t)iters;
    size_t *sizes = calloc(n, sizeof *sizes);
    for (size_t i = 0; i < n; i++)
        sizes[i] = bench ? bench : list[i];
    struct exchange x = {.n = n, .sizes = sizes, .shrink = shrink};
    x.send = calloc(n, sizeof *x.send), x.recv = calloc(n, sizeof *x.recv), x.expect = calloc(n, sizeof *x.expect);
    for (size_t i = 0; i < n; i++) {
        size_t alloc = sizes[i] ? sizes[i] : 1;
        bool shared = bench && i > 0; /* a benchmark reuses one buffer pair */
        x.send[i] = shared ? x.send[0] : malloc(alloc);
        x.recv[i] = shared ? x.recv[0] : malloc(alloc);
        x.expect[i] = shared ? x.expect[0] : malloc(alloc);
        if (!x.send[i] || !x.recv[i] || !x.expect[i]) {
            fprintf(stderr, "peer: out of memory for %zu bytes\n", alloc);
            return 1;
        }
        if (!shared) {
            fill(x.send[i], sizes[i], rank, (int)i, marker);
            fill(x.expect[i], sizes[i], 1 - rank, (int)i, marker);
            memset(x.recv[i], 0xee, alloc); /* poisoned: unwritten bytes show */
        }
    }
    if (bench) { /* a short warm-up, so connection ramp-up is not timed */
        struct exchange warm = x;
        warm.n = n < 2 ? n : 2;
        run_exchange(sc, rc, &warm);
    }
    t0 = now();
    double cpu0 = clock_process_cpu(), caller0 = clock_thread_cpu(), machine0 = clock_machine_busy();
    run_exchange(sc, rc, &x);
    double seconds = now() - t0, caller_cpu = clock_thread_cpu() - caller0;
    double plugin_cpu = (clock_process_cpu() - cpu0) - caller_cpu, machine = clock_machine_busy() - machine0;
    if (!bench)
        check_received(&x);
    else
        check_received(&(struct exchange){.n = 1, .sizes = sizes, .shrink = 1, .recv = x.recv, .expect = x.expect});
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += sizes[i];
    printf("peer %d: ok %zu messages, %zu bytes each way in %.3f s, %.3f GB/s each way\n", rank, n, bytes, seconds,
           (double)bytes / seconds / 1e9);
    if (bench)
        printf("peer %d: CPU seconds: plugin threads %.3f, calling thread %.3f, machine busy %.3f\n", rank,
               plugin_cpu, caller_cpu, machine);
    api_close(sc, rc, lc);
    for (size_t i = 0; i < n; i++)
        if (!bench || i == 0)
            free(x.send[i]), free(x.recv[i]), free(x.expect[i]);
    free(x.send), free(x.recv), free(x.expect), free(sizes);
    dlclose(lib);
    return 0;
}
