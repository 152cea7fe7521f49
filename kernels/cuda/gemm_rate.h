/* gemm_rate.h — how fast this GPU multiplies matrices, through cuBLASLt:
 * the denominator of the trainer's MFU and `sagerun bench gemm` on GPUs.
 *
 * A size x size x size product on random data (never zeros: tensor cores
 * run measurably faster on zeros), `warmup` untimed runs, then `repeats`
 * timed with CUDA events; the result is the median's FLOP/s (2 size^3 per
 * product). Types: "bf16" and "fp16" (fp32 accumulation), "tf32" (fp32
 * data through TF32 tensor cores). Runs on the current device. */
#ifndef SAGERUN_CUDA_GEMM_RATE_H
#define SAGERUN_CUDA_GEMM_RATE_H


#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"

int cuda_gemm_rate(const char *type, int size, int warmup, int repeats, double *flops_per_s, struct sr_error *err);

/* The same runs' times: run_s[repeats], seconds per product. */
int cuda_gemm_times(const char *type, int size, int warmup, int repeats, double *run_s, struct sr_error *err);

#ifdef __cplusplus
}
#endif

#endif
