/* The optimizer on the GPU (twin of adamw.c): global gradient norm and a
 * fused AdamW over every parameter. */
#include <math.h>

#include "ops_cuda.cuh"

#define NORM_THREADS 256

/* Fixed-order tree sum of one double per thread of the block. */
__device__ double block_sum_double(double v)
{
    __shared__ double shared[NORM_THREADS];
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int width = NORM_THREADS / 2; width > 0; width /= 2) {
        if ((int)threadIdx.x < width)
            shared[threadIdx.x] += shared[threadIdx.x + width];
        __syncthreads();
    }
    return shared[0];
}

__global__ void sum_of_squares_kernel(double *partials, const float *x, size_t n)
{
    double sum = 0.0;
    size_t stride = (size_t)gridDim.x * NORM_THREADS;
    for (size_t i = (size_t)blockIdx.x * NORM_THREADS + threadIdx.x; i < n; i += stride)
        sum += (double)x[i] * x[i];
    sum = block_sum_double(sum);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = sum;
}

__global__ void norm_from_partials_kernel(float *norm, const double *partials, int count)
{
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += NORM_THREADS)
        sum += partials[i];
    sum = block_sum_double(sum);
    if (threadIdx.x == 0)
        *norm = (float)sqrt(sum);
}

int grad_norm_cuda(float *norm, double *partials, const float *grads, size_t n, cudaStream_t s,
                   struct sr_error *err)
{
    /* The grid follows n, not the GPU, so the sum's order (and its last
     * bits) is the same on every GPU model: GRAD_NORM_PARTIALS blocks, or
     * for a small n fewer, each thread summing at least 8 elements. */
    size_t per_block = (size_t)NORM_THREADS * 8, wanted = (n + per_block - 1) / per_block;
    int blocks = wanted < 1 ? 1 : wanted > GRAD_NORM_PARTIALS ? GRAD_NORM_PARTIALS : (int)wanted;
    launch_kernel(sum_of_squares_kernel, blocks, NORM_THREADS, 0, s, partials, grads, n);
    if (cuda_launched("sum_of_squares", err) != 0)
        return -1;
    launch_kernel(norm_from_partials_kernel, 1, NORM_THREADS, 0, s, norm, partials, blocks);
    return cuda_launched("norm_from_partials", err);
}

__global__ void adamw_kernel(float *params, bf16 *params_bf16, const float *grads, float *m, float *v, size_t n,
                             const float *norm, struct adamw_cuda_hparams h)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    float g_norm = *norm;
    if (i >= n || !isfinite(g_norm))
        return;
    float scale = h.grad_clip > 0.0f && g_norm > h.grad_clip ? h.grad_clip / g_norm : 1.0f;
    int tensor = 0;
    while (tensor < h.tensors - 1 && i >= h.tensor_end[tensor])
        tensor++;
    float decay = (h.decays >> tensor) & 1u ? h.weight_decay : 0.0f;
    float g = grads[i] * scale;
    float mi = h.beta1 * m[i] + (1.0f - h.beta1) * g;
    float vi = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    p -= h.lr * ((mi / h.m_correction) / (sqrtf(vi / h.v_correction) + h.eps) + decay * p);
    params[i] = p;
    params_bf16[i] = to_bf16(p);
}

int adamw_cuda(float *params, bf16 *params_bf16, const float *grads, float *m, float *v, size_t n,
               const float *norm, const struct adamw_cuda_hparams *h, cudaStream_t s, struct sr_error *err)
{
    if (h->tensors < 1 || h->tensors > ADAMW_MAX_TENSORS || h->tensor_end[h->tensors - 1] != n) {
        error_setf(err, "adamw: %d parameter tensors ending at %zu do not cover the %zu parameters", h->tensors,
                   h->tensors >= 1 && h->tensors <= ADAMW_MAX_TENSORS ? h->tensor_end[h->tensors - 1] : 0, n);
        return -1;
    }
    launch_kernel(adamw_kernel, blocks_for(n, 256), 256, 0, s, params, params_bf16, grads, m, v, n, norm, *h);
    return cuda_launched("adamw", err);
}
