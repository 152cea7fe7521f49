/* sagerun bench [gemm] [membw] [allreduce] [train] [options]
 * sagerun validate [options]
 *
 * Both run sagerun's benchmarks in every rank of the job (one per GPU, one
 * CPU rank per host without GPUs), launched like the built-in trainer:
 * through the rendezvous, bound, supervised. Each rank measures, then puts
 * its results in the rendezvous' key-value store; rank 0 gathers them all,
 * prints the tables and the metric lines, and writes
 * <ML root>/output/data/sagerun-<bench|validate>.{json,txt,svg}.
 * `validate` runs every benchmark, judges each rank and host against the
 * baselines of its instance type and against its peers (judge.h), copies
 * the report to <ML root>/model/validation/ (the job's artifact), and on
 * the leader fails the job, with the failing hosts and ranks in
 * /opt/ml/output/failure, when any check fails.
 *
 * `bench-rank` is the rank program (what the launcher starts in each rank).
 */
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "allreduce_sweep.h"
#include "baselines.h"
#include "commands.h"
#include "cpu.h"
#include "fs.h"
#include "gpu.h"
#include "host_backend.h"
#include "json_file.h"
#include "judge.h"
#include "report.h"
#include "strbuf.h"
#include "train_bench.h"
#include "trainer_gpu.h"
#include "transport.h"

#define RANK_TIMEOUT_S 900.0 /* joining the ring, and rank 0's wait for everyone's results */
/* Sizes when the options give none: enough to fill the device. */
#define CPU_GEMM_SIZE 1024
#define GPU_GEMM_SIZE 8192
#define CPU_MEMBW_MIB 256
#define GPU_MEMBW_MIB 1024
#define CPU_ALLREDUCE_MAX (64 << 20)
#define GPU_ALLREDUCE_MAX (1 << 30) /* NVLink's busbw plateaus only past a few hundred MiB */

struct bench_options {
    bool gemm, membw, allreduce, train; /* which benchmarks */
    bool validate;
    int gemm_size, membw_mib; /* 0: by device (CPU_/GPU_ sizes) */
    int allreduce_min, allreduce_max; /* max 0: by device */
    int repeats, warmup, train_batch;
    const char *train_preset, *baselines, *json_path, *ml_root;
    double straggler_ratio;
};

static const struct option options[] = {
    {"ml-root", required_argument, NULL, 'r'},
    {"nproc-per-host", required_argument, NULL, 'n'},
    {"bind", required_argument, NULL, 'b'},
    {"stop-grace", required_argument, NULL, 'g'},
    {"gemm-size", required_argument, NULL, 'G'},
    {"membw-mib", required_argument, NULL, 'M'},
    {"repeats", required_argument, NULL, 'R'},
    {"warmup", required_argument, NULL, 'W'},
    {"allreduce-min-bytes", required_argument, NULL, 'a'},
    {"allreduce-max-bytes", required_argument, NULL, 'A'},
    {"train-preset", required_argument, NULL, 'P'},
    {"train-batch", required_argument, NULL, 'B'},
    {"straggler-ratio", required_argument, NULL, 'S'},
    {"baselines", required_argument, NULL, 'L'},
    {"json", required_argument, NULL, 'j'},
    {"mode", required_argument, NULL, 'm'},
    {NULL, 0, NULL, 0},
};

static const char usage[] =
    "usage: sagerun bench [gemm] [membw] [allreduce] [train] [options]   (no names: all four)\n"
    "       sagerun validate [options]\n"
    "options: --ml-root DIR --nproc-per-host N --bind POLICY --stop-grace S\n"
    "         --gemm-size N (1024 on CPUs, 8192 on GPUs) --membw-mib N (256 on CPUs, 1024 on GPUs)\n"
    "         --repeats N (10) --warmup N (2)\n"
    "         --allreduce-min-bytes N (8192) --allreduce-max-bytes N (64 MiB on CPUs, 1 GiB on GPUs)\n"
    "         --train-preset tiny|gpt2-124m (tiny) --train-batch N (4)\n"
    "         --straggler-ratio R (0.9) --baselines FILE --json FILE\n";

static void bench_options_init(struct bench_options *o)
{
    *o = (struct bench_options){.repeats = 10, .warmup = 2,
                                .allreduce_min = 8192, .train_batch = 4,
                                .train_preset = "tiny", .straggler_ratio = JUDGE_DEFAULT_STRAGGLER_RATIO};
}

static int parse_ratio(const char *text, double *out, struct sr_error *err)
{
    char *end;
    double v = strtod(text, &end);
    if (*end || end == text || !(v > 0.0 && v <= 1.0)) {
        error_setf(err, "--straggler-ratio: \"%s\" is not a number in (0, 1]", text);
        return -1;
    }
    *out = v;
    return 0;
}

/* One benchmark option; 1 if `opt` was one, -1 on a bad value. */
static int parse_bench_option(struct bench_options *o, int opt, const char *v, struct sr_error *err)
{
    switch (opt) {
    case 'G': return parse_int_option(v, 16, 65536, "--gemm-size", &o->gemm_size, err) ? -1 : 1;
    case 'M': return parse_int_option(v, 1, 65536, "--membw-mib", &o->membw_mib, err) ? -1 : 1;
    case 'R': return parse_int_option(v, 1, 10000, "--repeats", &o->repeats, err) ? -1 : 1;
    case 'W': return parse_int_option(v, 0, 10000, "--warmup", &o->warmup, err) ? -1 : 1;
    case 'a': return parse_int_option(v, 4, 1 << 30, "--allreduce-min-bytes", &o->allreduce_min, err) ? -1 : 1;
    case 'A': return parse_int_option(v, 4, 1 << 30, "--allreduce-max-bytes", &o->allreduce_max, err) ? -1 : 1;
    case 'B': return parse_int_option(v, 1, 4096, "--train-batch", &o->train_batch, err) ? -1 : 1;
    case 'P': o->train_preset = v; return 1;
    case 'S': return parse_ratio(v, &o->straggler_ratio, err) ? -1 : 1;
    case 'L': o->baselines = v; return 1;
    case 'j': o->json_path = v; return 1;
    case 'r': o->ml_root = v; return 1;
    }
    return 0;
}

/* Benchmark names after the options select some; none selects all. */
static int select_benchmarks(struct bench_options *o, int count, char **names, struct sr_error *err)
{
    /* SageMaker may append its `train` argument to a ContainerEntrypoint of
     * ["sagerun", "validate", ...]; for validate it means nothing. */
    if (o->validate && count == 1 && strcmp(names[0], "train") == 0)
        count = 0;
    if (count == 0 || o->validate) {
        if (count > 0) {
            error_setf(err, "validate runs every benchmark; \"%s\" is not an option", names[0]);
            return -1;
        }
        o->gemm = o->membw = o->allreduce = o->train = true;
        return 0;
    }
    for (int i = 0; i < count; i++) {
        bool *which = strcmp(names[i], "gemm") == 0        ? &o->gemm
                      : strcmp(names[i], "membw") == 0     ? &o->membw
                      : strcmp(names[i], "allreduce") == 0 ? &o->allreduce
                      : strcmp(names[i], "train") == 0     ? &o->train
                                                           : NULL;
        if (!which) {
            error_setf(err, "bench: \"%s\" is not a benchmark (gemm, membw, allreduce, train)", names[i]);
            return -1;
        }
        *which = true;
    }
    return 0;
}

static int check_bench_options(const struct bench_options *o, struct sr_error *err)
{
    if (o->allreduce_max && o->allreduce_min > o->allreduce_max) {
        error_setf(err, "--allreduce-min-bytes %d is over --allreduce-max-bytes %d", o->allreduce_min,
                   o->allreduce_max);
        return -1;
    }
    if (o->baselines && access(o->baselines, R_OK) != 0) {
        error_setf(err, "--baselines %s cannot be read", o->baselines);
        return -1;
    }
    return 0;
}

/* ---- the rank program ---- */

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
    if (o->gemm && bench_cpu_gemm(gemm_size, t, &run, &gemm_flops, err) != 0)
        return -1;
    if (o->gemm)
        json_object_set_new(metrics, "gemm_fp32_tflops", json_real(gemm_flops / 1e12));
    if (o->membw && bench_cpu_membw(membw_bytes, t, &run, &bw, err) != 0)
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

/* Everyone's results, in rank order, from the rendezvous. */
static json_t *gather(struct rdzv_client *cl, int world, struct sr_error *err)
{
    json_t *ranks = json_array();
    double deadline = transport_now() + RANK_TIMEOUT_S;
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
    const char *mode = o->validate ? "validate" : "bench";
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
    char path[4300];
    int rc = report_emit_metrics(results, err);
    const char *dirs[2] = {"output/data", "model/validation"};
    for (int d = 0; rc == 0 && d < (o->validate ? 2 : 1); d++) {
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.json", o->ml_root, dirs[d], mode);
        rc = fs_write_json(path, doc, err);
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.txt", o->ml_root, dirs[d], mode);
        if (rc == 0)
            rc = fs_write_text(path, text, err);
        snprintf(path, sizeof path, "%s/%s/sagerun-%s.svg", o->ml_root, dirs[d], mode);
        if (rc == 0)
            rc = report_write_svg(path, results, verdict, err);
    }
    if (rc == 0 && o->json_path)
        rc = fs_write_json(o->json_path, doc, err);
    json_decref(doc);
    free(text);
    return rc;
}

/* Rank 0: the whole job's results, judged when validating, reported. */
static int conclude(struct rdzv_client *cl, const struct bench_options *o, const struct host_backend *b,
                    const struct contract *c, json_t *job, struct sr_error *err)
{
    json_t *ranks = gather(cl, b->size, err);
    if (!ranks)
        return -1;
    json_t *results = json_pack("{s:s, s:i, s:i, s:o}", "mode", o->validate ? "validate" : "bench", "hosts",
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
    json_decref(verdict);
    json_decref(baselines);
    json_decref(results);
    return rc;
}

static int run_rank(const struct bench_options *o, struct sr_error *err)
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
    int rc = mine ? host_backend_rendezvous(&b, &cl, transport_now() + RANK_TIMEOUT_S, err) : -1;
    if (rc == 0) {
        char key[64], *text = json_dumps(mine, JSON_COMPACT);
        snprintf(key, sizeof key, "bench/%d", id.rank);
        rc = rdzv_set(&cl, key, text, transport_now() + RANK_TIMEOUT_S, err);
        free(text);
        if (rc == 0 && id.rank == 0)
            rc = conclude(&cl, o, &b, &c, job, err);
        rdzv_client_close(&cl);
    }
    json_decref(mine);
    json_decref(job);
    host_backend_close(&b);
    contract_free(&c);
    return rc;
}

int cmd_bench_rank(int argc, char **argv)
{
    struct bench_options o;
    struct sr_error err = {{0}};
    bench_options_init(&o);
    struct job_options defaults; /* the ML root when --ml-root is absent */
    job_options_init(&defaults);
    o.ml_root = defaults.ml_root;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'm')
            o.validate = strcmp(optarg, "validate") == 0;
        else if (opt == '?' || parse_bench_option(&o, opt, optarg, &err) < 0) {
            fprintf(stderr, "sagerun bench-rank: %s\n", err.text[0] ? err.text : "bad option");
            return EXIT_USAGE;
        }
    }
    if (select_benchmarks(&o, argc - optind, argv + optind, &err) != 0 || run_rank(&o, &err) != 0) {
        fprintf(stderr, "sagerun bench-rank: %s\n", err.text);
        return EXIT_JOB_FAILED;
    }
    return EXIT_OK;
}

/* ---- the launcher ---- */

/* The leader's verdict, from the report rank 0 wrote at `path`. */
static int read_verdict(const char *path, struct sr_error *err)
{
    json_t *doc;
    if (json_file_load(path, false, &doc, err) != 0)
        return -1;
    const json_t *verdict = json_object_get(doc, "verdict");
    int rc = 0;
    if (!json_is_true(json_object_get(verdict, "passed"))) {
        struct strbuf why;
        strbuf_init(&why);
        size_t i;
        const json_t *f;
        json_array_foreach(json_object_get(verdict, "failures"), i, f)
            strbuf_printf(&why, "%s%s", i ? "; " : "", json_string_value(f));
        error_setf(err, "validate: capacity failed validation (report: %s): %s", path, why.data);
        strbuf_free(&why);
        rc = -1;
    }
    json_decref(doc);
    return rc;
}

static int parse_launch(int argc, char **argv, struct launch_options *lo, struct bench_options *o,
                        struct sr_error *err)
{
    launch_options_init(lo);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int handled = launch_options_parse(lo, opt, optarg, err);
        if (handled == 0)
            handled = parse_bench_option(o, opt, optarg, err);
        if (handled < 0)
            return -1;
        if (!handled)
            return 1;
    }
    o->ml_root = lo->job.ml_root;
    if (select_benchmarks(o, argc - optind, argv + optind, err) != 0 || check_bench_options(o, err) != 0 ||
        launch_options_finish(lo, err) != 0)
        return -1;
    return 0;
}

/* The rank command: this binary's bench-rank with the same arguments. */
static char **rank_command(const struct bench_options *o, int argc, char **argv, int *count, struct sr_error *err)
{
    char self[4096];
    if (fs_self_executable(self, sizeof self, o->validate ? "validate" : "bench", err) != 0)
        return NULL;
    char **cmd = xcalloc((size_t)argc + 7, sizeof *cmd);
    int n = 0;
    cmd[n++] = xstrdup(self);
    cmd[n++] = xstrdup("bench-rank");
    cmd[n++] = xstrdup("--mode");
    cmd[n++] = xstrdup(o->validate ? "validate" : "bench");
    cmd[n++] = xstrdup("--ml-root");
    cmd[n++] = xstrdup(o->ml_root);
    for (int i = 1; i < argc; i++)
        cmd[n++] = xstrdup(argv[i]);
    *count = n;
    return cmd;
}

struct bench_request {
    const struct launch_options *launch;
    const struct bench_options *bench;
    int argc;
    char **argv;
};

static int run_benchmarks(const struct contract *c, struct plan *p, void *ctx, struct sr_error *err)
{
    const struct bench_request *r = ctx;
    const struct bench_options *o = r->bench;
    char report[4300];
    snprintf(report, sizeof report, "%s/output/data/sagerun-validate.json", c->ml_root);
    if (o->validate && p->is_leader)
        unlink(report); /* a report left by an earlier run must not stand for this one */
    int count;
    char **cmd = rank_command(o, r->argc, r->argv, &count, err);
    if (!cmd)
        return -1;
    int status = launch_builtin_program(c, p, r->launch, cmd, count, err);
    strv_free(cmd);
    if (status == 0 && o->validate && p->is_leader && read_verdict(report, err) != 0)
        status = EXIT_JOB_FAILED;
    return status;
}

static int bench_main(int argc, char **argv, bool validate)
{
    struct launch_options lo;
    struct bench_options o;
    struct sr_error err = {{0}};
    bench_options_init(&o);
    o.validate = validate;
    int parsed = parse_launch(argc, argv, &lo, &o, &err);
    if (parsed > 0) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (parsed < 0)
        return command_fail(lo.job.ml_root, &err);
    struct bench_request r = {&lo, &o, argc, argv};
    return command_run_job(&lo, run_benchmarks, &r);
}

int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv, false);
}

int cmd_validate(int argc, char **argv)
{
    return bench_main(argc, argv, true);
}
