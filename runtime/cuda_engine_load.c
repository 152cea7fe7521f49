/* Loading libsagerun-cuda.so (cuda_engine.h). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>

#include "cuda_engine.h"
#include "fs.h"

const struct cuda_engine_api *cuda_engine_load(struct sr_error *err)
{
    char path[PATH_MAX];
    if (fs_find_companion(CUDA_ENGINE_LIBRARY, "SAGERUN_CUDA_ENGINE", "GPU trainer library", path, sizeof path, err) !=
        0)
        return NULL;
    /* Kept loaded for the life of the process: the engine's threads and
     * CUDA's own live in it. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        error_setf(err, "cannot load the GPU trainer library %s: %s", path, dlerror());
        return NULL;
    }
    cuda_engine_entry_fn entry;
    *(void **)&entry = dlsym(lib, CUDA_ENGINE_SYMBOL);
    if (!entry) {
        error_setf(err, "%s has no %s: not a sagerun GPU trainer library", path, CUDA_ENGINE_SYMBOL);
        return NULL;
    }
    const struct cuda_engine_api *api = entry();
    if (!api || api->abi != CUDA_ENGINE_ABI) {
        error_setf(err, "%s speaks engine ABI %d, this sagerun %d: it comes from another build", path,
                   api ? api->abi : -1, CUDA_ENGINE_ABI);
        return NULL;
    }
    return api;
}
