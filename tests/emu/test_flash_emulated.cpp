/* The fused attention kernels (kernels/cuda/flash_attention_kernels.cuh),
 * compiled for the CPU and run under the emulator (cuda_emu.hpp), against
 * the CPU model's attention (kernels/attention.c) on fresh random inputs:
 * every supported head size, sequence lengths that are and are not whole
 * tiles, forward (output and log-sum-exp) and backward (dq, dk, dv).
 *
 * This runs wherever the project builds, GPU or not, so the kernels'
 * indexing, masking, tiling and barriers are checked in CI; what it cannot
 * check is the GPU itself (tensor-core rounding, speed), which
 * tests/gpu/test_cuda_kernels.cu does on a GPU with the same references.
 * Bounds as there: 1e-2 where results pass through bf16, 2e-2 for the
 * backward pass's chained roundings; lse, summed in fp32, 1e-3.
 */
#include "cuda_emu.hpp"

#include "ops_cuda.cuh"

#include <setjmp.h>
#include <stdarg.h>

extern "C" {
#include <cmocka.h>

#include "ops.h"
#include "rng.h"
}
#include "attention_lse.h"
#include "emu_test_data.hpp"
#include "expect_close.h"

namespace {

/* Device memory as a kernel would find it before writing: NaN (0xff bytes). */
template <typename T> T *poisoned(size_t n)
{
    T *d;
    assert_int_equal(cudaMalloc((void **)&d, n * sizeof(T)), cudaSuccess);
    assert_int_equal(cudaMemset(d, 0xff, n * sizeof(T)), cudaSuccess);
    return d;
}

template <int HS> void check_head_size(int B, int T, int NH)
{
    int C = NH * HS;
    size_t NC = (size_t)B * T * C, rows = (size_t)B * NH * T;
    print_message("head size %d: B %d, T %d, %d heads\n", HS, B, T, NH);
    std::vector<float> qkv = random_bf16_values(3 * NC, 1.0f), dout = random_bf16_values(NC, 1.0f);
    std::vector<float> out(NC), att(rows * T), dqkv(3 * NC, 0.0f);
    attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);

    bf16 *g_qkv = to_device(to_bf16(qkv)), *g_dout = to_device(to_bf16(dout));
    bf16 *g_out = poisoned<bf16>(NC), *g_dqkv = poisoned<bf16>(3 * NC);
    float *g_lse = poisoned<float>(rows), *g_delta = poisoned<float>(rows);
    struct sr_error err = {{0}};
    if (flash_attention_forward_cuda(g_out, g_lse, g_qkv, B, T, C, NH, 0, &err) != 0)
        fail_msg("%s", err.text);
    expect_close_to("forward out", to_float(from_device(g_out, NC)).data(), out.data(), NC, 1e-2);
    std::vector<float> lse(rows);
    attention_lse_reference(lse.data(), qkv.data(), B, T, C, NH);
    expect_close_to("forward lse", from_device(g_lse, rows).data(), lse.data(), rows, 1e-3);
    if (flash_attention_backward_cuda(g_dqkv, g_delta, g_dout, g_qkv, g_out, g_lse, B, T, C, NH, 0, &err) != 0)
        fail_msg("%s", err.text);
    expect_close_to("backward dqkv", to_float(from_device(g_dqkv, 3 * NC)).data(), dqkv.data(), 3 * NC, 2e-2);
    for (void *p : {(void *)g_qkv, (void *)g_dout, (void *)g_out, (void *)g_dqkv, (void *)g_lse, (void *)g_delta})
        assert_int_equal(cudaFree(p), cudaSuccess);
}

/* The emulator's WMMA itself, on one 16 x 16 x 16 product with B read
 * column-major (the layout the kernels use for k^T), against plain loops:
 * the kernel tests above mean nothing if this is wrong. */
void wmma_product_kernel(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b_transposed)
{
    using namespace nvcuda;
    /* the fragments the kernels use (flash_attention_kernels.cuh) */
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.5f);
    wmma::load_matrix_sync(fa, a, 24);
    wmma::load_matrix_sync(fb, b_transposed, 24);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 20, wmma::mem_row_major);
}

void emulated_wmma_is_a_matrix_product(void **state)
{
    (void)state;
    /* row strides padded (24 bf16, 20 floats) so a stride mix-up shows */
    alignas(32) static __nv_bfloat16 a[16 * 24], bt[16 * 24];
    alignas(32) static float d[16 * 20];
    std::vector<float> av = random_bf16_values(16 * 24, 1.0f), bv = random_bf16_values(16 * 24, 1.0f);
    for (int i = 0; i < 16 * 24; i++) {
        a[i] = __float2bfloat16_rn(av[i]);
        bt[i] = __float2bfloat16_rn(bv[i]);
    }
    launch_kernel(wmma_product_kernel, dim3(1), 32, 0, 0, d, a, bt);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> got(256), want(256);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            double sum = 0.5;
            for (int k = 0; k < 16; k++)
                sum += (double)av[i * 24 + k] * bv[j * 24 + k]; /* B[k][j] = bt[j][k] */
            want[i * 16 + j] = (float)sum;
            got[i * 16 + j] = d[i * 20 + j];
        }
    expect_close_to("wmma 16x16x16", got.data(), want.data(), 256, 1e-6);
}

/* Sizes: several tiles with a partial last one, exactly one tile, fewer
 * rows than one warp's share, and a batch of more than one. */
void head_size_16(void **state)
{
    (void)state;
    check_head_size<16>(2, 130, 2);
}

void head_size_32(void **state)
{
    (void)state;
    check_head_size<32>(1, 64, 3);
}

void head_size_64(void **state)
{
    (void)state;
    check_head_size<64>(2, 100, 2);
    check_head_size<64>(1, 9, 1);
}

void head_size_128(void **state)
{
    (void)state;
    check_head_size<128>(1, 80, 2);
}

} /* namespace */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(emulated_wmma_is_a_matrix_product),
        cmocka_unit_test(head_size_16),
        cmocka_unit_test(head_size_32),
        cmocka_unit_test(head_size_64),
        cmocka_unit_test(head_size_128),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
