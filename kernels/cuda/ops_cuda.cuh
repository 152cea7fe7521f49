/* ops_cuda.cuh — the GPT model's operations on CUDA: the twins of ops.h.
 *
 * Precision: activations and the weights fed to matrix products are bf16;
 * every reduction (LayerNorm statistics, softmax, losses, norms) runs in
 * fp32 or wider; parameter gradients, master weights and optimizer state
 * are fp32. The residual stream's gradient is fp32 too: it is summed over
 * every layer, where bf16 would lose the small contributions.
 *
 * Contracts differ from ops.h where the GPU wants them to: parameter
 * gradients still accumulate (+=), but activation gradients are written
 * (=) unless a comment says +=. Every kernel is deterministic: no atomics,
 * fixed reduction orders, so a resumed run repeats an uninterrupted one
 * bit for bit on the same GPU model.
 *
 * Shapes as in ops.h: N = B*T rows, C channels, row-major, weight [OC, C].
 * All pointers are device pointers unless a comment says host.
 */
#ifndef SAGERUN_OPS_CUDA_CUH
#define SAGERUN_OPS_CUDA_CUH

#include <cublasLt.h>
#include <cublas_v2.h>

#include "common.cuh"

/* cuBLASLt for the linear layers (fused epilogues), cuBLAS for attention's
 * batched products; one workspace for both. */
struct cuda_blas {
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    void *workspace;
    size_t workspace_bytes;
};
int cuda_blas_create(struct cuda_blas *b, struct sr_error *err);
void cuda_blas_destroy(struct cuda_blas *b);

/* ---- embeddings ---- */
int encoder_forward_cuda(bf16 *out, const int *tokens, const bf16 *wte, const bf16 *wpe, int B, int T, int C,
                         cudaStream_t s, struct sr_error *err);

/* The backward pass adds each position's gradient into its token's row of
 * dwte. Deterministically, without atomics: the host groups positions by
 * token (token_runs_plan, on host arrays: order[N] positions sorted by token,
 * stable; run_start[runs+1]; run_token[runs]) and one block sums each run in
 * order. */
void token_runs_plan(const int *tokens, int N, int V, int *order, int *run_start, int *run_token, int *runs);
int encoder_backward_cuda(float *dwte, float *dwpe, const float *dout, const int *order, const int *run_start,
                          const int *run_token, int runs, int B, int T, int C, cudaStream_t s,
                          struct sr_error *err);

/* ---- LayerNorm ---- */
int layernorm_forward_cuda(bf16 *out, float *mean, float *rstd, const bf16 *inp, const float *weight,
                           const float *bias, int N, int C, cudaStream_t s, struct sr_error *err);
/* dinp +=; dweight, dbias +=. scratch: layernorm_scratch_floats(C). */
size_t layernorm_scratch_floats(int C);
int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, float *scratch, const bf16 *dout,
                            const bf16 *inp, const float *weight, const float *mean, const float *rstd, int N, int C,
                            cudaStream_t s, struct sr_error *err);

/* ---- linear layers (cuBLASLt) ---- */
/* out[N, OC] (row stride ld_out >= OC) = inp[N, C] @ weight[OC, C]^T + bias;
 * with pre_gelu non-NULL, out = GELU(that) and pre_gelu [N, OC] keeps the
 * argument (GELU_AUX epilogue). bias may be NULL. */
int matmul_forward_cuda(struct cuda_blas *b, bf16 *out, bf16 *pre_gelu, const bf16 *inp, const bf16 *weight,
                        const bf16 *bias, int N, int C, int OC, int ld_out, cudaStream_t s, struct sr_error *err);
/* dinp[N, C] = dout @ weight (skipped when dinp is NULL), times GELU'(pre_gelu)
 * when pre_gelu is non-NULL (DGELU epilogue: the layer before was a GELU);
 * dweight[OC, C] += dout^T @ inp (fp32); dbias[OC] += column sums of dout
 * (NULL: none). dout has row stride ld_dout. Bias gradients come from our
 * own kernel, not cuBLASLt's BGRAD epilogue, which overwrites where
 * gradients must accumulate over micro-batches. scratch:
 * bias_grad_scratch_floats(OC). */
size_t bias_grad_scratch_floats(int OC);
int matmul_backward_cuda(struct cuda_blas *b, bf16 *dinp, float *dweight, float *dbias, float *scratch,
                         const bf16 *dout, int ld_dout, const bf16 *inp, const bf16 *weight, const bf16 *pre_gelu,
                         int N, int C, int OC, cudaStream_t s, struct sr_error *err);

/* ---- attention ---- */
/* Causal self-attention with the scores materialised (B x NH x T x T):
 * cuBLAS batched products around a softmax kernel. att [B, NH, T, T] keeps
 * the probabilities for the backward pass (0 above the diagonal). */
struct attention_workspace {
    float *scores;   /* B*NH*T*T: q.k, then d(att) */
    bf16 *dscores;   /* B*NH*T*T */
    bf16 *q, *k, *v; /* [B, NH, T, HS] each */
    bf16 *y, *dy;    /* [B, NH, T, HS] */
    bf16 *dq, *dk, *dv;
};
int attention_workspace_create(struct attention_workspace *w, int B, int T, int C, int NH, struct sr_error *err);
void attention_workspace_free(struct attention_workspace *w);
int attention_forward_cuda(struct cuda_blas *b, bf16 *out, bf16 *att, const bf16 *qkv,
                           struct attention_workspace *w, int B, int T, int C, int NH, cudaStream_t s,
                           struct sr_error *err);
int attention_backward_cuda(struct cuda_blas *b, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *att,
                            struct attention_workspace *w, int B, int T, int C, int NH, cudaStream_t s,
                            struct sr_error *err);

/* Causal self-attention fused (FlashAttention-2 style, on tensor cores):
 * the scores never leave shared memory, so it needs no T x T buffers, and
 * the backward pass recomputes the probabilities from lse. For head sizes
 * flash_attention_supports; qkv and dout 16-byte aligned.
 * forward:  out [B, T, C]; lse [B, NH, T] (fp32) = each row's log-sum-exp.
 * backward: dqkv [B, T, 3C] written (=); delta: [B, NH, T] floats of scratch.
 * Deterministic, as the rest (flash_attention_kernels.cuh says how). */
#define FLASH_ATTENTION_HEAD_SIZES "16, 32, 64, 128" /* for messages; as flash_attention_supports */
bool flash_attention_supports(int head_size);
int flash_attention_forward_cuda(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                                 cudaStream_t s, struct sr_error *err);
int flash_attention_backward_cuda(bf16 *dqkv, float *delta, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                                  const float *lse, int B, int T, int C, int NH, cudaStream_t s,
                                  struct sr_error *err);

/* ---- elementwise ---- */
int residual_forward_cuda(bf16 *out, const bf16 *a, const bf16 *b, size_t n, cudaStream_t s, struct sr_error *err);
int cast_to_bf16_cuda(bf16 *out, const float *in, size_t n, cudaStream_t s, struct sr_error *err);

/* ---- loss ---- */
/* Softmax + cross-entropy per row of logits [N, V] (row stride ld):
 * losses[i] = -log softmax(logits[i])[targets[i]]. With dloss != 0 the
 * logits are overwritten by their gradient dloss * (probs - onehot), so the
 * forward and backward of the head take one read of the logits. */
int crossentropy_cuda(float *losses, bf16 *logits, int ld, const int *targets, float dloss, int N, int V,
                      cudaStream_t s, struct sr_error *err);
/* *acc += weight * sum(losses[0..N)), summed in a fixed order. */
int loss_sum_cuda(float *acc, const float *losses, int N, float weight, cudaStream_t s, struct sr_error *err);

/* ---- optimizer ---- */
#define GRAD_NORM_PARTIALS 1024
/* *norm = sqrt(sum of grads^2), accumulated in double (as ops.h's
 * sum_of_squares) over a grid that follows n (so the same bits on every
 * GPU); partials: GRAD_NORM_PARTIALS doubles. */
int grad_norm_cuda(float *norm, double *partials, const float *grads, size_t n, cudaStream_t s,
                   struct sr_error *err);

#define ADAMW_MAX_TENSORS 16
struct adamw_cuda_hparams {
    float lr, beta1, beta2, eps, weight_decay;
    float m_correction, v_correction; /* 1 - beta^t, computed on the host as ops.h does */
    float grad_clip;                  /* > 0: scale gradients by grad_clip / norm when the norm exceeds it */
    int tensors;
    size_t tensor_end[ADAMW_MAX_TENSORS]; /* parameter tensors as [begin, end) ranges, in order */
    unsigned decays;                      /* bit i: tensor i gets weight decay */
};
/* One AdamW step over all n parameters, fused: reads the global gradient
 * norm from device memory (so no host round trip), skips the update when it
 * is not finite (the host then stops: training diverged), and refreshes the
 * bf16 copy of the weights the next forward pass uses. */
int adamw_cuda(float *params, bf16 *params_bf16, const float *grads, float *m, float *v, size_t n,
               const float *norm, const struct adamw_cuda_hparams *h, cudaStream_t s, struct sr_error *err);

#endif
