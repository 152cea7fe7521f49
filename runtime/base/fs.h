/* fs.h — small filesystem helpers with errors that name the path. */
#ifndef SAGERUN_FS_H
#define SAGERUN_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The size of every buffer that holds a path sagerun builds (a directory
 * and a name below it). Larger than PATH_MAX on purpose: a path that had to
 * be cut to fit is then still longer than PATH_MAX, so the kernel refuses it
 * (ENAMETOOLONG) instead of sagerun silently using another file. */
#define FS_PATH_BYTES (PATH_MAX + 512)

/* mkdir -p: creates `path` and missing parents (mode 0755). */
int fs_mkdirs(const char *path, struct sr_error *err);

/* Writes `text` to `path` via a temporary file and rename, creating parent
 * directories, so a reader sees the old file or the new one, never half. */
int fs_write_text(const char *path, const char *text, struct sr_error *err);

/* The running binary's absolute path (/proc/self/exe); `who` starts the
 * error message ("train", "mpirun", ...). */
/* Whether an executable regular file `program` is in a directory of $PATH. */
bool fs_on_path(const char *program);

int fs_self_executable(char *path, size_t size, const char *who, struct sr_error *err);

/* A library shipped with sagerun: the path in environment variable
 * `override` when set (it must be readable), else `file` beside the running
 * executable or in its ../lib (the installed layout); `what` names it in
 * errors. The result is a real path. */
int fs_find_companion(const char *file, const char *override, const char *what, char *path, size_t size,
                      struct sr_error *err);

#endif
