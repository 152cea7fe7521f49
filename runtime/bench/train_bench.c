#include "train_bench.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "strbuf.h"
#include "train_config.h"
#include "trainer_gpu.h"
#include "transport.h"

/* One data-parallel step: its compute seconds (throttled) and its whole time. */
static int step_once(struct host_backend *b, struct gpt *m, float *mom, float *var, const int *in, const int *tg,
                     double throttle, int step, double *compute_s, double *step_s, struct sr_error *err)
{
    double start = clock_now();
    memset(m->grads_memory, 0, m->num_params * sizeof(float));
    gpt_forward(m, in, tg);
    gpt_backward(m, in, tg, 1.0f / (float)(m->B * m->T * b->size));
    double forward_backward = clock_now() - start;
    bench_throttle_wait(forward_backward, throttle);
    double reduce_start = clock_now();
    if (host_backend_allreduce(b, m->grads_memory, m->num_params, RING_F32, err) != 0)
        return -1;
    double update_start = clock_now();
    struct adamw_hparams h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, step + 1};
    adamw_update(m->params_memory, m->grads_memory, mom, var, m->num_params, &h);
    double end = clock_now();
    bench_throttle_wait(end - update_start, throttle);
    end = clock_now();
    *compute_s = (reduce_start - start) + (end - update_start);
    *step_s = end - start;
    return 0;
}

static int preset_config(const char *preset, struct train_config *cfg, struct sr_error *err)
{
    json_t *hp = json_pack("{s:s}", "model", preset);
    int rc = train_config_parse(hp, "bench train --train-preset", cfg, err);
    json_decref(hp);
    return rc;
}

/* Random tokens for `tokens` positions of each rank's batch. */
static void random_tokens(int rank, int vocab, size_t tokens, int **in, int **tg)
{
    *in = xcalloc(tokens, sizeof **in);
    *tg = xcalloc(tokens, sizeof **tg);
    struct rng r;
    rng_seed(&r, 42 + (uint64_t)rank);
    for (size_t i = 0; i < tokens; i++) {
        (*in)[i] = (int)(rng_next(&r) % (uint64_t)vocab);
        (*tg)[i] = (int)(rng_next(&r) % (uint64_t)vocab);
    }
}

static void summarize(const char *preset, const struct gpt_config *cfg, int batch, size_t params, int world,
                      double *compute, double *step, const struct bench_timing *t, double peak_flops,
                      struct train_bench_result *out)
{
    size_t tokens = (size_t)batch * (size_t)cfg->max_seq_len;
    struct bench_stats c, s;
    bench_stats_of(compute + t->warmup, t->repeats, &c);
    bench_stats_of(step + t->warmup, t->repeats, &s);
    snprintf(out->preset, sizeof out->preset, "%s", preset);
    out->batch = batch;
    out->seq_len = cfg->max_seq_len;
    out->params = (long long)params;
    out->compute_tokens_per_s = (double)tokens / c.median;
    out->step_ms = s.median * 1e3;
    out->tokens_per_s = (double)tokens * world / s.median;
    double flops = 3.0 * gpt_flops_per_token(cfg, cfg->max_seq_len) * (double)tokens / s.median;
    out->mfu = peak_flops > 0 ? flops / peak_flops : 0.0;
}

int bench_train(struct host_backend *b, const char *preset, int batch, const struct bench_timing *t,
                double peak_flops, struct train_bench_result *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    struct train_config tc;
    struct gpt m;
    if (preset_config(preset, &tc, err) != 0 || gpt_create(&m, &tc.model, batch, tc.model.max_seq_len, err) != 0)
        return -1;
    gpt_init(&m, 1337);
    int *in, *tg;
    random_tokens(b->rank, tc.model.vocab_size, (size_t)batch * tc.model.max_seq_len, &in, &tg);
    float *mom = xcalloc(m.num_params, sizeof *mom), *var = xcalloc(m.num_params, sizeof *var);
    int runs = t->warmup + t->repeats, rc = 0;
    double *compute = xcalloc((size_t)runs, sizeof *compute), *step = xcalloc((size_t)runs, sizeof *step);
    for (int i = 0; rc == 0 && i < runs; i++)
        rc = step_once(b, &m, mom, var, in, tg, t->throttle, i, &compute[i], &step[i], err);
    if (rc == 0)
        summarize(preset, &tc.model, batch, m.num_params, b->size, compute, step, t, peak_flops, out);
    free(compute), free(step), free(mom), free(var), free(in), free(tg);
    gpt_free(&m);
    return rc;
}

/* The weights the CPU benchmark starts from, onto the GPU. */
static int gpu_initial_state(struct trainer_gpu *g, const struct gpt_config *cfg, size_t *params,
                             struct sr_error *err)
{
    struct gpt host; /* weights only: one position's activations */
    if (gpt_create(&host, cfg, 1, 1, err) != 0)
        return -1;
    gpt_init(&host, 1337);
    float *zeros = xcalloc(host.num_params, sizeof *zeros);
    int rc = g->api->set_state(g->engine, host.params_memory, zeros, zeros, err);
    *params = host.num_params;
    free(zeros);
    gpt_free(&host);
    return rc;
}

int bench_train_gpu(struct host_backend *b, const char *preset, int batch, const struct bench_timing *t,
                    const char *gpu_bus_id, double peak_flops, struct train_bench_result *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    struct train_config tc;
    if (preset_config(preset, &tc, err) != 0)
        return -1;
    int seq = tc.model.max_seq_len;
    struct trainer_gpu g;
    struct trainer_gpu_spec spec = {&tc, batch, seq, b->rank, b->size, gpu_bus_id};
    size_t params = 0;
    if (trainer_gpu_open(&g, &spec, b, err) != 0 || gpu_initial_state(&g, &tc.model, &params, err) != 0) {
        trainer_gpu_close(&g);
        return -1;
    }
    if (peak_flops <= 0)
        peak_flops = g.api->peak_flops(g.engine);
    size_t tokens = (size_t)batch * seq;
    int *in, *tg;
    random_tokens(b->rank, tc.model.vocab_size, tokens, &in, &tg);
    int runs = t->warmup + t->repeats, rc = 0;
    double *compute = xcalloc((size_t)runs, sizeof *compute), *step = xcalloc((size_t)runs, sizeof *step);
    for (int i = 0; rc == 0 && i < runs; i++) {
        struct cuda_step_hparams h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, i + 1};
        struct cuda_step_result r;
        double start = clock_now();
        rc = g.api->step(g.engine, in, tg, 1, 1.0f / (float)(tokens * (size_t)b->size), 0, &h, &r, err);
        if (rc != 0)
            break;
        bench_throttle_wait(r.compute_s, t->throttle); /* the drill: a slower GPU computes longer */
        compute[i] = r.compute_s / (t->throttle < 1.0 ? t->throttle : 1.0);
        step[i] = clock_now() - start;
    }
    if (rc == 0)
        summarize(preset, &tc.model, batch, params, b->size, compute, step, t, peak_flops, out);
    free(compute), free(step), free(in), free(tg);
    trainer_gpu_close(&g);
    return rc;
}
