/* Every CPU kernel against an independent float64 reference written here
 * with plain loops: the fp32 forward must match the float64 forward, and the
 * fp32 backward must match central finite differences of the float64
 * forward, d/dx sum(w * f(x)) for random weights w (so every output element
 * takes part). Tiny shapes keep the O(inputs x forward) cost low.
 *
 * Tolerances: fp32 kernels on O(1) values over sums of <= 16 terms carry
 * relative errors of ~1e-6; a float64 central difference with h = 1e-6 is
 * exact to ~1e-9. An element passes when |analytic - numeric| <= 1e-4 *
 * (|numeric| + 0.01 * max|numeric|): tight enough that a wrong term (a
 * missed factor, a dropped mask, a sign) fails by orders of magnitude. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpt.h"
#include "ops.h"
#include "rng.h"

enum { B = 2, T = 5, C = 8, NH = 2, OC = 6, V = 11, N = B * T };
#define MAX_INPUTS 3
#define FD_STEP 1e-6

/* One operation under test: its float inputs (as fp32 and as float64 copies),
 * the analytic gradients from the fp32 backward, and the float64 forward. */
struct op_case {
    const char *name;
    int inputs;
    const char *input_names[MAX_INPUTS];
    size_t len[MAX_INPUTS];
    float *x32[MAX_INPUTS];
    double *x64[MAX_INPUTS];
    float *grad[MAX_INPUTS];
    size_t out_len;
    double *w; /* weights on the outputs: the loss is sum(w * out) */
    const int *ints; /* token ids or targets, when the op has them */
    void (*forward64)(const struct op_case *c, double *out);
};

static struct rng test_rng = {0x5eed};

static float *random_floats(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)(2.0 * rng_uniform(&test_rng) - 1.0);
    return x;
}

static void add_input(struct op_case *c, const char *name, float *x32, size_t len)
{
    int k = c->inputs++;
    c->input_names[k] = name;
    c->len[k] = len;
    c->x32[k] = x32;
    c->x64[k] = malloc(len * sizeof(double));
    c->grad[k] = calloc(len, sizeof(float));
    assert_true(c->x64[k] && c->grad[k]);
    for (size_t i = 0; i < len; i++)
        c->x64[k][i] = x32[i];
}

static void set_output(struct op_case *c, size_t out_len)
{
    c->out_len = out_len;
    c->w = malloc(out_len * sizeof(double));
    assert_non_null(c->w);
    for (size_t i = 0; i < out_len; i++)
        c->w[i] = 2.0 * rng_uniform(&test_rng) - 1.0;
}

static float *weights32(const struct op_case *c)
{
    float *w = malloc(c->out_len * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < c->out_len; i++)
        w[i] = (float)c->w[i];
    return w;
}

static double weighted_loss(const struct op_case *c)
{
    double *out = calloc(c->out_len, sizeof *out);
    assert_non_null(out);
    c->forward64(c, out);
    double loss = 0.0;
    for (size_t i = 0; i < c->out_len; i++)
        loss += c->w[i] * out[i];
    free(out);
    return loss;
}

static void check_forward(const struct op_case *c, const float *out32)
{
    double *out = calloc(c->out_len, sizeof *out);
    assert_non_null(out);
    c->forward64(c, out);
    for (size_t i = 0; i < c->out_len; i++)
        if (fabs(out32[i] - out[i]) > 1e-5 * (1.0 + fabs(out[i])))
            fail_msg("%s forward [%zu]: fp32 %.8g, float64 %.8g", c->name, i, out32[i], out[i]);
    free(out);
}

static void check_gradients(struct op_case *c)
{
    for (int k = 0; k < c->inputs; k++) {
        double *x = c->x64[k], *numeric = malloc(c->len[k] * sizeof(double)), max = 0.0;
        assert_non_null(numeric);
        for (size_t i = 0; i < c->len[k]; i++) {
            double saved = x[i];
            x[i] = saved + FD_STEP;
            double up = weighted_loss(c);
            x[i] = saved - FD_STEP;
            double down = weighted_loss(c);
            x[i] = saved;
            numeric[i] = (up - down) / (2 * FD_STEP);
            max = fmax(max, fabs(numeric[i]));
        }
        /* A check against an all-zero gradient would prove nothing. */
        if (max < 1e-2)
            fail_msg("%s: d/d%s is ~0 everywhere (max %.3g); the case is too weak", c->name, c->input_names[k], max);
        for (size_t i = 0; i < c->len[k]; i++)
            if (fabs(c->grad[k][i] - numeric[i]) > 1e-4 * (fabs(numeric[i]) + 0.01 * max))
                fail_msg("%s: d/d%s[%zu] analytic %.8g, finite differences %.8g", c->name, c->input_names[k], i,
                         c->grad[k][i], numeric[i]);
        free(numeric);
    }
}

static void free_case(struct op_case *c)
{
    for (int k = 0; k < c->inputs; k++) {
        free(c->x32[k]);
        free(c->x64[k]);
        free(c->grad[k]);
    }
    free(c->w);
}

/* ---- float64 references ---- */

static void encoder64(const struct op_case *c, double *out)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                out[(b * T + t) * C + i] = c->x64[0][c->ints[b * T + t] * C + i] + c->x64[1][t * C + i];
}

static void layernorm64(const struct op_case *c, double *out)
{
    const double *x = c->x64[0], *w = c->x64[1], *bias = c->x64[2];
    for (int n = 0; n < N; n++) {
        double mean = 0, var = 0;
        for (int i = 0; i < C; i++)
            mean += x[n * C + i] / C;
        for (int i = 0; i < C; i++)
            var += (x[n * C + i] - mean) * (x[n * C + i] - mean) / C;
        for (int i = 0; i < C; i++)
            out[n * C + i] = (x[n * C + i] - mean) / sqrt(var + 1e-5) * w[i] + bias[i];
    }
}

static void matmul64(const struct op_case *c, double *out)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = c->x64[2][o];
            for (int i = 0; i < C; i++)
                s += c->x64[0][n * C + i] * c->x64[1][o * C + i];
            out[n * OC + o] = s;
        }
}

static void attention64(const struct op_case *c, double *out)
{
    const double *x = c->x64[0];
    int hs = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                double score[T], max = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    score[u] = 0;
                    for (int i = 0; i < hs; i++)
                        score[u] += x[(b * T + t) * 3 * C + h * hs + i] * x[(b * T + u) * 3 * C + C + h * hs + i];
                    score[u] /= sqrt(hs);
                    max = fmax(max, score[u]);
                }
                for (int u = 0; u <= t; u++)
                    sum += exp(score[u] - max);
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int u = 0; u <= t; u++)
                        o += exp(score[u] - max) / sum * x[(b * T + u) * 3 * C + 2 * C + h * hs + i];
                    out[(b * T + t) * C + h * hs + i] = o;
                }
            }
}

static void gelu64(const struct op_case *c, double *out)
{
    for (size_t i = 0; i < c->out_len; i++) {
        double x = c->x64[0][i];
        out[i] = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    }
}

static void residual64(const struct op_case *c, double *out)
{
    for (size_t i = 0; i < c->out_len; i++)
        out[i] = c->x64[0][i] + c->x64[1][i];
}

static void crossentropy64(const struct op_case *c, double *out)
{
    for (int n = 0; n < N; n++) {
        double max = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++)
            max = fmax(max, c->x64[0][n * V + v]);
        for (int v = 0; v < V; v++)
            sum += exp(c->x64[0][n * V + v] - max);
        out[n] = -(c->x64[0][n * V + c->ints[n]] - max - log(sum));
    }
}

/* ---- the cases ---- */

static int *random_ids(int n, int below)
{
    int *ids = malloc((size_t)n * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < n; i++)
        ids[i] = (int)(rng_next(&test_rng) % (uint64_t)below);
    return ids;
}

static void test_encoder(void **state)
{
    (void)state;
    struct op_case c = {.name = "encoder", .forward64 = encoder64};
    int *tokens = random_ids(N, V);
    c.ints = tokens;
    add_input(&c, "wte", random_floats(V * C, 1), V * C);
    add_input(&c, "wpe", random_floats(T * C, 1), T * C);
    set_output(&c, N * C);
    float out[N * C], *w = weights32(&c);
    encoder_forward(out, tokens, c.x32[0], c.x32[1], B, T, C);
    check_forward(&c, out);
    encoder_backward(c.grad[0], c.grad[1], w, tokens, B, T, C);
    check_gradients(&c);
    free(w);
    free(tokens);
    free_case(&c);
}

static void test_layernorm(void **state)
{
    (void)state;
    struct op_case c = {.name = "layernorm", .forward64 = layernorm64};
    add_input(&c, "inp", random_floats(N * C, 2), N * C);
    add_input(&c, "weight", random_floats(C, 1.5f), C);
    add_input(&c, "bias", random_floats(C, 1), C);
    set_output(&c, N * C);
    float out[N * C], mean[N], rstd[N], *w = weights32(&c);
    layernorm_forward(out, mean, rstd, c.x32[0], c.x32[1], c.x32[2], N, C);
    check_forward(&c, out);
    layernorm_backward(c.grad[0], c.grad[1], c.grad[2], w, c.x32[0], c.x32[1], mean, rstd, N, C);
    check_gradients(&c);
    free(w);
    free_case(&c);
}

static void test_matmul(void **state)
{
    (void)state;
    struct op_case c = {.name = "matmul", .forward64 = matmul64};
    add_input(&c, "inp", random_floats(N * C, 1), N * C);
    add_input(&c, "weight", random_floats(OC * C, 1), OC * C);
    add_input(&c, "bias", random_floats(OC, 1), OC);
    set_output(&c, N * OC);
    float out[N * OC], *w = weights32(&c);
    matmul_forward(out, c.x32[0], c.x32[1], c.x32[2], N, C, OC);
    check_forward(&c, out);
    matmul_backward(c.grad[0], c.grad[1], c.grad[2], w, c.x32[0], c.x32[1], N, C, OC);
    check_gradients(&c);
    free(w);
    free_case(&c);
}

static void test_attention(void **state)
{
    (void)state;
    struct op_case c = {.name = "attention", .forward64 = attention64};
    add_input(&c, "qkv", random_floats(N * 3 * C, 1.5f), N * 3 * C);
    set_output(&c, N * C);
    float out[N * C], att[B * NH * T * T], *w = weights32(&c);
    attention_forward(out, att, c.x32[0], B, T, C, NH);
    check_forward(&c, out);
    for (int i = 0; i < B * NH * T; i++) /* causal: nothing above the diagonal */
        for (int u = 0; u < T; u++)
            if (u > i % T)
                assert_true(att[i * T + u] == 0.0f);
    attention_backward(c.grad[0], w, c.x32[0], att, B, T, C, NH);
    check_gradients(&c);
    free(w);
    free_case(&c);
}

static void test_gelu(void **state)
{
    (void)state;
    struct op_case c = {.name = "gelu", .forward64 = gelu64};
    add_input(&c, "inp", random_floats(N * C, 4), N * C);
    set_output(&c, N * C);
    float out[N * C], *w = weights32(&c);
    gelu_forward(out, c.x32[0], N * C);
    check_forward(&c, out);
    gelu_backward(c.grad[0], c.x32[0], w, N * C);
    check_gradients(&c);
    free(w);
    free_case(&c);
}

static void test_residual(void **state)
{
    (void)state;
    struct op_case c = {.name = "residual", .forward64 = residual64};
    add_input(&c, "a", random_floats(N * C, 1), N * C);
    add_input(&c, "b", random_floats(N * C, 1), N * C);
    set_output(&c, N * C);
    float out[N * C], *w = weights32(&c);
    residual_forward(out, c.x32[0], c.x32[1], N * C);
    check_forward(&c, out);
    residual_backward(c.grad[0], c.grad[1], w, N * C);
    check_gradients(&c);
    free(w);
    free_case(&c);
}

static void test_crossentropy(void **state)
{
    (void)state;
    struct op_case c = {.name = "crossentropy", .forward64 = crossentropy64};
    int *targets = random_ids(N, V);
    c.ints = targets;
    add_input(&c, "logits", random_floats(N * V, 3), N * V);
    set_output(&c, N);
    /* The fused backward takes one dloss for all rows; give every row the
     * same weight and check d(dloss * sum losses). */
    for (int n = 0; n < N; n++)
        c.w[n] = 0.7;
    float losses[N], probs[N * V];
    crossentropy_forward(losses, probs, c.x32[0], targets, N, V);
    check_forward(&c, losses);
    crossentropy_backward(c.grad[0], probs, targets, 0.7f, N, V);
    check_gradients(&c);
    free(targets);
    free_case(&c);
}

/* Backward kernels add into their outputs (the accumulation contract). */
static void test_backward_accumulates(void **state)
{
    (void)state;
    float *inp = random_floats(N * C, 1), *weight = random_floats(OC * C, 1), *dout = random_floats(N * OC, 1);
    float dinp1[N * C] = {0}, dw1[OC * C] = {0}, db1[OC] = {0}, dinp2[N * C], dw2[OC * C], db2[OC];
    for (size_t i = 0; i < N * C; i++)
        dinp2[i] = 1.0f;
    for (size_t i = 0; i < OC * C; i++)
        dw2[i] = 1.0f;
    for (size_t i = 0; i < OC; i++)
        db2[i] = 1.0f;
    matmul_backward(dinp1, dw1, db1, dout, inp, weight, N, C, OC);
    matmul_backward(dinp2, dw2, db2, dout, inp, weight, N, C, OC);
    for (size_t i = 0; i < N * C; i++)
        assert_float_equal(dinp2[i], 1.0f + dinp1[i], 1e-6);
    for (size_t i = 0; i < OC * C; i++)
        assert_float_equal(dw2[i], 1.0f + dw1[i], 1e-6);
    for (size_t i = 0; i < OC; i++)
        assert_float_equal(db2[i], 1.0f + db1[i], 1e-6);
    free(inp);
    free(weight);
    free(dout);
}

/* AdamW against its definition written out in float64 for two steps. */
static void test_adamw(void **state)
{
    (void)state;
    enum { P = 7 };
    float p[P], g[P], m[P] = {0}, v[P] = {0};
    double p64[P], m64[P] = {0}, v64[P] = {0};
    for (int i = 0; i < P; i++) {
        p[i] = (float)(p64[i] = 0.3 * i - 1.0);
        g[i] = (float)(0.1 * (i - 3));
    }
    for (int t = 1; t <= 2; t++) {
        struct adamw_hparams h = {0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t};
        adamw_update(p, g, m, v, P, &h);
        for (int i = 0; i < P; i++) {
            double gi = (double)g[i] * 0.5;
            m64[i] = 0.9 * m64[i] + 0.1 * gi;
            v64[i] = 0.95 * v64[i] + 0.05 * gi * gi;
            double mh = m64[i] / (1 - pow(0.9, t)), vh = v64[i] / (1 - pow(0.95, t));
            p64[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + 0.1 * p64[i]);
        }
    }
    for (int i = 0; i < P; i++)
        assert_float_equal(p[i], p64[i], 1e-6);
    assert_float_equal(sum_of_squares(g, P), 0.28, 1e-9);
}

/* The whole model's wiring: for each parameter tensor, the slope of the
 * loss along that tensor's gradient equals |gradient|^2 (a directional
 * finite difference of the fp32 model, hence the 3% tolerance: fp32 loss
 * rounding and curvature, measured at <= 1.4% here). Weights are 10x GPT-2's
 * init so every tensor has a real slope. At GPT-2's own init the model
 * predicts nearly uniformly: loss ~ ln V. */
static double directional_slope(struct gpt *m, const float *saved, const float *grad, size_t off, size_t len,
                                double eps, const int *in, const int *tg)
{
    double loss[2];
    for (int side = 0; side < 2; side++) {
        memcpy(m->params_memory, saved, m->num_params * sizeof(float));
        for (size_t i = off; i < off + len; i++)
            m->params_memory[i] = saved[i] + (float)((side ? -eps : eps) * grad[i]);
        loss[side] = gpt_forward(m, in, tg);
    }
    return (loss[0] - loss[1]) / (2 * eps);
}

static void test_gpt_wiring(void **state)
{
    (void)state;
    struct gpt m;
    struct sr_error err = {{0}};
    struct gpt_config cfg = {8, 13, 2, 2, 8};
    assert_int_equal(gpt_create(&m, &cfg, 2, 8, &err), 0);
    gpt_init(&m, 42);
    int in[16], tg[16];
    for (int i = 0; i < 16; i++) {
        in[i] = (i * 5) % 13;
        tg[i] = (i * 7 + 3) % 13;
    }
    assert_float_equal(gpt_forward(&m, in, tg), log(13.0), 0.05);
    for (size_t i = 0; i < m.num_params; i++)
        m.params_memory[i] *= 10.0f;
    gpt_forward(&m, in, tg);
    gpt_backward(&m, in, tg, 1.0f / 16);
    float *saved = malloc(m.num_params * sizeof(float)), *grad = malloc(m.num_params * sizeof(float));
    assert_true(saved && grad);
    memcpy(saved, m.params_memory, m.num_params * sizeof(float));
    memcpy(grad, m.grads_memory, m.num_params * sizeof(float));
    size_t off = 0;
    for (int t = 0; t < GPT_PARAM_TENSORS; t++) {
        double norm2 = sum_of_squares(grad + off, m.param_sizes[t]);
        if (norm2 < 1e-8)
            fail_msg("tensor %s has no gradient", gpt_tensor_name(t));
        double slope = directional_slope(&m, saved, grad, off, m.param_sizes[t], 1e-4 / sqrt(norm2), in, tg);
        if (fabs(slope / norm2 - 1.0) > 0.03)
            fail_msg("tensor %s: slope along its gradient %.6g, |gradient|^2 %.6g", gpt_tensor_name(t), slope, norm2);
        off += m.param_sizes[t];
    }
    free(saved);
    free(grad);
    gpt_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder),   cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_matmul),    cmocka_unit_test(test_attention),
        cmocka_unit_test(test_gelu),      cmocka_unit_test(test_residual),
        cmocka_unit_test(test_crossentropy), cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_adamw),     cmocka_unit_test(test_gpt_wiring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
