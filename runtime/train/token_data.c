#include "token_data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "strbuf.h"
#include "transport.h"

#define HEADER_BYTES (SHARD_HEADER_INTS * sizeof(int32_t))
#define PIPE_OPEN_TIMEOUT_S 600.0 /* SageMaker creates an epoch's FIFO when the previous one is done */

static int check_header(const int32_t *h, const char *where, int64_t *count, struct sr_error *err)
{
    if (h[0] != SHARD_MAGIC || h[1] != SHARD_VERSION) {
        if ((h[0] & 0xffff) == 0x8b1f) /* gzip's first two bytes, 1f 8b */
            error_setf(err, "%s: gzip data, not a token shard: the trainer reads shards uncompressed", where);
        else
            error_setf(err, "%s: not a token shard: header magic %d version %d (llm.c's format has magic %d version "
                            "%d)", where, h[0], h[1], SHARD_MAGIC, SHARD_VERSION);
        return -1;
    }
    if (h[2] < 0) {
        error_setf(err, "%s: header says %d tokens", where, h[2]);
        return -1;
    }
    *count = h[2];
    return 0;
}

static int has_bin_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".bin") == 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int map_shard(struct token_source *s, size_t i, struct sr_error *err)
{
    int fd = open(s->paths[i], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        error_setf(err, "channel %s: cannot open %s: %s", s->channel, s->paths[i], strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int64_t count = 0;
    void *map = st.st_size >= (off_t)HEADER_BYTES ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
                                                  : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) {
        error_setf(err, "channel %s: %s: %s", s->channel, s->paths[i],
                   st.st_size < (off_t)HEADER_BYTES ? "shorter than the 1024-byte header" : strerror(errno));
        return -1;
    }
    s->map_len[i] = (size_t)st.st_size;
    s->tokens[i] = (const uint16_t *)((const char *)map + HEADER_BYTES);
    if (check_header(map, s->paths[i], &count, err) != 0)
        return -1;
    if ((size_t)st.st_size != HEADER_BYTES + (size_t)count * 2) {
        error_setf(err, "%s: header says %lld tokens (%zu bytes with the header) but the file has %lld bytes",
                   s->paths[i], (long long)count, HEADER_BYTES + (size_t)count * 2, (long long)st.st_size);
        return -1;
    }
    s->token_count[i] = (size_t)count;
    return 0;
}

static int open_files(struct token_source *s, struct sr_error *err)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        error_setf(err, "channel %s: cannot list %s: %s", s->channel, s->dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_bin_suffix(e->d_name))
            continue;
        if (s->shard_count == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(s->paths, cap * sizeof *grown);
            if (!grown)
                abort();
            s->paths = grown;
        }
        struct strbuf p;
        strbuf_init(&p);
        strbuf_printf(&p, "%s/%s", s->dir, e->d_name);
        s->paths[s->shard_count++] = strbuf_detach(&p);
    }
    closedir(d);
    if (s->shard_count == 0) {
        error_setf(err, "channel %s: no token shards (*.bin) in %s", s->channel, s->dir);
        return -1;
    }
    qsort(s->paths, s->shard_count, sizeof *s->paths, compare_strings);
    s->tokens = xcalloc(s->shard_count, sizeof *s->tokens);
    s->token_count = xcalloc(s->shard_count, sizeof *s->token_count);
    s->map_len = xcalloc(s->shard_count, sizeof *s->map_len);
    size_t longest = 0;
    for (size_t i = 0; i < s->shard_count; i++) {
        if (map_shard(s, i, err) != 0)
            return -1;
        if (s->token_count[i] > longest)
            longest = s->token_count[i];
    }
    if (longest < s->window) {
        error_setf(err, "channel %s: a batch needs %zu consecutive tokens but the longest shard in %s has %zu",
                   s->channel, s->window, s->dir, longest);
        return -1;
    }
    return 0;
}

int token_source_open(struct token_source *s, const char *channel, const char *dir, enum input_mode mode,
                      size_t window, int vocab_size, struct sr_error *err)
{
    memset(s, 0, sizeof *s);
    s->channel = xstrdup(channel);
    s->dir = xstrdup(dir);
    s->mode = mode;
    s->window = window;
    s->vocab_size = vocab_size;
    s->fd = -1;
    s->record_tokens = -1;
    s->open_timeout_s = PIPE_OPEN_TIMEOUT_S;
    if (mode == INPUT_MODE_PIPE) {
        s->buf = xcalloc(window, sizeof *s->buf);
        return 0;
    }
    return open_files(s, err);
}

void token_source_recordio(struct token_source *s)
{
    s->recordio = true;
}

static int check_tokens(const struct token_source *s, const uint16_t *w, struct sr_error *err)
{
    for (size_t i = 0; i < s->window; i++)
        if (w[i] >= s->vocab_size) {
            error_setf(err, "channel %s: token %u at epoch %lld shard %lld offset %lld is outside the vocabulary "
                            "(vocab_size %d)", s->channel, w[i], (long long)s->pos.epoch, (long long)s->pos.shard,
                       (long long)(s->pos.offset + (int64_t)i), s->vocab_size);
            return -1;
        }
    return 0;
}

/* Moves pos to where the next window fits: past the shared epoch's end,
 * past shards too short for what is left of them, into the next epoch
 * after the last shard. */
static void to_next_window(struct token_source *s)
{
    if (s->epoch_limit && s->epoch_window == s->epoch_limit)
        s->pos = (struct data_position){s->pos.epoch + 1, 0, 0};
    while ((size_t)s->pos.offset + s->window > s->token_count[s->pos.shard]) {
        s->pos.offset = 0;
        if (++s->pos.shard == (int64_t)s->shard_count) {
            s->pos.shard = 0;
            s->pos.epoch++;
        }
    }
    if (s->pos.shard == 0 && s->pos.offset == 0)
        s->epoch_window = 0;
}

static int next_from_files(struct token_source *s, const uint16_t **window, struct sr_error *err)
{
    to_next_window(s);
    *window = s->tokens[s->pos.shard] + s->pos.offset;
    if (check_tokens(s, *window, err) != 0)
        return -1;
    s->pos.offset += (int64_t)s->window - 1;
    s->epoch_window++;
    return 0;
}

int64_t token_source_epoch_windows(const struct token_source *s)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->shard_count; i++)
        if (s->token_count[i] >= s->window)
            n += 1 + (int64_t)((s->token_count[i] - s->window) / (s->window - 1));
    return n;
}

void token_source_share_epochs(struct token_source *s, int64_t limit)
{
    s->epoch_limit = limit;
}

struct data_position token_source_position(const struct token_source *s)
{
    if (!s->epoch_limit)
        return s->pos;
    return (struct data_position){s->pos.epoch, -1, s->epoch_window};
}

/* Shared epochs: `windows` into `epoch`, as the hosts count them. */
static int seek_window(struct token_source *s, const struct data_position *pos, struct sr_error *err)
{
    if (pos->offset < 0 || pos->offset > s->epoch_limit) {
        error_setf(err, "channel %s: the checkpoint resumes %lld windows into an epoch of %lld; was the data "
                        "changed?", s->channel, (long long)pos->offset, (long long)s->epoch_limit);
        return -1;
    }
    s->pos = (struct data_position){pos->epoch, 0, 0};
    s->epoch_window = 0;
    for (int64_t k = 0; k < pos->offset; k++) {
        to_next_window(s);
        s->pos.offset += (int64_t)s->window - 1;
        s->epoch_window++;
    }
    return 0;
}

static void fifo_where(const struct token_source *s, char *where, size_t size)
{
    snprintf(where, size, "channel %s: epoch %lld FIFO record %lld", s->channel, (long long)s->pos.epoch,
             (long long)s->pos.shard);
}

/* Reads exactly `bytes` of the current shard from the FIFO (through its
 * RecordIO record when wrapped); returns the count read (short only at
 * the end of the FIFO or of the record). */
static ssize_t read_fully(struct token_source *s, void *buf, size_t bytes, struct sr_error *err)
{
    if (s->recordio) {
        char where[256];
        fifo_where(s, where, sizeof where);
        return recordio_read(&s->rio, buf, bytes, where, err);
    }
    size_t got = 0;
    while (got < bytes) {
        ssize_t n = read(s->fd, (char *)buf + got, bytes - got);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error_setf(err, "channel %s: reading its epoch %lld FIFO: %s", s->channel, (long long)s->pos.epoch,
                       strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Wrapped: the shard just read must have been all of its record. */
static int end_shard(struct token_source *s, struct sr_error *err)
{
    unsigned char extra;
    ssize_t got = s->recordio ? read_fully(s, &extra, 1, err) : 0;
    if (got < 0)
        return -1;
    if (got > 0) {
        char where[256];
        fifo_where(s, where, sizeof where);
        error_setf(err, "%s: RecordIO record holds more than one shard (bytes after its %lld tokens)", where,
                   (long long)s->record_tokens);
        return -1;
    }
    return 0;
}

static int open_fifo(struct token_source *s, struct sr_error *err)
{
    char path[FS_PATH_BYTES];
    snprintf(path, sizeof path, "%s/%s_%lld", s->dir, s->channel, (long long)(s->pos.epoch - s->first_epoch));
    double deadline = clock_now() + s->open_timeout_s;
    while ((s->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if ((errno != ENOENT && errno != EINTR) || clock_now() > deadline) {
            error_setf(err, "channel %s (Pipe mode): cannot open %s: %s", s->channel, path, strerror(errno));
            return -1;
        }
        clock_sleep(0.1);
    }
    recordio_init(&s->rio, s->fd);
    return 0;
}

/* Reads exactly `count` tokens of the current record from the FIFO. */
static int read_tokens(struct token_source *s, uint16_t *buf, size_t count, struct sr_error *err)
{
    ssize_t got = read_fully(s, buf, count * 2, err);
    if (got < 0)
        return -1;
    if ((size_t)got != count * 2) {
        error_setf(err, "channel %s: epoch %lld FIFO ended inside record %lld", s->channel, (long long)s->pos.epoch,
                   (long long)s->pos.shard);
        return -1;
    }
    return 0;
}

/* Discards `tokens` tokens of the FIFO. */
static int skip_tokens(struct token_source *s, int64_t tokens, struct sr_error *err)
{
    uint16_t scratch[8192];
    while (tokens > 0) {
        size_t n = tokens < 8192 ? (size_t)tokens : 8192;
        if (read_tokens(s, scratch, n, err) != 0)
            return -1;
        tokens -= (int64_t)n;
    }
    return 0;
}

/* The next record's header; returns 1 at the end of the epoch's FIFO. */
static int next_record(struct token_source *s, struct sr_error *err)
{
    char where[256];
    fifo_where(s, where, sizeof where);
    if (s->recordio) {
        int rc = recordio_begin(&s->rio, where, err);
        if (rc != 0)
            return rc;
    }
    int32_t header[SHARD_HEADER_INTS];
    ssize_t got = read_fully(s, header, sizeof header, err);
    if (got < 0)
        return -1;
    if (got == 0 && !s->recordio)
        return 1;
    if ((size_t)got != sizeof header) {
        error_setf(err, "%s: ends inside the header", where);
        return -1;
    }
    return check_header(header, where, &s->record_tokens, err);
}

static int next_from_pipe(struct token_source *s, const uint16_t **window, struct sr_error *err)
{
    int epochs_ended = 0; /* two in one call: a whole epoch without a window */
    for (;;) {
        if (s->fd < 0 && open_fifo(s, err) != 0)
            return -1;
        if (s->record_tokens < 0) {
            int rc = next_record(s, err);
            if (rc < 0)
                return -1;
            if (rc == 1) { /* end of this epoch's data */
                close(s->fd);
                s->fd = -1;
                if (++epochs_ended == 2) {
                    error_setf(err, "channel %s: epoch %lld FIFO held no complete window of %zu tokens", s->channel,
                               (long long)s->pos.epoch, s->window);
                    return -1;
                }
                s->pos = (struct data_position){s->pos.epoch + 1, 0, 0};
                continue;
            }
            s->have = 0;
            s->pos.offset = 0;
        }
        if (s->pos.offset + (int64_t)s->window <= s->record_tokens) {
            if (read_tokens(s, s->buf + s->have, s->window - s->have, err) != 0)
                return -1;
            *window = s->buf;
            if (check_tokens(s, s->buf, err) != 0)
                return -1;
            s->pos.offset += (int64_t)s->window - 1;
            /* The last token starts the next window; the caller reads buf
             * before calling again, so it is moved at the next call. */
            s->have = SIZE_MAX;
            return 0;
        }
        int64_t left = s->record_tokens - s->pos.offset - (int64_t)s->have;
        if (skip_tokens(s, left, err) != 0 || end_shard(s, err) != 0)
            return -1;
        s->record_tokens = -1;
        s->pos.shard++;
    }
}

int token_source_next(struct token_source *s, const uint16_t **window, struct sr_error *err)
{
    if (s->mode != INPUT_MODE_PIPE)
        return next_from_files(s, window, err);
    if (s->have == SIZE_MAX) { /* carry the previous window's last token */
        s->buf[0] = s->buf[s->window - 1];
        s->have = 1;
    }
    return next_from_pipe(s, window, err);
}

int token_source_seek(struct token_source *s, const struct data_position *pos, struct sr_error *err)
{
    if (s->mode != INPUT_MODE_PIPE && (pos->shard < 0) != (s->epoch_limit != 0)) {
        error_setf(err, "channel %s: the checkpoint was written by a job whose channel was %s, this one's is %s",
                   s->channel, pos->shard < 0 ? "ShardedByS3Key" : "FullyReplicated",
                   s->epoch_limit ? "ShardedByS3Key" : "FullyReplicated");
        return -1;
    }
    if (s->epoch_limit)
        return seek_window(s, pos, err);
    if (s->mode != INPUT_MODE_PIPE) {
        if (pos->shard < 0 || pos->shard >= (int64_t)s->shard_count || pos->offset < 0 ||
            (size_t)pos->offset > s->token_count[pos->shard]) {
            error_setf(err, "channel %s: the checkpoint's data position (shard %lld, offset %lld) is not in the %zu "
                            "shards of %s; was the data changed?", s->channel, (long long)pos->shard,
                       (long long)pos->offset, s->shard_count, s->dir);
            return -1;
        }
        s->pos = *pos;
        return 0;
    }
    /* A FIFO replays its data from the start: skip records, then tokens. The
     * FIFOs of this container count from _0 whatever the epoch. */
    s->first_epoch = pos->epoch;
    s->pos = (struct data_position){pos->epoch, 0, 0};
    if (open_fifo(s, err) != 0)
        return -1;
    while (s->pos.shard < pos->shard) {
        int rc = next_record(s, err);
        if (rc != 0) {
            if (rc == 1)
                error_setf(err, "channel %s: the checkpoint resumes at record %lld of an epoch but the FIFO has %lld",
                           s->channel, (long long)pos->shard, (long long)s->pos.shard);
            return -1;
        }
        if (skip_tokens(s, s->record_tokens, err) != 0 || end_shard(s, err) != 0)
            return -1;
        s->record_tokens = -1;
        s->pos.shard++;
    }
    if (pos->offset > 0) {
        if (next_record(s, err) != 0) {
            error_setf(err, "channel %s: the checkpoint's record is missing from the FIFO", s->channel);
            return -1;
        }
        if (pos->offset > s->record_tokens || skip_tokens(s, pos->offset, err) != 0) {
            error_setf(err, "channel %s: the checkpoint's offset %lld is past its record", s->channel,
                       (long long)pos->offset);
            return -1;
        }
        s->pos.offset = pos->offset;
        s->have = 0;
    }
    return 0;
}

void token_source_close(struct token_source *s)
{
    for (size_t i = 0; i < s->shard_count; i++) {
        if (s->tokens && s->tokens[i])
            munmap((void *)((const char *)s->tokens[i] - HEADER_BYTES), s->map_len[i]);
        free(s->paths[i]);
    }
    free(s->paths);
    free(s->tokens);
    free(s->token_count);
    free(s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    free(s->channel);
    free(s->dir);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

int shard_write(const char *path, const uint16_t *tokens, size_t count, struct sr_error *err)
{
    int32_t header[SHARD_HEADER_INTS] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)count};
    FILE *f = fopen(path, "wb");
    if (!f) {
        error_setf(err, "cannot create token shard %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(header, sizeof header, 1, f) == 1 && fwrite(tokens, 2, count, f) == count;
    if (fclose(f) != 0 || !ok) {
        error_setf(err, "cannot write token shard %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
