/* gpu_present.h — the GPU tests' guard: whether CUDA sees a GPU here; when
 * not, it prints why `what` is skipped (the test then exits 77, which CTest
 * reports as Skipped). */
#ifndef SAGERUN_TEST_GPU_PRESENT_H
#define SAGERUN_TEST_GPU_PRESENT_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdio.h>

static inline bool gpu_present(const char *what)
{
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e == cudaSuccess && devices > 0)
        return true;
    printf("SKIPPED: no CUDA GPU here (%s); %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices", what);
    return false;
}

#endif
