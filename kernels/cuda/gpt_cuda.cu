/* The GPT model on one GPU (twin of gpt.c); gpt_cuda.h states the contract. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_cuda.h"
#include "ops_cuda.cuh"

enum { WTE, WPE, LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, LNFW, LNFB };

/* Activations kept for the backward pass, all layers ([L, ...] each). */
struct gpt_cuda_acts {
    bf16 *encoded, *ln1, *qkv, *atty, *residual2, *ln2, *fch, *fch_gelu, *residual3, *lnf, *logits;
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd, *lnf_mean, *lnf_rstd, *losses;
    bf16 *att;  /* materialized attention: the probabilities [L, B, NH, T, T] */
    float *lse; /* fused attention: each row's log-sum-exp [L, B, NH, T] */
};

/* Scratch reused by every layer. */
struct gpt_cuda_scratch {
    bf16 *tmp;           /* [N, C]: a projection's output, then the residual gradient in bf16 */
    bf16 *dln, *datty;   /* [N, C] */
    bf16 *dqkv, *dfch;   /* [N, 3C], [N, 4C] */
    float *dres;         /* [N, C]: the residual stream's gradient */
    float *reduce;       /* partial sums of the LayerNorm and bias gradients */
    float *delta;        /* fused attention's [B, NH, T] */
    int *tokens;         /* inputs, targets [N] each, then the encoder's token runs */
};

struct gpt_cuda {
    struct gpt_config cfg;
    int B, T, Vp; /* Vp: the logits' row stride, the vocabulary rounded up to 64 (aligned rows) */
    size_t sizes[GPT_PARAM_TENSORS], offsets[GPT_PARAM_TENSORS], num_params, device_bytes;
    cudaStream_t stream;
    struct cuda_blas blas;
    int flash;                       /* fused attention; else materialized, with: */
    struct attention_workspace attn;
    float *params, *grads;
    bf16 *params_bf16;
    struct gpt_cuda_acts a;
    struct gpt_cuda_scratch s;
    int *staging; /* pinned host copy of s.tokens */
    cudaEvent_t staged;
    int runs;
    void *allocations[64];
    int allocation_count;
};

static int device_alloc(struct gpt_cuda *m, void **p, size_t bytes, const char *what, struct sr_error *err)
{
    if (m->allocation_count == (int)(sizeof m->allocations / sizeof *m->allocations)) {
        error_setf(err, "model: too many GPU allocations (raise gpt_cuda's table)");
        return -1;
    }
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        error_setf(err, "model: cannot allocate %.1f MiB on the GPU for %s (%.1f MiB held so far): %s",
                   bytes / 1048576.0, what, m->device_bytes / 1048576.0, cudaGetErrorString(e));
        return -1;
    }
    m->allocations[m->allocation_count++] = *p;
    m->device_bytes += bytes;
    return 0;
}

#define ALLOC(ptr, count, what)                                                                                \
    if (device_alloc(m, (void **)&(ptr), (size_t)(count) * sizeof *(ptr), what, err) != 0)                    \
        return -1;

static int allocate(struct gpt_cuda *m, struct sr_error *err)
{
    size_t N = (size_t)m->B * m->T, C = (size_t)m->cfg.n_embd, L = (size_t)m->cfg.n_layer;
    size_t NH = (size_t)m->cfg.n_head, T = (size_t)m->T;
    ALLOC(m->params, m->num_params, "the fp32 weights");
    ALLOC(m->grads, m->num_params, "the gradients");
    ALLOC(m->params_bf16, m->num_params, "the bf16 weights");
    struct gpt_cuda_acts *a = &m->a;
    ALLOC(a->encoded, N * C, "activations");
    ALLOC(a->ln1, L * N * C, "activations");
    ALLOC(a->qkv, L * N * 3 * C, "activations");
    ALLOC(a->atty, L * N * C, "activations");
    if (m->flash) {
        ALLOC(a->lse, L * (size_t)m->B * NH * T, "attention statistics");
        ALLOC(m->s.delta, (size_t)m->B * NH * T, "scratch");
    } else {
        ALLOC(a->att, L * (size_t)m->B * NH * T * T, "attention probabilities");
    }
    ALLOC(a->residual2, L * N * C, "activations");
    ALLOC(a->ln2, L * N * C, "activations");
    ALLOC(a->fch, L * N * 4 * C, "activations");
    ALLOC(a->fch_gelu, L * N * 4 * C, "activations");
    ALLOC(a->residual3, L * N * C, "activations");
    ALLOC(a->lnf, N * C, "activations");
    ALLOC(a->logits, N * (size_t)m->Vp, "the logits");
    ALLOC(a->ln1_mean, L * N, "statistics");
    ALLOC(a->ln1_rstd, L * N, "statistics");
    ALLOC(a->ln2_mean, L * N, "statistics");
    ALLOC(a->ln2_rstd, L * N, "statistics");
    ALLOC(a->lnf_mean, N, "statistics");
    ALLOC(a->lnf_rstd, N, "statistics");
    ALLOC(a->losses, N, "the losses");
    struct gpt_cuda_scratch *s = &m->s;
    ALLOC(s->tmp, N * C, "scratch");
    ALLOC(s->dln, N * C, "scratch");
    ALLOC(s->datty, N * C, "scratch");
    ALLOC(s->dqkv, N * 3 * C, "scratch");
    ALLOC(s->dfch, N * 4 * C, "scratch");
    ALLOC(s->dres, N * C, "scratch");
    size_t reduce = layernorm_scratch_floats((int)C), bias = bias_grad_scratch_floats(4 * (int)C);
    ALLOC(s->reduce, reduce > bias ? reduce : bias, "scratch");
    size_t token_ints = 4 * N + 1 + (size_t)m->cfg.vocab_size; /* inputs, targets, order, run_start, run_token */
    ALLOC(s->tokens, token_ints, "the tokens");
    CUDA_TRY(cudaMallocHost((void **)&m->staging, token_ints * sizeof(int)), err);
    return 0;
}

int gpt_cuda_create(struct gpt_cuda **out, const struct gpt_config *cfg, int B, int T,
                    enum gpt_attention attention, cudaStream_t stream, struct sr_error *err)
{
    *out = NULL;
    /* cuBLASLt's fused epilogues want 16-byte aligned rows: bf16 widths that
     * are multiples of 8 (every tensor then starts aligned too). */
    if (cfg->n_embd % 8 != 0 || cfg->n_head < 1 || cfg->n_embd % cfg->n_head != 0 ||
        (cfg->n_embd / cfg->n_head) % 8 != 0) {
        error_setf(err, "model: the GPU kernels need n_embd (%d) and the head size (n_embd / n_head = %d / %d) to "
                        "be multiples of 8",
                   cfg->n_embd, cfg->n_embd, cfg->n_head);
        return -1;
    }
    if (B < 1 || T < 1 || T > cfg->max_seq_len) {
        error_setf(err, "model: micro-batch %d x %d does not fit (1 <= T <= seq_len %d)", B, T, cfg->max_seq_len);
        return -1;
    }
    int head_size = cfg->n_embd / cfg->n_head, flash = flash_attention_supports(head_size);
    if (attention == GPT_ATTENTION_FLASH && !flash) {
        error_setf(err, "model: attention \"flash\" needs one of the head sizes " FLASH_ATTENTION_HEAD_SIZES
                        ", not %d (n_embd %d / n_head %d); \"auto\" or \"materialized\" would run it materialized",
                   head_size, cfg->n_embd, cfg->n_head);
        return -1;
    }
    struct gpt_cuda *m = (struct gpt_cuda *)calloc(1, sizeof *m);
    if (!m) {
        error_setf(err, "model: out of host memory");
        return -1;
    }
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->Vp = (cfg->vocab_size + 63) / 64 * 64;
    m->stream = stream;
    m->flash = flash && attention != GPT_ATTENTION_MATERIALIZED;
    gpt_param_sizes(cfg, m->sizes);
    for (int i = 0; i < GPT_PARAM_TENSORS; i++) {
        m->offsets[i] = m->num_params;
        m->num_params += m->sizes[i];
    }
    if (cuda_blas_create(&m->blas, err) != 0 ||
        (!m->flash && attention_workspace_create(&m->attn, B, T, cfg->n_embd, cfg->n_head, err) != 0) ||
        allocate(m, err) != 0) {
        gpt_cuda_free(m);
        return -1;
    }
    if (cudaEventCreateWithFlags(&m->staged, cudaEventDisableTiming) != cudaSuccess) {
        error_setf(err, "model: cannot create a CUDA event");
        gpt_cuda_free(m);
        return -1;
    }
    m->device_bytes += m->blas.workspace_bytes;
    if (cudaMemsetAsync(m->grads, 0, m->num_params * sizeof(float), stream) != cudaSuccess) {
        error_setf(err, "model: cannot clear the gradients");
        gpt_cuda_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void gpt_cuda_free(struct gpt_cuda *m)
{
    if (!m)
        return;
    if (m->stream)
        cudaStreamSynchronize(m->stream);
    for (int i = 0; i < m->allocation_count; i++)
        cudaFree(m->allocations[i]);
    cudaFreeHost(m->staging);
    if (m->staged)
        cudaEventDestroy(m->staged);
    attention_workspace_free(&m->attn);
    cuda_blas_destroy(&m->blas);
    free(m);
}

int gpt_cuda_flash_attention(const struct gpt_cuda *m)
{
    return m->flash;
}

const struct gpt_config *gpt_cuda_config(const struct gpt_cuda *m)
{
    return &m->cfg;
}

size_t gpt_cuda_num_params(const struct gpt_cuda *m)
{
    return m->num_params;
}

float *gpt_cuda_grads(struct gpt_cuda *m)
{
    return m->grads;
}

size_t gpt_cuda_device_bytes(const struct gpt_cuda *m)
{
    return m->device_bytes;
}

int gpt_cuda_set_params(struct gpt_cuda *m, const float *host, struct sr_error *err)
{
    CUDA_TRY(cudaMemcpyAsync(m->params, host, m->num_params * sizeof(float), cudaMemcpyHostToDevice, m->stream), err);
    if (cast_to_bf16_cuda(m->params_bf16, m->params, m->num_params, m->stream, err) != 0)
        return -1;
    CUDA_TRY(cudaStreamSynchronize(m->stream), err);
    return 0;
}

int gpt_cuda_get_params(struct gpt_cuda *m, float *host, struct sr_error *err)
{
    CUDA_TRY(cudaMemcpyAsync(host, m->params, m->num_params * sizeof(float), cudaMemcpyDeviceToHost, m->stream), err);
    CUDA_TRY(cudaStreamSynchronize(m->stream), err);
    return 0;
}

/* Tensor i's slice for layer l (per-layer tensors hold all layers in a row). */
static float *layer_f32(float *base, const struct gpt_cuda *m, int i, int l)
{
    return base + m->offsets[i] + (size_t)l * (m->sizes[i] / (size_t)m->cfg.n_layer);
}

static bf16 *layer_bf16(const struct gpt_cuda *m, int i, int l)
{
    return m->params_bf16 + m->offsets[i] + (size_t)l * (m->sizes[i] / (size_t)m->cfg.n_layer);
}

/* Tokens and the encoder's token runs into pinned memory, then one copy. */
static int stage_tokens(struct gpt_cuda *m, const int *inputs, const int *targets, struct sr_error *err)
{
    int N = m->B * m->T;
    CUDA_TRY(cudaEventSynchronize(m->staged), err);
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= m->cfg.vocab_size || targets[i] < 0 || targets[i] >= m->cfg.vocab_size) {
            error_setf(err, "model: token %d at position %d is outside the vocabulary of %d",
                       inputs[i] < 0 || inputs[i] >= m->cfg.vocab_size ? inputs[i] : targets[i], i,
                       m->cfg.vocab_size);
            return -1;
        }
    int *st = m->staging;
    memcpy(st, inputs, (size_t)N * sizeof(int));
    memcpy(st + N, targets, (size_t)N * sizeof(int));
    token_runs_plan(inputs, N, m->cfg.vocab_size, st + 2 * N, st + 3 * N, st + 4 * N + 1, &m->runs);
    size_t ints = 4 * (size_t)N + 1 + (size_t)m->runs;
    CUDA_TRY(cudaMemcpyAsync(m->s.tokens, st, ints * sizeof(int), cudaMemcpyHostToDevice, m->stream), err);
    CUDA_TRY(cudaEventRecord(m->staged, m->stream), err);
    return 0;
}

/* Layer l's attention, out of its qkv into its atty, by the chosen method. */
static int attention_forward_layer(struct gpt_cuda *m, int l, struct sr_error *err)
{
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
    size_t NC = (size_t)m->B * m->T * C, rows = (size_t)m->B * NH * m->T;
    struct gpt_cuda_acts *a = &m->a;
    if (m->flash)
        return flash_attention_forward_cuda(a->atty + l * NC, a->lse + l * rows, a->qkv + l * 3 * NC, m->B, m->T, C,
                                            NH, m->stream, err);
    return attention_forward_cuda(&m->blas, a->atty + l * NC, a->att + l * rows * m->T, a->qkv + l * 3 * NC,
                                  &m->attn, m->B, m->T, C, NH, m->stream, err);
}

/* d(layer l's qkv) into s.dqkv, from d(its atty) in s.datty. */
static int attention_backward_layer(struct gpt_cuda *m, int l, struct sr_error *err)
{
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
    size_t NC = (size_t)m->B * m->T * C, rows = (size_t)m->B * NH * m->T;
    struct gpt_cuda_acts *a = &m->a;
    struct gpt_cuda_scratch *s = &m->s;
    if (m->flash)
        return flash_attention_backward_cuda(s->dqkv, s->delta, s->datty, a->qkv + l * 3 * NC, a->atty + l * NC,
                                             a->lse + l * rows, m->B, m->T, C, NH, m->stream, err);
    return attention_backward_cuda(&m->blas, s->dqkv, s->datty, a->qkv + l * 3 * NC, a->att + l * rows * m->T,
                                   &m->attn, m->B, m->T, C, NH, m->stream, err);
}

static int forward_layer(struct gpt_cuda *m, int l, struct sr_error *err)
{
    int N = m->B * m->T, C = m->cfg.n_embd;
    size_t NC = (size_t)N * C;
    struct gpt_cuda_acts *a = &m->a;
    cudaStream_t st = m->stream;
    struct cuda_blas *b = &m->blas;
    const bf16 *res_in = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
    bf16 *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC, *r2 = a->residual2 + l * NC;
    bf16 *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC, *fch_gelu = a->fch_gelu + l * 4 * NC;
    float *p = m->params;
    return layernorm_forward_cuda(ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, res_in,
                                  layer_f32(p, m, LN1W, l), layer_f32(p, m, LN1B, l), N, C, st, err) != 0 ||
                   matmul_forward_cuda(b, qkv, NULL, ln1, layer_bf16(m, QKVW, l), layer_bf16(m, QKVB, l), N, C,
                                       3 * C, 3 * C, st, err) != 0 ||
                   attention_forward_layer(m, l, err) != 0 ||
                   matmul_forward_cuda(b, m->s.tmp, NULL, atty, layer_bf16(m, ATTPROJW, l), layer_bf16(m, ATTPROJB, l),
                                       N, C, C, C, st, err) != 0 ||
                   residual_forward_cuda(r2, res_in, m->s.tmp, NC, st, err) != 0 ||
                   layernorm_forward_cuda(ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, r2,
                                          layer_f32(p, m, LN2W, l), layer_f32(p, m, LN2B, l), N, C, st, err) != 0 ||
                   matmul_forward_cuda(b, fch_gelu, fch, ln2, layer_bf16(m, FCW, l), layer_bf16(m, FCB, l), N, C,
                                       4 * C, 4 * C, st, err) != 0 ||
                   matmul_forward_cuda(b, m->s.tmp, NULL, fch_gelu, layer_bf16(m, FCPROJW, l),
                                       layer_bf16(m, FCPROJB, l), N, 4 * C, C, C, st, err) != 0 ||
                   residual_forward_cuda(a->residual3 + l * NC, r2, m->s.tmp, NC, st, err) != 0
               ? -1
               : 0;
}

int gpt_cuda_forward(struct gpt_cuda *m, const int *inputs, const int *targets, float dloss, float *loss_acc,
                     float loss_weight, struct sr_error *err)
{
    int N = m->B * m->T, C = m->cfg.n_embd, L = m->cfg.n_layer, V = m->cfg.vocab_size;
    size_t NC = (size_t)N * C;
    struct gpt_cuda_acts *a = &m->a;
    if (stage_tokens(m, inputs, targets, err) != 0)
        return -1;
    const int *tok = m->s.tokens, *tgt = m->s.tokens + N;
    if (encoder_forward_cuda(a->encoded, tok, m->params_bf16 + m->offsets[WTE], m->params_bf16 + m->offsets[WPE],
                             m->B, m->T, C, m->stream, err) != 0)
        return -1;
    for (int l = 0; l < L; l++)
        if (forward_layer(m, l, err) != 0)
            return -1;
    return layernorm_forward_cuda(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (size_t)(L - 1) * NC,
                                  m->params + m->offsets[LNFW], m->params + m->offsets[LNFB], N, C, m->stream,
                                  err) != 0 ||
                   matmul_forward_cuda(&m->blas, a->logits, NULL, a->lnf, m->params_bf16 + m->offsets[WTE], NULL, N,
                                       C, V, m->Vp, m->stream, err) != 0 ||
                   crossentropy_cuda(a->losses, a->logits, m->Vp, tgt, dloss, N, V, m->stream, err) != 0 ||
                   loss_sum_cuda(loss_acc, a->losses, N, loss_weight, m->stream, err) != 0
               ? -1
               : 0;
}

static int backward_layer(struct gpt_cuda *m, int l, struct sr_error *err)
{
    int N = m->B * m->T, C = m->cfg.n_embd;
    size_t NC = (size_t)N * C;
    struct gpt_cuda_acts *a = &m->a;
    struct gpt_cuda_scratch *s = &m->s;
    cudaStream_t st = m->stream;
    struct cuda_blas *b = &m->blas;
    float *p = m->params, *g = m->grads;
    const bf16 *res_in = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
    /* s->dres holds d(residual3[l]); the MLP branch, then the attention branch. */
    return cast_to_bf16_cuda(s->tmp, s->dres, NC, st, err) != 0 ||
                   matmul_backward_cuda(b, s->dfch, layer_f32(g, m, FCPROJW, l), layer_f32(g, m, FCPROJB, l),
                                        s->reduce, s->tmp, C, a->fch_gelu + l * 4 * NC, layer_bf16(m, FCPROJW, l),
                                        a->fch + l * 4 * NC, N, 4 * C, C, st, err) != 0 ||
                   matmul_backward_cuda(b, s->dln, layer_f32(g, m, FCW, l), layer_f32(g, m, FCB, l), s->reduce,
                                        s->dfch, 4 * C, a->ln2 + l * NC, layer_bf16(m, FCW, l), NULL, N, C, 4 * C, st,
                                        err) != 0 ||
                   layernorm_backward_cuda(s->dres, layer_f32(g, m, LN2W, l), layer_f32(g, m, LN2B, l), s->reduce,
                                           s->dln, a->residual2 + l * NC, layer_f32(p, m, LN2W, l),
                                           a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, N, C, st,
                                           err) != 0 ||
                   cast_to_bf16_cuda(s->tmp, s->dres, NC, st, err) != 0 ||
                   matmul_backward_cuda(b, s->datty, layer_f32(g, m, ATTPROJW, l), layer_f32(g, m, ATTPROJB, l),
                                        s->reduce, s->tmp, C, a->atty + l * NC, layer_bf16(m, ATTPROJW, l), NULL, N,
                                        C, C, st, err) != 0 ||
                   attention_backward_layer(m, l, err) != 0 ||
                   matmul_backward_cuda(b, s->dln, layer_f32(g, m, QKVW, l), layer_f32(g, m, QKVB, l), s->reduce,
                                        s->dqkv, 3 * C, a->ln1 + l * NC, layer_bf16(m, QKVW, l), NULL, N, C, 3 * C,
                                        st, err) != 0 ||
                   layernorm_backward_cuda(s->dres, layer_f32(g, m, LN1W, l), layer_f32(g, m, LN1B, l), s->reduce,
                                           s->dln, res_in, layer_f32(p, m, LN1W, l), a->ln1_mean + (size_t)l * N,
                                           a->ln1_rstd + (size_t)l * N, N, C, st, err) != 0
               ? -1
               : 0;
}

static int announce(gpt_cuda_ready_fn ready, void *ctx, int stage, struct sr_error *err)
{
    return ready ? ready(ctx, stage, err) : 0;
}

int gpt_cuda_backward(struct gpt_cuda *m, gpt_cuda_ready_fn ready, void *ctx, struct sr_error *err)
{
    int N = m->B * m->T, C = m->cfg.n_embd, L = m->cfg.n_layer, V = m->cfg.vocab_size;
    size_t NC = (size_t)N * C;
    struct gpt_cuda_acts *a = &m->a;
    struct gpt_cuda_scratch *s = &m->s;
    float *g = m->grads;
    CUDA_TRY(cudaMemsetAsync(s->dres, 0, NC * sizeof(float), m->stream), err);
    /* The head (tied to wte): the logits already hold their gradient. */
    if (matmul_backward_cuda(&m->blas, s->dln, g + m->offsets[WTE], NULL, NULL, a->logits, m->Vp, a->lnf,
                             m->params_bf16 + m->offsets[WTE], NULL, N, C, V, m->stream, err) != 0 ||
        layernorm_backward_cuda(s->dres, g + m->offsets[LNFW], g + m->offsets[LNFB], s->reduce, s->dln,
                                a->residual3 + (size_t)(L - 1) * NC, m->params + m->offsets[LNFW], a->lnf_mean,
                                a->lnf_rstd, N, C, m->stream, err) != 0 ||
        announce(ready, ctx, L, err) != 0)
        return -1;
    for (int l = L - 1; l >= 0; l--)
        if (backward_layer(m, l, err) != 0 || announce(ready, ctx, l, err) != 0)
            return -1;
    const int *order = s->tokens + 2 * N, *run_start = s->tokens + 3 * N, *run_token = s->tokens + 4 * N + 1;
    if (encoder_backward_cuda(g + m->offsets[WTE], g + m->offsets[WPE], s->dres, order, run_start, run_token, m->runs,
                              m->B, m->T, C, m->stream, err) != 0)
        return -1;
    return announce(ready, ctx, GPT_CUDA_STAGE_EMBEDDINGS, err);
}

int gpt_cuda_stage_slices(const struct gpt_cuda *m, int stage, size_t offsets[GPT_PARAM_TENSORS],
                          size_t counts[GPT_PARAM_TENSORS])
{
    int L = m->cfg.n_layer, n = 0;
    if (stage == GPT_CUDA_STAGE_EMBEDDINGS || stage == L) {
        int first = stage == L ? LNFW : WTE;
        for (int i = first; i < first + 2; i++, n++) {
            offsets[n] = m->offsets[i];
            counts[n] = m->sizes[i];
        }
        return n;
    }
    for (int i = LN1W; i <= FCPROJB; i++, n++) {
        counts[n] = m->sizes[i] / (size_t)L;
        offsets[n] = m->offsets[i] + (size_t)stage * counts[n];
    }
    return n;
}

int gpt_cuda_adamw(struct gpt_cuda *m, float *mom, float *var, float *norm, double *partials,
                   const struct gpt_cuda_adamw_hparams *h, struct sr_error *err)
{
    static_assert(GPT_CUDA_NORM_PARTIALS == GRAD_NORM_PARTIALS, "one partials size");
    struct adamw_cuda_hparams a;
    memset(&a, 0, sizeof a);
    a.lr = h->lr;
    a.beta1 = h->beta1;
    a.beta2 = h->beta2;
    a.eps = h->eps;
    a.weight_decay = h->weight_decay;
    a.grad_clip = h->grad_clip;
    /* As adamw.c: bias corrections in float, from powf. */
    a.m_correction = 1.0f - powf(h->beta1, (float)h->t);
    a.v_correction = 1.0f - powf(h->beta2, (float)h->t);
    a.tensors = GPT_PARAM_TENSORS;
    for (int i = 0; i < GPT_PARAM_TENSORS; i++) {
        a.tensor_end[i] = m->offsets[i] + m->sizes[i];
        if (gpt_tensor_decays(i))
            a.decays |= 1u << i;
    }
    return grad_norm_cuda(norm, partials, m->grads, m->num_params, m->stream, err) != 0 ||
                   adamw_cuda(m->params, m->params_bf16, m->grads, mom, var, m->num_params, norm, &a, m->stream,
                              err) != 0
               ? -1
               : 0;
}
