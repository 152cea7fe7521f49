#include "instance_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct gpu_count {
    const char *type;
    int gpus;
};

static const struct gpu_count known_types[] = {
    {"ml.p3.2xlarge", 1},       {"ml.p3.8xlarge", 4},       {"ml.p3.16xlarge", 8},
    {"ml.p3dn.24xlarge", 8},    {"ml.p4d.24xlarge", 8},     {"ml.p4de.24xlarge", 8},
    {"ml.p5.48xlarge", 8},      {"ml.p5e.48xlarge", 8},     {"ml.p5en.48xlarge", 8},
    {"ml.p6-b200.48xlarge", 8}, {"ml.g4dn.xlarge", 1},      {"ml.g4dn.2xlarge", 1},
    {"ml.g4dn.4xlarge", 1},     {"ml.g4dn.8xlarge", 1},     {"ml.g4dn.16xlarge", 1},
    {"ml.g4dn.12xlarge", 4},    {"ml.g5.xlarge", 1},        {"ml.g5.2xlarge", 1},
    {"ml.g5.4xlarge", 1},       {"ml.g5.8xlarge", 1},       {"ml.g5.16xlarge", 1},
    {"ml.g5.12xlarge", 4},      {"ml.g5.24xlarge", 4},      {"ml.g5.48xlarge", 8},
    {"ml.g6.xlarge", 1},        {"ml.g6.2xlarge", 1},       {"ml.g6.4xlarge", 1},
    {"ml.g6.8xlarge", 1},       {"ml.g6.16xlarge", 1},      {"ml.g6.12xlarge", 4},
    {"ml.g6.24xlarge", 4},      {"ml.g6.48xlarge", 8},      {"ml.g6e.xlarge", 1},
    {"ml.g6e.2xlarge", 1},      {"ml.g6e.4xlarge", 1},      {"ml.g6e.8xlarge", 1},
    {"ml.g6e.16xlarge", 1},     {"ml.g6e.12xlarge", 4},     {"ml.g6e.24xlarge", 4},
    {"ml.g6e.48xlarge", 8},
};

static const char *const cpu_families[] = {"ml.c5.", "ml.c5n.", "ml.c6i.", "ml.c7i.", "ml.m5.",
                                           "ml.m6i.", "ml.m7i.", "ml.r5.",  "ml.t3."};

int instance_type_gpus(const char *instance_type)
{
    for (size_t i = 0; i < sizeof known_types / sizeof known_types[0]; i++)
        if (strcmp(instance_type, known_types[i].type) == 0)
            return known_types[i].gpus;
    for (size_t i = 0; i < sizeof cpu_families / sizeof cpu_families[0]; i++)
        if (strncmp(instance_type, cpu_families[i], strlen(cpu_families[i])) == 0)
            return 0;
    return -1;
}

static const char *const efa_nccl_types[] = {
    "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge",   "ml.p3dn.24xlarge",      "ml.p4d.24xlarge",
    "ml.p4de.24xlarge", "ml.p5.48xlarge",  "ml.trn1.32xlarge", "ml.p6e-gb200.36xlarge",
};
static const char *const efa_rdma_types[] = {
    "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.trn1.32xlarge", "ml.p6e-gb200.36xlarge",
};

static bool listed(const char *type, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(type, list[i]) == 0)
            return true;
    return false;
}

enum efa_support instance_type_efa(const char *instance_type)
{
    if (listed(instance_type, efa_rdma_types, sizeof efa_rdma_types / sizeof *efa_rdma_types))
        return EFA_NCCL_RDMA;
    if (listed(instance_type, efa_nccl_types, sizeof efa_nccl_types / sizeof *efa_nccl_types))
        return EFA_NCCL;
    return EFA_NONE;
}
