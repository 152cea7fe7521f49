/* token_data.h — the training tokens of one input channel, batch by batch.
 *
 * Data is in llm.c's shard format, so llm.c's preparation scripts work
 * unchanged: a header of 256 int32 (magic 20240520, version 1, token count)
 * then that many uint16 tokens.
 *   File mode: every *.bin file of the channel directory, in name order.
 *   Pipe mode: the shards back to back in the FIFOs SageMaker creates,
 *     <dir>/<channel>_0, _1, ... one per pass over the data; with
 *     RecordWrapperType RecordIO, each shard is one RecordIO record
 *     (recordio.h), unwrapped here, and a record that holds anything but
 *     exactly one shard is refused.
 * A batch is a window of `window` consecutive tokens of one shard (B*T + 1:
 * B sequences of T inputs, each target the next token); consecutive windows
 * overlap by one token (llm.c's layout). A window that no longer fits in a
 * shard moves on to the next shard; after the last shard comes the next
 * epoch. The position of the next window is what a checkpoint keeps; every
 * rank reads the same windows and takes its own sequences from each.
 */
#ifndef SAGERUN_TOKEN_DATA_H
#define SAGERUN_TOKEN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "contract.h"
#include "error.h"
#include "recordio.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256

/* Where the next window starts. shard: file index, or record index in the
 * epoch's FIFO. With shared epochs (token_source_share_epochs) a position
 * is told as shard -1 and offset = windows already taken in the epoch: the
 * same on every host, whose files differ. */
struct data_position {
    int64_t epoch, shard, offset;
};

struct token_source {
    char *channel, *dir;
    enum input_mode mode;
    size_t window;
    int vocab_size;
    struct data_position pos;
    int64_t epoch_limit;  /* File mode, shared epochs: windows an epoch holds; 0: all the files give */
    int64_t epoch_window; /* windows taken in this epoch */
    /* File mode: the shards, mapped. */
    size_t shard_count;
    char **paths;
    const uint16_t **tokens;
    size_t *token_count;
    size_t *map_len;
    /* Pipe mode: the open FIFO and the window being assembled. */
    int fd;
    bool recordio;          /* the FIFO's shards come wrapped in RecordIO records */
    struct recordio rio;
    int64_t first_epoch;   /* epoch read from FIFO _0 in this process */
    int64_t record_tokens; /* of the current record; -1: its header is next */
    size_t have;           /* tokens of the next window already in buf */
    uint16_t *buf;
    double open_timeout_s;
};

/* Opens `channel` in `dir` (the channel's directory in File mode, the
 * directory holding the FIFOs in Pipe mode). File mode checks every shard's
 * header and size now, and that one window fits in some shard. */
int token_source_open(struct token_source *s, const char *channel, const char *dir, enum input_mode mode,
                      size_t window, int vocab_size, struct sr_error *err);

/* Pipe mode: the records come RecordIO-wrapped (call before reading). */
void token_source_recordio(struct token_source *s);

/* File mode: the windows one pass over the files gives. */
int64_t token_source_epoch_windows(const struct token_source *s);

/* File mode, for ShardedByS3Key (each host its own files): every epoch
 * ends after `limit` windows (the hosts agree on it: the fewest any host
 * has), and positions are told in windows (struct data_position). */
void token_source_share_epochs(struct token_source *s, int64_t limit);

/* The position a checkpoint keeps: where the next window starts. */
struct data_position token_source_position(const struct token_source *s);

/* Moves to `pos` (from a checkpoint): a Pipe-mode source must not have read
 * anything yet, and reads forward to it. */
int token_source_seek(struct token_source *s, const struct data_position *pos, struct sr_error *err);

/* The next window (valid until the next call); checks every token against
 * the vocabulary. */
int token_source_next(struct token_source *s, const uint16_t **window, struct sr_error *err);

void token_source_close(struct token_source *s);

/* Writes one shard file (used by `sagerun sample` and by tests). */
int shard_write(const char *path, const uint16_t *tokens, size_t count, struct sr_error *err);

#endif
