/* cuda_emu.hpp — runs this project's CUDA code on the CPU, for tests on
 * machines without a GPU. Every emulated translation unit includes this
 * header first (the build passes it with -include), then compiles the
 * project's .cu sources unchanged with the host C++ compiler, against
 * CUDA's own headers; the runtime, cuBLAS(Lt) and NCCL calls they make link
 * against the stand-ins beside this file (emu_runtime.cpp, emu_cublas.cpp,
 * emu_nccl.cpp) instead of NVIDIA's libraries.
 *
 * What a kernel sees here (emu_device.cpp runs it):
 * - Every CUDA thread of a block is a fiber (a user-level context on one OS
 *   thread); blocks run one after another, threads in index order, each
 *   until it finishes or waits at a barrier. __syncthreads and __syncwarp
 *   are real barriers; threads that have returned count as arrived (as on
 *   sm_70 and later). A barrier that some threads never reach is reported
 *   as a deadlock instead of hanging. Because the order is fixed, a read of
 *   shared memory that another thread writes without a barrier between sees
 *   the old value every time; dynamic shared memory starts as NaN (0xff
 *   bytes), so such reads show up in results.
 * - `__shared__` variables are statics: one per kernel, which is one per
 *   block because blocks never run at once. They are not poisoned.
 * - Launches are checked as the hardware checks them (emu_device.cpp says
 *   which limits), 16-byte vector accesses must be 16-byte aligned, and
 *   device memory has guard regions (emu_runtime.cpp).
 * - WMMA follows the CUDA C++ Programming Guide at the level of whole
 *   matrices: a fragment holds its whole tile, load and store address
 *   element (i, j) at p[i * ldm + j] (row-major) or p[i + j * ldm]
 *   (column-major), mma computes D = A B + C in fp32 in order. The pointer
 *   (32-byte) and ldm (16-byte multiple) rules are checked. Lane 0 does the
 *   work for the warp; how the hardware spreads a fragment over the lanes'
 *   registers is not modelled (our kernels never touch fragment elements).
 *
 * What it cannot show: speed, real concurrency between threads or streams
 * (everything here runs one thing at a time, in an order chosen to expose
 * missing synchronisation, not to model timing), tensor-core rounding, and
 * the GPU's math functions (these are the host's; exp2f may differ in the
 * last bit). Tests use the GPU tests' tolerances.
 */
#ifndef SAGERUN_CUDA_EMU_HPP
#define SAGERUN_CUDA_EMU_HPP

/* Before CUDA's headers, which keep definitions made first. */
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <vector_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <type_traits>

using std::max;
using std::min;

/* Device math functions the host's libm lacks. */
inline float rsqrtf(float x)
{
    return 1.0f / sqrtf(x);
}

/* What CUDA's built-in variables are, set by the scheduler for the thread
 * it runs. */
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace cuda_emu {

/* Ends the process with a message: for what the hardware cannot survive
 * either (a deadlocked block, an access outside any allocation). */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A fault the hardware reports at the next synchronising call (sticky):
 * the message goes to stderr now, naming the kernel, block and thread. */
void fault(cudaError_t error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sync_block();
void sync_warp(unsigned mask);
/* Each lane's value, in 8 bytes; returns lane `source`'s. */
uint64_t exchange(uint64_t value, unsigned source);
unsigned char *dynamic_smem();

/* A 16-byte vector access at p (a float4, or a uint4 of 8 bf16): false
 * (after a fault) when p is not 16-byte aligned or not inside device
 * memory, and the access must then not happen. */
bool vector_access_ok(const void *p, bool write);

/* Enqueues a grid of `thread` calls on stream s (the launch's errors are
 * cudaGetLastError's, as with <<<>>>). */
void launch(const void *entry, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> thread);

} /* namespace cuda_emu */

/* kernel<<<grid, block, smem, s>>>(args...), as common.cuh spells it for a
 * host compiler. Arguments are copied now, as a launch copies them. */
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args)
{
    cuda_emu::launch((const void *)kernel, grid, block, smem, s, [=] { kernel(args...); });
}

/* cuda_runtime.h's overload for kernels, which only nvcc sees. */
template <typename... Params>
cudaError_t cudaFuncSetAttribute(void (*kernel)(Params...), enum cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

inline void __syncthreads()
{
    cuda_emu::sync_block();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    cuda_emu::sync_warp(mask);
}

template <typename T> T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    if (mask != 0xffffffffu || width != 32)
        cuda_emu::fail("__shfl_xor_sync over part of a warp is not emulated");
    uint64_t bits = 0;
    memcpy(&bits, &value, sizeof value);
    bits = cuda_emu::exchange(bits, (threadIdx.x % 32) ^ (unsigned)lane_mask);
    memcpy(&value, &bits, sizeof value);
    return value;
}

inline unsigned char *dynamic_smem()
{
    return cuda_emu::dynamic_smem();
}

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    float x[rows * cols]; /* the whole tile, row by row */
};

inline bool lane0()
{
    return threadIdx.x % 32 == 0;
}

template <typename T> void check_operands(const T *p, unsigned ldm)
{
    if ((uintptr_t)p % 32 != 0)
        cuda_emu::fail("wmma: pointer not 32-byte aligned");
    if (ldm * sizeof(T) % 16 != 0)
        cuda_emu::fail("wmma: ldm not a multiple of 16 bytes");
}

inline float as_float(float v)
{
    return v;
}

inline float as_float(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

/* Element (i, j) of a matrix at p with leading dimension ldm. */
template <typename T> T element(const T *p, unsigned ldm, bool row_major, int i, int j)
{
    return row_major ? p[(size_t)i * ldm + j] : p[i + (size_t)j * ldm];
}

template <typename F, typename T> void load(F &f, const T *p, unsigned ldm, bool row_major)
{
    check_operands(p, ldm);
    if (!lane0())
        return;
    for (int i = 0; i < F::rows; i++)
        for (int j = 0; j < F::cols; j++)
            f.x[i * F::cols + j] = as_float(element(p, ldm, row_major, i, j));
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const T *p, unsigned ldm)
{
    load(f, p, ldm, std::is_same_v<Layout, row_major>);
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm, layout_t layout)
{
    load(f, p, ldm, layout == mem_row_major);
}

template <int M, int N, int K>
void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t layout)
{
    check_operands(p, ldm);
    if (!lane0())
        return;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            (layout == mem_row_major ? p[(size_t)i * ldm + j] : p[i + (size_t)j * ldm]) = f.x[i * N + j];
}

template <typename F> void fill_fragment(F &f, float value)
{
    if (lane0())
        std::fill(f.x, f.x + F::rows * F::cols, value);
}

template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
              const fragment<matrix_b, M, N, K, T, LB> &b, const fragment<accumulator, M, N, K, float> &c)
{
    if (!lane0())
        return;
    float out[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float sum = c.x[i * N + j];
            for (int k = 0; k < K; k++)
                sum += a.x[i * K + k] * b.x[k * N + j];
            out[i * N + j] = sum;
        }
    std::copy(out, out + M * N, d.x);
}

} /* namespace wmma */
} /* namespace nvcuda */

#endif
