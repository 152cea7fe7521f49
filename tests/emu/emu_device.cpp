/* emu_device.cpp — the emulator's kernel scheduler: each CUDA thread of a
 * block as a fiber (a stack of its own on one OS thread), run in index
 * order until it finishes or waits at a barrier, when the next one runs;
 * blocks one after another (cuda_emu.hpp says what this shows and what it
 * cannot).
 *
 * Launches are refused as the hardware refuses them, with the error a
 * <<<>>> launch leaves for cudaGetLastError:
 * - cudaErrorInvalidConfiguration: a block of 0 or more than 1024 threads,
 *   block dimensions over (1024, 1024, 64), a grid dimension of 0 or over
 *   (2^31 - 1, 65535, 65535);
 * - cudaErrorInvalidValue: dynamic shared memory over 48 KiB unless the
 *   kernel was given more with cudaFuncSetAttribute(...,
 *   cudaFuncAttributeMaxDynamicSharedMemorySize, ...), which itself
 *   refuses more than the architecture's opt-in maximum (emu_runtime.cpp).
 * While a kernel runs: a 16-byte vector access that is not 16-byte aligned
 * is cudaErrorMisalignedAddress, one outside device and shared memory
 * cudaErrorIllegalAddress (both sticky, as on the GPU, and the access is
 * skipped); a barrier some threads never reach ends the process.
 */
#include "cuda_emu.hpp"
#include "emu_internal.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#include <map>
#include <memory>
#include <vector>

/* Sanitizer builds compile this file without ASan's instrumentation (the
 * build defines SAGERUN_EMU_ASAN): the scheduler is the emulator's own
 * machinery, and instrumented it made most of a test's time. It still
 * tells ASan of every switch between stacks. */
#if defined(__SANITIZE_ADDRESS__) || defined(SAGERUN_EMU_ASAN)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

namespace cuda_emu {
namespace {

constexpr unsigned MAX_THREADS = 1024;
/* Room for a kernel's locals (the fused attention's fragments are a few
 * KiB) and, under ASan, its redzones. Mapped once, touched as used, in
 * huge pages where the kernel gives them: a block's threads switch in
 * turn, and their stack tops then share a few TLB entries. */
constexpr size_t STACK_BYTES = EMU_ASAN ? (1u << 20) : (64u << 10);

struct barrier {
    unsigned expected = 0, arrived = 0;
    uint64_t generation = 0;
};

/* Switching between fibers: on x86-64 a few instructions that save the
 * registers the ABI makes callee-saved (ucontext's swapcontext also saves
 * the signal mask, a system call per switch, which made most of a test's
 * time); elsewhere ucontext. The floating-point control state (MXCSR, the
 * x87 control word) is not switched: every fiber shares the thread's, and
 * no kernel changes it; saving it made half of what remained. */
#if defined(__x86_64__)
extern "C" void emu_switch(void **save_sp, void *load_sp);
asm(R"(
    .pushsection .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .popsection
)");

struct context {
    void *sp = nullptr;
};

void fiber_main();

[[noreturn]] void fiber_entry()
{
    fiber_main();
    fail("a finished fiber was resumed");
}

/* A stack whose first switch "returns" into fiber_entry, as if called. */
void make_context(context &c, char *stack, size_t bytes, context &)
{
    uintptr_t top = ((uintptr_t)(stack + bytes) & ~(uintptr_t)15) - 16;
    void **sp = (void **)top; /* the return address, 16-byte aligned: fiber_entry starts as a callee */
    *sp = (void *)fiber_entry;
    for (int i = 0; i < 6; i++)
        *--sp = nullptr; /* rbp, rbx, r12 to r15 */
    c.sp = sp;
}

void switch_context(context &from, context &to)
{
    emu_switch(&from.sp, to.sp);
}

/* A finished fiber goes back to the scheduler for good. */
[[noreturn]] void leave_context(context &from, context &to)
{
    emu_switch(&from.sp, to.sp);
    __builtin_unreachable();
}
#else
struct context {
    ucontext_t uc;
};

void fiber_main();

void make_context(context &c, char *stack, size_t bytes, context &scheduler)
{
    if (getcontext(&c.uc) != 0)
        fail("getcontext failed");
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = &scheduler.uc;
    makecontext(&c.uc, fiber_main, 0);
}

void switch_context(context &from, context &to)
{
    if (swapcontext(&from.uc, &to.uc) != 0)
        fail("swapcontext failed");
}

[[noreturn]] void leave_context(context &, context &to)
{
    setcontext(&to.uc);
    fail("setcontext failed");
}
#endif

struct fiber {
    context ctx;
    void *fake_stack = nullptr; /* ASan's, while switched out */
    bool done = false;
};

struct block_run {
    const void *entry;
    const std::function<void()> *thread;
    dim3 block;
    unsigned threads;
    std::vector<fiber> fibers;
    barrier all;
    std::vector<barrier> warps;
    std::vector<uint64_t> slots; /* a lane's value during a shuffle: two sets, by the warp barrier's parity */
    unsigned char *smem;
    size_t smem_bytes;
    unsigned current = 0, live = 0;
    uint64_t idle = 0; /* waits since anything arrived, was released or returned */
    context scheduler;
    void *scheduler_fake = nullptr;
    const void *os_stack = nullptr;
    size_t os_stack_bytes = 0;
};

block_run *running; /* the block being run, on the thread draining the streams */
char *stacks;       /* MAX_THREADS stacks of STACK_BYTES */

void asan_start(void **fake, const void *bottom, size_t size)
{
#if EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

void asan_finish(void *fake, const void **bottom, size_t *size)
{
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

char *stack_of(unsigned t)
{
    if (!stacks) {
        void *p = mmap(nullptr, MAX_THREADS * STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            fail("cannot map the fibers' stacks");
        madvise(p, MAX_THREADS * STACK_BYTES, MADV_HUGEPAGE); /* a hint: fine if refused */
        stacks = (char *)p;
    }
    return stacks + (size_t)t * STACK_BYTES;
}

void set_index(const block_run &b, unsigned t)
{
    if (b.block.y == 1 && b.block.z == 1) /* what nearly every launch is */
        threadIdx = uint3{t, 0, 0};
    else
        threadIdx = uint3{t % b.block.x, t / b.block.x % b.block.y, t / (b.block.x * b.block.y)};
}

constexpr unsigned SCHEDULER = ~0u; /* switching "to" it: back to the OS thread's own stack */

/* From the running fiber (or the scheduler) to fiber `to`. Threads switch
 * straight to the next one in index order: one switch per wait. */
void switch_to(block_run &b, context &from, void **from_fake, unsigned to)
{
    bool back = to == SCHEDULER;
    if (!back) {
        b.current = to;
        set_index(b, to);
    }
    asan_start(from_fake, back ? b.os_stack : stack_of(to), back ? b.os_stack_bytes : STACK_BYTES);
    switch_context(from, back ? b.scheduler : b.fibers[to].ctx);
    asan_finish(from_fake ? *from_fake : nullptr, nullptr, nullptr);
}

/* The next live thread after t, in index order, wrapping; SCHEDULER if none. */
unsigned next_live(const block_run &b, unsigned t)
{
    if (t + 1 < b.threads && !b.fibers[t + 1].done)
        return t + 1;
    for (unsigned i = 1; i <= b.threads; i++) {
        unsigned u = (t + i) % b.threads;
        if (!b.fibers[u].done)
            return u;
    }
    return SCHEDULER;
}

void made_progress(block_run &b)
{
    b.idle = 0;
}

/* The running thread waits: the next one runs. Two rounds of every live
 * thread waiting with nothing arriving anywhere is a deadlock. */
void yield(block_run &b)
{
    if (++b.idle > 2ull * b.live + 2)
        fail("%s: deadlock: %u threads wait at a barrier (__syncthreads, __syncwarp or a shuffle) that the "
             "others never reach", where().c_str(), b.live);
    unsigned me = b.current, next = next_live(b, me);
    if (next != me)
        switch_to(b, b.fibers[me].ctx, &b.fibers[me].fake_stack, next);
}

void release(block_run &b, barrier &bar)
{
    bar.arrived = 0;
    bar.generation++;
    made_progress(b);
}

void wait_at(block_run &b, barrier &bar)
{
    made_progress(b);
    if (++bar.arrived == bar.expected) {
        release(b, bar);
        return;
    }
    uint64_t generation = bar.generation;
    while (bar.generation == generation)
        yield(b);
}

/* A returned thread no longer holds up its block's barriers. */
void leave(block_run &b, barrier &bar)
{
    bar.expected--;
    if (bar.arrived > 0 && bar.arrived == bar.expected)
        release(b, bar);
}

barrier &warp_of_current(block_run &b)
{
    return b.warps[b.current / 32];
}

void fiber_main()
{
    block_run &b = *running;
    asan_finish(nullptr, nullptr, nullptr);
    (*b.thread)();
    unsigned me = b.current;
    b.fibers[me].done = true;
    b.live--;
    made_progress(b);
    leave(b, b.all);
    leave(b, warp_of_current(b));
    unsigned next = next_live(b, me);
    bool back = next == SCHEDULER;
    if (!back) {
        b.current = next;
        set_index(b, next);
    }
    asan_start(nullptr, back ? b.os_stack : stack_of(next), back ? b.os_stack_bytes : STACK_BYTES);
    leave_context(b.fibers[me].ctx, back ? b.scheduler : b.fibers[next].ctx);
}

void start_fiber(block_run &b, unsigned t)
{
    fiber &f = b.fibers[t];
    f.done = false;
    make_context(f.ctx, stack_of(t), STACK_BYTES, b.scheduler);
}

void run_block(block_run &b)
{
    b.all = barrier{};
    b.all.expected = b.threads;
    for (unsigned w = 0; w < b.warps.size(); w++) {
        b.warps[w] = barrier{};
        b.warps[w].expected = std::min(32u, b.threads - 32 * w);
    }
    for (unsigned t = 0; t < b.threads; t++)
        start_fiber(b, t);
    b.live = b.threads;
    b.idle = 0;
    switch_to(b, b.scheduler, &b.scheduler_fake, 0); /* back when the last thread has returned */
}

/* The OS thread's own stack, for ASan's bookkeeping of the switches. */
void find_os_stack(block_run &b)
{
    pthread_attr_t attr;
    void *addr = nullptr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    b.os_stack = addr;
    b.os_stack_bytes = size;
}

bool launch_refused(const void *entry, dim3 grid, dim3 block, size_t smem)
{
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > MAX_THREADS || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        set_last_error(cudaErrorInvalidConfiguration);
        return true;
    }
    if (smem > dynamic_smem_limit(entry)) {
        set_last_error(cudaErrorInvalidValue);
        return true;
    }
    return false;
}

} /* namespace */

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

std::string kernel_name(const void *entry)
{
    Dl_info info;
    if (dladdr(entry, &info) == 0 || !info.dli_sname) {
        char text[40];
        snprintf(text, sizeof text, "kernel at %p", entry);
        return text;
    }
    int status = 0;
    char *plain = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    std::string name = status == 0 && plain ? plain : info.dli_sname;
    free(plain);
    return name.substr(0, name.find('('));
}

std::string where()
{
    if (!running)
        return "";
    char text[400];
    snprintf(text, sizeof text, "%s, block (%u, %u, %u), thread (%u, %u, %u)", kernel_name(running->entry).c_str(),
             blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    return text;
}

void sync_block()
{
    wait_at(*running, running->all);
}

void sync_warp(unsigned mask)
{
    if (mask != 0xffffffffu)
        fail("%s: __syncwarp with a partial mask is not emulated", where().c_str());
    wait_at(*running, warp_of_current(*running));
}

uint64_t exchange(uint64_t value, unsigned source)
{
    block_run &b = *running;
    unsigned base = b.current / 32 * 32;
    if (base + 32 > b.threads)
        fail("%s: a full-warp shuffle in a warp of %u threads", where().c_str(), b.threads - base);
    /* The lanes write the set of this barrier phase and read it after the
     * barrier; the next shuffle uses the other set, and nobody can come back
     * to this one before every lane has passed the next barrier, after its read. */
    barrier &warp = warp_of_current(b);
    size_t set = (size_t)(warp.generation & 1) * b.threads;
    b.slots[set + b.current] = value;
    wait_at(b, warp);
    return b.slots[set + base + source % 32];
}

unsigned char *dynamic_smem()
{
    return running->smem;
}

bool vector_access_ok(const void *p, bool write)
{
    const char *what = write ? "store" : "load";
    if ((uintptr_t)p % 16 != 0) {
        fault(cudaErrorMisalignedAddress, "%s: 16-byte vector %s at %p, which is not 16-byte aligned",
              where().c_str(), what, p);
        return false;
    }
    const unsigned char *c = (const unsigned char *)p;
    bool shared = running && c >= running->smem && c + 16 <= running->smem + running->smem_bytes;
    if (!shared && !in_device_memory(p, 16)) {
        fault(cudaErrorIllegalAddress, "%s: 16-byte vector %s at %p, outside device and shared memory",
              where().c_str(), what, p);
        return false;
    }
    return true;
}

void run_grid(const void *entry, dim3 grid, dim3 block, size_t smem, const std::function<void()> &thread)
{
    auto b = std::make_unique<block_run>();
    b->entry = entry;
    b->thread = &thread;
    b->block = block;
    b->threads = block.x * block.y * block.z;
    b->fibers.resize(b->threads);
    b->warps.resize((b->threads + 31) / 32);
    b->slots.resize(2 * (size_t)b->threads);
    b->smem_bytes = smem;
    size_t padded = (smem + 127) / 128 * 128 + 128;
    b->smem = (unsigned char *)aligned_alloc(128, padded);
    if (!b->smem)
        fail("cannot allocate a block's shared memory");
    gridDim = grid;
    blockDim = block;
    find_os_stack(*b);
    running = b.get();
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                memset(b->smem, 0xff, padded); /* NaN as fp32 and as bf16 */
                blockIdx = uint3{x, y, z};
                run_block(*b);
            }
    running = nullptr;
    free(b->smem);
}

namespace {

/* CUDA_EMU_PROFILE=1: the time each kernel took, summed, at exit. */
struct profile {
    std::map<std::string, std::pair<double, long>> kernels;
    ~profile()
    {
        for (auto &[name, t] : kernels)
            fprintf(stderr, "cuda_emu: %8.3f s %6ld launches %s\n", t.first, t.second, name.c_str());
    }
};

profile *profiling()
{
    static profile p;
    static bool on = getenv("CUDA_EMU_PROFILE") != nullptr;
    return on ? &p : nullptr;
}

double seconds_now()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

} /* namespace */

void launch(const void *entry, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> thread)
{
    if (launch_refused(entry, grid, block, smem))
        return;
    std::string name = kernel_name(entry);
    enqueue(s, "kernel " + name, [=] {
        double start = seconds_now();
        run_grid(entry, grid, block, smem, thread);
        if (profile *p = profiling()) {
            p->kernels[name].first += seconds_now() - start;
            p->kernels[name].second++;
        }
        check_guards(name.c_str());
        return true;
    });
}

} /* namespace cuda_emu */
