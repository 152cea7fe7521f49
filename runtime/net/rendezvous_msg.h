/* rendezvous_msg.h — the rendezvous wire format.
 *
 * A frame is a 4-byte big-endian length, then that many bytes (at most
 * RDZV_MAX_MESSAGE) of one JSON object whose "op" says what it is:
 *   host launchers -> leader: join {job, host, index, ranks, addr},
 *                              heartbeat [{idle}: seconds since a rank of
 *                              the host last made progress, while its
 *                              ranks run], failed {reason}, done {status},
 *                              stopped {signal} (this host got SIGTERM/SIGINT)
 *   leader -> launchers:       welcome {hosts: [{host, ranks, addr}]},
 *                              heartbeat, abort {host, reason},
 *                              finished (every host is done: the job ended well),
 *                              hang {idle} (no rank of the job made progress
 *                              for idle seconds: collect the stacks, fail)
 *   ranks <-> leader:          set {key, value}, get {key} -> value {key, value}
 *   anyone -> leader:          failed_on {host, reason}: a failure that is
 *                              host's, told by another (under mpirun: a slot
 *                              whose rank failed of itself, or the leader
 *                              that cannot reach host); the reason tells it
 *                              whole, naming the host
 * rdzv_parse checks everything a peer controls (framing, JSON, types,
 * lengths, ranges) before anyone uses it, so a hostile or broken peer can
 * cost the leader a connection but never its memory or its life.
 */
#ifndef SAGERUN_RENDEZVOUS_MSG_H
#define SAGERUN_RENDEZVOUS_MSG_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "strbuf.h"

#define RDZV_MAX_MESSAGE 65536
#define RDZV_MAX_NAME 255
#define RDZV_MAX_KEY 256
#define RDZV_MAX_VALUE 16384
#define RDZV_MAX_REASON 4096
#define RDZV_MAX_HOSTS 1024
#define RDZV_MAX_RANKS 1024 /* per host */

enum rdzv_op {
    RDZV_JOIN, RDZV_WELCOME, RDZV_HEARTBEAT, RDZV_FAILED, RDZV_DONE, RDZV_ABORT,
    RDZV_SET, RDZV_GET, RDZV_VALUE, RDZV_FINISHED, RDZV_STOPPED, RDZV_FAILED_ON, RDZV_HANG,
};

struct rdzv_host {
    const char *name;
    int ranks;
    const char *addr;
};

/* A parsed message. Strings point into `json`; rdzv_msg_free releases all. */
struct rdzv_msg {
    enum rdzv_op op;
    json_t *json;
    const char *job, *host, *addr, *reason, *key, *value, *signal;
    int index, ranks, status;
    double idle; /* heartbeat, hang: seconds without progress; -1 when absent */
    struct rdzv_host *hosts; /* welcome */
    size_t host_count;
};

/* Parses one message body (without the length prefix). */
int rdzv_parse(const char *data, size_t len, struct rdzv_msg *out, struct sr_error *err);
void rdzv_msg_free(struct rdzv_msg *m);

/* A JSON string of free text (a failure story with a rank's output in it):
 * bytes that are not valid UTF-8 become '?', so any text can be sent. */
json_t *rdzv_text(const char *text);

/* Appends the frame of `msg` (which it releases) to `out`. */
void rdzv_frame(json_t *msg, struct strbuf *out);

/* Takes the first complete frame off the front of `in` and parses it.
 * Returns 1 (a message), 0 (need more bytes) or -1 (bad frame; err says). */
int rdzv_take(struct strbuf *in, struct rdzv_msg *out, struct sr_error *err);

#endif
