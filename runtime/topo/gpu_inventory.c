#include "gpu_inventory.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The few NVML entry points used, declared from NVIDIA's documented ABI
 * (nvml.h is not shipped with the toolkit here). Return 0 means success. */
typedef int nvml_return;
typedef struct nvml_device *nvml_device;
struct nvml_pci_info {
    char bus_id_legacy[16];
    unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
};

struct nvml_api {
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    nvml_return (*count)(unsigned *);
    nvml_return (*handle)(unsigned, nvml_device *);
    nvml_return (*name)(nvml_device, char *, unsigned);
    nvml_return (*pci)(nvml_device, struct nvml_pci_info *);
    const char *(*error_string)(nvml_return);
};

/* POSIX guarantees dlsym's void* converts to a function pointer. */
#define RESOLVE(field, symbol)                                              \
    do {                                                                    \
        void *sym = dlsym(lib, symbol);                                     \
        if (!sym)                                                           \
            return -1;                                                      \
        api->field = (__typeof__(api->field))sym;                           \
    } while (0)

static int resolve(void *lib, struct nvml_api *api)
{
    RESOLVE(init, "nvmlInit_v2");
    RESOLVE(shutdown, "nvmlShutdown");
    RESOLVE(count, "nvmlDeviceGetCount_v2");
    RESOLVE(handle, "nvmlDeviceGetHandleByIndex_v2");
    RESOLVE(name, "nvmlDeviceGetName");
    RESOLVE(pci, "nvmlDeviceGetPciInfo_v3");
    RESOLVE(error_string, "nvmlErrorString");
    return 0;
}
#undef RESOLVE

static void list_devices(const struct nvml_api *api, struct gpu_inventory *inv, const char *library)
{
    unsigned n = 0;
    nvml_return rc = api->count(&n);
    if (rc != 0) {
        snprintf(inv->source, sizeof inv->source, "%s: nvmlDeviceGetCount failed: %s", library,
                 api->error_string(rc));
        return;
    }
    if (n > GPU_INVENTORY_MAX)
        n = GPU_INVENTORY_MAX;
    for (unsigned i = 0; i < n; i++) {
        nvml_device dev;
        struct nvml_pci_info pci;
        struct gpu_info *g = &inv->gpus[i];
        if ((rc = api->handle(i, &dev)) != 0 || (rc = api->name(dev, g->name, sizeof g->name)) != 0 ||
            (rc = api->pci(dev, &pci)) != 0) {
            snprintf(inv->source, sizeof inv->source, "%s: GPU %u: %s", library, i, api->error_string(rc));
            inv->count = 0;
            return;
        }
        snprintf(g->bus_id, sizeof g->bus_id, "%s", pci.bus_id);
        inv->count = (int)i + 1;
    }
    snprintf(inv->source, sizeof inv->source, "NVIDIA driver (%s): %d GPU%s", library, inv->count,
             inv->count == 1 ? "" : "s");
}

void gpu_inventory_probe(struct gpu_inventory *inv, const char *library)
{
    memset(inv, 0, sizeof *inv);
    if (!library)
        library = "libnvidia-ml.so.1";
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(inv->source, sizeof inv->source, "no NVIDIA driver: %s cannot be loaded", library);
        return;
    }
    struct nvml_api api;
    if (resolve(lib, &api) != 0) {
        snprintf(inv->source, sizeof inv->source, "%s lacks the NVML entry points sagerun needs", library);
    } else {
        nvml_return rc = api.init();
        if (rc != 0) {
            snprintf(inv->source, sizeof inv->source, "%s: nvmlInit failed: %s", library, api.error_string(rc));
        } else {
            list_devices(&api, inv, library);
            api.shutdown();
        }
    }
    dlclose(lib);
}
