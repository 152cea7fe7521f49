/* recordio_wrap FILE...: writes each file to stdout as one RecordIO record,
 * as SageMaker's Pipe mode sends S3 objects with RecordWrapperType RecordIO. */
#include <stdio.h>
#include <stdlib.h>

#include "recordio_writer.h"

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        rewind(f);
        char *data = malloc((size_t)len + 1);
        if (!data || fread(data, 1, (size_t)len, f) != (size_t)len || recordio_write_record(stdout, data, (size_t)len)) {
            fprintf(stderr, "recordio_wrap: %s: cannot read or write\n", argv[i]);
            return 1;
        }
        free(data);
        fclose(f);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
