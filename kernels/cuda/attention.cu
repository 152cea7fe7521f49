/* Causal multi-head self-attention on the GPU (twin of attention.c): the
 * straightforward version that materialises the B x NH x T x T scores,
 * with cuBLAS batched products (bf16 operands, fp32 accumulation) around
 * softmax kernels. The scores stay fp32 until the softmax: rounding them to
 * bf16 first would cost the probabilities about 1% of their value.
 *
 * Heads are made contiguous first: qkv [B, T, 3, NH, HS] is permuted to
 * q, k, v [B, NH, T, HS], so each (b, h) is one matrix of a strided batch.
 */
#include <math.h>
#include <string.h>

#include "ops_cuda.cuh"

#define SOFTMAX_WARPS 8

int attention_workspace_create(struct attention_workspace *w, int B, int T, int C, int NH, struct sr_error *err)
{
    memset(w, 0, sizeof *w);
    size_t scores = (size_t)B * NH * T * T, nc = (size_t)B * T * C;
    bf16 **heads[] = {&w->q, &w->k, &w->v, &w->y, &w->dy, &w->dq, &w->dk, &w->dv};
    int ok = cudaMalloc((void **)&w->scores, scores * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&w->dscores, scores * sizeof(bf16)) == cudaSuccess;
    for (size_t i = 0; ok && i < sizeof heads / sizeof *heads; i++)
        ok = cudaMalloc((void **)heads[i], nc * sizeof(bf16)) == cudaSuccess;
    if (!ok) {
        attention_workspace_free(w);
        error_setf(err, "attention: cannot allocate %.1f MiB of GPU scratch for a %d x %d batch with %d heads",
                   (scores * 6.0 + nc * 16.0) / (1 << 20), B, T, NH);
        return -1;
    }
    return 0;
}

void attention_workspace_free(struct attention_workspace *w)
{
    void *all[] = {w->scores, w->dscores, w->q, w->k, w->v, w->y, w->dy, w->dq, w->dk, w->dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cudaFree(all[i]);
    memset(w, 0, sizeof *w);
}

/* Index i of [B, NH, T, HS] -> offset of the same element in [B, T, NH, HS]
 * (for q of qkv, the stride between b, t rows is `row`). */
__device__ __forceinline__ size_t interleaved(size_t i, int T, int NH, int HS, size_t row)
{
    int d = (int)(i % HS);
    size_t r = i / HS;
    int t = (int)(r % T);
    r /= T;
    int h = (int)(r % NH), b = (int)(r / NH);
    return ((size_t)b * T + t) * row + (size_t)h * HS + d;
}

__global__ void split_heads_kernel(bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv, int T, int NH, int HS, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    size_t C = (size_t)NH * HS, src = interleaved(i, T, NH, HS, 3 * C);
    q[i] = qkv[src];
    k[i] = qkv[src + C];
    v[i] = qkv[src + 2 * C];
}

__global__ void merge_heads_kernel(bf16 *qkv, const bf16 *q, const bf16 *k, const bf16 *v, int T, int NH, int HS,
                                   size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    size_t C = (size_t)NH * HS, dst = interleaved(i, T, NH, HS, 3 * C);
    qkv[dst] = q[i];
    qkv[dst + C] = k[i];
    qkv[dst + 2 * C] = v[i];
}

static int split_heads(struct attention_workspace *w, const bf16 *qkv, int T, int NH, int HS, size_t n,
                       cudaStream_t s, struct sr_error *err)
{
    launch_kernel(split_heads_kernel, blocks_for(n, 256), 256, 0, s, w->q, w->k, w->v, qkv, T, NH, HS, n);
    return cuda_launched("split_heads", err);
}

/* y [B, NH, T, HS] <-> out [B, T, C] */
__global__ void heads_to_rows_kernel(bf16 *out, const bf16 *y, int T, int NH, int HS, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[interleaved(i, T, NH, HS, (size_t)NH * HS)] = y[i];
}

__global__ void rows_to_heads_kernel(bf16 *y, const bf16 *out, int T, int NH, int HS, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = out[interleaved(i, T, NH, HS, (size_t)NH * HS)];
}

/* A warp per row (b, h, t): att[t2] = softmax over t2 <= t of scores, 0 after. */
__global__ void causal_softmax_kernel(bf16 *att, const float *scores, int rows, int T)
{
    int row = blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    const float *x = scores + (size_t)row * T;
    bf16 *a = att + (size_t)row * T;
    float max = -INFINITY;
    for (int t2 = lane; t2 <= t; t2 += 32)
        max = fmaxf(max, x[t2]);
    max = warp_max(max);
    float sum = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32)
        sum += expf(x[t2] - max);
    float inv = 1.0f / warp_sum(sum);
    for (int t2 = lane; t2 < T; t2 += 32)
        a[t2] = to_bf16(t2 <= t ? expf(x[t2] - max) * inv : 0.0f);
}

/* Through the softmax: dscores[t2] = scale * att[t2] * (datt[t2] - sum_j att[j] datt[j]). */
__global__ void causal_softmax_backward_kernel(bf16 *dscores, const float *datt, const bf16 *att, int rows, int T,
                                               float scale)
{
    int row = blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    const float *d = datt + (size_t)row * T;
    const bf16 *a = att + (size_t)row * T;
    bf16 *out = dscores + (size_t)row * T;
    float expected = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32)
        expected += f32(a[t2]) * d[t2];
    expected = warp_sum(expected);
    for (int t2 = lane; t2 < T; t2 += 32)
        out[t2] = to_bf16(t2 <= t ? scale * f32(a[t2]) * (d[t2] - expected) : 0.0f);
}

/* C[m, n] = alpha op(A) op(B), column-major, for each of `batch` matrices. */
static int batched(struct cuda_blas *b, bool ta, bool tb, int m, int n, int k, float alpha, const bf16 *A, int lda,
                   long long sa, const bf16 *B, int ldb, long long sb, void *C, cudaDataType_t ctype, int ldc,
                   long long sc, int batch, cudaStream_t s, struct sr_error *err)
{
    float beta = 0.0f;
    cublasStatus_t st = cublasSetStream(b->blas, s);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasGemmStridedBatchedEx(b->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n,
                                        k, &alpha, A, CUDA_R_16BF, lda, sa, B, CUDA_R_16BF, ldb, sb, &beta, C, ctype,
                                        ldc, sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) {
        error_setf(err, "attention: cublasGemmStridedBatchedEx (%d x %d x %d, %d matrices) failed: %s", m, n, k,
                   batch, cublasGetStatusString(st));
        return -1;
    }
    return 0;
}

int attention_forward_cuda(struct cuda_blas *b, bf16 *out, bf16 *att, const bf16 *qkv, struct attention_workspace *w,
                           int B, int T, int C, int NH, cudaStream_t s, struct sr_error *err)
{
    int HS = C / NH, batch = B * NH, rows = B * NH * T;
    size_t n = (size_t)B * T * C;
    long long tt = (long long)T * T, th = (long long)T * HS;
    if (split_heads(w, qkv, T, NH, HS, n, s, err) != 0)
        return -1;
    /* scores[t][t2] = q_t . k_t2 / sqrt(HS): column-major [T(t2), T(t)] = k^T q */
    if (batched(b, true, false, T, T, HS, 1.0f / sqrtf((float)HS), w->k, HS, th, w->q, HS, th, w->scores,
                CUDA_R_32F, T, tt, batch, s, err) != 0)
        return -1;
    launch_kernel(causal_softmax_kernel, blocks_for((size_t)rows, SOFTMAX_WARPS), SOFTMAX_WARPS * 32, 0, s, att,
                  w->scores, rows, T);
    if (cuda_launched("causal_softmax", err) != 0)
        return -1;
    /* y_t = sum_t2 att[t][t2] v_t2: column-major [HS, T] = v @ att^T(stored) */
    if (batched(b, false, false, HS, T, T, 1.0f, w->v, HS, th, att, T, tt, w->y, CUDA_R_16BF, HS, th, batch, s, err) !=
        0)
        return -1;
    launch_kernel(heads_to_rows_kernel, blocks_for(n, 256), 256, 0, s, out, w->y, T, NH, HS, n);
    return cuda_launched("heads_to_rows", err);
}

int attention_backward_cuda(struct cuda_blas *b, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *att,
                            struct attention_workspace *w, int B, int T, int C, int NH, cudaStream_t s,
                            struct sr_error *err)
{
    int HS = C / NH, batch = B * NH, rows = B * NH * T;
    size_t n = (size_t)B * T * C;
    long long tt = (long long)T * T, th = (long long)T * HS;
    /* q, k, v again (cheaper than keeping them for every layer) */
    if (split_heads(w, qkv, T, NH, HS, n, s, err) != 0)
        return -1;
    launch_kernel(rows_to_heads_kernel, blocks_for(n, 256), 256, 0, s, w->dy, dout, T, NH, HS, n);
    if (cuda_launched("rows_to_heads", err) != 0)
        return -1;
    /* datt[t][t2] = dy_t . v_t2 (into the fp32 scores buffer) */
    if (batched(b, true, false, T, T, HS, 1.0f, w->v, HS, th, w->dy, HS, th, w->scores, CUDA_R_32F, T, tt, batch, s,
                err) != 0)
        return -1;
    /* dv_t2 = sum_t att[t][t2] dy_t */
    if (batched(b, false, true, HS, T, T, 1.0f, w->dy, HS, th, att, T, tt, w->dv, CUDA_R_16BF, HS, th, batch, s,
                err) != 0)
        return -1;
    launch_kernel(causal_softmax_backward_kernel, blocks_for((size_t)rows, SOFTMAX_WARPS), SOFTMAX_WARPS * 32, 0, s,
                  w->dscores, w->scores, att, rows, T, 1.0f / sqrtf((float)HS));
    if (cuda_launched("causal_softmax_backward", err) != 0)
        return -1;
    /* dq_t = sum_t2 dscores[t][t2] k_t2; dk_t2 = sum_t dscores[t][t2] q_t */
    if (batched(b, false, false, HS, T, T, 1.0f, w->k, HS, th, w->dscores, T, tt, w->dq, CUDA_R_16BF, HS, th, batch,
                s, err) != 0 ||
        batched(b, false, true, HS, T, T, 1.0f, w->q, HS, th, w->dscores, T, tt, w->dk, CUDA_R_16BF, HS, th, batch, s,
                err) != 0)
        return -1;
    launch_kernel(merge_heads_kernel, blocks_for(n, 256), 256, 0, s, dqkv, w->dq, w->dk, w->dv, T, NH, HS, n);
    return cuda_launched("merge_heads", err);
}
