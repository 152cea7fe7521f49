/* emu_test_data.hpp — inputs and device copies for the emulated tests
 * (include after cmocka.h and rng.h): normal random values rounded to
 * bf16, so a reference sees exactly what the kernels see, and copies to
 * and from device memory that fail the test when CUDA refuses.
 */
#ifndef SAGERUN_EMU_TEST_DATA_HPP
#define SAGERUN_EMU_TEST_DATA_HPP

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <vector>

inline uint64_t emu_test_next_seed = 1; /* each call draws fresh values */

inline std::vector<float> random_bf16_values(size_t n, float scale)
{
    struct rng r;
    rng_seed(&r, emu_test_next_seed++);
    std::vector<float> x(n);
    for (float &v : x)
        v = __bfloat162float(__float2bfloat16_rn(scale * (float)rng_normal(&r)));
    return x;
}

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float> &x)
{
    std::vector<__nv_bfloat16> y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = __float2bfloat16_rn(x[i]);
    return y;
}

inline std::vector<float> to_float(const std::vector<__nv_bfloat16> &x)
{
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = __bfloat162float(x[i]);
    return y;
}

template <typename T> T *to_device(const std::vector<T> &x)
{
    T *d;
    assert_int_equal(cudaMalloc((void **)&d, x.size() * sizeof(T)), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, x.data(), x.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

template <typename T> std::vector<T> from_device(const T *d, size_t n)
{
    std::vector<T> x(n);
    assert_int_equal(cudaMemcpy(x.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return x;
}

#endif
