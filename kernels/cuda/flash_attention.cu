/* Fused causal attention (the kernels and the algorithm are in
 * flash_attention_kernels.cuh): launchers, one instance per supported head
 * size. */
#include <math.h>
#include <mma.h>

#include "ops_cuda.cuh"

/* The kernels take their shared memory as one dynamic allocation (the
 * emulator in tests/emu has its own). */
#ifdef __CUDACC__
__device__ __forceinline__ unsigned char *dynamic_smem()
{
    extern __shared__ __align__(128) unsigned char smem[];
    return smem;
}
#endif

#include "flash_attention_kernels.cuh"

bool flash_attention_supports(int head_size)
{
    return head_size == 16 || head_size == 32 || head_size == 64 || head_size == 128;
}

/* Every tile row is moved in 16-byte vectors. */
static int check_aligned(const char *what, const void *p, struct sr_error *err)
{
    if ((uintptr_t)p % 16 != 0) {
        error_setf(err, "flash attention: %s at %p is not 16-byte aligned", what, p);
        return -1;
    }
    return 0;
}

/* Lets `kernel` have `bytes` of dynamic shared memory (over the 48 KiB
 * default, which needs the opt-in). */
template <typename Kernel> static int allow_smem(Kernel kernel, const char *name, size_t bytes, struct sr_error *err)
{
    cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (status != cudaSuccess) {
        error_setf(err, "flash attention: %s cannot have %zu bytes of shared memory: %s", name, bytes,
                   cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

template <int HS>
static int forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int NH, cudaStream_t s,
                   struct sr_error *err)
{
    size_t bytes = flash::forward_smem<HS>(0).bytes;
    if (allow_smem(flash::flash_forward_kernel<HS>, "the forward kernel", bytes, err) != 0)
        return -1;
    dim3 grid((T + flash::TILE - 1) / flash::TILE, B * NH);
    launch_kernel(flash::flash_forward_kernel<HS>, grid, flash::THREADS, bytes, s, out, lse, qkv, T, NH,
                  flash::LOG2E / sqrtf((float)HS));
    return cuda_launched("flash_forward", err);
}

template <int HS>
static int backward(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *delta, int B,
                    int T, int NH, cudaStream_t s, struct sr_error *err)
{
    size_t bytes = flash::backward_smem<HS>(0).bytes;
    if (allow_smem(flash::flash_backward_kv_kernel<HS>, "the dk/dv kernel", bytes, err) != 0 ||
        allow_smem(flash::flash_backward_q_kernel<HS>, "the dq kernel", bytes, err) != 0)
        return -1;
    dim3 grid((T + flash::TILE - 1) / flash::TILE, B * NH);
    float scale = 1.0f / sqrtf((float)HS), scale_log2 = flash::LOG2E * scale;
    launch_kernel(flash::flash_backward_kv_kernel<HS>, grid, flash::THREADS, bytes, s, dqkv, dout, qkv, lse, delta, T,
                  NH, scale_log2, scale);
    if (cuda_launched("flash_backward_kv", err) != 0)
        return -1;
    launch_kernel(flash::flash_backward_q_kernel<HS>, grid, flash::THREADS, bytes, s, dqkv, dout, qkv, lse, delta, T,
                  NH, scale_log2, scale);
    return cuda_launched("flash_backward_q", err);
}

static int unsupported(int HS, struct sr_error *err)
{
    error_setf(err, "flash attention: head size %d is not one of " FLASH_ATTENTION_HEAD_SIZES, HS);
    return -1;
}

int flash_attention_forward_cuda(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                                 cudaStream_t s, struct sr_error *err)
{
    if (check_aligned("qkv", qkv, err) != 0)
        return -1;
    switch (C / NH) {
    case 16: return forward<16>(out, lse, qkv, B, T, NH, s, err);
    case 32: return forward<32>(out, lse, qkv, B, T, NH, s, err);
    case 64: return forward<64>(out, lse, qkv, B, T, NH, s, err);
    case 128: return forward<128>(out, lse, qkv, B, T, NH, s, err);
    default: return unsupported(C / NH, err);
    }
}

int flash_attention_backward_cuda(bf16 *dqkv, float *delta, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                                  const float *lse, int B, int T, int C, int NH, cudaStream_t s,
                                  struct sr_error *err)
{
    int HS = C / NH;
    if (!flash_attention_supports(HS))
        return unsupported(HS, err);
    if (check_aligned("qkv", qkv, err) != 0 || check_aligned("dout", dout, err) != 0)
        return -1;
    size_t rows = (size_t)B * T * NH;
    launch_kernel(flash::flash_delta_kernel, blocks_for(rows, 8), 256, 0, s, delta, dout, out, B, T, NH, HS);
    if (cuda_launched("flash_delta", err) != 0)
        return -1;
    switch (HS) {
    case 16: return backward<16>(dqkv, dout, qkv, lse, delta, B, T, NH, s, err);
    case 32: return backward<32>(dqkv, dout, qkv, lse, delta, B, T, NH, s, err);
    case 64: return backward<64>(dqkv, dout, qkv, lse, delta, B, T, NH, s, err);
    default: return backward<128>(dqkv, dout, qkv, lse, delta, B, T, NH, s, err);
    }
}
