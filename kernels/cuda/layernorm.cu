/* LayerNorm on the GPU (twin of layernorm.c): a warp per row, statistics
 * in fp32 with the same two passes as the CPU version. */
#include "ops_cuda.cuh"

#define LN_WARPS 8 /* rows per block */

__global__ void layernorm_forward_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const float *weight,
                                         const float *bias, int N, int C)
{
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N)
        return;
    const bf16 *x = inp + (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32)
        sum += f32(x[c]);
    float m = warp_sum(sum) / (float)C;
    float var = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = f32(x[c]) - m;
        var += d * d;
    }
    float r = rsqrtf(warp_sum(var) / (float)C + LAYERNORM_EPS);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        o[c] = to_bf16((f32(x[c]) - m) * r * weight[c] + bias[c]);
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

int layernorm_forward_cuda(bf16 *out, float *mean, float *rstd, const bf16 *inp, const float *weight,
                           const float *bias, int N, int C, cudaStream_t s, struct sr_error *err)
{
    launch_kernel(layernorm_forward_kernel, blocks_for((size_t)N, LN_WARPS), LN_WARPS * 32, 0, s, out, mean, rstd, inp,
                  weight, bias, N, C);
    return cuda_launched("layernorm_forward", err);
}

/* The backward pass spreads rows over LN_BACKWARD_WARPS warps. Each warp
 * owns a row of partial sums for dweight and dbias (no atomics, so the sums
 * are reproducible); a second kernel adds the partials up in warp order. */
#define LN_BACKWARD_WARPS 512

size_t layernorm_scratch_floats(int C)
{
    return (size_t)LN_BACKWARD_WARPS * 2 * (size_t)C;
}

__global__ void layernorm_backward_rows_kernel(float *dinp, float *partials, const bf16 *dout, const bf16 *inp,
                                               const float *weight, const float *mean, const float *rstd, int N,
                                               int C)
{
    int warp = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp >= LN_BACKWARD_WARPS)
        return;
    float *pw = partials + (size_t)warp * 2 * C, *pb = pw + C;
    for (int c = lane; c < C; c += 32)
        pw[c] = pb[c] = 0.0f;
    int rows_per_warp = (N + LN_BACKWARD_WARPS - 1) / LN_BACKWARD_WARPS;
    int first = warp * rows_per_warp, last = min(N, first + rows_per_warp);
    for (int row = first; row < last; row++) {
        const bf16 *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
        float m = mean[row], r = rstd[row];
        float g_sum = 0.0f, gx_sum = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float xhat = (f32(x[c]) - m) * r, g = f32(d[c]) * weight[c];
            g_sum += g;
            gx_sum += g * xhat;
        }
        float g_mean = warp_sum(g_sum) / (float)C, gx_mean = warp_sum(gx_sum) / (float)C;
        float *dx = dinp + (size_t)row * C;
        for (int c = lane; c < C; c += 32) {
            float dc = f32(d[c]), xhat = (f32(x[c]) - m) * r, g = dc * weight[c];
            pb[c] += dc;
            pw[c] += dc * xhat;
            dx[c] += r * (g - g_mean - xhat * gx_mean);
        }
    }
}

__global__ void layernorm_backward_params_kernel(float *dweight, float *dbias, const float *partials, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float w = 0.0f, b = 0.0f;
    for (int warp = 0; warp < LN_BACKWARD_WARPS; warp++) {
        w += partials[(size_t)warp * 2 * C + c];
        b += partials[(size_t)warp * 2 * C + C + c];
    }
    dweight[c] += w;
    dbias[c] += b;
}

int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, float *scratch, const bf16 *dout,
                            const bf16 *inp, const float *weight, const float *mean, const float *rstd, int N, int C,
                            cudaStream_t s, struct sr_error *err)
{
    launch_kernel(layernorm_backward_rows_kernel, LN_BACKWARD_WARPS / LN_WARPS, LN_WARPS * 32, 0, s, dinp, scratch,
                  dout, inp, weight, mean, rstd, N, C);
    if (cuda_launched("layernorm_backward_rows", err) != 0)
        return -1;
    launch_kernel(layernorm_backward_params_kernel, blocks_for((size_t)C, 128), 128, 0, s, dweight, dbias, scratch, C);
    return cuda_launched("layernorm_backward_params", err);
}
