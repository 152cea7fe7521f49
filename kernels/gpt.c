#include "gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

static const char *const tensor_names[GPT_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

const char *gpt_tensor_name(int i)
{
    return tensor_names[i];
}

int gpt_tensor_decays(int i)
{
    /* wte, qkvw, attprojw, fcw, fcprojw */
    return i == 0 || i == 4 || i == 6 || i == 10 || i == 12;
}

void gpt_param_sizes(const struct gpt_config *c, size_t s[GPT_PARAM_TENSORS])
{
    size_t V = (size_t)c->vocab_size, C = (size_t)c->n_embd, L = (size_t)c->n_layer, maxT = (size_t)c->max_seq_len;
    size_t sizes[GPT_PARAM_TENSORS] = {V * C,         maxT * C,  L * C,     L * C,         L * 3 * C * C, L * 3 * C,
                                       L * C * C,     L * C,     L * C,     L * C,         L * 4 * C * C, L * 4 * C,
                                       L * C * 4 * C, L * C,     C,         C};
    memcpy(s, sizes, sizeof sizes);
}

/* Activation sizes for a B x T micro-batch. The gradient copy skips what no
 * backward kernel reads or writes (means, rstds, att, probs: 0 entries). */
static void act_sizes(const struct gpt_config *c, int B, int T, int for_grads, size_t s[GPT_ACT_TENSORS])
{
    size_t N = (size_t)B * T, C = (size_t)c->n_embd, L = (size_t)c->n_layer, NH = (size_t)c->n_head;
    size_t V = (size_t)c->vocab_size, keep = for_grads ? 0 : 1;
    size_t sizes[GPT_ACT_TENSORS] = {
        N * C,     L * N * C,        L * N * keep,  L * N * keep,     L * N * 3 * C, L * N * C,
        L * (size_t)B * NH * T * T * keep, L * N * C, L * N * C, L * N * C,    L * N * keep,
        L * N * keep, L * N * 4 * C, L * N * 4 * C, L * N * C,        L * N * C,     N * C,
        N * keep,  N * keep,         N * V,         N * V * keep};
    memcpy(s, sizes, sizeof sizes);
}

/* Points each of `count` pointers (the struct's members, in order) into one
 * allocation. */
static size_t total_of(const size_t *sizes, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += sizes[i];
    return total;
}

static float *carve(float **ptrs, const size_t *sizes, int count)
{
    size_t total = total_of(sizes, count);
    float *mem = calloc(total ? total : 1, sizeof(float));
    if (!mem)
        return NULL;
    float *p = mem;
    for (int i = 0; i < count; i++) {
        ptrs[i] = sizes[i] ? p : NULL;
        p += sizes[i];
    }
    return mem;
}

int gpt_create(struct gpt *m, const struct gpt_config *cfg, int B, int T, struct sr_error *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->n_layer < 1 || cfg->n_head < 1 || cfg->n_embd < 1 || cfg->vocab_size < 2 || cfg->max_seq_len < 1) {
        error_setf(err, "model: every size must be positive (n_layer %d, n_head %d, n_embd %d, vocab_size %d, "
                        "seq_len %d)", cfg->n_layer, cfg->n_head, cfg->n_embd, cfg->vocab_size, cfg->max_seq_len);
        return -1;
    }
    if (cfg->n_embd % cfg->n_head != 0) {
        error_setf(err, "model: n_embd %d is not a multiple of n_head %d", cfg->n_embd, cfg->n_head);
        return -1;
    }
    if (B < 1 || T < 1 || T > cfg->max_seq_len) {
        error_setf(err, "model: micro-batch %d x %d does not fit (1 <= T <= seq_len %d)", B, T, cfg->max_seq_len);
        return -1;
    }
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    gpt_param_sizes(cfg, m->param_sizes);
    m->num_params = total_of(m->param_sizes, GPT_PARAM_TENSORS);
    size_t acts[GPT_ACT_TENSORS], grad_acts[GPT_ACT_TENSORS];
    act_sizes(cfg, B, T, 0, acts);
    act_sizes(cfg, B, T, 1, grad_acts);
    m->params_memory = carve((float **)&m->params, m->param_sizes, GPT_PARAM_TENSORS);
    m->grads_memory = carve((float **)&m->grads, m->param_sizes, GPT_PARAM_TENSORS);
    m->acts_memory = carve((float **)&m->acts, acts, GPT_ACT_TENSORS);
    m->grad_acts_memory = carve((float **)&m->grad_acts, grad_acts, GPT_ACT_TENSORS);
    m->grad_acts_floats = total_of(grad_acts, GPT_ACT_TENSORS);
    m->losses = calloc((size_t)B * T, sizeof(float));
    if (!m->params_memory || !m->grads_memory || !m->acts_memory || !m->grad_acts_memory || !m->losses) {
        error_setf(err, "model: out of memory for %zu parameters and a %d x %d micro-batch", m->num_params, B, T);
        gpt_free(m);
        return -1;
    }
    return 0;
}

void gpt_free(struct gpt *m)
{
    free(m->params_memory);
    free(m->grads_memory);
    free(m->acts_memory);
    free(m->grad_acts_memory);
    free(m->losses);
    memset(m, 0, sizeof *m);
}

void gpt_init(struct gpt *m, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float residual_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    float *p = m->params_memory;
    for (int i = 0; i < GPT_PARAM_TENSORS; i++) {
        const char *name = tensor_names[i];
        size_t n = m->param_sizes[i];
        int is_gain = strcmp(name, "ln1w") == 0 || strcmp(name, "ln2w") == 0 || strcmp(name, "lnfw") == 0;
        int is_matrix = gpt_tensor_decays(i) || strcmp(name, "wpe") == 0;
        float std = strcmp(name, "attprojw") == 0 || strcmp(name, "fcprojw") == 0 ? residual_std : 0.02f;
        for (size_t k = 0; k < n; k++)
            p[k] = is_gain ? 1.0f : is_matrix ? std * rng_normal(&r) : 0.0f;
        p += n;
    }
}

/* Layer l's slice of a per-layer activation or parameter. */
#define AT(ptr, l, size) ((ptr) + (size_t)(l) * (size))

float gpt_forward(struct gpt *m, const int *inputs, const int *targets)
{
    const struct gpt_params *w = &m->params;
    struct gpt_acts *a = &m->acts;
    int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, V = m->cfg.vocab_size, N = B * T;
    size_t NC = (size_t)N * C, CC = (size_t)C * C, att = (size_t)B * NH * T * T;
    encoder_forward(a->encoded, inputs, w->wte, w->wpe, B, T, C);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const float *residual = l == 0 ? a->encoded : AT(a->residual3, l - 1, NC);
        layernorm_forward(AT(a->ln1, l, NC), AT(a->ln1_mean, l, N), AT(a->ln1_rstd, l, N), residual,
                          AT(w->ln1w, l, C), AT(w->ln1b, l, C), N, C);
        matmul_forward(AT(a->qkv, l, 3 * NC), AT(a->ln1, l, NC), AT(w->qkvw, l, 3 * CC), AT(w->qkvb, l, 3 * C), N, C,
                       3 * C);
        attention_forward(AT(a->atty, l, NC), AT(a->att, l, att), AT(a->qkv, l, 3 * NC), B, T, C, NH);
        matmul_forward(AT(a->attproj, l, NC), AT(a->atty, l, NC), AT(w->attprojw, l, CC), AT(w->attprojb, l, C), N, C,
                       C);
        residual_forward(AT(a->residual2, l, NC), residual, AT(a->attproj, l, NC), NC);
        layernorm_forward(AT(a->ln2, l, NC), AT(a->ln2_mean, l, N), AT(a->ln2_rstd, l, N), AT(a->residual2, l, NC),
                          AT(w->ln2w, l, C), AT(w->ln2b, l, C), N, C);
        matmul_forward(AT(a->fch, l, 4 * NC), AT(a->ln2, l, NC), AT(w->fcw, l, 4 * CC), AT(w->fcb, l, 4 * C), N, C,
                       4 * C);
        gelu_forward(AT(a->fch_gelu, l, 4 * NC), AT(a->fch, l, 4 * NC), 4 * NC);
        matmul_forward(AT(a->fcproj, l, NC), AT(a->fch_gelu, l, 4 * NC), AT(w->fcprojw, l, 4 * CC),
                       AT(w->fcprojb, l, C), N, 4 * C, C);
        residual_forward(AT(a->residual3, l, NC), AT(a->residual2, l, NC), AT(a->fcproj, l, NC), NC);
    }
    const float *last = AT(a->residual3, m->cfg.n_layer - 1, NC);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, w->lnfw, w->lnfb, N, C);
    matmul_forward(a->logits, a->lnf, w->wte, NULL, N, C, V);
    crossentropy_forward(m->losses, a->probs, a->logits, targets, N, V);
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        sum += m->losses[i];
    return (float)(sum / N);
}

void gpt_backward(struct gpt *m, const int *inputs, const int *targets, float dloss)
{
    const struct gpt_params *w = &m->params;
    struct gpt_params *dw = &m->grads;
    const struct gpt_acts *a = &m->acts;
    struct gpt_acts *g = &m->grad_acts;
    int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, V = m->cfg.vocab_size, N = B * T;
    int L = m->cfg.n_layer;
    size_t NC = (size_t)N * C, CC = (size_t)C * C, att = (size_t)B * NH * T * T;
    memset(m->grad_acts_memory, 0, m->grad_acts_floats * sizeof(float));

    crossentropy_backward(g->logits, a->probs, targets, dloss, N, V);
    matmul_backward(g->lnf, dw->wte, NULL, g->logits, a->lnf, w->wte, N, C, V);
    layernorm_backward(AT(g->residual3, L - 1, NC), dw->lnfw, dw->lnfb, g->lnf, AT(a->residual3, L - 1, NC), w->lnfw,
                       a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : AT(a->residual3, l - 1, NC);
        float *dresidual = l == 0 ? g->encoded : AT(g->residual3, l - 1, NC);
        residual_backward(AT(g->residual2, l, NC), AT(g->fcproj, l, NC), AT(g->residual3, l, NC), NC);
        matmul_backward(AT(g->fch_gelu, l, 4 * NC), AT(dw->fcprojw, l, 4 * CC), AT(dw->fcprojb, l, C),
                        AT(g->fcproj, l, NC), AT(a->fch_gelu, l, 4 * NC), AT(w->fcprojw, l, 4 * CC), N, 4 * C, C);
        gelu_backward(AT(g->fch, l, 4 * NC), AT(a->fch, l, 4 * NC), AT(g->fch_gelu, l, 4 * NC), 4 * NC);
        matmul_backward(AT(g->ln2, l, NC), AT(dw->fcw, l, 4 * CC), AT(dw->fcb, l, 4 * C), AT(g->fch, l, 4 * NC),
                        AT(a->ln2, l, NC), AT(w->fcw, l, 4 * CC), N, C, 4 * C);
        layernorm_backward(AT(g->residual2, l, NC), AT(dw->ln2w, l, C), AT(dw->ln2b, l, C), AT(g->ln2, l, NC),
                           AT(a->residual2, l, NC), AT(w->ln2w, l, C), AT(a->ln2_mean, l, N), AT(a->ln2_rstd, l, N), N,
                           C);
        residual_backward(dresidual, AT(g->attproj, l, NC), AT(g->residual2, l, NC), NC);
        matmul_backward(AT(g->atty, l, NC), AT(dw->attprojw, l, CC), AT(dw->attprojb, l, C), AT(g->attproj, l, NC),
                        AT(a->atty, l, NC), AT(w->attprojw, l, CC), N, C, C);
        attention_backward(AT(g->qkv, l, 3 * NC), AT(g->atty, l, NC), AT(a->qkv, l, 3 * NC), AT(a->att, l, att), B, T,
                           C, NH);
        matmul_backward(AT(g->ln1, l, NC), AT(dw->qkvw, l, 3 * CC), AT(dw->qkvb, l, 3 * C), AT(g->qkv, l, 3 * NC),
                        AT(a->ln1, l, NC), AT(w->qkvw, l, 3 * CC), N, C, 3 * C);
        layernorm_backward(dresidual, AT(dw->ln1w, l, C), AT(dw->ln1b, l, C), AT(g->ln1, l, NC), residual,
                           AT(w->ln1w, l, C), AT(a->ln1_mean, l, N), AT(a->ln1_rstd, l, N), N, C);
    }
    encoder_backward(dw->wte, dw->wpe, g->encoded, inputs, B, T, C);
}

double gpt_flops_per_token(const struct gpt_config *cfg, int T)
{
    double C = cfg->n_embd, L = cfg->n_layer, V = cfg->vocab_size;
    double matrices = L * 12.0 * C * C + V * C; /* qkv 3CC, proj CC, MLP 8CC per layer; the head */
    return 2.0 * matrices + L * 4.0 * T * C;     /* scores q.k and sum of att*v: 2 FLOPs x T x C each */
}
