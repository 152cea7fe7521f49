/* Softmax + cross-entropy on the GPU (twin of crossentropy.c), forward and
 * backward in one read of the logits, plus the batch's loss sum. */
#include <math.h>

#include "ops_cuda.cuh"

#define CE_THREADS 512 /* at most: a small vocabulary gets a warp per 32 logits */

/* A block per row. The gradient overwrites the logits in place: every
 * thread reads the logits it later writes, and the target's logit, needed by
 * thread 0 for the loss, is read by all before the first barrier. */
__global__ void crossentropy_kernel(float *losses, bf16 *logits, int ld, const int *targets, float dloss, int V)
{
    __shared__ float shared[32];
    bf16 *z = logits + (size_t)blockIdx.x * ld;
    int target = targets[blockIdx.x];
    float z_target = f32(z[target]);
    float max = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
        max = fmaxf(max, f32(z[v]));
    max = block_max(max, shared);
    float sum = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
        sum += expf(f32(z[v]) - max);
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0)
        losses[blockIdx.x] = logf(sum) - (z_target - max);
    if (dloss == 0.0f)
        return;
    float inv = 1.0f / sum;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float p = expf(f32(z[v]) - max) * inv;
        z[v] = to_bf16(dloss * (p - (v == target ? 1.0f : 0.0f)));
    }
}

int crossentropy_cuda(float *losses, bf16 *logits, int ld, const int *targets, float dloss, int N, int V,
                      cudaStream_t s, struct sr_error *err)
{
    unsigned threads = V >= CE_THREADS ? CE_THREADS : (unsigned)(V + 31) / 32 * 32;
    launch_kernel(crossentropy_kernel, N, threads, 0, s, losses, logits, ld, targets, dloss, V);
    return cuda_launched("crossentropy", err);
}

__global__ void loss_sum_kernel(float *acc, const float *losses, int N, float weight)
{
    __shared__ float shared[32];
    float sum = 0.0f;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
        sum += losses[i];
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0)
        *acc += weight * sum;
}

int loss_sum_cuda(float *acc, const float *losses, int N, float weight, cudaStream_t s, struct sr_error *err)
{
    launch_kernel(loss_sum_kernel, 1, 1024, 0, s, acc, losses, N, weight);
    return cuda_launched("loss_sum", err);
}
