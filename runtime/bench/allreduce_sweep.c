#include "allreduce_sweep.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "strbuf.h"
#include "transport.h"

/* ---- the host ring as a backend ---- */

struct host_sweep {
    struct host_backend *b;
    float *send, *recv;
};

static int host_sum(struct host_sweep *h, size_t count, int in_place, struct sr_error *err)
{
    if (!in_place)
        memcpy(h->recv, h->send, count * sizeof(float));
    return host_backend_allreduce(h->b, h->recv, count, RING_F32, err);
}

static int host_time(void *ctx, size_t count, int in_place, int warmup, int repeats, double *run_s,
                     struct sr_error *err)
{
    struct host_sweep *h = ctx;
    for (int i = 0; i < warmup + repeats; i++) {
        double start = clock_now();
        if (host_sum(h, count, in_place, err) != 0)
            return -1;
        if (i >= warmup)
            run_s[i - warmup] = clock_now() - start;
    }
    return 0;
}

static int host_check(void *ctx, const float *mine, float *sum, size_t count, int in_place, struct sr_error *err)
{
    struct host_sweep *h = ctx;
    memcpy(in_place ? h->recv : h->send, mine, count * sizeof(float));
    if (host_sum(h, count, in_place, err) != 0)
        return -1;
    memcpy(sum, h->recv, count * sizeof(float));
    return 0;
}

int host_sweep_open(struct host_backend *b, size_t max_bytes, struct sweep_backend *out, struct sr_error *err)
{
    struct host_sweep *h = xcalloc(1, sizeof *h);
    h->b = b;
    h->send = malloc(max_bytes + sizeof(float));
    h->recv = malloc(max_bytes + sizeof(float));
    if (!h->send || !h->recv) {
        error_setf(err, "bench allreduce: out of memory for two buffers of %zu bytes", max_bytes);
        free(h->send), free(h->recv), free(h);
        return -1;
    }
    bench_fill_random(h->send, max_bytes / sizeof(float), 4);
    memcpy(h->recv, h->send, max_bytes);
    *out = (struct sweep_backend){"host", b->rank, b->size, h, host_time, host_check};
    return 0;
}

void host_sweep_close(struct sweep_backend *s)
{
    struct host_sweep *h = s->ctx;
    if (h)
        free(h->send), free(h->recv), free(h);
    s->ctx = NULL;
}

/* ---- the sweep ---- */

/* Small integers, different on every rank: sums are exact in fp32. */
static float check_value(int rank, size_t i)
{
    return (float)((int)((i * 7 + (size_t)rank * 13) % 5) - 2);
}

/* One checked operation on fresh data; the wrong elements of all ranks. */
static int check_once(const struct sweep_backend *s, struct host_backend *tally, size_t count, int in_place,
                      long *wrong, struct sr_error *err)
{
    float *mine = xcalloc(count ? count : 1, sizeof *mine), *sum = xcalloc(count ? count : 1, sizeof *sum);
    for (size_t i = 0; i < count; i++)
        mine[i] = check_value(s->rank, i);
    int rc = s->check(s->ctx, mine, sum, count, in_place, err);
    float bad = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        float want = 0;
        for (int r = 0; r < s->size; r++)
            want += check_value(r, i);
        bad += sum[i] != want;
    }
    free(mine), free(sum);
    if (rc != 0 || host_backend_allreduce(tally, &bad, 1, RING_F32, err) != 0)
        return -1;
    *wrong = (long)bad;
    return 0;
}

static int measure_mode(const struct sweep_backend *s, struct host_backend *tally, size_t count, int in_place,
                        int repeats, struct allreduce_mode_result *out, struct sr_error *err)
{
    size_t bytes = count * sizeof(float);
    /* Collective: every rank runs the same number of operations, and a
     * throttled host slows all alike, so no throttle here. */
    int runs = bytes <= (1u << 20) ? repeats * 4 : repeats;
    double *run_s = xcalloc((size_t)runs, sizeof *run_s);
    int rc = s->time(s->ctx, count, in_place, 1, runs, run_s, err);
    if (rc == 0) {
        struct bench_stats st;
        bench_stats_of(run_s, runs, &st);
        out->time_us = st.median * 1e6;
        out->algbw = (double)bytes / st.median;
        out->busbw = out->algbw * 2.0 * (s->size - 1) / s->size;
        rc = check_once(s, tally, count, in_place, &out->wrong, err);
    }
    free(run_s);
    return rc;
}

int bench_allreduce_sweep(const struct sweep_backend *s, struct host_backend *tally, size_t min_bytes,
                          size_t max_bytes, int repeats, struct allreduce_row **rows, size_t *row_count,
                          struct sr_error *err)
{
    *rows = NULL;
    *row_count = 0;
    size_t sizes = 1;
    for (size_t bytes = min_bytes; bytes && bytes * 4 <= max_bytes; bytes *= 4)
        sizes++;
    *rows = xcalloc(sizes, sizeof **rows);
    int rc = 0;
    for (size_t bytes = min_bytes; rc == 0 && *row_count < sizes; bytes *= 4) {
        struct allreduce_row *row = &(*rows)[(*row_count)++];
        row->bytes = bytes;
        row->count = bytes / sizeof(float);
        rc = measure_mode(s, tally, row->count, 0, repeats, &row->out_of_place, err);
        if (rc == 0)
            rc = measure_mode(s, tally, row->count, 1, repeats, &row->in_place, err);
    }
    if (rc != 0) {
        free(*rows);
        *rows = NULL;
        *row_count = 0;
    }
    return rc;
}
