/* Every CUDA kernel against its CPU twin (the C files in kernels/) on fresh random
 * inputs, then the whole GPU model against the CPU model.
 *
 * Inputs are rounded to bf16 first, so the CPU reference sees exactly what
 * the GPU sees and the error measured is the kernel's own. Bounds: 1e-2
 * relative where the result passes through bf16 (its 8-bit mantissa rounds
 * at 2^-9 = 2e-3 per step), 1e-4 for fp32 paths; 2e-2 where several bf16
 * roundings chain (attention's backward pass, the whole model). Outputs
 * that a kernel writes are poisoned with NaN first, so an element it fails
 * to write fails the test; NaN or infinity never passes. Without a GPU the
 * test says so and reports itself skipped (exit 77).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include <cmocka.h>

#include "rng.h"
}
#include "attention_lse.h"
#ifdef __CUDACC__
#include "gemm_rate.h"
#endif
#include "expect_close.h"
#include "gpt_cuda.h"
#include "gpu_present.h"
#include "ops_cuda.cuh"

#define CHECK_CUDA(call)                                                                                       \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess)                                                                                 \
            fail_msg("%s: %s", #call, cudaGetErrorString(e_));                                                 \
    } while (0)
#define CHECK_OK(call)                                                                                         \
    do {                                                                                                       \
        struct sr_error err_ = {{0}};                                                                          \
        if ((call) != 0)                                                                                       \
            fail_msg("%s: %s", #call, err_.text);                                                             \
    } while (0)
/* Inside CHECK_OK, calls name their error argument err_. */

static uint64_t next_seed = 1;

/* What a test allocates stays held until its teardown frees it (so a
 * failing assertion leaks nothing either): host buffers, device buffers. */
enum { HELD_MAX = 256 };
static void *held_host[HELD_MAX], *held_device[HELD_MAX];
static int held_host_count, held_device_count;

static void *hold_host(void *p)
{
    assert_non_null(p);
    assert_true(held_host_count < HELD_MAX);
    return held_host[held_host_count++] = p;
}

static void *hold_device(void *p)
{
    assert_true(held_device_count < HELD_MAX);
    return held_device[held_device_count++] = p;
}

static void *host_alloc(size_t bytes)
{
    return hold_host(malloc(bytes));
}

static void *host_zeroed(size_t n, size_t size)
{
    return hold_host(calloc(n, size));
}

static int release_held(void **state)
{
    (void)state;
    while (held_host_count > 0)
        free(held_host[--held_host_count]);
    int failed = 0;
    while (held_device_count > 0)
        failed |= cudaFree(held_device[--held_device_count]) != cudaSuccess;
    return failed ? -1 : 0;
}

static float *random_floats(size_t n, float scale)
{
    struct rng r;
    rng_seed(&r, next_seed++);
    float *x = (float *)host_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)rng_normal(&r);
    return x;
}

static float *copy_floats(const float *x, size_t n)
{
    float *y = (float *)malloc(n * sizeof(float));
    assert_non_null(y);
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* Rounded to what bf16 holds, in place. */
static float *as_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
    return x;
}

static bf16 *device_bf16(const float *x, size_t n)
{
    bf16 *h = (bf16 *)malloc(n * sizeof(bf16)), *d;
    assert_non_null(h);
    for (size_t i = 0; i < n; i++)
        h[i] = __float2bfloat16_rn(x[i]);
    CHECK_CUDA(cudaMalloc((void **)&d, n * sizeof(bf16)));
    hold_device(d);
    CHECK_CUDA(cudaMemcpy(d, h, n * sizeof(bf16), cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static float *device_f32(const float *x, size_t n)
{
    float *d;
    CHECK_CUDA(cudaMalloc((void **)&d, n * sizeof(float)));
    hold_device(d);
    CHECK_CUDA(cudaMemcpy(d, x, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static int *device_ints(const int *x, size_t n)
{
    int *d;
    CHECK_CUDA(cudaMalloc((void **)&d, n * sizeof(int)));
    hold_device(d);
    CHECK_CUDA(cudaMemcpy(d, x, n * sizeof(int), cudaMemcpyHostToDevice));
    return d;
}

/* Device memory full of NaN (0xff bytes are NaN in fp32 and in bf16). */
static void *poisoned(size_t bytes)
{
    void *d;
    CHECK_CUDA(cudaMalloc(&d, bytes));
    hold_device(d);
    CHECK_CUDA(cudaMemset(d, 0xff, bytes));
    return d;
}

static float *host_of_bf16(const bf16 *d, size_t n)
{
    CHECK_CUDA(cudaDeviceSynchronize());
    bf16 *h = (bf16 *)malloc(n * sizeof(bf16));
    float *x = (float *)malloc(n * sizeof(float));
    assert_non_null(h);
    assert_non_null(x);
    CHECK_CUDA(cudaMemcpy(h, d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        x[i] = __bfloat162float(h[i]);
    free(h);
    return x;
}

static float *host_of_f32(const float *d, size_t n)
{
    CHECK_CUDA(cudaDeviceSynchronize());
    float *x = (float *)malloc(n * sizeof(float));
    assert_non_null(x);
    CHECK_CUDA(cudaMemcpy(x, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

/* As expect_close_to (expect_close.h), then frees `got`. */
static void expect_close(const char *what, float *got, const float *want, size_t n, double tol)
{
    expect_close_to(what, got, want, n, tol);
    free(got);
}

static void encoder(void **state)
{
    (void)state;
    int B = 3, T = 8, C = 40, V = 50, N = B * T;
    float *wte = as_bf16(random_floats((size_t)V * C, 0.5f), (size_t)V * C);
    float *wpe = as_bf16(random_floats((size_t)T * C, 0.5f), (size_t)T * C);
    int tokens[24];
    for (int i = 0; i < N; i++)
        tokens[i] = (i * 7 + i / 5) % V; /* repeats, so runs of the same token are summed */
    float *ref = (float *)host_alloc((size_t)N * C * sizeof(float));
    encoder_forward(ref, tokens, wte, wpe, B, T, C);
    bf16 *out = (bf16 *)poisoned((size_t)N * C * sizeof(bf16));
    int *dtok = device_ints(tokens, (size_t)N);
    CHECK_OK(encoder_forward_cuda(out, dtok, device_bf16(wte, (size_t)V * C), device_bf16(wpe, (size_t)T * C), B, T, C,
                                  0, &err_));
    expect_close("encoder out", host_of_bf16(out, (size_t)N * C), ref, (size_t)N * C, 1e-2);

    float *dout = random_floats((size_t)N * C, 1.0f);
    float *dwte = random_floats((size_t)V * C, 1.0f), *dwpe = random_floats((size_t)T * C, 1.0f);
    float *d_dwte = device_f32(dwte, (size_t)V * C), *d_dwpe = device_f32(dwpe, (size_t)T * C);
    int order[24], run_start[25], run_token[24], runs;
    token_runs_plan(tokens, N, V, order, run_start, run_token, &runs);
    CHECK_OK(encoder_backward_cuda(d_dwte, d_dwpe, device_f32(dout, (size_t)N * C), device_ints(order, 24),
                                   device_ints(run_start, (size_t)runs + 1), device_ints(run_token, (size_t)runs), runs,
                                   B, T, C, 0, &err_));
    encoder_backward(dwte, dwpe, dout, tokens, B, T, C);
    expect_close("encoder dwte (+=)", host_of_f32(d_dwte, (size_t)V * C), dwte, (size_t)V * C, 1e-5);
    expect_close("encoder dwpe (+=)", host_of_f32(d_dwpe, (size_t)T * C), dwpe, (size_t)T * C, 1e-5);
}

static void layernorm(void **state)
{
    (void)state;
    int N = 37, C = 96; /* neither a multiple of the block's rows nor of 64 lanes */
    size_t NC = (size_t)N * C;
    float *inp = as_bf16(random_floats(NC, 2.0f), NC);
    for (size_t i = 0; i < NC; i++)
        inp[i] = __bfloat162float(__float2bfloat16_rn(inp[i] + 3.0f)); /* a mean far from 0 */
    float *w = random_floats((size_t)C, 1.0f), *b = random_floats((size_t)C, 1.0f);
    float *ref = (float *)host_alloc(NC * sizeof(float)), mean[37], rstd[37];
    layernorm_forward(ref, mean, rstd, inp, w, b, N, C);
    bf16 *out = (bf16 *)poisoned(NC * sizeof(bf16));
    float *dmean = (float *)poisoned((size_t)N * 4), *drstd = (float *)poisoned((size_t)N * 4);
    bf16 *dinp_bf = device_bf16(inp, NC);
    float *dw = device_f32(w, (size_t)C);
    CHECK_OK(layernorm_forward_cuda(out, dmean, drstd, dinp_bf, dw, device_f32(b, (size_t)C), N, C, 0, &err_));
    expect_close("layernorm out", host_of_bf16(out, NC), ref, NC, 1e-2);
    expect_close("layernorm mean", host_of_f32(dmean, (size_t)N), mean, (size_t)N, 1e-5);
    expect_close("layernorm rstd", host_of_f32(drstd, (size_t)N), rstd, (size_t)N, 1e-5);

    float *dout = as_bf16(random_floats(NC, 1.0f), NC);
    float *dinp = random_floats(NC, 1.0f), *dweight = random_floats((size_t)C, 1.0f),
          *dbias = random_floats((size_t)C, 1.0f);
    float *g_dinp = device_f32(dinp, NC), *g_dw = device_f32(dweight, (size_t)C), *g_db = device_f32(dbias, (size_t)C);
    float *scratch = (float *)poisoned(layernorm_scratch_floats(C) * sizeof(float));
    CHECK_OK(layernorm_backward_cuda(g_dinp, g_dw, g_db, scratch, device_bf16(dout, NC), dinp_bf, dw, dmean, drstd, N, C,
                                     0, &err_));
    layernorm_backward(dinp, dweight, dbias, dout, inp, w, mean, rstd, N, C);
    expect_close("layernorm dinp (+=)", host_of_f32(g_dinp, NC), dinp, NC, 1e-4);
    expect_close("layernorm dweight (+=)", host_of_f32(g_dw, (size_t)C), dweight, (size_t)C, 1e-4);
    expect_close("layernorm dbias (+=)", host_of_f32(g_db, (size_t)C), dbias, (size_t)C, 1e-4);
}

static void matmul(void **state)
{
    (void)state;
    struct cuda_blas blas;
    CHECK_OK(cuda_blas_create(&blas, &err_));
    int N = 48, C = 64, OC = 96;
    size_t NC = (size_t)N * C, NO = (size_t)N * OC, OCC = (size_t)OC * C;
    float *inp = as_bf16(random_floats(NC, 1.0f), NC), *w = as_bf16(random_floats(OCC, 0.2f), OCC);
    float *bias = as_bf16(random_floats((size_t)OC, 0.5f), (size_t)OC);
    bf16 *g_inp = device_bf16(inp, NC), *g_w = device_bf16(w, OCC), *g_bias = device_bf16(bias, (size_t)OC);
    float *ref = (float *)host_alloc(NO * sizeof(float)), *ref_gelu = (float *)host_alloc(NO * sizeof(float));
    matmul_forward(ref, inp, w, bias, N, C, OC);
    bf16 *out = (bf16 *)poisoned(NO * 2), *pre = (bf16 *)poisoned(NO * 2);
    CHECK_OK(matmul_forward_cuda(&blas, out, NULL, g_inp, g_w, g_bias, N, C, OC, OC, 0, &err_));
    expect_close("matmul out (bias)", host_of_bf16(out, NO), ref, NO, 1e-2);
    gelu_forward(ref_gelu, ref, NO);
    CHECK_OK(matmul_forward_cuda(&blas, out, pre, g_inp, g_w, g_bias, N, C, OC, OC, 0, &err_));
    expect_close("matmul out (GELU)", host_of_bf16(out, NO), ref_gelu, NO, 1e-2);
    expect_close("matmul pre-GELU", host_of_bf16(pre, NO), ref, NO, 1e-2);

    float *dout = as_bf16(random_floats(NO, 1.0f), NO);
    float *dinp = (float *)host_zeroed(NC, sizeof(float)), *dw = random_floats(OCC, 1.0f),
          *db = random_floats((size_t)OC, 1.0f);
    float *g_dw = device_f32(dw, OCC), *g_db = device_f32(db, (size_t)OC);
    bf16 *g_dinp = (bf16 *)poisoned(NC * 2), *g_dout = device_bf16(dout, NO);
    float *scratch = (float *)poisoned(bias_grad_scratch_floats(OC) * sizeof(float));
    CHECK_OK(matmul_backward_cuda(&blas, g_dinp, g_dw, g_db, scratch, g_dout, OC, g_inp, g_w, NULL, N, C, OC, 0, &err_));
    matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    expect_close("matmul dinp", host_of_bf16(g_dinp, NC), dinp, NC, 1e-2);
    expect_close("matmul dweight (+=)", host_of_f32(g_dw, OCC), dw, OCC, 1e-4);
    expect_close("matmul dbias (+=)", host_of_f32(g_db, (size_t)OC), db, (size_t)OC, 1e-4);

    /* Backward through a GELU before the layer: dinp *= GELU'(its input). */
    float *pre_in = as_bf16(random_floats(NC, 1.0f), NC);
    float *dgelu_out = (float *)host_zeroed(NC, sizeof(float)), *dpre = (float *)host_zeroed(NC, sizeof(float));
    float *scratch_dw = (float *)host_zeroed(OCC, sizeof(float));
    matmul_backward(dgelu_out, scratch_dw, NULL, dout, inp, w, N, C, OC);
    gelu_backward(dpre, pre_in, dgelu_out, NC);
    CHECK_OK(matmul_backward_cuda(&blas, g_dinp, g_dw, NULL, scratch, g_dout, OC, g_inp, g_w, device_bf16(pre_in, NC),
                                  N, C, OC, 0, &err_));
    expect_close("matmul dinp (dGELU)", host_of_bf16(g_dinp, NC), dpre, NC, 1e-2);
    cuda_blas_destroy(&blas);
}

static void attention(void **state)
{
    (void)state;
    struct cuda_blas blas;
    CHECK_OK(cuda_blas_create(&blas, &err_));
    int B = 2, T = 24, C = 64, NH = 4, N = B * T;
    size_t NC = (size_t)N * C, att_n = (size_t)B * NH * T * T;
    float *qkv = as_bf16(random_floats(3 * NC, 1.0f), 3 * NC);
    float *out = (float *)host_alloc(NC * sizeof(float)), *att = (float *)host_alloc(att_n * sizeof(float));
    attention_forward(out, att, qkv, B, T, C, NH);
    struct attention_workspace ws;
    CHECK_OK(attention_workspace_create(&ws, B, T, C, NH, &err_));
    bf16 *g_qkv = device_bf16(qkv, 3 * NC), *g_out = (bf16 *)poisoned(NC * 2), *g_att = (bf16 *)poisoned(att_n * 2);
    CHECK_OK(attention_forward_cuda(&blas, g_out, g_att, g_qkv, &ws, B, T, C, NH, 0, &err_));
    expect_close("attention out", host_of_bf16(g_out, NC), out, NC, 1e-2);
    expect_close("attention probabilities", host_of_bf16(g_att, att_n), att, att_n, 1e-2);

    float *dout = as_bf16(random_floats(NC, 1.0f), NC), *dqkv = (float *)host_zeroed(3 * NC, sizeof(float));
    attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
    bf16 *g_dqkv = (bf16 *)poisoned(3 * NC * 2);
    CHECK_OK(attention_backward_cuda(&blas, g_dqkv, device_bf16(dout, NC), g_qkv, g_att, &ws, B, T, C, NH, 0, &err_));
    expect_close("attention dqkv", host_of_bf16(g_dqkv, 3 * NC), dqkv, 3 * NC, 2e-2);
    attention_workspace_free(&ws);
    cuda_blas_destroy(&blas);
}

/* Fused attention against the same CPU reference, for every head size it
 * has, over several tiles with a partial last one; then the backward pass
 * again, which must repeat itself bit for bit (no atomics). */
static void flash_attention(void **state)
{
    (void)state;
    const int head_sizes[] = {16, 32, 64, 128};
    for (int i = 0; i < 4; i++) {
        int B = 2, T = 200, NH = 2, C = NH * head_sizes[i], N = B * T;
        size_t NC = (size_t)N * C, rows = (size_t)B * NH * T;
        print_message("  head size %d, T %d\n", head_sizes[i], T);
        float *qkv = as_bf16(random_floats(3 * NC, 1.0f), 3 * NC), *dout = as_bf16(random_floats(NC, 1.0f), NC);
        float *out = (float *)host_alloc(NC * sizeof(float)), *att = (float *)host_alloc(rows * T * sizeof(float));
        float *lse = (float *)host_alloc(rows * sizeof(float)), *dqkv = (float *)host_zeroed(3 * NC, sizeof(float));
        assert_true(out && att && lse && dqkv);
        attention_forward(out, att, qkv, B, T, C, NH);
        attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
        attention_lse_reference(lse, qkv, B, T, C, NH);

        bf16 *g_qkv = device_bf16(qkv, 3 * NC), *g_dout = device_bf16(dout, NC), *g_out = (bf16 *)poisoned(NC * 2);
        float *g_lse = (float *)poisoned(rows * 4), *g_delta = (float *)poisoned(rows * 4);
        CHECK_OK(flash_attention_forward_cuda(g_out, g_lse, g_qkv, B, T, C, NH, 0, &err_));
        expect_close("flash out", host_of_bf16(g_out, NC), out, NC, 1e-2);
        expect_close("flash lse", host_of_f32(g_lse, rows), lse, rows, 1e-3);

        bf16 *g_dqkv[2];
        float *got[2];
        for (int run = 0; run < 2; run++) {
            g_dqkv[run] = (bf16 *)poisoned(3 * NC * 2);
            CHECK_OK(flash_attention_backward_cuda(g_dqkv[run], g_delta, g_dout, g_qkv, g_out, g_lse, B, T, C, NH, 0,
                                                   &err_));
            got[run] = host_of_bf16(g_dqkv[run], 3 * NC);
        }
        assert_memory_equal(got[0], got[1], 3 * NC * sizeof(float));
        free(got[1]);
        expect_close("flash dqkv", got[0], dqkv, 3 * NC, 2e-2);
    }
}

/* V below the kernel's 512 threads (a warp per 32 logits) and above (each
 * thread several). */
static void crossentropy_with(int V, int ld)
{
    int N = 12;
    float *logits = as_bf16(random_floats((size_t)N * V, 2.0f), (size_t)N * V);
    int targets[12];
    for (int i = 0; i < N; i++)
        targets[i] = (i * 37) % V;
    float losses[12], *probs = (float *)host_alloc((size_t)N * V * 4);
    float *dlogits = (float *)host_zeroed((size_t)N * V, 4);
    crossentropy_forward(losses, probs, logits, targets, N, V);
    crossentropy_backward(dlogits, probs, targets, 0.5f, N, V);
    float *padded = (float *)host_alloc((size_t)N * ld * 4);
    for (int i = 0; i < N; i++)
        for (int v = 0; v < ld; v++)
            padded[i * ld + v] = v < V ? logits[i * V + v] : NAN; /* padding is never read */
    bf16 *g_logits = device_bf16(padded, (size_t)N * ld);
    float *g_losses = (float *)poisoned((size_t)N * 4);
    CHECK_OK(crossentropy_cuda(g_losses, g_logits, ld, device_ints(targets, (size_t)N), 0.5f, N, V, 0, &err_));
    expect_close("cross-entropy losses", host_of_f32(g_losses, (size_t)N), losses, (size_t)N, 1e-5);
    float *got = host_of_bf16(g_logits, (size_t)N * ld), *unpadded = (float *)host_alloc((size_t)N * V * 4);
    for (int i = 0; i < N; i++)
        memcpy(unpadded + i * V, got + i * ld, (size_t)V * 4);
    free(got);
    expect_close_to("cross-entropy dlogits", unpadded, dlogits, (size_t)N * V, 1e-2);

    float sum = 0.0f, *acc = device_f32(&sum, 1);
    double want = 0.0;
    for (int i = 0; i < N; i++)
        want += 0.25 * losses[i];
    float want_f = (float)want + 1.0f, one = 1.0f;
    CHECK_CUDA(cudaMemcpy(acc, &one, 4, cudaMemcpyHostToDevice)); /* adds to what is there */
    CHECK_OK(loss_sum_cuda(acc, g_losses, N, 0.25f, 0, &err_));
    expect_close("loss sum (+=)", host_of_f32(acc, 1), &want_f, 1, 1e-5);
}

static void crossentropy(void **state)
{
    (void)state;
    crossentropy_with(100, 128);
    crossentropy_with(1000, 1024);
}

static void optimizer(void **state)
{
    (void)state;
    size_t sizes[3] = {1000, 37, 5000}, n = 6037;
    float *p = random_floats(n, 1.0f), *g = random_floats(n, 3.0f), *m = random_floats(n, 0.1f),
          *v = random_floats(n, 0.1f);
    for (size_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]);
    float *g_p = device_f32(p, n), *g_g = device_f32(g, n), *g_m = device_f32(m, n), *g_v = device_f32(v, n);
    bf16 *g_pb = (bf16 *)poisoned(n * 2);
    float *g_norm = (float *)poisoned(4);
    double *partials = (double *)poisoned(GRAD_NORM_PARTIALS * sizeof(double));
    CHECK_OK(grad_norm_cuda(g_norm, partials, g_g, n, 0, &err_));
    float norm = (float)sqrt(sum_of_squares(g, n));
    expect_close("gradient norm", host_of_f32(g_norm, 1), &norm, 1, 1e-6);

    struct adamw_cuda_hparams h;
    memset(&h, 0, sizeof h);
    h.lr = 1e-3f, h.beta1 = 0.9f, h.beta2 = 0.95f, h.eps = 1e-8f, h.weight_decay = 0.1f, h.grad_clip = 1.0f;
    h.m_correction = 1.0f - powf(0.9f, 3.0f), h.v_correction = 1.0f - powf(0.95f, 3.0f);
    h.tensors = 3, h.decays = 0x5; /* tensors 0 and 2 */
    h.tensor_end[0] = 1000, h.tensor_end[1] = 1037, h.tensor_end[2] = n;
    CHECK_OK(adamw_cuda(g_p, g_pb, g_g, g_m, g_v, n, g_norm, &h, 0, &err_));
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        struct adamw_hparams c = {1e-3f, 0.9f, 0.95f, 1e-8f, i == 1 ? 0.0f : 0.1f, 1.0f / norm, 3};
        adamw_update(p + off, g + off, m + off, v + off, sizes[i], &c);
        off += sizes[i];
    }
    expect_close("adamw params", host_of_f32(g_p, n), p, n, 1e-5);
    expect_close("adamw m", host_of_f32(g_m, n), m, n, 1e-5);
    expect_close("adamw v", host_of_f32(g_v, n), v, n, 1e-5);
    expect_close("adamw bf16 copy", host_of_bf16(g_pb, n), p, n, 1e-2);

    /* A non-finite norm leaves every parameter as it was. */
    float *before = host_of_f32(g_p, n);
    float nan = NAN;
    CHECK_CUDA(cudaMemcpy(g_g + 5, &nan, 4, cudaMemcpyHostToDevice));
    CHECK_OK(grad_norm_cuda(g_norm, partials, g_g, n, 0, &err_));
    CHECK_OK(adamw_cuda(g_p, g_pb, g_g, g_m, g_v, n, g_norm, &h, 0, &err_));
    float *after = host_of_f32(g_p, n);
    assert_memory_equal(before, after, n * 4);
    free(before), free(after);
}

/* A rate means something only on a GPU: under the emulator (tests/emu,
 * which compiles this file with a host compiler) it is left out. */
#ifdef __CUDACC__
static void gemm_rate(void **state)
{
    (void)state;
    const char *types[] = {"bf16", "fp16", "tf32"};
    for (int i = 0; i < 3; i++) {
        double flops = 0;
        struct sr_error err = {{0}};
        if (cuda_gemm_rate(types[i], 2048, 2, 5, &flops, &err) != 0)
            fail_msg("%s", err.text);
        print_message("  %s 2048^3: %.1f TFLOP/s\n", types[i], flops / 1e12);
        assert_true(isfinite(flops) && flops > 1e12 && flops < 1e16);
    }
}
#endif

/* One forward and backward of the whole model, GPU against CPU, on the same
 * weights: the loss and every gradient tensor, with attention computed as
 * `attention` says. */
static void whole_model_with(enum gpt_attention attention, int want_flash)
{
    struct gpt_config cfg = {64, 256, 2, 4, 64};
    int B = 4, T = 64, N = B * T;
    struct gpt cpu;
    struct sr_error e = {{0}};
    assert_int_equal(gpt_create(&cpu, &cfg, B, T, &e), 0);
    gpt_init(&cpu, 42);
    /* bf16 weights for both, so the comparison measures the kernels */
    as_bf16(cpu.params_memory, cpu.num_params);
    int inputs[256], targets[256];
    struct rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < N; i++) {
        inputs[i] = (int)(rng_next(&r) % 256);
        targets[i] = (int)(rng_next(&r) % 256);
    }
    float dloss = 1.0f / (float)N;
    float loss = gpt_forward(&cpu, inputs, targets);
    gpt_backward(&cpu, inputs, targets, dloss);

    struct gpt_cuda *gpu;
    CHECK_OK(gpt_cuda_create(&gpu, &cfg, B, T, attention, 0, &err_));
    assert_int_equal(gpt_cuda_flash_attention(gpu), want_flash);
    CHECK_OK(gpt_cuda_set_params(gpu, cpu.params_memory, &err_));
    float zero = 0.0f, *acc = device_f32(&zero, 1);
    CHECK_OK(gpt_cuda_forward(gpu, inputs, targets, dloss, acc, dloss, &err_));
    CHECK_OK(gpt_cuda_backward(gpu, NULL, NULL, &err_));
    expect_close("model loss", host_of_f32(acc, 1), &loss, 1, 1e-2);
    float *grads = host_of_f32(gpt_cuda_grads(gpu), cpu.num_params);
    size_t off = 0;
    for (int i = 0; i < GPT_PARAM_TENSORS; i++) {
        char what[64];
        snprintf(what, sizeof what, "model d%s", gpt_tensor_name(i));
        expect_close(what, copy_floats(grads + off, cpu.param_sizes[i]), cpu.grads_memory + off, cpu.param_sizes[i],
                     2e-2);
        off += cpu.param_sizes[i];
    }
    free(grads);
    gpt_cuda_free(gpu);
    gpt_free(&cpu);
}

static void whole_model(void **state)
{
    (void)state;
    print_message("  materialized attention:\n");
    whole_model_with(GPT_ATTENTION_MATERIALIZED, 0);
    print_message("  fused attention (auto picks it for head size 16):\n");
    whole_model_with(GPT_ATTENTION_AUTO, 1);
}

/* Asking for fused attention with a head size it lacks is refused, naming the head size. */
static void flash_refused_for_unsupported_head_size(void **state)
{
    (void)state;
    struct gpt_config cfg = {64, 256, 1, 2, 48}; /* head size 24 */
    struct gpt_cuda *gpu = NULL;
    struct sr_error err = {{0}};
    assert_int_not_equal(gpt_cuda_create(&gpu, &cfg, 1, 16, GPT_ATTENTION_FLASH, 0, &err), 0);
    assert_null(gpu);
    assert_non_null(strstr(err.text, "not 24"));
    CHECK_OK(gpt_cuda_create(&gpu, &cfg, 1, 16, GPT_ATTENTION_AUTO, 0, &err_));
    assert_int_equal(gpt_cuda_flash_attention(gpu), 0);
    gpt_cuda_free(gpu);
}

int main(void)
{
    if (!gpu_present("the CUDA kernels are compiled but not run"))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(encoder, release_held),
        cmocka_unit_test_teardown(layernorm, release_held),
        cmocka_unit_test_teardown(matmul, release_held),
        cmocka_unit_test_teardown(attention, release_held),
        cmocka_unit_test_teardown(flash_attention, release_held),
        cmocka_unit_test_teardown(crossentropy, release_held),
        cmocka_unit_test_teardown(optimizer, release_held),
#ifdef __CUDACC__
        cmocka_unit_test(gemm_rate),
#endif
        cmocka_unit_test_teardown(whole_model, release_held),
        cmocka_unit_test(flash_refused_for_unsupported_head_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
