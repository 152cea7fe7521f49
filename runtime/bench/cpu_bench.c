#include "cpu_bench.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

struct gemm_work {
    int n;
    float *a, *b, *c;
};

static int gemm_once(void *ctx, struct sr_error *err)
{
    (void)err;
    struct gemm_work *w = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, w->n, w->n, w->n, 1.0f, w->a, w->n, w->b, w->n, 0.0f,
                w->c, w->n);
    return 0;
}

int cpu_bench_gemm(int n, const struct bench_timing *t, struct bench_stats *run, double *flops,
                   struct sr_error *err)
{
    size_t elems = (size_t)n * (size_t)n;
    struct gemm_work w = {n, malloc(elems * sizeof(float)), malloc(elems * sizeof(float)),
                          malloc(elems * sizeof(float))};
    int rc = -1;
    if (!w.a || !w.b || !w.c) {
        error_setf(err, "bench gemm: out of memory for three %dx%d fp32 matrices", n, n);
    } else {
        bench_fill_random(w.a, elems, 1);
        bench_fill_random(w.b, elems, 2);
        rc = bench_measure(gemm_once, &w, t, run, err);
        if (rc == 0)
            *flops = 2.0 * (double)n * (double)n * (double)n / run->median;
    }
    free(w.a), free(w.b), free(w.c);
    return rc;
}

struct copy_work {
    size_t bytes;
    unsigned char *src, *dst;
};

static int copy_once(void *ctx, struct sr_error *err)
{
    (void)err;
    struct copy_work *w = ctx;
    memcpy(w->dst, w->src, w->bytes);
    return 0;
}

int cpu_bench_membw(size_t bytes, const struct bench_timing *t, struct bench_stats *run, double *bytes_per_s,
                    struct sr_error *err)
{
    struct copy_work w = {bytes, malloc(bytes), malloc(bytes)};
    int rc = -1;
    if (!w.src || !w.dst) {
        error_setf(err, "bench membw: out of memory for two buffers of %zu bytes", bytes);
    } else {
        bench_fill_random((float *)w.src, bytes / sizeof(float), 3);
        memset(w.dst, 0xa5, bytes); /* first touch here: pages on this rank's node */
        rc = bench_measure(copy_once, &w, t, run, err);
        if (rc == 0)
            *bytes_per_s = 2.0 * (double)bytes / run->median;
    }
    free(w.src), free(w.dst);
    return rc;
}
