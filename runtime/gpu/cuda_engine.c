/* The GPU trainer engine (cuda_engine.h): one rank's model, optimizer and
 * NCCL all-reduce, behind the flat table that libsagerun-cuda.so exports. */
#include "cuda_engine.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm_rate.h"
#include "gpt_cuda.h"
#include "nccl_grads.h"

#define PEAK_GEMM_SIZE 8192

struct cuda_engine {
    struct cuda_engine_spec spec;
    int device;
    struct cudaDeviceProp prop;
    cudaStream_t stream;
    struct gpt_cuda *model;
    size_t tokens_per_micro;
    float *mom, *var, *scalars, *norm; /* scalars: loss, stop flag */
    double *partials;
    float *pinned; /* scalars in (2), then loss, stop, norm out (3) */
    struct nccl_grads nccl;
    int has_nccl;
    cudaEvent_t ev_start, ev_backward, ev_comm, ev_end;
    double peak;
    char description[4096];
};

#define TRY_CUDA(call, what)                                                                                   \
    do {                                                                                                       \
        cudaError_t status_ = (call);                                                                          \
        if (status_ != cudaSuccess) {                                                                          \
            error_setf(err, "GPU trainer: %s: %s", (what), cudaGetErrorString(status_));                      \
            return -1;                                                                                         \
        }                                                                                                      \
    } while (0)

static int select_device(struct cuda_engine *e, const char *bus_id, struct sr_error *err)
{
    if (bus_id && *bus_id) {
        cudaError_t r = cudaDeviceGetByPCIBusId(&e->device, bus_id);
        if (r != cudaSuccess) {
            error_setf(err, "GPU trainer: no CUDA device at PCI bus id %s (SAGERUN_GPU): %s", bus_id,
                       cudaGetErrorString(r));
            return -1;
        }
    }
    TRY_CUDA(cudaSetDevice(e->device), "cudaSetDevice");
    TRY_CUDA(cudaGetDeviceProperties(&e->prop, e->device), "cudaGetDeviceProperties");
    return 0;
}

static int allocate_state(struct cuda_engine *e, struct sr_error *err)
{
    size_t n = gpt_cuda_num_params(e->model);
    TRY_CUDA(cudaMalloc((void **)&e->mom, n * sizeof(float)), "allocating AdamW's first moments");
    TRY_CUDA(cudaMalloc((void **)&e->var, n * sizeof(float)), "allocating AdamW's second moments");
    TRY_CUDA(cudaMalloc((void **)&e->scalars, 2 * sizeof(float)), "cudaMalloc");
    TRY_CUDA(cudaMalloc((void **)&e->norm, sizeof(float)), "cudaMalloc");
    TRY_CUDA(cudaMalloc((void **)&e->partials, GPT_CUDA_NORM_PARTIALS * sizeof(double)), "cudaMalloc");
    TRY_CUDA(cudaMallocHost((void **)&e->pinned, 5 * sizeof(float)), "cudaMallocHost");
    cudaEvent_t *events[] = {&e->ev_start, &e->ev_backward, &e->ev_comm, &e->ev_end};
    for (size_t i = 0; i < sizeof events / sizeof *events; i++)
        TRY_CUDA(cudaEventCreate(events[i]), "cudaEventCreate");
    return 0;
}

static void describe(struct cuda_engine *e)
{
    char nccl[2048] = "no NCCL: one rank";
    if (e->has_nccl)
        nccl_grads_describe(&e->nccl, nccl, sizeof nccl);
    snprintf(e->description, sizeof e->description,
             "GPU %d %s (%.0f GiB, sm_%d%d), model on it %.2f GiB, %s attention, %s bf16 peak %.1f TFLOP/s; %s",
             e->device, e->prop.name, e->prop.totalGlobalMem / 1073741824.0, e->prop.major, e->prop.minor,
             (gpt_cuda_device_bytes(e->model) + gpt_cuda_num_params(e->model) * 8.0) / 1073741824.0,
             gpt_cuda_flash_attention(e->model) ? "fused (flash)" : "materialized",
             e->spec.peak_flops > 0 ? "given (SAGERUN_GPU_PEAK_TFLOPS)" : "measured", e->peak / 1e12, nccl);
}

static void engine_destroy(struct cuda_engine *e)
{
    if (!e)
        return;
    if (e->stream)
        cudaStreamSynchronize(e->stream);
    if (e->has_nccl)
        nccl_grads_destroy(&e->nccl);
    gpt_cuda_free(e->model);
    cudaFree(e->mom);
    cudaFree(e->var);
    cudaFree(e->scalars);
    cudaFree(e->norm);
    cudaFree(e->partials);
    cudaFreeHost(e->pinned);
    cudaEvent_t events[] = {e->ev_start, e->ev_backward, e->ev_comm, e->ev_end};
    for (size_t i = 0; i < sizeof events / sizeof *events; i++)
        if (events[i])
            cudaEventDestroy(events[i]);
    if (e->stream)
        cudaStreamDestroy(e->stream);
    free(e);
}

/* The spec's rate, else a measured 8192^3 bf16 product (about a second). */
static int measure_peak(struct cuda_engine *e, struct sr_error *err)
{
    e->peak = e->spec.peak_flops;
    return e->peak > 0 ? 0 : cuda_gemm_rate("bf16", PEAK_GEMM_SIZE, 3, 10, &e->peak, err);
}

static int engine_create(struct cuda_engine **out, const struct cuda_engine_spec *spec, struct sr_error *err)
{
    struct cuda_engine *e = calloc(1, sizeof *e);
    if (!e) {
        error_setf(err, "GPU trainer: out of host memory");
        return -1;
    }
    e->spec = *spec;
    e->spec.gpu_bus_id = NULL; /* the caller's string; only needed here */
    e->tokens_per_micro = (size_t)spec->micro_batch * spec->seq_len;
    int rc = select_device(e, spec->gpu_bus_id, err) == 0 &&
                     cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking) == cudaSuccess &&
                     gpt_cuda_create(&e->model, &spec->model, spec->micro_batch, spec->seq_len, spec->attention,
                                     e->stream, err) == 0 &&
                     allocate_state(e, err) == 0 && measure_peak(e, err) == 0
                 ? 0
                 : -1;
    if (rc == 0 && spec->world > 1) {
        struct nccl_grads_config nc = {spec->rank, spec->world, spec->nccl_id, spec->bucket_bytes,
                                       spec->allreduce_bf16 != 0, spec->collective_timeout_s};
        rc = nccl_grads_init(&e->nccl, &nc, e->model, e->stream, err);
        e->has_nccl = 1; /* even half made: destroy cleans up what exists */
    }
    if (rc != 0) {
        error_setf(err, "GPU trainer: cannot set up device %s", spec->gpu_bus_id ? spec->gpu_bus_id : "0");
        engine_destroy(e);
        return -1;
    }
    describe(e);
    *out = e;
    return 0;
}

static int engine_set_state(struct cuda_engine *e, const float *params, const float *m, const float *v,
                            struct sr_error *err)
{
    size_t bytes = gpt_cuda_num_params(e->model) * sizeof(float);
    if (gpt_cuda_set_params(e->model, params, err) != 0)
        return -1;
    TRY_CUDA(cudaMemcpy(e->mom, m, bytes, cudaMemcpyHostToDevice), "copying AdamW's state to the GPU");
    TRY_CUDA(cudaMemcpy(e->var, v, bytes, cudaMemcpyHostToDevice), "copying AdamW's state to the GPU");
    return 0;
}

static int engine_get_state(struct cuda_engine *e, float *params, float *m, float *v, struct sr_error *err)
{
    size_t bytes = gpt_cuda_num_params(e->model) * sizeof(float);
    if (gpt_cuda_get_params(e->model, params, err) != 0)
        return -1;
    TRY_CUDA(cudaMemcpy(m, e->mom, bytes, cudaMemcpyDeviceToHost), "copying AdamW's state from the GPU");
    TRY_CUDA(cudaMemcpy(v, e->var, bytes, cudaMemcpyDeviceToHost), "copying AdamW's state from the GPU");
    return 0;
}

static double elapsed_s(cudaEvent_t from, cudaEvent_t to)
{
    float ms = 0.0f;
    return cudaEventElapsedTime(&ms, from, to) == cudaSuccess ? ms / 1e3 : 0.0;
}

static int forward_backward(struct cuda_engine *e, const int *inputs, const int *targets, int accum, float dloss,
                            struct sr_error *err)
{
    for (int k = 0; k < accum; k++) {
        const int *in = inputs + (size_t)k * e->tokens_per_micro, *tg = targets + (size_t)k * e->tokens_per_micro;
        /* Only the last micro-batch's backward all-reduces, as it goes. */
        int overlap = e->has_nccl && k == accum - 1;
        if (gpt_cuda_forward(e->model, in, tg, dloss, e->scalars, dloss, err) != 0 ||
            gpt_cuda_backward(e->model, overlap ? nccl_grads_ready : NULL, overlap ? &e->nccl : NULL, err) != 0)
            return -1;
    }
    return 0;
}

static int engine_step(struct cuda_engine *e, const int *inputs, const int *targets, int accum, float dloss, int stop,
                       const struct cuda_step_hparams *h, struct cuda_step_result *out, struct sr_error *err)
{
    size_t n = gpt_cuda_num_params(e->model);
    e->pinned[0] = 0.0f;
    e->pinned[1] = stop ? 1.0f : 0.0f;
    TRY_CUDA(cudaEventRecord(e->ev_start, e->stream), "cudaEventRecord");
    TRY_CUDA(cudaMemsetAsync(gpt_cuda_grads(e->model), 0, n * sizeof(float), e->stream), "clearing the gradients");
    TRY_CUDA(cudaMemcpyAsync(e->scalars, e->pinned, 2 * sizeof(float), cudaMemcpyHostToDevice, e->stream),
             "cudaMemcpyAsync");
    if (forward_backward(e, inputs, targets, accum, dloss, err) != 0)
        return -1;
    TRY_CUDA(cudaEventRecord(e->ev_backward, e->stream), "cudaEventRecord");
    if (e->has_nccl && nccl_grads_finish(&e->nccl, e->scalars, 2, err) != 0)
        return -1;
    TRY_CUDA(cudaEventRecord(e->ev_comm, e->stream), "cudaEventRecord");
    struct gpt_cuda_adamw_hparams a = {h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, h->grad_clip, h->t};
    if (gpt_cuda_adamw(e->model, e->mom, e->var, e->norm, e->partials, &a, err) != 0)
        return -1;
    TRY_CUDA(cudaMemcpyAsync(e->pinned + 2, e->scalars, 2 * sizeof(float), cudaMemcpyDeviceToHost, e->stream),
             "cudaMemcpyAsync");
    TRY_CUDA(cudaMemcpyAsync(e->pinned + 4, e->norm, sizeof(float), cudaMemcpyDeviceToHost, e->stream),
             "cudaMemcpyAsync");
    TRY_CUDA(cudaEventRecord(e->ev_end, e->stream), "cudaEventRecord");
    TRY_CUDA(cudaStreamSynchronize(e->stream), "the training step");
    out->loss = e->pinned[2];
    out->stop = e->pinned[3] > 0.0f;
    out->grad_norm = e->pinned[4];
    out->compute_s = elapsed_s(e->ev_start, e->ev_backward) + elapsed_s(e->ev_comm, e->ev_end);
    out->comm_wait_s = elapsed_s(e->ev_backward, e->ev_comm);
    return 0;
}

static int engine_evaluate(struct cuda_engine *e, const int *inputs, const int *targets, int accum, float weight,
                           float *loss_sum, struct sr_error *err)
{
    TRY_CUDA(cudaMemsetAsync(e->scalars, 0, sizeof(float), e->stream), "cudaMemsetAsync");
    for (int k = 0; k < accum; k++)
        if (gpt_cuda_forward(e->model, inputs + (size_t)k * e->tokens_per_micro,
                             targets + (size_t)k * e->tokens_per_micro, 0.0f, e->scalars, weight, err) != 0)
            return -1;
    TRY_CUDA(cudaMemcpyAsync(e->pinned + 2, e->scalars, sizeof(float), cudaMemcpyDeviceToHost, e->stream),
             "cudaMemcpyAsync");
    TRY_CUDA(cudaStreamSynchronize(e->stream), "the evaluation");
    *loss_sum = e->pinned[2];
    return 0;
}

static double engine_peak_flops(struct cuda_engine *e)
{
    return e->peak;
}

static const char *engine_describe(struct cuda_engine *e)
{
    return e->description;
}

static void engine_abort(struct cuda_engine *e, const char *reason)
{
    if (e->has_nccl)
        nccl_grads_abort(&e->nccl, reason);
    fprintf(stderr, "sagerun-trainer: rank %d: %s\n", e->spec.rank, reason);
    fflush(NULL);
    _exit(1);
}

static const struct cuda_engine_api engine_api = {
    CUDA_ENGINE_ABI, nccl_unique_id,   engine_create,     engine_set_state, engine_get_state, engine_step,
    engine_evaluate, engine_peak_flops, engine_describe, engine_abort,     engine_destroy,
};

__attribute__((visibility("default"))) const struct cuda_engine_api *sagerun_cuda_engine(void)
{
    return &engine_api;
}
