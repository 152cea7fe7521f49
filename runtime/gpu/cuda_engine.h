/* cuda_engine.h — the trainer's GPU half, as the trainer sees it.
 *
 * The sagerun binary runs on machines with no GPU and no CUDA libraries, so
 * nothing CUDA is linked into it. The GPU model, its optimizer and the
 * NCCL gradient all-reduce live in libsagerun-cuda.so, which a GPU rank
 * loads with dlopen (cuda_engine_load) and uses through this flat table;
 * the ABI version guards against a library from another build.
 *
 * One engine per rank: the GPU given by bus id (the launcher's SAGERUN_GPU),
 * the model replica with fp32 master weights and AdamW state on it, and an
 * NCCL communicator over all ranks created from a unique id that rank 0
 * makes and the trainer hands around through the rendezvous. Each step:
 * forward and backward over the rank's micro-batches, gradients all-reduced
 * in buckets while backward still runs (the last micro-batch only), the
 * loss and stop flag all-reduced with them, the global norm, clipping and
 * AdamW on the GPU. Functions return 0, or -1 with the reason in err.
 */
#ifndef SAGERUN_CUDA_ENGINE_H
#define SAGERUN_CUDA_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gpt.h"

#define CUDA_ENGINE_ABI 3
#define CUDA_ENGINE_LIBRARY "libsagerun-cuda.so"
#define CUDA_ENGINE_SYMBOL "sagerun_cuda_engine"
#define CUDA_ENGINE_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

struct cuda_engine_spec {
    struct gpt_config model;
    int micro_batch, seq_len;
    int rank, world;
    const char *gpu_bus_id;                     /* NULL: CUDA device 0 */
    unsigned char nccl_id[CUDA_ENGINE_ID_BYTES]; /* from rank 0's unique_id (ignored with world 1) */
    size_t bucket_bytes;                        /* gradient bytes (fp32) per all-reduce bucket */
    int allreduce_bf16;                         /* all-reduce gradients in bf16 instead of fp32 */
    double collective_timeout_s;                /* the watchdog aborts a collective slower than this */
    enum gpt_attention attention;
    double peak_flops;                          /* > 0: the bf16 rate MFU is against; 0: measured at create */
};

struct cuda_step_hparams {
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
    int t; /* AdamW step, >= 1 */
};

struct cuda_step_result {
    float loss;      /* mean loss of the global batch */
    float grad_norm; /* before clipping */
    int stop;        /* some rank asked to stop */
    double compute_s, comm_wait_s; /* GPU time computing, and waiting for the all-reduce after backward */
};

struct cuda_engine;

struct cuda_engine_api {
    int abi;
    /* Rank 0 makes the communicator's id. */
    int (*unique_id)(unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err);
    int (*create)(struct cuda_engine **out, const struct cuda_engine_spec *spec, struct sr_error *err);
    /* Weights and optimizer state from/to host buffers of num_params floats. */
    int (*set_state)(struct cuda_engine *e, const float *params, const float *m, const float *v, struct sr_error *err);
    int (*get_state)(struct cuda_engine *e, float *params, float *m, float *v, struct sr_error *err);
    /* One optimizer step over `accum` micro-batches: inputs/targets hold
     * accum * micro_batch * seq_len tokens; dloss scales every token's loss
     * (1 / global tokens, so the all-reduced sum is the mean's gradient). */
    int (*step)(struct cuda_engine *e, const int *inputs, const int *targets, int accum, float dloss, int stop,
                const struct cuda_step_hparams *h, struct cuda_step_result *out, struct sr_error *err);
    /* Forward only: *loss_sum = weight * (sum of token losses), this rank alone. */
    int (*evaluate)(struct cuda_engine *e, const int *inputs, const int *targets, int accum, float weight,
                    float *loss_sum, struct sr_error *err);
    /* This GPU's dense bf16 matrix-product rate (FLOP/s): measured, or the spec's. */
    double (*peak_flops)(struct cuda_engine *e);
    /* One line: the device, its memory, NCCL, the bucket plan. */
    const char *(*describe)(struct cuda_engine *e);
    /* From any thread: abort the communicator and end the process, saying why. */
    void (*abort)(struct cuda_engine *e, const char *reason);
    void (*destroy)(struct cuda_engine *e);
};

/* Finds libsagerun-cuda.so (SAGERUN_CUDA_ENGINE, else beside the sagerun
 * binary or in its ../lib), loads it and checks its ABI. */
const struct cuda_engine_api *cuda_engine_load(struct sr_error *err);

#endif
