/* cuBLASLt matrix-product rate (gemm_rate.h). */
#include <stdlib.h>
#include <string.h>

#include "gemm_rate.h"
#include "ops_cuda.cuh"

/* Uniform in [-1, 1) from a hash of the index: random enough to keep the
 * tensor cores honest, reproducible, no cuRAND dependency. */
__device__ __forceinline__ float hashed_uniform(size_t i, unsigned seed)
{
    unsigned x = (unsigned)i * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

template <typename T> __global__ void fill_kernel(T *x, size_t n, unsigned seed)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = (T)hashed_uniform(i, seed);
}

struct gemm_type {
    const char *name;
    cudaDataType_t data;
    cublasComputeType_t compute;
    size_t bytes;
};

static const struct gemm_type gemm_types[] = {
    {"bf16", CUDA_R_16BF, CUBLAS_COMPUTE_32F, 2},
    {"fp16", CUDA_R_16F, CUBLAS_COMPUTE_32F, 2},
    {"tf32", CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, 4},
};

static int fill(void *x, const struct gemm_type *t, size_t n, unsigned seed, struct sr_error *err)
{
    if (t->data == CUDA_R_16BF)
        launch_kernel(fill_kernel<bf16>, blocks_for(n, 256), 256, 0, 0, (bf16 *)x, n, seed);
    else if (t->data == CUDA_R_16F)
        launch_kernel(fill_kernel<__half>, blocks_for(n, 256), 256, 0, 0, (__half *)x, n, seed);
    else
        launch_kernel(fill_kernel<float>, blocks_for(n, 256), 256, 0, 0, (float *)x, n, seed);
    return cuda_launched("fill", err);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct gemm_run {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t layout;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t algo;
    void *a, *b, *c, *workspace;
    size_t workspace_bytes;
    cudaEvent_t start, stop;
};

static void gemm_run_free(struct gemm_run *r)
{
    if (r->pref)
        cublasLtMatmulPreferenceDestroy(r->pref);
    if (r->layout)
        cublasLtMatrixLayoutDestroy(r->layout);
    if (r->desc)
        cublasLtMatmulDescDestroy(r->desc);
    if (r->lt)
        cublasLtDestroy(r->lt);
    cudaFree(r->a);
    cudaFree(r->b);
    cudaFree(r->c);
    cudaFree(r->workspace);
    if (r->start)
        cudaEventDestroy(r->start);
    if (r->stop)
        cudaEventDestroy(r->stop);
}

#define LT_TRY(call)                                                                                           \
    do {                                                                                                       \
        cublasStatus_t status_ = (call);                                                                       \
        if (status_ != CUBLAS_STATUS_SUCCESS) {                                                                \
            error_setf(err, "gemm: %s failed: %s", #call, cublasGetStatusString(status_));                    \
            return -1;                                                                                         \
        }                                                                                                      \
    } while (0)

static int gemm_setup(struct gemm_run *r, const struct gemm_type *t, int size, struct sr_error *err)
{
    size_t n = (size_t)size * size;
    r->workspace_bytes = 32u << 20;
    CUDA_TRY(cudaMalloc(&r->a, n * t->bytes), err);
    CUDA_TRY(cudaMalloc(&r->b, n * t->bytes), err);
    CUDA_TRY(cudaMalloc(&r->c, n * t->bytes), err);
    CUDA_TRY(cudaMalloc(&r->workspace, r->workspace_bytes), err);
    CUDA_TRY(cudaEventCreate(&r->start), err);
    CUDA_TRY(cudaEventCreate(&r->stop), err);
    if (fill(r->a, t, n, 1u, err) != 0 || fill(r->b, t, n, 2u, err) != 0)
        return -1;
    LT_TRY(cublasLtCreate(&r->lt));
    LT_TRY(cublasLtMatmulDescCreate(&r->desc, t->compute, CUDA_R_32F));
    cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N; /* the "TN" layout cuBLAS is fastest in */
    LT_TRY(cublasLtMatmulDescSetAttribute(r->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof trans));
    LT_TRY(cublasLtMatmulDescSetAttribute(r->desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
    LT_TRY(cublasLtMatrixLayoutCreate(&r->layout, t->data, size, size, size));
    LT_TRY(cublasLtMatmulPreferenceCreate(&r->pref));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(r->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &r->workspace_bytes,
                                                sizeof r->workspace_bytes));
    int found = 0;
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(r->lt, r->desc, r->layout, r->layout, r->layout, r->layout, r->pref, 1,
                                          &r->algo, &found));
    if (!found) {
        error_setf(err, "gemm: cuBLASLt has no %s algorithm for %d^3", t->name, size);
        return -1;
    }
    return 0;
}

static int gemm_once(struct gemm_run *r)
{
    float alpha = 1.0f, beta = 0.0f;
    return cublasLtMatmul(r->lt, r->desc, &alpha, r->a, r->layout, r->b, r->layout, &beta, r->c, r->layout, r->c,
                          r->layout, &r->algo.algo, r->workspace, r->workspace_bytes, 0) == CUBLAS_STATUS_SUCCESS
               ? 0
               : -1;
}

static int gemm_time(struct gemm_run *r, int warmup, int repeats, double *run_s, struct sr_error *err)
{
    for (int i = 0; i < warmup; i++)
        if (gemm_once(r) != 0) {
            error_setf(err, "gemm: cublasLtMatmul failed");
            return -1;
        }
    for (int i = 0; i < repeats; i++) {
        CUDA_TRY(cudaEventRecord(r->start, 0), err);
        if (gemm_once(r) != 0) {
            error_setf(err, "gemm: cublasLtMatmul failed");
            return -1;
        }
        CUDA_TRY(cudaEventRecord(r->stop, 0), err);
        CUDA_TRY(cudaEventSynchronize(r->stop), err);
        float ms = 0.0f;
        CUDA_TRY(cudaEventElapsedTime(&ms, r->start, r->stop), err);
        run_s[i] = ms * 1e-3;
    }
    return 0;
}

extern "C" int cuda_gemm_times(const char *type, int size, int warmup, int repeats, double *run_s,
                               struct sr_error *err)
{
    const struct gemm_type *t = NULL;
    for (size_t i = 0; i < sizeof gemm_types / sizeof *gemm_types; i++)
        if (strcmp(type, gemm_types[i].name) == 0)
            t = &gemm_types[i];
    if (!t || size < 1 || repeats < 1 || warmup < 0) {
        error_setf(err, "gemm: no %s product of size %d with %d repeats (types: bf16, fp16, tf32)", type, size, repeats);
        return -1;
    }
    struct gemm_run r;
    memset(&r, 0, sizeof r);
    int rc = gemm_setup(&r, t, size, err) == 0 && gemm_time(&r, warmup, repeats, run_s, err) == 0 ? 0 : -1;
    gemm_run_free(&r);
    return rc;
}

extern "C" int cuda_gemm_rate(const char *type, int size, int warmup, int repeats, double *flops_per_s,
                              struct sr_error *err)
{
    double *run_s = (double *)calloc(repeats > 0 ? (size_t)repeats : 1, sizeof(double));
    if (!run_s) {
        error_setf(err, "gemm: out of host memory");
        return -1;
    }
    int rc = cuda_gemm_times(type, size, warmup, repeats, run_s, err);
    if (rc == 0) {
        qsort(run_s, (size_t)repeats, sizeof *run_s, compare_doubles);
        double median = run_s[repeats / 2];
        *flops_per_s = median > 0 ? 2.0 * size * (double)size * size / median : 0.0;
    }
    free(run_s);
    return rc;
}
