/* `sagerun bench` on a GPU, end to end: two ranks share the machine's GPU
 * (SAGERUN_RANKS_PER_GPU=2, each its own NCCL_HOSTID, so NCCL runs between
 * them over its net transport) and run every benchmark. Checked: each rank
 * reports its GPU and GPU metrics in a plausible range (bf16 products
 * faster than tf32, device copies faster than host copies), the NCCL sweep
 * sums correctly at every size in both modes, and the GPU trainer trains.
 * Speeds are hardware's business (validate judges them); this checks that
 * the measurements are made and mean what they say.
 * Without a GPU it says so and reports itself skipped (exit 77). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpu_present.h"
#include "test_util.h"

static const char *sagerun;

static double metric(const json_t *rank, const char *name)
{
    const json_t *v = json_object_get(json_object_get(rank, "metrics"), name);
    if (!json_is_number(v))
        fail_msg("rank %lld has no metric %s", json_integer_value(json_object_get(rank, "rank")), name);
    return json_number_value(v);
}

static void check_rank(const json_t *rank)
{
    assert_string_equal(json_string_value(json_object_get(rank, "device")), "gpu");
    const char *name = json_string_value(json_object_get(json_object_get(rank, "gpu"), "name"));
    assert_non_null(name);
    assert_true(strlen(name) > 0);
    double bf16 = metric(rank, "gemm_bf16_tflops"), tf32 = metric(rank, "gemm_tf32_tflops");
    printf("rank %lld on %s: bf16 %.1f, fp16 %.1f, tf32 %.1f TFLOP/s; d2d %.0f, h2d %.1f, d2h %.1f GB/s\n",
           json_integer_value(json_object_get(rank, "rank")), name, bf16, metric(rank, "gemm_fp16_tflops"), tf32,
           metric(rank, "membw_d2d_gbs"), metric(rank, "membw_h2d_gbs"), metric(rank, "membw_d2h_gbs"));
    assert_true(bf16 > 1.0 && bf16 < 5000.0);
    assert_true(tf32 > 0.5 && tf32 < bf16);
    assert_true(metric(rank, "membw_d2d_gbs") > 50.0);
    assert_true(metric(rank, "membw_h2d_gbs") > 0.5 && metric(rank, "membw_h2d_gbs") < metric(rank, "membw_d2d_gbs"));
    assert_true(metric(rank, "membw_d2h_gbs") > 0.5 && metric(rank, "membw_d2h_gbs") < metric(rank, "membw_d2d_gbs"));
    assert_true(metric(rank, "train_compute_tokens_per_s") > 0.0);
    assert_non_null(json_object_get(json_object_get(rank, "host_memory"), "local_node"));
}

static void bench_on_the_gpu(void **state)
{
    (void)state;
    char root[4096], log[4200], report[4300];
    char *dir = test_sample_job(sagerun, "{}", root, sizeof root);
    snprintf(log, sizeof log, "%s/bench.log", dir);
    char *argv[] = {(char *)sagerun, "bench", "--ml-root", root, "--nproc-per-host", "2", "--gemm-size", "4096",
                    "--membw-mib", "256", "--repeats", "5", "--warmup", "2", "--allreduce-max-bytes", "16777216",
                    "--train-preset", "tiny", "--train-batch", "4", NULL};
    char *env[] = {"SAGERUN_RANKS_PER_GPU=2", NULL};
    int status = test_wait(test_spawn(argv, env, log));
    char *text = test_read(log);
    if (status != 0)
        fail_msg("sagerun bench failed (%d):\n%s", status, text ? text : "");
    printf("%s", text);
    free(text);
    snprintf(report, sizeof report, "%s/output/data/sagerun-bench.json", root);
    json_error_t jerr;
    json_t *doc = json_load_file(report, 0, &jerr);
    if (!doc)
        fail_msg("%s: %s", report, jerr.text);
    const json_t *results = json_object_get(doc, "results"), *rank, *row;
    size_t i;
    assert_int_equal(json_array_size(json_object_get(results, "ranks")), 2);
    json_array_foreach(json_object_get(results, "ranks"), i, rank)
        check_rank(rank);
    const json_t *ar = json_object_get(results, "allreduce");
    assert_string_equal(json_string_value(json_object_get(ar, "backend")), "nccl");
    assert_int_equal(json_array_size(json_object_get(ar, "rows")), 6); /* 8 KiB, x4 per row, to 8 MiB */
    json_array_foreach(json_object_get(ar, "rows"), i, row) {
        const char *modes[2] = {"out_of_place", "in_place"};
        for (int m = 0; m < 2; m++) {
            const json_t *mode = json_object_get(row, modes[m]);
            assert_int_equal(json_integer_value(json_object_get(mode, "wrong")), 0);
            assert_true(json_number_value(json_object_get(mode, "busbw_gbs")) > 0.0);
        }
    }
    const json_t *train = json_object_get(results, "train");
    assert_true(json_number_value(json_object_get(train, "tokens_per_sec")) > 0.0);
    assert_true(json_number_value(json_object_get(train, "mfu")) > 0.0);
    json_decref(doc);
    test_rmtree(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_SAGERUN\n", argv[0]);
        return 2;
    }
    sagerun = argv[1];
    if (!gpu_present("the GPU benchmarks are built but not run"))
        return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(bench_on_the_gpu)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
