#include "recordio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LENGTH_MASK ((1U << 29) - 1)
#define RECORDIO_LLMC_SHARD_MAGIC 20240520U /* what a raw token shard starts with (token_data.h) */

void recordio_init(struct recordio *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

/* Reads exactly n bytes; returns how many (short only at the end). */
static ssize_t read_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k == 0)
            break;
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* The header of the next part: 1 at a clean end of the stream. */
static int read_part_header(struct recordio *r, bool first, const char *where, struct sr_error *err)
{
    unsigned char h[8];
    ssize_t got = read_exact(r->fd, h, sizeof h);
    if (got < 0) {
        error_setf(err, "%s: reading RecordIO framing: %s", where, strerror(errno));
        return -1;
    }
    if (got == 0 && first)
        return 1;
    if (got != (ssize_t)sizeof h) {
        error_setf(err, "%s: the stream ends inside a RecordIO header", where);
        return -1;
    }
    uint32_t magic = le32(h), lrecord = le32(h + 4), cflag = lrecord >> 29;
    if (magic != RECORDIO_MAGIC) {
        error_setf(err, "%s: not RecordIO (magic 0x%08x%s)", where, magic,
                   magic == RECORDIO_LLMC_SHARD_MAGIC ? ": an unwrapped llm.c shard?" : ", not 0xced7230a");
        return -1;
    }
    bool starts = cflag == 0 || cflag == 1;
    if (cflag > 3 || starts != first) {
        error_setf(err, "%s: RecordIO part with cflag %u %s", where, cflag,
                   first ? "cannot start a record" : "where the rest of a split record was due");
        return -1;
    }
    r->cflag = cflag;
    r->part_left = lrecord & LENGTH_MASK;
    r->pad = (4 - r->part_left % 4) % 4;
    return 0;
}

int recordio_begin(struct recordio *r, const char *where, struct sr_error *err)
{
    if (r->in_record) {
        error_setf(err, "%s: the previous RecordIO record was not read to its end", where);
        return -1;
    }
    int rc = read_part_header(r, true, where, err);
    r->in_record = rc == 0;
    return rc;
}

/* Past the current part's payload: skip its padding and, if the record
 * goes on, give back the magic and read the next part's header. */
static int next_part(struct recordio *r, const char *where, struct sr_error *err)
{
    unsigned char pad[4];
    if (r->pad && read_exact(r->fd, pad, r->pad) != (ssize_t)r->pad) {
        error_setf(err, "%s: the stream ends inside a RecordIO record's padding", where);
        return -1;
    }
    r->pad = 0;
    if (r->cflag == 0 || r->cflag == 3) {
        r->in_record = false;
        return 0;
    }
    r->magic_left = 4;
    return read_part_header(r, false, where, err);
}

ssize_t recordio_read(struct recordio *r, void *buf, size_t n, const char *where, struct sr_error *err)
{
    size_t done = 0;
    static const unsigned char magic[4] = {0x0a, 0x23, 0xd7, 0xce};
    while (done < n && r->in_record) {
        if (r->magic_left) {
            ((unsigned char *)buf)[done++] = magic[4 - r->magic_left--];
            continue;
        }
        if (r->part_left == 0) {
            if (next_part(r, where, err) != 0)
                return -1;
            continue;
        }
        size_t want = n - done < r->part_left ? n - done : r->part_left;
        ssize_t got = read_exact(r->fd, (char *)buf + done, want);
        if (got != (ssize_t)want) {
            error_setf(err, "%s: the stream ends inside a RecordIO record%s%s", where, got < 0 ? ": " : "",
                       got < 0 ? strerror(errno) : "");
            return -1;
        }
        done += want;
        r->part_left -= (uint32_t)want;
    }
    if (r->in_record && r->part_left == 0 && !r->magic_left && (r->cflag == 0 || r->cflag == 3) &&
        next_part(r, where, err) != 0) /* finished exactly at the end: take the padding now */
        return -1;
    return (ssize_t)done;
}
