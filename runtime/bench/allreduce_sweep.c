#include "allreduce_sweep.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

struct sweep_work {
    struct host_backend *b;
    float *send, *recv;
    size_t count;
    int in_place;
};

static int allreduce_once(void *ctx, struct sr_error *err)
{
    struct sweep_work *w = ctx;
    if (!w->in_place)
        memcpy(w->recv, w->send, w->count * sizeof(float));
    return host_backend_allreduce(w->b, w->recv, w->count, RING_F32, err);
}

/* Small integers, different on every rank: sums are exact in fp32. */
static float check_value(int rank, size_t i)
{
    return (float)((int)((i * 7 + (size_t)rank * 13) % 5) - 2);
}

/* One checked operation on fresh data; the wrong elements of all ranks. */
static int check_once(struct sweep_work *w, long *wrong, struct sr_error *err)
{
    float *data = w->in_place ? w->recv : w->send;
    for (size_t i = 0; i < w->count; i++)
        data[i] = check_value(w->b->rank, i);
    if (allreduce_once(w, err) != 0)
        return -1;
    float bad = 0;
    for (size_t i = 0; i < w->count; i++) {
        float want = 0;
        for (int r = 0; r < w->b->size; r++)
            want += check_value(r, i);
        bad += w->recv[i] != want;
    }
    if (host_backend_allreduce(w->b, &bad, 1, RING_F32, err) != 0)
        return -1;
    *wrong = (long)bad;
    return 0;
}

static int measure_mode(struct sweep_work *w, int repeats, struct allreduce_mode_result *out, struct sr_error *err)
{
    size_t bytes = w->count * sizeof(float);
    bench_fill_random(w->send, w->count, 4);
    memcpy(w->recv, w->send, bytes);
    /* Collective: every rank runs the same number of operations, and a
     * throttled host slows all alike, so no throttle here. */
    struct bench_timing t = {1, bytes <= (1u << 20) ? repeats * 4 : repeats, 1.0};
    struct bench_stats s;
    if (bench_measure(allreduce_once, w, &t, &s, err) != 0)
        return -1;
    out->time_us = s.median * 1e6;
    out->algbw = (double)bytes / s.median;
    out->busbw = out->algbw * 2.0 * (w->b->size - 1) / w->b->size;
    return check_once(w, &out->wrong, err);
}

int bench_allreduce_sweep(struct host_backend *b, size_t min_bytes, size_t max_bytes, int repeats,
                          struct allreduce_row **rows, size_t *row_count, struct sr_error *err)
{
    *rows = NULL;
    *row_count = 0;
    struct sweep_work w = {b, malloc(max_bytes + sizeof(float)), malloc(max_bytes + sizeof(float)), 0, 0};
    if (!w.send || !w.recv) {
        error_setf(err, "bench allreduce: out of memory for two buffers of %zu bytes", max_bytes);
        free(w.send), free(w.recv);
        return -1;
    }
    size_t sizes = 1;
    for (size_t bytes = min_bytes; bytes && bytes * 4 <= max_bytes; bytes *= 4)
        sizes++;
    *rows = xcalloc(sizes, sizeof **rows);
    int rc = 0;
    for (size_t bytes = min_bytes; rc == 0 && *row_count < sizes; bytes *= 4) {
        struct allreduce_row *row = &(*rows)[(*row_count)++];
        row->bytes = bytes;
        row->count = w.count = bytes / sizeof(float);
        w.in_place = 0;
        rc = measure_mode(&w, repeats, &row->out_of_place, err);
        w.in_place = 1;
        if (rc == 0)
            rc = measure_mode(&w, repeats, &row->in_place, err);
    }
    free(w.send), free(w.recv);
    if (rc != 0) {
        free(*rows);
        *rows = NULL;
        *row_count = 0;
    }
    return rc;
}
