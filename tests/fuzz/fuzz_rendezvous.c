/* libFuzzer target over the rendezvous wire format: the bytes a hostile or
 * broken peer can put on the leader's socket. The input is fed as a stream
 * of frames, split at an input-chosen point (a message may arrive in pieces)
 * through the same rdzv_take the server uses; every parsed message is freed.
 * Any crash, leak, overread or UB report fails the run. */
#include <stddef.h>
#include <stdint.h>

#include "rendezvous_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % (size);
    data++, size--;
    struct strbuf in;
    strbuf_init(&in);
    size_t fed = split < size ? split : size;
    strbuf_append(&in, (const char *)data, fed);
    for (int round = 0; round < 2; round++) {
        for (;;) {
            struct rdzv_msg m;
            struct sr_error err = {{0}};
            int got = rdzv_take(&in, &m, &err);
            if (got <= 0) {
                if (got < 0)
                    strbuf_reset(&in); /* the server drops such a peer */
                break;
            }
            rdzv_msg_free(&m);
        }
        strbuf_append(&in, (const char *)data + fed, size - fed);
        fed = size;
    }
    strbuf_free(&in);
    return 0;
}
