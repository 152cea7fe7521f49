/* Loading libsagerun-cuda.so and its tables (cuda_engine.h, cuda_bench.h). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>

#include "cuda_bench.h"
#include "cuda_engine.h"
#include "fs.h"

/* The table `symbol` returns; every table starts with its ABI version. */
static const void *load_table(const char *symbol, int abi, struct sr_error *err)
{
    char path[FS_PATH_BYTES];
    if (fs_find_companion(CUDA_ENGINE_LIBRARY, "SAGERUN_CUDA_ENGINE", "GPU library", path, sizeof path, err) != 0)
        return NULL;
    /* Kept loaded for the life of the process: the engine's threads and
     * CUDA's own live in it. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        error_setf(err, "cannot load the GPU library %s: %s", path, dlerror());
        return NULL;
    }
    const void *(*entry)(void);
    *(void **)&entry = dlsym(lib, symbol);
    if (!entry) {
        error_setf(err, "%s has no %s: not a sagerun GPU library of this version", path, symbol);
        return NULL;
    }
    const void *table = entry();
    int theirs = table ? *(const int *)table : -1;
    if (theirs != abi) {
        error_setf(err, "%s speaks ABI %d for %s, this sagerun %d: it comes from another build", path, theirs, symbol,
                   abi);
        return NULL;
    }
    return table;
}

const struct cuda_engine_api *cuda_engine_load(struct sr_error *err)
{
    return load_table(CUDA_ENGINE_SYMBOL, CUDA_ENGINE_ABI, err);
}

const struct cuda_bench_api *cuda_bench_load(struct sr_error *err)
{
    return load_table(CUDA_BENCH_SYMBOL, CUDA_BENCH_ABI, err);
}
