/* nccl_net_plugin.c — sagerun's NCCL net plugin: NCCL's ABI versions 11, 10
 * and 9 (nccl_net_abi.h) over the TLS engine (tls_net.h).
 *
 * Built as libnccl-net-sagerun.so. NCCL loads it when NCCL_NET_PLUGIN names
 * it (an absolute path, or "sagerun"); with NCCL_NET=sagerun-tls a plugin
 * that fails to load or initialise is an error rather than a silent fall
 * back to NCCL's plaintext sockets. The launcher sets both only when the
 * job encrypts inter-container traffic.
 *
 * One interface (device 0), host memory only: NCCL stages GPU data through
 * host buffers, as it does for its own socket transport. One receive per
 * irecv (maxRecvs 1), so tags need no matching.
 *
 * Process-wide state, because the ABI has process-wide entry points: NCCL's
 * logger, the device description (getProperties takes no context), and for
 * v9/v10, whose calls carry no context at all, the one engine they share.
 * v11 gives every communicator an engine of its own (init/finalize).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "nccl_net_abi.h"
#include "tls_net.h"

#define PLUGIN_NAME "sagerun-tls"
#define EXPORT __attribute__((visibility("default")))

static struct {
    pthread_mutex_t lock;
    nccl_logger log;
    bool described;
    char name[64];
    char pci_path[FS_PATH_BYTES];
    bool has_pci;
    int speed_mbps;
    struct tls_net *shared; /* v9/v10 */
} plugin = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void log_message(bool warning, const char *message)
{
    if (warning) { /* NCCL prints its log only when NCCL_DEBUG asks; failures must always show */
        char line[SR_ERROR_MAX + 64];
        int n = snprintf(line, sizeof line, "[sagerun-net] %s\n", message);
        ssize_t w = write(STDERR_FILENO, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
        (void)w; /* nowhere left to report a failed write to stderr */
    }
    nccl_logger log = plugin.log;
    if (log)
        log(warning ? NCCL_LOG_WARN : NCCL_LOG_INFO, NCCL_LOG_NET | NCCL_LOG_INIT, __FILE__, __LINE__, "%s", message);
}

static nccl_result fail(const struct sr_error *err, nccl_result code)
{
    log_message(true, err->text);
    return code;
}

static nccl_result create_net(nccl_logger log, struct tls_net **out)
{
    struct sr_error err = {0};
    pthread_mutex_lock(&plugin.lock);
    if (log)
        plugin.log = log;
    pthread_mutex_unlock(&plugin.lock);
    if (tls_net_create(log_message, out, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    struct tls_net_device d;
    tls_net_device(*out, &d);
    pthread_mutex_lock(&plugin.lock);
    if (!plugin.described) {
        snprintf(plugin.name, sizeof plugin.name, "%s", d.name);
        plugin.has_pci = d.pci_path != NULL;
        snprintf(plugin.pci_path, sizeof plugin.pci_path, "%s", d.pci_path ? d.pci_path : "");
        plugin.speed_mbps = d.speed_mbps;
        plugin.described = true;
    }
    pthread_mutex_unlock(&plugin.lock);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result devices(int *ndev)
{
    *ndev = 1;
    return NCCL_RESULT_SUCCESS;
}

static nccl_result properties(int dev, struct nccl_net_properties_v9 *p)
{
    if (dev != 0 || !plugin.described) {
        struct sr_error err = {0};
        error_setf(&err, "sagerun net plugin: properties of device %d asked for %s", dev,
                   plugin.described ? "(there is only device 0)" : "before init");
        return fail(&err, NCCL_RESULT_INVALID_ARGUMENT);
    }
    memset(p, 0, sizeof *p);
    p->name = plugin.name;
    p->pci_path = plugin.has_pci ? plugin.pci_path : NULL;
    p->guid = 0;
    p->ptr_support = NCCL_NET_PTR_HOST;
    p->speed_mbps = plugin.speed_mbps;
    p->latency = 0;
    p->max_comms = 65536;
    p->max_recvs = 1;
    p->net_device_type = NCCL_NET_DEVICE_HOST;
    p->vprops.ndevs = 1;
    p->vprops.devs[0] = 0;
    p->max_p2p_bytes = NCCL_NET_MAX_BYTES;
    p->max_coll_bytes = NCCL_NET_MAX_BYTES;
    return NCCL_RESULT_SUCCESS;
}

static nccl_result properties_v11(int dev, struct nccl_net_properties_v11 *p)
{
    nccl_result rc = properties(dev, &p->v9);
    p->max_multi_request_size = 1;
    return rc;
}

static nccl_result listen_on(struct tls_net *net, int dev, void *handle, void **listen_comm)
{
    struct sr_error err = {0};
    if (dev != 0) {
        error_setf(&err, "sagerun net plugin: listen on device %d (there is only device 0)", dev);
        return fail(&err, NCCL_RESULT_INVALID_ARGUMENT);
    }
    if (tls_net_listen(net, handle, (struct tls_net_listen **)listen_comm, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result connect_to(struct tls_net *net, void *handle, void **send_comm)
{
    struct sr_error err = {0};
    if (tls_net_connect(net, handle, (struct tls_net_comm **)send_comm, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result accept_from(void *listen_comm, void **recv_comm, struct nccl_net_device_handle **dev_comm)
{
    (void)dev_comm;
    struct sr_error err = {0};
    if (tls_net_accept(listen_comm, (struct tls_net_comm **)recv_comm, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result reg_mr(void *comm, void *data, size_t size, int type, void **mhandle)
{
    (void)comm, (void)data, (void)size;
    *mhandle = NULL; /* plain sockets need no registration */
    if (type == NCCL_NET_PTR_HOST)
        return NCCL_RESULT_SUCCESS;
    struct sr_error err = {0};
    error_setf(&err, "sagerun net plugin: asked to register memory of type %d; it supports host memory only", type);
    return fail(&err, NCCL_RESULT_INTERNAL_ERROR);
}

static nccl_result reg_mr_dmabuf(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                 void **mhandle)
{
    (void)offset, (void)fd;
    return reg_mr(comm, data, size, type, mhandle);
}

static nccl_result dereg_mr(void *comm, void *mhandle)
{
    (void)comm, (void)mhandle;
    return NCCL_RESULT_SUCCESS;
}

static nccl_result post(void *comm, bool sending, void *data, size_t size, void **request)
{
    struct sr_error err = {0};
    if (tls_net_is_sender(comm) != sending || size > (size_t)NCCL_NET_MAX_BYTES) {
        error_setf(&err, "sagerun net plugin: %s of %zu bytes on a %s comm", sending ? "isend" : "irecv", size,
                   tls_net_is_sender(comm) ? "send" : "receive");
        return fail(&err, NCCL_RESULT_INVALID_ARGUMENT);
    }
    if (tls_net_post(comm, data, size, (struct tls_net_request **)request, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result isend(void *send_comm, void *data, size_t size, int tag, void *mhandle, void *phandle,
                         void **request)
{
    (void)tag, (void)mhandle, (void)phandle;
    return post(send_comm, true, data, size, request);
}

static nccl_result isend_v9(void *send_comm, void *data, size_t size, int tag, void *mhandle, void **request)
{
    return isend(send_comm, data, size, tag, mhandle, NULL, request);
}

static nccl_result irecv(void *recv_comm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                         void **phandles, void **request)
{
    (void)tags, (void)mhandles, (void)phandles;
    if (n != 1) {
        struct sr_error err = {0};
        error_setf(&err, "sagerun net plugin: irecv of %d buffers; it offers one (maxRecvs 1)", n);
        return fail(&err, NCCL_RESULT_INTERNAL_ERROR);
    }
    return post(recv_comm, false, data[0], sizes[0], request);
}

static nccl_result irecv_v9(void *recv_comm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                            void **request)
{
    return irecv(recv_comm, n, data, sizes, tags, mhandles, NULL, request);
}

static nccl_result iflush(void *recv_comm, int n, void **data, int *sizes, void **mhandles, void **request)
{
    (void)recv_comm, (void)n, (void)data, (void)sizes, (void)mhandles, (void)request;
    struct sr_error err = {0};
    error_setf(&err, "sagerun net plugin: iflush called; host memory never needs one (forceFlush is 0)");
    return fail(&err, NCCL_RESULT_INTERNAL_ERROR);
}

static nccl_result test(void *request, int *done, int *sizes)
{
    struct sr_error err = {0};
    size_t size = 0;
    if (tls_net_test(request, done, &size, &err) != 0)
        return fail(&err, NCCL_RESULT_SYSTEM_ERROR);
    if (*done && sizes)
        *sizes = (int)size; /* at most NCCL_NET_MAX_BYTES */
    return NCCL_RESULT_SUCCESS;
}

static nccl_result close_comm(void *comm)
{
    tls_net_close(comm);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result close_listen(void *listen_comm)
{
    tls_net_close_listen(listen_comm);
    return NCCL_RESULT_SUCCESS;
}

/* ---- v11: an engine per communicator ----------------------------------- */

static nccl_result init_v11(void **ctx, uint64_t comm_id, struct nccl_net_comm_config *config, nccl_logger log,
                            nccl_profiler_callback profiler)
{
    (void)comm_id, (void)config, (void)profiler;
    return create_net(log, (struct tls_net **)ctx);
}

static nccl_result finalize_v11(void *ctx)
{
    tls_net_destroy(ctx);
    return NCCL_RESULT_SUCCESS;
}

static nccl_result listen_v11(void *ctx, int dev, void *handle, void **listen_comm)
{
    return listen_on(ctx, dev, handle, listen_comm);
}

static nccl_result connect_v11(void *ctx, int dev, void *handle, void **send_comm,
                               struct nccl_net_device_handle **dev_comm)
{
    (void)dev, (void)dev_comm;
    return connect_to(ctx, handle, send_comm);
}

EXPORT nccl_net_v11 ncclNetPlugin_v11 = {
    .name = PLUGIN_NAME,
    .init = init_v11,
    .devices = devices,
    .get_properties = properties_v11,
    .listen = listen_v11,
    .connect = connect_v11,
    .accept = accept_from,
    .reg_mr = reg_mr,
    .reg_mr_dmabuf = reg_mr_dmabuf,
    .dereg_mr = dereg_mr,
    .isend = isend,
    .irecv = irecv,
    .iflush = iflush,
    .test = test,
    .close_send = close_comm,
    .close_recv = close_comm,
    .close_listen = close_listen,
    .finalize = finalize_v11,
};

/* ---- v10 and v9: one engine for the process ---------------------------- */

static nccl_result init_shared(nccl_logger log)
{
    pthread_mutex_lock(&plugin.lock);
    bool ready = plugin.shared != NULL;
    pthread_mutex_unlock(&plugin.lock);
    if (ready)
        return NCCL_RESULT_SUCCESS;
    struct tls_net *net;
    nccl_result rc = create_net(log, &net);
    if (rc != NCCL_RESULT_SUCCESS)
        return rc;
    pthread_mutex_lock(&plugin.lock);
    if (plugin.shared) /* another thread won the race */
        tls_net_destroy(net);
    else
        plugin.shared = net;
    pthread_mutex_unlock(&plugin.lock);
    return NCCL_RESULT_SUCCESS;
}

/* When NCCL unloads the plugin (or the process ends), the v9/v10 engine
 * goes with it; comms still open are NCCL's to close first. */
__attribute__((destructor)) static void release_shared(void)
{
    tls_net_destroy(plugin.shared);
    plugin.shared = NULL;
}

static nccl_result init_v10(nccl_logger log, nccl_profiler_callback profiler)
{
    (void)profiler;
    return init_shared(log);
}

static nccl_result listen_shared(int dev, void *handle, void **listen_comm)
{
    return listen_on(plugin.shared, dev, handle, listen_comm);
}

static nccl_result connect_v10(int dev, struct nccl_net_comm_config *config, void *handle, void **send_comm,
                               struct nccl_net_device_handle **dev_comm)
{
    (void)dev, (void)config, (void)dev_comm;
    return connect_to(plugin.shared, handle, send_comm);
}

static nccl_result connect_v9(int dev, void *handle, void **send_comm, struct nccl_net_device_handle **dev_comm)
{
    (void)dev, (void)dev_comm;
    return connect_to(plugin.shared, handle, send_comm);
}

static nccl_result properties_v9(int dev, struct nccl_net_properties_v9 *p) { return properties(dev, p); }

EXPORT nccl_net_v10 ncclNetPlugin_v10 = {
    .name = PLUGIN_NAME,
    .init = init_v10,
    .devices = devices,
    .get_properties = properties_v9,
    .listen = listen_shared,
    .connect = connect_v10,
    .accept = accept_from,
    .reg_mr = reg_mr,
    .reg_mr_dmabuf = reg_mr_dmabuf,
    .dereg_mr = dereg_mr,
    .isend = isend,
    .irecv = irecv,
    .iflush = iflush,
    .test = test,
    .close_send = close_comm,
    .close_recv = close_comm,
    .close_listen = close_listen,
};

EXPORT nccl_net_v9 ncclNetPlugin_v9 = {
    .name = PLUGIN_NAME,
    .init = init_shared,
    .devices = devices,
    .get_properties = properties_v9,
    .listen = listen_shared,
    .connect = connect_v9,
    .accept = accept_from,
    .reg_mr = reg_mr,
    .reg_mr_dmabuf = reg_mr_dmabuf,
    .dereg_mr = dereg_mr,
    .isend = isend_v9,
    .irecv = irecv_v9,
    .iflush = iflush,
    .test = test,
    .close_send = close_comm,
    .close_recv = close_comm,
    .close_listen = close_listen,
};
