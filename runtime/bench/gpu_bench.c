#include "gpu_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "host_memory.h"
#include "strbuf.h"
#include "trainer_gpu.h"

#define SWEEP_ID_KEY "nccl/bench_allreduce" /* the trainer's communicator has its own */

int gpu_bench_open(struct gpu_bench *g, const char *bus_id, struct sr_error *err)
{
    memset(g, 0, sizeof *g);
    snprintf(g->bus_id, sizeof g->bus_id, "%s", bus_id);
    if (!(g->api = cuda_bench_load(err)))
        return -1;
    return g->api->use_gpu(bus_id, g->name, sizeof g->name, err);
}

/* Room for the seconds of each timed run. */
static double *run_times(const struct bench_timing *t)
{
    return xcalloc((size_t)t->repeats, sizeof(double));
}

int gpu_bench_gemm(const struct gpu_bench *g, const char *type, int size, const struct bench_timing *t,
                   double *flops, struct sr_error *err)
{
    double *runs = run_times(t);
    int rc = g->api->gemm(type, size, t->warmup, t->repeats, runs, err);
    if (rc == 0) {
        struct bench_stats s;
        bench_stats_of_device(runs, t->repeats, t->throttle, &s);
        *flops = 2.0 * size * (double)size * size / s.median;
    }
    free(runs);
    return rc;
}

/* Bytes/s of copies of `bytes`; `counted` bytes per copy. */
static int copy_rate(const struct gpu_bench *g, enum cuda_copy_kind kind, void *host, size_t bytes, double counted,
                     const struct bench_timing *t, double *rate, struct sr_error *err)
{
    double *runs = run_times(t);
    int rc = g->api->copy(kind, host, bytes, t->warmup, t->repeats, runs, err);
    if (rc == 0) {
        struct bench_stats s;
        bench_stats_of_device(runs, t->repeats, t->throttle, &s);
        *rate = counted / s.median;
    }
    free(runs);
    return rc;
}

/* Host->device and device->host from a buffer wanted on `node`. */
static int host_copies(const struct gpu_bench *g, hwloc_topology_t topo, int node, size_t bytes,
                       const struct bench_timing *t, const char *suffix, json_t *metrics, json_t *placement,
                       struct sr_error *err)
{
    struct host_buffer buf;
    if (host_buffer_alloc(topo, node, bytes, &buf, err) != 0)
        return -1;
    double h2d = 0, d2h = 0;
    int rc = copy_rate(g, CUDA_COPY_H2D, buf.data, bytes, (double)bytes, t, &h2d, err);
    if (rc == 0)
        rc = copy_rate(g, CUDA_COPY_D2H, buf.data, bytes, (double)bytes, t, &d2h, err);
    if (rc == 0) {
        char key[64];
        snprintf(key, sizeof key, "membw_h2d%s_gbs", suffix);
        json_object_set_new(metrics, key, json_real(h2d / 1e9));
        snprintf(key, sizeof key, "membw_d2h%s_gbs", suffix);
        json_object_set_new(metrics, key, json_real(d2h / 1e9));
        snprintf(key, sizeof key, "%s_pages_on", *suffix ? "remote" : "local");
        json_object_set_new(placement, key, json_integer(buf.node));
        if (*buf.note) {
            snprintf(key, sizeof key, "%s_note", *suffix ? "remote" : "local");
            json_object_set_new(placement, key, json_string(buf.note));
        }
    }
    host_buffer_free(topo, &buf);
    return rc;
}

int gpu_bench_membw(const struct gpu_bench *g, size_t bytes, const struct bench_timing *t, json_t *metrics,
                    json_t *placement, struct sr_error *err)
{
    double d2d = 0;
    if (copy_rate(g, CUDA_COPY_D2D, NULL, bytes, 2.0 * (double)bytes, t, &d2d, err) != 0)
        return -1;
    json_object_set_new(metrics, "membw_d2d_gbs", json_real(d2d / 1e9));
    hwloc_topology_t topo;
    if (topology_open(&topo, NULL, err) != 0)
        return -1;
    struct host_memory_nodes nodes;
    host_memory_nodes_for_gpu(topo, g->bus_id, &nodes);
    json_object_set_new(placement, "local_node", json_integer(nodes.local));
    json_object_set_new(placement, "remote_node", json_integer(nodes.remote));
    if (*nodes.note)
        json_object_set_new(placement, "note", json_string(nodes.note));
    int rc = host_copies(g, topo, nodes.local, bytes, t, "", metrics, placement, err);
    if (rc == 0 && nodes.remote >= 0)
        rc = host_copies(g, topo, nodes.remote, bytes, t, "_remote", metrics, placement, err);
    hwloc_topology_destroy(topo);
    return rc;
}

/* ---- NCCL as a sweep backend ---- */

struct gpu_sweep {
    const struct cuda_bench_api *api;
    struct cuda_bench_comm *comm;
};

static int nccl_time(void *ctx, size_t count, int in_place, int warmup, int repeats, double *run_s,
                     struct sr_error *err)
{
    struct gpu_sweep *s = ctx;
    return s->api->comm_time(s->comm, count, in_place, warmup, repeats, run_s, err);
}

static int nccl_check(void *ctx, const float *mine, float *sum, size_t count, int in_place, struct sr_error *err)
{
    struct gpu_sweep *s = ctx;
    return s->api->comm_check(s->comm, mine, sum, count, in_place, err);
}

int gpu_sweep_open(const struct gpu_bench *g, const struct host_backend *b, size_t max_bytes, double timeout_s,
                   struct sweep_backend *out, struct sr_error *err)
{
    unsigned char id[CUDA_ENGINE_ID_BYTES];
    if (nccl_id_share(b, b->rank, SWEEP_ID_KEY, g->api->unique_id, id, err) != 0)
        return -1;
    struct gpu_sweep *s = xcalloc(1, sizeof *s);
    s->api = g->api;
    if (g->api->comm_open(&s->comm, id, b->rank, b->size, max_bytes, timeout_s, err) != 0) {
        free(s);
        return -1;
    }
    *out = (struct sweep_backend){"nccl", b->rank, b->size, s, nccl_time, nccl_check};
    return 0;
}

const char *gpu_sweep_describe(const struct sweep_backend *s)
{
    const struct gpu_sweep *g = s->ctx;
    return g->api->comm_describe(g->comm);
}

void gpu_sweep_close(struct sweep_backend *s)
{
    struct gpu_sweep *g = s->ctx;
    if (g) {
        g->api->comm_close(g->comm);
        free(g);
    }
    s->ctx = NULL;
}
