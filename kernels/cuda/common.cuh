/* common.cuh — what every CUDA kernel file shares: the bf16 type, error
 * checks that name the call, warp and block reductions.
 *
 * Every launcher in this directory enqueues work on the stream it is given
 * and returns 0, or -1 with a message in `err` naming the kernel or library
 * call and CUDA's reason. A launch error is caught right after the launch
 * (cudaGetLastError); an error while the kernel runs surfaces at the next
 * synchronising call, which the caller checks the same way.
 */
#ifndef SAGERUN_CUDA_COMMON_CUH
#define SAGERUN_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "error.h"
#include "ops.h" /* the CPU twins: shared constants */
}

typedef __nv_bfloat16 bf16;

#define CUDA_TRY(call, err)                                                                             \
    do {                                                                                                \
        cudaError_t status_ = (call);                                                                   \
        if (status_ != cudaSuccess) {                                                                   \
            error_setf((err), "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,                       \
                       cudaGetErrorString(status_));                                                    \
            return -1;                                                                                  \
        }                                                                                               \
    } while (0)

/* After a <<<...>>> launch: the launch's own error, named by kernel. */
static inline int cuda_launched(const char *kernel, struct sr_error *err)
{
    cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
        error_setf(err, "CUDA kernel %s failed to launch: %s", kernel, cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

static inline unsigned blocks_for(size_t n, unsigned threads)
{
    return (unsigned)((n + threads - 1) / threads);
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* Sum over a block of at most 1024 threads, the same order every time (so
 * results are bit-reproducible); every thread gets the total. `shared`
 * holds 32 floats. */
__device__ __forceinline__ float block_sum(float v, float *shared)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_sum(v);
    __syncthreads(); /* shared may still be read by a previous call */
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float *shared)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : -INFINITY;
    return warp_max(v);
}

__device__ __forceinline__ float f32(bf16 x)
{
    return __bfloat162float(x);
}

__device__ __forceinline__ bf16 to_bf16(float x)
{
    return __float2bfloat16_rn(x);
}

#endif
