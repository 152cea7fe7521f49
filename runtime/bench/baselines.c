#include "baselines.h"

#include <stdio.h>
#include <string.h>

#include "json_file.h"

struct baseline {
    const char *metric;
    double min, peak;
    const char *source;
};

struct device_baselines {
    const char *instance_type, *device; /* "gpu" or "cpu" */
    int per_cpu;
    const struct baseline *entries;
};

/* Datasheet peaks are dense (no structured sparsity). `min` for GEMM is set
 * under what cuBLAS reaches on large square bf16/tf32 products on these
 * parts as published by NVIDIA and in nccl-tests/cuBLAS reports (A100:
 * ~80-90% of peak; H100 SXM: ~65-75%, power-limited), and for device memory
 * at 80% of the HBM figure (a copy kernel reaches ~90%). Host<->device
 * figures are pinned-memory copies over PCIe from the GPU's own NUMA node,
 * each direction alone: Gen4 x16 is 32 GB/s and delivers ~25, Gen5 x16 is
 * 64 GB/s and delivers ~50. Copies from the remote node have no baseline:
 * they are judged against their peers and shown beside the local ones.
 * All-reduce floors: within a host, nccl-tests' large-message busbw over
 * NVLink/NVSwitch (A100 ~230 GB/s, H100 ~450 GB/s); across hosts, 60% of the
 * instance's EFA bandwidth, a conservative floor of mine rather than a
 * published figure.
 * Sites with measurements of their own should load them (baselines.h). */
#define A100_SHEET "NVIDIA A100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/a100), SXM4"
#define H100_SHEET "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100), H100 SXM"
#define H200_SHEET "NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200), H200 SXM"
#define A10_SHEET "NVIDIA A10 Tensor Core GPU datasheet (A10G is AWS's variant of the A10; NVIDIA publishes no separate sheet)"
#define L4_SHEET "NVIDIA L4 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/l4)"
#define L40S_SHEET "NVIDIA L40S datasheet (nvidia.com/en-us/data-center/l40s)"
#define NCCL_TESTS "nccl-tests all_reduce_perf busbw, 8 GPUs over NVSwitch, large messages"
#define EFA_FLOOR "60% of the instance's EFA bandwidth (aws.amazon.com/ec2/instance-types/p4, /p5)"
#define PCIE4 "PCIe Gen4 x16 (32 GB/s per direction), pinned host memory"
#define PCIE5 "PCIe Gen5 x16 (64 GB/s per direction), pinned host memory"

static const struct baseline a100_40gb[] = {
    {"gemm_bf16_tflops", 230, 312, A100_SHEET},   {"gemm_fp16_tflops", 230, 312, A100_SHEET},
    {"gemm_tf32_tflops", 110, 156, A100_SHEET},   {"membw_d2d_gbs", 1250, 1555, A100_SHEET " (HBM2 40GB)"},
    {"membw_h2d_gbs", 20, 32, PCIE4},             {"membw_d2h_gbs", 20, 32, PCIE4},
    {"allreduce_busbw_gbs", 200, 0, NCCL_TESTS},
    {"allreduce_internode_busbw_gbs", 30, 50, EFA_FLOOR " (4x100 Gbps)"},
    {NULL, 0, 0, NULL},
};
static const struct baseline a100_80gb[] = {
    {"gemm_bf16_tflops", 230, 312, A100_SHEET},   {"gemm_fp16_tflops", 230, 312, A100_SHEET},
    {"gemm_tf32_tflops", 110, 156, A100_SHEET},   {"membw_d2d_gbs", 1630, 2039, A100_SHEET " (HBM2e 80GB)"},
    {"membw_h2d_gbs", 20, 32, PCIE4},             {"membw_d2h_gbs", 20, 32, PCIE4},
    {"allreduce_busbw_gbs", 200, 0, NCCL_TESTS},
    {"allreduce_internode_busbw_gbs", 30, 50, EFA_FLOOR " (4x100 Gbps)"},
    {NULL, 0, 0, NULL},
};
static const struct baseline h100[] = {
    {"gemm_bf16_tflops", 600, 989.4, H100_SHEET}, {"gemm_fp16_tflops", 600, 989.4, H100_SHEET},
    {"gemm_tf32_tflops", 300, 494.7, H100_SHEET}, {"membw_d2d_gbs", 2680, 3350, H100_SHEET " (HBM3 80GB)"},
    {"membw_h2d_gbs", 40, 64, PCIE5},             {"membw_d2h_gbs", 40, 64, PCIE5},
    {"allreduce_busbw_gbs", 350, 0, NCCL_TESTS},
    {"allreduce_internode_busbw_gbs", 240, 400, EFA_FLOOR " (3200 Gbps)"},
    {NULL, 0, 0, NULL},
};
static const struct baseline h200[] = {
    {"gemm_bf16_tflops", 600, 989.4, H200_SHEET}, {"gemm_fp16_tflops", 600, 989.4, H200_SHEET},
    {"gemm_tf32_tflops", 300, 494.7, H200_SHEET}, {"membw_d2d_gbs", 3840, 4800, H200_SHEET " (HBM3e 141GB)"},
    {"membw_h2d_gbs", 40, 64, PCIE5},             {"membw_d2h_gbs", 40, 64, PCIE5},
    {"allreduce_busbw_gbs", 350, 0, NCCL_TESTS},
    {"allreduce_internode_busbw_gbs", 240, 400, EFA_FLOOR " (3200 Gbps)"},
    {NULL, 0, 0, NULL},
};
static const struct baseline a10g[] = {
    {"gemm_bf16_tflops", 70, 125, A10_SHEET},     {"gemm_fp16_tflops", 70, 125, A10_SHEET},
    {"gemm_tf32_tflops", 35, 62.5, A10_SHEET},    {"membw_d2d_gbs", 480, 600, A10_SHEET},
    {"membw_h2d_gbs", 20, 32, PCIE4},             {"membw_d2h_gbs", 20, 32, PCIE4},
    {NULL, 0, 0, NULL},
};
static const struct baseline l4[] = {
    {"gemm_bf16_tflops", 80, 121, L4_SHEET},      {"gemm_fp16_tflops", 80, 121, L4_SHEET},
    {"gemm_tf32_tflops", 40, 60, L4_SHEET},       {"membw_d2d_gbs", 240, 300, L4_SHEET},
    {"membw_h2d_gbs", 20, 32, PCIE4},             {"membw_d2h_gbs", 20, 32, PCIE4},
    {NULL, 0, 0, NULL},
};
static const struct baseline l40s[] = {
    {"gemm_bf16_tflops", 250, 362, L40S_SHEET},   {"gemm_fp16_tflops", 250, 362, L40S_SHEET},
    {"gemm_tf32_tflops", 120, 183, L40S_SHEET},   {"membw_d2d_gbs", 690, 864, L40S_SHEET},
    {"membw_h2d_gbs", 20, 32, PCIE4},             {"membw_d2h_gbs", 20, 32, PCIE4},
    {NULL, 0, 0, NULL},
};

/* Per vCPU. Peak: AVX-512 with two FMA units is 64 fp32 FLOP per cycle per
 * core, 32 per vCPU (a hyperthread), times the all-core clock AWS lists on
 * the instance type page. The floor is a quarter of that: hyperthreads
 * share the FMA units and AVX-512 lowers the clock. */
#define XEON_SKL "Intel Xeon Platinum 8000 (Skylake/Cascade Lake), 3.0 GHz, AVX-512 (aws.amazon.com/ec2/instance-types/c5)"
#define XEON_ICL "Intel Xeon 8375C (Ice Lake), 2.9 GHz, AVX-512 (aws.amazon.com/ec2/instance-types/c6i)"
#define XEON_SPR "Intel Xeon 8488C (Sapphire Rapids), 3.2 GHz, AVX-512 (aws.amazon.com/ec2/instance-types/c7i)"
static const struct baseline skylake[] = {{"gemm_fp32_tflops", 0.024, 0.096, XEON_SKL}, {NULL, 0, 0, NULL}};
static const struct baseline icelake[] = {{"gemm_fp32_tflops", 0.023, 0.0928, XEON_ICL}, {NULL, 0, 0, NULL}};
static const struct baseline sapphire[] = {{"gemm_fp32_tflops", 0.025, 0.1024, XEON_SPR}, {NULL, 0, 0, NULL}};

/* Instance types as prefixes: "ml.g5." covers every size of the family. */
static const struct device_baselines builtin[] = {
    {"ml.p4d.24xlarge", "gpu", 0, a100_40gb}, {"ml.p4de.24xlarge", "gpu", 0, a100_80gb},
    {"ml.p5.48xlarge", "gpu", 0, h100},       {"ml.p5e.48xlarge", "gpu", 0, h200},
    {"ml.p5en.48xlarge", "gpu", 0, h200},     {"ml.g5.", "gpu", 0, a10g},
    {"ml.g6.", "gpu", 0, l4},                 {"ml.g6e.", "gpu", 0, l40s},
    {"ml.c5.", "cpu", 1, skylake},            {"ml.m5.", "cpu", 1, skylake},
    {"ml.c6i.", "cpu", 1, icelake},           {"ml.m6i.", "cpu", 1, icelake},
    {"ml.c7i.", "cpu", 1, sapphire},          {"ml.m7i.", "cpu", 1, sapphire},
};

static json_t *builtin_table(void)
{
    json_t *table = json_object();
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        const struct device_baselines *d = &builtin[i];
        json_t *metrics = json_object();
        for (const struct baseline *b = d->entries; b->metric; b++)
            json_object_set_new(metrics, b->metric,
                                json_pack("{s:f, s:f, s:s, s:b}", "min", b->min, "peak", b->peak, "source",
                                          b->source, "per_cpu", d->per_cpu));
        json_object_set_new(table, d->instance_type, json_pack("{s:o}", d->device, metrics));
    }
    return table;
}

static int check_entry(const char *path, const char *type, const char *device, const char *metric, json_t *e,
                       struct sr_error *err)
{
    json_t *min = json_object_get(e, "min"), *peak = json_object_get(e, "peak");
    if (!json_is_object(e) || !json_is_number(min) || json_number_value(min) < 0 ||
        (peak && (!json_is_number(peak) || json_number_value(peak) < 0))) {
        char where[800];
        snprintf(where, sizeof where, "$.%s.%s.%s", type, device, metric);
        error_config(err, path, where, "must be {\"min\": number >= 0, \"peak\": number >= 0, \"source\": text}");
        return -1;
    }
    if (!peak)
        json_object_set_new(e, "peak", json_real(0));
    if (!json_is_string(json_object_get(e, "source")))
        json_object_set_new(e, "source", json_string(path));
    if (!json_object_get(e, "per_cpu"))
        json_object_set_new(e, "per_cpu", json_boolean(strcmp(device, "cpu") == 0));
    return 0;
}

/* Overlays the site's file on the table, metric by metric. */
static int overlay(json_t *table, const char *path, struct sr_error *err)
{
    json_t *site;
    if (json_file_load(path, false, &site, err) != 0)
        return -1;
    const char *type, *device, *metric;
    json_t *devices, *metrics, *entry;
    int rc = json_is_object(site) ? 0 : -1;
    if (rc)
        error_config(err, path, "$", "must be an object of instance types");
    json_object_foreach(site, type, devices) {
        if (rc == 0 && !json_is_object(devices)) {
            char where[300];
            snprintf(where, sizeof where, "$.%s", type);
            error_config(err, path, where, "expected an object with \"gpu\" and/or \"cpu\"");
            rc = -1;
        }
        json_object_foreach(devices, device, metrics) {
            if (rc == 0 && ((strcmp(device, "gpu") != 0 && strcmp(device, "cpu") != 0) || !json_is_object(metrics))) {
                char where[600];
                snprintf(where, sizeof where, "$.%s.%s", type, device);
                error_config(err, path, where, "expected \"gpu\" or \"cpu\" with an object of metrics");
                rc = -1;
            }
            json_object_foreach(metrics, metric, entry) {
                if (rc != 0 || check_entry(path, type, device, metric, entry, err) != 0) {
                    rc = -1;
                    break;
                }
                json_t *into = json_object_get(table, type);
                if (!into)
                    json_object_set_new(table, type, into = json_object());
                json_t *dev = json_object_get(into, device);
                if (!dev)
                    json_object_set_new(into, device, dev = json_object());
                json_object_set(dev, metric, entry);
            }
        }
    }
    json_decref(site);
    return rc;
}

json_t *baselines_load(const char *path, struct sr_error *err)
{
    json_t *table = builtin_table();
    if (path && overlay(table, path, err) != 0) {
        json_decref(table);
        return NULL;
    }
    return table;
}

const json_t *baselines_find(const json_t *table, const char *instance_type, const char *device,
                             const char *metric)
{
    const char *key;
    json_t *devices;
    const json_t *found = json_object_get(json_object_get(json_object_get(table, instance_type), device), metric);
    if (found)
        return found;
    json_object_foreach((json_t *)table, key, devices) {
        size_t n = strlen(key);
        if (n && key[n - 1] == '.' && strncmp(instance_type, key, n) == 0) {
            found = json_object_get(json_object_get(devices, device), metric);
            if (found)
                return found;
        }
    }
    return NULL;
}
