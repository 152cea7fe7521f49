#include "recordio_writer.h"

#include <stdint.h>
#include <string.h>

static const unsigned char MAGIC[4] = {0x0a, 0x23, 0xd7, 0xce}; /* 0xced7230a, little-endian */

static int write_part(FILE *out, uint32_t cflag, const unsigned char *data, uint32_t len, int pad)
{
    uint32_t lrecord = cflag << 29 | len;
    unsigned char head[8] = {MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], (unsigned char)lrecord,
                             (unsigned char)(lrecord >> 8), (unsigned char)(lrecord >> 16),
                             (unsigned char)(lrecord >> 24)};
    static const unsigned char zeros[4] = {0};
    if (fwrite(head, 1, sizeof head, out) != sizeof head || fwrite(data, 1, len, out) != len)
        return -1;
    size_t padding = pad ? (4 - len % 4) % 4 : 0;
    return fwrite(zeros, 1, padding, out) == padding ? 0 : -1;
}

int recordio_write_record(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= len; i += 4)
        if (memcmp(p + i, MAGIC, 4) == 0) {
            if (write_part(out, start == 0 ? 1 : 2, p + start, (uint32_t)(i - start), 0) != 0)
                return -1;
            start = i + 4;
        }
    return write_part(out, start == 0 ? 0 : 3, p + start, (uint32_t)(len - start), 1);
}
