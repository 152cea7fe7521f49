/* Linear layers through OpenBLAS. OpenBLAS splits sgemm across threads by
 * rows and columns of the output, never along the reduction, so a given
 * shape and thread count gives the same bits every run: the resume test
 * relies on that. */
#include <cblas.h>

#include "ops.h"

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    if (!bias)
        return;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++)
            out[(size_t)i * OC + o] += bias[o];
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC)
{
    /* dinp[N,C] += dout[N,OC] @ weight[OC,C] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    /* dweight[OC,C] += dout^T @ inp */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (!dbias)
        return;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++)
            dbias[o] += dout[(size_t)i * OC + o];
}
