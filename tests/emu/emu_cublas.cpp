/* emu_cublas.cpp — the cuBLASLt and cuBLAS calls this project makes, on
 * the CPU, written from NVIDIA's documentation (cublasLt.h's attribute and
 * epilogue contracts, the cuBLAS guide's GEMM definitions):
 *
 *   D = epilogue(alpha op(A) op(B) + beta C [+ bias])
 *
 * column-major, op = N or T per the descriptor's TRANSA/TRANSB, layouts
 * describing matrices as stored (so a transposed operand's layout is
 * k x m), bf16 operands with fp32 compute and scale types, D bf16 or fp32
 * (rounded to nearest once, at the end). Epilogues: DEFAULT, BIAS (a bf16
 * vector of D's rows, added to every column), GELU_AUX and GELU_AUX_BIAS
 * (GELU with GPT-2's tanh form after the bias; the GELU's input, rounded to
 * D's type, goes to the aux matrix with EPILOGUE_AUX_LD), DGELU (the result
 * times GELU'(aux)). The work runs on the given stream, in order with
 * kernels. Sums run in fp32 in a fixed order of our own (dot() says which),
 * where tensor cores group them differently: tests compare with tolerances.
 *
 * Checked as documented: layouts' shapes against op(A) m x k, op(B) k x n,
 * D m x n, C's layout equal to D's, ld >= rows; bias and aux pointers set
 * when the epilogue needs them; aux ld divisible by 8 and >= D's rows; the
 * data and compute types (anything else is CUBLAS_STATUS_NOT_SUPPORTED).
 * More lenient: the heuristic always finds an algorithm when these hold,
 * whatever the workspace; the algorithm needs 16-byte aligned pointers
 * and leading dimensions (in bytes), where the heuristic's default
 * preference assumes 256-byte alignment and a real algorithm may need it.
 */
#include "cuda_emu.hpp"
#include "emu_internal.hpp"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <memory>
#include <string>
#include <vector>

namespace {

struct lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    void *aux = nullptr;
    int64_t aux_ld = 0;
};

struct lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

struct lt_pref {
    size_t workspace = 0;
};

constexpr float GELU_SCALE = 0.7978845608028654f; /* sqrt(2 / pi) */
constexpr float GELU_CUBIC = 0.044715f;

float gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + GELU_CUBIC * x * x * x)));
}

float gelu_grad(float x)
{
    float th = tanhf(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);
}

/* Our types are bf16 and fp32 (check_lt refuses others). */
size_t element_bytes(cudaDataType_t t)
{
    return cuda_emu::element_bytes(t == CUDA_R_32F);
}

float load(const void *p, cudaDataType_t t, size_t i)
{
    return cuda_emu::load_element(p, t == CUDA_R_32F, i);
}

void store(void *p, cudaDataType_t t, size_t i, float v)
{
    cuda_emu::store_element(p, t == CUDA_R_32F, i, v);
}

bool aligned16(const void *p)
{
    return (uintptr_t)p % 16 == 0;
}

/* x . y in fp32: eight running sums over k (lane p % 8), then added in
 * order; fixed, so every run rounds alike, and one the compiler vectorises. */
float dot(const float *x, const float *y, int k)
{
    float lanes[8] = {0};
    int p = 0;
    for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; l++)
            lanes[l] += x[p + l] * y[p + l];
    for (; p < k; p++)
        lanes[p % 8] += x[p] * y[p];
    float sum = 0.0f;
    for (float lane : lanes)
        sum += lane;
    return sum;
}

/* One product, as both libraries define it; every operand is read when
 * the stream runs it. */
struct gemm {
    int m, n, k;
    bool ta, tb;
    const void *a, *b; /* bf16, the only operand type */
    int64_t lda, ldb;
    const void *c;
    void *d;
    cudaDataType_t d_type;
    int64_t ldc, ldd;
    float alpha, beta;
    cublasLtEpilogue_t epilogue;
    const void *bias;
    void *aux;
    int64_t aux_ld;

    bool uses_bias() const
    {
        return epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    }

    bool uses_aux() const
    {
        return epilogue != CUBLASLT_EPILOGUE_DEFAULT && !(epilogue == CUBLASLT_EPILOGUE_BIAS);
    }

    /* Every element the product reads or writes lies in device memory, as
     * a GPU's would have to (else its fault: sticky, as the GPU's). */
    bool in_bounds() const
    {
        auto spans = [](const void *p, int64_t ld, int rows, int cols, size_t bytes) {
            return rows == 0 || cols == 0 ||
                   cuda_emu::in_device_memory(p, ((size_t)ld * (size_t)(cols - 1) + (size_t)rows) * bytes);
        };
        size_t ab = 2, db = d_type == CUDA_R_32F ? 4 : 2;
        const char *bad = !spans(a, lda, ta ? k : m, ta ? m : k, ab)   ? "A"
                          : !spans(b, ldb, tb ? n : k, tb ? k : n, ab) ? "B"
                          : !spans(d, ldd, m, n, db)                   ? "D"
                          : beta != 0.0f && !spans(c, ldc, m, n, db)   ? "C"
                          : uses_aux() && !spans(aux, aux_ld, m, n, db) ? "the aux matrix"
                          : uses_bias() && !spans(bias, 1, m, 1, db)    ? "the bias"
                                                                        : nullptr;
        if (bad)
            cuda_emu::fault(cudaErrorIllegalAddress, "a cuBLAS product (%d x %d x %d): %s lies outside device memory",
                            m, n, k, bad);
        return !bad;
    }

    void run() const
    {
        if (!in_bounds())
            return;
        /* op(A) row by row and op(B) column by column, so the sums read
         * memory in order; kept between products (one stream runs at once) */
        static std::vector<float> arows, bcols;
        arows.resize((size_t)m * k);
        bcols.resize((size_t)k * n);
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                arows[(size_t)i * k + p] = load(a, CUDA_R_16BF, ta ? p + (size_t)i * lda : i + (size_t)p * lda);
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++)
                bcols[(size_t)j * k + p] = load(b, CUDA_R_16BF, tb ? j + (size_t)p * ldb : p + (size_t)j * ldb);
        bool add_bias = uses_bias();
        bool gelu_out = epilogue == CUBLASLT_EPILOGUE_GELU_AUX || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float v = alpha * dot(&arows[(size_t)i * k], &bcols[(size_t)j * k], k);
                if (beta != 0.0f)
                    v += beta * load(c, d_type, i + (size_t)j * ldc);
                if (add_bias)
                    v += load(bias, d_type, i); /* BIAS_DATA_TYPE unset: D's type */
                if (gelu_out) {
                    store(aux, d_type, i + (size_t)j * aux_ld, v);
                    v = gelu(v);
                } else if (epilogue == CUBLASLT_EPILOGUE_DGELU) {
                    v *= gelu_grad(load(aux, d_type, i + (size_t)j * aux_ld));
                }
                store(d, d_type, i + (size_t)j * ldd, v);
            }
    }
};

void enqueue_gemm(const gemm &g, cudaStream_t s)
{
    cuda_emu::enqueue(s, "a cuBLAS product", [g] {
        g.run();
        cuda_emu::check_guards("a cuBLAS product");
        return true;
    });
}

bool epilogue_known(cublasLtEpilogue_t e)
{
    return e == CUBLASLT_EPILOGUE_DEFAULT || e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX ||
           e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU;
}

bool needs_bias(cublasLtEpilogue_t e)
{
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}

bool needs_aux(cublasLtEpilogue_t e)
{
    return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU;
}

/* The documented rules for one product; the reason goes to stderr. */
cublasStatus_t refuse(cublasStatus_t status, const char *why)
{
    fprintf(stderr, "cuda_emu: cuBLASLt: %s\n", why);
    return status;
}

cublasStatus_t check_lt(const lt_desc &d, const lt_layout &a, const lt_layout &b, const lt_layout &c,
                        const lt_layout &dl)
{
    if (d.compute != CUBLAS_COMPUTE_32F || d.scale != CUDA_R_32F)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "only fp32 compute and scale types are emulated");
    if (a.type != CUDA_R_16BF || b.type != CUDA_R_16BF || (dl.type != CUDA_R_16BF && dl.type != CUDA_R_32F))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "only bf16 A and B with bf16 or fp32 D are emulated");
    if (!epilogue_known(d.epilogue))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "epilogue not emulated");
    uint64_t m = dl.rows, n = dl.cols;
    uint64_t am = d.trans_a == CUBLAS_OP_T ? a.cols : a.rows, ak = d.trans_a == CUBLAS_OP_T ? a.rows : a.cols;
    uint64_t bk = d.trans_b == CUBLAS_OP_T ? b.cols : b.rows, bn = d.trans_b == CUBLAS_OP_T ? b.rows : b.cols;
    if (am != m || bn != n || ak != bk)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "op(A), op(B) and D do not make an m x k by k x n product");
    if (c.type != dl.type || c.rows != dl.rows || c.cols != dl.cols)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "C's layout differs from D's");
    for (const lt_layout *l : {&a, &b, &c, &dl})
        if (l->ld < (int64_t)l->rows || (l->ld * element_bytes(l->type)) % 16 != 0)
            return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "a leading dimension is under the rows or not 16-byte aligned");
    if (needs_bias(d.epilogue) && (!d.bias || !aligned16(d.bias)))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "the epilogue needs a 16-byte aligned BIAS_POINTER");
    if (needs_aux(d.epilogue) && (!d.aux || !aligned16(d.aux)))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "the epilogue needs a 16-byte aligned EPILOGUE_AUX_POINTER");
    if (needs_aux(d.epilogue) && (d.aux_ld % 8 != 0 || d.aux_ld < (int64_t)m))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "EPILOGUE_AUX_LD must be divisible by 8 and at least D's rows");
    return CUBLAS_STATUS_SUCCESS;
}

template <typename T> cublasStatus_t set(T &field, const void *buf, size_t size)
{
    if (size != sizeof field)
        return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(&field, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

constexpr uint64_t ALGO_MARK = 0x73616765656d75ull; /* what our heuristic hands out */

} /* namespace */

struct cublasLtContext {
    int unused;
};

struct cublasContext {
    cudaStream_t stream = nullptr;
};

extern "C" {

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "an unknown internal error has occurred";
    }
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = new cublasLtContext{};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    *d = (cublasLtMatmulDesc_t) new lt_desc{compute, scale};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    delete (lt_desc *)d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    lt_desc &d = *(lt_desc *)desc;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(d.trans_a, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(d.trans_b, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(d.epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(d.bias, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return set(d.aux, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return set(d.aux_ld, buf, size);
    default: return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "descriptor attribute not emulated");
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    *l = (cublasLtMatrixLayout_t) new lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    delete (lt_layout *)l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    *p = (cublasLtMatmulPreference_t) new lt_pref{};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    delete (lt_pref *)p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size)
{
    if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "preference attribute not emulated");
    return set(((lt_pref *)pref)->workspace, buf, size);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t,
                                              int requested, cublasLtMatmulHeuristicResult_t results[], int *found)
{
    *found = 0;
    if (requested < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t s = check_lt(*(lt_desc *)desc, *(lt_layout *)a, *(lt_layout *)b, *(lt_layout *)c,
                                *(lt_layout *)d);
    if (s != CUBLAS_STATUS_SUCCESS)
        return s;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_MARK;
    results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *, size_t, cudaStream_t stream)
{
    const lt_desc &dd = *(lt_desc *)desc;
    const lt_layout &la = *(lt_layout *)a, &lb = *(lt_layout *)b, &lc = *(lt_layout *)c, &ld = *(lt_layout *)d;
    cublasStatus_t s = check_lt(dd, la, lb, lc, ld);
    if (s != CUBLAS_STATUS_SUCCESS)
        return s;
    if (algo && algo->data[0] != ALGO_MARK)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "an algorithm the heuristic did not give");
    if (!aligned16(A) || !aligned16(B) || !aligned16(C) || !aligned16(D))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "A, B, C and D must be 16-byte aligned");
    gemm g = {(int)ld.rows, (int)ld.cols, (int)(dd.trans_a == CUBLAS_OP_T ? la.rows : la.cols),
              dd.trans_a == CUBLAS_OP_T, dd.trans_b == CUBLAS_OP_T, A, B, la.ld, lb.ld, C, D, ld.type,
              lc.ld, ld.ld, *(const float *)alpha, *(const float *)beta, dd.epilogue, dd.bias, dd.aux, dd.aux_ld};
    enqueue_gemm(g, stream);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
    *h = new cublasContext{};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void *, size_t)
{
    return CUBLAS_STATUS_SUCCESS;
}

/* C_i = alpha op(A_i) op(B_i) + beta C_i for each of `batch` matrices
 * (cuBLAS guide, cublasGemmStridedBatchedEx). */
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                          int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long sa, const void *B, cudaDataType Btype, int ldb,
                                          long long sb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long sc, int batch, cublasComputeType_t compute, cublasGemmAlgo_t)
{
    if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || (Ctype != CUDA_R_16BF && Ctype != CUDA_R_32F) ||
        compute != CUBLAS_COMPUTE_32F)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "cublasGemmStridedBatchedEx: types not emulated");
    bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) ||
        ldc < std::max(1, m))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasGemmStridedBatchedEx: sizes or leading dimensions");
    size_t cb = element_bytes(Ctype);
    for (int i = 0; i < batch; i++) {
        gemm g = {m, n, k, ta, tb, (const char *)A + 2 * sa * i, (const char *)B + 2 * sb * i, lda, ldb,
                  (char *)C + cb * sc * i, (char *)C + cb * sc * i, Ctype, ldc, ldc, *(const float *)alpha,
                  *(const float *)beta, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0};
        enqueue_gemm(g, h->stream);
    }
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
