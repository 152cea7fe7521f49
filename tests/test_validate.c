/* `sagerun validate`'s judgement and tables, on results built here: peers
 * and stragglers, baselines (built-in and from a site file, per-vCPU
 * scaling), groups of instance types kept apart, hosts failing with their
 * ranks, the all-reduce's wrong elements, the metric lines against the
 * bench MetricDefinitions, and the measurement helpers (median, throttle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "baselines.h"
#include "judge.h"
#include "measure.h"
#include "metrics.h"
#include "report.h"
#include "test_util.h"
#include "transport.h"

static json_t *rank_result(int rank, const char *host, int local, const char *type, const char *device, double gemm,
                           double membw)
{
    return json_pack("{s:i, s:s, s:i, s:s, s:s, s:i, s:{s:f, s:f}}", "rank", rank, "host", host, "local_rank", local,
                     "instance_type", type, "device", device, "cpus", 4, "metrics", "gemm_bf16_tflops", gemm,
                     "membw_d2d_gbs", membw);
}

/* hosts x gpus ranks of ml.p5.48xlarge at healthy figures. */
static json_t *p5_job(int hosts, int gpus)
{
    json_t *ranks = json_array();
    for (int h = 0; h < hosts; h++)
        for (int g = 0; g < gpus; g++) {
            char host[32];
            snprintf(host, sizeof host, "algo-%d", h + 1);
            json_array_append_new(ranks, rank_result(h * gpus + g, host, g, "ml.p5.48xlarge", "gpu",
                                                     700 + h + g, 3000 + g));
        }
    return json_pack("{s:s, s:i, s:i, s:o}", "mode", "validate", "hosts", hosts, "world_size", hosts * gpus, "ranks",
                     ranks);
}

static json_t *metrics_of(json_t *results, size_t rank)
{
    return json_object_get(json_array_get(json_object_get(results, "ranks"), rank), "metrics");
}

static const json_t *entry(const json_t *verdict, const char *what, size_t i)
{
    return json_array_get(json_object_get(verdict, what), i);
}

static bool passed(const json_t *e)
{
    return json_is_true(json_object_get(e, "passed"));
}

static void healthy_job_passes(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err), *results = p5_job(2, 8);
    json_t *v = judge_results(results, baselines, 0.9);
    assert_true(passed(v));
    assert_int_equal(json_array_size(json_object_get(v, "failures")), 0);
    assert_int_equal(json_array_size(json_object_get(v, "ranks")), 16);
    assert_int_equal(json_array_size(json_object_get(v, "hosts")), 2);
    /* every check carries the baseline and the peers it was judged by */
    const json_t *check = json_array_get(json_object_get(entry(v, "ranks", 3), "checks"), 0);
    assert_string_equal(json_string_value(json_object_get(check, "metric")), "gemm_bf16_tflops");
    assert_true(json_number_value(json_object_get(check, "baseline_min")) == 600.0);
    assert_true(json_number_value(json_object_get(check, "peak")) == 989.4);
    assert_non_null(strstr(json_string_value(json_object_get(check, "source")), "H100"));
    assert_true(json_number_value(json_object_get(check, "peer_median")) > 700.0);
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

/* One GPU at 80% of its siblings clears the datasheet floor (600) but not
 * the peers (90%); its host fails with it; nobody else does. */
static void straggler_gpu_and_its_host_fail(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err), *results = p5_job(2, 8);
    json_object_set_new(metrics_of(results, 11), "gemm_bf16_tflops", json_real(560.0 * 1.1)); /* 616 */
    json_t *v = judge_results(results, baselines, 0.9);
    assert_false(passed(v));
    for (size_t r = 0; r < 16; r++)
        assert_int_equal(passed(entry(v, "ranks", r)), r != 11);
    assert_true(passed(entry(v, "hosts", 0)));
    assert_false(passed(entry(v, "hosts", 1)));
    const json_t *failures = json_object_get(v, "failures");
    assert_int_equal(json_array_size(failures), 1); /* algo-2's sum is 99% of its peer's: only the GPU */
    assert_non_null(strstr(json_string_value(json_object_get(entry(v, "hosts", 1), "reason")), "ranks failed"));
    const char *first = json_string_value(json_array_get(failures, 0));
    assert_non_null(strstr(first, "algo-2 GPU 3 (rank 11): gemm_bf16_tflops 616 is 88% of the median of its 16 peers (703.5; threshold 90%)"));
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

/* Under the baseline: fails even with no peers to compare with. */
static void under_baseline_fails_without_peers(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err), *results = p5_job(1, 1);
    json_object_set_new(metrics_of(results, 0), "membw_d2d_gbs", json_real(2000));
    json_t *v = judge_results(results, baselines, 0.9);
    assert_false(passed(v));
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(v, "failures"), 0)),
                           "membw_d2d_gbs 2000 is under the baseline minimum 2680"));
    assert_null(json_object_get(json_array_get(json_object_get(entry(v, "ranks", 0), "checks"), 0), "peer_median"));
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

/* A p4d host and a p5 host: each GPU is compared only with its own kind. */
static void instance_types_are_not_peers(void **state)
{
    (void)state;
    json_t *ranks = json_array();
    for (int g = 0; g < 4; g++) {
        json_array_append_new(ranks, rank_result(g, "algo-1", g, "ml.p4d.24xlarge", "gpu", 280, 1400));
        json_array_append_new(ranks, rank_result(4 + g, "algo-2", g, "ml.p5.48xlarge", "gpu", 750, 3000));
    }
    json_t *results = json_pack("{s:i, s:i, s:o}", "hosts", 2, "world_size", 8, "ranks", ranks);
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err);
    json_t *v = judge_results(results, baselines, 0.9);
    assert_true(passed(v));
    const json_t *check = json_array_get(json_object_get(entry(v, "ranks", 0), "checks"), 0);
    assert_true(json_number_value(json_object_get(check, "peer_median")) == 280.0);
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

/* A site's file replaces one figure and adds a CPU type; per-vCPU figures
 * scale with the CPUs a rank used; bad files name file and field. */
static void site_baselines(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4300];
    test_write(dir, "site.json",
               "{\"ml.p5.48xlarge\": {\"gpu\": {\"gemm_bf16_tflops\": {\"min\": 720, \"source\": \"our fleet\"}}},"
               " \"local\": {\"cpu\": {\"gemm_fp32_tflops\": {\"min\": 0.5, \"peak\": 1, \"per_cpu\": true}}}}");
    snprintf(path, sizeof path, "%s/site.json", dir);
    struct sr_error err = {{0}};
    json_t *table = baselines_load(path, &err);
    assert_non_null(table);
    const json_t *b = baselines_find(table, "ml.p5.48xlarge", "gpu", "gemm_bf16_tflops");
    assert_true(json_number_value(json_object_get(b, "min")) == 720.0);
    assert_string_equal(json_string_value(json_object_get(b, "source")), "our fleet");
    /* the other figures of the type stay */
    assert_non_null(baselines_find(table, "ml.p5.48xlarge", "gpu", "membw_d2d_gbs"));
    /* families match by prefix */
    assert_non_null(baselines_find(table, "ml.g5.12xlarge", "gpu", "gemm_bf16_tflops"));
    assert_null(baselines_find(table, "ml.g5.12xlarge", "cpu", "gemm_bf16_tflops"));

    json_t *ranks = json_pack("[{s:i, s:s, s:i, s:s, s:s, s:i, s:{s:f}}]", "rank", 0, "host", "algo-1", "local_rank",
                              0, "instance_type", "local", "device", "cpu", "cpus", 4, "metrics", "gemm_fp32_tflops",
                              1.5);
    json_t *results = json_pack("{s:i, s:i, s:o}", "hosts", 1, "world_size", 1, "ranks", ranks);
    json_t *v = judge_results(results, table, 0.9);
    assert_false(passed(v)); /* 1.5 < 0.5 x 4 CPUs */
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(v, "failures"), 0)),
                           "gemm_fp32_tflops 1.5 is under the baseline minimum 2 (per-vCPU figure x CPUs used)"));
    json_decref(v);
    json_decref(results);
    json_decref(table);

    test_write(dir, "bad.json", "{\"ml.p5.48xlarge\": {\"gpu\": {\"gemm_bf16_tflops\": {\"peak\": 989}}}}");
    snprintf(path, sizeof path, "%s/bad.json", dir);
    struct sr_error err2 = {{0}};
    assert_null(baselines_load(path, &err2));
    assert_non_null(strstr(err2.text, "bad.json: $.ml.p5.48xlarge.gpu.gemm_bf16_tflops: must be {\"min\""));
    test_write(dir, "bad2.json", "{\"ml.p5.48xlarge\": {\"tpu\": {}}}");
    snprintf(path, sizeof path, "%s/bad2.json", dir);
    struct sr_error err3 = {{0}};
    assert_null(baselines_load(path, &err3));
    assert_non_null(strstr(err3.text, "$.ml.p5.48xlarge.tpu: expected \"gpu\" or \"cpu\""));
    test_rmtree(dir);
    free(dir);
}

/* Every instance type the issue names has GPU baselines with sources. */
static void builtin_baselines_cover_training_plan_types(void **state)
{
    (void)state;
    const char *types[] = {"ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge",
                           "ml.p5en.48xlarge", "ml.g5.48xlarge", "ml.g6.12xlarge"};
    struct sr_error err = {{0}};
    json_t *table = baselines_load(NULL, &err);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const json_t *b = baselines_find(table, types[i], "gpu", "gemm_bf16_tflops");
        assert_non_null(b);
        double min = json_number_value(json_object_get(b, "min")), peak = json_number_value(json_object_get(b, "peak"));
        assert_true(min > 0 && min < peak);
        assert_true(strlen(json_string_value(json_object_get(b, "source"))) > 10);
        assert_non_null(baselines_find(table, types[i], "gpu", "membw_d2d_gbs"));
        assert_non_null(baselines_find(table, types[i], "gpu", "membw_h2d_gbs"));
        assert_non_null(baselines_find(table, types[i], "gpu", "membw_d2h_gbs"));
    }
    json_decref(table);
}

/* Wrong sums fail the job; the busbw floor applies across hosts. */
static void allreduce_wrong_elements_and_busbw(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err), *results = p5_job(2, 8);
    json_object_set_new(results, "allreduce",
                        json_pack("{s:[{s:i, s:{s:f, s:i}, s:{s:f, s:i}}]}", "rows", "bytes", 1 << 30, "out_of_place",
                                  "busbw_gbs", 300.0, "wrong", 3, "in_place", "busbw_gbs", 200.0, "wrong", 0));
    json_t *v = judge_results(results, baselines, 0.9);
    const json_t *checks = json_object_get(json_object_get(v, "job"), "checks");
    assert_string_equal(json_string_value(json_object_get(json_array_get(checks, 0), "metric")),
                        "allreduce_wrong_elements");
    assert_false(passed(json_array_get(checks, 0)));
    assert_string_equal(json_string_value(json_object_get(json_array_get(checks, 1), "metric")),
                        "allreduce_internode_busbw_gbs");
    assert_false(passed(json_array_get(checks, 1))); /* 200 < 240 */
    assert_int_equal(json_array_size(json_object_get(v, "failures")), 2);
    json_decref(v);
    json_decref(results);
    /* One rank: its sums are checked, but no link carries data (busbw 0). */
    results = p5_job(1, 1);
    json_object_set_new(results, "allreduce",
                        json_pack("{s:[{s:i, s:{s:f, s:i}, s:{s:f, s:i}}]}", "rows", "bytes", 1 << 30, "out_of_place",
                                  "busbw_gbs", 0.0, "wrong", 0, "in_place", "busbw_gbs", 0.0, "wrong", 0));
    v = judge_results(results, baselines, 0.9);
    checks = json_object_get(json_object_get(v, "job"), "checks");
    assert_int_equal(json_array_size(checks), 1);
    assert_true(passed(json_array_get(checks, 0)));
    assert_true(passed(v));
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

/* The report's metric lines, matched by `metrics definitions --bench`. */
static void metric_lines_match_bench_definitions(void **state)
{
    (void)state;
    json_t *results = p5_job(2, 2);
    json_object_set_new(results, "train", json_pack("{s:f, s:f}", "tokens_per_sec", 1234.5, "step_ms", 50.25));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDOUT_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    struct sr_error err = {{0}};
    int rc = report_emit_metrics(results, &err);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(fds[1]);
    assert_int_equal(rc, 0);
    FILE *log = fdopen(fds[0], "r");
    json_t *defs = metrics_bench_definitions_json(2);
    assert_int_equal(json_array_size(defs), 9);
    struct metric_tally tallies[METRIC_MAX_DEFINITIONS];
    assert_int_equal(metrics_check_log(log, defs, tallies, &err), 0);
    fclose(log);
    /* algo-2: GEMM 701+702, device memory 3000+3001; the job's figures */
    assert_int_equal(tallies[3].matches, 1);
    assert_string_equal(tallies[3].last, "1403.0000");
    assert_string_equal(tallies[4].last, "6001.0000");
    assert_int_equal(tallies[5].matches, 0); /* no training figures per rank in these results */
    assert_string_equal(tallies[7].last, "1234.5");
    assert_string_equal(tallies[8].last, "50.25");
    assert_int_equal(tallies[6].matches, 0); /* no all-reduce in these results */
    json_decref(defs);
    json_t *many = metrics_bench_definitions_json(METRICS_BENCH_MAX_HOSTS);
    assert_true(json_array_size(many) <= METRIC_MAX_DEFINITIONS);
    json_decref(many);
    json_decref(results);
}

/* GPU ranks: the report names each GPU and where its host copies came
 * from, and a GPU whose copies from the remote node lag its peers' fails
 * (no baseline for remote copies: the peers judge them). */
static void gpu_ranks_report_and_judge_host_copies(void **state)
{
    (void)state;
    json_t *results = p5_job(1, 8);
    json_t *ranks = json_object_get(results, "ranks");
    for (size_t r = 0; r < 8; r++) {
        char bus[32];
        snprintf(bus, sizeof bus, "00000000:%02zX:00.0", 0x53 + 0x11 * r);
        json_t *rank = json_array_get(ranks, r);
        json_object_set_new(rank, "gpu", json_pack("{s:s, s:s}", "name", "NVIDIA H100 80GB HBM3", "bus_id", bus));
        json_object_set_new(rank, "host_memory", json_pack("{s:i, s:i, s:i, s:i}", "local_node", r < 4 ? 0 : 1,
                                                           "local_pages_on", r < 4 ? 0 : 1, "remote_node",
                                                           r < 4 ? 1 : 0, "remote_pages_on", r < 4 ? 1 : 0));
        json_object_set_new(metrics_of(results, r), "membw_h2d_gbs", json_real(53.0));
        json_object_set_new(metrics_of(results, r), "membw_h2d_remote_gbs", json_real(r == 6 ? 24.0 : 48.0));
    }
    json_object_set_new(json_object_get(json_array_get(ranks, 7), "host_memory"), "local_note",
                        json_string("binding to node 1 refused (Operation not permitted)"));
    struct sr_error err = {{0}};
    json_t *baselines = baselines_load(NULL, &err);
    json_t *v = judge_results(results, baselines, 0.9);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    report_print(mem, results, v);
    fclose(mem);
    assert_non_null(strstr(text, "#   rank 0: NVIDIA H100 80GB HBM3 at 00000000:53:00.0; host copies from local node 0 "
                                 "(pages found on 0) and remote node 1 (pages found on 1)\n"));
    assert_non_null(strstr(text, "#   rank 7: NVIDIA H100 80GB HBM3 at 00000000:CA:00.0; host copies from local node 1 "
                                 "(pages found on 1) (binding to node 1 refused (Operation not permitted)) and remote "
                                 "node 0 (pages found on 0)\n"));
    assert_false(passed(v));
    for (size_t r = 0; r < 8; r++)
        assert_int_equal(passed(entry(v, "ranks", r)), r != 6);
    const char *first = json_string_value(json_array_get(json_object_get(v, "failures"), 0));
    assert_non_null(strstr(first, "algo-1 GPU 6 (rank 6): membw_h2d_remote_gbs 24"));
    free(text);
    json_decref(v);
    json_decref(results);
    json_decref(baselines);
}

static int count_work(void *ctx, struct sr_error *err)
{
    (void)err;
    ++*(int *)ctx;
    return 0;
}

struct sleepy {
    double seconds;
};

static int sleep_work(void *ctx, struct sr_error *err)
{
    (void)err;
    usleep((useconds_t)(((struct sleepy *)ctx)->seconds * 1e6));
    return 0;
}

/* Warm-up runs are not timed; the throttle stretches each timed run. */
static void measure_counts_and_throttles(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    int runs = 0;
    struct bench_timing t = {2, 5, 1.0};
    struct bench_stats s;
    assert_int_equal(bench_measure(count_work, &runs, &t, &s, &err), 0);
    assert_int_equal(runs, 7);
    assert_int_equal(s.repeats, 5);
    assert_true(s.min <= s.median && s.median <= s.max);
    struct sleepy sl = {0.01};
    struct bench_timing slow = {0, 3, 0.25};
    assert_int_equal(bench_measure(sleep_work, &sl, &slow, &s, &err), 0);
    assert_true(s.min >= 0.039); /* 10 ms at a quarter of the speed */
    double runs_sorted[] = {5, 1, 4, 2};
    bench_stats_of(runs_sorted, 4, &s);
    assert_true(s.median == 3.0 && s.min == 1.0 && s.max == 5.0);
    double device_runs[] = {3, 1, 2}; /* a GPU cannot be slowed: its times are stretched */
    bench_stats_of_device(device_runs, 3, 0.5, &s);
    assert_true(s.median == 4.0 && s.min == 2.0 && s.max == 6.0);
    setenv("SAGERUN_BENCH_THROTTLE", "1.5", 1);
    double th;
    assert_int_equal(bench_throttle_from_env(&th, &err), -1);
    assert_non_null(strstr(err.text, "SAGERUN_BENCH_THROTTLE: \"1.5\" is not a number in (0, 1]"));
    unsetenv("SAGERUN_BENCH_THROTTLE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthy_job_passes),
        cmocka_unit_test(straggler_gpu_and_its_host_fail),
        cmocka_unit_test(under_baseline_fails_without_peers),
        cmocka_unit_test(instance_types_are_not_peers),
        cmocka_unit_test(site_baselines),
        cmocka_unit_test(builtin_baselines_cover_training_plan_types),
        cmocka_unit_test(allreduce_wrong_elements_and_busbw),
        cmocka_unit_test(metric_lines_match_bench_definitions),
        cmocka_unit_test(gpu_ranks_report_and_judge_host_copies),
        cmocka_unit_test(measure_counts_and_throttles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
