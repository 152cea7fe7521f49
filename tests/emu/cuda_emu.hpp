/* cuda_emu.hpp — runs this project's CUDA kernels on the CPU, for tests on
 * machines without a GPU. The kernel source is compiled unchanged by the
 * host C++ compiler; this header supplies what nvcc would: the thread and
 * block indices, barriers, warp shuffles, dynamic shared memory, and WMMA.
 *
 * How faithful it is, and where it is not:
 * - Every CUDA thread of a block is an OS thread, all running at once;
 *   __syncthreads and __syncwarp are real barriers (of the block, of the 32
 *   lanes). Blocks run one after another. A kernel that reads shared memory
 *   another thread writes without the barrier between may read the old
 *   value here too; shared memory starts as NaN (0xff bytes), so such a
 *   read tends to show up in the results.
 * - WMMA follows the CUDA C++ Programming Guide's definition at the level
 *   of whole matrices: a fragment holds its whole 16 x 16 tile, load and
 *   store address element (i, j) at p[i * ldm + j] (row-major) or
 *   p[i + j * ldm] (column-major), mma computes D = A B + C in fp32. The
 *   pointer (32-byte) and ldm (16-byte multiple) rules are checked. Lane 0
 *   does the work for the warp; the hardware's spread of a fragment over
 *   the lanes' registers is not modelled, which is fine for kernels that
 *   never touch fragment elements directly (ours do not).
 * - Math functions are the host's (exp2f may differ from the GPU's in the
 *   last bit), and fp32 sums in mma run in order, where tensor cores may
 *   round differently: tests use tolerances, as on the GPU.
 *
 * Global state here stands in for CUDA's own (built-in indices, the current
 * block), which kernels reach without arguments.
 */
#ifndef SAGERUN_CUDA_EMU_HPP
#define SAGERUN_CUDA_EMU_HPP

/* Before cuda_bf16.h, so its host/device annotations become plain C++. */
#define __global__
#define __device__
#define __host__
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <vector_types.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

using std::min;

namespace cuda_emu {

struct block {
    std::barrier<> all;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<float> exchange; /* a slot per thread for shuffles */
    unsigned char *smem;
    explicit block(unsigned threads, unsigned char *shared)
        : all((std::ptrdiff_t)threads), exchange(threads), smem(shared)
    {
        for (unsigned w = 0; w < threads / 32; w++)
            warps.push_back(std::make_unique<std::barrier<>>(32));
    }
};

inline block *current; /* the block running now */

[[noreturn]] inline void fail(const char *what)
{
    fprintf(stderr, "cuda_emu: %s\n", what);
    abort();
}

} /* namespace cuda_emu */

inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncthreads()
{
    cuda_emu::current->all.arrive_and_wait();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    if (mask != 0xffffffffu)
        cuda_emu::fail("__syncwarp with a partial mask is not emulated");
    cuda_emu::current->warps[threadIdx.x / 32]->arrive_and_wait();
}

inline float __shfl_xor_sync(unsigned mask, float value, int lane_mask, int width = 32)
{
    if (mask != 0xffffffffu || width != 32)
        cuda_emu::fail("__shfl_xor_sync over part of a warp is not emulated");
    cuda_emu::block *b = cuda_emu::current;
    unsigned me = threadIdx.x, warp = me / 32;
    b->exchange[me] = value;
    b->warps[warp]->arrive_and_wait();
    float other = b->exchange[warp * 32 + ((me % 32) ^ (unsigned)lane_mask)];
    b->warps[warp]->arrive_and_wait(); /* nobody overwrites a slot before it is read */
    return other;
}

inline unsigned char *dynamic_smem()
{
    return cuda_emu::current->smem;
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

namespace cuda_emu {

/* kernel<<<grid, threads, smem_bytes>>>(args...), run to completion. */
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, unsigned threads, size_t smem_bytes, Args... args)
{
    if (threads % 32 != 0 || threads == 0 || threads > 1024)
        fail("threads per block must be a multiple of 32, at most 1024");
    size_t padded = (smem_bytes + 127) / 128 * 128 + 128;
    unsigned char *shared = (unsigned char *)aligned_alloc(128, padded);
    if (!shared)
        fail("cannot allocate the block's shared memory");
    gridDim = grid;
    blockDim = dim3(threads);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                memset(shared, 0xff, padded); /* NaN as fp32 and as bf16 */
                block b(threads, shared);
                current = &b;
                std::vector<std::thread> pool;
                for (unsigned t = 0; t < threads; t++)
                    pool.emplace_back([&, t] {
                        threadIdx = uint3{t, 0, 0};
                        blockIdx = uint3{x, y, z};
                        kernel(args...);
                    });
                for (std::thread &th : pool)
                    th.join();
                current = nullptr;
            }
    free(shared);
}

} /* namespace cuda_emu */

/* What device.cuh builds on; then the project's device helpers. */
#include "device.cuh"

#endif
