/* Linear layers on the GPU (twin of matmul.c) through cuBLASLt, bf16
 * operands with fp32 accumulation.
 *
 * cuBLASLt is column-major, and a row-major [R, K] matrix is, as stored, the
 * column-major [K, R] matrix (its transpose). So each row-major product is
 * computed transposed: out[N, OC] = inp @ weight^T becomes the column-major
 * out^T[OC, N] = weight @ inp^T, where the stored weight is read transposed
 * and the stored inp as is. The comments at each call give its shapes.
 */
#include <string.h>

#include "ops_cuda.cuh"

#define CUBLAS_WORKSPACE_BYTES (32u << 20) /* what NVIDIA recommends for Hopper */

static const char *blas_status(cublasStatus_t s)
{
    return cublasGetStatusString(s);
}

#define BLAS_TRY(call, err)                                                                                   \
    do {                                                                                                      \
        cublasStatus_t status_ = (call);                                                                      \
        if (status_ != CUBLAS_STATUS_SUCCESS) {                                                               \
            error_setf((err), "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, blas_status(status_));     \
            goto fail;                                                                                        \
        }                                                                                                     \
    } while (0)

int cuda_blas_create(struct cuda_blas *b, struct sr_error *err)
{
    memset(b, 0, sizeof *b);
    BLAS_TRY(cublasLtCreate(&b->lt), err);
    BLAS_TRY(cublasCreate(&b->blas), err);
    b->workspace_bytes = CUBLAS_WORKSPACE_BYTES;
    if (cudaMalloc(&b->workspace, b->workspace_bytes) != cudaSuccess) {
        error_setf(err, "cuBLAS: cannot allocate its %zu MiB workspace on the GPU", b->workspace_bytes >> 20);
        goto fail;
    }
    BLAS_TRY(cublasSetWorkspace(b->blas, b->workspace, b->workspace_bytes), err);
    return 0;
fail:
    cuda_blas_destroy(b);
    return -1;
}

void cuda_blas_destroy(struct cuda_blas *b)
{
    if (b->lt)
        cublasLtDestroy(b->lt);
    if (b->blas)
        cublasDestroy(b->blas);
    cudaFree(b->workspace);
    memset(b, 0, sizeof *b);
}

/* D[m, n] (column-major, ldd) = op(A)[m, k] op(B)[k, n] (+ beta D), A and B
 * bf16, D of type d_type, with an epilogue (bias [m] bf16, GELU aux [m, n]
 * bf16 with ld m). */
struct lt_gemm {
    int m, n, k;
    bool trans_a, trans_b;
    const bf16 *a, *b;
    int lda, ldb;
    void *d;
    cudaDataType_t d_type;
    int ldd;
    float beta;
    cublasLtEpilogue_t epilogue;
    const bf16 *bias;
    bf16 *aux;
};

static int lt_matmul(struct cuda_blas *h, const struct lt_gemm *g, cudaStream_t s, struct sr_error *err)
{
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t ta = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    float alpha = 1.0f;
    int rc = -1, found = 0;
    cublasLtMatmulHeuristicResult_t heuristic;
    BLAS_TRY(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), err);
    BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), err);
    BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), err);
    BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &g->epilogue, sizeof g->epilogue),
             err);
    if (g->bias)
        BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias),
                 err);
    if (g->aux) {
        int64_t aux_ld = g->m;
        BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g->aux,
                                                sizeof g->aux),
                 err);
        BLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld),
                 err);
    }
    BLAS_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, g->trans_a ? g->k : g->m, g->trans_a ? g->m : g->k,
                                        g->lda),
             err);
    BLAS_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, g->trans_b ? g->n : g->k, g->trans_b ? g->k : g->n,
                                        g->ldb),
             err);
    BLAS_TRY(cublasLtMatrixLayoutCreate(&ld, g->d_type, g->m, g->n, g->ldd), err);
    BLAS_TRY(cublasLtMatmulPreferenceCreate(&pref), err);
    BLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &h->workspace_bytes, sizeof h->workspace_bytes),
             err);
    BLAS_TRY(cublasLtMatmulAlgoGetHeuristic(h->lt, desc, la, lb, ld, ld, pref, 1, &heuristic, &found), err);
    if (found == 0) {
        error_setf(err, "cuBLASLt has no algorithm for a %d x %d x %d bf16 product (trans %d%d, epilogue %d, "
                        "output %s)", g->m, g->n, g->k, g->trans_a, g->trans_b, (int)g->epilogue,
                   g->d_type == CUDA_R_32F ? "fp32" : "bf16");
        goto fail;
    }
    BLAS_TRY(cublasLtMatmul(h->lt, desc, &alpha, g->a, la, g->b, lb, &g->beta, g->d, ld, g->d, ld,
                            &heuristic.algo, h->workspace, h->workspace_bytes, s),
             err);
    rc = 0;
fail:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (ld)
        cublasLtMatrixLayoutDestroy(ld);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (desc)
        cublasLtMatmulDescDestroy(desc);
    return rc;
}

int matmul_forward_cuda(struct cuda_blas *b, bf16 *out, bf16 *pre_gelu, const bf16 *inp, const bf16 *weight,
                        const bf16 *bias, int N, int C, int OC, int ld_out, cudaStream_t s, struct sr_error *err)
{
    /* out^T[OC, N] = (stored weight [C, OC])^T @ (stored inp [C, N]) */
    cublasLtEpilogue_t epilogue = pre_gelu ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                           : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    struct lt_gemm g = {OC, N, C, true, false, weight, inp, C, C, out, CUDA_R_16BF, ld_out, 0.0f,
                        epilogue, bias, pre_gelu};
    return lt_matmul(b, &g, s, err);
}

/* Column sums of dout [N, OC], in two deterministic passes: BIAS_GRAD_CHUNKS
 * row chunks each summed per column into scratch, then the chunks in order. */
#define BIAS_GRAD_CHUNKS 32

size_t bias_grad_scratch_floats(int OC)
{
    return (size_t)BIAS_GRAD_CHUNKS * (size_t)OC;
}

__global__ void bias_grad_chunks_kernel(float *partials, const bf16 *dout, int ld, int N, int OC)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (col >= OC)
        return;
    int rows = (N + BIAS_GRAD_CHUNKS - 1) / BIAS_GRAD_CHUNKS, first = chunk * rows, last = min(N, first + rows);
    float sum = 0.0f;
    for (int r = first; r < last; r++)
        sum += f32(dout[(size_t)r * ld + col]);
    partials[(size_t)chunk * OC + col] = sum;
}

__global__ void bias_grad_sum_kernel(float *dbias, const float *partials, int OC)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= OC)
        return;
    float sum = 0.0f;
    for (int chunk = 0; chunk < BIAS_GRAD_CHUNKS; chunk++)
        sum += partials[(size_t)chunk * OC + col];
    dbias[col] += sum;
}

int matmul_backward_cuda(struct cuda_blas *b, bf16 *dinp, float *dweight, float *dbias, float *scratch,
                         const bf16 *dout, int ld_dout, const bf16 *inp, const bf16 *weight, const bf16 *pre_gelu,
                         int N, int C, int OC, cudaStream_t s, struct sr_error *err)
{
    if (dinp) {
        /* dinp^T[C, N] = (stored weight [C, OC]) @ (stored dout [OC, N]) */
        struct lt_gemm g = {C, N, OC, false, false, weight, dout, C, ld_dout, dinp, CUDA_R_16BF, C, 0.0f,
                            pre_gelu ? CUBLASLT_EPILOGUE_DGELU : CUBLASLT_EPILOGUE_DEFAULT, NULL,
                            (bf16 *)pre_gelu};
        if (lt_matmul(b, &g, s, err) != 0)
            return -1;
    }
    /* dweight^T[C, OC] += (stored inp [C, N]) @ (stored dout [OC, N])^T, in fp32 */
    struct lt_gemm gw = {C, OC, N, false, true, inp, dout, C, ld_dout, dweight, CUDA_R_32F, C, 1.0f,
                         CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL};
    if (lt_matmul(b, &gw, s, err) != 0)
        return -1;
    if (!dbias)
        return 0;
    dim3 grid(blocks_for((size_t)OC, 128), BIAS_GRAD_CHUNKS);
    launch_kernel(bias_grad_chunks_kernel, grid, 128, 0, s, scratch, dout, ld_dout, N, OC);
    if (cuda_launched("bias_grad_chunks", err) != 0)
        return -1;
    launch_kernel(bias_grad_sum_kernel, blocks_for((size_t)OC, 128), 128, 0, s, dbias, scratch, OC);
    return cuda_launched("bias_grad_sum", err);
}
