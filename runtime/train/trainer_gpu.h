/* trainer_gpu.h — what a GPU rank of the built-in trainer adds: the CUDA
 * engine (cuda_engine.h) and its link to the job.
 *
 * Opening loads libsagerun-cuda.so, has rank 0 make the NCCL unique id and
 * publishes it through the rendezvous key-value store (every rank reads it
 * there), creates the engine on the rank's GPU, and starts a watcher
 * thread on a rendezvous connection of its own: when the rendezvous
 * reports a failed host, the watcher aborts the NCCL communicator and ends
 * the rank, so no rank waits on a collective that can no longer complete.
 * SAGERUN_COLLECTIVE_TIMEOUT_S (default 600) bounds every collective.
 */
#ifndef SAGERUN_TRAINER_GPU_H
#define SAGERUN_TRAINER_GPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cuda_engine.h"
#include "host_backend.h"
#include "train_config.h"

#define COLLECTIVE_TIMEOUT_ENV "SAGERUN_COLLECTIVE_TIMEOUT_S"
#define DEFAULT_COLLECTIVE_TIMEOUT_S 600
/* MFU's denominator on a GPU, in TFLOP/s (e.g. a datasheet's dense bf16
 * figure); unset: the engine measures its GPU's bf16 rate at start. */
#define GPU_PEAK_ENV "SAGERUN_GPU_PEAK_TFLOPS"

struct trainer_gpu {
    const struct cuda_engine_api *api;
    struct cuda_engine *engine;
    struct rdzv_client watch;
    pthread_t watcher;
    bool watching;
    atomic_bool stop_watching;
    int rank;
};

struct trainer_gpu_spec {
    const struct train_config *cfg;
    int micro_batch, seq_len, rank, world;
    const char *gpu_bus_id;
};

/* SAGERUN_COLLECTIVE_TIMEOUT_S, or its default, in seconds. */
int collective_timeout(double *out, struct sr_error *err);

/* Rank 0 makes an NCCL unique id with `make` and publishes it under `key`
 * in the rendezvous key-value store; every other rank reads it there. */
int nccl_id_share(const struct host_backend *b, int rank, const char *key,
                  int (*make)(unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err),
                  unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err);

int trainer_gpu_open(struct trainer_gpu *g, const struct trainer_gpu_spec *spec, const struct host_backend *backend,
                     struct sr_error *err);
void trainer_gpu_close(struct trainer_gpu *g);

#endif
