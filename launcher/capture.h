/* capture.h — running a helper program and keeping what it printed
 * (the remote-start probe's agent, the debuggers that read a hung rank's
 * stacks). */
#ifndef SAGERUN_CAPTURE_H
#define SAGERUN_CAPTURE_H

#include "strbuf.h"

/* Runs argv (PATH searched) with stdout and stderr into `out` (at most
 * `max` bytes kept, the rest read and dropped); killed at `until` (clock.h
 * seconds). Returns its wait status, or -1 when it could not run or was
 * killed (`out` then says why). */
int capture_run(char *const *argv, double until, size_t max, struct strbuf *out);

#endif
