/* gpu_bench.h — `sagerun bench` on a rank that drives a GPU (the launcher's
 * SAGERUN_GPU): what each benchmark measures and under which metric name.
 * The measuring is libsagerun-cuda.so's (cuda_bench.h); timings are the
 * GPU's own (CUDA events).
 *
 *   gemm       bf16, fp16 and tf32 size^3 products through cuBLASLt on
 *              random data: gemm_bf16_tflops, gemm_fp16_tflops,
 *              gemm_tf32_tflops.
 *   membw      a device-to-device copy, bytes read + written
 *              (membw_d2d_gbs); host->device and device->host copies of
 *              page-locked memory, bytes moved, from a buffer on the GPU's
 *              own NUMA node (membw_h2d_gbs, membw_d2h_gbs) and one on the
 *              farthest other node (membw_h2d_remote_gbs,
 *              membw_d2h_remote_gbs), with the nodes the pages were found
 *              on (host_memory.h).
 *   allreduce  the sweep (allreduce_sweep.h) over NCCL, the communicator
 *              made from rank 0's id through the rendezvous.
 */
#ifndef SAGERUN_GPU_BENCH_H
#define SAGERUN_GPU_BENCH_H

#include <jansson.h>

#include "allreduce_sweep.h"
#include "cuda_bench.h"
#include "host_backend.h"
#include "measure.h"

struct gpu_bench {
    const struct cuda_bench_api *api;
    char bus_id[32], name[96];
};

/* Loads the GPU library and makes the GPU at bus_id current. */
int gpu_bench_open(struct gpu_bench *g, const char *bus_id, struct sr_error *err);

/* FLOP/s of the median run; `type` as cuda_bench.h's gemm. */
int gpu_bench_gemm(const struct gpu_bench *g, const char *type, int size, const struct bench_timing *t,
                   double *flops, struct sr_error *err);

/* The membw metrics into `metrics` (GB/s); where the host buffers were,
 * into `placement`: {"local_node", "local_pages_on", "remote_node",
 * "remote_pages_on", "note"}. */
int gpu_bench_membw(const struct gpu_bench *g, size_t bytes, const struct bench_timing *t, json_t *metrics,
                    json_t *placement, struct sr_error *err);

/* NCCL as a sweep backend, buffers for max_bytes; timeout_s bounds each
 * collective. All ranks call it together. */
int gpu_sweep_open(const struct gpu_bench *g, const struct host_backend *b, size_t max_bytes, double timeout_s,
                   struct sweep_backend *out, struct sr_error *err);
const char *gpu_sweep_describe(const struct sweep_backend *s);
void gpu_sweep_close(struct sweep_backend *s);

#endif
