/* Fused (flash) against materialized causal attention on one GPU, side by
 * side on the same inputs: the forward and backward time of each (median of
 * CUDA-event-timed runs), the GPU memory each needs beyond the inputs, and
 * the ratio. GPT-2 124M's heads (12 x 64) by default.
 *
 *   sagerun-attention-bench [--batch B] [--heads NH] [--head-size HS]
 *                           [--seq T]... [--repeats N]
 *
 * One JSON object per sequence length on stdout. A method that cannot get
 * its memory at some length is reported as such (materialized scores grow
 * with T^2), not skipped silently.
 */
#include <algorithm>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "ops_cuda.cuh"

namespace {

struct shape {
    int B, NH, HS, T;
};

/* Fails the run with CUDA's reason; this is a benchmark, not a library. */
#define CHECK(call)                                                                                            \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess) {                                                                               \
            fprintf(stderr, "attention_bench: %s: %s\n", #call, cudaGetErrorString(e_));                       \
            exit(1);                                                                                           \
        }                                                                                                      \
    } while (0)

/* Random bf16 in [-1, 1) from a fixed LCG: both methods see the same inputs. */
__global__ void fill_kernel(bf16 *x, size_t n, unsigned seed)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        unsigned v = (unsigned)(i * 2654435761u) ^ seed;
        v = v * 1664525u + 1013904223u;
        x[i] = to_bf16((float)(v >> 8) / 8388608.0f - 1.0f);
    }
}

bf16 *random_bf16(size_t n, unsigned seed)
{
    bf16 *x;
    CHECK(cudaMalloc((void **)&x, n * sizeof(bf16)));
    fill_kernel<<<blocks_for(n, 256), 256>>>(x, n, seed);
    CHECK(cudaGetLastError());
    return x;
}

/* One method: how to set up, run forward and backward, tear down. */
struct method {
    const char *name;
    int (*setup)(void **state, const shape &s, size_t *bytes, struct sr_error *err);
    int (*forward)(void *state, bf16 *out, const bf16 *qkv, const shape &s, struct sr_error *err);
    int (*backward)(void *state, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const shape &s,
                    struct sr_error *err);
    void (*teardown)(void *state);
};

struct materialized_state {
    struct cuda_blas blas;
    struct attention_workspace ws;
    bf16 *att;
};

int materialized_setup(void **state, const shape &s, size_t *bytes, struct sr_error *err)
{
    materialized_state *m = (materialized_state *)calloc(1, sizeof *m);
    *state = m;
    size_t att = (size_t)s.B * s.NH * s.T * s.T * sizeof(bf16);
    size_t scores = (size_t)s.B * s.NH * s.T * s.T * (sizeof(float) + sizeof(bf16));
    size_t heads = (size_t)s.B * s.T * s.NH * s.HS * sizeof(bf16) * 8;
    *bytes = att + scores + heads;
    if (!m || cuda_blas_create(&m->blas, err) != 0 ||
        attention_workspace_create(&m->ws, s.B, s.T, s.NH * s.HS, s.NH, err) != 0)
        return -1;
    if (cudaMalloc((void **)&m->att, att) != cudaSuccess) {
        error_setf(err, "cannot allocate %.1f MiB of attention probabilities", att / 1048576.0);
        return -1;
    }
    return 0;
}

int materialized_forward(void *state, bf16 *out, const bf16 *qkv, const shape &s, struct sr_error *err)
{
    materialized_state *m = (materialized_state *)state;
    return attention_forward_cuda(&m->blas, out, m->att, qkv, &m->ws, s.B, s.T, s.NH * s.HS, s.NH, 0, err);
}

int materialized_backward(void *state, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *, const shape &s,
                          struct sr_error *err)
{
    materialized_state *m = (materialized_state *)state;
    return attention_backward_cuda(&m->blas, dqkv, dout, qkv, m->att, &m->ws, s.B, s.T, s.NH * s.HS, s.NH, 0, err);
}

void materialized_teardown(void *state)
{
    materialized_state *m = (materialized_state *)state;
    if (!m)
        return;
    cudaFree(m->att);
    attention_workspace_free(&m->ws);
    if (m->blas.lt)
        cuda_blas_destroy(&m->blas);
    free(m);
}

struct flash_state {
    float *lse, *delta;
};

int flash_setup(void **state, const shape &s, size_t *bytes, struct sr_error *err)
{
    flash_state *f = (flash_state *)calloc(1, sizeof *f);
    *state = f;
    size_t rows = (size_t)s.B * s.NH * s.T;
    *bytes = 2 * rows * sizeof(float);
    if (!f || cudaMalloc((void **)&f->lse, rows * sizeof(float)) != cudaSuccess ||
        cudaMalloc((void **)&f->delta, rows * sizeof(float)) != cudaSuccess) {
        error_setf(err, "cannot allocate the row statistics");
        return -1;
    }
    return 0;
}

int flash_forward(void *state, bf16 *out, const bf16 *qkv, const shape &s, struct sr_error *err)
{
    flash_state *f = (flash_state *)state;
    return flash_attention_forward_cuda(out, f->lse, qkv, s.B, s.T, s.NH * s.HS, s.NH, 0, err);
}

int flash_backward(void *state, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const shape &s,
                   struct sr_error *err)
{
    flash_state *f = (flash_state *)state;
    return flash_attention_backward_cuda(dqkv, f->delta, dout, qkv, out, f->lse, s.B, s.T, s.NH * s.HS, s.NH, 0,
                                         err);
}

void flash_teardown(void *state)
{
    flash_state *f = (flash_state *)state;
    if (!f)
        return;
    cudaFree(f->lse);
    cudaFree(f->delta);
    free(f);
}

const method methods[] = {
    {"materialized", materialized_setup, materialized_forward, materialized_backward, materialized_teardown},
    {"flash", flash_setup, flash_forward, flash_backward, flash_teardown},
};

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* Median forward and backward milliseconds of `repeats` runs after two
 * warm-ups; 0 with the reason in err when the method cannot run. */
int time_method(const method &m, const shape &s, int repeats, bf16 *qkv, bf16 *dout, bf16 *out, bf16 *dqkv,
                double *forward_ms, double *backward_ms, size_t *bytes, struct sr_error *err)
{
    void *state = NULL;
    int rc = m.setup(&state, s, bytes, err);
    cudaEvent_t start, mid, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&mid));
    CHECK(cudaEventCreate(&end));
    std::vector<double> fwd, bwd;
    for (int i = 0; rc == 0 && i < repeats + 2; i++) {
        CHECK(cudaEventRecord(start));
        rc = m.forward(state, out, qkv, s, err);
        CHECK(cudaEventRecord(mid));
        if (rc == 0)
            rc = m.backward(state, dqkv, dout, qkv, out, s, err);
        CHECK(cudaEventRecord(end));
        CHECK(cudaEventSynchronize(end));
        float f = 0, b = 0;
        CHECK(cudaEventElapsedTime(&f, start, mid));
        CHECK(cudaEventElapsedTime(&b, mid, end));
        if (i >= 2) {
            fwd.push_back(f);
            bwd.push_back(b);
        }
    }
    m.teardown(state);
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(mid));
    CHECK(cudaEventDestroy(end));
    if (rc != 0)
        return -1;
    *forward_ms = median(fwd);
    *backward_ms = median(bwd);
    return 0;
}

void run_shape(const shape &s, int repeats)
{
    size_t NC = (size_t)s.B * s.T * s.NH * s.HS;
    bf16 *qkv = random_bf16(3 * NC, 1), *dout = random_bf16(NC, 2), *out, *dqkv;
    CHECK(cudaMalloc((void **)&out, NC * sizeof(bf16)));
    CHECK(cudaMalloc((void **)&dqkv, 3 * NC * sizeof(bf16)));
    /* one product over the causal half of the T x T scores: 2 HS flops a
     * score; the forward pass is two such products */
    double flops = 0.5 * s.B * s.NH * (double)s.T * s.T * 2.0 * s.HS;
    printf("{\"batch\": %d, \"heads\": %d, \"head_size\": %d, \"seq\": %d", s.B, s.NH, s.HS, s.T);
    double total[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        double fwd = 0, bwd = 0;
        size_t bytes = 0;
        struct sr_error err = {{0}};
        printf(", \"%s\": ", methods[i].name);
        if (time_method(methods[i], s, repeats, qkv, dout, out, dqkv, &fwd, &bwd, &bytes, &err) != 0) {
            printf("{\"error\": \"%s\"}", err.text);
            (void)cudaGetLastError(); /* the failure just reported must not fail the next method */
            continue;
        }
        total[i] = fwd + bwd;
        printf("{\"forward_ms\": %.3f, \"backward_ms\": %.3f, \"extra_gib\": %.3f, \"forward_tflops\": %.1f}", fwd,
               bwd, bytes / 1073741824.0, 2 * flops / (fwd * 1e9));
    }
    if (total[0] > 0 && total[1] > 0)
        printf(", \"flash_speedup\": %.3f", total[0] / total[1]);
    printf("}\n");
    fflush(stdout);
    CHECK(cudaFree(qkv));
    CHECK(cudaFree(dout));
    CHECK(cudaFree(out));
    CHECK(cudaFree(dqkv));
}

} /* namespace */

int main(int argc, char **argv)
{
    shape s = {8, 12, 64, 0};
    int repeats = 10;
    std::vector<int> seqs;
    static const struct option options[] = {{"batch", required_argument, NULL, 'b'},
                                            {"heads", required_argument, NULL, 'n'},
                                            {"head-size", required_argument, NULL, 'h'},
                                            {"seq", required_argument, NULL, 't'},
                                            {"repeats", required_argument, NULL, 'r'},
                                            {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        int v = c == '?' ? 0 : atoi(optarg);
        if (v < 1) {
            fprintf(stderr, "usage: %s [--batch B] [--heads NH] [--head-size HS] [--seq T]... [--repeats N]\n",
                    argv[0]);
            return 2;
        }
        switch (c) {
        case 'b': s.B = v; break;
        case 'n': s.NH = v; break;
        case 'h': s.HS = v; break;
        case 'r': repeats = v; break;
        default: seqs.push_back(v);
        }
    }
    if (seqs.empty())
        seqs = {1024, 2048, 4096};
    if (!flash_attention_supports(s.HS)) {
        fprintf(stderr, "attention_bench: head size %d has no fused kernel (" FLASH_ATTENTION_HEAD_SIZES ")\n", s.HS);
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "attention_bench: no GPU\n");
        return 1;
    }
    for (int T : seqs) {
        s.T = T;
        run_shape(s, repeats);
    }
    return 0;
}
