/* Residual additions and precision casts (twin of residual.c). */
#include "convert.h"
#include "ops_cuda.cuh"

__global__ void residual_forward_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = to_bf16(f32(a[i]) + f32(b[i]));
}

int residual_forward_cuda(bf16 *out, const bf16 *a, const bf16 *b, size_t n, cudaStream_t s, struct sr_error *err)
{
    launch_kernel(residual_forward_kernel, blocks_for(n, 256), 256, 0, s, out, a, b, n);
    return cuda_launched("residual_forward", err);
}

__global__ void cast_to_bf16_kernel(bf16 *out, const float *in, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = to_bf16(in[i]);
}

int cast_to_bf16_cuda(bf16 *out, const float *in, size_t n, cudaStream_t s, struct sr_error *err)
{
    launch_kernel(cast_to_bf16_kernel, blocks_for(n, 256), 256, 0, s, out, in, n);
    return cuda_launched("cast_to_bf16", err);
}

__global__ void cast_to_f32_kernel(float *out, const bf16 *in, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = f32(in[i]);
}

extern "C" int cuda_f32_to_bf16(void *dst, const float *src, size_t n, cudaStream_t s, struct sr_error *err)
{
    return cast_to_bf16_cuda((bf16 *)dst, src, n, s, err);
}

extern "C" int cuda_bf16_to_f32(float *dst, const void *src, size_t n, cudaStream_t s, struct sr_error *err)
{
    launch_kernel(cast_to_f32_kernel, blocks_for(n, 256), 256, 0, s, dst, (const bf16 *)src, n);
    return cuda_launched("cast_to_f32", err);
}
