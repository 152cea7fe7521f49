#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "rendezvous.h"

int rdzv_client_connect(struct rdzv_client *cl, const struct sockaddr_in *leader, SSL_CTX *ctx, double deadline,
                        struct sr_error *err)
{
    strbuf_init(&cl->in);
    bool timed_out;
    struct sr_error e = {{0}};
    if (conn_connect_retry(leader, ctx, deadline, 0.1, 5.0, &cl->c, &timed_out, &e) == 0)
        return 0;
    if (timed_out)
        error_setf(err, "rendezvous: the leader did not answer before the deadline (last: %s)", e.text);
    else
        error_setf(err, "rendezvous: %s", e.text);
    strbuf_free(&cl->in);
    cl->c.fd = -1;
    return -1;
}

void rdzv_client_close(struct rdzv_client *cl)
{
    if (cl->c.fd >= 0)
        conn_close(&cl->c);
    strbuf_free(&cl->in);
}

int rdzv_send(struct rdzv_client *cl, json_t *msg, double deadline, struct sr_error *err)
{
    if (!msg) { /* json_pack refuses strings that are not UTF-8 */
        error_setf(err, "rendezvous: a key, value or name is not valid UTF-8");
        return -1;
    }
    struct strbuf frame;
    strbuf_init(&frame);
    rdzv_frame(msg, &frame);
    int rc = conn_send_all(&cl->c, frame.data, frame.len, deadline, err);
    strbuf_free(&frame);
    return rc;
}

int rdzv_next(struct rdzv_client *cl, struct rdzv_msg *m, double deadline, struct sr_error *err)
{
    for (;;) {
        int got = rdzv_take(&cl->in, m, err);
        if (got != 0)
            return got;
        char chunk[16384];
        short events = 0;
        ssize_t n = conn_recv_some(&cl->c, chunk, sizeof chunk, &events, err);
        if (n < 0)
            return -1;
        if (n > 0) {
            strbuf_append(&cl->in, chunk, (size_t)n);
            continue;
        }
        double left = deadline - clock_now();
        if (left <= 0)
            return 0;
        struct pollfd p = {cl->c.fd, events, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) < 0) {
            error_setf(err, "rendezvous: poll: %s", strerror(errno));
            return -1;
        }
    }
}

/* Waits for a reply of type `op`, skipping heartbeats; an abort fails. */
static int await(struct rdzv_client *cl, enum rdzv_op op, struct rdzv_msg *m, double deadline, const char *what,
                 struct sr_error *err)
{
    for (;;) {
        int got = rdzv_next(cl, m, deadline, err);
        if (got <= 0) {
            if (got == 0)
                error_setf(err, "rendezvous: %s: no answer before the deadline", what);
            return -1;
        }
        if (m->op == op)
            return 0;
        if (m->op == RDZV_ABORT) {
            error_setf(err, "rendezvous: %s: the job was aborted: %s", what, m->reason);
            rdzv_msg_free(m);
            return -1;
        }
        rdzv_msg_free(m);
    }
}

int rdzv_set(struct rdzv_client *cl, const char *key, const char *value, double deadline, struct sr_error *err)
{
    return rdzv_send(cl, json_pack("{s:s, s:s, s:s}", "op", "set", "key", key, "value", value), deadline, err);
}

int rdzv_get(struct rdzv_client *cl, const char *key, char **value, double deadline, struct sr_error *err)
{
    if (rdzv_send(cl, json_pack("{s:s, s:s}", "op", "get", "key", key), deadline, err) != 0)
        return -1;
    struct rdzv_msg m;
    char what[300];
    snprintf(what, sizeof what, "waiting for key \"%s\"", key);
    if (await(cl, RDZV_VALUE, &m, deadline, what, err) != 0)
        return -1;
    *value = strdup(m.value);
    rdzv_msg_free(&m);
    return 0;
}
