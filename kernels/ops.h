/* ops.h — the operations of the GPT model, on the CPU, in fp32.
 *
 * Shapes follow llm.c: B sequences of T tokens, C channels, NH heads,
 * V vocabulary entries; N = B*T rows. Matrices are row-major; a linear
 * layer's weight is [OC, C] (out = inp @ weight^T + bias), as in PyTorch.
 *
 * Every backward function ADDS into its gradient outputs (+=), so callers
 * zero them once and gradients accumulate over micro-batches and over the
 * several uses of a tensor (the residual stream, the tied embedding).
 * Each function here has a CUDA twin with the same contract in cuda/
 * (ops_cuda.cuh; bf16 activations, fp32 accumulation), which
 * tests/gpu/test_cuda_kernels.cu checks against these. tests/test_kernels.c
 * checks each backward here against finite differences of an independent
 * float64 reference.
 */
#ifndef SAGERUN_OPS_H
#define SAGERUN_OPS_H

#include <stddef.h>

#define LAYERNORM_EPS 1e-5f

/* out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] */
void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C);

/* Per row: out = (x - mean) * rstd * weight + bias; mean and rstd [N] are
 * kept for the backward pass. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). OpenBLAS sgemm. */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* Causal multi-head self-attention. inp [B,T,3C] holds q, k, v side by
 * side; head h uses channels [h*C/NH, (h+1)*C/NH) of each. att [B,NH,T,T]
 * keeps the softmax probabilities for the backward pass (entries above the
 * diagonal are 0). out [B,T,C]. */
void attention_forward(float *out, float *att, const float *inp, int B, int T, int C, int NH);
void attention_backward(float *dinp, const float *dout, const float *inp, const float *att, int B, int T, int C,
                        int NH);

/* GELU, tanh approximation (GPT-2's). */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b; the backward adds dout into both. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* Softmax over V then cross-entropy against targets, fused:
 * losses[i] = -log softmax(logits[i])[targets[i]]; probs [N,V] is kept.
 * The backward adds dloss * (probs - onehot(target)) into dlogits: the
 * gradient of dloss * sum(losses). */
void crossentropy_forward(float *losses, float *probs, const float *logits, const int *targets, int N, int V);
void crossentropy_backward(float *dlogits, const float *probs, const int *targets, float dloss, int N, int V);

/* Sum of squares, accumulated in double so the global gradient norm does
 * not depend on how the parameters are split into tensors. */
double sum_of_squares(const float *x, size_t n);

/* One AdamW step (decoupled weight decay) on n parameters at step t >= 1:
 * g = grad * grad_scale (the clipping factor); m, v are the moments. */
struct adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    int t;
};
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, const struct adamw_hparams *h);

#endif
