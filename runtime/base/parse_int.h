/* parse_int.h — integers from the command line and the environment, with
 * errors that name where the value came from and the range it must be in
 * ("--nproc-per-host: \"0\" is not an integer from 1 to 1024"). */
#ifndef SAGERUN_PARSE_INT_H
#define SAGERUN_PARSE_INT_H

#include "error.h"

/* Parses `text` as a decimal integer in [min, max]; `origin` names it in errors. */
int parse_int_option(const char *text, int min, int max, const char *origin, int *out, struct sr_error *err);

/* The integer in environment variable `name`, in [min, max]; returns 0 and
 * leaves *out alone when the variable is unset or empty (1 when it was set). */
int parse_int_env(const char *name, int min, int max, int *out, struct sr_error *err);

/* The same for a variable the launcher gives every rank (RANK, WORLD_SIZE,
 * ...): unset is an error, "<who>: NAME is not set; run under `sagerun train`". */
int require_int_env(const char *who, const char *name, int min, int max, int *out, struct sr_error *err);

#endif
