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

#include "flash_attention_kernels.cuh"

#include <setjmp.h>
#include <stdarg.h>

extern "C" {
#include <cmocka.h>

#include "ops.h"
#include "rng.h"
}
#include "attention_lse.h"
#include "expect_close.h"

namespace {

uint64_t next_seed = 1;

/* Normal random values, rounded to bf16 (so the reference sees exactly
 * what the kernels see). */
std::vector<float> random_bf16_values(size_t n, float scale)
{
    struct rng r;
    rng_seed(&r, next_seed++);
    std::vector<float> x(n);
    for (float &v : x)
        v = __bfloat162float(__float2bfloat16_rn(scale * (float)rng_normal(&r)));
    return x;
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float> &x)
{
    std::vector<__nv_bfloat16> y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = __float2bfloat16_rn(x[i]);
    return y;
}

std::vector<float> to_float(const std::vector<__nv_bfloat16> &x)
{
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = __bfloat162float(x[i]);
    return y;
}

/* Memory as a kernel would find it before writing: NaN (0xff bytes). */
template <typename T> std::vector<T> poisoned(size_t n)
{
    std::vector<T> x(n);
    memset((void *)x.data(), 0xff, n * sizeof(T));
    return x;
}

template <int HS> void check_head_size(int B, int T, int NH)
{
    using namespace flash;
    int C = NH * HS;
    size_t NC = (size_t)B * T * C, rows = (size_t)B * NH * T;
    print_message("head size %d: B %d, T %d, %d heads\n", HS, B, T, NH);
    std::vector<float> qkv = random_bf16_values(3 * NC, 1.0f), dout = random_bf16_values(NC, 1.0f);
    std::vector<float> out(NC), att(rows * T), dqkv(3 * NC, 0.0f);
    attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);

    std::vector<__nv_bfloat16> g_qkv = to_bf16(qkv), g_dout = to_bf16(dout);
    std::vector<__nv_bfloat16> g_out = poisoned<__nv_bfloat16>(NC), g_dqkv = poisoned<__nv_bfloat16>(3 * NC);
    std::vector<float> g_lse = poisoned<float>(rows), g_delta = poisoned<float>(rows);
    dim3 grid((T + TILE - 1) / TILE, B * NH);
    float scale = 1.0f / sqrtf((float)HS);

    cuda_emu::launch(flash_forward_kernel<HS>, grid, THREADS, forward_smem<HS>(0).bytes, g_out.data(), g_lse.data(),
                     g_qkv.data(), T, NH, LOG2E * scale);
    expect_close_to("forward out", to_float(g_out).data(), out.data(), NC, 1e-2);
    std::vector<float> lse(rows);
    attention_lse_reference(lse.data(), qkv.data(), B, T, C, NH);
    expect_close_to("forward lse", g_lse.data(), lse.data(), rows, 1e-3);

    cuda_emu::launch(flash_delta_kernel, dim3((unsigned)((rows + 7) / 8)), 256, 0, g_delta.data(), g_dout.data(),
                     g_out.data(), B, T, NH, HS);
    size_t bytes = backward_smem<HS>(0).bytes;
    cuda_emu::launch(flash_backward_kv_kernel<HS>, grid, THREADS, bytes, g_dqkv.data(), g_dout.data(), g_qkv.data(),
                     g_lse.data(), g_delta.data(), T, NH, LOG2E * scale, scale);
    cuda_emu::launch(flash_backward_q_kernel<HS>, grid, THREADS, bytes, g_dqkv.data(), g_dout.data(), g_qkv.data(),
                     g_lse.data(), g_delta.data(), T, NH, LOG2E * scale, scale);
    expect_close_to("backward dqkv", to_float(g_dqkv).data(), dqkv.data(), 3 * NC, 2e-2);
}

/* The emulator's WMMA itself, on one 16 x 16 x 16 product with B read
 * column-major (the layout the kernels use for k^T), against plain loops:
 * the kernel tests above mean nothing if this is wrong. */
void wmma_product_kernel(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b_transposed)
{
    using namespace nvcuda;
    flash::frag_a fa;
    flash::frag_bt fb;
    flash::frag_acc acc;
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
    cuda_emu::launch(wmma_product_kernel, dim3(1), 32, 0, d, a, bt);
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
