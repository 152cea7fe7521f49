/* pyjson.h — JSON values formatted exactly as Python formats them.
 *
 * sagemaker-training (the toolkit every SageMaker framework image uses) turns
 * its configuration into SM_* variables with Python's
 *     json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
 * and turns hyperparameters into command-line arguments with Python's str().
 * User scripts parse those strings, so sagerun reproduces them byte for byte:
 * float repr (shortest round-trip, "1e-05", "1.0"), True/False/None, single-
 * quoted repr inside lists and dicts, \uXXXX escapes with surrogate pairs.
 *
 * Known gaps (documented in README): Python also decodes NaN/Infinity and
 * integers beyond 64 bits, which jansson refuses, so such hyperparameters stay
 * strings here; repr() of non-printable non-ASCII characters inside a list or
 * dict hyperparameter is not escaped.
 */
#ifndef SAGERUN_PYJSON_H
#define SAGERUN_PYJSON_H

#include <jansson.h>
#include <stdbool.h>

#include "strbuf.h"

/* json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True) */
void pyjson_dumps(const json_t *v, struct strbuf *out);

/* str(v) for a value produced by json.loads (strings are not quoted). */
void pyjson_str(const json_t *v, struct strbuf *out);

/* repr(float), e.g. 1e-05, 0.001, 100.0, 1e+16. x must be finite. */
void pyjson_float_repr(double x, struct strbuf *out);

/* The toolkit's hyperparameter decoding: json.loads(text) when it parses,
 * else the text itself as a string. Never returns NULL. */
json_t *pyjson_decode_or_string(const char *text);

/* Python truthiness: False, None, 0, 0.0, "", [] and {} are false. */
bool pyjson_truthy(const json_t *v);

/* Python's `needle in container`: list membership, dict key, or substring. */
bool pyjson_contains(const json_t *container, const char *needle);

/* An object's keys in Python's sorted() order (code point order, which for
 * valid UTF-8 is byte order). Free the array, not the keys. */
const char **json_sorted_keys(const json_t *obj, size_t *count);

/* Number of Unicode code points in a UTF-8 string (Python's len()). */
size_t utf8_length(const char *s);

#endif
