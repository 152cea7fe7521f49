/* RecordIO unwrapping (runtime/train/recordio.h): bytes laid out by hand
 * from the format's public description, records from the tests' own writer
 * (tests/recordio_writer.c) with the magic word inside the data, and every
 * kind of broken framing refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "recordio.h"
#include "recordio_writer.h"

/* A pipe holding `bytes`, read through a recordio. */
static void feed(struct recordio *r, const void *bytes, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_true(len < 60000); /* fits the pipe's buffer */
    assert_int_equal(write(p[1], bytes, len), (ssize_t)len);
    close(p[1]);
    recordio_init(r, p[0]);
}

/* Reads the whole current record in pieces of `piece` bytes. */
static size_t read_record(struct recordio *r, unsigned char *out, size_t cap, size_t piece)
{
    struct sr_error err = {{0}};
    size_t total = 0;
    ssize_t got;
    while ((got = recordio_read(r, out + total, piece < cap - total ? piece : cap - total, "t", &err)) > 0)
        total += (size_t)got;
    if (got < 0)
        fail_msg("%s", err.text);
    return total;
}

/* "hello" whole (cflag 0, 3 bytes of padding), then "abcd" MAGIC "efgh"
 * split at the magic (cflag 1 "abcd", cflag 3 "efgh"), laid out by hand. */
static void hand_laid_stream(void **state)
{
    (void)state;
    const unsigned char stream[] = {0x0a, 0x23, 0xd7, 0xce, 5, 0, 0, 0x00, 'h', 'e', 'l', 'l', 'o', 0, 0, 0,
                                    0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0x20, 'a', 'b', 'c', 'd',
                                    0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0x60, 'e', 'f', 'g', 'h'};
    struct recordio r;
    struct sr_error err = {{0}};
    unsigned char out[64];
    feed(&r, stream, sizeof stream);
    assert_int_equal(recordio_begin(&r, "t", &err), 0);
    assert_int_equal(read_record(&r, out, sizeof out, 2), 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(recordio_begin(&r, "t", &err), 0);
    assert_int_equal(read_record(&r, out, sizeof out, 3), 12);
    assert_memory_equal(out, "abcd\x0a\x23\xd7\xce" "efgh", 12);
    assert_int_equal(recordio_begin(&r, "t", &err), 1); /* the end */
    close(r.fd);
}

/* The writer's records, magic words at aligned offsets (first, inside,
 * last, twice in a row) and unaligned ones, read back byte for byte. */
static void writer_round_trip(void **state)
{
    (void)state;
    unsigned char data[3][203];
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < sizeof data[k]; i++)
            data[k][i] = (unsigned char)(i * 31 + k);
    static const unsigned char magic[4] = {0x0a, 0x23, 0xd7, 0xce};
    memcpy(data[0], magic, 4);
    memcpy(data[1] + 40, magic, 4);
    memcpy(data[1] + 44, magic, 4);
    memcpy(data[1] + 97, magic, 4); /* unaligned: stays in the data */
    memcpy(data[2] + 196, magic, 4);
    char *buf;
    size_t len;
    FILE *mem = open_memstream(&buf, &len);
    for (int k = 0; k < 3; k++)
        assert_int_equal(recordio_write_record(mem, data[k], sizeof data[k] - (size_t)k), 0);
    fclose(mem);
    struct recordio r;
    struct sr_error err = {{0}};
    feed(&r, buf, len);
    for (int k = 0; k < 3; k++) {
        unsigned char out[256];
        assert_int_equal(recordio_begin(&r, "t", &err), 0);
        assert_int_equal(read_record(&r, out, sizeof out, 7), sizeof data[k] - (size_t)k);
        assert_memory_equal(out, data[k], sizeof data[k] - (size_t)k);
    }
    assert_int_equal(recordio_begin(&r, "t", &err), 1);
    close(r.fd);
    free(buf);
}

static void broken_framing_is_refused(void **state)
{
    (void)state;
    struct {
        unsigned char bytes[16];
        size_t len;
        const char *error;
    } cases[] = {
        {{0x0b, 0x23, 0xd7, 0xce, 1, 0, 0, 0, 'x', 0, 0, 0}, 12, "t: not RecordIO (magic 0xced7230b, not 0xced7230a)"},
        {{0x0a, 0x23, 0xd7, 0xce, 1, 0}, 6, "t: the stream ends inside a RecordIO header"},
        {{0x0a, 0x23, 0xd7, 0xce, 1, 0, 0, 0x40, 'x', 0, 0, 0}, 12,
         "t: RecordIO part with cflag 2 cannot start a record"},
        {{0x0a, 0x23, 0xd7, 0xce, 8, 0, 0, 0, 'x', 'y'}, 10, "t: the stream ends inside a RecordIO record"},
        {{0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0x20, 'a', 'b', 'c', 'd', 0x0a, 0x23, 0xd7, 0xce}, 16,
         "t: the stream ends inside a RecordIO header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct recordio r;
        struct sr_error err = {{0}};
        feed(&r, cases[i].bytes, cases[i].len);
        unsigned char out[64];
        int rc = recordio_begin(&r, "t", &err);
        while (rc == 0 && (rc = (int)recordio_read(&r, out, sizeof out, "t", &err)) > 0)
            rc = 0;
        assert_int_equal(rc, -1);
        if (strcmp(err.text, cases[i].error) != 0)
            fail_msg("case %zu: \"%s\", not \"%s\"", i, err.text, cases[i].error);
        close(r.fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hand_laid_stream),
        cmocka_unit_test(writer_round_trip),
        cmocka_unit_test(broken_framing_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
