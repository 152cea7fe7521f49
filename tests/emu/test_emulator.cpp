/* The emulator itself (cuda_emu.hpp, emu_device.cpp, emu_runtime.cpp): it
 * must refuse what the hardware refuses, and order stream work as CUDA
 * defines, or the kernel and engine tests that run on it prove nothing.
 * Each refusal is a deliberately wrong launch or access; faults that end
 * a kernel for good run in a child process, whose death is the result.
 */
#include "cuda_emu.hpp"

#include "device.cuh"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

extern "C" {
#include <cmocka.h>
void cuda_emu_set_arch(int arch);
}

/* Kernels and tests have external linkage: the emulator names kernels
 * from the symbol table. */

#define CHECK(call) assert_int_equal((call), cudaSuccess)

void write_index_kernel(float *out, int n)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n)
        out[i] = (float)i;
}

void touch_smem_kernel(float *out, int floats)
{
    float *smem = (float *)dynamic_smem();
    for (int i = (int)threadIdx.x; i < floats; i += (int)blockDim.x)
        smem[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0)
        out[0] = smem[floats - 1];
}

/* The wrong launches: each leaves its error for cudaGetLastError, runs
 * nothing, and the next launch is unaffected (launch errors are not sticky). */
void launch_refusals(void **state)
{
    (void)state;
    float *out;
    CHECK(cudaMalloc((void **)&out, 4096 * sizeof(float)));
    struct {
        dim3 grid, block;
        size_t smem;
        cudaError_t error;
        const char *what;
    } wrong[] = {
        {dim3(1), dim3(2048), 0, cudaErrorInvalidConfiguration, "2048 threads per block"},
        {dim3(1), dim3(0), 0, cudaErrorInvalidConfiguration, "a block of 0 threads"},
        {dim3(1), dim3(32, 1, 65), 0, cudaErrorInvalidConfiguration, "block z over 64"},
        {dim3(0), dim3(32), 0, cudaErrorInvalidConfiguration, "a grid of 0 blocks"},
        {dim3(1, 65536), dim3(32), 0, cudaErrorInvalidConfiguration, "grid y over 65535"},
        {dim3(1), dim3(32), 49153, cudaErrorInvalidValue, "dynamic shared memory over 48 KiB"},
    };
    for (auto &w : wrong) {
        print_message("  %s\n", w.what);
        launch_kernel(write_index_kernel, w.grid, w.block, w.smem, 0, out, 4096);
        assert_int_equal(cudaGetLastError(), w.error);
        assert_int_equal(cudaGetLastError(), cudaSuccess);
    }
    launch_kernel(write_index_kernel, dim3(4), dim3(1024), 0, 0, out, 4096);
    CHECK(cudaGetLastError());
    float last;
    CHECK(cudaMemcpy(&last, out + 4095, 4, cudaMemcpyDeviceToHost));
    assert_true(last == 4095.0f);
    CHECK(cudaFree(out));
}

/* More than 48 KiB needs the kernel's opt-in, which is bounded by the
 * architecture: 227 KiB on sm_90, 163 KiB on sm_80. */
void shared_memory_opt_in(void **state)
{
    (void)state;
    float *out;
    CHECK(cudaMalloc((void **)&out, 4));
    size_t bytes = 100 << 10;
    launch_kernel(touch_smem_kernel, dim3(1), dim3(256), bytes, 0, out, (int)(bytes / 4));
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    launch_kernel(touch_smem_kernel, dim3(1), dim3(256), bytes, 0, out, (int)(bytes / 4));
    CHECK(cudaGetLastError());
    float got;
    CHECK(cudaMemcpy(&got, out, 4, cudaMemcpyDeviceToHost));
    assert_true(got == (float)(bytes / 4 - 1));
    launch_kernel(touch_smem_kernel, dim3(1), dim3(256), bytes + 4, 0, out, (int)(bytes / 4));
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidValue); /* over what was opted in */
    assert_int_equal(cudaFuncSetAttribute(touch_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 << 10),
                     cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 << 10));
    cuda_emu_set_arch(80);
    assert_int_equal(cudaFuncSetAttribute(touch_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 164 << 10),
                     cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 163 << 10));
    cuda_emu_set_arch(90);
    CHECK(cudaFree(out));
}

void copy16_kernel(unsigned char *dst, const unsigned char *src, int offset)
{
    copy16(dst, src + offset);
}

/* A 16-byte vector load through a pointer that is not 16-byte aligned is
 * a fault: sticky, reported by the next synchronising call and every one
 * after, until the device is reset. */
void misaligned_vector_load(void **state)
{
    (void)state;
    unsigned char *buf, *dst;
    CHECK(cudaMalloc((void **)&buf, 64));
    CHECK(cudaMalloc((void **)&dst, 16));
    launch_kernel(copy16_kernel, dim3(1), dim3(32), 0, 0, dst, buf, 16);
    CHECK(cudaDeviceSynchronize());
    launch_kernel(copy16_kernel, dim3(1), dim3(32), 0, 0, dst, buf, 2); /* a bf16 off */
    CHECK(cudaGetLastError());                                          /* the launch itself was fine */
    assert_int_equal(cudaDeviceSynchronize(), cudaErrorMisalignedAddress);
    void *more;
    assert_int_equal(cudaMalloc(&more, 16), cudaErrorMisalignedAddress);
    CHECK(cudaDeviceReset());
}

/* Runs `body` in a child; returns what it wrote to stderr, with its end. */
struct death {
    int status;
    std::string stderr_text;
};

template <typename F> death in_child(F body)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT})
            signal(sig, SIG_DFL); /* cmocka's handlers would go on with the next test here */
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        body();
        _exit(0);
    }
    close(pipefd[1]);
    death d{0, ""};
    char chunk[4096];
    ssize_t n;
    while ((n = read(pipefd[0], chunk, sizeof chunk)) > 0)
        d.stderr_text.append(chunk, (size_t)n);
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &d.status, 0), pid);
    return d;
}

bool under_asan()
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#else
    return false;
#endif
}

/* Writes one element past an allocation of 100 floats (inside its last
 * 256-byte granule): caught by the guard bytes after the kernel, or by
 * ASan at the write in sanitizer builds. */
void write_past_an_allocation(void **state)
{
    (void)state;
    death d = in_child([] {
        float *out;
        if (cudaMalloc((void **)&out, 100 * sizeof(float)) != cudaSuccess)
            _exit(2);
        launch_kernel(write_index_kernel, dim3(1), dim3(128), 0, 0, out, 101); /* the bug: n one too many */
        _exit(cudaDeviceSynchronize() == cudaErrorIllegalAddress ? 10 : 3);
    });
    print_message("  %s", d.stderr_text.c_str());
    if (under_asan()) {
        assert_false(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 3);
        assert_non_null(strstr(d.stderr_text.c_str(), "AddressSanitizer"));
    } else {
        assert_true(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 10);
        assert_non_null(strstr(d.stderr_text.c_str(), "wrote outside device memory, next to the 400-byte allocation"));
    }
}

void read_kernel(float *out, const float *in, int i)
{
    if (threadIdx.x == 0)
        out[0] = in[i];
}

/* Reads one element past an allocation that fills its pages: the page
 * after is unmapped, so the read itself faults, named. */
void read_past_an_allocation(void **state)
{
    (void)state;
    death d = in_child([] {
        float *in, *out;
        if (cudaMalloc((void **)&in, 4096) != cudaSuccess || cudaMalloc((void **)&out, 4) != cudaSuccess)
            _exit(2);
        launch_kernel(read_kernel, dim3(1), dim3(32), 0, 0, out, in, 1024);
        cudaDeviceSynchronize();
        _exit(3);
    });
    print_message("  %s", d.stderr_text.c_str());
    assert_true(d.status != 0 && !(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 3));
    if (!under_asan())
        assert_non_null(strstr(d.stderr_text.c_str(), "read_kernel, block (0, 0, 0), thread (0, 0, 0): access at"));
}

void divergent_barrier_kernel(float *out)
{
    if (threadIdx.x < 16)
        __syncwarp(); /* half a warp waits for the other half, which waits at the block's barrier */
    else
        __syncthreads();
    out[threadIdx.x] = 1.0f;
}

void barrier_deadlock_is_reported(void **state)
{
    (void)state;
    death d = in_child([] {
        float *out;
        if (cudaMalloc((void **)&out, 64 * 4) != cudaSuccess)
            _exit(2);
        launch_kernel(divergent_barrier_kernel, dim3(1), dim3(64), 0, 0, out);
        cudaDeviceSynchronize();
        _exit(3);
    });
    assert_true(WIFSIGNALED(d.status));
    assert_non_null(strstr(d.stderr_text.c_str(), "divergent_barrier_kernel, block (0, 0, 0)"));
    assert_non_null(strstr(d.stderr_text.c_str(), "deadlock: 64 threads wait at a barrier"));
}

/* Threads run in index order up to each barrier: without one, thread 0
 * reads its neighbour's slot before the neighbour wrote it (NaN). */
void neighbour_kernel(float *out, int with_barrier)
{
    float *smem = (float *)dynamic_smem();
    smem[threadIdx.x] = (float)threadIdx.x;
    if (with_barrier)
        __syncthreads();
    out[threadIdx.x] = smem[(threadIdx.x + 1) % blockDim.x];
}

void missing_barrier_reads_stale_shared_memory(void **state)
{
    (void)state;
    float *out, got[64];
    CHECK(cudaMalloc((void **)&out, sizeof got));
    launch_kernel(neighbour_kernel, dim3(1), dim3(64), 64 * 4, 0, out, 0);
    CHECK(cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost));
    assert_true(std::isnan(got[0]));
    launch_kernel(neighbour_kernel, dim3(1), dim3(64), 64 * 4, 0, out, 1);
    CHECK(cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 64; i++)
        assert_true(got[i] == (float)((i + 1) % 64));
    CHECK(cudaFree(out));
}

void warp_sum_kernel(float *out)
{
    out[threadIdx.x] = warp_sum((float)threadIdx.x);
}

void warp_shuffles_sum_a_warp(void **state)
{
    (void)state;
    float *out, got[64];
    CHECK(cudaMalloc((void **)&out, sizeof got));
    launch_kernel(warp_sum_kernel, dim3(1), dim3(64), 0, 0, out);
    CHECK(cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 64; i++)
        assert_true(got[i] == (i < 32 ? 496.0f : 1520.0f)); /* 0 + ... + 31, 32 + ... + 63 */
    CHECK(cudaFree(out));
}

void add_kernel(float *x, float v)
{
    x[threadIdx.x] += v;
}

void copy_kernel(float *dst, const float *src)
{
    dst[threadIdx.x] = src[threadIdx.x];
}

/* Work on a stream runs in order; another stream's work runs before it
 * only when waited for (cudaStreamWaitEvent), as CUDA defines; unwaited,
 * it is still queued when the consumer runs. */
void streams_order_only_what_waits(void **state)
{
    (void)state;
    cudaStream_t producer, consumer;
    cudaEvent_t produced;
    CHECK(cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&consumer, cudaStreamNonBlocking));
    CHECK(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming));
    float *x, *y, got[32];
    CHECK(cudaMalloc((void **)&x, sizeof got));
    CHECK(cudaMalloc((void **)&y, sizeof got));
    for (int wait = 0; wait < 2; wait++) {
        CHECK(cudaMemset(x, 0, sizeof got));
        launch_kernel(add_kernel, dim3(1), dim3(32), 0, producer, x, 1.0f);
        launch_kernel(add_kernel, dim3(1), dim3(32), 0, producer, x, 2.0f); /* in order: 3 */
        CHECK(cudaEventRecord(produced, producer));
        if (wait)
            CHECK(cudaStreamWaitEvent(consumer, produced, 0));
        launch_kernel(copy_kernel, dim3(1), dim3(32), 0, consumer, y, x);
        CHECK(cudaStreamSynchronize(consumer));
        CHECK(cudaMemcpy(got, y, sizeof got, cudaMemcpyDeviceToHost));
        print_message("  %s: the consumer read %g\n", wait ? "waited" : "no wait", got[0]);
        assert_true(got[0] == (wait ? 3.0f : 0.0f));
        CHECK(cudaStreamSynchronize(producer));
        assert_int_equal(cudaEventQuery(produced), cudaSuccess);
    }
    CHECK(cudaEventDestroy(produced));
    CHECK(cudaStreamDestroy(producer));
    CHECK(cudaStreamDestroy(consumer));
    CHECK(cudaFree(x));
    CHECK(cudaFree(y));
}

/* The legacy default stream and a blocking stream wait for each other; a
 * non-blocking one does not. An asynchronous copy reads its source when it
 * runs, so the host must not change it before then. */
void legacy_stream_and_async_copies(void **state)
{
    (void)state;
    cudaStream_t blocking, free_running;
    CHECK(cudaStreamCreate(&blocking));
    CHECK(cudaStreamCreateWithFlags(&free_running, cudaStreamNonBlocking));
    float *x, got = 0, host = 5.0f;
    CHECK(cudaMalloc((void **)&x, 32 * sizeof(float)));
    CHECK(cudaMemset(x, 0, 32 * sizeof(float)));
    launch_kernel(add_kernel, dim3(1), dim3(32), 0, blocking, x, 1.0f);
    CHECK(cudaMemcpy(&got, x, 4, cudaMemcpyDeviceToHost)); /* legacy: waits for the blocking stream */
    assert_true(got == 1.0f);
    launch_kernel(add_kernel, dim3(1), dim3(32), 0, free_running, x, 1.0f);
    CHECK(cudaMemcpy(&got, x, 4, cudaMemcpyDeviceToHost)); /* does not wait */
    assert_true(got == 1.0f);
    CHECK(cudaStreamSynchronize(free_running));
    CHECK(cudaMemcpyAsync(x, &host, 4, cudaMemcpyHostToDevice, free_running));
    host = 7.0f; /* before the copy ran */
    CHECK(cudaStreamSynchronize(free_running));
    CHECK(cudaMemcpy(&got, x, 4, cudaMemcpyDeviceToHost));
    assert_true(got == 7.0f);
    assert_int_equal(cudaMemcpy(&got, x + 31, 8, cudaMemcpyDeviceToHost), cudaErrorInvalidValue); /* past its end */
    CHECK(cudaStreamDestroy(blocking));
    CHECK(cudaStreamDestroy(free_running));
    CHECK(cudaFree(x));
}

void timing_events(void **state)
{
    (void)state;
    cudaEvent_t a, b, untimed;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    CHECK(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming));
    CHECK(cudaEventRecord(a, 0));
    CHECK(cudaEventRecord(b, 0));
    CHECK(cudaEventRecord(untimed, 0));
    float ms = -1;
    assert_int_equal(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady); /* nothing ran yet */
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&ms, a, b));
    assert_true(ms >= 0.0f);
    CHECK(cudaEventSynchronize(untimed));
    assert_int_equal(cudaEventElapsedTime(&ms, a, untimed), cudaErrorInvalidResourceHandle);
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    CHECK(cudaEventDestroy(untimed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(launch_refusals),
        cmocka_unit_test(shared_memory_opt_in),
        cmocka_unit_test(misaligned_vector_load),
        cmocka_unit_test(write_past_an_allocation),
        cmocka_unit_test(read_past_an_allocation),
        cmocka_unit_test(barrier_deadlock_is_reported),
        cmocka_unit_test(missing_barrier_reads_stale_shared_memory),
        cmocka_unit_test(warp_shuffles_sum_a_warp),
        cmocka_unit_test(streams_order_only_what_waits),
        cmocka_unit_test(legacy_stream_and_async_copies),
        cmocka_unit_test(timing_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
