/* hang.h — what the ranks of a hung job were doing.
 *
 * Every process of each rank's process group (the rank and what it
 * spawned) is looked at with the best tool there is: `py-spy dump` for a
 * Python process when py-spy is on PATH, else `gdb -batch -ex 'thread
 * apply all bt'` when gdb is, else each thread's /proc/PID/task/TID/
 * {wchan,syscall,stack} (stack needs root). The stacks go to the log and
 * to <dir>/hang-<host>.txt; the summary, for the failure reason, names each
 * rank and its innermost frames.
 */
#ifndef SAGERUN_HANG_H
#define SAGERUN_HANG_H

#include <stddef.h>
#include <sys/types.h>

struct hang_rank {
    int rank;
    pid_t group; /* its process group (the rank's own pid) */
};

/* `summary` gets "<why>; on <host>: rank R in f0 <- f1 <- f2; ... (see
 * output/data/hang-<host>.txt)". */
void hang_report(const char *why, const char *host, const char *dir, const struct hang_rank *ranks, int count,
                 char *summary, size_t size);

#endif
