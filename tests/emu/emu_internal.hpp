/* emu_internal.hpp — what the emulator's parts tell each other: the kernel
 * scheduler (emu_device.cpp), the CUDA runtime (emu_runtime.cpp) and the
 * library stand-ins (emu_cublas.cpp, emu_nccl.cpp). Not for the code under
 * test, which sees only CUDA's own API and cuda_emu.hpp.
 */
#ifndef SAGERUN_EMU_INTERNAL_HPP
#define SAGERUN_EMU_INTERNAL_HPP

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace cuda_emu {

/* Work on a stream, run when a synchronisation needs it (emu_runtime.cpp
 * says when): returns false while it cannot finish yet (a collective
 * waiting for its peers), and is then tried again later. */
using stream_work = std::function<bool()>;
void enqueue(cudaStream_t s, std::string what, stream_work work);

/* The error cudaGetLastError returns next (launch errors: not sticky). */
void set_last_error(cudaError_t e);

/* The device memory allocation holding [p, p + bytes), or false. */
bool in_device_memory(const void *p, size_t bytes);
/* After a kernel: every allocation's guard bytes intact, else a fault. */
void check_guards(const char *kernel);

/* The emulated device's dynamic shared memory limit for a kernel (48 KiB
 * unless it opted in), and the architecture's opt-in maximum. */
size_t dynamic_smem_limit(const void *entry);
size_t dynamic_smem_optin_max();

/* A kernel's name, for messages (from the symbol table: tests link with
 * -rdynamic). */
std::string kernel_name(const void *entry);
/* The kernel running now, and where ("kernel K, block (x, y, z), thread t"),
 * or "" outside kernels. */
std::string where();

/* An element of a bf16 or fp32 array, as float (what the library stand-ins
 * compute in), and back, rounded to nearest. */
inline size_t element_bytes(bool fp32)
{
    return fp32 ? 4 : 2;
}

inline float load_element(const void *p, bool fp32, size_t i)
{
    return fp32 ? ((const float *)p)[i] : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

inline void store_element(void *p, bool fp32, size_t i, float v)
{
    if (fp32)
        ((float *)p)[i] = v;
    else
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

/* Runs a grid now, to completion. */
void run_grid(const void *entry, dim3 grid, dim3 block, size_t smem, const std::function<void()> &thread);

} /* namespace cuda_emu */

#endif
