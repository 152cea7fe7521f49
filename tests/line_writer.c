/* line_writer RANK COUNT: writes COUNT lines "w<RANK> <seq> <payload> <sum>\n"
 * to stdout as fast as it can, in write() calls of pseudo-random sizes that
 * cut lines anywhere, so a relay that loses track of line boundaries shows
 * up as a torn, merged or corrupt line. <sum> checks the payload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void flush_out(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n <= 0)
            exit(1);
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int rank = atoi(argv[1]);
    long count = atol(argv[2]);
    unsigned state = 12345u + (unsigned)rank;
    static char pending[1 << 16];
    size_t used = 0;
    for (long seq = 0; seq < count; seq++) {
        char line[256];
        state = state * 1103515245u + 12345u;
        int len = 1 + (int)((state >> 16) % 120);
        char payload[128];
        unsigned sum = 0;
        for (int i = 0; i < len; i++) {
            payload[i] = (char)('a' + (seq + i) % 26);
            sum += (unsigned char)payload[i];
        }
        payload[len] = '\0';
        int n = snprintf(line, sizeof line, "w%d %ld %s %u\n", rank, seq, payload, sum);
        memcpy(pending + used, line, (size_t)n);
        used += (size_t)n;
        state = state * 1103515245u + 12345u;
        size_t cut = (state >> 16) % 4096; /* flush a random prefix, mid-line more often than not */
        if (used > cut + 256) {
            flush_out(pending, used - 200);
            memmove(pending, pending + used - 200, 200);
            used = 200;
        }
    }
    flush_out(pending, used);
    return 0;
}
