/* Token + position embedding on the GPU (twin of encoder.c). */
#include <stdlib.h>
#include <string.h>

#include "ops_cuda.cuh"

__global__ void encoder_forward_kernel(bf16 *out, const int *tokens, const bf16 *wte, const bf16 *wpe, int T, int C,
                                       size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    size_t row = i / C;
    int c = (int)(i % C), t = (int)(row % T);
    out[i] = to_bf16(f32(wte[(size_t)tokens[row] * C + c]) + f32(wpe[(size_t)t * C + c]));
}

int encoder_forward_cuda(bf16 *out, const int *tokens, const bf16 *wte, const bf16 *wpe, int B, int T, int C,
                         cudaStream_t s, struct sr_error *err)
{
    size_t n = (size_t)B * T * C;
    launch_kernel(encoder_forward_kernel, blocks_for(n, 256), 256, 0, s, out, tokens, wte, wpe, T, C, n);
    return cuda_launched("encoder_forward", err);
}

void token_runs_plan(const int *tokens, int N, int V, int *order, int *run_start, int *run_token, int *runs)
{
    /* Counting sort by token, stable in position: the order of the sums is
     * then a function of the batch alone. */
    int *count = (int *)calloc((size_t)V + 1, sizeof(int));
    for (int i = 0; i < N; i++)
        count[tokens[i] + 1]++;
    for (int v = 0; v < V; v++)
        count[v + 1] += count[v];
    *runs = 0;
    for (int v = 0; v < V; v++)
        if (count[v + 1] > count[v]) {
            run_start[*runs] = count[v];
            run_token[*runs] = v;
            (*runs)++;
        }
    run_start[*runs] = N;
    for (int i = 0; i < N; i++)
        order[count[tokens[i]]++] = i;
    free(count);
}

/* Block per run of positions with the same token, threads over channels. */
__global__ void encoder_backward_wte_kernel(float *dwte, const float *dout, const int *order, const int *run_start,
                                            const int *run_token, int first_run, int C)
{
    int run = first_run + (int)blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float sum = 0.0f;
    for (int i = run_start[run]; i < run_start[run + 1]; i++)
        sum += dout[(size_t)order[i] * C + c];
    dwte[(size_t)run_token[run] * C + c] += sum;
}

/* Thread per (t, c): the sum over the batch, in batch order. */
__global__ void encoder_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float sum = 0.0f;
    for (int b = 0; b < B; b++)
        sum += dout[(size_t)b * T * C + i];
    dwpe[i] += sum;
}

int encoder_backward_cuda(float *dwte, float *dwpe, const float *dout, const int *order, const int *run_start,
                          const int *run_token, int runs, int B, int T, int C, cudaStream_t s, struct sr_error *err)
{
    enum { MAX_GRID_Y = 65535 };
    for (int first = 0; first < runs; first += MAX_GRID_Y) {
        int count = runs - first < MAX_GRID_Y ? runs - first : MAX_GRID_Y;
        dim3 grid(blocks_for((size_t)C, 128), (unsigned)count);
        launch_kernel(encoder_backward_wte_kernel, grid, 128, 0, s, dwte, dout, order, run_start, run_token, first, C);
        if (cuda_launched("encoder_backward_wte", err) != 0)
            return -1;
    }
    launch_kernel(encoder_backward_wpe_kernel, blocks_for((size_t)T * C, 256), 256, 0, s, dwpe, dout, B, T, C);
    return cuda_launched("encoder_backward_wpe", err);
}
