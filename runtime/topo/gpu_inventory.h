/* gpu_inventory.h — the GPUs of this host, from the NVIDIA driver.
 *
 * Uses NVML (libnvidia-ml.so.1, part of the driver), loaded with dlopen, so
 * the sagerun binary starts on machines without a driver, and no CUDA context
 * is created in the launcher (ranks are forked later; CUDA state does not
 * survive fork). NVML sees the GPUs the container was given, like
 * `nvidia-smi --list-gpus`, which is what sagemaker-training counts.
 * No driver or no GPU is not an error: count is 0 and `source` says why.
 */
#ifndef SAGERUN_GPU_INVENTORY_H
#define SAGERUN_GPU_INVENTORY_H

#define GPU_INVENTORY_MAX 64

/* A rank's GPU, by PCI bus id (gpu_info.bus_id): the launcher sets it in a
 * GPU rank's environment, the rank programs read it; absent on CPU ranks. */
#define GPU_ENV "SAGERUN_GPU"

struct gpu_info {
    char name[96];
    char bus_id[32]; /* "00000000:10:1C.0", as NVML reports it */
};

struct gpu_inventory {
    int count;
    struct gpu_info gpus[GPU_INVENTORY_MAX];
    char source[256]; /* what was consulted, or why no GPU was found */
};

/* Fills inv from the driver; `library` is the NVML soname to dlopen (NULL
 * for the default, libnvidia-ml.so.1). Never fails. */
void gpu_inventory_probe(struct gpu_inventory *inv, const char *library);

#endif
