/* train_bench.h — `sagerun bench train`: optimizer steps of the built-in
 * GPT trainer on random tokens, timed.
 *
 * Every rank runs forward + backward on `batch` sequences of the preset's
 * length, the gradients are summed over all ranks with the host backend,
 * and AdamW updates the weights: one data-parallel step, as the trainer
 * takes it (without data loading, which the trainer's own logs time).
 * Reported per rank: its compute time (forward, backward, update; the
 * throttle drill applies here) as tokens/s, which is what tells a slow GPU
 * or host apart, since the all-reduce makes every rank wait for the
 * slowest. Reported for the job: step time (median), tokens/s over all
 * ranks, and MFU against this rank's measured GEMM rate (the trainer's
 * definition: forward + backward = 3 x gpt_flops_per_token per token).
 */
#ifndef SAGERUN_BENCH_TRAIN_BENCH_H
#define SAGERUN_BENCH_TRAIN_BENCH_H

#include "host_backend.h"
#include "measure.h"

struct train_bench_result {
    char preset[32];
    int batch, seq_len;
    long long params;
    double compute_tokens_per_s; /* this rank */
    double step_ms;              /* the job's step, median */
    double tokens_per_s;         /* all ranks */
    double mfu;
};

/* `preset`: a model preset of the trainer (train_config.h); `peak_flops`:
 * the denominator of MFU (0: MFU not computed). */
int bench_train(struct host_backend *b, const char *preset, int batch, const struct bench_timing *t,
                double peak_flops, struct train_bench_result *out, struct sr_error *err);

/* The same on this rank's GPU: the trainer's CUDA engine (cuda_engine.h),
 * gradients all-reduced over NCCL; compute time is the GPU's (forward,
 * backward, update); `peak_flops` 0: the engine's measured bf16 rate. */
int bench_train_gpu(struct host_backend *b, const char *preset, int batch, const struct bench_timing *t,
                    const char *gpu_bus_id, double peak_flops, struct train_bench_result *out, struct sr_error *err);

#endif
