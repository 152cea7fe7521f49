/* nccl_net_abi.h — the parts of NCCL's network plugin ABI that sagerun's
 * plugin exports: versions 9, 10 and 11 of the `ncclNet` function table.
 *
 * Written from the layout NCCL 2.28's loader expects (src/plugin/net/ and
 * src/include/plugin/net/net_v*.h); NCCL's headers are not needed to build.
 * NCCL looks up the symbol `ncclNetPlugin_v<N>`, newest N first, so the
 * tables must match NCCL's field for field: every struct here is a C
 * translation of its NCCL counterpart, in the same order with the same types.
 * Enums are int-sized in both. Only the host-memory socket-style net is
 * described; collective-net and GIN tables are not exported (NCCL treats
 * their absence as "not offered").
 */
#ifndef SAGERUN_NCCL_NET_ABI_H
#define SAGERUN_NCCL_NET_ABI_H

#include <stddef.h>
#include <stdint.h>

/* ncclResult_t */
typedef enum {
    NCCL_RESULT_SUCCESS = 0,
    NCCL_RESULT_SYSTEM_ERROR = 2,   /* a socket or TLS failure */
    NCCL_RESULT_INTERNAL_ERROR = 3, /* asked for something the plugin does not offer */
    NCCL_RESULT_INVALID_ARGUMENT = 4,
    NCCL_RESULT_INVALID_USAGE = 5,  /* e.g. a message larger than the receive buffer */
    NCCL_RESULT_REMOTE_ERROR = 6,
} nccl_result;

/* ncclDebugLogLevel and the subsystem flags this plugin logs under */
enum { NCCL_LOG_WARN = 2, NCCL_LOG_INFO = 3 };
enum { NCCL_LOG_INIT = 0x1, NCCL_LOG_NET = 0x10 };

typedef void (*nccl_logger)(int level, unsigned long flags, const char *file, int line, const char *fmt, ...);
typedef nccl_result (*nccl_profiler_callback)(void **event, int type, void *parent, int64_t plugin_id, void *data);

#define NCCL_NET_HANDLE_BYTES 128 /* NCCL_NET_HANDLE_MAXSIZE */
#define NCCL_NET_PTR_HOST 0x1
#define NCCL_NET_MAX_REQUESTS 32  /* outstanding requests per comm NCCL may post */
#define NCCL_NET_MAX_DEVS_PER_NIC 4
#define NCCL_NET_MAX_BYTES (1024L * 1024 * 1024) /* MAX_NET_SIZE: what one request may carry */
#define NCCL_NET_DEVICE_HOST 0

struct nccl_net_vdevice_props { /* ncclNetVDeviceProps_v9..v11_t */
    int ndevs;
    int devs[NCCL_NET_MAX_DEVS_PER_NIC];
};

struct nccl_net_properties_v9 { /* ncclNetProperties_v9_t and _v10_t (identical) */
    char *name;
    char *pci_path;
    uint64_t guid;
    int ptr_support;
    int reg_is_global;
    int force_flush;
    int speed_mbps;
    int port;
    float latency;
    int max_comms;
    int max_recvs;
    int net_device_type;
    int net_device_version;
    struct nccl_net_vdevice_props vprops;
    size_t max_p2p_bytes;
    size_t max_coll_bytes;
};

struct nccl_net_properties_v11 { /* ncclNetProperties_v11_t: v9's fields, then one more */
    struct nccl_net_properties_v9 v9;
    int max_multi_request_size;
};

struct nccl_net_comm_config { /* ncclNetCommConfig_v10_t and _v11_t */
    int traffic_class;
};

struct nccl_net_attr; /* ncclNetAttr_v11_t: hints this plugin does not use */
struct nccl_net_device_handle; /* device offload, which this plugin does not do */

/* Every call returns NCCL_RESULT_SUCCESS or an error NCCL turns into the
 * failure of the collective that made the call. The calls after init come
 * from NCCL's proxy thread; none may block waiting for a peer (connect,
 * accept, isend, irecv and test are polled until they report progress). */
typedef struct {
    /* The net's name, which NCCL_NET selects and NCCL's log shows. */
    const char *name;
    /* Sets the net up for one communicator (comm_id), with the traffic
     * class NCCL was configured with; *ctx is handed back to listen,
     * connect and finalize. log: NCCL's logger; profiler: NCCL's profiler
     * hook (may be NULL). */
    nccl_result (*init)(void **ctx, uint64_t comm_id, struct nccl_net_comm_config *config, nccl_logger log,
                        nccl_profiler_callback profiler);
    /* How many network devices (NICs) the net offers. */
    nccl_result (*devices)(int *ndev);
    /* What device `dev` is and can do (name, PCI path for NCCL's topology,
     * speed, which memory it can send from, limits on comms and sizes). */
    nccl_result (*get_properties)(int dev, struct nccl_net_properties_v11 *props);
    /* Starts listening on `dev` and writes into `handle` (at most
     * NCCL_NET_HANDLE_BYTES) what a peer needs to connect; NCCL carries the
     * handle to that peer itself (its bootstrap). */
    nccl_result (*listen)(void *ctx, int dev, void *handle, void **listen_comm);
    /* Connects to the peer that made `handle`. Must not block: it returns
     * success with *send_comm NULL until the connection is made, and NCCL
     * calls again with the same handle. A non-NULL *send_dev_comm asks for
     * device offload. */
    nccl_result (*connect)(void *ctx, int dev, void *handle, void **send_comm,
                           struct nccl_net_device_handle **send_dev_comm);
    /* The listening side's half of connect, polled the same way: *recv_comm
     * stays NULL until a peer's connection is complete. */
    nccl_result (*accept)(void *listen_comm, void **recv_comm, struct nccl_net_device_handle **recv_dev_comm);
    /* Registers a buffer for sends and receives on `comm` (a send or a
     * receive comm); type NCCL_NET_PTR_HOST or GPU memory. *mhandle goes
     * back with every isend/irecv of that buffer and to dereg_mr. */
    nccl_result (*reg_mr)(void *comm, void *data, size_t size, int type, void **mhandle);
    /* The same for memory NCCL exports as a DMA-BUF file descriptor. */
    nccl_result (*reg_mr_dmabuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                 void **mhandle);
    /* Releases a registration. */
    nccl_result (*dereg_mr)(void *comm, void *mhandle);
    /* Starts sending `size` bytes to the peer of send_comm. *request NULL:
     * the net cannot take it now (too many in flight), NCCL posts again. */
    nccl_result (*isend)(void *send_comm, void *data, size_t size, int tag, void *mhandle, void *phandle,
                         void **request);
    /* Starts receiving into n buffers of up to sizes[i] bytes (n at most
     * the device's max_recvs), matched to sends by tag; *request NULL as
     * for isend. */
    nccl_result (*irecv)(void *recv_comm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                         void **phandles, void **request);
    /* Makes data received into GPU memory visible to the GPU; asked for
     * only when the device's force_flush says so. */
    nccl_result (*iflush)(void *recv_comm, int n, void **data, int *sizes, void **mhandles, void **request);
    /* Whether `request` completed (*done 1, after which the request is
     * gone); `sizes`, unless NULL, gets the bytes each buffer sent or
     * received. */
    nccl_result (*test)(void *request, int *done, int *sizes);
    /* Close and free a send comm, a receive comm, a listening comm. */
    nccl_result (*close_send)(void *send_comm);
    nccl_result (*close_recv)(void *recv_comm);
    nccl_result (*close_listen)(void *listen_comm);
    /* Device offload: a registration in the form the net's device code
     * uses. Unused by host-memory nets. */
    nccl_result (*get_device_mr)(void *comm, void *mhandle, void **dptr_mhandle);
    /* Device offload: the device has consumed a completed receive. */
    nccl_result (*irecv_consumed)(void *recv_comm, int n, void *request);
    /* Makes a virtual device of several physical ones (props); its index
     * goes to *d. */
    nccl_result (*make_vdevice)(int *d, struct nccl_net_vdevice_props *props);
    /* Ends what init set up for ctx's communicator. */
    nccl_result (*finalize)(void *ctx);
    /* Hints for ctx's communicator (flows per peer, the collective running). */
    nccl_result (*set_net_attr)(void *ctx, struct nccl_net_attr *attr);
} nccl_net_v11;

/* Version 10: one net for the whole process (init has no context, no
 * finalize), the traffic class given to connect instead of init. */
typedef struct {
    const char *name; /* as v11 */
    /* Sets the net up once per process. */
    nccl_result (*init)(nccl_logger log, nccl_profiler_callback profiler);
    nccl_result (*devices)(int *ndev);                                           /* as v11 */
    nccl_result (*get_properties)(int dev, struct nccl_net_properties_v9 *props); /* v9 properties */
    nccl_result (*listen)(int dev, void *handle, void **listen_comm);           /* as v11, no ctx */
    /* As v11's, with the communicator's traffic class in config. */
    nccl_result (*connect)(int dev, struct nccl_net_comm_config *config, void *handle, void **send_comm,
                           struct nccl_net_device_handle **send_dev_comm);
    /* The rest as in v11. */
    nccl_result (*accept)(void *listen_comm, void **recv_comm, struct nccl_net_device_handle **recv_dev_comm);
    nccl_result (*reg_mr)(void *comm, void *data, size_t size, int type, void **mhandle);
    nccl_result (*reg_mr_dmabuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                 void **mhandle);
    nccl_result (*dereg_mr)(void *comm, void *mhandle);
    nccl_result (*isend)(void *send_comm, void *data, size_t size, int tag, void *mhandle, void *phandle,
                         void **request);
    nccl_result (*irecv)(void *recv_comm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                         void **phandles, void **request);
    nccl_result (*iflush)(void *recv_comm, int n, void **data, int *sizes, void **mhandles, void **request);
    nccl_result (*test)(void *request, int *done, int *sizes);
    nccl_result (*close_send)(void *send_comm);
    nccl_result (*close_recv)(void *recv_comm);
    nccl_result (*close_listen)(void *listen_comm);
    nccl_result (*get_device_mr)(void *comm, void *mhandle, void **dptr_mhandle);
    nccl_result (*irecv_consumed)(void *recv_comm, int n, void *request);
    nccl_result (*make_vdevice)(int *d, struct nccl_net_vdevice_props *props);
} nccl_net_v10;

/* Version 9: as v10, without the profiler, the traffic class and the
 * profiler handles (phandle) of isend and irecv. */
typedef struct {
    const char *name;                                                            /* as v11 */
    nccl_result (*init)(nccl_logger log);                                        /* once per process */
    nccl_result (*devices)(int *ndev);                                           /* as v11 */
    nccl_result (*get_properties)(int dev, struct nccl_net_properties_v9 *props); /* v9 properties */
    nccl_result (*listen)(int dev, void *handle, void **listen_comm);           /* as v11, no ctx */
    /* As v11's, without a context or a traffic class. */
    nccl_result (*connect)(int dev, void *handle, void **send_comm, struct nccl_net_device_handle **send_dev_comm);
    nccl_result (*accept)(void *listen_comm, void **recv_comm, struct nccl_net_device_handle **recv_dev_comm);
    nccl_result (*reg_mr)(void *comm, void *data, size_t size, int type, void **mhandle);
    nccl_result (*reg_mr_dmabuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                 void **mhandle);
    nccl_result (*dereg_mr)(void *comm, void *mhandle);
    /* As v11's, without the profiler handle. */
    nccl_result (*isend)(void *send_comm, void *data, size_t size, int tag, void *mhandle, void **request);
    /* As v11's, without the profiler handles. */
    nccl_result (*irecv)(void *recv_comm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                         void **request);
    /* The rest as in v11. */
    nccl_result (*iflush)(void *recv_comm, int n, void **data, int *sizes, void **mhandles, void **request);
    nccl_result (*test)(void *request, int *done, int *sizes);
    nccl_result (*close_send)(void *send_comm);
    nccl_result (*close_recv)(void *recv_comm);
    nccl_result (*close_listen)(void *listen_comm);
    nccl_result (*get_device_mr)(void *comm, void *mhandle, void **dptr_mhandle);
    nccl_result (*irecv_consumed)(void *recv_comm, int n, void *request);
    nccl_result (*make_vdevice)(int *d, struct nccl_net_vdevice_props *props);
} nccl_net_v9;

#endif
