#include "error.h"

#include <stdarg.h>
#include <stdio.h>

bool error_is_set(const struct sr_error *err) { return err->text[0] != '\0'; }

void error_setf(struct sr_error *err, const char *fmt, ...)
{
    if (error_is_set(err))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
}

void error_config(struct sr_error *err, const char *file, const char *json_path,
                  const char *fmt, ...)
{
    if (error_is_set(err))
        return;
    char reason[SR_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    snprintf(err->text, sizeof err->text, "%s: %s: %s", file, json_path, reason);
}
