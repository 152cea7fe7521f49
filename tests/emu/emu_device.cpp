/* emu_device.cpp — the emulator's kernel scheduler: each CUDA thread of a
 * block as a fiber (a stack of its own on one OS thread), run in index order until it finishes or
 * waits at a barrier; blocks one after another (cuda_emu.hpp says what this
 * shows and what it cannot).
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
#include <stdarg.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

namespace cuda_emu {
namespace {

constexpr unsigned MAX_THREADS = 1024;
/* Room for a kernel's locals (the fused attention's fragments are a few
 * KiB) and, under ASan, its redzones. Mapped once, touched as used. */
constexpr size_t STACK_BYTES = EMU_ASAN ? (1u << 20) : (256u << 10);

struct barrier {
    unsigned expected = 0, arrived = 0;
    uint64_t generation = 0;
};

/* Switching between fibers: on x86-64 a few instructions that save what
 * the ABI makes callee-saved (ucontext's swapcontext also saves the signal
 * mask, a system call per switch, which made most of a test's time);
 * elsewhere ucontext. */
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
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
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
    uint32_t control[2];
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
    *--sp = nullptr;
    memcpy(sp, control, sizeof control);
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
    std::vector<uint64_t> slots; /* a lane's value during a shuffle */
    unsigned char *smem;
    size_t smem_bytes;
    unsigned current = 0;
    uint64_t progress = 0; /* arrivals, releases and exits: a pass without any is a deadlock */
    context scheduler;
    void *scheduler_fake = nullptr;
    const void *scheduler_stack = nullptr;
    size_t scheduler_stack_bytes = 0;
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
        stacks = (char *)p;
    }
    return stacks + (size_t)t * STACK_BYTES;
}

void set_index(const block_run &b, unsigned t)
{
    threadIdx = uint3{t % b.block.x, t / b.block.x % b.block.y, t / (b.block.x * b.block.y)};
}

void resume(block_run &b, unsigned t)
{
    b.current = t;
    set_index(b, t);
    asan_start(&b.scheduler_fake, stack_of(t), STACK_BYTES);
    switch_context(b.scheduler, b.fibers[t].ctx);
    asan_finish(b.scheduler_fake, nullptr, nullptr);
}

void yield(block_run &b)
{
    fiber &f = b.fibers[b.current];
    asan_start(&f.fake_stack, b.scheduler_stack, b.scheduler_stack_bytes);
    switch_context(f.ctx, b.scheduler);
    asan_finish(f.fake_stack, nullptr, nullptr);
}

void release(block_run &b, barrier &bar)
{
    bar.arrived = 0;
    bar.generation++;
    b.progress++;
}

void wait_at(block_run &b, barrier &bar)
{
    b.progress++;
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
    asan_finish(nullptr, &b.scheduler_stack, &b.scheduler_stack_bytes);
    (*b.thread)();
    b.fibers[b.current].done = true;
    b.progress++;
    leave(b, b.all);
    leave(b, warp_of_current(b));
    asan_start(nullptr, b.scheduler_stack, b.scheduler_stack_bytes);
    leave_context(b.fibers[b.current].ctx, b.scheduler);
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
    for (unsigned live = b.threads; live > 0;) {
        uint64_t before = b.progress;
        for (unsigned t = 0; t < b.threads; t++)
            if (!b.fibers[t].done) {
                resume(b, t);
                live -= b.fibers[t].done;
            }
        if (live > 0 && b.progress == before)
            fail("%s: deadlock: %u threads wait at a barrier (__syncthreads, __syncwarp or a shuffle) that the "
                 "others never reach", where().c_str(), live);
    }
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
    b.slots[b.current] = value;
    wait_at(b, warp_of_current(b));
    uint64_t theirs = b.slots[base + source % 32];
    wait_at(b, warp_of_current(b)); /* nobody overwrites a slot before it is read */
    return theirs;
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
    b->slots.resize(b->threads);
    b->smem_bytes = smem;
    size_t padded = (smem + 127) / 128 * 128 + 128;
    b->smem = (unsigned char *)aligned_alloc(128, padded);
    if (!b->smem)
        fail("cannot allocate a block's shared memory");
    gridDim = grid;
    blockDim = block;
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

void launch(const void *entry, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> thread)
{
    if (launch_refused(entry, grid, block, smem))
        return;
    std::string name = kernel_name(entry);
    enqueue(s, "kernel " + name, [=] {
        run_grid(entry, grid, block, smem, thread);
        check_guards(name.c_str());
        return true;
    });
}

} /* namespace cuda_emu */
