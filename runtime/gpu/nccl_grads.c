#include "nccl_grads.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "convert.h"

#define WATCH_PERIOD_NS 50000000L /* 50 ms between the watchdog's looks */

/* ---- the watchdog ---- */

static void watch_begin(struct nccl_grads *g, int slot, const char *what)
{
    pthread_mutex_lock(&g->lock);
    struct nccl_watch *w = &g->watches[slot];
    w->active = true;
    w->enqueued = false;
    w->started = clock_now();
    snprintf(w->what, sizeof w->what, "%s", what);
    pthread_mutex_unlock(&g->lock);
}

/* The host call returned: from now on the event says when the GPU is done
 * (no event: the call was synchronous and is over). */
static int watch_enqueued(struct nccl_grads *g, int slot, cudaStream_t stream, struct sr_error *err)
{
    struct nccl_watch *w = &g->watches[slot];
    cudaError_t e = w->done ? cudaEventRecord(w->done, stream) : cudaSuccess;
    pthread_mutex_lock(&g->lock);
    if (w->done)
        w->enqueued = true;
    else
        w->active = false;
    pthread_mutex_unlock(&g->lock);
    if (e != cudaSuccess) {
        error_setf(err, "NCCL backend: cudaEventRecord after %s: %s", w->what, cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

static void die(struct nccl_grads *g, const char *reason)
{
    /* The comm may be mid-collective on another thread; ncclCommAbort is the
     * one NCCL call documented to be safe then. The process ends here: the
     * main thread may be blocked inside CUDA for good. */
    if (g->comm)
        ncclCommAbort(g->comm);
    fprintf(stderr, "sagerun-trainer: rank %d: %s; NCCL communicator aborted\n", g->rank, reason);
    fflush(NULL);
    _exit(1);
}

/* One look: the first watched call past its deadline, or NCCL's error. */
static int watch_look(struct nccl_grads *g, char *why, size_t size)
{
    double now = clock_now();
    int failed = 0;
    pthread_mutex_lock(&g->lock);
    if (g->abort_reason[0]) {
        snprintf(why, size, "%s", g->abort_reason);
        failed = 1;
    }
    for (int i = 0; !failed && i < g->watch_count; i++) {
        struct nccl_watch *w = &g->watches[i];
        if (!w->active)
            continue;
        if (w->enqueued) {
            cudaError_t q = cudaEventQuery(w->done);
            if (q == cudaSuccess) {
                w->active = false;
                continue;
            }
            if (q != cudaErrorNotReady) {
                snprintf(why, size, "%s failed on the GPU: %s", w->what, cudaGetErrorString(q));
                failed = 1;
                break;
            }
        }
        if (now - w->started > g->timeout_s) {
            snprintf(why, size, "%s did not complete within %.0f s (SAGERUN_COLLECTIVE_TIMEOUT_S)", w->what,
                     g->timeout_s);
            failed = 1;
        }
    }
    pthread_mutex_unlock(&g->lock);
    ncclResult_t async = ncclSuccess;
    if (!failed && g->comm && ncclCommGetAsyncError(g->comm, &async) == ncclSuccess && async != ncclSuccess &&
        async != ncclInProgress) {
        snprintf(why, size, "NCCL reported an error during the gradient all-reduce: %s (%s)",
                 ncclGetErrorString(async), ncclGetLastError(g->comm));
        failed = 1;
    }
    return failed;
}

static void *watchdog_main(void *arg)
{
    struct nccl_grads *g = arg;
    /* Events belong to the device's context; a new thread starts on device 0. */
    cudaSetDevice(g->device);
    for (;;) {
        pthread_mutex_lock(&g->lock);
        bool stopping = g->stopping;
        pthread_mutex_unlock(&g->lock);
        if (stopping)
            return NULL;
        char why[640];
        if (watch_look(g, why, sizeof why))
            die(g, why);
        struct timespec pause = {0, WATCH_PERIOD_NS};
        nanosleep(&pause, NULL);
    }
}

void nccl_grads_abort(struct nccl_grads *g, const char *reason)
{
    pthread_mutex_lock(&g->lock);
    snprintf(g->abort_reason, sizeof g->abort_reason, "%s", reason);
    pthread_mutex_unlock(&g->lock);
    if (!g->watchdog_running)
        die(g, reason);
    /* The watchdog acts within one period; this thread waits for that. */
    for (;;)
        pause();
}

/* ---- NCCL calls ---- */

static int nccl_ok(struct nccl_grads *g, ncclResult_t r, const char *what, struct sr_error *err)
{
    if (r == ncclSuccess)
        return 0;
    error_setf(err, "NCCL %s failed: %s (%s)", what, ncclGetErrorString(r), g->comm ? ncclGetLastError(g->comm) : "");
    return -1;
}

static int host_slot(const struct nccl_grads *g)
{
    return g->watch_count - 1;
}

static int create_comm(struct nccl_grads *g, const struct nccl_grads_config *cfg, struct sr_error *err)
{
    ncclUniqueId id;
    memcpy(&id, cfg->unique_id, sizeof id);
    char what[160];
    snprintf(what, sizeof what, "NCCL communicator creation (rank %d of %d)", g->rank, g->world);
    watch_begin(g, host_slot(g), what);
    ncclResult_t r = ncclCommInitRank(&g->comm, g->world, id, g->rank);
    if (watch_enqueued(g, host_slot(g), g->comm_stream, err) != 0)
        return -1;
    if (r != ncclSuccess) {
        g->comm = NULL;
        return nccl_ok(g, r, "ncclCommInitRank", err);
    }
    return 0;
}

/* ---- the bucket plan ---- */

/* Announcements come for stage n_layer, n_layer-1, ..., 0, then -1. */
static int position_of(const struct nccl_grads *g, int stage)
{
    return g->n_layer - stage;
}

static void stage_name(const struct nccl_grads *g, int position, char *out, size_t size)
{
    int stage = g->n_layer - position;
    if (stage == g->n_layer)
        snprintf(out, size, "final LayerNorm");
    else if (stage == GPT_CUDA_STAGE_EMBEDDINGS)
        snprintf(out, size, "embeddings");
    else
        snprintf(out, size, "layer %d", stage);
}

static int plan_buckets(struct nccl_grads *g, struct gpt_cuda *model, size_t bucket_bytes, struct sr_error *err)
{
    int positions = g->n_layer + 2;
    size_t offsets[GPT_PARAM_TENSORS], counts[GPT_PARAM_TENSORS];
    g->bucket_of_position = calloc((size_t)positions, sizeof(int));
    g->buckets = calloc((size_t)positions, sizeof *g->buckets);
    if (!g->bucket_of_position || !g->buckets) {
        error_setf(err, "NCCL backend: out of host memory");
        return -1;
    }
    int first = 0;
    for (int p = 0; p < positions; p++) {
        struct grad_bucket *b = &g->buckets[g->bucket_count];
        int n = gpt_cuda_stage_slices(model, g->n_layer - p, offsets, counts);
        size_t *o = realloc(b->offsets, (size_t)(b->slices + n) * sizeof(size_t));
        size_t *c = o ? realloc(b->counts, (size_t)(b->slices + n) * sizeof(size_t)) : NULL;
        if (o)
            b->offsets = o;
        if (!c) {
            error_setf(err, "NCCL backend: out of host memory");
            return -1;
        }
        b->counts = c;
        for (int i = 0; i < n; i++) {
            b->offsets[b->slices] = offsets[i];
            b->counts[b->slices++] = counts[i];
            b->elements += counts[i];
        }
        g->bucket_of_position[p] = g->bucket_count;
        if (b->elements * sizeof(float) >= bucket_bytes || p == positions - 1) {
            char from[32], to[32];
            stage_name(g, first, from, sizeof from);
            stage_name(g, p, to, sizeof to);
            if (first == p)
                snprintf(b->what, sizeof b->what, "%s", from);
            else
                snprintf(b->what, sizeof b->what, "%s to %s", from, to);
            b->last_position = p;
            if (cudaEventCreateWithFlags(&b->ready, cudaEventDisableTiming) != cudaSuccess ||
                cudaEventCreateWithFlags(&b->done, cudaEventDisableTiming) != cudaSuccess) {
                error_setf(err, "NCCL backend: cannot create CUDA events");
                return -1;
            }
            g->bucket_count++;
            first = p + 1;
        }
    }
    return 0;
}

/* ---- per step ---- */

static int launch_bucket(struct nccl_grads *g, int index, struct sr_error *err)
{
    struct grad_bucket *b = &g->buckets[index];
    ncclDataType_t type = g->bf16_buffer ? ncclBfloat16 : ncclFloat32;
    char what[160];
    snprintf(what, sizeof what, "all-reduce of gradient bucket %d of %d (%s, %.1f MiB)", index + 1, g->bucket_count,
             b->what, b->elements * 4.0 / 1048576.0);
    if (cudaEventRecord(b->ready, g->compute) != cudaSuccess ||
        cudaStreamWaitEvent(g->comm_stream, b->ready, 0) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot order %s after the backward pass", what);
        return -1;
    }
    uint16_t *half = g->bf16_buffer;
    for (int i = 0; half && i < b->slices; i++)
        if (cuda_f32_to_bf16(half + b->offsets[i], g->grads + b->offsets[i], b->counts[i], g->comm_stream, err) != 0)
            return -1;
    watch_begin(g, index, what);
    ncclResult_t r = ncclGroupStart();
    for (int i = 0; r == ncclSuccess && i < b->slices; i++) {
        void *p = half ? (void *)(half + b->offsets[i]) : (void *)(g->grads + b->offsets[i]);
        r = ncclAllReduce(p, p, b->counts[i], type, ncclSum, g->comm, g->comm_stream);
    }
    ncclResult_t end = ncclGroupEnd();
    if (nccl_ok(g, r != ncclSuccess ? r : end, what, err) != 0)
        return -1;
    for (int i = 0; half && i < b->slices; i++)
        if (cuda_bf16_to_f32(g->grads + b->offsets[i], half + b->offsets[i], b->counts[i], g->comm_stream, err) != 0)
            return -1;
    return watch_enqueued(g, index, g->comm_stream, err);
}

int nccl_grads_ready(void *ctx, int stage, struct sr_error *err)
{
    struct nccl_grads *g = ctx;
    int p = position_of(g, stage), index = g->bucket_of_position[p];
    return g->buckets[index].last_position == p ? launch_bucket(g, index, err) : 0;
}

int nccl_grads_finish(struct nccl_grads *g, float *scalars, int count, struct sr_error *err)
{
    int slot = g->bucket_count;
    if (cudaEventRecord(g->backward_done, g->compute) != cudaSuccess ||
        cudaStreamWaitEvent(g->comm_stream, g->backward_done, 0) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot order the loss all-reduce after the backward pass");
        return -1;
    }
    watch_begin(g, slot, "all-reduce of the loss and stop flag");
    if (nccl_ok(g, ncclAllReduce(scalars, scalars, (size_t)count, ncclFloat32, ncclSum, g->comm, g->comm_stream),
                "all-reduce of the loss and stop flag", err) != 0 ||
        watch_enqueued(g, slot, g->comm_stream, err) != 0)
        return -1;
    /* The communication stream runs in order: its last event covers every bucket. */
    if (cudaEventRecord(g->scalars_done, g->comm_stream) != cudaSuccess ||
        cudaStreamWaitEvent(g->compute, g->scalars_done, 0) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot order the optimizer after the all-reduce");
        return -1;
    }
    return 0;
}

/* ---- life cycle ---- */

int nccl_unique_id(unsigned char *id, struct sr_error *err)
{
    ncclUniqueId nid;
    ncclResult_t r = ncclGetUniqueId(&nid);
    if (r != ncclSuccess) {
        error_setf(err, "ncclGetUniqueId failed: %s", ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &nid, sizeof nid);
    return 0;
}

int nccl_grads_init(struct nccl_grads *g, const struct nccl_grads_config *cfg, struct gpt_cuda *model,
                    cudaStream_t compute, struct sr_error *err)
{
    memset(g, 0, sizeof *g);
    g->rank = cfg->rank;
    g->world = cfg->world;
    g->compute = compute;
    g->grads = gpt_cuda_grads(model);
    g->timeout_s = cfg->timeout_s;
    g->n_layer = gpt_cuda_config(model)->n_layer;
    pthread_mutex_init(&g->lock, NULL);
    if (cudaGetDevice(&g->device) != cudaSuccess ||
        cudaStreamCreateWithFlags(&g->comm_stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&g->backward_done, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&g->scalars_done, cudaEventDisableTiming) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot create its CUDA stream and events");
        return -1;
    }
    if (plan_buckets(g, model, cfg->bucket_bytes, err) != 0)
        return -1;
    if (cfg->bf16 && cudaMalloc(&g->bf16_buffer, gpt_cuda_num_params(model) * 2) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot allocate the bf16 all-reduce buffer");
        return -1;
    }
    g->watch_count = g->bucket_count + 2;
    g->watches = calloc((size_t)g->watch_count, sizeof *g->watches);
    if (!g->watches) {
        error_setf(err, "NCCL backend: out of host memory");
        return -1;
    }
    for (int i = 0; i < g->bucket_count; i++)
        g->watches[i].done = g->buckets[i].done;
    if (cudaEventCreateWithFlags(&g->watches[g->bucket_count].done, cudaEventDisableTiming) != cudaSuccess) {
        error_setf(err, "NCCL backend: cannot create CUDA events");
        return -1;
    }
    if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
        error_setf(err, "NCCL backend: cannot start the watchdog thread");
        return -1;
    }
    g->watchdog_running = true;
    return create_comm(g, cfg, err);
}

void nccl_grads_describe(const struct nccl_grads *g, char *out, size_t size)
{
    int version = 0;
    ncclGetVersion(&version);
    size_t used = (size_t)snprintf(out, size, "NCCL %d.%d.%d, %d rank%s, %s all-reduce in %d bucket%s:", version / 10000,
                                   version / 100 % 100, version % 100, g->world, g->world > 1 ? "s" : "",
                                   g->bf16_buffer ? "bf16" : "fp32", g->bucket_count, g->bucket_count > 1 ? "s" : "");
    for (int i = 0; i < g->bucket_count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s %s (%.1f MiB)", i ? ";" : "", g->buckets[i].what,
                                 g->buckets[i].elements * 4.0 / 1048576.0);
}

void nccl_grads_destroy(struct nccl_grads *g)
{
    if (g->watchdog_running) {
        pthread_mutex_lock(&g->lock);
        g->stopping = true;
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->watchdog, NULL);
    }
    if (g->comm_stream)
        cudaStreamSynchronize(g->comm_stream);
    if (g->comm)
        ncclCommDestroy(g->comm);
    for (int i = 0; i < g->bucket_count; i++) {
        cudaEventDestroy(g->buckets[i].ready);
        cudaEventDestroy(g->buckets[i].done);
    }
    for (int i = 0; g->buckets && i < g->n_layer + 2; i++) { /* the last may be half built */
        free(g->buckets[i].offsets);
        free(g->buckets[i].counts);
    }
    if (g->watches && g->watches[g->bucket_count].done)
        cudaEventDestroy(g->watches[g->bucket_count].done);
    free(g->watches);
    free(g->buckets);
    free(g->bucket_of_position);
    cudaFree(g->bf16_buffer);
    if (g->backward_done)
        cudaEventDestroy(g->backward_done);
    if (g->scalars_done)
        cudaEventDestroy(g->scalars_done);
    if (g->comm_stream)
        cudaStreamDestroy(g->comm_stream);
    pthread_mutex_destroy(&g->lock);
    memset(g, 0, sizeof *g);
}
