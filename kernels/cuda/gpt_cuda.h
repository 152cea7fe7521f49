/* gpt_cuda.h — the GPT model of gpt.h on one GPU, for C callers.
 *
 * Same architecture, parameter layout and initialisation as gpt.h; fp32
 * master weights and gradients on the GPU in gpt.h's buffer order, a bf16
 * copy of the weights for the forward and backward passes, bf16
 * activations (ops_cuda.cuh says where wider types are kept and why).
 * Everything is enqueued on the model's stream; nothing here synchronises
 * with the host except the staging of a micro-batch's tokens, which waits
 * for the previous micro-batch's tokens to have left host memory.
 */
#ifndef SAGERUN_GPT_CUDA_H
#define SAGERUN_GPT_CUDA_H

#include <cuda_runtime_api.h>
#include <stddef.h>


#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"
#include "gpt.h"

struct gpt_cuda;

/* For micro-batches of B x T tokens on the current CUDA device. Attention
 * as `attention` says (GPT_ATTENTION_FLASH with a head size the fused
 * kernels lack is an error). */
int gpt_cuda_create(struct gpt_cuda **out, const struct gpt_config *cfg, int B, int T,
                    enum gpt_attention attention, cudaStream_t stream, struct sr_error *err);
void gpt_cuda_free(struct gpt_cuda *m);

const struct gpt_config *gpt_cuda_config(const struct gpt_cuda *m);
size_t gpt_cuda_num_params(const struct gpt_cuda *m);
float *gpt_cuda_grads(struct gpt_cuda *m);         /* fp32 gradients [num_params] */
size_t gpt_cuda_device_bytes(const struct gpt_cuda *m);
int gpt_cuda_flash_attention(const struct gpt_cuda *m); /* 1: fused, 0: materialized */

/* Host <-> GPU copies of the master weights (the bf16 copy follows); both
 * wait for the stream. */
int gpt_cuda_set_params(struct gpt_cuda *m, const float *host, struct sr_error *err);
int gpt_cuda_get_params(struct gpt_cuda *m, float *host, struct sr_error *err);

/* Forward pass over host tokens inputs/targets [B*T]; adds
 * loss_weight * (sum of the token losses) to the device float *loss_acc.
 * With dloss != 0 it also starts the backward pass (the logits become
 * dloss * their gradient), which gpt_cuda_backward must then finish. */
int gpt_cuda_forward(struct gpt_cuda *m, const int *inputs, const int *targets, float dloss, float *loss_acc,
                     float loss_weight, struct sr_error *err);

/* Adds d(dloss * sum of token losses)/d(params) into the gradients.
 * `ready` (may be NULL) is called, in stream order, as soon as a group of
 * gradients is complete: stage n_layer for the final LayerNorm, then each
 * layer from the last to the first, then GPT_CUDA_STAGE_EMBEDDINGS for
 * wte and wpe; the data-parallel backend starts its all-reduce there. */
#define GPT_CUDA_STAGE_EMBEDDINGS (-1)
typedef int (*gpt_cuda_ready_fn)(void *ctx, int stage, struct sr_error *err);
int gpt_cuda_backward(struct gpt_cuda *m, gpt_cuda_ready_fn ready, void *ctx, struct sr_error *err);

/* The optimizer step, on the model's stream: *norm (device) = the global
 * gradient norm; then AdamW over every parameter with gpt.h's weight-decay
 * rule, gradients scaled by grad_clip / norm when the norm is over
 * grad_clip > 0, no update at all when the norm is not finite. mom and var
 * are the fp32 moments [num_params]; partials: GPT_CUDA_NORM_PARTIALS doubles. */
#define GPT_CUDA_NORM_PARTIALS 1024
struct gpt_cuda_adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
    int t; /* >= 1 */
};
int gpt_cuda_adamw(struct gpt_cuda *m, float *mom, float *var, float *norm, double *partials,
                   const struct gpt_cuda_adamw_hparams *h, struct sr_error *err);

/* Offset and length of each tensor's slice for stage `stage` (as above):
 * up to GPT_PARAM_TENSORS (offset, count) pairs into the parameter buffer;
 * returns how many. */
int gpt_cuda_stage_slices(const struct gpt_cuda *m, int stage, size_t offsets[GPT_PARAM_TENSORS],
                          size_t counts[GPT_PARAM_TENSORS]);

#ifdef __cplusplus
}
#endif

#endif
