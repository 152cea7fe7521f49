/* gpt.h — the GPT-2-style model: parameters, activations, forward, backward.
 *
 * Token and position embeddings, n_layer pre-LayerNorm blocks (causal
 * multi-head attention, then a 4x GELU MLP, each added to the residual
 * stream), a final LayerNorm and an output head tied to the token
 * embedding. Parameters live in one contiguous fp32 buffer in llm.c's
 * tensor order (so the whole model is all-reduced, checkpointed and saved
 * as one block); gradients have the same layout. The model is built for
 * micro-batches of B sequences of T tokens (T <= max_seq_len).
 */
#ifndef SAGERUN_GPT_H
#define SAGERUN_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct gpt_config {
    int max_seq_len, vocab_size, n_layer, n_head, n_embd;
};

/* How the GPU model computes attention (the CPU model always materialises
 * the scores): fused (FlashAttention-style, no T x T buffers) where the
 * kernels support the head size, or the scores materialised for cuBLAS. */
enum gpt_attention { GPT_ATTENTION_AUTO, GPT_ATTENTION_FLASH, GPT_ATTENTION_MATERIALIZED };

#define GPT_PARAM_TENSORS 16
struct gpt_params {
    float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
};

#define GPT_ACT_TENSORS 21
struct gpt_acts {
    float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj, *residual2, *ln2, *ln2_mean,
        *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs;
};

struct gpt {
    struct gpt_config cfg;
    int B, T;
    size_t param_sizes[GPT_PARAM_TENSORS];
    size_t num_params;
    float *params_memory, *grads_memory; /* num_params each */
    struct gpt_params params, grads;
    float *acts_memory, *grad_acts_memory, *losses;
    size_t grad_acts_floats; /* zeroed at the start of every backward pass */
    struct gpt_acts acts, grad_acts;
};

/* The element count of each parameter tensor, in the buffer's order. */
void gpt_param_sizes(const struct gpt_config *cfg, size_t sizes[GPT_PARAM_TENSORS]);

/* Checks the configuration (heads divide the width, T fits) and allocates
 * everything. Parameters start at zero; see gpt_init. */
int gpt_create(struct gpt *m, const struct gpt_config *cfg, int B, int T, struct sr_error *err);
void gpt_free(struct gpt *m);

/* GPT-2's initialisation from `seed`, the same on every machine: weights
 * N(0, 0.02), the two projections into the residual stream N(0, 0.02/sqrt(2L)),
 * biases 0, LayerNorm gains 1. */
void gpt_init(struct gpt *m, uint64_t seed);

/* Mean cross-entropy of predicting targets[B*T] from inputs[B*T]. */
float gpt_forward(struct gpt *m, const int *inputs, const int *targets);

/* After gpt_forward on the same inputs: adds d(dloss * sum of the token
 * losses)/d(params) into m->grads. */
void gpt_backward(struct gpt *m, const int *inputs, const int *targets, float dloss);

/* Whether AdamW decays tensor i: the weight matrices, the token embedding
 * (also the output head) included; biases, LayerNorm parameters and the
 * position embedding are not decayed (GPT-2/nanoGPT practice). */
int gpt_tensor_decays(int i);
const char *gpt_tensor_name(int i);

/* Forward FLOPs per token: 2 per weight of the matrix products, plus the
 * attention scores and weighted sums (PaLM's accounting, causal mask ignored). */
double gpt_flops_per_token(const struct gpt_config *cfg, int T);

#endif
