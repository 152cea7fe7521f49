#include "trainer_gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "parse_int.h"

#define ID_TIMEOUT_S 900.0 /* ranks start minutes apart when hosts do */
#define ID_KEY "nccl/unique_id"
#define WATCH_POLL_S 0.5 /* how soon the watcher notices it should stop */

static void to_hex(const unsigned char *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

static int from_hex(const char *text, unsigned char *bytes, size_t n)
{
    if (strlen(text) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(text + 2 * i, "%2x", &v) != 1)
            return -1;
        bytes[i] = (unsigned char)v;
    }
    return 0;
}

int nccl_id_share(const struct host_backend *b, int rank, const char *key,
                  int (*make)(unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err),
                  unsigned char id[CUDA_ENGINE_ID_BYTES], struct sr_error *err)
{
    struct rdzv_client cl;
    double deadline = clock_now() + ID_TIMEOUT_S;
    if (host_backend_rendezvous(b, &cl, deadline, err) != 0)
        return -1;
    char hex[2 * CUDA_ENGINE_ID_BYTES + 1], *theirs = NULL;
    int rc;
    if (rank == 0) {
        rc = make(id, err);
        if (rc == 0) {
            to_hex(id, CUDA_ENGINE_ID_BYTES, hex);
            rc = rdzv_set(&cl, key, hex, deadline, err);
        }
    } else {
        rc = rdzv_get(&cl, key, &theirs, deadline, err);
        if (rc == 0 && from_hex(theirs, id, CUDA_ENGINE_ID_BYTES) != 0) {
            error_setf(err, "the rendezvous holds a malformed NCCL id under %s", key);
            rc = -1;
        }
    }
    free(theirs);
    rdzv_client_close(&cl);
    return rc;
}

/* Waits on the rendezvous for an abort; the connection's end (the job is
 * over, or the leader is gone, which the launcher handles) ends the watch. */
static void *watch_rendezvous(void *arg)
{
    struct trainer_gpu *g = arg;
    while (!atomic_load(&g->stop_watching)) {
        struct rdzv_msg m;
        struct sr_error err = {{0}};
        int got = rdzv_next(&g->watch, &m, clock_now() + WATCH_POLL_S, &err);
        if (got < 0)
            return NULL;
        if (got == 0)
            continue;
        if (m.op == RDZV_ABORT) {
            char reason[1024];
            snprintf(reason, sizeof reason, "the rendezvous aborted the job (host %s: %s)",
                     m.host && *m.host ? m.host : "?", m.reason ? m.reason : "no reason given");
            g->api->abort(g->engine, reason); /* does not return */
        }
        rdzv_msg_free(&m);
    }
    return NULL;
}

int collective_timeout(double *out, struct sr_error *err)
{
    int seconds = DEFAULT_COLLECTIVE_TIMEOUT_S;
    if (parse_int_env(COLLECTIVE_TIMEOUT_ENV, 1, 86400 * 7, &seconds, err) < 0)
        return -1;
    *out = seconds;
    return 0;
}

int trainer_gpu_open(struct trainer_gpu *g, const struct trainer_gpu_spec *s, const struct host_backend *backend,
                     struct sr_error *err)
{
    memset(g, 0, sizeof *g);
    atomic_init(&g->stop_watching, false);
    g->rank = s->rank;
    g->api = cuda_engine_load(err);
    if (!g->api)
        return -1;
    struct cuda_engine_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.model = s->cfg->model;
    spec.micro_batch = s->micro_batch;
    spec.seq_len = s->seq_len;
    spec.rank = s->rank;
    spec.world = s->world;
    spec.gpu_bus_id = s->gpu_bus_id;
    spec.bucket_bytes = (size_t)(s->cfg->allreduce_bucket_mb * 1048576.0);
    spec.allreduce_bf16 = s->cfg->allreduce_bf16;
    spec.attention = s->cfg->attention;
    if (collective_timeout(&spec.collective_timeout_s, err) != 0)
        return -1;
    int tflops = 0;
    if (parse_int_env(GPU_PEAK_ENV, 1, 100000, &tflops, err) < 0)
        return -1;
    spec.peak_flops = tflops * 1e12;
    if (s->world > 1 && nccl_id_share(backend, s->rank, ID_KEY, g->api->unique_id, spec.nccl_id, err) != 0)
        return -1;
    if (g->api->create(&g->engine, &spec, err) != 0)
        return -1;
    if (s->world > 1) {
        if (host_backend_rendezvous(backend, &g->watch, clock_now() + ID_TIMEOUT_S, err) != 0)
            return -1;
        if (pthread_create(&g->watcher, NULL, watch_rendezvous, g) != 0) {
            error_setf(err, "trainer: cannot start the rendezvous watcher thread");
            rdzv_client_close(&g->watch);
            return -1;
        }
        g->watching = true;
    }
    return 0;
}

void trainer_gpu_close(struct trainer_gpu *g)
{
    if (g->watching) {
        atomic_store(&g->stop_watching, true);
        pthread_join(g->watcher, NULL);
        rdzv_client_close(&g->watch);
    }
    if (g->engine)
        g->api->destroy(g->engine);
    memset(g, 0, sizeof *g);
}
