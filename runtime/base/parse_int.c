#include "parse_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int parse_int_option(const char *text, int min, int max, const char *origin, int *out, struct sr_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max) {
        error_setf(err, "%s: \"%s\" is not an integer from %d to %d", origin, text, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int parse_int_env(const char *name, int min, int max, int *out, struct sr_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char origin[128];
    snprintf(origin, sizeof origin, "environment variable %s", name);
    return parse_int_option(v, min, max, origin, out, err) == 0 ? 1 : -1;
}

int require_int_env(const char *who, const char *name, int min, int max, int *out, struct sr_error *err)
{
    int rc = parse_int_env(name, min, max, out, err);
    if (rc == 0)
        error_setf(err, "%s: %s is not set; run under `sagerun train`", who, name);
    return rc == 1 ? 0 : -1;
}
