/* nccl_grads.h — data-parallel gradient all-reduce over NCCL, overlapped
 * with the backward pass, with a watchdog so a failure never hangs a rank.
 *
 * Buckets: the model announces groups of finished gradients in backward
 * order (final LayerNorm, last layer ... first layer, embeddings;
 * gpt_cuda.h). Consecutive groups are packed into buckets of about
 * bucket_bytes (fp32 bytes; PyTorch DDP's default is 25 MiB). When a
 * bucket's last group is announced, a CUDA event is recorded on the compute
 * stream, the communication stream waits for it and all-reduces the
 * bucket's slices in one NCCL group, while the compute stream goes on with
 * the layers below. In bf16 mode each slice is rounded to bf16 into a
 * buffer of the same layout, summed in bf16 and widened back.
 *
 * Average, not sum: the model's gradients are pre-scaled (the trainer's
 * dloss is 1 / the global batch's tokens), so NCCL's sum is the mean.
 *
 * Watchdog: a thread watches every NCCL call from the moment the host
 * issues it (NCCL may block on the host while it connects) until its CUDA
 * event completes, and polls NCCL's asynchronous error state. A call past
 * timeout_s, an NCCL error, or nccl_grads_abort (the rendezvous reports a
 * failed host) makes it abort the communicator and end the process with
 * exit status 1 and a line naming the operation: the launcher's supervisor
 * then fails the job fast instead of leaving it hung.
 */
#ifndef SAGERUN_NCCL_GRADS_H
#define SAGERUN_NCCL_GRADS_H

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <stdbool.h>

#include "error.h"
#include "gpt_cuda.h"

struct grad_bucket {
    int last_position;          /* the announcement that completes it (0 = first announced) */
    int slices;
    size_t *offsets, *counts;   /* into the gradient buffer */
    size_t elements;
    cudaEvent_t ready, done;
    char what[96];
};

struct nccl_watch {
    bool active, enqueued;
    double started;
    cudaEvent_t done;
    char what[160];
};

#define NCCL_WATCH_SLOTS 4 /* in flight at once: the buckets of a step, the scalars */

struct nccl_grads {
    ncclComm_t comm;
    int rank, world, device, n_layer;
    cudaStream_t compute, comm_stream;
    float *grads;
    void *bf16_buffer; /* NULL in fp32 mode */
    struct grad_bucket *buckets;
    int bucket_count, *bucket_of_position;
    cudaEvent_t backward_done, scalars_done;
    double timeout_s;
    pthread_t watchdog;
    bool watchdog_running, stopping;
    pthread_mutex_t lock;
    struct nccl_watch *watches; /* one per bucket, then one for the scalars, then one for host calls */
    int watch_count;
    char abort_reason[512];
};

struct nccl_grads_config {
    int rank, world;
    const unsigned char *unique_id; /* NCCL_UNIQUE_ID_BYTES */
    size_t bucket_bytes;
    bool bf16;
    double timeout_s;
};

/* A new NCCL unique id (NCCL_UNIQUE_ID_BYTES) into id: rank 0 makes it and
 * the others join with it, for the trainer's communicator and the
 * benchmarks' alike. */
int nccl_unique_id(unsigned char *id, struct sr_error *err);

/* Creates the communicator (watched: a peer that never comes is a timeout,
 * not a hang) and the bucket plan for `model`, whose gradients live on
 * `compute`'s device. */
int nccl_grads_init(struct nccl_grads *g, const struct nccl_grads_config *cfg, struct gpt_cuda *model,
                    cudaStream_t compute, struct sr_error *err);

/* gpt_cuda_ready_fn: launches the bucket that `stage` completes, if any. */
int nccl_grads_ready(void *g, int stage, struct sr_error *err);

/* After the backward pass: all-reduces `count` floats at device `scalars`
 * (the loss and the stop flag) behind the buckets, and makes the compute
 * stream wait for all of it. */
int nccl_grads_finish(struct nccl_grads *g, float *scalars, int count, struct sr_error *err);

/* The plan, for the log: "N buckets: ...". */
void nccl_grads_describe(const struct nccl_grads *g, char *out, size_t size);

/* Ends the process after aborting the communicator (any thread). */
void nccl_grads_abort(struct nccl_grads *g, const char *reason);

void nccl_grads_destroy(struct nccl_grads *g);

#endif
