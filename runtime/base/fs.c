#include "fs.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

int fs_mkdirs(const char *path, struct sr_error *err)
{
    char buf[FS_PATH_BYTES];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        error_setf(err, "path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            error_setf(err, "cannot create directory %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0')
            return 0;
    }
}

/* Creates the directories above `path`; names the temporary file beside it. */
static int prepare_write(const char *path, char *tmp, size_t tmp_size, struct sr_error *err)
{
    char dir[FS_PATH_BYTES];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fs_mkdirs(dir, err) != 0)
            return -1;
    }
    snprintf(tmp, tmp_size, "%s.%ld.tmp", path, (long)getpid());
    return 0;
}

static int commit_write(const char *tmp, const char *path, struct sr_error *err)
{
    if (rename(tmp, path) != 0) {
        error_setf(err, "cannot move %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int fs_write_text(const char *path, const char *text, struct sr_error *err)
{
    char tmp[FS_PATH_BYTES];
    if (prepare_write(path, tmp, sizeof tmp, err) != 0)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        error_setf(err, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int bad = fputs(text, f) == EOF;
    bad |= fclose(f) != 0;
    if (bad) {
        error_setf(err, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return commit_write(tmp, path, err);
}

int fs_self_executable(char *path, size_t size, const char *who, struct sr_error *err)
{
    ssize_t n = readlink("/proc/self/exe", path, size - 1);
    if (n <= 0) {
        error_setf(err, "%s: cannot find the sagerun binary (/proc/self/exe): %s", who, strerror(errno));
        return -1;
    }
    path[n] = '\0';
    return 0;
}

int fs_find_companion(const char *file, const char *override, const char *what, char *path, size_t size,
                      struct sr_error *err)
{
    const char *chosen = getenv(override);
    if (chosen && *chosen) {
        if (access(chosen, R_OK) != 0) {
            error_setf(err, "%s=%s: %s", override, chosen, strerror(errno));
            return -1;
        }
        snprintf(path, size, "%s", chosen);
        return 0;
    }
    char self[FS_PATH_BYTES];
    if (fs_self_executable(self, sizeof self, what, err) != 0)
        return -1;
    const char *dir = dirname(self);
    char beside[FS_PATH_BYTES], lib[FS_PATH_BYTES];
    snprintf(beside, sizeof beside, "%s/%s", dir, file);
    snprintf(lib, sizeof lib, "%s/../lib/%s", dir, file);
    const char *found = access(beside, R_OK) == 0 ? beside : access(lib, R_OK) == 0 ? lib : NULL;
    if (!found) {
        error_setf(err, "the %s %s is neither in %s nor in %s/../lib (set %s)", what, file, dir, dir, override);
        return -1;
    }
    char *real = realpath(found, NULL);
    snprintf(path, size, "%s", real ? real : found);
    free(real);
    return 0;
}

bool fs_on_path(const char *program)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *copy = xstrdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char full[FS_PATH_BYTES];
        snprintf(full, sizeof full, "%s/%s", *dir ? dir : ".", program);
        struct stat st;
        found = stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0;
    }
    free(copy);
    return found;
}
