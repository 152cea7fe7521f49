#include "bench_rank.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "allreduce_sweep.h"
#include "baselines.h"
#include "clock.h"
#include "contract.h"
#include "cpu_bench.h"
#include "fs.h"
#include "gpu_bench.h"
#include "gpu_inventory.h"
#include "host_backend.h"
#include "json_file.h"
#include "judge.h"
#include "parse_int.h"
#include "report.h"
#include "strbuf.h"
#include "train_bench.h"
#include "trainer_gpu.h"

#define RANK_TIMEOUT_S 900.0 /* joining the ring, and rank 0's wait for everyone's results */
/* Sizes when the options give none: enough to fill the device. */
#define CPU_GEMM_SIZE 1024
#define GPU_GEMM_SIZE 8192
#define CPU_MEMBW_MIB 256
#define GPU_MEMBW_MIB 1024
#define CPU_ALLREDUCE_MAX (64 << 20)
#define GPU_ALLREDUCE_MAX (1 << 30) /* NVLink's busbw plateaus only past a few hundred MiB */

struct rank_identity_bench {
    int rank, world, local_rank;
    const char *host, *instance_type;
};

/* CPUs this rank computes with: OpenBLAS gets every CPU the rank is bound
 * to, unless OPENBLAS_NUM_THREADS says otherwise. */
static int compute_threads(void)
{
    if (getenv("OPENBLAS_NUM_THREADS"))
        return openblas_get_num_threads();
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    openblas_set_num_threads(n > 0 ? n : 1);
    return n > 0 ? n : 1;
}

static void add_train(json_t *job, const struct train_bench_result *tr)
{
    json_object_set_new(job, "train", json_pack("{s:s, s:i, s:i, s:I, s:f, s:f, s:f}", "preset", tr->preset, "batch",
                                                tr->batch, "seq_len", tr->seq_len, "params", (json_int_t)tr->params,
                                                "step_ms", tr->step_ms, "tokens_per_sec", tr->tokens_per_s, "mfu",
                                                tr->mfu));
}

/* The sweep on `s` up to max_bytes into job.allreduce. */
static int run_sweep(const struct sweep_backend *s, struct host_backend *b, const struct bench_options *o,
                     size_t max_bytes, const char *security, json_t *job, struct sr_error *err)
{
    struct allreduce_row *rows = NULL;
    size_t n = 0;
    if ((size_t)o->allreduce_min > max_bytes) {
        error_setf(err, "--allreduce-min-bytes %d is over this device's largest size, %zu bytes", o->allreduce_min,
                   max_bytes);
        return -1;
    }
    if (bench_allreduce_sweep(s, b, (size_t)o->allreduce_min, max_bytes, o->repeats, &rows, &n, err) != 0)
        return -1;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct allreduce_mode_result *m[2] = {&rows[i].out_of_place, &rows[i].in_place};
        json_t *modes[2];
        for (int k = 0; k < 2; k++)
            modes[k] = json_pack("{s:f, s:f, s:f, s:I}", "time_us", m[k]->time_us, "algbw_gbs", m[k]->algbw / 1e9,
                                 "busbw_gbs", m[k]->busbw / 1e9, "wrong", (json_int_t)m[k]->wrong);
        json_array_append_new(list, json_pack("{s:I, s:I, s:o, s:o}", "bytes", (json_int_t)rows[i].bytes, "count",
                                              (json_int_t)rows[i].count, "out_of_place", modes[0], "in_place",
                                              modes[1]));
    }
    json_object_set_new(job, "allreduce", json_pack("{s:s, s:i, s:s, s:o}", "backend", s->name, "ranks", s->size,
                                                    "security", security, "rows", list));
    free(rows);
    return 0;
}

/* A CPU rank: OpenBLAS, memcpy, the CPU trainer, the host ring. */
static int measure_cpu(struct host_backend *b, const struct bench_options *o, const struct bench_timing *t,
                       json_t *metrics, json_t *job, struct sr_error *err)
{
    struct bench_stats run;
    double gemm_flops = 0, bw;
    int gemm_size = o->gemm_size ? o->gemm_size : CPU_GEMM_SIZE;
    size_t membw_bytes = (size_t)(o->membw_mib ? o->membw_mib : CPU_MEMBW_MIB) << 20;
    if (o->gemm && cpu_bench_gemm(gemm_size, t, &run, &gemm_flops, err) != 0)
        return -1;
    if (o->gemm)
        json_object_set_new(metrics, "gemm_fp32_tflops", json_real(gemm_flops / 1e12));
    if (o->membw && cpu_bench_membw(membw_bytes, t, &run, &bw, err) != 0)
        return -1;
    if (o->membw)
        json_object_set_new(metrics, "membw_copy_gbs", json_real(bw / 1e9));
    struct train_bench_result tr;
    if (o->train) {
        if (bench_train(b, o->train_preset, o->train_batch, t, gemm_flops, &tr, err) != 0)
            return -1;
        json_object_set_new(metrics, "train_compute_tokens_per_s", json_real(tr.compute_tokens_per_s));
        add_train(job, &tr);
    }
    struct sweep_backend s;
    if (!o->allreduce)
        return 0;
    size_t max_bytes = (size_t)(o->allreduce_max ? o->allreduce_max : CPU_ALLREDUCE_MAX);
    if (host_sweep_open(b, max_bytes, &s, err) != 0)
        return -1;
    int rc = run_sweep(&s, b, o, max_bytes, b->security, job, err);
    host_sweep_close(&s);
    return rc;
}

/* A GPU rank: cuBLASLt, device and host copies, the CUDA trainer, NCCL. */
static int measure_gpu(struct host_backend *b, const struct bench_options *o, const struct bench_timing *t,
                       const char *bus_id, json_t *me, json_t *metrics, json_t *job, struct sr_error *err)
{
    struct gpu_bench g;
    if (gpu_bench_open(&g, bus_id, err) != 0)
        return -1;
    json_object_set_new(me, "gpu", json_pack("{s:s, s:s}", "name", g.name, "bus_id", g.bus_id));
    int gemm_size = o->gemm_size ? o->gemm_size : GPU_GEMM_SIZE;
    static const char *const types[] = {"bf16", "fp16", "tf32"};
    double bf16_flops = 0;
    for (size_t i = 0; o->gemm && i < sizeof types / sizeof *types; i++) {
        double flops;
        char key[32];
        if (gpu_bench_gemm(&g, types[i], gemm_size, t, &flops, err) != 0)
            return -1;
        snprintf(key, sizeof key, "gemm_%s_tflops", types[i]);
        json_object_set_new(metrics, key, json_real(flops / 1e12));
        if (i == 0)
            bf16_flops = flops;
    }
    if (o->membw) {
        json_t *placement = json_object();
        json_object_set_new(me, "host_memory", placement);
        if (gpu_bench_membw(&g, (size_t)(o->membw_mib ? o->membw_mib : GPU_MEMBW_MIB) << 20, t, metrics, placement,
                            err) != 0)
            return -1;
    }
    struct train_bench_result tr;
    if (o->train) {
        if (bench_train_gpu(b, o->train_preset, o->train_batch, t, bus_id, bf16_flops, &tr, err) != 0)
            return -1;
        json_object_set_new(metrics, "train_compute_tokens_per_s", json_real(tr.compute_tokens_per_s));
        add_train(job, &tr);
    }
    if (!o->allreduce)
        return 0;
    double timeout_s;
    struct sweep_backend s;
    size_t max_bytes = (size_t)(o->allreduce_max ? o->allreduce_max : GPU_ALLREDUCE_MAX);
    if (collective_timeout(&timeout_s, err) != 0 || gpu_sweep_open(&g, b, max_bytes, timeout_s, &s, err) != 0)
        return -1;
    char security[256];
    const char *plugin = getenv("NCCL_NET_PLUGIN");
    snprintf(security, sizeof security, "%s; between hosts %s%s", gpu_sweep_describe(&s),
             plugin ? "TLS through the NCCL net plugin " : "NCCL's own transports, unencrypted", plugin ? plugin : "");
    int rc = run_sweep(&s, b, o, max_bytes, security, job, err);
    gpu_sweep_close(&s);
    return rc;
}

/* GPU and CPU ranks use different collectives (NCCL, the host ring), so a
 * job must be all one or the other; checked together, before any waits. */
static int agree_on_device(struct host_backend *b, bool gpu, struct sr_error *err)
{
    float gpu_ranks = gpu ? 1.0f : 0.0f;
    if (host_backend_allreduce(b, &gpu_ranks, 1, RING_F32, err) != 0)
        return -1;
    if (gpu_ranks > 0 && gpu_ranks < b->size) {
        error_setf(err, "%.0f of the job's %d ranks drive GPUs and the rest CPUs: bench and validate need every host "
                        "alike",
                   gpu_ranks, b->size);
        return -1;
    }
    return 0;
}

/* This rank's measurements; rank 0 also gets the job's (sweep, training). */
static json_t *measure_rank(struct host_backend *b, const struct bench_options *o,
                            const struct rank_identity_bench *id, json_t *job, struct sr_error *err)
{
    struct bench_timing t = {o->warmup, o->repeats, 1.0};
    if (bench_throttle_from_env(&t.throttle, err) != 0)
        return NULL;
    const char *gpu = getenv(GPU_ENV);
    bool on_gpu = gpu && *gpu;
    json_t *metrics = json_object(), *me = json_pack("{s:i, s:s, s:i, s:s, s:s, s:i, s:o}", "rank", id->rank, "host",
                                                     id->host, "local_rank", id->local_rank, "instance_type",
                                                     id->instance_type, "device", on_gpu ? "gpu" : "cpu", "cpus",
                                                     compute_threads(), "metrics", metrics);
    int rc = agree_on_device(b, on_gpu, err);
    if (rc == 0)
        rc = on_gpu ? measure_gpu(b, o, &t, gpu, me, metrics, job, err) : measure_cpu(b, o, &t, metrics, job, err);
    if (rc != 0) {
        json_decref(me);
        return NULL;
    }
    return me;
}

static const char *bench_mode(const struct bench_options *o)
{
    return o->preflight ? "preflight" : o->validate ? "validate" : "bench";
}

/* Everyone's results, in rank order, from the rendezvous. */
static json_t *gather(struct rdzv_client *cl, int world, struct sr_error *err)
{
    json_t *ranks = json_array();
    double deadline = clock_now() + RANK_TIMEOUT_S;
    for (int r = 0; r < world; r++) {
        char key[64], *text = NULL;
        snprintf(key, sizeof key, "bench/%d", r);
        json_t *one = NULL;
        if (rdzv_get(cl, key, &text, deadline, err) != 0 ||
            !(one = json_text_parse(text, strlen(text), key, err))) {
            free(text);
            json_decref(ranks);
            return NULL;
        }
        free(text);
        json_array_append_new(ranks, one);
    }
    return ranks;
}

/* Tables to stdout and to the .txt; JSON; the picture; metric lines. */
static int write_report(const struct bench_options *o, const json_t *results, const json_t *verdict,
                        struct sr_error *err)
{
    const char *mode = bench_mode(o);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) {
        error_setf(err, "report: cannot render: out of memory");
        return -1;
    }
    report_print(mem, results, verdict);
    fclose(mem);
    fputs(text, stdout);
    fflush(stdout);
    json_t *doc = json_pack("{s:O, s:O*}", "results", results, "verdict", verdict);
    char path[FS_PATH_BYTES];
    int rc = report_emit_metrics(results, err);
    const char *dirs[2] = {"output/data", "model/validation"};
    for (int d = 0; rc == 0 && d < (o->validate && !o->preflight ? 2 : 1); d++) {
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.json", o->ml_root, dirs[d], mode);
        rc = json_file_write(path, doc, err);
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.txt", o->ml_root, dirs[d], mode);
        if (rc == 0)
            rc = fs_write_text(path, text, err);
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.svg", o->ml_root, dirs[d], mode);
        if (rc == 0)
            rc = report_write_svg(path, results, verdict, err);
    }
    if (rc == 0 && o->json_path)
        rc = json_file_write(o->json_path, doc, err);
    json_decref(doc);
    free(text);
    return rc;
}

#define SUMMARY_FAILURES 16 /* the failures a preflight's shared verdict lists; the report has all */

/* What every host of a preflight needs of the verdict: whether it passed,
 * the failures, each host's figures; small enough for the rendezvous. */
static json_t *verdict_summary(const json_t *verdict)
{
    json_t *failures = json_array(), *hosts = json_array(), *job = json_object(), *f, *h, *check;
    size_t i, total = json_array_size(json_object_get(verdict, "failures"));
    json_array_foreach(json_object_get(verdict, "failures"), i, f)
        if (i < SUMMARY_FAILURES)
            json_array_append(failures, f);
    if (total > SUMMARY_FAILURES)
        json_array_append_new(failures, json_sprintf("and %zu more (see the report)", total - SUMMARY_FAILURES));
    json_array_foreach(json_object_get(json_object_get(verdict, "job"), "checks"), i, check)
        json_object_set(job, json_string_value(json_object_get(check, "metric")), json_object_get(check, "value"));
    json_array_foreach(json_object_get(verdict, "hosts"), i, h) {
        json_t *figures = json_object();
        size_t k;
        json_array_foreach(json_object_get(h, "checks"), k, check)
            json_object_set(figures, json_string_value(json_object_get(check, "metric")),
                            json_object_get(check, "value"));
        json_array_append_new(hosts, json_pack("{s:O, s:O, s:o}", "host", json_object_get(h, "host"), "passed",
                                               json_object_get(h, "passed"), "metrics", figures));
    }
    return json_pack("{s:O, s:o, s:o, s:o}", "passed", json_object_get(verdict, "passed"), "failures", failures,
                     "hosts", hosts, "job", job);
}

/* A preflight: rank 0 publishes the verdict's summary; each host's local
 * rank 0 writes it to its own <ML root>/output/data/sagerun-preflight-
 * verdict.json, which that host's launcher reads. */
static int share_verdict(struct rdzv_client *cl, const struct bench_options *o, int rank, int local_rank,
                         const json_t *summary, struct sr_error *err)
{
    double deadline = clock_now() + RANK_TIMEOUT_S;
    int rc = 0;
    if (rank == 0) {
        char *text = json_dumps(summary, JSON_COMPACT);
        rc = rdzv_set(cl, "bench/verdict", text, deadline, err);
        free(text);
    }
    if (rc != 0 || local_rank != 0)
        return rc;
    char *text = NULL, path[FS_PATH_BYTES];
    json_t *doc = NULL;
    if (rdzv_get(cl, "bench/verdict", &text, deadline, err) != 0 ||
        !(doc = json_text_parse(text, strlen(text), "bench/verdict", err)))
        rc = -1;
    snprintf(path, sizeof path, "%s/output/data/sagerun-preflight-verdict.json", o->ml_root);
    if (rc == 0)
        rc = json_file_write(path, doc, err);
    json_decref(doc);
    free(text);
    return rc;
}

/* Rank 0: the whole job's results, judged when validating, reported. */
static int conclude(struct rdzv_client *cl, const struct bench_options *o, const struct host_backend *b,
                    const struct contract *c, json_t *job, json_t **summary, struct sr_error *err)
{
    json_t *ranks = gather(cl, b->size, err);
    if (!ranks)
        return -1;
    json_t *results = json_pack("{s:s, s:i, s:i, s:o}", "mode", bench_mode(o), "hosts",
                                (int)c->resources.host_count, "world_size", b->size, "ranks", ranks);
    json_object_update(results, job);
    json_t *verdict = NULL, *baselines = NULL;
    int rc = 0;
    if (o->validate) {
        if (!(baselines = baselines_load(o->baselines, err)))
            rc = -1;
        else
            verdict = judge_results(results, baselines, o->straggler_ratio);
    }
    if (rc == 0)
        rc = write_report(o, results, verdict, err);
    if (rc == 0 && verdict)
        *summary = verdict_summary(verdict);
    json_decref(verdict);
    json_decref(baselines);
    json_decref(results);
    return rc;
}

int bench_rank_run(const struct bench_options *o, struct sr_error *err)
{
    struct rank_identity_bench id;
    struct contract c;
    if (require_int_env("bench", "RANK", 0, 1 << 20, &id.rank, err) != 0 ||
        require_int_env("bench", "LOCAL_RANK", 0, 1 << 20, &id.local_rank, err) != 0 ||
        contract_load(&c, o->ml_root, err) != 0)
        return -1;
    id.host = c.resources.current_host;
    id.instance_type = c.resources.current_instance_type;
    struct host_backend b;
    if (host_backend_open(&b, RANK_TIMEOUT_S, err) != 0) {
        contract_free(&c);
        return -1;
    }
    json_t *job = json_object();
    json_t *mine = measure_rank(&b, o, &id, job, err);
    struct rdzv_client cl;
    int rc = mine ? host_backend_rendezvous(&b, &cl, clock_now() + RANK_TIMEOUT_S, err) : -1;
    if (rc == 0) {
        char key[64], *text = json_dumps(mine, JSON_COMPACT);
        snprintf(key, sizeof key, "bench/%d", id.rank);
        rc = rdzv_set(&cl, key, text, clock_now() + RANK_TIMEOUT_S, err);
        free(text);
        json_t *summary = NULL;
        if (rc == 0 && id.rank == 0)
            rc = conclude(&cl, o, &b, &c, job, &summary, err);
        if (rc == 0 && o->preflight)
            rc = share_verdict(&cl, o, id.rank, id.local_rank, summary, err);
        json_decref(summary);
        rdzv_client_close(&cl);
    }
    json_decref(mine);
    json_decref(job);
    host_backend_close(&b);
    contract_free(&c);
    return rc;
}
