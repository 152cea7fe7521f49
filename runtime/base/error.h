/* error.h — one human-readable error message, carried up the call chain.
 *
 * Every fallible function in runtime/ takes a `struct sr_error *` and, on
 * failure, fills it with a complete sentence that names where the problem is
 * (file, JSON path, variable) and why. Callers return the same failure upward
 * without rewording it; the top level prints it and writes it to
 * /opt/ml/output/failure. The first error set wins: later calls never
 * overwrite a message that is already there, so the root cause survives.
 */
#ifndef SAGERUN_ERROR_H
#define SAGERUN_ERROR_H

#include <stdbool.h>

#define SR_ERROR_MAX 2048

struct sr_error {
    char text[SR_ERROR_MAX];
};

/* Sets a free-form message (printf format). No-op if a message is already set. */
void error_setf(struct sr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets "<file>: <json_path>: <reason>", the shape of every config error. */
void error_config(struct sr_error *err, const char *file, const char *json_path,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

bool error_is_set(const struct sr_error *err);

#endif
