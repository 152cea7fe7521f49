/* convert.h — fp32 <-> bf16 copies on the GPU, for C callers (the NCCL
 * backend's bf16 all-reduce). dst and src are device pointers; the bf16
 * side is __nv_bfloat16. Enqueued on stream s. */
#ifndef SAGERUN_CUDA_CONVERT_H
#define SAGERUN_CUDA_CONVERT_H

#include <cuda_runtime_api.h>
#include <stddef.h>


#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"

int cuda_f32_to_bf16(void *dst, const float *src, size_t n, cudaStream_t s, struct sr_error *err);
int cuda_bf16_to_f32(float *dst, const void *src, size_t n, cudaStream_t s, struct sr_error *err);

#ifdef __cplusplus
}
#endif

#endif
