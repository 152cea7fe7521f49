/* device.cuh — device-side helpers built from nothing but CUDA's own
 * intrinsics (shuffles, barriers, bf16 conversions), so that the CPU
 * emulator in tests/emu compiles them along with the kernels that use them
 * (__CUDACC__ tells nvcc from a host compiler). Anything that needs the
 * CUDA runtime belongs in common.cuh.
 */
#ifndef SAGERUN_CUDA_DEVICE_CUH
#define SAGERUN_CUDA_DEVICE_CUH

#include <cuda_bf16.h>
#include <math.h>
#include <string.h>

typedef __nv_bfloat16 bf16;

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

/* 16 bytes (8 bf16) from src to dst, both 16-byte aligned: one vector
 * load and store on the GPU. Under a host compiler (the emulator in
 * tests/emu) the emulator checks what the hardware requires of them. */
__device__ __forceinline__ void copy16(void *dst, const void *src)
{
#ifdef __CUDACC__
    *(uint4 *)dst = *(const uint4 *)src;
#else
    if (cuda_emu::vector_access_ok(src, false) && cuda_emu::vector_access_ok(dst, true))
        memcpy(dst, src, 16);
#endif
}

__device__ __forceinline__ void zero16(void *dst)
{
#ifdef __CUDACC__
    *(uint4 *)dst = make_uint4(0, 0, 0, 0);
#else
    if (cuda_emu::vector_access_ok(dst, true))
        memset(dst, 0, 16);
#endif
}

#endif
