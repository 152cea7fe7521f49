/* emu_runtime.cpp — the CUDA runtime calls this project makes, on the CPU,
 * with CUDA's documented semantics (the CUDA Runtime API reference), for
 * code compiled against CUDA's own headers and linked here instead of
 * libcudart. One emulated device: an sm_90 (H100-like) unless
 * cuda_emu_set_arch says sm_80.
 *
 * Streams keep their work until a synchronisation, then run it in order,
 * producers as late as allowed, so that work which should have waited for
 * another stream and did not reads what its producer has not written yet:
 * - A synchronisation on a stream or event (cudaStreamSynchronize,
 *   cudaEventSynchronize, the synchronous copies and memsets on the legacy
 *   stream) first runs the streams that work waits for (through queued
 *   cudaStreamWaitEvent, transitively), in the reverse of their creation
 *   order (a program makes its side streams, which consume, after its main
 *   one), then the stream itself. cudaDeviceSynchronize, cudaFree and
 *   cudaFreeHost run every stream that way.
 * - A stream runs its work until a wait, which first runs the recording
 *   stream up to the event; work that nothing waits for stays queued.
 * - cudaEventQuery and cudaStreamQuery run only what the event or stream
 *   covers (so polling finishes), without blocking on a collective.
 * The legacy default stream (0) and streams created without
 * cudaStreamNonBlocking wait for each other, as CUDA defines. Asynchronous
 * copies read their source when they run, not when issued.
 *
 * Device memory: each allocation lies at the end of its own pages, 256-byte
 * aligned as cudaMalloc's, with an unmapped page after it and guard bytes
 * around it (poisoned for ASan in sanitizer builds, else checked after
 * every kernel and copy). Copies and memsets must lie inside one
 * allocation on the device side (cudaErrorInvalidValue otherwise).
 *
 * Errors: launch errors are cudaGetLastError's until read; faults inside a
 * kernel are sticky, as on the GPU: every later call returns them, until
 * cudaDeviceReset (which on a GPU destroys the context; here it also
 * frees every allocation, stream and event).
 *
 * More lenient than CUDA: host memory needs no pinning for asynchronous
 * copies, device memory can be read by host code (a bug on a GPU that this
 * cannot see), and there is no limit on memory but the host's.
 */
#include "cuda_emu.hpp"
#include "emu_internal.hpp"

#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

namespace cuda_emu {
namespace {

constexpr unsigned char GUARD_BYTE = 0xa5;
constexpr size_t DEFAULT_SMEM = 48 << 10;

struct allocation {
    char *map;
    size_t map_bytes;
    char *user;
    size_t bytes, rounded; /* as asked, and to 256 */
    char *front;           /* guard bytes [front, user) and [user + bytes, user + rounded) */
};

struct stream;

struct work_item {
    std::string what;
    stream_work work;
    stream *waits_for = nullptr; /* a wait: the stream it waits for */
};

struct stream {
    std::deque<work_item> queue;
    uint64_t enqueued = 0, done = 0;
    bool blocking = true; /* waits for the legacy stream and it for this */
};

struct event {
    stream *on = nullptr; /* null until recorded */
    uint64_t target = 0;  /* complete when on->done reaches it */
    bool timing = true;
    double at = 0;
};

struct device {
    std::recursive_mutex lock;
    std::map<uintptr_t, allocation> memory; /* by user address */
    std::set<void *> host;
    stream legacy;
    std::vector<stream *> streams; /* in creation order */
    std::set<event *> events;
    std::map<const void *, size_t> smem_optin;
    cudaError_t last = cudaSuccess, sticky = cudaSuccess;
    int arch = 90;
};

device &dev()
{
    static device *d = new device; /* never destroyed: host threads may use it at exit */
    return *d;
}

using guard = std::lock_guard<std::recursive_mutex>;

double now()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

stream *stream_of(cudaStream_t s)
{
    /* 0, cudaStreamLegacy and cudaStreamPerThread are the legacy stream
     * here: one host thread issues work in these tests. */
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread)
        return &dev().legacy;
    return (stream *)s;
}

/* Runs s's work up to `upto` (what the work there waits for first);
 * false when some work cannot finish yet. */
bool drain(stream *s, uint64_t upto)
{
    while (s->done < upto) {
        work_item &item = s->queue.front();
        if (!item.work())
            return false;
        s->queue.pop_front();
        s->done++;
    }
    return true;
}

/* Runs what every stream can, consumers first (see the top); true when
 * all is done. */
bool drain_all()
{
    device &d = dev();
    bool finished = true;
    for (size_t i = d.streams.size(); i-- > 0;)
        finished = drain(d.streams[i], d.streams[i]->enqueued) && finished;
    return drain(&d.legacy, d.legacy.enqueued) && finished;
}

/* Work up to `upto` on s, with what it waits for (through queued waits,
 * transitively) run first, consumers first: true when that work is done. */
bool drain_for(stream *s, uint64_t upto)
{
    device &d = dev();
    std::set<stream *> needed = {s};
    std::vector<stream *> todo = {s};
    while (!todo.empty()) {
        stream *t = todo.back();
        todo.pop_back();
        for (const work_item &item : t->queue)
            if (item.waits_for && needed.insert(item.waits_for).second)
                todo.push_back(item.waits_for);
    }
    for (size_t i = d.streams.size(); i-- > 0;)
        if (d.streams[i] != s && needed.count(d.streams[i]))
            drain(d.streams[i], d.streams[i]->enqueued);
    if (s != &d.legacy && needed.count(&d.legacy))
        drain(&d.legacy, d.legacy.enqueued);
    return drain(s, upto);
}

bool known_stream(stream *s)
{
    auto &all = dev().streams;
    return std::find(all.begin(), all.end(), s) != all.end();
}

/* Runs `attempt` until it returns true, letting other host threads in
 * between tries (a collective's peers are other processes). */
template <typename F> cudaError_t until_done(std::unique_lock<std::recursive_mutex> &held, F attempt)
{
    while (!attempt()) {
        held.unlock();
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, nullptr);
        held.lock();
    }
    return dev().sticky;
}

void append(stream *s, std::string what, stream_work work, stream *waits_for = nullptr)
{
    s->queue.push_back(work_item{std::move(what), std::move(work), waits_for});
    s->enqueued++;
}

/* The implicit waits between the legacy stream and blocking streams. */
void order_against_legacy(stream *s)
{
    device &d = dev();
    std::vector<std::pair<stream *, uint64_t>> waits;
    if (s == &d.legacy) {
        for (stream *other : d.streams)
            if (other->blocking)
                waits.push_back({other, other->enqueued});
    } else if (s->blocking) {
        waits.push_back({&d.legacy, d.legacy.enqueued});
    }
    for (auto [other, upto] : waits)
        append(s, "implicit wait for another stream", [other = other, upto = upto] { return drain(other, upto); },
               other);
}

const allocation *allocation_holding(const void *p, size_t bytes)
{
    device &d = dev();
    auto it = d.memory.upper_bound((uintptr_t)p);
    if (it == d.memory.begin())
        return nullptr;
    --it;
    const allocation &a = it->second;
    const char *c = (const char *)p;
    return c >= a.user && c + bytes <= a.user + a.bytes && c + bytes >= c ? &a : nullptr;
}

void guard_fill(const allocation &a)
{
    memset(a.front, GUARD_BYTE, (size_t)(a.user - a.front));
    memset(a.user + a.bytes, GUARD_BYTE, a.rounded - a.bytes);
#if EMU_ASAN
    ASAN_POISON_MEMORY_REGION(a.front, (size_t)(a.user - a.front));
    ASAN_POISON_MEMORY_REGION(a.user + a.bytes, a.rounded - a.bytes);
#endif
}

bool guard_intact(const allocation &a)
{
#if EMU_ASAN
    (void)a;
    return true; /* ASan reports any access to the poisoned guard itself */
#else
    for (const char *p = a.front; p < a.user; p++)
        if ((unsigned char)*p != GUARD_BYTE)
            return false;
    for (const char *p = a.user + a.bytes; p < a.user + a.rounded; p++)
        if ((unsigned char)*p != GUARD_BYTE)
            return false;
    return true;
#endif
}

struct sigaction previous_segv; /* what handled SIGSEGV before the emulator */

/* A fault in the unmapped page after an allocation: say whose; then, in a
 * kernel, die of it (the GPU's context would: nothing can resume the
 * kernel), in host code let the handler before this one have it. */
void on_segv(int, siginfo_t *info, void *)
{
    char text[300];
    int n = snprintf(text, sizeof text, "cuda_emu: %s: access at %p, outside device memory%s\n", where().c_str(),
                     info->si_addr, where().empty() ? " (in host code)" : "");
    for (auto &[user, a] : dev().memory)
        if ((char *)info->si_addr >= a.user + a.rounded && (char *)info->si_addr < a.map + a.map_bytes) {
            n = snprintf(text, sizeof text, "cuda_emu: %s: access at %p, byte %zu of a %zu-byte device allocation "
                                            "(past its end)\n",
                         where().c_str(), info->si_addr, (size_t)((char *)info->si_addr - a.user), a.bytes);
            break;
        }
    if (write(2, text, (size_t)n) < 0) {
    }
    struct sigaction fatal = {};
    fatal.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, where().empty() ? &previous_segv : &fatal, nullptr); /* the access repeats, and goes there */
}

/* Checked at every allocation: a test framework may have put its own
 * handler in since. */
void install_segv_handler()
{
    if (EMU_ASAN)
        return; /* ASan reports faults itself, with more */
    struct sigaction now = {};
    sigaction(SIGSEGV, nullptr, &now);
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_segv)
        return;
    static char alt[1 << 16];
    stack_t ss = {};
    ss.ss_sp = alt;
    ss.ss_size = sizeof alt;
    sigaltstack(&ss, nullptr);
    struct sigaction sa = {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, &previous_segv);
}

cudaError_t device_alloc(void **out, size_t bytes)
{
    device &d = dev();
    size_t page = (size_t)sysconf(_SC_PAGESIZE), want = bytes ? bytes : 1;
    size_t rounded = (want + 255) / 256 * 256;
    size_t data = (rounded + 256 + page - 1) / page * page, map_bytes = data + 2 * page;
    char *map = (char *)mmap(nullptr, map_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return cudaErrorMemoryAllocation;
    if (mprotect(map + page, data, PROT_READ | PROT_WRITE) != 0) {
        munmap(map, map_bytes);
        return cudaErrorMemoryAllocation;
    }
    allocation a = {map, map_bytes, map + page + data - rounded, want, rounded, map + page};
    guard_fill(a);
    d.memory[(uintptr_t)a.user] = a;
    install_segv_handler();
    *out = a.user;
    return cudaSuccess;
}

void device_free(const allocation &a)
{
#if EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(a.map, a.map_bytes);
#endif
    munmap(a.map, a.map_bytes);
}

/* Every call's answer once a fault has happened. */
cudaError_t status(cudaError_t e)
{
    return dev().sticky != cudaSuccess ? dev().sticky : e;
}

bool copy_ok(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    bool dst_device = allocation_holding(dst, bytes), src_device = allocation_holding(src, bytes);
    switch (kind) {
    case cudaMemcpyHostToDevice:
        return dst_device;
    case cudaMemcpyDeviceToHost:
        return src_device;
    case cudaMemcpyDeviceToDevice:
        return dst_device && src_device;
    case cudaMemcpyHostToHost:
    case cudaMemcpyDefault:
        return true;
    }
    return false;
}

stream_work copy_work(void *dst, const void *src, size_t bytes)
{
    return [=] {
        memmove(dst, src, bytes);
        check_guards("a copy");
        return true;
    };
}

} /* namespace */

/* ---- what the scheduler and the stand-ins use ---- */

void enqueue(cudaStream_t s, std::string what, stream_work work)
{
    guard held(dev().lock);
    stream *st = stream_of(s);
    order_against_legacy(st);
    append(st, std::move(what), std::move(work));
}

void set_last_error(cudaError_t e)
{
    dev().last = e;
}

void fault(cudaError_t error, const char *fmt, ...)
{
    if (dev().sticky != cudaSuccess)
        return; /* the first fault is the one reported, as the GPU's context keeps one */
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    dev().sticky = error;
}

bool in_device_memory(const void *p, size_t bytes)
{
    guard held(dev().lock);
    return allocation_holding(p, bytes) != nullptr;
}

void check_guards(const char *kernel)
{
    for (auto &[user, a] : dev().memory)
        if (!guard_intact(a)) {
            fault(cudaErrorIllegalAddress, "%s wrote outside device memory, next to the %zu-byte allocation at %p",
                  kernel, a.bytes, (void *)a.user);
            guard_fill(a);
        }
}

size_t dynamic_smem_optin_max()
{
    return dev().arch >= 90 ? 227u << 10 : 163u << 10;
}

size_t dynamic_smem_limit(const void *entry)
{
    auto it = dev().smem_optin.find(entry);
    return it == dev().smem_optin.end() ? DEFAULT_SMEM : std::max(DEFAULT_SMEM, it->second);
}

} /* namespace cuda_emu */

using namespace cuda_emu;

/* ---- the CUDA runtime API ---- */

extern "C" {

/* The emulated architecture: 80 (A100's limits) or 90 (H100's). */
void cuda_emu_set_arch(int arch)
{
    dev().arch = arch;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return status(device == 0 ? cudaSuccess : cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return status(cudaSuccess);
}

cudaError_t cudaDeviceGetByPCIBusId(int *device, const char *bus_id)
{
    *device = 0;
    return status(bus_id && *bus_id ? cudaSuccess : cudaErrorInvalidValue);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return cudaErrorInvalidDevice;
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "sagerun CUDA emulator (sm_%d)", dev().arch);
    prop->major = dev().arch / 10;
    prop->minor = dev().arch % 10;
    prop->totalGlobalMem = 80ull << 30;
    prop->sharedMemPerBlock = DEFAULT_SMEM;
    prop->sharedMemPerBlockOptin = dynamic_smem_optin_max();
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 0x7fffffff;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = dev().arch >= 90 ? 132 : 108;
    return status(cudaSuccess);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    *total = 80ull << 30;
    *free_bytes = *total;
    return status(cudaSuccess);
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    guard held(dev().lock);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return status(cudaSuccess);
    if (value < 0 || (size_t)value > dynamic_smem_optin_max())
        return status(cudaErrorInvalidValue);
    dev().smem_optin[func] = (size_t)value;
    return status(cudaSuccess);
}

cudaError_t cudaGetLastError(void)
{
    guard held(dev().lock);
    cudaError_t e = dev().last;
    dev().last = cudaSuccess;
    return status(e);
}

cudaError_t cudaPeekAtLastError(void)
{
    return status(dev().last);
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    default: return "cudaErrorUnknown";
    }
}

/* The texts are libcudart's own. */
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    default: return "unknown error";
    }
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    guard held(dev().lock);
    if (dev().sticky)
        return dev().sticky;
    return device_alloc(p, bytes);
}

cudaError_t cudaFree(void *p)
{
    std::unique_lock held(dev().lock);
    until_done(held, drain_all);
    if (!p)
        return status(cudaSuccess);
    auto it = dev().memory.find((uintptr_t)p);
    if (it == dev().memory.end())
        return status(cudaErrorInvalidValue);
    device_free(it->second);
    dev().memory.erase(it);
    return status(cudaSuccess);
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    guard held(dev().lock);
    *p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!*p)
        return cudaErrorMemoryAllocation;
    dev().host.insert(*p);
    return status(cudaSuccess);
}

cudaError_t cudaFreeHost(void *p)
{
    std::unique_lock held(dev().lock);
    until_done(held, drain_all);
    if (!dev().host.erase(p))
        return status(cudaErrorInvalidValue);
    free(p);
    return status(cudaSuccess);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t s)
{
    guard held(dev().lock);
    if (!copy_ok(dst, src, bytes, kind))
        return status(cudaErrorInvalidValue);
    enqueue(s, "a copy", copy_work(dst, src, bytes));
    return status(cudaSuccess);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    std::unique_lock held(dev().lock);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
    if (e != cudaSuccess)
        return e;
    stream *legacy = &dev().legacy;
    return until_done(held, [&] { return drain_for(legacy, legacy->enqueued); });
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s)
{
    guard held(dev().lock);
    if (!allocation_holding(p, bytes))
        return status(cudaErrorInvalidValue);
    enqueue(s, "a memset", [=] {
        memset(p, value, bytes);
        return true;
    });
    return status(cudaSuccess);
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    std::unique_lock held(dev().lock);
    cudaError_t e = cudaMemsetAsync(p, value, bytes, nullptr);
    if (e != cudaSuccess)
        return e;
    stream *legacy = &dev().legacy;
    return until_done(held, [&] { return drain_for(legacy, legacy->enqueued); });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    guard held(dev().lock);
    stream *st = new stream;
    st->blocking = !(flags & cudaStreamNonBlocking);
    dev().streams.push_back(st);
    *s = (cudaStream_t)st;
    return status(cudaSuccess);
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    return cudaStreamCreateWithFlags(s, cudaStreamDefault);
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    std::unique_lock held(dev().lock);
    stream *st = stream_of(s);
    return until_done(held, [&] { return drain_for(st, st->enqueued); });
}

cudaError_t cudaStreamQuery(cudaStream_t s)
{
    guard held(dev().lock);
    stream *st = stream_of(s);
    return status(drain(st, st->enqueued) ? cudaSuccess : cudaErrorNotReady);
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    std::unique_lock held(dev().lock);
    stream *st = stream_of(s);
    if (st == &dev().legacy || !known_stream(st))
        return status(cudaErrorInvalidResourceHandle);
    /* CUDA finishes the work first (asynchronously) */
    until_done(held, [&] { return drain_for(st, st->enqueued); });
    auto &all = dev().streams;
    all.erase(std::find(all.begin(), all.end(), st));
    delete st;
    return status(cudaSuccess);
}

cudaError_t cudaDeviceSynchronize(void)
{
    std::unique_lock held(dev().lock);
    return until_done(held, drain_all);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    guard held(dev().lock);
    event *ev = new event;
    ev->timing = !(flags & cudaEventDisableTiming);
    dev().events.insert(ev);
    *e = (cudaEvent_t)ev;
    return status(cudaSuccess);
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    return cudaEventCreateWithFlags(e, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    guard held(dev().lock);
    if (!dev().events.erase((event *)e))
        return status(cudaErrorInvalidResourceHandle);
    delete (event *)e;
    return status(cudaSuccess);
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    guard held(dev().lock);
    event *ev = (event *)e;
    if (!dev().events.count(ev))
        return status(cudaErrorInvalidResourceHandle);
    stream *st = stream_of(s);
    enqueue(s, "an event", [ev] {
        ev->at = now();
        return true;
    });
    ev->on = st;
    ev->target = st->enqueued;
    return status(cudaSuccess);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags)
{
    guard held(dev().lock);
    (void)flags;
    event *ev = (event *)e;
    if (!dev().events.count(ev))
        return status(cudaErrorInvalidResourceHandle);
    if (!ev->on) /* never recorded: nothing to wait for */
        return status(cudaSuccess);
    stream *on = ev->on, *st = stream_of(s);
    uint64_t target = ev->target;
    order_against_legacy(st);
    append(st, "a wait for an event", [on, target] { return drain(on, target); }, on);
    return status(cudaSuccess);
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    std::unique_lock held(dev().lock);
    event *ev = (event *)e;
    if (!dev().events.count(ev))
        return status(cudaErrorInvalidResourceHandle);
    if (!ev->on)
        return status(cudaSuccess);
    return until_done(held, [&] { return drain_for(ev->on, ev->target); });
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    guard held(dev().lock);
    event *ev = (event *)e;
    if (!dev().events.count(ev))
        return status(cudaErrorInvalidResourceHandle);
    return status(!ev->on || drain(ev->on, ev->target) ? cudaSuccess : cudaErrorNotReady);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    guard held(dev().lock);
    event *a = (event *)start, *b = (event *)end;
    if (!a->timing || !b->timing || !a->on || !b->on)
        return status(cudaErrorInvalidResourceHandle);
    if (a->on->done < a->target || b->on->done < b->target)
        return status(cudaErrorNotReady);
    *ms = (float)((b->at - a->at) * 1e3);
    return status(cudaSuccess);
}

cudaError_t cudaDeviceReset(void)
{
    guard held(dev().lock);
    device &d = dev();
    for (auto &[user, a] : d.memory)
        device_free(a);
    d.memory.clear();
    for (stream *s : d.streams)
        delete s;
    d.streams.clear();
    for (event *e : d.events)
        delete e;
    d.events.clear();
    d.legacy = stream{};
    d.smem_optin.clear();
    d.last = d.sticky = cudaSuccess;
    return cudaSuccess;
}

} /* extern "C" */
