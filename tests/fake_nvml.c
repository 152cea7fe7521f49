/* A stand-in for the NVIDIA driver's NVML, for machines without one.
 *
 * It exports the seven entry points gpu_inventory.c resolves and reports the
 * GPUs named in $FAKE_NVML_GPUS ("name@bus_id;name@bus_id"), so CI can check
 * sagerun's dlopen path, ABI use and plan on a CPU-only machine. It proves
 * nothing about the real driver: that check runs on a lent GPU machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pci_info { /* NVML's nvmlPciInfo_t (v3) */
    char bus_id_legacy[16];
    unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
};

static int initialized;

static const char *nth_gpu(unsigned index, size_t *len)
{
    const char *s = getenv("FAKE_NVML_GPUS");
    for (unsigned i = 0; s && *s; i++) {
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (i == index) {
            *len = n;
            return s;
        }
        s = end ? end + 1 : NULL;
    }
    return NULL;
}

int nvmlInit_v2(void)
{
    initialized = 1;
    return getenv("FAKE_NVML_INIT_FAILS") ? 9 /* NVML_ERROR_DRIVER_NOT_LOADED */ : 0;
}

int nvmlShutdown(void)
{
    initialized = 0;
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned *count)
{
    size_t len;
    unsigned n = 0;
    while (nth_gpu(n, &len))
        n++;
    *count = n;
    return initialized ? 0 : 1;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, void **device)
{
    size_t len;
    if (!nth_gpu(index, &len))
        return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *device = (void *)(size_t)(index + 1);
    return 0;
}

int nvmlDeviceGetName(void *device, char *name, unsigned size)
{
    size_t len = 0;
    const char *gpu = nth_gpu((unsigned)(size_t)device - 1, &len);
    const char *at = gpu ? memchr(gpu, '@', len) : NULL;
    if (!at)
        return 2; /* NVML_ERROR_INVALID_ARGUMENT: no such device, or FAKE_NVML_GPUS malformed */
    snprintf(name, size, "%.*s", (int)(at - gpu), gpu);
    return 0;
}

int nvmlDeviceGetPciInfo_v3(void *device, struct pci_info *pci)
{
    size_t len = 0;
    const char *gpu = nth_gpu((unsigned)(size_t)device - 1, &len);
    const char *at = gpu ? memchr(gpu, '@', len) : NULL;
    if (!at)
        return 2;
    memset(pci, 0x5a, sizeof *pci); /* garbage where the real driver fills fields we do not read */
    snprintf(pci->bus_id, sizeof pci->bus_id, "%.*s", (int)(len - (size_t)(at + 1 - gpu)), at + 1);
    return 0;
}

const char *nvmlErrorString(int rc) { return rc == 9 ? "Driver Not Loaded" : "Unknown Error"; }
