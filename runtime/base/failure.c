#include "failure.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

size_t failure_utf8_prefix(const char *message, size_t max)
{
    size_t len = strlen(message);
    if (len <= max)
        return len;
    size_t cut = max;
    /* Back up over continuation bytes (10xxxxxx) to the start of a character. */
    while (cut > 0 && ((unsigned char)message[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int failure_clear(const char *ml_root, struct sr_error *err)
{
    char path[FS_PATH_BYTES];
    snprintf(path, sizeof path, "%s/output/failure", ml_root);
    if (unlink(path) != 0 && errno != ENOENT) {
        error_setf(err, "cannot remove the failure file of an earlier run, %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int failure_write(const char *ml_root, const char *message, struct sr_error *err)
{
    char dir[FS_PATH_BYTES], tmp[FS_PATH_BYTES], final[FS_PATH_BYTES];
    snprintf(dir, sizeof dir, "%s/output", ml_root);
    snprintf(tmp, sizeof tmp, "%s/.failure.%ld.tmp", dir, (long)getpid());
    snprintf(final, sizeof final, "%s/failure", dir);
    if (fs_mkdirs(dir, err) != 0)
        return -1;

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setf(err, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = failure_utf8_prefix(message, FAILURE_REASON_MAX);
    if (write_all(fd, message, len) != 0 || fsync(fd) != 0) {
        error_setf(err, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0 || (link(tmp, final) != 0 && errno != EEXIST)) {
        error_setf(err, "cannot move %s to %s: %s", tmp, final, strerror(errno));
        unlink(tmp);
        return -1;
    }
    unlink(tmp);
    return 0;
}
