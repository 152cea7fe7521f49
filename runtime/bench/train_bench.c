#include "train_bench.h"

#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "strbuf.h"
#include "train_config.h"
#include "transport.h"

/* One data-parallel step: its compute seconds (throttled) and its whole time. */
static int step_once(struct host_backend *b, struct gpt *m, float *mom, float *var, const int *in, const int *tg,
                     double throttle, int step, double *compute_s, double *step_s, struct sr_error *err)
{
    double start = transport_now();
    memset(m->grads_memory, 0, m->num_params * sizeof(float));
    gpt_forward(m, in, tg);
    gpt_backward(m, in, tg, 1.0f / (float)(m->B * m->T * b->size));
    double forward_backward = transport_now() - start;
    bench_throttle_wait(forward_backward, throttle);
    double reduce_start = transport_now();
    if (host_backend_allreduce(b, m->grads_memory, m->num_params, RING_F32, err) != 0)
        return -1;
    double update_start = transport_now();
    struct adamw_hparams h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, step + 1};
    adamw_update(m->params_memory, m->grads_memory, mom, var, m->num_params, &h);
    double end = transport_now();
    bench_throttle_wait(end - update_start, throttle);
    end = transport_now();
    *compute_s = (reduce_start - start) + (end - update_start);
    *step_s = end - start;
    return 0;
}

static int preset_model(const char *preset, struct gpt_config *model, struct sr_error *err)
{
    json_t *hp = json_pack("{s:s}", "model", preset);
    struct train_config cfg;
    int rc = train_config_parse(hp, "bench train --train-preset", &cfg, err);
    json_decref(hp);
    if (rc == 0)
        *model = cfg.model;
    return rc;
}

int bench_train(struct host_backend *b, const char *preset, int batch, const struct bench_timing *t,
                double peak_flops, struct train_bench_result *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    struct gpt_config cfg;
    struct gpt m;
    if (preset_model(preset, &cfg, err) != 0 || gpt_create(&m, &cfg, batch, cfg.max_seq_len, err) != 0)
        return -1;
    gpt_init(&m, 1337);
    size_t tokens = (size_t)batch * (size_t)cfg.max_seq_len;
    int *in = xcalloc(tokens, sizeof *in), *tg = xcalloc(tokens, sizeof *tg);
    struct rng r;
    rng_seed(&r, 42 + (uint64_t)b->rank);
    for (size_t i = 0; i < tokens; i++) {
        in[i] = (int)(rng_next(&r) % (uint64_t)cfg.vocab_size);
        tg[i] = (int)(rng_next(&r) % (uint64_t)cfg.vocab_size);
    }
    float *mom = xcalloc(m.num_params, sizeof *mom), *var = xcalloc(m.num_params, sizeof *var);
    int runs = t->warmup + t->repeats, rc = 0;
    double *compute = xcalloc((size_t)runs, sizeof *compute), *step = xcalloc((size_t)runs, sizeof *step);
    for (int i = 0; rc == 0 && i < runs; i++)
        rc = step_once(b, &m, mom, var, in, tg, t->throttle, i, &compute[i], &step[i], err);
    if (rc == 0) {
        struct bench_stats c, s;
        bench_stats_of(compute + t->warmup, t->repeats, &c);
        bench_stats_of(step + t->warmup, t->repeats, &s);
        snprintf(out->preset, sizeof out->preset, "%s", preset);
        out->batch = batch;
        out->seq_len = cfg.max_seq_len;
        out->params = (long long)m.num_params;
        out->compute_tokens_per_s = (double)tokens / c.median;
        out->step_ms = s.median * 1e3;
        out->tokens_per_s = (double)tokens * b->size / s.median;
        double flops = 3.0 * gpt_flops_per_token(&cfg, cfg.max_seq_len) * (double)tokens / s.median;
        out->mfu = peak_flops > 0 ? flops / peak_flops : 0.0;
    }
    free(compute), free(step), free(mom), free(var), free(in), free(tg);
    gpt_free(&m);
    return rc;
}
