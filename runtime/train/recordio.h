/* recordio.h — the records of a RecordIO stream, as SageMaker's Pipe mode
 * sends a channel whose RecordWrapperType is RecordIO: each S3 object
 * becomes one record, in the RecordIO framing MXNet's dmlc-core defined:
 *
 *   uint32 magic 0xced7230a | uint32 lrecord | payload | zeros to 4 bytes
 *   lrecord: cflag (top 3 bits) << 29 | payload length (low 29 bits)
 *
 * all little-endian. A record whose data holds the magic word at a 4-byte
 * aligned offset is written as parts split there, the magic itself left
 * out: cflag 1 starts such a record, 2 continues it, 3 ends it; 0 is a
 * whole record. A reader puts the magic back between parts, which this one
 * does, so a record reads back as the bytes that were written.
 */
#ifndef SAGERUN_RECORDIO_H
#define SAGERUN_RECORDIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define RECORDIO_MAGIC 0xced7230aU

struct recordio {
    int fd;
    bool in_record;      /* a record was begun and has bytes left to give */
    uint32_t cflag;      /* of the current part */
    uint32_t part_left;  /* payload bytes of the current part not yet read */
    uint32_t pad;        /* padding after the current part */
    uint32_t magic_left; /* bytes of the magic to give back before the next part */
};

void recordio_init(struct recordio *r, int fd);

/* Starts the next record. Returns 0, 1 at the end of the stream (nothing
 * after the last record), -1 on bad framing or a read error (err names
 * `where`). The previous record must have been read to its end. */
int recordio_begin(struct recordio *r, const char *where, struct sr_error *err);

/* Reads up to `n` bytes of the current record. Returns how many (0 once
 * the record has ended), or -1. */
ssize_t recordio_read(struct recordio *r, void *buf, size_t n, const char *where, struct sr_error *err);

#endif
