/* emu_nccl.cpp — the NCCL calls the engine makes, for ranks that are
 * processes on one machine sharing a file mapping instead of GPUs sharing
 * links. The unique id names the file (in $TMPDIR); every rank maps it,
 * and ncclCommInitRank returns when all have.
 *
 * An all-reduce is stream work (emu_internal.hpp), run when the emulated
 * stream reaches it, as NCCL's kernel runs when the GPU does: the rank
 * posts its buffer into its slot, waits for every rank's post, sums the
 * slots in rank order (so every rank gets the same bits, and bf16 sums
 * round after each add, in fp32 arithmetic), and marks the slot read; a
 * rank posts the next collective only after all have read the last. While
 * it waits the work returns "not yet", so a peer that never comes leaves
 * the collective incomplete for good (a watchdog's case), never the
 * process stuck inside the emulator.
 *
 * Semantics kept: calls complete in issue order per communicator, ranks
 * must issue the same collectives in the same order, in-place operation
 * (send == recv) works, ncclGroupStart/End only batch (the calls inside are
 * issued in order). Not modelled: other collectives and reduction ops
 * (refused), more than one communicator per id, link speed, NCCL's own
 * error detection (ncclCommGetAsyncError reports only an abort).
 */
#include "cuda_emu.hpp"
#include "emu_internal.hpp"

#include <fcntl.h>
#include <nccl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>

namespace {

constexpr int MAX_RANKS = 16;
constexpr size_t SLOT_BYTES = 16u << 20; /* the largest message, per rank */

struct shared_header {
    std::atomic<int> joined;
    std::atomic<uint64_t> posted[MAX_RANKS]; /* the last collective each rank posted */
    std::atomic<uint64_t> read[MAX_RANKS];   /* the last one each rank has finished reading */
};

/* Our types are fp32 and bf16 (ncclAllReduce refuses others). */
size_t element_bytes(ncclDataType_t t)
{
    return cuda_emu::element_bytes(t == ncclFloat32);
}

} /* namespace */

struct ncclComm {
    int rank, world;
    shared_header *header;
    unsigned char *slots;
    size_t map_bytes;
    uint64_t issued = 0; /* collectives issued by this rank */
    std::atomic<bool> aborted{false};
    char last_error[256] = "";
};

namespace {

unsigned char *slot(ncclComm *c, int rank)
{
    return c->slots + (size_t)rank * SLOT_BYTES;
}

/* One all-reduce as a state machine the stream advances. */
struct all_reduce {
    ncclComm *comm;
    uint64_t seq;
    const void *send;
    void *recv;
    size_t count;
    ncclDataType_t type;
    bool posted = false;

    bool advance()
    {
        shared_header *h = comm->header;
        if (comm->aborted)
            return true; /* an aborted communicator's work ends without effect, as NCCL's */
        if (!posted) {
            for (int q = 0; q < comm->world; q++)
                if (h->read[q].load() + 1 < seq)
                    return false; /* someone still reads the previous collective's slots */
            memcpy(slot(comm, comm->rank), send, count * element_bytes(type));
            h->posted[comm->rank].store(seq);
            posted = true;
        }
        for (int q = 0; q < comm->world; q++)
            if (h->posted[q].load() < seq)
                return false;
        bool fp32 = type == ncclFloat32;
        for (size_t i = 0; i < count; i++) {
            float sum = cuda_emu::load_element(slot(comm, 0), fp32, i);
            for (int q = 1; q < comm->world; q++) {
                sum += cuda_emu::load_element(slot(comm, q), fp32, i);
                if (!fp32)
                    sum = __bfloat162float(__float2bfloat16_rn(sum));
            }
            cuda_emu::store_element(recv, fp32, i, sum);
        }
        h->read[comm->rank].store(seq);
        return true;
    }
};

ncclResult_t refuse(ncclComm *c, ncclResult_t r, const char *why)
{
    if (c)
        snprintf(c->last_error, sizeof c->last_error, "emulated NCCL: %s", why);
    fprintf(stderr, "cuda_emu: NCCL: %s\n", why);
    return r;
}

} /* namespace */

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unhandled NCCL error";
    }
}

const char *ncclGetLastError(ncclComm_t comm)
{
    return comm ? comm->last_error : "";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    static std::atomic<unsigned> made{0};
    const char *dir = getenv("TMPDIR");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "%s/sagerun-emu-nccl-%d-%u-%ld", dir && *dir ? dir : "/tmp",
             (int)getpid(), made++, (long)now.tv_nsec);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int world, ncclUniqueId id, int rank)
{
    *out = nullptr;
    if (world < 1 || world > MAX_RANKS || rank < 0 || rank >= world)
        return refuse(nullptr, ncclInvalidArgument, "ranks: 1 to 16, each below the world");
    size_t bytes = sizeof(shared_header) + (size_t)world * SLOT_BYTES;
    int fd = open(id.internal, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
        if (fd >= 0)
            close(fd);
        return refuse(nullptr, ncclSystemError, "cannot create the communicator's file");
    }
    void *map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return refuse(nullptr, ncclSystemError, "cannot map the communicator's file");
    auto *c = new ncclComm;
    c->rank = rank;
    c->world = world;
    c->header = (shared_header *)map; /* a new file is zeros: every counter starts at 0 */
    c->slots = (unsigned char *)map + sizeof(shared_header);
    c->map_bytes = bytes;
    if (c->header->joined.fetch_add(1) + 1 == world)
        unlink(id.internal); /* all have it mapped: nothing is left behind, whatever happens next */
    while (c->header->joined.load() < world) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, nullptr);
    }
    *out = c;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (comm)
        comm->aborted = true;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm)
        return ncclSuccess;
    munmap(comm->header, comm->map_bytes);
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *error)
{
    *error = comm->aborted ? ncclSystemError : ncclSuccess;
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void)
{
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void)
{
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream)
{
    if (op != ncclSum || (type != ncclFloat32 && type != ncclBfloat16))
        return refuse(comm, ncclInvalidArgument, "only sums of fp32 or bf16 are emulated");
    if (count * element_bytes(type) > SLOT_BYTES)
        return refuse(comm, ncclInvalidArgument, "a message over the emulator's 16 MiB slot");
    if (!cuda_emu::in_device_memory(send, count * element_bytes(type)) ||
        !cuda_emu::in_device_memory(recv, count * element_bytes(type)))
        return refuse(comm, ncclInvalidArgument, "buffers must be device memory");
    auto op_state = std::make_shared<all_reduce>(all_reduce{comm, ++comm->issued, send, recv, count, type});
    cuda_emu::enqueue(stream, "an NCCL all-reduce", [op_state] { return op_state->advance(); });
    return ncclSuccess;
}

} /* extern "C" */
