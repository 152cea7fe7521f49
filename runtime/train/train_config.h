/* train_config.h — the built-in trainer's settings, from the job's
 * hyperparameters (every value a string, as SageMaker passes them).
 *
 * "model" picks a preset (gpt2-124m, the default, or tiny); n_layer, n_head,
 * n_embd, seq_len and vocab_size override its sizes. Optimisation:
 * batch_size (sequences per optimizer step, over all ranks), micro_batch_size
 * (sequences per forward/backward on one rank; the rest is gradient
 * accumulation), max_steps, learning_rate, warmup_steps, min_lr_ratio (the
 * cosine schedule's floor), weight_decay, beta1, beta2, eps, grad_clip,
 * seed. Bookkeeping: log_interval, val_interval, val_batches,
 * checkpoint_interval, checkpoint_keep, weight_check_interval (0: off; else
 * every N steps the ranks compare a hash of their weights). On GPUs:
 * allreduce_bucket_mb (gradient MiB per NCCL all-reduce bucket, default 25),
 * allreduce_dtype (fp32, the default, or bf16) and attention (auto, the
 * default: fused where the head size allows; flash: fused or refuse to
 * start; materialized). Unknown names
 * are errors (a typo must not silently train with a default), except the
 * sagemaker_* ones the SDK adds.
 */
#ifndef SAGERUN_TRAIN_CONFIG_H
#define SAGERUN_TRAIN_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "gpt.h"

struct train_config {
    char preset[32];
    struct gpt_config model;
    int batch_size, micro_batch_size; /* micro 0: all of a rank's share at once */
    int max_steps, warmup_steps;
    double learning_rate, min_lr_ratio, weight_decay, beta1, beta2, eps, grad_clip;
    int64_t seed;
    int log_interval, val_interval, val_batches, checkpoint_interval, checkpoint_keep, weight_check_interval;
    double allreduce_bucket_mb;
    int allreduce_bf16;
    enum gpt_attention attention;
};

/* `hyperparameters`: the object of strings from hyperparameters.json at `path`. */
int train_config_parse(const json_t *hyperparameters, const char *path, struct train_config *cfg,
                       struct sr_error *err);

/* Learning rate for optimizer step `step` (0-based): linear warmup to
 * learning_rate, then cosine decay to learning_rate * min_lr_ratio at max_steps. */
double train_config_lr(const struct train_config *cfg, int step);

#endif
