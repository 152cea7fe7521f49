/* recordio_writer.h — a RecordIO writer of the tests' own, written from
 * the format's description in dmlc-core (runtime/train/recordio.h): a
 * record's data is split where the magic word sits at a 4-byte aligned
 * offset, the magic left out, parts flagged 1 (first), 2 (middle), 3
 * (last); a record without the magic is one part flagged 0; the last part
 * is zero-padded to 4 bytes. What SageMaker's Pipe mode sends for a channel
 * with RecordWrapperType RecordIO: each S3 object one record. */
#ifndef SAGERUN_RECORDIO_WRITER_H
#define SAGERUN_RECORDIO_WRITER_H

#include <stddef.h>
#include <stdio.h>

/* Returns 0, or -1 when writing failed. */
int recordio_write_record(FILE *out, const void *data, size_t len);

#endif
