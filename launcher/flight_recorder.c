#include "flight_recorder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"
#include "strbuf.h"

static void dump_dir(const char *launch_dir, char *out, size_t size)
{
    snprintf(out, size, "%s/flight-recorder", launch_dir);
}

int flight_recorder_prepare(const char *launch_dir, char *prefix, size_t size)
{
    char dir[FS_PATH_BYTES];
    prefix[0] = '\0';
    if (!launch_dir[0])
        return -1;
    dump_dir(launch_dir, dir, sizeof dir);
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "sagerun: cannot make %s for PyTorch's flight recorder: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(prefix, size, "%s/rank_", dir);
    return 0;
}

/* Copies one file; 0 or -1 (err set). */
static int copy_file(const char *from, const char *to, struct sr_error *err)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (rc != 0)
        error_setf(err, "cannot copy %s to %s: %s", from, to, strerror(errno));
    if (in)
        fclose(in);
    if (out && fclose(out) != 0 && rc == 0) {
        error_setf(err, "cannot write %s: %s", to, strerror(errno));
        rc = -1;
    }
    return rc;
}

void flight_recorder_gather(const char *launch_dir, const char *ml_root, char *failure, size_t size)
{
    char dir[FS_PATH_BYTES], out_dir[FS_PATH_BYTES];
    if (!launch_dir[0])
        return;
    dump_dir(launch_dir, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    snprintf(out_dir, sizeof out_dir, "%s/output/data/flight-recorder", ml_root);
    struct strbuf names;
    strbuf_init(&names);
    struct dirent *e;
    struct sr_error err = {{0}};
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char from[FS_PATH_BYTES], to[FS_PATH_BYTES];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", out_dir, e->d_name);
        if ((fs_mkdirs(out_dir, &err) == 0 && copy_file(from, to, &err) == 0))
            strbuf_printf(&names, "%s%s", names.len ? ", " : "", e->d_name);
        else
            fprintf(stderr, "sagerun: flight recorder: %s\n", err.text);
    }
    closedir(d);
    size_t used = strlen(failure);
    if (names.len && used < size)
        snprintf(failure + used, size - used, "; flight recorder: output/data/flight-recorder/ (%s)", names.data);
    strbuf_free(&names);
}

void flight_recorder_remove(const char *launch_dir)
{
    char dir[FS_PATH_BYTES];
    if (!launch_dir[0])
        return;
    dump_dir(launch_dir, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char path[FS_PATH_BYTES];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}
