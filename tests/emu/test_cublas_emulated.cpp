/* The cuBLAS(Lt) stand-in (emu_cublas.cpp) against OpenBLAS: every
 * operand layout, output type, epilogue and beta the engine's matmul.cu
 * and attention.cu use, with leading dimensions padded past the rows (so a
 * stride mix-up shows) and D's padding checked untouched; then the rules
 * the documentation states, each broken once.
 *
 * The reference: the same bf16-rounded operands through cblas_sgemm
 * (column-major, as cuBLAS), then the epilogue from the CPU model's own
 * GELU (kernels/gelu.c). fp32 outputs agree to summation order (1e-5);
 * bf16 outputs to their rounding (1e-2, as the GPU tests).
 */
#include "cuda_emu.hpp"

#include <cblas.h>
#include <cublasLt.h>
#include <cublas_v2.h>

#include <setjmp.h>
#include <stdarg.h>

#include <vector>

extern "C" {
#include <cmocka.h>

#include "ops.h"
#include "rng.h"
}
#include "emu_test_data.hpp"
#include "expect_close.h"

namespace {

#define CHECK(call) assert_int_equal((call), cudaSuccess)
#define LT(call) assert_int_equal((call), CUBLAS_STATUS_SUCCESS)

/* Device copies of bf16-valued floats, as bf16 or fp32. */
void *device_of(const std::vector<float> &x, cudaDataType_t t)
{
    return t == CUDA_R_32F ? (void *)to_device(x) : (void *)to_device(to_bf16(x));
}

std::vector<float> host_of(const void *d, size_t n, cudaDataType_t t)
{
    return t == CUDA_R_32F ? from_device((const float *)d, n) : to_float(from_device((const __nv_bfloat16 *)d, n));
}

float round_to(float v, cudaDataType_t t)
{
    return t == CUDA_R_32F ? v : __bfloat162float(__float2bfloat16_rn(v));
}

struct product {
    bool ta, tb;
    cudaDataType_t d_type;
    cublasLtEpilogue_t epilogue;
    float beta;
};

const char *epilogue_name(cublasLtEpilogue_t e)
{
    switch (e) {
    case CUBLASLT_EPILOGUE_BIAS: return "BIAS";
    case CUBLASLT_EPILOGUE_GELU_AUX: return "GELU_AUX";
    case CUBLASLT_EPILOGUE_GELU_AUX_BIAS: return "GELU_AUX_BIAS";
    case CUBLASLT_EPILOGUE_DGELU: return "DGELU";
    default: return "DEFAULT";
    }
}

/* One cublasLtMatmul as matmul.cu issues it, against the reference. */
void check_product(const product &p)
{
    const int m = 24, n = 40, k = 32, pad = 8;
    int a_rows = p.ta ? k : m, a_cols = p.ta ? m : k, b_rows = p.tb ? n : k, b_cols = p.tb ? k : n;
    int lda = a_rows + pad, ldb = b_rows + pad, ldd = m + pad, aux_ld = m + pad;
    std::vector<float> a = random_bf16_values((size_t)lda * a_cols, 1.0f);
    std::vector<float> b = random_bf16_values((size_t)ldb * b_cols, 1.0f);
    std::vector<float> c = random_bf16_values((size_t)ldd * n, 1.0f), bias = random_bf16_values((size_t)m, 0.5f);
    std::vector<float> aux_in = random_bf16_values((size_t)aux_ld * n, 1.0f);
    bool uses_aux = p.epilogue != CUBLASLT_EPILOGUE_DEFAULT && p.epilogue != CUBLASLT_EPILOGUE_BIAS;
    bool gelu = p.epilogue == CUBLASLT_EPILOGUE_GELU_AUX || p.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    bool biased = p.epilogue == CUBLASLT_EPILOGUE_BIAS || p.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;

    /* the reference */
    std::vector<float> want(c);
    cblas_sgemm(CblasColMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a.data(), lda, b.data(), ldb, p.beta, want.data(), ldd);
    std::vector<float> want_aux(aux_in), got_cols, want_cols, aux_cols, want_aux_cols;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float v = want[i + (size_t)j * ldd] + (biased ? bias[i] : 0.0f);
            if (gelu) {
                want_aux[i + (size_t)j * aux_ld] = round_to(v, p.d_type);
                gelu_forward(&v, &v, 1);
            } else if (p.epilogue == CUBLASLT_EPILOGUE_DGELU) {
                float d = 0.0f;
                gelu_backward(&d, &aux_in[i + (size_t)j * aux_ld], &v, 1);
                v = d;
            }
            want[i + (size_t)j * ldd] = v;
        }

    void *da = device_of(a, CUDA_R_16BF), *db = device_of(b, CUDA_R_16BF), *dd = device_of(c, p.d_type);
    void *dbias = device_of(bias, p.d_type), *daux = device_of(aux_in, p.d_type);
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    LT(cublasLtCreate(&lt));
    LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    int64_t aux_ld64 = aux_ld;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p.epilogue, sizeof p.epilogue));
    if (biased)
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &dbias, sizeof dbias));
    if (uses_aux) {
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &daux, sizeof daux));
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld64, sizeof aux_ld64));
    }
    LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, a_rows, a_cols, lda));
    LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, b_rows, b_cols, ldb));
    LT(cublasLtMatrixLayoutCreate(&ld, p.d_type, m, n, ldd));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, nullptr, 1, &h, &found));
    assert_int_equal(found, 1);
    float alpha = 1.0f;
    LT(cublasLtMatmul(lt, desc, &alpha, da, la, db, lb, &p.beta, dd, ld, dd, ld, &h.algo, nullptr, 0, 0));

    std::vector<float> got = host_of(dd, c.size(), p.d_type), got_aux = host_of(daux, aux_in.size(), p.d_type);
    for (int j = 0; j < n; j++)
        for (int i = m; i < ldd; i++) /* the padding rows stay as they were */
            assert_true(got[i + (size_t)j * ldd] == round_to(c[i + (size_t)j * ldd], p.d_type));
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            got_cols.push_back(got[i + (size_t)j * ldd]);
            want_cols.push_back(want[i + (size_t)j * ldd]);
            aux_cols.push_back(got_aux[i + (size_t)j * aux_ld]);
            want_aux_cols.push_back(want_aux[i + (size_t)j * aux_ld]);
        }
    char what[80];
    snprintf(what, sizeof what, "%c%c %s %s b%g", p.ta ? 'T' : 'N', p.tb ? 'T' : 'N',
             p.d_type == CUDA_R_32F ? "fp32" : "bf16", epilogue_name(p.epilogue), p.beta);
    double tol = p.d_type == CUDA_R_32F ? 1e-5 : 1e-2;
    expect_close_to(what, got_cols.data(), want_cols.data(), got_cols.size(), tol);
    if (gelu)
        expect_close_to("  its GELU input (aux)", aux_cols.data(), want_aux_cols.data(), aux_cols.size(), tol);
    else /* an input, or unused: untouched */
        assert_memory_equal(aux_cols.data(), want_aux_cols.data(), aux_cols.size() * sizeof(float));

    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    for (void *ptr : {da, db, dd, dbias, daux})
        CHECK(cudaFree(ptr));
}

void every_layout_and_epilogue(void **state)
{
    (void)state;
    const cublasLtEpilogue_t epilogues[] = {CUBLASLT_EPILOGUE_DEFAULT, CUBLASLT_EPILOGUE_BIAS,
                                            CUBLASLT_EPILOGUE_GELU_AUX, CUBLASLT_EPILOGUE_GELU_AUX_BIAS,
                                            CUBLASLT_EPILOGUE_DGELU};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (cudaDataType_t d : {CUDA_R_16BF, CUDA_R_32F})
                for (cublasLtEpilogue_t e : epilogues)
                    for (float beta : {0.0f, 1.0f})
                        check_product({ta == 1, tb == 1, d, e, beta});
}

/* The engine's attention products: batches of column-major products. */
void strided_batches(void **state)
{
    (void)state;
    const int m = 16, n = 24, k = 8, batch = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (cudaDataType_t ct : {CUDA_R_16BF, CUDA_R_32F}) {
                int lda = (ta ? k : m) + 8, ldb = (tb ? n : k) + 8, ldc = m + 8;
                long long sa = (long long)lda * (ta ? m : k), sb = (long long)ldb * (tb ? k : n),
                          sc = (long long)ldc * n;
                std::vector<float> a = random_bf16_values((size_t)sa * batch, 1.0f);
                std::vector<float> b = random_bf16_values((size_t)sb * batch, 1.0f);
                std::vector<float> want((size_t)sc * batch, 0.0f);
                for (int i = 0; i < batch; i++)
                    cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                                k, 0.5f, a.data() + sa * i, lda, b.data() + sb * i, ldb, 0.0f,
                                want.data() + sc * i, ldc);
                void *da = device_of(a, CUDA_R_16BF), *db = device_of(b, CUDA_R_16BF), *dc = device_of(want, ct);
                cublasHandle_t h;
                LT(cublasCreate(&h));
                LT(cublasSetStream(h, 0));
                float alpha = 0.5f, beta = 0.0f;
                LT(cublasGemmStridedBatchedEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n,
                                              k, &alpha, da, CUDA_R_16BF, lda, sa, db, CUDA_R_16BF, ldb, sb, &beta,
                                              dc, ct, ldc, sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                std::vector<float> got = host_of(dc, want.size(), ct);
                std::vector<float> g, w;
                for (int i = 0; i < batch; i++)
                    for (int j = 0; j < n; j++)
                        for (int r = 0; r < m; r++) {
                            g.push_back(got[sc * i + r + (size_t)j * ldc]);
                            w.push_back(want[sc * i + r + (size_t)j * ldc]);
                        }
                char what[64];
                snprintf(what, sizeof what, "batched %c%c %s", ta ? 'T' : 'N', tb ? 'T' : 'N',
                         ct == CUDA_R_32F ? "fp32" : "bf16");
                expect_close_to(what, g.data(), w.data(), g.size(), ct == CUDA_R_32F ? 1e-5 : 1e-2);
                LT(cublasDestroy(h));
                for (void *ptr : {da, db, dc})
                    CHECK(cudaFree(ptr));
            }
}

/* The documented rules, each broken once: the heuristic or the product
 * refuses with the status the documentation gives. */
void documented_rules_refused(void **state)
{
    (void)state;
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d, wrong_a, short_ld;
    LT(cublasLtCreate(&lt));
    LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, 16, 32, 16));       /* m 16, k 32 */
    LT(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, 32, 24, 32));       /* k 32, n 24 */
    LT(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, 16, 24, 16));       /* m 16, n 24 */
    LT(cublasLtMatrixLayoutCreate(&wrong_a, CUDA_R_16BF, 16, 40, 16)); /* k 40 */
    LT(cublasLtMatrixLayoutCreate(&short_ld, CUDA_R_16BF, 16, 32, 8)); /* ld under the rows */
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, nullptr, 1, &h, &found));
    assert_int_equal(found, 1);
    assert_int_equal(cublasLtMatmulAlgoGetHeuristic(lt, desc, wrong_a, b, d, d, nullptr, 1, &h, &found),
                     CUBLAS_STATUS_INVALID_VALUE);
    assert_int_equal(cublasLtMatmulAlgoGetHeuristic(lt, desc, short_ld, b, d, d, nullptr, 1, &h, &found),
                     CUBLAS_STATUS_NOT_SUPPORTED);
    assert_int_equal(found, 0);

    cublasLtEpilogue_t bias = CUBLASLT_EPILOGUE_BIAS, gelu = CUBLASLT_EPILOGUE_GELU_AUX;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &bias, sizeof bias));
    assert_int_equal(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, nullptr, 1, &h, &found),
                     CUBLAS_STATUS_INVALID_VALUE); /* BIAS without a bias pointer */
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &gelu, sizeof gelu));
    void *aux;
    CHECK(cudaMalloc(&aux, 16 * 24 * 2));
    int64_t aux_ld = 20; /* not divisible by 8 */
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
    assert_int_equal(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, nullptr, 1, &h, &found),
                     CUBLAS_STATUS_INVALID_VALUE);
    aux_ld = 8; /* under D's rows */
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
    assert_int_equal(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, nullptr, 1, &h, &found),
                     CUBLAS_STATUS_INVALID_VALUE);
    aux_ld = 16;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
    LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, nullptr, 1, &h, &found));

    char *da, *db, *dd;
    CHECK(cudaMalloc((void **)&da, 16 * 32 * 2 + 16));
    CHECK(cudaMalloc((void **)&db, 32 * 24 * 2));
    CHECK(cudaMalloc((void **)&dd, 16 * 24 * 2));
    float alpha = 1.0f, beta = 0.0f;
    assert_int_equal(cublasLtMatmul(lt, desc, &alpha, da + 2, a, db, b, &beta, dd, d, dd, d, &h.algo, nullptr, 0, 0),
                     CUBLAS_STATUS_NOT_SUPPORTED); /* A one bf16 off 16-byte alignment */
    LT(cublasLtMatmul(lt, desc, &alpha, da, a, db, b, &beta, dd, d, dd, d, &h.algo, nullptr, 0, 0));
    CHECK(cudaDeviceSynchronize());
    for (cublasLtMatrixLayout_t l : {a, b, d, wrong_a, short_ld})
        cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    for (void *ptr : {(void *)da, (void *)db, (void *)dd, aux})
        CHECK(cudaFree(ptr));
}

} /* namespace */

int main(void)
{
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_layout_and_epilogue),
        cmocka_unit_test(strided_batches),
        cmocka_unit_test(documented_rules_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
