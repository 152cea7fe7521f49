/* instance_types.h — GPUs per SageMaker instance type.
 *
 * A host only sees its own GPUs. To plan ranks for the other hosts of a
 * heterogeneous cluster before they report in, sagerun needs the published
 * GPU count of their instance type (AWS instance type pages: P3, P4d/P4de,
 * P5/P5e/P5en, P6-B200, G4dn, G5, G6, G6e; CPU families c5, c6i, c7i, m5,
 * m6i, m7i, r5, t3 have none).
 */
#ifndef SAGERUN_INSTANCE_TYPES_H
#define SAGERUN_INSTANCE_TYPES_H

/* GPUs of a SageMaker instance type ("ml.p4d.24xlarge"), or -1 if unknown. */
int instance_type_gpus(const char *instance_type);

/* EFA support as sagemaker-training lists it (SM_EFA_NCCL_INSTANCES and
 * SM_EFA_RDMA_INSTANCES in its __init__.py, release 5.1.4). */
enum efa_support { EFA_NONE, EFA_NCCL, EFA_NCCL_RDMA };
enum efa_support instance_type_efa(const char *instance_type);

#endif
