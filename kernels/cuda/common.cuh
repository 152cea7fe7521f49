/* common.cuh — what every CUDA kernel file shares: error checks that name
 * the call, launch helpers, and (from device.cuh) the bf16 type and the
 * warp and block reductions.
 *
 * Every launcher in this directory enqueues work on the stream it is given
 * and returns 0, or -1 with a message in `err` naming the kernel or library
 * call and CUDA's reason. A launch error is caught right after the launch
 * (cudaGetLastError); an error while the kernel runs surfaces at the next
 * synchronising call, which the caller checks the same way.
 */
#ifndef SAGERUN_CUDA_COMMON_CUH
#define SAGERUN_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "error.h"
#include "ops.h" /* the CPU twins: shared constants */
}

#include "device.cuh" /* bf16, reductions, conversions */

#define CUDA_TRY(call, err)                                                                             \
    do {                                                                                                \
        cudaError_t status_ = (call);                                                                   \
        if (status_ != cudaSuccess) {                                                                   \
            error_setf((err), "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,                       \
                       cudaGetErrorString(status_));                                                    \
            return -1;                                                                                  \
        }                                                                                               \
    } while (0)

/* kernel<<<grid, block, smem, s>>>(args...), spelled as a call so that a
 * host compiler can build these files too: under nvcc it is that launch;
 * the CPU emulator (tests/emu/cuda_emu.hpp) defines its own. */
#ifdef __CUDACC__
template <typename... Params, typename... Args>
static inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                 Args... args)
{
    kernel<<<grid, block, smem, s>>>(args...);
}
#endif

/* After a launch: the launch's own error, named by kernel. */
static inline int cuda_launched(const char *kernel, struct sr_error *err)
{
    cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
        error_setf(err, "CUDA kernel %s failed to launch: %s", kernel, cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

static inline unsigned blocks_for(size_t n, unsigned threads)
{
    return (unsigned)((n + threads - 1) / threads);
}

#endif
